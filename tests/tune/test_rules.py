"""Every update rule in `descent tune`: a learning-rate range per rule, and a study that trains
each of the newer rules end to end."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from descent.errors import InputError
from descent.optim import OPTIMIZERS
from descent.tune import (
    LECTURE_RULES,
    LR_RANGES,
    REFERENCE_RULES,
    SearchSpace,
    StudySettings,
    compared_rules,
    newer_rules,
    rule_space,
    tune,
)


def test_every_rule_has_a_learning_rate_range() -> None:
    assert set(LR_RANGES) == set(OPTIMIZERS)
    for low, high in LR_RANGES.values():
        assert 0 < low < high


@pytest.mark.parametrize("rule", list(OPTIMIZERS))
def test_rule_space_tunes_the_rules_learning_rate(rule: str) -> None:
    space = rule_space(rule, {"model": "mlp", "epochs": 3})
    assert space.base == {"model": "mlp", "epochs": 3, "optimizer": rule}
    (lr,) = space.params
    assert (lr.name, lr.kind, lr.log) == ("lr", "float", True)
    assert (lr.low, lr.high) == LR_RANGES[rule]


def test_the_compared_rules_are_the_reference_points_and_every_newer_rule() -> None:
    assert set(LECTURE_RULES) <= set(OPTIMIZERS)
    assert set(REFERENCE_RULES) <= set(LECTURE_RULES)
    assert set(newer_rules()) == set(OPTIMIZERS) - set(LECTURE_RULES)
    assert {"lion", "muon", "soap"} <= set(newer_rules())
    assert compared_rules() == (*REFERENCE_RULES, *newer_rules())


def test_rule_space_refuses_an_unknown_rule() -> None:
    with pytest.raises(InputError, match="optimizer"):
        rule_space("adamz")


@pytest.mark.parametrize("rule", newer_rules())
def test_a_study_trains_the_rule(rule: str, tmp_path: Path) -> None:
    """One trial at the top of the rule's range, on the digits softmax model for two epochs: it
    completes, and the validation accuracy it reports is far above chance (0.1)."""
    space = SearchSpace.from_dict(
        {
            "base": {"model": "softmax", "epochs": 2, "optimizer": rule},
            "params": {"lr": {"choices": [LR_RANGES[rule][1]]}},
        }
    )
    study = tune(StudySettings(tmp_path, space, method="grid", pruner="none"))
    (trial,) = study.get_trials()
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert trial.params["lr"] == LR_RANGES[rule][1]
    assert trial.value > 0.5
    assert trial.user_attrs["config"]["optimizer"] == rule
