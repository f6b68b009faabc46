"""`descent diagnose stall RUN` and `descent diagnose curvature RUN`: the stall verdict and the
curvature of a saved run (its config.yaml and a checkpoint), on its training data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from descent.cli.console import console

RunArgument = Annotated[
    Path,
    typer.Argument(
        help="A run folder (config.yaml and checkpoints/), as `descent train` writes it."
    ),
]
CheckpointOption = Annotated[
    str, typer.Option(help="Which checkpoint: last or best (or a path to a .pt file).")
]
ExamplesOption = Annotated[
    int, typer.Option(min=1, help="Training examples analysed (a seeded sample when fewer).")
]
Float64Option = Annotated[bool, typer.Option("--float64", help="Analyse in double precision.")]


def noise_batch_size(config: Any, given: int | None = None) -> int | None:
    """The mini-batch size of the gradient-noise figure: the one given, else the run's own when
    it trained in minibatch mode (a full-batch or single-example run has none to reuse)."""
    return given or (config.batch_size if config.mode == "minibatch" else None)


def load_run(folder: Path, checkpoint: str, examples: int) -> tuple[Any, Any, Any]:
    """(config, model with the checkpoint's weights, (inputs, targets) of the training split)."""
    import torch

    from descent.data.images import load
    from descent.errors import InputError
    from descent.train.config import load_config
    from descent.train.run import build_model

    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such run folder (train first: descent train)")
    config = load_config(folder / "config.yaml")
    path = Path(checkpoint)
    if checkpoint in ("last", "best"):
        path = folder / "checkpoints" / f"{checkpoint}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, weights_only=True, map_location="cpu")
        state = payload["model"] if isinstance(payload, dict) and "model" in payload else payload
    except Exception as error:  # unpickling errors have many types; the message says which
        raise InputError(f"{path}: not a usable descent checkpoint ({error})") from None
    data = load(config.data, seed=config.seed)
    model = build_model(config, data).to(config.torch_dtype)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise InputError(f"{path}: its weights do not fit the configured model ({first})") from None
    inputs, targets = data.train.images.to(config.torch_dtype), data.train.labels
    if examples < len(inputs):
        chosen = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(config.seed))
        inputs, targets = inputs[chosen[:examples]], targets[chosen[:examples]]
    return config, model, (inputs, targets)


def stall(
    run: RunArgument,
    checkpoint: CheckpointOption = "last",
    examples: ExamplesOption = 2000,
    batch_size: Annotated[
        int | None, typer.Option(help="Mini-batch size for the noise figure (default: the run's).")
    ] = None,
    float64: Float64Option = False,
) -> None:
    """Why did this run stop? descending, plateau, saddle, local minimum or SGD noise floor."""
    from torch.nn import functional as F

    from descent.diagnose.stall import stall as diagnose

    config, model, data = load_run(run, checkpoint, examples)
    verdict = diagnose(
        model,
        F.cross_entropy,
        data,
        batch_size=noise_batch_size(config, batch_size),
        dtype="float64" if float64 else None,
        seed=config.seed,
    )
    console.print(
        f"{run} ({checkpoint} checkpoint, {len(data[0])} training examples)",
        soft_wrap=True,
        highlight=False,
    )
    console.print(str(verdict), soft_wrap=True, highlight=False)


def curvature(
    run: RunArgument,
    checkpoint: CheckpointOption = "last",
    examples: ExamplesOption = 2000,
    top_k: Annotated[int, typer.Option(min=1, help="How many of the largest eigenvalues.")] = 5,
    density: Annotated[
        Path | None, typer.Option(help="Draw the eigenvalue density (SLQ) to a PNG.")
    ] = None,
    float64: Float64Option = False,
) -> None:
    """The Hessian's top-k and smallest eigenvalues, trace and the gradient's noise."""
    from torch.nn import functional as F

    from descent.diagnose import curvature as analysis

    config, model, data = load_run(run, checkpoint, examples)
    dtype = "float64" if float64 else None
    report = analysis.analyze(
        model,
        F.cross_entropy,
        data,
        k=top_k,
        tol=1e-4,
        max_iterations=200,
        noise_batch_size=noise_batch_size(config),
        seed=config.seed,
        dtype=dtype,
    )
    spectrum = report.spectrum
    table = Table(
        title=f"{run}: Hessian of the training loss ({report.dimension:,} parameters, "
        f"{len(data[0])} examples)"
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("certificate", justify="right")
    for rank, (value, residual) in enumerate(zip(spectrum.top, spectrum.residuals, strict=False)):
        table.add_row(f"λ_{rank + 1}", f"{value:.6g}", f"residual {residual:.1e}")
    table.add_row("λ_min", f"{spectrum.lambda_min:.6g}", f"residual {spectrum.residuals[-1]:.1e}")
    if report.trace is not None:
        table.add_row(
            "trace",
            f"{report.trace.value:.6g}",
            f"± {report.trace.stderr:.2g} ({report.trace.probes} probes)",
        )
    table.add_row("loss", f"{report.loss:.6g}", "")
    table.add_row("‖gradient‖", f"{report.gradient_norm:.4g}", "")
    if report.noise is not None:
        table.add_row(
            f"gradient SNR (B = {report.noise.batch_size})",
            f"{report.noise.snr:.4g}",
            f"noise {report.noise.noise:.3g}",
        )
    console.print(table)
    status = "converged" if spectrum.converged else "cap reached"
    console.print(
        f"{spectrum.iterations} Lanczos steps ({status}), "
        f"{report.hessian_vector_products} Hessian-vector products in all",
        highlight=False,
    )
    if density is not None:
        spectral = analysis.density(model, F.cross_entropy, data, seed=config.seed, dtype=dtype)
        spectral.plot(density, title=f"{run}: Hessian eigenvalue density")
        console.print(f"wrote {density}")
