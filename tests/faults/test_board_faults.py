"""`descent board`: a file is refused; the server listens on 127.0.0.1 unless told otherwise; a
SIGKILL of `descent board` takes its TensorBoard with it (issue 10 row 27, issue 20)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.cli_support import refusal
from tests.processes import alive, children, start_board


def test_board_on_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a_file = tmp_path / "afile"
    a_file.write_text("x")
    assert f"{a_file}: a file, not a folder" in refusal(["board", str(a_file)], capsys)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
def test_sigkill_of_board_takes_its_tensorboard_and_it_binds_localhost(tmp_path: Path) -> None:
    server: list[int] = []
    board, line = start_board(tmp_path / "runs")
    try:
        assert "TensorBoard for" in line
        assert " at http://127.0.0.1:" in line
        server = children(board.pid)
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
