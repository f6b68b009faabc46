"""The Optuna study: its storage, its record, its trial slots, and the worker processes.

A study is a fixed number of *slots*, queued in the storage when the study is made: one per grid
point (``grid``), or ``trials`` empty ones that the sampler fills (``random``, ``tpe``). A worker
takes the lowest waiting slot (the storage moves it from WAITING to RUNNING atomically), so N
slots are N distinct trials whatever the number of workers, on one machine or many. A trial whose
process dies stops sending heartbeats; once its ``grace_period`` has passed, any worker marks it
failed and queues a slot with its parameters again (Optuna's stale-trial mechanism), so a live
worker's trial is never failed by a resume.

Sampling is seeded per trial, from (study seed, trial number): a trial's draw does not depend on
how many workers run, and a resumed study continues from what the storage holds instead of
restarting the seed's sequence. TPE reads the finished trials from the storage and, with several
workers, counts the running ones as bad ("constant liar") so that workers spread out.

The storage URL may hold a password: it is shown, logged and written only through
:func:`mask_url` (``postgresql://user:***@host/db``).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from descent import validate, yamlfile
from descent.errors import InputError
from descent.tune.hparams import (
    write_experiment,
    write_session_end,
)
from descent.tune.space import DEFAULT_SPACE, SearchSpace, difference

METHODS = ("grid", "random", "tpe")
PRUNERS = ("none", "median", "hyperband")
#: Defaults of the settings a resumed study takes from its record when they are not given.
DEFAULTS: dict[str, Any] = {"method": "tpe", "trials": 12, "pruner": "median", "seed": 0}
RECORD = "descent"  # the study's user attribute holding its record
SLOT = "descent_slot"  # marks a queued slot; holds the parameters queued with it
SPARE = "descent_spare"  # marks a trial created when no slot was left (see _objective)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


# -- the storage URL, secrets masked ------------------------------------------------------------

_PASSWORD = re.compile(r"(?P<head>[A-Za-z][\w+.-]*://[^:/@\s]*:)(?P<password>[^@\s]*)(?P<at>@)")


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***``: ``postgresql://user:***@host/db``."""
    return _PASSWORD.sub(r"\g<head>***\g<at>", url)


def _password(url: str) -> str | None:
    found = _PASSWORD.search(url)
    return found.group("password") if found and found.group("password") else None


def _scrub(text: str, url: str) -> str:
    """``text`` (an error message) with the URL's password masked wherever it appears."""
    text = mask_url(text)
    secret = _password(url)
    return text.replace(secret, "***") if secret else text


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


def storage_url(settings: StudySettings) -> str:
    return settings.storage or f"sqlite:///{(settings.folder / 'study.db').resolve()}"


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


# -- storage, sampler, pruner -------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_experimental() -> Iterator[None]:
    """Optuna marks the heartbeat and its retry callback experimental; that warning is for
    Optuna's users, not descent's. Local: the filters are restored on leaving."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def _on_stale(settings: StudySettings) -> Callable[[Any, Any], None]:
    """What happens to a trial whose process died: its run folder (if here) gets a FAILURE
    session end, and a slot with its parameters is queued again."""
    retry_class = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    with _quiet_experimental():
        retry = (retry_class or optuna.storages.RetryFailedTrialCallback)(max_retry=3)

    def on_stale(study: Any, trial: Any) -> None:
        folder = settings.folder / f"trial-{trial.number:04d}"
        if folder.is_dir():
            write_session_end(folder, "failed")
        with _quiet_experimental():
            retry(study, trial)

    return on_stale


def _storage(settings: StudySettings) -> Any:
    """The RDB storage with heartbeats; an unusable URL is one line naming it (masked)."""
    from sqlalchemy.engine import make_url

    url = storage_url(settings)
    callback_kwarg = (
        "heartbeat_stale_trial_callback"
        if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback")
        else "failed_trial_callback"
    )
    try:
        parsed = make_url(url)
        engine: dict[str, Any] = {}
        if parsed.get_backend_name() == "sqlite":
            engine = {"connect_args": {"timeout": 120}}
        elif parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() == "psycopg2":
            engine = {"connect_args": {"connect_timeout": 10}}  # refuse, do not hang
        with _quiet_experimental():
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine,
                heartbeat_interval=settings.heartbeat_interval,
                grace_period=settings.grace_period,
                **{callback_kwarg: _on_stale(settings)},
            )
    except Exception as error:  # sqlalchemy, the driver and Optuna each raise their own
        reason = " ".join(str(error).split("\n")[0].split()) or type(error).__name__
        raise InputError(
            f"storage {mask_url(url)}: cannot open it ({_scrub(reason, url)}); give an "
            "SQLAlchemy URL such as sqlite:///PATH or postgresql://USER@HOST/DB"
        ) from None


def _seed_for(seed: int, number: int) -> int:
    import numpy as np

    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """A sampler made afresh for each trial, seeded from (study seed, trial number).

    Every worker then draws differently (their trials have different numbers), a trial's draw
    does not depend on the number of workers, and a resumed study goes on from the storage's
    trials rather than replaying its seed's sequence. TPE reads its history from the storage, so
    building it per trial loses nothing.
    """

    def __init__(self, make: Callable[[int], Any], seed: int) -> None:
        self._make = make
        self._seed = seed
        self._number: int | None = None
        self._sampler: Any = None

    def _for(self, trial: Any) -> Any:
        if self._number != trial.number:
            self._sampler = self._make(_seed_for(self._seed, trial.number))
            self._number = trial.number
        return self._sampler

    def reseed_rng(self) -> None:
        """Nothing to do: each trial's generator comes from its number."""

    def before_trial(self, study: Any, trial: Any) -> None:
        self._for(trial).before_trial(study, trial)

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: Any, trial: Any, search_space: dict[str, Any]) -> Any:
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: Any, trial: Any, param_name: str, param_distribution: Any
    ) -> Any:
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        self._for(trial).after_trial(study, trial, state, values)


def _sampler(settings: StudySettings) -> Any:
    assert settings.seed is not None
    assert settings.trials is not None
    if settings.method == "tpe":
        # Optuna starts TPE with 10 random trials; a budget of a dozen would then be all random.
        startup = min(10, max(3, settings.trials // 3))

        def make(seed: int) -> Any:
            return optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=startup, constant_liar=True
            )

    else:  # random; a grid's slots carry their parameters and never reach the sampler

        def make(seed: int) -> Any:
            return optuna.samplers.RandomSampler(seed=seed)

    return TrialSeededSampler(make, settings.seed)


def _pruner(settings: StudySettings) -> Any:
    if settings.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)
    if settings.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    return optuna.pruners.NopPruner()


def _load(settings: StudySettings, storage: Any) -> Any:
    return optuna.load_study(
        study_name=settings.name,
        storage=storage,
        sampler=_sampler(settings),
        pruner=_pruner(settings),
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
        storage = _storage(settings)
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
            sampler=_sampler(settings),
            pruner=_pruner(settings),
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
    if resume:
        with _quiet_experimental():
            optuna.storages.fail_stale_trials(study)  # only trials whose heartbeat stopped
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
