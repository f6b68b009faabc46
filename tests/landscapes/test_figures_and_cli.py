"""Race pictures (GIF frames, MP4 duration, a PNG without an encoder) and `descent race`."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from descent.landscapes import figures, race
from tests.cli_support import refusal, run_cli


def test_gif_has_the_frames_asked_for(tmp_path: Path) -> None:
    result = race("ravine", rules=["sgd", "momentum"], steps=40)
    written = figures.render(result, tmp_path / "race.gif", frames=8)
    with Image.open(written) as image:
        assert image.n_frames == 8


def test_mp4_lasts_frames_over_fps(tmp_path: Path) -> None:
    import imageio_ffmpeg

    result = race("bowl", rules=["adam"], steps=30)
    written = figures.render(result, tmp_path / "race.mp4", frames=10, fps=20)
    assert written.suffix == ".mp4"
    frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(written))
    assert frames == 10
    assert seconds == pytest.approx(0.5, abs=0.06)


def test_png_is_written_when_no_animation_encoder_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(figures, "ffmpeg_available", lambda: False)
    result = race("bowl", rules=["sgd"], steps=10)
    written = figures.render(result, tmp_path / "race.mp4")
    assert written == tmp_path / "race.png"
    assert written.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    surface = figures.render(result, tmp_path / "surface.png", surface=True)
    assert surface.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_race_command_prints_the_table_and_writes_the_figure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "race.png"
    code, out, _ = run_cli(
        [
            "race",
            "--function",
            "ravine",
            "--rules",
            "sgd,momentum",
            "--steps",
            "200",
            "--lr",
            "momentum=0.01",
            "--out",
            str(out_file),
        ],
        capsys,
    )
    assert code == 0
    assert "momentum" in out
    assert "reached at step" in out
    assert out_file.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["race", "--function", "nope"], "unknown function 'nope'"),
        (["race", "--rules", "sgd,nope"], "rule must be one of"),
        (["race", "--steps", "0"], "steps must be a positive integer"),
        (["race", "--lr", "adam"], "RULE=VALUE"),
        (["race", "--start", "1"], "start must be two numbers"),
        (["race", "--out", "x.jpg", "--steps", "5"], "must end in .gif, .mp4, .png"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert message in refusal(args, capsys)


def test_a_start_outside_the_box_is_allowed_but_warned(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        ["race", "--function", "bowl", "--rules", "adam", "--start", "10,10", "--steps", "20"],
        capsys,
    )
    assert code == 0
    assert "outside" in out


def test_dpi_sets_the_size_and_the_palette_keeps_every_paths_color(tmp_path: Path) -> None:
    """7.5 × 6 inches at 40 dpi is 300 × 240 pixels; with 16 colors, each rule's path color (in
    its legend swatch) still has a palette entry of its own, near the color matplotlib drew."""
    import numpy as np
    from matplotlib import colormaps

    result = race("ravine", rules=["sgd", "momentum", "adam"], steps=20)
    written = figures.render(result, tmp_path / "small.gif", frames=3, dpi=40, colors=16)
    with Image.open(written) as image:
        assert image.size == (300, 240)
        image.seek(image.n_frames - 1)
        palette = np.array(image.convert("RGB").getcolors(1 << 16), dtype=object)
    drawn = np.array([rgb for _, rgb in palette], dtype=float)
    for index in range(3):
        wanted = np.array(colormaps["tab10"](index)[:3]) * 255
        assert np.abs(drawn - wanted).max(axis=1).min() < 40, index
    with pytest.raises(ValueError, match="colors must be a positive integer"):
        figures.render(result, tmp_path / "bad.gif", frames=3, colors=0)
