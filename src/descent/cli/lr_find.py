"""`descent lr-find`: the learning-rate range test on a configured model and data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from descent.cli.console import console
from descent.cli.run_options import (
    BatchSizeOption,
    ConfigOption,
    DataOption,
    OptimizerOption,
    RunModelOption,
    SeedOption,
    TargetOption,
    settings_from,
)


def lr_find(
    config: ConfigOption = None,
    model: RunModelOption = None,
    data: DataOption = None,
    target: TargetOption = None,
    optimizer: OptimizerOption = None,
    batch_size: BatchSizeOption = None,
    seed: SeedOption = None,
    min_lr: Annotated[float, typer.Option("--min", help="First rate of the sweep.")] = 1e-7,
    max_lr: Annotated[float, typer.Option("--max", help="Last rate of the sweep.")] = 10.0,
    steps: Annotated[int, typer.Option(help="Updates in the sweep (≥ 10).")] = 100,
    plot: Annotated[
        Path | None, typer.Option(help="Draw the curve, the stretch and the suggestion to a PNG.")
    ] = None,
) -> None:
    """Sweep the learning rate exponentially and suggest one (weights are not kept)."""
    from descent.diagnose.lr_find import range_test_for

    settings = settings_from(
        config,
        model=model,
        data=data,
        target=target,
        optimizer=optimizer,
        batch_size=batch_size,
        seed=seed,
    )
    test = range_test_for(settings, min_lr=min_lr, max_lr=max_lr, steps=steps)
    table = Table(title=f"range test: {settings.model} on {settings.data}, {settings.optimizer}")
    for column in ("step", "lr", "loss", "smoothed", "at lr"):
        table.add_column(column, justify="right")
    stride = max(1, len(test.lrs) // 12)
    for index in sorted(set(range(0, len(test.lrs), stride)) | {len(test.lrs) - 1}):
        table.add_row(
            str(index),
            f"{test.lrs[index]:.3g}",
            f"{test.losses[index]:.4f}",
            f"{test.smoothed[index]:.4f}",
            f"{test.centres[index]:.3g}",
        )
    console.print(table)
    console.print(test.summary(), soft_wrap=True, highlight=False)
    if plot is not None:
        test.plot(plot)
        console.print(f"wrote {plot}")
