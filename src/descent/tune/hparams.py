"""A study in TensorBoard's HParams dashboard, written without TensorFlow.

What the dashboard reads: one *experiment config* at the study root (every hyperparameter with its
domain, the metrics with display names) and, in each trial's own run folder, a *session start*
with the trial's values, the trial's training curves, and a *session end* with its status.

The experiment config and the session start come from tensorboard's own helpers,
``tensorboard.plugins.hparams.summary_v2.hparams_config_pb`` and ``hparams_pb``, which build the
Summary protos without TensorFlow. tensorboard has no TensorFlow-free helper for the session end
(``summary.session_end_pb`` imports TensorFlow, ``summary_v2`` has none), so it is built from the
plugin's own protos and ``metadata.create_summary_metadata``, the way ``summary_v2`` builds the
other two. Event files are written with tensorboard's ``EventFileWriter``.

Nothing here holds a storage URL: the summaries carry the trial's hyperparameters, its metrics and
its run name only.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from descent.tune.space import SearchSpace

#: The metrics the dashboard shows: (scalar tag, display name).
METRICS = (
    ("val/accuracy", "validation accuracy"),
    ("val/loss", "validation loss"),
    ("train/epoch_loss", "training loss"),
    ("test/accuracy", "test accuracy"),
    ("trial/pruned", "pruned (1 = yes)"),
)


def _display(value: Any) -> Any:
    """HParams values are bool, int, float or str."""
    if isinstance(value, bool | int | float | str):
        return value
    return str(list(value) if isinstance(value, tuple) else value)


def _write(folder: Path, summary: Any, suffix: str, step: int = 0) -> None:
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(folder), filename_suffix=suffix)
    writer.add_event(event_pb2.Event(summary=summary, step=step, wall_time=time.time()))
    writer.close()


def write_experiment(root: Path, space: SearchSpace) -> None:
    """The experiment config, once, at the study root: every hyperparameter with its domain
    (discrete values, int or real intervals) and the metrics."""
    from tensorboard.plugins.hparams import summary_v2 as hp

    hparams = []
    for p in space.params:
        if p.kind == "choice":
            values = [_display(c) for c in p.choices]
            if len({type(v) for v in values}) > 1:  # a Discrete domain holds one type
                values = [str(v) for v in values]
            domain: Any = hp.Discrete(values)
        elif p.kind == "int":
            domain = hp.IntInterval(int(p.low), int(p.high))
        else:
            domain = hp.RealInterval(float(p.low), float(p.high))
        hparams.append(hp.HParam(p.name, domain))
    metrics = [hp.Metric(tag, display_name=name) for tag, name in METRICS]
    root.mkdir(parents=True, exist_ok=True)
    _write(root, hp.hparams_config_pb(hparams, metrics), ".hparams")


def write_session_start(folder: Path, values: dict[str, Any], trial_id: str) -> None:
    """A trial's values, in its own run folder."""
    from tensorboard.plugins.hparams import summary_v2 as hp

    folder.mkdir(parents=True, exist_ok=True)
    shown = {name: _display(value) for name, value in values.items()}
    _write(folder, hp.hparams_pb(shown, trial_id=trial_id, start_time_secs=time.time()), ".hparams")


def write_session_end(folder: Path, state: str) -> None:
    """Status SUCCESS for complete and pruned trials (a pruned one also has the metric
    trial/pruned = 1), FAILURE for failed ones."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
    from torch.utils.tensorboard.summary import scalar

    _write(folder, scalar("trial/pruned", 1.0 if state == "pruned" else 0.0), ".hparams")
    status = api_pb2.STATUS_FAILURE if state == "failed" else api_pb2.STATUS_SUCCESS
    info = plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=time.time())
    content = plugin_data_pb2.HParamsPluginData(
        session_end_info=info, version=metadata.PLUGIN_DATA_VERSION
    )
    summary = summary_pb2.Summary(
        value=[
            summary_pb2.Summary.Value(
                tag=metadata.SESSION_END_INFO_TAG,
                metadata=metadata.create_summary_metadata(content),
                tensor=metadata.NULL_TENSOR,
            )
        ]
    )
    _write(folder, summary, ".hparams")


def write_test_accuracy(folder: Path, accuracy: float, step: int) -> None:
    """The trial's test accuracy as a scalar at its last step (a metric of the dashboard)."""
    from torch.utils.tensorboard.summary import scalar

    _write(folder, scalar("test/accuracy", accuracy), ".test", step=step)
