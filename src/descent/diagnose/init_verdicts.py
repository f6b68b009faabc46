"""The verdicts of the initialization report: the scale-free thresholds, the activation
families they apply to, and the rules that turn one layer's figures into a :class:`Verdict` with a
one-line reason and a remedy (the initialization made for the activation it feeds).

Every threshold is a ratio or a fraction (documented in docs/diagnose-init.md), so a verdict does
not depend on the units of the data or of the loss. :mod:`descent.diagnose.init` measures the
figures; this module judges them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor, nn

if TYPE_CHECKING:
    from descent.diagnose.init import LayerReport

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


# -- verdicts ----------------------------------------------------------------------------------


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


def _weight_of(module: nn.Module | None) -> Tensor | None:
    weight = getattr(module, "weight", None)
    return weight if isinstance(weight, Tensor) and weight.dim() >= 2 else None


def _layer_verdict(
    entry: LayerReport,
    activation: str | None,
    weights: nn.Module | None,
    weight_std: float | None = None,
) -> Verdict:
    """The worst verdict that applies to one layer (order of :data:`VERDICTS`); ``weight_std``
    is the std of ``weights.weight`` when the caller has it (measured here otherwise)."""
    weight = _weight_of(weights)
    remedy = _remedy(activation)
    target = _remedy_std(remedy, weight)
    what = activation.lower() if activation else "this layer"
    if weight is not None and weight_std is None:
        weight_std = float(weight.detach().float().std())
    init = f"weight std {weight_std:.2g}" if weight is not None else ""
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
