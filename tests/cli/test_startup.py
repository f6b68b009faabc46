"""`descent --help` and `--version` answer without importing the heavy libraries: every command
module imports them inside its command, so start-up costs typer and rich alone."""

from __future__ import annotations

import pytest

from tests.processes import run_python

HEAVY = ("torch", "numpy", "sklearn", "optuna", "tensorboard", "pyarrow", "matplotlib", "flwr")


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_import_no_heavy_library(flag: str) -> None:
    probe = (
        "import sys\n"
        "from descent.cli.main import main\n"
        "try:\n"
        f"    main([{flag!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = run_python("-c", probe, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout


def help_text(*command: str) -> str:
    """What ``descent COMMAND --help`` prints, run as a user runs it."""
    return run_python("-m", "descent.cli.main", *command, "--help", timeout=120).stdout


def test_every_registered_command_is_listed_by_help() -> None:
    from descent.cli.diagnose import SUBCOMMANDS
    from descent.cli.main import COMMANDS

    listed = help_text()
    for name, _ in COMMANDS:
        assert name in listed
    listed = help_text("diagnose")
    for name, _ in SUBCOMMANDS:
        assert name in listed
