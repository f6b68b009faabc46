"""The step under torch.compile: every rule takes its foreach formulation there (no ctypes C
kernel, no private fused call) with its step count read from the device, traces without a graph
break, equals the eager fast path, and compiles at most twice (the first step, which creates the
state, and the rest) before reusing its graph for every later update.

All rules are compiled with the ``aot_eager`` backend (dynamo + functionalization, the stage where
torch's private fused calls failed, without inductor's code generation, which is slow on a small
CPU); Momentum and Nesterov (a C-kernel rule in eager mode on CPU) and Adam also go through the
default inductor backend.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend

from descent.optim import OPTIMIZERS


def _run(
    name: str, backend: str, steps: int = 20, fullgraph: bool = True
) -> tuple[float, int, int]:
    """(largest difference compiled − eager, frames compiled in the first two updates, frames
    compiled in all)."""
    torch._dynamo.reset()
    generator = torch.Generator().manual_seed(0)
    eager_params = [torch.randn(5, 3, generator=generator), torch.randn(4, generator=generator)]
    compiled_params = [p.clone() for p in eager_params]
    cls = OPTIMIZERS[name]
    eager, compiled = cls(eager_params, lr=0.01), cls(compiled_params, lr=0.01)
    counter = CompileCounterWithBackend(backend)

    @torch.compile(backend=counter, fullgraph=fullgraph)  # fullgraph: a graph break is an error
    def compiled_step() -> None:
        compiled.step()

    warm = 0
    for step in range(steps):
        for e, c in zip(eager_params, compiled_params, strict=True):
            grad = torch.randn(e.shape, generator=generator)
            e.grad, c.grad = grad.clone(), grad.clone()
        eager.step()
        compiled_step()
        if step == 1:
            warm = counter.frame_count
    pairs = zip(eager_params, compiled_params, strict=True)
    error = max((e - c).abs().max().item() for e, c in pairs)
    return error, warm, counter.frame_count


@pytest.fixture(autouse=True)
def _reset_dynamo() -> Iterator[None]:
    # Schedule-Free recompiles at every update (below): let all 20 be compiled, not run eagerly.
    with torch._dynamo.config.patch(recompile_limit=24):
        yield
    torch._dynamo.reset()


# Prodigy's d is a host scalar estimated from two sums read back each step, and SOAP refreshes
# its eigenbasis every f steps (a branch on the step count): fullgraph fails.
HOST_SCALARS = {"prodigy", "soap"}
# Schedule-Free's average weight cₜ is a host float of the group, new at every update.
HOST_GROUP_FLOATS = {"schedule_free_adamw", "schedule_free_sgd"}


def _every_rule(failing: set[str], reason: str) -> list[object]:
    """Every rule's name, those in ``failing`` marked as expected (strictly) to fail."""
    mark = pytest.mark.xfail(reason=reason, strict=True)
    return [
        pytest.param(name, marks=mark) if name in failing else name for name in sorted(OPTIMIZERS)
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", _every_rule(HOST_SCALARS, "branches on values read back to the host")
)
def test_compiled_step_equals_eager_step(name: str) -> None:
    error, _, frames = _run(name, "aot_eager")
    assert frames >= 1  # the updates went through the compiler (fullgraph: no eager fallback)
    assert error <= 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(HOST_SCALARS))
def test_rules_that_read_the_host_compile_with_graph_breaks(name: str) -> None:
    """Prodigy and SOAP cannot be one graph, but ``torch.compile(opt.step)`` still works the way
    torch allows (graph breaks where they read the host) and equals the eager step."""
    error, _, frames = _run(name, "aot_eager", fullgraph=False)
    assert frames >= 1
    assert error <= 1e-6


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    _every_rule(
        HOST_SCALARS | HOST_GROUP_FLOATS, "a host value new at every update (docs/optimizers.md)"
    ),
)
def test_compiled_step_is_reused_after_two_updates(name: str) -> None:
    """No recompilation after the second update: the step count and the bias corrections are
    device tensors under compile, so nothing the graph depends on changes from update to update
    (a CompileCounter counts the frames dynamo compiles, restarts of one analysis included)."""
    _, warm, frames = _run(name, "eager")
    assert frames == warm


@pytest.mark.slow
@pytest.mark.parametrize("name", ["momentum", "nesterov", "adam"])
def test_compiled_step_with_inductor(name: str) -> None:
    error, warm, frames = _run(name, "inductor")
    assert frames == warm >= 1
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
