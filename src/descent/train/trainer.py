"""The training loop every later feature runs on: any nn.Module, the three batch modes, any
descent update rule (or a torch optimizer), any schedule, validation each epoch, early stopping,
gradient clipping, atomic checkpoints with exact resume, a divergence guard, TensorBoard logs."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from descent import optim
from descent.data.batches import Batches
from descent.data.images import Split
from descent.schedules import torch_scheduler
from descent.train import checkpoint


class DivergenceError(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class LogOptions:
    """What goes to TensorBoard and how often (in optimizer steps).

    Scalars (train loss, learning rate, gradient norm) every ``scalars_every`` steps; the
    update-to-weight ratio per layer every ``ratios_every`` steps; histograms of weights, gradients
    and activations every ``histograms_every`` steps (0: off, they cost); the first layer's weights
    as an image grid every epoch. Epoch metrics (train/val loss and accuracy) always.
    """

    scalars_every: int = 10
    ratios_every: int = 50
    histograms_every: int = 0
    weight_images: bool = True


@dataclass
class EpochMetrics:
    epoch: int
    step: int
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    learning_rate: float
    seconds: float


@dataclass
class TrainResult:
    history: list[EpochMetrics]
    stopped: str  # "budget", "early stopping", "max steps"
    best_epoch: int
    steps: int
    examples_per_second: float
    checkpoint: Path | None = None

    @property
    def final(self) -> EpochMetrics:
        return self.history[-1]


@dataclass
class _State:
    """What a checkpoint holds beyond the model and optimizer."""

    epoch: int = 0
    step: int = 0
    best_metric: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


Callback = Callable[["Trainer", str, dict[str, Any]], None]


class Trainer:
    """Train ``model`` on in-memory tensors.

    Args:
        model: any nn.Module mapping a batch of inputs to outputs ``loss`` accepts.
        loss: a function (outputs, targets) → scalar; cross-entropy by default.
        optimizer: a descent rule's name ("adam", "sgd", …) or a ready torch.optim.Optimizer.
        lr: a float or a schedule of the update number (ignored for a ready optimizer unless it is a
            schedule, which then drives it through :func:`descent.schedules.torch_scheduler`).
        optimizer_params: the rule's other hyperparameters.
        mode, batch_size: "full", "sgd" or "minibatch" with B examples, reshuffled each epoch.
        epochs: the budget in epochs; max_steps: an optional budget in updates.
        early_stopping: stop after this many epochs without a better validation loss (None: off).
        grad_clip: clip the gradient's global norm to this value (None: off).
        dtype: torch.float32 or torch.float64 for the model and data.
        seed: seeds the batch order and torch's RNG (dropout) at the start of training.
        logdir: where TensorBoard events and checkpoints go (None: nowhere).
        log: :class:`LogOptions`. progress: show a progress bar (only on a terminal).
        callbacks: functions (trainer, event, info) called on "step" and "epoch" events.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        loss: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
        optimizer: str | torch.optim.Optimizer = "adam",
        lr: Any = 1e-3,
        optimizer_params: dict[str, Any] | None = None,
        mode: str = "minibatch",
        batch_size: int = 50,
        epochs: int = 20,
        max_steps: int | None = None,
        early_stopping: int | None = None,
        grad_clip: float | None = None,
        dtype: torch.dtype = torch.float32,
        seed: int = 0,
        logdir: str | Path | None = None,
        log: LogOptions | None = None,
        progress: bool = False,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
        if max_steps is not None and (not isinstance(max_steps, int) or max_steps < 1):
            raise ValueError(f"max_steps must be a positive integer or None, got {max_steps!r}")
        if early_stopping is not None and (
            not isinstance(early_stopping, int) or early_stopping < 1
        ):
            raise ValueError(
                f"early_stopping must be a positive integer or None, got {early_stopping!r}"
            )
        if grad_clip is not None and not grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0 or None, got {grad_clip!r}")
        self.model = model.to(dtype)
        self.loss = loss
        self.mode, self.batch_size = mode, batch_size
        self.epochs, self.max_steps = epochs, max_steps
        self.early_stopping, self.grad_clip = early_stopping, grad_clip
        self.dtype, self.seed = dtype, seed
        self.logdir = Path(logdir) if logdir is not None else None
        self.log = log or LogOptions()
        self.progress = progress
        self.callbacks = list(callbacks)
        self.scheduler = None
        if isinstance(optimizer, torch.optim.Optimizer):
            self.optimizer = optimizer
            if callable(lr):
                self.scheduler = torch_scheduler(optimizer, lr)
        else:
            self.optimizer = optim.create(
                optimizer, self.model.parameters(), lr=lr, **(optimizer_params or {})
            )
        self.state = _State()
        self._writer: Any = None

    # -- checkpoints ---------------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path | None:
        return self.logdir / "checkpoints" / "last.pt" if self.logdir else None

    def save_checkpoint(self, batches: Batches, path: Path | None = None) -> Path | None:
        """Model, optimizer (with its schedule position), batch order, RNG state and history,
        written to a temporary file and renamed into place: a crash never leaves half a file."""
        path = path or self.checkpoint_path
        if path is None:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": checkpoint.scheduler_state_without_schedules(self.scheduler.state_dict())
            if self.scheduler
            else None,
            "batches": batches.state_dict(),
            "torch_rng": torch.random.get_rng_state(),
            "state": asdict(self.state),
        }
        return checkpoint.save(payload, path)

    def load_checkpoint(self, batches: Batches, path: Path | None = None) -> None:
        path = path or self.checkpoint_path
        if path is None or not path.is_file():
            raise FileNotFoundError(f"no checkpoint to resume from at {path}")
        payload = checkpoint.load(path)
        try:
            self.model.load_state_dict(payload["model"])
            self.optimizer.load_state_dict(payload["optimizer"])
            if self.scheduler and payload["scheduler"]:
                checkpoint.load_scheduler_state(self.scheduler, payload["scheduler"])
            batches.load_state_dict(payload["batches"])
            torch.random.set_rng_state(payload["torch_rng"])
            self.state = _State(**payload["state"])
        except (KeyError, RuntimeError, EOFError, ValueError, TypeError) as error:
            raise checkpoint.CheckpointError(
                f"{path}: not a usable descent checkpoint ({checkpoint.one_line(error)})"
            ) from None

    # -- training ------------------------------------------------------------------------------

    def fit(
        self, train: Split, validation: Split | None = None, *, resume: bool = False
    ) -> TrainResult:
        inputs = train.images.to(self.dtype)
        targets = train.labels
        batches = Batches(len(targets), self.mode, self.batch_size, seed=self.seed)  # type: ignore[arg-type]
        torch.manual_seed(self.seed)
        if resume:
            self.load_checkpoint(batches)
        self._open_writer()
        started, examples = time.perf_counter(), 0
        stopped = "budget"
        progress = self._progress_bar(total=(self.epochs - self.state.epoch) * len(targets))
        try:
            while self.state.epoch < self.epochs:
                epoch_start = time.perf_counter()
                self.model.train()
                total_loss, correct, seen = 0.0, 0, 0
                for indices in batches.epoch():
                    loss_value, hits = self._step(inputs[indices], targets[indices])
                    total_loss += loss_value * len(indices)
                    correct += hits
                    seen += len(indices)
                    examples += len(indices)
                    if progress is not None:
                        rate = examples / max(time.perf_counter() - started, 1e-9)
                        progress.update(
                            progress.task_ids[0],
                            advance=len(indices),
                            description=f"epoch {self.state.epoch + 1}/{self.epochs} "
                            f"loss {total_loss / seen:.4f} acc {correct / seen:.3f} "
                            f"{rate:,.0f} ex/s",
                        )
                    if self.max_steps is not None and self.state.step >= self.max_steps:
                        stopped = "max steps"
                        break
                metrics = self._end_epoch(
                    total_loss / max(seen, 1),
                    correct / max(seen, 1),
                    validation,
                    time.perf_counter() - epoch_start,
                )
                self.save_checkpoint(batches)
                if stopped == "max steps":
                    break
                if self._should_stop(metrics, batches):
                    stopped = "early stopping"
                    break
        finally:
            if progress is not None:
                progress.stop()
            self._close_writer()
        elapsed = time.perf_counter() - started
        return TrainResult(
            [EpochMetrics(**entry) for entry in self.state.history],
            stopped,
            self.state.best_epoch,
            self.state.step,
            examples / elapsed if elapsed > 0 else 0.0,
            self.checkpoint_path,
        )

    def _step(self, batch: Tensor, target: Tensor) -> tuple[float, int]:
        step = self.state.step
        log_scalars = self._writer is not None and step % self.log.scalars_every == 0
        log_ratios = (
            self._writer is not None and self.log.ratios_every and step % self.log.ratios_every == 0
        )
        log_histograms = (
            self._writer is not None
            and self.log.histograms_every
            and step % self.log.histograms_every == 0
        )
        hooks = self._activation_hooks() if log_histograms else None
        self.optimizer.zero_grad(set_to_none=True)
        output = self.model(batch)
        loss = self.loss(output, target)
        if not torch.isfinite(loss):
            lr = self._current_lr()
            raise DivergenceError(
                f"the loss became {loss.item()} at step {step} (epoch {self.state.epoch + 1}) with "
                f"learning rate {lr:.3g}; try a smaller learning rate"
                + (
                    f"; the last good checkpoint is {self.checkpoint_path}"
                    if self.checkpoint_path
                    else ""
                )
            )
        loss.backward()
        if self.grad_clip is not None:
            grad_norm = float(nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip))
        elif log_scalars:
            grad_norm = float(
                nn.utils.get_total_norm(
                    [p.grad for p in self.model.parameters() if p.grad is not None]
                )
            )
        else:
            grad_norm = math.nan
        before = (
            {n: p.detach().clone() for n, p in self.model.named_parameters()}
            if log_ratios
            else None
        )
        lr = self._current_lr() if log_scalars else math.nan  # read before the step moves it
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        loss_value = float(loss.detach())
        if log_scalars:
            self._writer.add_scalar("train/loss", loss_value, step)
            self._writer.add_scalar("learning_rate", lr, step)
            self._writer.add_scalar("gradient_norm", grad_norm, step)
        if before is not None:
            for name, param in self.model.named_parameters():
                ratio = float(
                    (param.detach() - before[name]).norm() / (before[name].norm() + 1e-12)
                )
                self._writer.add_scalar(f"update_to_weight/{name}", ratio, step)
        if log_histograms:
            self._log_histograms(step, hooks)
        hits = int((output.argmax(dim=1) == target).sum()) if output.dim() == 2 else 0
        self.state.step += 1
        for callback in self.callbacks:
            callback(self, "step", {"step": step, "loss": loss_value})
        return loss_value, hits

    def _current_lr(self) -> float:
        group = self.optimizer.param_groups[0]
        if isinstance(self.optimizer, optim.DescentOptimizer):
            return self.optimizer.lr_at(group)
        return float(group["lr"])

    @torch.no_grad()
    def evaluate(self, split: Split, chunk: int = 2048) -> tuple[float, float]:
        """Mean loss and accuracy on a split (in evaluation mode)."""
        self.model.eval()
        total, correct = 0.0, 0
        for start in range(0, len(split), chunk):
            batch = split.images[start : start + chunk].to(self.dtype)
            target = split.labels[start : start + chunk]
            output = self.model(batch)
            total += float(self.loss(output, target)) * len(target)
            correct += int((output.argmax(dim=1) == target).sum())
        self.model.train()
        return total / max(len(split), 1), correct / max(len(split), 1)

    def _end_epoch(
        self, train_loss: float, train_accuracy: float, validation: Split | None, seconds: float
    ) -> EpochMetrics:
        val_loss, val_accuracy = (
            self.evaluate(validation) if validation is not None else (None, None)
        )
        self.state.epoch += 1
        metrics = EpochMetrics(
            self.state.epoch,
            self.state.step,
            train_loss,
            train_accuracy,
            val_loss,
            val_accuracy,
            self._current_lr(),
            seconds,
        )
        self.state.history.append(asdict(metrics))
        if self._writer is not None:
            step = self.state.step
            self._writer.add_scalar("train/epoch_loss", train_loss, step)
            self._writer.add_scalar("train/accuracy", train_accuracy, step)
            if val_loss is not None:
                self._writer.add_scalar("val/loss", val_loss, step)
                self._writer.add_scalar("val/accuracy", val_accuracy, step)
            if self.log.weight_images:
                self._log_first_layer(step)
            self._writer.flush()
        for callback in self.callbacks:
            callback(self, "epoch", asdict(metrics))
        return metrics

    def _should_stop(self, metrics: EpochMetrics, batches: Batches) -> bool:
        monitored = metrics.val_loss if metrics.val_loss is not None else metrics.train_loss
        if monitored < self.state.best_metric:
            self.state.best_metric, self.state.best_epoch, self.state.bad_epochs = (
                monitored,
                metrics.epoch,
                0,
            )
            last = self.checkpoint_path
            if last is not None and last.is_file():
                # last.pt was just written for this epoch: a file copy is cheaper than pickling
                checkpoint.copy(last, last.with_name("best.pt"))
        else:
            self.state.bad_epochs += 1
        return self.early_stopping is not None and self.state.bad_epochs >= self.early_stopping

    # -- TensorBoard ---------------------------------------------------------------------------

    def _open_writer(self) -> None:
        if self.logdir is None:
            return
        from torch.utils.tensorboard import SummaryWriter

        # Events past the checkpoint's step (written before a crash) are purged on resume.
        self._writer = SummaryWriter(str(self.logdir), purge_step=self.state.step or None)

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _activation_hooks(self) -> dict[str, Any]:
        captured: dict[str, Tensor] = {}
        handles = []
        for name, module in self.model.named_modules():
            if isinstance(module, nn.Linear | nn.Conv2d | nn.ReLU | nn.Tanh | nn.Sigmoid):

                def hook(
                    _module: nn.Module, _inputs: Any, output: Tensor, name: str = name
                ) -> None:
                    captured[name] = output.detach()

                handles.append(module.register_forward_hook(hook))
        return {"captured": captured, "handles": handles}

    def _log_histograms(self, step: int, hooks: dict[str, Any] | None) -> None:
        for name, param in self.model.named_parameters():
            self._writer.add_histogram(f"weights/{name}", param.detach(), step)
            if param.grad is not None:
                self._writer.add_histogram(f"gradients/{name}", param.grad, step)
        if hooks is not None:
            for handle in hooks["handles"]:
                handle.remove()
            for name, value in hooks["captured"].items():
                self._writer.add_histogram(f"activations/{name}", value, step)

    def _log_first_layer(self, step: int) -> None:
        """The first layer's weights as a grid of images: one per unit (Linear on images) or per
        filter (Conv2d)."""
        from descent.board import image_grid

        first = next(
            (m for m in self.model.modules() if isinstance(m, nn.Linear | nn.Conv2d)), None
        )
        if first is None:
            return
        grid = image_grid(first.weight.detach().float(), getattr(self.model, "image_shape", None))
        if grid is not None:
            self._writer.add_image("first_layer_weights", grid, step)

    def _progress_bar(self, total: int) -> Any:
        """Loss, accuracy and speed of the running epoch; only on a terminal (logs and pipes
        stay clean) and only when asked for."""
        import sys

        if not self.progress or not sys.stderr.isatty():
            return None
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TimeRemainingColumn(),
            transient=True,
            console=Console(stderr=True),
        )
        bar.start()
        bar.add_task("training", total=total)
        return bar
