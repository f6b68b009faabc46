"""Demo chapter: the lecture's 10-layer tanh network under four initializations, the verdicts,
and LSUV repairing the one whose signal vanishes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from descent.demo import DemoOptions

SCHEMES = ("normal:0.01", "normal:1", "xavier_normal", "zeros")


def chapter(console: Console, options: DemoOptions, number: int) -> None:
    import torch

    from descent.diagnose import init_report, lsuv
    from descent.models import MLP, initialize

    # 10 × 256 keeps the chapter to about a second; the lecture's 500 units behave the same.
    depth, width = 10, 256
    batch = torch.randn(256, width, generator=torch.Generator().manual_seed(1))
    reports = {}
    for scheme in SCHEMES:
        model = MLP(width, 10, depth=depth, width=width, activation="tanh")
        initialize(model, scheme, generator=torch.Generator().manual_seed(0))
        reports[scheme] = init_report(model, batch)
    repaired = MLP(width, 10, depth=depth, width=width, activation="tanh")
    initialize(repaired, "normal:0.01", generator=torch.Generator().manual_seed(0))
    reports["normal:0.01 → lsuv"] = lsuv(
        repaired, batch, generator=torch.Generator().manual_seed(0)
    )

    table = Table(
        title=f"{number}. Initialization: {depth} tanh layers of {width} units, "
        "standard-normal inputs",
        caption="std of each tanh layer's output; the verdict of descent.diagnose.init_report",
    )
    table.add_column("initialization")
    for index in (1, 2, 3, 5, depth):
        table.add_column(f"layer {index}", justify="right")
    table.add_column("saturated", justify="right")
    table.add_column("verdict")
    for name, report in reports.items():
        tanh = report.main_layers()
        saturated = max(layer.saturated or 0.0 for layer in tanh)
        verdict = report.verdict.name
        table.add_row(
            name,
            *(f"{tanh[index - 1].std:.2g}" for index in (1, 2, 3, 5, depth)),
            f"{saturated:.0%}",
            verdict if report.healthy else f"[red]{verdict}[/red]",
        )
    console.print(table)
    for name in ("normal:0.01", "normal:1", "zeros"):
        console.print(f"   {name}: {reports[name].verdict.suggestion}", soft_wrap=True)
    console.print(
        "   The figure and the same table for your model: descent diagnose init --init "
        "normal:0.01 --init xavier_normal --plot init.png"
    )
