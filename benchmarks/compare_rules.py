"""Compare update rules under the same small tuning budget: for each rule, each model (the digits
MLP and CNN) and each seed, a `descent tune` study of ``--trials`` random learning rates over the
rule's range (``descent.tune.LR_RANGES``), ``--epochs`` epochs each; the best validation accuracy
of each study, then its mean and spread over the seeds. One run prints the whole table.

    python benchmarks/compare_rules.py [--rules adam,lion,...] [--models mlp,cnn] [--seeds 3]
                                       [--trials 5] [--epochs 3] [--folder runs/compare]
                                       [--markdown table.md]

Each study's random sampler is seeded by its seed (so every rule sees the same quantiles of its
range), and so are the model's initialization and the batch order. The folder keeps every study
(TensorBoard's HParams dashboard shows each). The default rules are
``descent.tune.compared_rules()``: momentum, Adam and AdamW as reference points, then every rule
the registry holds beyond the lecture's.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from conditions import parser as benchmark_parser


def best_accuracy(
    rule: str, model: str, seed: int, trials: int, epochs: int, folder: Path
) -> tuple[float, float]:
    """The best validation accuracy of one study, and the learning rate that gave it."""
    import optuna

    from descent.tune import StudySettings, rule_space, tune

    space = rule_space(rule, {"model": model, "epochs": epochs, "seed": seed})
    settings = StudySettings(
        folder / model / rule / f"seed-{seed}",
        space,
        method="random",
        trials=trials,
        pruner="none",
        seed=seed,
    )
    study = tune(settings)
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    if not done:
        return float("nan"), float("nan")
    best = max(done, key=lambda trial: trial.value)
    return float(best.value), float(best.params["lr"])


def summary(values: list[float]) -> tuple[float, float, float, float]:
    """Mean, sample standard deviation, min and max (nan-free values only)."""
    finite = [v for v in values if v == v]
    if not finite:
        return (float("nan"),) * 4
    spread = statistics.stdev(finite) if len(finite) > 1 else 0.0
    return statistics.fmean(finite), spread, min(finite), max(finite)


def main() -> None:
    from descent.tune import compared_rules

    parser = benchmark_parser(__doc__)
    parser.add_argument("--rules", default=",".join(compared_rules()))
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--folder", help="where the studies go (default: a temporary folder)")
    parser.add_argument("--markdown", help="also write the table to this Markdown file")
    args = parser.parse_args()

    import optuna
    import torch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(1)
    rules = [r for r in args.rules.split(",") if r]
    models = [m for m in args.models.split(",") if m]
    holder = None
    if args.folder:
        folder = Path(args.folder)
    else:
        holder = tempfile.TemporaryDirectory(prefix="descent-compare-")
        folder = Path(holder.name)
    started = time.perf_counter()
    print(
        f"{len(rules)} rules × {len(models)} models × {args.seeds} seeds; each study "
        f"{args.trials} random learning rates × {args.epochs} epochs (digits, 1 thread); "
        f"load average at start {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    rows: dict[str, dict[str, tuple[float, float, float, float, float]]] = {}
    for model in models:
        for rule in rules:
            results = [
                best_accuracy(rule, model, seed, args.trials, args.epochs, folder)
                for seed in range(args.seeds)
            ]
            accuracies = [accuracy for accuracy, _ in results]
            lrs = [lr for _, lr in results if lr == lr]
            mean, spread, low, high = summary(accuracies)
            median_lr = statistics.median(lrs) if lrs else float("nan")
            rows.setdefault(rule, {})[model] = (mean, spread, low, high, median_lr)
            print(
                f"{model:4} {rule:20} best val accuracy {mean:.3f} ± {spread:.3f} "
                f"(min {low:.3f}, max {high:.3f}; median best lr {median_lr:.2g})",
                flush=True,
            )
    elapsed = time.perf_counter() - started
    lines = [
        "| rule | "
        + " | ".join(
            f"{m.upper()} best val accuracy (mean ± sd) | {m.upper()} rank" for m in models
        )
        + " |",
        "|---|" + "---|---|" * len(models),
    ]

    def score(rule: str, model: str) -> float:
        """The mean, with a rule whose every trial failed (nan) ranked last."""
        mean = rows[rule][model][0]
        return mean if mean == mean else -1.0

    ranks = {
        model: {
            rule: 1 + sorted(-score(r, model) for r in rules).index(-score(rule, model))
            for rule in rules
        }
        for model in models
    }
    for rule in rules:
        cells = []
        for model in models:
            mean, spread, _, _, _ = rows[rule][model]
            cells.append(f"{mean:.3f} ± {spread:.3f} | {ranks[model][rule]}")
        lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print()
    print(table)
    for model in models:
        order = sorted(rules, key=lambda r: -score(r, model))
        best, runner_up = order[0], order[1] if len(order) > 1 else order[0]
        gap = rows[best][model][0] - rows[runner_up][model][0]
        noise = max(rows[best][model][1], rows[runner_up][model][1])
        verdict = "within" if gap <= noise else "beyond"
        print(
            f"{model}: best {best} ({rows[best][model][0]:.3f}), then {runner_up} "
            f"({rows[runner_up][model][0]:.3f}): a gap of {gap:.3f}, {verdict} one standard "
            "deviation over seeds"
        )
    winners = {sorted(rules, key=lambda r: -score(r, m))[0] for m in models}
    if len(winners) > 1:
        print(f"no rule wins everywhere: the best differs by model ({', '.join(sorted(winners))})")
    print(f"total {elapsed / 60:.1f} min; load average at end {os.getloadavg()[0]:.1f}", flush=True)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")
    if holder is not None:
        holder.cleanup()


if __name__ == "__main__":
    main()
