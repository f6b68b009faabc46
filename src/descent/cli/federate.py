"""`descent federate`: federated averaging (FedSGD, FedAvg, adaptive server rules) simulated in one
process, a FedSGD-vs-FedAvg comparison table, or a Flower App folder for a real deployment."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from descent.cli.console import console
from descent.cli.run_options import MODEL


def parse_batch(text: str) -> int | None:
    """``10`` → 10; ``inf``, ``full`` or ``∞`` → None (B = ∞, the whole local data set)."""
    if text.strip().lower() in ("inf", "full", "∞", "infinity"):
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        from descent.errors import InputError

        raise InputError(f"--local-batch must be a positive integer or 'inf', got {text!r}")
    return value


def federate(
    clients: Annotated[int, typer.Option(help="K, the number of clients.")] = 100,
    fraction: Annotated[float, typer.Option(help="C, the share of clients per round.")] = 0.1,
    local_epochs: Annotated[int, typer.Option(help="E, local epochs per round.")] = 5,
    local_batch: Annotated[
        str, typer.Option(help="B, the local batch; 'inf' for the full local data.")
    ] = "10",
    local_optimizer: Annotated[str, typer.Option(help="The clients' descent update rule.")] = "sgd",
    local_lr: Annotated[float, typer.Option(help="The clients' learning rate.")] = 0.05,
    proximal_mu: Annotated[float, typer.Option(help="FedProx's μ (0: off).")] = 0.0,
    partition: Annotated[
        str,
        typer.Option(help="iid, shards[:S], dirichlet:α or unbalanced[:σ]."),
    ] = "iid",
    server: Annotated[
        str, typer.Option(help="fedavg, fedavgm, fedadagrad, fedadam or fedyogi (or adam, …).")
    ] = "fedavg",
    server_lr: Annotated[
        float | None, typer.Option(help="η of the server rule (default: the rule's).")
    ] = None,
    model: Annotated[str, MODEL] = "cnn",
    data: Annotated[str, typer.Option(help="digits, mnist:DIR or fashion-mnist:DIR.")] = "digits",
    rounds: Annotated[int, typer.Option(help="The most communication rounds.")] = 50,
    target: Annotated[
        float | None, typer.Option(help="Stop at this test accuracy (e.g. 0.97).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seeds the split, the model, sampling, batches.")] = 0,
    logdir: Annotated[
        Path | None, typer.Option(help="TensorBoard curves and a checkpoint every round.")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the run folder's checkpoint.")
    ] = False,
    looped: Annotated[
        bool, typer.Option("--looped", help="Train clients one by one (no vmap).")
    ] = False,
    compare: Annotated[
        bool,
        typer.Option(
            "--compare",
            help="Rounds to --target for FedSGD and FedAvg, IID and non-IID (shards).",
        ),
    ] = False,
    fedsgd_lr: Annotated[float, typer.Option(help="FedSGD's client lr in --compare.")] = 0.5,
    show_split: Annotated[
        bool, typer.Option("--show-split", help="Print examples and labels per client.")
    ] = False,
    flower_app: Annotated[
        Path | None,
        typer.Option(help="Write a Flower App folder for this experiment and stop (flwr run)."),
    ] = None,
) -> None:
    """Federated averaging (McMahan et al. 2017) with any descent rule on the clients and FedAvg,
    FedAvgM, FedAdagrad, FedAdam or FedYogi on the server (Reddi et al. 2021)."""
    from rich.table import Table

    from descent.errors import InputError
    from descent.federated import ClientConfig, FederatedConfig
    from descent.federated.experiment import Experiment
    from descent.federated.experiment import compare as compare_rounds

    client = ClientConfig(
        optimizer=local_optimizer,
        lr=local_lr,
        epochs=local_epochs,
        batch_size=parse_batch(local_batch),
        proximal_mu=proximal_mu,
    )
    experiment = Experiment(
        data=data,
        model=model,
        clients=clients,
        partition=partition,
        federated=FederatedConfig(
            fraction=fraction,
            rounds=rounds,
            target=target,
            client=client,
            server=server,
            server_lr=server_lr,
            seed=seed,
            vectorize=not looped,
        ),
    )
    if flower_app is not None:
        from descent.federated.flower import write_app

        path = write_app(flower_app, experiment)
        console.print(
            f"wrote {path}; start a SuperLink and {clients} SuperNodes, then: "
            f"flwr run {flower_app} <connection> (see docs/federated.md)"
        )
        return
    if compare:
        if target is None:
            raise InputError("--compare needs --target, the test accuracy to reach (e.g. 0.9)")
        table = Table(
            title=f"Rounds to {target:.0%} test accuracy: {model} on {data}, K = {clients}, "
            f"C = {fraction:g}; FedAvg E = {local_epochs}, B = {local_batch}, lr {local_lr:g}; "
            f"FedSGD lr {fedsgd_lr:g}",
            caption="McMahan et al. 2017 (MNIST CNN to 99%, IID): FedSGD 626, FedAvg 20 "
            "(31×). '>' : not reached within --rounds.",
        )
        for column in ("split", "FedSGD", "FedAvg", "reduction"):
            table.add_column(column, justify="left" if column == "split" else "right")
        for row in compare_rounds(experiment, target, fedsgd_lr, max_rounds=rounds):
            sgd = str(row.fedsgd_rounds) if row.fedsgd_rounds else f"> {rounds}"
            avg = str(row.fedavg_rounds) if row.fedavg_rounds else f"> {rounds}"
            factor = row.reduction
            shown = "–" if factor is None else f"{factor:.1f}×"
            if factor is not None and row.fedsgd_rounds is None:
                shown = "≥ " + shown
            table.add_row(row.partition, sgd, avg, shown)
        console.print(table)
        return
    federation = experiment.federation(logdir=logdir)
    if show_split:
        console.print(str(federation.partition), highlight=False)
    table = Table(
        title=f"{experiment.federated.server} on {model}/{data}: K = {clients}, C = {fraction:g}, "
        f"E = {local_epochs}, B = {local_batch}, {local_optimizer} lr {local_lr:g}, {partition}"
    )
    for column in (
        "round",
        "clients",
        "failed",
        "client loss",
        "train loss",
        "test loss",
        "test acc",
        "time",
    ):
        table.add_column(column, justify="right")

    def show(metrics) -> None:
        if not sys.stdout.isatty():
            return
        console.print(
            f"round {metrics.round}: test accuracy {metrics.test_accuracy:.4f}", highlight=False
        )

    result = federation.run(resume=resume, callback=show)
    history = result.history
    stride = max(1, len(history) // 15)
    for index in sorted(set(range(0, len(history), stride)) | {len(history) - 1}):
        m = history[index]
        table.add_row(
            str(m.round),
            str(len(m.clients)),
            str(len(m.failed)),
            f"{m.client_loss:.4f}",
            f"{m.train_loss:.4f}",
            f"{m.test_loss:.4f}",
            f"{m.test_accuracy:.4f}",
            f"{m.seconds:.2f} s",
        )
    console.print(table)
    if target is not None:
        console.print(
            f"reached {target:.2%} in round {result.reached}"
            if result.reached
            else f"did not reach {target:.2%} in {rounds} rounds",
            highlight=False,
        )
    if logdir is not None:
        console.print(
            f"TensorBoard: tensorboard --logdir {logdir} (federated/…); checkpoint "
            f"{logdir / 'federated.pt'}"
        )
