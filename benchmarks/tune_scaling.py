"""Tuning throughput and search quality, measured in one run.

1. Completed trials per minute with 1 and 2 worker processes on the same SQLite study (on 2
   cores one worker already uses both through torch's threads), digits softmax regression with
   3 epochs per trial; and the number of trials the study holds and how many are distinct (both
   must equal the trials asked, with any number of workers).
2. The best validation accuracy TPE and random search find after the same number of trials,
   averaged over seeds, on the default digits CNN space (shorter epochs).

    python benchmarks/tune_scaling.py [--trials 16] [--seeds 3] [--quality-trials 12]
        [--throughput-only]
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import optuna

from conditions import conditions
from conditions import parser as benchmark_parser
from descent.tune import DEFAULT_SPACE, SearchSpace, StudySettings, tune


def throughput(workers: int, trials: int) -> tuple[float, int, int]:
    """Finished trials per minute, and how many trials the study holds and how many distinct
    parameter sets they have (both must equal ``trials``)."""
    space = SearchSpace.from_dict(
        {
            "base": {"model": "softmax", "epochs": 3},
            "params": {
                "lr": {"float": [0.001, 0.1], "log": True},
                "batch_size": {"choices": [32, 64]},
            },
        }
    )
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        study = tune(
            StudySettings(Path(folder), space, method="random", trials=trials, pruner="none"),
            workers=workers,
        )
        minutes = (time.perf_counter() - start) / 60
        done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        held = len(study.get_trials())
        distinct = len({repr(sorted(t.params.items())) for t in done})
    return len(done) / minutes, held, distinct


def best_found(method: str, trials: int, seed: int) -> float:
    space = SearchSpace.from_dict({**DEFAULT_SPACE, "base": {"model": "cnn", "epochs": 4}})
    with tempfile.TemporaryDirectory() as folder:
        study = tune(
            StudySettings(
                Path(folder), space, method=method, trials=trials, pruner="none", seed=seed
            )
        )
        return float(study.best_value)


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quality-trials", type=int, default=12)
    parser.add_argument("--throughput-only", action="store_true")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(conditions())
    one, held_one, distinct_one = throughput(1, args.trials)
    two, held_two, distinct_two = throughput(2, args.trials)
    print(f"trials per minute: 1 worker {one:.1f}, 2 workers {two:.1f}, ratio {two / one:.2f}")
    print(
        f"{args.trials} trials asked: 1 worker held {held_one} ({distinct_one} distinct), "
        f"2 workers held {held_two} ({distinct_two} distinct)"
    )
    if args.throughput_only:
        return
    for method in ("random", "tpe"):
        found = [best_found(method, args.quality_trials, seed) for seed in range(args.seeds)]
        print(
            f"{method:6} best validation accuracy after {args.quality_trials} trials: "
            f"mean {statistics.mean(found):.4f} over {args.seeds} seeds "
            f"{[round(v, 4) for v in found]}"
        )


if __name__ == "__main__":
    main()
