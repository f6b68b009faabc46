"""Both kink recorders, the private aten-level one (the default after its self-test) and the public
torch-function fallback (``DESCENT_PUBLIC_TORCH=1``), flag the same kinks."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from descent.gradcheck import check, kinks
from descent.optim import _compat
from tests.gradcheck.test_check import relu_net_at_a_kink


@pytest.fixture(params=[False, True], ids=["dispatch", "public"])
def public(request: pytest.FixtureRequest):
    with _compat.force_public(request.param):
        yield request.param


def test_the_private_recorder_passes_its_self_test_on_this_torch() -> None:
    assert kinks._dispatch_recorder_works()
    with _compat.force_public(False):
        assert isinstance(kinks.branch_recorder(), kinks._DispatchRecorder)
    with _compat.force_public(True):
        assert isinstance(kinks.branch_recorder(), kinks._FunctionRecorder)


def test_a_relu_network_at_a_kink(public: bool) -> None:
    net, inputs, targets = relu_net_at_a_kink()
    result = check(net, (inputs, targets), loss=F.mse_loss)
    first_layer = {r.name: r for r in result.tensors}["0.weight"]
    assert {c.index for c in first_layer.coordinates if c.kink} == {(0, 0), (0, 1)}
    assert result.passed


@pytest.mark.parametrize(
    "fn",
    [
        lambda v: v.abs().sum(),
        lambda v: v.max(),
        lambda v: torch.max(v, dim=0).values,
        lambda v: v.clamp(min=1.0).sum(),
        lambda v: torch.maximum(v, torch.ones_like(v)).sum(),
        lambda v: F.leaky_relu(v, 0.1).sum(),
        lambda v: F.hardtanh(v - 1.0).sum(),
        lambda v: F.max_pool2d(v.reshape(1, 1, 2, 2), 2).sum(),
    ],
    ids=["abs", "max", "max-dim", "clamp", "maximum", "leaky-relu", "hardtanh", "max-pool"],
)
def test_piecewise_functions_are_flagged_at_their_kinks(public: bool, fn) -> None:
    x = torch.tensor([0.0, 1.0, 1.0, -2.0], dtype=torch.float64)
    result = check(fn, (x,))
    assert result.tensors[0].kinks >= 1
    assert result.passed


def test_smooth_functions_have_no_kinks(public: bool) -> None:
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    result = check(net, (torch.randn(5, 3), torch.randn(5, 1)), loss=F.mse_loss)
    assert sum(r.kinks for r in result.tensors) == 0
    assert result.passed
