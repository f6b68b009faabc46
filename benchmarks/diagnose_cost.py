"""The cost of diagnosing an initialization, measured in one run:

1. ``init_report`` against one plain forward + backward pass of the same model on the same
   batch (the report is one forward and one backward with hooks, plus the symmetry check):
   the lecture's 10-layer 500-wide tanh MLP on a batch of 1000, and the digits CNN.
2. The Trainer's samples/s with the monitoring callback every 50 steps (``--diagnose-every 50``)
   against the same Trainer without it, rounds alternated.

Targets: a report ≤ 2× one forward+backward; training overhead ≤ 5%. Cockpit (Schneider et al.,
NeurIPS 2021), the closest tool, reports about 1.5× the run time when it tracks its cheapest
quantities at every step (its paper's figure, not measured here: Cockpit is not a dependency).

    python benchmarks/diagnose_cost.py [--rounds 5] [--epochs 5]
"""

from __future__ import annotations

import statistics
import time

import torch
from torch.nn import functional as F

from conditions import conditions
from conditions import parser as benchmark_parser
from descent.data.images import digits
from descent.diagnose import init_report
from descent.diagnose.monitor import InitDiagnosis
from descent.models import MLP, SmallCNN, initialize
from descent.train import Trainer


def forward_backward(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> None:
    for parameter in model.parameters():
        parameter.grad = None
    F.cross_entropy(model(inputs), targets).backward()


def time_it(function, rounds: int) -> float:
    """Median seconds of ``rounds`` calls (after one warm-up call)."""
    function()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def report_cost(rounds: int) -> None:
    generator = torch.Generator().manual_seed(0)
    data = digits()
    cases = {
        "MLP 10×500 tanh, batch 1000": (
            initialize(MLP(500, 10, depth=10, width=500, activation="tanh"), "xavier_normal"),
            torch.randn(1000, 500, generator=generator),
            torch.randint(0, 10, (1000,), generator=generator),
        ),
        "digits CNN, batch 1000": (
            SmallCNN((1, 8, 8), 10),
            data.train.images[:1000],
            data.train.labels[:1000],
        ),
    }
    print(f"{'model':32} {'forward+backward':>17} {'init_report':>12} {'ratio':>6}")
    for name, (model, inputs, targets) in cases.items():
        plain, report = [], []
        for _ in range(rounds):  # alternated, so a busy machine slows both alike
            batch = (model, inputs, targets)
            plain.append(time_it(lambda batch=batch: forward_backward(*batch), 1))
            report.append(time_it(lambda batch=batch: init_report(*batch), 1))
        a, b = statistics.median(plain), statistics.median(report)
        print(f"{name:32} {a * 1e3:14.1f} ms {b * 1e3:9.1f} ms {b / a:5.2f}×")


def training_overhead(rounds: int, epochs: int, every: int) -> None:
    data = digits()
    probe = data.train.images[:256], data.train.labels[:256]

    def rate(monitored: bool) -> float:
        torch.manual_seed(0)
        model = SmallCNN((1, 8, 8), 10)
        callbacks = [InitDiagnosis(model, *probe, every=every)] if monitored else []
        trainer = Trainer(model, lr=2e-3, epochs=epochs, batch_size=50, callbacks=callbacks)
        started = time.perf_counter()
        trainer.fit(data.train, data.validation)
        return epochs * len(data.train) / (time.perf_counter() - started)

    rate(False), rate(True)  # warm-up
    plain, monitored = [], []
    for _ in range(rounds):
        plain.append(rate(False))
        monitored.append(rate(True))
    a, b = statistics.median(plain), statistics.median(monitored)
    print(
        f"digits CNN, {epochs} epochs of batches of 50, median of {rounds}: Trainer "
        f"{a:,.0f} samples/s; with --diagnose-every {every} {b:,.0f} samples/s; "
        f"overhead {a / b - 1:+.1%}"
    )


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--every", type=int, default=50)
    args = parser.parse_args()
    print(f"{conditions()} at the start")
    report_cost(args.rounds)
    training_overhead(args.rounds, args.epochs, args.every)
    print("Cockpit (its paper): about 1.5× the run time for its cheapest quantities every step")


if __name__ == "__main__":
    main()
