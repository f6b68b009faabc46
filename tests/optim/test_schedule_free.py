"""Schedule-Free SGD and AdamW: the formula by hand, fast == reference, the authors' package as
oracle for both iterates, train/eval, resume, checks."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import schedulefree
import torch

from descent import optim
from descent.optim import _compat
from descent.optim.schedule_free import schedule_free_weight
from tests.optim.resume import assert_resume_is_exact


def schedule(n: int) -> float:
    return 0.05 * min(1.0, (n + 1) / 10) * (1 + math.cos(math.pi * min(n, 40) / 40)) / 2 + 1e-3


def test_weights_by_hand() -> None:
    # constant η, r = 0, p = 2: wₜ = η², cₜ = 1/t (the uniform average)
    c, lr_max, total = schedule_free_weight(3, 0.5, 0.5, 0.5, 0.0, 2.0)
    assert (c, lr_max, total) == (pytest.approx(1 / 3), 0.5, 0.75)
    # r = 1: wₜ = t η², first step c₁ = 1
    assert schedule_free_weight(1, 0.1, -1.0, 0.0, 1.0, 2.0)[0] == 1.0


def test_sgd_two_steps_by_hand() -> None:
    """z₀ = x₀ = y₀ = θ₀ ; z ← z − ηg ; x ← (1−c)x + cz ; y = (1−β)z + βx, c₁ = 1, c₂ = 1/2."""
    theta = torch.tensor([1.0, -2.0], dtype=torch.float64)
    param = theta.clone().requires_grad_(True)
    opt = optim.ScheduleFreeSGD([param], lr=0.1, momentum=0.9)
    g1 = torch.tensor([0.5, 1.0], dtype=torch.float64)
    param.grad = g1
    opt.step()
    z = theta - 0.1 * g1
    x = z  # c₁ = 1
    torch.testing.assert_close(param.detach(), 0.1 * z + 0.9 * x, rtol=0, atol=1e-15)
    g2 = torch.tensor([-1.0, 0.25], dtype=torch.float64)
    param.grad = g2
    opt.step()
    z = z - 0.1 * g2
    x = 0.5 * x + 0.5 * z
    torch.testing.assert_close(param.detach(), 0.1 * z + 0.9 * x, rtol=0, atol=1e-15)
    opt.eval()
    torch.testing.assert_close(param.detach(), x, rtol=0, atol=1e-15)
    opt.train()
    torch.testing.assert_close(param.detach(), 0.1 * z + 0.9 * x, rtol=0, atol=1e-15)


def run(
    make: Callable[[list[torch.Tensor]], torch.optim.Optimizer], steps: int = 50
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(y after training, x after eval())."""
    torch.manual_seed(0)
    params = [
        torch.randn(7, 3, dtype=torch.float64).requires_grad_(True),
        torch.randn(3, dtype=torch.float64).requires_grad_(True),
    ]
    opt = make(params)
    opt.train()
    for k in range(steps):
        for i, p in enumerate(params):
            p.grad = torch.sin(p.detach() + 0.3 * k + i) + 0.1 * p.detach()
        opt.step()
    y = [p.detach().clone() for p in params]
    opt.eval()
    return y, [p.detach().clone() for p in params]


def assert_runs_equal(a: tuple, b: tuple, tol: float) -> None:
    for ours, theirs in zip(a[0] + a[1], b[0] + b[1], strict=True):
        torch.testing.assert_close(ours, theirs, rtol=tol, atol=tol)


RULES = {
    "sgd": (optim.ScheduleFreeSGD, {"lr": 0.1}),
    "adamw": (optim.ScheduleFreeAdamW, {"lr": 1e-2}),
}
VARIANTS = [
    {},
    {"weight_decay": 0.05},
    {"r": 1.0, "weight_lr_power": 1.0, "maximize": True},
]


@pytest.mark.parametrize("kwargs", VARIANTS)
@pytest.mark.parametrize("rule", list(RULES))
def test_fast_equals_reference(rule: str, kwargs: dict) -> None:
    cls = RULES[rule][0]
    fast = run(lambda p: cls(p, lr=schedule, **kwargs))
    reference = run(lambda p: cls(p, lr=schedule, impl="reference", **kwargs))
    assert_runs_equal(fast, reference, 1e-12)


PEERS = {"sgd": schedulefree.SGDScheduleFree, "adamw": schedulefree.AdamWScheduleFree}


@pytest.mark.parametrize("kwargs", [*VARIANTS[:2], {"r": 1.0, "weight_lr_power": 1.0}])
@pytest.mark.parametrize("impl", ["fast", "reference"])
@pytest.mark.parametrize("rule", list(RULES))
def test_schedulefree_is_the_oracle_for_both_iterates(rule: str, impl: str, kwargs: dict) -> None:
    cls, base = RULES[rule]
    ours = run(lambda p: cls(p, impl=impl, **base, **kwargs))
    theirs = run(lambda p: PEERS[rule](p, **base, **kwargs))
    assert_runs_equal(ours, theirs, 1e-12)


def test_peer_warmup_steps_is_a_warmup_schedule() -> None:
    ours = run(lambda p: optim.ScheduleFreeAdamW(p, lr=lambda n: 1e-2 * min(1.0, (n + 1) / 10)))
    theirs = run(lambda p: schedulefree.AdamWScheduleFree(p, lr=1e-2, warmup_steps=10))
    assert_runs_equal(ours, theirs, 1e-12)


def test_step_in_eval_mode_is_refused() -> None:
    param = torch.zeros(2, requires_grad=True)
    opt = optim.ScheduleFreeAdamW([param])
    opt.eval()
    param.grad = torch.ones(2)
    with pytest.raises(ValueError, match=r"eval mode.*train\(\)"):
        opt.step()


@pytest.mark.parametrize("rule", list(RULES))
def test_resume_with_a_schedule_is_bit_for_bit(rule: str) -> None:
    assert_resume_is_exact(
        lambda ps: RULES[rule][0](ps, lr=schedule, weight_decay=0.1),
        [(4, 5)],
    )


@pytest.mark.parametrize(
    ("rule", "kwargs", "message"),
    [
        ("adamw", {"betas": (0.0, 0.999)}, r"betas\[0\].*\(0, 1\)"),
        ("adamw", {"betas": (0.9, 1.0)}, r"betas\[1\].*\[0, 1\)"),
        ("adamw", {"eps": 0.0}, r"eps.*> 0"),
        ("sgd", {"momentum": 0.0}, r"momentum.*\(0, 1\)"),
        ("sgd", {"momentum": 1.0}, r"momentum.*\[0, 1\)"),
        ("sgd", {"r": -1.0}, r"r.*≥ 0"),
        ("adamw", {"weight_lr_power": -2.0}, r"weight_lr_power.*≥ 0"),
    ],
)
def test_validation_messages(rule: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RULES[rule][0]([torch.zeros(2, requires_grad=True)], **kwargs)


@pytest.mark.parametrize("rule", list(RULES))
def test_eval_train_eval_without_a_step_gives_back_the_average_exactly(rule: str) -> None:
    """x = y + (1 − 1/β)(z − y) computed again after train() differs in the last bit for some
    elements; a copy kept until the next step makes the round trip exact (a checkpoint taken at
    x then holds the x a run ends with). A step, or a change to the parameter, drops the copy."""
    cls, base = RULES[rule]
    torch.manual_seed(0)
    param = torch.randn(100_000, requires_grad=True)
    opt = cls([param], **base)
    for k in range(5):
        param.grad = torch.sin(param.detach() * 3 + k)
        opt.step()
    opt.eval()
    x = param.detach().clone()
    opt.train()
    y = param.detach().clone()
    z = opt.state[param]["z"]
    kept_z = z.clone()
    with torch.no_grad():  # shows that eval() restores the copy: computed, x would move too
        z.add_(1.0)
    opt.eval()
    assert torch.equal(param.detach(), x)
    z.copy_(kept_z)
    opt.train()
    with torch.no_grad():
        param.add_(1.0)  # a change to y: eval() must compute x from the new y
    opt.eval()
    with torch.no_grad():
        expected = (y + 1.0).lerp(opt.state[param]["z"], 1 - 1 / 0.9)
    assert torch.equal(param.detach(), expected)


@pytest.mark.parametrize("rule", ["sgd", "adamw"])
def test_without_torch_s_write_counter_no_copy_is_kept(
    rule: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A torch without ``Tensor._version`` (_compat.write_count is None): train() keeps no copy
    of x, and eval() computes x again, as before the copy existed."""
    monkeypatch.setattr(_compat, "write_count", lambda tensor: None)
    cls, base = RULES[rule]
    torch.manual_seed(0)
    param = torch.randn(1000, requires_grad=True)
    opt = cls([param], **base)
    param.grad = torch.sin(param.detach())
    opt.step()
    opt.eval()
    x = param.detach().clone()
    opt.train()
    assert not opt.__dict__.get("_averages")
    opt.eval()
    torch.testing.assert_close(param.detach(), x, rtol=1e-6, atol=1e-6)
