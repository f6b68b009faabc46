"""Demo chapter: a small TPE study of the digits CNN, shown in TensorBoard's HParams tab."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from descent.demo import DemoOptions


def chapter(console: Console, options: DemoOptions, number: int) -> None:
    from descent.tune import DEFAULT_SPACE, SearchSpace, StudySettings, summary_rows
    from descent.tune import tune as run_study

    trials = options.tune_trials
    folder = Path("runs/demo-tune")
    shutil.rmtree(folder, ignore_errors=True)  # the demo starts its small study afresh
    space = SearchSpace.from_dict({**DEFAULT_SPACE, "base": {"model": "cnn", "epochs": 5}})
    study = run_study(StudySettings(folder, space, method="tpe", trials=trials))
    best = summary_rows(study)[0]
    console.print(
        f"[bold]{number}. Hyperparameter tuning[/bold]: {trials} TPE trials of the digits CNN "
        f"(optimizer × learning rate × batch size, 5 epochs each, median pruning); best "
        f"validation accuracy {best['val_accuracy']:.4f} with {best['params']}."
    )
    console.print(
        f"   Compare them in TensorBoard's HParams tab: descent board {folder}", soft_wrap=True
    )
