"""The one console every command prints through.

Piped output (a log, a test) gets a fixed width wide enough for the tables; a terminal its own.
Rich reads ``sys.stdout`` at each print, so output captured by tests lands where they look.
"""

from __future__ import annotations

import sys

from rich.console import Console

console = Console(width=None if sys.stdout.isatty() else 120)
