"""RunConfig and load_config: a given setting is never replaced by a default, numbers as YAML
writes them, settings named in every error, the library's vocabulary (issues 10 and 11)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from descent import schedules
from descent.errors import InputError
from descent.train.config import RunConfig, load_config
from tests.cli_support import run_cli


def refusal(overrides: dict, error_type: type[ValueError]) -> str:
    """The message of the ``error_type`` that ``load_config(**overrides)`` raises, asserted to be
    one line."""
    with pytest.raises(error_type) as error:
        load_config(**overrides)
    assert "\n" not in str(error.value)
    return str(error.value)


# -- row 1: "no schedule" can be said, on the command line and in a file -----------------------


def test_schedule_none_on_the_command_line_means_a_constant_rate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logdir = tmp_path / "x"
    code, out, err = run_cli(
        ["train", "--model", "softmax", "--epochs", "3", "--lr", "0.01", "--schedule", "none",
         "--quiet", "--logdir", str(logdir)],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "schedule none" in out
    history = json.loads((logdir / "metrics.json").read_text())["history"]
    assert [entry["learning_rate"] for entry in history] == [0.01, 0.01, 0.01]
    assert "schedule: null" in (logdir / "config.yaml").read_text()


def test_schedule_null_in_a_file_survives_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("model: softmax\nepochs: 2\nlr: 1e-2\nschedule: null\n")
    logdir = tmp_path / "y"
    code, _, err = run_cli(
        ["train", "--config", str(config), "--quiet", "--logdir", str(logdir)], capsys
    )
    assert code == 0, err
    history = json.loads((logdir / "metrics.json").read_text())["history"]
    assert [entry["learning_rate"] for entry in history] == [0.01, 0.01]


def test_an_override_of_none_wins_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("schedule: one_cycle\nmax_steps: 7\n")
    assert load_config(path).schedule == "one_cycle"
    assert load_config(path, schedule=None).schedule is None
    assert load_config(path, max_steps=None).max_steps is None
    assert load_config(None, **load_config(path, schedule=None).model_dump()).schedule is None


# -- row 23: floats as people write them, in a schedule mapping too ----------------------------


def test_yaml_floats_in_exponent_form_everywhere(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(
        "lr: 1e-3\nschedule:\n  name: exponential_decay\n  initial_learning_rate: 1e-3\n"
        "  decay_steps: 10\n  decay_rate: 5e-1\noptimizer: momentum\n"
        "optimizer_params:\n  momentum: 9e-1\n"
    )
    config = load_config(path)
    assert config.lr == 1e-3
    assert config.learning_rate(5)(10) == pytest.approx(5e-4)
    assert config.optimizer_params == {"momentum": 0.9}


# -- rows 26, 27: settings named, nothing silently converted ----------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"seed": -1}, "seed must be an integer ≥ 0, got -1"),
        ({"epochs": True}, "epochs must be an integer, got True"),
        ({"epochs": 2.5}, "epochs must be an integer, got 2.5"),
        ({"batch_size": False}, "batch_size must be an integer, got False"),
        ({"lr": True}, "lr must be a number, got True"),
        ({"log": {"scalars_every": True}}, "log.scalars_every must be an integer, got True"),
        ({"log": {"weight_images": 1}}, "log.weight_images must be True or False, got 1"),
        ({"hidden": [32, True]}, "hidden: layer sizes must be"),
    ],
)
def test_values_are_not_silently_converted(overrides: dict, message: str) -> None:
    assert re.search(message, refusal(overrides, InputError))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"lr": -1.0}, "lr: Input should be greater than or equal to 0"),
        ({"model": "resnet"}, "model: Input should be 'softmax', 'mlp' or 'cnn'"),
        ({"optimizer": "adamm"}, "unknown optimizer 'adamm'"),
        ({"batch_size": 0}, "batch_size"),
        ({"schedule": "cosine"}, "unknown schedule 'cosine'"),
        ({"dropout": 1.5}, "dropout"),
        ({"learning_rate": 0.1}, "unknown setting 'learning_rate'"),
    ],
)
def test_bad_config_values_fail_with_one_line(overrides: dict, message: str) -> None:
    assert re.search(message, refusal(overrides, ValueError))


def test_config_file(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(
        "model: mlp\nlr: 0.01\nschedule:\n  name: exponential_decay\n"
        "  initial_learning_rate: 0.01\n  decay_steps: 100\n  decay_rate: 0.5\n"
    )
    config = load_config(path, epochs=2)
    assert (config.model, config.lr, config.epochs) == ("mlp", 0.01, 2)
    assert config.learning_rate(10)(100) == pytest.approx(0.005)
    path.write_text("- a list\n")
    with pytest.raises(ValueError, match="a config is a mapping"):
        load_config(path)


def test_a_bad_value_in_a_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("epochs: true\n")
    with pytest.raises(InputError, match=r"run.yaml: epochs must be an integer, got True"):
        load_config(path)
    # the same setting given on top of the file is not blamed on the file
    with pytest.raises(InputError, match=r"^epochs must be an integer, got 'x'"):
        load_config(path, epochs="x")


def test_a_config_that_is_not_utf8_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes("model: mlp # écrit en latin-1\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin.yaml: the config file is not UTF-8 text"):
        load_config(path)


def test_seed_minus_one_on_the_command_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run_cli(["train", "--seed", "-1", "--logdir", str(tmp_path / "r")], capsys)
    assert code == 2
    assert "seed must be an integer ≥ 0, got -1" in err
    assert not (tmp_path / "r").exists()


# -- issue 11: one vocabulary, no throwaway optimizer, schedule defaults with the schedules ---


def test_batch_mode_names_and_the_old_alias() -> None:
    assert load_config(mode="single").mode == "single"
    assert load_config(mode="sgd").mode == "single"  # old configs keep working
    assert load_config(mode="Mini-Batch").mode == "minibatch"
    with pytest.raises(InputError, match="mode must be one of full, single, minibatch"):
        load_config(mode="stochastic-ish")


def test_optimizer_names_are_normalized_as_optim_create_does() -> None:
    assert load_config(optimizer="Ada-Max").optimizer == "adamax"
    assert load_config(optimizer="RMSProp").optimizer == "rmsprop"


def test_optimizer_params_are_checked_against_the_rules_signature(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import descent.optim

    def no_optimizer(*args: object, **kwargs: object) -> None:
        raise AssertionError("RunConfig built an optimizer to validate")

    monkeypatch.setattr(descent.optim, "create", no_optimizer)
    config = load_config(optimizer="momentum", optimizer_params={"momentum": 0.5})
    assert config.optimizer_params == {"momentum": 0.5}
    with pytest.raises(InputError, match=r"adam takes no argument 'momentum'; accepted: betas"):
        load_config(optimizer="adam", optimizer_params={"momentum": 0.5})


def test_a_named_schedule_is_made_by_descent_schedules() -> None:
    config = load_config(schedule="exponential_decay", lr=0.1, epochs=3)
    made = config.learning_rate(steps_per_epoch=10)
    assert made == schedules.for_run("exponential_decay", 0.1, 30)
    assert made(30) == pytest.approx(0.1 * 0.01)
    assert load_config(max_steps=12).learning_rate(10) == schedules.for_run(
        "cosine_decay", RunConfig().lr, 12
    )
    with pytest.raises(InputError, match="schedule 'step' needs its parameters"):
        load_config(schedule="step")
