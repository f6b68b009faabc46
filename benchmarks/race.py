"""How long a race takes: the 7 lecture rules × 1,000 steps on Beale, computed, then drawn as a
100-frame GIF (and the same race tuned on the rates grid). Targets: race < 1 s, GIF < 30 s.

    python benchmarks/race.py
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch

from descent.landscapes import DEFAULT_RULES, race
from descent.landscapes.figures import render


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores")
    race("beale", steps=20)  # imports and first-call costs out of the figure
    started = time.perf_counter()
    result = race("beale", rules=DEFAULT_RULES, steps=1000)
    race_seconds = time.perf_counter() - started
    started = time.perf_counter()
    race("beale", rules=DEFAULT_RULES, steps=1000, tune=True)
    tune_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        written = render(result, Path(folder) / "race.gif", frames=100)
        gif_seconds = time.perf_counter() - started
        size = written.stat().st_size
    print(f"race, 7 rules × 1,000 steps          {race_seconds:6.2f} s   (target < 1 s)")
    print(f"race with --tune (21 rates per rule)  {tune_seconds:6.2f} s")
    print(
        f"GIF, 100 frames                        {gif_seconds:6.2f} s   (target < 30 s), "
        f"{size / 1e6:.1f} MB"
    )


if __name__ == "__main__":
    main()
