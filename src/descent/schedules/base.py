"""The shell every schedule shares: an immutable dataclass ``schedule(step) -> float`` of the
0-based update number, with a readable repr, equality by parameters, and ``to_dict()`` /
:func:`from_dict` so it can live in a YAML config, a checkpoint or an HParams table."""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from descent import validate
from descent.errors import InputError

Number = int | float

# A field's check stated with its type, the way pydantic's Field(ge=0) is: ``gamma: NonNegative``
# is checked by Schedule.__post_init__ (``None`` passes a ``NonNegative | None`` field), and a
# ``tuple[Finite, ...]`` field is stored as a tuple and each element checked (``boundaries[2]``),
# so a schedule's own __post_init__ keeps only the checks that are its own (a choice, a range,
# how two lists fit together).
NonNegative = Annotated[float, validate.nonnegative]
Positive = Annotated[float, validate.positive]
PositiveInt = Annotated[int, validate.positive_int]
Finite = Annotated[float, validate.finite]

#: a check of one value: ``check(value, name)`` raises InputError naming it
Check = Callable[[Any, str], Any]
#: a check of a schedule's field: ``check(schedule, field)``
FieldCheck = Callable[["Schedule", str], None]


def _value_check(check: Check, optional: bool) -> FieldCheck:
    """The field's check; ``None`` passes only an optional field (``NonNegative | None``)."""

    def field_check(schedule: Schedule, name: str) -> None:
        value = getattr(schedule, name)
        if value is not None or not optional:
            check(value, name)

    return field_check


def _list_check(each: Check | None) -> FieldCheck:
    def field_check(schedule: Schedule, name: str) -> None:
        values = _tuple_field(schedule, name)
        if each is not None:
            for index, value in enumerate(values):
                each(value, f"{name}[{index}]")

    return field_check


def _check_of(annotation: Any) -> Check | None:
    """The check an ``Annotated[type, check]`` carries (None for a type without one)."""
    return annotation.__metadata__[0] if typing.get_origin(annotation) is Annotated else None


@functools.cache
def _field_checks(cls: type) -> tuple[tuple[str, FieldCheck], ...]:
    """(field, check) for every init field of ``cls`` whose type carries a check, in field order;
    a ``tuple[...]`` field's check stores it as a tuple, then checks each element."""
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except NameError:  # annotations that do not resolve at module level (a schedule written in
        # a function, or names imported only for type checking): no type-carried checks, only
        # its own __post_init__'s (docs/schedules.md says so)
        return ()
    checks = []
    for item in dataclasses.fields(cls):
        hint = hints.get(item.name)
        # ``NonNegative | None``: the check sits on the union's non-None member
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        members = typing.get_args(hint) if union else (hint,)
        for member in members:
            check = _check_of(member)
            if check is not None:
                checks.append((item.name, _value_check(check, type(None) in members)))
            elif typing.get_origin(member) is tuple:
                checks.append((item.name, _list_check(_check_of(typing.get_args(member)[0]))))
    return tuple(checks)


def _step(step: Any, schedule: str) -> float:
    if step is None:
        raise InputError(f"global_step is required for {schedule}")
    if hasattr(step, "item"):  # a 0-d tensor or numpy scalar
        step = step.item()
    if isinstance(step, bool) or not isinstance(step, Number) or not math.isfinite(step):
        raise InputError(f"{schedule}: the step must be a finite number ≥ 0, got {step!r}")
    if step < 0:
        raise InputError(f"{schedule}: the step must be ≥ 0, got {step!r}")
    return step


_REGISTRY: dict[str, type[Schedule]] = {}


@dataclass(frozen=True)
class Schedule:
    """Base of every schedule: ``__call__(step) -> float``, ``to_dict``, equality, ``repr``."""

    #: the name used in dicts, YAML and the CLI (TF's function name where there is one)
    name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            _REGISTRY[cls.name] = cls

    def __post_init__(self) -> None:
        """The checks the fields' types carry (``NonNegative``, ``Positive``, …); a subclass with
        checks of its own runs these first, through ``super().__post_init__()``."""
        for name, check in _field_checks(type(self)):
            check(self, name)

    def __call__(self, step: Number) -> float:
        step = _step(step, self.name)
        try:
            return float(self.value(step))
        except OverflowError:  # e.g. decay_rate ** (step / decay_steps) past the float range
            raise InputError(
                f"{self.name}: the rate overflows the float range at step {step:g}; "
                f"check the parameters ({self!r})"
            ) from None

    def value(self, step: float) -> float:
        """The rate at a validated step; subclasses implement the formula here."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (JSON/YAML-safe) that :func:`from_dict` turns back into this schedule."""
        out: dict[str, Any] = {"name": self.name}
        for item in dataclasses.fields(self):
            if not item.init:
                continue
            value = getattr(self, item.name)
            if isinstance(value, Schedule):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = [v.to_dict() if isinstance(v, Schedule) else v for v in value]
            out[item.name] = value
        return out


def from_dict(data: dict[str, Any]) -> Schedule:
    """Rebuild a schedule from :meth:`Schedule.to_dict` output (or hand-written YAML)."""
    if not isinstance(data, dict) or "name" not in data:
        raise InputError(f"a schedule dict needs a 'name' key naming the schedule, got {data!r}")
    params = dict(data)
    name = params.pop("name")
    if not isinstance(name, str) or name not in _REGISTRY:
        raise InputError(f"unknown schedule {name!r}; accepted: {', '.join(sorted(_REGISTRY))}")
    cls = _REGISTRY[name]
    accepted = [item.name for item in dataclasses.fields(cls) if item.init]
    unknown = [key for key in params if key not in accepted]
    if unknown:
        raise InputError(
            f"{name} got unknown parameter(s) {', '.join(map(repr, unknown))}; "
            f"accepted: {', '.join(accepted)}"
        )
    for key, value in params.items():
        if isinstance(value, dict) and "name" in value:
            params[key] = from_dict(value)
        elif (
            isinstance(value, list)
            and value
            and all(isinstance(v, dict) and "name" in v for v in value)
        ):
            params[key] = [from_dict(v) for v in value]
    missing = [
        item.name
        for item in dataclasses.fields(cls)
        if item.init
        and item.name not in params
        and item.default is dataclasses.MISSING
        and item.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise InputError(f"{name} needs {', '.join(missing)}; accepted: {', '.join(accepted)}")
    return cls(**params)


def create(name: str, **params: Any) -> Schedule:
    """Build a schedule by name: ``create("exponential_decay", initial_learning_rate=0.1, …)``."""
    return from_dict({"name": name, **params})


def parameters(name: str) -> list[str]:
    """The parameters a schedule takes, in order: ``parameters("step")``."""
    if name not in _REGISTRY:
        raise InputError(f"unknown schedule {name!r}; accepted: {', '.join(sorted(_REGISTRY))}")
    return [item.name for item in dataclasses.fields(_REGISTRY[name]) if item.init]


def names() -> list[str]:
    """Every schedule name :func:`create` accepts."""
    return sorted(_REGISTRY)


def _run_parameters(lr: float, total: int) -> dict[str, dict[str, Any]]:
    """The parameters of a schedule named without them (``schedule: cosine_decay`` in a run's
    config): it starts at the run's ``lr`` and spans the run's ``total`` updates."""
    return {
        "cosine_decay": {"initial_learning_rate": lr, "decay_steps": total},
        "exponential_decay": {
            "initial_learning_rate": lr,
            "decay_steps": total,
            "decay_rate": 0.01,
        },
        "polynomial_decay": {"initial_learning_rate": lr, "decay_steps": total},
        "inverse_time_decay": {
            "initial_learning_rate": lr,
            "decay_steps": total,
            "decay_rate": 10.0,
        },
        "linear_cosine_decay": {"initial_learning_rate": lr, "decay_steps": total},
        "one_cycle": {"max_lr": lr, "total_steps": total},
        "constant": {"learning_rate": lr},
    }


#: Schedules a run may name without parameters (the others need theirs: boundaries, periods, …).
RUN_SCHEDULES: tuple[str, ...] = tuple(_run_parameters(1.0, 1))


def for_run(name: str, lr: float, total_steps: int) -> Schedule:
    """The schedule ``name`` for a training run: from the run's ``lr`` over its ``total_steps``
    updates (exponential decay to 1 % of lr, inverse-time decay to 1/11 of it, the others to their
    own end value)."""
    parameters = _run_parameters(lr, total_steps)
    if name not in parameters:
        raise InputError(
            f"schedule {name!r} needs its parameters: give it as a mapping (name: {name}, …); "
            f"named alone: {', '.join(RUN_SCHEDULES)}"
        )
    return create(name, **parameters[name])


def _tuple_field(schedule: Schedule, name: str) -> tuple[Any, ...]:
    """The list field ``name`` of a frozen schedule, stored back as a tuple (so the schedule
    hashes and compares by value) and returned; anything but a list or tuple is refused.
    Schedule.__post_init__ runs it on every ``tuple[...]`` field."""
    values = getattr(schedule, name)
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise InputError(f"{name} must be a list, got {values!r}")
    values = tuple(values)
    object.__setattr__(schedule, name, values)
    return values
