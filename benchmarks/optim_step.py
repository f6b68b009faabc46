"""Time one optimizer step over 10 M float32 parameters in 10 tensors, descent vs torch.optim.

For every rule: descent's default (fast) path, torch's fastest implementation of the same rule
(fused where torch has one, else the faster of foreach and for-loop) and torch's default path,
all measured in this one run, stepped in turn so that each sees the same machine. The floor is the
bytes a single-pass step must move per parameter (docs/optimizers.md, "What a step costs") over a
copy bandwidth measured on a working set several times the last-level cache (read from the OS);
with 10 M parameters the optimizer's state does not fit in that cache either. "bytes/param" is each
implementation's time times that bandwidth: the traffic its time is worth.

``--baseline PATH`` also steps the descent found under PATH (the ``src`` directory of another
checkout, e.g. an older commit) in the same interleaved run, to compare two versions of descent.

    python benchmarks/optim_step.py [--params 10000000] [--tensors 10] [--repeats 9]
                                    [--rules adam,adamax] [--baseline ../old/src]
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

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
TARGET_PEER_FASTEST = {"sgd", "momentum", "adagrad", "adam", "adamw"}


def make_params(total: int, count: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    size = total // count
    params = []
    for _ in range(count):
        param = torch.randn(size, generator=generator).requires_grad_()
        param.grad = torch.randn(size, generator=generator) * 1e-2
        params.append(param)
    return params


def time_interleaved(
    optimizers: dict[str, torch.optim.Optimizer], repeats: int
) -> dict[str, float]:
    """Median seconds per step of each optimizer, stepping them in turn (in a shuffled order each
    round) so that every one sees the same machine state (cache, clock, the other core's load)."""
    for optimizer in optimizers.values():
        for _ in range(3):  # warm up: state allocation, first-step branches
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
            start = time.perf_counter()
            optimizer.step()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


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


def load_baseline(source: str) -> ModuleType:
    """descent.optim from another checkout's ``src``, imported beside this one."""
    current = {
        name: sys.modules.pop(name) for name in list(sys.modules) if name.startswith("descent")
    }
    sys.path.insert(0, source)
    try:
        baseline = importlib.import_module("descent.optim")
        for name in list(sys.modules):
            if name.startswith("descent"):
                sys.modules.pop(name)
    finally:
        sys.path.remove(source)
        sys.modules.update(current)
    return baseline


def copy_bandwidth(total: int, repeats: int) -> float:
    """Bytes per second of dst.copy_(src) over ``total`` float32 values (read + write)."""
    src, dst = torch.randn(total), torch.empty(total)
    for _ in range(3):
        dst.copy_(src)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        dst.copy_(src)
        times.append(time.perf_counter() - start)
    return 2 * 4 * total / statistics.median(times)


def measure(
    rule: str, total: int, count: int, repeats: int, baseline: ModuleType | None
) -> dict[str, float | str]:
    _, torch_factory, descent_kwargs = RULES[rule]
    factories: dict[str, Callable[[list[torch.Tensor]], torch.optim.Optimizer]] = {
        "descent": lambda p: optim.create(rule, p, **descent_kwargs),
        "torch_default": lambda p: torch_factory(p),
        "for-loop": lambda p: torch_factory(p, foreach=False),
        "foreach": lambda p: torch_factory(p, foreach=True),
    }
    if baseline is not None:
        factories["baseline"] = lambda p: baseline.create(rule, p, **descent_kwargs)
    if rule in FUSED:
        factories["fused"] = lambda p: torch_factory(p, fused=True)
        # The same torch optimizer twice: how far two identical runs differ here (noise).
        factories["fused again"] = lambda p: torch_factory(p, fused=True)
    optimizers = {name: factory(make_params(total, count)) for name, factory in factories.items()}
    seconds = time_interleaved(optimizers, repeats)
    del optimizers
    gc.collect()
    peers = {name: seconds[name] for name in ("for-loop", "foreach", "fused") if name in seconds}
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=int, default=10_000_000)
    parser.add_argument("--tensors", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--rules", default=",".join(RULES))
    parser.add_argument("--baseline", help="src directory of another descent checkout")
    args = parser.parse_args()

    baseline = load_baseline(args.baseline) if args.baseline else None
    cache = last_level_cache()
    # Source and destination of `cache` float32 values each: 8× the last-level cache, so the copy
    # streams from memory, as the steps do.
    copied = max(cache, args.params)
    bandwidth = copy_bandwidth(copied, args.repeats)
    print(machine_line(cache))
    print(
        f"{args.params:,} float32 parameters in {args.tensors} tensors; copy bandwidth "
        f"{bandwidth / 1e9:.1f} GB/s over {copied * 8 >> 20} MiB"
    )
    header = (
        f"{'rule':9} {'descent ms':>10} {'torch fastest ms':>17} {'(impl)':>10} "
        f"{'ratio':>6} {'noise':>6} {'torch default ms':>17} {'speed-up':>8} "
        f"{'floor B/p':>9} {'descent B/p':>11} {'default B/p':>11} {'floor share':>11}"
        + (f" {'baseline ms':>11} {'new/old':>7}" if baseline else "")
        + "  target"
    )
    print(header)
    print("-" * len(header))
    for rule in args.rules.split(","):
        row = measure(rule, args.params, args.tensors, args.repeats, baseline)
        floor_bytes = RULES[rule][0]
        floor_s = floor_bytes * args.params / bandwidth
        ratio = row["descent"] / row["torch_fastest"]
        speedup = row["torch_default"] / row["descent"]
        if rule in TARGET_PEER_FASTEST:
            # The same kernel as torch's: "as fast" means within the noise measured beside it.
            tolerance = max(row["noise"], 0.01)
            target = f"ratio ≤ 1 (±{tolerance:.0%})" + (
                " ok" if ratio <= 1.0 + tolerance else " MISSED"
            )
        else:
            target = "speed-up ≥ 2" + (" ok" if speedup >= 2.0 else " MISSED")
        implied = bandwidth / args.params  # bytes per parameter per second of step time
        line = (
            f"{rule:9} {row['descent'] * 1e3:10.2f} {row['torch_fastest'] * 1e3:17.2f} "
            f"{row['fastest_name']:>10} {ratio:6.2f} {row['noise']:6.1%} "
            f"{row['torch_default'] * 1e3:17.2f} {speedup:8.1f} {floor_bytes:9d} "
            f"{row['descent'] * implied:11.0f} {row['torch_default'] * implied:11.0f} "
            f"{floor_s / row['descent']:10.0%}"
        )
        if baseline:
            line += f" {row['baseline'] * 1e3:11.2f} {row['descent'] / row['baseline']:7.2f}"
        print(line + "  " + target, flush=True)


if __name__ == "__main__":
    main()
