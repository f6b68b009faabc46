"""`descent tune [SPACE.yaml] [--method grid|random|tpe] [--trials N] [--workers N]
[--storage URL] [--resume]`"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.table import Table

console = Console(width=None if sys.stdout.isatty() else 120)


def tune(
    space: Annotated[
        Path | None, typer.Argument(help="A search space YAML (default: the digits CNN space).")
    ] = None,
    method: Annotated[str, typer.Option(help="grid, random or tpe.")] = "tpe",
    trials: Annotated[
        int, typer.Option(min=1, help="Finished trials to reach (not for grid).")
    ] = 12,
    workers: Annotated[int, typer.Option(min=1, help="Trial processes on this machine.")] = 1,
    storage: Annotated[
        str | None, typer.Option(help="An Optuna storage URL (postgresql://…) shared by machines.")
    ] = None,
    study: Annotated[Path, typer.Option(help="The study folder (logs, SQLite file).")] = Path(
        "runs/tune"
    ),
    pruner: Annotated[str, typer.Option(help="median, hyperband or none.")] = "median",
    epochs: Annotated[int | None, typer.Option(help="Override the space's base epochs.")] = None,
    seed: Annotated[int, typer.Option(help="Seeds the sampler.")] = 0,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the study in --study.")
    ] = False,
) -> None:
    """Search hyperparameters with Optuna; see the trials in TensorBoard's HParams dashboard."""
    from descent.tune import DEFAULT_SPACE, SearchSpace, StudySettings, best_config, summary_rows
    from descent.tune import tune as run_study

    if space is not None:
        search = SearchSpace.from_yaml(space)
    elif resume and (study / "space.yaml").is_file():
        search = SearchSpace.from_dict(yaml.safe_load((study / "space.yaml").read_text())["space"])
    else:
        search = SearchSpace.from_dict(DEFAULT_SPACE)
    if epochs is not None:
        search = SearchSpace.from_dict(
            {**search.to_dict(), "base": {**search.base, "epochs": epochs}}
        )
    settings = StudySettings(
        study, search, method=method, trials=trials, pruner=pruner, storage=storage, seed=seed
    )
    result = run_study(settings, workers=workers, resume=resume)
    rows = summary_rows(result)
    table = Table(title=f"{len(rows)} trials in {study} ({method}), best first")
    names = [p.name for p in search.params]
    for column in ("trial", "state", *names, "val acc", "test acc"):
        table.add_column(column, justify="left" if column == "state" else "right")
    for row in rows:
        cells = [
            f"{row['params'][n]:.4g}"
            if isinstance(row["params"].get(n), float)
            else str(row["params"].get(n, ""))
            for n in names
        ]
        table.add_row(
            str(row["trial"]),
            row["state"],
            *cells,
            "" if math.isnan(row["val_accuracy"]) else f"{row['val_accuracy']:.4f}",
            "" if math.isnan(row["test_accuracy"]) else f"{row['test_accuracy']:.4f}",
        )
    console.print(table)
    best = study / "best.yaml"
    best.write_text(yaml.safe_dump(best_config(result), sort_keys=False))
    console.print(
        f"best configuration: {best} (train it: descent train --config {best})", soft_wrap=True
    )
    console.print(
        f"compare the trials in TensorBoard's HParams tab: descent board {study}", soft_wrap=True
    )
