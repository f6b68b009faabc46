"""Every test vector of docs/schedules.md (TensorFlow's and torch's values, computed by them)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from descent import schedules as sch

REL = 1e-9  # the vectors are printed to 10 significant digits


def check(schedule: sch.Schedule, vector: dict[float, float]) -> None:
    for step, expected in vector.items():
        assert schedule(step) == pytest.approx(expected, rel=REL, abs=1e-15), step


def test_exponential_decay() -> None:
    steps = [0, 1, 5, 9, 10, 15, 20, 25]
    cont = [
        0.1,
        0.09330329915,
        0.07071067812,
        0.05358867313,
        0.05,
        0.03535533906,
        0.025,
        0.01767766953,
    ]
    stair = [0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
    check(sch.ExponentialDecay(0.1, 10, 0.5), dict(zip(steps, cont, strict=True)))
    check(sch.ExponentialDecay(0.1, 10, 0.5, staircase=True), dict(zip(steps, stair, strict=True)))
    for step, expected in zip(steps, cont, strict=True):
        assert sch.exponential_decay(0.1, step, 10, 0.5) == pytest.approx(expected, rel=REL)


def test_piecewise_constant_is_right_closed() -> None:
    vector = {0: 1.0, 10: 1.0, 10.5: 0.5, 11: 0.5, 20: 0.5, 21: 0.1, 100: 0.1}
    check(sch.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1]), vector)
    assert sch.piecewise_constant(10.5, [10.0, 20.0], [1.0, 0.5, 0.1]) == 0.5


def test_piecewise_constant_negative_step_is_rejected() -> None:
    """The spec's −5 → 1 is TF's answer to a negative step; descent refuses a negative step."""
    with pytest.raises(ValueError, match="≥ 0"):
        sch.piecewise_constant(-5, [10, 20], [1.0, 0.5, 0.1])


def test_polynomial_decay() -> None:
    steps = [0, 1, 5, 10, 11, 15, 20, 21, 25]
    p1 = [0.1, 0.09001, 0.05005, 0.0001, 0.0001, 0.0001, 0.0001, 0.0001, 0.0001]
    p1_cycle = [0.1, 0.09001, 0.05005, 0.0001, 0.045055, 0.025075, 0.0001, 0.03007, 0.01675]
    p2_cycle = [0.1, 0.0829, 0.0325, 0.01, 0.028225, 0.015625, 0.01, 0.0181, 0.0125]
    check(sch.PolynomialDecay(0.1, 10), dict(zip(steps, p1, strict=True)))
    check(sch.PolynomialDecay(0.1, 10, cycle=True), dict(zip(steps, p1_cycle, strict=True)))
    check(
        sch.PolynomialDecay(0.1, 10, end_learning_rate=0.01, power=2, cycle=True),
        dict(zip(steps, p2_cycle, strict=True)),
    )
    check(
        sch.PolynomialDecay(0.1, 10, power=0.5),
        {1: 0.09487346148, 5: 0.07073996744, 10: 0.0001, 50: 0.0001},
    )
    assert sch.polynomial_decay(0.1, 11, 10, cycle=True) == pytest.approx(0.045055, rel=REL)


def test_natural_exp_and_inverse_time_decay() -> None:
    steps = [0, 5, 10, 15, 20, 25]
    vectors = {
        (sch.NaturalExpDecay, False): [
            0.1,
            0.07788007831,
            0.06065306597,
            0.04723665527,
            0.03678794412,
            0.02865047969,
        ],
        (sch.NaturalExpDecay, True): [
            0.1,
            0.1,
            0.06065306597,
            0.06065306597,
            0.03678794412,
            0.03678794412,
        ],
        (sch.InverseTimeDecay, False): [
            0.1,
            0.08,
            0.06666666667,
            0.05714285714,
            0.05,
            0.04444444444,
        ],
        (sch.InverseTimeDecay, True): [0.1, 0.1, 0.06666666667, 0.06666666667, 0.05, 0.05],
    }
    for (cls, staircase), values in vectors.items():
        check(cls(0.1, 10, 0.5, staircase=staircase), dict(zip(steps, values, strict=True)))
    assert sch.natural_exp_decay(0.1, 15, 10, 0.5) == pytest.approx(0.04723665527, rel=REL)
    assert sch.inverse_time_decay(0.1, 15, 10, 0.5, True) == pytest.approx(0.06666666667, rel=REL)


def test_cosine_decay() -> None:
    steps = [0, 25, 50, 75, 100, 150]
    check(
        sch.CosineDecay(0.1, 100),
        dict(zip(steps, [0.1, 0.08535533906, 0.05, 0.01464466094, 0, 0], strict=True)),
    )
    check(
        sch.CosineDecay(0.1, 100, alpha=0.1),
        dict(zip(steps, [0.1, 0.08681980515, 0.055, 0.02318019485, 0.01, 0.01], strict=True)),
    )
    assert sch.cosine_decay(0.1, 25, 100) == pytest.approx(0.08535533906, rel=REL)


def test_cosine_decay_restarts() -> None:
    steps = [0, 5, 9, 10, 20, 29, 30, 70]
    vectors = {
        (2.0, 1.0, 0.0): [0.1, 0.05, 0.002447174185, 0.1, 0.05, 0.0006155829702, 0.1, 0.1],
        (2.0, 0.5, 0.1): [0.1, 0.055, 0.01220245677, 0.055, 0.0325, 0.01027701234, 0.0325, 0.02125],
        (1.0, 0.5, 0.0): [
            0.1,
            0.05,
            0.002447174185,
            0.05,
            0.025,
            0.0006117935463,
            0.0125,
            0.00078125,
        ],
    }
    for (t_mul, m_mul, alpha), values in vectors.items():
        schedule = sch.CosineDecayRestarts(0.1, 10, t_mul=t_mul, m_mul=m_mul, alpha=alpha)
        check(schedule, dict(zip(steps, values, strict=True)))
    assert sch.cosine_decay_restarts(0.1, 29, 10) == pytest.approx(0.0006155829702, rel=REL)


def test_linear_cosine_decay() -> None:
    steps = [0, 25, 50, 75, 100, 150]
    check(
        sch.LinearCosineDecay(0.1, 100),
        dict(
            zip(steps, [0.1001, 0.06411650429, 0.0251, 0.003761165235, 0.0001, 0.0001], strict=True)
        ),
    )
    check(
        sch.LinearCosineDecay(0.1, 100, num_periods=2, alpha=0.1),
        dict(zip(steps, [0.1101, 0.0001, 0.0601, 0.0001, 0.0101, 0.0101], strict=True)),
    )
    assert sch.linear_cosine_decay(0.1, 0, 100) == pytest.approx(0.1001, rel=REL)


def test_noisy_linear_cosine_decay() -> None:
    quiet = sch.NoisyLinearCosineDecay(0.1, 100, initial_variance=0.0, seed=1)
    plain = sch.LinearCosineDecay(0.1, 100)
    for step in [0, 25, 50, 75, 100, 150]:
        assert quiet(step) == plain(step)
    noisy = sch.NoisyLinearCosineDecay(0.1, 100)
    for step, sigma in zip(
        [0, 25, 50, 75, 100],
        [1, 0.4082087685, 0.3391706015, 0.303931884, 0.2810681416],
        strict=True,
    ):
        assert noisy.noise_std(step) == pytest.approx(sigma, rel=REL)
    assert noisy.noise_std(150) == noisy.noise_std(100)  # the clamped step, as TF's code


def test_keras_cosine_decay_with_warmup() -> None:
    vector = {
        0: 0,
        5: 0.05,
        9: 0.09,
        10: 0.1,
        35: 0.08681980515,
        60: 0.055,
        85: 0.02318019485,
        110: 0.01,
        200: 0.01,
    }
    keras = sch.CosineDecay(0.0, 100, alpha=0.1, warmup_target=0.1, warmup_steps=10)
    check(keras, vector)
    # Warmup-then-anything gives the same curve.
    check(sch.Warmup(sch.CosineDecay(0.1, 100, alpha=0.1), warmup_steps=10), vector)
    # No target: warmup_steps is ignored.
    assert sch.CosineDecay(0.1, 100, warmup_steps=10)(0) == 0.1


def test_cyclical() -> None:
    steps = [0, 2, 4, 6, 8, 10, 12, 16, 17]
    vectors = {
        "triangular": [0.001, 0.0035, 0.006, 0.0035, 0.001, 0.0035, 0.006, 0.001, 0.00225],
        "triangular2": [0.001, 0.0035, 0.006, 0.0035, 0.001, 0.00225, 0.0035, 0.001, 0.0013125],
        "exp_range": [
            0.001,
            0.003025,
            0.0042805,
            0.0023286025,
            0.001,
            0.0018716961,
            0.002412147682,
            0.001,
            0.001208464771,
        ],
    }
    for mode, values in vectors.items():
        schedule = sch.Cyclical(0.001, 0.006, step_size_up=4, mode=mode, gamma=0.9)
        check(schedule, dict(zip(steps, values, strict=True)))
    asymmetric = sch.Cyclical(0.001, 0.006, step_size_up=2, step_size_down=6)
    check(
        asymmetric,
        dict(
            zip(
                [0, 1, 2, 4, 6, 8, 9],
                [0.001, 0.0035, 0.006, 0.004333333333, 0.002666666667, 0.001, 0.0035],
                strict=True,
            )
        ),
    )


def test_torch_family_closed_forms() -> None:
    check(sch.StepDecay(0.1, 10, 0.5), {0: 0.1, 9: 0.1, 10: 0.05, 19: 0.05, 20: 0.025, 25: 0.025})
    check(sch.MultiStepDecay(0.1, [10, 20], 0.5), {9: 0.1, 10: 0.05, 19: 0.05, 20: 0.025})
    check(sch.ExponentialDecay(0.1, 1, 0.9), {0: 0.1, 1: 0.09, 2: 0.081, 10: 0.03486784401})
    check(
        sch.PolynomialDecay(0.1, 10, end_learning_rate=0.0, power=2),
        {0: 0.1, 1: 0.081, 5: 0.025, 9: 0.001, 10: 0, 15: 0},
    )
    linear = sch.PolynomialDecay(0.025, 4, end_learning_rate=0.1)  # LinearLR(.25, 1, 4)
    check(linear, dict(zip(range(6), [0.025, 0.04375, 0.0625, 0.08125, 0.1, 0.1], strict=True)))
    check(
        sch.CosineDecayRestarts(0.1, 10, t_mul=2, alpha=0.1),  # WarmRestarts(10, 2, .01)
        dict(
            zip(
                [0, 5, 9, 10, 20, 29, 30, 70],
                [0.1, 0.055, 0.01220245677, 0.1, 0.055, 0.01055402467, 0.1, 0.1],
                strict=True,
            )
        ),
    )
    sequential = sch.join(
        sch.PolynomialDecay(0.01, 5, end_learning_rate=0.1), sch.CosineDecay(0.1, 10), 5
    )  # SequentialLR([LinearLR, Cosine], [5])
    check(sequential, {0: 0.01, 1: 0.028, 4: 0.082, 5: 0.1, 10: 0.05, 15: 0})
    # MultiStepLR([10, 20]) is TF's piecewise_constant with boundaries [9, 19].
    piecewise = sch.PiecewiseConstantDecay([9, 19], [0.1, 0.05, 0.025])
    multistep = sch.MultiStepDecay(0.1, [10, 20], 0.5)
    assert all(piecewise(t) == pytest.approx(multistep(t)) for t in range(30))


def test_one_cycle() -> None:
    cos = [
        0.004,
        0.052,
        0.1,
        0.0950484632,
        0.08117456539,
        0.06112620219,
        0.03887419781,
        0.01882583461,
        0.004951936799,
        4e-07,
        0.004951936799,
    ]
    check(sch.OneCycle(0.1, 10), dict(enumerate(cos)))
    check(
        sch.OneCycle(0.1, 10, anneal_strategy="linear"),
        {3: 0.08571434286, 9: 4e-07, 10: -0.01428525714},
    )
    three = [
        0.004,
        0.052,
        0.1,
        0.052,
        0.004,
        0.003618072185,
        0.002618172185,
        0.001382227815,
        0.0003823278146,
        4e-07,
    ]
    check(sch.OneCycle(0.1, 10, three_phase=True), dict(enumerate(three)))
    with pytest.raises(ValueError, match="past total_steps"):
        sch.OneCycle(0.1, 10)(11)


def tf_restart_period(step: float, first_decay_steps: float, t_mul: float, dtype: str) -> int:
    """TF's period index i computed naively in ``dtype`` ("float32" or "float64"), as TF does:
    the function the documented rounding caveat of :class:`CosineDecayRestarts` is about."""
    kind = np.float32 if dtype == "float32" else np.float64
    f = kind(step) / kind(first_decay_steps)
    ratio = np.log(kind(1) - f * (kind(1) - kind(t_mul))) / np.log(kind(t_mul))
    return int(np.floor(ratio))


def test_restart_step_rounding_caveat_float32_vs_float64() -> None:
    """T0 = 10, t_mul = 3, s = 1210 is the first step of period 5. TF's log formula gives
    period 4 in float64 (ln 243 / ln 3 = 4.999…) and 5 in float32; descent settles the period with
    exact arithmetic and returns the peak."""
    assert tf_restart_period(1210, 10, 3.0, "float64") == 4
    assert tf_restart_period(1210, 10, 3.0, "float32") == 5
    schedule = sch.CosineDecayRestarts(0.1, 10, t_mul=3.0)
    assert schedule.period(1210) == (5, 0.0)
    assert schedule(1210) == pytest.approx(0.1)
    assert schedule(1209) < 1e-3  # the last step of period 4 is near the floor
    # Every restart step of several geometries gives the peak.
    for t_mul in (1.5, 2.0, 3.0, 5.0):
        schedule = sch.CosineDecayRestarts(1.0, 7, t_mul=t_mul)
        for i in range(1, 8):
            start = 7 * (t_mul**i - 1) / (t_mul - 1)
            if start == int(start):
                assert schedule(int(start)) == pytest.approx(1.0), (t_mul, i)


def test_float_and_int_steps_agree() -> None:
    schedule = sch.ExponentialDecay(0.1, 10, 0.5)
    assert schedule(5) == schedule(5.0)
    assert math.isclose(schedule(5), 0.1 * 0.5**0.5)
