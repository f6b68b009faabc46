"""`descent train` and `descent board`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from descent.cli.console import console
from descent.cli.run_options import (
    BATCH_MODE,
    BatchSizeOption,
    ConfigOption,
    DataOption,
    OptimizerOption,
    RunModelOption,
    SeedOption,
    TargetOption,
    settings_from,
)

if TYPE_CHECKING:
    from descent.train.config import RunConfig
    from descent.train.records import EpochMetrics


def train(
    config: ConfigOption = None,
    model: RunModelOption = None,
    data: DataOption = None,
    target: TargetOption = None,
    task: Annotated[
        str | None,
        typer.Option(help="classification or regression (default: regression for a table)."),
    ] = None,
    loss: Annotated[
        str | None,
        typer.Option(help="cross_entropy (classification); mse, mae or huber (regression)."),
    ] = None,
    hidden: Annotated[
        list[int] | None,
        typer.Option(help="An mlp's hidden layer sizes, one per option: --hidden 64 --hidden 32."),
    ] = None,
    optimizer: OptimizerOption = None,
    lr: Annotated[
        str | None,
        typer.Option(help="Learning rate (the schedule's start), or 'find' (a range test)."),
    ] = None,
    schedule: Annotated[
        str | None,
        typer.Option(help="A schedule name (cosine_decay, one_cycle, …), or 'none' for none."),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs.")] = None,
    batch_size: BatchSizeOption = None,
    mode: Annotated[str | None, BATCH_MODE] = None,
    seed: SeedOption = None,
    logdir: Annotated[str | None, typer.Option(help="Run folder (default runs/MODEL).")] = None,
    histograms_every: Annotated[
        int | None, typer.Option(help="Histograms every N steps (0: off).")
    ] = None,
    init: Annotated[
        str | None, typer.Option(help="Initialization: xavier_normal, normal:0.01, lsuv, …")
    ] = None,
    diagnose_every: Annotated[
        int | None, typer.Option(help="Per-layer activation std and dead units every N steps.")
    ] = None,
    curvature_every: Annotated[
        int | None,
        typer.Option(help="Log λ_max, λ_min, trace and gradient SNR every N updates (and the "
                     "stall verdict if early stopping or a plateau ends the run)."),
    ] = None,
    stop_on_plateau: Annotated[
        int | None,
        typer.Option(help="End the run when the training loss fell by less than 0.1% over N "
                     "epochs (reason \"plateau\"; the stall verdict says why)."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in the run folder.")
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace the run the run folder holds (else refused)."),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    # Devices, precision and processes (docs/trainer.md).
    device: Annotated[
        str | None, typer.Option(help="auto, cpu, cuda, cuda:N or mps (default auto).")
    ] = None,
    precision: Annotated[
        str | None, typer.Option(help="32, 64, bf16-mixed or 16-mixed (default 32).")
    ] = None,
    compile: Annotated[
        bool, typer.Option("--compile", help="Compile the model with torch.compile.")
    ] = False,
    num_workers: Annotated[
        int | None, typer.Option(help="Processes loading examples (0: none).")
    ] = None,
    nproc: Annotated[
        int | None, typer.Option(help="Data-parallel processes on this machine.")
    ] = None,
    nnodes: Annotated[int, typer.Option(help="Machines taking part (each runs this).")] = 1,
    rdzv_endpoint: Annotated[
        str | None, typer.Option(help="host:port where the machines meet (nnodes > 1).")
    ] = None,
    rdzv_id: Annotated[str | None, typer.Option(help="A name shared by the machines' job.")] = None,
) -> None:
    """Train a classifier on images, or a model of a table's column; logs and checkpoints go to
    the run folder."""
    from descent.diagnose.lr_find import parse_lr, range_test_for
    from descent.train.config import load_config
    from descent.train.run import run

    if resume and overwrite:
        raise ValueError("--resume continues the run and --overwrite replaces it: give one")
    lr, find_lr = parse_lr(lr)
    settings = settings_from(
        config,
        model=model,
        data=data,
        target=target,
        task=task,
        loss=loss,
        hidden=hidden or None,
        optimizer=optimizer,
        lr=lr,
        schedule=schedule,  # "none" is a setting: no schedule
        epochs=epochs,
        batch_size=batch_size,
        mode=mode,
        seed=seed,
        logdir=logdir,
        init=init,
        diagnose_every=diagnose_every,
        device=device,
        precision=precision,
        compile=compile or None,
        num_workers=num_workers,
        nproc=nproc,
        curvature_every=curvature_every,
        stop_on_plateau=stop_on_plateau,
    )
    updates: dict[str, object] = {}
    if settings.logdir is None:
        updates["logdir"] = f"runs/{settings.model}"
    if histograms_every is not None:
        updates["log"] = {**settings.log.model_dump(), "histograms_every": histograms_every}
    if find_lr:
        test = range_test_for(settings)
        console.print(f"range test: {test.summary()}", soft_wrap=True, highlight=False)
        updates["lr"] = test.suggestion
    if updates:
        settings = load_config(None, **{**settings.model_dump(), **updates})
    if settings.nproc > 1 or nnodes > 1:
        import logging

        from descent.train.distributed import DistributedError, launch

        # The launcher's own log lines repeat what the one-line error below says.
        logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
        try:
            outcome = launch(
                settings.nproc,
                train_process,
                settings.model_dump(),
                resume,
                nnodes=nnodes,
                rdzv_endpoint=rdzv_endpoint,
                rdzv_id=rdzv_id,
            )
        except DistributedError as error:
            last = Path(str(settings.logdir)) / "checkpoints" / "last.pt"
            kept = (
                f"; the last checkpoint, {last}, is intact: continue with --resume"
                if last.is_file()
                else "; no checkpoint had been written"
            )
            raise DistributedError(f"{error}{kept}") from None
        if outcome is None:
            console.print("this machine's processes are done; the machine with rank 0 reports")
            return
    else:
        outcome = run(settings, resume=resume, overwrite=overwrite, progress=not quiet)
        if int(os.environ.get("RANK", "0")) != 0:  # under torchrun: rank 0 reports
            return
    console.print(epoch_table(settings, outcome.result.history))
    test = ", ".join(f"test {name} {value:.4f}" for name, value in outcome.test.items())
    console.print(
        f"{test}; stopped: {outcome.result.stopped}; "
        f"{outcome.result.examples_per_second:,.0f} examples/s",
        highlight=False,
    )
    if outcome.stall is not None:
        console.print(str(outcome.stall), soft_wrap=True, highlight=False)
    console.print(
        f"logs and checkpoints: {outcome.logdir}; open them with: descent board {outcome.logdir}",
        soft_wrap=True,
    )


def epoch_table(settings: RunConfig, history: list[EpochMetrics]) -> Table:
    """About ten epochs of the history: the loss and every metric, on training and validation
    data, the learning rate and the epoch's time."""
    names = list(history[0].train) if history else ["loss"]
    table = Table(
        title=f"{settings.model} on {settings.data}: {settings.optimizer}, "
        f"lr {settings.lr:g}, schedule {settings.schedule or 'none'}"
    )
    columns = ["epoch", *(f"train {n}" for n in names), *(f"val {n}" for n in names), "lr", "time"]
    for column in columns:
        table.add_column(column.replace("accuracy", "acc"), justify="right")
    stride = max(1, len(history) // 10)
    for index in sorted(set(range(0, len(history), stride)) | {len(history) - 1}):
        row = history[index]
        val = row.val or {}
        table.add_row(
            str(row.epoch),
            *(f"{row.train[n]:.4f}" for n in names),
            *(f"{val[n]:.4f}" if n in val else "" for n in names),
            f"{row.learning_rate:.3g}",
            f"{row.seconds:.2f} s",
        )
    return table


def train_process(settings: dict, resume: bool) -> object:
    """One process of `descent train --nproc N` (started by torch's launcher): the run, with
    this machine's cores shared among its processes; rank 0's outcome is returned."""
    import torch

    from descent.train.config import RunConfig
    from descent.train.run import run

    if "OMP_NUM_THREADS" not in os.environ:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
    outcome = run(RunConfig(**settings), resume=resume)
    return outcome if int(os.environ.get("RANK", "0")) == 0 else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _die_with_parent(parent: int) -> None:
    """In the child, before it runs: ask Linux to send SIGTERM when the parent dies (even by
    SIGKILL, which runs no cleanup of ours), so no orphaned TensorBoard keeps the port."""
    import ctypes
    import os

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the SIGTERM handler of `board` still stops it
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def start_tensorboard(
    logdir: Path, port: int | None = None, host: str = "127.0.0.1"
) -> tuple[subprocess.Popen, str]:
    """Start TensorBoard on ``host`` (this machine only, by default) for ``logdir``; return the
    process and its address once it answers. The server dies with this process."""
    import os
    import urllib.request

    port = port or free_port()
    parent = os.getpid()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            str(logdir),
            "--host",
            host,
            "--port",
            str(port),
            "--reload_interval",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=(lambda: _die_with_parent(parent)) if sys.platform == "linux" else None,
    )
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    address = f"http://{local}:{port}/"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"TensorBoard exited: {error.strip().splitlines()[-1:]}")
        try:
            with urllib.request.urlopen(address + "data/runs", timeout=2):
                return process, address
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"TensorBoard did not answer on {address} within 60 s")


def board(
    logdir: Annotated[Path, typer.Argument(help="A run folder or a folder of runs.")] = Path(
        "runs"
    ),
    port: Annotated[int | None, typer.Option(help="Port (default: a free one).")] = None,
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on. The default serves this machine only; another address "
            "(0.0.0.0: every interface) shows your runs to anyone who can reach it."
        ),
    ] = "127.0.0.1",
) -> None:
    """Start TensorBoard on a run folder (this machine only unless --host) and print its address;
    Ctrl-C stops it."""
    if not logdir.exists():
        raise FileNotFoundError(f"{logdir}: no such folder (train first: descent train)")
    if not logdir.is_dir():
        from descent.errors import InputError

        raise InputError(f"{logdir}: a file, not a folder; give a run folder or a folder of runs")
    process, address = start_tensorboard(logdir, port, host)

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Stopped by a signal (a test, a service manager) as by Ctrl-C: the server goes too.
    signal.signal(signal.SIGTERM, stop)
    console.print(f"TensorBoard for {logdir} at {address} (Ctrl-C to stop)", soft_wrap=True)
    try:
        process.wait()
    except KeyboardInterrupt:
        process.terminate()
        process.wait(timeout=30)
