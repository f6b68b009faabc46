"""descent.linear's own entries in the C kernels (descent/optim/_kernels.c), bound on first use:
each one's argument types are stated once, here. None when the kernels are not built (or
DESCENT_NO_NATIVE is set): callers then take their numpy or torch path."""

from __future__ import annotations

import ctypes
from functools import cache
from typing import Any

from descent.optim import _native

_POINTER, _DOUBLE, _COUNT = ctypes.c_void_p, ctypes.c_double, ctypes.c_int64

#: name -> (argument types in the C prototype's order, return type)
ENTRIES: dict[str, tuple[tuple[Any, ...], Any]] = {
    # G, b, c, w, ∇J, k, s, η, updates, tol, tol_loss, losses, ‖∇J₀‖, first, status
    "gd_statistics": (
        (_POINTER, _POINTER, _DOUBLE, _POINTER, _POINTER, _COUNT, _DOUBLE, _DOUBLE, _COUNT,
         _DOUBLE, _DOUBLE, _POINTER, _POINTER, _COUNT, _POINTER),
        _COUNT,
    ),
    # x, y, n, d, Σ xᵐ (m ≤ 2d), Σ xᵐ y (m ≤ d)
    "power_sums_f64": ((_POINTER, _POINTER, _COUNT, _COUNT, _POINTER, _POINTER), None),
}
# gd_statistics in G's eigenbasis: the same prototype, with Λ for G, β = Qᵀb for b, z = Qᵀw for w
ENTRIES["gd_eigen_statistics"] = ENTRIES["gd_statistics"]

#: The highest degree power_sums_f64 takes (MAX_POWER in _kernels.c).
MAX_POWER = 64


@cache
def entry(name: str) -> Any:
    """The bound C function ``name`` of :data:`ENTRIES`, or None without the kernels (or in a
    build older than the entry: setup.py build_ext rebuilds them)."""
    library = _native.library()
    function = None if library is None else getattr(library, name, None)
    if function is None:
        return None
    function.argtypes, function.restype = ENTRIES[name]
    return function
