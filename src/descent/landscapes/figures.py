"""Pictures of a race: paths over log-spaced contours, a still PNG, an animated GIF (Pillow) or MP4
(imageio-ffmpeg's encoder, when installed), and a 3-D surface view."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from descent import validate
from descent.errors import InputError
from descent.landscapes.race import RaceResult, log_levels
from descent.plotting import pyplot

#: Frames of an animation unless told otherwise (each shows the paths up to a step).
DEFAULT_FRAMES = 100
ANIMATION_DPI = 80
FORMATS = (".gif", ".mp4", ".png")


def _grid(result: RaceResult, points: int = 200) -> tuple[Any, Any, Any]:
    x_min, x_max, y_min, y_max = result.landscape.box
    xs = torch.linspace(x_min, x_max, points, dtype=torch.float64)
    ys = torch.linspace(y_min, y_max, points, dtype=torch.float64)
    grid_x, grid_y = torch.meshgrid(xs, ys, indexing="xy")
    values = result.landscape(grid_x, grid_y)
    return grid_x.numpy(), grid_y.numpy(), values.numpy()


def _axes(result: RaceResult, surface: bool) -> tuple[Any, Any]:
    plt = pyplot()
    from matplotlib.colors import LogNorm

    landscape = result.landscape
    grid_x, grid_y, values = _grid(result)
    if surface:
        figure = plt.figure(figsize=(7.5, 6))
        axes = figure.add_subplot(projection="3d")
        axes.plot_surface(grid_x, grid_y, values, cmap="viridis", alpha=0.55, linewidth=0)
        axes.set_zlabel("f(x, y)")
    else:
        figure, axes = plt.subplots(figsize=(7.5, 6), layout="constrained")
        levels = log_levels(landscape)
        shifted = values - landscape.lowest
        if len(levels) > 1:
            axes.contour(
                grid_x,
                grid_y,
                shifted.clip(min=levels[0]),
                levels=levels,
                norm=LogNorm(),
                cmap="viridis",
                linewidths=0.7,
            )
        for point in landscape.points:
            axes.plot(
                point.x,
                point.y,
                "*" if point.kind == "minimum" else "X",
                color="black",
                markersize=12,
                zorder=5,
            )
        x_min, x_max, y_min, y_max = landscape.box
        axes.set_xlim(x_min, x_max)
        axes.set_ylim(y_min, y_max)
    axes.set_xlabel("x")
    axes.set_ylabel("y")
    axes.set_title(f"{landscape.name}: {landscape.formula}", fontsize=10)
    return figure, axes


def _lines(result: RaceResult, axes: Any, surface: bool) -> list[tuple[Any, Any, Any]]:
    """One (line, head, path) per rule; the path is [steps + 1, 2] (and its height for 3-D)."""
    colors = pyplot().get_cmap("tab10")
    lines = []
    for index, run in enumerate(result.runs):
        label = f"{run.rule} (lr {run.lr:.3g})" + (" diverged" if run.diverged else "")
        color = colors(index % 10)
        path = run.path.numpy()
        if surface:
            heights = result.landscape(run.path[:, 0], run.path[:, 1]).numpy()
            (line,) = axes.plot(
                path[:1, 0], path[:1, 1], heights[:1], color=color, label=label, linewidth=1.6
            )
            (head,) = axes.plot(path[:1, 0], path[:1, 1], heights[:1], "o", color=color)
            lines.append((line, head, (path, heights)))
        else:
            (line,) = axes.plot(path[:1, 0], path[:1, 1], color=color, label=label, linewidth=1.6)
            (head,) = axes.plot(path[:1, 0], path[:1, 1], "o", color=color, markersize=5)
            lines.append((line, head, (path, None)))
    axes.legend(fontsize=8, loc="upper right")
    return lines


def _show_until(lines: list[tuple[Any, Any, Any]], step: int, surface: bool) -> None:
    for line, head, (path, heights) in lines:
        line.set_data(path[: step + 1, 0], path[: step + 1, 1])
        head.set_data(path[step : step + 1, 0], path[step : step + 1, 1])
        if surface:
            line.set_3d_properties(heights[: step + 1])
            head.set_3d_properties(heights[step : step + 1])


def frame_steps(steps: int, frames: int) -> list[int]:
    """The steps shown by the frames of an animation: evenly spaced, first and last included."""
    frames = max(2, min(frames, steps + 1))
    return sorted({round(index * steps / (frames - 1)) for index in range(frames)})


def _frames(
    figure: Any,
    axes: Any,
    lines: list[tuple[Any, Any, Any]],
    shown: list[int],
    caption: Any,
    surface: bool,
) -> Iterator[Any]:
    """RGB frames drawn by blitting: the contours (or surface) are rendered once as the
    background; each frame restores it and draws only the paths, heads and caption."""
    import numpy as np

    animated = [artist for line, head, _ in lines for artist in (line, head)] + [caption]
    for artist in animated:
        artist.set_animated(True)
    canvas = figure.canvas
    canvas.draw()
    background = canvas.copy_from_bbox(figure.bbox)
    for step in shown:
        canvas.restore_region(background)
        _show_until(lines, step, surface)
        caption.set_text(f"step {step}")
        for artist in animated:
            axes.draw_artist(artist)
        yield np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _write_gif(frames: Iterator[Any], target: Path, fps: int, colors: int) -> None:
    from PIL import Image

    # One palette for every frame, from the last one, which holds every path's color. An octree
    # keeps the paths' few saturated pixels; median cut (Pillow's default) gave their palette
    # entries to the contours' many shades, and the paths came out grey.
    rgb = list(frames)
    palette = Image.fromarray(rgb[-1]).quantize(
        colors=min(colors, 256), method=Image.Quantize.FASTOCTREE
    )
    images = [
        Image.fromarray(frame).quantize(palette=palette, dither=Image.Dither.NONE) for frame in rgb
    ]
    images[0].save(
        target, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0
    )


def _write_mp4(frames: Iterator[Any], target: Path, fps: int, figure: Any) -> None:
    import imageio_ffmpeg

    width, height = figure.canvas.get_width_height()
    writer = imageio_ffmpeg.write_frames(
        str(target), (width, height), fps=fps, macro_block_size=8, quality=7
    )
    writer.send(None)
    for frame in frames:
        writer.send(frame.tobytes())
    writer.close()


def ffmpeg_available() -> bool:
    try:
        import imageio_ffmpeg

        imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return False
    return True


def render(
    result: RaceResult,
    path: str | Path,
    frames: int = DEFAULT_FRAMES,
    surface: bool = False,
    fps: int = 20,
    dpi: int | None = None,
    colors: int = 128,
) -> Path:
    """Draw a race to ``path``: ``.png`` a still of the whole paths, ``.gif`` or ``.mp4`` an
    animation of ``frames`` frames. Without an MP4 encoder (imageio-ffmpeg), an ``.mp4`` request
    writes a PNG beside it instead and returns that path.

    ``dpi`` sets the size (the figure is 7.5 × 6 inches; default 110 for a PNG, 80 for an
    animation, 600 × 480 pixels, which the MP4 encoder's 8-pixel blocks divide); ``colors`` is the
    GIF's palette size (fewer colors, a smaller file)."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in FORMATS:
        raise InputError(f"{target}: the figure must end in {', '.join(FORMATS)}")
    if suffix == ".mp4" and not ffmpeg_available():
        target, suffix = target.with_suffix(".png"), ".png"
    plt = pyplot()
    figure, axes = _axes(result, surface)
    lines = _lines(result, axes, surface)
    steps = len(result.runs[0].path) - 1
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        if suffix == ".png":
            _show_until(lines, steps, surface)
            figure.savefig(target, dpi=dpi or 110)
            return target
        figure.set_dpi(dpi or ANIMATION_DPI)
        shown = frame_steps(steps, frames)
        caption = (
            axes.text2D(0.02, 0.02, "", transform=axes.transAxes)
            if surface
            else axes.text(0.02, 0.02, "", transform=axes.transAxes)
        )
        frames_rgb = _frames(figure, axes, lines, shown, caption, surface)
        if suffix == ".gif":
            _write_gif(frames_rgb, target, fps, validate.positive_int(colors, "colors"))
        else:
            _write_mp4(frames_rgb, target, fps, figure)
        return target
    finally:
        plt.close(figure)
