"""How long `descent --help` and `descent --version` take, over several runs (the command must
answer without importing torch), beside a bare `python -c pass` for the interpreter's own start.

    python benchmarks/cli_startup.py [--runs 7]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from conditions import parser as benchmark_parser


def timed(args: list[str], runs: int) -> list[float]:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    python = sys.executable
    rows = {
        "python -c pass": [python, "-c", "pass"],
        "descent --help": [python, "-m", "descent.cli.main", "--help"],
        "descent --version": [python, "-m", "descent.cli.main", "--version"],
        "import torch (for scale)": [python, "-c", "import torch"],
    }
    print(f"{'command':28} {'median s':>9} {'min s':>7} {'max s':>7}  ({runs} runs each)")
    for name, args in rows.items():
        seconds = timed(args, runs)
        print(
            f"{name:28} {statistics.median(seconds):9.3f} {min(seconds):7.3f} {max(seconds):7.3f}"
        )


if __name__ == "__main__":
    main()
