"""`descent demo`: the tour on bundled data."""

from __future__ import annotations

from typing import Annotated

import typer


def demo(
    steps: Annotated[int, typer.Option(min=1, help="Updates per rule.")] = 300,
    tune_trials: Annotated[int, typer.Option(min=1, help="Trials of the tuning chapter.")] = 6,
) -> None:
    """A tour on bundled data: the lecture chapter by chapter (batch modes, update rules,
    training, tuning, …)."""
    import optuna

    from descent.cli.console import console
    from descent.demo import DemoOptions, run

    # The tour prints its own tables; Optuna's per-trial INFO lines would bury them.
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    run(console, DemoOptions(steps=steps, tune_trials=tune_trials))
