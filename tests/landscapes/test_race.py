"""The lecture's claims, measured on races."""

from __future__ import annotations

import pytest
import torch

from descent.landscapes import direction_changes, race


def test_momentum_and_nesterov_cross_the_ravine_sooner_than_sgd_at_their_best_rates() -> None:
    result = race("ravine", rules=["sgd", "momentum", "nesterov"], steps=400, tune=True)
    sgd = result["sgd"].steps_to_tolerance
    assert sgd is not None
    for rule in ("momentum", "nesterov"):
        reached = result[rule].steps_to_tolerance
        assert reached is not None, result.table()
        assert reached < sgd, result.table()


def test_nesterov_zigzags_across_the_ravine_less_than_momentum() -> None:
    """Same rate and γ: Nesterov's look-ahead corrects the step along the steep axis."""
    result = race(
        "ravine", rules=["momentum", "nesterov"], steps=150, lr={"momentum": 0.03, "nesterov": 0.03}
    )
    momentum = direction_changes(result["momentum"], axis=1)
    nesterov = direction_changes(result["nesterov"], axis=1)
    assert nesterov < momentum, (nesterov, momentum)


def test_adagrad_steps_shrink_monotonically_on_a_convex_bowl() -> None:
    run = race("bowl", rules=["adagrad"], steps=200, lr={"adagrad": 0.5})["adagrad"]
    lengths = run.step_lengths
    assert bool((lengths[1:] <= lengths[:-1] * (1 + 1e-12)).all())
    assert float(lengths[-1]) < float(lengths[0]) / 10


def test_gradient_descent_on_the_stable_axis_converges_to_the_saddle() -> None:
    run = race("saddle", rules=["sgd"], start=(-1.5, 0.0), steps=300, lr={"sgd": 0.05})["sgd"]
    assert run.final_distance < 1e-9
    assert float(run.path[:, 1].abs().max()) == 0.0


def _steps_to_leave(path: torch.Tensor, radius: float = 1.0) -> int | None:
    """First step at which |y| (the unstable axis) exceeds the radius."""
    beyond = (path[:, 1].abs() > radius).nonzero()
    return int(beyond[0]) if beyond.numel() else None


def test_adaptive_rules_leave_a_perturbed_saddle_sooner_than_sgd() -> None:
    result = race("saddle", rules=["sgd", "rmsprop", "adam"], start=(-1.5, 1e-3), steps=300)
    sgd = _steps_to_leave(result["sgd"].path)
    assert sgd is not None
    for rule in ("rmsprop", "adam"):
        left = _steps_to_leave(result[rule].path)
        assert left is not None, rule
        assert left < sgd, (rule, left, sgd)


def test_a_diverging_rule_is_flagged_and_frozen() -> None:
    run = race("bowl", rules=["sgd"], steps=100, lr={"sgd": 5.0})["sgd"]
    assert run.diverged
    assert run.diverged_at is not None
    assert torch.isfinite(run.path).all()
    assert run.steps_to_tolerance is None


def test_same_start_same_numbers_and_a_schedule_scales_every_rule() -> None:
    from descent import schedules

    first = race("beale", rules=["adam", "momentum"], steps=50)
    again = race("beale", rules=["adam", "momentum"], steps=50)
    for a, b in zip(first.runs, again.runs, strict=True):
        assert torch.equal(a.path, b.path)
    decayed = race("beale", rules=["adam"], steps=50, schedule=schedules.CosineDecay(1.0, 50))[
        "adam"
    ]
    plain = first["adam"]
    assert not torch.equal(decayed.path, plain.path)
    assert torch.equal(decayed.path[:2], plain.path[:2])  # the schedule starts at the rule's rate


def test_bad_arguments_are_one_sentence() -> None:
    with pytest.raises(ValueError, match="rule must be one of"):
        race("beale", rules=["nope"])
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        race("beale", steps=0)
