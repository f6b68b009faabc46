"""What every benchmark here shares: its command line described by its docstring, and the line
that states the conditions its figures were measured under (a busy machine makes ratios noisy,
so the load average is part of every report). Run a benchmark as ``python benchmarks/NAME.py``:
this folder is then on ``sys.path``."""

from __future__ import annotations

import argparse
import os


def parser(doc: str | None) -> argparse.ArgumentParser:
    """The benchmark's option parser, described by the first line of its docstring ``doc``."""
    return argparse.ArgumentParser(description=(doc or "").splitlines()[0])


def conditions() -> str:
    """torch's version and threads, the machine's cores and its load average now."""
    import torch

    return (
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
