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
    """A tour on bundled data: the three batch modes, then every update rule."""
    from descent.demo import compare_batch_modes, compare_rules

    modes = Table(
        title="1. Batch modes: regression on diabetes, 20 passes over the data each",
        caption="J(w) = Σ (y − Φw)², w₀ = 0, standardized basis, each mode with its own "
        "auto step 1/L (stable for every batch it can draw). Same examples seen, very "
        "different numbers of updates; constant-step SGD stalls at its noise floor.",
    )
    for column in ("mode", "updates", "examples seen", "step 1/L", "(J − J*)/J*", "time"):
        modes.add_column(column, justify="left" if column == "mode" else "right", no_wrap=True)
    for row in compare_batch_modes(20):
        modes.add_row(
            {
                "full": "gradient descent",
                "sgd": "stochastic (B = 1)",
                "minibatch": "mini-batch (B = 50)",
            }[row.mode],
            str(row.updates),
            str(row.examples_seen),
            f"{row.learning_rate:.3g}",
            f"{row.relative_gap:.2e}",
            f"{row.seconds * 1e3:.0f} ms",
        )
    console.print(modes)
    console.print()

    results = compare_rules(steps)
    table = Table(
        title=f"2. Every update rule: full batch, {steps} steps from w₀ = 0",
        caption="J(w) = mean (y − Φw)²; optimum from least squares. "
        "Learning rates suit this problem; every other hyperparameter is the rule's default.",
    )
    for column in ("rule", "lr", "steps", "final J", "optimum J", "relative gap", "time"):
        table.add_column(column, justify="left" if column == "rule" else "right")
    for row in results:
        table.add_row(
            row.name,
            f"{row.lr:g}",
            str(row.steps),
            f"{row.final_loss:.6f}",
            f"{row.optimum_loss:.6f}",
            f"{row.relative_gap:.2e}",
            f"{row.seconds * 1e3:.0f} ms",
        )
    console.print(table)
    console.print()

    from descent.train.config import load_config
    from descent.train.run import run

    config = load_config(model="cnn", logdir="runs/demo-cnn")
    outcome = run(config)
    last = outcome.result.final
    console.print(
        f"[bold]3. Image classification[/bold]: a small CNN on the bundled 8×8 digits, Adam with "
        f"a cosine-decay schedule from lr {config.lr:g}, {config.epochs} epochs of mini-batches of "
        f"{config.batch_size}: validation accuracy {last.val_accuracy:.4f}, test accuracy "
        f"{outcome.test_accuracy:.4f} ({outcome.result.examples_per_second:,.0f} examples/s)."
    )
    console.print(
        f"   Scalars, update-to-weight ratios and first-layer filters are in {outcome.logdir}; "
        f"open them with: descent board {outcome.logdir}"
    )
    console.print()

    import shutil

    from descent.tune import DEFAULT_SPACE, SearchSpace, StudySettings, summary_rows
    from descent.tune import tune as run_study

    folder = Path("runs/demo-tune")
    shutil.rmtree(folder, ignore_errors=True)  # the demo starts its small study afresh
    space = SearchSpace.from_dict({**DEFAULT_SPACE, "base": {"model": "cnn", "epochs": 5}})
    study = run_study(StudySettings(folder, space, method="tpe", trials=tune_trials))
    best = summary_rows(study)[0]
    console.print(
        f"[bold]4. Hyperparameter tuning[/bold]: {tune_trials} TPE trials of the digits CNN "
        f"(optimizer × learning rate × batch size, 5 epochs each, median pruning); best "
        f"validation accuracy {best['val_accuracy']:.4f} with {best['params']}."
    )
    console.print(
        f"   Compare them in TensorBoard's HParams tab: descent board {folder}", soft_wrap=True
    )


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
