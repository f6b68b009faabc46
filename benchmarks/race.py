"""How long a race takes: the 7 lecture rules × 1,000 steps on Beale, computed (wall and CPU
seconds; beside it the same race stepped by one descent optimizer per rule, as races ran before
their runs were stacked), the same race tuned on the rates grid (7 × 21 runs), then drawn as a
100-frame GIF. Targets: race < 1 s, GIF < 30 s.

    python benchmarks/race.py
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch

from conditions import conditions
from descent import optim
from descent.landscapes import DEFAULT_RULES, get, race
from descent.landscapes.figures import render


def one_optimizer_per_rule(function: str, rates: dict[str, float], steps: int) -> None:
    """The unstacked way: a 2-element parameter and an optimizer per rule, one step each."""
    landscape = get(function)
    params = {
        rule: torch.tensor(landscape.start, dtype=torch.float64, requires_grad=True)
        for rule in rates
    }
    optimizers = [optim.create(rule, [params[rule]], lr=rate) for rule, rate in rates.items()]
    for _ in range(steps):
        points = torch.stack([param.detach() for param in params.values()])
        gx, gy = landscape.gradient(points[:, 0], points[:, 1])
        for index, (param, optimizer) in enumerate(zip(params.values(), optimizers, strict=True)):
            param.grad = torch.stack((gx[index], gy[index]))
            optimizer.step()


def timed(work: object) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    value = work()  # type: ignore[operator]
    return time.perf_counter() - wall, time.process_time() - cpu, value


def main() -> None:
    print(conditions())
    race("beale", steps=20)  # imports and first-call costs out of the figure
    wall, cpu, result = timed(lambda: race("beale", rules=DEFAULT_RULES, steps=1000))
    rates = {run.rule: run.lr for run in result.runs}  # type: ignore[attr-defined]
    one_optimizer_per_rule("beale", rates, 20)  # the optimizers' kernels loaded out of the figure
    base_wall, base_cpu, _ = timed(lambda: one_optimizer_per_rule("beale", rates, 1000))
    tune_wall, tune_cpu, _ = timed(lambda: race("beale", steps=1000, tune=True))
    with tempfile.TemporaryDirectory() as folder:
        gif_wall, _, written = timed(lambda: render(result, Path(folder) / "race.gif", frames=100))
        size = written.stat().st_size  # type: ignore[attr-defined]
    print(f"race, 7 rules × 1,000 steps (stacked)     {wall:6.2f} s wall {cpu:6.2f} s CPU  (< 1 s)")
    print(
        f"  one optimizer per rule                   {base_wall:6.2f} s wall {base_cpu:6.2f} s CPU"
    )
    print(f"  ratio (one per rule / stacked, CPU)      {base_cpu / cpu:6.2f}×")
    print(
        f"race with --tune (7 × 21 runs)            {tune_wall:6.2f} s wall {tune_cpu:6.2f} s CPU"
    )
    print(
        f"GIF, 100 frames                           {gif_wall:6.2f} s wall  (< 30 s), "
        f"{size / 1e6:.2f} MB"
    )
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
