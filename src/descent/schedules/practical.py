"""The practical schedules: cyclical rates (Smith 2017), constant, step and multi-step decay,
linear warm-up, warm-up before any schedule, joining two schedules (torch's SequentialLR), and
the one-cycle policy (Smith & Topin 2019; torch's OneCycleLR). Formulas in docs/schedules.md."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from descent import validate
from descent.errors import InputError
from descent.schedules.base import NonNegative, Positive, PositiveInt, Schedule

# -- cyclical rates ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Cyclical(Schedule):
    """Cyclical learning rates (Smith 2015) with torch's CyclicLR semantics.

    total = up + down, r = up/total ; cycle = floor(1 + t/total) ; x = 1 + t/total − cycle ;
    h = x/r if x ≤ r else (x − 1)/(r − 1) ; base + (max − base)·h·scale, with
    triangular: scale = 1 ; triangular2: scale = 1/2^(cycle − 1) ; exp_range: scale = γ^t
    (t counts all iterations). With up = down = S this is the symmetric formula of Smith,
    bckenstler/CLR and TF Addons. t = 0 gives base, the peak is at t = up.
    """

    name: ClassVar[str] = "cyclical"
    MODES: ClassVar[tuple[str, ...]] = ("triangular", "triangular2", "exp_range")
    base_lr: NonNegative
    max_lr: NonNegative
    step_size_up: Positive = 2000
    step_size_down: Positive | None = None
    mode: str = "triangular"
    gamma: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in self.MODES:
            raise InputError(f"mode must be one of {', '.join(self.MODES)}, got {self.mode!r}")
        gamma = validate.positive(self.gamma, "gamma")
        if gamma > 1:
            raise InputError(f"gamma must be in (0, 1], got {self.gamma!r}")

    def value(self, step: float) -> float:
        down = self.step_size_up if self.step_size_down is None else self.step_size_down
        total = self.step_size_up + down
        ratio = self.step_size_up / total
        cycle = math.floor(1 + step / total)
        x = 1.0 + step / total - cycle
        height = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
        if self.mode == "triangular":
            scale = 1.0
        elif self.mode == "triangular2":
            scale = 0.5 ** (cycle - 1)  # (1 / 2.0 ** k overflows after ~1000 cycles)
        else:
            scale = self.gamma**step
        return self.base_lr + (self.max_lr - self.base_lr) * height * scale


# -- the common practical ones -----------------------------------------------------------------


@dataclass(frozen=True)
class Constant(Schedule):
    """The same rate at every step."""

    name: ClassVar[str] = "constant"
    learning_rate: NonNegative

    def value(self, step: float) -> float:
        return self.learning_rate


@dataclass(frozen=True)
class StepDecay(Schedule):
    """lr · γ^floor(s / step_size): torch's StepLR (γ = 0.1 by default)."""

    name: ClassVar[str] = "step"
    initial_learning_rate: NonNegative
    step_size: PositiveInt
    gamma: NonNegative = 0.1

    def value(self, step: float) -> float:
        return self.initial_learning_rate * self.gamma ** math.floor(step / self.step_size)


@dataclass(frozen=True)
class MultiStepDecay(Schedule):
    """lr · γ^(number of milestones ≤ s): torch's MultiStepLR; a repeated milestone counts twice.
    The new rate starts at the milestone itself (TF's piecewise_constant starts one step later)."""

    name: ClassVar[str] = "multistep"
    initial_learning_rate: NonNegative
    milestones: tuple[NonNegative, ...]
    gamma: NonNegative = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        validate.increasing(self.milestones, "milestones", strict=False)  # a repeat counts twice

    def value(self, step: float) -> float:
        passed = sum(1 for milestone in self.milestones if milestone <= step)
        return self.initial_learning_rate * self.gamma**passed


def _ramp(initial: float, target: float, step: float, warmup_steps: float) -> float:
    """initial + (target − initial)·s/W: the linear warmup both warmups take for s < W."""
    return initial + (target - initial) * step / warmup_steps


@dataclass(frozen=True)
class LinearWarmup(Schedule):
    """initial + (target − initial)·s/W for s < W, then target."""

    name: ClassVar[str] = "linear_warmup"
    target: NonNegative
    warmup_steps: Positive
    initial: NonNegative = 0.0

    def value(self, step: float) -> float:
        if step >= self.warmup_steps:
            return self.target
        return _ramp(self.initial, self.target, step, self.warmup_steps)


@dataclass(frozen=True)
class Warmup(Schedule):
    """Warmup, then any schedule: a linear ramp from ``initial`` to ``schedule(0)`` over W steps,
    then ``schedule(s − W)``. The ramp ends where the schedule starts, so it is continuous.
    Warmup(CosineDecay(target, D, α), W) is Keras 3's CosineDecay(0, D, α, target, W)."""

    name: ClassVar[str] = "warmup"
    schedule: Schedule
    warmup_steps: Positive
    initial: NonNegative = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.schedule, Schedule):
            raise InputError(
                f"warmup needs a descent schedule to warm up into, got {self.schedule!r}"
            )

    def value(self, step: float) -> float:
        if step >= self.warmup_steps:
            return self.schedule(step - self.warmup_steps)
        return _ramp(self.initial, self.schedule(0), step, self.warmup_steps)


@dataclass(frozen=True)
class Join(Schedule):
    """schedules[0] until boundaries[0], then schedules[1] restarted at its own step 0, …

    For boundaries[i−1] ≤ s < boundaries[i], the value is schedules[i](s − boundaries[i−1]):
    torch's SequentialLR semantics. The join is continuous at a boundary b exactly when the next
    schedule starts where the previous one is at b: schedules[i+1](0) == schedules[i](b − b_prev).
    """

    name: ClassVar[str] = "join"
    schedules: tuple[Schedule, ...]
    boundaries: tuple[Positive, ...]

    def __post_init__(self) -> None:
        super().__post_init__()
        schedules, boundaries = self.schedules, self.boundaries
        if len(schedules) < 2:
            raise InputError(f"join needs at least two schedules, got {len(schedules)}")
        if len(boundaries) != len(schedules) - 1:
            raise InputError(
                f"join needs one boundary fewer than schedules: got {len(schedules)} schedules "
                f"and {len(boundaries)} boundaries"
            )
        for index, schedule in enumerate(schedules):
            if not isinstance(schedule, Schedule):
                raise InputError(f"schedules[{index}] must be a descent schedule, got {schedule!r}")
        validate.increasing(boundaries, "boundaries")

    def value(self, step: float) -> float:
        start = 0.0
        for schedule, boundary in zip(self.schedules, self.boundaries, strict=False):
            if step < boundary:
                return schedule(step - start)
            start = boundary
        return self.schedules[-1](step - start)


def join(first: Schedule, second: Schedule, boundary: float) -> Join:
    """``first`` until ``boundary``, then ``second`` from its own step 0."""
    return Join((first, second), (boundary,))


@dataclass(frozen=True)
class OneCycle(Schedule):
    """torch's OneCycleLR: up from max_lr/div_factor to max_lr, then down to
    initial/final_div_factor (three_phase: back to initial first, then down).

    Phase ends (floats): e1 = pct_start·N − 1, then N − 1 (three_phase: e2 = 2·pct_start·N − 2,
    then N − 1). In each phase pct = (t − start)/(end − start) and cos: end + (start − end)·
    (1 + cos π·pct)/2 ; linear: start + (end − start)·pct. t = N extrapolates as torch does;
    t > N raises ValueError, as torch does.
    """

    name: ClassVar[str] = "one_cycle"
    STRATEGIES: ClassVar[tuple[str, ...]] = ("cos", "linear")
    max_lr: NonNegative
    total_steps: PositiveInt
    pct_start: float = 0.3
    anneal_strategy: str = "cos"
    div_factor: Positive = 25.0
    final_div_factor: Positive = 1e4
    three_phase: bool = False
    _phases: tuple[tuple[float, float, float], ...] = field(
        init=False, repr=False, compare=False, default=()
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        pct = validate.in_range(self.pct_start, "pct_start", 0, 1)
        strategy = validate.choice(self.anneal_strategy, "anneal_strategy", self.STRATEGIES)
        object.__setattr__(self, "anneal_strategy", strategy)
        initial = self.max_lr / self.div_factor
        minimum = initial / self.final_div_factor
        n = self.total_steps
        if self.three_phase:
            phases = (
                (pct * n - 1, initial, self.max_lr),
                (2 * pct * n - 2, self.max_lr, initial),
                (n - 1, initial, minimum),
            )
        else:
            phases = ((pct * n - 1, initial, self.max_lr), (n - 1, self.max_lr, minimum))
        object.__setattr__(self, "_phases", phases)

    def value(self, step: float) -> float:
        if step > self.total_steps:
            raise InputError(
                f"one_cycle: step {step!r} is past total_steps = {self.total_steps} "
                "(torch raises too); raise total_steps"
            )
        start_step = 0.0
        for index, (end_step, start_lr, end_lr) in enumerate(self._phases):
            if step <= end_step or index == len(self._phases) - 1:
                pct = (step - start_step) / (end_step - start_step)
                if self.anneal_strategy == "cos":
                    return end_lr + (start_lr - end_lr) / 2.0 * (math.cos(math.pi * pct) + 1)
                return (end_lr - start_lr) * pct + start_lr
            start_step = end_step
        raise AssertionError("unreachable")
