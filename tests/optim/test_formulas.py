"""Each rule against its formula computed by hand (tests/optim/formulas.py), both impls, float64."""

from __future__ import annotations

import pytest
import torch

from descent import optim
from tests.optim.formulas import HAND

# Gradients fed to three coordinates over six steps: signs change, magnitudes span 1e-3 to 10,
# and one coordinate sees a zero gradient.
GRADS = [
    [0.5, -2.0, 1e-3],
    [0.4, 3.0, 0.0],
    [-0.1, -1.0, 2e-3],
    [0.7, 10.0, -1e-3],
    [0.2, 0.5, 0.0],
    [-0.3, -4.0, 5e-3],
]
START = [1.0, -0.5, 2.0]


@pytest.mark.parametrize("impl", ["fast", "reference"])
@pytest.mark.parametrize("name", list(HAND))
def test_rule_matches_hand_computed_formula(name: str, impl: str) -> None:
    formula, kwargs = HAND[name]
    param = torch.tensor(START, dtype=torch.float64, requires_grad=True)
    optimizer = optim.create(name, [param], impl=impl, **kwargs)
    seen = []
    for grads in GRADS:
        param.grad = torch.tensor(grads, dtype=torch.float64)
        optimizer.step()
        seen.append(param.detach().clone())
    for coordinate, start in enumerate(START):
        expected = formula(start, [g[coordinate] for g in GRADS])
        got = [float(step[coordinate]) for step in seen]
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-15), (name, coordinate)


def test_hand_formulas_are_not_all_the_same() -> None:
    """Guards the test above: the rules really differ after a few steps."""
    finals = {name: formula(1.0, [g[0] for g in GRADS])[-1] for name, (formula, _) in HAND.items()}
    assert len({round(value, 12) for value in finals.values()}) == len(finals)


def test_adagrad_keras_initial_accumulator() -> None:
    param = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    opt = optim.Adagrad([param], lr=0.1, eps=1e-7, initial_accumulator_value=0.1)
    param.grad = torch.tensor([0.5], dtype=torch.float64)
    opt.step()
    assert param.item() == pytest.approx(1.0 - 0.1 * 0.5 / (0.1 + 0.25 + 1e-7) ** 0.5, rel=1e-14)


def test_adam_epsilon_hat_is_keras_form() -> None:
    """Keras: θ ← θ − η √(1−β₂ᵗ)/(1−β₁ᵗ) · m/(√v + ε̂)."""
    param = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    opt = optim.Adam([param], lr=0.1, eps=1e-7, epsilon_hat=True)
    theta, m, v = 1.0, 0.0, 0.0
    for t, g in enumerate([0.3, -0.2, 0.05], start=1):
        param.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        theta -= 0.1 * (1 - 0.999**t) ** 0.5 / (1 - 0.9**t) * m / (v**0.5 + 1e-7)
        assert param.item() == pytest.approx(theta, rel=1e-13)
