"""The one way descent gets matplotlib and writes a figure: pyplot on the headless Agg backend,
imported on first use (it takes about a second, so nothing imports it at start-up), and a figure
written to a file (PNG, PDF or SVG by its suffix; folders made) and then closed, so that no figure
stays in pyplot's registry when a command or the gallery draws many.

Example::

    >>> with figure_file("runs/curve.png", figsize=(6, 4)) as (figure, axes):
    ...     axes.plot([1, 2, 3])
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: dots per inch of a written figure unless a caller says otherwise
DEFAULT_DPI = 110


def pyplot() -> Any:
    """matplotlib.pyplot on the headless Agg backend (imported on first use: it is slow)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def save_figure(figure: Any, path: str | Path, dpi: int = DEFAULT_DPI) -> Path:
    """Write ``figure`` to ``path`` (PNG, PDF or SVG by its suffix; folders made) and close it
    (also when writing fails)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=dpi)
    finally:
        pyplot().close(figure)
    return path


@contextmanager
def figure_file(
    path: str | Path, *grid: int, dpi: int = DEFAULT_DPI, **subplots: Any
) -> Iterator[tuple[Any, Any]]:
    """``plt.subplots(*grid, **subplots)`` for the block to draw on: written to ``path`` when the
    block ends, and closed either way (unwritten when the block raises)."""
    plt = pyplot()
    figure, axes = plt.subplots(*grid, **subplots)
    try:
        yield figure, axes
    except BaseException:
        plt.close(figure)
        raise
    save_figure(figure, path, dpi)
