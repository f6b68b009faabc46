"""Running descent's command line inside the test process, and the shape every refusal of bad
input takes: exit status 2 and one line on stderr."""

from __future__ import annotations

import pytest


def run_cli(
    args: list[str], capsys: pytest.CaptureFixture[str], *, words: bool = False
) -> tuple[int, str, str]:
    """``descent ARGS`` in this process: (exit status, stdout, stderr). ``words``: stdout's words
    joined by single spaces (rich wraps a table's text at the console's width)."""
    from descent.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    out = " ".join(captured.out.split()) if words else captured.out
    return int(exit_info.value.code or 0), out, captured.err


def refusal(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The line ``descent ARGS`` prints on refusing its input, asserted to be one line on stderr
    with exit status 2."""
    code, _, err = run_cli(args, capsys)
    assert code == 2, err
    assert err.count("\n") == 1, err
    return err
