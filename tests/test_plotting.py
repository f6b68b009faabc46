"""descent.plotting: a figure is written where asked and never left open in pyplot's registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from descent.plotting import figure_file, pyplot, save_figure


def test_figure_file_writes_the_figure_and_closes_it(tmp_path: Path) -> None:
    plt = pyplot()
    before = set(plt.get_fignums())
    target = tmp_path / "made" / "curve.png"  # the folder is made
    with figure_file(target, 1, 2, dpi=50, figsize=(4, 2)) as (figure, axes):
        assert len(axes) == 2
        axes[0].plot([1, 2, 3])
        assert figure.number in plt.get_fignums()
    assert target.read_bytes().startswith(b"\x89PNG")
    assert set(plt.get_fignums()) == before


def test_a_failing_block_writes_nothing_and_closes_the_figure(tmp_path: Path) -> None:
    plt = pyplot()
    before = set(plt.get_fignums())
    target = tmp_path / "never.png"
    with pytest.raises(RuntimeError, match="drawing failed"), figure_file(target):
        raise RuntimeError("drawing failed")
    assert not target.exists()
    assert set(plt.get_fignums()) == before


def test_save_figure_closes_the_figure_when_writing_fails(tmp_path: Path) -> None:
    plt = pyplot()
    before = set(plt.get_fignums())
    figure, _ = plt.subplots()
    with pytest.raises(ValueError, match="not supported"):
        save_figure(figure, tmp_path / "curve.unknownformat")
    assert set(plt.get_fignums()) == before
