"""One optimizer step on CPU: descent's eager fast path vs its compiled step vs torch's compiled
step of the same rule, all in this one run (median of ``--repeats`` timed steps after a warm-up
that includes compilation), with the number of graphs each compiled step needed.

Under torch.compile every rule takes its foreach formulation with the step count on the device,
so the compiled step is built at most twice (the first update, which creates the state, and the
rest) and reused for every later update. Prodigy (which reads two sums back every step) and the
Schedule-Free rules (whose average weight is a host float new at each update) recompile at every
update and are left out: timing them would time the compiler.

    python benchmarks/compiled_step.py [--params 1000000] [--tensors 10] [--repeats 15]
                                       [--rules adam,sgd] [--backend inductor]
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch._dynamo.testing import CompileCounterWithBackend

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conditions import conditions
from conditions import parser as benchmark_parser
from descent import optim
from optim_step import RULES as PEERS

#: rules whose compiled step is rebuilt at every update (see the module docstring)
RECOMPILING = {"prodigy", "schedule_free_sgd", "schedule_free_adamw"}
COMPILED = [name for name in optim.OPTIMIZERS if name not in RECOMPILING]


def median_step(step: Callable[[], None], repeats: int, sync: Callable[[], None]) -> float:
    """Median seconds of one call of ``step`` after three warm-up calls (which compile)."""
    for _ in range(3):
        step()
    sync()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        sync()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def parameters(total: int, tensors: int, device: torch.device) -> list[torch.Tensor]:
    generator = torch.Generator(device=device).manual_seed(0)
    params = []
    for _ in range(tensors):
        param = torch.randn(total // tensors, generator=generator, device=device)
        param.grad = torch.randn(total // tensors, generator=generator, device=device) * 1e-2
        params.append(param)
    return params


def compiled_rows(
    names: list[str],
    total: int,
    tensors: int,
    repeats: int,
    backend: str,
    device: torch.device,
    sync: Callable[[], None],
) -> None:
    """Print one row per rule: eager ms, compiled ms, torch compiled ms, graphs, ratios."""
    print(
        f"{'rule':20} {'eager ms':>9} {'compiled ms':>12} {'graphs':>7} {'torch compiled ms':>18} "
        f"{'compiled/eager':>15} {'compiled/torch':>15}"
    )
    for name in names:
        torch._dynamo.reset()
        kwargs = {"lr": 1e-3, **(PEERS[name][2] if name in PEERS else {})}
        eager = median_step(
            optim.create(name, parameters(total, tensors, device), **kwargs).step, repeats, sync
        )
        counter = CompileCounterWithBackend(backend)
        ours = optim.create(name, parameters(total, tensors, device), **kwargs)
        compiled = median_step(torch.compile(ours.step, backend=counter), repeats, sync)
        graphs = counter.frame_count
        theirs, versus = float("nan"), "—"
        if name in PEERS:
            torch._dynamo.reset()
            peer = PEERS[name][1](parameters(total, tensors, device))
            theirs = median_step(torch.compile(peer.step, backend=backend), repeats, sync)
            versus = f"{compiled / theirs:15.2f}"
        print(
            f"{name:20} {eager * 1e3:9.2f} {compiled * 1e3:12.2f} {graphs:7d} "
            f"{theirs * 1e3:18.2f} {compiled / eager:15.2f} {versus:>15}"
        )


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--params", type=int, default=1_000_000)
    parser.add_argument("--tensors", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--rules", default=",".join(COMPILED))
    parser.add_argument("--backend", default="inductor")
    args = parser.parse_args()
    names = [name for name in args.rules.split(",") if name]
    unknown = [name for name in names if name not in COMPILED]
    if unknown:
        parser.error(f"unknown or recompiling rule(s) {unknown}; choose from {COMPILED}")
    print(
        f"{conditions()}; {args.params:,} float32 parameters in {args.tensors} tensors on the "
        f"CPU, backend {args.backend}"
    )
    compiled_rows(
        names,
        args.params,
        args.tensors,
        args.repeats,
        args.backend,
        torch.device("cpu"),
        lambda: None,
    )


if __name__ == "__main__":
    main()
