"""Samples per second of descent's Trainer (default logging to TensorBoard, checkpoints every
epoch) against a plain hand-written PyTorch loop doing the same work (same model, data order,
optimizer, validation every epoch), measured in one run, alternating the two.

    python benchmarks/train_overhead.py [--model cnn] [--epochs 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from torch.nn import functional as F

from descent import optim
from descent.data.batches import Batches
from descent.data.images import ImageData, digits
from descent.models import MLP, SmallCNN
from descent.train import Trainer


def build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return SmallCNN((1, 8, 8), 10) if name == "cnn" else MLP(64, 10, hidden=(256,))


def hand_loop(name: str, data: ImageData, epochs: int) -> float:
    """The loop a person writes by hand: samples per second."""
    model = build(name)
    opt = optim.Adam(model.parameters(), lr=2e-3)
    batches = Batches(len(data.train), "minibatch", 50, seed=0)
    images, labels = data.train.images, data.train.labels
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for indices in batches.epoch():
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(images[indices]), labels[indices])
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            F.cross_entropy(model(data.validation.images), data.validation.labels)
    return epochs * len(images) / (time.perf_counter() - start)


def trainer_run(name: str, data: ImageData, epochs: int) -> float:
    with tempfile.TemporaryDirectory() as logdir:
        trainer = Trainer(build(name), lr=2e-3, epochs=epochs, logdir=logdir)
        start = time.perf_counter()
        trainer.fit(data.train, data.validation)
        return epochs * len(data.train) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["cnn", "mlp"], default="cnn")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    data = digits()
    hand_loop(args.model, data, 1)  # warm up: torch's first-optimizer import, allocator
    trainer_run(args.model, data, 1)
    hand, ours = [], []
    for _ in range(args.rounds):
        hand.append(hand_loop(args.model, data, args.epochs))
        ours.append(trainer_run(args.model, data, args.epochs))
    hand_rate, our_rate = statistics.median(hand), statistics.median(ours)
    overhead = hand_rate / our_rate - 1
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.model} on digits "
        f"({len(data.train)} training images), {args.epochs} epochs, median of {args.rounds}"
    )
    print(f"hand-written loop      {hand_rate:10,.0f} samples/s")
    print(
        f"descent Trainer        {our_rate:10,.0f} samples/s (TensorBoard scalars every 10 "
        "steps, update ratios every 50, weight images and a checkpoint every epoch)"
    )
    print(
        f"Trainer overhead       {overhead:10.1%}  (target ≤ 5%: "
        f"{'ok' if overhead <= 0.05 else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
