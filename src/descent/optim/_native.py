"""Calls the single-pass C kernels in ``_kernels.c`` on contiguous float32/float64 CPU tensors.

:data:`KERNELS` is the one statement of each kernel's arguments: it sets the ctypes argument types
and orders the arguments of every call, which passes them by name (``run("adamax", [dict(p=…,
g=…, …)])``), so no call site repeats an argument order. ctypes itself checks nothing (two swapped
doubles would run), so a test reads the C prototypes in ``_kernels.c`` and compares them with this
table.

The kernels parallelize with OpenMP on torch's own thread pool (see ``_kernels.c``). ``available()``
is False when the extension was not built (no C compiler at install) or DESCENT_NO_NATIVE is set;
the rules then run their foreach formulation.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import torch
from torch import Tensor

_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
_CTYPES = {"double": ctypes.c_double, "int": ctypes.c_int}

#: kernel -> (tensor arguments, then (scalar argument, C type) after the element count ``n``),
#: in the C prototype's order. Tensors a variant does not use (RMSprop's ``ebar`` and ``b``) may be
#: given as any tensor of the right dtype: the kernel never reads them.
KERNELS: dict[str, tuple[tuple[str, ...], tuple[tuple[str, str], ...]]] = {
    "rmsprop": (
        ("p", "g", "e", "ebar", "b"),
        (
            ("lr", "double"),
            ("rho", "double"),
            ("eps", "double"),
            ("wd", "double"),
            ("sign", "double"),
            ("inside", "int"),
            ("centered", "int"),
            ("momentum", "double"),
        ),
    ),
    "adadelta": (
        ("p", "g", "eg", "ed"),
        (
            ("lr", "double"),
            ("rho", "double"),
            ("eps", "double"),
            ("wd", "double"),
            ("sign", "double"),
        ),
    ),
    "adamax": (
        ("p", "g", "m", "u"),
        (
            ("step_size", "double"),
            ("beta1", "double"),
            ("beta2", "double"),
            ("eps", "double"),
            ("wd", "double"),
            ("sign", "double"),
            ("eps_in_max", "int"),
        ),
    ),
    "nadam": (
        ("p", "g", "m", "v"),
        (
            ("c_g", "double"),
            ("c_m", "double"),
            ("beta1", "double"),
            ("beta2", "double"),
            ("bias2", "double"),
            ("eps", "double"),
            ("wd", "double"),
            ("sign", "double"),
        ),
    ),
    "nesterov": (
        ("p", "g", "v"),
        (("lr", "double"), ("momentum", "double"), ("wd", "double"), ("sign", "double")),
    ),
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
    for name, (tensors, scalars) in KERNELS.items():
        for suffix in _SUFFIX.values():
            function = getattr(library, f"{name}_{suffix}")
            function.argtypes = (
                [ctypes.c_void_p] * len(tensors)
                + [ctypes.c_int64]
                + [_CTYPES[kind] for _, kind in scalars]
            )
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


def run(kernel: str, jobs: Sequence[Mapping[str, Any]]) -> None:
    """Run ``kernel`` on each job: every argument of :data:`KERNELS` ``[kernel]`` by name (tensors
    of equal size, then the scalars). A missing or unknown name is an error, not a silent shift."""
    if not jobs:
        return
    library = _library()
    if library is None:
        raise RuntimeError("descent's C kernels are not built")
    tensor_names, scalar_specs = KERNELS[kernel]
    expected = set(tensor_names) | {name for name, _ in scalar_specs}
    for job in jobs:
        if set(job) != expected:
            raise TypeError(f"kernel {kernel!r} takes {sorted(expected)}, got {sorted(job)}")
        tensors = [job[name] for name in tensor_names]
        function = getattr(library, f"{kernel}_{_SUFFIX[tensors[0].dtype]}")
        function(
            *(t.data_ptr() for t in tensors),
            tensors[0].numel(),
            *(job[name] for name, _ in scalar_specs),
        )
