"""Extreme Hessian eigenvalues by Lanczos with full reorthogonalization (Lanczos 1950; Golub &
Van Loan, *Matrix Computations*, §10.1): ``k`` products build an orthonormal basis ``Q_k`` of the
Krylov space and a tridiagonal ``T_k = Q_kᵀ H Q_k`` whose extreme eigenvalues (Ritz values)
converge to the Hessian's at both ends; a Ritz pair's residual is ``β_k |y_k|`` (Paige 1971).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from descent import validate
from descent.diagnose.hessian import LossFn, Objective, evaluation_mode

# -- Lanczos ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spectrum:
    """Extreme Hessian eigenvalues from Lanczos.

    Attributes:
        top: the k largest eigenvalues (algebraic), largest first.
        lambda_max, lambda_min: the largest and the smallest (most negative) eigenvalue.
        vector_max, vector_min: their unit eigenvectors (flat, over the trainable parameters).
        residuals: ‖H u − θ u‖ for each value of ``top`` (then λ_min), the accuracy certificate.
        iterations: Lanczos steps (= Hessian-vector products) used; converged: whether the
            residual tolerance was met (otherwise the iteration cap was reached).
    """

    top: tuple[float, ...]
    lambda_max: float
    lambda_min: float
    vector_max: Tensor = field(repr=False)
    vector_min: Tensor = field(repr=False)
    residuals: tuple[float, ...]
    iterations: int
    converged: bool

    @property
    def ratio(self) -> float:
        """λ_min / λ_max (negative: a direction of descent by curvature)."""
        return self.lambda_min / self.lambda_max if self.lambda_max != 0 else -math.inf


@dataclass(frozen=True)
class Tridiagonal:
    alphas: Tensor
    betas: Tensor  # β_1 … β_k (the last is the residual norm)
    basis: Tensor  # k × d, orthonormal rows


def _rademacher(dimension: int, generator: torch.Generator, dtype: torch.dtype) -> Tensor:
    signs = torch.randint(0, 2, (dimension,), generator=generator, dtype=torch.int8)
    return (signs * 2 - 1).to(dtype)


def lanczos_tridiagonal(
    matvec: Callable[[Tensor], Tensor],
    start: Tensor,
    iterations: int,
    *,
    converged: Callable[[Tensor, Tensor, Tensor], bool] | None = None,
    check_every: int = 5,
) -> Tridiagonal:
    """Lanczos with full reorthogonalization (classical Gram-Schmidt applied twice: "twice is
    enough", Parlett) from ``start``: up to ``iterations`` steps, stopping early at an invariant
    subspace or when ``converged(alphas, betas, basis)`` says so.

    The basis is one preallocated k × d matrix, and each Gram-Schmidt pass is two matrix-vector
    products on it (``c = Q w``, then ``w -= Qᵀ c`` in place); α and β live in a float64 NumPy
    buffer that ``converged`` sees without a copy: the loop adds a few torch calls to each
    Hessian-vector product and nothing that grows with the step count but the two products."""
    dimension = start.numel()
    iterations = min(iterations, dimension)
    basis = torch.empty(iterations, dimension, dtype=start.dtype, device=start.device)
    coefficients = np.zeros((2, iterations), dtype=np.float64)  # rows: α, β
    alphas, betas = torch.from_numpy(coefficients[0]), torch.from_numpy(coefficients[1])
    q = start / start.norm()
    steps, scale = 0, 0.0
    for j in range(iterations):
        basis[j] = q
        w = matvec(q)
        alpha = float(torch.dot(q, w))
        coefficients[0, j] = alpha
        previous = basis[: j + 1]
        for _ in range(2):
            w = torch.addmv(w, previous.T, previous @ w, alpha=-1.0)
        beta = float(w.norm())
        coefficients[1, j] = beta
        steps = j + 1
        scale = max(scale, abs(alpha))
        if beta <= 1e-12 * (scale or 1.0):  # an invariant subspace: T's eigenvalues are exact
            break
        if (
            converged is not None
            and steps % check_every == 0
            and converged(alphas[:steps], betas[:steps], basis[:steps])
        ):
            break
        q = w / beta
    return Tridiagonal(alphas[:steps].clone(), betas[:steps].clone(), basis[:steps])


def _ritz(tri: Tridiagonal) -> tuple[Tensor, Tensor]:
    """Eigenvalues (ascending) and eigenvectors (columns) of T; LAPACK's tridiagonal solver
    through SciPy, which is much cheaper than a dense eigh call per convergence check."""
    from scipy.linalg import eigh_tridiagonal

    alphas = tri.alphas.numpy()
    off = tri.betas[: len(alphas) - 1].numpy()
    values, vectors = eigh_tridiagonal(alphas, off, check_finite=False)
    return torch.from_numpy(values), torch.from_numpy(vectors)


def eigenvalues(
    model: nn.Module,
    loss: LossFn,
    data: Any,
    *,
    k: int = 1,
    tol: float = 1e-4,
    max_iterations: int = 100,
    seed: int = 0,
    dtype: torch.dtype | str | None = None,
    objective: Objective | None = None,
    smallest: bool = True,
) -> Spectrum:
    """The k largest Hessian eigenvalues and the smallest one, by Lanczos.

    Stops when every wanted Ritz value's residual ``β_m |y_m|`` is below ``tol`` × the largest
    |Ritz value| (the eigenvalue is then within that distance of a true one), or after
    ``max_iterations`` products. The wanted values are the top k and, with ``smallest`` (the
    default), λ_min; ``smallest=False`` stops as soon as the top k have converged (λ_min is then
    the smallest Ritz value, an upper bound of the true one, with its residual in
    ``residuals``). A repeated eigenvalue is found once (a Krylov space from one start vector
    holds one vector of each eigenspace).

    The start vector is a seeded Gaussian vector plus the gradient, each normalized (on one
    batch, whose gradient the products' graph holds anyway): the gradient lies mostly in the
    top eigenspace (Gur-Ari, Roberts & Dyer, "Gradient Descent Happens in a Tiny Subspace",
    2018), so the top Ritz values converge in fewer products (24-26 instead of 26-28 for the
    top-5 of benchmarks/curvature.py), while the random part keeps every eigendirection in
    the Krylov space as a random start does.
    """
    k = validate.positive_int(k, "k")
    tol = validate.positive(tol, "tol")
    max_iterations = validate.positive_int(max_iterations, "max_iterations")
    smallest = validate.flag(smallest, "smallest")
    with evaluation_mode(model):
        objective = objective or Objective(model, loss, data, dtype=dtype)
        generator = torch.Generator().manual_seed(seed)
        start = torch.randn(objective.dimension, generator=generator, dtype=torch.float64)
        start = start.to(objective.dtype).to(objective.device)
        start = start / start.norm()
        gradient = objective.graph_gradient()
        if gradient is not None:
            norm = gradient.norm()
            if bool(torch.isfinite(norm)) and float(norm) > 0:
                start = start + gradient / norm
        wanted_iterations = max(max_iterations, k + 1)

        def converged(alphas: Tensor, betas: Tensor, basis: Tensor) -> bool:
            values, vectors = _ritz(Tridiagonal(alphas, betas, basis))
            if len(values) < k + 1:
                return False
            residuals = betas[-1] * vectors[-1].abs()
            scale = float(values.abs().max()) or 1.0
            wanted = torch.cat([residuals[-k:], residuals[:1]]) if smallest else residuals[-k:]
            return bool((wanted <= tol * scale).all())

        # A check (a tridiagonal eigenproblem of the steps so far) costs microseconds against
        # the milliseconds of a Hessian-vector product: check after every step.
        tri = lanczos_tridiagonal(
            objective.hvp, start, wanted_iterations, converged=converged, check_every=1
        )
        values, vectors = _ritz(tri)
        residuals = tri.betas[-1] * vectors[-1].abs()
        scale = float(values.abs().max()) or 1.0
        count = min(k, len(values))
        top_index = list(range(len(values) - 1, len(values) - 1 - count, -1))
        wanted_index = [*top_index, 0] if smallest else top_index
        converged_flag = (
            bool((residuals[wanted_index] <= tol * scale).all())
            or len(tri.alphas) == objective.dimension
            or float(tri.betas[-1]) <= 1e-12 * scale
        )
        basis = tri.basis.to(torch.float64)
        vector_max = (basis.T @ vectors[:, -1]).to(objective.dtype)
        vector_min = (basis.T @ vectors[:, 0]).to(objective.dtype)
    return Spectrum(
        top=tuple(float(values[i]) for i in top_index),
        lambda_max=float(values[-1]),
        lambda_min=float(values[0]),
        vector_max=vector_max,
        vector_min=vector_min,
        residuals=tuple(float(residuals[i]) for i in [*top_index, 0]),
        iterations=len(tri.alphas),
        converged=converged_flag,
    )


# -- a small warm-started subspace (the training monitor's analysis) ---------------------------


@dataclass(frozen=True)
class SubspaceEstimate:
    """The extreme eigenvalues and the trace from one small subspace (:func:`subspace_curvature`).

    Attributes:
        lambda_max, lambda_min: the extreme Ritz values. Ritz values lie inside the spectrum
            (Courant-Fischer), so ``lambda_max ≤ λ_max`` and ``lambda_min ≥ λ_min``.
        residual_max, residual_min: ``‖H u − θ u‖`` of each Ritz pair: an eigenvalue of H lies
            within this distance of the Ritz value (the accuracy certificate).
        vector_max, vector_min: the Ritz vectors (unit, flat): the next analysis's warm start.
        trace, trace_stderr: the deflated Hutchinson estimate of tr H and a bound on its
            standard error (None without probes).
        probes: Rademacher probes; products: Hessian-vector products used.
    """

    lambda_max: float
    lambda_min: float
    residual_max: float
    residual_min: float
    vector_max: Tensor = field(repr=False)
    vector_min: Tensor = field(repr=False)
    trace: float | None
    trace_stderr: float | None
    probes: int
    products: int


def subspace_curvature(
    objective: Objective,
    *,
    warm: list[Tensor] | tuple[Tensor, ...] = (),
    probes: int = 1,
    max_products: int = 5,
    tol: float = 1e-2,
    generator: torch.Generator,
) -> SubspaceEstimate:
    """λ_max, λ_min (with residuals) and tr H (with an error bar) from a handful of products.

    The subspace starts from the ``warm`` vectors (the previous analysis's Ritz vectors, which
    move little in a few dozen updates) and ``probes`` Rademacher vectors, and is then expanded
    by the residuals of the extreme Ritz pairs (a Davidson step, Davidson 1975: the block
    Krylov direction that improves each pair most) while the budget of ``max_products`` allows
    and a residual exceeds ``tol`` × the largest |Ritz value|. Rayleigh-Ritz on the orthonormal
    basis Q gives ``T = Qᵀ H Q``, its eigenpairs ``(θ, s)``, the Ritz vectors ``u = Q s`` and
    their residuals ``‖H Q s − θ u‖`` exactly (every basis vector's product is known).

    The trace is Hutchinson's estimator deflated by the warm vectors W (orthonormal), as in
    Hutch++ (Meyer, Musco, Musco & Woodruff, SOSA 2021): ``tr H = tr(Wᵀ H W) + E[yᵀ H y]`` with
    ``y = (I − W Wᵀ) z`` for Rademacher ``z``. W does not depend on the probes, so the estimate
    is unbiased, and the directions of extreme curvature, which dominate Hutchinson's variance,
    are counted exactly. Its error bar is a bound that one probe already gives:
    ``Var(zᵀ A z) = 2 Σ_{i≠j} A_ij² ≤ 2 ‖A‖_F²`` for symmetric A = (I − WWᵀ) H (I − WWᵀ)
    (Avron & Toledo 2011), and ``E‖H y‖² = ‖H (I − WWᵀ)‖_F² ≥ ‖A‖_F²``, so
    ``√(2 · mean ‖H y_j‖² / m)`` estimates an upper bound of the standard error of the mean
    of m probes. The probes' products serve both the trace and the subspace.

    ``probes=0`` with warm vectors: no trace (None), the whole budget for the eigenvalues (a
    cold start always takes one probe, to start from).
    """
    probes = validate.nonnegative_int(probes, "probes")
    max_products = validate.positive_int(max_products, "max_products")
    dimension, dtype, device = objective.dimension, objective.dtype, objective.device
    # Vectors are rows (k × d, contiguous): the products with them are then 4-7× faster than
    # with columns of a d × k matrix.
    empty = torch.zeros(0, dimension, dtype=dtype, device=device)
    warm_basis = empty
    if warm:
        warm_rows = [v.to(dtype=dtype, device=device).reshape(-1) for v in warm]
        warm_basis = _new_directions(torch.stack(warm_rows), empty)
    if len(warm_basis) == 0:
        probes = max(probes, 1)  # something to start from
    signs = empty[:0]
    if probes:
        signs = torch.stack([_rademacher(dimension, generator, dtype) for _ in range(probes)])
        signs = signs.to(device)
    projected = signs - (signs @ warm_basis.T) @ warm_basis
    basis = torch.cat([warm_basis, _new_directions(projected, warm_basis)])
    products = torch.stack([objective.hvp(row) for row in basis])
    while True:
        rayleigh = (basis @ products.T).to(torch.float64)
        rayleigh = (rayleigh + rayleigh.T) / 2
        # A few-by-few eigenproblem: NumPy's LAPACK call costs microseconds, torch's more.
        values_np, vectors_np = np.linalg.eigh(rayleigh.cpu().numpy())
        values, vectors = torch.from_numpy(values_np), torch.from_numpy(vectors_np)
        extremes = vectors[:, [-1, 0]].T.to(dtype=dtype, device=device)  # 2 × k
        ritz = extremes @ basis
        residual = (
            extremes @ products - values[[-1, 0]].to(dtype=dtype, device=device)[:, None] * ritz
        )
        norms = residual.norm(dim=1)
        scale = float(values.abs().max()) or 1.0
        room = min(max_products, dimension) - len(basis)
        open_ = [i for i in range(2) if float(norms[i]) > tol * scale][:room]
        fresh = _new_directions(residual[open_], basis)
        if len(fresh) == 0:
            break
        basis = torch.cat([basis, fresh])
        products = torch.cat([products, torch.stack([objective.hvp(row) for row in fresh])])
    # Hutchinson on the projected probes y_j = Qᵀ a_j: y_jᵀ H y_j = a_jᵀ T a_j, H y_j = (HQ)ᵀ a_j.
    trace = trace_stderr = None
    if probes:
        coefficients = (projected @ basis.T).to(torch.float64)  # probes × k
        samples = ((coefficients @ rayleigh) * coefficients).sum(dim=1)
        squares = (coefficients @ products.to(torch.float64)).square().sum(dim=1)
        exact_part = float(torch.diagonal(rayleigh)[: len(warm_basis)].sum())
        trace = exact_part + float(samples.mean())
        trace_stderr = math.sqrt(2 * float(squares.mean()) / probes)
    return SubspaceEstimate(
        lambda_max=float(values[-1]),
        lambda_min=float(values[0]),
        residual_max=float(norms[0]),
        residual_min=float(norms[1]),
        vector_max=ritz[0].clone(),
        vector_min=ritz[1].clone(),
        trace=trace,
        trace_stderr=trace_stderr,
        probes=probes,
        products=len(basis),
    )


def _new_directions(candidates: Tensor, basis: Tensor) -> Tensor:
    """The rows of ``candidates`` made orthonormal to the rows of ``basis`` and to each other
    (Gram-Schmidt twice, "twice is enough"), a row that is already (numerically) in the span
    dropped."""
    kept: list[Tensor] = []
    for row in candidates:
        size = float(row.norm())
        for _ in range(2):
            row = row - (basis @ row) @ basis
            for other in kept:
                row = row - other * torch.dot(other, row)
        norm = float(row.norm())
        if size > 0 and norm > 1e-6 * size:
            kept.append(row / norm)
    if not kept:
        return basis.new_zeros(0, basis.shape[1])
    return torch.stack(kept)
