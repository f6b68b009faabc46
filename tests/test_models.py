"""Small models and initialization schemes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from descent.errors import InputError
from descent.models import MLP, SmallCNN, SoftmaxRegression, initialize


@pytest.mark.parametrize(
    ("model", "batch"),
    [
        (SoftmaxRegression(64, 10), torch.randn(5, 8, 8)),
        (MLP(64, 10, hidden=(32, 16), dropout=0.1), torch.randn(5, 64)),
        (SmallCNN((1, 8, 8), 10), torch.randn(5, 1, 8, 8)),
        (SmallCNN((1, 8, 8), 10), torch.randn(5, 64)),  # flat rows are reshaped
        (SmallCNN((3, 32, 32), 10), torch.randn(2, 3, 32, 32)),
    ],
)
def test_output_shapes(model: torch.nn.Module, batch: torch.Tensor) -> None:
    assert model(batch).shape == (len(batch), 10)


def test_initialization_schemes() -> None:
    model = MLP(20, 3, hidden=(50,))
    initialize(model, "zeros")
    assert all(p.detach().abs().sum().item() == 0 for p in model.parameters())
    initialize(model, "normal", std=0.01, generator=torch.Generator().manual_seed(0))
    weight = model.layers[0].weight.detach()
    assert 0.008 < float(weight.std()) < 0.012
    assert model.layers[0].bias.detach().abs().sum().item() == 0
    initialize(model, "kaiming", generator=torch.Generator().manual_seed(0))
    assert float(weight.std()) == pytest.approx((2 / 20) ** 0.5, rel=0.15)
    initialize(model, "xavier", generator=torch.Generator().manual_seed(0))
    assert float(weight.std()) == pytest.approx((2 / 70) ** 0.5, rel=0.15)


def test_the_initializations_follow_their_formulas() -> None:
    import math

    from descent.models import parse_init

    layer = torch.nn.Linear(400, 300)
    model = torch.nn.Sequential(layer)
    generator = torch.Generator().manual_seed(0)
    expected_std = {
        "normal:0.05": 0.05,
        "uniform:0.3": 0.3 / math.sqrt(3),
        "xavier_normal": math.sqrt(2 / 700),
        "xavier_uniform": math.sqrt(2 / 700),
        "kaiming_normal": math.sqrt(2 / 400),
        "kaiming_uniform": math.sqrt(2 / 400),
    }
    for scheme, std in expected_std.items():
        initialize(model, scheme, generator=generator)
        assert float(layer.weight.detach().std()) == pytest.approx(std, rel=0.02), scheme
        assert float(layer.bias.detach().abs().max()) == 0.0
    initialize(model, "uniform:0.3", generator=generator)
    assert float(layer.weight.detach().abs().max()) <= 0.3
    initialize(model, "orthogonal", generator=generator)
    rows = layer.weight.detach()
    assert torch.allclose(rows @ rows.T, torch.eye(300), atol=1e-5)
    # One parser: spellings, aliases and the older bare "normal" with its std apart.
    assert str(parse_init("Xavier-Normal")) == "xavier_normal"
    assert str(parse_init("kaiming")) == "kaiming_normal"
    assert parse_init("normal", std=0.2).value == 0.2
    assert str(parse_init("normal:1e-2")) == "normal:0.01"


def _initializing(spec: str) -> Callable[[], object]:
    return lambda: initialize(MLP(4, 2), spec)


#: Every refusal of a model's or an initialization's arguments: (the call, what it raises, the
#: message it matches). InputError is descent's ValueError for bad input.
BAD_ARGUMENTS = {
    "unknown scheme": (_initializing("he"), InputError, "unknown initialization 'he'"),
    "std 0": (_initializing("normal:0"), InputError, "must be a finite number > 0, got 'normal:0'"),
    "nan std": (_initializing("normal:nan"), InputError, "must be a finite number > 0"),
    "uniform's bound": (_initializing("uniform"), InputError, "needs its bound"),
    "parameter of xavier": (_initializing("xavier_normal:2"), InputError, "takes no parameter"),
    "lsuv without a batch": (_initializing("lsuv"), InputError, "lsuv needs a batch"),
    "depth 0": (lambda: MLP(4, 2, depth=0), InputError, "depth must be a positive integer, got 0"),
    "activation": (lambda: MLP(4, 2, activation="swish2"), InputError, "activation must be one of"),
    "dropout 1": (lambda: MLP(4, 2, dropout=1.0), ValueError, "dropout"),
    "image too small": (lambda: SmallCNN((1, 2, 2), 10), ValueError, "too small"),
}


@pytest.mark.parametrize("case", list(BAD_ARGUMENTS))
def test_bad_arguments_are_refused(case: str) -> None:
    call, error, message = BAD_ARGUMENTS[case]
    with pytest.raises(error, match=message):
        call()


def test_mlp_takes_its_depth_width_and_activation() -> None:
    model = MLP(8, 3, depth=3, width=5, activation="GELU")
    assert [type(m).__name__ for m in model.layers] == [
        "Linear",
        "GELU",
        "Linear",
        "GELU",
        "Linear",
        "GELU",
        "Linear",
    ]


def test_run_config_takes_every_initialization_and_the_old_names() -> None:
    from descent.train.config import load_config

    for name in ("default", "zeros", "normal", "xavier", "kaiming", "normal:0.1", "lsuv"):
        assert load_config(init=name).init == name
    assert load_config(activation="Tanh").activation == "tanh"
    with pytest.raises(ValueError, match="init: unknown initialization 'glorot'"):
        load_config(init="glorot")
    with pytest.raises(ValueError, match="diagnose_every"):
        load_config(diagnose_every=-1)
