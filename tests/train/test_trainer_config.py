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
