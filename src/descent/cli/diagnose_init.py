"""`descent diagnose init`: the initialization report of a model under one or more
initializations, side by side, with the lecture's histogram figure; exit status 1 when a verdict
is not healthy (usable in CI)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from descent.cli.console import console
from descent.cli.run_options import InputShapeOption, ModuleOption, parse_input_shape

#: Short verdict names for the side-by-side table.
SHORT = {
    "healthy": "ok",
    "symmetric": "symmetric",
    "dead units": "dead",
    "saturated": "saturated",
    "exploding activations": "exploding",
    "vanishing activations": "vanishing",
    "exploding gradients": "grad explodes",
    "vanishing gradients": "grad vanishes",
}
MODELS = ("mlp", "cnn", "softmax")


def _batch(data: str, shape: tuple[int, ...], size: int, seed: int) -> tuple[Any, Any]:
    """(inputs, targets or None): standard-normal inputs of ``shape`` ("normal", the lecture's
    experiment) or the first ``size`` training examples of a data set."""
    import torch

    if data == "normal":
        generator = torch.Generator().manual_seed(seed + 1)  # not the weights' stream
        return torch.randn(size, *shape, generator=generator), None
    from descent.data.images import load

    split = load(data, seed=seed).train
    return split.images[:size], split.labels[:size]


def init(
    model: Annotated[str, typer.Option(help="Built-in model: mlp, cnn or softmax.")] = "mlp",
    depth: Annotated[int, typer.Option(help="Hidden layers of the MLP.")] = 10,
    width: Annotated[int, typer.Option(help="Units per hidden layer of the MLP.")] = 500,
    activation: Annotated[str, typer.Option(help="tanh, relu, sigmoid, gelu, …")] = "tanh",
    inits: Annotated[
        list[str] | None,
        typer.Option(
            "--init",
            help="An initialization (repeat the option to compare): default, zeros, "
            "normal:STD, uniform:A, xavier_normal, kaiming_normal, orthogonal, lsuv, … "
            "(none: the model as its constructor initialized it)",
        ),
    ] = None,
    module: ModuleOption = None,
    input_shape: InputShapeOption = None,
    data: Annotated[
        str, typer.Option(help="normal (standard-normal inputs), digits or mnist:DIR, …")
    ] = "normal",
    batch: Annotated[int, typer.Option(help="Examples in the batch.")] = 500,
    seed: Annotated[int, typer.Option(help="Seeds the weights and the batch.")] = 0,
    plot: Annotated[
        Path | None, typer.Option(help="Write the histogram figure (PNG) here.")
    ] = None,
) -> None:
    """Diagnose initializations: per-layer activations and gradients, a verdict and a remedy;
    exit status 1 when a verdict is not healthy."""
    import torch
    from rich.table import Table

    from descent import validate
    from descent.diagnose import init_report
    from descent.errors import InputError
    from descent.models import MLP, SmallCNN, SoftmaxRegression, initialize, parse_init

    # Without --init the model is diagnosed as its constructor left it (your module's own init).
    schemes = [parse_init(spec) for spec in inits] if inits else [None]
    validate.positive_int(batch, "--batch")
    validate.positive_int(depth, "--depth")
    validate.positive_int(width, "--width")
    if batch < 2:
        raise InputError(f"--batch must be at least 2, got {batch}")
    if module is None:
        model = validate.choice(model, "--model", MODELS)
    shape: tuple[int, ...]
    if module is not None:
        from descent.cli.gradcheck import input_shape_of, load_user_module

        def build() -> torch.nn.Module:
            return load_user_module(module)[0]

        shape = input_shape_of(build(), input_shape)
    elif data != "normal":
        shape = ()  # read from the data below
    elif input_shape:
        shape = parse_input_shape(input_shape)
    else:
        shape = {"mlp": (width,), "cnn": (1, 8, 8), "softmax": (64,)}[model]
    inputs, targets = _batch(data, shape, batch, seed)
    features = int(inputs[0].numel())
    classes = int(targets.max()) + 1 if targets is not None else 10
    if module is None:

        def build() -> torch.nn.Module:
            if model == "mlp":
                return MLP(features, classes, depth=depth, width=width, activation=activation)
            if model == "cnn":
                return SmallCNN(
                    tuple(inputs.shape[1:]) if inputs.dim() == 4 else (1, 8, 8), classes
                )
            return SoftmaxRegression(features, classes)

    reports = {}
    for scheme in schemes:
        torch.manual_seed(seed)
        network = build()
        if scheme is not None:
            generator = torch.Generator().manual_seed(seed)
            initialize(network, scheme, generator=generator, inputs=inputs)
        reports[str(scheme) if scheme is not None else "as built"] = init_report(
            network, inputs, targets
        )

    table = Table(
        title=f"initialization report: {module or model}"
        + (f", {depth}×{width} {activation}" if module is None and model == "mlp" else "")
        + f", batch of {len(inputs)} ({data})"
    )
    table.add_column("layer")
    for name in reports:
        table.add_column(f"{name}\nstd", justify="right")
        table.add_column("verdict")
    first = next(iter(reports.values()))
    for index, layer in enumerate(first.main_layers()):
        cells = [f"{layer.name} ({layer.module})"]
        for report in reports.values():
            entry = report.main_layers()[index]
            figure = entry.saturated if entry.verdict.name == "saturated" else entry.dead
            note = SHORT[entry.verdict.name] + (
                f" {figure:.0%}" if entry.verdict.name in ("saturated", "dead units") else ""
            )
            cells += [f"{entry.std:.2g}", note if entry.verdict.healthy else f"[red]{note}[/red]"]
        table.add_row(*cells)
    console.print(table)
    for name, report in reports.items():
        mark = "[green]healthy[/green]" if report.healthy else f"[red]{report.verdict.name}[/red]"
        console.print(f"[bold]{name}[/bold]: {mark}: {report.verdict.reason}", soft_wrap=True)
        if report.verdict.suggestion:
            console.print(f"   suggestion: {report.verdict.suggestion}", soft_wrap=True)
    if plot is not None:
        from descent.diagnose.figures import plot_init_reports

        panels = plot_init_reports(reports, plot)
        console.print(f"wrote {plot} ({panels} histograms)")
    unhealthy = [name for name, report in reports.items() if not report.healthy]
    if unhealthy:
        raise typer.Exit(code=1)
