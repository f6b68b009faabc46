"""Time one optimizer step, descent vs its peers, in two regimes: large tensors (by default in 10
tensors, as many float32 parameters as make one array over them twice the last-level cache:
16.8 M for 32 MiB) and many small ones (ResNet-50's 161 parameter shapes at ¼ width, where the
per-tensor overhead of a step shows).

For every rule torch has: descent's default (fast) path, torch's fastest implementation of the
same rule (fused where torch has one, else the faster of foreach and for-loop) and torch's default
path. For the rules torch lacks (Lion, LAMB, LARS, Prodigy, Schedule-Free): the authors' or the
usual package (the faster of its foreach and for-loop paths where it has both), set to compute
the same step. Muon and SOAP, whose cost is matrix work, are timed per parameter shape (several
matrices of one shape) against torch.optim.Muon and heavyball.SOAP. Everything is measured in
this one run, stepped in turn so that each sees the same machine.

The floor is the bytes a single-pass step must move per parameter (docs/optimizers.md, "What a
step costs") over the bandwidth of an in-place update x += αy (a step's access pattern: it
rewrites what it reads, so unlike a copy it pays no write-allocate read), measured on a working
set several times the last-level cache (read from the OS). At the default size no array of the
step (θ, g, a state) fits in that cache either, so no implementation finds its data there from
one pass to the next (``--params 4000000`` shows the former, cache-flattered size). "B/p" is each
implementation's time times that bandwidth: the traffic its time is worth; "floor" columns are
the floor's time over each one's (the share of the memory-bandwidth limit it reaches). Where the
package already runs at more than half of the floor, 2× faster than it is physically impossible,
and the target column says how much of the floor 2× would need.

``--baseline PATH`` also steps the descent found under PATH (the ``src`` directory of another
checkout, e.g. an older commit) in the same interleaved run, to compare two versions of descent.

    python benchmarks/optim_step.py [--params N] [--tensors 10] [--repeats 9]
                                    [--rules adam,adamax] [--baseline ../old/src] [--no-small]
                                    [--clock cpu]
                                    [--matrix-rules muon,soap] [--shapes 16x128x128,4x512x512]
"""

from __future__ import annotations

import argparse
import gc
import importlib
import math
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from descent import optim

# rule -> (bytes moved per fp32 parameter by one fused step, torch factory, descent kwargs)
RULES: dict[str, tuple[int, Callable[..., torch.optim.Optimizer], dict]] = {
    "sgd": (12, lambda p, **k: torch.optim.SGD(p, lr=0.01, **k), {"lr": 0.01}),
    "momentum": (20, lambda p, **k: torch.optim.SGD(p, lr=0.01, momentum=0.9, **k), {}),
    "nesterov": (
        20,
        lambda p, **k: torch.optim.SGD(p, lr=0.01, momentum=0.9, nesterov=True, **k),
        {},
    ),
    "adagrad": (20, lambda p, **k: torch.optim.Adagrad(p, lr=0.01, **k), {}),
    "adadelta": (28, lambda p, **k: torch.optim.Adadelta(p, **k), {}),
    "rmsprop": (20, lambda p, **k: torch.optim.RMSprop(p, lr=1e-3, **k), {}),
    "adam": (28, lambda p, **k: torch.optim.Adam(p, lr=1e-3, **k), {}),
    "adamax": (28, lambda p, **k: torch.optim.Adamax(p, lr=2e-3, **k), {}),
    "nadam": (28, lambda p, **k: torch.optim.NAdam(p, lr=1e-3, **k), {}),
    "amsgrad": (36, lambda p, **k: torch.optim.Adam(p, lr=1e-3, amsgrad=True, **k), {}),
    "adamw": (28, lambda p, **k: torch.optim.AdamW(p, lr=1e-3, **k), {}),
    "radam": (28, lambda p, **k: torch.optim.RAdam(p, lr=1e-3, **k), {"threshold": 5.0}),
    "adafactor": (
        20,
        lambda p, **k: torch.optim.Adafactor(p, **k),
        {"eps": (None, 1e-3), "eps1_inside": False},
    ),
}
# torch.optim classes that accept fused=True on the CPU
FUSED = {"sgd", "momentum", "nesterov", "adagrad", "adam", "amsgrad", "adamw"}
TARGET_PEER_FASTEST = {"sgd", "momentum", "adagrad", "adam", "adamw", "radam", "adafactor"}


def _lion(p: list[torch.Tensor], **k: object) -> torch.optim.Optimizer:
    from lion_pytorch import Lion

    return Lion(p, lr=1e-4, **k)


def _lamb(p: list[torch.Tensor], **k: object) -> torch.optim.Optimizer:
    from pytorch_optimizer import Lamb

    return Lamb(p, lr=1e-3, weight_decay=0.01, weight_decouple=False, **k)


def _lars(p: list[torch.Tensor], **k: object) -> torch.optim.Optimizer:
    from pytorch_optimizer import LARS

    return LARS(p, lr=0.1, weight_decay=1e-4, trust_coefficient=0.02, **k)


def _prodigy(p: list[torch.Tensor], **k: object) -> torch.optim.Optimizer:
    from prodigyopt import Prodigy

    return Prodigy(p, lr=1.0, **k)


def _schedule_free(name: str, lr: float) -> Callable[..., torch.optim.Optimizer]:
    def make(p: list[torch.Tensor], **k: object) -> torch.optim.Optimizer:
        import schedulefree

        optimizer = getattr(schedulefree, name)(p, lr=lr, **k)
        optimizer.train()  # schedulefree refuses to step in eval mode
        return optimizer

    return make


# rule -> (bytes per fp32 parameter of a single-pass step, package, factory, its for-loop/foreach
# switch or None, descent kwargs giving the package's form). The factory's form is the package's
# default unless descent's test of the rule uses another.
PACKAGE_RULES: dict[str, tuple[int, str, Callable[..., torch.optim.Optimizer], bool, dict]] = {
    "lion": (20, "lion-pytorch", _lion, False, {"lr": 1e-4}),
    "lamb": (
        28,
        "pytorch-optimizer",
        _lamb,
        True,
        {
            "lr": 1e-3,
            "weight_decay": 0.01,
            "bias_correction": "lr",
            "max_weight_norm": 10.0,
            "eps_in_trust": True,
        },
    ),
    "lars": (
        20,
        "pytorch-optimizer",
        _lars,
        True,
        {
            "lr": 0.1,
            "weight_decay": 1e-4,
            "lr_in_buffer": False,
            "exclude_1d": True,
            "trust_coefficient": 0.02,
        },
    ),
    # θ₀ is only read: 40 bytes (θ, m, v, s read and written, g and θ₀ read)
    "prodigy": (40, "prodigyopt", _prodigy, False, {"lr": 1.0}),
    "schedule_free_sgd": (
        20,
        "schedulefree",
        _schedule_free("SGDScheduleFree", 1.0),
        True,
        {"lr": 1.0},
    ),
    "schedule_free_adamw": (
        28,
        "schedulefree",
        _schedule_free("AdamWScheduleFree", 2.5e-3),
        True,
        {"lr": 2.5e-3},
    ),
}


# The bytes per fp32 parameter of the rules whose step needs sums over all their tensors before
# any update (Prodigy's d), so their second pass reads from memory: their least possible traffic
# (docs/optimizers.md, "What a step costs"), above the single-pass floor of PACKAGE_RULES.
TWO_PASS_BYTES = {"prodigy": 48}


def make_params(shapes: list[tuple[int, ...]]) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    params = []
    for shape in shapes:
        param = torch.randn(shape, generator=generator).requires_grad_()
        param.grad = torch.randn(shape, generator=generator) * 1e-2
        params.append(param)
    return params


def large_params(cache: int, tensors: int) -> int:
    """The large-tensor table's default size: the fewest parameters (a multiple of ``tensors``)
    whose float32 array is at least twice the last-level cache, so that no array of a step (θ,
    g, a state) stays in the cache from one pass to the next. A smaller size lets the multi-pass
    peers (torch's default for-loop and foreach paths) find their arrays in the cache on their
    second pass, which no model larger than the cache allows."""
    minimum = -(-2 * cache // 4)
    return -(-minimum // tensors) * tensors


def large_shapes(total: int, count: int) -> list[tuple[int, ...]]:
    """``count`` flat tensors of ``total // count`` parameters (the large-tensor regime)."""
    return [(total // count,)] * count


def resnet50_shapes(width: float = 0.25) -> list[tuple[int, ...]]:
    """The parameter shapes of torchvision's ResNet-50 with every channel count scaled by
    ``width`` (161 tensors: convolutions, batch-norm scales and shifts, the classifier): the
    many-small-tensors regime, where a step's per-tensor overhead shows."""

    def channels(c: int) -> int:
        return max(1, int(c * width))

    def norm(c: int) -> list[tuple[int, ...]]:
        return [(c,), (c,)]

    stem = channels(64)
    shapes: list[tuple[int, ...]] = [(stem, 3, 7, 7), *norm(stem)]
    inplanes = stem
    for planes, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        planes, out = channels(planes), channels(planes * 4)
        for block in range(blocks):
            shapes += [(planes, inplanes, 1, 1), *norm(planes)]
            shapes += [(planes, planes, 3, 3), *norm(planes)]
            shapes += [(out, planes, 1, 1), *norm(out)]
            if block == 0:
                shapes += [(out, inplanes, 1, 1), *norm(out)]
            inplanes = out
    return [*shapes, (1000, inplanes), (1000,)]


#: The clock steps are timed with: wall time, or (``--clock cpu``) the calling thread's CPU time,
#: which leaves out the time a loaded machine keeps the process waiting (only for one thread:
#: OMP_NUM_THREADS=1, or the other threads' work would not be counted).
CLOCK: Callable[[], float] = time.perf_counter


#: Untimed steps of a fresh optimizer: its state allocated and its first-step branches passed,
#: RAdam's among them (its first 5 steps at β₂ = 0.999 are plain momentum, a cheaper step).
WARM_UP_STEPS = 10


def time_rotated(
    factories: dict[str, Callable[[], torch.optim.Optimizer]], repeats: int
) -> dict[str, float]:
    """Median seconds per step of each optimizer, stepped in turn (in a shuffled order each
    round, so that every one sees the same machine state: cache, clock, the other core's load),
    over fresh optimizers made in a rotated order, the median over all rounds. Where an
    optimizer's tensors are allocated matters: two identical torch SGDs over 16.8 M parameters
    differed by 1–3% between the first made and the last, and descent measured 3.85 ms made
    first, 3.59 ms made last, against 3.62–3.81 for torch's foreach SGD in the same runs. Each
    one is made first in some round, so none carries that alone."""
    names = list(factories)
    rounds = min(len(names), repeats)
    times: dict[str, list[float]] = {name: [] for name in names}
    for index in range(rounds):
        order = names[index:] + names[:index]
        optimizers = {name: factories[name]() for name in order}
        for name, values in _steps(optimizers, -(-repeats // rounds)).items():
            times[name].extend(values)
        del optimizers
        gc.collect()
    return {name: statistics.median(values) for name, values in times.items()}


def _steps(optimizers: dict[str, torch.optim.Optimizer], repeats: int) -> dict[str, list[float]]:
    """Seconds of each optimizer's ``repeats`` timed steps, stepped in turn in a shuffled order
    each round, after WARM_UP_STEPS untimed ones."""
    for optimizer in optimizers.values():
        for _ in range(WARM_UP_STEPS):
            optimizer.step()
    times: dict[str, list[float]] = {name: [] for name in optimizers}
    order = list(optimizers)
    shuffler = random.Random(0)
    for _ in range(repeats):
        # A new order every round: no optimizer always follows the same one (whose data it
        # would find evicted from, or left in, the cache).
        shuffler.shuffle(order)
        for name in order:
            optimizer = optimizers[name]
            start = CLOCK()
            optimizer.step()
            times[name].append(CLOCK() - start)
    return times


def last_level_cache() -> int:
    """Bytes of the largest CPU cache the OS reports (Linux sysfs), 32 MiB if it reports none."""
    sizes = []
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            text = (index / "size").read_text().strip()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        sizes.append(int(text.rstrip("KMG")) * scale)
    return max(sizes, default=32 << 20)


def machine_line(cache: int) -> str:
    blas = "unknown"
    for line in torch.__config__.show().splitlines():
        if "BLAS_INFO=" in line:
            blas = line.split("BLAS_INFO=")[1].split(",")[0]
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"machine: {cpu}, {os.cpu_count()} cores, last-level cache {cache >> 20} MiB, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads, BLAS {blas})"
    )


class Baseline:
    """descent.optim from another checkout's ``src``, imported beside this one. Its modules import
    others inside functions (``from descent.optim import _native``), so its optimizers are
    created and stepped with its own modules swapped into ``sys.modules`` (a dictionary update
    of some 80 entries: microseconds against a step's milliseconds)."""

    def __init__(self, source: str) -> None:
        current = {name: sys.modules.pop(name) for name in list(sys.modules) if _ours(name)}
        sys.path.insert(0, source)
        try:
            importlib.import_module("descent.optim")
            # its C kernels now, while its ``src`` comes first on the path
            native = importlib.import_module("descent.optim._native")
            (getattr(native, "library", None) or native._library)()  # older releases: _library
            names = [name for name in sys.modules if _ours(name)]
            self.modules = {name: sys.modules.pop(name) for name in names}
        finally:
            sys.path.remove(source)
            sys.modules.update(current)

    def _swapped(self, call: Callable[[], object]) -> object:
        saved = {name: sys.modules[name] for name in self.modules if name in sys.modules}
        sys.modules.update(self.modules)
        try:
            return call()
        finally:
            for name in self.modules:
                sys.modules.pop(name, None)
            sys.modules.update(saved)

    def create(self, rule: str, params: list[torch.Tensor], **kwargs: object) -> object:
        optim_module = self.modules["descent.optim"]
        optimizer = self._swapped(lambda: optim_module.create(rule, params, **kwargs))
        step = optimizer.step
        optimizer.step = lambda closure=None: self._swapped(lambda: step(closure))
        return optimizer


def _ours(name: str) -> bool:
    return name == "descent" or name.startswith("descent.")


def bandwidths(total: int, repeats: int) -> tuple[float, float]:
    """Bytes per second over ``total`` float32 values (a working set of 2 arrays) of
    dst.copy_(src) (read + write) and of x.add_(y, alpha=…) (read 2, write 1 in place: the
    access pattern of an update rule's step, which rewrites what it has read and so pays no
    write-allocate read of its destination, as a copy does); each the median of at least 10
    (the best single pass on a shared machine is an outlier: up to twice the median here)."""
    x, y = torch.randn(total), torch.randn(total)

    def median_seconds(work: Callable[[], object]) -> float:
        for _ in range(3):
            work()
        times = []
        for _ in range(max(repeats, 10)):
            start = CLOCK()
            work()
            times.append(CLOCK() - start)
        return statistics.median(times)

    copy = 2 * 4 * total / median_seconds(lambda: x.copy_(y))
    update = 3 * 4 * total / median_seconds(lambda: x.add_(y, alpha=1e-12))
    return copy, update


def measure(
    rule: str, shapes: list[tuple[int, ...]], repeats: int, baseline: Baseline | None
) -> dict[str, float | str]:
    if rule in PACKAGE_RULES:
        _, _, torch_factory, switch, descent_kwargs = PACKAGE_RULES[rule]
    else:
        _, torch_factory, descent_kwargs = RULES[rule]
        switch = True
    factories: dict[str, Callable[[list[torch.Tensor]], torch.optim.Optimizer]] = {
        "descent": lambda p: optim.create(rule, p, **descent_kwargs),
        "torch_default": lambda p: torch_factory(p),
    }
    if switch:
        factories["for-loop"] = lambda p: torch_factory(p, foreach=False)
        factories["foreach"] = lambda p: torch_factory(p, foreach=True)
    if baseline is not None:
        factories["baseline"] = lambda p: baseline.create(rule, p, **descent_kwargs)
    if rule in FUSED:
        factories["fused"] = lambda p: torch_factory(p, fused=True)
        # The same torch optimizer twice: how far two identical runs differ here (noise).
        factories["fused again"] = lambda p: torch_factory(p, fused=True)
    # each optimizer's parameters made with it, in the round's order
    made = {name: lambda f=factory: f(make_params(shapes)) for name, factory in factories.items()}
    seconds = time_rotated(made, repeats)
    peers = {
        name: seconds[name]
        for name in ("for-loop", "foreach", "fused", "torch_default")
        if name in seconds
    }
    fastest_name = min(peers, key=peers.get)
    noise = abs(seconds["fused again"] / seconds["fused"] - 1) if "fused" in seconds else 0.0
    return {
        "descent": seconds["descent"],
        "torch_default": seconds["torch_default"],
        "torch_fastest": peers[fastest_name],
        "fastest_name": fastest_name,
        "noise": noise,
        "baseline": seconds.get("baseline", float("nan")),
    }


# -- Muon and SOAP: matrix work, timed per parameter shape -----------------------------------------


class _GradsKept:
    """An optimizer whose step clears ``p.grad`` (heavyball's does), given its gradients back
    before each step so that every timed step is a real one (the reassignment costs µs)."""

    def __init__(self, optimizer: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
        self.optimizer = optimizer
        self.pairs = [(p, p.grad) for p in params]

    def step(self) -> None:
        for param, grad in self.pairs:
            param.grad = grad
        self.optimizer.step()


def _heavyball_soap(p: list[torch.Tensor]) -> torch.optim.Optimizer:
    import heavyball

    # Eager: heavyball compiles its step by default, which on this CPU took 77 s for the first
    # step of one shape (inductor's autotuning), too long for a benchmark of many shapes.
    heavyball.utils.compile_mode = None
    return _GradsKept(heavyball.SOAP(p, compile_step=False), p)  # type: ignore[return-value]


# rule -> (peer label, peer factory, descent kwargs giving the peer's step)
MATRIX_RULES: dict[str, tuple[str, Callable[..., torch.optim.Optimizer], dict]] = {
    "muon": ("torch.optim.Muon", lambda p: torch.optim.Muon(p, lr=0.02), {"lr": 0.02}),
    "soap": (
        "heavyball.SOAP (eager)",
        _heavyball_soap,
        {
            "lr": 3e-3,
            "betas": (0.9, 0.95),
            "shampoo_beta": 0.95,
            "precondition_frequency": 2,
            "max_precond_dim": 2048,
            "convention": "heavyball",
        },
    ),
}


def parse_shapes(text: str) -> list[tuple[int, int, int]]:
    shapes = []
    for item in text.split(","):
        count, rows, cols = (int(part) for part in item.lower().split("x"))
        shapes.append((count, rows, cols))
    return shapes


def make_matrices(count: int, rows: int, cols: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    params = []
    for _ in range(count):
        param = torch.randn(rows, cols, generator=generator).requires_grad_()
        param.grad = torch.randn(rows, cols, generator=generator) * 1e-2
        params.append(param)
    return params


def print_matrix_rules(rules: list[str], shapes: list[tuple[int, int, int]], repeats: int) -> None:
    """Each rule's step time on ``count`` float32 matrices of one shape, descent vs the peer,
    stepped in turn (so both see the same machine): the mean over an even number of steps, as
    SOAP refreshes its basis every other step here (heavyball's default)."""
    print()
    header = f"{'rule':6} {'matrices':>16} {'descent ms':>10} {'peer ms':>9} {'ratio':>6}  peer"
    print(header)
    print("-" * (len(header) + 24))
    for rule in rules:
        label, peer_factory, descent_kwargs = MATRIX_RULES[rule]
        for count, rows, cols in shapes:
            optimizers = {
                "descent": optim.create(rule, make_matrices(count, rows, cols), **descent_kwargs),
                "peer": peer_factory(make_matrices(count, rows, cols)),
            }
            # SOAP refreshes its basis every other step, so its steps take two times (163 ms and
            # 330 ms on 1 × 1024×1024): the median of an odd count reads one mode or the other,
            # depending on which step the timing starts at. The mean over whole refresh cycles
            # is the time a long run takes per step.
            steps = _steps(optimizers, repeats + repeats % 2)
            seconds = {name: statistics.mean(values) for name, values in steps.items()}
            del optimizers
            gc.collect()
            ratio = seconds["descent"] / seconds["peer"]
            print(
                f"{rule:6} {f'{count} × {rows}×{cols}':>16} {seconds['descent'] * 1e3:10.2f} "
                f"{seconds['peer'] * 1e3:9.2f} {ratio:6.2f}  {label}",
                flush=True,
            )


def target_text(rule: str, row: dict[str, float | str], peer_share: float) -> str:
    ratio = row["descent"] / row["torch_fastest"]
    if rule in PACKAGE_RULES:
        if ratio <= 0.5:
            return "≥ 2× faster than the package ok"
        # the package at a floor share s: 2× faster needs 2s of the floor, impossible above 50%
        needs = f"2× needs {2 * peer_share:.0%} of the floor"
        if rule in TWO_PASS_BYTES:
            needs += f"; two passes reach {PACKAGE_RULES[rule][0] / TWO_PASS_BYTES[rule]:.0%}"
        return f"≥ 2× faster than the package MISSED ({needs})"

    if rule in TARGET_PEER_FASTEST:
        # The same kernel as torch's: "as fast" means within the noise measured beside it.
        tolerance = max(float(row["noise"]), 0.01)
        return f"ratio ≤ 1 (±{tolerance:.0%})" + (" ok" if ratio <= 1.0 + tolerance else " MISSED")
    speedup = row["torch_default"] / row["descent"]
    default_share = peer_share * row["torch_fastest"] / row["torch_default"]
    needs = f" (2× needs {2 * default_share:.0%} of the floor)" if default_share > 0.5 else ""
    return "speed-up ≥ 2" + (" ok" if speedup >= 2.0 else " MISSED" + needs)


def print_table(
    rules: list[str],
    shapes: list[tuple[int, ...]],
    repeats: int,
    bandwidth: float,
    baseline: Baseline | None,
) -> None:
    """One row per rule, every implementation stepped in the same interleaved run. The floor is
    the single-pass bytes per parameter at the measured update bandwidth; "B/p" columns are each
    time times that bandwidth per parameter; a floor share above 100% means the data was (partly)
    in cache, as it is for small tensors."""
    params = sum(math.prod(shape) for shape in shapes)
    header = (
        f"{'rule':19} {'descent ms':>10} {'peer fastest ms':>15} {'(impl)':>26} "
        f"{'ratio':>6} {'noise':>6} {'peer default ms':>15} {'speed-up':>8} "
        f"{'floor B/p':>9} {'descent B/p':>11} {'peer B/p':>8} {'default B/p':>11} "
        f"{'descent floor':>13} {'peer floor':>10}"
        + (f" {'baseline ms':>11} {'new/old':>7}" if baseline else "")
        + "  target"
    )
    print(header)
    print("-" * len(header))
    implied = bandwidth / params  # bytes per parameter per second of step time
    for rule in rules:
        row = measure(rule, shapes, repeats, baseline)
        floor_bytes = PACKAGE_RULES[rule][0] if rule in PACKAGE_RULES else RULES[rule][0]
        floor_s = floor_bytes / implied
        impl = str(row["fastest_name"])
        if rule in PACKAGE_RULES:
            package = PACKAGE_RULES[rule][1]
            impl = package if impl == "torch_default" else f"{package} {impl}"
        peer_share = floor_s / row["torch_fastest"]
        line = (
            f"{rule:19} {row['descent'] * 1e3:10.2f} {row['torch_fastest'] * 1e3:15.2f} "
            f"{impl:>26} {row['descent'] / row['torch_fastest']:6.2f} {row['noise']:6.1%} "
            f"{row['torch_default'] * 1e3:15.2f} {row['torch_default'] / row['descent']:8.1f} "
            f"{floor_bytes:9d} {row['descent'] * implied:11.0f} "
            f"{row['torch_fastest'] * implied:8.0f} {row['torch_default'] * implied:11.0f} "
            f"{floor_s / row['descent']:13.0%} {peer_share:10.0%}"
        )
        if baseline:
            line += f" {row['baseline'] * 1e3:11.2f} {row['descent'] / row['baseline']:7.2f}"
        print(line + "  " + target_text(rule, row, peer_share), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--params",
        type=int,
        default=None,
        help="parameters of the large-tensor table (default: large_params(), from the cache size)",
    )
    parser.add_argument("--tensors", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--rules", default=",".join([*RULES, *PACKAGE_RULES]))
    parser.add_argument("--baseline", help="src directory of another descent checkout")
    parser.add_argument(
        "--no-small",
        dest="small",
        action="store_false",
        help="skip the many-small-tensors table (ResNet-50's shapes at ¼ width)",
    )
    parser.add_argument("--matrix-rules", default=",".join(MATRIX_RULES))
    parser.add_argument(
        "--shapes",
        default="32x64x64,8x256x256,4x256x1024,1x1024x1024",
        help="count x rows x cols of the matrices Muon and SOAP are timed on",
    )
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="cpu: time each step by the thread's CPU time (a loaded machine, one thread only)",
    )
    args = parser.parse_args()
    if args.clock == "cpu":
        if torch.get_num_threads() != 1:
            parser.error("--clock cpu times one thread: set OMP_NUM_THREADS=1")
        global CLOCK
        CLOCK = time.thread_time

    baseline = Baseline(args.baseline) if args.baseline else None
    cache = last_level_cache()
    params = large_params(cache, args.tensors) if args.params is None else args.params
    # Two arrays of `cache` float32 values each: 8× the last-level cache, so the passes stream
    # from memory, as the steps do.
    copied = max(cache, params)
    copy, bandwidth = bandwidths(copied, args.repeats)
    print(machine_line(cache) + f", load average {os.getloadavg()[0]:.1f} at the start")
    print(
        f"bandwidth over {copied * 8 >> 20} MiB: {bandwidth / 1e9:.1f} GB/s updating in place "
        f"(x += αy, the floor's), {copy / 1e9:.1f} GB/s copying; steps timed by "
        f"{'the thread CPU time' if args.clock == 'cpu' else 'the wall clock'}"
    )
    rules = [r for r in args.rules.split(",") if r]
    array_mib = params * 4 >> 20
    streams = params * 4 >= 2 * cache
    print(
        f"\nLarge tensors: {params:,} float32 parameters in {args.tensors} tensors "
        f"({'the default: ' if args.params is None else ''}one float32 array over them, θ, g or "
        f"a state, is {array_mib} MiB, "
        + (
            f"≥ 2 × the {cache >> 20} MiB last-level cache: no array stays in the cache from one "
            "pass or step to the next)"
            if streams
            else f"< 2 × the {cache >> 20} MiB last-level cache: a multi-pass peer finds part of "
            "its arrays in the cache on its next pass, which flatters it)"
        )
    )
    print_table(rules, large_shapes(params, args.tensors), args.repeats, bandwidth, baseline)
    if args.small:
        shapes = resnet50_shapes()
        total = sum(math.prod(shape) for shape in shapes)
        print(
            f"\nMany small tensors: ResNet-50's {len(shapes)} parameter shapes at ¼ width "
            f"({total:,} parameters): per-tensor overhead, the data mostly in cache"
        )
        print_table(rules, shapes, args.repeats, bandwidth, baseline)
    matrix_rules = [r for r in args.matrix_rules.split(",") if r]
    if matrix_rules:
        print_matrix_rules(matrix_rules, parse_shapes(args.shapes), args.repeats)


if __name__ == "__main__":
    main()
