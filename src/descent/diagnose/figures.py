"""The lecture's figure of an initialization: per-layer histograms of the activations, one row per
initialization, and the histograms of the gradients reaching each layer below them (drawn through
:mod:`descent.plotting`, the one way descent draws)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from descent.plotting import pyplot, save_figure

if TYPE_CHECKING:
    from descent.diagnose.init import InitReport, LayerReport


def plot_init_reports(reports: Mapping[str, InitReport], path: str | Path) -> int:
    """Write the figure to ``path`` (PNG, PDF or SVG by its suffix); returns the number of
    histogram panels (2 × initializations × layers).

    Columns are the report's main layers (activation modules, or the weight layers when the
    activations are functional); the first block of rows shows activations, the second the
    gradients ∂L/∂(layer output), one row per initialization in each block.
    """
    plt = pyplot()
    names = list(reports)
    columns = max(len(report.main_layers()) for report in reports.values())
    rows = 2 * len(names)
    figure, axes = plt.subplots(
        rows,
        columns,
        figsize=(1.7 * columns + 1.0, 1.35 * rows + 0.8),
        squeeze=False,
        layout="constrained",
    )
    panels = 0
    for row, name in enumerate(names):
        layers = reports[name].main_layers()
        # One range per row, as in the lecture: a collapsing layer shows as a spike at 0.
        ranges = {kind: _row_range(layers, kind) for kind in ("activations", "gradients")}
        for column in range(columns):
            for block, kind in ((0, "activations"), (1, "gradients")):
                ax = axes[row + block * len(names), column]
                ax.tick_params(labelsize=6)
                if column >= len(layers):
                    ax.axis("off")
                    continue
                layer = layers[column]
                values = layer.activations if kind == "activations" else layer.gradients
                if values is None or values.numel() == 0:
                    ax.text(0.5, 0.5, "no gradient", ha="center", va="center", fontsize=7)
                else:
                    color = "tab:blue" if kind == "activations" else "tab:orange"
                    ax.hist(values.numpy(), bins=40, range=ranges[kind], color=color)
                    ax.set_yticks([])
                panels += 1
                if column == 0:
                    ax.set_ylabel(f"{name}\n{kind}", fontsize=7)
                if row == 0 and block == 0:
                    ax.set_title(f"{layer.name} ({layer.module})", fontsize=7)
                if kind == "activations":
                    ax.set_xlabel(f"std {layer.std:.2g}", fontsize=6)
                else:
                    ax.set_xlabel(f"{layer.gradient_scale:.2g}× the output's", fontsize=6)
    figure.suptitle(
        "Activations (top rows) and gradients ∂L/∂output (bottom rows) per layer", fontsize=9
    )
    save_figure(figure, path)
    return panels


def _row_range(layers: tuple[LayerReport, ...], kind: str) -> tuple[float, float]:
    samples = [getattr(layer, kind) for layer in layers]
    samples = [s for s in samples if s is not None and s.numel() and bool(s.isfinite().all())]
    low = min((float(s.min()) for s in samples), default=-1.0)
    high = max((float(s.max()) for s in samples), default=1.0)
    if not high > low:
        low, high = low - 0.5, high + 0.5
    return low, high


__all__ = ["plot_init_reports"]
