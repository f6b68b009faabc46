"""`descent schedule NAME --param value … [NAME --param value …] --steps N [--plot out.png]`:
see a schedule's values (and curve) before training with it."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from descent.errors import InputError

if TYPE_CHECKING:  # the schedules (and torch) are imported only when the command runs
    from descent import schedules

#: A figure is a few thousand pixels wide: curves are drawn through at most this many steps.
PLOT_POINTS = 4000


def parse_value(text: str) -> Any:
    """A command-line value: int, float (1e-4 included), bool, none, or a [list, of, those]."""
    stripped = text.strip()
    lowered = stripped.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(stripped)
        except ValueError:
            pass
    if stripped.startswith("[") and stripped.endswith("]"):
        inner = stripped[1:-1].strip()
        return [parse_value(part) for part in inner.split(",")] if inner else []
    return stripped


def parse_specs(tokens: list[str]) -> list[schedules.Schedule]:
    """NAME --key value … NAME --key=value … → schedules (validated by the schedules themselves)."""
    from descent import schedules

    specs: list[tuple[str, dict[str, Any]]] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.startswith("--"):
            if not specs:
                raise InputError(
                    f"{token}: name the schedule first, e.g. 'descent schedule exponential_decay "
                    f"{token} …'; schedules: {', '.join(schedules.names())}"
                )
            key, has_value, value = token[2:].partition("=")
            if not has_value:
                if index + 1 >= len(tokens):
                    raise InputError(f"{token} needs a value")
                index += 1
                value = tokens[index]
            specs[-1][1][key.replace("-", "_")] = parse_value(value)
        else:
            specs.append((token, {}))
        index += 1
    if not specs:
        raise InputError(f"name at least one schedule: {', '.join(schedules.names())}")
    return [schedules.create(name, **params) for name, params in specs]


def label(schedule: schedules.Schedule) -> str:
    """name(the parameters that differ from their defaults), short enough for a legend."""
    defaults = {
        item.name: item.default
        for item in dataclasses.fields(schedule)
        if item.default is not dataclasses.MISSING
    }
    params = ", ".join(
        f"{key}={value}"
        for key, value in schedule.to_dict().items()
        if key != "name" and not isinstance(value, dict) and defaults.get(key, object()) != value
    )
    return f"{schedule.name}({params})"


def table_steps(steps: int, every: int | None) -> list[int]:
    stride = every or max(1, math.ceil(steps / 20))
    chosen = list(range(0, steps, stride))
    if chosen[-1] != steps - 1:
        chosen.append(steps - 1)
    return chosen


def plot_steps(steps: int, points: int = PLOT_POINTS) -> list[int]:
    """The steps a curve is drawn through: all of them up to ``points``, else evenly spaced ones
    with every schedule's first and last step (the table stays exact; a figure cannot show more)."""
    if steps <= points:
        return list(range(steps))
    stride = (steps - 1) / (points - 1)
    return sorted({round(index * stride) for index in range(points)})


def draw(curves: list[schedules.Schedule], steps: int, path: Path) -> None:
    from descent.plotting import figure_file

    with figure_file(path, dpi=120, figsize=(8, 5), layout="constrained") as (_, axes):
        xs = plot_steps(steps)
        for schedule in curves:
            axes.plot(xs, [schedule(n) for n in xs], label=label(schedule), linewidth=1.6)
        axes.set_xlabel("update n (0-based)")
        axes.set_ylabel("learning rate")
        axes.set_title("Learning-rate schedules")
        axes.grid(alpha=0.3)
        # Below the axes, so the legend never hides a curve.
        axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), frameon=False)


def schedule(
    ctx: typer.Context,
    steps: Annotated[int, typer.Option(min=1, help="Number of updates to show.")] = 100,
    plot: Annotated[
        Path | None, typer.Option(help="Draw the curves (all schedules on one figure) to a PNG.")
    ] = None,
    every: Annotated[
        int | None, typer.Option(min=1, help="Print every K-th step (default: about 20 rows).")
    ] = None,
) -> None:
    """Print (and plot) schedules: NAME --param value … [NAME --param value …]."""
    from rich.table import Table

    from descent.cli.console import console

    curves = parse_specs(list(ctx.args))
    table = Table(title=f"{len(curves)} schedule(s), {steps} updates")
    table.add_column("n", justify="right")
    for index, curve in enumerate(curves):
        table.add_column(f"{index + 1}: {curve.name}", justify="right")
    for n in table_steps(steps, every):
        table.add_row(str(n), *(f"{curve(n):.6g}" for curve in curves))
    console.print(table)
    for index, curve in enumerate(curves):
        console.print(f"{index + 1}: {curve!r}", soft_wrap=True, highlight=False)
    if plot is not None:
        draw(curves, steps, plot)
        console.print(f"wrote {plot}")


# Schedules take their own parameters after their name: click must pass unknown options through.
schedule.command_settings = {  # type: ignore[attr-defined]
    "context_settings": {"allow_extra_args": True, "ignore_unknown_options": True},
    "epilog": "Example: descent schedule cosine_decay_restarts --initial_learning_rate 0.1 "
    "--first_decay_steps 20 step --initial_learning_rate 0.1 --step_size 30 --steps 150 "
    "--plot lr.png",
}
