"""`descent regress [DATA] --target COL --basis poly:3 --mode minibatch --optimizer adam …`

DATA is a CSV (also .tsv, .csv.gz, .csv.bz2, .csv.zst) or a Parquet file, read by
:func:`descent.data.tables.load_table`; without it, scikit-learn's bundled diabetes data.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from descent.cli.run_options import BATCH_MODE, OPTIMIZER

if TYPE_CHECKING:
    from descent.data.tables import Table as DataTable
    from descent.linear import LinearRegressionGD

#: --standardize's words and the estimator's values they stand for.
STANDARDIZE = {"columns": True, "orthonormal": "orthonormal", "none": False}
MODE_TITLES = {
    "full": "gradient descent",
    "single": "stochastic (B = 1)",
    "minibatch": "mini-batch (B = {batch_size})",
}


def parse_standardize(text: str) -> bool | str:
    from descent import validate

    return STANDARDIZE[validate.choice(text, "--standardize", STANDARDIZE)]


def parse_lr(text: str) -> float | str:
    from descent.errors import InputError

    if text in ("auto", "constant"):
        return text
    try:
        return float(text)
    except ValueError:
        raise InputError(f"--lr must be 'auto', 'constant' or a number, got {text!r}") from None


def regress(
    data: Annotated[
        Path | None,
        typer.Argument(help="A CSV or Parquet file with a header row (default: bundled diabetes)."),
    ] = None,
    target: Annotated[str | None, typer.Option(help="The target column of the table.")] = None,
    basis: Annotated[
        str, typer.Option(help="identity, poly:D, powers:D, rbf:K, sigmoid:K, fourier:M.")
    ] = "identity",
    mode: Annotated[str, BATCH_MODE] = "full",
    batch_size: Annotated[int, typer.Option(min=1, help="B for minibatch.")] = 50,
    optimizer: Annotated[str, OPTIMIZER] = "sgd",
    lr: Annotated[
        str,
        typer.Option(
            help="'auto' (1/L; decaying as 1/L / (1 + t/n) in the stochastic modes), "
            "'constant' (1/L throughout) or a number."
        ),
    ] = "auto",
    epochs: Annotated[int, typer.Option(min=1, help="Most epochs.")] = 10_000,
    standardize: Annotated[str, typer.Option(help="columns, orthonormal or none.")] = "columns",
    reduction: Annotated[str, typer.Option(help="sum (the lecture's J) or mean.")] = "sum",
    seed: Annotated[int, typer.Option(help="Seeds shuffling.")] = 0,
    delimiter: Annotated[
        str | None, typer.Option(help="CSV column separator (default: found from the header).")
    ] = None,
    dtype: Annotated[
        str, typer.Option(help="float64, or float32 to halve the table's memory.")
    ] = "float64",
    plot: Annotated[
        Path | None,
        typer.Option(help="PNG with the loss curves of the three batch modes side by side."),
    ] = None,
) -> None:
    """Fit linear regression over basis functions by gradient descent; compare with the optimum."""
    from rich.table import Table

    from descent import validate
    from descent.cli.console import console
    from descent.linear import LinearRegressionGD

    mode = validate.batch_mode(mode, "--mode")
    table = _load(data, target, delimiter, dtype)
    settings: dict[str, Any] = dict(
        basis=basis,
        mode=mode,
        batch_size=batch_size,
        optimizer=optimizer,
        learning_rate=parse_lr(lr),
        max_epochs=epochs,
        standardize=parse_standardize(standardize),
        loss_reduction=reduction,
        random_state=seed,
    )
    model = LinearRegressionGD(**settings).fit(table.X, table.y)
    report = model.fit_report(table.X, table.y)
    rate = model.learning_rate_
    shown_lr = lr
    if lr in ("auto", "constant") and isinstance(rate, float):
        shown_lr = f"{rate:.4g} ({lr})"
    elif lr == "auto" and rate is not None:  # the stochastic modes' inverse-time decay
        shown_lr = f"{rate.initial_learning_rate:.4g} / (1 + t/{rate.decay_steps:g}) (auto)"
    # The heading is a line of its own: a table title wraps to the table's narrow width, cutting
    # a long file path in two.
    heading = (
        f"{table.source} ({len(table.y)} × {table.X.shape[1]}): basis {basis}, mode {mode}, "
        f"{optimizer}, lr {shown_lr}"
    )
    out = Table(show_header=False)
    out.add_column("", justify="left")
    out.add_column("", justify="right")
    # R² compares with the mean of y, which one row cannot give
    r2 = f"{model.score(table.X, table.y):.4f}" if len(table.y) > 1 else "undefined (one row)"
    rows = [
        ("final J", f"{report.final_loss:.10g}"),
        ("optimum J (least squares)", f"{report.optimum_loss:.10g}"),
        ("relative gap (J − J*)/J*", f"{report.relative_gap:.2e}"),
        ("epochs", f"{report.epochs}" + ("" if report.converged else " (budget spent)")),
        ("R² on the data", r2),
        ("time", f"{report.seconds:.2f} s"),
    ]
    for name, value in rows:
        out.add_row(name, value)
    console.print(heading, soft_wrap=True, highlight=False, markup=False)
    console.print(out)
    if plot is not None:
        _plot(table, settings, model, plot)
        console.print(f"wrote {plot}")


def _load(data: Path | None, target: str | None, delimiter: str | None, dtype: str) -> DataTable:
    from descent.data.tables import diabetes, load_table
    from descent.errors import InputError

    if data is None:
        if target not in (None, "target"):
            raise InputError("--target names a CSV column; give the CSV file too")
        return diabetes()
    if target is None:
        raise InputError(f"{data}: name the target column with --target")
    return load_table(data, target, delimiter=delimiter, dtype=dtype)


def _plot(
    table: DataTable, settings: dict[str, Any], model: LinearRegressionGD, path: Path
) -> None:
    """Loss curves (J − J*)/J* per epoch for the three batch modes, and for one input feature the
    fitted curve over the data."""
    import numpy as np

    from descent.linear import LinearRegressionGD
    from descent.plotting import pyplot, save_figure

    plt = pyplot()
    single_feature = table.X.shape[1] == 1
    panels = 4 if single_feature else 3
    figure, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.8), layout="constrained")
    budget = min(settings["max_epochs"], 200)
    for axis, mode in zip(axes, MODE_TITLES, strict=False):
        curve = LinearRegressionGD(**{**settings, "mode": mode, "max_epochs": budget})
        curve.fit(table.X, table.y)
        optimum = curve.fit_report(table.X, table.y).optimum_loss
        gaps = np.maximum((np.asarray(curve.loss_history_) - optimum) / optimum, 1e-16)
        axis.semilogy(range(len(gaps)), gaps, linewidth=1.4)
        axis.set_title(MODE_TITLES[mode].format(batch_size=settings["batch_size"]))
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("(J − J*) / J*")
    if single_feature:
        axis = axes[3]
        order = np.argsort(table.X[:, 0])
        axis.scatter(table.X[:, 0], table.y, s=6, alpha=0.5, label="data")
        axis.plot(
            table.X[order, 0],
            model.predict(table.X[order]),
            color="C3",
            label="fit (gradient descent)",
        )
        axis.set_xlabel(table.feature_names[0])
        axis.set_ylabel(table.target_name)
        axis.legend(fontsize=8)
    figure.suptitle(f"{table.source}: basis {settings['basis']}, {settings['optimizer']}")
    save_figure(figure, path)
