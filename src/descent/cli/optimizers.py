"""`descent optimizers`: every update rule with its formula."""

from __future__ import annotations

import inspect


def optimizers() -> None:
    """List the update rules with their formulas."""
    from descent.cli.console import console
    from descent.optim import OPTIMIZERS

    for name, cls in OPTIMIZERS.items():
        paragraphs = inspect.cleandoc(cls.__doc__ or "").split("\n\n")
        console.print(f"[bold]{name}[/bold] ({cls.__name__}): {paragraphs[0]}", soft_wrap=True)
        if len(paragraphs) > 1:
            console.print(paragraphs[1], markup=False, highlight=False, soft_wrap=True)
        console.print()
