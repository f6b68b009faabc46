"""Full-batch gradient descent on the k × k statistics ΦᵀΦ, Φᵀy, yᵀy of LinearRegressionGD: the
C loops for the plain rule with a constant step (``gd_statistics``, O(k²) an epoch, then, for a
fit that outlasts its first chunk, ``gd_eigen_statistics`` in ΦᵀΦ's eigenbasis, O(k) an epoch;
both in descent/optim/_kernels.c) and their Python reference, which runs every rule through its
optimizer. All stop by the same rules and end with a :class:`~descent.linear.epochs.DescentRun`;
tests/linear/test_full_batch.py and test_epochs.py hold them equal."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from descent.linear import compiled, epochs
from descent.linear.epochs import DescentRun
from descent.linear.solve import Gram, Reduction
from descent.optim.base import DescentOptimizer
from descent.threads import one_torch_thread

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


#: Epochs of ``gd_statistics`` (O(k²) each) before a fit that has not stopped moves to G's
#: eigenbasis (O(k) an epoch after an O(k³) eigendecomposition): about what the move costs, so a
#: fit pays at most twice the better of the two loops, and a short fit runs exactly as the plain
#: loop alone. Measured (one core): the move costs 600–850 epochs of gd_statistics for every k
#: from 11 to 301 (45 µs at k = 11, 0.37 ms at k = 81, 7.9 ms at k = 301).
EIGENBASIS_AFTER = 768


def eigendecomposition(G: Tensor) -> tuple[Tensor, Tensor]:
    """``torch.linalg.eigh(G)`` on one of torch's threads (descent.threads): at k = 81 a second
    thread saves nothing, and right after the pass (numpy's BLAS workers still spinning) the
    wait for torch's second worker made the median 40–94 ms instead of 0.65 ms (2 threads on 2
    loaded cores, benchmarks/linear_fit.py's correlated shape)."""
    with one_torch_thread():
        return torch.linalg.eigh(G)


class _Chunks:
    """Calls of a C loop on the statistics (``gd_statistics`` or ``gd_eigen_statistics``: one
    prototype), STATISTICS_CHUNK epochs at a time, collecting the loss history across calls and
    loops: a later call starts by evaluating the point the previous one ended on, kept once."""

    def __init__(
        self, total: float, scale: float, lr: float, tol: float, tol_loss: float, max_epochs: int
    ) -> None:
        self.settings = (total, scale, lr, tol, tol_loss)
        self.max_epochs = max_epochs
        self.buffer = torch.empty(min(max_epochs, STATISTICS_CHUNK) + 1, dtype=torch.float64)
        self.first_norm = torch.zeros(1, dtype=torch.float64)
        self.status = torch.zeros(1, dtype=torch.int64)
        self.losses: list[float] = []
        self.updates = 0

    def run(self, loop: Any, G: Tensor, b: Tensor, w: Tensor, grad: Tensor, until: int) -> str:
        """Epochs of ``loop`` from ``w`` until a stopping rule holds ("converged", "diverged")
        or ``until`` updates in all ("max_epochs" once that is max_epochs, else "")."""
        total, scale, lr, tol, tol_loss = self.settings
        while True:
            chunk = min(until - self.updates, STATISTICS_CHUNK)
            made = loop(
                G.data_ptr(), b.data_ptr(), total, w.data_ptr(), grad.data_ptr(), len(b), scale,
                lr, chunk, tol, tol_loss, self.buffer.data_ptr(), self.first_norm.data_ptr(),
                int(not self.losses), self.status.data_ptr(),
            )  # fmt: skip
            self.losses.extend(self.buffer[: made + 1].tolist()[1 if self.losses else 0 :])
            self.updates += made
            ended = int(self.status)
            if ended:
                return "converged" if ended == 1 else "diverged"
            if self.updates >= self.max_epochs:
                return "max_epochs"
            if self.updates >= until:
                return ""


def descend_on_statistics(
    gram: Gram,
    w: Tensor,
    lr: float,
    max_epochs: int,
    tol: float,
    tol_loss: float,
    reduction: Reduction,
) -> DescentRun:
    """Plain full-batch gradient descent w ← w − η∇J with a constant step, in C with no Python
    in between, with the stopping rules of :func:`descend_with_optimizer` (which runs every
    other rule, and is this loop's reference in tests/linear/test_full_batch.py).

    The first :data:`EIGENBASIS_AFTER` epochs run ``gd_statistics``: per epoch one product
    p = Gw (O(k²)) gives J(w) = s(c − 2bᵀw + wᵀp) and ∇J = 2s(p − b). A fit still running
    after them continues in the eigenbasis of G = QΛQᵀ (one ``torch.linalg.eigh``), where
    gradient descent on the quadratic J is k decoupled scalar recurrences (it is
    rotation-equivariant: z = Qᵀw, β = Qᵀb, ‖Qx‖ = ‖x‖)::

        zᵢ ← zᵢ − η·2s(λᵢzᵢ − βᵢ),   J = s(c − 2βᵀz + zᵀΛz),   ‖∇J‖ = ‖2s(Λz − β)‖

        (s = 1 for "sum", 1/n for "mean"; c = yᵀy)

    in ``gd_eigen_statistics``, O(k) an epoch, and w = Qz at the end: the same iterates, loss
    history, epoch count and stopping reason up to rounding (1e-10 relative in the tests), at
    0.4 µs → 0.03 µs an epoch for k = 81. Cauchy, "Méthode générale pour la résolution des
    systèmes d'équations simultanées" (1847); the eigenbasis view: Goh, "Why Momentum Really
    Works", Distill (2017).
    """
    loop, eigen_loop = compiled.entry("gd_statistics"), compiled.entry("gd_eigen_statistics")
    if loop is None:
        raise RuntimeError("descent's C kernels are not built")
    G, b = gram.gram.contiguous(), gram.moment.contiguous()
    weights = w.detach()
    grad = torch.zeros_like(weights)
    w.grad = grad
    scale = 1.0 if reduction == "sum" else 1.0 / gram.n
    chunks = _Chunks(float(gram.total), scale, lr, tol, tol_loss, max_epochs)
    # a build of the kernels older than gd_eigen_statistics: gd_statistics to the end
    first_chunk = EIGENBASIS_AFTER if eigen_loop is not None else max_epochs
    ended = chunks.run(loop, G, b, weights, grad, min(max_epochs, first_chunk))
    if not ended:
        eigenvalues, vectors = eigendecomposition(G)
        z, beta = vectors.T @ weights, vectors.T @ b
        eigen_grad = torch.zeros_like(z)
        ended = chunks.run(eigen_loop, eigenvalues, beta, z, eigen_grad, max_epochs)
        torch.matmul(vectors, z, out=weights)
        torch.matmul(vectors, eigen_grad, out=grad)
    return DescentRun(chunks.updates, chunks.losses, ended)
