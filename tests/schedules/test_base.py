"""The checks a schedule's fields carry in their types (NonNegative, Positive, PositiveInt,
Finite) run for every schedule, name the field, and let None through an optional field."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from descent import schedules as sch
from descent.errors import InputError
from descent.schedules.base import NonNegative, Positive, Schedule

#: name: (valid parameters, {field: a value outside the field's domain}).
DOMAINS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "exponential_decay": (
        {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5},
        {"initial_learning_rate": -0.1, "decay_steps": 0},
    ),
    "polynomial_decay": (
        {"initial_learning_rate": 0.1, "decay_steps": 10},
        {"initial_learning_rate": -1, "decay_steps": -5, "end_learning_rate": -1e-4, "power": 0},
    ),
    "cosine_decay": (
        {"initial_learning_rate": 0.1, "decay_steps": 10},
        {"decay_steps": 0, "alpha": -0.5, "warmup_target": -1.0, "warmup_steps": -1},
    ),
    "cosine_decay_restarts": (
        {"initial_learning_rate": 0.1, "first_decay_steps": 10},
        {"first_decay_steps": 0, "t_mul": 0, "m_mul": -1, "alpha": -0.1},
    ),
    "linear_cosine_decay": (
        {"initial_learning_rate": 0.1, "decay_steps": 10},
        {"num_periods": math.inf, "alpha": -1, "beta": -0.001},
    ),
    "noisy_linear_cosine_decay": (
        {"initial_learning_rate": 0.1, "decay_steps": 10},
        {"initial_variance": -1, "variance_decay": -0.55, "num_periods": math.nan},
    ),
    "cyclical": (
        {"base_lr": 0.01, "max_lr": 0.1},
        {"base_lr": -0.01, "max_lr": -0.1, "step_size_up": 0, "step_size_down": -3},
    ),
    "constant": ({"learning_rate": 0.1}, {"learning_rate": -0.1}),
    "step": (
        {"initial_learning_rate": 0.1, "step_size": 3},
        {"initial_learning_rate": -0.1, "step_size": 2.5, "gamma": -0.1},
    ),
    "multistep": (
        {"initial_learning_rate": 0.1, "milestones": [3, 6]},
        {"initial_learning_rate": -0.1, "gamma": -0.5},
    ),
    "linear_warmup": (
        {"target": 0.1, "warmup_steps": 5},
        {"target": -0.1, "warmup_steps": 0, "initial": -1},
    ),
    "one_cycle": (
        {"max_lr": 0.1, "total_steps": 100},
        {"max_lr": -0.1, "total_steps": 0, "div_factor": 0, "final_div_factor": -1},
    ),
}


@pytest.mark.parametrize(
    ("name", "field"), [(name, field) for name, (_, bad) in DOMAINS.items() for field in bad]
)
def test_a_value_outside_a_fields_domain_is_refused_naming_the_field(name: str, field: str) -> None:
    valid, bad = DOMAINS[name]
    sch.create(name, **valid)  # the valid parameters are valid
    with pytest.raises(InputError, match=f"^{field} must be"):
        sch.create(name, **{**valid, field: bad[field]})


@pytest.mark.parametrize(
    ("name", "field"), [(name, field) for name, (valid, _) in DOMAINS.items() for field in valid]
)
def test_none_is_refused_in_a_required_field_naming_it(name: str, field: str) -> None:
    valid, _ = DOMAINS[name]
    with pytest.raises(InputError, match=f"^{field}"):
        sch.create(name, **{**valid, field: None})


def test_none_passes_an_optional_checked_field() -> None:
    assert sch.CosineDecay(0.1, 10, warmup_target=None)(3) == sch.CosineDecay(0.1, 10)(3)
    assert sch.Cyclical(0.01, 0.1, step_size_down=None).step_size_down is None


def test_a_schedule_of_ones_own_gets_the_checks_its_types_carry() -> None:
    @dataclass(frozen=True)
    class Halving(Schedule):
        name: ClassVar[str] = ""  # not registered
        start: NonNegative
        every: Positive = 10.0

        def value(self, step: float) -> float:
            return self.start * 0.5 ** (step // self.every)

    assert Halving(1.0)(25) == 0.25
    with pytest.raises(InputError, match=r"^start must be ≥ 0"):
        Halving(-1.0)
    with pytest.raises(InputError, match=r"^every must be > 0"):
        Halving(1.0, every=0)


@pytest.mark.parametrize(
    ("schedule", "field"),
    [
        (lambda: sch.MultiStepDecay(0.1, [2, 4]), "milestones"),
        (lambda: sch.PiecewiseConstantDecay([5.0], [0.1, 0.01]), "boundaries"),
        (lambda: sch.Join([sch.Constant(0.1), sch.Constant(0.01)], [5]), "schedules"),
    ],
)
def test_a_list_field_is_stored_as_a_tuple_so_the_schedule_hashes(
    schedule: Callable[[], Schedule], field: str
) -> None:
    built = schedule()
    assert isinstance(getattr(built, field), tuple)
    assert hash(built) == hash(schedule())
    assert built == schedule()


def test_a_list_field_refuses_what_is_not_a_list() -> None:
    with pytest.raises(InputError, match=r"^milestones must be a list, got 3"):
        sch.MultiStepDecay(0.1, 3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        (lambda: sch.PiecewiseConstantDecay([1.0, math.inf], [0.1, 0.05, 0.01]), "boundaries[1]"),
        (lambda: sch.PiecewiseConstantDecay([1.0], [0.1, -0.01]), "values[1] must be ≥ 0"),
        (lambda: sch.MultiStepDecay(0.1, [-1, 4]), "milestones[0] must be ≥ 0"),
        (lambda: sch.Join([sch.Constant(0.1), sch.Constant(0.01)], [0]), "boundaries[0] must be >"),
    ],
)
def test_each_element_of_a_list_field_is_checked_naming_its_index(
    schedule: Callable[[], Schedule], message: str
) -> None:
    with pytest.raises(InputError, match=f"^{re.escape(message)}"):
        schedule()
