"""How a study draws: the samplers, seeded per trial, and the pruners.

Sampling is seeded per trial, from (study seed, trial number): a trial's draw does not depend on
how many workers run, and a resumed study continues from what the storage holds instead of
restarting the seed's sequence. TPE reads the finished trials from the storage and, with several
workers, counts the running ones as bad ("constant liar") so that workers spread out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import optuna

if TYPE_CHECKING:
    from descent.tune.study import StudySettings

METHODS = ("grid", "random", "tpe")
PRUNERS = ("none", "median", "hyperband")


def _seed_for(seed: int, number: int) -> int:
    import numpy as np

    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """A sampler made afresh for each trial, seeded from (study seed, trial number).

    Every worker then draws differently (their trials have different numbers), a trial's draw
    does not depend on the number of workers, and a resumed study goes on from the storage's
    trials rather than replaying its seed's sequence. TPE reads its history from the storage, so
    building it per trial loses nothing.
    """

    def __init__(self, make: Callable[[int], Any], seed: int) -> None:
        self._make = make
        self._seed = seed
        self._number: int | None = None
        self._sampler: Any = None

    def _for(self, trial: Any) -> Any:
        if self._number != trial.number:
            self._sampler = self._make(_seed_for(self._seed, trial.number))
            self._number = trial.number
        return self._sampler

    def reseed_rng(self) -> None:
        """Nothing to do: each trial's generator comes from its number."""

    def before_trial(self, study: Any, trial: Any) -> None:
        self._for(trial).before_trial(study, trial)

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: Any, trial: Any, search_space: dict[str, Any]) -> Any:
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: Any, trial: Any, param_name: str, param_distribution: Any
    ) -> Any:
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        self._for(trial).after_trial(study, trial, state, values)


def make_sampler(settings: StudySettings) -> Any:
    """The study's sampler (its method; completed settings), seeded trial by trial."""
    assert settings.seed is not None
    assert settings.trials is not None
    if settings.method == "tpe":
        # Optuna starts TPE with 10 random trials; a budget of a dozen would then be all random.
        startup = min(10, max(3, settings.trials // 3))

        def make(seed: int) -> Any:
            return optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=startup, constant_liar=True
            )

    else:  # random; a grid's slots carry their parameters and never reach the sampler

        def make(seed: int) -> Any:
            return optuna.samplers.RandomSampler(seed=seed)

    return TrialSeededSampler(make, settings.seed)


def make_pruner(settings: StudySettings) -> Any:
    """The study's pruner, which stops a trial from its per-epoch validation accuracy."""
    if settings.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)
    if settings.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    return optuna.pruners.NopPruner()
