"""The loss's curvature around the current weights: Hessian-vector products, the extreme
eigenvalues (both ends), the trace, the spectral density and the gradient's noise.

Every function takes ``model``, ``loss`` and ``data`` the same way:

- ``model``: any ``nn.Module``; the parameters that require grad are the variables.
- ``loss``: ``loss(model(inputs), targets)`` → a scalar (a mean over the batch, like
  ``F.cross_entropy``).
- ``data``: one batch ``(inputs, targets)`` or a sequence of such batches; with several, every
  quantity is that of the average loss over all their examples (each batch weighted by its size).

The analysis runs the model in evaluation mode (BatchNorm uses its running statistics, Dropout is
off, as PyHessian does) through :func:`torch.func.functional_call`, so the model itself is never
modified: its weights stay as they were, its modes are restored afterwards, and ``dtype=float64``
analyses a float32 model in double precision on float64 copies of its weights and data. Random
probes come from a ``torch.Generator`` seeded with ``seed``: the same seed gives the same numbers.

Formulas and references:

- Hessian-vector product by double backward (Pearlmutter 1994): ``H v = ∇_θ (∇_θ L · v)``.
- Lanczos with full reorthogonalization (Lanczos 1950; Golub & Van Loan, *Matrix Computations*,
  §10.1): ``k`` products build an orthonormal basis ``Q_k`` of the Krylov space and a tridiagonal
  ``T_k = Q_kᵀ H Q_k``; its extreme eigenvalues (Ritz values) converge fast to the Hessian's extreme
  eigenvalues at *both* ends, the most negative one included. A Ritz pair (θ, y) has residual
  ``‖H Q_k y − θ Q_k y‖ = β_k |y_k|`` (Paige 1971), which is the stopping rule. PyHessian's power
  iteration with deflation finds only the largest magnitudes, one at a time, and converges
  linearly in the eigenvalue gap.
- Hutchinson's trace (Hutchinson 1990): ``tr H = E[zᵀ H z]`` for Rademacher ``z``; the estimate
  is the mean of ``m`` samples with standard error ``s/√m``.
- Stochastic Lanczos quadrature (Golub & Meurant 2010; Ghorbani, Krishnan & Xiao, "An
  Investigation into Neural Net Optimization via Hessian Eigenvalue Density", ICML 2019): for a
  unit probe ``v``, Lanczos from ``v`` gives ``T_m = S Θ Sᵀ``; the spectral density is approximated
  by nodes ``θ_j`` with weights ``S_{1j}²``, averaged over probes and smoothed with a Gaussian
  kernel of width σ.
- Gradient noise: per-example gradients ``g_i`` (``torch.func.vmap`` of ``torch.func.grad``), the
  full gradient ``ḡ = mean g_i`` and ``tr Σ = Σ‖g_i − ḡ‖²/(N − 1)``; a mini-batch of B drawn without
  replacement has ``E‖g_B − ḡ‖² = (tr Σ / B)(N − B)/N``. The signal-to-noise ratio is
  ``‖ḡ‖ / √E‖g_B − ḡ‖²`` (McCandlish et al., "An Empirical Model of Large-Batch Training", 2018,
  use the same ratio for their noise scale ``B_noise = tr Σ / ‖ḡ‖²``).

Example::

    >>> from descent.diagnose import curvature
    >>> spectrum = curvature.eigenvalues(model, F.cross_entropy, (x, y), k=5)
    >>> spectrum.lambda_max, spectrum.lambda_min, spectrum.top
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from descent.diagnose.hessian import (
    Batch,
    LossFn,
    Objective,
    as_batches,
    dense_hessian,
    evaluation_mode,
    hessian_vector_product,
)
from descent.diagnose.lanczos import (
    Spectrum,
    SubspaceEstimate,
    Tridiagonal,
    eigenvalues,
    lanczos_tridiagonal,
    subspace_curvature,
)
from descent.diagnose.noise import GradientNoise, gradient_noise, signed_noise
from descent.diagnose.spectral import SpectralDensity, TraceEstimate, density, trace

# -- everything at once ------------------------------------------------------------------------


@dataclass(frozen=True)
class CurvatureReport:
    """One analysis: loss, gradient, extreme eigenvalues, trace, noise (None where not asked)."""

    loss: float
    gradient_norm: float
    parameter_norm: float
    spectrum: Spectrum
    trace: TraceEstimate | None
    noise: GradientNoise | None
    dimension: int
    hessian_vector_products: int

    def scalars(self) -> dict[str, float]:
        """The figures for TensorBoard, under ``curvature/…``."""
        figures = {
            "curvature/lambda_max": self.spectrum.lambda_max,
            "curvature/lambda_min": self.spectrum.lambda_min,
        }
        if self.trace is not None:
            figures["curvature/trace"] = self.trace.value
        if self.noise is not None:
            figures["curvature/gradient_snr"] = self.noise.snr
        return figures


def analyze(
    model: nn.Module,
    loss: LossFn,
    data: Any,
    *,
    k: int = 1,
    tol: float = 1e-3,
    max_iterations: int = 100,
    trace_rtol: float | None = 5e-2,
    max_probes: int = 100,
    noise_batch_size: int | None = None,
    noise: bool = True,
    seed: int = 0,
    dtype: torch.dtype | str | None = None,
) -> CurvatureReport:
    """Loss, gradient, the top-k and smallest eigenvalues, the trace (``trace_rtol=None``: skip)
    and the gradient noise (``noise=False``: skip) on one shared :class:`Objective`."""
    with evaluation_mode(model):
        objective = Objective(model, loss, data, dtype=dtype)
        value, gradient = objective.loss_and_gradient()
        spectrum = eigenvalues(
            model,
            loss,
            data,
            k=k,
            tol=tol,
            max_iterations=max_iterations,
            seed=seed,
            objective=objective,
        )
        estimate = (
            trace(
                model,
                loss,
                data,
                rtol=trace_rtol,
                max_probes=max_probes,
                seed=seed,
                objective=objective,
            )
            if trace_rtol is not None
            else None
        )
        products = objective.hvp_count
        spread = None
        if noise and (objective.examples > 1 or len(objective.batches) > 1):
            spread = gradient_noise(
                model, loss, data, batch_size=noise_batch_size, objective=objective
            )
    return CurvatureReport(
        loss=value,
        gradient_norm=float(gradient.norm()),
        parameter_norm=float(objective.flat_parameters().norm()),
        spectrum=spectrum,
        trace=estimate,
        noise=spread,
        dimension=objective.dimension,
        hessian_vector_products=products,
    )


__all__ = [
    "Batch",
    "CurvatureReport",
    "GradientNoise",
    "LossFn",
    "Objective",
    "SpectralDensity",
    "Spectrum",
    "SubspaceEstimate",
    "TraceEstimate",
    "Tridiagonal",
    "analyze",
    "as_batches",
    "dense_hessian",
    "density",
    "eigenvalues",
    "evaluation_mode",
    "gradient_noise",
    "hessian_vector_product",
    "lanczos_tridiagonal",
    "signed_noise",
    "subspace_curvature",
    "trace",
]
