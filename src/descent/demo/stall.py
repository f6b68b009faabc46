"""Demo chapter: a stalled run diagnosed, and the range test choosing a rate for the digits CNN.

The stall is made on purpose: a tanh network whose weights are all zero and whose output bias is
the log of the class frequencies sits exactly on a stationary point (every gradient is zero), and
the Hessian's cross terms between the two layers make it a saddle. Gradient descent never leaves
it; one small step along the eigenvector of λ_min does.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from descent.demo import DemoOptions


def chapter(console: Console, options: DemoOptions, number: int) -> None:
    import torch
    from torch import nn
    from torch.nn import functional as F

    from descent.data.images import digits
    from descent.diagnose import lr_find, stall
    from descent.train.config import load_config
    from descent.train.run import build_model

    data = digits()
    inputs, targets = data.train.images.flatten(1), data.train.labels
    model = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        frequencies = torch.bincount(targets, minlength=10).float() / len(targets)
        model[2].bias.copy_(frequencies.log())

    def descend(start: nn.Module, steps: int = 100, lr: float = 0.5) -> float:
        trained = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))
        trained.load_state_dict(start.state_dict())
        rule = torch.optim.SGD(trained.parameters(), lr=lr)
        for _ in range(steps):
            rule.zero_grad()
            F.cross_entropy(trained(inputs), targets).backward()
            rule.step()
        with torch.no_grad():
            return float(F.cross_entropy(trained(inputs), targets))

    verdict = stall(model, F.cross_entropy, (inputs, targets))
    stuck = descend(model)
    nudged = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))
    nudged.load_state_dict(model.state_dict())
    with torch.no_grad():
        step = 0.1 * verdict.escape_direction
        offset = 0
        for parameter in nudged.parameters():
            parameter += step[offset : offset + parameter.numel()].view_as(parameter)
            offset += parameter.numel()
    escaped = descend(nudged)
    console.print(
        f"[bold]{number}. Why did training stop?[/bold] A tanh MLP (64-32-10) with zero weights "
        f"and the class log-frequencies as output bias, on the digits: "
        f"[bold]{verdict.verdict}[/bold] ({verdict.reason}); loss {verdict.loss:.4f}, "
        f"‖g‖ {verdict.gradient_norm:.1e}, λ_max {verdict.lambda_max:.3g}, "
        f"λ_min {verdict.lambda_min:.3g}.",
        highlight=False,
    )
    console.print(
        f"   100 steps of gradient descent (lr 0.5) from there: loss {stuck:.4f}; from 0.1 along "
        f"the eigenvector of λ_min: {escaped:.4f}. Next: {verdict.advice}",
        highlight=False,
    )

    config = load_config(model="cnn")
    cnn = build_model(config, data)
    test = lr_find(
        cnn,
        F.cross_entropy,
        (data.train.images, data.train.labels),
        config.optimizer,
        min_lr=1e-5,
        max_lr=10,
        steps=100,
        batch_size=config.batch_size,
        seed=config.seed,
    )
    picture = Path("runs") / "demo-lr" / "lr.png"
    test.plot(picture, title="range test: the digits CNN with Adam")
    console.print(
        f"   Range test for the digits CNN with {config.optimizer}: {test.summary()}; the "
        f"default is {config.lr:g}. Curve in {picture}.",
        highlight=False,
    )
