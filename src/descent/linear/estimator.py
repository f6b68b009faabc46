"""LinearRegressionGD: the lecture's linear regression over basis functions as a scikit-learn
estimator, trained by gradient descent in any of the three batch modes with any update rule."""

from __future__ import annotations

import copy
import functools
import math
import numbers
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from descent import optim, validate
from descent.data.batches import Batches
from descent.errors import InputError
from descent.linear import design, epochs, full_batch
from descent.linear.basis import parse_basis
from descent.linear.solve import (
    Gram,
    decay_steps,
    least_squares,
    lipschitz_step,
    loss,
)
from descent.schedules import InverseTimeDecay, Schedule, from_dict

# Rules for which "auto" means 1/L; the adaptive rules normalize the gradient themselves, and for
# them "auto" means their own default rate.
_LIPSCHITZ_RULES = ("sgd", "momentum", "nesterov")


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


def derived_seed(random_state: Any) -> int:
    """The seed of a fit's generators, drawn from ``random_state`` as scikit-learn estimators
    draw theirs (check_random_state(random_state).randint(2³¹ − 1)); for an int, remembered
    (building a RandomState costs more than a small epoch)."""
    if isinstance(random_state, numbers.Integral):
        return _seed_of(int(random_state))
    return int(check_random_state(random_state).randint(0, 2**31 - 1))


@functools.lru_cache(maxsize=256)
def _seed_of(random_state: int) -> int:
    return int(check_random_state(random_state).randint(0, 2**31 - 1))


class LinearRegressionGD(RegressorMixin, BaseEstimator):
    """ŷ = Σⱼ wⱼ φⱼ(x), fitted by gradient descent on J(w) = Σᵢ (yⁱ − ŷⁱ)² from w = 0.

    Defaults follow the lecture: the identity basis with a bias, full-batch gradient descent,
    weights at 0, ``learning_rate="auto"``, so ``LinearRegressionGD().fit(X, y)`` reaches the
    least-squares optimum.

    Args:
        basis: "identity", "poly:D", "powers:D", "rbf:K", "sigmoid:K", "fourier:M", a
            :class:`~descent.linear.basis.Basis`, or a callable returning the k features.
        mode: "full" (gradient descent), "single" (one example per update; "sgd" is accepted
            for it) or "minibatch" (``batch_size``), reshuffled every epoch.
        batch_size: B for "minibatch" (the lecture's 50).
        optimizer: any descent rule by name ("sgd", "momentum", "adam", …).
        optimizer_params: the rule's other hyperparameters (momentum, betas, …).
        learning_rate: a float, a schedule (object or dict), "auto" or "constant". For sgd,
            momentum and nesterov, "constant" is the step 1/L held fixed, L the Lipschitz
            constant of the batch gradient (largest eigenvalue of ΦᵀΦ by power iteration; for
            one example or B, bounded by the heaviest batch any shuffle can draw), and "auto" is
            that step in full-batch mode and, in the stochastic modes, the decaying
            η_t = η₀/(1 + t/t₀) with η₀ = 1/L, t the update number and
            t₀ = min(n/2, 1/(η₀ μ)), μ the smallest curvature of the expected batch loss (an
            InverseTimeDecay; :func:`~descent.linear.solve.decay_steps`), which converges where
            a constant step stalls at its noise floor (docs/linear.md). For the adaptive rules
            both mean the rule's default rate.
        average: report the Polyak–Ruppert average of the iterates, w̄ = (1/t) Σ wₛ over every
            update, instead of the last iterate (stochastic modes; as scikit-learn's
            SGDRegressor(average=True)). The loss history and the stopping rules read w̄.
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
        learning_rate_: the rate or schedule the fit used ("auto" resolved).
        weights_: all k+1 weights, bias first. n_iter_: epochs run. loss_history_: J after each
        epoch (J(w₀) first, computed from ΦᵀΦ in full-batch mode). converged_: a stopping rule
        held. fit_seconds_: wall time of fit. ``fit_report(X, y)`` compares with the optimum.

    A full-batch fit reads the data once: the basis is evaluated on row blocks, ΦᵀΦ and Φᵀy are
    accumulated, and every epoch after that costs O(k²) (docs/linear.md). The stochastic modes
    run each epoch's updates in one compiled loop when the rule has a C step (sgd, the
    lecture's nesterov, rmsprop, adadelta, adamax, nadam), equal bit for bit to the Python
    reference path (descent.linear.epochs), and monitor J from the same k × k statistics.

    Example::

        model = LinearRegressionGD(basis="poly:3", standardize="orthonormal").fit(X, y)
        model.fit_report(X, y).relative_gap  # (J − J*)/J*, about 1e-12
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
        average: bool = False,
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
        self.average = average
        self.random_state = random_state

    # -- validation ------------------------------------------------------------------------------

    def _check_params(self) -> tuple[str, str]:
        """The parameters checked; returns the batch mode and the rule by their canonical names
        (the parameters themselves stay as given, as scikit-learn requires)."""
        mode = validate.batch_mode(self.mode, "mode")
        rule = validate.normalize_name(self.optimizer) if isinstance(self.optimizer, str) else None
        if rule not in optim.OPTIMIZERS:
            raise InputError(
                f"unknown optimizer {self.optimizer!r}; accepted: {', '.join(optim.OPTIMIZERS)}"
            )
        validate.choice(self.loss_reduction, "loss_reduction", ("sum", "mean"))
        validate.choice(self.init, "init", ("zeros", "normal"))
        for name in ("max_epochs", "batch_size"):
            value = getattr(self, name)
            validate.positive_int(int(value) if isinstance(value, np.integer) else value, name)
        validate.nonnegative(self.tol, "tol")
        validate.nonnegative(self.tol_loss, "tol_loss")
        validate.flag(self.average, "average")
        if self.standardize not in (True, False, "columns", "orthonormal"):
            raise InputError(
                f"standardize must be True, False, 'columns' or 'orthonormal', got "
                f"{self.standardize!r}"
            )
        lr = self.learning_rate
        if isinstance(lr, str) and lr not in ("auto", "constant"):
            raise InputError(
                f"learning_rate must be 'auto', 'constant', a float or a schedule, got {lr!r}"
            )
        return mode, rule

    # -- the design matrix and its statistics ------------------------------------------------------

    def _design(self, X: np.ndarray) -> torch.Tensor:
        """Φ for X with the fitted basis and conditioning: [1, (φ(X) − center) · transform]."""
        return self._assemble(self.basis_.checked_features(X))

    def _assemble(self, features: torch.Tensor) -> torch.Tensor:
        return design.assemble(features, (self.center_, self.transform_))

    def _statistics(self, X: np.ndarray, y: np.ndarray) -> Gram | None:
        """ΦᵀΦ, Φᵀy, yᵀy of the conditioned design in one blocked pass (None: k too large to keep
        a k × k matrix)."""
        design.check_inputs(self.basis_, self.n_features_out_, X, self)
        if self.n_features_out_ + 1 > design.MAX_GRAM:
            return None
        return design.checked_moments(self.basis_, X, y, self).gram(self.center_, self.transform_)

    def _prepare(
        self, X: np.ndarray, y: np.ndarray, mode: str, design_wanted: bool
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, Gram | None]:
        """Fit the basis and the conditioning from one blocked pass over the data; return Φ and y
        (only when ``design_wanted`` or without statistics: the stochastic modes, partial_fit and
        a k too large for ΦᵀΦ read rows), and the
        statistics of the conditioned design (None when k is too large to keep ΦᵀΦ).

        The pass accumulates FᵀF, Σ F, Fᵀy for the raw basis F; centering and scaling are
        applied to those k × k statistics (ΦᵀΦ − n μμᵀ, then D … D), not to the n × k data."""
        self.basis_ = copy.deepcopy(parse_basis(self.basis))
        # k, checked before fit builds anything
        self.n_features_out_ = design.checked_size(self.basis_, self.basis, X, mode)
        design.check_inputs(self.basis_, self.n_features_out_, X, self)
        self.basis_.fit(X)
        self.center_, self.transform_ = None, None
        if self.n_features_out_ + 1 > design.MAX_GRAM:  # no k × k statistics: use the data
            raw = self.basis_.checked_features(X)
            self.center_, self.transform_ = design.from_data(raw, self.standardize)
            return self._assemble(raw), design.target(y), None
        stats = design.checked_moments(self.basis_, X, y, self)
        conditioning = design.from_statistics(stats, self.standardize)
        if conditioning is None:
            # Too ill-conditioned for the k × k route (TᵀCT would be n·I only to about ε·κ):
            # whiten from the data's SVD and take ΦᵀΦ from Φ itself.
            raw = self.basis_.checked_features(X)
            self.center_, self.transform_ = design.from_data(raw, self.standardize)
            Phi, target = self._assemble(raw), design.target(y)
            return (Phi if design_wanted else None), target, Gram.of(Phi, target)
        self.center_, self.transform_ = conditioning
        gram = stats.gram(self.center_, self.transform_)
        if not design_wanted:  # full batch on the statistics: no rows read again
            return None, None, gram
        return self._design(X), design.target(y), gram

    def _learning_rate(
        self, Phi: torch.Tensor | None, gram: Gram | None, mode: str, rule: str, n: int
    ) -> Any:
        lr = self.learning_rate
        if isinstance(lr, dict):
            return from_dict(lr)
        if isinstance(lr, Schedule) or callable(lr):
            return lr
        if lr in ("auto", "constant"):
            if rule not in _LIPSCHITZ_RULES:
                return None  # the rule's default
            step = lipschitz_step(
                Phi,
                mode,
                self.batch_size,
                self.loss_reduction,
                gram.gram if gram is not None else None,
                n=gram.n if gram is not None else None,
            )
            if lr == "constant" or mode == "full":
                return step
            # η₀/(1 + t/t₀): Σ η_t diverges while Σ η_t² converges, so the noise floor of a
            # constant step shrinks to 0; t₀ from the curvature (decay_steps).
            horizon = decay_steps(
                step,
                gram.gram if gram is not None else None,
                n,
                mode,
                self.batch_size,
                self.loss_reduction,
            )
            return InverseTimeDecay(step, horizon, 1.0)
        return float(lr)

    def _start(
        self,
        Phi: torch.Tensor | None,
        gram: Gram | None,
        n: int,
        seed: int,
        mode: str,
        rule: str,
    ) -> None:
        """Weights, optimizer and batches for a fresh fit (or the first partial_fit)."""
        k = gram.gram.shape[0] if gram is not None else Phi.shape[1]  # type: ignore[union-attr]
        if self.init == "zeros":
            self.w_ = torch.zeros(k, dtype=torch.float64)
        else:
            generator = torch.Generator().manual_seed(seed)
            self.w_ = 0.01 * torch.randn(k, generator=generator, dtype=torch.float64)
        self.w_.requires_grad_(True)
        lr = self._learning_rate(Phi, gram, mode, rule, n)
        params = dict(self.optimizer_params or {})
        if lr is not None:
            params["lr"] = lr
        if self.optimizer_params:  # names from the user: checked, with the accepted list
            self.optimizer_ = optim.create(rule, [self.w_], **params)
        else:  # only lr: nothing to check (create's signature check costs a small epoch)
            self.optimizer_ = optim.OPTIMIZERS[rule]([self.w_], **params)
        self.batches_ = Batches(n, mode, self.batch_size, seed=seed)
        self.learning_rate_ = lr
        self.average_ = epochs.Average(k) if self.average and mode != "full" else None

    # -- descending --------------------------------------------------------------------------------

    def _descend_on_statistics(self, gram: Gram, rule: str) -> None:
        """Full-batch gradient descent on the k × k statistics: the plain rule with a constant
        step in C when the kernels are built (full_batch.descend_on_statistics: about 0.5 µs an
        epoch for k = 81 instead of 16), every other rule by its optimizer in the Python loop
        that is the C loop's reference (full_batch.descend_with_optimizer)."""
        plain_step = (
            rule == "sgd" and isinstance(self.learning_rate_, float) and not self.optimizer_params
        )
        settings = (self.max_epochs, self.tol, self.tol_loss, self.loss_reduction)
        if plain_step and full_batch.statistics_loop_available():
            run = full_batch.descend_on_statistics(gram, self.w_, self.learning_rate_, *settings)
        else:
            step = self.learning_rate_ if plain_step else None
            run = full_batch.descend_with_optimizer(gram, self.w_, self.optimizer_, step, *settings)
        self.n_iter_, self.loss_history_ = run.updates, run.losses
        if run.ended == "diverged":
            self._diverged(run.updates, run.losses[-1], rule, gram)
        self.converged_ = run.ended == "converged"

    def _descend_on_rows(
        self, Phi: torch.Tensor, y: torch.Tensor, rule: str, gram: Gram | None
    ) -> None:
        """Epochs of batches drawn from Φ's rows (epochs.descend_on_rows); J and ‖∇J‖ after
        each epoch come from the k × k statistics when there are any (O(k²), not another two
        passes over Φ)."""
        evaluate = epochs.evaluator(gram, Phi, y, self.loss_reduction)
        reported = self._reported()  # updated in place by every epoch
        run = epochs.descend_on_rows(
            self._updates(Phi, y, rule),
            self.batches_,
            functools.partial(evaluate, reported),
            self.max_epochs,
            self.tol,
            self.tol_loss,
        )
        self.n_iter_, self.loss_history_ = run.updates, run.losses
        if run.ended == "diverged":
            self._diverged(self.batches_.epochs_done, math.nan, rule, None)
        self.converged_ = run.ended == "converged"

    def _reported(self) -> torch.Tensor:
        """The weights the fit reports: the average of the iterates, or the last one."""
        return self.average_.weights if self.average_ is not None else self.w_.detach()

    def _updates(self, Phi: torch.Tensor, y: torch.Tensor, rule: str) -> epochs.BatchUpdates:
        """The epochs' updates on Φ's rows with this fit's weights, rule and average, bound once
        (one C loop per epoch when the rule has a C step: descent.linear.epochs)."""
        return epochs.BatchUpdates(
            Phi, y, self.w_, self.optimizer_, rule, self.loss_reduction,
            self.batches_.batch_size, self.average_,
        )  # fmt: skip

    def _diverged(self, epoch: int, value: float, rule: str, gram: Gram | None) -> None:
        """Stop with the advice training gives: the epoch, the loss, the rate and what to try."""
        advice = "use a smaller learning_rate"
        if rule in _LIPSCHITZ_RULES and self.learning_rate != "auto":
            advice += " or learning_rate='auto' (1/L, which converges for this rule)"
        loss_text = f"J = {value:g}" if math.isfinite(value) or value == math.inf else "J is NaN"
        raise InputError(
            f"gradient descent diverged in epoch {epoch} ({loss_text}, the weights are not "
            f"finite or overflow) with learning rate {self.learning_rate_!r}; {advice}"
        )

    def _loss(self, Phi: torch.Tensor, y: torch.Tensor) -> float:
        with torch.no_grad():
            return float(loss(Phi, y, self._reported(), self.loss_reduction))

    # -- scikit-learn API --------------------------------------------------------------------------

    def fit(self, X: Any, y: Any) -> LinearRegressionGD:
        """Descend from w₀ until a stopping rule holds or ``max_epochs`` epochs have run."""
        mode, rule = self._check_params()
        # X's finiteness is checked in _prepare: from the statistics where they show it
        X, y = design.validated(self, X, y)
        started = time.perf_counter()
        seed = derived_seed(self.random_state)
        Phi, target, gram = self._prepare(X, y, mode, design_wanted=mode != "full")
        if Phi is None and gram is None:  # pragma: no cover - _prepare returns one of them
            raise AssertionError("neither the design nor its statistics")
        self._start(Phi, gram, len(y), seed, mode, rule)
        self.gram_ = gram if mode == "full" else None
        if self.gram_ is not None:
            self._descend_on_statistics(self.gram_, rule)
        else:
            self._descend_on_rows(Phi, target, rule, gram)  # type: ignore[arg-type]
        self._publish()
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def fit_report(self, X: Any, y: Any) -> FitReport:
        """The fitted J on (X, y) beside the exact least-squares optimum over the same basis.

        One blocked pass gives ΦᵀΦ, Φᵀy and yᵀy, from which both J(w) and the optimum follow
        (an eigendecomposition of the k × k ΦᵀΦ); only when ΦᵀΦ is too ill-conditioned for the
        normal equations is the optimum solved on Φ itself (an SVD, slower)."""
        check_is_fitted(self, "weights_")
        X, y = design.validated(self, X, y, reset=False)  # X's finiteness: in _statistics
        w = self._reported()
        reduction = self.loss_reduction
        gram = self._statistics(X, y)
        exact = gram.optimum() if gram is not None else None
        if exact is None:
            Phi = self._design(X)
            target = design.target(y)
            final = float(loss(Phi, target, w, reduction))
            optimum = least_squares(Phi, target, reduction).loss
        else:
            final = float(gram.loss(w, reduction))  # type: ignore[union-attr]
            optimum = exact.loss * (1.0 if reduction == "sum" else 1.0 / len(y))
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
        mode, rule = self._check_params()
        first = not hasattr(self, "w_")
        if first:  # X's finiteness: in _prepare
            X, y = design.validated(self, X, y)
        else:
            X, y = validate_data(
                self, X, y, y_numeric=True, dtype=list(design.FIT_DTYPES), reset=False
            )
        if first:
            seed = derived_seed(self.random_state)
            Phi, target, gram = self._prepare(X, y, mode, design_wanted=True)
            self._start(Phi, gram, len(y), seed, mode, rule)
            self.gram_ = None  # later calls bring other data
            self.loss_history_ = []
            self.n_iter_ = 0
        else:
            Phi = self._design(X)
            target = design.target(y)
            self.batches_ = self.batches_.resized(len(Phi))
        self._updates(Phi, target, rule).epoch(self.batches_)  # type: ignore[arg-type]
        if not bool(torch.isfinite(self.w_).all()):
            self._diverged(self.batches_.epochs_done, math.nan, rule, None)
        self.n_iter_ += 1
        self.loss_history_.append(self._loss(Phi, target))  # type: ignore[arg-type]
        self._publish()
        return self

    def _publish(self) -> None:
        """coef_ and intercept_ for the unconditioned basis, as numpy arrays."""
        weights = design.unconditioned(self._reported(), (self.center_, self.transform_))
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


__all__ = ["FitReport", "LinearRegressionGD"]
