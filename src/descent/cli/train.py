"""`descent train` and `descent board`."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console(width=None if sys.stdout.isatty() else 110)


def train(
    config: Annotated[
        Path | None, typer.Option(help="A YAML RunConfig; options below override it.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="softmax, mlp or cnn.")] = None,
    data: Annotated[
        str | None, typer.Option(help="digits, mnist:DIR, fashion-mnist:DIR or cifar10:DIR.")
    ] = None,
    optimizer: Annotated[str | None, typer.Option(help="Any descent update rule.")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate (the schedule's start).")] = None,
    schedule: Annotated[
        str | None, typer.Option(help="A schedule name (cosine_decay, one_cycle, …) or 'none'.")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Mini-batch size B.")] = None,
    mode: Annotated[str | None, typer.Option(help="full, sgd or minibatch.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seeds everything.")] = None,
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
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the run's checkpoint.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Train an image classifier; logs and checkpoints go to the run folder."""
    from descent.train.config import load_config
    from descent.train.run import run

    overrides = dict(
        model=model,
        data=data,
        optimizer=optimizer,
        lr=lr,
        epochs=epochs,
        batch_size=batch_size,
        mode=mode,
        seed=seed,
        logdir=logdir,
        init=init,
        diagnose_every=diagnose_every,
    )
    settings = load_config(config, **overrides)
    updates = {}
    if schedule is not None:
        updates["schedule"] = None if schedule == "none" else schedule
    if settings.logdir is None:
        updates["logdir"] = f"runs/{settings.model}"
    if histograms_every is not None:
        updates["log"] = {**settings.log.model_dump(), "histograms_every": histograms_every}
    if updates:
        settings = load_config(None, **{**settings.model_dump(), **updates})
    outcome = run(settings, resume=resume, progress=not quiet)
    table = Table(
        title=f"{settings.model} on {settings.data}: {settings.optimizer}, "
        f"lr {settings.lr:g}, schedule {settings.schedule or 'none'}"
    )
    for column in ("epoch", "train loss", "train acc", "val loss", "val acc", "lr", "time"):
        table.add_column(column, justify="right")
    history = outcome.result.history
    stride = max(1, len(history) // 10)
    for index in sorted(set(range(0, len(history), stride)) | {len(history) - 1}):
        row = history[index]
        table.add_row(
            str(row.epoch),
            f"{row.train_loss:.4f}",
            f"{row.train_accuracy:.4f}",
            f"{row.val_loss:.4f}" if row.val_loss is not None else "",
            f"{row.val_accuracy:.4f}" if row.val_accuracy is not None else "",
            f"{row.learning_rate:.3g}",
            f"{row.seconds:.2f} s",
        )
    console.print(table)
    console.print(
        f"test accuracy {outcome.test_accuracy:.4f} (loss {outcome.test_loss:.4f}); "
        f"stopped: {outcome.result.stopped}; {outcome.result.examples_per_second:,.0f} "
        "examples/s"
    )
    console.print(
        f"logs and checkpoints: {outcome.logdir}; open them with: descent board {outcome.logdir}",
        soft_wrap=True,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_tensorboard(logdir: Path, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """Start TensorBoard on 127.0.0.1 for ``logdir``; return the process and its address once
    it answers."""
    import urllib.request

    port = port or free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            str(logdir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--reload_interval",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    address = f"http://127.0.0.1:{port}/"
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
    port: Annotated[
        int | None, typer.Option(help="Port on 127.0.0.1 (default: a free one).")
    ] = None,
) -> None:
    """Start TensorBoard on a run folder (localhost) and print its address; Ctrl-C stops it."""
    if not logdir.exists():
        raise FileNotFoundError(f"{logdir}: no such folder (train first: descent train)")
    process, address = start_tensorboard(logdir, port)

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
