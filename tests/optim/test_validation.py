"""Bad hyperparameters fail at construction with the argument's name and accepted range."""

from __future__ import annotations

import math

import pytest
import torch

from descent import optim


def params() -> list[torch.Tensor]:
    return [torch.zeros(2, requires_grad=True)]


@pytest.mark.parametrize("name", list(optim.OPTIMIZERS))
@pytest.mark.parametrize("lr", [-0.1, math.nan, math.inf, "fast"])
def test_bad_learning_rate(name: str, lr: object) -> None:
    with pytest.raises(ValueError, match="lr"):
        optim.create(name, params(), lr=lr)


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("adam", {"betas": (1.0, 0.999)}, r"betas\[0\].*\[0, 1\)"),
        ("adam", {"betas": (0.9, -0.1)}, r"betas\[1\].*\[0, 1\)"),
        ("adam", {"betas": (0.9,)}, "pair"),
        ("nadam", {"betas": (0.9, 1.5)}, r"betas\[1\]"),
        ("adam", {"eps": 0.0}, r"eps.*> 0"),
        ("rmsprop", {"eps": -1e-8}, r"eps.*> 0"),
        ("adagrad", {"eps": 0}, r"eps.*> 0"),
        ("adadelta", {"rho": 1.0}, r"rho.*\[0, 1\)"),
        ("rmsprop", {"rho": -0.5}, r"rho.*\[0, 1\)"),
        ("momentum", {"momentum": 1.2}, r"momentum.*\[0, 1\)"),
        ("sgd", {"weight_decay": -1.0}, r"weight_decay.*≥ 0"),
        ("adagrad", {"initial_accumulator_value": -0.1}, "initial_accumulator_value"),
        ("adam", {"maximize": "yes"}, "maximize"),
        ("adam", {"impl": "turbo"}, "impl"),
    ],
)
def test_bad_hyperparameter(name: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        optim.create(name, params(), **kwargs)


def test_unknown_argument_names_it_and_lists_accepted() -> None:
    # By name (a configuration): the accepted list; the class itself: Python's own TypeError.
    with pytest.raises(TypeError, match=r"'beta1'.*accepted: lr, betas, eps"):
        optim.create("adam", params(), beta1=0.9)
    with pytest.raises(TypeError, match=r"'beta1'"):
        optim.Adam(params(), beta1=0.9)


def test_unknown_optimizer_name() -> None:
    with pytest.raises(ValueError, match=r"optimizer must be one of sgd, momentum.*got 'adamm'"):
        optim.create("adamm", params())


def test_schedule_that_goes_negative_fails_at_that_update() -> None:
    x = torch.ones(1, requires_grad=True)
    opt = optim.SGD([x], lr=lambda n: 0.1 - 0.1 * n)
    x.grad = torch.ones(1)
    opt.step()
    opt.step()  # lr = 0 is allowed
    with pytest.raises(ValueError, match="update 2"):
        opt.step()


def test_sparse_gradients_are_refused() -> None:
    embedding = torch.nn.Embedding(10, 3, sparse=True)
    opt = optim.Adam(embedding.parameters())
    embedding(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(ValueError, match="sparse"):
        opt.step()
