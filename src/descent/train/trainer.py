"""The training loop every later feature runs on: any nn.Module and any task, data as tensors, a
Dataset or a DataLoader in the three batch modes, any descent update rule (or a torch optimizer),
any schedule, any device and precision, data-parallel training on torch.distributed, validation
each epoch, early stopping, gradient clipping, atomic checkpoints with exact resume, a divergence
guard, TensorBoard logs."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from descent import optim, validate
from descent.schedules import torch_scheduler
from descent.train import checkpoint
from descent.train import resume as saved
from descent.train.data import TrainingData, evaluation_batches
from descent.train.device import Precision, local_rank, precision_name, resolve_device
from descent.train.distributed import join
from descent.train.logs import EventLog, LogOptions, activation_hooks
from descent.train.points import at_average, set_point
from descent.train.progress import progress_bar
from descent.train.records import EpochMetrics, Running, State, TrainResult
from descent.train.tasks import Metric, defaults


class DivergenceError(RuntimeError):
    """The loss, the validation loss or the weights became NaN or infinite."""


Callback = Callable[["Trainer", str, dict[str, Any]], None]


class Trainer:
    """Train ``model`` on tensors, a Dataset or a DataLoader.

    Each step: outputs = model(inputs); loss = loss(outputs, targets); backward; optional
    gradient clipping to a global norm; optimizer step; schedule step. Epoch by epoch: the mean
    loss and metrics over the epoch's examples, the same on the validation data, a checkpoint
    (``logdir/checkpoints/last.pt``, and ``best.pt`` at the best validation loss), TensorBoard.

    Args:
        model: any nn.Module mapping a batch of inputs to outputs ``loss`` accepts.
        task: "classification" (cross-entropy, accuracy) or "regression" (MSE; MSE and MAE);
            the defaults of ``loss`` and ``metrics``.
        loss: a loss's name ("cross_entropy"; "mse", "mae", "huber") or a callable
            (outputs, targets) → the batch's mean loss.
        metrics: names → callables (outputs, targets) → the batch's mean value.
        optimizer: a descent rule's name ("adam", "sgd", …) or a ready torch.optim.Optimizer.
        lr: a float or a schedule of the update number (for a ready optimizer, a schedule drives
            it through :func:`descent.schedules.torch_scheduler`; a float is ignored).
        optimizer_params: the rule's other hyperparameters.
        mode, batch_size: "full", "single" (one example per update) or "minibatch" (B examples,
            reshuffled each epoch from ``seed``). A DataLoader of the user's keeps its own batches.
        epochs: the budget in epochs; max_steps: an optional budget in updates.
        early_stopping: stop after this many epochs without a better validation loss (None: off).
        grad_clip: clip the gradient's global norm to this value (None: off).
        precision: "32", "64", "bf16-mixed" or "16-mixed" (see :mod:`descent.train.device`).
        device: "auto", "cpu", "cuda", "cuda:N" or "mps".
        compile: compile the model with torch.compile.
        num_workers: worker processes that load a Dataset's examples (0: in this process).
        seed: seeds the batch order and torch's generators (dropout) at the start of training.
        logdir: where TensorBoard events and checkpoints go (None: nowhere).
        log: :class:`LogOptions` (or its fields as a dict).
        checkpoint_every: also checkpoint every this many steps inside an epoch (None: at epoch
            ends only); a resume continues at the batch after the checkpoint.
        image_shape: (C, H, W) of the inputs, to draw a Linear first layer's weights as images
            (default: the model's ``image_shape`` attribute, if it declares one).
        progress: show a progress bar (only on a terminal). callbacks: functions
            (trainer, event, info) called on "step" (info: step, loss as a device tensor) and
            "epoch" (info: :meth:`EpochMetrics.flat`) events; a callback may end the run after
            the current epoch with :meth:`request_stop`.

    Under torch's launcher (``descent train --nproc N``, ``torchrun``) the Trainer joins the
    process group and trains data-parallel: see :mod:`descent.train.distributed`.

    Example::

        trainer = Trainer(model, task="regression", optimizer="adam", lr=1e-3, epochs=50)
        result = trainer.fit((x_train, y_train), (x_val, y_val))
        result.final.val["mae"]
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        task: str = "classification",
        loss: Metric | str | None = None,
        metrics: Mapping[str, Metric] | None = None,
        optimizer: str | torch.optim.Optimizer = "adam",
        lr: Any = 1e-3,
        optimizer_params: dict[str, Any] | None = None,
        mode: str = "minibatch",
        batch_size: int = 50,
        epochs: int = 20,
        max_steps: int | None = None,
        early_stopping: int | None = None,
        grad_clip: float | None = None,
        precision: str | int = "32",
        device: str | torch.device = "auto",
        compile: bool = False,
        num_workers: int = 0,
        seed: int = 0,
        logdir: str | Path | None = None,
        log: LogOptions | Mapping[str, Any] | None = None,
        checkpoint_every: int | None = None,
        image_shape: Sequence[int] | None = None,
        progress: bool = False,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        self.task, self.loss, self.metrics = defaults(task, loss, metrics)
        self.mode = validate.batch_mode(mode, "mode")
        self.batch_size = validate.positive_int(batch_size, "batch_size")
        self.epochs = validate.positive_int(epochs, "epochs")
        self.max_steps = (
            None if max_steps is None else validate.positive_int(max_steps, "max_steps")
        )
        self.early_stopping = (
            None
            if early_stopping is None
            else validate.positive_int(early_stopping, "early_stopping")
        )
        self.grad_clip = None if grad_clip is None else validate.positive(grad_clip, "grad_clip")
        self.checkpoint_every = (
            None
            if checkpoint_every is None
            else validate.positive_int(checkpoint_every, "checkpoint_every")
        )
        self.num_workers = validate.nonnegative_int(num_workers, "num_workers")
        self.seed = validate.nonnegative_int(seed, "seed")
        self.progress = validate.flag(progress, "progress")
        self.log = log if isinstance(log, LogOptions) else LogOptions(**(log or {}))
        self.logdir = Path(logdir) if logdir is not None else None
        self.callbacks = list(callbacks)
        self.image_shape = image_shape or getattr(model, "image_shape", None)

        self.device = resolve_device(device, local_rank())
        self.context = join(self.device)
        self.precision = Precision(precision_name(precision), self.device)
        self.model = model.to(self.device, self.precision.dtype)
        self.scheduler = None
        if isinstance(optimizer, torch.optim.Optimizer):
            self.optimizer = optimizer
            if callable(lr):
                self.scheduler = torch_scheduler(optimizer, lr)
        else:
            self.optimizer = optim.create(
                optimizer, self.model.parameters(), lr=lr, **(optimizer_params or {})
            )
        self.scaler = self.precision.scaler()
        # A float16 step the scaler skips never calls optimizer.step: this flag tells the schedule
        # not to advance (and torch's scheduler then never warns about the order of the calls).
        self._stepped = False
        self.optimizer.register_step_post_hook(self._mark_stepped)
        self.network: nn.Module = self.model
        if self.context.active:
            self.network = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device] if self.device.type == "cuda" else None
            )
        if validate.flag(compile, "compile"):
            self.network = torch.compile(self.network)  # type: ignore[assignment]
        self.state = State()
        self._events: EventLog | None = None
        self._stop_request: str | None = None

    def _mark_stepped(self, *_: Any) -> None:
        self._stepped = True

    @property
    def writer(self) -> Any:
        """The open TensorBoard ``SummaryWriter`` of this run (rank 0, with a logdir, during
        ``fit``), for callbacks that log beside the Trainer; None otherwise."""
        return self._events.writer if self._events is not None else None

    # -- checkpoints ---------------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path | None:
        return self.logdir / "checkpoints" / "last.pt" if self.logdir else None

    def request_stop(self, reason: str) -> None:
        """End the run after the current epoch (its checkpoint written), with ``reason`` as
        the result's ``stopped``: for callbacks, e.g. a plateau seen at an "epoch" event."""
        self._stop_request = reason

    # -- training ------------------------------------------------------------------------------

    def fit(self, train: Any, validation: Any = None, *, resume: bool = False) -> TrainResult:
        """Train on ``train`` ((inputs, targets) tensors, a Dataset or a DataLoader), evaluating
        on ``validation`` after every epoch; ``resume`` continues from the run's last checkpoint
        exactly where it was written (same batches, same random numbers)."""
        started = time.perf_counter()
        data = TrainingData(
            train,
            mode=self.mode,
            batch_size=self.batch_size,
            seed=self.seed,
            device=self.device,
            dtype=self.precision.dtype,
            num_workers=self.num_workers,
            context=self.context,
        )
        torch.manual_seed(self.seed + self.context.rank)
        running = Running(list(self.metrics), self.device)
        position = saved.restore_run(self, data, running) if resume else 0
        set_point(self.optimizer, train=True)  # a checkpoint, or an earlier fit, leaves the average
        if self.logdir is not None and self.context.is_main:
            self._events = EventLog(self.logdir, self.log, self.state.step)
        examples, done, stopped = 0, 0, "budget"
        self._stop_request = None
        progress = progress_bar(
            (self.epochs - self.state.epoch) * len(data),
            self.progress and self.context.is_main,
        )
        try:
            while self.state.epoch < self.epochs:
                epoch_start = time.perf_counter()
                self.network.train()
                if position == 0:
                    running.zero()
                for inputs, targets in data.epoch():
                    self._step(inputs, targets, running, data.global_batch_size(position))
                    position += 1
                    done += 1
                    examples += len(targets)
                    step = self.state.step
                    if step % self.log.scalars_every == 0:
                        self._guard(running.means(self.context)["loss"], "training loss", step)
                        if progress is not None:
                            progress.update(
                                progress.task_ids[0],
                                completed=done,
                                description=f"epoch {self.state.epoch + 1}/{self.epochs} "
                                f"loss {running.means(self.context)['loss']:.4f}",
                            )
                    if self.checkpoint_every and step % self.checkpoint_every == 0:
                        self._guard_weights()
                        saved.save_run(self, data, position, running)
                    if self.max_steps is not None and step >= self.max_steps:
                        stopped = "max steps"
                        break
                position = 0
                metrics = self._end_epoch(running, validation, time.perf_counter() - epoch_start)
                # The verdict first, so the checkpoint holds the counters early stopping uses.
                improved = self._judge(metrics)
                saved.save_run(self, data, 0, running)
                if improved:
                    self._keep_as_best()
                if stopped == "max steps":
                    break
                if self.early_stopping is not None and self.state.bad_epochs >= self.early_stopping:
                    stopped = "early stopping"
                    break
                if self._stop_request is not None:  # a callback's reason, e.g. "plateau"
                    stopped = self._stop_request
                    break
        finally:
            if progress is not None:
                progress.stop()
            if self._events is not None:
                self._events.close()
                self._events = None
        set_point(self.optimizer, train=False)  # the model a user evaluates or saves: the average
        elapsed = time.perf_counter() - started
        return TrainResult(
            [EpochMetrics.from_flat(entry) for entry in self.state.history],
            stopped,
            self.state.best_epoch,
            self.state.step,
            examples * self.context.world_size / elapsed if elapsed > 0 else 0.0,
            self.checkpoint_path,
            elapsed,
        )

    def _step(self, inputs: Tensor, targets: Tensor, running: Running, whole: int | None) -> None:
        step = self.state.step
        events = self._events
        log_scalars = events is not None and step % self.log.scalars_every == 0
        log_ratios = (
            events is not None and self.log.ratios_every and step % self.log.ratios_every == 0
        )
        log_histograms = (
            events is not None
            and self.log.histograms_every
            and step % self.log.histograms_every == 0
        )
        captured: dict[str, Tensor] = {}
        hooks = activation_hooks(self.model, captured) if log_histograms else []
        self.optimizer.zero_grad(set_to_none=True)
        count = len(targets)
        with self.precision.autocast():
            outputs = self.network(inputs)
            loss = self.loss(outputs, targets) if count else outputs.sum() * 0
        for handle in hooks:
            handle.remove()
        # Under data-parallel training the ranks' gradients are averaged; weighting each rank's
        # mean by its share makes the step the whole batch's mean (see descent.train.distributed).
        share = count * self.context.world_size / whole if whole else 1.0
        objective = loss * share if share != 1.0 else loss
        if self.scaler is not None:
            self.scaler.scale(objective).backward()
        else:
            objective.backward()
        grad_norm: Tensor | None = None
        if self.grad_clip is not None or log_scalars:
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
            parameters = [p for p in self.model.parameters() if p.grad is not None]
            if self.grad_clip is not None:
                grad_norm = nn.utils.clip_grad_norm_(parameters, self.grad_clip)
            else:
                grad_norm = nn.utils.get_total_norm([p.grad for p in parameters])
        before = (
            {n: p.detach().clone() for n, p in self.model.named_parameters()}
            if log_ratios
            else None
        )
        lr = self._current_lr() if log_scalars else math.nan  # read before the step moves it
        self._stepped = False
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.scheduler is not None and self._stepped:
            self.scheduler.step()
        if count:
            with torch.no_grad():
                detached = outputs.detach()
                running.add(
                    loss, [metric(detached, targets) for metric in self.metrics.values()], count
                )
        if events is not None:
            if log_scalars:
                events.scalar("train/loss", float(loss.detach()), step)
                events.scalar("learning_rate", lr, step)
                events.scalar("gradient_norm", float(grad_norm), step)  # type: ignore[arg-type]
            if before is not None:
                events.ratios(self.model, before, step)
            if log_histograms:
                events.histograms(self.model, captured, step)
        self.state.step += 1
        for callback in self.callbacks:
            callback(self, "step", {"step": step, "loss": loss.detach()})

    def _current_lr(self) -> float:
        group = self.optimizer.param_groups[0]
        if isinstance(self.optimizer, optim.DescentOptimizer):
            return self.optimizer.lr_at(group)
        return float(group["lr"])

    # -- the divergence guard -------------------------------------------------------------------

    def _guard(self, value: float, what: str, step: int) -> None:
        """Stop when ``value`` is NaN or infinite. Checked at logged steps (every
        ``log.scalars_every``), at checkpoints and at each epoch's end: the training loss summed
        over the epoch so far, so a NaN at any step since the epoch began is caught."""
        if math.isfinite(value):
            return
        last = self.checkpoint_path
        where = (
            f"; the last good checkpoint is {last}"
            if last is not None and last.is_file()
            else "; no checkpoint was written before it"
        )
        raise DivergenceError(
            f"the {what} became {value} at step {step} (epoch {self.state.epoch + 1}) with "
            f"learning rate {self._current_lr():.3g}; try a smaller learning rate{where} (the "
            f"guard looks every {self.log.scalars_every} steps and at each epoch's end)"
        )

    def _guard_weights(self) -> None:
        finite = torch.stack([p.detach().isfinite().all() for p in self.model.parameters()])
        if not bool(finite.all()):
            self._guard(math.nan, "weights' value (some weights)", self.state.step)

    # -- epochs ---------------------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self, data: Any, chunk: int = 2048) -> dict[str, float]:
        """The mean loss and metrics over ``data`` (in evaluation mode; each rank evaluates its
        share under data-parallel training, and the sums are combined; a Schedule-Free
        optimizer's average x is what is evaluated)."""
        self.network.eval()
        running = Running(list(self.metrics), self.device)
        batches = evaluation_batches(
            data,
            device=self.device,
            dtype=self.precision.dtype,
            context=self.context,
            num_workers=self.num_workers,
            chunk=chunk,
        )
        with at_average(self.optimizer):
            for inputs, targets in batches:
                with self.precision.autocast():
                    outputs = self.model(inputs)
                    loss = self.loss(outputs, targets)
                running.add(
                    loss,
                    [metric(outputs, targets) for metric in self.metrics.values()],
                    len(targets),
                )
        self.network.train()
        return running.means(self.context)

    def _end_epoch(self, running: Running, validation: Any, seconds: float) -> EpochMetrics:
        train = running.means(self.context)
        self._guard(train["loss"], "training loss", self.state.step)
        val = self.evaluate(validation) if validation is not None else None
        if val is not None:
            self._guard(val["loss"], "validation loss", self.state.step)
        self._guard_weights()
        self.state.epoch += 1
        metrics = EpochMetrics(
            self.state.epoch, self.state.step, train, val, self._current_lr(), seconds
        )
        self.state.history.append(metrics.flat())
        events = self._events
        if events is not None:
            step = self.state.step
            events.scalar("train/epoch_loss", train["loss"], step)
            events.scalars("train", {k: v for k, v in train.items() if k != "loss"}, step)
            if val is not None:
                events.scalars("val", val, step)
            if self.log.weight_images:
                events.first_layer(self.model, self.image_shape, step)
            events.flush()
        for callback in self.callbacks:
            callback(self, "epoch", metrics.flat())
        return metrics

    def _judge(self, metrics: EpochMetrics) -> bool:
        """Record whether the monitored loss (validation, else training) improved."""
        monitored = metrics.val_loss if metrics.val_loss is not None else metrics.train_loss
        if monitored < self.state.best_metric:
            self.state.best_metric, self.state.best_epoch = monitored, metrics.epoch
            self.state.bad_epochs = 0
            return True
        self.state.bad_epochs += 1
        return False

    def _keep_as_best(self) -> None:
        """best.pt: a copy of the last.pt just written (cheaper than pickling again)."""
        last = self.checkpoint_path
        if last is not None and self.context.is_main and last.is_file():
            checkpoint.copy(last, last.with_name("best.pt"))
