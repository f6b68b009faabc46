"""Diagnosing an initialization: what every layer's activations and gradients do on one batch,
with a verdict, a one-line reason and a remedy; and LSUV, the remedy that measures.

:func:`init_report` runs one forward and one backward pass with hooks on every module and
returns an :class:`InitReport`. Every threshold below is scale-free (a ratio or a fraction), so
the verdicts do not depend on the units of the data or of the loss:

- an activation's *scale* is its output standard deviation over the standard deviation of the
  model's input; the *gain* is the same ratio against the previous layer of the same role
  (activation after activation, weight layer after weight layer);
- a gradient's *scale* is the root mean square of ∂L/∂(layer output) over that of
  ∂L/∂(model output): how much of the loss's signal reaches the layer on the way back;
- *saturated*: the fraction of a bounded activation's outputs within 0.5% of the range from a
  bound (tanh: |y| > 0.99, where its slope 1 − y² is below 2% of its peak);
- *dead*: the fraction of a ReLU-family layer's units that are on their flat side for every
  example of the batch (ReLU: output 0, gradient 0);
- *symmetric*: the fraction of a weight layer's units whose incoming weights, bias and their
  gradients equal another unit's bit for bit: such units receive the same update and stay
  identical forever.

References: Glorot & Bengio, "Understanding the difficulty of training deep feedforward neural
networks", AISTATS 2010; He et al., "Delving deep into rectifiers", ICCV 2015; Mishkin & Matas,
"All you need is a good init", ICLR 2016; CS231n's 10-layer experiment.

Example::

    >>> from descent.models import MLP, initialize
    >>> model = initialize(MLP(500, 10, depth=10, width=500, activation="tanh"), "normal:0.01")
    >>> report = init_report(model, torch.randn(300, 500))
    >>> report.verdict.name
    'vanishing activations'
    >>> lsuv(model, torch.randn(300, 500)).healthy
    True
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from descent import validate
from descent.errors import InputError

# -- thresholds (all scale-free; documented in docs/diagnose-init.md) ---------------------------

#: A layer whose output std is below this fraction of the input's has vanishing activations.
VANISHING = 1e-2
#: … above this multiple of the input's: exploding activations.
EXPLODING = 1e2
#: A bounded activation with more than this fraction of its outputs near a bound is saturated.
SATURATED = 0.2
#: Distance from a bound, as a fraction of the activation's range, that counts as "near".
SATURATION_MARGIN = 0.005
#: A ReLU-family layer with more than this fraction of dead units gets the "dead units" verdict.
DEAD = 0.1
#: The gradient reaching a layer, as a fraction of the one at the model's output: below this it
#: vanishes, above GRADIENT_EXPLODING it explodes.
GRADIENT_VANISHING = 1e-2
GRADIENT_EXPLODING = 1e2

#: Verdicts, worst first: the overall verdict is the first of these that any layer has (a cause
#: before its consequences: symmetric units also vanish, saturated units also stop gradients).
VERDICTS = (
    "symmetric",
    "dead units",
    "saturated",
    "exploding activations",
    "vanishing activations",
    "exploding gradients",
    "vanishing gradients",
    "healthy",
)

#: Bounded activations: their range (Hardtanh's is read from the module).
BOUNDED: dict[type[nn.Module], tuple[float, float]] = {
    nn.Tanh: (-1.0, 1.0),
    nn.Sigmoid: (0.0, 1.0),
    nn.Hardsigmoid: (0.0, 1.0),
    nn.Softsign: (-1.0, 1.0),
}
#: ReLU-family activations: the input below which a unit is on its flat side (the slope there
#: is 0 for the piecewise-linear ones, about 1% of the slope at +∞ for the smooth ones).
#: LeakyReLU-type units keep the leak's slope there: "dead" means "only the leak".
RELU_FAMILY: dict[type[nn.Module], float] = {
    nn.ReLU: 0.0,
    nn.ReLU6: 0.0,
    nn.LeakyReLU: 0.0,
    nn.PReLU: 0.0,
    nn.RReLU: 0.0,
    nn.Hardswish: -3.0,
    nn.ELU: -4.6,
    nn.CELU: -4.6,
    nn.SELU: -5.2,
    nn.Softplus: -4.6,
    nn.GELU: -3.0,
    nn.SiLU: -6.5,
    nn.Mish: -6.5,
}
#: Layers with units whose incoming weights are rows of ``weight`` (symmetry is checked there).
UNIT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _family(module: nn.Module) -> str | None:
    """ "bounded", "relu" or None (not a recognized activation)."""
    kind = type(module)
    if kind in RELU_FAMILY:
        return "relu"
    if kind in BOUNDED or isinstance(module, nn.Hardtanh):
        return "bounded"
    if any(isinstance(module, base) for base in RELU_FAMILY):
        return "relu"
    if any(isinstance(module, base) for base in BOUNDED):
        return "bounded"
    return None


def _bounds(module: nn.Module) -> tuple[float, float]:
    if isinstance(module, nn.Hardtanh):
        return float(module.min_val), float(module.max_val)
    for base, bounds in BOUNDED.items():
        if isinstance(module, base):
            return bounds
    raise AssertionError(type(module))  # pragma: no cover - _family said bounded


def _dead_threshold(module: nn.Module) -> float:
    for base, threshold in RELU_FAMILY.items():
        if isinstance(module, base):
            return threshold
    raise AssertionError(type(module))  # pragma: no cover - _family said relu


def _remedy(activation: str | None) -> str:
    """The initialization made for this activation."""
    if activation in ("Tanh", "Sigmoid", "Softsign", "Hardtanh", "Hardsigmoid"):
        return "xavier_normal"
    if activation is not None:
        return "kaiming_normal"
    return "lsuv"


def _remedy_std(remedy: str, weight: Tensor | None) -> float | None:
    if weight is None or weight.dim() < 2:
        return None
    fan_in = weight[0].numel()
    fan_out = weight.shape[0] * weight[0, 0].numel()
    if remedy == "xavier_normal":
        return math.sqrt(2.0 / (fan_in + fan_out))
    if remedy == "kaiming_normal":
        return math.sqrt(2.0 / fan_in)
    return None


# -- the report ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """A diagnosis: one of :data:`VERDICTS`, why (with the figures) and what to do."""

    name: str
    reason: str
    suggestion: str = ""

    @property
    def healthy(self) -> bool:
        return self.name == "healthy"

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}" + (f"; {self.suggestion}" if self.suggestion else "")


@dataclass(frozen=True)
class LayerReport:
    """One call of one module in the forward pass.

    ``role`` is "activation" (a recognized activation module) or "weights" (a module with
    parameters of its own). ``saturated`` is None for activations without bounds, ``dead`` for
    activations outside the ReLU family, ``symmetric`` for modules without unit rows.
    ``activations`` and ``gradients`` are samples of the output and of ∂L/∂output for histograms.
    """

    name: str
    module: str
    role: str
    units: int
    mean: float
    std: float
    gain: float
    scale: float
    saturated: float | None
    dead: float | None
    symmetric: float | None
    gradient_rms: float
    gradient_scale: float
    is_output: bool
    verdict: Verdict
    activations: Tensor = field(repr=False, compare=False)
    gradients: Tensor | None = field(repr=False, compare=False)


@dataclass(frozen=True)
class ParameterReport:
    """A parameter's weight and gradient norms; ``ratio`` = ‖∇‖ / ‖w‖ (nan when ‖w‖ = 0)."""

    name: str
    shape: tuple[int, ...]
    weight_norm: float
    gradient_norm: float
    ratio: float


@dataclass(frozen=True)
class InitReport:
    """What :func:`init_report` found: per layer (in forward order), per parameter, overall."""

    layers: tuple[LayerReport, ...]
    parameters: tuple[ParameterReport, ...]
    verdict: Verdict
    input_std: float
    loss: float
    seconds: float

    @property
    def healthy(self) -> bool:
        return self.verdict.healthy

    def layer(self, name: str) -> LayerReport:
        for entry in self.layers:
            if entry.name == name:
                return entry
        raise KeyError(f"no layer {name!r}; layers: {', '.join(e.name for e in self.layers)}")

    def main_layers(self) -> tuple[LayerReport, ...]:
        """The lecture's rows: the activation layers, or the weight layers when the model has no
        activation modules (its activations are functional, inside forward())."""
        activations = tuple(entry for entry in self.layers if entry.role == "activation")
        return activations or tuple(entry for entry in self.layers if entry.role == "weights")

    def layer_verdicts(self) -> dict[str, Verdict]:
        return {entry.name: entry.verdict for entry in self.layers}

    def scalars(self, prefix: str = "diagnose") -> dict[str, float]:
        """Flat figures for TensorBoard: ``{prefix}/std/<layer>``, ``…/dead/…``,
        ``…/saturated/…``, ``…/gradient_scale/…``, ``…/gradient_to_weight/<parameter>`` and
        ``{prefix}/healthy`` (1 or 0)."""
        values: dict[str, float] = {f"{prefix}/healthy": float(self.healthy)}
        for entry in self.layers:
            values[f"{prefix}/std/{entry.name}"] = entry.std
            values[f"{prefix}/gradient_scale/{entry.name}"] = entry.gradient_scale
            if entry.dead is not None:
                values[f"{prefix}/dead/{entry.name}"] = entry.dead
            if entry.saturated is not None:
                values[f"{prefix}/saturated/{entry.name}"] = entry.saturated
        for parameter in self.parameters:
            values[f"{prefix}/gradient_to_weight/{parameter.name}"] = parameter.ratio
        return values

    def to_markdown(self) -> str:
        """The report as a Markdown table (TensorBoard's text dashboard renders it)."""
        lines = [
            f"**{self.verdict.name}**: {self.verdict.reason}",
            "",
            f"suggestion: {self.verdict.suggestion}" if self.verdict.suggestion else "",
            "",
            "| layer | module | std | gain | saturated | dead | gradient | verdict |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for e in self.layers:
            lines.append(
                f"| {e.name} | {e.module} | {e.std:.3g} | {e.gain:.3g} | {_percent(e.saturated)} "
                f"| {_percent(e.dead)} | {e.gradient_scale:.3g} | {e.verdict.name} |"
            )
        return "\n".join(lines)

    def table(self, title: str | None = None) -> Any:
        """A rich Table: one row per layer."""
        from rich.table import Table

        table = Table(title=title or f"initialization: {self.verdict.name}")
        for column in ("layer", "module", "mean", "std", "gain", "saturated", "dead", "gradient"):
            table.add_column(column, justify="left" if column in ("layer", "module") else "right")
        table.add_column("verdict")
        for e in self.layers:
            table.add_row(
                e.name,
                e.module,
                f"{e.mean:.3g}",
                f"{e.std:.3g}",
                f"{e.gain:.3g}",
                _percent(e.saturated),
                _percent(e.dead),
                f"{e.gradient_scale:.3g}",
                e.verdict.name if e.verdict.healthy else f"[red]{e.verdict.name}[/red]",
            )
        return table

    def __str__(self) -> str:
        from rich.console import Console

        buffer = io.StringIO()
        console = Console(file=buffer, width=120, color_system=None)
        console.print(self.table())
        console.print(str(self.verdict), soft_wrap=True)
        return buffer.getvalue()


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.0%}"


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


def _default_loss(targets: Tensor | None, seed: int) -> Callable[[Tensor, Any], Tensor]:
    """Cross-entropy for class labels, mean squared error for real targets, and without targets
    a fixed random direction: L = Σ uᵢ·outputᵢ / N with u ~ N(0, 1), so ∂L/∂output is the same
    for every model and the report measures how the network carries a gradient, not a task."""
    if targets is None:

        def random_direction(output: Tensor, _targets: Any) -> Tensor:
            generator = torch.Generator(device=output.device).manual_seed(seed)
            direction = torch.randn(
                output.shape, generator=generator, device=output.device, dtype=output.dtype
            )
            return (output * direction).sum() / max(len(output), 1)

        return random_direction
    if targets.is_floating_point():
        return F.mse_loss
    return F.cross_entropy


def init_report(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor | None = None,
    loss: Callable[[Tensor, Tensor], Tensor] | None = None,
    *,
    sample_size: int = 20_000,
    seed: int = 0,
) -> InitReport:
    """One forward and backward pass of ``model`` on ``inputs`` with hooks on every module:
    per layer the activation mean, std, gain, saturated and dead fractions, symmetry and the
    gradient reaching it; per parameter the gradient norm and ‖∇‖/‖w‖; a verdict per layer and
    overall (see the module's docstring for the thresholds).

    ``loss`` defaults to cross-entropy (integer targets), mean squared error (real targets) or,
    without targets, a fixed random direction at the output. The model is left as it was
    (parameters, gradients, buffers, the random-number generator); it runs in its current mode
    (train, as training will see it, unless you called ``eval()``).
    """
    if not isinstance(model, nn.Module):
        raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(inputs, Tensor) or inputs.dim() == 0 or len(inputs) < 2:
        raise InputError(
            "inputs must be a batch of at least 2 examples (a tensor with a batch dimension), "
            f"got {inputs if not isinstance(inputs, Tensor) else tuple(inputs.shape)!r}"
        )
    validate.positive_int(sample_size, "sample_size")
    started = time.perf_counter()
    inputs = _model_dtype_device(model, inputs)
    if targets is not None:
        targets = targets.to(inputs.device)
    loss_function = loss or _default_loss(targets, seed)
    recorder = _Recorder(model, sample_size=sample_size, gradients=True)
    output_gradient: dict[str, Tensor] = {}
    with _untouched(model):
        try:
            for parameter in model.parameters():
                parameter.grad = None
            with torch.enable_grad():
                output = model(inputs)
                if not isinstance(output, Tensor):
                    raise InputError(f"the model must return a tensor, got {type(output).__name__}")
                if output.requires_grad:
                    output.register_hook(
                        lambda g: output_gradient.__setitem__("std", _rms(g))
                    )
                value = loss_function(output, targets)
                if value.requires_grad:
                    value.backward()
            recorder.active = False
            parameters = _parameter_reports(model)
            symmetry = _symmetry(model)
        finally:
            recorder.remove()
    for record in recorder.records:
        # The module whose output the model returns: the logits' scale is the loss's business.
        record.is_output = record.output_key == (output.data_ptr(), tuple(output.shape))
    input_std = float(inputs.float().std()) if inputs.is_floating_point() else math.nan
    layers = _layer_reports(
        recorder.records, symmetry, input_std, output_gradient.get("std"), model
    )
    verdict = _overall(layers)
    return InitReport(
        tuple(layers),
        tuple(parameters),
        verdict,
        input_std,
        float(value.detach()),
        time.perf_counter() - started,
    )


def _parameter_reports(model: nn.Module) -> list[ParameterReport]:
    reports = []
    for name, parameter in model.named_parameters():
        weight_norm = float(parameter.detach().float().norm())
        gradient_norm = (
            float(parameter.grad.detach().float().norm()) if parameter.grad is not None else 0.0
        )
        ratio = gradient_norm / weight_norm if weight_norm > 0 else math.nan
        reports.append(
            ParameterReport(name, tuple(parameter.shape), weight_norm, gradient_norm, ratio)
        )
    return reports


def _symmetry(model: nn.Module) -> dict[int, float]:
    """For each unit layer: the fraction of its units whose incoming weights, bias and their
    gradients equal another unit's exactly (those units get identical updates forever).

    Units are first grouped by a short exact prefix of their row (a few weights, the bias and
    their gradients): random rows differ there already, so only the rows of a group are compared
    in full, and the check costs far less than sorting whole rows."""
    fractions: dict[int, float] = {}
    for module in model.modules():
        if not isinstance(module, UNIT_LAYERS) or module.weight.shape[0] < 2:
            continue
        parts = [module.weight.detach().flatten(1), _gradient_rows(module.weight)]
        if module.bias is not None:
            parts += [module.bias.detach()[:, None], _gradient_rows(module.bias)]
        prefix = torch.cat([part[:, :PREFIX] for part in parts], dim=1)
        _, group, counts = torch.unique(prefix, dim=0, return_inverse=True, return_counts=True)
        duplicated = 0
        for label in torch.nonzero(counts > 1).flatten().tolist():
            members = torch.nonzero(group == label).flatten()
            same = torch.ones(len(members), dtype=torch.bool, device=members.device)
            for part in parts:
                rows = part[members]
                same &= (rows == rows[0]).all(dim=1)
            # Rows equal to the group's first one; the others may still pair among themselves.
            duplicated += int(same.sum()) if int(same.sum()) > 1 else 0
            rest = members[~same]
            while len(rest) > 1:
                equal = torch.ones(len(rest), dtype=torch.bool, device=rest.device)
                for part in parts:
                    rows = part[rest]
                    equal &= (rows == rows[0]).all(dim=1)
                duplicated += int(equal.sum()) if int(equal.sum()) > 1 else 0
                rest = rest[~equal]
        fractions[id(module)] = duplicated / module.weight.shape[0]
    return fractions


#: Columns of each part of a unit's row that :func:`_symmetry` groups by before comparing rows.
PREFIX = 4


def _gradient_rows(parameter: Tensor) -> Tensor:
    rows = parameter.shape[0]
    if parameter.grad is None:
        return torch.zeros(rows, 1, dtype=parameter.dtype, device=parameter.device)
    return parameter.grad.detach().reshape(rows, -1)


def _layer_reports(
    records: list[_Record],
    symmetry: dict[int, float],
    input_std: float,
    output_gradient_rms: Tensor | None,
    model: nn.Module,
) -> list[LayerReport]:
    reference = float(output_gradient_rms) if output_gradient_rms is not None else math.nan
    previous: dict[str, float] = {}
    first: dict[str, float] = {}
    reports: list[LayerReport] = []
    weights_module: nn.Module | None = None
    for index, record in enumerate(records):
        std, mean = (float(v) for v in record.std_mean)
        base = input_std if math.isfinite(input_std) and input_std > 0 else None
        first.setdefault(record.role, std)
        anchor = base if base is not None else first[record.role]
        scale = std / anchor if anchor > 0 else math.nan
        before = previous.get(record.role, base if base is not None else math.nan)
        gain = std / before if before and before > 0 else math.nan
        previous[record.role] = std
        gradient_rms = float(record.gradient_rms) if record.gradient_rms is not None else math.nan
        gradient_scale = gradient_rms / reference if reference > 0 else math.nan
        if record.role == "weights":
            weights_module = record.module
        activation = _next_activation(records, index)
        entry = LayerReport(
            name=record.name,
            module=type(record.module).__name__,
            role=record.role,
            units=record.units,
            mean=mean,
            std=std,
            gain=gain,
            scale=scale,
            saturated=float(record.saturated) if record.saturated is not None else None,
            dead=float(record.dead) if record.dead is not None else None,
            symmetric=symmetry.get(id(record.module)),
            gradient_rms=gradient_rms,
            gradient_scale=gradient_scale,
            is_output=record.is_output,
            verdict=Verdict("healthy", ""),
            activations=record.sample if record.sample is not None else torch.empty(0),
            gradients=record.gradient_sample,
        )
        verdict = _layer_verdict(entry, activation, weights_module)
        reports.append(_with_verdict(entry, verdict))
    return reports


def _with_verdict(entry: LayerReport, verdict: Verdict) -> LayerReport:
    from dataclasses import replace

    return replace(entry, verdict=verdict)


def _next_activation(records: list[_Record], index: int) -> str | None:
    """The activation this layer feeds (itself for an activation): the remedy depends on it."""
    if records[index].role == "activation":
        return type(records[index].module).__name__
    for record in records[index + 1 :]:
        if record.role == "activation":
            return type(record.module).__name__
        if record.role == "weights":
            return None
    return None


def _weight_of(module: nn.Module | None) -> Tensor | None:
    weight = getattr(module, "weight", None)
    return weight if isinstance(weight, Tensor) and weight.dim() >= 2 else None


def _layer_verdict(
    entry: LayerReport, activation: str | None, weights: nn.Module | None
) -> Verdict:
    """The worst verdict that applies to one layer (order of :data:`VERDICTS`)."""
    weight = _weight_of(weights)
    remedy = _remedy(activation)
    target = _remedy_std(remedy, weight)
    what = activation.lower() if activation else "this layer"
    init = f"weight std {float(weight.detach().float().std()):.2g}" if weight is not None else ""
    fix = (
        f"use {remedy}"
        + (f" (std {target:.2g})" if target else "")
        + (" or lsuv" if remedy != "lsuv" else "")
    )
    context = f"{what} with {init}: " if init else f"{what}: "
    if entry.symmetric:
        duplicates = round(entry.symmetric * entry.units)
        return Verdict(
            "symmetric",
            f"{duplicates} of {entry.units} units have the same incoming weights, bias and "
            "gradient as another unit, so they get the same update and stay identical",
            f"break the symmetry with a random initialization: {fix}",
        )
    if entry.dead is not None and entry.dead > DEAD:
        return Verdict(
            "dead units",
            f"{entry.dead:.0%} of {entry.units} units are on their flat side for every example "
            "of the batch (no gradient flows through them)",
            "check the biases feeding them (a large negative bias kills ReLUs); "
            f"{fix}; or a leaky_relu",
        )
    if entry.saturated is not None and entry.saturated > SATURATED:
        return Verdict(
            "saturated",
            f"{entry.saturated:.0%} of the outputs sit within {SATURATION_MARGIN:.1%} of the "
            "range's ends, where the slope is near 0",
            f"{context}{fix}",
        )
    if not entry.is_output and math.isfinite(entry.scale):
        if entry.scale > EXPLODING or not math.isfinite(entry.std):
            return Verdict(
                "exploding activations",
                f"output std {entry.std:.3g} is {entry.scale:.3g}× the input's",
                f"{context}{fix}",
            )
        if entry.scale < VANISHING:
            return Verdict(
                "vanishing activations",
                f"output std {entry.std:.3g} is {entry.scale:.2g} of the input's "
                f"(gain {entry.gain:.3g} over the previous layer)",
                f"{context}{fix}",
            )
    if math.isfinite(entry.gradient_scale):
        if entry.gradient_scale > GRADIENT_EXPLODING:
            return Verdict(
                "exploding gradients",
                f"the gradient reaching it is {entry.gradient_scale:.3g}× the one at the output",
                f"{context}{fix}, or clip the gradient",
            )
        if entry.gradient_scale < GRADIENT_VANISHING:
            return Verdict(
                "vanishing gradients",
                f"the gradient reaching it is {entry.gradient_scale:.2g} of the one at the output",
                f"{context}{fix}; normalization layers or residual connections help deep nets",
            )
    return Verdict(
        "healthy",
        f"std {entry.std:.3g} ({entry.scale:.3g} of the input's), gradient "
        f"{entry.gradient_scale:.3g} of the output's",
    )


def _overall(layers: list[LayerReport]) -> Verdict:
    if not layers:
        return Verdict("healthy", "no layer with parameters or a known activation was found")
    for name in VERDICTS[:-1]:
        affected = [entry for entry in layers if entry.verdict.name == name]
        if affected:
            worst = affected[0]
            if name in ("vanishing activations", "vanishing gradients"):
                key = "scale" if name == "vanishing activations" else "gradient_scale"
                worst = min(affected, key=lambda e: getattr(e, key))
            elif name in ("exploding activations", "exploding gradients"):
                key = "scale" if name == "exploding activations" else "gradient_scale"
                worst = max(affected, key=lambda e: getattr(e, key))
            count = f"{len(affected)} of {len(layers)} layers" if len(affected) > 1 else "1 layer"
            return Verdict(
                name,
                f"{count}; worst {worst.name} ({worst.module}): {worst.verdict.reason}",
                worst.verdict.suggestion,
            )
    return Verdict("healthy", f"all {len(layers)} layers within the thresholds")


# -- the remedy: LSUV ---------------------------------------------------------------------------


class _StopForwardError(Exception):
    """Raised by a hook to end a forward pass once the layer being scaled has run."""


def lsuv(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor | None = None,
    loss: Callable[[Tensor, Tensor], Tensor] | None = None,
    *,
    tol: float = 0.1,
    max_iterations: int = 10,
    generator: torch.Generator | None = None,
    report: bool = True,
) -> InitReport | None:
    """Layer-sequential unit-variance initialization (Mishkin & Matas, "All you need is a good
    init", ICLR 2016, Algorithm 1), in place:

    1. every Linear and Conv layer gets an orthonormal weight matrix (Saxe et al. 2014) and a
       zero bias;
    2. for each such layer L in forward order: run the batch, measure Var(B_L) of L's output,
       W_L ← W_L / √Var(B_L); repeat until |Var(B_L) − 1| < ``tol`` or ``max_iterations``.

    Each forward stops right after layer L (a hook ends it), so the cost is about one forward per
    layer and iteration over the layers up to L. Returns the :func:`init_report` of the result
    (``report=False``: nothing, for use inside :func:`descent.models.initialize`).

    Example::

        >>> report = lsuv(model, batch)   # model is now initialized; report.healthy tells
    """
    from descent.models import WEIGHT_LAYERS

    validate.positive(tol, "tol")
    validate.positive_int(max_iterations, "max_iterations")
    if not isinstance(inputs, Tensor) or inputs.dim() == 0 or len(inputs) < 2:
        raise InputError("lsuv needs a batch of at least 2 examples as inputs")
    inputs = _model_dtype_device(model, inputs)
    layers = _forward_order(model, inputs, WEIGHT_LAYERS)
    with torch.no_grad():
        for layer in layers:
            nn.init.orthogonal_(layer.weight, generator=generator)
            if layer.bias is not None:
                layer.bias.zero_()
    for layer in layers:
        for _ in range(max_iterations):
            variance = _output_variance(model, layer, inputs)
            if not math.isfinite(variance) or variance <= 0 or abs(variance - 1.0) < tol:
                break
            with torch.no_grad():
                layer.weight.div_(math.sqrt(variance))
    return init_report(model, inputs, targets, loss) if report else None


def _forward_order(model: nn.Module, inputs: Tensor, kinds: tuple[type, ...]) -> list[nn.Module]:
    order: list[nn.Module] = []

    def hook(module: nn.Module, _inputs: Any, _output: Any) -> None:
        if module not in order:
            order.append(module)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)]
    try:
        with _untouched(model), torch.no_grad():
            model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return order


def _output_variance(model: nn.Module, layer: nn.Module, inputs: Tensor) -> float:
    captured: list[Tensor] = []

    def hook(_module: nn.Module, _inputs: Any, output: Tensor) -> None:
        captured.append(output.detach().float().var())
        raise _StopForwardError

    handle = layer.register_forward_hook(hook)
    try:
        with _untouched(model), torch.no_grad():
            model(inputs)
    except _StopForwardError:
        pass
    finally:
        handle.remove()
    return float(captured[0]) if captured else math.nan


__all__ = [
    "DEAD",
    "EXPLODING",
    "GRADIENT_EXPLODING",
    "GRADIENT_VANISHING",
    "SATURATED",
    "SATURATION_MARGIN",
    "VANISHING",
    "VERDICTS",
    "InitReport",
    "LayerReport",
    "ParameterReport",
    "Verdict",
    "init_report",
    "lsuv",
]
