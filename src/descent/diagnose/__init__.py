"""Diagnosing training: weight initialization (activations and gradients layer by layer), and why
training stalled (curvature, plateau, saddle, local minimum, gradient noise), with a remedy."""

from descent.diagnose import curvature
from descent.diagnose.lr_find import RangeTest, lr_find
from descent.diagnose.stall import StallVerdict, Thresholds, stall

__all__ = ["RangeTest", "StallVerdict", "Thresholds", "curvature", "lr_find", "stall"]
