"""The workers of a study: processes that take waiting slots and train them.

A worker loops: take the lowest waiting slot (under a lock shared by the workers of this
machine, so that none asks for a slot after the last one is gone), train it, report each epoch's
validation accuracy to the pruner, and write the trial's HParams session. With no slot waiting it
waits while trials still run elsewhere: one may die and be queued again. A worker process ends
the moment its parent ends (:func:`_die_with_parent`), so ``kill -9`` of the command leaves no
orphan training on.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from descent import validate
from descent.errors import DescentError, InputError
from descent.tune.hparams import write_session_end, write_session_start, write_test_accuracy
from descent.tune.storage import (
    fail_dead_trials,
    mark_beating,
    open_storage,
    scrub,
    storage_url,
)
from descent.tune.study import SLOT, SPARE, StudySettings, load_study, open_study


class _ClaimLock:
    """Serializes "is a slot waiting? take it" among the workers of one machine (an flock on
    the study folder), so none of them asks when the last slot is gone. Workers on other
    machines can still race; the loser's trial is marked spare (see :func:`_objective`)."""

    def __init__(self, folder: Path) -> None:
        self._fd: int | None = None
        self._folder = folder

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no local lock, spares can occur
            return
        self._fd = os.open(self._folder, os.O_RDONLY)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


class _NoSlotLeftError(Exception):
    """The storage created a trial because no slot was waiting any more."""


def _objective(
    settings: StudySettings, callbacks: Sequence[Any], claim: _ClaimLock, study: Any, storage: Any
) -> Callable[[Any], float]:
    from descent.train.run import run

    assert settings.space is not None
    space = settings.space
    study_id = storage.get_study_id_from_name(study.study_name)

    def objective(trial: Any) -> float:
        # A heartbeat before anything else. Optuna's heartbeat thread records its first one when
        # it gets to run (behind other writers to the database), and a RUNNING trial without
        # any is never stale to fail_stale_trials; the mark lets fail_dead_trials tell a trial
        # whose worker died even before this line.
        storage_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        mark_beating(storage, storage_id)
        claim.release()  # the slot is ours now
        if SLOT not in trial.user_attrs:
            trial.set_user_attr(SPARE, True)
            raise _NoSlotLeftError(
                f"trial {trial.number}: no slot was left (another machine took the last one)"
            )
        values = space.suggest(trial)
        trial_id = f"trial-{trial.number:04d}"
        folder = settings.folder / trial_id
        config = space.config(values, folder)
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
            write_test_accuracy(folder, outcome.test_accuracy, outcome.result.steps)
            trial.set_user_attr("test_accuracy", outcome.test_accuracy)
            return float(outcome.result.final.val_accuracy)
        except optuna.TrialPruned:
            state = "pruned"
            raise
        finally:
            trial.set_user_attr("config", config.model_dump())
            write_session_end(folder, state)

    return objective


def _work(settings: StudySettings, threads: int, callbacks: Sequence[Any] = ()) -> None:
    """One worker: take waiting slots until none is left and no trial runs any more (a
    running one may yet die and be queued again)."""
    import torch

    torch.set_num_threads(threads)
    storage = open_storage(settings)
    study = load_study(settings, storage)
    claim = _ClaimLock(settings.folder)
    objective = _objective(settings, callbacks, claim, study, storage)
    unmarked_since: dict[int, float] = {}
    while True:
        claim.acquire()
        try:
            if study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
                study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=True)
                continue
        finally:
            claim.release()
        if not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            return
        time.sleep(1.0)
        fail_dead_trials(study, storage, settings.grace_period, unmarked_since)


def _die_with_parent() -> None:
    """End this worker the moment its parent process ends (killed or crashed): its running
    trial stops sending heartbeats and is queued again by the next worker or resume."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="descent-parent-watch").start()


def _worker_main(settings: StudySettings, threads: int, verbosity: int) -> None:
    """A worker process: dies with its parent, logs as its parent does, and reports a failure
    as one line (the storage URL masked)."""
    _die_with_parent()
    optuna.logging.set_verbosity(verbosity)  # this process is ours: mirror the parent's choice
    try:
        _work(settings, threads)
    except Exception as error:
        url = storage_url(settings)
        print(f"descent tune worker: {scrub(str(error), url)}", file=sys.stderr)
        sys.exit(1)


def tune(
    settings: StudySettings,
    *,
    workers: int = 1,
    resume: bool = False,
    callbacks: Sequence[Any] = (),
) -> Any:
    """Run (or continue) a study until every slot is finished; returns the Optuna study.

    With ``workers`` > 1 the trials run in that many processes on this machine (each with its
    share of the CPU threads); they end when this process ends. More machines join a study in
    a shared ``storage`` with ``resume=True``."""
    validate.positive_int(workers, "workers")
    if callbacks and workers > 1:
        raise InputError("training callbacks run in this process: use them with workers=1")
    study, settings = open_study(settings, resume=resume)
    threads = max(1, (os.cpu_count() or 1) // workers)
    if workers == 1:
        _work(settings, threads, callbacks)
        return study
    context = multiprocessing.get_context("spawn")
    verbosity = optuna.logging.get_verbosity()
    processes = [
        context.Process(target=_worker_main, args=(settings, threads, verbosity), daemon=True)
        for _ in range(workers)
    ]
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.join()
    finally:
        for process in processes:  # interrupted: the workers end with us
            if process.is_alive():
                process.terminate()
                process.join()
    failed = [p.exitcode for p in processes if p.exitcode != 0]
    if failed:
        raise DescentError(
            f"{len(failed)} of {workers} worker processes failed (exit codes {failed}); "
            "their trials are queued again by --resume"
        )
    return study
