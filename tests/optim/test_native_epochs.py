"""The epoch entries of the newer elementwise kernels (``lion_epoch``, ``schedule_free_epoch``):
one C call over an epoch of single-example updates equals the rule's reference step applied after
each example's gradient. (descent.linear decides which rules it compiles; these entries run the
same per-element step as the optimizer kernels, so they are ready for it.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from descent.linear.solve import ordered_gradient
from descent.optim import _native, lion_reference, schedule_free_reference

pytestmark = pytest.mark.skipif(not _native.available(), reason="C kernels not built")

N, K = 23, 5


def problem() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(2)
    Phi = torch.randn(N, K, generator=generator, dtype=torch.float64)
    y = torch.randn(N, generator=generator, dtype=torch.float64)
    order = torch.randperm(N, generator=generator)
    return Phi, y, order


def c_epoch(rule: str, w: torch.Tensor, state: dict, scalars: dict, ints: dict) -> None:
    Phi, y, order = problem()
    names = _native.epoch_scalar_names(rule)
    row = torch.tensor([scalars[name] for name in names], dtype=torch.float64)
    _native.run_epoch(
        rule,
        dict(
            Phi=Phi,
            y=y,
            order=order,
            w=w,
            grad=torch.empty(K, dtype=torch.float64),
            avg=None,
            n=N,
            k=K,
            batch=1,
            first=0,
            last=N,
            scale=1.0,
            averaged=0,
            scalars=row,
            stride=0,
            **state,
            **ints,
        ),
    )


def gradients(w: torch.Tensor) -> Iterator[torch.Tensor]:
    """Each example's gradient at the current w (read when the next is asked for)."""
    Phi, y, order = problem()
    for i in order.tolist():
        yield ordered_gradient(Phi[i : i + 1], y[i : i + 1], w, "sum")


@pytest.mark.parametrize(("wd", "sign"), [(0.0, 1.0), (0.3, -1.0)])
def test_lion_epoch_equals_the_reference_steps(wd: float, sign: float) -> None:
    w0 = torch.linspace(-1, 1, K, dtype=torch.float64)
    w, m = w0.clone(), torch.zeros(K, dtype=torch.float64)
    scalars = dict(lr=0.01, beta1=0.9, beta2=0.99, wd=wd, sign=sign)
    c_epoch("lion", w, {"m": m}, scalars, {})
    expected, exp_avg = w0.clone(), torch.zeros(K, dtype=torch.float64)
    for grad in gradients(expected):
        new, exp_avg = lion_reference(
            expected, grad, exp_avg, lr=0.01, beta1=0.9, beta2=0.99, weight_decay=wd,
            maximize=sign < 0,
        )  # fmt: skip
        expected.copy_(new)
    torch.testing.assert_close(w, expected, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(m, exp_avg, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("adaptive", [0, 1])
def test_schedule_free_epoch_equals_the_reference_steps(adaptive: int) -> None:
    w0 = torch.linspace(-1, 1, K, dtype=torch.float64)
    lr, ckp1, beta1, beta2, eps, wd = 0.05, 0.25, 0.9, 0.999, 1e-8, 0.01
    w, z, v = w0.clone(), w0.clone(), torch.zeros(K, dtype=torch.float64)
    scalars = dict(
        lr=lr, ckp1=ckp1, c_y=lr * (beta1 * (1 - ckp1) - 1), beta2=beta2,
        bias2=1 - beta2 if adaptive else 1.0, eps=eps, wd=wd, sign=1.0,
    )  # fmt: skip
    c_epoch("schedule_free", w, {"z": z, "v": v}, scalars, {"adaptive": adaptive})
    y, zr = w0.clone(), w0.clone()
    vr = torch.zeros(K, dtype=torch.float64) if adaptive else None
    for grad in gradients(y):
        new, zr, vr = schedule_free_reference(
            y, grad, zr, vr, step=1, lr=lr, ckp1=ckp1, beta1=beta1, beta2=beta2, eps=eps,
            weight_decay=wd,
        )  # fmt: skip
        y.copy_(new)
    torch.testing.assert_close(w, y, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(z, zr, rtol=1e-12, atol=1e-14)
