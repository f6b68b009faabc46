"""One configuration model for a training run: the CLI, YAML files and tuning all go through it,
so a bad value fails in one place with one clear line."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from descent import optim
from descent import schedules as sch


class LogConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scalars_every: int = Field(10, ge=1)
    ratios_every: int = Field(50, ge=0)
    histograms_every: int = Field(0, ge=0)
    weight_images: bool = True


class RunConfig(BaseModel):
    """A training run. Unknown keys and out-of-range values are refused."""

    model_config = ConfigDict(extra="forbid")

    data: str = "digits"
    model: Literal["softmax", "mlp", "cnn"] = "cnn"
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
    mode: Literal["full", "sgd", "minibatch"] = "minibatch"
    batch_size: int = Field(50, ge=1)
    epochs: int = Field(40, ge=1)
    max_steps: int | None = Field(None, ge=1)
    early_stopping: int | None = Field(None, ge=1)
    grad_clip: float | None = Field(None, gt=0.0)
    dtype: Literal["float32", "float64"] = "float32"
    seed: int = 0
    logdir: str | None = None
    log: LogConfig = Field(default_factory=LogConfig)

    @field_validator("optimizer")
    @classmethod
    def _known_optimizer(cls, value: str) -> str:
        if value not in optim.OPTIMIZERS:
            raise ValueError(
                f"unknown optimizer {value!r}; accepted: {', '.join(optim.OPTIMIZERS)}"
            )
        return value

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

    @field_validator("hidden", "channels")
    @classmethod
    def _positive_sizes(cls, value: list[int]) -> list[int]:
        if not value or any(size < 1 for size in value):
            raise ValueError(f"layer sizes must be a non-empty list of integers ≥ 1, got {value}")
        return value

    @field_validator("schedule")
    @classmethod
    def _known_schedule(cls, value: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
        if isinstance(value, str) and value not in sch.names():
            raise ValueError(f"unknown schedule {value!r}; accepted: {', '.join(sch.names())}")
        if isinstance(value, dict):
            sch.from_dict(value)  # validates it now, before any training
        return value

    @model_validator(mode="after")
    def _optimizer_accepts_its_params(self) -> RunConfig:
        """Build the rule once on a dummy parameter: unknown or out-of-range optimizer_params
        fail here, with the rule's own message, not after data and model are loaded."""
        probe = torch.zeros(1, requires_grad=True)
        try:
            optim.create(self.optimizer, [probe], lr=self.lr, **self.optimizer_params)
        except TypeError as error:  # an unknown argument
            raise ValueError(str(error)) from None
        return self

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch.float32 if self.dtype == "float32" else torch.float64

    def learning_rate(self, steps_per_epoch: int) -> Any:
        """``lr`` itself, or the schedule: a dict as given, or a name completed with
        initial_learning_rate = lr and decay_steps = the whole run's updates."""
        if self.schedule is None:
            return self.lr
        if isinstance(self.schedule, dict):
            return sch.from_dict(self.schedule)
        total = self.max_steps or self.epochs * steps_per_epoch
        defaults: dict[str, dict[str, Any]] = {
            "cosine_decay": {"initial_learning_rate": self.lr, "decay_steps": total},
            "exponential_decay": {
                "initial_learning_rate": self.lr,
                "decay_steps": total,
                "decay_rate": 0.01,
            },
            "polynomial_decay": {"initial_learning_rate": self.lr, "decay_steps": total},
            "inverse_time_decay": {
                "initial_learning_rate": self.lr,
                "decay_steps": total,
                "decay_rate": 10.0,
            },
            "linear_cosine_decay": {"initial_learning_rate": self.lr, "decay_steps": total},
            "one_cycle": {"max_lr": self.lr, "total_steps": total},
            "constant": {"learning_rate": self.lr},
        }
        if self.schedule not in defaults:
            raise ValueError(
                f"schedule {self.schedule!r} needs its parameters: give it as a dict "
                f"(name: {self.schedule}, …) in the config"
            )
        return sch.create(self.schedule, **defaults[self.schedule])


def explain(error: ValidationError) -> str:
    """The first problem of a pydantic error as one line: where, what, what was given."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "config"
    message = first["msg"].removeprefix("Value error, ")
    given = first.get("input")
    if first["type"] == "extra_forbidden":
        return f"unknown setting {where!r}; accepted: {', '.join(RunConfig.model_fields)}"
    return f"{where}: {message} (got {given!r})"


def read_yaml(path: str | Path, kind: str) -> Any:
    """A YAML file's content, with one-line errors naming the file (``kind`` says what it is)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {kind} file")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({error})") from None


def load_config(path: str | Path | None = None, **overrides: Any) -> RunConfig:
    """A RunConfig from a YAML file (optional) with command-line overrides on top."""
    data: dict[str, Any] = {}
    if path is not None:
        loaded = read_yaml(path, "config")
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(
                f"{path}: a config is a mapping of settings, got {type(loaded).__name__}"
            )
        data.update(loaded or {})
    data.update({key: value for key, value in overrides.items() if value is not None})
    try:
        return RunConfig(**data)
    except ValidationError as error:
        raise ValueError(explain(error)) from None
