"""`descent`: a thin command line over the library. Bad input prints one line and exits 2;
`--debug` shows the traceback instead."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

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
# Piped output (a log, a test) gets a fixed width wide enough for the tables; a terminal its own.
console = Console(width=None if sys.stdout.isatty() else 110)

EXIT_BAD_INPUT = 2


def _version(value: bool) -> None:
    if value:
        console.print(f"descent {descent.__version__}")
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


@app.command()
def demo(
    steps: Annotated[int, typer.Option(min=1, help="Updates per rule.")] = 300,
    tune_trials: Annotated[int, typer.Option(min=1, help="Trials of the tuning chapter.")] = 6,
) -> None:
    """A tour on bundled data: the lecture chapter by chapter (batch modes, update rules,
    training, tuning, …)."""
    from descent.demo import DemoOptions, run

    run(console, DemoOptions(steps=steps, tune_trials=tune_trials))


@app.command()
def optimizers() -> None:
    """List the update rules with their formulas."""
    from descent.optim import OPTIMIZERS

    for name, cls in OPTIMIZERS.items():
        paragraphs = inspect.cleandoc(cls.__doc__ or "").split("\n\n")
        console.print(f"[bold]{name}[/bold] ({cls.__name__}): {paragraphs[0]}", soft_wrap=True)
        if len(paragraphs) > 1:
            console.print(paragraphs[1], markup=False, highlight=False, soft_wrap=True)
        console.print()


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    epilog="Example: descent schedule cosine_decay_restarts --initial_learning_rate 0.1 "
    "--first_decay_steps 20 step --initial_learning_rate 0.1 --step_size 30 --steps 150 "
    "--plot lr.png",
)
def schedule(
    ctx: typer.Context,
    steps: Annotated[int, typer.Option(min=1, help="Number of updates to show.")] = 100,
    plot: Annotated[
        Path | None, typer.Option(help="Draw the curves (all schedules on one figure) to a PNG.")
    ] = None,
    every: Annotated[
        int | None, typer.Option(min=1, help="Print every K-th step (default: about 20 rows).")
    ] = None,
) -> None:
    """Print (and plot) schedules: NAME --param value … [NAME --param value …]."""
    from descent.cli import schedule as schedule_cli

    curves = schedule_cli.parse_specs(list(ctx.args))
    table = Table(title=f"{len(curves)} schedule(s), {steps} updates")
    table.add_column("n", justify="right")
    for index, curve in enumerate(curves):
        table.add_column(f"{index + 1}: {curve.name}", justify="right")
    for n in schedule_cli.table_steps(steps, every):
        table.add_row(str(n), *(f"{curve(n):.6g}" for curve in curves))
    console.print(table)
    for index, curve in enumerate(curves):
        console.print(f"{index + 1}: {curve!r}", soft_wrap=True, highlight=False)
    if plot is not None:
        schedule_cli.plot(curves, steps, plot)
        console.print(f"wrote {plot}")


#: Every subcommand: (name, "module:function"). A command module imports only typer and the
#: standard library at its top, and the heavy libraries inside the command, so that `descent
#: --help` answers without importing torch. Add new commands here, one line each.
COMMANDS: list[tuple[str, str]] = [
    ("regress", "descent.cli.regress:regress"),
    ("gradcheck", "descent.cli.gradcheck:gradcheck"),
    ("train", "descent.cli.train:train"),
    ("board", "descent.cli.train:board"),
    ("tune", "descent.cli.tune:tune"),
    ("lr-find", "descent.cli.lr_find:lr_find"),
]
#: Command groups (a sub-app with commands of its own): (name, "module:app").
GROUPS: list[tuple[str, str]] = [
    ("diagnose", "descent.cli.diagnose:app"),
]


def _register() -> None:
    import importlib

    for name, target in COMMANDS:
        module, attribute = target.split(":")
        app.command(name=name)(getattr(importlib.import_module(module), attribute))
    for name, target in GROUPS:
        module, attribute = target.split(":")
        app.add_typer(getattr(importlib.import_module(module), attribute), name=name)


_register()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
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
    except (ValueError, TypeError, FileNotFoundError, KeyError, RuntimeError) as error:
        if debug:
            raise
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"descent: error: {message}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except Abort:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
