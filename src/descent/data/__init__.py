"""Data for descent: the three batch modes, and (later) datasets."""

from descent.data.batches import Batches, BatchMode

__all__ = ["BatchMode", "Batches"]
