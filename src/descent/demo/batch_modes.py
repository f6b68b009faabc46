"""Demo chapter: the three batch modes on diabetes regression."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from descent.demo import DemoOptions


def chapter(console: Console, options: DemoOptions, number: int) -> None:
    from descent.demo.problems import compare_batch_modes

    modes = Table(
        title=f"{number}. Batch modes: regression on diabetes, 20 passes over the data each",
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
                "single": "stochastic (B = 1)",
                "minibatch": "mini-batch (B = 50)",
            }[row.mode],
            str(row.updates),
            str(row.examples_seen),
            f"{row.learning_rate:.3g}",
            f"{row.relative_gap:.2e}",
            f"{row.seconds * 1e3:.0f} ms",
        )
    console.print(modes)
