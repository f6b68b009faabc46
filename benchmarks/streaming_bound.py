"""How much faster than schedulefree's step a Schedule-Free SGD step can be on this machine, and
what stands in the way: the bytes it must move, and what a step costs before it moves any.

Any Schedule-Free SGD step reads y (the parameters), z and g and writes y and z: five arrays'
traffic. schedulefree's foreach step makes three passes over all the tensors: ``lerp_(y, z)``
(reads y and z, writes y), ``add_(y, g)`` and ``sub_(z, g)``; its first pass brings y and z from
memory and its second g, and what its later passes read again is mostly still in the cache.

Each step is timed twice in one run, stepped in turn (benchmarks/optim_step.py's rotation, so
each sees the cache the others leave): on the step's tensors, and on as many tensors of 16
elements each. The second is the step's fixed cost: its Python, and reading the tensors' and its
state's metadata, which the rotation has pushed out of the cache as training would; the
difference is what moving the data costs. The same for the peer's first pass alone, a bare
``_foreach_lerp_`` over two of the step's three lists: its data part gives the rate at which
torch's vectorized lerp moves bytes on these tensors. From these the script prints:

- the "lerp-rate reference": a step with descent's fixed cost that moved its five arrays at
  the lerp's rate, as a ratio to the peer's fastest step (the target's peer; not a hard limit:
  a faster streamer could beat torch's lerp);
- what half the peer's time would leave for descent's fixed cost, given its data part as
  measured.

For the large-tensor table (arrays twice the last-level cache) the bandwidth floor is printed
beside them, as in optim_step.py.

    python benchmarks/streaming_bound.py [--repeats 15] [--no-large]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

import optim_step
from descent import optim

#: Bytes per float32 parameter of a Schedule-Free SGD step (y, z and g read; y and z written:
#: optim_step.py's table) and of the peer's first pass (y and z read; y written).
STEP_BYTES = optim_step.PACKAGE_RULES["schedule_free_sgd"][0]
LERP_BYTES = 3 * 4


class FirstPass:
    """schedulefree's first foreach pass alone, ``y ← lerp(y, z, c)``, on a step's tensors."""

    def __init__(self, params: list[torch.Tensor]) -> None:
        self.y = params
        self.z = [param.detach().clone() for param in params]

    def step(self) -> None:
        torch._foreach_lerp_(self.y, self.z, 0.1)


#: The tensors that stand for "as many tensors, no data": their steps' fixed cost.
TINY = 16


def measure(shapes: list[tuple[int, ...]], repeats: int) -> dict[str, float]:
    peer = optim_step.PACKAGE_RULES["schedule_free_sgd"][2]
    tiny = [(TINY,)] * len(shapes)
    makers: dict[str, Callable[[list[torch.Tensor]], object]] = {
        "descent": lambda p: optim.create("schedule_free_sgd", p, lr=1.0),
        "foreach": lambda p: peer(p, foreach=True),
        "first pass": FirstPass,
    }
    factories: dict[str, Callable[[], object]] = {
        "for-loop": lambda: peer(optim_step.make_params(shapes), foreach=False)
    }
    for name, make in makers.items():
        factories[name] = lambda make=make: make(optim_step.make_params(shapes))
        factories[f"{name}, fixed"] = lambda make=make: make(optim_step.make_params(tiny))
    with torch.no_grad():
        return optim_step.time_rotated(factories, repeats)  # type: ignore[arg-type]


def report(title: str, seconds: dict[str, float], params: int, bandwidth: float) -> None:
    def data(name: str) -> float:
        return seconds[name] - seconds[f"{name}, fixed"]

    step_bytes, lerp_bytes = STEP_BYTES * params, LERP_BYTES * params
    fastest = min(("foreach", "for-loop"), key=seconds.__getitem__)
    peer = seconds[fastest]  # the target's peer: its fastest implementation
    lerp_rate = lerp_bytes / data("first pass")
    reference = (seconds["descent, fixed"] + step_bytes / lerp_rate) / peer
    room = 0.5 * peer - data("descent")  # fixed cost left to a step at half the peer's time
    print(title)
    print(
        f"  descent {seconds['descent'] * 1e3:.3f} ms; schedulefree foreach "
        f"{seconds['foreach'] * 1e3:.3f} ms, for-loop {seconds['for-loop'] * 1e3:.3f} ms; "
        f"descent / fastest ({fastest}) {seconds['descent'] / peer:.2f} (target ≤ 0.5)"
    )
    for name in ("descent", "foreach", "first pass"):
        moved = lerp_bytes if name == "first pass" else step_bytes
        print(
            f"  {name:10} fixed {seconds[f'{name}, fixed'] * 1e3:.3f} ms + data "
            f"{data(name) * 1e3:.3f} ms ({moved / data(name) / 1e9:.1f} GB/s)"
        )
    print(
        f"  lerp-rate reference: {reference:.2f}; bandwidth floor ({bandwidth / 1e9:.1f} GB/s): "
        f"{step_bytes / bandwidth / peer:.2f}; half the fastest peer's step leaves "
        f"{room * 1e3:.3f} ms for descent's fixed cost (now "
        f"{seconds['descent, fixed'] * 1e3:.3f} ms; the bare lerp's "
        f"{seconds['first pass, fixed'] * 1e3:.3f} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--no-large", dest="large", action="store_false")
    args = parser.parse_args()
    cache = optim_step.last_level_cache()
    params = optim_step.large_params(cache, 10)
    _, bandwidth = optim_step.bandwidths(max(cache, params), args.repeats)
    print(optim_step.machine_line(cache) + f", load average {os.getloadavg()[0]:.1f} at the start")
    small = optim_step.resnet50_shapes()
    small_params = sum(math.prod(shape) for shape in small)
    report(
        f"Many small tensors: ResNet-50's {len(small)} shapes at ¼ width ({small_params:,} "
        "parameters)",
        measure(small, args.repeats),
        small_params,
        bandwidth,
    )
    if args.large:
        shapes = optim_step.large_shapes(params, 10)
        report(
            f"Large tensors: {params:,} parameters in 10 tensors",
            measure(shapes, args.repeats),
            params,
            bandwidth,
        )


if __name__ == "__main__":
    main()
