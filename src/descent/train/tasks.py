"""What the Trainer minimizes and reports: a task's default loss and metrics.

A metric is a callable ``(outputs, targets) -> Tensor`` giving the batch's **mean** as a 0-d
tensor; the Trainer weights it by the batch size and sums on the device, so an epoch's value is
the mean over every example (no host synchronization per step). A loss is the same kind of
callable (a mean over the batch, as torch's losses are by default).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from torch import Tensor
from torch.nn import functional as F

from descent import validate

Metric = Callable[[Tensor, Tensor], Tensor]


def accuracy(outputs: Tensor, targets: Tensor) -> Tensor:
    """The fraction of examples whose largest output is the target class."""
    return (outputs.argmax(dim=1) == targets).float().mean()


def mse(outputs: Tensor, targets: Tensor) -> Tensor:
    """Mean squared error, (1/n) Σ (ŷ − y)², outputs shaped like the targets."""
    return F.mse_loss(outputs.reshape(targets.shape).to(targets.dtype), targets)


def mae(outputs: Tensor, targets: Tensor) -> Tensor:
    """Mean absolute error, (1/n) Σ |ŷ − y|."""
    return F.l1_loss(outputs.reshape(targets.shape).to(targets.dtype), targets)


#: task → (default loss, default metrics). Classification: cross-entropy on logits (integer class
#: targets) and accuracy. Regression: mean squared error, reported with MAE beside it.
TASKS: dict[str, tuple[Metric, dict[str, Metric]]] = {
    "classification": (F.cross_entropy, {"accuracy": accuracy}),
    "regression": (mse, {"mse": mse, "mae": mae}),
}


def defaults(
    task: str, loss: Metric | None, metrics: Mapping[str, Metric] | None
) -> tuple[str, Metric, dict[str, Metric]]:
    """The task's name and the loss and metrics to use: the ones given, else the task's."""
    task = validate.choice(task, "task", TASKS)
    default_loss, default_metrics = TASKS[task]
    chosen = dict(default_metrics if metrics is None else metrics)
    for name, metric in chosen.items():
        if not isinstance(name, str) or not callable(metric):
            raise validate.InputError(
                f"metrics must map names to callables (outputs, targets) -> Tensor, got {name!r}"
            )
    if loss is not None and not callable(loss):
        raise validate.InputError(
            f"loss must be a callable (outputs, targets) -> Tensor, got {loss!r}"
        )
    return task, loss or default_loss, chosen
