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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from descent import validate
from descent.diagnose.init_hooks import (
    _mean_std,
    _model_dtype_device,
    _read_back,
    _Record,
    _Recorder,
    _rms,
    _untouched,
)
from descent.diagnose.init_lsuv import lsuv
from descent.diagnose.init_verdicts import (
    BOUNDED,
    DEAD,
    EXPLODING,
    GRADIENT_EXPLODING,
    GRADIENT_VANISHING,
    RELU_FAMILY,
    SATURATED,
    SATURATION_MARGIN,
    UNIT_LAYERS,
    VANISHING,
    VERDICTS,
    Verdict,
    _layer_verdict,
    _overall,
    _weight_of,
)
from descent.errors import InputError

# -- the report ---------------------------------------------------------------------------------


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
                    output.register_hook(lambda g: output_gradient.__setitem__("rms", _rms(g)))
                value = loss_function(output, targets)
                if value.requires_grad:
                    value.backward()
            recorder.active = False
            named = list(model.named_parameters())
            norms = _parameter_norms(named)
            symmetry = _symmetry(model)
        finally:
            recorder.remove()
    records = recorder.records
    for record in records:
        # The module whose output the model returns: the logits' scale is the loss's business.
        record.is_output = record.output_key == (output.data_ptr(), tuple(output.shape))
    weights = {id(r.module): r.module for r in records if _weight_of(r.module) is not None}
    # Every figure is still a tensor on the model's device: read them back in one go.
    numbers = _read_back(
        [
            value.detach(),
            _mean_std(inputs)[1] if inputs.is_floating_point() else None,
            output_gradient.get("rms"),
            *[
                figure
                for r in records
                for figure in (r.mean, r.std, r.saturated, r.dead, r.gradient_rms)
            ],
            *norms,
            *[_mean_std(module.weight)[1] for module in weights.values()],
        ]
    )
    loss_value, input_std, output_rms = (v if v is not None else math.nan for v in numbers[:3])
    position = 3 + 5 * len(records)
    figures = [numbers[3 + 5 * i : 8 + 5 * i] for i in range(len(records))]
    parameters = _parameter_reports(named, numbers[position : position + len(norms)])
    weight_stds = dict(zip(weights, numbers[position + len(norms) :], strict=True))
    layers = _layer_reports(records, figures, symmetry, input_std, output_rms, weight_stds)
    verdict = _overall(layers)
    return InitReport(
        tuple(layers),
        tuple(parameters),
        verdict,
        input_std,
        loss_value,
        time.perf_counter() - started,
    )


def _parameter_norms(named: list[tuple[str, nn.Parameter]]) -> list[Tensor | None]:
    """‖w‖ and ‖∇w‖ of every parameter, as tensors (read back with the other figures)."""
    def norm(tensor: Tensor) -> Tensor:
        wide = tensor.dtype in (torch.float32, torch.float64)
        return torch.linalg.vector_norm(tensor.detach() if wide else tensor.detach().float())

    norms: list[Tensor | None] = []
    for _, parameter in named:
        norms.append(norm(parameter))
        norms.append(norm(parameter.grad) if parameter.grad is not None else None)
    return norms


def _parameter_reports(
    named: list[tuple[str, nn.Parameter]], norms: list[float | None]
) -> list[ParameterReport]:
    reports = []
    for index, (name, parameter) in enumerate(named):
        weight_norm = norms[2 * index] or 0.0
        gradient_norm = norms[2 * index + 1] or 0.0
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
            # Rows equal to the group's first one; the others may still pair among themselves.
            rest = members
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
    figures: list[list[float | None]],
    symmetry: dict[int, float],
    input_std: float,
    reference: float,
    weight_stds: dict[int, float | None],
) -> list[LayerReport]:
    """The layers' reports from their figures (mean, std, saturated, dead, gradient rms, as read
    back) and the verdict of each."""
    previous: dict[str, float] = {}
    first: dict[str, float] = {}
    reports: list[LayerReport] = []
    weights_module: nn.Module | None = None
    base = input_std if math.isfinite(input_std) and input_std > 0 else None
    for index, (record, (mean, std, saturated, dead, rms)) in enumerate(
        zip(records, figures, strict=True)
    ):
        assert mean is not None  # always measured (typing: the read-back returns optionals)
        assert std is not None
        first.setdefault(record.role, std)
        anchor = base if base is not None else first[record.role]
        scale = std / anchor if anchor > 0 else math.nan
        before = previous.get(record.role, base if base is not None else math.nan)
        gain = std / before if before and before > 0 else math.nan
        previous[record.role] = std
        gradient_rms = rms if rms is not None else math.nan
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
            saturated=saturated,
            dead=dead,
            symmetric=symmetry.get(id(record.module)),
            gradient_rms=gradient_rms,
            gradient_scale=gradient_scale,
            is_output=record.is_output,
            verdict=Verdict("healthy", ""),
            activations=record.sample if record.sample is not None else torch.empty(0),
            gradients=record.gradient_sample,
        )
        weight_std = weight_stds.get(id(weights_module)) if weights_module is not None else None
        verdict = _layer_verdict(entry, activation, weights_module, weight_std)
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


__all__ = [
    "BOUNDED",
    "DEAD",
    "EXPLODING",
    "GRADIENT_EXPLODING",
    "GRADIENT_VANISHING",
    "RELU_FAMILY",
    "SATURATED",
    "SATURATION_MARGIN",
    "UNIT_LAYERS",
    "VANISHING",
    "VERDICTS",
    "InitReport",
    "LayerReport",
    "ParameterReport",
    "Verdict",
    "init_report",
    "lsuv",
]
