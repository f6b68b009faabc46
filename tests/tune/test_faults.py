"""What a user can do to a study: many workers, kills, resumes, bad storages, missing data, a
changed space, a password in the storage URL (issue 10 rows 2, 3, 13, 14, 17, 21, 27; issue 20)."""

from __future__ import annotations

import ast
import logging
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import optuna
import pytest

from descent.cli.train import free_port
from descent.errors import InputError
from descent.tune import SearchSpace, StudySettings, mask_url, open_study, summary_rows, tune
from descent.tune.sampling import TrialSeededSampler, make_sampler
from descent.tune.storage import BEATING, fail_dead_trials, mark_beating, open_storage
from tests.cli_support import run_cli
from tests.processes import alive, children, run_python

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
LR = {
    "base": {"model": "softmax", "epochs": 1},
    "params": {"lr": {"float": [0.005, 0.05], "log": True}},
}
GRID = {
    "base": {"model": "softmax", "epochs": 1},
    "params": {"lr": {"choices": [0.01, 0.02]}, "batch_size": {"choices": [40, 50]}},
}
# A grace period well above the heartbeat, so a loaded machine does not pass for a dead one.
FAST = {"heartbeat_interval": 1, "grace_period": 5}
SOURCE = Path(__file__).resolve().parents[2] / "src"


def settings(folder: Path, space: dict = LR, **options: object) -> StudySettings:
    return StudySettings(folder, SearchSpace.from_dict(space), pruner="none", **FAST, **options)


def expected_lr(seed: int, numbers: list[int]) -> dict[int, float]:
    """What the per-trial seeded random sampler draws for each trial number, in memory."""
    sampler = make_sampler(settings(Path("."), method="random", trials=1, seed=seed))
    assert isinstance(sampler, TrialSeededSampler)
    study = optuna.create_study(sampler=sampler)
    drawn = {}
    for _ in range(max(numbers) + 1):
        trial = study.ask()
        drawn[trial.number] = trial.suggest_float("lr", 0.005, 0.05, log=True)
        study.tell(trial, 0.0)
    return {n: drawn[n] for n in numbers}


def script_process(script: str, folder: Path, **streams: object) -> subprocess.Popen:
    """``script`` run by this Python on descent's source, with the study folder as argument; the
    output streams as ``streams`` says (default: discarded)."""
    streams = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, **streams}
    env = {**os.environ, "PYTHONPATH": str(SOURCE)}
    return subprocess.Popen([sys.executable, "-c", script, str(folder)], env=env, **streams)


def run_script(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SOURCE)}
    return run_python("-c", script, *args, timeout=timeout, env=env)


def load(folder: Path) -> optuna.Study:
    return optuna.load_study(study_name="descent", storage=f"sqlite:///{folder / 'study.db'}")


# -- row 2: N trials asked, N distinct finished trials, with any number of workers -------------


@pytest.mark.slow
@pytest.mark.parametrize(("method", "space"), [("random", LR), ("grid", GRID)])
def test_two_workers_finish_exactly_the_asked_trials_all_distinct(
    method: str, space: dict, tmp_path: Path
) -> None:
    study = tune(settings(tmp_path, space, method=method, trials=4), workers=2)
    trials = study.get_trials()
    assert [t.state for t in trials].count(optuna.trial.TrialState.COMPLETE) == 4
    assert len(trials) == 4  # no fifth trial, no spare
    assert len({repr(sorted(t.params.items())) for t in trials}) == 4
    if method == "random":  # each trial's draw is its number's, whichever worker ran it
        want = expected_lr(0, [t.number for t in trials])
        assert {t.number: t.params["lr"] for t in trials} == pytest.approx(want)


# -- row 3: a resume continues the sampler from the study; workers die with their parent --------

KILL_IN_SECOND_TRIAL = """
import os, signal, sys
from pathlib import Path
from descent.tune import SearchSpace, StudySettings, tune
space = SearchSpace.from_dict({space!r})
steps = []
def kill(trainer, event, info):
    if event == "step":
        steps.append(1)
        if len(steps) == 30:  # one epoch is 26 steps: this is inside trial 1
            os.kill(os.getpid(), signal.SIGKILL)
tune(StudySettings(Path(sys.argv[1]), space, method="random", trials=3, pruner="none",
                   heartbeat_interval=1, grace_period=5), callbacks=[kill])
"""


@pytest.mark.slow
def test_killed_random_study_resumes_with_new_draws_and_retries_the_killed_one(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "study"
    process = run_script(KILL_IN_SECOND_TRIAL.format(space=LR), str(folder))
    assert process.returncode == -signal.SIGKILL, process.stderr
    before = load(folder).get_trials()
    assert [t.state for t in before[:2]] == [
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.RUNNING,
    ]
    killed = before[1].params["lr"]
    time.sleep(5.5)  # past the grace period: the killed trial's heartbeat has stopped
    study = tune(settings(folder, method="random", trials=3), resume=True)
    finished = study.get_trials(states=FINISHED)
    assert len(finished) == 3
    drawn = [t.params["lr"] for t in finished]
    assert len(set(drawn)) == 3  # the seed's sequence was not replayed
    assert killed in drawn  # the killed trial ran again with its parameters
    failed = study.get_trials(states=(optuna.trial.TrialState.FAIL,))
    assert [t.number for t in failed] == [1]
    # the same parameters as a run never interrupted: trial n draws what number n draws
    assert sorted(drawn) == pytest.approx(sorted(expected_lr(0, [0, 1, 2]).values()))
    assert not study.get_trials(states=(optuna.trial.TrialState.WAITING,))


TWO_WORKERS = """
import sys
from pathlib import Path
from descent.tune import SearchSpace, StudySettings, tune
space = SearchSpace.from_dict({space!r})
tune(StudySettings(Path(sys.argv[1]), space, method="random", trials=4, pruner="none",
                   heartbeat_interval=1, grace_period=5), workers=2)
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_workers_die_with_their_parent_and_a_resume_finishes_the_study(tmp_path: Path) -> None:
    folder = tmp_path / "study"
    space = {**LR, "base": {"model": "softmax", "epochs": 4}}
    parent = script_process(TWO_WORKERS.format(space=space), folder)
    try:
        deadline = time.monotonic() + 240
        while not ((folder / "trial-0000").is_dir() and (folder / "trial-0001").is_dir()):
            assert time.monotonic() < deadline, "the workers did not start trials"
            assert parent.poll() is None
            time.sleep(0.2)
        workers = [pid for pid in children(parent.pid) if alive(pid)]
        assert len(workers) >= 2  # the two workers (and multiprocessing's tracker)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in workers if alive(pid)], "orphaned workers kept running"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    time.sleep(5.5)  # past the grace period
    study = tune(settings(folder, space, method="random", trials=4), resume=True, workers=2)
    finished = study.get_trials(states=FINISHED)
    assert len(finished) == 4
    assert len({t.params["lr"] for t in finished}) == 4
    assert not study.get_trials(states=(optuna.trial.TrialState.WAITING,))


def test_a_trial_has_a_heartbeat_before_its_training_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed before optuna's heartbeat thread wrote anything left a RUNNING trial
    without a heartbeat, which fail_stale_trials never fails: a resume waited for it forever.
    With that thread kept from writing at all (test-only: optuna's private module), the trial
    still has the heartbeat the objective records first, so once it is older than the grace
    period the trial is stale, failed and queued again."""
    from optuna.storages import _heartbeat

    monkeypatch.setattr(_heartbeat.HeartbeatThread, "start", lambda self: None)
    monkeypatch.setattr(_heartbeat.HeartbeatThread, "join", lambda self: None)
    folder = tmp_path / "study"
    study_settings = settings(folder, method="random", trials=1)
    states: list[tuple[int, str]] = []

    def probe(trainer: object, event: str, info: dict) -> None:
        if event != "step" or states:
            return
        time.sleep(FAST["grace_period"] + 1.0)  # the objective's heartbeat is now stale
        storage = open_storage(study_settings)  # with the study's heartbeat settings
        study = optuna.load_study(study_name=study_settings.name, storage=storage)
        optuna.storages.fail_stale_trials(study)
        states.extend((t.number, t.state.name) for t in study.get_trials(deepcopy=False))

    # the trial, failed under its running objective, cannot be told complete: optuna's error
    with pytest.raises(ValueError, match="Cannot tell a FAIL trial"):
        tune(study_settings, callbacks=[probe])
    assert (0, "FAIL") in states  # the running trial was stale: it had a heartbeat
    assert (1, "WAITING") in states  # and was queued again


def test_a_trial_taken_by_a_worker_killed_before_its_objective_is_queued_again(
    tmp_path: Path,
) -> None:
    """A worker killed between taking a slot (WAITING → RUNNING) and its objective's first line
    leaves a RUNNING trial without any heartbeat, which Optuna never takes for stale: a resume
    waited for it forever. Younger than the grace period it is left alone (its worker may be
    about to start it); older, it is failed, its slot queued again, and the resume finishes."""
    folder = tmp_path / "study"
    study, _ = open_study(settings(folder, method="random", trials=2), resume=False)
    storage = open_storage(settings(folder, method="random", trials=2))
    taken = study.ask()  # the killed worker took a slot and never reached the objective
    seen: dict[int, float] = {}
    fail_dead_trials(study, storage, FAST["grace_period"], seen)
    assert study.trials[taken.number].state == optuna.trial.TrialState.RUNNING  # too young
    resumed = tune(settings(folder, method="random", trials=2), resume=True)
    trials = resumed.get_trials()
    assert trials[taken.number].state == optuna.trial.TrialState.FAIL
    assert [t.state for t in trials].count(optuna.trial.TrialState.COMPLETE) == 2
    assert all(BEATING in t.system_attrs for t in trials if t.number != taken.number)


def test_a_retried_trial_whose_worker_dies_before_its_objective_is_queued_again(
    tmp_path: Path,
) -> None:
    """A trial queued again after its worker died carries the dead trial's system attributes,
    its heartbeat mark among them: the mark names the trial it belongs to, so the retry taken by
    a worker that dies before its objective is still seen as never marked."""
    folder = tmp_path / "study"
    study, _ = open_study(settings(folder, method="random", trials=1), resume=False)
    storage = open_storage(settings(folder, method="random", trials=1))
    first = study.ask()
    study_id = storage.get_study_id_from_name(study.study_name)
    mark_beating(storage, storage.get_trial_id_from_study_id_trial_number(study_id, first.number))
    storage.set_trial_state_values(  # its worker died after the mark: failed, queued again
        storage.get_trial_id_from_study_id_trial_number(study_id, first.number),
        optuna.trial.TrialState.FAIL,
    )
    storage.get_heartbeat_stale_trial_callback()(study, study.trials[first.number])
    retry = study.ask()  # taken by a worker that dies before its objective
    assert BEATING in study.trials[retry.number].system_attrs  # inherited from the first
    seen: dict[int, float] = {}
    fail_dead_trials(study, storage, 0.0, seen)  # first seen now
    time.sleep(0.01)
    fail_dead_trials(study, storage, 0.0, seen)
    assert study.trials[retry.number].state == optuna.trial.TrialState.FAIL
    assert study.get_trials(states=(optuna.trial.TrialState.WAITING,))  # and queued again


def test_a_running_trial_with_parameters_is_left_to_its_heartbeat(tmp_path: Path) -> None:
    """A worker of an older descent does not mark its trials: one that has drawn its
    parameters is running an objective, and only its heartbeat decides whether it died."""
    folder = tmp_path / "study"
    study, _ = open_study(settings(folder, method="random", trials=1), resume=False)
    storage = open_storage(settings(folder, method="random", trials=1))
    trial = study.ask()
    trial.suggest_float("lr", 0.005, 0.05, log=True)
    seen: dict[int, float] = {}
    fail_dead_trials(study, storage, 0.0, seen)
    time.sleep(0.01)
    fail_dead_trials(study, storage, 0.0, seen)
    assert study.trials[trial.number].state == optuna.trial.TrialState.RUNNING


LIVE_WORKER = """
import sys, time
from pathlib import Path
from descent.tune import SearchSpace, StudySettings, tune
space = SearchSpace.from_dict({space!r})
def slow(trainer, event, info):
    if event == "step":
        time.sleep(0.25)  # a long trial, running while the test resumes the study
tune(StudySettings(Path(sys.argv[1]), space, method="random", trials=2, pruner="none",
                   heartbeat_interval=1, grace_period=10), callbacks=[slow])
"""


@pytest.mark.slow
def test_resume_leaves_the_trial_a_live_worker_runs_alone(tmp_path: Path) -> None:
    folder = tmp_path / "study"
    worker = script_process(LIVE_WORKER.format(space=LR), folder, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (folder / "trial-0000").is_dir():
            assert time.monotonic() < deadline
            assert worker.poll() is None
            time.sleep(0.2)
        study = tune(
            StudySettings(
                folder,
                method="random",
                trials=3,
                pruner="none",
                heartbeat_interval=1,
                grace_period=10,
            ),
            resume=True,
        )
        _, stderr = worker.communicate(timeout=240)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, stderr
    states = [t.state for t in study.get_trials()]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 3
    assert optuna.trial.TrialState.FAIL not in states  # the live worker's trial was not failed
    assert len({t.params["lr"] for t in study.get_trials()}) == 3


# -- row 13, issue 20: a storage that cannot be used is one line, masked, nothing left -----------


@pytest.mark.parametrize(
    "url",
    [
        "bogus://x",
        "notaurl",
        "postgresql+psycopg2://user:s3cret-pw@127.0.0.1:{port}/db",
        "postgresql://user:s3cret-pw@127.0.0.1:{port}/db",
        "sqlite:///{tmp}/missing/folder/study.db",
    ],
)
def test_an_unusable_storage_is_one_masked_line_and_leaves_nothing(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = url.format(port=free_port(), tmp=tmp_path)
    space = tmp_path / "space.yaml"
    space.write_text("base: {model: softmax, epochs: 1}\nparams:\n  lr: {choices: [0.01]}\n")
    folder = tmp_path / "study"
    code, out, err = run_cli(["tune", str(space), "--storage", url, "--study", str(folder)], capsys)
    assert code == 2
    assert err.startswith("descent: error: storage ")
    assert err.count("\n") == 1
    assert "s3cret-pw" not in out + err
    if "s3cret" in url:
        assert "user:***@127.0.0.1" in err
    assert not folder.exists()
    assert not (tmp_path / "missing").exists()


def test_masking_hides_the_password_everywhere_it_is_shown() -> None:
    url = "postgresql+psycopg2://user:s3cret@db.example:5432/studies"
    assert mask_url(url) == "postgresql+psycopg2://user:***@db.example:5432/studies"
    assert mask_url("postgresql://user@host/db") == "postgresql://user@host/db"
    assert mask_url(f"could not connect to {url}") == f"could not connect to {mask_url(url)}"
    shown = repr(StudySettings(Path("x"), storage=url))
    assert "s3cret" not in shown
    assert "user:***@db.example" in shown


# -- rows 14, 21, 27: checked before anything runs or is written --------------------------------


def test_missing_data_or_unknown_model_is_refused_before_any_trial(tmp_path: Path) -> None:
    missing = {**LR, "base": {"model": "softmax", "data": f"mnist:{tmp_path / 'nowhere'}"}}
    with pytest.raises(InputError, match=r"data 'mnist:.*nowhere'.*does not exist"):
        tune(settings(tmp_path / "study", missing, method="random", trials=2))
    assert not (tmp_path / "study").exists()
    with pytest.raises(InputError, match="base: model"):
        SearchSpace.from_dict({**LR, "base": {"model": "resnet"}})
    with pytest.raises(InputError, match="unknown optimizer 'lbfgs'"):
        SearchSpace.from_dict({**LR, "base": {"optimizer": "lbfgs"}})


def test_resuming_with_another_space_or_method_is_refused_showing_the_difference(
    tmp_path: Path,
) -> None:
    study, _ = open_study(settings(tmp_path, method="random", trials=2), resume=False)
    before = len(study.get_trials())
    other = {**LR, "params": {"lr": {"float": [0.005, 0.5], "log": True}}}
    with pytest.raises(
        InputError,
        match=r"space\.params\.lr\.float: \[0.005, 0.05\] there, "
        r"\[0.005, 0.5\] here",
    ):
        open_study(settings(tmp_path, other), resume=True)
    with pytest.raises(InputError, match='method: "random" there, "tpe" here'):
        open_study(settings(tmp_path, method="tpe"), resume=True)
    assert len(load(tmp_path).get_trials()) == before
    _, completed = open_study(StudySettings(tmp_path, **FAST), resume=True)
    assert completed.method == "random"
    assert completed.space is not None
    assert completed.space.to_dict() == SearchSpace.from_dict(LR).to_dict()


def test_resume_of_a_missing_study_leaves_no_folder(tmp_path: Path) -> None:
    folder = tmp_path / "never"
    with pytest.raises(InputError, match="no study to resume"):
        tune(StudySettings(folder), resume=True)
    assert not folder.exists()


def test_a_grid_reopened_queues_no_point_twice(tmp_path: Path) -> None:
    study, _ = open_study(settings(tmp_path, GRID, method="grid"), resume=False)
    for _ in range(2):
        study, _ = open_study(settings(tmp_path, GRID, method="grid"), resume=True)
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert len(waiting) == 4
    assert len({repr(sorted(t.user_attrs["descent_slot"].items())) for t in waiting}) == 4
    assert [row["state"] for row in summary_rows(study)].count("waiting") == 4


# -- issue 11: library code changes no process-wide setting and uses no private Optuna API ------


def test_tune_leaves_warning_filters_and_log_levels_as_it_found_them(tmp_path: Path) -> None:
    # A first study imports what trials use (torch, tensorboard … set filters on import).
    tune(settings(tmp_path / "warm-up", method="random", trials=1))
    optuna.logging.set_verbosity(optuna.logging.INFO)
    filters = list(warnings.filters)
    levels = {name: logging.getLogger(name).level for name in ("optuna", "sqlalchemy", "")}
    tune(settings(tmp_path / "study", method="random", trials=1))
    assert optuna.logging.get_verbosity() == optuna.logging.INFO
    assert warnings.filters == filters
    assert {name: logging.getLogger(name).level for name in levels} == levels


def test_no_private_optuna_attribute_is_used() -> None:
    private = {"_storage", "_trial_id", "_study_id", "_backend", "_cached_frozen_trial"}
    for path in (SOURCE / "descent" / "tune").glob("*.py"):
        tree = ast.parse(path.read_text())
        used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)} & private
        assert not used, f"{path.name} uses {used}"


@pytest.mark.parametrize("where", ["file", "under_file"])
def test_a_study_folder_that_cannot_be_one_is_one_line(where: str, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    folder = blocker if where == "file" else blocker / "study"
    with pytest.raises(InputError, match=f"--study {folder}: "):
        tune(settings(folder, method="random", trials=1))
    assert blocker.read_text() == "not a folder"


def test_an_oversized_grid_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    wide = {"base": {"model": "softmax"}, "params": {"batch_size": {"int": [1, 10**8]}}}
    with pytest.raises(InputError, match="the grid has 100000000 points"):
        tune(settings(tmp_path / "new", wide, method="grid"))
    assert not (tmp_path / "new").exists()
    (tmp_path / "mine").mkdir()
    with pytest.raises(InputError, match="the grid has 100000000 points"):
        tune(settings(tmp_path / "mine", wide, method="grid"))
    assert list((tmp_path / "mine").iterdir()) == []
