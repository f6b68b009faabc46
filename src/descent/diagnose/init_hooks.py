"""The hooks behind the initialization report: what one forward and backward pass shows of each
layer, kept as tensors (no host sync per layer) until the report reads them back at once."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from descent.diagnose.init_verdicts import SATURATION_MARGIN, _bounds, _dead_threshold, _family

# -- recording ----------------------------------------------------------------------------------


@dataclass
class _Record:
    """What the hooks saw of one module call (tensors until the end: no host sync per layer)."""

    name: str
    module: nn.Module
    role: str
    family: str | None
    units: int
    mean: Tensor
    std: Tensor
    saturated: Tensor | None
    dead: Tensor | None
    sample: Tensor | None
    output_key: tuple[int, tuple[int, ...]] = (0, ())
    gradient_rms: Tensor | None = None
    gradient_sample: Tensor | None = None
    is_output: bool = False


def _unit_dim(output: Tensor, last_weights: nn.Module | None) -> int:
    """Where a layer's units are: features last after a Linear (also for (N, L, D) sequences),
    channels at dim 1 after a convolution (PyTorch's (N, C, …) layout)."""
    if output.dim() <= 2 or isinstance(last_weights, nn.Linear):
        return output.dim() - 1
    return 1


def _rms(tensor: Tensor) -> Tensor:
    """Root mean square, √(Σ t² / n): the size of a gradient (two passes fewer than a std, and
    a gradient's mean is part of its size)."""
    flat = tensor.detach()
    return torch.linalg.vector_norm(flat.float()) / math.sqrt(max(flat.numel(), 1))


def _mean_std(values: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and unbiased standard deviation in two vectorized passes: the mean, then the norm of
    the deviations from it. torch.std_mean's one-pass (Welford) update costs about 10× as much
    on a CPU, and the two-pass form keeps the digits that Σx² − n·mean² loses when |mean| ≫ std
    (a ReLU layer behind a large bias)."""
    flat = values.detach().reshape(-1)
    if flat.dtype not in (torch.float32, torch.float64):
        flat = flat.float()
    mean = flat.mean()
    std = torch.linalg.vector_norm(flat - mean) / math.sqrt(max(flat.numel() - 1, 1))
    return mean, std


def _read_back(values: Sequence[Tensor | None]) -> list[float | None]:
    """The scalars the hooks left on the model's device, copied to the host together: one
    synchronization for the whole report rather than one per layer and figure (on a GPU each
    ``float(tensor)`` waits for the device)."""
    present = [value for value in values if value is not None]
    if not present:
        return [None] * len(values)
    device = present[0].device
    dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
    stacked = torch.stack([value.detach().reshape(()).to(device, dtype) for value in present])
    numbers = iter(stacked.tolist())
    return [next(numbers) if value is not None else None for value in values]


def _per_unit_max(tensor: Tensor, unit_dim: int) -> Tensor:
    """Each unit's maximum over the batch (and positions). The batch dimension goes first (an
    elementwise maximum of contiguous rows), then the rest of the now small tensor: moving the
    units' dimension last would copy the whole (N, C, H, W) tensor, and one reduction over
    dims (0, 2, 3) strides through it, both several times slower."""
    values = tensor.detach()
    if unit_dim != 0 and values.dim() > 1:
        values, unit_dim = values.amax(dim=0), unit_dim - 1
    others = [dim for dim in range(values.dim()) if dim != unit_dim]
    return values.amax(dim=others) if others else values


def _sample(tensor: Tensor, size: int) -> Tensor:
    """Every k-th value (deterministic, cheap), at most ``size`` of them, copied (a later
    in-place activation must not change it)."""
    flat = tensor.detach().reshape(-1)
    stride = max(1, -(-flat.numel() // size))
    return flat[::stride].float().clone()


class _Recorder:
    """Forward hooks on every leaf module with parameters and every recognized activation;
    tensor hooks on their outputs for ∂L/∂output. ``light`` records only the std and the dead
    and saturated fractions (for monitoring during training)."""

    def __init__(
        self,
        model: nn.Module,
        *,
        sample_size: int = 0,
        gradients: bool = False,
        training_only: bool = False,
    ) -> None:
        self.model = model
        self.training_only = training_only
        self.sample_size = sample_size
        self.gradients = gradients
        self.records: list[_Record] = []
        self.calls: dict[str, int] = {}
        self.pending_max: dict[int, Tensor] = {}
        self.last_weights: nn.Module | None = None
        self.handles: list[Any] = []
        self.active = True
        for name, module in model.named_modules():
            family = _family(module)
            has_parameters = any(True for _ in module.parameters(recurse=False))
            if family is None and not has_parameters:
                continue
            role = "activation" if family is not None else "weights"
            if family == "relu":
                self.handles.append(module.register_forward_pre_hook(self._pre_hook))
            self.handles.append(
                module.register_forward_hook(self._hook(name or type(module).__name__, role))
            )

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    def _pre_hook(self, module: nn.Module, inputs: tuple[Any, ...]) -> None:
        # The input, before an in-place activation overwrites it: its per-unit maximum says
        # whether the unit is on its flat side for every example.
        if self.training_only and not module.training:
            return
        if self.active and inputs and isinstance(inputs[0], Tensor) and inputs[0].dim() >= 1:
            unit_dim = _unit_dim(inputs[0], self.last_weights)
            self.pending_max[id(module)] = _per_unit_max(inputs[0], unit_dim)

    def _hook(self, name: str, role: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            if (
                not self.active
                or not isinstance(output, Tensor)
                or output.dim() == 0
                or (self.training_only and not module.training)
            ):
                self.pending_max.pop(id(module), None)
                return
            if not output.is_floating_point():
                return
            count = self.calls.get(name, 0) + 1
            self.calls[name] = count
            label = name if count == 1 else f"{name}#{count}"
            family = _family(module) if role == "activation" else None
            unit_dim = _unit_dim(output, self.last_weights)
            if role == "weights":
                self.last_weights = module
            values = output.detach()
            saturated = dead = None
            if family == "bounded":
                low, high = _bounds(module)
                margin = SATURATION_MARGIN * (high - low)
                # |y − centre| ≥ half-range − margin, written over the temporary |y − centre|
                # as 1.0 or 0.0, whose mean is the fraction: one new tensor, three fast passes.
                centre, half = (low + high) / 2, (high - low) / 2
                distance = (values - centre).abs_() if centre else values.abs()
                if distance.dtype not in (torch.float32, torch.float64):
                    distance = distance.float()
                saturated = distance.ge_(half - margin).mean()
            elif family == "relu":
                input_max = self.pending_max.pop(id(module), None)
                if input_max is not None and input_max.numel() == values.shape[unit_dim]:
                    dead = (input_max <= _dead_threshold(module)).float().mean()
            record = _Record(
                label,
                module,
                role,
                family,
                int(values.shape[unit_dim]),
                *_mean_std(values),
                saturated,
                dead,
                _sample(values, self.sample_size) if self.sample_size else None,
                (output.data_ptr(), tuple(output.shape)),
            )
            self.records.append(record)
            if self.gradients and output.requires_grad:

                def gradient_hook(gradient: Tensor, record: _Record = record) -> None:
                    record.gradient_rms = _rms(gradient)
                    if self.sample_size:
                        record.gradient_sample = _sample(gradient, self.sample_size)

                output.register_hook(gradient_hook)

        return hook


@contextmanager
def _untouched(model: nn.Module) -> Iterator[None]:
    """Leave the model as it was: gradients, buffers (batch-norm statistics), the RNG (dropout)."""
    gradients = {id(p): p.grad for p in model.parameters()}
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    devices = sorted({p.device.index for p in model.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            for parameter in model.parameters():
                parameter.grad = gradients[id(parameter)]
            with torch.no_grad():
                for buffer, saved in buffers:
                    buffer.copy_(saved)


def _model_dtype_device(model: nn.Module, inputs: Tensor) -> Tensor:
    parameter = next((p for p in model.parameters() if p.is_floating_point()), None)
    if parameter is None:
        return inputs
    if inputs.is_floating_point():
        return inputs.to(device=parameter.device, dtype=parameter.dtype)
    return inputs.to(device=parameter.device)
