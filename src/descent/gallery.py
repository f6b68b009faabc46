"""The README's gallery, drawn from descent's own code: ``make figures``, which runs

    python -m descent.gallery docs/figures

and writes four figures, each from a fixed seed:

- ``race.gif``: the lecture's seven update rules racing on Beale's function (animated);
- ``schedules.png``: learning-rate schedules on one plot;
- ``linear_fit.png``: a fit over a Fourier basis beside the exact optimum, and its loss J(w) per
  epoch in the three batch modes (full, single, minibatch);
- ``filters.png``: the first-layer filters of the digits CNN, trained a few epochs by the Trainer.

The figures are committed, so together they must stay under :data:`MAX_TOTAL_BYTES`;
:func:`make_gallery` refuses to finish when they do not. ``--quick`` draws the same figures from
tiny settings (a test runs it, so the gallery code cannot rot).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from descent.errors import DescentError

#: Everything the gallery writes, together (the README's figures are committed to git).
MAX_TOTAL_BYTES = 2_000_000
NAMES = ("race.gif", "schedules.png", "linear_fit.png", "filters.png")


@dataclass(frozen=True)
class GallerySettings:
    """How much work each figure does (the defaults draw the README's; :data:`QUICK` a test's)."""

    race_steps: int = 400
    race_frames: int = 60
    race_dpi: int = 80
    race_colors: int = 64
    schedule_steps: int = 300
    fit_epochs: int = 30
    cnn_epochs: int = 4
    dpi: int = 100


QUICK = GallerySettings(
    race_steps=30, race_frames=4, race_dpi=40, schedule_steps=30, fit_epochs=3, cnn_epochs=1, dpi=40
)


def race_figure(target: Path, settings: GallerySettings) -> Path:
    """The seven lecture rules from the same start on Beale, each at its suited rate."""
    from descent.landscapes import DEFAULT_RULES, race
    from descent.landscapes.figures import render

    result = race("beale", rules=DEFAULT_RULES, steps=settings.race_steps)
    return render(
        result,
        target,
        frames=settings.race_frames,
        fps=10,
        dpi=settings.race_dpi,
        colors=settings.race_colors,
    )


def schedules_figure(target: Path, settings: GallerySettings) -> Path:
    """Several schedule families over the same number of updates, on one plot."""
    from descent import schedules

    steps = settings.schedule_steps
    curves = {
        "exponential_decay": schedules.ExponentialDecay(0.1, steps / 6, 0.5),
        "piecewise_constant": schedules.PiecewiseConstantDecay(
            [steps // 3, 2 * steps // 3], [0.1, 0.05, 0.01]
        ),
        "cosine_decay_restarts": schedules.CosineDecayRestarts(0.1, steps / 7, t_mul=2.0),
        "cyclical (triangular2)": schedules.Cyclical(0.01, 0.1, steps / 10, mode="triangular2"),
        "one_cycle": schedules.OneCycle(0.1, steps + 1),
        "warmup + cosine_decay": schedules.Warmup(
            schedules.CosineDecay(0.1, steps - steps // 10), steps // 10
        ),
    }
    from descent.plotting import figure_file

    with figure_file(target, dpi=settings.dpi, figsize=(8, 4.2), layout="constrained") as (
        figure,
        axes,
    ):
        for name, schedule in curves.items():
            axes.plot([schedule(n) for n in range(steps + 1)], label=name, linewidth=1.4)
        axes.set_xlabel("update n")
        axes.set_ylabel("learning rate")
        axes.set_title("descent.schedules on one plot", fontsize=10)
        figure.legend(loc="outside lower center", ncol=3, fontsize=8)
    return target


def linear_fit_figure(target: Path, settings: GallerySettings) -> Path:
    """A Fourier-basis fit of noisy sin(2πx) beside the exact least-squares optimum, and J(w) per
    epoch for each batch mode (the same examples seen, different numbers of updates)."""
    import torch

    from descent.linear import LinearRegressionGD

    generator = torch.Generator().manual_seed(0)
    x = torch.rand(200, 1, generator=generator, dtype=torch.float64)
    y = torch.sin(2 * math.pi * x[:, 0]) + 0.2 * torch.randn(200, generator=generator)
    basis = "fourier:3"
    fits = {
        mode: LinearRegressionGD(
            basis=basis,
            mode=mode,
            max_epochs=settings.fit_epochs,
            tol=0.0,
            random_state=0,
        ).fit(x, y)
        for mode in ("full", "single", "minibatch")
    }
    optimum = fits["full"].fit_report(x, y).optimum_loss
    from descent.plotting import figure_file

    with figure_file(target, 1, 2, dpi=settings.dpi, figsize=(9, 3.6), layout="constrained") as (
        _,
        (left, right),
    ):
        grid = torch.linspace(0, 1, 200, dtype=torch.float64).unsqueeze(1)
        line = grid[:, 0].numpy()
        left.scatter(x[:, 0].numpy(), y.numpy(), s=6, color="0.6", label="data")
        left.plot(line, torch.sin(2 * math.pi * grid[:, 0]).numpy(), "k--", lw=1, label="sin 2πx")
        for mode, fitted in fits.items():
            left.plot(line, torch.as_tensor(fitted.predict(grid)).numpy(), lw=1.4, label=mode)
        left.set_xlabel("x")
        left.set_title(f"fit over {basis} after {settings.fit_epochs} epochs", fontsize=10)
        left.legend(fontsize=8)
        for mode, fitted in fits.items():
            gap = [max(loss - optimum, 1e-10) for loss in fitted.loss_history_]
            right.semilogy(range(len(gap)), gap, label=mode, lw=1.4)
        right.set_xlabel("epoch")
        right.set_ylabel("J(w) − J(w*)  (floored at 1e-10)")
        right.set_title("loss above the exact optimum, per batch mode", fontsize=10)
        right.legend(fontsize=8)
    return target


def filters_figure(target: Path, settings: GallerySettings) -> Path:
    """The first convolution's 3×3 filters of the digits CNN after a few epochs of Adam."""
    import torch

    from descent.data.images import digits
    from descent.models import SmallCNN
    from descent.train import Trainer

    data = digits(seed=0)
    torch.manual_seed(0)
    model = SmallCNN(data.image_shape, len(data.classes), channels=(16, 32))
    trainer = Trainer(
        model, optimizer="adam", lr=3e-3, batch_size=32, epochs=settings.cnn_epochs, device="cpu"
    )
    result = trainer.fit(
        (data.train.images, data.train.labels), (data.validation.images, data.validation.labels)
    )
    filters = model.features[0].weight.detach()[:, 0]
    from descent.plotting import figure_file

    with figure_file(
        target, 2, len(filters) // 2, dpi=settings.dpi, figsize=(8, 2.4), layout="constrained"
    ) as (figure, axes):
        for axis, kernel in zip(axes.flat, filters, strict=True):
            limit = float(kernel.abs().max())
            axis.imshow(kernel.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
            axis.axis("off")
        accuracy = result.final.val["accuracy"]
        figure.suptitle(
            f"digits CNN, first layer after {settings.cnn_epochs} epochs "
            f"(validation accuracy {accuracy:.2f})",
            fontsize=10,
        )
    return target


FIGURES = {
    "race.gif": race_figure,
    "schedules.png": schedules_figure,
    "linear_fit.png": linear_fit_figure,
    "filters.png": filters_figure,
}


def make_gallery(folder: str | Path, settings: GallerySettings = GallerySettings()) -> list[Path]:
    """Write every figure of the gallery into ``folder``; returns their paths.

    Raises :class:`~descent.errors.DescentError` when together they exceed
    :data:`MAX_TOTAL_BYTES` (they are committed: shrink the frames or the dpi)."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    written = [draw(target / name, settings) for name, draw in FIGURES.items()]
    total = sum(path.stat().st_size for path in written)
    if total > MAX_TOTAL_BYTES:
        sizes = ", ".join(f"{path.name} {path.stat().st_size / 1e6:.2f} MB" for path in written)
        raise DescentError(
            f"the gallery is {total / 1e6:.2f} MB, over its {MAX_TOTAL_BYTES / 1e6:.0f} MB "
            f"budget ({sizes})"
        )
    return written


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m descent.gallery", description=__doc__)
    parser.add_argument("folder", nargs="?", default="docs/figures", type=Path)
    parser.add_argument("--quick", action="store_true", help="tiny settings (what a test runs)")
    options = parser.parse_args(argv)
    written = make_gallery(options.folder, QUICK if options.quick else GallerySettings())
    for path in written:
        print(f"{path}  {path.stat().st_size / 1e3:7.1f} kB")
    print(f"total {sum(path.stat().st_size for path in written) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
