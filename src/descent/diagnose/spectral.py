"""The Hessian's trace by Hutchinson's estimator (Hutchinson 1990: ``tr H = E[zᵀ H z]`` for
Rademacher ``z``, with a standard error and a stopping rule) and its spectral density by
stochastic Lanczos quadrature (Golub & Meurant 2010; Ghorbani, Krishnan & Xiao, ICML 2019).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from descent import validate
from descent.diagnose.hessian import LossFn, Objective, evaluation_mode
from descent.diagnose.lanczos import _rademacher, _ritz, lanczos_tridiagonal
from descent.errors import InputError

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
        from descent.plotting import pyplot, save_figure

        plt = pyplot()
        grid, values = self.curve(sigma=sigma)
        figure, axes = plt.subplots(figsize=(6, 4))
        axes.semilogy(grid.numpy(), values.clamp_min(1e-12).numpy())
        axes.set_xlabel("eigenvalue")
        axes.set_ylabel("density")
        axes.set_title(title or "Hessian eigenvalue density (SLQ)")
        figure.tight_layout()
        return save_figure(figure, path)


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
