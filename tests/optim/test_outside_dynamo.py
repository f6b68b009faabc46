"""descent's optimizers skip torch's ``_disable_dynamo`` wrapper until torch._dynamo is imported
(descent.optim._compat.outside_dynamo): a run that never compiles never pays its import."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap

import torch

from descent import optim
from descent.optim import _compat

LIFE_CYCLE = """
import sys, torch
from descent import optim
for rule in {rules!r}:
    params = [torch.zeros(3, 3, requires_grad=True)]
    opt = optim.create(rule, params, lr=0.1)
    params[0].grad = torch.ones(3, 3)
    opt.step()
    opt.zero_grad()
    opt.load_state_dict(opt.state_dict())
print("torch._dynamo" in sys.modules)
"""


def _imports_dynamo(environment: dict[str, str]) -> bool:
    rules = sorted(optim.OPTIMIZERS)
    script = textwrap.dedent(LIFE_CYCLE.format(rules=rules))
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True,
        env={**os.environ, **environment},
    )  # fmt: skip
    return result.stdout.strip().splitlines()[-1] == "True"


def test_no_rule_imports_torch_dynamo() -> None:
    """Construction, a step, zero_grad and a state-dict round trip of every rule, in a fresh
    interpreter: torch._dynamo stays unimported (torch's decorated methods would import it)."""
    assert not _imports_dynamo({"DESCENT_PUBLIC_TORCH": "0"})


def test_the_public_path_keeps_torch_s_decorated_methods() -> None:
    assert _imports_dynamo({"DESCENT_PUBLIC_TORCH": "1"})


def test_once_dynamo_is_imported_the_decorated_method_runs() -> None:
    importlib.import_module("torch._dynamo")  # what torch.compile imports

    calls: list[str] = []
    decorated = torch.optim.Optimizer.zero_grad

    def spy(*args: object, **kwargs: object) -> None:
        calls.append("decorated")
        decorated(*args, **kwargs)

    spy.__wrapped__ = decorated.__wrapped__  # type: ignore[attr-defined]
    zero_grad = _compat.outside_dynamo(spy)
    opt = optim.create("sgd", [torch.zeros(2, requires_grad=True)], lr=0.1)
    zero_grad(opt)
    assert calls == ["decorated"]


def test_a_method_without_wrapped_is_used_as_it_is() -> None:
    def plain(self: object) -> None:
        return None

    assert _compat.outside_dynamo(plain) is plain
