"""Drop-in behaviour: state_dict round trips, bit-for-bit resume, param groups, frozen params."""

from __future__ import annotations

import io
import math

import pytest
import torch

from descent import optim
from descent.optim.reference import apply_reference

NAMES = list(optim.OPTIMIZERS)


def schedule(n: int) -> float:
    """A plain function as learning rate (saved opaquely; the resumed optimizer passes it again)."""
    return 0.01 * (1 + math.cos(math.pi * min(n, 40) / 40)) / 2 + 1e-4


def model_and_data(dtype: torch.dtype) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    model = model.to(dtype)
    inputs = torch.randn(64, 5, dtype=dtype)
    targets = torch.randn(64, 2, dtype=dtype)
    return model, inputs, targets


def train(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: range,
) -> None:
    for n in steps:
        batch = slice((n * 16) % 64, (n * 16) % 64 + 16)
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x[batch]), y[batch]).backward()
        opt.step()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", NAMES)
def test_resume_from_state_dict_is_bit_for_bit(name: str, dtype: torch.dtype) -> None:
    model, x, y = model_and_data(dtype)
    opt = optim.create(name, model.parameters(), lr=schedule)
    train(model, opt, x, y, range(30))
    uninterrupted = [p.detach().clone() for p in model.parameters()]

    model, x, y = model_and_data(dtype)
    opt = optim.create(name, model.parameters(), lr=schedule)
    train(model, opt, x, y, range(12))
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optim": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)

    model, x, y = model_and_data(dtype)
    model.load_state_dict(saved["model"])
    resumed = optim.create(name, model.parameters(), lr=schedule)
    resumed.load_state_dict(saved["optim"])
    assert resumed.param_groups[0]["step"] == 12
    train(model, resumed, x, y, range(12, 30))
    for a, b in zip(model.parameters(), uninterrupted, strict=True):
        assert torch.equal(a.detach(), b)


def test_opaque_schedule_cannot_be_resumed_into_a_float_learning_rate() -> None:
    param = torch.zeros(2, requires_grad=True)
    opt = optim.Adam([param], lr=schedule)
    state = opt.state_dict()
    other = optim.Adam([torch.zeros(2, requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="schedule"):
        other.load_state_dict(state)


@pytest.mark.parametrize("name", NAMES)
def test_parameters_without_gradients_are_left_alone(name: str) -> None:
    used = torch.ones(3, requires_grad=True)
    unused = torch.ones(3, requires_grad=True)
    opt = optim.create(name, [used, unused])
    for _ in range(3):
        opt.zero_grad()
        (used**2).sum().backward()
        opt.step()
    assert torch.equal(unused.detach(), torch.ones(3))
    assert unused not in opt.state or not any(
        torch.is_tensor(v) and v.dim() > 0 for v in opt.state[unused].values()
    )
    assert not torch.equal(used.detach(), torch.ones(3))


@pytest.mark.parametrize("name", NAMES)
def test_frozen_group_stays_unchanged(name: str) -> None:
    trained = torch.ones(3, requires_grad=True)
    frozen = torch.ones(3, requires_grad=True)
    opt = optim.create(name, [{"params": [trained]}, {"params": [frozen], "lr": 0.0}])
    for _ in range(5):
        opt.zero_grad()
        ((trained - 3) ** 2).sum().backward()
        ((frozen - 3) ** 2).sum().backward()
        opt.step()
    assert torch.equal(frozen.detach(), torch.ones(3))
    assert not torch.equal(trained.detach(), torch.ones(3))


def test_per_group_hyperparameters_and_add_param_group() -> None:
    a = torch.ones(2, requires_grad=True)
    b = torch.ones(2, requires_grad=True)
    opt = optim.Adam([a], lr=0.1, betas=(0.5, 0.9))
    opt.add_param_group({"params": [b], "lr": 0.01})
    assert opt.param_groups[1]["betas"] == (0.5, 0.9)
    assert opt.param_groups[1]["step"] == 0
    for param in (a, b):
        param.grad = torch.ones(2)
    opt.step()
    # Adam's first step moves each coordinate by about η (m̂ / √v̂ = 1)
    assert a.detach()[0].item() == pytest.approx(0.9, rel=1e-6)
    assert b.detach()[0].item() == pytest.approx(0.99, rel=1e-6)


def test_add_param_group_rejects_bad_values_and_keeps_the_rest() -> None:
    opt = optim.Adam([torch.ones(2, requires_grad=True)])
    with pytest.raises(ValueError, match="lr"):
        opt.add_param_group({"params": [torch.ones(2, requires_grad=True)], "lr": -1.0})
    assert len(opt.param_groups) == 1


def test_step_with_closure_returns_the_loss() -> None:
    x = torch.tensor([2.0], requires_grad=True)
    opt = optim.SGD([x], lr=0.1)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (x**2).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == pytest.approx(4.0)
    assert x.item() == pytest.approx(2.0 - 0.1 * 4.0)


@pytest.mark.parametrize("name", NAMES)
def test_maximize_ascends(name: str) -> None:
    up = torch.tensor([0.5], dtype=torch.float64, requires_grad=True)
    down = torch.tensor([0.5], dtype=torch.float64, requires_grad=True)
    ascend = optim.create(name, [up], maximize=True)
    descend = optim.create(name, [down])
    for _ in range(5):
        up.grad = -2 * (up.detach() - 1)  # gradient of −(x − 1)², maximized at 1
        down.grad = 2 * (down.detach() - 1)  # gradient of (x − 1)², minimized at 1
        ascend.step()
        descend.step()
    assert up.item() == down.item()
    assert up.item() > 0.5


def test_schedule_is_read_at_the_update_number() -> None:
    seen = []

    def recording(n: int) -> float:
        seen.append(n)
        return 0.1

    x = torch.ones(1, requires_grad=True)
    opt = optim.SGD([x], lr=recording)
    seen.clear()  # the constructor evaluates the schedule once to validate it
    for _ in range(3):
        x.grad = torch.ones(1)
        opt.step()
    assert seen == [0, 1, 2]
    assert opt.param_groups[0]["step"] == 3


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_a_missing_state_buffer_is_named_on_either_path(impl: str) -> None:
    """A state that lacks a buffer the rule needs (loaded from another rule) raises KeyError on
    both paths; the reference path names the buffer and the parameter instead of failing inside
    the formula on None."""
    model, x, y = model_and_data(torch.float64)
    opt = optim.create("rmsprop", model.parameters(), lr=0.01, impl=impl)
    train(model, opt, x, y, range(1))
    first = next(iter(model.parameters()))
    del opt.state[first]["square_avg"]
    with pytest.raises(KeyError, match="square_avg"):
        train(model, opt, x, y, range(1, 2))


def test_an_optional_buffer_left_out_by_the_options_is_passed_as_none() -> None:
    """RMSprop without centering or momentum keeps neither Ē nor b, and its reference takes None
    for them: the reference path steps as the fast one does."""
    model, x, y = model_and_data(torch.float64)
    twin, _, _ = model_and_data(torch.float64)
    reference = optim.create("rmsprop", model.parameters(), lr=0.01, impl="reference")
    fast = optim.create("rmsprop", twin.parameters(), lr=0.01)
    train(model, reference, x, y, range(3))
    train(twin, fast, x, y, range(3))
    assert set(reference.state[next(iter(model.parameters()))]) == {"step", "square_avg"}
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_an_option_turned_on_after_the_state_was_made_names_the_missing_buffer(impl: str) -> None:
    """Ē is optional in RMSprop's reference (left out when not centered), but a group that turns
    centering on after its state was made needs it: both paths raise KeyError naming it."""
    model, x, y = model_and_data(torch.float64)
    opt = optim.create("rmsprop", model.parameters(), lr=0.01, impl=impl)
    train(model, opt, x, y, range(1))
    opt.param_groups[0]["centered"] = True
    with pytest.raises(KeyError, match="grad_avg"):
        train(model, opt, x, y, range(1, 2))


def _toy_reference(
    param: torch.Tensor,
    grad: torch.Tensor,
    kept: torch.Tensor,
    extra: torch.Tensor | None,
    *,
    lr: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    return param - lr * (grad + kept), kept + 1, extra


def test_only_the_tensors_a_state_holds_are_required() -> None:
    """``held`` names the state tensors this parameter keeps: the others reach the formula as
    None; one it should hold and lacks raises KeyError naming it."""
    param, grad = torch.ones(3), torch.full((3,), 0.5)
    state: dict[str, torch.Tensor] = {"kept": torch.zeros(3)}
    tensors = ("kept", "extra")
    apply_reference(_toy_reference, {}, param, grad, state, {}, 0.1, tensors, held=("kept",))
    torch.testing.assert_close(param, torch.full((3,), 0.95))
    assert set(state) == {"kept"}
    with pytest.raises(KeyError, match="'kept'"):
        apply_reference(_toy_reference, {}, param, grad, {}, {}, 0.1, tensors, held=("kept",))
