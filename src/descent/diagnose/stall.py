"""Why did training stop? A verdict on the current weights: descending, plateau, saddle, local
minimum or SGD noise floor, with the figures that decided it and what to do next.

The figures are scale-free: multiplying the loss by a constant, or rescaling the parameters
(θ → aθ with the model rewritten to compensate), leaves them unchanged. With L the loss, g the
full gradient, λ_max ≥ … ≥ λ_min the Hessian's eigenvalues, ρ = max(|λ_max|, |λ_min|) and
ℓ = ‖θ‖ (1 when θ = 0):

- ``progress`` = ‖g‖² / (2 ρ |L|): the share of the loss that one gradient step of the largest
  safe size 1/ρ removes (the descent lemma's guaranteed decrease ‖g‖²/(2ρ), over |L|). Losses
  that are ≥ 0 (cross-entropy, squared error) make it a true share.
- ``slope`` = ‖g‖ ℓ / |L| and ``bend`` = ρ ℓ² / |L|: the relative change of the loss, to first
  and to second order, over a move as long as the weights themselves.
- ``negative`` = λ_min / ρ: how negative the most negative curvature is.
- ``snr`` = ‖g‖ / √E‖g_B − g‖²: the full gradient against a mini-batch gradient's error.

Verdicts, in the order they are tested (thresholds in :class:`Thresholds`):

1. **plateau**: ``slope < flat`` and ``bend < flat``: moving the weights by their own length
   changes the loss by less than a ``flat`` share, to first and second order.
2. **saddle**: ``progress < stalled`` and ``negative < −negative_curvature``: the gradient is
   spent, and a direction of clearly negative curvature exists.
3. **SGD noise floor**: ``progress ≥ stalled`` but ``snr < noise``: the full gradient would
   still lower the loss, but a mini-batch gradient is mostly noise, so the steps cannot follow it.
4. **descending**: ``progress ≥ stalled`` (and the noise, when measured, does not drown it).
5. **local minimum**: gradient spent, no meaningful negative curvature, λ_max > 0.
6. otherwise (no positive curvature either) **plateau**.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from descent import validate
from descent.diagnose.curvature import GradientNoise, LossFn, Spectrum, analyze, as_batches

VERDICTS = ("descending", "plateau", "saddle", "local minimum", "SGD noise floor")


@dataclass(frozen=True)
class Thresholds:
    """The scale-free thresholds of :func:`stall` (see the module's docstring).

    Attributes:
        flat: plateau when both the slope and the bend over ‖θ‖ are below this share of the loss.
        stalled: the gradient is spent when one 1/ρ step would remove less than this share.
        negative_curvature: saddle when λ_min < −this × ρ.
        noise: SGD noise floor when the full gradient is below this × the mini-batch noise.
    """

    flat: float = 1e-4
    stalled: float = 1e-3
    negative_curvature: float = 2e-2
    noise: float = 0.2

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            validate.positive(value, f"thresholds.{name}")


ADVICE = {
    "descending": "keep training: a gradient step still lowers the loss by a useful share; if it "
    "feels slow, raise the learning rate towards 1/λ_max.",
    "plateau": "the loss is flat around these weights: a larger learning rate, an adaptive rule "
    "(Adam, RMSprop) or momentum crosses it; if units are saturated, re-initialize (Xavier/He) "
    "or normalize the inputs.",
    "saddle": "a saddle: momentum, noise or a larger step escapes along the eigenvector of λ_min "
    "(StallVerdict.escape_direction); plain gradient descent leaves it slowly, or never from "
    "an exact stationary point.",
    "local minimum": "a minimum of this loss: lowering the rate will not help; to do better "
    "change the model, the data or the regularization, or restart from another initialization.",
    "SGD noise floor": "mini-batch noise dominates the gradient: a smaller learning rate (a decay "
    "schedule) or a larger batch lowers the loss further; a different update rule does not.",
}


@dataclass(frozen=True)
class StallVerdict:
    """The verdict and every figure behind it.

    Attributes:
        verdict: one of :data:`VERDICTS`; reason: the comparison that decided it; advice: what
            to do next.
        loss, gradient_norm, parameter_norm, lambda_max, lambda_min: the raw figures.
        progress, slope, bend, negative, snr: the scale-free figures (module docstring);
        snr is None when the noise was not measured.
        escape_direction: the unit eigenvector of λ_min (flat, over the trainable parameters).
    """

    verdict: str
    reason: str
    advice: str
    loss: float
    gradient_norm: float
    parameter_norm: float
    lambda_max: float
    lambda_min: float
    progress: float
    slope: float
    bend: float
    negative: float
    snr: float | None
    thresholds: Thresholds
    spectrum: Spectrum = field(repr=False)
    noise: GradientNoise | None = field(repr=False)

    @property
    def escape_direction(self) -> Tensor:
        return self.spectrum.vector_min

    def figures(self) -> dict[str, float]:
        """The deciding figures by name (for logs and tables)."""
        figures = {
            "loss": self.loss,
            "gradient_norm": self.gradient_norm,
            "lambda_max": self.lambda_max,
            "lambda_min": self.lambda_min,
            "progress": self.progress,
            "slope": self.slope,
            "bend": self.bend,
            "negative": self.negative,
        }
        if self.snr is not None:
            figures["snr"] = self.snr
        return figures

    def __str__(self) -> str:
        lines = [
            f"verdict: {self.verdict} ({self.reason})",
            f"  loss {self.loss:.6g}, ‖g‖ {self.gradient_norm:.3g}, ‖θ‖ {self.parameter_norm:.3g}, "
            f"λ_max {self.lambda_max:.4g}, λ_min {self.lambda_min:.4g}",
            f"  progress ‖g‖²/(2ρ|L|) {self.progress:.3g} (stalled < {self.thresholds.stalled:g}); "
            f"slope {self.slope:.3g}, bend {self.bend:.3g} (flat < {self.thresholds.flat:g}); "
            f"λ_min/ρ {self.negative:.3g} (saddle < −{self.thresholds.negative_curvature:g})"
            + (
                f"; SNR {self.snr:.3g} (noise floor < {self.thresholds.noise:g})"
                if self.snr is not None
                else ""
            ),
            f"  next: {self.advice}",
        ]
        return "\n".join(lines)


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator with 0/0 = 0 and x/0 = ∞ (an exactly zero gradient is small by
    any standard; a nonzero one over a zero loss is large)."""
    if numerator == 0:
        return 0.0
    return numerator / denominator if denominator > 0 else math.inf


def decide(
    loss: float,
    gradient_norm: float,
    parameter_norm: float,
    lambda_max: float,
    lambda_min: float,
    snr: float | None,
    thresholds: Thresholds,
) -> tuple[str, str, dict[str, float]]:
    """The verdict from the raw figures: (verdict, reason, scale-free figures). Pure: tested on
    its own and shared by :func:`stall` and the Trainer's monitor."""
    radius = max(abs(lambda_max), abs(lambda_min))
    length = parameter_norm if parameter_norm > 0 else 1.0
    scale = abs(loss)
    progress = _ratio(gradient_norm**2, 2 * radius * scale)
    slope = _ratio(gradient_norm * length, scale)
    bend = _ratio(radius * length**2, scale)
    negative = lambda_min / radius if radius > 0 else 0.0
    figures = {"progress": progress, "slope": slope, "bend": bend, "negative": negative}
    t = thresholds
    if slope < t.flat and bend < t.flat:
        return "plateau", f"slope {slope:.2g} and bend {bend:.2g} < {t.flat:g}", figures
    if progress < t.stalled and negative < -t.negative_curvature:
        return (
            "saddle",
            f"progress {progress:.2g} < {t.stalled:g} and λ_min/ρ {negative:.2g} < "
            f"−{t.negative_curvature:g}",
            figures,
        )
    if progress >= t.stalled:
        if snr is not None and snr < t.noise:
            return (
                "SGD noise floor",
                f"progress {progress:.2g} ≥ {t.stalled:g} but SNR {snr:.2g} < {t.noise:g}",
                figures,
            )
        return "descending", f"progress {progress:.2g} ≥ {t.stalled:g}", figures
    if lambda_max > 0:
        return (
            "local minimum",
            f"progress {progress:.2g} < {t.stalled:g}, λ_min/ρ {negative:.2g} ≥ "
            f"−{t.negative_curvature:g}, λ_max {lambda_max:.3g} > 0",
            figures,
        )
    return "plateau", f"progress {progress:.2g} < {t.stalled:g} and no positive curvature", figures


def stall(
    model: nn.Module,
    loss: LossFn,
    data: Any,
    *,
    batch_size: int | None = None,
    thresholds: Thresholds | None = None,
    tol: float = 1e-3,
    max_iterations: int = 60,
    seed: int = 0,
    dtype: torch.dtype | str | None = None,
) -> StallVerdict:
    """Diagnose a stalled training run at the model's current weights.

    Args:
        model, loss, data: as in :mod:`descent.diagnose.curvature` (one batch or several; the
            figures are those of the average loss over all their examples: pass the training set
            or a large sample of it).
        batch_size: the training's mini-batch size, to measure the SGD noise at it from
            per-example gradients. None: several batches give their batch-to-batch noise, one
            batch gives no noise figure (and never the SGD-noise-floor verdict).
        thresholds: :class:`Thresholds` (documented defaults).
        tol, max_iterations: Lanczos's residual tolerance (relative to ρ) and step cap.
        seed, dtype: the probe's seed; float64 for a double-precision analysis.

    Example::

        >>> verdict = stall(model, F.cross_entropy, (x_train, y_train), batch_size=50)
        >>> print(verdict)          # the verdict, its figures and what to do next
        >>> verdict.verdict         # "descending", "plateau", "saddle", ...
    """
    thresholds = thresholds or Thresholds()
    batches = as_batches(data)  # read once: an iterable of batches may not be read twice
    # The noise only where it is the training's: at its batch size, or between its batches.
    report = analyze(
        model,
        loss,
        batches,
        k=1,
        tol=tol,
        max_iterations=max_iterations,
        trace_rtol=None,
        noise=batch_size is not None or len(batches) > 1,
        noise_batch_size=batch_size,
        seed=seed,
        dtype=dtype,
    )
    value, spectrum, noise = report.loss, report.spectrum, report.noise
    gradient_norm, parameter_norm = report.gradient_norm, report.parameter_norm
    snr = noise.snr if noise is not None else None
    verdict, reason, figures = decide(
        value,
        gradient_norm,
        parameter_norm,
        spectrum.lambda_max,
        spectrum.lambda_min,
        snr,
        thresholds,
    )
    return StallVerdict(
        verdict=verdict,
        reason=reason,
        advice=ADVICE[verdict],
        loss=value,
        gradient_norm=gradient_norm,
        parameter_norm=parameter_norm,
        lambda_max=spectrum.lambda_max,
        lambda_min=spectrum.lambda_min,
        snr=snr,
        thresholds=thresholds,
        spectrum=spectrum,
        noise=noise,
        **figures,
    )


__all__ = ["ADVICE", "VERDICTS", "StallVerdict", "Thresholds", "decide", "stall"]
