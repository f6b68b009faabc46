"""A whole training run from a RunConfig: data, model, initialization, Trainer, test metrics,
and the run folder.

Run folder layout (``logdir``)::

    config.yaml                   the RunConfig that made the run (reload with --config)
    events.out.tfevents.*         TensorBoard: scalars, histograms, first-layer weight images
    checkpoints/last.pt           after every epoch (model, optimizer, batch order, RNG state)
    checkpoints/best.pt           the epoch with the best validation loss
    metrics.json                  per-epoch history and the final test loss and accuracy
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from descent.data.images import ImageData, load
from descent.diagnose.monitor import DIAGNOSIS_BATCH, InitDiagnosis
from descent.models import MLP, SmallCNN, SoftmaxRegression, initialize
from descent.train.config import RunConfig
from descent.train.trainer import LogOptions, Trainer, TrainResult


@dataclass(frozen=True)
class RunOutcome:
    result: TrainResult
    test_loss: float
    test_accuracy: float
    logdir: Path | None


def build_model(config: RunConfig, data: ImageData) -> nn.Module:
    """The configured model for the data's image shape, initialized with the config's seed."""
    torch.manual_seed(config.seed)
    channels, height, width = data.image_shape
    classes = len(data.classes)
    features = channels * height * width
    if config.model == "softmax":
        model: nn.Module = SoftmaxRegression(features, classes)
    elif config.model == "mlp":
        model = MLP(
            features,
            classes,
            hidden=config.hidden,
            dropout=config.dropout,
            activation=config.activation,
        )
    else:
        model = SmallCNN(
            data.image_shape, classes, channels=config.channels, dropout=config.dropout
        )
    model.image_shape = data.image_shape  # type: ignore[assignment]
    generator = torch.Generator().manual_seed(config.seed)
    probe = data.train.images[:DIAGNOSIS_BATCH]  # LSUV's batch
    return initialize(model, config.init, std=config.init_std, generator=generator, inputs=probe)


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def run(
    config: RunConfig, *, resume: bool = False, progress: bool = False, callbacks: Any = ()
) -> RunOutcome:
    data = load(config.data, seed=config.seed)
    model = build_model(config, data)
    steps_per_epoch = max(
        1,
        -(
            -len(data.train)
            // (
                config.batch_size
                if config.mode == "minibatch"
                else 1
                if config.mode == "sgd"
                else len(data.train)
            )
        ),
    )
    logdir = Path(config.logdir) if config.logdir else None
    if logdir is not None or config.diagnose_every:  # the initial report, and --diagnose-every
        probe = data.train.images[:DIAGNOSIS_BATCH], data.train.labels[:DIAGNOSIS_BATCH]
        callbacks = [*callbacks, InitDiagnosis(model, *probe, every=config.diagnose_every)]
    trainer = Trainer(
        model,
        optimizer=config.optimizer,
        lr=config.learning_rate(steps_per_epoch),
        optimizer_params=config.optimizer_params,
        mode=config.mode,
        batch_size=config.batch_size,
        epochs=config.epochs,
        max_steps=config.max_steps,
        early_stopping=config.early_stopping,
        grad_clip=config.grad_clip,
        dtype=config.torch_dtype,
        seed=config.seed,
        logdir=logdir,
        log=LogOptions(**config.log.model_dump()),
        progress=progress,
        callbacks=callbacks,
    )
    if logdir is not None:
        write_atomically(
            logdir / "config.yaml", yaml.safe_dump(config.model_dump(), sort_keys=False)
        )
    result = trainer.fit(data.train, data.validation, resume=resume)
    test_loss, test_accuracy = trainer.evaluate(data.test)
    if logdir is not None:
        metrics = {
            "history": [asdict(entry) for entry in result.history],
            "stopped": result.stopped,
            "best_epoch": result.best_epoch,
            "test_loss": test_loss,
            "test_accuracy": test_accuracy,
        }
        write_atomically(logdir / "metrics.json", json.dumps(metrics, indent=2))
    return RunOutcome(result, test_loss, test_accuracy, logdir)
