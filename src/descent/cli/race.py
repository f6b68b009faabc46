"""`descent race`: update rules racing on a 2-D landscape, drawn as a GIF, MP4 or PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def _pair(text: str, name: str) -> tuple[float, float]:
    from descent.errors import InputError

    parts = text.split(",")
    try:
        x, y = (float(part) for part in parts)
    except ValueError:
        raise InputError(f"{name} must be two numbers 'x,y', got {text!r}") from None
    return x, y


def race(
    function: Annotated[
        str,
        typer.Option(
            help="ravine, bowl, rosenbrock, beale, himmelblau, "
            "booth, saddle, monkey_saddle, plateau, "
            "six_hump_camel, rastrigin."
        ),
    ] = "beale",
    rules: Annotated[str, typer.Option(help="Comma-separated update rules.")] = (
        "sgd,momentum,nesterov,adagrad,adadelta,rmsprop,adam"
    ),
    start: Annotated[
        str | None, typer.Option(help="Start point 'x,y' (default: the function's own).")
    ] = None,
    steps: Annotated[int, typer.Option(help="Updates per rule.")] = 500,
    lr: Annotated[
        list[str] | None,
        typer.Option(help="RULE=VALUE, repeatable (default: a rate suited to the function)."),
    ] = None,
    tune: Annotated[bool, typer.Option(help="Pick each rule's best rate on a log grid.")] = False,
    schedule: Annotated[
        str | None,
        typer.Option(
            help="A schedule NAME[:key=value,…] applied "
            "to every rule (its shape, scaled to each "
            "rule's rate), e.g. cosine_decay."
        ),
    ] = None,
    tolerance: Annotated[
        float, typer.Option(help="Distance to a minimum that counts as reached.")
    ] = 1e-3,
    out: Annotated[
        Path | None,
        typer.Option(
            help="race.gif, race.mp4 or race.png (MP4 needs imageio-ffmpeg; without it a PNG)."
        ),
    ] = None,
    frames: Annotated[int, typer.Option(min=2, help="Frames of an animation.")] = 100,
    surface: Annotated[bool, typer.Option(help="Draw on a 3-D surface.")] = False,
) -> None:
    """Race update rules on a 2-D landscape from the same start; a table and a picture."""
    from rich.table import Table

    from descent import validate
    from descent.cli.console import console
    from descent.errors import InputError
    from descent.landscapes import get
    from descent.landscapes import race as run_race
    from descent.landscapes.figures import render

    landscape = get(function)
    validate.positive_int(steps, "steps")
    origin = _pair(start, "start") if start is not None else landscape.start
    if not landscape.contains(*origin):
        console.print(
            f"[yellow]warning:[/yellow] start {origin} lies outside {landscape.name}'s view box "
            f"{landscape.box}; the picture may not show it."
        )
    rates: dict[str, float] = {}
    for item in lr or []:
        rule, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--lr must be RULE=VALUE, got {item!r}")
        try:
            rates[rule.strip()] = float(value)
        except ValueError:
            raise InputError(f"--lr {item!r}: {value!r} is not a number") from None
    shape = None
    if schedule is not None:
        shape = _schedule(schedule, steps)
    result = run_race(
        landscape,
        rules=[rule.strip() for rule in rules.split(",") if rule.strip()],
        start=origin,
        steps=steps,
        lr=rates,
        schedule=shape,
        tune=tune,
        tolerance=tolerance,
    )
    table = Table(
        title=f"{landscape.name} from {origin}, {steps} steps" + (" (rates tuned)" if tune else ""),
        caption=f"reached: first step within {tolerance:g} of a stated "
        f"{'minimum' if landscape.minima else 'stationary point'}",
    )
    for column in ("rule", "lr", "reached at step", "final distance", "final f", "diverged"):
        table.add_column(column, justify="left" if column == "rule" else "right")
    for row in result.runs:
        table.add_row(
            row.rule,
            f"{row.lr:.3g}",
            "—" if row.steps_to_tolerance is None else str(row.steps_to_tolerance),
            f"{row.final_distance:.3g}",
            f"{row.final_value:.4g}",
            f"at step {row.diverged_at}" if row.diverged else "no",
        )
    console.print(table)
    if out is not None:
        written = render(result, out, frames=frames, surface=surface)
        if written != out:
            console.print(f"no MP4 encoder (pip install imageio-ffmpeg): wrote a still {written}")
        else:
            console.print(f"wrote {written}")


def _schedule(spec: str, steps: int) -> object:
    """``NAME[:key=value,…]`` → a schedule spanning the race: it starts at 1 (its shape is rescaled
    to each rule's rate) and its length parameter, where it has one, defaults to the race's."""
    from descent import schedules
    from descent.cli.schedule import parse_value
    from descent.errors import InputError

    name, _, rest = spec.partition(":")
    params: dict[str, object] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--schedule {spec!r}: write NAME:key=value,key=value")
        params[key.strip()] = parse_value(value)
    accepted = schedules.parameters(name)
    for key in ("initial_learning_rate", "learning_rate", "max_lr"):
        if key in accepted:
            params.setdefault(key, 1.0)
    for key in ("decay_steps", "first_decay_steps", "total_steps"):
        if key in accepted:
            params.setdefault(key, steps)
    return schedules.create(name, **params)
