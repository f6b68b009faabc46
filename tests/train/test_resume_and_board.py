"""A run killed with SIGKILL mid-epoch and resumed ends with the same weights as an uninterrupted
one; a TensorBoard server started here serves the run's scalars over HTTP."""

from __future__ import annotations

import json
import signal
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import torch

from descent.cli.train import start_tensorboard
from descent.train.config import load_config
from descent.train.run import run
from tests.processes import run_python

SCRIPT = """
import os, signal, sys
from descent.train.config import load_config
from descent.train.run import run

import torch

logdir, kill_at, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)  # the parent's count: reductions then add up in the same order

def kill(trainer, event, info):
    if event == "step" and info["step"] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

config = load_config(model="mlp", hidden=[32], dropout=0.2, epochs=4, logdir=logdir,
                     log={"scalars_every": 5, "ratios_every": 0})
run(config, callbacks=[kill])
"""


def settings(logdir: Path) -> dict:
    return dict(
        model="mlp",
        hidden=[32],
        dropout=0.2,
        epochs=4,
        logdir=str(logdir),
        log={"scalars_every": 5, "ratios_every": 0},
    )


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tmp_path: Path) -> None:
    whole = run(load_config(**settings(tmp_path / "whole")))
    killed_dir = tmp_path / "killed"
    script = tmp_path / "train_and_die.py"
    script.write_text(SCRIPT)
    # 26 steps per epoch: step 60 is in the middle of epoch 3.
    process = run_python(str(script), str(killed_dir), "60", str(torch.get_num_threads()))
    assert process.returncode == -signal.SIGKILL, process.stderr
    saved = torch.load(killed_dir / "checkpoints" / "last.pt", weights_only=False)
    assert saved["state"]["epoch"] == 2  # the last complete epoch

    resumed = run(load_config(**settings(killed_dir)), resume=True)
    final_whole = torch.load(tmp_path / "whole" / "checkpoints" / "last.pt", weights_only=False)
    final_resumed = torch.load(killed_dir / "checkpoints" / "last.pt", weights_only=False)
    for name, value in final_whole["model"].items():
        assert torch.equal(value, final_resumed["model"][name]), name
    assert resumed.test_accuracy == whole.test_accuracy
    assert [e.train_loss for e in resumed.result.history] == [
        e.train_loss for e in whole.result.history
    ]


def test_tensorboard_server_serves_the_runs_scalars(tmp_path: Path) -> None:
    run(load_config(model="softmax", epochs=3, logdir=str(tmp_path / "softmax")))
    process, address = start_tensorboard(tmp_path)
    try:
        with urllib.request.urlopen(address + "data/runs", timeout=10) as response:
            assert json.load(response) == ["softmax"]
        query = urllib.parse.urlencode({"tag": "val/accuracy", "run": "softmax"})
        with urllib.request.urlopen(
            f"{address}data/plugin/scalars/scalars?{query}", timeout=10
        ) as response:
            points = json.load(response)
        assert len(points) == 3
        metrics = json.loads((tmp_path / "softmax" / "metrics.json").read_text())
        assert points[-1][2] == pytest.approx(metrics["history"][-1]["val_accuracy"], rel=1e-6)
    finally:
        process.kill()
        process.wait()
