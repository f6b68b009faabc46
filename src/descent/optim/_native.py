"""Calls the single-pass C kernels in ``_kernels.c`` on contiguous float32/float64 CPU tensors.

:data:`KERNELS` is the one statement of each kernel's arguments: it sets the ctypes argument types
and orders the arguments of every call, which passes them by name (``run("adamax", [dict(p=…,
g=…, …)])``), so no call site repeats an argument order. ctypes itself checks nothing (two swapped
doubles would run), so a test reads the C prototypes in ``_kernels.c`` and compares them with this
table.

:data:`TWO_PASS` states the kernels of the rules whose step needs sums (LAMB's and LARS's trust
ratios, Prodigy's d): pass 1 returns two sums per tensor, the rule turns them into its scalars on
the host, pass 2 applies (LAMB's and LARS's kernels, whose ratio needs only their own tensor's
sums, do all three in C). :func:`run` runs a kernel over all
its jobs in one C call per dtype (``<kernel>_<suffix>_many``).

The kernels parallelize with OpenMP on torch's own thread pool (see ``_kernels.c``). ``available()``
is False when the extension was not built (no C compiler at install) or DESCENT_NO_NATIVE is set;
the rules then run their foreach formulation.

The same file holds the epoch loop of descent.linear's stochastic modes (:func:`run_epoch`): one C
call per epoch that computes each example's (or mini-batch's) gradient from the basis rows and
applies a rule's step, the very step function the kernel of that rule runs. Its per-rule entries
``<rule>_epoch`` take :data:`EPOCH_ARGUMENTS`, then the rule's state tensors and ints from
:data:`KERNELS`; the rule's doubles come per update as the rows of one array, in KERNELS' order.
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import importlib.util
import os
from collections.abc import Iterator, Mapping, Sequence
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
    # θ ← θ − η g rounded once, as torch's add_(g, alpha=−η) (which the SGD rule calls) rounds it
    "sgd": (("p", "g"), (("lr", "double"), ("wd", "double"), ("sign", "double"))),
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
    "lion": (
        ("p", "g", "m"),
        (
            ("lr", "double"),
            ("beta1", "double"),
            ("beta2", "double"),
            ("wd", "double"),
            ("sign", "double"),
        ),
    ),
    # Schedule-Free SGD (adaptive 0: v is never read) and AdamW (adaptive 1); c_y = η(β₁(1−cₜ) − 1)
    "schedule_free": (
        ("p", "g", "z", "v"),
        (
            ("lr", "double"),
            ("ckp1", "double"),
            ("c_y", "double"),
            ("beta2", "double"),
            ("bias2", "double"),
            ("eps", "double"),
            ("wd", "double"),
            ("sign", "double"),
            ("adaptive", "int"),
        ),
    ),
}

#: The two-pass kernels (no ``<rule>_epoch`` entry: they sum over a tensor, so they are no
#: per-element step the linear epoch loop could run): same form as :data:`KERNELS`. ``sums`` is a
#: float64 tensor of 2 that pass 1 writes (its two totals); the element count is ``p``'s. LAMB's
#: ratio needs only its own tensor's sums, so its kernel runs both passes and the ratio itself.
TWO_PASS: dict[str, tuple[tuple[str, ...], tuple[tuple[str, str], ...]]] = {
    # LAMB's whole step, both passes in one call: the moments and sums = (Σθ², Σu²) with
    # u = m̂/(√v̂ + ε) + λθ (u written to ``u`` when keep, a buffer of p's size, else recomputed
    # in pass 2), the trust ratio r (trust; φ = min(·, max_weight_norm), +∞ for none), then
    # θ ← θ − lr·r·u. The tensors are pipelined (lamb_pipeline): consecutive kept tensors need
    # distinct ``u`` buffers.
    "lamb_step": (
        ("p", "g", "m", "v", "u"),
        (
            ("beta1", "double"),
            ("beta2", "double"),
            ("bias1", "double"),
            ("bias2", "double"),
            ("eps", "double"),
            ("wd", "double"),
            ("sign", "double"),
            ("lr", "double"),
            ("max_weight_norm", "double"),
            ("keep", "int"),
            ("trust", "int"),
            ("eps_in_trust", "int"),
        ),
    ),
    # LARS's whole step, both passes in one call: (trust) sums = (Σθ², Σg²) and the ratio
    # r = κ‖θ‖/(‖g‖ + λ‖θ‖), then u = r(±g + λθ) (r = 1, λ = 0 when not trust), the momentum
    # buffer and θ
    "lars_step": (
        ("p", "g", "b"),
        (
            ("trust_coefficient", "double"),
            ("wd", "double"),
            ("momentum", "double"),
            ("lr", "double"),
            ("sign", "double"),
            ("lr_in_buffer", "int"),
            ("trust", "int"),
        ),
    ),
    # Prodigy pass 1: g = ±g + λθ ; s ← β₃s + c_s g (when ``update``) ; sums = (Σ g(θ₀ − θ), Σ|s|)
    "prodigy_sums": (
        ("p", "g", "p0", "s", "sums"),
        (
            ("beta3", "double"),
            ("c_s", "double"),
            ("wd", "double"),
            ("sign", "double"),
            ("update", "int"),
        ),
    ),
    # Prodigy pass 2: (update) m ← β₁m + c_m g, v ← β₂v + (c_v g)g ; (apply) θ ← θ − decay·θ
    # (decay ≠ 0), θ ← θ − step·m/(√v + d_eps)
    "prodigy_apply": (
        ("p", "g", "m", "v"),
        (
            ("c_m", "double"),
            ("c_v", "double"),
            ("beta1", "double"),
            ("beta2", "double"),
            ("wd", "double"),
            ("sign", "double"),
            ("decay", "double"),
            ("step", "double"),
            ("d_eps", "double"),
            ("update", "int"),
            ("apply", "int"),
        ),
    ),
}


#: The arguments every ``<rule>_epoch`` entry takes first (C types), before the rule's state
#: tensors (KERNELS' tensors after ``p`` and ``g``) and its ints.
EPOCH_ARGUMENTS: tuple[tuple[str, str], ...] = (
    ("Phi", "tensor"),
    ("y", "tensor"),
    ("order", "tensor"),
    ("w", "tensor"),
    ("grad", "tensor"),
    ("avg", "tensor"),
    ("n", "int64_t"),
    ("k", "int64_t"),
    ("batch", "int64_t"),
    ("first", "int64_t"),
    ("last", "int64_t"),
    ("scale", "double"),
    ("averaged", "int64_t"),
    ("scalars", "tensor"),
    ("stride", "int64_t"),
)
_CTYPES["int64_t"] = ctypes.c_int64
_CTYPES["tensor"] = ctypes.c_void_p


@cache
def epoch_signature(rule: str) -> tuple[tuple[str, str], ...]:
    """(name, C type) of every argument of ``<rule>_epoch``, in order, from the two tables."""
    tensors, scalars = KERNELS[rule]
    return (
        *EPOCH_ARGUMENTS,
        *((name, "tensor") for name in tensors[2:]),
        *((name, kind) for name, kind in scalars if kind == "int"),
    )


def epoch_scalar_names(rule: str) -> list[str]:
    """The rule's per-update doubles, in the column order of ``run_epoch``'s ``scalars``."""
    return [name for name, kind in KERNELS[rule][1] if kind == "double"]


@cache
def library() -> ctypes.CDLL | None:
    """The C kernels with every table row bound (argument types from KERNELS and TWO_PASS), or
    None when they are not built or DESCENT_NO_NATIVE is set; loaded once, shared by the update
    rules and descent.linear's compiled loops."""
    if os.environ.get("DESCENT_NO_NATIVE"):
        return None
    spec = importlib.util.find_spec("descent.optim._kernels")
    if spec is None or spec.origin is None:
        return None
    # torch is imported (and its libgomp loaded) before the kernels, so they share its pool.
    loaded = ctypes.CDLL(spec.origin)
    for name, (tensors, scalars) in {**KERNELS, **TWO_PASS}.items():
        for suffix in _SUFFIX.values():
            function = getattr(loaded, f"{name}_{suffix}")
            function.argtypes = (
                [ctypes.c_void_p] * len(tensors)
                + [ctypes.c_int64]
                + [_CTYPES[kind] for _, kind in scalars]
            )
            function.restype = None
            many = getattr(loaded, f"{name}_{suffix}_many")
            many.argtypes = [ctypes.c_int64, *[ctypes.c_void_p] * 4]
            many.restype = None
    loaded.add_one_f32_many.argtypes = [ctypes.c_int64, ctypes.c_void_p]
    loaded.add_one_f32_many.restype = None
    for name in KERNELS:
        epoch = getattr(loaded, f"{name}_epoch")
        epoch.argtypes = [_CTYPES[kind] for _, kind in epoch_signature(name)]
        epoch.restype = None
    return loaded


def available() -> bool:
    """True when the C kernels were built and DESCENT_NO_NATIVE is not set."""
    return library() is not None


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


_captured: list[tuple[str, Mapping[str, Any]]] | None = None


@contextlib.contextmanager
def capture() -> Iterator[list[tuple[str, Mapping[str, Any]]]]:
    """Within the block, :func:`run` records each (kernel, job) in the list it yields instead of
    running it: a rule's step then computes and records its per-update scalars (and advances its
    step counts) without touching any tensor, which the epoch loop of descent.linear uses to run
    the same updates in C with exactly the scalars the rule would have passed."""
    global _captured
    outer, _captured = _captured, []
    try:
        yield _captured
    finally:
        _captured = outer


Layout = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], frozenset[str]]


def counter_pointers(counters: Sequence[Tensor]) -> ctypes.Array | None:
    """The data pointers of ``counters`` (the rules' step counts) as one array for
    :func:`add_one_at`, or None when the kernels are not built or a counter is anything but a
    float32 CPU scalar tensor (the caller then adds with torch)."""
    if library() is None:
        return None
    for counter in counters:
        if counter.dtype != torch.float32 or not counter.is_cpu or counter.dim() != 0:
            return None
    return (ctypes.c_void_p * len(counters))(*(counter.data_ptr() for counter in counters))


def add_one_at(pointers: ctypes.Array) -> None:
    """t ← t + 1 for the counters behind ``pointers`` (:func:`counter_pointers`), in one C call
    (the caller keeps the counters alive). Runs under :func:`capture` too: it records no job."""
    library().add_one_f32_many(len(pointers), pointers)  # type: ignore[union-attr]


def add_one(counters: Sequence[Tensor]) -> bool:
    """t ← t + 1 for every counter in ``counters`` in one C call; False, with nothing done, where
    :func:`counter_pointers` refuses them."""
    pointers = counter_pointers(counters)
    if pointers is None:
        return False
    add_one_at(pointers)
    return True


@cache
def _layout(kernel: str) -> Layout:
    """(tensor names, double names, int names, all names) of a kernel, from its table row."""
    tensors, scalars = KERNELS[kernel] if kernel in KERNELS else TWO_PASS[kernel]
    doubles = tuple(name for name, kind in scalars if kind == "double")
    ints = tuple(name for name, kind in scalars if kind == "int")
    return tensors, doubles, ints, frozenset((*tensors, *doubles, *ints))


def run(kernel: str, jobs: Sequence[Mapping[str, Any]]) -> None:
    """Run ``kernel`` on each job: every argument of :data:`KERNELS` ``[kernel]`` (or
    :data:`TWO_PASS`) by name (tensors of equal size, then the scalars; a tensor after the first
    may be given by its address, an int). A missing or unknown name is an error, not a silent
    shift. One C call per dtype runs all the jobs
    (``<kernel>_<suffix>_many``), in order."""
    if not jobs:
        return
    loaded = library()
    if loaded is None:
        raise RuntimeError("descent's C kernels are not built")
    tensor_names, double_names, int_names, expected = _layout(kernel)
    for job in jobs:
        if job.keys() != expected:
            raise TypeError(f"kernel {kernel!r} takes {sorted(expected)}, got {sorted(job)}")
    if _captured is not None:
        if kernel in TWO_PASS:  # its caller would read sums that were never computed
            raise RuntimeError(f"the two-pass kernel {kernel!r} cannot be captured")
        _captured.extend((kernel, job) for job in jobs)
        return
    batches: dict[str, list[Mapping[str, Any]]] = {}
    for job in jobs:
        batches.setdefault(_SUFFIX[job[tensor_names[0]].dtype], []).append(job)
    for suffix, batch in batches.items():
        count = len(batch)
        try:
            pointers = [job[name].data_ptr() for job in batch for name in tensor_names]
        except AttributeError:  # some tensors given by their address (an int)
            pointers = [
                value if type(value) is int else value.data_ptr()
                for job in batch
                for value in [job[name] for name in tensor_names]
            ]
        # array.array packs a list several times faster than a ctypes array; the C side reads
        # each through the address (the arrays live until the call returns)
        packed = (
            array.array("q", pointers),
            array.array("q", [job[tensor_names[0]].numel() for job in batch]),
            array.array("d", [job[name] for job in batch for name in double_names] or [0.0]),
            array.array("i", [job[name] for job in batch for name in int_names] or [0]),
        )
        getattr(loaded, f"{kernel}_{suffix}_many")(
            count, *(values.buffer_info()[0] for values in packed)
        )


def run_columns(kernel: str, columns: Mapping[str, Any], dtype: torch.dtype | None = None) -> None:
    """:func:`run` with each argument named once: a list (one value per job, in job order) or a
    single value every job takes. For the steps over hundreds of small tensors, where a
    dictionary per job costs more than the kernels: a scalar every job shares is packed once and
    repeated, a list of tensors is read with one ``data_ptr`` call each. ``dtype``: the dtype of
    every tensor when the caller has checked it (a step plan), so it is not read again here."""
    tensor_names, double_names, int_names, expected = _layout(kernel)
    if columns.keys() != expected:
        raise TypeError(f"kernel {kernel!r} takes {sorted(expected)}, got {sorted(columns)}")
    firsts = columns[tensor_names[0]]
    count = len(firsts)
    if not count:
        return
    for name, value in columns.items():
        if isinstance(value, list) and len(value) != count:
            raise TypeError(f"kernel {kernel!r}: {name} has {len(value)} values, not {count}")
    mixed = False
    if dtype is None:
        dtype = firsts[0].dtype
        mixed = any(t.dtype != dtype for t in firsts)
    loaded = library()
    if _captured is not None or loaded is None or mixed or dtype not in _SUFFIX:
        # the general path: capture, mixed dtypes (one C call each), or its error
        run(
            kernel, [{name: _at(value, j) for name, value in columns.items()} for j in range(count)]
        )
        return
    width = len(tensor_names)
    pointers = array.array("q", bytes(8 * width * count))
    for column, name in enumerate(tensor_names):
        value = columns[name]
        if not isinstance(value, list):
            addresses = array.array("q", [_address(value)]) * count
        else:
            try:
                addresses = array.array("q", map(_DATA_PTR, value))
            except TypeError:  # some given by their address (an int)
                addresses = array.array("q", map(_address, value))
        pointers[column::width] = addresses
    # array.array packs a list several times faster than a ctypes array; the C side reads each
    # through the address (the arrays live until the call returns)
    packed = (
        pointers,
        array.array("q", map(_NUMEL, firsts)),
        _scalars(columns, double_names, "d", count),
        _scalars(columns, int_names, "i", count),
    )
    getattr(loaded, f"{kernel}_{_SUFFIX[dtype]}_many")(
        count, *(packed_values.buffer_info()[0] for packed_values in packed)
    )


_DATA_PTR = Tensor.data_ptr
_NUMEL = Tensor.numel


def _address(value: Tensor | int) -> int:
    return value if type(value) is int else value.data_ptr()


def _scalars(
    columns: Mapping[str, Any], names: tuple[str, ...], code: str, count: int
) -> array.array:
    """The named scalar columns interleaved job by job (the C side's order): one row repeated
    when every job shares them."""
    if not names:
        return array.array(code, [0])
    values = [columns[name] for name in names]
    if not any(isinstance(value, list) for value in values):
        return array.array(code, values) * count
    rows = [value if isinstance(value, list) else [value] * count for value in values]
    return array.array(code, [item for row in zip(*rows, strict=True) for item in row])


def _at(value: Any, j: int) -> Any:
    return value[j] if isinstance(value, list) else value


def run_epoch(rule: str, arguments: Mapping[str, Any]) -> None:
    """Run ``<rule>_epoch`` with every argument of :func:`epoch_signature` by name: tensors
    (float64 and contiguous; ``order`` int64; ``avg`` may be None), counts and flags. The caller
    keeps the tensors alive and sized as the C loop reads them (``scalars`` holds
    ``(last − first) × len(epoch_scalar_names(rule))`` doubles, or one row with ``stride`` 0)."""
    loaded = library()
    if loaded is None:
        raise RuntimeError("descent's C kernels are not built")
    signature = epoch_signature(rule)
    if len(arguments) != len(signature) or any(name not in arguments for name, _ in signature):
        raise TypeError(
            f"{rule}_epoch takes {sorted(name for name, _ in signature)}, got {sorted(arguments)}"
        )
    values = []
    for name, kind in signature:
        value = arguments[name]
        if kind == "tensor" and value is not None:
            expected = torch.int64 if name == "order" else torch.float64
            if value.dtype != expected or not value.is_contiguous() or value.device.type != "cpu":
                raise TypeError(f"{rule}_epoch: {name} must be a contiguous CPU {expected}")
            value = value.data_ptr()
        values.append(value)
    getattr(loaded, f"{rule}_epoch")(*values)
