"""Full-batch gradient descent on the k × k statistics ΦᵀΦ, Φᵀy, yᵀy of LinearRegressionGD: the
C loop for the plain rule with a constant step (``gd_statistics`` in descent/optim/_kernels.c)
and its Python reference, which runs every rule through its optimizer. Both stop by the same
rules and end with a :class:`~descent.linear.epochs.DescentRun`; tests/linear/test_epochs.py
holds them equal."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from descent.linear import compiled, epochs
from descent.linear.epochs import DescentRun
from descent.linear.solve import Gram, Reduction
from descent.optim.base import DescentOptimizer

#: Epochs per call of the C loop (its loss buffer: 512 KiB); a longer fit makes several calls.
STATISTICS_CHUNK = 65536


def statistics_loop_available() -> bool:
    """True when the compiled full-batch loop can run (the C kernels built, COMPILED on)."""
    return epochs.COMPILED and compiled.entry("gd_statistics") is not None


def descend_with_optimizer(
    gram: Gram,
    w: Tensor,
    optimizer: DescentOptimizer,
    plain_step: float | None,
    max_epochs: int,
    tol: float,
    tol_loss: float,
    reduction: Reduction,
) -> DescentRun:
    """Full-batch gradient descent on the k × k statistics with any rule: per epoch one product
    ΦᵀΦ w gives both J(w) and ∇J(w), written into one gradient buffer, and the optimizer steps
    (or, with ``plain_step`` η, w ← w − η∇J in place without the optimizer's machinery: the
    same iterates). The reference of :func:`descend_on_statistics`, with its stopping rules."""
    grad = torch.zeros_like(w)
    w.grad = grad
    losses: list[Tensor] = []
    first_norm = 0.0
    with torch.no_grad():
        for epoch in range(max_epochs + 1):
            value, _ = gram.evaluate(w, reduction, out=grad)
            losses.append(value)
            norm = float(torch.linalg.vector_norm(grad))
            if not math.isfinite(norm) or not math.isfinite(float(value)):
                return DescentRun(epoch, torch.stack(losses).tolist(), "diverged")
            if epoch == 0:
                first_norm = norm
                done = norm == 0.0
            else:
                done = norm <= tol * first_norm
                if tol_loss > 0 and not done:
                    previous, current = float(losses[-2]), float(value)
                    done = abs(previous - current) <= tol_loss * current
            if done or epoch == max_epochs:
                return DescentRun(
                    epoch, torch.stack(losses).tolist(), "converged" if done else "max_epochs"
                )
            if plain_step is not None:
                w.sub_(grad, alpha=plain_step)
            else:
                optimizer.step()
    raise AssertionError("unreachable: the loop returns at epoch max_epochs")  # pragma: no cover


def descend_on_statistics(
    gram: Gram,
    w: Tensor,
    lr: float,
    max_epochs: int,
    tol: float,
    tol_loss: float,
    reduction: Reduction,
) -> DescentRun:
    """Plain full-batch gradient descent w ← w − η∇J with a constant step, in the C loop
    ``gd_statistics`` (descent/optim/_kernels.c): O(k²) per epoch with no Python in between,
    with the stopping rules of :func:`descend_with_optimizer` (which runs every other rule, and
    is this loop's reference in tests/linear/test_epochs.py)."""
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
            return DescentRun(updates, losses, "converged")
        if ended == 2:
            return DescentRun(updates, losses, "diverged")
        if updates >= max_epochs:
            return DescentRun(updates, losses, "max_epochs")
