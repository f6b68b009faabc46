"""Hyperparameter search: HParams in a live TensorBoard, resume, two workers, bad spaces."""

from __future__ import annotations

import json
import signal
import urllib.request
from pathlib import Path

import optuna
import pytest

from descent.cli.train import start_tensorboard
from descent.tune import SearchSpace, StudySettings, tune
from tests.processes import run_python

CONDITIONAL = {
    "base": {"model": "softmax", "epochs": 2},
    "params": {
        "optimizer": {"choices": ["momentum", "adam"]},
        "lr": {"choices": [0.01, 0.1]},
        "optimizer_params.momentum": {"choices": [0.5, 0.9], "when": {"optimizer": ["momentum"]}},
    },
}
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def post(address: str, route: str, body: dict) -> dict:
    request = urllib.request.Request(
        address + route,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


@pytest.mark.slow
def test_hparams_dashboard_lists_every_trial_with_its_own_keys(tmp_path: Path) -> None:
    space = SearchSpace.from_dict(CONDITIONAL)
    study = tune(StudySettings(tmp_path, space, method="grid", pruner="none"))
    trials = study.get_trials(states=FINISHED)
    assert len(trials) == 6  # adam × 2 lr, momentum × 2 lr × 2 momentum
    process, address = start_tensorboard(tmp_path)
    try:
        experiment = post(address, "data/plugin/hparams/experiment", {"experimentName": ""})
        names = {info["name"] for info in experiment["hparamInfos"]}
        assert names == {"optimizer", "lr", "optimizer_params.momentum"}
        metrics = {m["name"]["tag"] for m in experiment["metricInfos"]}
        assert {"val/accuracy", "test/accuracy", "trial/pruned"} <= metrics
        groups = post(
            address,
            "data/plugin/hparams/session_groups",
            {
                "experimentName": "",
                "allowedStatuses": [
                    "STATUS_SUCCESS",
                    "STATUS_FAILURE",
                    "STATUS_RUNNING",
                    "STATUS_UNKNOWN",
                ],
                "colParams": [],
                "startIndex": 0,
                "sliceSize": 100,
            },
        )["sessionGroups"]
    finally:
        process.kill()
        process.wait()
    assert len(groups) == 6
    by_run = {g["sessions"][0]["name"]: g for g in groups}
    for trial in trials:
        group = by_run[f"trial-{trial.number:04d}"]
        shown = group["hparams"]
        assert shown["optimizer"] == trial.params["optimizer"]
        assert ("optimizer_params.momentum" in shown) == (trial.params["optimizer"] == "momentum")
        assert group["sessions"][0]["status"] == "STATUS_SUCCESS"
        values = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
        assert values["val/accuracy"] == pytest.approx(trial.value, rel=1e-6)
        assert values["trial/pruned"] == 0.0


KILL_SCRIPT = """
import os, signal, sys
from pathlib import Path
from descent.tune import SearchSpace, StudySettings, tune

space = SearchSpace.from_dict({space!r})
seen = []

def kill(trainer, event, info):
    if event == "step":
        seen.append(info["step"])
        if len(seen) == 120:  # inside the third trial (2 epochs of 26 steps each)
            os.kill(os.getpid(), signal.SIGKILL)

settings = StudySettings(
    Path(sys.argv[1]), space, method="grid", pruner="none", heartbeat_interval=1, grace_period=5
)
tune(settings, callbacks=[kill])
"""


@pytest.mark.slow
def test_killed_study_resumes_to_the_planned_trials_without_duplicates(tmp_path: Path) -> None:
    script = tmp_path / "tune_and_die.py"
    script.write_text(KILL_SCRIPT.format(space=CONDITIONAL))
    folder = tmp_path / "study"
    process = run_python(str(script), str(folder))
    assert process.returncode == -signal.SIGKILL, process.stderr
    study = optuna.load_study(study_name="descent", storage=f"sqlite:///{folder / 'study.db'}")
    assert len(study.get_trials(states=FINISHED)) == 2
    with pytest.raises(ValueError, match="already holds a study: add --resume"):
        tune(StudySettings(folder, SearchSpace.from_dict(CONDITIONAL), method="grid"))
    study = tune(
        StudySettings(
            folder,
            SearchSpace.from_dict(CONDITIONAL),
            method="grid",
            pruner="none",
            heartbeat_interval=1,
            grace_period=5,
        ),
        resume=True,
    )
    finished = study.get_trials(states=FINISHED)
    assert len(finished) == 6
    assert len({tuple(sorted(t.params.items())) for t in finished}) == 6  # none duplicated


@pytest.mark.slow
def test_two_workers_share_one_sqlite_study(tmp_path: Path) -> None:
    space = SearchSpace.from_dict(
        {
            "base": {"model": "softmax", "epochs": 2},
            "params": {"lr": {"float": [0.005, 0.05], "log": True}},
        }
    )
    study = tune(
        StudySettings(tmp_path, space, method="random", trials=6, pruner="none"), workers=2
    )
    states = [t.state for t in study.get_trials()]
    assert states.count(optuna.trial.TrialState.COMPLETE) >= 6
    assert optuna.trial.TrialState.FAIL not in states


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"learning_rate": {"float": [0.1, 1.0]}}, "learning_rate: unknown hyperparameter"),
        ({"optimizer": {"choices": []}}, "optimizer: the choice list is empty"),
        ({"lr": {"float": [0.1, 0.01]}}, "lr: low 0.1 > high 0.01"),
        ({"lr": {"float": [0.0, 0.1], "log": True}}, "lr: a log range needs low > 0"),
        (
            {"optimizer_params.momentum": {"choices": [0.9], "when": {"optimizer": ["sgd"]}}},
            "must be a hyperparameter listed before it",
        ),
        ({"optimizer": {"choices": ["sgd", "lbfgs"]}}, "unknown optimizer 'lbfgs'"),
    ],
)
def test_bad_spaces_fail_with_one_line_before_any_trial(
    params: dict, message: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=message) as error:
        SearchSpace.from_dict({"params": params})
    assert "\n" not in str(error.value)


def test_cli_reports_bad_space_in_one_line(tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("params:\n  lr: {float: [0.1, 0.01]}\n")
    result = run_python(
        "-m", "descent.cli.main", "tune", str(space), "--study", str(tmp_path / "study")
    )
    assert result.returncode == 2
    assert result.stderr.strip().endswith("lr: low 0.1 > high 0.01")
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "study").exists()  # refused before anything ran
