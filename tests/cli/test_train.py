"""`descent train` on a table: `--data table:FILE --target COL` read by the same reader as
`descent regress` (same one-line errors), an MLP regression with MSE and MAE logged and resumed
exactly; and `descent train --nproc 2` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.cli_support import refusal, run_cli


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    return run_cli(["train", *args], capsys, words=True)


def write_table(path: Path, rows: int = 200, seed: int = 0) -> np.ndarray:
    """A smooth function of three features of very different scales, with a target far from 0
    (what an MLP without standardization would struggle with)."""
    rng = np.random.default_rng(seed)
    features = rng.random((rows, 3)) * np.array([1.0, 10.0, 100.0])
    target = 3 * features[:, 0] - 0.2 * features[:, 1] + 1e-4 * features[:, 2] ** 2 + 50
    with path.open("w") as file:
        file.write("a,b,c,price\n")
        for row, value in zip(features, target, strict=True):
            file.write(",".join(f"{cell:.6f}" for cell in row) + f",{value:.6f}\n")
    return target


def weights(logdir: Path) -> dict[str, torch.Tensor]:
    return torch.load(logdir / "checkpoints" / "last.pt", weights_only=True)["model"]


def test_a_table_trains_an_mlp_regression_logs_mse_and_mae_and_resumes_exactly(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    table = tmp_path / "prices.csv"
    target = write_table(table)
    common = ["--data", f"table:{table}", "--target", "price", "--schedule", "none"]
    common += ["--lr", "0.01", "--batch-size", "32", "--quiet", "--seed", "3", "--hidden", "48"]

    whole = tmp_path / "whole"
    code, out, err = run([*common, "--epochs", "4", "--logdir", str(whole)], capsys)
    assert code == 0, err
    assert "mlp on table:" in out
    assert "train mse" in out
    assert "val mae" in out
    metrics = json.loads((whole / "metrics.json").read_text())
    assert set(metrics) >= {"test_loss", "test_mse", "test_mae"}
    assert "test_accuracy" not in metrics
    assert metrics["test_loss"] == metrics["test_mse"]  # the loss is MSE
    # a tenth of what predicting the mean scores: it learned, in the target's units
    assert metrics["test_mse"] < 0.1 * float(target.var())
    assert f"test mse {metrics['test_mse']:.4f}" in out

    # The test figures are the saved model's, on rows the CLI never trained on.
    from descent.train.config import load_config
    from descent.train.run import build_model, load_data

    config = load_config(whole / "config.yaml")
    assert (config.task, config.model, config.loss) == ("regression", "mlp", "mse")
    data = load_data(config)
    model = build_model(config, data)
    model.load_state_dict(weights(whole))
    with torch.no_grad():
        errors = model(data.test.images) - data.test.labels
    assert metrics["test_mse"] == pytest.approx(float((errors**2).mean()), rel=1e-5)
    assert metrics["test_mae"] == pytest.approx(float(errors.abs().mean()), rel=1e-5)
    assert len(data.train) + len(data.validation) + len(data.test) == 200
    assert weights(whole)["model.layers.0.weight"].shape == (48, 3)  # --hidden 48

    events = EventAccumulator(str(whole), size_guidance={"scalars": 0})
    events.Reload()
    assert {"train/mse", "train/mae", "val/mse", "val/mae"} <= set(events.Tags()["scalars"])
    assert events.Tags()["images"] == []

    halves = tmp_path / "halves"
    code, _, err = run([*common, "--epochs", "2", "--logdir", str(halves)], capsys)
    assert code == 0, err
    code, _, err = run(
        ["--config", str(halves / "config.yaml"), "--epochs", "4", "--resume", "--quiet"], capsys
    )
    assert code == 0, err
    for name, value in weights(whole).items():
        assert torch.equal(value, weights(halves)[name]), name
    history = json.loads((halves / "metrics.json").read_text())["history"]
    assert [entry["epoch"] for entry in history] == [1, 2, 3, 4]


def test_a_table_of_class_labels_trains_a_classifier(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rng = np.random.default_rng(1)
    features = rng.normal(size=(150, 2))
    labels = np.where(features[:, 0] + features[:, 1] > 0, 7, 3)  # two classes named 3 and 7
    table = tmp_path / "classes.csv"
    np.savetxt(table, np.c_[labels, features], delimiter=";", header="kind;u;v", comments="")
    code, out, err = run(
        [
            "--data",
            f"table:{table}",
            "--target",
            "kind",
            "--task",
            "classification",
            "--model",
            "softmax",
            "--epochs",
            "15",
            "--lr",
            "0.05",
            "--quiet",
            "--logdir",
            str(tmp_path / "run"),
        ],
        capsys,
    )
    assert code == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.9  # linearly separable
    assert "train acc" in out


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("a,y\n1,2\n", ["--target", "z"], "no column named 'z' for the target; columns: a, y"),
        (
            "a,y\n" + "1,2\n" * 12 + "1,x\n",
            ["--target", "y"],
            "line 14, column 'y': 'x' is not a number",
        ),
        ("a,y\n" + "1,2\n" * 5, ["--target", "y"], "5 data rows; training needs at least 10"),
        ("a,y\n1,2\n", [], "needs target: the column to predict"),
        ("a,y\n1,2\n", ["--target", "y", "--model", "cnn"], "model cnn reads images"),
        (
            "a,y\n1,2\n",
            ["--target", "y", "--loss", "cross_entropy"],
            "loss 'cross_entropy' is for classification, not regression",
        ),
        (
            "a,y\n" + "1,2.5\n" * 12,
            ["--target", "y", "--task", "classification"],
            "data row 1, column 'y': 2.5 is not a class label",
        ),
    ],
)
def test_table_faults_are_one_line(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    content: str,
    args: list[str],
    message: str,
) -> None:
    table = tmp_path / "t.csv"
    table.write_text(content)
    err = refusal(
        ["train", "--data", f"table:{table}", *args, "--logdir", str(tmp_path / "run"), "--quiet"],
        capsys,
    )
    assert err.startswith("descent: error: ")
    assert message in err
    assert not (tmp_path / "run").exists()  # nothing written


def test_a_target_for_images_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    err = refusal(["train", "--target", "y", "--logdir", str(tmp_path / "run")], capsys)
    assert "target 'y' names a table's column, but data 'digits' is not a table" in err
    err = refusal(["train", "--data", "prices.csv", "--logdir", str(tmp_path / "run")], capsys)
    assert "data 'prices.csv' is a file: train on a table with data table:prices.csv" in err


@pytest.mark.slow
def test_nproc_2_ends_with_the_weights_of_one_process_and_one_event_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Two gloo processes through torch's launcher against one process, same global batch of
    20, float64; 149 training rows, so the last batch (9) splits unevenly (5 + 4)."""
    table = tmp_path / "prices.csv"
    write_table(table, rows=213)
    common = ["--data", f"table:{table}", "--target", "price", "--precision", "64"]
    common += ["--device", "cpu", "--batch-size", "20", "--epochs", "1", "--quiet"]
    code, _, err = run([*common, "--logdir", str(tmp_path / "one")], capsys)
    assert code == 0, err
    code, out, err = run([*common, "--nproc", "2", "--logdir", str(tmp_path / "two")], capsys)
    assert code == 0, err
    assert "test mse" in out  # rank 0's outcome, reported by the launching process
    one, two = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert len(one) >= 4  # the MLP's weights and biases, and the standardization buffers
    for name, value in one.items():
        assert value.dtype == torch.float64, name
        assert torch.allclose(value, two[name], rtol=0, atol=1e-6), name
    assert len(list((tmp_path / "two").glob("events.out.tfevents.*"))) == 1  # rank 0 alone
    history = json.loads((tmp_path / "two" / "metrics.json").read_text())["history"]
    assert history[0]["step"] == 8  # 149 rows in batches of 20
