"""The training loop, its data adapters, devices and precisions, and data-parallel training."""

from descent.train.data import BatchSampler
from descent.train.distributed import DistributedError
from descent.train.logs import LogOptions
from descent.train.records import EpochMetrics, TrainResult
from descent.train.trainer import DivergenceError, Trainer

__all__ = [
    "BatchSampler",
    "DistributedError",
    "DivergenceError",
    "EpochMetrics",
    "LogOptions",
    "TrainResult",
    "Trainer",
]
