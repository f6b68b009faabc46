"""Demo chapter: the three batch modes on diabetes regression, and SGD's step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from descent.demo import DemoOptions


@dataclass(frozen=True)
class ModeResult:
    label: str
    updates: int
    examples_seen: int
    first_step: float
    relative_gap: float
    seconds: float


#: (label, LinearRegressionGD options): the lecture's three modes, then SGD's step choices.
RUNS: list[tuple[str, dict[str, Any]]] = [
    ("gradient descent", {"mode": "full"}),
    ("SGD, constant step 1/L (lecture)", {"mode": "single", "learning_rate": "constant"}),
    ("SGD, decaying η₀/(1 + t/n) (default)", {"mode": "single"}),
    ("SGD, decaying + averaged iterates", {"mode": "single", "average": True}),
    ("mini-batch B = 50 (default)", {"mode": "minibatch"}),
]


def compare_batch_modes(epochs: int = 20, seed: int = 0) -> list[ModeResult]:
    """Each run of :data:`RUNS` on diabetes for the same budget of examples seen (``epochs``
    passes over the data) from w₀ = 0, with its "auto" step."""
    import torch

    from descent import optim
    from descent.data.tables import diabetes
    from descent.linear import LinearRegressionGD

    table = diabetes()
    # torch imports its compiler stack when the first optimizer is built (about a second): pay it
    # before timing anything.
    optim.SGD([torch.zeros(1, requires_grad=True)])
    results = []
    for label, options in RUNS:
        model = LinearRegressionGD(max_epochs=epochs, tol=0.0, random_state=seed, **options)
        model.fit(table.X, table.y)
        report = model.fit_report(table.X, table.y)
        group = model.optimizer_.param_groups[0]
        results.append(
            ModeResult(
                label,
                model.n_iter_ * len(model.batches_),
                model.n_iter_ * len(table.y),
                model.optimizer_.lr_at(group, 0),
                report.relative_gap,
                report.seconds,
            )
        )
    return results


def chapter(console: Console, options: DemoOptions, number: int) -> None:
    modes = Table(
        title=f"{number}. Batch modes: regression on diabetes, 20 passes over the data each",
        caption="J(w) = Σ (y − Φw)², w₀ = 0, standardized basis; η₀ = 1/L, stable for every "
        "batch a mode can draw. Same examples seen, very different numbers of updates. SGD "
        "with a constant step stalls at its noise floor; the decaying default keeps "
        "converging (docs/linear.md).",
    )
    for column in ("run", "updates", "examples seen", "η₀", "(J − J*)/J*", "time"):
        modes.add_column(column, justify="left" if column == "run" else "right", no_wrap=True)
    for row in compare_batch_modes(20):
        modes.add_row(
            row.label,
            str(row.updates),
            str(row.examples_seen),
            f"{row.first_step:.3g}",
            f"{row.relative_gap:.2e}",
            f"{row.seconds * 1e3:.0f} ms",
        )
    console.print(modes)
