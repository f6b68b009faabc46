"""Gradient checks: the analytic gradient (autograd's, or one you give) against a numeric one.

The lecture: compare the analytic gradient with the centered difference (f(x+h) − f(x−h)) / 2h,
h ≈ 1e-5; the forward difference (f(x+h) − f(x)) / h is worse (error O(h) instead of O(h²)).
:func:`check` does that in float64 on a copy (the caller's model, its dtype, gradients and RNG
state are left as they were), on every coordinate of small tensors and a seeded sample of large
ones, and gives a verdict per tensor on the usual scale of the relative error
|a − n| / max(|a| + |n|, tiny):

    ≤ 1e-7 correct · ≤ 1e-4 fine only where the function has kinks · ≤ 1e-2 suspicious · wrong

Kinks: while evaluating f(x + h) and f(x − h), every piecewise operation (relu, abs, max, clamp,
max-pooling, comparisons feeding a where, …) records which branch it took; a coordinate whose two
evaluations took different branches straddles a kink, is flagged, and does not fail the check (the
difference quotient there is no derivative of anything).

Randomness (dropout): torch's RNG is reset to the same seed before every evaluation, so each sees
the same mask. If two evaluations at the same point still differ (randomness from numpy, Python's
random, …), the check refuses with a clear message instead of reporting noise as wrong gradients.
"""

from descent.gradcheck.check import check
from descent.gradcheck.report import (
    CORRECT,
    KINK_LEVEL,
    SUSPICIOUS,
    Coordinate,
    GradcheckResult,
    NondeterministicError,
    TensorReport,
    verdict_of,
)

__all__ = [
    "CORRECT",
    "KINK_LEVEL",
    "SUSPICIOUS",
    "Coordinate",
    "GradcheckResult",
    "NondeterministicError",
    "TensorReport",
    "check",
    "verdict_of",
]
