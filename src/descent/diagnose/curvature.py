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

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from descent import validate
from descent.errors import InputError

LossFn = Callable[[Tensor, Tensor], Tensor]
Batch = tuple[Tensor, Tensor]


# -- inputs -----------------------------------------------------------------------------------


def as_batches(data: Any) -> list[Batch]:
    """``data`` as a list of ``(inputs, targets)`` batches: one batch, or any iterable of them
    (a list, a DataLoader). Raises InputError on an empty batch or an empty sequence."""
    if (
        isinstance(data, tuple | list)
        and len(data) == 2
        and all(isinstance(part, Tensor) for part in data)
    ):
        batches = [(data[0], data[1])]
    else:
        try:
            batches = [tuple(batch) for batch in data]  # type: ignore[union-attr]
        except TypeError:
            raise InputError(
                f"data must be a batch (inputs, targets) or a sequence of batches, got "
                f"{type(data).__name__}"
            ) from None
        if not batches:
            raise InputError("data must hold at least one batch, got an empty sequence")
    for index, batch in enumerate(batches):
        if len(batch) != 2 or not all(isinstance(part, Tensor) for part in batch):
            raise InputError(
                f"batch {index} must be a pair of tensors (inputs, targets), got "
                f"{type(batch).__name__} of length {len(batch)}"
            )
        if batch[0].dim() == 0 or len(batch[0]) == 0:
            raise InputError(
                f"batch {index} is empty: its inputs have shape {tuple(batch[0].shape)}"
            )
    return batches  # type: ignore[return-value]


@contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[None]:
    """Every submodule in eval mode inside the block, each one's own mode restored after."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.train(training)


def _resolve_dtype(dtype: torch.dtype | str | None, model: nn.Module) -> torch.dtype | None:
    if dtype is None:
        return None
    if isinstance(dtype, str):
        names = {"float32": torch.float32, "float64": torch.float64}
        return names[validate.choice(dtype, "dtype", names)]
    if dtype not in (torch.float32, torch.float64):
        raise InputError(f"dtype must be float32 or float64, got {dtype!r}")
    return dtype


class Objective:
    """The loss as a function of the model's trainable parameters, on fixed data.

    Flat vectors: every method takes and returns one 1-D tensor over all trainable parameters in
    ``model.named_parameters()`` order (``unflatten`` gives them back per parameter).
    For a single batch the gradient's graph is built once and reused by every Hessian-vector
    product (one backward each); for several batches each product recomputes them batch by batch
    (memory stays that of one batch).
    """

    def __init__(
        self,
        model: nn.Module,
        loss: LossFn,
        data: Any,
        *,
        dtype: torch.dtype | str | None = None,
    ) -> None:
        named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise InputError(
                f"the model ({type(model).__name__}) has no parameters that require grad, so the "
                "loss has no gradient or curvature to analyse"
            )
        if not callable(loss):
            raise InputError(f"loss must be a function (outputs, targets) → scalar, got {loss!r}")
        self.model, self.loss_fn = model, loss
        self.dtype = _resolve_dtype(dtype, model) or named[0][1].dtype
        self.names = [name for name, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.sizes = [p.numel() for _, p in named]
        self.params = [p.detach().to(self.dtype).requires_grad_(True) for _, p in named]
        trainable = set(self.names)
        self.fixed: dict[str, Tensor] = {}
        for name, p in model.named_parameters():
            if name not in trainable:
                self.fixed[name] = p.detach().to(self.dtype)
        for name, buffer in model.named_buffers():
            self.fixed[name] = buffer.to(self.dtype) if buffer.is_floating_point() else buffer
        self.device = self.params[0].device
        self.batches = [
            (self._cast(inputs), self._cast(targets)) for inputs, targets in as_batches(data)
        ]
        counts = [len(inputs) for inputs, _ in self.batches]
        total = sum(counts)
        self.weights = [count / total for count in counts]
        self.examples = total
        self._graph: list[Tensor] | None = None
        self.hvp_count = 0

    def _cast(self, tensor: Tensor) -> Tensor:
        tensor = tensor.to(self.device)
        return tensor.to(self.dtype) if tensor.is_floating_point() else tensor

    @property
    def dimension(self) -> int:
        return sum(self.sizes)

    def flat_parameters(self) -> Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.params])

    def unflatten(self, vector: Tensor) -> list[Tensor]:
        return [
            part.view(shape)
            for part, shape in zip(vector.split(self.sizes), self.shapes, strict=True)
        ]

    def batch_loss(self, index: int, params: Sequence[Tensor] | None = None) -> Tensor:
        inputs, targets = self.batches[index]
        state = {**self.fixed, **dict(zip(self.names, params or self.params, strict=True))}
        value = self.loss_fn(torch.func.functional_call(self.model, state, (inputs,)), targets)
        if not isinstance(value, Tensor) or value.numel() != 1:
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise InputError(
                f"loss must return a scalar (one number per batch, e.g. a mean), got {shape}"
            )
        return value.reshape(())

    def loss_and_gradient(self) -> tuple[float, Tensor]:
        """The loss and its gradient (flat), averaged over the data's examples."""
        total_loss, total_grad = 0.0, torch.zeros(self.dimension, dtype=self.dtype)
        for index, weight in enumerate(self.weights):
            value = self.batch_loss(index)
            grads = torch.autograd.grad(value, self.params, allow_unused=True)
            total_grad += weight * self._flat(grads)
            total_loss += weight * float(value.detach())
        return total_loss, total_grad

    def _flat(self, parts: Sequence[Tensor | None]) -> Tensor:
        return torch.cat(
            [
                (part if part is not None else torch.zeros(shape, dtype=self.dtype)).reshape(-1)
                for part, shape in zip(parts, self.shapes, strict=True)
            ]
        ).to(self.device)

    def _gradient_graph(self, index: int) -> list[Tensor]:
        value = self.batch_loss(index)
        grads = torch.autograd.grad(value, self.params, create_graph=True, allow_unused=True)
        return [
            g if g is not None else torch.zeros_like(p)
            for g, p in zip(grads, self.params, strict=True)
        ]

    def hvp(self, vector: Tensor) -> Tensor:
        """``H v`` by double backward: ∇(∇L · v)."""
        self.hvp_count += 1
        parts = self.unflatten(vector.to(self.dtype))
        if len(self.batches) == 1:
            if self._graph is None:
                self._graph = self._gradient_graph(0)
            return self._vjp(self._graph, parts, retain=True)
        total = torch.zeros(self.dimension, dtype=self.dtype, device=self.device)
        for index, weight in enumerate(self.weights):
            total += weight * self._vjp(self._gradient_graph(index), parts, retain=False)
        return total

    def hvp_many(self, vectors: Tensor) -> Tensor:
        """``H V`` for the rows of ``V`` (m × d) in one batched backward where torch can
        (``is_grads_batched``), else one product per row."""
        if len(self.batches) == 1:
            if self._graph is None:
                self._graph = self._gradient_graph(0)
            rows = [
                part.reshape(len(vectors), *shape)
                for part, shape in zip(
                    vectors.to(self.dtype).split(self.sizes, dim=1), self.shapes, strict=True
                )
            ]
            try:
                products = torch.autograd.grad(
                    self._graph,
                    self.params,
                    grad_outputs=rows,
                    retain_graph=True,
                    allow_unused=True,
                    is_grads_batched=True,
                )
            except RuntimeError:  # an op without a batching rule: one product at a time
                pass
            else:
                self.hvp_count += len(vectors)
                return torch.cat(
                    [
                        (
                            p if p is not None else torch.zeros(len(vectors), *s, dtype=self.dtype)
                        ).reshape(len(vectors), -1)
                        for p, s in zip(products, self.shapes, strict=True)
                    ],
                    dim=1,
                )
        return torch.stack([self.hvp(row) for row in vectors])

    def _vjp(self, graph: list[Tensor], parts: list[Tensor], retain: bool) -> Tensor:
        products = torch.autograd.grad(
            graph, self.params, grad_outputs=parts, retain_graph=retain, allow_unused=True
        )
        return self._flat(products)

    def dense_hessian(self) -> Tensor:
        """The d × d Hessian (d products; for small models and tests)."""
        eye = torch.eye(self.dimension, dtype=self.dtype, device=self.device)
        return self.hvp_many(eye)


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
) -> Spectrum:
    """The k largest Hessian eigenvalues and the smallest one, by Lanczos.

    Stops when every wanted Ritz value's residual ``β_m |y_m|`` is below ``tol`` × the largest
    |Ritz value| (the eigenvalue is then within that distance of a true one), or after
    ``max_iterations`` products. A repeated eigenvalue is found once (a Krylov space from one
    start vector holds one vector of each eigenspace).
    """
    k = validate.positive_int(k, "k")
    tol = validate.positive(tol, "tol")
    max_iterations = validate.positive_int(max_iterations, "max_iterations")
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
            wanted = torch.cat([residuals[-k:], residuals[:1]])
            return bool((wanted <= tol * scale).all())

        tri = lanczos_tridiagonal(
            objective.hvp, start, wanted_iterations, converged=converged, check_every=2
        )
        values, vectors = _ritz(tri)
        residuals = tri.betas[-1] * vectors[-1].abs()
        scale = float(values.abs().max()) or 1.0
        count = min(k, len(values))
        top_index = list(range(len(values) - 1, len(values) - 1 - count, -1))
        converged_flag = (
            bool((residuals[[*top_index, 0]] <= tol * scale).all())
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


# -- Hutchinson --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceEstimate:
    """Hutchinson's estimate of tr H: ``value`` ± ``stderr`` (one standard error) from
    ``probes`` Rademacher probes; ``samples`` holds each zᵀHz."""

    value: float
    stderr: float
    probes: int
    samples: tuple[float, ...] = field(repr=False)

    def __str__(self) -> str:
        return f"{self.value:.6g} ± {self.stderr:.2g} ({self.probes} probes)"


def trace(
    model: nn.Module,
    loss: LossFn,
    data: Any,
    *,
    rtol: float = 1e-2,
    min_probes: int = 10,
    max_probes: int = 200,
    probes_per_round: int = 10,
    seed: int = 0,
    dtype: torch.dtype | str | None = None,
    objective: Objective | None = None,
) -> TraceEstimate:
    """tr H ≈ mean of zᵀHz over Rademacher z, with a stopping rule on the error bar.

    Probes are drawn ``probes_per_round`` at a time (one batched backward each round) until the
    standard error ``s/√m`` is at most ``rtol`` × |estimate| (after at least ``min_probes``), or
    ``max_probes`` have been used.
    """
    rtol = validate.positive(rtol, "rtol")
    min_probes = validate.positive_int(min_probes, "min_probes")
    max_probes = validate.positive_int(max_probes, "max_probes")
    probes_per_round = validate.positive_int(probes_per_round, "probes_per_round")
    if min_probes < 2 or max_probes < min_probes:
        raise InputError(
            f"probes must satisfy 2 ≤ min_probes ≤ max_probes, got {min_probes} and {max_probes}"
        )
    with evaluation_mode(model):
        objective = objective or Objective(model, loss, data, dtype=dtype)
        generator = torch.Generator().manual_seed(seed)
        samples: list[float] = []
        while len(samples) < max_probes:
            count = min(probes_per_round, max_probes - len(samples))
            probes = torch.stack(
                [_rademacher(objective.dimension, generator, objective.dtype) for _ in range(count)]
            ).to(objective.device)
            products = objective.hvp_many(probes)
            samples += (probes * products).sum(dim=1).tolist()
            if len(samples) >= min_probes:
                mean, stderr = _mean_and_stderr(samples)
                if stderr <= rtol * abs(mean):
                    break
    mean, stderr = _mean_and_stderr(samples)
    return TraceEstimate(mean, stderr, len(samples), tuple(samples))


def _mean_and_stderr(samples: Sequence[float]) -> tuple[float, float]:
    values = torch.tensor(samples, dtype=torch.float64)
    mean = float(values.mean())
    stderr = (
        float(values.std(unbiased=True) / math.sqrt(len(values))) if len(values) > 1 else math.inf
    )
    return mean, stderr


# -- stochastic Lanczos quadrature -------------------------------------------------------------


@dataclass(frozen=True)
class SpectralDensity:
    """The Hessian's eigenvalue density from stochastic Lanczos quadrature.

    ``nodes`` and ``weights`` (probes × steps) are the quadrature: the density is
    ``Σ_j weights[j] δ(t − nodes[j])``; the weights of every probe sum to 1 and are divided by the
    number of probes, so all of them sum to 1. :meth:`curve` smooths it with a Gaussian kernel.
    """

    nodes: Tensor
    weights: Tensor

    @property
    def support(self) -> tuple[float, float]:
        """The smallest and largest node: estimates of λ_min and λ_max."""
        return float(self.nodes.min()), float(self.nodes.max())

    def curve(self, points: int = 1000, sigma: float | None = None) -> tuple[Tensor, Tensor]:
        """(grid, density): ``ρ(t) = Σ_j w_j N(t; θ_j, σ²)`` on a grid reaching 6σ beyond the
        extreme nodes, so the curve integrates to 1 (up to the grid's rounding). σ defaults to
        1% of the nodes' range."""
        low, high = self.support
        width = (high - low) or max(abs(high), 1.0)
        sigma = validate.positive(sigma, "sigma") if sigma is not None else 0.01 * width
        grid = torch.linspace(low - 6 * sigma, high + 6 * sigma, points, dtype=torch.float64)
        nodes = self.nodes.reshape(-1, 1).to(torch.float64)
        weights = self.weights.reshape(-1, 1).to(torch.float64)
        kernel = torch.exp(-0.5 * ((grid - nodes) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
        return grid, (weights * kernel).sum(dim=0)

    def plot(self, path: str | Path, sigma: float | None = None, title: str | None = None) -> Path:
        """Draw the smoothed density on a log scale to a PNG."""
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt

        grid, values = self.curve(sigma=sigma)
        figure, axes = plt.subplots(figsize=(6, 4))
        axes.semilogy(grid.numpy(), values.clamp_min(1e-12).numpy())
        axes.set_xlabel("eigenvalue")
        axes.set_ylabel("density")
        axes.set_title(title or "Hessian eigenvalue density (SLQ)")
        figure.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
        plt.close(figure)
        return path


def density(
    model: nn.Module,
    loss: LossFn,
    data: Any,
    *,
    probes: int = 5,
    iterations: int = 80,
    seed: int = 0,
    dtype: torch.dtype | str | None = None,
    objective: Objective | None = None,
) -> SpectralDensity:
    """The spectral density by stochastic Lanczos quadrature: ``probes`` Lanczos runs of
    ``iterations`` steps from Rademacher starts."""
    probes = validate.positive_int(probes, "probes")
    iterations = validate.positive_int(iterations, "iterations")
    with evaluation_mode(model):
        objective = objective or Objective(model, loss, data, dtype=dtype)
        generator = torch.Generator().manual_seed(seed)
        all_nodes, all_weights = [], []
        for _ in range(probes):
            start = _rademacher(objective.dimension, generator, objective.dtype)
            tri = lanczos_tridiagonal(objective.hvp, start.to(objective.device), iterations)
            values, vectors = _ritz(tri)
            all_nodes.append(values)
            all_weights.append(vectors[0] ** 2 / probes)
    return SpectralDensity(torch.cat(all_nodes), torch.cat(all_weights))


# -- gradient noise ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GradientNoise:
    """The full gradient against the noise of a mini-batch gradient.

    Attributes:
        gradient_norm: ‖ḡ‖, the gradient of the average loss over the data.
        noise: √E‖g_B − ḡ‖², the typical size of a mini-batch gradient's error at ``batch_size``.
        snr: gradient_norm / noise (∞ without noise).
        per_example_variance: tr Σ, the summed variance of one example's gradient (None for the
            batch-to-batch method).
        noise_scale: tr Σ / ‖ḡ‖², McCandlish et al.'s critical batch size (None likewise).
        method: "per-example" (torch.func.vmap) or "batches" (variance between the given batches).
    """

    gradient_norm: float
    noise: float
    batch_size: int
    snr: float
    per_example_variance: float | None
    noise_scale: float | None
    method: str
    examples: int


def gradient_noise(
    model: nn.Module,
    loss: LossFn,
    data: Any,
    *,
    batch_size: int | None = None,
    method: str = "auto",
    chunk: int = 256,
    dtype: torch.dtype | str | None = None,
    objective: Objective | None = None,
) -> GradientNoise:
    """The gradient's signal-to-noise ratio at a mini-batch size.

    ``method="per-example"`` computes every example's gradient (vmap, ``chunk`` examples at a
    time, nothing stored per example) and reports the noise of a batch of ``batch_size`` (default
    1) drawn without replacement; ``"batches"`` uses the spread of the given batches' gradients
    around their weighted mean (at least two batches; the noise is that of a batch of their mean
    size). ``"auto"``: per-example, falling back to batches when the model cannot be vmapped.
    """
    method = validate.choice(method, "method", ("auto", "per-example", "batches"))
    chunk = validate.positive_int(chunk, "chunk")
    if batch_size is not None:
        batch_size = validate.positive_int(batch_size, "batch_size")
    with evaluation_mode(model):
        objective = objective or Objective(model, loss, data, dtype=dtype)
        if method in ("auto", "per-example"):
            try:
                return _per_example_noise(objective, batch_size or 1, chunk)
            except InputError:
                raise
            except Exception as error:  # vmap cannot run this model: say so or fall back
                if method == "per-example" or len(objective.batches) < 2:
                    raise InputError(
                        f"per-example gradients failed for this model ({error}); pass several "
                        "batches and method='batches'"
                    ) from None
        return _batch_noise(objective)


def _per_example_noise(objective: Objective, batch_size: int, chunk: int) -> GradientNoise:
    from torch.func import functional_call, grad, vmap

    model, loss_fn = objective.model, objective.loss_fn
    params = {name: p.detach() for name, p in zip(objective.names, objective.params, strict=True)}

    def example_loss(parameters: dict[str, Tensor], inputs: Tensor, target: Tensor) -> Tensor:
        state = {**objective.fixed, **parameters}
        output = functional_call(model, state, (inputs.unsqueeze(0),))
        return loss_fn(output, target.unsqueeze(0)).reshape(())

    per_example = vmap(grad(example_loss), in_dims=(None, 0, 0))
    total = torch.zeros(objective.dimension, dtype=torch.float64)
    squares = 0.0
    count = 0
    for inputs, targets in objective.batches:
        for start in range(0, len(inputs), chunk):
            grads = per_example(
                params, inputs[start : start + chunk], targets[start : start + chunk]
            )
            flat = torch.cat(
                [grads[name].reshape(len(grads[name]), -1) for name in objective.names], 1
            )
            flat = flat.to(torch.float64)
            total += flat.sum(dim=0)
            squares += float((flat * flat).sum())
            count += len(flat)
    mean = total / count
    mean_norm2 = float(mean @ mean)
    variance = max(squares - count * mean_norm2, 0.0) / max(count - 1, 1)
    size = min(batch_size, count)
    noise2 = variance / size * (count - size) / count
    return _noise_result(mean_norm2, noise2, size, variance, "per-example", count)


def _batch_noise(objective: Objective) -> GradientNoise:
    if len(objective.batches) < 2:
        raise InputError("the batch-to-batch gradient noise needs at least two batches, got one")
    gradients = []
    for index in range(len(objective.batches)):
        value = objective.batch_loss(index)
        gradients.append(
            objective._flat(torch.autograd.grad(value, objective.params, allow_unused=True))
        )
    stacked = torch.stack(gradients).to(torch.float64)
    weights = torch.tensor(objective.weights, dtype=torch.float64)
    mean = weights @ stacked
    noise2 = float(((stacked - mean) ** 2).sum(dim=1).mean())
    size = round(objective.examples / len(objective.batches))
    return _noise_result(float(mean @ mean), noise2, size, None, "batches", objective.examples)


def _noise_result(
    mean_norm2: float, noise2: float, size: int, variance: float | None, method: str, count: int
) -> GradientNoise:
    norm, noise = math.sqrt(mean_norm2), math.sqrt(max(noise2, 0.0))
    snr = norm / noise if noise > 0 else math.inf
    scale = variance / mean_norm2 if variance is not None and mean_norm2 > 0 else None
    return GradientNoise(norm, noise, size, snr, variance, scale, method, count)


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


def hessian_vector_product(
    model: nn.Module, loss: LossFn, data: Any, vector: Tensor, *, dtype: Any = None
) -> Tensor:
    """``H v`` for one flat vector ``v`` over the trainable parameters (see :class:`Objective`)."""
    with evaluation_mode(model):
        objective = Objective(model, loss, data, dtype=dtype)
        if vector.numel() != objective.dimension:
            raise InputError(
                f"vector must have one entry per trainable parameter ({objective.dimension}), "
                f"got {vector.numel()}"
            )
        return objective.hvp(vector.reshape(-1))


def dense_hessian(model: nn.Module, loss: LossFn, data: Any, *, dtype: Any = None) -> Tensor:
    """The full Hessian matrix (d × d, d products): for small models and checks."""
    with evaluation_mode(model):
        return Objective(model, loss, data, dtype=dtype).dense_hessian()


__all__ = [
    "CurvatureReport",
    "GradientNoise",
    "Objective",
    "SpectralDensity",
    "Spectrum",
    "TraceEstimate",
    "analyze",
    "as_batches",
    "dense_hessian",
    "density",
    "eigenvalues",
    "evaluation_mode",
    "gradient_noise",
    "hessian_vector_product",
    "trace",
]
