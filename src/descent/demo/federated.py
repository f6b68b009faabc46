"""Demo chapter: FedAvg against FedSGD on the bundled digits split across clients."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from descent.demo import DemoOptions

#: small enough for a few seconds: softmax regression, 20 clients, half of them each round
CLIENTS, FRACTION, TARGET, MAX_ROUNDS = 20, 0.5, 0.9, 60
FEDAVG_LR, FEDSGD_LR = 0.1, 1.0


def chapter(console: Console, options: DemoOptions, number: int) -> None:
    from descent.federated import ClientConfig, FederatedConfig
    from descent.federated.experiment import Experiment, compare

    experiment = Experiment(
        model="softmax",
        clients=CLIENTS,
        federated=FederatedConfig(
            fraction=FRACTION, client=ClientConfig(lr=FEDAVG_LR, epochs=5, batch_size=10)
        ),
    )
    rows = compare(experiment, TARGET, FEDSGD_LR, max_rounds=MAX_ROUNDS)
    table = Table(
        title=f"{number}. Federated averaging: digits on {CLIENTS} clients, "
        f"{FRACTION:.0%} of them per round, rounds to {TARGET:.0%} test accuracy",
        caption="FedSGD: one full-batch gradient step per client per round. FedAvg: 5 local "
        "epochs of mini-batches of 10 before averaging (McMahan et al. 2017). Shards: each "
        "client holds two digit classes.",
    )
    for column in ("split", "FedSGD rounds", "FedAvg rounds", "fewer rounds", "time"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for row in rows:

        def shown(value: int | None) -> str:
            return str(value) if value else f"> {MAX_ROUNDS}"

        factor = row.reduction
        table.add_row(
            row.partition,
            shown(row.fedsgd_rounds),
            shown(row.fedavg_rounds),
            "–" if factor is None else f"{'≥ ' if row.fedsgd_rounds is None else ''}{factor:.1f}×",
            f"{row.fedsgd_seconds + row.fedavg_seconds:.1f} s",
        )
    console.print(table)
    console.print("   More: descent federate --compare --target 0.95 (the CNN, 100 clients)")
