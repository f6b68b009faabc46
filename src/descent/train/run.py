"""A whole training run from a RunConfig: data, model, initialization, Trainer, test metrics,
and the run folder.

Run folder layout (``logdir``)::

    config.yaml                   the RunConfig that made the run (reload with --config)
    events.out.tfevents.*         TensorBoard: scalars, histograms, first-layer weight images
    checkpoints/last.pt           after every epoch (model, optimizer, batch order, RNG state)
    checkpoints/best.pt           the epoch with the best validation loss
    metrics.json                  per-epoch history and the final test loss and accuracy
    .lock                         held while a process trains into the folder

A folder holds one run: a new run into a folder that already holds one is refused unless it is
resumed (``resume=True``) or replaced (``overwrite=True``); a second process training into a folder
in use is refused (an advisory lock, released when the process ends, however it ends). A resume is
checked before anything is written: the settings must match the run's config.yaml (except the
budget and logging: epochs, max_steps, early_stopping, log, logdir) and the checkpoint must load
into the model.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from descent import yamlfile
from descent.data.images import ImageData, load
from descent.data.tables import TableData, table_data, table_file
from descent.diagnose.monitor import DIAGNOSIS_BATCH, InitDiagnosis
from descent.errors import InputError
from descent.models import MLP, SmallCNN, SoftmaxRegression, initialize
from descent.train import checkpoint
from descent.train.config import RunConfig
from descent.train.tasks import LOSSES
from descent.train.trainer import Trainer, TrainResult

#: What a run writes into its folder; any of them there means the folder holds a run.
RUN_FILES = ("config.yaml", "metrics.json", "checkpoints")
#: Settings a resume may change: the budget, early stopping and logging (the rest would not
#: continue the same run).
RESUMABLE = ("epochs", "max_steps", "early_stopping", "stop_on_plateau", "log", "logdir")


@dataclass(frozen=True)
class RunOutcome:
    result: TrainResult
    test: dict[str, float]  # "loss" and each metric's mean over the test part
    logdir: Path | None
    stall: Any = None  # the stall verdict, when early stopping or a plateau ended the run

    @property
    def test_loss(self) -> float:
        return self.test["loss"]

    @property
    def test_accuracy(self) -> float | None:
        """The test accuracy of a classifier (None for regression)."""
        return self.test.get("accuracy")


class Standardized(nn.Module):
    """A model that standardizes its inputs and, for regression, un-standardizes its outputs:
    ``model((x − μ_x) / σ_x) · σ_y + μ_y`` with the training part's means and standard deviations
    kept as buffers (so the checkpoint holds them, and the model takes raw rows and predicts in
    the target's units while its layers see values of unit scale)."""

    def __init__(self, model: nn.Module, data: TableData) -> None:
        super().__init__()
        self.model = model
        self.regression = data.classes is None
        self.register_buffer("input_mean", torch.as_tensor(data.feature_mean, dtype=torch.float32))
        self.register_buffer("input_std", torch.as_tensor(data.feature_std, dtype=torch.float32))
        self.register_buffer("output_mean", torch.tensor(data.target_mean, dtype=torch.float32))
        self.register_buffer("output_std", torch.tensor(data.target_std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = self.model((x - self.input_mean) / self.input_std)
        if not self.regression:
            return outputs
        return outputs.squeeze(-1) * self.output_std + self.output_mean


def load_data(config: RunConfig) -> ImageData | TableData:
    """The run's data: an image set, or a table split into train, validation and test rows."""
    path = table_file(config.data)
    if path is None:
        return load(config.data, seed=config.seed)
    dtype = "float64" if config.precision == "64" else "float32"
    return table_data(path, str(config.target), str(config.task), seed=config.seed, dtype=dtype)


def _dense_model(config: RunConfig, features: int, outputs: int) -> nn.Module:
    """The configured softmax regression or MLP from ``features`` inputs to ``outputs``."""
    if config.model == "softmax":
        return SoftmaxRegression(features, outputs)
    return MLP(
        features,
        outputs,
        hidden=config.hidden,
        dropout=config.dropout,
        activation=config.activation,
    )


def build_model(config: RunConfig, data: ImageData | TableData) -> nn.Module:
    """The configured model for the data (its image shape, or a table's columns), initialized
    with the config's seed; a table's model standardizes its rows (:class:`Standardized`)."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    if isinstance(data, TableData):
        features = data.train.images.shape[1]
        outputs = 1 if data.classes is None else len(data.classes)
        inner = _dense_model(config, features, outputs)  # RunConfig refuses a CNN for a table
        mean = torch.as_tensor(data.feature_mean, dtype=data.train.images.dtype)
        std = torch.as_tensor(data.feature_std, dtype=data.train.images.dtype)
        probe = (data.train.images[:DIAGNOSIS_BATCH] - mean) / std  # what the layers will see
        initialize(inner, config.init, std=config.init_std, generator=generator, inputs=probe)
        return Standardized(inner, data)
    channels, height, width = data.image_shape
    classes = len(data.classes)
    if config.model in ("softmax", "mlp"):
        model = _dense_model(config, channels * height * width, classes)
    else:
        model = SmallCNN(
            data.image_shape, classes, channels=config.channels, dropout=config.dropout
        )
    probe = data.train.images[:DIAGNOSIS_BATCH]  # LSUV's batch
    return initialize(model, config.init, std=config.init_std, generator=generator, inputs=probe)


def write_atomically(path: Path, text: str) -> None:
    checkpoint.write_bytes_atomically(path, lambda temporary: temporary.write_text(text, "utf-8"))


@contextlib.contextmanager
def run_folder(logdir: Path | None) -> Iterator[None]:
    """Create ``logdir`` (one line for a path that cannot be a folder or cannot be written) and
    hold its lock for the block: a second process training into it is refused."""
    if logdir is None:
        yield
        return
    created = not logdir.exists()
    try:
        logdir.mkdir(parents=True, exist_ok=True)
        handle = os.open(logdir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        if isinstance(error, FileExistsError) or (logdir.exists() and not logdir.is_dir()):
            reason = "it is a file, not a folder"
        elif isinstance(error, NotADirectoryError):
            reason = "a part of the path is a file, not a folder"
        raise InputError(f"{logdir}: cannot be the run folder ({reason})") from None
    try:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock, the rest holds
            fcntl = None  # type: ignore[assignment]
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(handle, 32).decode(errors="replace").strip() or "another"
                raise InputError(
                    f"{logdir}: another descent process (pid {holder}) is training into this run "
                    "folder; wait for it to finish or choose another --logdir"
                ) from None
            os.ftruncate(handle, 0)
            os.write(handle, str(os.getpid()).encode())
        yield
    except BaseException:
        if created and [path.name for path in logdir.iterdir()] == [".lock"]:
            # a run that failed before writing anything leaves no folder behind
            (logdir / ".lock").unlink()
            logdir.rmdir()
        raise
    finally:
        os.close(handle)  # releases the lock


def _check_folder(config: RunConfig, logdir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse a new run over an old one, clear it with ``overwrite``, and check that a resume
    continues the same run; nothing is written here."""
    present = [name for name in RUN_FILES if (logdir / name).exists()]
    if resume:
        last = logdir / "checkpoints" / "last.pt"
        if not last.is_file():
            raise InputError(
                f"{logdir}: nothing to resume (no checkpoints/last.pt); start the run without "
                "--resume"
            )
        saved_path = logdir / "config.yaml"
        if saved_path.is_file():
            saved = yamlfile.load(saved_path, "config")
            if not isinstance(saved, dict):
                saved = {}
            with contextlib.suppress(ValueError):  # normalized as the given config is
                saved = RunConfig(**saved).model_dump()
            given = config.model_dump()
            differ = [
                f"{key} {saved.get(key)!r} → {given[key]!r}"
                for key in given
                if key not in RESUMABLE and saved.get(key) != given[key]
            ]
            if differ:
                raise InputError(
                    f"{logdir}: a resume continues the same run, but these settings differ from "
                    f"its config.yaml: {'; '.join(differ)}; resume with --config {saved_path} "
                    "--resume, or start a new run in another --logdir"
                )
        return
    if not present:
        return
    if not overwrite:
        raise InputError(
            f"{logdir}: already holds a run ({', '.join(present)}); continue it with --resume, "
            "replace it with --overwrite, or choose another --logdir"
        )
    for name in present:
        target = logdir / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    for events in logdir.glob("events.out.tfevents.*"):
        events.unlink()


def _check_resume_loads(model: nn.Module, logdir: Path) -> None:
    """Read the checkpoint and load its weights into ``model`` before anything is written, so a
    resume that cannot work changes nothing (the Trainer loads it again, with the rest)."""
    last = logdir / "checkpoints" / "last.pt"
    payload = checkpoint.load(last)
    try:
        model.load_state_dict(payload["model"])
    except (RuntimeError, TypeError, ValueError) as error:
        raise checkpoint.CheckpointError(
            f"{last}: does not fit this run's model ({checkpoint.one_line(error)})"
        ) from None


def run(
    config: RunConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    callbacks: Any = (),
) -> RunOutcome:
    """Train as ``config`` says, writing the run folder (if ``config.logdir``); ``resume``
    continues the run there, ``overwrite`` replaces it (a new run into a folder that holds one is
    refused otherwise)."""
    logdir = Path(config.logdir) if config.logdir else None
    # Under torch's launcher (descent train --nproc N) rank 0 alone owns the run folder: it
    # checks it and holds its lock; the other ranks write nothing there.
    owner = int(os.environ.get("RANK", "0")) == 0
    with run_folder(logdir if owner else None):
        if logdir is not None and owner:
            _check_folder(config, logdir, resume, overwrite)
        return _run(config, logdir, resume, progress, callbacks)


def _run(
    config: RunConfig, logdir: Path | None, resume: bool, progress: bool, callbacks: Any
) -> RunOutcome:
    data = load_data(config)
    model = build_model(config, data)
    if resume and logdir is not None:
        _check_resume_loads(model, logdir)
    examples = len(data.train)
    batch = {"minibatch": config.batch_size, "single": 1, "full": examples}[config.mode]
    steps_per_epoch = max(1, -(-examples // batch))
    diagnosis = None
    if logdir is not None or config.diagnose_every:  # the initial report, and --diagnose-every
        probe = data.train.images[:DIAGNOSIS_BATCH], data.train.labels[:DIAGNOSIS_BATCH]
        loss = LOSSES[str(config.loss)][0]
        diagnosis = InitDiagnosis(model, *probe, every=config.diagnose_every, loss=loss)
        callbacks = [*callbacks, diagnosis]
    monitor = None
    if config.curvature_every or config.stop_on_plateau:
        from descent.diagnose.curvature_monitor import CurvatureMonitor

        monitor = CurvatureMonitor(
            config.curvature_every or 0,
            data.train,
            batch_size=config.batch_size,
            seed=config.seed,
            stop_on_plateau=config.stop_on_plateau,
        )
        callbacks = [*callbacks, monitor]
    trainer = Trainer(
        model,
        task=str(config.task),
        loss=config.loss,
        optimizer=config.optimizer,
        lr=config.learning_rate(steps_per_epoch),
        optimizer_params=config.optimizer_params,
        mode=config.mode,
        batch_size=config.batch_size,
        epochs=config.epochs,
        max_steps=config.max_steps,
        early_stopping=config.early_stopping,
        grad_clip=config.grad_clip,
        precision=config.precision,
        device=config.device,
        compile=config.compile,
        num_workers=config.num_workers,
        checkpoint_every=config.checkpoint_every,
        image_shape=data.image_shape,
        seed=config.seed,
        logdir=logdir,
        log=config.log,
        progress=progress,
        callbacks=callbacks,
    )
    main = trainer.context.is_main  # rank 0 alone writes the run folder
    if logdir is not None and main:
        write_atomically(logdir / "config.yaml", yamlfile.dumps(config.model_dump()))
    try:
        result = trainer.fit(data.train, data.validation, resume=resume)
    finally:
        if diagnosis is not None:  # hooks armed for a step that never came stay on the model
            diagnosis.close()
    verdict = monitor.finish(trainer, result.stopped) if monitor is not None else None
    test = trainer.evaluate(data.test)
    if logdir is not None and main:
        metrics = {
            "history": [entry.flat() for entry in result.history],
            "stopped": result.stopped,
            "best_epoch": result.best_epoch,
            "fit_seconds": result.seconds,  # the Trainer's fit, from its start to its return
            # test_loss and test_<metric>: the history's flat form
            **{f"test_{name}": value for name, value in test.items()},
        }
        write_atomically(logdir / "metrics.json", json.dumps(metrics, indent=2))
    return RunOutcome(result, test, logdir, verdict)
