"""Samples per second of descent's Trainer against a plain hand-written PyTorch loop doing the same
work (same model, batches, optimizer, validation every epoch), measured in one run, alternating
the two; and `descent train`'s wall time against the Trainer's own fit time.

Data paths: the bundled digits as tensors, and an MNIST-sized synthetic set (60,000 × 1 × 28 × 28,
10 classes) read through a Dataset and a DataLoader, the hand loop iterating the same DataLoader.
The Trainer runs without a run folder (the hand loop writes no logs or checkpoints either); the
cost of the run folder (TensorBoard, a checkpoint per epoch) is printed apart.

Each figure is given twice: from wall-clock time and from the process's CPU time. On a machine
busy with other work the wall-clock figures move by tens of percent from run to run; the CPU
time of a one-thread process (OMP_NUM_THREADS=1) does not, so its ratio is the one to read there.

`--cli` times `descent train --model cnn --epochs 5` end to end against the Trainer's fit time
(metrics.json's fit_seconds), and against the floor any PyTorch script pays: a process that only
imports torch and builds a torch optimizer (which imports torch._dynamo) before training.

    OMP_NUM_THREADS=1 python benchmarks/train_overhead.py [--model cnn] [--epochs 10] [--rounds 3]
        [--mnist-epochs 1] [--cli] [--ddp]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from conditions import conditions
from conditions import parser as benchmark_parser
from descent import optim
from descent.data.images import digits
from descent.models import MLP, SmallCNN
from descent.train import BatchSampler, Trainer


def build(name: str, shape: tuple[int, int, int]) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "cnn":
        return SmallCNN(shape, 10)
    return MLP(shape[0] * shape[1] * shape[2], 10, hidden=(256,))


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def rates(seen: int, started: tuple[float, float]) -> tuple[float, float]:
    """Samples per second of wall-clock time and of CPU time since ``started``."""
    wall, cpu = clocks()
    return seen / (wall - started[0]), seen / (cpu - started[1])


def hand_loop(model: torch.nn.Module, train, validation, epochs: int) -> tuple[float, float]:
    """The loop a person writes by hand: samples per second (wall, CPU). ``train`` yields (x, y)
    batches."""
    opt = optim.Adam(model.parameters(), lr=2e-3)
    started, seen = clocks(), 0
    for _ in range(epochs):
        model.train()
        for inputs, targets in train():
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(inputs), targets)
            loss.backward()
            opt.step()
            seen += len(targets)
        model.eval()
        with torch.no_grad():
            for inputs, targets in validation():
                F.cross_entropy(model(inputs), targets)
    return rates(seen, started)


def trainer_rate(
    model: torch.nn.Module, train, validation, epochs: int, logged: bool = False
) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as folder:
        trainer = Trainer(
            model, lr=2e-3, epochs=epochs, logdir=folder if logged else None, device="cpu"
        )
        started = clocks()
        result = trainer.fit(train, validation)
        # examples/s × seconds of fit: the examples trained on (every epoch's)
        return rates(round(result.examples_per_second * result.seconds), started)


def compare(label: str, hand, ours, logged, rounds: int) -> None:
    hand(), ours()  # warm up: first-optimizer import, allocator, worker start
    runs: dict[str, list[tuple[float, float]]] = {"hand": [], "ours": [], "logged": []}
    for _ in range(rounds):
        runs["hand"].append(hand())
        runs["ours"].append(ours())
        runs["logged"].append(logged())
    median = {
        name: tuple(statistics.median(rate[clock] for rate in values) for clock in (0, 1))
        for name, values in runs.items()
    }
    print(f"{label}")
    print("                              wall samples/s   CPU samples/s")
    for name, title in (
        ("hand", "hand-written loop"),
        ("ours", "descent Trainer"),
        ("logged", "  with a run folder"),
    ):
        print(f"  {title:26s} {median[name][0]:14,.0f} {median[name][1]:15,.0f}")
    for clock, what in ((0, "wall"), (1, "CPU")):
        overhead = median["hand"][clock] / median["ours"][clock] - 1
        folder = median["ours"][clock] / median["logged"][clock] - 1
        print(
            f"  Trainer overhead ({what:4s})   {overhead:8.1%}  (target ≤ 3%: "
            f"{'ok' if overhead <= 0.03 else 'MISSED'}); the run folder adds {folder:.1%}"
        )
    print(f"  (medians of {rounds} alternating rounds)")


def digits_tensors(model_name: str, epochs: int, rounds: int) -> None:
    data = digits()
    images, labels = data.train.images, data.train.labels

    def batches():
        sampler = BatchSampler(len(labels), "minibatch", 50, seed=0)
        return ((images[i], labels[i]) for i in sampler.index_batches())

    def validation():
        return [(data.validation.images, data.validation.labels)]

    compare(
        f"{model_name} on digits as tensors ({len(labels)} images), {epochs} epochs",
        lambda: hand_loop(build(model_name, (1, 8, 8)), batches, validation, epochs),
        lambda: trainer_rate(build(model_name, (1, 8, 8)), data.train, data.validation, epochs),
        lambda: trainer_rate(
            build(model_name, (1, 8, 8)), data.train, data.validation, epochs, logged=True
        ),
        rounds,
    )


def mnist_sized(model_name: str, epochs: int, rounds: int, workers: int) -> None:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(60_000, 1, 28, 28, generator=generator)
    labels = torch.randint(0, 10, (60_000,), generator=generator)
    train = TensorDataset(images, labels)
    # A map-style Dataset that is not a TensorDataset, so both sides go through a DataLoader.
    dataset = torch.utils.data.Subset(train, range(len(train)))
    validation = TensorDataset(images[:10_000], labels[:10_000])

    def loader() -> DataLoader:
        return DataLoader(
            dataset,
            batch_sampler=BatchSampler(len(dataset), "minibatch", 128, seed=0),
            num_workers=workers,
        )

    def validation_batches():
        return DataLoader(validation, batch_size=2048)

    compare(
        f"{model_name} on an MNIST-sized synthetic set (60,000 × 1 × 28 × 28) through a "
        f"DataLoader ({workers} workers), batches of 128, {epochs} epoch(s)",
        lambda: hand_loop(build(model_name, (1, 28, 28)), loader, validation_batches, epochs),
        lambda: trainer_rate(build(model_name, (1, 28, 28)), loader(), validation, epochs),
        lambda: trainer_rate(
            build(model_name, (1, 28, 28)), loader(), validation, epochs, logged=True
        ),
        rounds,
    )


#: What every PyTorch program pays before its first step: importing torch.
FLOOR = "import torch"
#: What a hand-written script with a torch optimizer pays: its add_param_group imports
#: torch._dynamo at first call (descent's optimizers skip that import; descent.optim._compat).
TORCH_SCRIPT_FLOOR = "import torch; torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)"


def wall_time(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=os.environ.copy())
    return time.perf_counter() - start


def cli_wall_time(nproc: int) -> None:
    """`descent train --model cnn --epochs 5` end to end: wall time vs the Trainer's fit time,
    and what is left after the fit and the floor every torch script pays."""
    floors = [wall_time([sys.executable, "-c", FLOOR])]
    scripts = [wall_time([sys.executable, "-c", TORCH_SCRIPT_FLOOR])]
    with tempfile.TemporaryDirectory() as folder:
        command = [
            sys.executable,
            "-m",
            "descent.cli.main",
            "train",
            "--model",
            "cnn",
            "--epochs",
            "5",
            "--logdir",
            str(Path(folder) / "run"),
            "--quiet",
            "--device",
            "cpu",
        ] + (["--nproc", str(nproc)] if nproc > 1 else [])
        wall = wall_time(command)
        fit = json.loads((Path(folder) / "run" / "metrics.json").read_text())["fit_seconds"]
    floors.append(wall_time([sys.executable, "-c", FLOOR]))  # before and after: the load moves
    scripts.append(wall_time([sys.executable, "-c", TORCH_SCRIPT_FLOOR]))
    floor, script = min(floors), min(scripts)
    print(
        f"descent train --model cnn --epochs 5{f' --nproc {nproc}' if nproc > 1 else ''}: "
        f"wall {wall:.2f} s, the Trainer's fit {fit:.2f} s, ratio {wall / fit:.2f} "
        f"(target ≤ 2: {'ok' if wall <= 2 * fit else 'MISSED'}); importing torch alone takes "
        f"{floor:.2f} s (with a torch optimizer's first use, as a hand-written script pays it: "
        f"{script:.2f} s), leaving {wall - fit - floor:.2f} s to descent's start-up, data and "
        "test evaluation"
    )


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--model", choices=["cnn", "mlp"], default="cnn")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mnist-epochs", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cli", action="store_true", help="also time `descent train`")
    parser.add_argument("--ddp", action="store_true", help="also `descent train --nproc 2`")
    args = parser.parse_args()
    print(conditions())
    digits_tensors(args.model, args.epochs, args.rounds)
    if args.mnist_epochs:
        mnist_sized(args.model, args.mnist_epochs, args.rounds, args.workers)
    if args.cli:
        cli_wall_time(1)
    if args.ddp:
        cli_wall_time(2)


if __name__ == "__main__":
    main()
