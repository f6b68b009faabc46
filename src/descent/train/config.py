"""One configuration model for a training run: the CLI, YAML files and tuning all go through it,
so a bad value fails in one place with one clear line.

A setting the user gives is never replaced by a default: ``schedule: null`` in a file and
``--schedule none`` on the command line both mean "no schedule" (a constant ``lr``); a default
applies only to a setting nobody gave.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from descent import validate, yamlfile
from descent.errors import InputError
from descent.train.device import PRECISIONS, precision_name
from descent.train.logs import LogOptions
from descent.train.logs import strict_int as _strict_int

#: Strings that mean "no schedule" where a schedule is named (YAML null also does).
NO_SCHEDULE = ("none", "null", "constant_lr")


def _real_number(value: Any, info: Any) -> Any:
    """A float setting takes numbers, not ``true`` (which pydantic would read as 1.0)."""
    if value is None:
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{info.field_name} must be a number, got {value!r}")
    return value


class RunConfig(BaseModel):
    """A training run. Unknown keys and out-of-range values are refused.

    ``mode`` is "full", "single" (one example per update) or "minibatch" ("sgd" is read as
    "single" in old configs); ``optimizer`` is any descent rule's name, in any spelling
    ``descent.optim.create`` takes ("Adam", "ada-max"), stored by its key.

    ``data`` is an image set (digits, mnist:DIR, …, folder:DIR) or ``table:FILE``, a CSV or
    Parquet file whose column ``target`` is predicted from the others. What is left out follows
    the data: ``task`` is classification for images and regression for a table, ``model`` cnn
    for images and mlp for a table, ``loss`` the task's (cross_entropy; mse)."""

    model_config = ConfigDict(extra="forbid")

    data: str = "digits"
    target: str | None = None
    task: Literal["classification", "regression"] | None = None
    loss: str | None = None
    model: Literal["softmax", "mlp", "cnn"] | None = None
    hidden: list[int] = Field(default_factory=lambda: [256])
    channels: list[int] = Field(default_factory=lambda: [32, 64])
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    activation: str = "relu"
    init: str = "default"
    init_std: float = Field(0.01, gt=0.0)
    diagnose_every: int = Field(0, ge=0)
    optimizer: str = "adam"
    lr: float = Field(2e-3, ge=0.0)
    schedule: str | dict[str, Any] | None = "cosine_decay"
    optimizer_params: dict[str, Any] = Field(default_factory=dict)
    mode: Literal["full", "single", "minibatch"] = "minibatch"
    batch_size: int = Field(50, ge=1)
    epochs: int = Field(40, ge=1)
    max_steps: int | None = Field(None, ge=1)
    early_stopping: int | None = Field(None, ge=1)
    grad_clip: float | None = Field(None, gt=0.0)
    seed: int = 0
    curvature_every: int | None = Field(None, ge=1)
    # End the run when the training loss fell by less than 0.1% over this many epochs (the
    # stall verdict then says why): descent.diagnose.curvature_monitor.
    stop_on_plateau: int | None = Field(None, ge=1)
    logdir: str | None = None
    log: LogOptions = Field(default_factory=LogOptions)
    # Where, how and on how many processes (docs/trainer.md). `dtype: float64` in older configs
    # is read as precision "64".
    device: str = "auto"
    precision: Literal[PRECISIONS] = "32"  # type: ignore[valid-type]
    compile: bool = False
    nproc: int = Field(1, ge=1)
    num_workers: int = Field(0, ge=0)
    checkpoint_every: int | None = Field(None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _dtype_is_precision(cls, data: Any) -> Any:
        if isinstance(data, dict) and "dtype" in data:
            data = dict(data)
            dtype = data.pop("dtype")
            if dtype not in ("float32", "float64"):
                raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
            data.setdefault("precision", "64" if dtype == "float64" else "32")
        if isinstance(data, dict) and "precision" in data:
            data["precision"] = precision_name(data["precision"])
        return data

    @model_validator(mode="after")
    def _what_the_data_implies(self) -> RunConfig:
        """Task, model and loss from the data when not given; a setting that cannot fit the data
        is refused (a CNN on a table, a target for images, cross-entropy for regression)."""
        from descent.data.tables import looks_like_table, table_file
        from descent.train.tasks import TASKS, loss_name

        table = table_file(self.data) is not None
        if table and self.target is None:
            raise ValueError(f"data {self.data!r} needs target: the column to predict")
        if not table and self.target is not None:
            spec = f"table:{self.data}" if looks_like_table(self.data) else "table:FILE"
            raise ValueError(
                f"target {self.target!r} names a table's column, but data {self.data!r} is not "
                f"a table; give data {spec}, or leave target out"
            )
        task = self.task or ("regression" if table else "classification")
        model = self.model or ("mlp" if table else "cnn")
        if table and model == "cnn":
            raise ValueError("model cnn reads images; the rows of a table take mlp or softmax")
        if task == "regression" and model == "softmax":
            raise ValueError("model softmax is a classifier; regression takes mlp")
        if task == "regression" and not table:
            raise ValueError(
                f"task regression needs a table (data table:FILE); data {self.data!r} is images "
                "of classes"
            )
        loss = loss_name(self.loss or TASKS[task][0], task)  # InputError is a ValueError
        # Set without re-validating (this validator would run again).
        for name, value in (("task", task), ("model", model), ("loss", loss)):
            object.__setattr__(self, name, value)
        return self

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        from descent.train.device import resolve_device

        resolve_device(value)  # refuses a malformed or absent device now, before any work
        return value

    _ints = field_validator(
        "batch_size", "epochs", "max_steps", "early_stopping", "stop_on_plateau", mode="before"
    )(_strict_int)
    _floats = field_validator("dropout", "init_std", "lr", "grad_clip", mode="before")(_real_number)

    @field_validator("init")
    @classmethod
    def _known_init(cls, value: str) -> str:
        from descent.models import parse_init

        parse_init(value, std=0.01)  # the one parser; "normal" takes init_std
        return value

    @field_validator("activation")
    @classmethod
    def _known_activation(cls, value: str) -> str:
        from descent.models import activation_name

        return activation_name(value)

    @field_validator("seed", mode="before")
    @classmethod
    def _seed(cls, value: Any) -> int:
        return validate.nonnegative_int(value, "seed")

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, value: Any) -> str:
        return validate.batch_mode(value, "mode")

    @field_validator("optimizer", mode="before")
    @classmethod
    def _known_optimizer(cls, value: Any) -> str:
        from descent.optim import OPTIMIZERS

        try:
            return validate.choice(value, "optimizer", OPTIMIZERS)
        except InputError:
            raise ValueError(
                f"unknown optimizer {value!r}; accepted: {', '.join(OPTIMIZERS)}"
            ) from None

    @field_validator("hidden", "channels", mode="before")
    @classmethod
    def _positive_sizes(cls, value: Any) -> list[int]:
        if (
            not isinstance(value, list)
            or not value
            or any(isinstance(size, bool) or not isinstance(size, int) for size in value)
            or any(size < 1 for size in value)
        ):
            raise ValueError(f"layer sizes must be a non-empty list of integers ≥ 1, got {value}")
        return value

    @field_validator("schedule", mode="before")
    @classmethod
    def _known_schedule(cls, value: Any) -> str | dict[str, Any] | None:
        from descent import schedules

        if isinstance(value, str) and value.strip().lower() in NO_SCHEDULE:
            return None
        if isinstance(value, str) and value not in schedules.names():
            raise ValueError(
                f"unknown schedule {value!r}; accepted: {', '.join(schedules.names())}, or none"
            )
        if isinstance(value, str) and value not in schedules.RUN_SCHEDULES:
            raise ValueError(
                f"schedule {value!r} needs its parameters: give it as a mapping (name: {value}, "
                f"…); named alone: {', '.join(schedules.RUN_SCHEDULES)}"
            )
        if isinstance(value, dict):
            schedules.from_dict(value)  # validates it now, before any training
        return value

    @field_validator("optimizer_params")
    @classmethod
    def _optimizer_takes_its_params(cls, value: dict[str, Any], info: Any) -> dict[str, Any]:
        """The names are checked against the rule's signature here (their values are checked by
        the rule itself when the run builds it, with the rule's own message)."""
        name = info.data.get("optimizer")
        if name is None:  # the optimizer itself was refused; that error is reported
            return value
        from descent.optim import OPTIMIZERS

        accepted = _rule_arguments(OPTIMIZERS[name])
        unknown = [key for key in value if key not in accepted]
        if unknown:
            raise ValueError(
                f"{name} takes no argument {unknown[0]!r}; accepted: {', '.join(accepted)}"
            )
        return value

    @property
    def torch_dtype(self) -> Any:
        """The parameters' and data's dtype: float64 for precision "64", float32 otherwise (the
        mixed precisions keep float32 parameters)."""
        import torch

        return torch.float64 if self.precision == "64" else torch.float32

    def learning_rate(self, steps_per_epoch: int) -> Any:
        """``lr`` itself (no schedule), the schedule given as a mapping, or a schedule named alone,
        made by :func:`descent.schedules.for_run` from ``lr`` over the whole run's updates."""
        from descent import schedules

        if self.schedule is None:
            return self.lr
        if isinstance(self.schedule, dict):
            return schedules.from_dict(self.schedule)
        total = self.max_steps or self.epochs * steps_per_epoch
        return schedules.for_run(self.schedule, self.lr, total)


def _rule_arguments(rule: type) -> list[str]:
    """The keyword arguments an update rule's constructor names (besides params and lr)."""
    parameters = inspect.signature(rule.__init__).parameters.values()
    return [
        parameter.name
        for parameter in parameters
        if parameter.name not in ("self", "params", "lr")
        and parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL)
    ]


def explain(error: ValidationError) -> str:
    """The first problem of a pydantic error as one line: where, what, what was given."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "config"
    message = first["msg"].removeprefix("Value error, ")
    if not first["loc"]:  # a check of settings together: its message names them
        return message
    given = first.get("input")
    if first["type"] == "extra_forbidden":
        accepted = LogOptions.model_fields if where.startswith("log.") else RunConfig.model_fields
        return f"unknown setting {where!r}; accepted: {', '.join(accepted)}"
    name = str(first["loc"][-1]) if first["loc"] else where
    if message.startswith(name + " "):  # descent's own check names the setting: name it in full
        message = message.removeprefix(name + " ")
        return (
            f"{where} {message}" if repr(given) in message else f"{where} {message}, got {given!r}"
        )
    if repr(given) in message:
        return f"{where}: {message}"
    return f"{where}: {message} (got {given!r})"


def read_yaml(path: str | Path, kind: str) -> Any:
    """A YAML file's content through descent's one YAML reader (1e-3 is a float; errors name the
    file in one line)."""
    return yamlfile.load(path, kind)


def load_config(path: str | Path | None = None, **overrides: Any) -> RunConfig:
    """A RunConfig from a YAML file (optional) with ``overrides`` on top.

    Every override is a setting given on purpose and wins, ``None`` included (``schedule=None``
    is "no schedule"); leave a setting out to keep the file's value or the default."""
    data: dict[str, Any] = {}
    if path is not None:
        loaded = yamlfile.load(path, "config")
        if loaded is not None and not isinstance(loaded, dict):
            raise InputError(
                f"{path}: a config is a mapping of settings, got {type(loaded).__name__}"
            )
        data.update(loaded or {})
    from_file = {key for key in data if key not in overrides}
    data.update(overrides)
    try:
        return RunConfig(**data)
    except ValidationError as error:
        message = explain(error)
        where = error.errors()[0]["loc"]
        if path is not None and where and where[0] in from_file:
            message = f"{path}: {message}"  # the bad value is in the file: name it
        raise InputError(message) from None
