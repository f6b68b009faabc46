"""What a user (or another process, or a crafted file) can do to a training run: truncated,
random and malicious checkpoints, resumes that cannot work, a second run into a used folder, run
folders that cannot be, two processes at once (issues 10 and 20)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from descent.train import checkpoint
from descent.train.config import load_config
from descent.train.run import run
from tests.cli_support import refusal, run_cli
from tests.crafted import WritesMarker


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-epoch softmax run, copied by each test that damages it."""
    logdir = tmp_path_factory.mktemp("runs") / "softmax"
    run(load_config(model="softmax", epochs=1, logdir=str(logdir)))
    return logdir


@pytest.fixture
def run_folder(finished_run: Path, tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "softmax"
    shutil.copytree(finished_run, target)
    (target / ".lock").unlink(missing_ok=True)
    return target


def resume(logdir: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    return run_cli(
        ["train", "--config", str(logdir / "config.yaml"), "--logdir", str(logdir), "--epochs",
         "2", "--resume", "--quiet"],
        capsys,
    )  # fmt: skip


def folder_state(logdir: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(logdir)): path.read_bytes()
        for path in sorted(logdir.rglob("*"))
        if path.is_file() and path.name != ".lock"
    }


# -- row 4: any unreadable checkpoint is one line naming the file ------------------------------


@pytest.mark.parametrize("damage", ["truncate", "random", "empty", "wrong object"])
def test_an_unreadable_checkpoint_is_one_line_naming_the_file(
    run_folder: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    last = run_folder / "checkpoints" / "last.pt"
    if damage == "truncate":
        with last.open("r+b") as handle:
            handle.truncate(last.stat().st_size // 2)
    elif damage == "random":
        last.write_bytes(os.urandom(20_000))
    elif damage == "empty":
        last.write_bytes(b"")
    else:
        torch.save([1, 2, 3], last)
    before = folder_state(run_folder)
    code, _, err = resume(run_folder, capsys)
    assert code == 2
    assert str(last) in err
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert folder_state(run_folder) == before  # nothing written


# -- issue 20: a checkpoint cannot run code ----------------------------------------------------


@pytest.mark.parametrize("name", ["last.pt", "best.pt"])
def test_a_crafted_checkpoint_is_refused_and_runs_nothing(
    run_folder: Path, name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "marker"
    crafted = run_folder / "checkpoints" / name
    saved = torch.load(crafted, weights_only=True)
    saved["model"] = {"weight": WritesMarker(marker)}
    torch.save(saved, crafted)
    if name == "last.pt":
        code, _, err = resume(run_folder, capsys)
        assert code == 2
        assert str(crafted) in err
        assert "the Python object exec" in err
        assert err.count("\n") == 1
    with pytest.raises(checkpoint.CheckpointError, match=r"asks for the Python object exec"):
        checkpoint.load(crafted)
    assert not marker.exists()
    # the file really is hostile: a full unpickler runs it
    torch.load(crafted, weights_only=False)
    assert marker.read_text() == "pwned"


@pytest.mark.slow
def test_checkpoints_load_with_weights_only_including_a_torch_optimizer_with_a_function_lr(
    tmp_path: Path,
) -> None:
    from descent.data.images import digits
    from descent.models import MLP
    from descent.train import Trainer

    data = digits()
    model = MLP(64, 10, hidden=(8,))
    sgd = torch.optim.SGD(model.parameters(), lr=1.0)
    trainer = Trainer(
        model, optimizer=sgd, lr=lambda n: 0.1 / (1 + n), epochs=1, logdir=tmp_path / "f"
    )
    trainer.fit(data.train, data.validation)
    saved = torch.load(tmp_path / "f" / "checkpoints" / "last.pt", weights_only=True)
    assert saved["scheduler"]["last_epoch"] == trainer.state.step
    # a plain function is saved as its position only (None in place of its dict form)
    assert saved["scheduler"]["schedules"] == [None]
    # resuming with the same function continues from that position
    model2 = MLP(64, 10, hidden=(8,))
    sgd2 = torch.optim.SGD(model2.parameters(), lr=1.0)
    again = Trainer(
        model2, optimizer=sgd2, lr=lambda n: 0.1 / (1 + n), epochs=2, logdir=tmp_path / "f"
    )
    again.fit(data.train, data.validation, resume=True)
    assert again.scheduler.last_epoch == again.state.step == 2 * trainer.state.step
    assert sgd2.param_groups[0]["lr"] == pytest.approx(0.1 / (1 + again.state.step))


@pytest.mark.slow
def test_a_checkpoint_of_the_previous_release_is_migrated(tmp_path: Path) -> None:
    """The previous release pickled a torch optimizer's schedule objects into the checkpoint;
    they are read through an allowlist of descent's schedule classes and dropped."""
    from descent import schedules
    from descent.data.images import digits
    from descent.models import MLP
    from descent.train import Trainer

    data = digits()

    def trainer(epochs: int) -> Trainer:
        torch.manual_seed(0)
        model = MLP(64, 10, hidden=(8,))
        sgd = torch.optim.SGD(model.parameters(), lr=1.0)
        return Trainer(
            model,
            optimizer=sgd,
            lr=schedules.StepDecay(0.05, 26, 0.5),
            epochs=epochs,
            logdir=tmp_path / "old",
        )

    trainer(1).fit(data.train, data.validation)
    last = tmp_path / "old" / "checkpoints" / "last.pt"
    payload = torch.load(last, weights_only=True)
    payload["scheduler"]["schedules"] = [schedules.StepDecay(0.05, 26, 0.5)]  # the old format
    torch.save(payload, last)
    with pytest.raises(Exception, match="Unsupported global"):
        torch.load(last, weights_only=True)
    migrated = checkpoint.load(last)
    assert migrated["scheduler"]["schedules"] == [schedules.StepDecay(0.05, 26, 0.5).to_dict()]
    resumed = trainer(2)
    result = resumed.fit(data.train, data.validation, resume=True)
    assert [entry.epoch for entry in result.history] == [1, 2]
    torch.load(last, weights_only=True)  # written in the current format


# -- row 10: a resume that cannot work writes nothing and says why ------------------------------


def test_a_resume_with_other_settings_names_them_and_writes_nothing(
    run_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = folder_state(run_folder)
    err = refusal(
        ["train", "--logdir", str(run_folder), "--model", "mlp", "--resume", "--quiet"], capsys
    )
    assert "model 'softmax' → 'mlp'" in err
    assert folder_state(run_folder) == before
    # the documented way still works after the refusal
    code, _, err = resume(run_folder, capsys)
    assert code == 0, err


def test_a_checkpoint_that_does_not_fit_gives_the_whole_reason(run_folder: Path) -> None:
    (run_folder / "config.yaml").unlink()  # nothing to compare settings with
    before = folder_state(run_folder)
    config = load_config(model="mlp", hidden=[8], epochs=2, logdir=str(run_folder))
    with pytest.raises(checkpoint.CheckpointError) as error:
        run(config, resume=True)
    message = str(error.value)
    assert "\n" not in message
    assert "does not fit this run's model" in message
    assert "Missing key(s)" in message or "Unexpected key(s)" in message
    assert folder_state(run_folder) == before


def test_nothing_to_resume(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nothing to resume"):
        run(load_config(model="softmax", logdir=str(tmp_path / "new")), resume=True)


# -- row 11: a new run does not silently replace an old one ------------------------------------


def test_a_new_run_into_a_used_folder_is_refused_unless_overwrite(
    run_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = folder_state(run_folder)
    args = ["train", "--model", "softmax", "--epochs", "1", "--quiet", "--logdir", str(run_folder)]
    err = refusal(args, capsys)
    assert "already holds a run" in err
    assert "--overwrite" in err
    assert folder_state(run_folder) == before
    code, _, err = run_cli([*args, "--overwrite"], capsys)
    assert code == 0, err
    assert len(list(run_folder.glob("events.out.tfevents.*"))) == 1  # no mix of two runs


# -- row 12: run folders that cannot be ---------------------------------------------------------


def test_run_folders_that_cannot_be_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "afile"
    a_file.write_text("x")
    cases = {
        a_file: "it is a file",
        a_file / "under": "a part of the path is a file",
        Path("/sys/descent-run"): "cannot be the run folder",  # not writable, even for root
    }
    for logdir, message in cases.items():
        err = refusal(
            ["train", "--model", "softmax", "--epochs", "1", "--quiet", "--logdir", str(logdir)],
            capsys,
        )
        assert f"{logdir}: " in err
        assert message in err, err
    assert a_file.read_text() == "x"


# -- row 15: one process per run folder; temporary files unique -------------------------------

HOLDER = """
import sys, time
from pathlib import Path
from descent.train.run import run_folder

with run_folder(Path(sys.argv[1])):
    Path(sys.argv[2]).write_text("locked")
    time.sleep(120)
"""


@pytest.mark.slow
def test_a_second_process_is_refused_while_the_first_trains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logdir, ready = tmp_path / "shared", tmp_path / "ready"
    script = tmp_path / "hold.py"
    script.write_text(HOLDER)
    holder = subprocess.Popen([sys.executable, str(script), str(logdir), str(ready)])
    try:
        deadline = time.monotonic() + 120
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ready.exists()
        args = ["train", "--model", "softmax", "--epochs", "1", "--quiet", "--logdir", str(logdir)]
        err = refusal(args, capsys)
        assert f"another descent process (pid {holder.pid})" in err
        assert not (logdir / "config.yaml").exists()
    finally:
        holder.kill()  # SIGKILL: the lock goes with the process
        holder.wait()
    code, _, err = run_cli(args, capsys)
    assert code == 0, err


def test_temporary_files_are_unique_per_process_and_call(tmp_path: Path) -> None:
    target = tmp_path / "last.pt"
    first, second = checkpoint.temporary_path(target), checkpoint.temporary_path(target)
    assert first != second
    assert str(os.getpid()) in first.name
    assert first.parent == target.parent
    checkpoint.save({"model": {}, "state": {}}, target)
    assert [path.name for path in tmp_path.iterdir()] == ["last.pt"]  # no temporary left


def test_a_run_that_fails_before_writing_leaves_no_folder(tmp_path: Path) -> None:
    logdir = tmp_path / "never"
    with pytest.raises(FileNotFoundError, match="put the four IDX files"):
        run(load_config(data=f"mnist:{tmp_path / 'absent'}", logdir=str(logdir)))
    assert not logdir.exists()
    with pytest.raises(ValueError, match="nothing to resume"):
        run(load_config(model="softmax", logdir=str(logdir)), resume=True)
    assert not logdir.exists()
