"""Demo chapter: a small CNN on the bundled digits, logged for TensorBoard."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from descent.demo import DemoOptions


def chapter(console: Console, options: DemoOptions, number: int) -> None:
    from descent.train.config import load_config
    from descent.train.run import run

    config = load_config(model="cnn", logdir="runs/demo-cnn")
    outcome = run(config, overwrite=True)  # the demo replaces its own earlier run
    last = outcome.result.final
    console.print(
        f"[bold]{number}. Image classification[/bold]: a small CNN on the bundled 8×8 digits, "
        f"Adam with a cosine-decay schedule from lr {config.lr:g}, {config.epochs} epochs of "
        f"mini-batches of {config.batch_size}: validation accuracy {last.val_accuracy:.4f}, test "
        f"accuracy {outcome.test_accuracy:.4f} "
        f"({outcome.result.examples_per_second:,.0f} examples/s)."
    )
    console.print(
        f"   Scalars, update-to-weight ratios and first-layer filters are in {outcome.logdir}; "
        f"open them with: descent board {outcome.logdir}"
    )
