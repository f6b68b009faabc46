"""One optimizer step on CPU: descent's eager fast path vs its compiled step (inductor) vs torch's
compiled step of the same rule, all in this one run (median of ``--repeats`` timed steps after a
warm-up that includes compilation).

Only rules that compile to one graph for every update are timed (SGD, Momentum, Nesterov): the
rules that count steps recompile at every update for now (docs/optimizers.md), so a compiled
timing of them would time the compiler.

    python benchmarks/compiled_step.py [--params 1000000] [--tensors 10] [--repeats 15]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from descent import optim

RULES: dict[str, tuple[Callable, Callable]] = {
    "sgd": (lambda p: optim.SGD(p, lr=0.01), lambda p: torch.optim.SGD(p, lr=0.01)),
    "momentum": (
        lambda p: optim.Momentum(p, lr=0.01, momentum=0.9, lr_in_buffer=False),
        lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9),
    ),
    "nesterov": (
        lambda p: optim.Nesterov(p, lr=0.01, momentum=0.9, lr_in_buffer=False),
        lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9, nesterov=True),
    ),
}


def _time(step: Callable[[], None], repeats: int) -> float:
    for _ in range(3):  # warm-up (compiles)
        step()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _params(total: int, tensors: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    params = [torch.randn(total // tensors, generator=generator) for _ in range(tensors)]
    for p in params:
        p.grad = torch.randn(p.shape, generator=generator)
    return params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=int, default=1_000_000)
    parser.add_argument("--tensors", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    print(f"{'rule':10} {'eager ms':>9} {'compiled ms':>12} {'torch compiled ms':>18} "
          f"{'compiled/eager':>15} {'compiled/torch':>15}")
    for name, (ours, theirs) in RULES.items():
        torch._dynamo.reset()
        eager_opt = ours(_params(args.params, args.tensors))
        eager = _time(eager_opt.step, args.repeats)
        compiled_opt = ours(_params(args.params, args.tensors))
        compiled = _time(torch.compile(compiled_opt.step), args.repeats)
        torch_opt = theirs(_params(args.params, args.tensors))
        torch_compiled = _time(torch.compile(torch_opt.step), args.repeats)
        print(f"{name:10} {eager * 1e3:9.2f} {compiled * 1e3:12.2f} {torch_compiled * 1e3:18.2f} "
              f"{compiled / eager:15.2f} {compiled / torch_compiled:15.2f}")


if __name__ == "__main__":
    main()
