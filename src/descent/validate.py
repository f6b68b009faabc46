"""The argument checks every module shares: one wording, one place.

Each check raises :class:`descent.errors.InputError` with one sentence of the form
``"{name} must be {what is accepted}, got {value!r}"`` and returns the value it accepted (converted
where that is the point of the check, e.g. ``positive_int``). Update rules, schedules, RunConfig and
the CLI call these rather than writing their own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from descent.errors import InputError

Number = int | float


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, Number)


def finite(value: Any, name: str) -> float:
    """A finite real number (a bool is not a number here)."""
    if not _is_number(value) or not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def nonnegative(value: Any, name: str) -> float:
    """A finite number ≥ 0."""
    if finite(value, name) < 0:
        raise InputError(f"{name} must be ≥ 0, got {value!r}")
    return float(value)


def positive(value: Any, name: str) -> float:
    """A finite number > 0."""
    if finite(value, name) <= 0:
        raise InputError(f"{name} must be > 0, got {value!r}")
    return float(value)


def unit_interval(value: Any, name: str) -> float:
    """β, ρ, γ and friends: a number in [0, 1)."""
    if not _is_number(value) or not 0.0 <= value < 1.0:
        raise InputError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def in_range(
    value: Any, name: str, low: float, high: float, *, low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite number in the interval from ``low`` to ``high`` (closed unless said open)."""
    number = finite(value, name)
    if (number <= low if low_open else number < low) or (
        number >= high if high_open else number > high
    ):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise InputError(f"{name} must be in {interval}, got {value!r}")
    return number


def increasing(values: Sequence[Any], name: str, *, strict: bool = True) -> None:
    """Numbers in increasing order: each above the one before (``strict``), or not below it.
    Checks the order only; check each number first (finite, positive, …)."""
    for index in range(1, len(values)):
        if values[index] < values[index - 1] or (strict and values[index] == values[index - 1]):
            order = "be strictly increasing" if strict else "not decrease"
            raise InputError(f"{name} must {order}, got {list(values)}")


def positive_int(value: Any, name: str) -> int:
    """An integer ≥ 1 (a bool is not an integer here)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return value


def nonnegative_int(value: Any, name: str) -> int:
    """An integer ≥ 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(f"{name} must be an integer ≥ 0, got {value!r}")
    return value


def flag(value: Any, name: str) -> bool:
    """True or False, nothing that merely converts to one."""
    if not isinstance(value, bool):
        raise InputError(f"{name} must be True or False, got {value!r}")
    return value


def normalize_name(name: str) -> str:
    """The one spelling rule for names of rules, schedules, models and modes: case, '-', '_' and
    spaces do not matter ("Ada-Max" → "adamax")."""
    return "".join(ch for ch in name.lower() if ch not in "-_ ")


def choice(
    value: Any,
    name: str,
    accepted: Iterable[str],
    aliases: Mapping[str, str] | None = None,
) -> str:
    """``value`` normalized by :func:`normalize_name` and looked up among ``accepted`` (and
    ``aliases``: old or alternative spellings mapped to an accepted key).

    Returns the accepted key."""
    keys = list(accepted)
    if not isinstance(value, str):
        raise InputError(f"{name} must be one of {', '.join(keys)}, got {value!r}")
    if value in keys and normalize_name(value) == value:
        return value  # already canonical: no table to build (this runs on every fit)
    table = {normalize_name(key): key for key in keys}
    for alias, target in (aliases or {}).items():
        table.setdefault(normalize_name(alias), target)
    key = table.get(normalize_name(value))
    if key is None:
        raise InputError(f"{name} must be one of {', '.join(keys)}, got {value!r}")
    return key


#: The three batch modes of the lecture, by the names used everywhere (library, CLI, RunConfig).
#: "single" is one example per update; "sgd" is accepted as an alias for old configs, but it is not
#: the canonical name because it collides with the update rule called "sgd".
BATCH_MODES = ("full", "single", "minibatch")
BATCH_MODE_ALIASES = {"sgd": "single", "stochastic": "single", "batch": "full", "mini": "minibatch"}


def batch_mode(value: Any, name: str = "batch mode") -> str:
    """One of :data:`BATCH_MODES` (aliases accepted), returned by its canonical name."""
    return choice(value, name, BATCH_MODES, BATCH_MODE_ALIASES)


def learning_rate(value: Any, name: str = "lr") -> Any:
    """A learning rate: a finite number ≥ 0, a one-element tensor holding one, or a schedule (a
    callable of the 0-based update number, checked at update 0). Returns it unchanged."""
    accepted = "a finite float ≥ 0 or a schedule (a callable of the update number)"
    if callable(value):
        try:
            first = float(value(0))
        except Exception as exc:  # a schedule that cannot be evaluated is bad input
            raise InputError(f"{name}: the schedule {value!r} failed at update 0: {exc}") from exc
        if not math.isfinite(first) or first < 0:
            raise InputError(f"{name}(0) must be a finite float ≥ 0, got {first!r}")
        return value
    number = value
    if hasattr(value, "numel") and hasattr(value, "item"):  # a tensor, without importing torch
        if value.numel() != 1:
            raise InputError(f"{name} must be a scalar, got a tensor of shape {tuple(value.shape)}")
        number = value.item()
    if not _is_number(number) or not math.isfinite(number) or number < 0:
        raise InputError(f"{name} must be {accepted}, got {value!r}")
    return value
