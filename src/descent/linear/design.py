"""The design matrix of LinearRegressionGD, Φ = [1, (φ(X) − c) T]: its size check, the one pass
that gives its statistics, its conditioning (the centering c and the column scaling or
whitening T, chosen from the k × k statistics when there are any) and its assembly."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_array, validate_data

from descent.data.tables import available_memory, format_bytes
from descent.errors import InputError
from descent.linear.basis import Basis
from descent.linear.solve import Moments, moments

# Keep ΦᵀΦ (k × k) only up to this many columns (128 MiB in float64).
MAX_GRAM = 4096
#: The most basis functions a fit accepts, whatever the memory (a basis is also refused when its
#: design matrix or ΦᵀΦ would not fit in the memory available).
MAX_BASIS_FUNCTIONS = 1_000_000
#: A fit needing at most this many bytes skips the operating system's free-memory figure
#: (reading /proc/meminfo costs more than a small fit's statistics).
MEMORY_CHECK_FROM = 1 << 20
#: Bytes of basis features evaluated at once in the blocked pass over the rows.
BLOCK_BYTES = 8 << 20

Conditioning = tuple[torch.Tensor | None, torch.Tensor | None]  # (center c, transform T)


#: The dtypes a fit keeps as they are (scikit-learn converts anything else to float64).
FIT_DTYPES = (np.float64, np.float32)


def validated(estimator: object, X: Any, y: Any, *, reset: bool = True) -> tuple[Any, Any]:
    """(X, y) as scikit-learn's ``validate_data(estimator, X, y, y_numeric=True,
    dtype=[float64, float32], ensure_all_finite=False)`` returns them (X's finiteness is the
    fit's own check: :func:`check_inputs`, :func:`checked_moments`).

    Arrays already in that form (a 2-D float ndarray with at least one row and one column, a
    1-D float y of the same length with every value finite) come back as they are, with the
    estimator's ``n_features_in_`` set (and a previous fit's ``feature_names_in_`` dropped)
    exactly as validate_data sets them: its generic dispatch over DataFrame libraries costs
    about 0.12 ms, a third of a one-epoch fit on 442 rows. Anything else goes through
    validate_data itself, with its conversions and messages."""
    ready = (
        type(X) is np.ndarray
        and type(y) is np.ndarray
        and X.ndim == 2
        and y.ndim == 1
        and X.dtype in FIT_DTYPES
        and y.dtype in FIT_DTYPES
        and X.shape[0] == y.shape[0] >= 1
        and X.shape[1] >= 1
        and bool(np.isfinite(y).all())
    )
    if ready and reset:
        estimator.__dict__.pop("feature_names_in_", None)
        estimator.n_features_in_ = X.shape[1]  # type: ignore[attr-defined]
        return X, y
    # without reset: as they are when fitted on arrays with X's width (else validate_data says)
    named = getattr(estimator, "feature_names_in_", None) is not None
    if ready and not named and getattr(estimator, "n_features_in_", None) == X.shape[1]:
        return X, y
    return validate_data(
        estimator, X, y, y_numeric=True, dtype=list(FIT_DTYPES), reset=reset,
        ensure_all_finite=False,
    )  # fmt: skip


def checked_size(basis: Basis, spec: object, X: np.ndarray, mode: str) -> int:
    """k, refusing up front a basis whose size or memory is beyond the stated limits
    (``spec`` is the basis as the user gave it, for the message)."""
    n, p = X.shape
    k = basis.size(p, n)
    if k is None:  # a custom basis: one row tells its width
        k = int(basis.fit(X[:1]).checked_features(X[:1]).shape[1])
    described = f"basis {spec!r} on {p} input feature{'s' * (p != 1)}"
    if k > MAX_BASIS_FUNCTIONS:
        raise InputError(
            f"{described} has {k:,} functions, more than the {MAX_BASIS_FUNCTIONS:,} "
            "LinearRegressionGD accepts; choose a smaller degree or fewer centers"
        )
    keeps_gram = k + 1 <= MAX_GRAM
    needed = 3 * 8 * (k + 1) ** 2 if keeps_gram else 0  # ΦᵀΦ and its conditioning
    if mode != "full" or not keeps_gram:
        needed += 8 * n * (k + 1)  # the design matrix itself
    if needed <= MEMORY_CHECK_FROM:  # what any machine running Python has free
        return k
    available = available_memory()
    if needed > available:
        raise InputError(
            f"{described} has {k:,} functions; fitting it to {n:,} examples needs about "
            f"{format_bytes(needed)}, more than the {format_bytes(available)} of memory "
            "available; choose a smaller degree or fewer centers"
        )
    return k


def blocks(basis: Basis, X: np.ndarray, y: np.ndarray) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
    """(φ(X_b), y_b) over row blocks of about BLOCK_BYTES of features each: the basis is
    evaluated block by block, so its n × k matrix is never held whole."""
    k = max(basis.size(X.shape[1], len(X)) or 1, 1)
    rows = max(256, BLOCK_BYTES // (8 * k))
    for start in range(0, len(X), rows):
        yield (
            basis.checked_features(X[start : start + rows]),
            np.array(y[start : start + rows], dtype=np.float64),  # writable for torch
        )


def raw_moments(basis: Basis, X: np.ndarray, y: np.ndarray) -> Moments:
    """The raw features' statistics in one pass: by the basis' own shorter route when it has
    one (the identity: one product over X; one input's powers: power sums), else block by
    block."""
    shortcut = basis.moments(X, y)
    return shortcut if shortcut is not None else moments(blocks(basis, X, y))


def check_inputs(basis: Basis, k: int, X: np.ndarray, estimator: object) -> None:
    """X's finiteness, checked before the basis is fitted, where the statistics will not tell
    (:func:`reads_finiteness`); otherwise :func:`checked_moments` reads it from them."""
    if not reads_finiteness(basis, k):
        check_finite(X, estimator)


def checked_moments(basis: Basis, X: np.ndarray, y: np.ndarray, estimator: object) -> Moments:
    """:func:`raw_moments`, with X's finiteness read from them where the basis shows its inputs
    (:func:`check_inputs` checked X before otherwise)."""
    stats = raw_moments(basis, X, y)
    if basis.shows_inputs:
        check_finite(X, estimator, stats)
    return stats


def target(y: np.ndarray) -> torch.Tensor:
    """y as a float64 tensor of its own (a numpy copy: torch.tensor is slow), made only where
    rows are read (8 MB and about 3 ms on 1,000,000 rows)."""
    return torch.from_numpy(np.array(y, dtype=np.float64))


def reads_finiteness(basis: Basis, k: int) -> bool:
    """Whether the fit reads X's finiteness from its k × k statistics (:func:`check_finite`)
    rather than from a pass over X: when the basis shows its inputs and the statistics are
    kept."""
    return basis.shows_inputs and k + 1 <= MAX_GRAM


def check_finite(X: np.ndarray, estimator: object, stats: Moments | None = None) -> None:
    """Refuse an X with a NaN or an infinity, with scikit-learn's message. Given the statistics
    of a basis that shows its inputs, read it from them: a non-finite xᵢⱼ makes Σ xⱼ² non-finite,
    so the pass scikit-learn's check makes over X (0.05–0.08 s on 1,000,000 × 100) is needed
    only when they show one; when X is finite after all, its squares overflowed. (y is checked
    by scikit-learn; Xᵀy can still overflow with a finite X and y: said as such.)"""
    parts = (stats.sums, stats.cross) if stats is not None else ()
    if stats is not None and all(np.isfinite(part.numpy()).all() for part in parts):
        if not (np.isfinite(stats.moment.numpy()).all() and math.isfinite(stats.y_squares)):
            raise InputError(
                "Xᵀy or yᵀy overflows float64 although X and y are finite; rescale y (or X) "
                "before fitting"
            )
        return
    check_array(X, dtype=None, ensure_2d=False, input_name="X", estimator=estimator)
    if stats is not None:
        raise InputError(
            "X is finite but the sums of its squares (or of the basis' powers) overflow float64; "
            "rescale X, e.g. divide each column by its spread, before fitting"
        )


def from_statistics(stats: Moments, standardize: bool | str) -> Conditioning | None:
    """(c, T) from the k × k statistics: column means and 1/spread ("columns"), or the
    whitening of the centered cross product ("orthonormal"); None when that is too
    ill-conditioned to do from k × k statistics (then :func:`from_data`)."""
    if standardize in (True, "columns"):
        variance = np.diagonal(stats.centered_cross_array()) / stats.n
        return torch.from_numpy(stats.sums.numpy() / stats.n), _inverse_spread(variance)
    if standardize == "orthonormal":
        transform = _whitening_from(stats)
        return None if transform is None else (stats.mean, transform)
    return None, None


def from_data(raw: torch.Tensor, standardize: bool | str) -> Conditioning:
    """(c, T) from the features themselves (no k × k statistics, or too ill-conditioned)."""
    if standardize is False:
        return None, None
    center = raw.mean(dim=0)
    if standardize == "orthonormal":
        return center, _whitening(raw, center)
    return center, _inverse_spread((raw - center).square().mean(dim=0).numpy())


def assemble(features: torch.Tensor, conditioning: Conditioning) -> torch.Tensor:
    """The design matrix in one allocation: the bias column, then the conditioned features
    (numpy on views of the tensors: the same arithmetic, without torch's dispatch per operation,
    which is most of the cost on a small data set). The memory is torch's: numpy asks the kernel
    for huge pages on large arrays, and on a machine whose memory is fragmented the first touch
    of 800 MB then waited 1.85 s for compaction (0.2 s with torch's allocation)."""
    center, transform = conditioning
    raw = features.numpy()
    n = len(raw)
    if transform is not None and transform.dim() == 2:  # orthonormal: mixes
        # (φ − c) T = φ T − c T
        t = transform.numpy()
        design = torch.empty(n, t.shape[1] + 1, dtype=torch.float64)
        Phi = design.numpy()
        np.matmul(raw, t, out=Phi[:, 1:])
        Phi[:, 1:] -= center.numpy() @ t  # type: ignore[union-attr]
    else:
        design = torch.empty(n, raw.shape[1] + 1, dtype=torch.float64)
        Phi = design.numpy()
        if center is None:
            Phi[:, 1:] = raw
        else:  # columns: scales each one
            np.subtract(raw, center.numpy(), out=Phi[:, 1:])
            Phi[:, 1:] *= transform.numpy()  # type: ignore[union-attr]
    Phi[:, 0] = 1.0
    return design


def unconditioned(w: torch.Tensor, conditioning: Conditioning) -> torch.Tensor:
    """The weights of the raw basis [1, φ] that predict what w predicts on the conditioned one."""
    center, transform = conditioning
    if transform is None:
        return w.clone()
    weights, t = w.detach().numpy(), transform.numpy()
    raw = np.empty(t.shape[0] + 1)
    raw[1:] = t * weights[1:] if t.ndim == 1 else t @ weights[1:]
    raw[0] = weights[0] - center.numpy() @ raw[1:]  # type: ignore[union-attr]
    return torch.from_numpy(raw)


def _inverse_spread(variance: np.ndarray) -> torch.Tensor:
    """1 / standard deviation per column; 1 for a constant column (nothing to scale). numpy:
    a k-vector's few operations cost a third of torch's dispatch in a small fit."""
    spread = np.sqrt(np.maximum(variance, 0.0))
    return torch.from_numpy(1.0 / np.where(spread > 0, spread, 1.0))


def _whitening_from(stats: Moments) -> torch.Tensor | None:
    """T such that the columns of (F − μ) T are orthogonal with norm √n, like the bias column,
    so that ΦᵀΦ = n·I, from the eigendecomposition of the centered k × k cross product; None
    when it is too ill-conditioned for that (then :func:`_whitening` works on the data)."""
    eigenvalues, vectors = torch.linalg.eigh(stats.centered_cross())
    top = float(eigenvalues[-1]) if len(eigenvalues) else 0.0
    if top > 0 and float(eigenvalues[0]) > 1e-8 * top:
        return vectors * (math.sqrt(stats.n) / eigenvalues.sqrt())
    return None


def _whitening(raw: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    """The same T from the data itself: the SVD of the centered features (exact for any
    conditioning; directions the data does not span are dropped)."""
    n = len(raw)
    _, singular, vh = torch.linalg.svd(raw - center, full_matrices=False)
    keep = singular > singular.max() * n * torch.finfo(torch.float64).eps
    return vh[keep].T * (math.sqrt(n) / singular[keep])
