"""The step under torch.compile: every rule takes its foreach formulation there (no ctypes C
kernel, no private fused call), traces without a graph break, and equals the eager fast path.

All rules are compiled with the ``aot_eager`` backend (dynamo + functionalization, the stage where
torch's private fused calls failed, without inductor's code generation, which is slow on a small
CPU); Momentum and Nesterov (a C-kernel rule in eager mode on CPU) also go through the default
inductor backend.

descent keeps its step counts as Python numbers (host mirrors, so a GPU step never syncs), so
dynamo specializes on them and recompiles once per update for the rules that count steps (a known
limit, see docs/optimizers.md; SGD, Momentum and Nesterov compile once and reuse the graph);
the tests raise the recompile limit so that all 20 updates are compiled, with ``fullgraph=True`` so
that a graph break fails. That costs a compilation per update: every test here is slow-marked.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend

from descent.optim import OPTIMIZERS


def _run(name: str, backend: str, steps: int = 20) -> tuple[float, int]:
    torch._dynamo.reset()
    generator = torch.Generator().manual_seed(0)
    eager_params = [torch.randn(5, 3, generator=generator), torch.randn(4, generator=generator)]
    compiled_params = [p.clone() for p in eager_params]
    cls = OPTIMIZERS[name]
    eager, compiled = cls(eager_params, lr=0.01), cls(compiled_params, lr=0.01)
    counter = CompileCounterWithBackend(backend)
    torch._dynamo.config.recompile_limit = steps + 4  # restored by the fixture below

    @torch.compile(backend=counter, fullgraph=True)  # fullgraph: a graph break is an error
    def compiled_step() -> None:
        compiled.step()

    for _ in range(steps):
        for e, c in zip(eager_params, compiled_params, strict=True):
            grad = torch.randn(e.shape, generator=generator)
            e.grad, c.grad = grad.clone(), grad.clone()
        eager.step()
        compiled_step()
    pairs = zip(eager_params, compiled_params, strict=True)
    error = max((e - c).abs().max().item() for e, c in pairs)
    return error, counter.frame_count


@pytest.fixture(autouse=True)
def _restore_dynamo_config() -> Iterator[None]:
    with torch._dynamo.config.patch(recompile_limit=torch._dynamo.config.recompile_limit):
        yield
    torch._dynamo.reset()


# Prodigy's d is a host scalar estimated from two sums read back each step: fullgraph fails.
HOST_SCALARS = {"prodigy"}


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            name,
            marks=pytest.mark.xfail(
                reason="reads two sums back to the host each step", strict=True
            ),
        )
        if name in HOST_SCALARS
        else name
        for name in sorted(OPTIMIZERS)
    ],
)
def test_compiled_step_equals_eager_step(name: str) -> None:
    error, frames = _run(name, "aot_eager")
    assert frames >= 1  # the updates went through the compiler (fullgraph: no eager fallback)
    assert error <= 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("name", ["momentum", "nesterov"])
def test_compiled_step_with_inductor(name: str) -> None:
    error, frames = _run(name, "inductor")
    assert frames >= 1
    assert error <= 1e-6


def test_compiled_path_is_the_foreach_formulation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under tracing the fast path (C kernel, fused call) is never entered."""
    torch._dynamo.reset()
    params = [torch.randn(3)]
    opt = OPTIMIZERS["rmsprop"](params, lr=0.01)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the fast path ran under torch.compile")

    monkeypatch.setattr(opt, "_fast_update", refuse)
    params[0].grad = torch.ones(3)
    torch.compile(opt.step, backend="eager", fullgraph=True)()
    assert torch.isfinite(params[0]).all()
