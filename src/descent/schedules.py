"""Learning-rate schedules with TensorFlow's exact semantics, cyclical rates, and a torch adapter.

Every schedule is a small immutable object: ``schedule(step) -> float`` with ``step`` the 0-based
update number (TF's ``global_step``, Keras' ``iterations``, torch's ``last_epoch``), a readable
``repr``, equality by parameters, and ``to_dict()`` / :func:`from_dict` so it can live in a YAML
config, a checkpoint or an HParams table. Any schedule is a valid ``lr`` for descent's optimizers,
and :func:`torch_scheduler` drives torch's own optimizers with it.

Values are computed in float64 (TF computes in the dtype of ``learning_rate``, float32 for a Python
float: expect agreement to about 1e-6 relative). shared/spec/schedules.md has the formulas, the
peers' quirks and the test vectors this module is tested against.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

Number = int | float

# -- validation helpers ------------------------------------------------------------------------


def _finite(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Number) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _nonnegative(value: Any, name: str) -> float:
    value = _finite(value, name)
    if value < 0:
        raise ValueError(f"{name} must be ≥ 0, got {value!r}")
    return value


def _positive(value: Any, name: str) -> float:
    value = _finite(value, name)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _step(step: Any, schedule: str) -> float:
    if step is None:
        raise ValueError(f"global_step is required for {schedule}")
    if isinstance(step, torch.Tensor):
        step = step.item()
    if isinstance(step, bool) or not isinstance(step, Number) or not math.isfinite(step):
        raise ValueError(f"{schedule}: the step must be a finite number ≥ 0, got {step!r}")
    if step < 0:
        raise ValueError(f"{schedule}: the step must be ≥ 0, got {step!r}")
    return step


# -- the base class ----------------------------------------------------------------------------

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

    def __call__(self, step: Number) -> float:
        return float(self.value(_step(step, self.name)))

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
        raise ValueError(f"a schedule dict needs a 'name' key naming the schedule, got {data!r}")
    params = dict(data)
    name = params.pop("name")
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"unknown schedule {name!r}; accepted: {', '.join(sorted(_REGISTRY))}")
    cls = _REGISTRY[name]
    accepted = [item.name for item in dataclasses.fields(cls) if item.init]
    unknown = [key for key in params if key not in accepted]
    if unknown:
        raise ValueError(
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
    return cls(**params)


def create(name: str, **params: Any) -> Schedule:
    """Build a schedule by name: ``create("exponential_decay", initial_learning_rate=0.1, …)``."""
    return from_dict({"name": name, **params})


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
        raise ValueError(
            f"schedule {name!r} needs its parameters: give it as a mapping (name: {name}, …); "
            f"named alone: {', '.join(RUN_SCHEDULES)}"
        )
    return create(name, **parameters[name])


def _as_tuple(values: Sequence[Any] | Any, name: str) -> tuple[Any, ...]:
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise ValueError(f"{name} must be a list, got {values!r}")
    return tuple(values)


# -- the TensorFlow family ---------------------------------------------------------------------


@dataclass(frozen=True)
class ExponentialDecay(Schedule):
    """lr · decay_rate^p, p = s / decay_steps (floor(s / decay_steps) with staircase).

    TF: ``tf.compat.v1.train.exponential_decay`` / ``keras.optimizers.schedules.ExponentialDecay``.
    torch: ExponentialLR(γ) is decay_steps=1, decay_rate=γ; StepLR(S, γ) is staircase=True.
    """

    name: ClassVar[str] = "exponential_decay"
    initial_learning_rate: float
    decay_steps: float
    decay_rate: float
    staircase: bool = False

    def __post_init__(self) -> None:
        _nonnegative(self.initial_learning_rate, "initial_learning_rate")
        _positive(self.decay_steps, "decay_steps")
        _nonnegative(self.decay_rate, "decay_rate")

    def value(self, step: float) -> float:
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate**p


@dataclass(frozen=True)
class PiecewiseConstantDecay(Schedule):
    """values[0] for s ≤ b[0]; values[i] for b[i−1] < s ≤ b[i]; values[−1] for s > b[−1].

    Intervals are closed on the right, as in TF: at a boundary the earlier value still applies,
    so the new value starts at step boundary + 1. (torch's MultiStepLR switches at the milestone
    itself: MultiStepLR(milestones=m) is boundaries = [m − 1, …].)
    """

    name: ClassVar[str] = "piecewise_constant"
    boundaries: tuple[float, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        boundaries = _as_tuple(self.boundaries, "boundaries")
        values = _as_tuple(self.values, "values")
        object.__setattr__(self, "boundaries", boundaries)
        object.__setattr__(self, "values", values)
        if len(values) != len(boundaries) + 1:
            raise ValueError(
                f"piecewise_constant needs one more value than boundaries: got "
                f"{len(boundaries)} boundaries and {len(values)} values"
            )
        for index, boundary in enumerate(boundaries):
            _finite(boundary, f"boundaries[{index}]")
        for index, value in enumerate(values):
            _nonnegative(value, f"values[{index}]")
        for index in range(1, len(boundaries)):
            if boundaries[index] <= boundaries[index - 1]:
                raise ValueError(
                    f"boundaries must be strictly increasing: boundaries[{index - 1}] = "
                    f"{boundaries[index - 1]!r} ≥ boundaries[{index}] = {boundaries[index]!r}"
                )

    def value(self, step: float) -> float:
        for boundary, value in zip(self.boundaries, self.values, strict=False):
            if step <= boundary:
                return float(value)
        return float(self.values[-1])


@dataclass(frozen=True)
class PolynomialDecay(Schedule):
    """(lr − end)·(1 − s′/D)^power + end.

    cycle=False: s′ = min(s, D).  cycle=True: D′ = D·max(1, ceil(s/D)) replaces D and s′ = s, so
    an exact multiple kD gives ``end`` and the restart shows at kD + 1 (step 0 gives lr, TF's fix
    of PR #13271). torch's PolynomialLR(T, power) is end_learning_rate=0 (TF's default is 1e-4).
    """

    name: ClassVar[str] = "polynomial_decay"
    initial_learning_rate: float
    decay_steps: float
    end_learning_rate: float = 0.0001
    power: float = 1.0
    cycle: bool = False

    def __post_init__(self) -> None:
        _nonnegative(self.initial_learning_rate, "initial_learning_rate")
        _positive(self.decay_steps, "decay_steps")
        _nonnegative(self.end_learning_rate, "end_learning_rate")
        _positive(self.power, "power")

    def value(self, step: float) -> float:
        decay_steps = self.decay_steps
        if self.cycle:
            multiplier = 1.0 if step == 0 else math.ceil(step / decay_steps)
            decay_steps = decay_steps * multiplier
        else:
            step = min(step, decay_steps)
        fraction = 1 - step / decay_steps
        span = self.initial_learning_rate - self.end_learning_rate
        return span * fraction**self.power + self.end_learning_rate


@dataclass(frozen=True)
class NaturalExpDecay(Schedule):
    """lr · exp(−decay_rate · p), p = s / decay_steps (floored with staircase)."""

    name: ClassVar[str] = "natural_exp_decay"
    initial_learning_rate: float
    decay_steps: float
    decay_rate: float
    staircase: bool = False

    def __post_init__(self) -> None:
        _nonnegative(self.initial_learning_rate, "initial_learning_rate")
        _positive(self.decay_steps, "decay_steps")
        _finite(self.decay_rate, "decay_rate")

    def value(self, step: float) -> float:
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * math.exp(-self.decay_rate * p)


@dataclass(frozen=True)
class InverseTimeDecay(Schedule):
    """lr / (1 + decay_rate · p), p = s / decay_steps (floored with staircase)."""

    name: ClassVar[str] = "inverse_time_decay"
    initial_learning_rate: float
    decay_steps: float
    decay_rate: float
    staircase: bool = False

    def __post_init__(self) -> None:
        _nonnegative(self.initial_learning_rate, "initial_learning_rate")
        _positive(self.decay_steps, "decay_steps")
        _nonnegative(self.decay_rate, "decay_rate")

    def value(self, step: float) -> float:
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate / (1 + self.decay_rate * p)


def _cosine(initial: float, step: float, decay_steps: float, alpha: float) -> float:
    step = min(step, decay_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * step / decay_steps))
    return initial * ((1 - alpha) * cosine + alpha)


@dataclass(frozen=True)
class CosineDecay(Schedule):
    """Cosine decay, with Keras 3's optional linear warmup.

    No warmup (warmup_target None): s′ = min(s, D) ; lr·((1−α)·½(1 + cos(π s′/D)) + α), which stays
    at α·lr after step D (torch's CosineAnnealingLR rises again after T_max instead).

    Warmup (warmup_target set): s′ = min(s, D + W); for s′ < W, lr + (target − lr)·s′/W; after it,
    the cosine above from ``warmup_target`` at step s′ − W. α is a fraction of the target.
    """

    name: ClassVar[str] = "cosine_decay"
    initial_learning_rate: float
    decay_steps: float
    alpha: float = 0.0
    warmup_target: float | None = None
    warmup_steps: float = 0

    def __post_init__(self) -> None:
        _nonnegative(self.initial_learning_rate, "initial_learning_rate")
        _positive(self.decay_steps, "decay_steps")
        _nonnegative(self.alpha, "alpha")
        if self.warmup_target is not None:
            _nonnegative(self.warmup_target, "warmup_target")
        _nonnegative(self.warmup_steps, "warmup_steps")

    def value(self, step: float) -> float:
        if self.warmup_target is None:
            return _cosine(self.initial_learning_rate, step, self.decay_steps, self.alpha)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            rise = (self.warmup_target - self.initial_learning_rate) * step / self.warmup_steps
            return self.initial_learning_rate + rise
        return _cosine(self.warmup_target, step - self.warmup_steps, self.decay_steps, self.alpha)


@dataclass(frozen=True)
class CosineDecayRestarts(Schedule):
    """SGDR: cosine periods that restart, each t_mul times longer and m_mul times higher.

    f = s / T0; period i = floor(ln(1 − f(1 − t_mul)) / ln t_mul) (i = floor(f) when t_mul = 1),
    which starts at S_i = (1 − t_mul^i)/(1 − t_mul) periods of T0; g = (f − S_i)/t_mul^i;
    lr·((1−α)·m_mul^i·½(1 + cos πg) + α). Nothing is clamped: it runs forever.

    At an exact restart step the logarithm can round just below the integer (float64, T0=10,
    t_mul=3, s=1210 gives ln 243 / ln 3 = 4.999…), and TF's formula then returns α·lr instead of
    the peak; float32 happens to round the other way there. descent corrects i with exact
    arithmetic on the period starts, so every restart step gives the peak in any dtype.

    torch's CosineAnnealingWarmRestarts(T_0, T_mult, η_min) is t_mul=T_mult, m_mul=1,
    alpha=η_min/lr (TF's default t_mul is 2.0, torch's 1).
    """

    name: ClassVar[str] = "cosine_decay_restarts"
    initial_learning_rate: float
    first_decay_steps: float
    t_mul: float = 2.0
    m_mul: float = 1.0
    alpha: float = 0.0

    def __post_init__(self) -> None:
        _nonnegative(self.initial_learning_rate, "initial_learning_rate")
        _positive(self.first_decay_steps, "first_decay_steps")
        _positive(self.t_mul, "t_mul")
        _nonnegative(self.m_mul, "m_mul")
        _nonnegative(self.alpha, "alpha")

    def _period_start(self, i: int) -> float:
        """S_i in units of first_decay_steps."""
        if self.t_mul == 1:
            return float(i)
        return (1 - self.t_mul**i) / (1 - self.t_mul)

    def period(self, step: float) -> tuple[int, float]:
        """(i, g): the period index and the fraction of it completed at ``step``."""
        f = step / self.first_decay_steps
        if self.t_mul == 1:
            i = math.floor(f)
        else:
            i = math.floor(math.log(1 - f * (1 - self.t_mul)) / math.log(self.t_mul))
            # The logarithm can land a hair off the integer at exact restarts; settle i exactly.
            while i > 0 and self._period_start(i) > f:
                i -= 1
            while self._period_start(i + 1) <= f:
                i += 1
        return i, (f - self._period_start(i)) / self.t_mul**i

    def value(self, step: float) -> float:
        i, g = self.period(step)
        cosine = 0.5 * (1 + math.cos(math.pi * g))
        decayed = (1 - self.alpha) * self.m_mul**i * cosine + self.alpha
        return self.initial_learning_rate * decayed


def tf_restart_period(step: float, first_decay_steps: float, t_mul: float, dtype: str) -> int:
    """TF's period index i computed naively in ``dtype`` ("float32" or "float64"), as TF does:
    the function the documented rounding caveat of :class:`CosineDecayRestarts` is about."""
    import numpy as np

    kind = np.float32 if dtype == "float32" else np.float64
    f = kind(step) / kind(first_decay_steps)
    ratio = np.log(kind(1) - f * (kind(1) - kind(t_mul))) / np.log(kind(t_mul))
    return int(np.floor(ratio))


@dataclass(frozen=True)
class LinearCosineDecay(Schedule):
    """s′ = min(s, D) ; lin = (D − s′)/D ; c = ½(1 + cos(2π·num_periods·s′/D)) ;
    lr·((α + lin)·c + β). Step 0 gives lr(1 + α + β), above lr (as TF)."""

    name: ClassVar[str] = "linear_cosine_decay"
    initial_learning_rate: float
    decay_steps: float
    num_periods: float = 0.5
    alpha: float = 0.0
    beta: float = 0.001

    def __post_init__(self) -> None:
        _nonnegative(self.initial_learning_rate, "initial_learning_rate")
        _positive(self.decay_steps, "decay_steps")
        _finite(self.num_periods, "num_periods")
        _nonnegative(self.alpha, "alpha")
        _nonnegative(self.beta, "beta")

    def _parts(self, step: float) -> tuple[float, float, float]:
        step = min(step, self.decay_steps)
        linear = (self.decay_steps - step) / self.decay_steps
        angle = 2 * math.pi * self.num_periods * step / self.decay_steps
        return step, linear, 0.5 * (1 + math.cos(angle))

    def value(self, step: float) -> float:
        _, linear, cosine = self._parts(step)
        return self.initial_learning_rate * ((self.alpha + linear) * cosine + self.beta)


@dataclass(frozen=True)
class NoisyLinearCosineDecay(LinearCosineDecay):
    """linear_cosine_decay with lin → lin + ε, ε ~ N(0, σ²), σ² = initial_variance/(1 + s′)^decay.

    s′ is the clamped step (TF's code; its docstring says global_step). TF draws a fresh sample
    at every evaluation; with ``seed`` set, descent's noise is a pure function of (seed, step), so
    a resumed run sees the same rates. ``seed=None`` draws a fresh sample each call, as TF.
    """

    name: ClassVar[str] = "noisy_linear_cosine_decay"
    initial_variance: float = 1.0
    variance_decay: float = 0.55
    seed: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _nonnegative(self.initial_variance, "initial_variance")
        _nonnegative(self.variance_decay, "variance_decay")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
        ):
            raise ValueError(f"seed must be an integer or None, got {self.seed!r}")

    def noise_std(self, step: float) -> float:
        clamped = min(_step(step, self.name), self.decay_steps)
        return math.sqrt(self.initial_variance / (1 + clamped) ** self.variance_decay)

    def value(self, step: float) -> float:
        clamped, linear, cosine = self._parts(step)
        key = f"{self.seed}:{float(step)!r}"  # the same step gives the same noise, int or float
        rng = random.Random() if self.seed is None else random.Random(key)
        noise = rng.gauss(0.0, 1.0) * self.noise_std(clamped)
        return self.initial_learning_rate * ((self.alpha + linear + noise) * cosine + self.beta)


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
    base_lr: float
    max_lr: float
    step_size_up: float = 2000
    step_size_down: float | None = None
    mode: str = "triangular"
    gamma: float = 1.0

    def __post_init__(self) -> None:
        _nonnegative(self.base_lr, "base_lr")
        _nonnegative(self.max_lr, "max_lr")
        _positive(self.step_size_up, "step_size_up")
        if self.step_size_down is not None:
            _positive(self.step_size_down, "step_size_down")
        if self.mode not in self.MODES:
            raise ValueError(f"mode must be one of {', '.join(self.MODES)}, got {self.mode!r}")
        gamma = _positive(self.gamma, "gamma")
        if gamma > 1:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma!r}")

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
    learning_rate: float

    def __post_init__(self) -> None:
        _nonnegative(self.learning_rate, "learning_rate")

    def value(self, step: float) -> float:
        return self.learning_rate


@dataclass(frozen=True)
class StepDecay(Schedule):
    """lr · γ^floor(s / step_size): torch's StepLR (γ = 0.1 by default)."""

    name: ClassVar[str] = "step"
    initial_learning_rate: float
    step_size: int
    gamma: float = 0.1

    def __post_init__(self) -> None:
        _nonnegative(self.initial_learning_rate, "initial_learning_rate")
        _positive_int(self.step_size, "step_size")
        _nonnegative(self.gamma, "gamma")

    def value(self, step: float) -> float:
        return self.initial_learning_rate * self.gamma ** math.floor(step / self.step_size)


@dataclass(frozen=True)
class MultiStepDecay(Schedule):
    """lr · γ^(number of milestones ≤ s): torch's MultiStepLR; a repeated milestone counts twice.
    The new rate starts at the milestone itself (TF's piecewise_constant starts one step later)."""

    name: ClassVar[str] = "multistep"
    initial_learning_rate: float
    milestones: tuple[int, ...]
    gamma: float = 0.1

    def __post_init__(self) -> None:
        milestones = _as_tuple(self.milestones, "milestones")
        object.__setattr__(self, "milestones", milestones)
        _nonnegative(self.initial_learning_rate, "initial_learning_rate")
        for index, milestone in enumerate(milestones):
            _nonnegative(milestone, f"milestones[{index}]")
            if index and milestone < milestones[index - 1]:
                raise ValueError(f"milestones must not decrease, got {list(milestones)}")
        _nonnegative(self.gamma, "gamma")

    def value(self, step: float) -> float:
        passed = sum(1 for milestone in self.milestones if milestone <= step)
        return self.initial_learning_rate * self.gamma**passed


@dataclass(frozen=True)
class LinearWarmup(Schedule):
    """initial + (target − initial)·s/W for s < W, then target."""

    name: ClassVar[str] = "linear_warmup"
    target: float
    warmup_steps: float
    initial: float = 0.0

    def __post_init__(self) -> None:
        _nonnegative(self.target, "target")
        _positive(self.warmup_steps, "warmup_steps")
        _nonnegative(self.initial, "initial")

    def value(self, step: float) -> float:
        if step >= self.warmup_steps:
            return self.target
        return self.initial + (self.target - self.initial) * step / self.warmup_steps


@dataclass(frozen=True)
class Warmup(Schedule):
    """Warmup, then any schedule: a linear ramp from ``initial`` to ``schedule(0)`` over W steps,
    then ``schedule(s − W)``. The ramp ends where the schedule starts, so it is continuous.
    Warmup(CosineDecay(target, D, α), W) is Keras 3's CosineDecay(0, D, α, target, W)."""

    name: ClassVar[str] = "warmup"
    schedule: Schedule
    warmup_steps: float
    initial: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.schedule, Schedule):
            raise ValueError(
                f"warmup needs a descent schedule to warm up into, got {self.schedule!r}"
            )
        _positive(self.warmup_steps, "warmup_steps")
        _nonnegative(self.initial, "initial")

    def value(self, step: float) -> float:
        if step >= self.warmup_steps:
            return self.schedule(step - self.warmup_steps)
        target = self.schedule(0)
        return self.initial + (target - self.initial) * step / self.warmup_steps


@dataclass(frozen=True)
class Join(Schedule):
    """schedules[0] until boundaries[0], then schedules[1] restarted at its own step 0, …

    For boundaries[i−1] ≤ s < boundaries[i], the value is schedules[i](s − boundaries[i−1]):
    torch's SequentialLR semantics. The join is continuous at a boundary b exactly when the next
    schedule starts where the previous one is at b: schedules[i+1](0) == schedules[i](b − b_prev).
    """

    name: ClassVar[str] = "join"
    schedules: tuple[Schedule, ...]
    boundaries: tuple[float, ...]

    def __post_init__(self) -> None:
        schedules = _as_tuple(self.schedules, "schedules")
        boundaries = _as_tuple(self.boundaries, "boundaries")
        object.__setattr__(self, "schedules", schedules)
        object.__setattr__(self, "boundaries", boundaries)
        if len(schedules) < 2:
            raise ValueError(f"join needs at least two schedules, got {len(schedules)}")
        if len(boundaries) != len(schedules) - 1:
            raise ValueError(
                f"join needs one boundary fewer than schedules: got {len(schedules)} schedules "
                f"and {len(boundaries)} boundaries"
            )
        for index, schedule in enumerate(schedules):
            if not isinstance(schedule, Schedule):
                raise ValueError(f"schedules[{index}] must be a descent schedule, got {schedule!r}")
        previous = 0.0
        for index, boundary in enumerate(boundaries):
            _positive(boundary, f"boundaries[{index}]")
            if boundary <= previous:
                raise ValueError(f"boundaries must be strictly increasing, got {list(boundaries)}")
            previous = boundary

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
    max_lr: float
    total_steps: int
    pct_start: float = 0.3
    anneal_strategy: str = "cos"
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    three_phase: bool = False
    _phases: tuple[tuple[float, float, float], ...] = field(
        init=False, repr=False, compare=False, default=()
    )

    def __post_init__(self) -> None:
        _nonnegative(self.max_lr, "max_lr")
        _positive_int(self.total_steps, "total_steps")
        pct = _finite(self.pct_start, "pct_start")
        if not 0 <= pct <= 1:
            raise ValueError(f"pct_start must be in [0, 1], got {self.pct_start!r}")
        if self.anneal_strategy not in self.STRATEGIES:
            raise ValueError(
                f"anneal_strategy must be 'cos' or 'linear', got {self.anneal_strategy!r}"
            )
        _positive(self.div_factor, "div_factor")
        _positive(self.final_div_factor, "final_div_factor")
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
            raise ValueError(
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


# -- TF's functional forms ---------------------------------------------------------------------


def exponential_decay(
    learning_rate: float,
    global_step: Number,
    decay_steps: float,
    decay_rate: float,
    staircase: bool = False,
) -> float:
    """TF1's ``exponential_decay`` as a function returning a float."""
    _step(global_step, "exponential_decay")
    return ExponentialDecay(learning_rate, decay_steps, decay_rate, staircase)(global_step)


def piecewise_constant(x: Number, boundaries: Sequence[float], values: Sequence[float]) -> float:
    """TF1's ``piecewise_constant``: right-closed intervals."""
    return PiecewiseConstantDecay(tuple(boundaries), tuple(values))(x)


def polynomial_decay(
    learning_rate: float,
    global_step: Number,
    decay_steps: float,
    end_learning_rate: float = 0.0001,
    power: float = 1.0,
    cycle: bool = False,
) -> float:
    """TF1's ``polynomial_decay``."""
    _step(global_step, "polynomial_decay")
    schedule = PolynomialDecay(learning_rate, decay_steps, end_learning_rate, power, cycle)
    return schedule(global_step)


def natural_exp_decay(
    learning_rate: float,
    global_step: Number,
    decay_steps: float,
    decay_rate: float,
    staircase: bool = False,
) -> float:
    """TF1's ``natural_exp_decay``."""
    _step(global_step, "natural_exp_decay")
    return NaturalExpDecay(learning_rate, decay_steps, decay_rate, staircase)(global_step)


def inverse_time_decay(
    learning_rate: float,
    global_step: Number,
    decay_steps: float,
    decay_rate: float,
    staircase: bool = False,
) -> float:
    """TF1's ``inverse_time_decay``."""
    _step(global_step, "inverse_time_decay")
    return InverseTimeDecay(learning_rate, decay_steps, decay_rate, staircase)(global_step)


def cosine_decay(
    learning_rate: float, global_step: Number, decay_steps: float, alpha: float = 0.0
) -> float:
    """TF1's ``cosine_decay``."""
    _step(global_step, "cosine decay")
    return CosineDecay(learning_rate, decay_steps, alpha)(global_step)


def cosine_decay_restarts(
    learning_rate: float,
    global_step: Number,
    first_decay_steps: float,
    t_mul: float = 2.0,
    m_mul: float = 1.0,
    alpha: float = 0.0,
) -> float:
    """TF1's ``cosine_decay_restarts``."""
    _step(global_step, "cosine decay restarts")
    schedule = CosineDecayRestarts(learning_rate, first_decay_steps, t_mul, m_mul, alpha)
    return schedule(global_step)


def linear_cosine_decay(
    learning_rate: float,
    global_step: Number,
    decay_steps: float,
    num_periods: float = 0.5,
    alpha: float = 0.0,
    beta: float = 0.001,
) -> float:
    """TF1's ``linear_cosine_decay``."""
    _step(global_step, "linear cosine decay")
    schedule = LinearCosineDecay(learning_rate, decay_steps, num_periods, alpha, beta)
    return schedule(global_step)


def noisy_linear_cosine_decay(
    learning_rate: float,
    global_step: Number,
    decay_steps: float,
    initial_variance: float = 1.0,
    variance_decay: float = 0.55,
    num_periods: float = 0.5,
    alpha: float = 0.0,
    beta: float = 0.001,
    seed: int | None = None,
) -> float:
    """TF1's ``noisy_linear_cosine_decay`` (``seed`` makes it reproducible)."""
    _step(global_step, "noisy linear cosine decay")
    schedule = NoisyLinearCosineDecay(
        learning_rate,
        decay_steps,
        num_periods=num_periods,
        alpha=alpha,
        beta=beta,
        initial_variance=initial_variance,
        variance_decay=variance_decay,
        seed=seed,
    )
    return schedule(global_step)


# -- driving torch's optimizers ----------------------------------------------------------------


class ScheduleLR(torch.optim.lr_scheduler.LRScheduler):
    """A torch LRScheduler that sets each group's lr to schedule(n) at update n.

    Call ``scheduler.step()`` after ``optimizer.step()``, as with any torch scheduler. The value is
    computed from the schedule's closed form (never by multiplying the previous lr), so there is no
    drift, no ordering warning to decode, and ``state_dict``/``load_state_dict`` resume exactly.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        schedules: Sequence[Callable[[int], float]],
        last_epoch: int = -1,
    ) -> None:
        if len(schedules) != len(optimizer.param_groups):
            raise ValueError(
                f"one schedule per parameter group: the optimizer has "
                f"{len(optimizer.param_groups)} groups, got {len(schedules)} schedules"
            )
        self.schedules = list(schedules)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [float(schedule(self.last_epoch)) for schedule in self.schedules]

    def _get_closed_form_lr(self) -> list[float]:
        return self.get_lr()


def torch_scheduler(
    optimizer: torch.optim.Optimizer,
    schedule: Callable[[int], float] | Sequence[Callable[[int], float]],
) -> ScheduleLR:
    """Drive any torch optimizer with a schedule (or one per parameter group)."""
    schedules = [schedule] * len(optimizer.param_groups) if callable(schedule) else list(schedule)
    return ScheduleLR(optimizer, schedules)


__all__ = [
    "Constant",
    "CosineDecay",
    "CosineDecayRestarts",
    "Cyclical",
    "ExponentialDecay",
    "InverseTimeDecay",
    "Join",
    "LinearCosineDecay",
    "LinearWarmup",
    "MultiStepDecay",
    "NaturalExpDecay",
    "NoisyLinearCosineDecay",
    "OneCycle",
    "PiecewiseConstantDecay",
    "PolynomialDecay",
    "Schedule",
    "ScheduleLR",
    "StepDecay",
    "Warmup",
    "cosine_decay",
    "cosine_decay_restarts",
    "create",
    "exponential_decay",
    "for_run",
    "from_dict",
    "inverse_time_decay",
    "join",
    "linear_cosine_decay",
    "names",
    "natural_exp_decay",
    "noisy_linear_cosine_decay",
    "piecewise_constant",
    "polynomial_decay",
    "torch_scheduler",
]
