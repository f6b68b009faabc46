"""The lecture's claims, measured on races."""

from __future__ import annotations

import pytest
import torch

from descent.landscapes import direction_changes, race
from descent.landscapes.race import STACKED_REFERENCES


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


def _one_optimizer_per_run(
    rule: str, rate: float, steps: int, impl: str, schedule: object = None
) -> torch.Tensor:
    """The oracle: one descent optimizer on one 2-element parameter, stepped by the analytic
    gradient (what a race did before its runs were stacked)."""
    from descent import optim
    from descent.landscapes import get

    beale = get("beale")
    param = torch.tensor(beale.start, dtype=torch.float64, requires_grad=True)
    lr = rate if schedule is None else (lambda n: rate * float(schedule(n)) / float(schedule(0)))
    optimizer = optim.create(rule, [param], lr=lr, impl=impl)
    path = [param.detach().clone()]
    for _ in range(steps):
        gx, gy = beale.gradient(param.detach()[0], param.detach()[1])
        param.grad = torch.stack((gx, gy))
        optimizer.step()
        path.append(param.detach().clone())
    return torch.stack(path)


@pytest.mark.parametrize("rule", sorted(STACKED_REFERENCES))
def test_stacked_runs_follow_each_rules_optimizer(rule: str) -> None:
    """A tune stacks several rates of a rule in one tensor; every row is the path the rule's own
    optimizer takes at that rate (its reference formula exactly, its fast path within 1e-12),
    with and without a schedule."""
    from descent import schedules
    from descent.landscapes import get
    from descent.landscapes.race import simulate

    rates = (0.002, 0.01, 0.05)
    steps = 120
    decay = schedules.CosineDecay(1.0, steps)
    for schedule in (None, decay):
        runs = simulate(get("beale"), [(rule, r) for r in rates], (0.7, 1.4), steps, schedule)
        for run, rate in zip(runs, rates, strict=True):
            exact = _one_optimizer_per_run(rule, rate, steps, "reference", schedule)
            fast = _one_optimizer_per_run(rule, rate, steps, "fast", schedule)
            if run.diverged:  # frozen from its last good point on; before it, the same path
                exact, fast = exact[: run.diverged_at], fast[: run.diverged_at]
            assert torch.equal(run.path[: len(exact)], exact), (rule, rate, schedule)
            assert torch.allclose(run.path[: len(fast)], fast, rtol=0, atol=1e-12)


def test_rules_that_cannot_be_stacked_race_in_any_order_beside_stacked_ones() -> None:
    """LAMB's trust ratio is a norm over its parameter, so its runs keep an optimizer each; mixed
    with stacked rules in any order, every run is the path it takes alone."""
    from descent.landscapes import get
    from descent.landscapes.race import simulate

    assert "lamb" not in STACKED_REFERENCES
    beale = get("beale")
    runs = [("adam", 0.05), ("lamb", 0.01), ("adam", 0.02), ("sgd", 0.01), ("lamb", 0.05)]
    together = simulate(beale, runs, beale.start, 60)
    for run, pair in zip(together, runs, strict=True):
        (alone,) = simulate(beale, [pair], beale.start, 60)
        assert torch.equal(run.path, alone.path), pair
    assert not torch.equal(together[1].path, together[4].path)


def test_a_diverging_row_leaves_the_other_rows_of_its_rule_alone() -> None:
    from descent.landscapes import get
    from descent.landscapes.race import simulate

    bowl = get("bowl")
    stable, diverging = simulate(bowl, [("sgd", 0.1), ("sgd", 5.0)], bowl.start, 50)
    (alone,) = simulate(bowl, [("sgd", 0.1)], bowl.start, 50)
    assert diverging.diverged
    assert not stable.diverged
    assert torch.equal(stable.path, alone.path)
    frozen = diverging.path[diverging.diverged_at - 1 :]
    assert torch.equal(frozen, frozen[:1].expand_as(frozen))


def test_a_schedule_that_turns_negative_is_refused_at_that_update() -> None:
    with pytest.raises(ValueError, match=r"schedule\(3\) must be ≥ 0"):
        race("bowl", rules=["sgd", "adam"], steps=10, schedule=lambda n: 1.0 - n / 3.0 - 1e-9 * n)
