"""The hooks behind the initialization report: what one forward and backward pass shows of each
layer, kept as tensors (no host sync per layer) until the report reads them back at once."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
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
    std_mean: tuple[Tensor, Tensor]
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


def _per_unit_max(tensor: Tensor, unit_dim: int) -> Tensor:
    moved = tensor.detach().movedim(unit_dim, -1)
    return moved.reshape(-1, moved.shape[-1]).amax(dim=0)


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
                # |y − centre| ≥ half-range − margin: one pass for a range centred on 0.
                centre, half = (low + high) / 2, (high - low) / 2
                distance = (values - centre).abs() if centre else values.abs()
                saturated = (distance >= half - margin).count_nonzero() / values.numel()
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
                torch.std_mean(values.float()) if values.numel() > 1 else (values * 0, values),
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
