"""The updates of one epoch of the stochastic modes ("single", "minibatch"), two ways.

Both walk the batches of an epoch's shuffled order; for each batch b they set the gradient
∇J_b(w) = −2 Σ_{i∈b} φⁱ (yⁱ − φⁱ·w) (÷ |b| for "mean") and let the update rule step:

- the reference path (Python): :func:`~descent.linear.solve.ordered_gradient` in torch, then the
  optimizer's own ``step()``; any rule, any option.
- the compiled path: one C call per epoch (``<rule>_epoch`` in descent/optim/_kernels.c) that
  computes the same gradient with the same left-to-right sums and applies the rule's step
  function, the one the rule's optimizer kernel runs. The per-update scalars (the learning rate
  from the schedule, bias corrections, Nadam's μ-product) are the ones the rule itself computes:
  for plain SGD the learning rates of the epoch's updates, for the other rules those recorded
  from the rule's own ``step()`` under :func:`descent.optim._native.capture`, which also advances
  its step counts and schedule position exactly as the reference path does.

The two are equal bit for bit in float64 (tests/linear/test_epochs.py), with a schedule, with
averaging, and across a resume in the middle of an epoch. The compiled path covers the rules
whose fast step is a C step: plain SGD (no weight decay, not maximizing: its step is torch's
``add_(g, alpha=−η)``, one rounding), the lecture's Nesterov, RMSprop, Adadelta, AdaMax and
Nadam, run with ``impl="fast"`` in float64; every other rule or option takes the reference path.

A fit binds what stays the same across its epochs once (:class:`BatchUpdates`,
:class:`StatisticsEvaluation`), so that on a small data set an epoch costs its C loop and a few
microseconds of Python; :func:`descend_on_rows` is the fit's loop with its stopping rules (the
full-batch loops on the k × k statistics are in descent.linear.full_batch).
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from descent.data.batches import Batches
from descent.linear import compiled
from descent.linear.solve import Gram, Reduction, gradient, loss, ordered_gradient
from descent.optim import _native
from descent.optim.base import DescentOptimizer
from descent.schedules import InverseTimeDecay

#: Switch the compiled epochs off (tests compare the two paths; True uses C when it can).
COMPILED = True

# Rules whose fast step is a C step (their optimizer's kernel), and the condition on the group.
_C_RULES = {
    "sgd": lambda group: group["weight_decay"] == 0 and not group["maximize"],
    "nesterov": lambda group: bool(group["lr_in_buffer"]),
    "rmsprop": lambda group: True,
    "adadelta": lambda group: True,
    "adamax": lambda group: True,
    "nadam": lambda group: True,
}


class Average:
    """Polyak–Ruppert averaging of the iterates: w̄ₜ = (1/t) Σ_{s≤t} wₛ over the updates,
    computed as w̄ ← w̄ + (w − w̄)/t after each update (Polyak & Juditsky 1992; Ruppert 1988;
    scikit-learn's SGDRegressor(average=True))."""

    def __init__(self, size: int) -> None:
        self.weights = torch.zeros(size, dtype=torch.float64)
        self.count = 0

    def update(self, w: Tensor) -> None:
        self.count += 1
        self.weights.add_((w - self.weights) / self.count)


def compiled_rule(optimizer: DescentOptimizer, rule: str, w: Tensor) -> str | None:
    """The C rule that runs this optimizer's updates, or None for the reference path."""
    if not COMPILED or rule not in _C_RULES or not _native.available():
        return None
    if len(optimizer.param_groups) != 1 or w.dtype != torch.float64 or w.device.type != "cpu":
        return None
    group = optimizer.param_groups[0]
    plain = (
        group.get("impl", "fast") == "fast"
        and group.get("state_dtype") in (None, torch.float64)
        and not group.get("stochastic_rounding", False)
    )
    return rule if plain and _C_RULES[rule](group) else None


def learning_rates(optimizer: DescentOptimizer, count: int) -> np.ndarray | float:
    """The rates of the next ``count`` updates, as the rule reads them (``lr_at``): a float when
    constant, else an array. An inverse-time decay is evaluated on all positions at once (the
    same IEEE operations, element by element); any other schedule update by update."""
    group = optimizer.param_groups[0]
    return _rates_from(optimizer, group["step"], count)


def _rates_from(optimizer: DescentOptimizer, start: int, count: int) -> np.ndarray | float:
    """The rates of updates start … start + count − 1 (see :func:`learning_rates`)."""
    group = optimizer.param_groups[0]
    lr = group["lr"]
    if not callable(lr):
        return optimizer.lr_at(group)
    if _is_array_schedule(lr):
        try:  # its value() is arithmetic only, so it takes an array (tested equal to lr_at)
            values = np.asarray(lr.value(np.arange(start, start + count, dtype=np.float64)))
        except TypeError:
            values = np.array([np.nan])
        if values.shape == (count,) and np.isfinite(values).all() and (values >= 0).all():
            return values
    return np.array([optimizer.lr_at(group, start + u) for u in range(count)], dtype=np.float64)


def _is_array_schedule(lr: object) -> bool:
    """A schedule whose value() is a pure function of the position, evaluated on arrays."""
    return isinstance(lr, InverseTimeDecay) and not lr.staircase


#: Updates of plain SGD whose rates are computed ahead at most (24 bytes each: 1.5 MiB). A
#: rate costs about as much to compute as a small update, so a fit stopped early by its
#: tolerance should waste few: the look-ahead starts at one epoch and doubles.
RATES_AHEAD = 1 << 16


class BatchUpdates:
    """The updates of the stochastic modes on Φ's rows with one optimizer: everything that stays
    the same from epoch to epoch (the data, the weights, the rule, its C entry and the
    arguments that do not change) is bound once, so that an epoch of a small data set costs
    its C loop and a few microseconds, not the set-up of every call.

    ``run_batches(order, batches)`` runs batches ``batches`` (a range, step 1) of the epoch
    whose shuffled order is ``order``: batch b is ``order[b·B : (b+1)·B]``; in C when it can.
    """

    def __init__(
        self,
        Phi: Tensor,
        y: Tensor,
        w: Tensor,
        optimizer: DescentOptimizer,
        rule: str,
        reduction: Reduction,
        batch_size: int,
        average: Average | None = None,
    ) -> None:
        self.Phi, self.y, self.w, self.optimizer = Phi, y, w, optimizer
        self.rule, self.reduction, self.batch_size = rule, reduction, batch_size
        self.average = average
        self.native = compiled_rule(optimizer, rule, w)
        if self.native is None:
            return
        n, k = Phi.shape
        self.grad = torch.zeros(k, dtype=torch.float64)
        for name, tensor in (("Phi", Phi), ("y", y)):
            if tensor.dtype != torch.float64 or not tensor.is_contiguous():
                raise TypeError(f"{rule}_epoch: {name} must be a contiguous CPU torch.float64")
        # The C loop writes the weights in place through this pointer (w's storage never moves).
        self._data = (Phi.data_ptr(), y.data_ptr())
        self._state = (w.detach().data_ptr(), self.grad.data_ptr())
        self._avg = average.weights.data_ptr() if average is not None else None
        self._shape = (n, k, batch_size)
        # plain SGD's rates: (rate, weight decay 0, sign 1) rows computed ahead, from update
        # number _rates_start on (its C step reads the three per update)
        self._rates = np.empty((0, 3))
        self._rates_schedule: object = None  # the schedule the rates held are from
        self._rates_start, self._rates_held, self._rates_pointer, self._rates_ahead = 0, 0, 0, 1
        self._constant_rows = np.array([[0.0, 0.0, 1.0]])
        self._constant_pointer = self._constant_rows.ctypes.data
        if self.native == "sgd":
            self._sgd_epoch = _native.library().sgd_epoch

    def epoch(self, batches: Batches) -> None:
        """One pass over the data in the next order ``batches`` draws (a full batch, when Φ is
        too wide for its k × k statistics: one BLAS gradient)."""
        order = batches.order()  # a fresh contiguous int64 permutation of n
        if batches.mode == "full":
            with torch.no_grad():
                self.w.grad = gradient(self.Phi, self.y, self.w, self.reduction)
            self.optimizer.step()
        elif self.native is None:
            self._reference(order, range(len(batches)))
        else:
            self._compiled(order, 0, len(batches))

    def run_batches(self, order: Tensor, batches: range) -> None:
        if len(batches) == 0:
            return
        if self.native is None:
            self._reference(order, batches)
            return
        if order.dtype != torch.int64 or not order.is_contiguous() or len(order) != len(self.y):
            raise TypeError(f"{self.rule}_epoch: order must be a contiguous CPU torch.int64")
        self._compiled(order, batches[0], batches[-1] + 1)

    def _reference(self, order: Tensor, batches: range) -> None:
        n, size, w = len(order), self.batch_size, self.w
        for b in batches:
            rows = order[b * size : min((b + 1) * size, n)]
            with torch.no_grad():
                w.grad = ordered_gradient(self.Phi[rows], self.y[rows], w, self.reduction)
            self.optimizer.step()
            if self.average is not None:
                with torch.no_grad():
                    self.average.update(w)

    def _compiled(self, order: Tensor, first: int, last: int) -> None:
        """Batches first … last − 1 in C: one call, or two when "mean" meets the epoch's short
        last batch (its own 1/|b|)."""
        n, k, size = self._shape
        scale = 1.0
        if self.reduction == "mean":
            if last * size > n and last - first > 1:
                self._compiled(order, first, last - 1)
                first = last - 1
            scale = 1.0 / (min(size * last, n) - size * (last - 1))  # as the reference's 1/|b|
        averaged = self.average.count if self.average is not None else 0
        if self.native == "sgd":
            scalars, stride = self._sgd_rates(last - first)
            self._sgd_epoch(
                *self._data, order.data_ptr(), *self._state, self._avg, n, k, size, first, last,
                scale, averaged, scalars, stride,
            )  # fmt: skip
        else:
            self._captured(order, first, last, scale, averaged)
        if self.average is not None:
            self.average.count += last - first

    def _sgd_rates(self, count: int) -> tuple[int, int]:
        """(pointer, stride) of the rates of plain SGD's next ``count`` updates, and the
        group's update number advanced past them. Plain SGD calls no C kernel of its own (its
        step is torch's add_); its only per-update scalar is the rate."""
        group = self.optimizer.param_groups[0]  # (load_state_dict replaces the group dicts)
        start = group["step"]
        group["step"] = start + count
        lr = group["lr"]
        if not callable(lr):
            self._constant_rows[0, 0] = self.optimizer.lr_at(group)
            return self._constant_pointer, 0
        offset = start - self._rates_start
        if offset < 0 or offset + count > self._rates_held or lr is not self._rates_schedule:
            # a pure schedule's rates for the epochs ahead (more each time, up to RATES_AHEAD
            # updates); any other schedule's for these updates only
            ahead = count
            if _is_array_schedule(lr):
                ahead = max(count, min(count * self._rates_ahead, RATES_AHEAD))
                self._rates_ahead *= 2
            if len(self._rates) < ahead:  # rows (rate, weight decay 0, sign 1), reused
                self._rates = np.empty((ahead, 3))
                self._rates[:, 1], self._rates[:, 2] = 0.0, 1.0
                self._rates_pointer = self._rates.ctypes.data
            self._rates[:ahead, 0] = _rates_from(self.optimizer, start, ahead)
            self._rates_start, self._rates_held, offset = start, ahead, 0
            self._rates_schedule = lr
        return self._rates_pointer + offset * 24, 3  # rows of three doubles

    def _captured(self, order: Tensor, first: int, last: int, scale: float, averaged: int) -> None:
        """The rules with a C kernel of their own: their step() records what it would pass the
        kernel, update by update (advancing step counts and schedules as the reference does),
        and the C loop runs those steps."""
        rule, w, count = self.rule, self.w, last - first
        w.grad = self.grad
        with _native.capture() as jobs:
            for _ in range(count):
                self.optimizer.step()
        if len(jobs) != count or any(kernel != rule for kernel, _ in jobs):
            raise RuntimeError(f"the {rule} step did not run its C kernel once per update")
        names = _native.epoch_scalar_names(rule)
        scalars = torch.tensor(
            [[float(job[name]) for name in names] for _, job in jobs], dtype=torch.float64
        )
        tensor_names, scalar_specs = _native.KERNELS[rule]
        job = jobs[0][1]
        arguments: dict[str, object] = {name: job[name] for name in tensor_names[2:]}
        arguments.update({name: int(job[name]) for name, kind in scalar_specs if kind == "int"})
        n, k, size = self._shape
        arguments.update(
            Phi=self.Phi, y=self.y, order=order, w=w.detach(), grad=self.grad,
            avg=self.average.weights if self.average is not None else None, n=n, k=k,
            batch=size, first=first, last=last, scale=scale, averaged=averaged,
            scalars=scalars, stride=len(names),
        )  # fmt: skip
        _native.run_epoch(rule, arguments)


def run_batches(
    Phi: Tensor,
    y: Tensor,
    order: Tensor,
    batch_size: int,
    batches: range,
    w: Tensor,
    optimizer: DescentOptimizer,
    rule: str,
    reduction: Reduction,
    average: Average | None = None,
) -> None:
    """Updates for batches ``batches`` of the epoch whose shuffled order is ``order`` (one call
    of :class:`BatchUpdates`; a fit binds one for all its epochs)."""
    BatchUpdates(Phi, y, w, optimizer, rule, reduction, batch_size, average).run_batches(
        order, batches
    )


@dataclass
class DescentRun:
    """What :func:`descend_on_rows` or a full-batch loop (descent.linear.full_batch) leaves:
    epochs run, J at each point evaluated (J(w₀) first), and how it ended ("converged",
    "max_epochs" or "diverged": on the statistics at J = losses[-1]; on the rows in epoch
    ``updates``, whose weights are not finite)."""

    updates: int
    losses: list[float]
    ended: str


def descend_on_rows(
    updates: BatchUpdates,
    batches: Batches,
    evaluate: Callable[[], tuple[float, float]],
    max_epochs: int,
    tol: float,
    tol_loss: float,
) -> DescentRun:
    """Epochs of batches drawn from Φ's rows (the stochastic modes, or a full batch whose
    k × k statistics would not fit) until ‖∇J‖ ≤ tol·‖∇J₀‖, or (tol_loss > 0) J changed by
    ≤ tol_loss relative over an epoch, or ``max_epochs``; ``evaluate()`` gives J and ‖∇J‖ at
    the reported weights after each epoch (:func:`evaluator`: one C call on the statistics)."""
    value, norm = evaluate()
    losses = [value]
    first_norm = norm
    converged = first_norm == 0.0
    done = 0
    weights = updates.w.detach().numpy()  # a view: the finiteness check without torch
    while not converged and done < max_epochs:
        updates.epoch(batches)
        done += 1
        value, norm = evaluate()
        # weights that are not finite give a gradient that is not: only then are they read
        if not math.isfinite(norm) and not np.isfinite(weights).all():
            return DescentRun(done, losses, "diverged")
        losses.append(value)
        small_gradient = norm <= tol * first_norm
        flat_loss = tol_loss > 0 and abs(losses[-2] - value) <= tol_loss * value
        converged = small_gradient or flat_loss
    return DescentRun(done, losses, "converged" if converged else "max_epochs")


class StatisticsEvaluation:
    """J(w) and ‖∇J(w)‖ from the k × k statistics, by the C loop's own evaluation (a call that
    makes no update), with its buffers bound once per fit: one call where the torch form takes
    ten operations, which cost more than a small epoch itself. Needs the C kernels
    (:func:`statistics_evaluation_available`); ``w`` contiguous float64."""

    def __init__(self, gram: Gram, reduction: Reduction) -> None:
        loop = compiled.entry("gd_statistics")
        if loop is None:
            raise RuntimeError("descent's C kernels are not built")
        self._loop = loop
        self._G, self._b = gram.gram.contiguous(), gram.moment.contiguous()
        self._k = len(self._b)
        self._total = float(gram.total)
        self._scale = 1.0 if reduction == "sum" else 1.0 / gram.n
        # ctypes buffers: reading one back is a Python float without a numpy scalar between
        self._grad = (ctypes.c_double * self._k)()
        self._value, self._norm = ctypes.c_double(), ctypes.c_double()
        self._status = ctypes.c_int64()
        self._pointers = (
            self._G.data_ptr(), self._b.data_ptr(), ctypes.addressof(self._grad),
            ctypes.addressof(self._value), ctypes.addressof(self._norm),
            ctypes.addressof(self._status),
        )  # fmt: skip

    def __call__(self, w: Tensor) -> tuple[float, float]:
        G, b, grad, value, norm, status = self._pointers
        self._loop(
            G, b, self._total, w.data_ptr(), grad, self._k, self._scale, 0.0, 0, 0.0, 0.0,
            value, norm, 1, status,
        )  # fmt: skip
        if self._status.value == 2:  # J or ∇J not finite: ‖∇J‖ was not stored
            return self._value.value, math.nan
        return self._value.value, self._norm.value


def evaluate_on_statistics(gram: Gram, w: Tensor, reduction: Reduction) -> tuple[float, float]:
    """J(w) and ‖∇J(w)‖ from the k × k statistics in one C call (:class:`StatisticsEvaluation`)."""
    return StatisticsEvaluation(gram, reduction)(w.detach().contiguous())


def evaluator(
    gram: Gram | None, Phi: Tensor, y: Tensor, reduction: Reduction
) -> Callable[[Tensor], tuple[float, float]]:
    """J and ‖∇J‖ at given weights over all the data: from the k × k statistics when there
    are any (one C call when the kernels are built, else torch on the statistics), else from
    Φ itself (two passes)."""
    if gram is not None and statistics_evaluation_available():
        return StatisticsEvaluation(gram, reduction)

    def evaluate(w: Tensor) -> tuple[float, float]:
        with torch.no_grad():
            if gram is not None:
                value, grad = gram.evaluate(w, reduction)
            else:
                value, grad = loss(Phi, y, w, reduction), gradient(Phi, y, w, reduction)
            return float(value), float(torch.linalg.vector_norm(grad))

    return evaluate


def statistics_evaluation_available() -> bool:
    """True when the C kernels are built (whether or not the compiled epochs are switched on:
    both paths monitor their fits the same way)."""
    return compiled.entry("gd_statistics") is not None
