"""torch's construction arguments on descent's rules (``foreach``, ``fused``, ``capturable``,
``differentiable``; ``maximize`` is tested with each rule's formula): each either does what it does
in torch or is refused with one sentence."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor

from descent import optim
from descent.errors import InputError
from descent.optim import OPTIMIZERS
from descent.optim.base import OPTIONS, DescentOptimizer

RULES = sorted(OPTIMIZERS)
# The reference step of these reads values back to the host: no gradient flows through it.
NOT_DIFFERENTIABLE = {name for name, cls in OPTIMIZERS.items() if not cls.supports_differentiable}
# Rules whose fast path has a single-pass kernel (torch's fused one or descent's C kernel).
FUSED = {
    name
    for name, cls in OPTIMIZERS.items()
    if cls._fast_update is not DescentOptimizer._fast_update
}
# Hyperparameters for the gradient checks: float64 Newton–Schulz for Muon (its default bfloat16
# iteration is too coarse for finite differences).
GRADCHECK_KWARGS: dict[str, dict[str, Any]] = {"muon": {"ns_dtype": torch.float64}}


def _trajectory(
    cls: type[torch.optim.Optimizer],
    kwargs: dict[str, Any],
    start: list[Tensor],
    grads: list[Tensor],
) -> list[Tensor]:
    """The parameters after one update per gradient in ``grads``, as differentiable functions of
    ``start`` and ``grads`` (the parameters are non-leaf clones, as in torch's own tests)."""
    params = [value.clone() for value in start]
    opt = cls(params, **kwargs)
    for grad in grads:
        for param in params:
            param.grad = grad.reshape(param.shape)
        opt.step()
    return params


def _start(seed: int = 0) -> tuple[Tensor, list[Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    start = torch.randn(2, 3, generator=generator, dtype=torch.float64).requires_grad_()
    grads = [
        torch.randn(2, 3, generator=generator, dtype=torch.float64).requires_grad_()
        for _ in range(2)
    ]
    return start, grads


# -- differentiable=True -------------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n in RULES if n not in NOT_DIFFERENTIABLE])
def test_differentiable_two_steps_pass_gradcheck(name: str) -> None:
    """Autograd through two updates equals finite differences of the same two updates."""
    cls = OPTIMIZERS[name]
    kwargs = {"lr": 0.05, "differentiable": True, **GRADCHECK_KWARGS.get(name, {})}
    start, grads = _start()

    def two_steps(p: Tensor, g1: Tensor, g2: Tensor) -> Tensor:
        return _trajectory(cls, kwargs, [p], [g1, g2])[0]

    assert torch.autograd.gradcheck(two_steps, (start, *grads), eps=1e-6, atol=1e-5)


def _torch_pair(
    name: str,
) -> tuple[Callable[[list[Tensor]], Any], Callable[[list[Tensor]], Any], list[str]]:
    """descent's rule and torch's, both differentiable, and the state keys prefilled (torch's
    SGD detaches the momentum buffer it creates on the first step, so one is given)."""
    pairs: dict[str, tuple[Any, Any, list[str]]] = {
        "sgd": (
            lambda p: optim.SGD(p, lr=0.1, weight_decay=0.01, differentiable=True),
            lambda p: torch.optim.SGD(p, lr=0.1, weight_decay=0.01, differentiable=True),
            [],
        ),
        "momentum": (
            lambda p: optim.Momentum(p, lr=0.1, lr_in_buffer=False, differentiable=True),
            lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, differentiable=True),
            ["momentum_buffer"],
        ),
        "nesterov": (
            lambda p: optim.Nesterov(p, lr=0.1, lr_in_buffer=False, differentiable=True),
            lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, differentiable=True),
            ["momentum_buffer"],
        ),
        "adam": (
            lambda p: optim.Adam(p, lr=0.1, differentiable=True),
            lambda p: torch.optim.Adam(p, lr=0.1, differentiable=True),
            [],
        ),
        "adamw": (
            lambda p: optim.AdamW(p, lr=0.1, differentiable=True),
            lambda p: torch.optim.AdamW(p, lr=0.1, differentiable=True),
            [],
        ),
        "rmsprop": (
            lambda p: optim.RMSprop(
                p, lr=0.01, rho=0.99, eps_inside_sqrt=False, differentiable=True
            ),
            lambda p: torch.optim.RMSprop(p, lr=0.01, differentiable=True),
            [],
        ),
        "adagrad": (
            lambda p: optim.Adagrad(
                p, lr=0.1, eps=1e-10, eps_inside_sqrt=False, differentiable=True
            ),
            lambda p: torch.optim.Adagrad(p, lr=0.1, differentiable=True),
            [],
        ),
    }
    return pairs[name]


@pytest.mark.parametrize(
    "name", ["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad"]
)
def test_differentiable_matches_torch(name: str) -> None:
    """The gradient of a loss of the parameters after two updates, with respect to the start, the
    two gradients and any prefilled state, equals torch's own optimizer's (differentiable=True).

    torch keeps its step count in the default dtype: float64 here, so that its bias corrections
    are as exact as descent's (with a float32 count they differ by ~1e-6)."""
    ours, theirs, prefilled = _torch_pair(name)
    start, grads = _start(1)
    buffer = torch.full((2, 3), 0.1, dtype=torch.float64, requires_grad=True)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        results = [
            _meta_gradient(factory, start, grads, buffer, prefilled) for factory in (ours, theirs)
        ]
    finally:
        torch.set_default_dtype(previous)
    for mine, peer in zip(*results, strict=True):
        assert torch.allclose(mine, peer, rtol=1e-10, atol=1e-12)


def _meta_gradient(
    factory: Callable[[list[Tensor]], Any],
    start: Tensor,
    grads: list[Tensor],
    buffer: Tensor,
    prefilled: list[str],
) -> tuple[Tensor, ...]:
    """d/d(start, grads, buffer) of a loss of the parameters after one update per gradient."""
    weights = torch.linspace(-1, 1, 6, dtype=torch.float64).reshape(2, 3)
    param = start.clone()
    opt = factory([param])
    for key in prefilled:
        opt.state[param][key] = buffer.clone()
    for grad in grads:
        param.grad = grad
        opt.step()
    inputs = [start, *grads] + ([buffer] if prefilled else [])
    return torch.autograd.grad((param * weights).sum() ** 2, inputs)


def test_differentiable_off_records_nothing() -> None:
    """The default step runs under no_grad, as torch's: an in-place update of a leaf that requires
    grad would raise otherwise, and nothing joins the graph."""
    param = torch.randn(3, requires_grad=True)
    param.grad = torch.ones(3)
    optim.Adam([param], lr=0.1).step()
    assert param.grad_fn is None


@pytest.mark.parametrize("name", sorted(NOT_DIFFERENTIABLE))
def test_differentiable_refused_where_autograd_cannot_go(name: str) -> None:
    with pytest.raises(InputError, match="differentiable=True"):
        OPTIMIZERS[name]([torch.zeros(2)], lr=0.1, differentiable=True)


# -- foreach, fused, capturable -------------------------------------------------------------------


def _steps(name: str, steps: int = 5, **kwargs: Any) -> list[Tensor]:
    generator = torch.Generator().manual_seed(3)
    params = [torch.randn(4, 3, generator=generator), torch.randn(5, generator=generator)]
    opt = OPTIMIZERS[name](params, lr=0.01, **kwargs)
    for _ in range(steps):
        for param in params:
            param.grad = torch.randn(param.shape, generator=generator)
        opt.step()
    return params


@pytest.mark.parametrize("name", RULES)
@pytest.mark.parametrize(
    "kwargs",
    [{"foreach": True}, {"foreach": False}, {"fused": False}, {"capturable": True}],
    ids=["foreach", "for-loop", "unfused", "capturable"],
)
def test_torch_path_options_give_the_default_result(name: str, kwargs: dict[str, Any]) -> None:
    """foreach=True / fused=False: the foreach formulation; foreach=False: torch's for-loop, i.e.
    the reference step; capturable=True: the foreach formulation with the step on the device."""
    if kwargs.get("capturable") and not OPTIMIZERS[name].device_steps:
        with pytest.raises(InputError, match="capturable"):
            _steps(name, **kwargs)
        return
    for ours, default in zip(_steps(name, **kwargs), _steps(name), strict=True):
        assert torch.allclose(ours, default, atol=1e-6)


@pytest.mark.parametrize("name", RULES)
def test_fused_true(name: str) -> None:
    """fused=True is the fast path for a rule with a single-pass kernel, refused for the rest."""
    if name in FUSED:
        for ours, default in zip(_steps(name, fused=True), _steps(name), strict=True):
            assert torch.equal(ours, default)
    else:
        with pytest.raises(InputError, match="no fused kernel"):
            _steps(name, fused=True)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fused": True, "foreach": True},
        {"fused": True, "impl": "reference"},
        {"fused": True, "differentiable": True},
        {"foreach": True, "impl": "reference"},
        {"differentiable": True, "foreach": True},
        {"capturable": True, "impl": "reference"},
        {"capturable": True, "fused": True},
        {"foreach": "yes"},
        {"capturable": 1},
    ],
)
def test_contradictory_options_are_refused_in_one_sentence(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InputError) as error:
        optim.Adam([torch.zeros(2)], **kwargs)
    message = str(error.value)
    assert message.count(". ") == 0
    assert "\n" not in message


def test_capturable_step_reads_nothing_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """A capturable step never converts a tensor to a Python number (what a CUDA graph cannot
    replay), from the first update on."""
    params = [torch.randn(3, 2)]
    opt = optim.Nadam(params, lr=0.01, momentum_decay=0.004, capturable=True)

    def refuse(self: Tensor, *args: object) -> None:
        raise AssertionError("a capturable step read a tensor back to the host")

    for name in ("item", "__float__", "__int__", "__bool__", "tolist"):
        monkeypatch.setattr(Tensor, name, refuse)
    for _ in range(3):
        params[0].grad = torch.ones(3, 2)
        opt.step()
    monkeypatch.undo()
    assert float(opt.state[params[0]]["step"]) == 3.0


def test_eager_step_after_device_steps_continues_the_count() -> None:
    """Host mirrors go stale on the device path; the next eager step reads them back."""
    mixed, plain = [torch.randn(4)], [torch.randn(4)]
    mixed[0].data.copy_(plain[0])
    a, b = optim.Adam(mixed, lr=0.1, capturable=True), optim.Adam(plain, lr=0.1)
    for step in range(4):
        if step == 2:
            a.param_groups[0]["capturable"] = False
        mixed[0].grad = plain[0].grad = torch.full((4,), 0.5 + step)
        a.step()
        b.step()
    assert torch.allclose(mixed[0], plain[0], atol=1e-7)


def test_every_rule_shows_the_shared_options_in_its_signature() -> None:
    for cls in OPTIMIZERS.values():
        parameters = inspect.signature(cls.__init__).parameters
        missing = [name for name in OPTIONS if name not in parameters]
        assert not missing, (cls.__name__, missing)


def test_unknown_option_is_a_type_error_naming_it() -> None:
    with pytest.raises(TypeError, match="'foreachh'"):
        optim.Adam([torch.zeros(2)], foreachh=True)


def test_create_and_configs_accept_the_torch_options() -> None:
    opt = optim.create("adam", [torch.zeros(2)], foreach=True)
    assert opt.param_groups[0]["foreach"] is True


def test_torch_sgd_group_with_dampening_is_refused_on_load() -> None:
    model_param = [torch.zeros(3, requires_grad=True)]
    theirs = torch.optim.SGD(model_param, lr=0.1, momentum=0.9, dampening=0.5)
    ours = optim.Momentum([torch.zeros(3, requires_grad=True)], lr=0.1, lr_in_buffer=False)
    with pytest.raises(InputError, match="dampening"):
        ours.load_state_dict(theirs.state_dict())
