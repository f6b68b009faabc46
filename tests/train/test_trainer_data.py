"""The Trainer with data in every form (tensors, a Dataset, a DataLoader), any task, exact resume
at any batch, and checkpoints that load with weights_only=True."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.utils.data import DataLoader

from descent import schedules as sch
from descent.errors import InputError
from descent.models import MLP
from descent.train import BatchSampler, DivergenceError, Trainer
from tests.processes import run_python
from tests.train._helpers import PairDataset, blobs, small_mlp

ROOT = Path(__file__).resolve().parents[2]


def timeless(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in entry.items() if k != "seconds"} for entry in history]


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


@pytest.mark.parametrize(
    ("mode", "batch_size", "epochs"),
    [
        ("full", 1, 3),
        ("single", 1, 1),
        ("minibatch", 16, 3),
    ],
)
def test_tensors_a_dataset_and_a_dataloader_give_the_same_weights(
    mode: str, batch_size: int, epochs: int
) -> None:
    inputs, targets = blobs()
    dataset = PairDataset(inputs, targets)
    loader = DataLoader(dataset, batch_sampler=BatchSampler(len(dataset), mode, batch_size, seed=3))
    results = []
    for data in ((inputs, targets), dataset, loader):
        trainer = Trainer(
            small_mlp(),
            optimizer="sgd",
            lr=0.05,
            mode=mode,
            batch_size=batch_size,
            epochs=epochs,
            seed=3,
            device="cpu",
        )
        trainer.fit(data, (inputs, targets))
        results.append((weights(trainer), trainer.state.history))
    for other, history in results[1:]:
        for name, value in results[0][0].items():
            assert torch.equal(value, other[name]), (mode, name)
        assert timeless(history) == timeless(results[0][1])


def test_a_regression_task_trains_and_logs_mse_and_mae(tmp_path: Path) -> None:
    """The README's example: a CSV table, an MLP, task="regression"."""
    pandas = pytest.importorskip("pandas")
    generator = torch.Generator().manual_seed(0)
    features = torch.rand(300, 3, generator=generator)
    target = 2 * features[:, 0] - features[:, 1] + 0.5 * features[:, 2] ** 2
    table = pandas.DataFrame(features.numpy(), columns=["a", "b", "c"]).assign(y=target.numpy())
    table.to_csv(tmp_path / "table.csv", index=False)

    frame = pandas.read_csv(tmp_path / "table.csv")
    x = torch.tensor(frame[["a", "b", "c"]].values, dtype=torch.float32)
    y = torch.tensor(frame["y"].values, dtype=torch.float32)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 32), nn.ReLU(), nn.Linear(32, 1))
    trainer = Trainer(
        model,
        task="regression",
        lr=1e-2,
        epochs=60,
        batch_size=32,
        logdir=tmp_path / "run",
        device="cpu",
    )
    result = trainer.fit((x[:240], y[:240]), (x[240:], y[240:]))

    with torch.no_grad():
        predictions = model(x[240:]).squeeze(1)
    assert result.final.val["mse"] == pytest.approx(
        float(((predictions - y[240:]) ** 2).mean()), rel=1e-5
    )
    assert result.final.val["mae"] == pytest.approx(
        float((predictions - y[240:]).abs().mean()), rel=1e-5
    )
    assert result.final.val["mse"] < 0.01 * float(y.var())  # it learned the function
    events = EventAccumulator(str(tmp_path / "run"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/mse", "train/mae", "val/loss", "val/mse", "val/mae"} <= scalars
    assert "train/accuracy" not in scalars
    assert events.Tags()["images"] == []  # no image shape declared: no weight images


class StopHereError(Exception):
    pass


def interrupt_at(step: int):
    def callback(trainer: Trainer, event: str, info: dict) -> None:
        if event == "step" and info["step"] == step:
            raise StopHereError

    return callback


@pytest.mark.parametrize("kind", ["tensors", "shuffled DataLoader"])
def test_resume_mid_epoch_equals_an_uninterrupted_run(tmp_path: Path, kind: str) -> None:
    inputs, targets = blobs(100)

    def data():
        if kind == "tensors":
            return inputs, targets
        torch.manual_seed(123)  # the loader's shuffle must not depend on the caller's generator
        return DataLoader(PairDataset(inputs, targets), batch_size=12, shuffle=True)

    def trainer(logdir: Path, callbacks=()) -> Trainer:
        return Trainer(
            small_mlp(dropout=0.3),
            lr=0.01,
            batch_size=12,
            epochs=3,
            seed=5,
            logdir=logdir,
            checkpoint_every=4,
            device="cpu",
            callbacks=callbacks,
        )

    whole = trainer(tmp_path / "whole")
    whole.fit(data(), (inputs, targets))
    cut = trainer(tmp_path / "cut", [interrupt_at(14)])  # epoch 2 of 9 batches, after step 12
    with pytest.raises(StopHereError):
        cut.fit(data(), (inputs, targets))
    saved = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)
    assert saved["state"]["step"] == 12
    torch.manual_seed(999)  # the resumed run restores every generator itself
    resumed = trainer(tmp_path / "cut")
    resumed.fit(data(), (inputs, targets), resume=True)
    for name, value in weights(whole).items():
        assert torch.equal(value, weights(resumed)[name]), name
    assert timeless(resumed.state.history) == timeless(whole.state.history)


class CountingCallback:
    """A callback with state: the steps it has seen, saved in checkpoints and restored."""

    def __init__(self) -> None:
        self.steps: list[int] = []

    def __call__(self, trainer: Trainer, event: str, info: dict) -> None:
        if event == "step":
            self.steps.append(info["step"])

    def state_dict(self) -> dict:
        return {"steps": list(self.steps)}

    def load_state_dict(self, state: dict) -> None:
        self.steps = list(state["steps"])


def test_a_callback_s_state_is_saved_and_restored_with_the_run(tmp_path: Path) -> None:
    inputs, targets = blobs(100)

    def trainer(callbacks: list) -> Trainer:
        return Trainer(
            small_mlp(), lr=0.01, batch_size=12, epochs=2, seed=5, logdir=tmp_path / "run",
            checkpoint_every=4, device="cpu", callbacks=callbacks,
        )  # fmt: skip

    whole, counted = CountingCallback(), CountingCallback()
    Trainer(
        small_mlp(), lr=0.01, batch_size=12, epochs=2, seed=5, device="cpu", callbacks=[whole]
    ).fit((inputs, targets), (inputs, targets))
    with pytest.raises(StopHereError):
        trainer([counted, interrupt_at(10)]).fit((inputs, targets), (inputs, targets))
    resumed = CountingCallback()  # a fresh object: what it knows comes from the checkpoint
    trainer([resumed, interrupt_at(-1)]).fit((inputs, targets), (inputs, targets), resume=True)
    assert resumed.steps == whole.steps  # steps 1–8 restored, then 9 onward seen again


KILLED = """
import os, signal, sys
import torch
sys.path.insert(0, os.getcwd())  # the repository, for the tests' helpers
from descent.train import Trainer
from tests.train._helpers import PairDataset, blobs, small_mlp

logdir, kill_at = sys.argv[1], int(sys.argv[2])
inputs, targets = blobs(150)

def kill(trainer, event, info):
    if event == "step" and info["step"] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

trainer = Trainer(small_mlp(dropout=0.2), lr=0.01, batch_size=10, epochs=3, seed=1,
                  num_workers=2, logdir=logdir, checkpoint_every=5, device="cpu",
                  callbacks=[kill] if kill_at >= 0 else [])
trainer.fit(PairDataset(inputs, targets), PairDataset(inputs, targets),
            resume=kill_at == -2)
"""


@pytest.mark.slow
def test_sigkill_and_resume_with_a_dataset_and_worker_processes(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(KILLED)

    def train(logdir: Path, kill_at: int) -> subprocess.CompletedProcess:
        return run_python(str(script), str(logdir), str(kill_at), timeout=600, cwd=ROOT)

    assert train(tmp_path / "whole", -1).returncode == 0
    killed = train(tmp_path / "killed", 22)  # epoch 2 (15 batches each), after step 20's save
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    saved = torch.load(tmp_path / "killed" / "checkpoints" / "last.pt", weights_only=True)
    assert (saved["state"]["step"], saved["data"]["sampler"]["position"]) == (20, 5)
    resumed = train(tmp_path / "killed", -2)
    assert resumed.returncode == 0, resumed.stderr
    whole = torch.load(tmp_path / "whole" / "checkpoints" / "last.pt", weights_only=True)
    final = torch.load(tmp_path / "killed" / "checkpoints" / "last.pt", weights_only=True)
    for name, value in whole["model"].items():
        assert torch.equal(value, final["model"][name]), name
    assert timeless(final["state"]["history"]) == timeless(whole["state"]["history"])


@pytest.mark.parametrize(
    "schedule",
    [
        lambda n: 0.1 / (1 + n),  # a plain function: only the position is saved
        sch.ExponentialDecay(0.1, 10, 0.5),  # a descent schedule: saved in its dict form
    ],
    ids=["function", "schedule"],
)
def test_a_torch_optimizer_with_a_schedule_checkpoints_and_resumes(
    tmp_path: Path, schedule
) -> None:
    inputs, targets = blobs(60)

    def trainer(epochs: int) -> Trainer:
        model = small_mlp()
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0, momentum=0.9)
        return Trainer(
            model,
            optimizer=optimizer,
            lr=schedule,
            batch_size=20,
            epochs=epochs,
            logdir=tmp_path,
            device="cpu",
        )

    trainer(2).fit((inputs, targets))  # no PicklingError at the checkpoint
    saved = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert saved["scheduler"]["last_epoch"] == 6
    resumed = trainer(3)
    resumed.fit((inputs, targets), resume=True)
    assert resumed.scheduler.last_epoch == 9
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(schedule(9))
    whole_dir = tmp_path / "whole"
    model = small_mlp()
    whole = Trainer(
        model,
        optimizer=torch.optim.SGD(model.parameters(), lr=1.0, momentum=0.9),
        lr=schedule,
        batch_size=20,
        epochs=3,
        logdir=whole_dir,
        device="cpu",
    )
    whole.fit((inputs, targets))
    for name, value in weights(whole).items():
        assert torch.equal(value, weights(resumed)[name]), name


def test_a_checkpoint_written_on_the_cpu_loads_with_device_auto(tmp_path: Path) -> None:
    inputs, targets = blobs(60)
    Trainer(small_mlp(), epochs=1, logdir=tmp_path, device="cpu").fit((inputs, targets))
    resumed = Trainer(small_mlp(), epochs=2, logdir=tmp_path, device="auto")
    result = resumed.fit((inputs, targets), resume=True)
    assert [entry.epoch for entry in result.history] == [1, 2]
    assert next(resumed.model.parameters()).device.type == resumed.device.type


@pytest.mark.parametrize(("lr", "mode"), [(1e38, "full"), (1e20, "minibatch")])
def test_a_non_finite_validation_loss_stops_before_the_checkpoint(
    tmp_path: Path, lr: float, mode: str
) -> None:
    inputs, targets = blobs(60)
    torch.manual_seed(0)
    trainer = Trainer(
        MLP(6, 3, hidden=(16,)),
        optimizer="sgd",
        lr=lr,
        mode=mode,
        epochs=3,
        logdir=tmp_path,
        device="cpu",
    )
    with pytest.raises(DivergenceError, match="no checkpoint was written") as error:
        trainer.fit((inputs, targets), (inputs, targets))
    assert "last.pt" not in str(error.value)
    assert not (tmp_path / "checkpoints" / "last.pt").exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"mode": "batches"}, "mode must be one of full, single, minibatch"),
        ({"device": "tpu"}, "device must be auto, cpu, cuda, cuda:N or mps"),
        ({"precision": "16"}, "precision must be one of 32, 64, bf16-mixed, 16-mixed"),
        ({"task": "ranking"}, "task must be one of classification, regression"),
        ({"num_workers": -1}, "num_workers must be an integer ≥ 0"),
        ({"log": {"scalars_every": 0}}, "scalars_every"),
    ],
)
def test_bad_arguments_are_refused_in_one_line(arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Trainer(small_mlp(), **arguments)


def test_data_that_is_not_data_is_refused() -> None:
    trainer = Trainer(small_mlp(), device="cpu")
    with pytest.raises(InputError, match="must be \\(inputs, targets\\) tensors, a Dataset"):
        trainer.fit(42)
    with pytest.raises(InputError, match="same length"):
        trainer.fit((torch.zeros(5, 6), torch.zeros(4, dtype=torch.long)))


@pytest.mark.parametrize("damage", ["truncated", "random bytes", "another pickle"])
def test_an_unreadable_checkpoint_is_one_line_naming_the_file(tmp_path: Path, damage: str) -> None:
    inputs, targets = blobs(40)
    Trainer(small_mlp(), epochs=1, logdir=tmp_path, device="cpu").fit((inputs, targets))
    last = tmp_path / "checkpoints" / "last.pt"
    if damage == "truncated":
        last.write_bytes(last.read_bytes()[:3000])
    elif damage == "random bytes":
        last.write_bytes(torch.randint(0, 256, (5000,), dtype=torch.uint8).numpy().tobytes())
    else:
        torch.save({"model": {}, "state": {}}, last)
    trainer = Trainer(small_mlp(), epochs=2, logdir=tmp_path, device="cpu")
    with pytest.raises(InputError, match=f"^{last}: not a") as error:
        trainer.fit((inputs, targets), resume=True)
    assert "\n" not in str(error.value)
