"""`descent board`: a file is refused; the server listens on 127.0.0.1 unless told otherwise; a
SIGKILL of `descent board` takes its TensorBoard with it (issue 10 row 27, issue 20)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from descent.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err


def test_board_on_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a_file = tmp_path / "afile"
    a_file.write_text("x")
    code, _, err = run_cli(["board", str(a_file)], capsys)
    assert code == 2
    assert f"{a_file}: a file, not a folder" in err
    assert err.count("\n") == 1


def children_of(pid: int) -> list[int]:
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
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
def test_sigkill_of_board_takes_its_tensorboard_and_it_binds_localhost(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    board = subprocess.Popen(
        [sys.executable, "-m", "descent.cli.main", "board", str(tmp_path / "runs")],
        stdout=subprocess.PIPE,
        text=True,
    )
    server: list[int] = []
    try:
        line = board.stdout.readline() if board.stdout else ""
        assert "TensorBoard for" in line
        assert " at http://127.0.0.1:" in line
        server = children_of(board.pid)
        assert len(server) == 1
        arguments = Path(f"/proc/{server[0]}/cmdline").read_bytes().split(b"\0")
        assert arguments[arguments.index(b"--host") + 1] == b"127.0.0.1"
        board.send_signal(signal.SIGKILL)
        board.wait(timeout=30)
        deadline = time.monotonic() + 30
        while alive(server[0]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(server[0]), "TensorBoard outlived a SIGKILLed `descent board`"
    finally:
        board.kill()
        for pid in server:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
