"""Demo chapter: every update rule on the same convex problem, beside the exact optimum."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from descent.demo import problems

if TYPE_CHECKING:
    from descent.demo import DemoOptions


def chapter(console: Console, options: DemoOptions, number: int) -> None:
    steps = options.steps
    results = problems.compare_rules(steps)
    table = Table(
        title=f"{number}. Every update rule: full batch, {steps} steps from w₀ = 0",
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
