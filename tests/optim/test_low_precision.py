"""bfloat16 and float16 parameters: float32 state and arithmetic, at least as accurate as torch."""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

from descent import optim
from tests.optim.test_fast_path import CASES

LOW = [torch.bfloat16, torch.float16]
# One unit in the last place at |θ| = 1: the maximum error of 20 steps is a maximum over 1,000
# random walks of rounding errors, so two equally accurate computations differ by about this.
ULP_AT_ONE = {torch.bfloat16: 2.0**-7, torch.float16: 2.0**-10}

Factory = Callable[[list[torch.Tensor]], torch.optim.Optimizer]

# torch's optimizer computing exactly what descent's variant computes (None: torch has no such
# variant; that row is compared with descent's reference path only).
SGD = torch.optim.SGD
TORCH_TWIN: dict[tuple[str, str], Factory] = {
    ("sgd", "{}"): lambda p: SGD(p, lr=1e-2),
    ("sgd", "{'weight_decay': 0.1, 'maximize': True}"): lambda p: SGD(
        p, lr=1e-2, weight_decay=0.1, maximize=True
    ),
    ("momentum", "{}"): lambda p: SGD(p, lr=1e-2, momentum=0.9),
    ("momentum", "{'lr_in_buffer': False}"): lambda p: SGD(p, lr=1e-2, momentum=0.9),
    ("momentum", "{'weight_decay': 0.1}"): lambda p: SGD(
        p, lr=1e-2, momentum=0.9, weight_decay=0.1
    ),
    ("nesterov", "{}"): lambda p: SGD(p, lr=1e-2, momentum=0.9, nesterov=True),
    ("nesterov", "{'lr_in_buffer': False}"): lambda p: SGD(p, lr=1e-2, momentum=0.9, nesterov=True),
    ("nesterov", "{'maximize': True, 'weight_decay': 0.05}"): lambda p: SGD(
        p, lr=1e-2, momentum=0.9, nesterov=True, maximize=True, weight_decay=0.05
    ),
    (
        "adagrad",
        "{'eps_inside_sqrt': False, 'lr_decay': 0.1, 'initial_accumulator_value': 0.1}",
    ): lambda p: torch.optim.Adagrad(
        p, lr=1e-2, lr_decay=0.1, initial_accumulator_value=0.1, eps=1e-8
    ),
    ("adadelta", "{}"): lambda p: torch.optim.Adadelta(p, lr=1e-2),
    ("adadelta", "{'weight_decay': 0.1, 'maximize': True}"): lambda p: torch.optim.Adadelta(
        p, lr=1e-2, weight_decay=0.1, maximize=True
    ),
    ("rmsprop", "{'eps_inside_sqrt': False}"): lambda p: torch.optim.RMSprop(
        p, lr=1e-2, alpha=0.9, eps=1e-8
    ),
    ("adam", "{}"): lambda p: torch.optim.Adam(p, lr=1e-2),
    ("adam", "{'weight_decay': 0.1, 'maximize': True}"): lambda p: torch.optim.Adam(
        p, lr=1e-2, weight_decay=0.1, maximize=True
    ),
    ("adamax", "{'eps_in_max': True}"): lambda p: torch.optim.Adamax(p, lr=1e-2),
    ("nadam", "{'momentum_decay': 0.004}"): lambda p: torch.optim.NAdam(p, lr=1e-2),
    ("amsgrad", "{'bias_correction': True}"): lambda p: torch.optim.Adam(p, lr=1e-2, amsgrad=True),
    ("adamw", "{}"): lambda p: torch.optim.AdamW(p, lr=1e-2),
}


def final(factory: Factory, dtype: torch.dtype, steps: int = 20) -> torch.Tensor:
    """The issue's measurement: 1,000 parameters from linspace(−1, 1), gradients sin(i + k)."""
    param = torch.linspace(-1, 1, 1000, dtype=dtype).requires_grad_()
    opt = factory([param])
    for k in range(steps):
        param.grad = torch.sin(torch.arange(1000, dtype=torch.float32) + k).to(dtype)
        opt.step()
    return param.detach().double()


def error(factory: Factory, dtype: torch.dtype) -> float:
    """Max |θ(dtype) − θ(float32)| of the same rule; NaN counts as infinitely wrong."""
    difference = (final(factory, dtype) - final(factory, torch.float32)).abs().max()
    return float("inf") if difference.isnan() else float(difference)


@pytest.mark.parametrize("dtype", LOW, ids=["bfloat16", "float16"])
@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_low_precision_is_as_accurate_as_torch_and_the_reference(
    name: str, kwargs: dict[str, Any], dtype: torch.dtype
) -> None:
    fast = error(lambda p: optim.create(name, p, lr=1e-2, **kwargs), dtype)
    reference = error(lambda p: optim.create(name, p, lr=1e-2, impl="reference", **kwargs), dtype)
    slack = ULP_AT_ONE[dtype]
    assert fast < 10 * slack  # finite, and no worse than a few roundings
    assert fast <= reference + slack
    twin = TORCH_TWIN.get((name, str(kwargs)))
    if twin is not None:
        assert fast <= error(twin, dtype) + slack


def test_torch_loses_float16_where_descent_does_not() -> None:
    """The issue's NaN: torch keeps Adam's state in float16, where ε = 1e-8 is 0."""
    assert error(lambda p: torch.optim.Adam(p, lr=1e-2), torch.float16) == float("inf")
    assert error(lambda p: optim.Adam(p, lr=1e-2), torch.float16) < 1e-2


@pytest.mark.parametrize("name", list(optim.OPTIMIZERS))
def test_state_dtype_defaults_to_float32_for_low_precision(name: str) -> None:
    for dtype, expected in [
        (torch.bfloat16, torch.float32),
        (torch.float16, torch.float32),
        (torch.float64, torch.float64),
    ]:
        param = torch.ones(4, dtype=dtype, requires_grad=True)
        opt = optim.create(name, [param])
        param.grad = torch.full((4,), 0.5, dtype=dtype)
        opt.step()
        assert param.dtype == dtype
        for key, value in opt.state[param].items():
            if key not in ("step", "mu_product"):
                assert value.dtype == expected, (name, key)


def test_state_dtype_can_be_chosen_and_survives_a_resume() -> None:
    torch.manual_seed(0)
    param = torch.randn(50, dtype=torch.bfloat16, requires_grad=True)
    opt = optim.Adam([param], lr=1e-2, state_dtype=torch.float64)

    def run(opt: optim.Adam, param: torch.Tensor, steps: range) -> None:
        for k in steps:
            param.grad = torch.sin(torch.arange(50.0) + k).bfloat16()
            opt.step()

    run(opt, param, range(5))
    assert opt.state[param]["exp_avg"].dtype == torch.float64
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    uninterrupted = param.detach().clone()
    run(opt, param, range(5, 10))

    resumed_param = uninterrupted.clone().requires_grad_()
    resumed = optim.Adam([resumed_param], lr=1e-2, state_dtype=torch.float64)
    buffer.seek(0)
    resumed.load_state_dict(torch.load(buffer))
    # torch would have cast the state to bfloat16 on load; descent keeps the state dtype.
    assert resumed.state[resumed_param]["exp_avg"].dtype == torch.float64
    run(resumed, resumed_param, range(5, 10))
    assert torch.equal(resumed_param.detach(), param.detach())


def test_bad_state_dtype_is_refused() -> None:
    with pytest.raises(ValueError, match="state_dtype"):
        optim.Adam([torch.ones(2, requires_grad=True)], state_dtype=torch.int32)


def tiny_steps(rounding: bool, steps: int = 2000) -> torch.Tensor:
    """SGD steps of 1e-4 on bfloat16 parameters near 1, where the spacing is 2⁻⁷ ≈ 0.0078: each
    step is far below half a spacing."""
    param = torch.ones(4096, dtype=torch.bfloat16, requires_grad=True)
    opt = optim.SGD([param], lr=1e-4, stochastic_rounding=rounding)
    for _ in range(steps):
        param.grad = torch.ones(4096, dtype=torch.bfloat16)
        opt.step()
    return param.detach().double()


def test_stochastic_rounding_keeps_updates_that_round_to_nearest_loses() -> None:
    exact = 1.0 - 2000 * 1e-4
    nearest = tiny_steps(rounding=False)
    stochastic = tiny_steps(rounding=True)
    assert torch.all(nearest == 1.0)  # every update rounded away
    assert abs(float(stochastic.mean()) - exact) < 2e-3  # unbiased: the mean follows the sum
    assert torch.equal(stochastic, tiny_steps(rounding=True))  # seeded: same run, same numbers


@functools.cache
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return torch.tensor(data.data / 16.0, dtype=torch.float32), torch.tensor(data.target)


def digits_accuracy(name: str, dtype: torch.dtype) -> float:
    x, y = digits()
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(y), generator=generator)
    train, test = order[:1400], order[1400:]
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10)
    ).to(dtype)
    lr = {"adam": 3e-3, "nadam": 3e-3, "momentum": 0.05}[name]
    opt = optim.create(name, model.parameters(), lr=lr)
    for _ in range(10):
        for batch in torch.randperm(1400, generator=generator).split(50):
            rows = train[batch]
            opt.zero_grad()
            logits = model(x[rows].to(dtype)).float()
            torch.nn.functional.cross_entropy(logits, y[rows]).backward()
            opt.step()
    with torch.no_grad():
        predicted = model(x[test].to(dtype)).float().argmax(1)
    return float((predicted == y[test]).float().mean())


@pytest.fixture
def one_thread() -> Iterator[None]:
    """A tiny model gains nothing from threads, and on a busy machine loses a lot to them."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", ["adam", "momentum", "nadam"])
def test_mlp_in_pure_bfloat16_matches_float32_on_digits(name: str, one_thread: None) -> None:
    full = digits_accuracy(name, torch.float32)
    half = digits_accuracy(name, torch.bfloat16)
    assert full > 0.9
    assert half >= full - 0.01
