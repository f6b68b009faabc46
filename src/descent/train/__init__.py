"""The training loop and its callbacks."""

from descent.train.trainer import (
    DivergenceError,
    EpochMetrics,
    LogOptions,
    Trainer,
    TrainResult,
)

__all__ = ["DivergenceError", "EpochMetrics", "LogOptions", "TrainResult", "Trainer"]
