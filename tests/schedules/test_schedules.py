"""Schedules as objects: properties, validation, serialization, and driving optimizers."""

from __future__ import annotations

import io
import math

import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from descent import optim
from descent import schedules as sch

EXAMPLES: list[sch.Schedule] = [
    sch.ExponentialDecay(0.1, 10, 0.5, staircase=True),
    sch.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1]),
    sch.PolynomialDecay(0.1, 10, power=2.0, cycle=True),
    sch.NaturalExpDecay(0.1, 10, 0.5),
    sch.InverseTimeDecay(0.1, 10, 0.5),
    sch.CosineDecay(0.0, 100, alpha=0.1, warmup_target=0.1, warmup_steps=10),
    sch.CosineDecayRestarts(0.1, 10, t_mul=2.0, m_mul=0.5, alpha=0.1),
    sch.LinearCosineDecay(0.1, 100, num_periods=2.0),
    sch.NoisyLinearCosineDecay(0.1, 100, seed=7),
    sch.Cyclical(0.001, 0.006, step_size_up=4, step_size_down=6, mode="exp_range", gamma=0.99),
    sch.Constant(0.05),
    sch.StepDecay(0.1, 10, 0.5),
    sch.MultiStepDecay(0.1, [10, 20], 0.5),
    sch.LinearWarmup(0.1, 10),
    sch.Warmup(sch.CosineDecay(0.1, 100), 10),
    sch.join(sch.LinearWarmup(0.1, 5), sch.ExponentialDecay(0.1, 10, 0.9), 5),
    sch.OneCycle(0.1, 100, three_phase=True),
]
IDS = [type(s).__name__ for s in EXAMPLES]


def test_every_registered_schedule_has_an_example() -> None:
    assert {s.name for s in EXAMPLES} == set(sch.names())


@pytest.mark.parametrize("schedule", EXAMPLES, ids=IDS)
def test_dict_and_yaml_round_trip(schedule: sch.Schedule) -> None:
    data = schedule.to_dict()
    assert sch.from_dict(data) == schedule
    text = yaml.safe_dump(data)
    rebuilt = sch.from_dict(yaml.safe_load(text))
    assert rebuilt == schedule
    assert hash(rebuilt) == hash(schedule)
    assert [rebuilt(n) for n in range(0, 100, 7)] == [schedule(n) for n in range(0, 100, 7)]


@pytest.mark.parametrize("schedule", EXAMPLES, ids=IDS)
def test_repr_names_the_class_and_parameters(schedule: sch.Schedule) -> None:
    text = repr(schedule)
    assert text.startswith(type(schedule).__name__ + "(")
    for key, value in schedule.to_dict().items():
        if key != "name" and not isinstance(value, dict | list):
            assert f"{key}=" in text


def test_equality_is_by_parameters() -> None:
    assert sch.ExponentialDecay(0.1, 10, 0.5) == sch.ExponentialDecay(0.1, 10, 0.5)
    assert sch.ExponentialDecay(0.1, 10, 0.5) != sch.ExponentialDecay(0.1, 10, 0.6)
    assert sch.ExponentialDecay(0.1, 10, 0.5) != sch.NaturalExpDecay(0.1, 10, 0.5)


def test_create_by_name() -> None:
    made = sch.create("cosine_decay", initial_learning_rate=0.1, decay_steps=100)
    assert made == sch.CosineDecay(0.1, 100)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: sch.ExponentialDecay(0.1, 0, 0.5), "decay_steps must be > 0"),
        (lambda: sch.PolynomialDecay(0.1, -5), "decay_steps must be > 0"),
        (lambda: sch.CosineDecayRestarts(0.1, 0), "first_decay_steps must be > 0"),
        (lambda: sch.PiecewiseConstantDecay([20, 10], [1, 2, 3]), "strictly increasing"),
        (lambda: sch.PiecewiseConstantDecay([10, 10], [1, 2, 3]), "strictly increasing"),
        (lambda: sch.PiecewiseConstantDecay([10, 20], [1, 2]), "one more value than boundaries"),
        (lambda: sch.PiecewiseConstantDecay([10], [1, math.nan]), r"values\[1\]"),
        (lambda: sch.ExponentialDecay(math.inf, 10, 0.5), "initial_learning_rate"),
        (lambda: sch.ExponentialDecay(-0.1, 10, 0.5), "initial_learning_rate must be ≥ 0"),
        (lambda: sch.Cyclical(0.1, 1.0, mode="sawtooth"), "mode must be one of"),
        (lambda: sch.OneCycle(0.1, 0), "total_steps must be a positive integer"),
        (lambda: sch.OneCycle(0.1, 10, pct_start=1.5), r"pct_start must be in \[0, 1\]"),
        (lambda: sch.OneCycle(0.1, 10, anneal_strategy="cubic"), "anneal_strategy"),
        (lambda: sch.Join((sch.Constant(0.1), sch.Constant(0.2)), (5, 3)), "boundaries"),
        (lambda: sch.Join((sch.Constant(0.1), sch.Constant(0.2)), (0,)), r"boundaries\[0\] must"),
        (lambda: sch.MultiStepDecay(0.1, [20, 10]), r"milestones must not decrease, got \[20"),
        (lambda: sch.PiecewiseConstantDecay([1, math.inf], [1, 2, 3]), r"boundaries\[1\] must"),
        (lambda: sch.from_dict({"name": "cosine"}), "unknown schedule 'cosine'; accepted"),
        (lambda: sch.from_dict({"name": "constant", "lr": 0.1}), r"unknown parameter\(s\) 'lr'"),
        (lambda: sch.from_dict({"learning_rate": 0.1}), "'name' key"),
    ],
)
def test_bad_parameters_fail_with_a_clear_message(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


def test_bad_steps() -> None:
    schedule = sch.ExponentialDecay(0.1, 10, 0.5)
    with pytest.raises(ValueError, match="≥ 0"):
        schedule(-1)
    with pytest.raises(ValueError, match="finite"):
        schedule(math.nan)
    with pytest.raises(ValueError, match="global_step is required for exponential_decay"):
        sch.exponential_decay(0.1, None, 10, 0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="global_step is required for cosine decay"):
        sch.cosine_decay(0.1, None, 10)  # type: ignore[arg-type]


#: TF1's functional forms as tf.compat.v1.train declares them: (argument names, the same call
#: as a schedule object). The forms share one body; each must keep TF's order and defaults.
TF1_FORMS = {
    "exponential_decay": (
        ["learning_rate", "global_step", "decay_steps", "decay_rate", "staircase"],
        sch.ExponentialDecay(0.1, 7, 0.5, True),
        (0.1, 7, 0.5, True),
    ),
    "polynomial_decay": (
        ["learning_rate", "global_step", "decay_steps", "end_learning_rate", "power", "cycle"],
        sch.PolynomialDecay(0.1, 7, 0.01, 2.0, True),
        (0.1, 7, 0.01, 2.0, True),
    ),
    "natural_exp_decay": (
        ["learning_rate", "global_step", "decay_steps", "decay_rate", "staircase"],
        sch.NaturalExpDecay(0.1, 7, -0.5),
        (0.1, 7, -0.5),
    ),
    "inverse_time_decay": (
        ["learning_rate", "global_step", "decay_steps", "decay_rate", "staircase"],
        sch.InverseTimeDecay(0.1, 7, 0.5, True),
        (0.1, 7, 0.5, True),
    ),
    "cosine_decay": (
        ["learning_rate", "global_step", "decay_steps", "alpha"],
        sch.CosineDecay(0.1, 7, 0.2),
        (0.1, 7, 0.2),
    ),
    "cosine_decay_restarts": (
        ["learning_rate", "global_step", "first_decay_steps", "t_mul", "m_mul", "alpha"],
        sch.CosineDecayRestarts(0.1, 7, 3.0, 0.5, 0.1),
        (0.1, 7, 3.0, 0.5, 0.1),
    ),
    "linear_cosine_decay": (
        ["learning_rate", "global_step", "decay_steps", "num_periods", "alpha", "beta"],
        sch.LinearCosineDecay(0.1, 7, 2.0, 0.1, 0.01),
        (0.1, 7, 2.0, 0.1, 0.01),
    ),
    "noisy_linear_cosine_decay": (
        [
            "learning_rate",
            "global_step",
            "decay_steps",
            "initial_variance",
            "variance_decay",
            "num_periods",
            "alpha",
            "beta",
            "seed",
        ],
        sch.NoisyLinearCosineDecay(0.1, 7, 2.0, 0.1, 0.01, 0.5, 0.3, seed=5),
        (0.1, 7, 0.5, 0.3, 2.0, 0.1, 0.01, 5),
    ),
}


@pytest.mark.parametrize("name", sorted(TF1_FORMS))
def test_tf1_forms_take_tfs_arguments_and_equal_the_schedules(name: str) -> None:
    import inspect

    arguments, schedule, call = TF1_FORMS[name]
    form = getattr(sch, name)
    assert form.__name__ == name
    assert list(inspect.signature(form).parameters) == arguments
    learning_rate, *rest = call
    for step in [0, 3, 7, 10, 23]:
        assert form(learning_rate, step, *rest) == schedule(step)
        by_name = dict(zip(arguments[2:], rest, strict=False))
        assert form(learning_rate=learning_rate, global_step=step, **by_name) == schedule(step)
    with pytest.raises(TypeError):
        form(learning_rate, 3, *rest, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0)


#: tf.compat.v1.train's defaults, from TF's signatures: the forms take them from the schedules.
TF1_DEFAULTS = {
    "exponential_decay": {"staircase": False},
    "natural_exp_decay": {"staircase": False},
    "inverse_time_decay": {"staircase": False},
    "polynomial_decay": {"end_learning_rate": 0.0001, "power": 1.0, "cycle": False},
    "cosine_decay": {"alpha": 0.0},
    "cosine_decay_restarts": {"t_mul": 2.0, "m_mul": 1.0, "alpha": 0.0},
    "linear_cosine_decay": {"num_periods": 0.5, "alpha": 0.0, "beta": 0.001},
    "noisy_linear_cosine_decay": {
        "initial_variance": 1.0,
        "variance_decay": 0.55,
        "num_periods": 0.5,
        "alpha": 0.0,
        "beta": 0.001,
        "seed": None,
    },
}


@pytest.mark.parametrize("name", sorted(TF1_DEFAULTS))
def test_tf1_forms_have_tfs_defaults_and_required_arguments(name: str) -> None:
    import inspect

    parameters = inspect.signature(getattr(sch, name)).parameters.values()
    defaults = {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}
    assert defaults == TF1_DEFAULTS[name]
    with pytest.raises(TypeError, match="missing a required argument"):
        getattr(sch, name)(0.1)


def test_seeded_noise_is_a_function_of_the_step() -> None:
    noisy = sch.NoisyLinearCosineDecay(0.1, 100, seed=3)
    assert [noisy(n) for n in range(20)] == [noisy(n) for n in range(20)]
    assert noisy(5) != sch.NoisyLinearCosineDecay(0.1, 100, seed=4)(5)
    unseeded = sch.NoisyLinearCosineDecay(0.1, 100)
    assert len({unseeded(5) for _ in range(5)}) > 1  # TF's behaviour: a fresh draw each call


# -- properties --------------------------------------------------------------------------------

rates = st.floats(1e-6, 10.0)
decay_steps = st.floats(0.5, 1000.0)
factors = st.floats(0.01, 0.999)
step_pairs = st.tuples(st.integers(0, 5000), st.integers(0, 5000)).map(sorted)


@settings(max_examples=60, deadline=None)
@given(lr=rates, steps=decay_steps, rate=factors, staircase=st.booleans(), pair=step_pairs)
def test_decays_are_monotone(
    lr: float, steps: float, rate: float, staircase: bool, pair: list[int]
) -> None:
    early, late = pair
    for schedule in (
        sch.ExponentialDecay(lr, steps, rate, staircase),
        sch.NaturalExpDecay(lr, steps, rate, staircase),
        sch.InverseTimeDecay(lr, steps, rate, staircase),
        sch.PolynomialDecay(lr, steps, end_learning_rate=lr * rate, power=1 + rate),
        sch.CosineDecay(lr, steps, alpha=rate),
        sch.StepDecay(lr, max(1, int(steps)), rate),
    ):
        assert schedule(late) <= schedule(early) * (1 + 1e-12), schedule


@settings(max_examples=60, deadline=None)
@given(
    base=st.floats(0.0, 1.0),
    span=st.floats(0.0, 1.0),
    up=st.integers(1, 50),
    down=st.one_of(st.none(), st.integers(1, 50)),
    mode=st.sampled_from(sch.Cyclical.MODES),
    gamma=st.floats(0.5, 1.0),
    step=st.integers(0, 10_000),
)
def test_cyclical_rates_stay_within_base_and_max(
    base: float, span: float, up: int, down: int | None, mode: str, gamma: float, step: int
) -> None:
    schedule = sch.Cyclical(base, base + span, up, down, mode, gamma)
    value = schedule(step)
    assert base - 1e-12 <= value <= base + span + 1e-12


@settings(max_examples=60, deadline=None)
@given(lr=rates, rate=factors, boundary=st.integers(1, 500), steps=decay_steps)
def test_join_is_continuous_where_the_next_schedule_starts_at_the_current_value(
    lr: float, rate: float, boundary: int, steps: float
) -> None:
    first = sch.ExponentialDecay(lr, steps, rate)
    second = sch.CosineDecay(first(boundary), steps)
    joined = sch.join(first, second, boundary)
    assert joined(boundary) == first(boundary)
    assert joined(boundary - 1) == first(boundary - 1)
    assert joined(boundary + 3) == second(3)


@settings(max_examples=40, deadline=None)
@given(target=rates, warmup=st.integers(1, 200), steps=decay_steps)
def test_warmup_rises_to_the_schedule_it_hands_over_to(
    target: float, warmup: int, steps: float
) -> None:
    schedule = sch.Warmup(sch.CosineDecay(target, steps), warmup)
    ramp = [schedule(n) for n in range(warmup + 1)]
    assert ramp == sorted(ramp)
    assert schedule(warmup) == target


# -- driving optimizers ------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", EXAMPLES, ids=IDS)
def test_torch_sgd_sees_schedule_n_at_update_n_across_save_and_load(schedule: sch.Schedule) -> None:
    def build() -> tuple[torch.Tensor, torch.optim.SGD, sch.ScheduleLR]:
        param = torch.zeros(3, requires_grad=True)
        opt = torch.optim.SGD([param], lr=1.0)
        return param, opt, sch.torch_scheduler(opt, schedule)

    param, opt, scheduler = build()
    seen = []
    for n in range(25):
        seen.append(opt.param_groups[0]["lr"])
        param.grad = torch.ones(3)
        opt.step()
        scheduler.step()
        if n == 11:
            buffer = io.BytesIO()
            torch.save({"optim": opt.state_dict(), "sched": scheduler.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    param, opt, scheduler = build()
    opt.load_state_dict(saved["optim"])
    scheduler.load_state_dict(saved["sched"])
    resumed = []
    for _ in range(12, 25):
        resumed.append(opt.param_groups[0]["lr"])
        param.grad = torch.ones(3)
        opt.step()
        scheduler.step()
    assert seen == [schedule(n) for n in range(25)]
    assert resumed == seen[12:]


def test_adapter_takes_one_schedule_per_group() -> None:
    a, b = torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([{"params": [a]}, {"params": [b]}], lr=1.0)
    sch.torch_scheduler(opt, [sch.Constant(0.1), sch.Constant(0.2)])
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.2]
    with pytest.raises(ValueError, match="one schedule per parameter group"):
        sch.torch_scheduler(opt, [sch.Constant(0.1)])


@pytest.mark.parametrize("name", ["adam", "momentum", "rmsprop"])
def test_descent_optimizer_saves_its_schedule_and_resumes_bit_for_bit(name: str) -> None:
    schedule = sch.Warmup(sch.CosineDecayRestarts(0.05, 10, m_mul=0.8), 5)

    def build() -> tuple[torch.Tensor, optim.DescentOptimizer]:
        torch.manual_seed(0)
        param = torch.randn(20, requires_grad=True)
        return param, optim.create(name, [param], lr=schedule)

    def train(param: torch.Tensor, opt: optim.DescentOptimizer, steps: range) -> None:
        for n in steps:
            opt.zero_grad()
            ((param - math.sin(n)) ** 2).sum().backward()
            opt.step()

    param, opt = build()
    train(param, opt, range(40))
    uninterrupted = param.detach().clone()
    param, opt = build()
    train(param, opt, range(17))
    buffer = io.BytesIO()
    torch.save({"param": param.detach(), "optim": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    assert saved["optim"]["param_groups"][0]["lr"]["__schedule__"] == schedule.to_dict()

    param = saved["param"].clone().requires_grad_()
    resumed = optim.create(name, [param], lr=0.123)  # the saved schedule replaces this
    resumed.load_state_dict(saved["optim"])
    assert resumed.param_groups[0]["lr"] == schedule
    train(param, resumed, range(17, 40))
    assert torch.equal(param.detach(), uninterrupted)
