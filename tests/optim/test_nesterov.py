"""Nesterov in the stored look-ahead form visits the lecture's look-ahead points."""

from __future__ import annotations

import torch

from descent import optim


def test_stored_form_equals_lecture_lookahead_form_on_a_quadratic() -> None:
    A = torch.tensor([[3.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    b = torch.tensor([1.0, -2.0], dtype=torch.float64)

    def grad(x: torch.Tensor) -> torch.Tensor:
        return A @ x - b

    gamma, eta = 0.9, 0.05
    # The lecture: v ← γv + η∇J(θ − γv) ; θ ← θ − v
    theta = torch.tensor([2.0, 2.0], dtype=torch.float64)
    v = torch.zeros(2, dtype=torch.float64)
    lookahead_points = []
    for _ in range(40):
        v = gamma * v + eta * grad(theta - gamma * v)
        theta = theta - v
        lookahead_points.append(theta - gamma * v)

    for lr_in_buffer in (True, False):
        phi = torch.tensor([2.0, 2.0], dtype=torch.float64, requires_grad=True)
        opt = optim.Nesterov([phi], lr=eta, momentum=gamma, lr_in_buffer=lr_in_buffer)
        for expected in lookahead_points:
            phi.grad = grad(phi.detach())
            opt.step()
            torch.testing.assert_close(phi.detach(), expected, rtol=1e-12, atol=1e-12)


def test_nesterov_is_not_momentum() -> None:
    x = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    nag, heavy_ball = optim.Nesterov([x], lr=0.1), optim.Momentum([y], lr=0.1)
    for _ in range(3):
        x.grad, y.grad = 2 * x.detach(), 2 * y.detach()
        nag.step()
        heavy_ball.step()
    assert abs(x.item() - y.item()) > 1e-3
