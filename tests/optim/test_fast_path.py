"""The fast multi-tensor path (the default) equals the reference step (float64: 1e-12 relative)."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from descent import optim
from descent.optim import _native
from descent.optim.fastpath import TWO_PASS_BATCH

VARIANTS: dict[str, list[dict[str, Any]]] = {
    "sgd": [{}, {"weight_decay": 0.1, "maximize": True}],
    "momentum": [{}, {"lr_in_buffer": False}, {"weight_decay": 0.1}],
    "nesterov": [{}, {"lr_in_buffer": False}, {"maximize": True, "weight_decay": 0.05}],
    "adagrad": [{}, {"eps_inside_sqrt": False, "lr_decay": 0.1, "initial_accumulator_value": 0.1}],
    "adadelta": [{}, {"weight_decay": 0.1, "maximize": True}],
    "rmsprop": [
        {},
        {"eps_inside_sqrt": False},
        {"centered": True, "momentum": 0.5},
        {"momentum": 0.9, "weight_decay": 0.01},
    ],
    "adam": [{}, {"epsilon_hat": True}, {"weight_decay": 0.1, "maximize": True}],
    "adamax": [{}, {"eps_in_max": True}, {"weight_decay": 0.1}],
    "nadam": [{}, {"momentum_decay": 0.004}, {"maximize": True}],
    "amsgrad": [{}, {"bias_correction": True}, {"weight_decay": 0.1}],
    "adamw": [{}, {"epsilon_hat": True}],
}
# The rules of issue 17 with a C fast path (kept apart from VARIANTS, whose CASES other test files
# share: Lion's sign makes its low-precision error a flip of ±2η, not a few roundings).
NEWER_VARIANTS: dict[str, list[dict[str, Any]]] = {
    "lion": [{}, {"weight_decay": 0.3, "maximize": True}, {"betas": (0.95, 0.98)}],
    "schedule_free_sgd": [{}, {"weight_decay": 0.05, "maximize": True}, {"r": 1.0}],
    "schedule_free_adamw": [{}, {"weight_decay": 0.05, "maximize": True}, {"r": 1.0}],
    "lamb": [
        {},
        {"weight_decay": 0.1, "exclude_1d": True, "maximize": True},
        {"bias_correction": "lr", "max_weight_norm": 10.0, "eps_in_trust": True},
        {"bias_correction": "none", "weight_decay": 0.01},
    ],
    "lars": [
        {},
        {"weight_decay": 0.1, "exclude_1d": True, "maximize": True},
        {"weight_decay": 0.1, "lr_in_buffer": False, "trust_coefficient": 0.02},
    ],
    "prodigy": [
        {},
        {"weight_decay": 0.01, "maximize": True},
        {"weight_decay": 0.01, "decouple": False, "bias_correction": True},
        {"safeguard_warmup": True, "d_coef": 2.0, "growth_rate": 1.05},
    ],
}
# The rules whose fast path on float32/float64 CPU tensors is one of descent's C kernels.
NATIVE = [
    "rmsprop",
    "adadelta",
    "adamax",
    "nadam",
    "nesterov",
    "lion",
    "schedule_free_sgd",
    "schedule_free_adamw",
    "lamb",
    "lars",
    "prodigy",
]
CASES = [(name, kw) for name, variants in VARIANTS.items() for kw in variants]
ALL_VARIANTS = {**VARIANTS, **NEWER_VARIANTS}
ALL_CASES = [(name, kw) for name, variants in ALL_VARIANTS.items() for kw in variants]


def decaying(n: int) -> float:
    return 0.02 * 0.95**n


def trajectory(
    name: str, impl: str, kwargs: dict[str, Any], dtype: torch.dtype, steps: int = 30
) -> list[torch.Tensor]:
    """Runs a rule on tensors of several shapes (one larger than a chunk, one transposed view)
    and returns the final parameters and state tensors."""
    generator = torch.Generator().manual_seed(1)
    big = torch.randn(70_001, generator=generator, dtype=dtype)
    matrix = torch.randn(7, 5, generator=generator, dtype=dtype)
    leaves = [big.requires_grad_(), matrix.requires_grad_()]
    scale = torch.linspace(0.1, 3.0, 70_001, dtype=dtype)
    lr = kwargs.pop("lr", 0.01)
    opt = optim.create(name, leaves, lr=lr, impl=impl, **kwargs)
    for _ in range(steps):
        opt.zero_grad()
        loss = (leaves[0] ** 2 * scale).sum() + leaves[0].sin().sum()
        loss = loss + (leaves[1].T @ leaves[1]).trace() + leaves[1].cos().sum()
        loss.backward()
        leaves[1].grad = leaves[1].grad.T.contiguous().T  # a non-contiguous gradient
        opt.step()
    out = [leaf.detach().clone() for leaf in leaves]
    for state in opt.state.values():
        out += [v.clone() for k, v in state.items() if torch.is_tensor(v) and v.dim() > 0]
    return out


def assert_same(fast: list[torch.Tensor], reference: list[torch.Tensor], rtol: float) -> None:
    assert len(fast) == len(reference)
    for a, b in zip(fast, reference, strict=True):
        scale = b.abs().max().clamp_min(1e-300)
        assert float((a - b).abs().max() / scale) <= rtol


@pytest.mark.parametrize(("name", "kwargs"), ALL_CASES, ids=[f"{n}-{k}" for n, k in ALL_CASES])
@pytest.mark.parametrize("lr", ["constant", "schedule"])
def test_fast_equals_reference_float64(name: str, kwargs: dict[str, Any], lr: str) -> None:
    if lr == "schedule":
        kwargs = {**kwargs, "lr": decaying}
    fast = trajectory(name, "fast", dict(kwargs), torch.float64)
    reference = trajectory(name, "reference", dict(kwargs), torch.float64)
    assert_same(fast, reference, 1e-12)


@pytest.mark.parametrize("name", NATIVE)
def test_eager_fallback_equals_reference(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the C kernels (no compiler at install) the eager torch path is used instead."""
    monkeypatch.setattr(_native, "available", lambda: False)
    for kwargs in ALL_VARIANTS[name]:
        fast = trajectory(name, "fast", dict(kwargs), torch.float64)
        reference = trajectory(name, "reference", dict(kwargs), torch.float64)
        assert_same(fast, reference, 1e-12)


def test_native_kernels_are_built() -> None:
    """`make test` builds the C kernels; if this fails the fast path silently lost its speed."""
    assert _native.available()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", NATIVE)
def test_the_fast_path_runs_the_c_kernel(
    name: str, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On contiguous float32/float64 CPU tensors the default step is the C kernel: with the
    kernels refused, the step fails instead of silently running the foreach formulation."""
    called: list[str] = []

    def spy(real: Any) -> Any:
        def run(kernel: str, jobs: Any, **options: Any) -> None:
            called.append(kernel)
            real(kernel, jobs, **options)

        return run

    monkeypatch.setattr(_native, "run", spy(_native.run))
    monkeypatch.setattr(_native, "run_columns", spy(_native.run_columns))
    param = torch.randn(70_001, dtype=dtype, requires_grad=True)
    opt = optim.create(name, [param])
    param.grad = torch.randn(70_001, dtype=dtype)
    opt.step()
    assert called, name


@pytest.mark.parametrize("name", list(ALL_VARIANTS))
def test_fast_equals_reference_float32(name: str) -> None:
    fast = trajectory(name, "fast", {}, torch.float32, steps=10)
    reference = trajectory(name, "reference", {}, torch.float32, steps=10)
    assert_same(fast, reference, 1e-5)


@pytest.mark.parametrize("impl", ["fast", "reference"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", list(ALL_VARIANTS))
def test_complex_parameters_update_as_real_pairs(name: str, dtype: torch.dtype, impl: str) -> None:
    """complex64 and complex128, both paths; the gradients have nonzero imaginary parts (an ε
    filled into only the real half of Adagrad's accumulator once turned them into NaN)."""
    real = torch.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=dtype, requires_grad=True)
    cplx = torch.view_as_complex(real.detach().clone()).requires_grad_()
    opt_real = optim.create(name, [real], impl=impl)
    opt_cplx = optim.create(name, [cplx], impl=impl)
    for grad in ([[0.3, -0.1], [0.2, 0.4]], [[-0.5, 0.2], [0.1, -0.3]]):
        real.grad = torch.tensor(grad, dtype=dtype)
        cplx.grad = torch.view_as_complex(real.grad.clone())
        opt_real.step()
        opt_cplx.step()
    torch.testing.assert_close(torch.view_as_real(cplx.detach()), real.detach())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_two_pass_sums_are_exact_and_do_not_depend_on_the_thread_count(dtype: torch.dtype) -> None:
    """The pass-1 sums (here LARS's Σθ², Σg², seen through its ratio r = κ‖θ‖/‖g‖: with μ = 0,
    η = 1 the buffer becomes r·g) equal the float64 sums to rounding, and come out bit for bit
    the same on one thread and on several (fixed blocks added in order)."""
    generator = torch.Generator().manual_seed(3)
    p = torch.randn(300_007, generator=generator, dtype=dtype)  # blocks that do not divide n
    g = torch.randn(300_007, generator=generator, dtype=dtype)
    threads = torch.get_num_threads()
    results = []
    try:
        for count in (1, 2, 3):
            torch.set_num_threads(count)
            buffer = torch.zeros_like(p)
            step = dict(trust_coefficient=0.5, wd=0.0, momentum=0.0, lr=1.0, sign=1.0)
            _native.run(
                "lars_step", [dict(p=p.clone(), g=g, b=buffer, **step, lr_in_buffer=1, trust=1)]
            )
            results.append(buffer)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(results[0], results[1])
    assert torch.equal(results[0], results[2])
    ratio = (
        0.5 * math.sqrt(float((p.double() ** 2).sum())) / math.sqrt(float((g.double() ** 2).sum()))
    )
    expected = (torch.tensor(ratio, dtype=dtype) * g).to(dtype)
    tolerance = 1e-12 if dtype == torch.float64 else 1e-6
    torch.testing.assert_close(results[0], expected, rtol=tolerance, atol=0)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("lamb", {"weight_decay": 0.1, "exclude_1d": True}), ("lars", {"weight_decay": 0.1})],
)
def test_two_pass_rules_equal_the_reference_over_several_batches(
    name: str, kwargs: dict[str, Any]
) -> None:
    """Tensors that make several cache batches (one larger than a batch) step as the reference."""
    sizes = [(TWO_PASS_BATCH + 7,), (5,), (TWO_PASS_BATCH // 2,), (TWO_PASS_BATCH // 2,), (7, 3)]
    finals = []
    for impl in ("fast", "reference"):
        generator = torch.Generator().manual_seed(5)
        params = [torch.randn(s, generator=generator, dtype=torch.float64) for s in sizes]
        opt = optim.create(name, [p.requires_grad_() for p in params], lr=0.01, impl=impl, **kwargs)
        for k in range(3):
            for i, p in enumerate(params):
                p.grad = torch.sin(p.detach() * (k + 1) + i)
            opt.step()
        finals.append([p.detach().clone() for p in params])
    assert_same(finals[0], finals[1], 1e-12)


def test_step_counts_add_one_in_c_as_torch_adds() -> None:
    counters = [torch.tensor(float(k), dtype=torch.float32) for k in (0, 7, 2**24 - 3)]
    expected = [c.clone() for c in counters]
    for _ in range(5):
        assert _native.add_one(counters)
        torch._foreach_add_(expected, 1.0)
    assert [c.item() for c in counters] == [c.item() for c in expected]  # 2²⁴ stops at 2²⁴
    assert not _native.add_one([torch.zeros((), dtype=torch.float64)])
    assert not _native.add_one([torch.zeros(2, dtype=torch.float32)])
