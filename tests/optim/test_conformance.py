"""The conformance matrix: every descent rule where torch's optimizers go (a row per rule, a test
per integration; the compiled step is in test_compiled.py). The table is in docs/optimizers.md."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from descent import optim
from descent.optim import OPTIMIZERS

RULES = sorted(OPTIMIZERS)


def _model(dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).to(dtype)


def _loss(model: nn.Module, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 3, generator=generator).to(next(model.parameters()).dtype)
    return model(x).pow(2).mean()


def _train(model: nn.Module, opt: torch.optim.Optimizer, steps: int, seed: int = 1) -> None:
    for i in range(steps):
        opt.zero_grad()
        _loss(model, seed + i).backward()
        opt.step()


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().double().flatten() for p in model.parameters()])


@pytest.mark.parametrize("name", RULES)
def test_grad_scaler_skipped_step_does_not_advance(name: str) -> None:
    model = _model()
    opt = OPTIMIZERS[name](model.parameters(), lr=lambda t: 0.01 / (1 + t))
    scaler = torch.amp.GradScaler("cpu", init_scale=4.0)
    scaler.scale(_loss(model)).backward()
    scaler.step(opt)
    scaler.update()
    before, step_before = _flat(model), opt.param_groups[0]["step"]
    opt.zero_grad()
    (scaler.scale(_loss(model)) * float("inf")).backward()  # overflow: the step is skipped
    scaler.step(opt)
    scaler.update()
    assert torch.equal(_flat(model), before)
    assert opt.param_groups[0]["step"] == step_before == 1
    assert scaler.get_scale() == 2.0


@pytest.mark.parametrize("name", RULES)
def test_step_lr_sets_the_rate_the_step_uses(name: str) -> None:
    model = _model()
    opt = OPTIMIZERS[name](model.parameters(), lr=0.01)
    twin_model = _model()
    twin = OPTIMIZERS[name](twin_model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.25)
    _train(model, opt, 1)
    _train(twin_model, twin, 1)
    scheduler.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0025)
    twin.param_groups[0]["lr"] = 0.0025  # what the scheduler should have done
    _train(model, opt, 2, seed=3)
    _train(twin_model, twin, 2, seed=3)
    assert torch.equal(_flat(model), _flat(twin_model))


@pytest.mark.parametrize("name", RULES)
def test_one_cycle_lr_matches_torch_sgd_schedule(name: str) -> None:
    model = _model()
    opt = OPTIMIZERS[name](model.parameters(), lr=0.01)
    peer = torch.optim.SGD(_model().parameters(), lr=0.01)
    kwargs: dict[str, Any] = {"max_lr": 0.1, "total_steps": 6, "cycle_momentum": False}
    ours = torch.optim.lr_scheduler.OneCycleLR(opt, **kwargs)
    theirs = torch.optim.lr_scheduler.OneCycleLR(peer, **kwargs)
    for _ in range(5):
        _train(model, opt, 1)
        ours.step()
        theirs.step()
        assert opt.param_groups[0]["lr"] == pytest.approx(peer.param_groups[0]["lr"], rel=1e-12)
    assert torch.isfinite(_flat(model)).all()


@pytest.mark.parametrize("name", RULES)
def test_reduce_lr_on_plateau(name: str) -> None:
    model = _model()
    opt = OPTIMIZERS[name](model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    for metric in (1.0, 2.0, 3.0):  # worse every time: halve after each
        _train(model, opt, 1)
        scheduler.step(metric)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0025)


@pytest.mark.parametrize("name", RULES)
def test_swa_averaged_model_and_swalr(name: str) -> None:
    model = _model()
    opt = OPTIMIZERS[name](model.parameters(), lr=0.01)
    averaged = torch.optim.swa_utils.AveragedModel(model)
    swa_lr = torch.optim.swa_utils.SWALR(opt, swa_lr=0.005, anneal_epochs=1)
    snapshots = []
    for _ in range(3):
        _train(model, opt, 1)
        averaged.update_parameters(model)
        swa_lr.step()
        snapshots.append(_flat(model))
    assert opt.param_groups[0]["lr"] == pytest.approx(0.005)
    expected = torch.stack(snapshots).mean(0)
    assert torch.allclose(_flat(averaged.module), expected, atol=1e-6)


@pytest.mark.parametrize("name", RULES)
def test_state_dict_float32_to_float64_and_back(name: str) -> None:
    """The loaded state is the saved one in the new dtype, and the run continues. (Continuations
    are not compared: Adam's m/√v amplifies float32 rounding to ~1e-3 in 3 steps, torch's too.)"""
    model32 = _model()
    opt32 = OPTIMIZERS[name](model32.parameters(), lr=0.01)
    _train(model32, opt32, 3)
    saved = opt32.state_dict()
    model64 = _model(torch.float64)
    model64.load_state_dict({k: v.double() for k, v in model32.state_dict().items()})
    opt64 = OPTIMIZERS[name](model64.parameters(), lr=0.01)
    opt64.load_state_dict(saved)
    for index, param in enumerate(model64.parameters()):
        for key, value in opt64.state[param].items():
            if key != "step" and value.dim() > 0:
                assert value.dtype == torch.float64
            assert torch.equal(value.double(), saved["state"][index][key].double())
    _train(model64, opt64, 2, seed=10)
    assert torch.isfinite(_flat(model64)).all()
    back = OPTIMIZERS[name](_model().parameters(), lr=0.01)
    back.load_state_dict(opt64.state_dict())
    for state in back.state.values():
        for key, value in state.items():
            if key != "step" and value.dim() > 0:
                assert value.dtype == torch.float32


PEERS: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "adam": (lambda p: optim.Adam(p, lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
    "sgd": (
        lambda p: optim.Momentum(p, lr=0.05, momentum=0.9, lr_in_buffer=False),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
    ),
    "adagrad": (
        lambda p: optim.Adagrad(p, lr=0.1, eps=1e-10, eps_inside_sqrt=False),
        lambda p: torch.optim.Adagrad(p, lr=0.1),
    ),
}


@pytest.mark.parametrize("name", sorted(PEERS))
@pytest.mark.parametrize("direction", ["descent_to_torch", "torch_to_descent"])
def test_state_dict_with_torch(name: str, direction: str) -> None:
    ours, theirs = PEERS[name]
    first, second = (ours, theirs) if direction == "descent_to_torch" else (theirs, ours)
    model = _model()
    opt = first(model.parameters())
    _train(model, opt, 3)
    resumed_model = _model()
    resumed_model.load_state_dict(model.state_dict())
    resumed = second(resumed_model.parameters())
    resumed.load_state_dict(copy.deepcopy(opt.state_dict()))  # as a checkpoint file would
    _train(model, opt, 3, seed=10)
    _train(resumed_model, resumed, 3, seed=10)
    assert torch.allclose(_flat(model), _flat(resumed_model), atol=1e-6)


@pytest.mark.parametrize("name", RULES)
@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad(name: str, set_to_none: bool) -> None:
    model = _model()
    opt = OPTIMIZERS[name](model.parameters(), lr=0.01)
    _train(model, opt, 1)
    opt.zero_grad(set_to_none=set_to_none)
    for p in model.parameters():
        if set_to_none:
            assert p.grad is None
        else:
            assert p.grad is not None
            assert not p.grad.any()


@pytest.mark.parametrize("name", RULES)
def test_add_param_group_mid_training(name: str) -> None:
    model = _model()
    opt = OPTIMIZERS[name](list(model[0].parameters()), lr=0.01)
    _train(model, opt, 2)
    opt.add_param_group({"params": list(model[2].parameters()), "lr": 0.02})
    fresh_model = _model()
    fresh_model[2].load_state_dict(model[2].state_dict())
    fresh = OPTIMIZERS[name](fresh_model[2].parameters(), lr=0.02)
    model[0].requires_grad_(False)  # compare the new group against a fresh optimizer on it
    fresh_model[0].load_state_dict(model[0].state_dict())
    fresh_model[0].requires_grad_(False)
    _train(model, opt, 3, seed=5)
    _train(fresh_model, fresh, 3, seed=5)
    assert torch.allclose(_flat(model[2]), _flat(fresh_model[2]), atol=1e-6)


@pytest.mark.parametrize("name", RULES)
def test_step_hooks(name: str) -> None:
    model = _model()
    opt = OPTIMIZERS[name](model.parameters(), lr=0.01)
    calls: list[str] = []
    opt.register_step_pre_hook(lambda o, a, k: calls.append("pre"))
    opt.register_step_post_hook(lambda o, a, k: calls.append("post"))
    _train(model, opt, 2)
    assert calls == ["pre", "post", "pre", "post"]


@pytest.mark.parametrize("name", RULES)
def test_parameters_that_are_views(name: str) -> None:
    """A transposed (non-contiguous) leaf and a parameter on a slice of a larger tensor move as
    their contiguous copies do."""
    torch.manual_seed(0)
    viewed = [nn.Parameter(torch.randn(6, 4).t()), nn.Parameter(torch.randn(6, 4)[:, 1:3])]
    plain = [nn.Parameter(v.detach().clone().contiguous()) for v in viewed]
    opt_v, opt_p = OPTIMIZERS[name](viewed, lr=0.01), OPTIMIZERS[name](plain, lr=0.01)
    for step in range(3):
        generator = torch.Generator().manual_seed(step)
        for v, p in zip(viewed, plain, strict=True):
            grad = torch.randn(p.shape, generator=generator)
            v.grad, p.grad = grad.clone(), grad.clone()
        opt_v.step()
        opt_p.step()
    for v, p in zip(viewed, plain, strict=True):
        assert torch.allclose(v, p, atol=1e-6)


@pytest.mark.parametrize("name", RULES)
def test_frozen_parameters_stay(name: str) -> None:
    model = _model()
    model[0].weight.requires_grad_(False)
    frozen = model[0].weight.detach().clone()
    opt = OPTIMIZERS[name](model.parameters(), lr=0.01)
    _train(model, opt, 3)
    assert torch.equal(model[0].weight, frozen)
    assert model[0].weight not in opt.state


@pytest.mark.parametrize("name", RULES)
def test_named_parameters(name: str) -> None:
    model = _model()
    named = OPTIMIZERS[name](model.named_parameters(), lr=0.01)
    plain_model = _model()
    plain = OPTIMIZERS[name](plain_model.parameters(), lr=0.01)
    _train(model, named, 3)
    _train(plain_model, plain, 3)
    assert torch.equal(_flat(model), _flat(plain_model))
    assert named.state_dict()["param_groups"][0]["param_names"] == [
        n for n, _ in model.named_parameters()
    ]
