"""Calls the single-pass C kernels in ``_kernels.c`` on contiguous float32/float64 tensors.

The kernels parallelize with OpenMP on torch's own thread pool (see ``_kernels.c``). ``available()``
is False when the extension was not built (no C compiler at install) or DESCENT_NO_NATIVE is set;
callers then use their eager torch path.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
from collections.abc import Sequence
from functools import cache

import torch
from torch import Tensor

_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
_P = ctypes.c_void_p
_I64 = ctypes.c_int64
_D = ctypes.c_double
_INT = ctypes.c_int
# kernel name -> (number of tensor pointers, argument types after the length)
_SIGNATURES: dict[str, tuple[int, list]] = {
    "rmsprop": (5, [_D, _D, _D, _D, _D, _INT, _INT, _D]),
    "adadelta": (4, [_D, _D, _D, _D, _D]),
    "adamax": (4, [_D, _D, _D, _D, _D, _D, _INT]),
    "nadam": (4, [_D, _D, _D, _D, _D, _D, _D, _D]),
    "nesterov": (3, [_D, _D, _D, _D]),
}


@cache
def _library() -> ctypes.CDLL | None:
    if os.environ.get("DESCENT_NO_NATIVE"):
        return None
    spec = importlib.util.find_spec("descent.optim._kernels")
    if spec is None or spec.origin is None:
        return None
    # torch is imported (and its libgomp loaded) before the kernels, so they share its pool.
    library = ctypes.CDLL(spec.origin)
    for name, (pointers, scalars) in _SIGNATURES.items():
        for suffix in _SUFFIX.values():
            function = getattr(library, f"{name}_{suffix}")
            function.argtypes = [_P] * pointers + [_I64, *scalars]
            function.restype = None
    return library


def available() -> bool:
    """True when the C kernels were built and DESCENT_NO_NATIVE is not set."""
    return _library() is not None


def supports(tensors: Sequence[Tensor]) -> bool:
    """The kernels take contiguous CPU tensors of one dtype, float32 or float64."""
    first = tensors[0]
    return (
        first.dtype in _SUFFIX
        and first.device.type == "cpu"
        and all(
            t.dtype == first.dtype and t.device.type == "cpu" and t.is_contiguous() for t in tensors
        )
    )


def run(kernel: str, jobs: Sequence[tuple[Sequence[Tensor], Sequence[float | int]]]) -> None:
    """Run ``kernel`` on each job: (tensors of equal size, scalar hyperparameters).

    Tensors a kernel does not use may be passed as any tensor of the right dtype (their pointer
    is never read).
    """
    if not jobs:
        return
    library = _library()
    if library is None:
        raise RuntimeError("descent's C kernels are not built")
    for tensors, scalars in jobs:
        function = getattr(library, f"{kernel}_{_SUFFIX[tensors[0].dtype]}")
        function(*(t.data_ptr() for t in tensors), tensors[0].numel(), *scalars)
