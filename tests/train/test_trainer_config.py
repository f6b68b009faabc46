"""RunConfig's device, precision and process settings, and the one logging model it shares with
the Trainer."""

from __future__ import annotations

import pytest

from descent.train import LogOptions
from descent.train.config import RunConfig, load_config


def test_precision_device_and_processes_are_read_and_checked() -> None:
    config = load_config(precision=64, device="cpu", nproc=2, num_workers=3, compile=True)
    assert (config.precision, config.device, config.nproc, config.num_workers, config.compile) == (
        "64",
        "cpu",
        2,
        3,
        True,
    )
    assert load_config(dtype="float64").precision == "64"  # older configs
    assert "dtype" not in load_config(dtype="float64").model_dump()
    for overrides, message in [
        ({"precision": "16"}, "precision must be one of 32, 64, bf16-mixed, 16-mixed"),
        ({"device": "tpu"}, "device must be auto, cpu, cuda, cuda:N or mps"),
        ({"nproc": 0}, "nproc"),
        ({"num_workers": -1}, "num_workers"),
        ({"dtype": "float16"}, "dtype must be float32 or float64"),
    ]:
        with pytest.raises(ValueError, match=message):
            load_config(**overrides)


def test_the_trainer_and_runconfig_share_one_logging_model() -> None:
    assert RunConfig.model_fields["log"].annotation is LogOptions
    assert load_config(log={"scalars_every": 5}).log == LogOptions(scalars_every=5)
    with pytest.raises(ValueError, match=r"log\.scalars_every"):
        load_config(log={"scalars_every": 0})


def test_task_model_and_loss_follow_the_data_unless_given(tmp_path) -> None:
    images = load_config()
    assert (images.task, images.model, images.loss, images.target) == (
        "classification",
        "cnn",
        "cross_entropy",
        None,
    )
    table = load_config(data="table:prices.csv", target="price")
    assert (table.task, table.model, table.loss) == ("regression", "mlp", "mse")
    given = load_config(data="table:prices.csv", target="price", loss="Huber", hidden=[8])
    assert given.loss == "huber"
    classes = load_config(data="table:t.csv", target="kind", task="classification")
    assert (classes.model, classes.loss) == ("mlp", "cross_entropy")
    # a config written by a run reads back to the same settings (a resume compares them)
    saved = tmp_path / "config.yaml"
    from descent import yamlfile

    saved.write_text(yamlfile.dumps(table.model_dump()))
    assert load_config(saved) == table
    for overrides, message in [
        ({"data": "table:t.csv"}, "data 'table:t.csv' needs target: the column to predict"),
        ({"data": "table:"}, "table data is read from a file: use table:FILE"),
        ({"target": "y"}, "but data 'digits' is not a table; give data table:FILE, or leave"),
        ({"data": "p.csv", "target": "y"}, "'p.csv' is not a table; give data table:p.csv"),
        ({"task": "regression"}, "task regression needs a table"),
        ({"data": "table:t.csv", "target": "y", "model": "cnn"}, "model cnn reads images"),
        ({"data": "table:t.csv", "target": "y", "model": "softmax"}, "softmax is a classifier"),
        ({"loss": "mae"}, "loss 'mae' is for regression, not classification"),
        ({"task": "ranking"}, "task"),
    ]:
        with pytest.raises(ValueError, match=message):
            load_config(**overrides)
