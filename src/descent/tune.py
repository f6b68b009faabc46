"""Hyperparameter search on Optuna, shown in TensorBoard's HParams dashboard.

A search space names RunConfig settings (``optimizer``, ``lr``, ``batch_size``, ``hidden``,
``dropout``, ``init``, …, and ``optimizer_params.X`` for a rule's own hyperparameters) with a
domain each, optionally conditional on another setting::

    optimizer: {choices: [momentum, adam]}
    lr: {float: [1.0e-4, 1.0e-1], log: true}
    batch_size: {choices: [32, 64, 128]}
    optimizer_params.momentum: {float: [0.5, 0.99], when: {optimizer: [momentum]}}

Methods: ``grid`` (every combination of the discrete settings, as TensorFlow's HParams tutorial;
conditional settings only where their condition holds), ``random`` and ``tpe`` (Optuna's
samplers); bad trials are pruned from their per-epoch validation accuracy (``median`` or
``hyperband``). The study lives in an SQLite file in the study folder (``--storage`` for a
PostgreSQL URL shared by many machines); ``--resume`` continues it without repeating finished
trials, and ``--workers N`` runs N trial processes against the same storage.

TensorBoard: one experiment config at the study root (every setting with its domain, the
metrics with display names) and, in each trial's own run folder, a session start with its values,
the trial's training curves, and a session end with its status, written with tensorboard's own
protos (no TensorFlow).
"""

from __future__ import annotations

import copy
import math
import multiprocessing
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from descent.train.config import RunConfig, load_config, read_yaml

METRICS = (
    ("val/accuracy", "validation accuracy"),
    ("val/loss", "validation loss"),
    ("train/epoch_loss", "training loss"),
    ("test/accuracy", "test accuracy"),
    ("trial/pruned", "pruned (1 = yes)"),
)
OBJECTIVE = "val/accuracy"
METHODS = ("grid", "random", "tpe")
PRUNERS = ("none", "median", "hyperband")

DEFAULT_SPACE: dict[str, Any] = {
    "base": {"model": "cnn", "epochs": 10},
    "params": {
        "optimizer": {"choices": ["momentum", "adam", "rmsprop"]},
        "lr": {"float": [1.0e-4, 1.0e-1], "log": True},
        "batch_size": {"choices": [32, 64, 128]},
        "optimizer_params.momentum": {"float": [0.5, 0.99], "when": {"optimizer": ["momentum"]}},
    },
}


# -- the search space --------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One hyperparameter: a discrete set, an int range or a float range (log or linear)."""

    name: str
    kind: str  # "choice", "int", "float"
    choices: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def active(self, values: dict[str, Any]) -> bool:
        return all(values.get(name) in allowed for name, allowed in self.when)

    def grid_values(self) -> list[Any]:
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1))
        raise ValueError(
            f"{self.name}: a float range has no grid; list the values to try as choices"
        )


def _accepted_names() -> list[str]:
    return [name for name in RunConfig.model_fields if name not in ("logdir", "log", "seed")]


def _parse_param(name: str, spec: Any, known: list[str]) -> Param:
    where = f"search space: {name}"
    if not (name in known or name.startswith("optimizer_params.")):
        raise ValueError(
            f"{where}: unknown hyperparameter; accepted: {', '.join(known)}, optimizer_params.NAME"
        )
    if not isinstance(spec, dict):
        raise ValueError(
            f"{where}: give {{choices: [...]}}, {{int: [low, high]}} or "
            f"{{float: [low, high], log: true}}, got {spec!r}"
        )
    kinds = [kind for kind in ("choices", "int", "float") if kind in spec]
    unknown = [key for key in spec if key not in ("choices", "int", "float", "log", "when")]
    if len(kinds) != 1 or unknown:
        raise ValueError(
            f"{where}: needs exactly one of choices, int, float (and optionally "
            f"log, when), got keys {sorted(spec)}"
        )
    when = spec.get("when", {})
    if not isinstance(when, dict) or not all(isinstance(v, list) and v for v in when.values()):
        raise ValueError(f"{where}: when must map a setting to a non-empty list of its values")
    conditions = tuple((key, tuple(values)) for key, values in when.items())
    if kinds[0] == "choices":
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise ValueError(f"{where}: the choice list is empty")
        if spec.get("log"):
            raise ValueError(f"{where}: log applies to ranges, not choices")
        return Param(name, "choice", tuple(_hashable(c) for c in choices), when=conditions)
    bounds = spec[kinds[0]]
    if (
        not isinstance(bounds, list)
        or len(bounds) != 2
        or not all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds)
    ):
        raise ValueError(f"{where}: a range is [low, high], got {bounds!r}")
    low, high = bounds
    if low > high:
        raise ValueError(f"{where}: low {low} > high {high}")
    log = bool(spec.get("log", False))
    if log and low <= 0:
        raise ValueError(f"{where}: a log range needs low > 0, got {low}")
    if kinds[0] == "int" and not (isinstance(low, int) and isinstance(high, int)):
        raise ValueError(f"{where}: an int range needs integer bounds, got {bounds!r}")
    return Param(
        name, "int" if kinds[0] == "int" else "float", low=low, high=high, log=log, when=conditions
    )


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def encode(value: Any) -> Any:
    """A choice as Optuna stores it: scalars as they are, lists as their text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(list(value))


@dataclass(frozen=True)
class SearchSpace:
    base: dict[str, Any]
    params: tuple[Param, ...]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchSpace:
        """Validate everything before any trial runs: names, domains, conditions, the base."""
        if not isinstance(data, dict) or "params" not in data:
            raise ValueError("search space: a mapping with 'params' (and optionally 'base')")
        unknown = [key for key in data if key not in ("base", "params")]
        if unknown:
            raise ValueError(f"search space: unknown section(s) {unknown}; accepted: base, params")
        known = _accepted_names()
        params = data["params"]
        if not isinstance(params, dict) or not params:
            raise ValueError("search space: 'params' must name at least one hyperparameter")
        parsed = tuple(_parse_param(name, spec, known) for name, spec in params.items())
        names = [p.name for p in parsed]
        for param in parsed:
            for condition, allowed in param.when:
                if condition not in names[: names.index(param.name)]:
                    raise ValueError(
                        f"search space: {param.name}: its condition names "
                        f"{condition!r}, which must be a hyperparameter listed before it"
                    )
                source = parsed[names.index(condition)]
                if source.kind == "choice" and not set(allowed) <= set(source.choices):
                    raise ValueError(
                        f"search space: {param.name}: condition values "
                        f"{list(allowed)} are not all choices of {condition}"
                    )
        base = dict(data.get("base") or {})
        load_config(None, **base)  # the base must be a valid RunConfig on its own
        space = cls(base, parsed)
        for values in space.grid(partial=True):  # every combination must make a valid config
            space.config(values, Path("."))
        return space

    @classmethod
    def from_yaml(cls, path: str | Path) -> SearchSpace:
        data = read_yaml(path, "search space")
        try:
            return cls.from_dict(data)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None

    def to_dict(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for p in self.params:
            spec: dict[str, Any] = (
                {"choices": [list(c) if isinstance(c, tuple) else c for c in p.choices]}
                if p.kind == "choice"
                else {p.kind: [p.low, p.high], "log": p.log}
            )
            if p.when:
                spec["when"] = {k: list(v) for k, v in p.when}
            params[p.name] = spec
        return {"base": self.base, "params": params}

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Define-by-run sampling: a conditional setting is only drawn where its condition holds."""
        values: dict[str, Any] = {}
        for p in self.params:
            if not p.active(values):
                continue
            if p.kind == "choice":
                index = {encode(c): c for c in p.choices}
                values[p.name] = index[trial.suggest_categorical(p.name, list(index))]
            elif p.kind == "int":
                values[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log)
            else:
                values[p.name] = trial.suggest_float(p.name, float(p.low), float(p.high), log=p.log)
        return values

    def grid(self, partial: bool = False) -> list[dict[str, Any]]:
        """Every combination of the active settings (conditional ones only where active). With
        ``partial``, float ranges are represented by their two ends (for validation only)."""
        combos: list[dict[str, Any]] = [{}]
        for p in self.params:
            options = [p.low, p.high] if p.kind == "float" and partial else p.grid_values()
            grown = []
            for combo in combos:
                if p.active(combo):
                    grown += [{**combo, p.name: value} for value in options]
                else:
                    grown.append(combo)
            combos = grown
        return combos

    def config(self, values: dict[str, Any], logdir: Path) -> RunConfig:
        """The RunConfig of one trial: the base with the trial's values on top."""
        settings = copy.deepcopy(self.base)
        for name, value in values.items():
            value = list(value) if isinstance(value, tuple) else value
            if name.startswith("optimizer_params."):
                settings.setdefault("optimizer_params", {})[name.split(".", 1)[1]] = value
            else:
                settings[name] = value
        settings["logdir"] = str(logdir)
        settings.setdefault("log", {"ratios_every": 0, "weight_images": False})
        return load_config(None, **settings)


# -- TensorBoard HParams -----------------------------------------------------------------------


def _display(value: Any) -> Any:
    """HParams values are bool, int, float or str."""
    if isinstance(value, bool | int | float | str):
        return value
    return str(list(value) if isinstance(value, tuple) else value)


def _write_summary(folder: Path, summary: Any) -> None:
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(folder), filename_suffix=".hparams")
    writer.add_event(event_pb2.Event(summary=summary, wall_time=time.time()))
    writer.close()


def write_experiment(root: Path, space: SearchSpace) -> None:
    """The experiment config, once, at the study root: every hyperparameter with its domain
    (discrete values, int or real intervals), the trial state, and the metrics."""
    from tensorboard.plugins.hparams import summary_v2 as hp

    hparams = []
    for p in space.params:
        if p.kind == "choice":
            values = [_display(c) for c in p.choices]
            if len({type(v) for v in values}) > 1:
                values = [str(v) for v in values]
            domain: Any = hp.Discrete(values)
        elif p.kind == "int":
            domain = hp.IntInterval(int(p.low), int(p.high))
        else:
            domain = hp.RealInterval(float(p.low), float(p.high))
        hparams.append(hp.HParam(p.name, domain))
    metrics = [hp.Metric(tag, display_name=name) for tag, name in METRICS]
    root.mkdir(parents=True, exist_ok=True)
    _write_summary(root, hp.hparams_config_pb(hparams, metrics))


def write_session_start(folder: Path, values: dict[str, Any], trial_id: str) -> None:
    from tensorboard.plugins.hparams import summary_v2 as hp

    folder.mkdir(parents=True, exist_ok=True)
    shown = {name: _display(value) for name, value in values.items()}
    _write_summary(folder, hp.hparams_pb(shown, trial_id=trial_id, start_time_secs=time.time()))


def write_session_end(folder: Path, state: str) -> None:
    """Status SUCCESS for complete and pruned trials (a pruned one also has the metric
    trial/pruned = 1), FAILURE for failed ones."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
    from torch.utils.tensorboard.summary import scalar

    _write_summary(folder, scalar("trial/pruned", 1.0 if state == "pruned" else 0.0))
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
    _write_summary(folder, summary)


# -- the study ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudySettings:
    folder: Path
    space: SearchSpace
    method: str = "tpe"
    trials: int = 12
    pruner: str = "median"
    storage: str | None = None
    seed: int = 0


def storage_url(settings: StudySettings) -> str:
    return settings.storage or f"sqlite:///{(settings.folder / 'study.db').resolve()}"


def _storage(settings: StudySettings) -> Any:
    import optuna

    url = storage_url(settings)
    engine = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {}
    # Heartbeats let a resumed study fail the trials a killed process left RUNNING.
    return optuna.storages.RDBStorage(
        url, engine_kwargs=engine, heartbeat_interval=5, grace_period=20
    )


def _sampler(settings: StudySettings) -> Any:
    import optuna

    if settings.method == "tpe":
        # Optuna starts TPE with 10 random trials; a budget of a dozen would then be all random.
        startup = min(10, max(3, settings.trials // 3))
        return optuna.samplers.TPESampler(seed=settings.seed, n_startup_trials=startup)
    return optuna.samplers.RandomSampler(seed=settings.seed)


def _pruner(settings: StudySettings) -> Any:
    import optuna

    if settings.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)
    if settings.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    return optuna.pruners.NopPruner()


def open_study(settings: StudySettings, *, resume: bool) -> Any:
    import optuna

    if settings.method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {settings.method!r}")
    if settings.pruner not in PRUNERS:
        raise ValueError(f"pruner must be one of {', '.join(PRUNERS)}, got {settings.pruner!r}")
    if settings.method == "grid":
        grid = settings.space.grid()  # raises for float ranges before anything is written
        settings = StudySettings(**{**settings.__dict__, "trials": len(grid)})
    settings.folder.mkdir(parents=True, exist_ok=True)
    saved_space = settings.folder / "space.yaml"
    if resume:
        if not saved_space.is_file() and settings.storage is None:
            raise FileNotFoundError(f"{settings.folder}: no study to resume here")
    elif settings.storage is None and (settings.folder / "study.db").exists():
        raise ValueError(
            f"{settings.folder} already holds a study: add --resume to continue it, "
            "or choose another folder"
        )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    study = optuna.create_study(
        study_name="descent",
        storage=_storage(settings),
        sampler=_sampler(settings),
        pruner=_pruner(settings),
        direction="maximize",
        load_if_exists=True,
    )
    if not saved_space.exists():
        saved_space.write_text(
            yaml.safe_dump(
                {
                    "space": settings.space.to_dict(),
                    "method": settings.method,
                    "trials": settings.trials,
                    "pruner": settings.pruner,
                },
                sort_keys=False,
            )
        )
        write_experiment(settings.folder, settings.space)
    fresh = not study.get_trials(deepcopy=False)
    if resume:
        # --resume means no process works on this study any more: what a killed process left
        # RUNNING is failed now (and, for a grid, queued again).
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
    if settings.method == "grid" and (fresh or resume):
        _enqueue_grid(study, settings.space)
    return study


def _join(settings: StudySettings) -> Any:
    """A worker's handle on a study that :func:`open_study` already prepared."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna.load_study(
        study_name="descent",
        storage=_storage(settings),
        sampler=_sampler(settings),
        pruner=_pruner(settings),
    )


def _finished_states() -> tuple[Any, ...]:
    import optuna

    return (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def _enqueue_grid(study: Any, space: SearchSpace) -> None:
    """Queue every grid point not finished or already waiting (a failed or killed one again)."""
    import optuna

    def key(params: dict[str, Any]) -> str:
        return repr(sorted(params.items()))

    taken = {
        key(t.params)
        for t in study.get_trials(deepcopy=False)
        if t.state in (*_finished_states(), optuna.trial.TrialState.WAITING)
    }
    for values in space.grid():
        params = {name: encode(v) for name, v in values.items()}
        if key(params) not in taken:
            study.enqueue_trial(params)


def _objective(settings: StudySettings, callbacks: Sequence[Any]) -> Any:
    import optuna

    from descent.train.run import run

    def objective(trial: Any) -> float:
        values = settings.space.suggest(trial)
        folder = settings.folder / f"trial-{trial.number:04d}"
        trial_id = f"trial-{trial.number:04d}"
        config = settings.space.config(values, folder)
        write_session_start(folder, values, trial_id)

        def report(trainer: Any, event: str, info: dict[str, Any]) -> None:
            if event == "epoch" and info["val_accuracy"] is not None:
                trial.report(info["val_accuracy"], info["epoch"])
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after epoch {info['epoch']}")

        state = "failed"
        try:
            outcome = run(config, callbacks=[report, *callbacks])
            state = "complete"
            _write_test_accuracy(folder, outcome.test_accuracy, outcome.result.steps)
            trial.set_user_attr("test_accuracy", outcome.test_accuracy)
            return float(outcome.result.final.val_accuracy)
        except optuna.TrialPruned:
            state = "pruned"
            raise
        finally:
            trial.set_user_attr("config", config.model_dump())
            write_session_end(folder, state)

    return objective


def _write_test_accuracy(folder: Path, accuracy: float, step: int) -> None:
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter
    from torch.utils.tensorboard.summary import scalar

    writer = EventFileWriter(str(folder), filename_suffix=".test")
    writer.add_event(
        event_pb2.Event(summary=scalar("test/accuracy", accuracy), step=step, wall_time=time.time())
    )
    writer.close()


def _work(settings: StudySettings, threads: int, callbacks: Sequence[Any] = ()) -> None:
    """One worker: run trials until the study holds the planned number of finished ones."""
    import optuna
    import torch

    torch.set_num_threads(threads)
    study = _join(settings)
    planned = len(settings.space.grid()) if settings.method == "grid" else settings.trials
    remaining = planned - len(study.get_trials(deepcopy=False, states=_finished_states()))
    if remaining <= 0:
        return
    study.optimize(
        _objective(settings, callbacks),
        n_trials=remaining,
        callbacks=[optuna.study.MaxTrialsCallback(planned, states=_finished_states())],
        catch=(Exception,),
        gc_after_trial=True,
    )


def tune(
    settings: StudySettings,
    *,
    workers: int = 1,
    resume: bool = False,
    callbacks: Sequence[Any] = (),
) -> Any:
    """Run (or continue) a study; returns the Optuna study."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if callbacks and workers > 1:
        raise ValueError("training callbacks run in this process: use them with workers=1")
    study = open_study(settings, resume=resume)
    threads = max(1, (os.cpu_count() or 1) // workers)
    if workers == 1:
        _work(settings, threads, callbacks)
    else:
        context = multiprocessing.get_context("spawn")
        processes = [
            context.Process(target=_work, args=(settings, threads)) for _ in range(workers)
        ]
        for process in processes:
            process.start()
        for process in processes:
            process.join()
        failed = [p.exitcode for p in processes if p.exitcode != 0]
        if failed:
            raise RuntimeError(f"{len(failed)} worker process(es) failed (exit codes {failed})")
    return study


def best_config(study: Any) -> dict[str, Any]:
    """The best trial's RunConfig without its logdir: a file ``descent train --config`` takes."""
    config = dict(study.best_trial.user_attrs["config"])
    config.pop("logdir", None)
    return config


def summary_rows(study: Any) -> list[dict[str, Any]]:
    """Finished trials, best first: number, state, values, validation and test accuracy."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        value = (
            trial.value
            if trial.value is not None
            else (
                trial.intermediate_values[max(trial.intermediate_values)]
                if trial.intermediate_values
                else math.nan
            )
        )
        rows.append(
            {
                "trial": trial.number,
                "state": trial.state.name.lower(),
                "params": trial.params,
                "val_accuracy": value,
                "test_accuracy": trial.user_attrs.get("test_accuracy", math.nan),
            }
        )
    return sorted(
        rows,
        key=lambda r: (
            math.isnan(r["val_accuracy"]),
            -r["val_accuracy"] if not math.isnan(r["val_accuracy"]) else 0,
        ),
    )


__all__ = [
    "DEFAULT_SPACE",
    "Param",
    "SearchSpace",
    "StudySettings",
    "best_config",
    "open_study",
    "summary_rows",
    "tune",
]
