"""How much faster than schedulefree's step a Schedule-Free SGD step can be on this machine, from
the peer's own first pass.

Any Schedule-Free SGD step reads y (the parameters), z and g and writes y and z: five arrays'
traffic. schedulefree's foreach step makes three passes: ``lerp_(y, z)`` (reads y and z, writes
y), ``add_(y, g)`` and ``sub_(z, g)``. Over many small tensors (ResNet-50's 161 shapes at ¼ width,
8 MiB an array) its second and third passes find most of their data in the cache, which the first
just brought there, so most of its time is that first pass over cold data, and a fused step cannot
avoid the same cold reads.

The script times, in one run and stepped in turn (benchmarks/optim_step.py's rotation, so each
sees the cache the others leave): descent's step, schedulefree's foreach and for-loop steps, and
the peer's first pass alone. A fused step that moved its five arrays at the rate that torch's
vectorized lerp moves its three takes 5/3 of the pass's time. That time over the peer's step is
the ratio such a step would reach (the "streaming bound"). A ratio below it needs more bytes per
second than torch's own lerp achieves on the same tensors. For the large-tensor table (arrays
twice the last-level cache) the bound also follows from the update bandwidth, as in
optim_step.py.

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

#: Arrays a Schedule-Free SGD step reads or writes (y, z and g read; y and z written), and those
#: of the peer's first pass (y and z read; y written).
STEP_ARRAYS, LERP_ARRAYS = 5, 3


class FirstPass:
    """schedulefree's first foreach pass alone, ``y ← lerp(y, z, c)``, on a step's tensors."""

    def __init__(self, params: list[torch.Tensor]) -> None:
        self.y = params
        self.z = [param.detach().clone() for param in params]

    def step(self) -> None:
        torch._foreach_lerp_(self.y, self.z, 0.1)


def measure(shapes: list[tuple[int, ...]], repeats: int) -> dict[str, float]:
    peer = optim_step.PACKAGE_RULES["schedule_free_sgd"][2]

    def made(factory: Callable[[list[torch.Tensor]], object]) -> Callable[[], object]:
        return lambda: factory(optim_step.make_params(shapes))

    factories = {
        "descent": made(lambda p: optim.create("schedule_free_sgd", p, lr=1.0)),
        "foreach": made(lambda p: peer(p, foreach=True)),
        "for-loop": made(lambda p: peer(p, foreach=False)),
        "first pass": made(FirstPass),
    }
    with torch.no_grad():
        return optim_step.time_rotated(factories, repeats)  # type: ignore[arg-type]


def report(title: str, seconds: dict[str, float], params: int, bandwidth: float) -> None:
    peer_name = min(("foreach", "for-loop"), key=seconds.__getitem__)
    peer = seconds[peer_name]
    bound = seconds["first pass"] * STEP_ARRAYS / LERP_ARRAYS / peer
    floor = STEP_ARRAYS * 4 * params / bandwidth / peer
    lerp_rate = LERP_ARRAYS * 4 * params / seconds["first pass"]
    descent_rate = STEP_ARRAYS * 4 * params / seconds["descent"]
    print(title)
    print(
        f"  descent {seconds['descent'] * 1e3:.3f} ms, schedulefree ({peer_name}) "
        f"{peer * 1e3:.3f} ms: ratio {seconds['descent'] / peer:.2f} (target ≤ 0.5)"
    )
    print(
        f"  the peer's first pass alone {seconds['first pass'] * 1e3:.3f} ms "
        f"({seconds['first pass'] / peer:.2f} of its step), {lerp_rate / 1e9:.1f} GB/s; "
        f"descent moves {descent_rate / 1e9:.1f} GB/s"
    )
    print(
        f"  streaming bound (five arrays at the first pass's rate): {bound:.2f}; "
        f"bandwidth floor ({bandwidth / 1e9:.1f} GB/s): {floor:.2f}; a ratio of 0.5 needs "
        f"{0.5 * peer * 1e3:.3f} ms, {STEP_ARRAYS * 4 * params / (0.5 * peer) / lerp_rate:.2f}× "
        "the first pass's rate"
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
