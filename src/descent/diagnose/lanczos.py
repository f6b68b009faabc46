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
    subspace or when ``converged(alphas, betas, basis)`` says so."""
    dimension = start.numel()
    iterations = min(iterations, dimension)
    basis = torch.zeros(iterations, dimension, dtype=start.dtype, device=start.device)
    alphas = torch.zeros(iterations, dtype=torch.float64)
    betas = torch.zeros(iterations, dtype=torch.float64)
    q = start / start.norm()
    steps = 0
    for j in range(iterations):
        basis[j] = q
        w = matvec(q)
        alpha = torch.dot(q, w)
        alphas[j] = float(alpha)
        previous = basis[: j + 1]
        for _ in range(2):
            w = w - previous.T @ (previous @ w)
        beta = w.norm()
        betas[j] = float(beta)
        steps = j + 1
        scale = float(alphas[: j + 1].abs().max()) or 1.0
        if float(beta) <= 1e-12 * scale:  # an invariant subspace: T's eigenvalues are exact
            break
        if (
            converged is not None
            and steps % check_every == 0
            and converged(alphas[:steps], betas[:steps], basis[:steps])
        ):
            break
        q = w / beta
    return Tridiagonal(alphas[:steps], betas[:steps], basis[:steps])


def _ritz(tri: Tridiagonal) -> tuple[Tensor, Tensor]:
    """Eigenvalues (ascending) and eigenvectors (columns) of T; LAPACK's tridiagonal solver
    through SciPy, which is much cheaper than a dense eigh call per convergence check."""
    from scipy.linalg import eigh_tridiagonal

    alphas = tri.alphas.numpy()
    off = tri.betas[: len(alphas) - 1].numpy()
    values, vectors = eigh_tridiagonal(alphas, off)
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
