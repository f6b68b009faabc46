"""LinearRegressionGD: the lecture's linear regression over basis functions as a scikit-learn
estimator, trained by gradient descent in any of the three batch modes with any update rule."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from descent import optim
from descent.data.batches import MODES, Batches
from descent.linear.basis import parse_basis
from descent.linear.solve import Gram, least_squares, lipschitz_step, loss
from descent.schedules import Schedule, from_dict

# Rules for which "auto" means 1/L; the adaptive rules normalize the gradient themselves, and for
# them "auto" means their own default rate.
_LIPSCHITZ_RULES = ("sgd", "momentum", "nesterov")
# Keep ΦᵀΦ (k × k) only up to this many columns (128 MiB in float64).
_MAX_GRAM = 4096


@dataclass(frozen=True)
class FitReport:
    """How a fit ended, beside the exact optimum."""

    final_loss: float
    optimum_loss: float
    epochs: int
    seconds: float
    converged: bool

    @property
    def relative_gap(self) -> float:
        """(J − J*) / J*: 0 at the optimum."""
        if self.optimum_loss == 0:
            return self.final_loss
        return (self.final_loss - self.optimum_loss) / self.optimum_loss


class LinearRegressionGD(RegressorMixin, BaseEstimator):
    """ŷ = Σⱼ wⱼ φⱼ(x), fitted by gradient descent on J(w) = Σᵢ (yⁱ − ŷⁱ)² from w = 0.

    Defaults follow the lecture: the identity basis with a bias, full-batch gradient descent,
    weights at 0, ``learning_rate="auto"``, so ``LinearRegressionGD().fit(X, y)`` reaches the
    least-squares optimum.

    Args:
        basis: "identity", "poly:D", "powers:D", "rbf:K", "sigmoid:K", "fourier:M", a
            :class:`~descent.linear.basis.Basis`, or a callable returning the k features.
        mode: "full" (gradient descent), "sgd" (one example) or "minibatch" (``batch_size``),
            reshuffled every epoch.
        batch_size: B for "minibatch" (the lecture's 50).
        optimizer: any descent rule by name ("sgd", "momentum", "adam", …).
        optimizer_params: the rule's other hyperparameters (momentum, betas, …).
        learning_rate: a float, a schedule (object or dict), or "auto": 1/L with L the Lipschitz
            constant of the batch gradient (largest eigenvalue of ΦᵀΦ by power iteration) for
            sgd, momentum and nesterov, the rule's default rate for the adaptive rules.
        loss_reduction: "sum" (the lecture's J) or "mean" (J / n, and per batch J_b / |b|).
        init: "zeros" (the lecture's) or "normal" (N(0, 0.01²), seeded).
        standardize: how the basis columns (all but the bias) are conditioned before descending;
            the fitted function space is the same, and ``coef_`` is always reported for the
            unscaled basis. True or "columns" (the default): center each column and scale it to
            unit variance (a diagonal preconditioner). "orthonormal": orthonormalize the centered
            columns over the training data (PCA whitening; rank-deficient directions dropped),
            the remedy for bases like high-degree polynomials whose columns are nearly collinear:
            Φᵀ Φ becomes n·I, so a 1/L step reaches the optimum in one full-batch epoch.
            False: descend on Φ as it is (the lecture's raw form).
        max_epochs: the budget (one epoch = every example seen once).
        tol: stop when ‖∇J(w)‖ ≤ tol · ‖∇J(w₀)‖ (full-batch gradient, checked once per epoch).
        tol_loss: stop when the loss changed by ≤ tol_loss relative over an epoch (0: off).
        random_state: seeds the shuffling and a "normal" initialization.

    Attributes:
        coef_: weights of the basis functions φ₁…φ_k; ``intercept_``: w₀ (the bias weight).
        weights_: all k+1 weights, bias first. n_iter_: epochs run. loss_history_: J after each
        epoch (J(w₀) first, computed from ΦᵀΦ in full-batch mode). converged_: a stopping rule
        held. fit_seconds_: wall time of fit. ``fit_report(X, y)`` compares with the optimum.
    """

    def __init__(
        self,
        basis: Any = "identity",
        mode: str = "full",
        batch_size: int = 50,
        optimizer: str = "sgd",
        optimizer_params: dict[str, Any] | None = None,
        learning_rate: Any = "auto",
        loss_reduction: str = "sum",
        init: str = "zeros",
        standardize: bool | str = True,
        max_epochs: int = 10_000,
        tol: float = 1e-10,
        tol_loss: float = 0.0,
        random_state: Any = None,
    ) -> None:
        self.basis = basis
        self.mode = mode
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.optimizer_params = optimizer_params
        self.learning_rate = learning_rate
        self.loss_reduction = loss_reduction
        self.init = init
        self.standardize = standardize
        self.max_epochs = max_epochs
        self.tol = tol
        self.tol_loss = tol_loss
        self.random_state = random_state

    # -- validation ------------------------------------------------------------------------------

    def _check_params(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.optimizer not in optim.OPTIMIZERS:
            raise ValueError(
                f"unknown optimizer {self.optimizer!r}; accepted: {', '.join(optim.OPTIMIZERS)}"
            )
        if self.loss_reduction not in ("sum", "mean"):
            raise ValueError(f"loss_reduction must be 'sum' or 'mean', got {self.loss_reduction!r}")
        if self.init not in ("zeros", "normal"):
            raise ValueError(f"init must be 'zeros' or 'normal', got {self.init!r}")
        for name in ("max_epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("tol", "tol_loss"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value >= 0:
                raise ValueError(f"{name} must be a float ≥ 0, got {value!r}")
        if self.standardize not in (True, False, "columns", "orthonormal"):
            raise ValueError(
                f"standardize must be True, False, 'columns' or 'orthonormal', got "
                f"{self.standardize!r}"
            )
        lr = self.learning_rate
        if isinstance(lr, str) and lr != "auto":
            raise ValueError(f"learning_rate must be 'auto', a float or a schedule, got {lr!r}")

    # -- the design matrix -------------------------------------------------------------------------

    def _design(self, X: np.ndarray) -> torch.Tensor:
        """Φ for X with the fitted basis and conditioning: [1, (φ(X) − center) · transform]."""
        return self._assemble(self.basis_.checked_features(X))

    def _assemble(self, features: torch.Tensor) -> torch.Tensor:
        """The design matrix in one allocation: the bias column, then the conditioned features."""
        n = len(features)
        if self.transform_ is not None and self.transform_.dim() == 2:  # orthonormal: mixes
            # (φ − c) T = φ T − c T, in one fused multiply-add
            shift = -(self.center_ @ self.transform_)
            Phi = torch.empty(n, self.transform_.shape[1] + 1, dtype=torch.float64)
            Phi[:, 1:] = torch.addmm(shift, features, self.transform_)
        else:
            Phi = torch.empty(n, features.shape[1] + 1, dtype=torch.float64)
            if self.transform_ is None:
                Phi[:, 1:] = features
            else:  # columns: scales each one
                torch.sub(features, self.center_, out=Phi[:, 1:])
                Phi[:, 1:].mul_(self.transform_)
        Phi[:, 0] = 1.0
        return Phi

    def _prepare(
        self, X: np.ndarray, y: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Fit the basis and the conditioning; return Φ, y and ΦᵀΦ (None when k is too large to
        keep a k × k matrix). The data is read a fixed, small number of times: one pass for the
        column means, one to write Φ, one matrix product for ΦᵀΦ (whose diagonal gives the
        column variances), one in-place scaling."""
        self.basis_ = copy.deepcopy(parse_basis(self.basis)).fit(X)
        raw = self.basis_.checked_features(X)
        n, k = raw.shape
        keep_gram = k + 1 <= _MAX_GRAM
        self.center_, self.transform_ = None, None
        if self.standardize in (True, "columns"):
            self.center_ = (torch.ones(n, dtype=torch.float64) @ raw) / n
            self.transform_ = torch.ones(k, dtype=torch.float64)
            Phi = self._assemble(raw)  # centered, not yet scaled
            gram = Phi.T @ Phi if keep_gram else None
            variance = (gram.diagonal()[1:] if gram is not None else (Phi[:, 1:] ** 2).sum(0)) / n
            spread = variance.sqrt()
            self.transform_ = 1.0 / torch.where(spread > 0, spread, 1.0)
            Phi[:, 1:] *= self.transform_
            if gram is not None:
                scale = torch.cat([torch.ones(1, dtype=torch.float64), self.transform_])
                gram = gram * torch.outer(scale, scale)
        else:
            if self.standardize == "orthonormal":
                self.center_ = raw.mean(dim=0)
                self.transform_ = _whitening(raw, self.center_)
            Phi = self._assemble(raw)
            gram = Phi.T @ Phi if keep_gram else None
        return Phi, torch.tensor(y, dtype=torch.float64), gram

    def _learning_rate(self, Phi: torch.Tensor, gram: torch.Tensor | None) -> Any:
        lr = self.learning_rate
        if isinstance(lr, dict):
            return from_dict(lr)
        if isinstance(lr, Schedule) or callable(lr):
            return lr
        if lr == "auto":
            if self.optimizer in _LIPSCHITZ_RULES:
                return lipschitz_step(Phi, self.mode, self.batch_size, self.loss_reduction, gram)
            return None  # the rule's default
        return float(lr)

    def _start(
        self, Phi: torch.Tensor, y: torch.Tensor, seed: int, gram: torch.Tensor | None
    ) -> None:
        """Weights, optimizer and batches for a fresh fit (or the first partial_fit)."""
        k = Phi.shape[1]
        if self.init == "zeros":
            self.w_ = torch.zeros(k, dtype=torch.float64)
        else:
            generator = torch.Generator().manual_seed(seed)
            self.w_ = 0.01 * torch.randn(k, generator=generator, dtype=torch.float64)
        self.w_.requires_grad_(True)
        use_gram = gram is not None and self.mode == "full" and len(Phi) > k
        self.gram_ = Gram(gram, Phi.T @ y, y @ y, len(y)) if use_gram else None
        lr = self._learning_rate(Phi, gram)
        params = dict(self.optimizer_params or {})
        if lr is not None:
            params["lr"] = lr
        self.optimizer_ = optim.create(self.optimizer, [self.w_], **params)
        self.batches_ = Batches(len(Phi), self.mode, self.batch_size, seed=seed)
        self.learning_rate_ = lr

    def _epoch(self, Phi: torch.Tensor, y: torch.Tensor) -> None:
        """One pass over the data: one update per batch, with the analytic gradient."""
        reduction = self.loss_reduction
        w = self.w_
        for indices in self.batches_.epoch():
            with torch.no_grad():
                if self.gram_ is not None and len(indices) == len(Phi):
                    grad = self.gram_.gradient(w, reduction)
                else:
                    batch = Phi[indices]
                    residual = y[indices] - batch @ w
                    grad = -2.0 * (batch.T @ residual)
                    if reduction == "mean":
                        grad /= len(indices)
            w.grad = grad
            self.optimizer_.step()
            if not torch.isfinite(w).all():
                raise ValueError(
                    f"gradient descent diverged in epoch {self.batches_.epochs_done} (the weights "
                    f"are not finite); use a smaller learning_rate than {self.learning_rate_!r}"
                )

    def _full_gradient_norm(self, Phi: torch.Tensor, y: torch.Tensor) -> float:
        with torch.no_grad():
            if self.gram_ is not None:
                return float(self.gram_.gradient(self.w_, self.loss_reduction).norm())
            residual = y - Phi @ self.w_
            grad = -2.0 * (Phi.T @ residual)
            if self.loss_reduction == "mean":
                grad /= len(y)
            return float(grad.norm())

    def _loss(self, Phi: torch.Tensor, y: torch.Tensor) -> float:
        with torch.no_grad():
            if self.gram_ is not None:
                return float(self.gram_.loss(self.w_, self.loss_reduction))
            return float(loss(Phi, y, self.w_, self.loss_reduction))

    # -- scikit-learn API --------------------------------------------------------------------------

    def fit(self, X: Any, y: Any) -> LinearRegressionGD:
        """Descend from w₀ until a stopping rule holds or ``max_epochs`` epochs have run."""
        self._check_params()
        X, y = validate_data(self, X, y, y_numeric=True, dtype=[np.float64, np.float32])
        started = time.perf_counter()
        seed = int(check_random_state(self.random_state).randint(0, 2**31 - 1))
        Phi, target, gram = self._prepare(X, y)
        self._start(Phi, target, seed, gram)
        self.loss_history_ = [self._loss(Phi, target)]
        first_norm = self._full_gradient_norm(Phi, target)
        self.converged_ = first_norm == 0.0
        self.n_iter_ = 0
        while not self.converged_ and self.n_iter_ < self.max_epochs:
            self._epoch(Phi, target)
            self.n_iter_ += 1
            self.loss_history_.append(self._loss(Phi, target))
            previous, current = self.loss_history_[-2], self.loss_history_[-1]
            small_gradient = self._full_gradient_norm(Phi, target) <= self.tol * first_norm
            flat_loss = self.tol_loss > 0 and abs(previous - current) <= self.tol_loss * current
            self.converged_ = small_gradient or flat_loss
        self._publish()
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def fit_report(self, X: Any, y: Any) -> FitReport:
        """The fitted J on (X, y) beside the exact least-squares optimum over the same basis
        (an SVD solve: it costs more than many fits, so fit does not do it for you)."""
        check_is_fitted(self, "weights_")
        X, y = validate_data(
            self, X, y, y_numeric=True, reset=False, dtype=[np.float64, np.float32]
        )
        Phi = self._design(X)
        target = torch.tensor(y, dtype=torch.float64)
        final = float(loss(Phi, target, self.w_.detach(), self.loss_reduction))
        optimum = least_squares(Phi, target, self.loss_reduction).loss
        return FitReport(
            final,
            optimum,
            self.n_iter_,
            getattr(self, "fit_seconds_", 0.0),
            getattr(self, "converged_", False),
        )

    def partial_fit(self, X: Any, y: Any) -> LinearRegressionGD:
        """One more epoch over (X, y). The first call fits the basis on its X and starts from w₀;
        later calls continue with the same weights, optimizer state and learning-rate position."""
        self._check_params()
        first = not hasattr(self, "w_")
        X, y = validate_data(
            self, X, y, y_numeric=True, dtype=[np.float64, np.float32], reset=first
        )
        if first:
            seed = int(check_random_state(self.random_state).randint(0, 2**31 - 1))
            Phi, target, gram = self._prepare(X, y)
            self._start(Phi, target, seed, gram)
            self.gram_ = None  # later calls bring other data
            self.loss_history_ = []
            self.n_iter_ = 0
        else:
            Phi, target = self._design(X), torch.tensor(y, dtype=torch.float64)
            self.batches_ = _rebatch(self.batches_, len(Phi), self.mode, self.batch_size)
        self._epoch(Phi, target)
        self.n_iter_ += 1
        self.loss_history_.append(self._loss(Phi, target))
        self._publish()
        return self

    def _publish(self) -> None:
        """coef_ and intercept_ for the unconditioned basis, as numpy arrays."""
        w = self.w_.detach()
        if self.transform_ is None:
            weights = w.clone()
        else:
            coef = (
                self.transform_ * w[1:] if self.transform_.dim() == 1 else self.transform_ @ w[1:]
            )
            weights = torch.cat([(w[0] - self.center_ @ coef).view(1), coef])
        self.weights_ = weights.numpy()
        self.intercept_ = float(self.weights_[0])
        self.coef_ = self.weights_[1:].copy()

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "weights_")
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        Phi = self.basis_.transform(X)
        return (Phi @ torch.as_tensor(self.weights_)).numpy()

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags


def _whitening(raw: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    """T such that the columns of (raw − center) T are orthogonal with norm √n, like the bias
    column, so that Φᵀ Φ = n·I; directions the data does not span are dropped.

    From the eigendecomposition of the k × k covariance when it is well conditioned (one pass over
    the data), else from the SVD of the centered data itself (exact for any conditioning).
    """
    n = len(raw)
    centered_gram = raw.T @ raw - n * torch.outer(center, center)
    eigenvalues, vectors = torch.linalg.eigh(centered_gram)
    top = float(eigenvalues[-1]) if len(eigenvalues) else 0.0
    if top > 0 and float(eigenvalues[0]) > 1e-8 * top:
        return vectors * (math.sqrt(n) / eigenvalues.sqrt())
    _, singular, vh = torch.linalg.svd(raw - center, full_matrices=False)
    keep = singular > singular.max() * n * torch.finfo(torch.float64).eps
    return vh[keep].T * (math.sqrt(n) / singular[keep])


def _rebatch(batches: Batches, n: int, mode: str, batch_size: int) -> Batches:
    """Batches over a new number of examples that continue the same random stream."""
    if batches.n == n:
        return batches
    fresh = Batches(n, mode, batch_size, seed=0)  # type: ignore[arg-type]
    fresh.generator.set_state(batches.generator.get_state())
    fresh.epochs_done = batches.epochs_done
    return fresh


__all__ = ["FitReport", "LinearRegressionGD"]
