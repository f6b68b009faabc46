"""Every landscape: its analytic gradient equals autograd's, and each stated minimum (or saddle)
is a stationary point with the stated value."""

from __future__ import annotations

import pytest
import torch

from descent.landscapes import LANDSCAPES, get, user_landscape


@pytest.mark.parametrize("name", list(LANDSCAPES))
def test_gradient_equals_autograd(name: str) -> None:
    landscape = LANDSCAPES[name]
    generator = torch.Generator().manual_seed(0)
    x_min, x_max, y_min, y_max = landscape.box
    x = x_min + (x_max - x_min) * torch.rand(64, generator=generator, dtype=torch.float64)
    y = y_min + (y_max - y_min) * torch.rand(64, generator=generator, dtype=torch.float64)
    xs, ys = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    auto_x, auto_y = torch.autograd.grad(landscape(xs, ys).sum(), (xs, ys))
    gx, gy = landscape.gradient(x, y)
    torch.testing.assert_close(gx, auto_x, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gy, auto_y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(LANDSCAPES))
def test_stated_points_are_stationary_with_the_stated_value(name: str) -> None:
    landscape = LANDSCAPES[name]
    assert landscape.points
    for point in landscape.points:
        x = torch.tensor(point.x, dtype=torch.float64)
        y = torch.tensor(point.y, dtype=torch.float64)
        gx, gy = landscape.gradient(x, y)
        assert float(torch.hypot(gx, gy)) < 1e-6, (name, point)
        assert float(landscape(x, y)) == pytest.approx(point.value, abs=1e-9)
        assert landscape.contains(point.x, point.y)
    assert landscape.contains(*landscape.start)


def test_minima_are_minima_and_saddles_are_not() -> None:
    """Around a stated minimum the function only rises; around a saddle it falls somewhere."""
    angles = torch.linspace(0, 2 * torch.pi, 64, dtype=torch.float64)
    for landscape in LANDSCAPES.values():
        for point in landscape.points:
            ring_x = point.x + 1e-3 * torch.cos(angles)
            ring_y = point.y + 1e-3 * torch.sin(angles)
            lowest = float(landscape(ring_x, ring_y).min())
            if point.kind == "minimum":
                assert lowest > point.value, (landscape.name, point)
            else:
                assert lowest < point.value, (landscape.name, point)


def test_user_function_gets_its_gradient_from_autograd() -> None:
    landscape = user_landscape(lambda x, y: x**2 * y + torch.sin(y), (-1, 1, -1, 1), (0.5, 0.5))
    gx, gy = landscape.gradient(torch.tensor([0.5]), torch.tensor([0.25]))
    assert float(gx) == pytest.approx(2 * 0.5 * 0.25)
    assert float(gy) == pytest.approx(0.25 + torch.cos(torch.tensor(0.25)).item())


def test_unknown_function_is_one_sentence() -> None:
    with pytest.raises(ValueError, match="unknown function 'nope'; accepted: ravine"):
        get("nope")
    assert get("Six-Hump-Camel").name == "six_hump_camel"


def test_race_rates_share_the_heavy_ball_rate_and_override_the_adaptive_ones() -> None:
    from descent.landscapes.functions import ADAPTIVE_RATES, race_rates

    rates = race_rates(0.1, 0.05, adam=0.3)
    assert rates["sgd"] == 0.1
    assert rates["momentum"] == rates["nesterov"] == 0.05
    assert rates["adam"] == 0.3 != ADAPTIVE_RATES["adam"]
    assert {name: rates[name] for name in ADAPTIVE_RATES if name != "adam"} == {
        name: rate for name, rate in ADAPTIVE_RATES.items() if name != "adam"
    }
