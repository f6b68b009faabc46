"""Basis functions φ: each maps an (n, p) input to an (n, k+1) design matrix Φ whose first column
is the bias φ₀ = 1, so the model is ŷ = Σⱼ wⱼ φⱼ(x) = Φw."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from descent import validate
from descent.errors import InputError
from descent.linear import compiled
from descent.linear.solve import Moments

ArrayLike = Any


def as_tensor(X: ArrayLike) -> Tensor:
    """A float64 (n, p) tensor from an array, a list or a tensor."""
    if isinstance(X, Tensor):
        tensor = X.to(torch.float64)
    else:
        array = np.asarray(X, dtype=np.float64)
        # Shares memory when it can (nothing here writes to the input); a read-only array (a
        # memory map) is copied, since torch tensors cannot be read-only.
        tensor = torch.from_numpy(array if array.flags.writeable else array.copy())
    if tensor.dim() == 1:
        tensor = tensor.unsqueeze(1)
    if tensor.dim() != 2:
        raise InputError(
            f"inputs must be 2-D (n examples × p features), got shape {tuple(tensor.shape)}"
        )
    return tensor


def with_bias(features: Tensor) -> Tensor:
    return torch.cat([torch.ones(len(features), 1, dtype=features.dtype), features], dim=1)


class Basis:
    """Base class: ``fit(X)`` learns what the basis needs from data (centers, ranges), then
    ``transform(X)`` (or calling the basis) returns Φ with the bias column first."""

    #: Whether every input column is itself one of the features (x₁ … x_p among φ(x)): then a
    #: NaN or an infinity in X shows in the statistics (Σ xⱼ² is not finite), and the fit reads
    #: X's finiteness from them instead of from a pass of its own (design.check_finite).
    shows_inputs = False

    def fit(self, X: ArrayLike) -> Basis:
        shape = np.shape(X)
        self.n_inputs_ = shape[1] if len(shape) == 2 else 1
        return self

    def features(self, X: Tensor) -> Tensor:
        """The k basis functions (without the bias) at X."""
        raise NotImplementedError

    def size(self, n_inputs: int, n_examples: int) -> int | None:
        """k, the number of basis functions on ``n_inputs`` features, counted without building
        them (None: known only by evaluating the basis)."""
        return None

    def moments(self, X: np.ndarray, y: np.ndarray) -> Moments | None:
        """FᵀF, Σ F and Fᵀy of this basis' features F at X by a shorter route than evaluating F
        block by block, where the basis has one (None: it has not)."""
        return None

    def transform(self, X: ArrayLike) -> Tensor:
        return with_bias(self.checked_features(X))

    def checked_features(self, X: ArrayLike) -> Tensor:
        """The k basis functions at X (no bias column), after checking X against the fit."""
        return self.features(self.checked_inputs(X))

    def checked_inputs(self, X: ArrayLike) -> Tensor:
        """X as a float64 (n, p) tensor, after checking it against the fit."""
        tensor = as_tensor(X)
        if not hasattr(self, "n_inputs_"):
            raise InputError(f"{type(self).__name__} is not fitted: call fit(X) first")
        if tensor.shape[1] != self.n_inputs_:
            raise InputError(
                f"{type(self).__name__} was fitted on {self.n_inputs_} input features, "
                f"got {tensor.shape[1]}"
            )
        return tensor

    def fit_transform(self, X: ArrayLike) -> Tensor:
        return self.fit(X).transform(X)

    def __call__(self, X: ArrayLike) -> Tensor:
        return self.transform(X)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({params})"

    def _params(self) -> dict[str, Any]:
        return {}

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._params() == other._params()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(self._params())))


#: Elements of x per block of the power sums (in the second-level cache with its power).
_POWER_BLOCK = 65536


class Identity(Basis):
    """φ(x) = (1, x₁, …, x_p): plain linear regression."""

    shows_inputs = True

    def size(self, n_inputs: int, n_examples: int) -> int:
        return n_inputs

    def features(self, X: Tensor) -> Tensor:
        return X

    def moments(self, X: np.ndarray, y: np.ndarray) -> Moments:
        """X is its own feature matrix, already in memory: one product over all of it (one
        BLAS call parallelizes better than one per block, and there is nothing to evaluate),
        XᵀX by numpy, whose ``A.T @ A`` is a syrk (half a gemm's flops): on a quiet 2-core
        machine it took 0.19 s on 1,000,000 × 100 against torch's gemm's 0.32 s, and 0.014 s
        against 0.042 s on 100,000 × 80 (benchmarks/linear_fit.py prints both)."""
        array = self.checked_features(X).numpy()
        target = np.asarray(y, dtype=np.float64)
        # Xᵀy and Xᵀ1 (the column sums) in one product: one read of X for both (a gemm on two
        # columns costs about what one gemv does: memory-bound on X).
        with np.errstate(invalid="ignore", over="ignore"):  # a NaN in X: design.check_finite
            weighted = array.T @ np.stack([target, np.ones_like(target)]).T
            cross = array.T @ array
            y_squares = float(target @ target)
        return Moments(
            len(array),
            torch.from_numpy(weighted[:, 1].copy()),
            torch.from_numpy(cross),
            torch.from_numpy(weighted[:, 0].copy()),
            float(target.sum()),
            y_squares,
        )


class Polynomial(Basis):
    """Monomials up to total degree d: with interactions every x_{i1}·…·x_{im} (m ≤ d), as
    scikit-learn's PolynomialFeatures; without, only the powers x_j^m of single features."""

    shows_inputs = True  # the degree-1 terms

    def __init__(self, degree: int = 2, interactions: bool = True) -> None:
        if isinstance(degree, bool) or not isinstance(degree, int) or degree < 1:
            raise InputError(f"polynomial degree must be an integer ≥ 1, got {degree!r}")
        self.degree = degree
        self.interactions = interactions

    def _params(self) -> dict[str, Any]:
        return {"degree": self.degree, "interactions": self.interactions}

    def size(self, n_inputs: int, n_examples: int) -> int:
        # C(p + d, d) − 1 monomials of degree 1…d in p variables (or p·d powers alone)
        if not self.interactions:
            return n_inputs * self.degree
        return math.comb(n_inputs + self.degree, self.degree) - 1

    def terms(self) -> list[tuple[int, ...]]:
        """Each basis function as the tuple of input indices multiplied together."""
        inputs = range(self.n_inputs_)
        if not self.interactions:
            return [(j,) * m for m in range(1, self.degree + 1) for j in inputs]
        return [
            combo
            for m in range(1, self.degree + 1)
            for combo in itertools.combinations_with_replacement(inputs, m)
        ]

    def moments(self, X: np.ndarray, y: np.ndarray) -> Moments | None:
        """For one input the features are x, x², …, x^d, so (FᵀF)ᵢⱼ = Σ x^(i+j): the statistics
        are the power sums Σ xᵐ (m ≤ 2d) and Σ xᵐ y (m ≤ d), read from x and y in one pass (C,
        or numpy on blocks of contiguous power rows without the kernels), without the n × d
        design (whose column-by-column construction cost more than the products: strided
        writes)."""
        if self.n_inputs_ != 1:
            return None
        x = self.checked_inputs(X)[:, 0].contiguous().numpy()
        target = np.ascontiguousarray(y, dtype=np.float64)
        d = self.degree
        sums, weighted = np.zeros(2 * d + 1), np.zeros(d + 1)  # Σ xᵐ (m ≤ 2d), Σ xᵐ y (m ≤ d)
        power_sums = compiled.entry("power_sums_f64") if d <= compiled.MAX_POWER else None
        if power_sums is not None:  # one pass over x and y, the powers in registers
            power_sums(
                x.ctypes.data, target.ctypes.data, len(x), d, sums.ctypes.data,
                weighted.ctypes.data,
            )  # fmt: skip
        else:  # numpy: the powers as the rows of a (2d+1) × b block, then two BLAS products
            self._numpy_power_sums(x, target, sums, weighted)
        indices = np.arange(1, d + 1)
        return Moments(
            len(x),
            torch.from_numpy(sums[1 : d + 1].copy()),
            torch.from_numpy(sums[indices[:, None] + indices[None, :]]),  # Hankel: Σ x^(i+j)
            torch.from_numpy(weighted[1:].copy()),
            float(weighted[0]),
            float(target @ target),
        )

    def _numpy_power_sums(
        self, x: np.ndarray, target: np.ndarray, sums: np.ndarray, weighted: np.ndarray
    ) -> None:
        """Σ xᵐ (m ≤ 2d) into ``sums`` and Σ xᵐ y (m ≤ d) into ``weighted`` without the C
        kernels: the powers as the rows of a (2d+1) × b block, then two BLAS products."""
        d = self.degree
        with np.errstate(invalid="ignore", over="ignore"):  # a NaN in X: design.check_finite
            powers = np.empty((2 * d + 1, min(_POWER_BLOCK, len(x))))
            for start in range(0, len(x), _POWER_BLOCK):
                block = x[start : start + _POWER_BLOCK]
                V = powers[:, : len(block)]
                V[0] = 1.0
                for m in range(1, 2 * d + 1):
                    np.multiply(V[m - 1], block, out=V[m])
                sums += V @ np.ones(len(block))
                weighted += V[: d + 1] @ target[start : start + _POWER_BLOCK]

    def features(self, X: Tensor) -> Tensor:
        terms = self.terms()
        out = torch.empty(len(X), len(terms), dtype=torch.float64)
        # Each monomial is a lower one times one input: one multiplication per column.
        column_of: dict[tuple[int, ...], int] = {}
        for index, term in enumerate(terms):
            if len(term) == 1:
                out[:, index] = X[:, term[0]]
            else:
                torch.mul(out[:, column_of[term[:-1]]], X[:, term[-1]], out=out[:, index])
            column_of[term] = index
        return out


class RBF(Basis):
    """Gaussian radial basis functions φⱼ(x) = exp(−‖x − cⱼ‖² / (2 s²)).

    ``centers`` is a number k (chosen from the data at fit: evenly spaced quantiles for one input,
    a seeded random sample of rows otherwise) or an explicit (k, p) array. ``width`` s defaults to
    the median distance between the centers.
    """

    def __init__(self, centers: int | ArrayLike = 10, width: float | None = None, seed: int = 0):
        if isinstance(centers, int) and centers < 1:
            raise InputError(f"RBF needs at least one center, got {centers!r}")
        if width is not None:
            validate.positive(width, "RBF width")
        self.centers = centers
        self.width = width
        self.seed = seed

    def _params(self) -> dict[str, Any]:
        centers = (
            self.centers if isinstance(self.centers, int) else np.asarray(self.centers).tolist()
        )
        return {"centers": centers, "width": self.width, "seed": self.seed}

    def size(self, n_inputs: int, n_examples: int) -> int:
        if not isinstance(self.centers, int):
            return len(np.asarray(self.centers))
        return self.centers if n_inputs == 1 else min(self.centers, n_examples)

    def fit(self, X: ArrayLike) -> RBF:
        super().fit(X)
        data = as_tensor(X)
        if isinstance(self.centers, int):
            k = self.centers
            if data.shape[1] == 1:
                levels = torch.linspace(0, 1, k + 2, dtype=torch.float64)[1:-1]
                self.centers_ = torch.quantile(data[:, 0], levels).unsqueeze(1)
            else:
                generator = torch.Generator().manual_seed(self.seed)
                rows = torch.randperm(len(data), generator=generator)[: min(k, len(data))]
                self.centers_ = data[rows].clone()
        else:
            self.centers_ = as_tensor(self.centers)
            if self.centers_.shape[1] != data.shape[1]:
                raise InputError(
                    f"RBF centers have {self.centers_.shape[1]} coordinates, the inputs "
                    f"{data.shape[1]}"
                )
        if self.width is not None:
            self.width_ = float(self.width)
        else:
            distances = torch.cdist(self.centers_, self.centers_)
            upper = distances[torch.triu(torch.ones_like(distances, dtype=torch.bool), 1)]
            positive = upper[upper > 0]
            self.width_ = float(positive.median()) if len(positive) else 1.0
        return self

    def features(self, X: Tensor) -> Tensor:
        squared = torch.cdist(X, self.centers_) ** 2
        return torch.exp(-squared / (2 * self.width_**2))


class Sigmoid(Basis):
    """Logistic sigmoids per input feature: φ_{j,m}(x) = σ((x_j − c_{j,m}) / s_j), with k
    centers per feature at evenly spaced quantiles and s_j the feature's spread / k."""

    def __init__(self, centers: int = 10) -> None:
        validate.positive_int(centers, "the sigmoid basis's number of centers")
        self.centers = centers

    def _params(self) -> dict[str, Any]:
        return {"centers": self.centers}

    def size(self, n_inputs: int, n_examples: int) -> int:
        return n_inputs * self.centers

    def fit(self, X: ArrayLike) -> Sigmoid:
        super().fit(X)
        data = as_tensor(X)
        levels = torch.linspace(0, 1, self.centers + 2, dtype=torch.float64)[1:-1]
        self.centers_ = torch.quantile(data, levels, dim=0).T  # (p, k)
        spread = data.max(0).values - data.min(0).values
        self.scales_ = torch.where(spread > 0, spread / self.centers, torch.ones_like(spread))
        return self

    def features(self, X: Tensor) -> Tensor:
        z = (X.unsqueeze(2) - self.centers_.unsqueeze(0)) / self.scales_.view(1, -1, 1)
        return torch.sigmoid(z).reshape(len(X), -1)


class Fourier(Basis):
    """sin(2πm x_j / P_j) and cos(2πm x_j / P_j) for m = 1…M per feature, P_j the feature's range
    at fit (or ``period``)."""

    def __init__(self, frequencies: int = 5, period: float | None = None) -> None:
        validate.positive_int(frequencies, "the fourier basis's frequencies")
        if period is not None:
            validate.positive(period, "fourier period")
        self.frequencies = frequencies
        self.period = period

    def _params(self) -> dict[str, Any]:
        return {"frequencies": self.frequencies, "period": self.period}

    def size(self, n_inputs: int, n_examples: int) -> int:
        return 2 * n_inputs * self.frequencies

    def fit(self, X: ArrayLike) -> Fourier:
        super().fit(X)
        data = as_tensor(X)
        if self.period is not None:
            self.periods_ = torch.full((data.shape[1],), float(self.period), dtype=torch.float64)
        else:
            spread = data.max(0).values - data.min(0).values
            self.periods_ = torch.where(spread > 0, spread, torch.ones_like(spread))
        return self

    def features(self, X: Tensor) -> Tensor:
        m = torch.arange(1, self.frequencies + 1, dtype=torch.float64)
        angles = 2 * math.pi * X.unsqueeze(2) * m / self.periods_.view(1, -1, 1)
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=2).reshape(len(X), -1)


class Custom(Basis):
    """Any callable mapping an (n, p) float64 tensor to (n, k) features; the bias is added."""

    def __init__(self, function: Callable[[Tensor], Tensor]) -> None:
        if not callable(function):
            raise InputError(f"a custom basis needs a callable, got {function!r}")
        self.function = function

    def _params(self) -> dict[str, Any]:
        return {"function": self.function}

    def features(self, X: Tensor) -> Tensor:
        out = torch.as_tensor(self.function(X), dtype=torch.float64)
        if out.dim() == 1:
            out = out.unsqueeze(1)
        if out.dim() != 2 or len(out) != len(X):
            raise InputError(
                f"the custom basis function returned shape {tuple(out.shape)}; it must return "
                f"({len(X)}, k)"
            )
        return out


BASES: dict[str, Callable[..., Basis]] = {
    "identity": Identity,
    "linear": Identity,
    "poly": Polynomial,
    "powers": lambda degree=2: Polynomial(degree, interactions=False),
    "rbf": RBF,
    "sigmoid": Sigmoid,
    "fourier": Fourier,
}


def parse_basis(spec: str | Basis | Callable[[Tensor], Tensor]) -> Basis:
    """ "identity", "poly:3", "powers:3" (no interactions), "rbf:10", "sigmoid:8", "fourier:5",
    a Basis, or a callable (a custom basis)."""
    if isinstance(spec, Basis):
        return spec
    if callable(spec):
        return Custom(spec)
    if not isinstance(spec, str):
        raise InputError(f"basis must be a name like 'poly:3', a Basis or a callable, got {spec!r}")
    name, _, argument = spec.partition(":")
    if name not in BASES:
        raise InputError(
            f"unknown basis {spec!r}; accepted: identity, poly:D, powers:D, rbf:K, sigmoid:K, "
            "fourier:M, or a callable"
        )
    if not argument:
        return BASES[name]()
    try:
        number = int(argument)
    except ValueError:
        raise InputError(f"basis {spec!r}: '{argument}' is not an integer") from None
    if name in ("identity", "linear"):
        raise InputError(f"basis {name!r} takes no argument, got {spec!r}")
    return BASES[name](number)
