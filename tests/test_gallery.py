"""The README gallery (`make figures`): the same code on tiny settings, and the committed size."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from descent import gallery
from descent.errors import DescentError

REPO = Path(__file__).resolve().parents[1]


def test_the_gallery_draws_every_figure_on_tiny_settings(tmp_path: Path) -> None:
    written = gallery.make_gallery(tmp_path / "figures", gallery.QUICK)
    assert [path.name for path in written] == list(gallery.NAMES)
    with Image.open(tmp_path / "figures" / "race.gif") as animation:
        assert animation.n_frames == gallery.QUICK.race_frames
    for path in written[1:]:
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert min(image.size) > 50
    assert sum(path.stat().st_size for path in written) <= gallery.MAX_TOTAL_BYTES


def test_a_gallery_over_its_budget_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gallery, "MAX_TOTAL_BYTES", 1000)
    monkeypatch.setattr(gallery, "FIGURES", {"schedules.png": gallery.schedules_figure})
    with pytest.raises(DescentError, match=r"over its .* budget \(schedules.png"):
        gallery.make_gallery(tmp_path, gallery.QUICK)


def test_the_committed_gallery_is_complete_and_under_two_megabytes() -> None:
    folder = REPO / "docs" / "figures"
    sizes = {name: (folder / name).stat().st_size for name in gallery.NAMES}
    assert sum(sizes.values()) <= gallery.MAX_TOTAL_BYTES, sizes
    with Image.open(folder / "race.gif") as animation:
        assert animation.n_frames == gallery.GallerySettings().race_frames
