"""Processes as Linux's /proc shows them, for the tests that kill a command and check that
nothing it started outlives it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie has ended; only its exit status is left to collect)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def start_board(runs: Path) -> tuple[subprocess.Popen, str]:
    """`descent board RUNS` started as a user starts it, and the first line it prints (the
    address of its TensorBoard). The caller stops it."""
    runs.mkdir(exist_ok=True)
    board = subprocess.Popen(
        [sys.executable, "-m", "descent.cli.main", "board", str(runs)],
        stdout=subprocess.PIPE,
        text=True,
    )
    return board, board.stdout.readline() if board.stdout else ""


def run_python(
    *arguments: str, timeout: float = 300, **options: Any
) -> subprocess.CompletedProcess:
    """``python ARGUMENTS`` (this interpreter) to its end, its output captured as text; a failure
    is the caller's to assert (``options``: cwd, env, … as subprocess.run takes them)."""
    return subprocess.run(
        [sys.executable, *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **options,
    )
