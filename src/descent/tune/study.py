"""The Optuna study: its settings, its record and its trial slots.

A study is a fixed number of *slots*, queued in the storage when the study is made: one per grid
point (``grid``), or ``trials`` empty ones that the sampler fills (``random``, ``tpe``). A worker
takes the lowest waiting slot (the storage moves it from WAITING to RUNNING atomically), so N
slots are N distinct trials whatever the number of workers, on one machine or many. A trial whose
process dies stops sending heartbeats; once its ``grace_period`` has passed, any worker marks it
failed and queues a slot with its parameters again (Optuna's stale-trial mechanism), so a live
worker's trial is never failed by a resume.

The storage and its URL (masked wherever it is shown) are :mod:`descent.tune.storage`; the
samplers, seeded per trial, and the pruners are :mod:`descent.tune.sampling`; the processes that
run the trials are :mod:`descent.tune.workers`.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from descent import validate, yamlfile
from descent.errors import InputError
from descent.tune.hparams import write_experiment
from descent.tune.sampling import METHODS, PRUNERS, make_pruner, make_sampler
from descent.tune.space import DEFAULT_SPACE, SearchSpace, difference
from descent.tune.storage import (
    fail_dead_trials,
    mask_url,
    open_storage,
    storage_url,
)

#: Defaults of the settings a resumed study takes from its record when they are not given.
DEFAULTS: dict[str, Any] = {"method": "tpe", "trials": 12, "pruner": "median", "seed": 0}
RECORD = "descent"  # the study's user attribute holding its record
SLOT = "descent_slot"  # marks a queued slot; holds the parameters queued with it
SPARE = "descent_spare"  # marks a trial created when no slot was left (see _objective)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


# -- settings and record ------------------------------------------------------------------------


@dataclass(frozen=True)
class StudySettings:
    """Where a study lives and how it searches.

    ``space``, ``method``, ``trials``, ``pruner`` and ``seed`` left at None take the study's own
    record when resuming, and :data:`DEFAULTS` (and :data:`DEFAULT_SPACE`) for a new study.
    ``storage`` is an SQLAlchemy URL shared by machines (default: ``study.db`` in ``folder``);
    ``name`` tells studies in one storage apart. A worker whose heartbeat (every
    ``heartbeat_interval`` s) is older than ``grace_period`` s is taken for dead: keep the grace
    period longer than every worker's heartbeat interval.

    Example::

        settings = StudySettings(Path("runs/tune"), SearchSpace.from_dict(DEFAULT_SPACE),
                                 method="tpe", trials=12)
        study = tune(settings, workers=2)
    """

    folder: Path
    space: SearchSpace | None = None
    method: str | None = None
    trials: int | None = None
    pruner: str | None = None
    storage: str | None = field(default=None, repr=False)
    seed: int | None = None
    name: str = "descent"
    heartbeat_interval: int = 5
    grace_period: int = 20

    def __repr__(self) -> str:  # the storage URL is shown masked
        storage = None if self.storage is None else mask_url(self.storage)
        return (
            f"StudySettings(folder={str(self.folder)!r}, method={self.method!r}, "
            f"trials={self.trials!r}, pruner={self.pruner!r}, storage={storage!r}, "
            f"seed={self.seed!r}, name={self.name!r})"
        )

    def record(self) -> dict[str, Any]:
        """What the study keeps about itself (no storage URL)."""
        assert self.space is not None
        return {
            "space": self.space.to_dict(),
            "method": self.method,
            "pruner": self.pruner,
            "seed": self.seed,
            "trials": self.trials,
        }


def _check(settings: StudySettings) -> None:
    if settings.method is not None:
        validate.choice(settings.method, "method", METHODS)
    if settings.pruner is not None:
        validate.choice(settings.pruner, "pruner", PRUNERS)
    if settings.trials is not None:
        validate.positive_int(settings.trials, "trials")
    if settings.seed is not None and (
        isinstance(settings.seed, bool) or not isinstance(settings.seed, int)
    ):
        raise InputError(f"seed must be an integer, got {settings.seed!r}")
    validate.positive_int(settings.heartbeat_interval, "heartbeat_interval")
    validate.positive_int(settings.grace_period, "grace_period")
    if not settings.name or not isinstance(settings.name, str):
        raise InputError(f"study name must be a non-empty string, got {settings.name!r}")


def _complete(settings: StudySettings, saved: dict[str, Any] | None) -> StudySettings:
    """Every None setting filled in: from the study's record (resume) or the defaults. A
    resumed study refuses another space, method, pruner or seed, naming the difference."""
    if saved is None:
        filled = {key: getattr(settings, key) for key in DEFAULTS}
        filled = {key: DEFAULTS[key] if v is None else v for key, v in filled.items()}
        space = settings.space or SearchSpace.from_dict(DEFAULT_SPACE)
        return replace(settings, space=space, **filled)
    given = {
        "space": None if settings.space is None else settings.space.to_dict(),
        "method": settings.method,
        "pruner": settings.pruner,
        "seed": settings.seed,
    }
    changed = {key: value for key, value in given.items() if value is not None}
    differences = difference({key: saved[key] for key in changed}, changed)
    if differences:
        raise InputError(
            f"{settings.folder}: the study was made with other settings ("
            + "; ".join(differences)
            + "); resume it without them (or with the same ones), or start a new study folder"
        )
    return replace(
        settings,
        space=SearchSpace.from_dict(saved["space"]),
        method=saved["method"],
        pruner=saved["pruner"],
        seed=saved["seed"],
        trials=settings.trials if settings.trials is not None else saved["trials"],
    )


def _check_data(space: SearchSpace) -> None:
    """Every data set the trials read is there and readable, before any trial runs."""
    from descent.data.images import load

    for source in space.data_sources():
        try:
            load(source)
        except (OSError, ValueError) as error:
            message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            raise InputError(f"search space: data {source!r}: {message}") from None


def load_study(settings: StudySettings, storage: Any) -> Any:
    """The existing study in ``storage``, with the sampler and pruner its settings name."""
    return optuna.load_study(
        study_name=settings.name,
        storage=storage,
        sampler=make_sampler(settings),
        pruner=make_pruner(settings),
    )


# -- opening a study ----------------------------------------------------------------------------


def _saved_record(storage: Any, settings: StudySettings) -> dict[str, Any] | None:
    """The record of the study named in ``settings``, or None when the storage has no such
    study; a study without a record (not made by descent) is refused."""
    if settings.name not in optuna.study.get_all_study_names(storage):
        return None
    study = optuna.load_study(study_name=settings.name, storage=storage)
    record = study.user_attrs.get(RECORD)
    if record is None:
        raise InputError(
            f"storage {mask_url(storage_url(settings))}: the study {settings.name!r} was not made "
            "by this version of descent tune; start a new study (another folder or --name)"
        )
    return record


def open_study(settings: StudySettings, *, resume: bool) -> tuple[Any, StudySettings]:
    """Make (or, with ``resume``, reopen) the study, checked before anything is written:
    settings, space, data, the storage URL. Returns the study and the settings completed from
    its record. On failure nothing is left behind."""
    _check(settings)
    folder = settings.folder
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--study {folder}: this is a file, not a study folder")
    default_db = folder / "study.db"
    if resume and settings.storage is None and not default_db.is_file():
        raise InputError(f"{folder}: no study to resume here (no study.db)")
    if not resume and settings.storage is None and default_db.exists():
        raise InputError(
            f"{folder} already holds a study: add --resume to continue it, or choose another folder"
        )
    if not resume:  # a new study's settings are complete, and checked, before any connection
        settings = _checked(_complete(settings, None))
    elif settings.space is not None:
        _check_data(settings.space)
    created = not folder.exists()
    db_created = settings.storage is None and not default_db.exists()
    try:
        if settings.storage is None:
            _make_folder(folder)
        storage = open_storage(settings)
        saved = _saved_record(storage, settings)
        if resume and saved is None:
            raise InputError(
                f"storage {mask_url(storage_url(settings))}: no study named {settings.name!r} "
                "to resume"
            )
        if not resume and saved is not None:
            raise InputError(
                f"storage {mask_url(storage_url(settings))} already holds a study named "
                f"{settings.name!r}: add --resume to continue (or join) it, or give another --name"
            )
        if resume:
            given_space = settings.space is not None
            settings = _complete(settings, saved)
            settings = _checked(settings, data=not given_space)
        _make_folder(folder)
        study = optuna.create_study(
            study_name=settings.name,
            storage=storage,
            sampler=make_sampler(settings),
            pruner=make_pruner(settings),
            direction="maximize",
            load_if_exists=True,
        )
        study.set_user_attr(RECORD, settings.record())
    except BaseException:
        # Leave nothing behind: what did not exist before is ours to remove.
        if created and folder.exists():
            shutil.rmtree(folder)
        elif db_created and default_db.exists():
            default_db.unlink()
        raise
    assert settings.space is not None
    first = not (folder / "space.yaml").exists()
    record = {**settings.record(), "name": settings.name}
    if settings.storage is not None:
        record["storage"] = mask_url(settings.storage)
    (folder / "space.yaml").write_text(yamlfile.dumps(record), encoding="utf-8")
    if first:
        write_experiment(folder, settings.space)
    if resume:  # the heartbeats that stopped (a trial without any: the workers' watch)
        fail_dead_trials(study, storage, settings.grace_period, {})
    _queue_slots(study, settings)
    return study, settings


def _checked(settings: StudySettings, data: bool = True) -> StudySettings:
    """A grid's size (refused when a float range or too large) becomes its number of trials;
    the data the trials read must be there."""
    assert settings.space is not None
    if settings.method == "grid":
        settings = replace(settings, trials=len(settings.space.grid()))
    if data:
        _check_data(settings.space)
    return settings


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".descent-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise InputError(
            f"--study {folder}: cannot write the study folder there ({error.strerror})"
        ) from None


def _key(params: dict[str, Any]) -> str:
    return repr(sorted(params.items()))


def _queue_slots(study: Any, settings: StudySettings) -> None:
    """Queue the slots the study still needs: every grid point not finished, running or
    waiting (a failed one again); or, for random and TPE, enough empty slots that finished,
    running and waiting trials make ``trials``."""
    assert settings.space is not None
    assert settings.trials is not None
    trials = [t for t in study.get_trials(deepcopy=False) if SPARE not in t.user_attrs]
    taken = [t for t in trials if t.state in (*FINISHED, TrialState.RUNNING, TrialState.WAITING)]
    if settings.method == "grid":
        from descent.tune.space import encode

        # A slot's queued parameters: a trial just taken has not drawn its own yet.
        keys = {_key(t.user_attrs.get(SLOT) or t.params) for t in taken}
        for values in settings.space.grid():
            params = {name: encode(v) for name, v in values.items()}
            if _key(params) not in keys:
                study.enqueue_trial(params, user_attrs={SLOT: params})
        return
    for _ in range(settings.trials - len(taken)):
        study.enqueue_trial({}, user_attrs={SLOT: {}})


# -- results ------------------------------------------------------------------------------------


def best_config(study: Any) -> dict[str, Any]:
    """The best trial's RunConfig without its logdir: a file ``descent train --config`` takes."""
    config = dict(study.best_trial.user_attrs["config"])
    config.pop("logdir", None)
    return config


def summary_rows(study: Any) -> list[dict[str, Any]]:
    """The study's trials, best first: number, state, values, validation and test accuracy."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        if SPARE in trial.user_attrs:
            continue
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
