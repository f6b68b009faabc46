"""Gradient checks: wrong backwards are caught at the right coordinates, kinks are not called
wrong, the verdict agrees with torch.autograd.gradcheck, and the caller's state is untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from descent.gradcheck import NondeterministicError, check, verdict_of
from descent.linear import gradient, loss


class Square(torch.autograd.Function):
    """y = x², with a backward that can be broken on purpose."""

    bug = "none"

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        factor = {"none": 2.0, "sign": -2.0, "factor": 4.0}[Square.bug]
        return factor * x * grad


class MatVec(torch.autograd.Function):
    """y = A x; the broken backward transposes the gradient of A."""

    transposed = False

    @staticmethod
    def forward(ctx, A, x):
        ctx.save_for_backward(A, x)
        return A @ x

    @staticmethod
    def backward(ctx, grad):
        A, x = ctx.saved_tensors
        grad_A = torch.outer(grad, x)
        if MatVec.transposed:
            grad_A = grad_A.T
        return grad_A, A.T @ grad


def square(x: torch.Tensor) -> torch.Tensor:
    return Square.apply(x).sum()


@pytest.fixture(autouse=True)
def _reset_bugs() -> None:
    Square.bug = "none"
    MatVec.transposed = False


X = torch.tensor([0.7, -1.3, 2.1], dtype=torch.float64)


def test_correct_custom_function_passes() -> None:
    result = check(square, (X,))
    assert result.passed
    assert result.tensors[0].verdict == "correct"
    assert result.max_error < 1e-9


@pytest.mark.parametrize("bug", ["sign", "factor"])
def test_broken_backward_is_reported_wrong_everywhere(bug: str) -> None:
    Square.bug = bug
    result = check(square, (X,))
    assert not result.passed
    report = result.tensors[0]
    assert report.verdict == "wrong"
    assert all(c.relative_error > 1e-2 for c in report.coordinates)
    expected = {"sign": -2.0, "factor": 4.0}[bug]
    worst = report.worst[0]
    assert worst.analytic == pytest.approx(expected * float(X[worst.index]))
    assert worst.numeric == pytest.approx(2.0 * float(X[worst.index]), rel=1e-8)


def test_transposed_index_is_wrong_exactly_off_the_diagonal() -> None:
    MatVec.transposed = True
    generator = torch.Generator().manual_seed(0)
    A = torch.randn(3, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    x = torch.randn(3, generator=generator, dtype=torch.float64)
    result = check(lambda A, x: MatVec.apply(A, x), (A, x))  # x does not require grad
    assert len(result.tensors) == 1
    wrong = {c.index for c in result.tensors[0].coordinates if c.judged_error > 1e-2}
    assert wrong == {(i, j) for i in range(3) for j in range(3) if i != j}
    assert not result.passed


def test_centered_differences_beat_forward_differences() -> None:
    def smooth(x: torch.Tensor) -> torch.Tensor:
        return (torch.sin(x) * torch.exp(0.3 * x)).sum()

    x = torch.linspace(-2, 2, 20, dtype=torch.float64)
    centered = check(smooth, (x,), method="centered")
    forward = check(smooth, (x,), method="forward")
    assert centered.passed
    assert forward.tensors[0].median_error > 1000 * centered.tensors[0].median_error


def relu_net_at_a_kink() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    with torch.no_grad():
        net[0].weight[0] = torch.tensor([1.0, -1.0])
        net[0].bias[0] = 0.0  # unit 0's input is exactly 0 at x = (0.5, 0.5)
    inputs = torch.tensor([[0.5, 0.5]])
    return net, inputs, torch.tensor([[1.0]])


def test_relu_network_at_a_kink_is_flagged_not_wrong() -> None:
    net, inputs, targets = relu_net_at_a_kink()
    result = check(net, (inputs, targets), loss=F.mse_loss)
    first_layer = {r.name: r for r in result.tensors}["0.weight"]
    kinks = {c.index for c in first_layer.coordinates if c.kink}
    assert kinks == {(0, 0), (0, 1)}
    at_kink = [c for c in first_layer.coordinates if c.kink]
    assert any(c.relative_error > 1e-2 for c in at_kink)  # the quotient there is no derivative
    assert result.passed
    # Away from the kink nothing is flagged.
    result = check(net, (inputs + 0.25 * torch.tensor([[1.0, -1.0]]), targets), loss=F.mse_loss)
    assert sum(r.kinks for r in result.tensors) == 0
    assert result.passed


def test_kinks_in_max_abs_and_clamp_are_flagged() -> None:
    x = torch.tensor([0.0, 1.0, 1.0, -2.0], dtype=torch.float64)
    for fn in (lambda v: v.abs().sum(), lambda v: v.max(), lambda v: v.clamp(min=1.0).sum()):
        result = check(fn, (x,))
        assert result.tensors[0].kinks >= 1
        assert result.passed


@pytest.mark.parametrize(
    ("name", "fn", "correct"),
    [
        ("sin", lambda x: torch.sin(x).sum(), True),
        ("softplus squared", lambda x: F.softplus(x).pow(2).sum(), True),
        ("matrix square trace", lambda x: (x.view(2, 2) @ x.view(2, 2)).trace(), True),
        ("custom square", square, True),
        ("sign bug", "sign", False),
        ("factor bug", "factor", False),
        ("straight-through sign", lambda x: x + (torch.sign(x) - x).detach(), False),
    ],
)
def test_verdict_agrees_with_torch_gradcheck(name: str, fn: object, correct: bool) -> None:
    x = torch.tensor([0.3, -0.8, 1.4, 0.6], dtype=torch.float64, requires_grad=True)
    if isinstance(fn, str):
        Square.bug = fn
        fn = square
    theirs = torch.autograd.gradcheck(fn, (x,), raise_exception=False)  # type: ignore[arg-type]
    ours = check(fn, (x,)).passed  # type: ignore[arg-type]
    assert ours == theirs == correct, name


def test_callers_model_gradients_dtype_and_rng_are_unchanged() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Dropout(0.2), nn.Linear(5, 2))
    inputs, targets = torch.randn(8, 4), torch.randint(0, 2, (8,))
    F.cross_entropy(model(inputs), targets).backward()
    before = {n: (p.detach().clone(), p.grad.clone(), p.dtype) for n, p in model.named_parameters()}
    rng = torch.random.get_rng_state()
    result = check(model, (inputs, targets), loss=F.cross_entropy)
    assert result.passed  # dropout is made deterministic by the fixed RNG state
    for name, param in model.named_parameters():
        value, grad, dtype = before[name]
        assert torch.equal(param.detach(), value)
        assert torch.equal(param.grad, grad)
        assert param.dtype == dtype == torch.float32
    assert torch.equal(torch.random.get_rng_state(), rng)


def test_randomness_outside_torch_is_refused() -> None:
    rng = np.random.default_rng(0)

    def noisy(x: torch.Tensor) -> torch.Tensor:
        return (x * float(rng.normal())).sum()

    with pytest.raises(NondeterministicError, match="different values at the same point"):
        check(noisy, (X,))


def test_descent_basis_regression_gradient() -> None:
    generator = torch.Generator().manual_seed(2)
    Phi = torch.randn(30, 4, generator=generator, dtype=torch.float64)
    y = torch.randn(30, generator=generator, dtype=torch.float64)
    w = torch.randn(4, generator=generator, dtype=torch.float64)

    def objective(w: torch.Tensor) -> torch.Tensor:
        return loss(Phi, y, w)

    assert check(objective, (w,), analytic=lambda w: gradient(Phi, y, w)).passed
    # The slides' gradient, without its minus sign, is caught.
    slides = check(objective, (w,), analytic=lambda w: 2 * Phi.T @ (y - Phi @ w))
    assert not slides.passed
    assert slides.tensors[0].verdict == "wrong"


def test_large_tensors_are_sampled_with_a_seed() -> None:
    x = torch.randn(50, 40, dtype=torch.float64)
    first = check(lambda v: (v**3).sum(), (x,), max_coords=25, seed=4)
    again = check(lambda v: (v**3).sum(), (x,), max_coords=25, seed=4)
    assert first.tensors[0].checked == 25
    assert first.tensors[0].numel == 2000
    assert [c.index for c in first.tensors[0].coordinates] == [
        c.index for c in again.tensors[0].coordinates
    ]


def test_named_parameters_and_bad_arguments() -> None:
    model = nn.Linear(3, 1)
    data = (torch.randn(4, 3), torch.randn(4, 1))
    result = check(model, data, loss=F.mse_loss, params=["bias"])
    assert [r.name for r in result.tensors] == ["bias"]
    with pytest.raises(ValueError, match="no parameter named 'weights'; the module has: weight"):
        check(model, data, loss=F.mse_loss, params=["weights"])
    with pytest.raises(ValueError, match="h must be"):
        check(square, (X,), h=0.0)
    with pytest.raises(ValueError, match="method must be"):
        check(square, (X,), method="backward")  # type: ignore[arg-type]


def test_result_prints_as_a_table_and_converts_to_a_dict() -> None:
    Square.bug = "sign"
    result = check(square, (X,))
    text = str(result)
    assert "FAILED" in text
    assert "wrong" in text
    data = result.to_dict()
    assert data["passed"] is False
    assert data["tensors"][0]["verdict"] == "wrong"
    assert len(data["tensors"][0]["worst"]) == 3


def test_verdict_scale() -> None:
    assert [verdict_of(e) for e in (1e-9, 1e-5, 1e-3, 0.5)] == [
        "correct",
        "fine only with kinks",
        "suspicious",
        "wrong",
    ]
