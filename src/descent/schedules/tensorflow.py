"""TensorFlow's learning-rate schedules with TF's exact semantics (Keras 3 and ``tf.compat.v1``).

Each class computes what TF computes, in float64 (TF computes in the dtype of ``learning_rate``,
float32 for a Python float: expect agreement to about 1e-6 relative); the formulas, TF's
conventions and the test vectors are in docs/schedules.md. The functional forms at the end mirror
``tf.compat.v1.train.*_decay(learning_rate, global_step, …)`` one for one.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from descent import validate
from descent.errors import InputError
from descent.schedules.base import (
    Finite,
    NonNegative,
    Number,
    Positive,
    Schedule,
    _step,
)

# -- the TensorFlow family ---------------------------------------------------------------------


@dataclass(frozen=True)
class _DecayByRate(Schedule):
    """What TF's exponential, natural-exponential and inverse-time decays share: the parameters
    and the progress p = s / decay_steps, floored with ``staircase`` (a step function)."""

    initial_learning_rate: NonNegative
    decay_steps: Positive
    decay_rate: float
    staircase: bool = False
    #: natural_exp_decay takes any finite rate (a negative one grows the rate); the others ≥ 0.
    negative_rate_allowed: ClassVar[bool] = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check_rate = validate.finite if self.negative_rate_allowed else validate.nonnegative
        check_rate(self.decay_rate, "decay_rate")

    def progress(self, step: float) -> float:
        """p = s / decay_steps, floored with ``staircase``."""
        p = step / self.decay_steps
        return math.floor(p) if self.staircase else p


@dataclass(frozen=True)
class ExponentialDecay(_DecayByRate):
    """lr · decay_rate^p, p = s / decay_steps (floor(s / decay_steps) with staircase).

    TF: ``tf.compat.v1.train.exponential_decay`` / ``keras.optimizers.schedules.ExponentialDecay``.
    torch: ExponentialLR(γ) is decay_steps=1, decay_rate=γ; StepLR(S, γ) is staircase=True.
    """

    name: ClassVar[str] = "exponential_decay"

    def value(self, step: float) -> float:
        return self.initial_learning_rate * self.decay_rate ** self.progress(step)


@dataclass(frozen=True)
class PiecewiseConstantDecay(Schedule):
    """values[0] for s ≤ b[0]; values[i] for b[i−1] < s ≤ b[i]; values[−1] for s > b[−1].

    Intervals are closed on the right, as in TF: at a boundary the earlier value still applies,
    so the new value starts at step boundary + 1. (torch's MultiStepLR switches at the milestone
    itself: MultiStepLR(milestones=m) is boundaries = [m − 1, …].)
    """

    name: ClassVar[str] = "piecewise_constant"
    boundaries: tuple[Finite, ...]
    values: tuple[NonNegative, ...]

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.values) != len(self.boundaries) + 1:
            raise InputError(
                f"piecewise_constant needs one more value than boundaries: got "
                f"{len(self.boundaries)} boundaries and {len(self.values)} values"
            )
        validate.increasing(self.boundaries, "boundaries")

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
    initial_learning_rate: NonNegative
    decay_steps: Positive
    end_learning_rate: NonNegative = 0.0001
    power: Positive = 1.0
    cycle: bool = False

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
class NaturalExpDecay(_DecayByRate):
    """lr · exp(−decay_rate · p), p = s / decay_steps (floored with staircase)."""

    name: ClassVar[str] = "natural_exp_decay"
    negative_rate_allowed: ClassVar[bool] = True

    def value(self, step: float) -> float:
        return self.initial_learning_rate * math.exp(-self.decay_rate * self.progress(step))


@dataclass(frozen=True)
class InverseTimeDecay(_DecayByRate):
    """lr / (1 + decay_rate · p), p = s / decay_steps (floored with staircase)."""

    name: ClassVar[str] = "inverse_time_decay"

    def value(self, step: float) -> float:
        return self.initial_learning_rate / (1 + self.decay_rate * self.progress(step))


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
    initial_learning_rate: NonNegative
    decay_steps: Positive
    alpha: NonNegative = 0.0
    warmup_target: NonNegative | None = None
    warmup_steps: NonNegative = 0

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
    initial_learning_rate: NonNegative
    first_decay_steps: Positive
    t_mul: Positive = 2.0
    m_mul: NonNegative = 1.0
    alpha: NonNegative = 0.0

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


@dataclass(frozen=True)
class LinearCosineDecay(Schedule):
    """s′ = min(s, D) ; lin = (D − s′)/D ; c = ½(1 + cos(2π·num_periods·s′/D)) ;
    lr·((α + lin)·c + β). Step 0 gives lr(1 + α + β), above lr (as TF)."""

    name: ClassVar[str] = "linear_cosine_decay"
    initial_learning_rate: NonNegative
    decay_steps: Positive
    num_periods: Finite = 0.5
    alpha: NonNegative = 0.0
    beta: NonNegative = 0.001

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
    initial_variance: NonNegative = 1.0
    variance_decay: NonNegative = 0.55
    seed: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
        ):
            raise InputError(f"seed must be an integer or None, got {self.seed!r}")

    def noise_std(self, step: float) -> float:
        clamped = min(_step(step, self.name), self.decay_steps)
        return math.sqrt(self.initial_variance / (1 + clamped) ** self.variance_decay)

    def value(self, step: float) -> float:
        clamped, linear, cosine = self._parts(step)
        key = f"{self.seed}:{float(step)!r}"  # the same step gives the same noise, int or float
        rng = random.Random() if self.seed is None else random.Random(key)
        noise = rng.gauss(0.0, 1.0) * self.noise_std(clamped)
        return self.initial_learning_rate * ((self.alpha + linear + noise) * cosine + self.beta)


# -- TF's functional forms ---------------------------------------------------------------------

def _tf1_form(
    schedule: type[Schedule],
    tf_name: str,
    doc: str,
    arguments: Sequence[str] | None = None,
) -> Callable[..., float]:
    """The TF1 function form of ``schedule``, named as TF names it (the schedule's name):
    ``form(learning_rate, global_step, *arguments)``, where ``arguments`` are the schedule's own
    fields in TF1's order (default: the schedule's field order, which is TF1's for most) and
    keep the schedule's defaults, so a default is stated once, on the schedule. The form checks
    the step as TF does (``global_step is required for <tf_name>``), builds ``schedule`` from the
    other arguments (TF's ``learning_rate`` is the schedule's ``initial_learning_rate``) and
    evaluates it at the step: one body for every form."""
    fields = {field.name: field for field in dataclasses.fields(schedule)}
    if arguments is None:
        arguments = [name for name in fields if name != "initial_learning_rate"]
    keyword = inspect.Parameter.POSITIONAL_OR_KEYWORD
    parameters = inspect.Signature(
        [
            inspect.Parameter("learning_rate", keyword, annotation="float"),
            inspect.Parameter("global_step", keyword, annotation="Number"),
            *(
                inspect.Parameter(
                    name,
                    keyword,
                    default=(
                        inspect.Parameter.empty
                        if fields[name].default is dataclasses.MISSING
                        else fields[name].default
                    ),
                    annotation=fields[name].type,
                )
                for name in arguments
            ),
        ],
        return_annotation="float",
    )

    def form(*args: Any, **kwargs: Any) -> float:
        bound = parameters.bind(*args, **kwargs)
        bound.apply_defaults()
        settings = dict(bound.arguments)
        step = settings.pop("global_step")
        _step(step, tf_name)
        settings["initial_learning_rate"] = settings.pop("learning_rate")
        return schedule(**settings)(step)

    form.__signature__ = parameters  # type: ignore[attr-defined]
    form.__name__ = form.__qualname__ = schedule.name
    form.__doc__ = doc
    form.__annotations__ = {
        **{name: parameter.annotation for name, parameter in parameters.parameters.items()},
        "return": "float",
    }
    return form


exponential_decay = _tf1_form(
    ExponentialDecay,
    "exponential_decay",
    "TF1's ``exponential_decay`` as a function returning a float.",
)
natural_exp_decay = _tf1_form(NaturalExpDecay, "natural_exp_decay", "TF1's ``natural_exp_decay``.")
inverse_time_decay = _tf1_form(
    InverseTimeDecay, "inverse_time_decay", "TF1's ``inverse_time_decay``."
)


def piecewise_constant(x: Number, boundaries: Sequence[float], values: Sequence[float]) -> float:
    """TF1's ``piecewise_constant``: right-closed intervals."""
    return PiecewiseConstantDecay(tuple(boundaries), tuple(values))(x)


polynomial_decay = _tf1_form(PolynomialDecay, "polynomial_decay", "TF1's ``polynomial_decay``.")
# TF1's cosine_decay has no warmup: Keras 3 added it.
cosine_decay = _tf1_form(
    CosineDecay, "cosine decay", "TF1's ``cosine_decay``.", ("decay_steps", "alpha")
)
cosine_decay_restarts = _tf1_form(
    CosineDecayRestarts, "cosine decay restarts", "TF1's ``cosine_decay_restarts``."
)
linear_cosine_decay = _tf1_form(
    LinearCosineDecay, "linear cosine decay", "TF1's ``linear_cosine_decay``."
)
# TF1 puts the noise's parameters before the inherited linear-cosine ones.
noisy_linear_cosine_decay = _tf1_form(
    NoisyLinearCosineDecay,
    "noisy linear cosine decay",
    "TF1's ``noisy_linear_cosine_decay`` (``seed`` makes it reproducible).",
    ("decay_steps", "initial_variance", "variance_decay", "num_periods", "alpha", "beta", "seed"),
)
