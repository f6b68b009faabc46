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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from descent.linear import compiled
from descent.linear.solve import Gram, Reduction, ordered_gradient
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
    lr, start = group["lr"], group["step"]
    if not callable(lr):
        return optimizer.lr_at(group)
    if isinstance(lr, InverseTimeDecay) and not lr.staircase:
        try:  # its value() is arithmetic only, so it takes an array (tested equal to lr_at)
            values = np.asarray(lr.value(np.arange(start, start + count, dtype=np.float64)))
        except TypeError:
            values = np.array([np.nan])
        if values.shape == (count,) and np.isfinite(values).all() and (values >= 0).all():
            return values
    return np.array([optimizer.lr_at(group, start + u) for u in range(count)], dtype=np.float64)


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
    """Updates for batches ``batches`` (a range of batch numbers, step 1) of the epoch whose
    shuffled order is ``order``: batch b is ``order[b·B : (b+1)·B]``. Compiled when it can be."""
    if len(batches) == 0:
        return
    native = compiled_rule(optimizer, rule, w)
    if native is None:
        _reference(Phi, y, order, batch_size, batches, w, optimizer, reduction, average)
        return
    last = batches[-1] + 1
    if reduction == "mean" and last * batch_size > len(order) and len(batches) > 1:
        # the epoch's short last batch has its own 1/|b|: a call of its own
        for part in (batches[:-1], batches[-1:]):
            _compiled(Phi, y, order, batch_size, part, w, optimizer, native, reduction, average)
        return
    _compiled(Phi, y, order, batch_size, batches, w, optimizer, native, reduction, average)


def _reference(
    Phi: Tensor,
    y: Tensor,
    order: Tensor,
    batch_size: int,
    batches: range,
    w: Tensor,
    optimizer: DescentOptimizer,
    reduction: Reduction,
    average: Average | None,
) -> None:
    n = len(order)
    for b in batches:
        rows = order[b * batch_size : min((b + 1) * batch_size, n)]
        with torch.no_grad():
            w.grad = ordered_gradient(Phi[rows], y[rows], w, reduction)
        optimizer.step()
        if average is not None:
            with torch.no_grad():
                average.update(w)


def _compiled(
    Phi: Tensor,
    y: Tensor,
    order: Tensor,
    batch_size: int,
    batches: range,
    w: Tensor,
    optimizer: DescentOptimizer,
    rule: str,
    reduction: Reduction,
    average: Average | None,
) -> None:
    first, last = batches[0], batches[-1] + 1
    count = last - first
    n, k = Phi.shape
    grad = torch.zeros(k, dtype=torch.float64)
    names = _native.epoch_scalar_names(rule)
    arguments: dict[str, object] = {}
    if rule == "sgd":
        # Plain SGD calls no C kernel of its own (its step is torch's add_); its only per-update
        # scalar is the rate, and its only counter the group's update number.
        group = optimizer.param_groups[0]
        rates = learning_rates(optimizer, count)
        columns = np.empty((1 if isinstance(rates, float) else count, 3))  # lr, wd = 0, sign = 1
        columns[:, 0], columns[:, 1], columns[:, 2] = rates, 0.0, 1.0
        scalars, stride = torch.from_numpy(columns), 0 if isinstance(rates, float) else 3
        group["step"] += count
    else:
        # The rule's own step() records what it would pass its kernel, update by update.
        w.grad = grad
        with _native.capture() as jobs:
            for _ in range(count):
                optimizer.step()
        if len(jobs) != count or any(kernel != rule for kernel, _ in jobs):
            raise RuntimeError(f"the {rule} step did not run its C kernel once per update")
        scalars = torch.tensor(
            [[float(job[name]) for name in names] for _, job in jobs], dtype=torch.float64
        )
        stride = len(names)
        tensor_names, scalar_specs = _native.KERNELS[rule]
        job = jobs[0][1]
        arguments.update({name: job[name] for name in tensor_names[2:]})
        arguments.update({name: int(job[name]) for name, kind in scalar_specs if kind == "int"})
    arguments.update(
        Phi=Phi,
        y=y,
        order=order,
        w=w.detach(),
        grad=grad,
        avg=average.weights if average is not None else None,
        n=n,
        k=k,
        batch=batch_size,
        first=first,
        last=last,
        scale=1.0,
        averaged=average.count if average is not None else 0,
        scalars=scalars,
        stride=stride,
    )
    if reduction == "mean":  # 1/|b| as the reference computes it; one size per call
        arguments["scale"] = 1.0 / (min(batch_size * last, n) - batch_size * (last - 1))
    _native.run_epoch(rule, arguments)
    if average is not None:
        average.count += count


# -- full-batch descent on the k × k statistics --------------------------------------------------

#: Epochs per call of the C loop (its loss buffer: 512 KiB); a longer fit makes several calls.
STATISTICS_CHUNK = 65536


@dataclass
class StatisticsRun:
    """What :func:`descend_on_statistics` leaves: updates made, J at each point evaluated, and
    how it ended ("converged", "max_epochs" or "diverged", then at J = losses[-1])."""

    updates: int
    losses: list[float]
    ended: str


def statistics_loop_available() -> bool:
    """True when the compiled full-batch loop can run (the C kernels built, COMPILED on)."""
    return COMPILED and compiled.entry("gd_statistics") is not None


def evaluate_on_statistics(gram: Gram, w: Tensor, reduction: Reduction) -> tuple[float, float]:
    """J(w) and ‖∇J(w)‖ from the k × k statistics, by the C loop's own evaluation (a call that
    makes no update): one call where the torch form takes ten operations, which cost more than
    a small epoch itself. Needs the C kernels (:func:`statistics_evaluation_available`)."""
    loop = compiled.entry("gd_statistics")
    if loop is None:
        raise RuntimeError("descent's C kernels are not built")
    weights = w.detach().contiguous()
    grad, value = torch.empty_like(weights), torch.empty(1, dtype=torch.float64)
    norm, status = torch.empty(1, dtype=torch.float64), torch.empty(1, dtype=torch.int64)
    scale = 1.0 if reduction == "sum" else 1.0 / gram.n
    G, b = gram.gram.contiguous(), gram.moment.contiguous()
    loop(
        G.data_ptr(), b.data_ptr(), float(gram.total), weights.data_ptr(),
        grad.data_ptr(), len(weights), scale, 0.0, 0, 0.0, 0.0, value.data_ptr(),
        norm.data_ptr(), 1, status.data_ptr(),
    )  # fmt: skip
    if int(status) == 2:  # J or ∇J not finite: ‖∇J‖ was not stored
        return float(value), math.nan
    return float(value), float(norm)


def statistics_evaluation_available() -> bool:
    """True when the C kernels are built (whether or not the compiled epochs are switched on:
    both paths monitor their fits the same way)."""
    return compiled.entry("gd_statistics") is not None


def descend_on_statistics(
    gram: Gram,
    w: Tensor,
    lr: float,
    max_epochs: int,
    tol: float,
    tol_loss: float,
    reduction: Reduction,
) -> StatisticsRun:
    """Plain full-batch gradient descent w ← w − η∇J with a constant step, in the C loop
    ``gd_statistics`` (descent/optim/_kernels.c): O(k²) per epoch with no Python in between,
    the loop of ``LinearRegressionGD._descend_on_statistics`` with its stopping rules (which
    runs every other rule, and is this loop's reference in tests/linear/test_epochs.py)."""
    loop = compiled.entry("gd_statistics")
    if loop is None:
        raise RuntimeError("descent's C kernels are not built")
    G, b = gram.gram.contiguous(), gram.moment.contiguous()
    weights = w.detach()
    grad = torch.zeros_like(weights)
    w.grad = grad
    first_norm = torch.zeros(1, dtype=torch.float64)
    status = torch.zeros(1, dtype=torch.int64)
    scale = 1.0 if reduction == "sum" else 1.0 / gram.n
    losses: list[float] = []
    updates = 0
    buffer = torch.empty(min(max_epochs, STATISTICS_CHUNK) + 1, dtype=torch.float64)
    while True:
        chunk = min(max_epochs - updates, STATISTICS_CHUNK)
        made = loop(
            G.data_ptr(), b.data_ptr(), float(gram.total), weights.data_ptr(),
            grad.data_ptr(), len(b), scale, lr, chunk, tol, tol_loss, buffer.data_ptr(),
            first_norm.data_ptr(), int(updates == 0), status.data_ptr(),
        )  # fmt: skip
        # a later call starts by evaluating the point the previous one ended on: kept once
        losses.extend(buffer[: made + 1].tolist()[0 if updates == 0 else 1 :])
        updates += made
        ended = int(status)
        if ended == 1:
            return StatisticsRun(updates, losses, "converged")
        if ended == 2:
            return StatisticsRun(updates, losses, "diverged")
        if updates >= max_epochs:
            return StatisticsRun(updates, losses, "max_epochs")
