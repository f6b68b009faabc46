"""Data for descent: the three batch modes (:mod:`descent.data.batches`), tables from CSV and
Parquet (:mod:`descent.data.tables`), image data sets (:mod:`descent.data.images`: digits, MNIST
and Fashion-MNIST IDX files, CIFAR-10 batches) and image folders (:mod:`descent.data.folder`)."""

from descent.data.batches import Batches, BatchMode

__all__ = ["BatchMode", "Batches"]
