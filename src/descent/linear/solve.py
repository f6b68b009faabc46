"""The least-squares loss of the lecture, its gradient, the exact optimum, and the step size
that makes full-batch gradient descent converge without tuning.

    J(w) = Σᵢ (yⁱ − Σⱼ wⱼ φⱼ(xⁱ))² = ‖y − Φw‖²
    ∂J/∂wⱼ = −2 Σᵢ (yⁱ − ŷⁱ) φⱼ(xⁱ),   i.e. ∇J = −2 Φᵀ(y − Φw)

(the slides drop the minus sign; the step is w ← w − λ∇J). With ``reduction="mean"`` both are
divided by n. J is convex, so gradient descent with a small enough step reaches the global
optimum, the least-squares solution.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

Reduction = Literal["sum", "mean"]


def _scale(n: int, reduction: Reduction) -> float:
    if reduction not in ("sum", "mean"):
        raise ValueError(f"loss_reduction must be 'sum' or 'mean', got {reduction!r}")
    return 1.0 if reduction == "sum" else 1.0 / n


def loss(Phi: Tensor, y: Tensor, w: Tensor, reduction: Reduction = "sum") -> Tensor:
    """J(w) = Σᵢ (yⁱ − φ(xⁱ)ᵀw)² (or its mean)."""
    residual = y - Phi @ w
    return (residual @ residual) * _scale(len(y), reduction)


def gradient(Phi: Tensor, y: Tensor, w: Tensor, reduction: Reduction = "sum") -> Tensor:
    """∇J(w) = −2 Φᵀ(y − Φw) (or its mean): the analytic gradient."""
    return -2.0 * (Phi.T @ (y - Phi @ w)) * _scale(len(y), reduction)


#: φ·w is summed in this many interleaved lanes (see :func:`ordered_gradient`).
DOT_LANES = 8


def ordered_gradient(Phi: Tensor, y: Tensor, w: Tensor, reduction: Reduction = "sum") -> Tensor:
    """∇J(w) = −2 Σᵢ φⁱ (yⁱ − φⁱ·w) (or its mean) with every sum in a fixed order. φⁱ·w: lane l
    (of 8) sums the terms j ≡ l (mod 8) left to right, and the lanes are added pairwise,
    ((l₀ + l₁) + (l₂ + l₃)) + ((l₄ + l₅) + (l₆ + l₇)); then the batch is summed over i left to
    right (cumulative sums, which torch runs sequentially on a CPU). :func:`gradient` leaves the
    order to BLAS; this one fixes it, so the compiled epoch of the stochastic modes
    (descent/optim/_kernels.c, lane_dot) equals it bit for bit."""
    rows, k = Phi.shape
    products = torch.zeros(rows, -(-k // DOT_LANES) * DOT_LANES, dtype=Phi.dtype)
    torch.mul(Phi, w, out=products[:, :k])
    lanes = products.view(rows, -1, DOT_LANES).cumsum(dim=1)[:, -1]
    pairs = lanes[:, 0::2] + lanes[:, 1::2]
    quads = pairs[:, 0::2] + pairs[:, 1::2]
    fitted = quads[:, 0] + quads[:, 1]
    terms = Phi * (y - fitted).unsqueeze(1)
    return -2.0 * terms.cumsum(dim=0)[-1] * _scale(len(y), reduction)


def squared_row_norms(Phi: Tensor) -> np.ndarray:
    """‖φⁱ‖² for every row, as one batched dot product per row (no n × k temporary): numpy's
    einsum, which measured 7× faster than torch's on 1,000,000 × 100 and 2.5× on 442 × 11."""
    rows = Phi.detach().numpy()
    return np.einsum("ij,ij->i", rows, rows)


@dataclass(frozen=True)
class Gram:
    """ΦᵀΦ, Φᵀy and yᵀy: with them a full-batch gradient and loss cost O(k²), not O(nk).

    ∇J(w) = 2(ΦᵀΦ w − Φᵀy) and J(w) = yᵀy − 2(Φᵀy)ᵀw + wᵀΦᵀΦw (times 1/n for "mean"); the
    iterates are those of gradient descent on J computed the plain way, up to rounding.
    """

    gram: Tensor
    moment: Tensor
    total: Tensor
    n: int

    @classmethod
    def of(cls, Phi: Tensor, y: Tensor) -> Gram:
        return cls(Phi.T @ Phi, Phi.T @ y, y @ y, len(y))

    def evaluate(
        self, w: Tensor, reduction: Reduction = "sum", out: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """J(w) and ∇J(w) from one product ΦᵀΦ w (the gradient written into ``out`` if given,
        so a loop of iterations allocates nothing for it)."""
        scale = _scale(self.n, reduction)
        product = self.gram @ w
        grad = (
            torch.sub(product, self.moment, out=out) if out is not None else product - self.moment
        )
        grad.mul_(2.0 * scale)
        value = self.total - 2.0 * (self.moment @ w) + w @ product
        return value.clamp_min(0.0) * scale, grad

    def gradient(self, w: Tensor, reduction: Reduction = "sum") -> Tensor:
        return self.evaluate(w, reduction)[1]

    def loss(self, w: Tensor, reduction: Reduction = "sum") -> Tensor:
        return self.evaluate(w, reduction)[0]

    def optimum(self) -> LeastSquares | None:
        """w* and J(w*) from the statistics alone (an eigendecomposition of ΦᵀΦ), or None when
        ΦᵀΦ is too ill-conditioned for that to be accurate (κ > 1e6, rank deficiency included:
        the normal equations square Φ's condition number); then solve on Φ itself."""
        eigenvalues, vectors = torch.linalg.eigh(self.gram)
        top = float(eigenvalues[-1])
        if top <= 0:
            return LeastSquares(torch.zeros_like(self.moment), float(self.total), 0)
        if float(eigenvalues[0]) < top * 1e-6:
            return None
        weights = vectors @ ((vectors.T @ self.moment) / eigenvalues)
        value = self.total - 2.0 * (self.moment @ weights) + weights @ (self.gram @ weights)
        return LeastSquares(weights, float(value.clamp_min(0.0)), len(eigenvalues))


@dataclass(frozen=True)
class Moments:
    """What one pass over the rows of (F, y) leaves: n, Σ F, FᵀF, Fᵀy, Σ y and yᵀy, for the k raw
    basis functions F (no bias column). Every conditioning of the design Φ = [1, (F − c) T]
    (centering c, a column scaling or a rotation T) has its ΦᵀΦ, Φᵀy and yᵀy as a k × k
    expression of these (:meth:`gram`), so the data is read once whatever the conditioning."""

    n: int
    sums: Tensor
    cross: Tensor
    moment: Tensor
    y_sum: float
    y_squares: float

    @property
    def mean(self) -> Tensor:
        return self.sums / self.n

    def centered_cross(self) -> Tensor:
        """(F − μ)ᵀ(F − μ) = FᵀF − n μμᵀ (μ the column means)."""
        return torch.from_numpy(self.centered_cross_array())

    def centered_cross_array(self) -> np.ndarray:
        """:meth:`centered_cross` as a numpy array: the k × k conditioning runs on numpy views of
        the statistics, whose small operations cost about a third of torch's dispatch."""
        mean = self.sums.numpy() / self.n
        return self.cross.numpy() - self.n * np.outer(mean, mean)

    def gram(self, center: Tensor | None = None, transform: Tensor | None = None) -> Gram:
        """ΦᵀΦ, Φᵀy, yᵀy for Φ = [1, F] (no arguments) or [1, (F − c) T] with ``center`` c
        (the column means μ, as the estimator centers) and ``transform`` T a vector (a column
        scaling, T = diag(t)) or a k × m matrix. Centered on the means themselves, the cross terms
        1ᵀ(F − μ) are exactly 0. Computed on numpy views (see :meth:`centered_cross_array`)."""
        n, sums, moment = self.n, self.sums.numpy(), self.moment.numpy()
        if center is None:
            border, block, projected = sums, self.cross.numpy(), moment
        else:
            # (F − c)ᵀ(F − c) = (F − μ)ᵀ(F − μ) + n d dᵀ and 1ᵀ(F − c) = n d, with d = μ − c
            c = center.numpy()
            offset = sums / n - c
            block = self.centered_cross_array() + n * np.outer(offset, offset)
            border = n * offset
            projected = moment - self.y_sum * c  # (F − c)ᵀy
            if transform is not None and transform.dim() == 1:
                t = transform.numpy()
                block = block * np.outer(t, t)
                projected, border = projected * t, border * t
            elif transform is not None:
                t = transform.numpy()
                block = t.T @ block @ t
                projected, border = t.T @ projected, t.T @ border
        m = len(block)
        gram = np.empty((m + 1, m + 1))
        gram[0, 0] = n
        gram[0, 1:] = border
        gram[1:, 0] = border
        gram[1:, 1:] = block
        full_moment = np.empty(m + 1)
        full_moment[0], full_moment[1:] = self.y_sum, projected
        return Gram(
            torch.from_numpy(gram),
            torch.from_numpy(full_moment),
            torch.tensor(self.y_squares, dtype=torch.float64),
            n,
        )


def moments(blocks: Iterable[tuple[Tensor | np.ndarray, Tensor | np.ndarray]]) -> Moments:
    """:class:`Moments` accumulated over (F_b, y_b) row blocks: one matrix product (FᵀF, into
    one k × k buffer) and two matrix-vector products per block, through torch's BLAS.

    torch rather than numpy although numpy's ``A.T @ A`` calls syrk (half the flops of torch's
    gemm): measured on this 2-core machine under load, OpenBLAS's threads (numpy) took 3.6 s for
    XᵀX on 300,000 × 100 against 0.9 s for MKL (torch); benchmarks/linear_fit.py prints both."""
    n, cross, sums, moment = 0, None, None, None
    y_sum, y_squares = 0.0, 0.0
    for features, target in blocks:
        F = torch.as_tensor(features, dtype=torch.float64)
        t = torch.as_tensor(target, dtype=torch.float64)
        if cross is None:
            k = F.shape[1]
            cross = torch.zeros(k, k, dtype=torch.float64)
            sums = torch.zeros(k, dtype=torch.float64)
            moment = torch.zeros(k, dtype=torch.float64)
        cross.addmm_(F.T, F)
        sums += F.sum(dim=0)
        moment.addmv_(F.T, t)
        n += len(t)
        y_sum += float(t.sum())
        y_squares += float(t @ t)
    if cross is None:
        raise ValueError("moments of no rows")
    return Moments(n, sums, cross, moment, y_sum, y_squares)  # type: ignore[arg-type]


@dataclass(frozen=True)
class LeastSquares:
    """The exact optimum: weights w* and J(w*)."""

    weights: Tensor
    loss: float
    rank: int


def least_squares(Phi: Tensor, y: Tensor, reduction: Reduction = "sum") -> LeastSquares:
    """w* = argmin ‖y − Φw‖² by an SVD-based solver (LAPACK gelsd): stable for ill-conditioned
    and rank-deficient Φ, where it returns the minimum-norm solution."""
    Phi64, y64 = Phi.to(torch.float64), y.to(torch.float64)
    solution = torch.linalg.lstsq(Phi64, y64.unsqueeze(1), driver="gelsd")
    weights = solution.solution.squeeze(1)
    return LeastSquares(weights, float(loss(Phi64, y64, weights, reduction)), int(solution.rank))


def largest_eigenvalue(
    gram: Tensor | Callable[[Tensor], Tensor],
    iterations: int = 50,
    seed: int = 0,
    size: int | None = None,
) -> float:
    """λ_max of a symmetric positive semi-definite matrix by power iteration (a lower estimate
    that tightens with iterations; callers keep a safety margin). ``gram`` is the matrix or a
    function v ↦ Gv (then ``size`` is its order), e.g. v ↦ Φᵀ(Φv) without forming ΦᵀΦ."""
    apply = gram if callable(gram) else gram.__matmul__
    order = size if callable(gram) else len(gram)
    if order is None:
        raise ValueError("largest_eigenvalue needs size when given a function")
    generator = torch.Generator().manual_seed(seed)
    vector = torch.randn(order, generator=generator, dtype=torch.float64)
    vector /= vector.norm()
    estimate = 0.0
    for _ in range(iterations):
        product = apply(vector)
        norm = float(product.norm())
        if norm == 0.0:
            return 0.0
        estimate = float(vector @ product)
        vector = product / norm
    return max(estimate, float(vector @ apply(vector)))


def lipschitz_step(
    Phi: Tensor | None,
    mode: str,
    batch_size: int,
    reduction: Reduction = "sum",
    gram: Tensor | None = None,
    *,
    n: int | None = None,
) -> float:
    """1/L for the batches a mode draws, L the Lipschitz constant of the batch gradient.

    Full batch: L = 2 λ_max(ΦᵀΦ) (÷ n for "mean"), λ_max by power iteration. The step 1/L is
    half the largest stable step 2/L, which leaves room for the power iteration's underestimate.
    One example or B examples: the batch Hessian 2 Φ_bᵀΦ_b has λ_max ≤ 2 min(λ_max(ΦᵀΦ),
    Σ_{i∈b} ‖φⁱ‖²), and Σ_{i∈b} ‖φⁱ‖² is at most the sum of the B largest ‖φⁱ‖²: 1/L with that
    bound is stable for every batch any shuffle can draw (÷ B for "mean").

    ``Phi`` may be None in full-batch mode when ``gram`` (ΦᵀΦ) and ``n`` are given.
    """
    if Phi is None and gram is None:
        raise ValueError("lipschitz_step needs Phi or its Gram matrix")
    rows = n if n is not None else len(Phi)  # type: ignore[arg-type]
    if mode == "full":
        lipschitz = 2.0 * _top_eigenvalue(Phi, gram) * _scale(rows, reduction)
    else:
        if Phi is None:
            raise ValueError("lipschitz_step needs Phi's rows for a stochastic mode")
        size = 1 if mode in ("single", "sgd") else min(batch_size, rows)
        row_norms = squared_row_norms(Phi)
        # the heaviest batch any shuffle can draw: the B largest norms (one example: the largest)
        heaviest_batch = float(
            row_norms.max() if size == 1 else np.partition(row_norms, -size)[-size:].sum()
        )
        # λ_max ≥ every diagonal entry of ΦᵀΦ (a column's squared norm): when the heaviest
        # batch is below the largest one, it is the minimum and no power iteration is needed.
        column_bound = float(np.diagonal(gram.numpy()).max()) if gram is not None else 0.0
        if heaviest_batch <= column_bound:
            lipschitz = 2.0 * heaviest_batch * _scale(size, reduction)
        else:
            top = _top_eigenvalue(Phi, gram)
            lipschitz = 2.0 * min(1.05 * top, heaviest_batch) * _scale(size, reduction)
    return 1.0 / lipschitz if lipschitz > 0 else 1.0


#: Above this order the smallest eigenvalue of ΦᵀΦ is not computed (an O(k³) decomposition).
_MAX_CURVATURE_ORDER = 512


def decay_steps(
    step: float,
    gram: Tensor | None,
    n: int,
    mode: str,
    batch_size: int,
    reduction: Reduction = "sum",
) -> float:
    """t₀ of the stochastic modes' default step η_t = η₀/(1 + t/t₀) (t the update number):

        t₀ = min(n/2, 1/(η₀ μ)),   μ = 2 λ_min(ΦᵀΦ)/n · (B for "sum", 1 for "mean")

    μ is the smallest curvature of the expected batch loss, so past t₀ the step is about
    1/(μ t), the step of SGD's O(1/t) rate on a strongly convex loss (Bottou 2012, "Stochastic
    Gradient Descent Tricks": η₀/(1 + η₀ λ t)). The cap n/2 (measured on diabetes, 20 copies of
    it and 1,000,000 × 100 against SGDRegressor) starts the decay within the first pass over the
    data even when ΦᵀΦ is ill-conditioned (small μ) or its λ_min is not computed (k > 512)."""
    cap = max(n / 2, 1.0)
    if gram is None or len(gram) > _MAX_CURVATURE_ORDER:
        return cap
    smallest = float(np.linalg.eigvalsh(gram.numpy())[0])  # numpy: a small matrix's dispatch
    size = 1 if mode in ("single", "sgd") else min(batch_size, n)
    curvature = 2.0 * smallest / n * (size if reduction == "sum" else 1.0)
    if curvature <= 0 or step <= 0:
        return cap
    return max(1.0, min(cap, 1.0 / (step * curvature)))


def _top_eigenvalue(Phi: Tensor | None, gram: Tensor | None) -> float:
    """λ_max(ΦᵀΦ) by power iteration, on ΦᵀΦ or (no k × k matrix) on v ↦ Φᵀ(Φv)."""
    if gram is not None:
        return largest_eigenvalue(gram)
    return largest_eigenvalue(lambda v: Phi.T @ (Phi @ v), size=Phi.shape[1])  # type: ignore[union-attr]
