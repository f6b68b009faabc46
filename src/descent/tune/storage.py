"""Where a study lives: the storage (Optuna's RDB storage with heartbeats, on SQLite or a
database server) and its URL, which may hold a password and is shown, logged and written only
through :func:`mask_url` (``postgresql://user:***@host/db``).

A trial whose process dies stops sending heartbeats; once its ``grace_period`` has passed, any
worker marks it failed and queues a slot with its parameters again (:func:`_on_stale`,
:func:`fail_dead_trials`).
"""

from __future__ import annotations

import contextlib
import re
import time
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import optuna

from descent.errors import InputError
from descent.tune.hparams import write_session_end

if TYPE_CHECKING:
    from descent.tune.study import StudySettings

_PASSWORD = re.compile(r"(?P<head>[A-Za-z][\w+.-]*://[^:/@\s]*:)(?P<password>[^@\s]*)(?P<at>@)")


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***``: ``postgresql://user:***@host/db``."""
    return _PASSWORD.sub(r"\g<head>***\g<at>", url)


def _password(url: str) -> str | None:
    found = _PASSWORD.search(url)
    return found.group("password") if found and found.group("password") else None


def scrub(text: str, url: str) -> str:
    """``text`` (an error message) with the URL's password masked wherever it appears."""
    text = mask_url(text)
    secret = _password(url)
    return text.replace(secret, "***") if secret else text


def storage_url(settings: StudySettings) -> str:
    """The settings' storage URL, or the SQLite file ``study.db`` in the study folder."""
    return settings.storage or f"sqlite:///{(settings.folder / 'study.db').resolve()}"


@contextlib.contextmanager
def quiet_experimental() -> Iterator[None]:
    """Optuna marks the heartbeat and its retry callback experimental; that warning is for
    Optuna's users, not descent's. Local: the filters are restored on leaving."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


#: The system attribute a trial's objective sets right after it records its first heartbeat: the
#: trial's own id (a retried trial inherits its predecessor's system attributes, and with them an
#: older mark, which then does not match).
BEATING = "descent:beating"


def mark_beating(storage: Any, trial_id: int) -> None:
    """A trial's first heartbeat, and the mark that says it has one (see
    :func:`fail_dead_trials`): the objective's first act."""
    storage.record_heartbeat(trial_id)
    storage.set_trial_system_attr(trial_id, BEATING, trial_id)


def fail_dead_trials(
    study: Any, storage: Any, grace_period: float, unmarked_since: dict[int, float]
) -> None:
    """Fail, and queue again through the storage's callback, the trials whose worker died.

    Optuna's ``fail_stale_trials`` finds those whose heartbeat stopped. A trial taken by a
    worker killed before its objective's first line has no heartbeat at all, which Optuna never
    takes for stale, so every later worker and resume would wait for it forever. A RUNNING
    trial without its :data:`BEATING` mark, parameters or reported values, seen so by this
    process for more than ``grace_period`` seconds (``unmarked_since``: trial id → when this
    process first saw it so, by its monotonic clock; the caller keeps it between calls), is
    failed here the same way: taking a trial and reaching the objective take milliseconds. The
    age is this process's own observation, not the trial's start time, which the machine that
    took it wrote in its local time. A trial with parameters or reported values is left to the
    heartbeat (a worker of an older descent, which does not mark, runs it)."""
    with quiet_experimental():
        optuna.storages.fail_stale_trials(study)
    study_id = storage.get_study_id_from_name(study.study_name)
    now = time.monotonic()
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    unmarked = set()
    for trial in running:
        if trial.params or trial.intermediate_values:
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        if trial.system_attrs.get(BEATING) == trial_id:
            continue
        unmarked.add(trial_id)
        if now - unmarked_since.setdefault(trial_id, now) <= grace_period:
            continue
        try:
            failed = storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker failed it first
        callback = _stale_callback(storage)
        if failed and callback is not None:
            callback(study, storage.get_trial(trial_id))
    for trial_id in set(unmarked_since) - unmarked:
        del unmarked_since[trial_id]  # marked, finished or failed since


def _stale_callback(storage: Any) -> Callable[[Any, Any], None] | None:
    """The storage's callback for a dead trial (Optuna 4.9 renamed its getter)."""
    getter = getattr(storage, "get_heartbeat_stale_trial_callback", None)
    return getter() if getter is not None else storage.get_failed_trial_callback()


def _on_stale(settings: StudySettings) -> Callable[[Any, Any], None]:
    """What happens to a trial whose process died: its run folder (if here) gets a FAILURE
    session end, and a slot with its parameters is queued again."""
    retry_class = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    with quiet_experimental():
        retry = (retry_class or optuna.storages.RetryFailedTrialCallback)(max_retry=3)

    def on_stale(study: Any, trial: Any) -> None:
        folder = settings.folder / f"trial-{trial.number:04d}"
        if folder.is_dir():
            write_session_end(folder, "failed")
        with quiet_experimental():
            retry(study, trial)

    return on_stale


def open_storage(settings: StudySettings) -> Any:
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
        with quiet_experimental():
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
            f"storage {mask_url(url)}: cannot open it ({scrub(reason, url)}); give an "
            "SQLAlchemy URL such as sqlite:///PATH or postgresql://USER@HOST/DB"
        ) from None
