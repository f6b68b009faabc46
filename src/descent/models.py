"""Small models for the lecture's image classification, and the initialization schemes whose
effect on training it shows (a bad scale stalls learning)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from descent import validate
from descent.errors import InputError


class SoftmaxRegression(nn.Module):
    """Multinomial logistic regression: logits = W x + b (softmax lives in the loss)."""

    def __init__(self, in_features: int, classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


#: Activations an MLP can use, by name (the report recognizes these modules and more).
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "selu": nn.SELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "mish": nn.Mish,
    "softplus": nn.Softplus,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def activation_name(name: str) -> str:
    """The canonical name of an activation ("ReLU", "leaky-relu" → "relu", "leaky_relu")."""
    return validate.choice(name, "activation", ACTIVATIONS)


class MLP(nn.Module):
    """Fully connected layers with an activation between them (ReLU unless told otherwise).

    The hidden sizes are ``hidden``, or ``depth`` layers of ``width`` units when either is given
    (the lecture's deep network: ``MLP(500, 10, depth=10, width=500, activation="tanh")``).
    """

    def __init__(
        self,
        in_features: int,
        classes: int,
        hidden: Sequence[int] = (100,),
        dropout: float = 0.0,
        *,
        depth: int | None = None,
        width: int | None = None,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise InputError(f"dropout must be in [0, 1), got {dropout!r}")
        if depth is not None or width is not None:
            layers_deep = validate.positive_int(depth if depth is not None else 1, "depth")
            units = validate.positive_int(width if width is not None else 100, "width")
            hidden = (units,) * layers_deep
        self.activation = activation_name(activation)
        layers: list[nn.Module] = []
        size_in = in_features
        for size in hidden:
            if size < 1:
                raise InputError(f"hidden layer sizes must be ≥ 1, got {list(hidden)}")
            layers += [nn.Linear(size_in, size), ACTIVATIONS[self.activation]()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            size_in = size
        layers.append(nn.Linear(size_in, classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.flatten(1))


class SmallCNN(nn.Module):
    """Two 3×3 convolutions with ReLU and 2×2 max-pooling, then a linear classifier.

    For (C, H, W) images: 8×8 digits, 28×28 MNIST, 3×32×32 CIFAR-10.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        classes: int,
        channels: Sequence[int] = (32, 64),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(image_shape) != 3:
            raise ValueError(f"image_shape must be (channels, height, width), got {image_shape!r}")
        in_channels, height, width = image_shape
        layers: list[nn.Module] = []
        for out_channels in channels:
            layers += [
                nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            in_channels = out_channels
            height, width = height // 2, width // 2
        if height < 1 or width < 1:
            raise ValueError(
                f"images of shape {tuple(image_shape)} are too small for "
                f"{len(channels)} pooling layers"
            )
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(in_channels * height * width, classes)
        self.image_shape = tuple(image_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(len(x), *self.image_shape)
        return self.classifier(self.dropout(self.features(x).flatten(1)))


#: Every initialization scheme, by its canonical name. "normal" and "uniform" take a parameter
#: ("normal:0.01" is N(0, 0.01²), "uniform:0.05" is U(−0.05, 0.05)).
INITIALIZATIONS = (
    "default",
    "zeros",
    "normal",
    "uniform",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "orthogonal",
    "lsuv",
)
#: Older spellings still accepted (configs written before the schemes were split by distribution).
INIT_ALIASES = {"xavier": "xavier_normal", "kaiming": "kaiming_normal"}
#: The layers an initialization touches.
WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class Initialization:
    """A parsed initialization scheme: its canonical name and, for normal and uniform, the
    parameter (the standard deviation, the bound). ``str()`` gives the spelling it parses from."""

    scheme: str
    value: float | None = None

    def __str__(self) -> str:
        return self.scheme if self.value is None else f"{self.scheme}:{self.value:g}"


def _accepted() -> str:
    return ", ".join(
        f"{name}:STD" if name == "normal" else f"{name}:A" if name == "uniform" else name
        for name in INITIALIZATIONS
    )


def parse_init(spec: str | Initialization, std: float | None = None) -> Initialization:
    """The one parser of initialization names: ``"xavier_normal"``, ``"normal:0.01"``,
    ``"uniform:0.05"``, ``"kaiming"`` (an alias of kaiming_normal), …

    ``std`` is the standard deviation of a bare ``"normal"`` (the older spelling, with the
    deviation given apart); ``"normal:STD"`` carries its own.
    """
    if isinstance(spec, Initialization):
        return spec
    if not isinstance(spec, str):
        raise InputError(f"unknown initialization {spec!r}; accepted: {_accepted()}")
    name, colon, parameter = spec.strip().partition(":")
    table = {validate.normalize_name(key): key for key in INITIALIZATIONS}
    table.update({validate.normalize_name(k): v for k, v in INIT_ALIASES.items()})
    scheme = table.get(validate.normalize_name(name))
    if scheme is None:
        raise InputError(f"unknown initialization {spec!r}; accepted: {_accepted()}")
    if scheme not in ("normal", "uniform"):
        if colon:
            raise InputError(f"initialization {scheme} takes no parameter, got {spec!r}")
        return Initialization(scheme)
    what = "standard deviation" if scheme == "normal" else "bound"
    if not colon and scheme == "normal" and std is not None:
        parameter = repr(std)
    elif not colon:
        raise InputError(f"initialization {scheme} needs its {what}: {scheme}:VALUE, got {spec!r}")
    try:
        value = float(parameter)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise InputError(
            f"the {what} of initialization {scheme} must be a finite number > 0, got {spec!r}"
        )
    return Initialization(scheme, value)


def initialize(
    model: nn.Module,
    scheme: str | Initialization = "default",
    std: float = 0.01,
    generator: torch.Generator | None = None,
    inputs: torch.Tensor | None = None,
) -> nn.Module:
    """Re-initialize every Linear and Conv layer in place (biases 0 unless "default").

    - "default": torch's own (Kaiming-uniform with a = √5, so Var W = 1/(3 fan_in)).
    - "zeros": all weights and biases 0 (every unit of a layer stays identical: symmetry is
      never broken, the lecture's cautionary case).
    - "normal:STD": W ~ N(0, STD²) (a bare "normal" uses ``std``); "uniform:A": W ~ U(−A, A).
    - "xavier_normal" / "xavier_uniform" (Glorot & Bengio 2010): Var W = 2/(fan_in + fan_out),
      for tanh and sigmoid layers (the uniform bound is √(6/(fan_in + fan_out))).
    - "kaiming_normal" / "kaiming_uniform" (He et al. 2015): Var W = 2/fan_in, for ReLU layers.
    - "orthogonal" (Saxe et al. 2014): a (semi-)orthogonal matrix, rows of norm 1.
    - "lsuv" (Mishkin & Matas 2016): orthogonal, then each layer scaled until its output variance
      is 1 on ``inputs`` (a batch is required); see :func:`descent.diagnose.lsuv`.

    The older names "xavier" and "kaiming" mean the normal variants.
    """
    init = parse_init(scheme, std=std)
    if init.scheme == "lsuv":
        if inputs is None:
            raise InputError("initialization lsuv needs a batch of inputs, got none")
        from descent.diagnose.init import lsuv

        lsuv(model, inputs, generator=generator, report=False)
        return model
    for layer in model.modules():
        if not isinstance(layer, WEIGHT_LAYERS):
            continue
        with torch.no_grad():
            if init.scheme == "default":
                layer.reset_parameters()
                continue
            _initialize_weight(layer.weight, init, generator)
            if layer.bias is not None:
                layer.bias.zero_()
    return model


def _initialize_weight(
    weight: torch.Tensor, init: Initialization, generator: torch.Generator | None
) -> None:
    value = init.value or 0.0
    if init.scheme == "zeros":
        weight.zero_()
    elif init.scheme == "normal":
        nn.init.normal_(weight, 0.0, value, generator=generator)
    elif init.scheme == "uniform":
        nn.init.uniform_(weight, -value, value, generator=generator)
    elif init.scheme == "xavier_normal":
        nn.init.xavier_normal_(weight, generator=generator)
    elif init.scheme == "xavier_uniform":
        nn.init.xavier_uniform_(weight, generator=generator)
    elif init.scheme == "kaiming_normal":
        nn.init.kaiming_normal_(weight, nonlinearity="relu", generator=generator)
    elif init.scheme == "kaiming_uniform":
        nn.init.kaiming_uniform_(weight, nonlinearity="relu", generator=generator)
    elif init.scheme == "orthogonal":
        nn.init.orthogonal_(weight, generator=generator)
    else:  # pragma: no cover - parse_init accepts nothing else
        raise AssertionError(init.scheme)


__all__ = [
    "ACTIVATIONS",
    "INITIALIZATIONS",
    "MLP",
    "Initialization",
    "SmallCNN",
    "SoftmaxRegression",
    "initialize",
    "parse_init",
]
