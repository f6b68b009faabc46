"""What the Trainer minimizes and reports: a task's default loss and metrics, and the losses a
config names.

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


def huber(outputs: Tensor, targets: Tensor) -> Tensor:
    """The Huber loss with δ = 1 (Huber 1964, "Robust estimation of a location parameter"):
    (1/n) Σ ½ r² where |r| ≤ 1, else |r| − ½, with r = ŷ − y: squared near the target,
    absolute far from it, so outliers pull less than under MSE."""
    return F.huber_loss(outputs.reshape(targets.shape).to(targets.dtype), targets, delta=1.0)


def cross_entropy(outputs: Tensor, targets: Tensor) -> Tensor:
    """(1/n) Σ −log softmax(ŷ)_y: cross-entropy of the logits with integer class targets."""
    return F.cross_entropy(outputs, targets)


#: task → (its default loss's name, its default metrics). Classification: cross-entropy on logits
#: (integer class targets) and accuracy. Regression: mean squared error, reported with MAE beside
#: it.
TASKS: dict[str, tuple[str, dict[str, Metric]]] = {
    "classification": ("cross_entropy", {"accuracy": accuracy}),
    "regression": ("mse", {"mse": mse, "mae": mae}),
}

#: The losses a loss is named by (``Trainer(loss="mae")``, RunConfig ``loss``, ``--loss``), and
#: the task each fits.
LOSSES: dict[str, tuple[Metric, str]] = {
    "cross_entropy": (cross_entropy, "classification"),
    "mse": (mse, "regression"),
    "mae": (mae, "regression"),
    "huber": (huber, "regression"),
}


def loss_name(name: str, task: str) -> str:
    """A loss's canonical name ("MSE", "cross-entropy" → "mse", "cross_entropy"), checked to fit
    ``task``."""
    name = validate.choice(name, "loss", LOSSES)
    fits = LOSSES[name][1]
    if fits != task:
        suited = ", ".join(key for key, (_, kind) in LOSSES.items() if kind == task)
        raise validate.InputError(f"loss {name!r} is for {fits}, not {task}; {task} takes {suited}")
    return name


def defaults(
    task: str, loss: Metric | str | None, metrics: Mapping[str, Metric] | None
) -> tuple[str, Metric, dict[str, Metric]]:
    """The task's name and the loss and metrics to use: the ones given (a loss by its name in
    :data:`LOSSES` or as a callable), else the task's."""
    task = validate.choice(task, "task", TASKS)
    default_loss, default_metrics = TASKS[task]
    chosen = dict(default_metrics if metrics is None else metrics)
    for name, metric in chosen.items():
        if not isinstance(name, str) or not callable(metric):
            raise validate.InputError(
                f"metrics must map names to callables (outputs, targets) -> Tensor, got {name!r}"
            )
    if loss is None or isinstance(loss, str):
        return task, LOSSES[loss_name(loss or default_loss, task)][0], chosen
    if not callable(loss):
        raise validate.InputError(
            f"loss must be a loss's name ({', '.join(LOSSES)}) or a callable (outputs, targets) "
            f"-> Tensor, got {loss!r}"
        )
    return task, loss, chosen
