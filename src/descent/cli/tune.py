"""`descent tune [SPACE.yaml] [--method grid|random|tpe] [--trials N] [--workers N]
[--storage URL] [--name NAME] [--resume]`"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer


def tune(
    space: Annotated[
        Path | None,
        typer.Argument(
            help="A search space YAML (default: the digits CNN space; with --resume, the "
            "study's own)."
        ),
    ] = None,
    method: Annotated[
        str | None, typer.Option(help="grid, random or tpe [default: tpe, or the study's].")
    ] = None,
    trials: Annotated[
        int | None,
        typer.Option(min=1, help="Trials to finish (not for grid) [default: 12, or the study's]."),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Trial processes on this machine.")] = 1,
    storage: Annotated[
        str | None,
        typer.Option(
            help="An SQLAlchemy URL (postgresql://USER@HOST/DB) shared by machines; its password "
            "is never shown (see docs/tuning.md to keep it out of the command line)."
        ),
    ] = None,
    name: Annotated[str, typer.Option(help="The study's name in the storage.")] = "descent",
    study: Annotated[Path, typer.Option(help="The study folder (logs, SQLite file).")] = Path(
        "runs/tune"
    ),
    pruner: Annotated[
        str | None, typer.Option(help="median, hyperband or none [default: median].")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Override the space's base epochs.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seeds the sampler [default: 0].")] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue the study (or join it from another machine)."),
    ] = False,
) -> None:
    """Search hyperparameters with Optuna; see the trials in TensorBoard's HParams dashboard."""
    import optuna

    from descent.cli.console import console
    from descent.errors import DescentError, InputError
    from descent.tune import SearchSpace, StudySettings, best_config, summary_rows
    from descent.tune import tune as run_study
    from descent.tune.study import RECORD, mask_url
    from descent.yamlfile import dumps

    # The command's own choice: Optuna's per-trial INFO lines would bury the table.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = SearchSpace.from_yaml(space) if space is not None else None
    if epochs is not None:
        if search is None and resume:
            raise InputError(
                "--epochs changes the search space, which a resumed study keeps; leave it out"
            )
        from descent.tune import DEFAULT_SPACE

        data = search.to_dict() if search is not None else DEFAULT_SPACE
        search = SearchSpace.from_dict({**data, "base": {**data["base"], "epochs": epochs}})
    settings = StudySettings(
        study,
        search,
        method=method,
        trials=trials,
        pruner=pruner,
        storage=storage,
        seed=seed,
        name=name,
    )
    if storage is not None:
        console.print(f"storage: {mask_url(storage)} (study {name!r})", soft_wrap=True)
    result = run_study(settings, workers=workers, resume=resume)
    record = result.user_attrs[RECORD]
    rows = summary_rows(result)
    from rich.table import Table

    table = Table(title=f"{len(rows)} trials in {study} ({record['method']}), best first")
    names = list(record["space"]["params"])
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
    if not any(row["state"] == "complete" for row in rows):
        raise DescentError(f"{study}: no trial completed; see the failed trials' messages above")
    best = study / "best.yaml"
    best.write_text(dumps(best_config(result)), encoding="utf-8")
    console.print(
        f"best configuration: {best} (train it: descent train --config {best})", soft_wrap=True
    )
    console.print(
        f"compare the trials in TensorBoard's HParams tab: descent board {study}", soft_wrap=True
    )
