"""The search space: which RunConfig settings a study varies, over which domains.

A space names RunConfig settings (``optimizer``, ``lr``, ``batch_size``, ``hidden``, ``dropout``,
``init``, …, and ``optimizer_params.X`` for a rule's own hyperparameters) with a domain each,
optionally conditional on a setting listed before it::

    base: {model: cnn, epochs: 10}
    params:
      optimizer: {choices: [momentum, adam]}
      lr: {float: [1e-4, 1e-1], log: true}
      batch_size: {choices: [32, 64, 128]}
      optimizer_params.momentum: {float: [0.5, 0.99], when: {optimizer: [momentum]}}

Everything is checked before a trial runs, without ever enumerating the space (an int range may
hold 10⁸ values): each domain's bounds, each condition, and one RunConfig per domain end or choice
(with the other settings at a value that keeps the setting active), so an unknown optimizer or an
argument a rule does not take is refused up front. A grid's size is counted, not listed, and a
grid larger than :data:`MAX_GRID_POINTS` is refused with its size.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from descent import validate, yamlfile
from descent.errors import InputError

#: The largest grid a study accepts: every point is a whole training run.
MAX_GRID_POINTS = 10_000

DEFAULT_SPACE: dict[str, Any] = {
    "base": {"model": "cnn", "epochs": 10},
    "params": {
        "optimizer": {"choices": ["momentum", "adam", "rmsprop"]},
        "lr": {"float": [1.0e-4, 1.0e-1], "log": True},
        "batch_size": {"choices": [32, 64, 128]},
        "optimizer_params.momentum": {"float": [0.5, 0.99], "when": {"optimizer": ["momentum"]}},
    },
}

#: The learning-rate range (log-uniform) a study gives each rule when rules are compared: η's
#: scale is the rule's own (Lion's sign step wants one 3–10× below Adam's, LARS's trust ratio
#: one far above, Prodigy's η is a multiplier of its estimate, Adafactor's caps a relative step),
#: so each range spans two to three decades around the rule's usual values.
LR_RANGES: dict[str, tuple[float, float]] = {
    "sgd": (1e-3, 1.0),
    "momentum": (1e-4, 0.3),
    "nesterov": (1e-4, 0.3),
    "adagrad": (1e-3, 1.0),
    "adadelta": (0.03, 30.0),
    "rmsprop": (1e-5, 1e-2),
    "adam": (1e-5, 1e-1),
    "adamax": (1e-4, 1e-1),
    "nadam": (1e-5, 1e-1),
    "amsgrad": (1e-5, 1e-1),
    "adamw": (1e-5, 1e-1),
    "radam": (1e-5, 1e-1),
    "lion": (1e-6, 1e-2),
    "lamb": (1e-4, 1e-1),
    "lars": (1e-2, 30.0),
    "schedule_free_sgd": (1e-3, 3.0),
    "schedule_free_adamw": (1e-5, 1e-1),
    "prodigy": (0.1, 10.0),
    "muon": (1e-3, 0.3),
    "adafactor": (1e-3, 1.0),
    "soap": (1e-5, 1e-1),
}


#: The lecture's rules; every other rule in :data:`descent.optim.OPTIMIZERS` is a newer one.
LECTURE_RULES = (
    "sgd",
    "momentum",
    "nesterov",
    "adagrad",
    "adadelta",
    "rmsprop",
    "adam",
    "adamax",
    "nadam",
    "amsgrad",
    "adamw",
)
#: The lecture's rules a comparison of the newer ones keeps as reference points.
REFERENCE_RULES = ("momentum", "adam", "adamw")


def newer_rules() -> tuple[str, ...]:
    """The rules beyond the lecture's, in the registry's order: read from
    :data:`descent.optim.OPTIMIZERS`, so a rule added there is compared (and tested) with no
    other list to edit."""
    from descent.optim import OPTIMIZERS

    return tuple(name for name in OPTIMIZERS if name not in LECTURE_RULES)


def compared_rules() -> tuple[str, ...]:
    """What a comparison of rules runs by default: the reference points, then the newer rules."""
    return (*REFERENCE_RULES, *newer_rules())


def rule_space(rule: str, base: dict[str, Any] | None = None) -> SearchSpace:
    """The space that tunes one rule's learning rate over its :data:`LR_RANGES` range, on
    ``base`` (the same for every rule in a comparison: each gets the same budget)::

        study = tune(StudySettings(Path("runs/lion"), rule_space("lion", {"model": "mlp"}),
                                   method="tpe", trials=6))
    """
    from descent.optim import OPTIMIZERS

    name = validate.choice(rule, "optimizer", OPTIMIZERS)
    low, high = LR_RANGES[name]
    return SearchSpace.from_dict(
        {
            "base": {**(base or {}), "optimizer": name},
            "params": {"lr": {"float": [low, high], "log": True}},
        }
    )


_DOMAIN_HELP = "{choices: [...]}, {int: [low, high]} or {float: [low, high], log: true}"


@dataclass(frozen=True)
class Param:
    """One hyperparameter: a discrete set, an int range or a float range (log or linear),
    drawn only where its ``when`` conditions hold (each names an earlier setting and the values
    of it under which this one exists)."""

    name: str
    kind: str  # "choice", "int", "float"
    choices: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def active(self, values: dict[str, Any]) -> bool:
        return all(values.get(name) in allowed for name, allowed in self.when)

    def grid_size(self) -> int:
        """How many values a grid tries, counted without listing them."""
        if self.kind == "choice":
            return len(self.choices)
        if self.kind == "int":
            return int(self.high) - int(self.low) + 1
        raise InputError(
            f"search space: {self.name}: a float range has no grid; list the values to try "
            "as choices"
        )

    def grid_values(self) -> list[Any]:
        self.grid_size()  # refuses a float range
        if self.kind == "choice":
            return list(self.choices)
        return list(range(int(self.low), int(self.high) + 1))

    def ends(self) -> list[Any]:
        """The values validation tries: every choice, or a range's two ends."""
        if self.kind == "choice":
            return list(self.choices)
        low, high = (int(self.low), int(self.high)) if self.kind == "int" else (self.low, self.high)
        return [low] if low == high else [low, high]

    def contains(self, value: Any) -> bool:
        if self.kind == "choice":
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.kind == "int" and not float(value).is_integer():
            return False
        return self.low <= value <= self.high


def _accepted_names() -> list[str]:
    from descent.train.config import RunConfig

    return [name for name in RunConfig.model_fields if name not in ("logdir", "log", "seed")]


def _bound(value: Any, where: str, integer: bool) -> float:
    if integer:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{where}: an int range needs integer bounds, got {value!r}")
        return value
    return validate.finite(value, f"{where}: a range bound")


def _parse_param(name: str, spec: Any, known: list[str]) -> Param:
    where = f"search space: {name}"
    if not (name in known or name.startswith("optimizer_params.")):
        raise InputError(
            f"{where}: unknown hyperparameter; accepted: {', '.join(known)}, optimizer_params.NAME"
        )
    if not isinstance(spec, dict):
        raise InputError(f"{where}: give {_DOMAIN_HELP}, got {spec!r}")
    kinds = [kind for kind in ("choices", "int", "float") if kind in spec]
    unknown = [key for key in spec if key not in ("choices", "int", "float", "log", "when")]
    if len(kinds) != 1 or unknown:
        raise InputError(
            f"{where}: needs exactly one of choices, int, float (and optionally log, when), "
            f"got keys {sorted(spec)}"
        )
    when = spec.get("when", {})
    if not isinstance(when, dict) or not all(isinstance(v, list) and v for v in when.values()):
        raise InputError(f"{where}: when must map a setting to a non-empty list of its values")
    conditions = tuple((key, tuple(_hashable(v) for v in values)) for key, values in when.items())
    log = validate.flag(spec.get("log", False), f"{where}: log")
    if kinds[0] == "choices":
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise InputError(f"{where}: the choice list is empty")
        if log:
            raise InputError(f"{where}: log applies to ranges, not choices")
        values = tuple(_hashable(c) for c in choices)
        if len(set(map(repr, values))) != len(values):
            raise InputError(f"{where}: the choices {choices!r} repeat a value")
        return Param(name, "choice", values, when=conditions)
    bounds = spec[kinds[0]]
    if not isinstance(bounds, list) or len(bounds) != 2:
        raise InputError(f"{where}: a range is [low, high], got {bounds!r}")
    integer = kinds[0] == "int"
    low, high = (_bound(b, where, integer) for b in bounds)
    if low > high:
        raise InputError(f"{where}: low {low} > high {high}")
    if log and low <= 0:
        raise InputError(f"{where}: a log range needs low > 0, got {low}")
    return Param(name, kinds[0], low=low, high=high, log=log, when=conditions)


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def encode(value: Any) -> Any:
    """A choice as Optuna stores it: scalars as they are, lists as their text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(list(value))


@dataclass(frozen=True)
class SearchSpace:
    """A base RunConfig (as a mapping) and the hyperparameters a study varies on top of it.

    Example::

        space = SearchSpace.from_dict({
            "base": {"model": "softmax", "epochs": 3},
            "params": {"lr": {"float": [1e-3, 1e-1], "log": True}},
        })
        space.config({"lr": 0.01}, Path("runs/trial"))  # the RunConfig of one trial
    """

    base: dict[str, Any]
    params: tuple[Param, ...]

    @classmethod
    def from_dict(cls, data: Any) -> SearchSpace:
        """Check everything a trial would use, before any trial: names, domains, conditions,
        the base, and a RunConfig for every choice and range end."""
        if not isinstance(data, dict) or "params" not in data:
            raise InputError("search space: a mapping with 'params' (and optionally 'base')")
        unknown = [key for key in data if key not in ("base", "params")]
        if unknown:
            raise InputError(f"search space: unknown section(s) {unknown}; accepted: base, params")
        params = data["params"]
        if not isinstance(params, dict) or not params:
            raise InputError("search space: 'params' must name at least one hyperparameter")
        base = data.get("base") or {}
        if not isinstance(base, dict):
            raise InputError(f"search space: base must be a mapping of settings, got {base!r}")
        known = _accepted_names()
        parsed = tuple(_parse_param(name, spec, known) for name, spec in params.items())
        space = cls(copy.deepcopy(base), parsed)
        space._check_conditions()
        space._check_configs()
        return space

    @classmethod
    def from_yaml(cls, path: str | Path) -> SearchSpace:
        data = yamlfile.load(path, "search space")
        try:
            return cls.from_dict(data)
        except ValueError as error:
            raise InputError(f"{path}: {error}") from None

    def _param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    def _check_conditions(self) -> None:
        names = [p.name for p in self.params]
        for param in self.params:
            for condition, allowed in param.when:
                if condition not in names[: names.index(param.name)]:
                    raise InputError(
                        f"search space: {param.name}: its condition names {condition!r}, "
                        "which must be a hyperparameter listed before it"
                    )
                outside = [v for v in allowed if not self._param(condition).contains(v)]
                if outside:
                    raise InputError(
                        f"search space: {param.name}: condition values {outside} are not in "
                        f"the domain of {condition}"
                    )
            self._requirements(param)  # refuses conditions that can never hold together

    def _requirements(self, param: Param) -> dict[str, tuple[Any, ...]]:
        """The values each earlier setting must take for ``param`` to be drawn (its own
        conditions and, recursively, those of the settings they name)."""
        needed: dict[str, tuple[Any, ...]] = {}
        for condition, allowed in param.when:
            source = self._requirements(self._param(condition))
            source.setdefault(condition, allowed)
            for name, values in source.items():
                merged = tuple(v for v in needed.get(name, values) if v in values)
                if not merged:
                    raise InputError(
                        f"search space: {param.name}: its conditions on {name} can never hold "
                        "together, so it would never be drawn"
                    )
                needed[name] = merged
        return needed

    def _check_configs(self) -> None:
        """One RunConfig per (setting, choice or range end): linear in the number of settings,
        whatever the size of the space."""
        from descent.train.config import load_config

        try:
            load_config(None, **self.base)
        except ValueError as error:
            raise InputError(f"search space: base: {error}") from None
        for param in self.params:
            needed = self._requirements(param)
            for value in param.ends():
                values: dict[str, Any] = {}
                for other in self.params:
                    if not other.active(values):
                        continue
                    if other is param:
                        values[other.name] = value
                    elif other.name in needed:
                        values[other.name] = needed[other.name][0]
                    else:
                        values[other.name] = other.ends()[0]
                try:
                    self.config(values, Path("."))
                except ValueError as error:
                    raise InputError(
                        f"search space: {param.name} = {_plain(value)!r}: {error}"
                    ) from None

    def to_dict(self) -> dict[str, Any]:
        """The space as plain data (``from_dict`` reads it back; JSON and YAML can hold it)."""
        params: dict[str, Any] = {}
        for p in self.params:
            spec: dict[str, Any] = (
                {"choices": [_plain(c) for c in p.choices]}
                if p.kind == "choice"
                else {p.kind: [p.low, p.high], "log": p.log}
            )
            if p.when:
                spec["when"] = {k: [_plain(v) for v in values] for k, values in p.when}
            params[p.name] = spec
        return json.loads(json.dumps({"base": self.base, "params": params}))

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Define-by-run sampling: a conditional setting is only drawn where its condition holds."""
        values: dict[str, Any] = {}
        for p in self.params:
            if not p.active(values):
                continue
            if p.kind == "choice":
                index = {encode(c): c for c in p.choices}
                values[p.name] = index[trial.suggest_categorical(p.name, list(index))]
            elif p.kind == "int":
                values[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log)
            else:
                values[p.name] = trial.suggest_float(p.name, float(p.low), float(p.high), log=p.log)
        return values

    def grid_size(self) -> int:
        """The number of grid points, counted without listing them: only the settings that a
        condition names are split by value (one bucket for the values no condition names)."""
        named: dict[str, set[Any]] = {}
        for p in self.params:
            for condition, allowed in p.when:
                named.setdefault(condition, set()).update(allowed)
        other = object()  # stands for "a value no condition names"
        states: list[tuple[dict[str, Any], int]] = [({}, 1)]
        for p in self.params:
            size = p.grid_size()
            grown: list[tuple[dict[str, Any], int]] = []
            for values, count in states:
                if not p.active(values):
                    grown.append((values, count))
                elif p.name not in named:
                    grown.append((values, count * size))
                else:
                    listed = [v for v in named[p.name] if p.contains(v)]
                    grown += [({**values, p.name: v}, count) for v in listed]
                    if size > len(listed):
                        grown.append(({**values, p.name: other}, count * (size - len(listed))))
            states = grown
        return sum(count for _, count in states)

    def grid(self) -> list[dict[str, Any]]:
        """Every combination of the active settings (conditional ones only where active);
        refused beyond :data:`MAX_GRID_POINTS`."""
        size = self.grid_size()
        if size > MAX_GRID_POINTS:
            raise InputError(
                f"search space: the grid has {size} points, more than {MAX_GRID_POINTS}; "
                "narrow the int ranges or use --method random or tpe"
            )
        combos: list[dict[str, Any]] = [{}]
        for p in self.params:
            grown = []
            for combo in combos:
                if p.active(combo):
                    grown += [{**combo, p.name: value} for value in p.grid_values()]
                else:
                    grown.append(combo)
            combos = grown
        return combos

    def config(self, values: dict[str, Any], logdir: Path) -> Any:
        """The RunConfig of one trial: the base with the trial's values on top."""
        from descent.train.config import load_config

        settings = copy.deepcopy(self.base)
        for name, value in values.items():
            value = list(value) if isinstance(value, tuple) else value
            if name.startswith("optimizer_params."):
                settings.setdefault("optimizer_params", {})[name.split(".", 1)[1]] = value
            else:
                settings[name] = value
        settings["logdir"] = str(logdir)
        settings.setdefault("log", {"ratios_every": 0, "weight_images": False})
        return load_config(None, **settings)

    def data_sources(self) -> list[str]:
        """Every data set a trial may read: the base's and any listed as choices."""
        from descent.train.config import load_config

        sources = [load_config(None, **self.base).data]
        for p in self.params:
            if p.name == "data":
                sources += [c for c in p.choices if c not in sources]
        return sources


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def difference(saved: dict[str, Any], given: dict[str, Any]) -> list[str]:
    """What differs between two plain-data records, one phrase per setting:
    ``"lr: {...} there, {...} here"``."""
    phrases = []
    for key in [*saved, *(k for k in given if k not in saved)]:
        if key not in given:
            phrases.append(f"{key}: {_short(saved[key])} there, absent here")
        elif key not in saved:
            phrases.append(f"{key}: absent there, {_short(given[key])} here")
        elif isinstance(saved[key], dict) and isinstance(given[key], dict):
            phrases += [f"{key}.{p}" for p in difference(saved[key], given[key])]
        elif saved[key] != given[key]:
            phrases.append(f"{key}: {_short(saved[key])} there, {_short(given[key])} here")
    return phrases


def _short(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "))
