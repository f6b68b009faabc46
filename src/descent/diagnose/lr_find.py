"""The learning-rate range test (Smith, "Cyclical Learning Rates for Training Neural Networks",
WACV 2017; popularized by fastai and torch-lr-finder), with a suggestion that survives early
spikes, NaNs and noisy curves.

The sweep trains for ``steps`` updates with an exponentially growing rate

    lr_i = lr_min · (lr_max / lr_min)^(i / (steps − 1)),   i = 0 … steps − 1,

records each mini-batch loss L_i, and smooths it with a bias-corrected exponential average

    s_i = β s_{i−1} + (1 − β) L_i,   ŝ_i = s_i / (1 − β^(i+1))       (s_{−1} = 0),

stopping when ŝ_i > k · min_{j≤i} ŝ_j (the loss has blown up) or L_i is not finite. Afterwards the
model's weights and buffers, the optimizer's state and every random generator the sweep could
touch (torch, Python, NumPy) are restored bit for bit.

The suggestion. torch-lr-finder takes the argmin of ``np.gradient(loss)`` over the *index*,
which ignores the log spacing and follows single spikes; fastai's "valley" takes the longest
decreasing run. Here: the slope ``dŝ/d(ln lr)`` is computed with the log spacing
(``np.gradient(ŝ, ln lr)``); the points where it is negative form descending stretches, and the
longest one (in decades of lr, gaps of a single point closed so that one noisy point does not cut
a stretch) is kept; early stretches made by the bias correction's start-up, or by a spike, are
short and lose. Inside it the suggestion is the steepest point of the slope averaged over a
window of ``window`` points (Smith's choice: the rate where the loss falls fastest), optionally
divided by ``backoff``. The exponential average lags its input by a known number of steps (the
centre of mass of its weights, :func:`lags`), so each ŝ_i is placed at the rate it stands for,
not at the rate of step i: without this, β = 0.98 over 100 steps reads the curve one to three
decades too far to the right.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from descent import validate
from descent.diagnose.curvature import LossFn, as_batches
from descent.errors import InputError


@dataclass(frozen=True)
class RangeTest:
    """The sweep and its suggestion.

    Attributes:
        lrs, losses: the rates tried and their raw mini-batch losses (finite ones only).
        smoothed: the bias-corrected smoothed losses ŝ.
        centres: the rate each ŝ_i stands for (the average lags its input; see :func:`lags`).
        slopes: dŝ/d(ln lr) at each point.
        suggestion: the suggested learning rate (None if the curve never descends).
        steepest: the rate of the steepest descent inside the stretch.
        stretch: (first, last) index of the longest descending stretch (None if none).
        stopped: "end of sweep", "diverged (> k × best)" or "not finite".
    """

    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    smoothed: tuple[float, ...]
    centres: tuple[float, ...]
    slopes: tuple[float, ...] = field(repr=False)
    suggestion: float | None
    steepest: float | None
    stretch: tuple[int, int] | None
    stopped: str

    def summary(self) -> str:
        """One line: the suggestion, the stretch and why the sweep stopped."""
        if self.suggestion is None:
            return f"no descending stretch in {len(self.lrs)} steps (stopped: {self.stopped})"
        first, last = self.stretch or (0, 0)
        return (
            f"suggested lr {self.suggestion:.3g} (steepest descent of the smoothed loss, inside "
            f"the longest descending stretch {self.centres[first]:.2g} … {self.centres[last]:.2g}; "
            f"{len(self.lrs)} steps, stopped: {self.stopped})"
        )

    @property
    def best(self) -> float:
        """The rate at the smoothed loss's minimum."""
        return self.centres[int(np.argmin(self.smoothed))]

    def plot(self, path: str | Path, title: str | None = None) -> Path:
        """The raw and smoothed losses on a log-lr axis, the descending stretch shaded and the
        suggestion marked."""
        from descent.plotting import pyplot, save_figure

        plt = pyplot()
        figure, axes = plt.subplots(figsize=(6.5, 4))
        axes.plot(self.lrs, self.losses, color="0.75", linewidth=0.8, label="loss")
        axes.plot(self.centres, self.smoothed, color="C0", label="smoothed")
        if self.stretch is not None:
            first, last = self.stretch
            axes.axvspan(
                self.centres[first],
                self.centres[last],
                color="C2",
                alpha=0.15,
                label="longest descent",
            )
        if self.suggestion is not None:
            axes.axvline(
                self.suggestion,
                color="C3",
                linestyle="--",
                label=f"suggestion {self.suggestion:.2g}",
            )
        axes.set_xscale("log")
        low, high = min(self.smoothed), max(self.smoothed)
        axes.set_ylim(low - 0.05 * (high - low), high + 0.1 * (high - low))
        axes.set_xlabel("learning rate")
        axes.set_ylabel("loss")
        axes.set_title(title or "learning-rate range test")
        axes.legend()
        figure.tight_layout()
        return save_figure(figure, path)


def smooth(losses: np.ndarray, beta: float) -> np.ndarray:
    """Bias-corrected exponential moving average: ŝ_i = s_i / (1 − β^(i+1))."""
    smoothed = np.empty(len(losses))
    average = 0.0
    for i, value in enumerate(losses):
        average = beta * average + (1 - beta) * value
        smoothed[i] = average / (1 - beta ** (i + 1))
    return smoothed


def lags(count: int, beta: float) -> np.ndarray:
    """How many steps behind its last input the bias-corrected average sits: the centre of mass
    of its weights, ``β/(1−β) − (i+1) β^(i+1) / (1 − β^(i+1))`` at step i (0 for β = 0)."""
    if beta == 0:
        return np.zeros(count)
    steps = np.arange(1, count + 1)
    return beta / (1 - beta) - steps * beta**steps / (1 - beta**steps)


def suggest(
    lrs: np.ndarray,
    smoothed: np.ndarray,
    *,
    beta: float = 0.0,
    window: int = 5,
    backoff: float = 1.0,
) -> tuple[float | None, float | None, tuple[int, int] | None, np.ndarray, np.ndarray]:
    """(suggestion, steepest rate, stretch, slopes, centres) from a smoothed curve (module
    docstring). ``centres`` are the rates the smoothed values stand for: an exponential average
    lags its input by :func:`lags` steps, so ŝ_i is placed at the rate of step i − lag_i."""
    index = np.arange(len(lrs))
    if len(lrs) < 3:
        return None, None, None, np.zeros(len(lrs)), np.asarray(lrs, dtype=float)
    log_lr = np.interp(index - lags(len(lrs), beta), index, np.log(lrs))
    centres = np.exp(log_lr)
    slopes = np.gradient(smoothed, log_lr)
    descending = slopes < 0
    # close one-point gaps: a single noisy point must not cut a stretch in two
    closed = descending.copy()
    for i in range(1, len(closed) - 1):
        if not closed[i] and descending[i - 1] and descending[i + 1]:
            closed[i] = True
    best: tuple[int, int] | None = None
    start = None
    for i, down in enumerate([*closed, False]):
        if down and start is None:
            start = i
        elif not down and start is not None:
            if best is None or log_lr[i - 1] - log_lr[start] > log_lr[best[1]] - log_lr[best[0]]:
                best = (start, i - 1)
            start = None
    if best is None or best[1] == best[0]:
        return None, None, best, slopes, centres
    first, last = best
    kernel = np.ones(min(window, last - first + 1))
    inside = slopes[first : last + 1]
    averaged = np.convolve(inside, kernel / kernel.sum(), mode="same")
    steepest = float(centres[first + int(np.argmin(averaged))])
    suggestion = max(steepest / backoff, float(centres[first]))
    return suggestion, steepest, best, slopes, centres


def _cycle(batches: list[tuple[Tensor, Tensor]], seed: int) -> Iterator[tuple[Tensor, Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    while True:
        for index in torch.randperm(len(batches), generator=generator).tolist():
            yield batches[index]


def _split(data: Any, batch_size: int | None, seed: int) -> list[tuple[Tensor, Tensor]]:
    batches = as_batches(data)
    if batch_size is None:
        return batches
    batch_size = validate.positive_int(batch_size, "batch_size")
    inputs = torch.cat([b[0] for b in batches])
    targets = torch.cat([b[1] for b in batches])
    order = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(seed))
    return [(inputs[i], targets[i]) for i in order.split(batch_size)]


def _rng_state() -> dict[str, Any]:
    state = {
        "torch": torch.random.get_rng_state(),
        "python": random.getstate(),
        "numpy": np.random.get_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: dict[str, Any]) -> None:
    torch.random.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def lr_find(
    model: nn.Module,
    loss: LossFn,
    data: Any,
    optimizer: str | torch.optim.Optimizer | Callable[..., torch.optim.Optimizer] = "adam",
    *,
    min_lr: float = 1e-7,
    max_lr: float = 10.0,
    steps: int = 100,
    batch_size: int | None = None,
    beta: float = 0.95,
    diverge: float = 4.0,
    backoff: float = 1.0,
    seed: int = 0,
    optimizer_params: dict[str, Any] | None = None,
) -> RangeTest:
    """Run the range test on ``model`` and put everything back as it was.

    Args:
        model: any nn.Module, trained in train mode during the sweep.
        loss: ``loss(model(inputs), targets)`` → a scalar.
        data: one batch or a sequence of batches, cycled in a seeded random order; with
            ``batch_size`` the examples are re-cut into mini-batches of that size.
        optimizer: a descent rule's name, a ready ``torch.optim.Optimizer`` over the model's
            parameters (its state is restored afterwards), or a factory ``f(params, lr=…)``.
        min_lr, max_lr, steps: the exponential sweep (``min_lr < max_lr``, ``steps ≥ 10``).
        beta: the smoothing factor β; diverge: the stop factor k; backoff: suggestion =
            steepest rate / backoff (see the module's docstring).
        seed: the batch order's seed. optimizer_params: the rule's other hyperparameters.

    Example::

        >>> test = lr_find(model, F.cross_entropy, (x, y), "adam", batch_size=50)
        >>> test.suggestion, test.plot("lr.png")
    """
    min_lr = validate.positive(min_lr, "min_lr")
    max_lr = validate.positive(max_lr, "max_lr")
    if min_lr >= max_lr:
        raise InputError(
            f"min_lr must be below max_lr, got min_lr={min_lr:g} and max_lr={max_lr:g}"
        )
    steps = validate.positive_int(steps, "steps")
    if steps < 10:
        raise InputError(f"steps must be at least 10 for a range test, got {steps}")
    beta = validate.unit_interval(beta, "beta")
    diverge = validate.positive(diverge, "diverge")
    if diverge <= 1:
        raise InputError(f"diverge must be a factor above 1, got {diverge:g}")
    backoff = validate.positive(backoff, "backoff")
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise InputError(
            f"the model ({type(model).__name__}) has no parameters that require grad, so there "
            "is nothing to train"
        )
    batches = _split(data, batch_size, seed)

    saved_model = copy.deepcopy(model.state_dict())
    saved_modes = [(module, module.training) for module in model.modules()]
    saved_grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    saved_rng = _rng_state()
    if isinstance(optimizer, torch.optim.Optimizer):
        rule = optimizer
        saved_optimizer: dict[str, Any] | None = copy.deepcopy(rule.state_dict())
    elif isinstance(optimizer, str):
        from descent import optim

        rule = optim.create(optimizer, trainable, lr=min_lr, **(optimizer_params or {}))
        saved_optimizer = None
    elif callable(optimizer):
        rule = optimizer(trainable, lr=min_lr, **(optimizer_params or {}))
        saved_optimizer = None
    else:
        raise InputError(
            f"optimizer must be a rule's name, a torch optimizer or a factory, got {optimizer!r}"
        )

    ratio = max_lr / min_lr
    lrs, losses = [], []
    stopped = "end of sweep"
    best = math.inf
    average = 0.0
    model.train()
    try:
        stream = _cycle(batches, seed)
        for i in range(steps):
            lr = min_lr * ratio ** (i / (steps - 1))
            for group in rule.param_groups:
                group["lr"] = lr
            inputs, targets = next(stream)
            rule.zero_grad(set_to_none=True)
            value = loss(model(inputs), targets)
            if not isinstance(value, Tensor) or value.numel() != 1:
                raise InputError("loss must return a scalar (one number per batch, e.g. a mean)")
            current = float(value.detach())
            if not math.isfinite(current):
                stopped = "not finite"
                break
            lrs.append(lr)
            losses.append(current)
            average = beta * average + (1 - beta) * current
            smoothed = average / (1 - beta ** len(losses))
            best = min(best, smoothed)
            if smoothed > diverge * best:
                stopped = f"diverged (> {diverge:g} × best)"
                break
            value.backward()
            rule.step()
    finally:
        model.load_state_dict(saved_model)
        for module, training in saved_modes:
            module.train(training)
        if saved_optimizer is not None:
            rule.load_state_dict(saved_optimizer)
        for parameter, grad in zip(model.parameters(), saved_grads, strict=True):
            parameter.grad = grad
        _restore_rng(saved_rng)

    lr_array, smoothed_array = np.array(lrs), smooth(np.array(losses), beta)
    suggestion, steepest, stretch, slopes, centres = suggest(
        lr_array, smoothed_array, beta=beta, backoff=backoff
    )
    return RangeTest(
        lrs=tuple(lrs),
        losses=tuple(losses),
        smoothed=tuple(float(s) for s in smoothed_array),
        centres=tuple(float(c) for c in centres),
        slopes=tuple(float(s) for s in slopes),
        suggestion=suggestion,
        steepest=steepest,
        stretch=stretch,
        stopped=stopped,
    )


def parse_lr(value: str | None) -> tuple[float | None, bool]:
    """The command line's ``--lr``: a number, or "find" for a range test: (rate, find)."""
    if value is None:
        return None, False
    if value.strip().lower() == "find":
        return None, True
    try:
        return float(value), False
    except ValueError:
        raise InputError(f"--lr must be a number or 'find', got {value!r}") from None


def range_test_for(
    config: Any, *, min_lr: float = 1e-7, max_lr: float = 10.0, steps: int = 100
) -> RangeTest:
    """The range test for a RunConfig's model, data, update rule and batch size (what
    ``descent lr-find`` and ``descent train --lr find`` run). Raises InputError when the curve
    never descends, since no rate can then be suggested."""
    from descent.train.run import build_model, load_data
    from descent.train.tasks import LOSSES

    data = load_data(config)  # images, or a table's rows
    model = build_model(config, data).to(config.torch_dtype)
    batch_size = {"full": len(data.train), "sgd": 1, "single": 1}.get(
        config.mode, config.batch_size
    )
    test = lr_find(
        model,
        LOSSES[config.loss][0],
        (data.train.images.to(config.torch_dtype), data.train.labels),
        config.optimizer,
        min_lr=min_lr,
        max_lr=max_lr,
        steps=steps,
        batch_size=batch_size,
        seed=config.seed,
        optimizer_params=config.optimizer_params,
    )
    if test.suggestion is None:
        raise InputError(
            f"the range test found no descending stretch between {min_lr:g} and {max_lr:g}; "
            "widen --min/--max or give --lr"
        )
    return test


__all__ = ["RangeTest", "lr_find", "parse_lr", "range_test_for", "smooth", "suggest"]
