"""The step plan (descent.optim.stepping): the lists a group's step reuses give the same numbers as
gathering them afresh at every step, and are rebuilt whenever what they describe changes."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch

from descent import optim
from descent.errors import InputError
from descent.optim.stepping import Plan

# One rule per kind of fast path: torch's fused kernel (Adam, Adagrad, Momentum), plain SGD's
# axpy, descent's single-pass C kernel (Nesterov, RMSprop), the two-pass C kernels (LAMB, and LARS,
# whose plan keeps the parameters' dimensions), a rule with host scalars (Nadam) and one whose
# step couples the whole group (Prodigy); and the other single-pass C kernels, whose scalars may
# depend on each tensor's step count t (AdaMax, Schedule-Free) or not (Adadelta, Lion).
RULES = [
    "sgd",
    "adam",
    "adagrad",
    "momentum",
    "nesterov",
    "rmsprop",
    "lamb",
    "lars",
    "nadam",
    "prodigy",
    "adamax",
    "adadelta",
    "lion",
    "schedule_free_adamw",
]


def make_params() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    shapes = [(4, 4), (5,), (3, 2)]
    return [
        torch.randn(shape, generator=generator, dtype=torch.float64).requires_grad_()
        for shape in shapes
    ]


def set_grads(params: list[torch.Tensor], update: int) -> None:
    """Gradients that change with the update, with the situations a plan must notice: a
    parameter without a gradient (updates 2 and 3), a non-contiguous gradient (update 4)."""
    generator = torch.Generator().manual_seed(100 + update)
    for index, param in enumerate(params):
        grad = torch.randn(param.shape, generator=generator, dtype=torch.float64)
        if index == 1 and update in (2, 3):
            param.grad = None
        elif index == 0 and update == 4:
            param.grad = torch.randn(4, 4, generator=generator, dtype=torch.float64).t()
        else:
            param.grad = grad


def step_through(
    optimizer: optim.DescentOptimizer, params: list[torch.Tensor], updates: range
) -> None:
    """One step of ``optimizer`` for each of ``updates``, on :func:`set_grads`' gradients."""
    for update in updates:
        set_grads(params, update)
        optimizer.step()


def run(
    name: str,
    updates: int,
    before_step: Callable[[optim.DescentOptimizer], None],
    impl: str = "fast",
) -> list[torch.Tensor]:
    params = make_params()
    optimizer = optim.create(name, params, lr=0.01, impl=impl)
    for update in range(updates):
        set_grads(params, update)
        before_step(optimizer)
        optimizer.step()
    return [param.detach() for param in params]


def forget(optimizer: optim.DescentOptimizer) -> None:
    optimizer._plans.clear()


@pytest.mark.parametrize("name", RULES)
def test_reused_plan_equals_a_plan_made_at_every_step(name: str) -> None:
    reused = run(name, 8, lambda optimizer: None)
    afresh = run(name, 8, forget)
    for mine, expected in zip(reused, afresh, strict=True):
        torch.testing.assert_close(mine, expected, rtol=0, atol=0)


@pytest.mark.parametrize("name", RULES)
def test_fast_step_through_changing_gradients_equals_the_reference(name: str) -> None:
    fast = run(name, 8, lambda optimizer: None)
    reference = run(name, 8, lambda optimizer: None, impl="reference")
    for mine, expected in zip(fast, reference, strict=True):
        torch.testing.assert_close(mine, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["adam", "sgd", "rmsprop"])
def test_plan_is_reused_while_it_fits_and_rebuilt_when_gradients_change(name: str) -> None:
    params = make_params()
    optimizer = optim.create(name, params, lr=0.01)
    set_grads(params, 0)
    optimizer.step()
    (first,) = optimizer._plans.values()
    set_grads(params, 1)
    optimizer.step()
    assert next(iter(optimizer._plans.values())) is first
    set_grads(params, 2)  # the second parameter has no gradient
    optimizer.step()
    second = next(iter(optimizer._plans.values()))
    assert second is not first
    assert len(second.params) == 2


def test_plan_is_rebuilt_after_load_and_after_the_state_is_cleared() -> None:
    params = make_params()
    optimizer = optim.Adam(params, lr=0.01)
    step_through(optimizer, params, range(2))
    saved = copy.deepcopy(optimizer.state_dict())
    optimizer.load_state_dict(saved)
    assert not optimizer._plans
    optimizer.state.clear()
    set_grads(params, 5)
    optimizer.step()  # a fresh state: step 1 again
    assert all(float(optimizer.state[p]["step"]) == 1.0 for p in params)


def test_loaded_state_is_the_one_stepped() -> None:
    """Resuming into an optimizer that has already stepped (so holds a plan) continues from the
    loaded state, not from the plan's lists of the old one."""
    params = make_params()
    optimizer = optim.Adam(params, lr=0.01)
    step_through(optimizer, params, range(3))
    saved = copy.deepcopy(optimizer.state_dict())
    kept = [param.detach().clone() for param in params]
    step_through(optimizer, params, range(3, 6))
    expected = [param.detach().clone() for param in params]
    with torch.no_grad():
        for param, value in zip(params, kept, strict=True):
            param.copy_(value)
    optimizer.load_state_dict(saved)
    step_through(optimizer, params, range(3, 6))
    for param, value in zip(params, expected, strict=True):
        torch.testing.assert_close(param.detach(), value, rtol=0, atol=0)


def test_sparse_gradient_is_refused_after_a_plan_exists() -> None:
    param = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    optimizer = optim.Adam([param])
    param.grad = torch.ones(6, dtype=torch.float64)
    optimizer.step()
    param.grad = torch.ones(6, dtype=torch.float64).to_sparse()
    with pytest.raises(InputError, match="sparse gradients"):
        optimizer.step()


def test_copied_optimizer_steps_as_the_original() -> None:
    params = make_params()
    optimizer = optim.Adam(params, lr=0.01)
    set_grads(params, 0)
    optimizer.step()
    twin_params = [param.detach().clone().requires_grad_() for param in params]
    twin = optim.Adam(twin_params, lr=0.01)
    twin.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    clone = copy.deepcopy(optimizer)  # torch pickles defaults, state and groups only
    clone_twin_params = [param.detach().clone().requires_grad_() for param in params]
    clone_twin = optim.Adam(clone_twin_params, lr=0.01)
    clone_twin.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    for update in (1, 2):
        set_grads(params, update)
        set_grads(twin_params, update)
        optimizer.step()
        twin.step()
    for mine, theirs in zip(params, twin_params, strict=True):
        torch.testing.assert_close(mine.detach(), theirs.detach(), rtol=0, atol=0)
    # the clone steps its own copies (not the original's tensors), as a fresh twin does
    after_original = [param.detach().clone() for param in params]
    clone_params = clone.param_groups[0]["params"]
    set_grads(clone_params, 1)
    set_grads(clone_twin_params, 1)
    clone.step()
    clone_twin.step()
    assert isinstance(next(iter(clone._plans.values())), Plan)
    for mine, theirs in zip(clone_params, clone_twin_params, strict=True):
        torch.testing.assert_close(mine.detach(), theirs.detach(), rtol=0, atol=0)
    for param, before in zip(params, after_original, strict=True):
        assert torch.equal(param.detach(), before)


@pytest.mark.parametrize("name", ["adam", "momentum", "lamb", "rmsprop", "sgd"])
def test_a_parameter_swapped_into_the_group_is_stepped(name: str) -> None:
    """opt.param_groups[0]["params"][i] = new: the next step updates the new tensor with its own
    gradient and state (a plan kept by the group's size alone stepped the old one)."""
    params = make_params()
    optimizer = optim.create(name, params, lr=0.01)
    set_grads(params, 0)
    optimizer.step()
    old = params[1]
    new = old.detach().clone().mul_(2.0).requires_grad_()
    optimizer.param_groups[0]["params"][1] = new
    swapped = list(optimizer.param_groups[0]["params"])
    twin_params = [param.detach().clone().requires_grad_() for param in swapped]
    twin = optim.create(name, twin_params, lr=0.01, impl="reference")
    # (state.get: reading a missing key of torch's defaultdict would add an entry)
    twin.state.update({twin_params[i]: copy.deepcopy(optimizer.state.get(p))
                       for i, p in enumerate(swapped) if optimizer.state.get(p)})  # fmt: skip
    twin.param_groups[0]["step"] = optimizer.param_groups[0]["step"]
    old_value = old.detach().clone()
    old.grad = None
    set_grads(swapped, 1)
    set_grads(twin_params, 1)
    optimizer.step()
    twin.step()
    assert torch.equal(old.detach(), old_value)  # the tensor swapped out is left alone
    for mine, theirs in zip(swapped, twin_params, strict=True):
        torch.testing.assert_close(mine.detach(), theirs.detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["adam", "momentum"])
def test_a_state_tensor_replaced_by_hand_is_the_one_updated(name: str) -> None:
    params = make_params()
    optimizer = optim.create(name, params, lr=0.01)
    set_grads(params, 0)
    optimizer.step()
    state = optimizer.state[params[0]]
    key = "exp_avg" if name == "adam" else "momentum_buffer"
    old = state[key]
    state[key] = torch.zeros_like(old)
    old_value = old.clone()
    set_grads(params, 1)
    optimizer.step()
    assert torch.equal(old, old_value)
    assert not torch.equal(state[key], torch.zeros_like(old))


@pytest.mark.parametrize("name", ["rmsprop", "adam"])
def test_parameters_cast_after_the_plan_are_stepped_afresh(name: str) -> None:
    """A model cast after its optimizer was made (param.data replaced) is no longer what the
    plan's kernel split saw: the step checks the tensors again (here: the foreach formulation,
    as the float64 state no longer matches) and computes what the reference step does."""
    results = []
    for impl in ("fast", "reference"):
        params = make_params()
        optimizer = optim.create(name, params, lr=0.01, impl=impl)
        set_grads(params, 0)
        optimizer.step()
        generator = torch.Generator().manual_seed(1)
        for param in params:
            param.data = param.data.float()
            param.grad = torch.randn(param.shape, generator=generator)
        optimizer.step()
        results.append([param.detach() for param in params])
    for fast, reference in zip(*results, strict=True):
        assert fast.dtype == torch.float32
        torch.testing.assert_close(fast, reference, rtol=1e-6, atol=1e-7)


def _lars_run(impl: str, switch_at: int) -> list[torch.Tensor]:
    params = make_params()
    optimizer = optim.create("lars", params, lr=0.01, weight_decay=0.1, exclude_1d=True, impl=impl)
    for update in range(7):
        set_grads(params, update)
        optimizer.param_groups[0]["exclude_1d"] = update < switch_at
        optimizer.step()
    return [param.detach() for param in params]


def test_lars_plan_keeps_dimensions_and_reads_the_exclusion_each_step() -> None:
    """LARS's plan keeps its parameters' dimensions; whether 1-D tensors are exempt from the
    trust ratio is read from the group at each step: switching ``exclude_1d`` mid-run (through
    the plan changes of set_grads) steps as the reference does."""
    fast, reference = _lars_run("fast", 5), _lars_run("reference", 5)
    for a, b in zip(fast, reference, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # the switch changes the 1-D parameter's path: a step that kept the old exclusion would fail
    never_switched = _lars_run("reference", 7)
    assert not torch.allclose(reference[1], never_switched[1], rtol=1e-9, atol=0)


def test_nadam_momentum_schedule_keeps_its_product_through_a_plan() -> None:
    """Nadam's μ-product Πₜ (momentum_decay set) advances on the host and in the state tensors the
    plan writes through: after every update the state holds exactly the host's Π (what a resume
    reads) and the reference's, while all parameters share t, after one skips updates (t and Π
    then differ), and after a μ-product tensor is replaced by hand (the new one is written)."""
    generator = torch.Generator().manual_seed(0)
    params = [torch.randn(shape, generator=generator, dtype=torch.float64).requires_grad_()
              for shape in [(4, 4), (5,), (3, 2)]]  # fmt: skip
    twins = [param.detach().clone().requires_grad_() for param in params]
    fast = optim.Nadam(params, lr=0.01, momentum_decay=0.004)
    reference = optim.Nadam(twins, lr=0.01, momentum_decay=0.004, impl="reference")
    for update in range(10):
        for mine, theirs in zip(params, twins, strict=True):
            grad = torch.randn(mine.shape, generator=generator, dtype=torch.float64)
            skip = mine is params[1] and update in (6, 7)
            mine.grad = None if skip else grad
            theirs.grad = None if skip else grad.clone()
        if update == 3:
            fast.state[params[0]]["mu_product"] = fast.state[params[0]]["mu_product"].clone()
        fast.step()
        reference.step()
        for mine, theirs in zip(params, twins, strict=True):
            torch.testing.assert_close(mine.detach(), theirs.detach(), rtol=1e-12, atol=1e-14)
            product = float(fast.state[mine]["mu_product"])
            assert product == float(reference.state[theirs]["mu_product"]), update
            assert product == fast._hosts[mine]["mu_product"], update
    assert fast.state[params[1]]["step"] == 8
    assert fast.state[params[0]]["step"] == 10
