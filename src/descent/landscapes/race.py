"""Optimizer races on a 2-D landscape: every rule from the same start, step by step.

All runs of a race (one per rule, or one per rule and candidate rate when tuning) advance
together: their points are one ``[runs, 2]`` tensor, the landscape's analytic gradient is one
call for all of them, and each rule's step is descent's own fast path on its 2-element parameter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

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
    first = float(schedule(0))
    if first <= 0:
        raise InputError(f"the schedule must start above 0 to scale each rule's rate, got {first}")
    return lambda n: lr * float(schedule(n)) / first


def simulate(
    landscape: Landscape,
    runs: Sequence[tuple[str, float]],
    start: tuple[float, float],
    steps: int,
    schedule: Callable[[int], float] | None = None,
    tolerance: float = 1e-3,
) -> list[RuleRun]:
    """Advance every (rule, rate) pair ``steps`` updates from ``start``, all together."""
    points = torch.tensor([start] * len(runs), dtype=torch.float64)
    params = [points[index].clone().requires_grad_(True) for index in range(len(runs))]
    optimizers = [
        optim.create(rule, [param], lr=_scaled(schedule, lr))
        for (rule, lr), param in zip(runs, params, strict=True)
    ]
    path = torch.empty(steps + 1, len(runs), 2, dtype=torch.float64)
    path[0] = points
    x_min, x_max, y_min, y_max = landscape.box
    reach = DIVERGENCE_BOXES * max(x_max - x_min, y_max - y_min)
    diverged_at: list[int | None] = [None] * len(runs)
    live = list(range(len(runs)))
    for step in range(1, steps + 1):
        current = path[step - 1]
        gx, gy = landscape.gradient(current[:, 0], current[:, 1])
        for index in live:
            params[index].grad = torch.stack((gx[index], gy[index]))
            optimizers[index].step()
        with torch.no_grad():
            path[step] = torch.stack([param.detach() for param in params])
        finite = torch.isfinite(path[step]).all(dim=1) & (path[step].abs() <= reach).all(dim=1)
        for index in [index for index in live if not finite[index]]:
            diverged_at[index] = step
            live.remove(index)
            path[step:, index] = path[step - 1, index]  # frozen at its last good point
            with torch.no_grad():
                params[index].copy_(path[step - 1, index])
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
