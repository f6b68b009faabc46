"""torch's intra-op thread count for a block of work: one place for the one-thread switch that
small factorizations and background analyses use."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """torch's intra-op threads at one inside the block (in the calling thread), restored after.

    Two uses, both measured on a 2-core machine:
    - a small factorization right after another BLAS library's pass (numpy's OpenBLAS, whose
      idle workers still spin): torch's two-thread ``eigh`` of an 81 × 81 matrix waited a median
      40–94 ms for its second worker, against 0.65 ms on one thread;
    - an analysis in a background thread: a thread that runs OpenMP regions has a team of its
      own, whose workers sleep between the analysis's operations (its Python runs between
      them), so each operation waited for them to wake (a forward pass with its gradient's
      graph: 42 ms instead of 1.6 ms on 2 loaded cores). On one thread its figures also do not
      depend on the thread count.

    (torch.set_num_threads also sizes a process-wide pool that only QNNPACK's quantized
    operators use.)"""
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
