"""What the Trainer writes to TensorBoard, and how often: the logging options (shared by the Trainer
and RunConfig), the event writer, and the first layer's weights as an image grid."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import Tensor, nn

from descent import validate


class LogOptions(BaseModel):
    """What goes to TensorBoard and how often (in optimizer steps).

    Scalars (train loss, learning rate, gradient norm) every ``scalars_every`` steps; these are
    also the steps at which the divergence guard looks at the loss (with the end of every epoch),
    since reading a value from the device is a host synchronization the other steps avoid. The
    update-to-weight ratio per layer every ``ratios_every`` steps (0: off); histograms of weights,
    gradients and activations every ``histograms_every`` steps (0: off, they cost); the first
    layer's weights as an image grid every epoch when the first layer has an image shape
    (``weight_images``). Epoch metrics (train/val loss and every metric) always.

    One model for the Trainer and for RunConfig's ``log:`` section.
    """

    model_config = ConfigDict(extra="forbid")

    scalars_every: int = Field(10, ge=1)
    ratios_every: int = Field(50, ge=0)
    histograms_every: int = Field(0, ge=0)
    weight_images: bool = True

    @field_validator("scalars_every", "ratios_every", "histograms_every", mode="before")
    @classmethod
    def _integers(cls, value: Any, info: Any) -> Any:
        return strict_int(value, info)

    @field_validator("weight_images", mode="before")
    @classmethod
    def _flag(cls, value: Any) -> bool:
        return validate.flag(value, "weight_images")  # 1 or "yes" is not read as True


def strict_int(value: Any, info: Any) -> Any:
    """Integers stay integers: ``epochs: true`` or ``epochs: 2.5`` is refused rather than read
    as 1 or 2 (pydantic's lax mode would convert them). A pydantic "before" validator."""
    if value is None:
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{info.field_name} must be an integer, got {value!r}")
    return value


def image_grid(
    weight: Tensor, image_shape: Sequence[int] | None, padding: int = 1
) -> Tensor | None:
    """A (3, H, W) grid in [0, 1] with one tile per unit of a first layer, or None when the weights
    are not images.

    Conv2d weights (out, in, kh, kw) give one tile per filter (RGB when in = 3, else the mean over
    input channels). Linear weights (out, in) give one tile per unit only when ``image_shape``
    (C, H, W) is declared and C·H·W = in: a vector of features is not guessed to be an image. Each
    tile is scaled to its own [min, max], so structure shows whatever the weights' scale: smooth,
    clean, diverse features versus noise.
    """
    if weight.dim() == 4:
        tiles = weight if weight.shape[1] == 3 else weight.mean(dim=1, keepdim=True)
    elif (
        weight.dim() == 2 and image_shape is not None and math.prod(image_shape) == weight.shape[1]
    ):
        tiles = weight.reshape(weight.shape[0], *image_shape)
        if tiles.shape[1] not in (1, 3):
            tiles = tiles.mean(dim=1, keepdim=True)
    else:
        return None
    count, channels, height, width = tiles.shape
    low = tiles.amin(dim=(1, 2, 3), keepdim=True)
    high = tiles.amax(dim=(1, 2, 3), keepdim=True)
    tiles = (tiles - low) / (high - low).clamp_min(1e-12)
    if channels == 1:
        tiles = tiles.expand(count, 3, height, width)
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = torch.zeros(
        3, rows * (height + padding) + padding, columns * (width + padding) + padding
    )
    for index in range(count):
        row, column = divmod(index, columns)
        top = padding + row * (height + padding)
        left = padding + column * (width + padding)
        grid[:, top : top + height, left : left + width] = tiles[index]
    return grid


def open_event_writer(logdir: Path, purge_step: int | None = None) -> Any:
    """A TensorBoard ``SummaryWriter`` whose event file sorts after every one already in ``logdir``.

    TensorBoard reads a run's event files in name order, and a name begins with the second the
    file was created: a resumed run that starts within the same second as the file it continues
    would sort before it, and its points would then be purged as those of a restart. Waiting for
    the next second (at most one) keeps the order.
    """
    import time

    from torch.utils.tensorboard import SummaryWriter

    stamps = [
        int(part)
        for path in Path(logdir).glob("events.out.tfevents.*")
        if (part := path.name.split(".")[3]).isdigit()
    ]
    if stamps:
        while int(time.time()) <= max(stamps):
            time.sleep(0.05)
    return SummaryWriter(str(logdir), purge_step=purge_step)


class EventLog:
    """The TensorBoard writer of one run (rank 0 only under data-parallel training)."""

    def __init__(self, logdir: Path, options: LogOptions, purge_step: int) -> None:
        self.options = options
        # Events past the checkpoint's step (written before a crash) are purged on resume.
        self.writer = open_event_writer(logdir, purge_step or None)

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.writer.add_scalar(tag, value, step)

    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        for name, value in values.items():
            self.writer.add_scalar(f"{prefix}/{name}", value, step)

    def ratios(self, model: nn.Module, before: dict[str, Tensor], step: int) -> None:
        """‖Δw‖ / ‖w‖ per parameter: about 1e-3 is healthy; far above, the step is too large."""
        for name, param in model.named_parameters():
            ratio = float((param.detach() - before[name]).norm() / (before[name].norm() + 1e-12))
            self.writer.add_scalar(f"update_to_weight/{name}", ratio, step)

    def histograms(self, model: nn.Module, activations: dict[str, Tensor], step: int) -> None:
        for name, param in model.named_parameters():
            self.writer.add_histogram(f"weights/{name}", param.detach().float(), step)
            if param.grad is not None:
                self.writer.add_histogram(f"gradients/{name}", param.grad.float(), step)
        for name, value in activations.items():
            self.writer.add_histogram(f"activations/{name}", value.float(), step)

    def first_layer(self, model: nn.Module, image_shape: Sequence[int] | None, step: int) -> None:
        """The first layer's weights as a grid of images: one per filter (Conv2d) or per unit (a
        Linear layer on images of a declared shape)."""
        first = next((m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)), None)
        if first is None:
            return
        grid = image_grid(first.weight.detach().float().cpu(), image_shape)
        if grid is not None:
            self.writer.add_image("first_layer_weights", grid, step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def activation_hooks(model: nn.Module, captured: dict[str, Tensor]) -> list[Any]:
    """Forward hooks that keep the outputs of the layers and activations worth a histogram."""
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear | nn.Conv2d | nn.ReLU | nn.Tanh | nn.Sigmoid):

            def hook(_module: nn.Module, _inputs: Any, output: Tensor, name: str = name) -> None:
                captured[name] = output.detach()

            handles.append(module.register_forward_hook(hook))
    return handles
