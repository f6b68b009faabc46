"""Optimizer races on a 2-D landscape: every rule from the same start, step by step.

All runs of a race (one per rule, or one per rule and candidate rate when tuning) advance
together: their points are one ``[runs, 2]`` tensor, the landscape's analytic gradient is one
call for all of them, and the runs of each rule are one stacked tensor stepped by the rule's own
reference formula from :mod:`descent.optim` (see :data:`STACKED_REFERENCES`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from descent import optim, validate
from descent.errors import InputError
from descent.landscapes.functions import Landscape, get

#: The lecture's rules, in the order it introduces them.
DEFAULT_RULES = ("sgd", "momentum", "nesterov", "adagrad", "adadelta", "rmsprop", "adam")
#: Candidate rates ``tune`` tries for every rule (log-spaced, 1e-4 … 10).
TUNE_RATES = tuple(10 ** (k / 4) for k in range(-16, 5))
#: A point this far outside the view box (in box widths) has diverged.
DIVERGENCE_BOXES = 100.0


@dataclass(frozen=True)
class RuleRun:
    """One rule's run: its path and how it ended."""

    rule: str
    lr: float
    path: Tensor  # [steps + 1, 2], float64; frozen at its last finite point if it diverged
    steps_to_tolerance: int | None  # first step within the tolerance of a stated point
    final_distance: float  # to the nearest stated minimum (or saddle)
    final_value: float
    diverged_at: int | None

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None

    @property
    def step_lengths(self) -> Tensor:
        """‖θₜ₊₁ − θₜ‖ for every step."""
        return (self.path[1:] - self.path[:-1]).norm(dim=1)


@dataclass(frozen=True)
class RaceResult:
    """The runs of a race, the landscape and the tolerance they were judged by."""

    landscape: Landscape
    runs: tuple[RuleRun, ...]
    tolerance: float
    tuned: bool

    def __getitem__(self, rule: str) -> RuleRun:
        for run in self.runs:
            if run.rule == rule:
                return run
        raise KeyError(rule)

    def table(self) -> list[dict[str, object]]:
        """One row per rule: rate, steps to the tolerance, final distance and value, diverged."""
        return [
            {
                "rule": run.rule,
                "lr": run.lr,
                "steps to tolerance": run.steps_to_tolerance,
                "final distance": run.final_distance,
                "final value": run.final_value,
                "diverged": run.diverged,
            }
            for run in self.runs
        ]


def _scaled(schedule: Callable[[int], float] | None, lr: float) -> float | Callable[[int], float]:
    """A rule's rate under a schedule: the schedule's shape, scaled to start at the rule's rate."""
    if schedule is None:
        return lr
    first = _first(schedule)
    return lambda n: lr * float(schedule(n)) / first


def _first(schedule: Callable[[int], float]) -> float:
    first = float(schedule(0))
    if not first > 0 or not math.isfinite(first):
        raise InputError(f"the schedule must start above 0 to scale each rule's rate, got {first}")
    return first


#: Rules whose reference step is elementwise, so it runs unchanged on the stacked points of all
#: their runs (a [runs, 2] tensor, with a [runs, 1] column of rates). Each entry is the rule's own
#: reference formula from descent.optim, and, where a state does not start at 0, its first value
#: (Adagrad keeps S = G + ε when ε is inside the root: adagrad_reference's convention).
#: Other rules (LAMB's and LARS's trust ratios, Adafactor's factored moments, Prodigy's and
#: Muon's estimates couple a parameter's coordinates) run one descent optimizer per run.
STACKED_REFERENCES: dict[str, tuple[Callable[..., Any], Callable[[Mapping[str, Any]], float]]] = {
    "sgd": (optim.sgd_reference, lambda _: 0.0),
    "momentum": (optim.momentum_reference, lambda _: 0.0),
    "nesterov": (optim.nesterov_reference, lambda _: 0.0),
    "adagrad": (
        optim.adagrad_reference,
        lambda h: h["initial_accumulator_value"] + (h["eps"] if h["eps_inside_sqrt"] else 0.0),
    ),
    "adadelta": (optim.adadelta_reference, lambda _: 0.0),
    "rmsprop": (optim.rmsprop_reference, lambda _: 0.0),
    "adam": (optim.adam_reference, lambda _: 0.0),
    "adamax": (optim.adamax_reference, lambda _: 0.0),
    "amsgrad": (optim.amsgrad_reference, lambda _: 0.0),
    "radam": (optim.radam_reference, lambda _: 0.0),
    "lion": (optim.lion_reference, lambda _: 0.0),
}


def rule_defaults(rule: str) -> dict[str, Any]:
    """The hyperparameters a rule's class takes by default (its constructor's keyword defaults),
    with Adam-style ``betas`` also given as ``beta1`` and ``beta2`` (the reference's names)."""
    signature = inspect.signature(optim.OPTIMIZERS[rule].__init__)
    defaults = {
        name: parameter.default
        for name, parameter in signature.parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
    if "betas" in defaults:
        defaults["beta1"], defaults["beta2"] = defaults["betas"]
    return defaults


class _StackedRuns:
    """Every run of one rule as rows of one tensor, advanced by the rule's reference formula."""

    def __init__(self, rule: str, index: Tensor | slice, rates: Tensor, first: float) -> None:
        reference, initial = STACKED_REFERENCES[rule]
        defaults = rule_defaults(rule)
        parameters = inspect.signature(reference).parameters
        kinds = inspect.Parameter
        # positional arguments after (param, grad) are the state; keyword-only ones the options
        state_names = [
            name
            for name, parameter in parameters.items()
            if parameter.kind is kinds.POSITIONAL_OR_KEYWORD and name not in ("param", "grad")
        ]
        self.options = {
            name: defaults[name]
            for name, parameter in parameters.items()
            if parameter.kind is kinds.KEYWORD_ONLY and name in defaults and name != "lr"
        }
        self.counts_steps = "step" in parameters
        self.reference = reference
        self.index = index
        self.rates = rates.unsqueeze(1)  # one rate per row, broadcast over (x, y)
        self.first = first  # schedule(0), which scales the schedule to each rule's rate
        start = initial(defaults)
        self.state = [
            torch.full((len(rates), 2), start if position == 0 else 0.0, dtype=torch.float64)
            for position, _ in enumerate(state_names)
        ]

    def advance(
        self, points: Tensor, grads: Tensor, update: int, value: float | None, alive: Tensor
    ) -> Tensor:
        del alive  # rows are independent: a diverged row's numbers never reach the others
        extra = {"step": update + 1} if self.counts_steps else {}
        # η · schedule(n) / schedule(0), rounded in the order an optimizer's scaled rate is
        rates = self.rates if value is None else self.rates * value / self.first
        out = self.reference(points, grads, *self.state, lr=rates, **extra, **self.options)
        if isinstance(out, Tensor):
            return out
        self.state = list(out[1 : 1 + len(self.state)])
        return out[0]


class _OptimizerRuns:
    """Runs of a rule whose step couples a parameter's coordinates: one optimizer per run."""

    def __init__(
        self,
        rule: str,
        index: Tensor | slice,
        rates: Tensor,
        start: Tensor,
        schedule: Callable[[int], float] | None,
    ) -> None:
        self.index = index
        self.params = [start.clone().requires_grad_(True) for _ in range(len(rates))]
        self.optimizers = [
            optim.create(rule, [param], lr=_scaled(schedule, float(rate)))
            for rate, param in zip(rates, self.params, strict=True)
        ]

    def advance(
        self, points: Tensor, grads: Tensor, update: int, value: float | None, alive: Tensor
    ) -> Tensor:
        del update, value  # each optimizer counts its updates and applies its own schedule
        moved = points.clone()
        for row, (param, optimizer) in enumerate(zip(self.params, self.optimizers, strict=True)):
            if alive[row]:
                param.grad = grads[row]
                optimizer.step()
                moved[row] = param.detach()
        return moved


def simulate(
    landscape: Landscape,
    runs: Sequence[tuple[str, float]],
    start: tuple[float, float],
    steps: int,
    schedule: Callable[[int], float] | None = None,
    tolerance: float = 1e-3,
) -> list[RuleRun]:
    """Advance every (rule, rate) pair ``steps`` updates from ``start``, all together.

    One analytic-gradient call serves every run; the runs of a rule in
    :data:`STACKED_REFERENCES` advance as one tensor through the rule's reference formula (so
    a step of a 7-rule race costs one gradient and 7 formula calls however many rates a tune
    tries), the others through one descent optimizer per run. A run that leaves finite numbers
    or goes :data:`DIVERGENCE_BOXES` view boxes away is frozen at its last good point.
    """
    if not runs:
        return []
    origin = torch.tensor(start, dtype=torch.float64)
    first = 1.0 if schedule is None else _first(schedule)
    groups: list[_StackedRuns | _OptimizerRuns] = []
    order: list[int] = []
    for rule in dict.fromkeys(rule for rule, _ in runs):
        rows = [row for row, (name, _) in enumerate(runs) if name == rule]
        order += rows
        index: Tensor | slice = torch.tensor(rows, dtype=torch.long)
        if rows == list(range(rows[0], rows[-1] + 1)):
            index = slice(rows[0], rows[-1] + 1)  # a view: no gather, no scatter
        rates = torch.tensor([runs[row][1] for row in rows], dtype=torch.float64)
        if rule in STACKED_REFERENCES:
            groups.append(_StackedRuns(rule, index, rates, first))
        else:
            groups.append(_OptimizerRuns(rule, index, rates, origin, schedule))
    path = torch.empty(steps + 1, len(runs), 2, dtype=torch.float64)
    path[0] = origin
    x_min, x_max, y_min, y_max = landscape.box
    reach = DIVERGENCE_BOXES * max(x_max - x_min, y_max - y_min)
    alive = torch.ones(len(runs), dtype=torch.bool)
    diverged_at: list[int | None] = [None] * len(runs)
    every_run_alive = True
    # runs listed rule by rule (a race, a tune): the groups' results are joined in one cat
    in_order = order == list(range(len(runs)))
    for step in range(1, steps + 1):
        current = path[step - 1]
        gx, gy = landscape.gradient(current[:, 0], current[:, 1])
        grads = torch.stack((gx, gy), dim=1)
        value = None
        if schedule is not None:
            value = validate.nonnegative(float(schedule(step - 1)), f"schedule({step - 1})")
        if in_order:
            moved = torch.cat(
                [
                    group.advance(
                        current[group.index],
                        grads[group.index],
                        step - 1,
                        value,
                        alive[group.index],
                    )
                    for group in groups
                ]
            )
        else:
            moved = torch.empty_like(current)
            for group in groups:
                moved[group.index] = group.advance(
                    current[group.index], grads[group.index], step - 1, value, alive[group.index]
                )
        good = (moved.abs() <= reach).all(dim=1)  # False for inf and NaN too
        if every_run_alive and bool(good.all()):
            path[step] = moved
            continue
        for row in (alive & ~good).nonzero().flatten().tolist():
            diverged_at[row] = step
        alive &= good
        every_run_alive = False
        # a diverged run stays frozen at its last good point
        path[step] = torch.where(alive.unsqueeze(1), moved, current)
    targets = torch.tensor([[p.x, p.y] for p in landscape.points], dtype=torch.float64)
    distance = torch.cdist(path.reshape(-1, 2), targets).min(dim=1).values.reshape(steps + 1, -1)
    results = []
    for index, (rule, lr) in enumerate(runs):
        within = (distance[:, index] <= tolerance).nonzero()
        reached = int(within[0]) if within.numel() and diverged_at[index] is None else None
        end = path[-1, index]
        results.append(
            RuleRun(
                rule=rule,
                lr=lr,
                path=path[:, index].clone(),
                steps_to_tolerance=reached,
                final_distance=float(distance[-1, index]),
                final_value=float(landscape(end[0], end[1])),
                diverged_at=diverged_at[index],
            )
        )
    return results


def _better(candidate: RuleRun, best: RuleRun | None) -> bool:
    """Reaching the tolerance sooner wins; else the lower final value; diverged runs never."""
    if candidate.diverged:
        return False
    if best is None:
        return True
    if candidate.steps_to_tolerance is not None or best.steps_to_tolerance is not None:
        if best.steps_to_tolerance is None:
            return True
        if candidate.steps_to_tolerance is None:
            return False
        return candidate.steps_to_tolerance < best.steps_to_tolerance
    return candidate.final_value < best.final_value


def race(
    function: str | Landscape = "beale",
    rules: Sequence[str] = DEFAULT_RULES,
    start: tuple[float, float] | None = None,
    steps: int = 500,
    lr: Mapping[str, float] | None = None,
    schedule: Callable[[int], float] | None = None,
    tune: bool = False,
    tolerance: float = 1e-3,
) -> RaceResult:
    """Race update rules on a 2-D landscape from the same start.

    Each rule's rate comes from ``lr`` (rule → rate), else, with ``tune``, from the candidate in
    :data:`TUNE_RATES` that reaches the tolerance soonest (or ends lowest) without diverging,
    else from the landscape's table of rates suited to it. A ``schedule`` multiplies every
    rule's rate by schedule(n)/schedule(0).

    Example::

        >>> result = race("ravine", rules=["sgd", "momentum"], tune=True)
        >>> result["momentum"].steps_to_tolerance < result["sgd"].steps_to_tolerance
    """
    landscape = function if isinstance(function, Landscape) else get(function)
    names = [validate.choice(rule, "rule", optim.OPTIMIZERS) for rule in rules]
    if not names:
        raise InputError("rules must name at least one update rule")
    steps = validate.positive_int(steps, "steps")
    tolerance = validate.positive(tolerance, "tolerance")
    origin = landscape.start if start is None else (float(start[0]), float(start[1]))
    for coordinate in origin:
        validate.finite(coordinate, "start")
    given = {validate.choice(k, "rule", optim.OPTIMIZERS): v for k, v in (lr or {}).items()}
    for rule, rate in given.items():
        validate.positive(rate, f"lr of {rule}")
    chosen: dict[str, float] = {}
    untuned = [rule for rule in names if rule not in given]
    if tune and untuned:
        trials = [(rule, rate) for rule in untuned for rate in TUNE_RATES]
        best: dict[str, RuleRun] = {}
        for run in simulate(landscape, trials, origin, steps, schedule, tolerance):
            if _better(run, best.get(run.rule)):
                best[run.rule] = run
        chosen = {rule: best[rule].lr if rule in best else min(TUNE_RATES) for rule in untuned}
    for rule in names:
        if rule in given:
            chosen[rule] = given[rule]
        elif rule not in chosen:
            chosen[rule] = landscape.learning_rates.get(rule, 0.01)
    runs = simulate(
        landscape, [(rule, chosen[rule]) for rule in names], origin, steps, schedule, tolerance
    )
    return RaceResult(landscape, tuple(runs), tolerance, tuned=tune)


def direction_changes(run: RuleRun, axis: int) -> int:
    """How often the step along ``axis`` (0: x, 1: y) changes sign: the zig-zag count."""
    moves = run.path[1:, axis] - run.path[:-1, axis]
    signs = torch.sign(moves[moves != 0])
    return int((signs[1:] != signs[:-1]).sum())


def log_levels(landscape: Landscape, count: int = 25) -> list[float]:
    """Contour levels spaced logarithmically above the lowest stated value, over the box."""
    x_min, x_max, y_min, y_max = landscape.box
    xs = torch.linspace(x_min, x_max, 200, dtype=torch.float64)
    ys = torch.linspace(y_min, y_max, 200, dtype=torch.float64)
    grid_x, grid_y = torch.meshgrid(xs, ys, indexing="xy")
    values = landscape(grid_x, grid_y) - landscape.lowest
    top = float(values.max())
    positive = values[values > 0]
    bottom = max(float(positive.min()) if positive.numel() else 1e-6, top * 1e-8, 1e-12)
    if not math.isfinite(top) or top <= bottom:
        return [bottom]
    return [float(v) for v in torch.logspace(math.log10(bottom), math.log10(top), count)]
