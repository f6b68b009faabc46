"""Diagnosing training: weight initialization (activations and gradients layer by layer), and why
training stalled (curvature, plateau, saddle, local minimum, gradient noise), with a remedy."""

# The initialization report and its remedy (LSUV).
from descent.diagnose.init import (  # noqa: F401
    InitReport,
    LayerReport,
    ParameterReport,
    Verdict,
    init_report,
    lsuv,
)
