"""`descent`: a thin command line over the library. Bad input prints one line and exits 2;
`--debug` shows the traceback instead."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

try:  # typer ≥ 0.22 has its own exceptions; earlier releases (which flwr pins) raise click's
    from typer.exceptions import Abort, TyperException
except ImportError:  # pragma: no cover - depends on the installed typer
    from click.exceptions import Abort
    from click.exceptions import ClickException as TyperException

import descent

app = typer.Typer(
    name="descent",
    help="Gradient descent end to end on PyTorch.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

EXIT_BAD_INPUT = 2


def _version(value: bool) -> None:
    if value:
        print(f"descent {descent.__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the full traceback on errors.")
    ] = False,
) -> None:
    """Gradient descent end to end on PyTorch."""


#: Every subcommand: (name, "module:function"). A command module imports only typer and the
#: standard library at its top, and the heavy libraries inside the command, so that `descent
#: --help` answers without importing torch. Add new commands here, one line each.
COMMANDS: list[tuple[str, str]] = [
    ("demo", "descent.cli.demo:demo"),
    ("optimizers", "descent.cli.optimizers:optimizers"),
    ("schedule", "descent.cli.schedule:schedule"),
    ("race", "descent.cli.race:race"),

    ("regress", "descent.cli.regress:regress"),
    ("gradcheck", "descent.cli.gradcheck:gradcheck"),
    ("train", "descent.cli.train:train"),
    ("board", "descent.cli.train:board"),
    ("tune", "descent.cli.tune:tune"),
]
#: Command groups (a sub-app with commands of its own): (name, "module:app").
GROUPS: list[tuple[str, str]] = [
    ("diagnose", "descent.cli.diagnose:app"),
]


def _register() -> None:
    import importlib

    for name, target in COMMANDS:
        module, attribute = target.split(":")
        command = getattr(importlib.import_module(module), attribute)
        app.command(name=name, **getattr(command, "command_settings", {}))(command)
    for name, target in GROUPS:
        module, attribute = target.split(":")
        app.add_typer(getattr(importlib.import_module(module), attribute), name=name)


_register()


EXIT_BUG = 1


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script.

    Bad input (descent's :class:`~descent.errors.DescentError`, a ValueError, a missing file) is
    one line on stderr and exit status 2; any other exception is a bug in descent: one line saying
    so, exit status 1. ``--debug`` anywhere on the line shows the traceback instead.
    """
    from descent.errors import DescentError

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:  # accepted after the subcommand too: it is the root's option, so move it there
        args = ["--debug", *(arg for arg in args if arg != "--debug")]
    try:
        code = app(args=args, prog_name="descent", standalone_mode=False)
    except TyperException as error:  # a usage error: unknown option, bad value, no argument
        if debug:
            raise
        context = getattr(error, "ctx", None)
        command = context.command_path if context is not None else "descent"
        if not error.format_message():  # no arguments at all: the help was already shown
            sys.exit(EXIT_BAD_INPUT)
        print(f"descent: error: {error.format_message()} (try '{command} --help')", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except (DescentError, ValueError, FileNotFoundError) as error:
        if debug:
            raise
        print(f"descent: error: {_one_line(error)}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except Abort:
        sys.exit(130)
    except Exception as error:
        if debug:
            raise
        print(
            f"descent: internal error: {type(error).__name__}: {_one_line(error)} — this is a bug "
            "in descent; run the command again with --debug for the traceback and report it.",
            file=sys.stderr,
        )
        sys.exit(EXIT_BUG)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
