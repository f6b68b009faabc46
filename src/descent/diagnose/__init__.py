"""Diagnosing training: weight initialization (activations and gradients layer by layer), and why
training stalled (curvature, plateau, saddle, local minimum, gradient noise), with a remedy."""

# The initialization report and its remedy (LSUV).
from descent.diagnose import curvature
from descent.diagnose.init import (
    InitReport,
    LayerReport,
    ParameterReport,
    Verdict,
    init_report,
    lsuv,
)
from descent.diagnose.lr_find import RangeTest, lr_find
from descent.diagnose.stall import StallVerdict, Thresholds, stall

__all__ = [
    "InitReport",
    "LayerReport",
    "ParameterReport",
    "RangeTest",
    "StallVerdict",
    "Thresholds",
    "Verdict",
    "curvature",
    "init_report",
    "lr_find",
    "lsuv",
    "stall",
]
