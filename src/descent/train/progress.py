"""The Trainer's progress bar: the running epoch's loss and the time left, on the terminal."""

from __future__ import annotations

import sys
from typing import Any


def progress_bar(total: int, wanted: bool) -> Any:
    """A started rich progress bar of ``total`` steps, or None: only when ``wanted`` (asked for,
    and on rank 0) and only on a terminal, so logs and pipes stay clean. The caller stops it."""
    if not wanted or not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeRemainingColumn(),
        transient=True,
        console=Console(stderr=True),
    )
    bar.start()
    bar.add_task("training", total=total)
    return bar
