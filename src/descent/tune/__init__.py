"""Hyperparameter search on Optuna, shown in TensorBoard's HParams dashboard.

- :mod:`descent.tune.space`: the search space (settings, domains, conditions), checked up front.
- :mod:`descent.tune.study`: the Optuna study: its storage, record and trial slots.
- :mod:`descent.tune.workers`: the processes that run the trials.
- :mod:`descent.tune.hparams`: the experiment, session start and session end summaries.

Methods: ``grid`` (every combination of the discrete settings, as TensorFlow's HParams tutorial;
conditional settings only where their condition holds), ``random`` and ``tpe`` (Optuna's
samplers, seeded per trial); bad trials are pruned from their per-epoch validation accuracy
(``median`` or ``hyperband``). See docs/tuning.md.
"""

from descent.tune.hparams import METRICS
from descent.tune.space import (
    DEFAULT_SPACE,
    LECTURE_RULES,
    LR_RANGES,
    MAX_GRID_POINTS,
    REFERENCE_RULES,
    Param,
    SearchSpace,
    compared_rules,
    newer_rules,
    rule_space,
)
from descent.tune.study import (
    METHODS,
    PRUNERS,
    StudySettings,
    best_config,
    mask_url,
    open_study,
    summary_rows,
)
from descent.tune.workers import tune

__all__ = [
    "DEFAULT_SPACE",
    "LECTURE_RULES",
    "LR_RANGES",
    "MAX_GRID_POINTS",
    "METHODS",
    "METRICS",
    "PRUNERS",
    "REFERENCE_RULES",
    "Param",
    "SearchSpace",
    "StudySettings",
    "best_config",
    "compared_rules",
    "mask_url",
    "newer_rules",
    "open_study",
    "rule_space",
    "summary_rows",
    "tune",
]
