"""The tour `descent demo` prints, one chapter per module.

A chapter is a function ``chapter(console, options)`` in ``descent.demo.<topic>``: it computes on
bundled data, prints its table or sentence, and says where its files went. :data:`CHAPTERS` lists
them in the order of the lecture; add one line per new chapter.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from typing import Any

from rich.console import Console

#: (title, "module:function") in the order the tour prints them.
CHAPTERS: list[tuple[str, str]] = [
    ("Batch modes", "descent.demo.batch_modes:chapter"),
    ("Update rules", "descent.demo.rules:chapter"),
    ("Initialization", "descent.demo.initialization:chapter"),
    ("Image classification", "descent.demo.training:chapter"),
    ("Hyperparameter tuning", "descent.demo.tuning:chapter"),
]


@dataclass(frozen=True)
class DemoOptions:
    """What the command line may change in the tour (small values make a quick test run)."""

    steps: int = 300
    tune_trials: int = 6


def run(console: Console, options: DemoOptions | None = None) -> None:
    """Print every chapter in turn, each announced before it computes (some take seconds)."""
    options = options or DemoOptions()
    for number, (title, target) in enumerate(CHAPTERS, start=1):
        module, attribute = target.split(":")
        console.print(f"[dim]{number}. {title}: computing…[/dim]")
        started = time.perf_counter()
        chapter: Any = getattr(importlib.import_module(module), attribute)
        chapter(console, options, number)
        console.print(f"[dim]({time.perf_counter() - started:.1f} s)[/dim]")
        console.print()
