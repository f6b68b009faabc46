"""The guard around torch's private kernels (descent.optim._compat) and the C kernel table."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch

from descent import optim
from descent.optim import _compat, _native
from tests.optim.test_fast_path import CASES, assert_same, trajectory


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_every_rule_with_only_public_torch_equals_the_reference(
    name: str, kwargs: dict[str, Any]
) -> None:
    """With every private torch call replaced by its public formulation (a torch whose private
    kernels changed), each rule and variant still computes its formula."""
    reference = trajectory(name, "reference", dict(kwargs), torch.float64, steps=8)
    with _compat.force_public():
        fast = trajectory(name, "fast", dict(kwargs), torch.float64, steps=8)
    assert_same(fast, reference, 1e-12)


def test_forcing_the_public_path_really_avoids_private_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a private torch kernel was called")

    for name in ("_fused_adam_", "_fused_adamw_", "_fused_sgd_", "_fused_adagrad_"):
        monkeypatch.setattr(torch, name, broken)
    for name in dir(torch):
        if name.startswith("_foreach_"):
            monkeypatch.setattr(torch, name, broken)
    with _compat.force_public():
        for rule in optim.OPTIMIZERS:
            param = torch.ones(5, requires_grad=True)
            opt = optim.create(rule, [param])
            for _ in range(2):  # SOAP's first step only sets up its preconditioner
                param.grad = torch.full((5,), 0.5)
                opt.step()
            assert not torch.equal(param.detach(), torch.ones(5)), rule


def test_a_kernel_that_computes_something_else_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """The self-test catches a fused kernel whose arithmetic changed; the rule then still
    computes its formula (through the foreach path)."""
    real = torch._fused_adam_

    def changed(*args: Any, **kwargs: Any) -> None:
        kwargs["eps"] = kwargs["eps"] * 2  # a silent change of meaning
        real(*args, **kwargs)

    monkeypatch.setattr(torch, "_fused_adam_", changed)
    monkeypatch.setattr(_compat, "_checked", {})
    assert _compat.fused("_fused_adam_", torch.device("cpu")) is None
    assert not _compat.reexpression("amsgrad_lecture", torch.device("cpu"))
    reference = trajectory("amsgrad", "reference", {}, torch.float64, steps=5)
    fast = trajectory("amsgrad", "fast", {}, torch.float64, steps=5)
    assert_same(fast, reference, 1e-12)


def test_a_missing_kernel_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(torch, "_fused_adagrad_")
    monkeypatch.setattr(_compat, "_checked", {})
    assert _compat.fused("_fused_adagrad_", torch.device("cpu")) is None
    reference = trajectory("adagrad", "reference", {}, torch.float64, steps=5)
    fast = trajectory("adagrad", "fast", {}, torch.float64, steps=5)
    assert_same(fast, reference, 1e-12)


def test_installed_torch_passes_every_self_test() -> None:
    """On the pinned torch the fast paths really are the fused kernels (else speed is lost)."""
    cpu = torch.device("cpu")
    for name in ("_fused_adam_", "_fused_adamw_", "_fused_sgd_", "_fused_adagrad_"):
        assert _compat.fused(name, cpu) is not None
    assert _compat.fused("_fused_adam_", cpu, amsgrad=True) is not None
    for name in _compat._REEXPRESSIONS:
        assert _compat.reexpression(name, cpu)
    for name in _compat._FOREACH_SAMPLES:
        assert _compat._passes(f"foreach_{name}", cpu, _compat._foreach_self_test(name))


def _c_prototypes() -> dict[str, list[tuple[str, str]]]:
    source = (Path(_native.__file__).parent / "_kernels.c").read_text()
    entries = source[source.index("#define DEFINE_ENTRIES") :]
    prototypes = {}
    # the exported entries only (the static helpers between them are no kernels)
    for match in re.finditer(r"^ *void (\w+)_##SUFFIX\(([^)]*)\)", entries, re.MULTILINE):
        arguments = []
        for raw in match.group(2).replace("\\", " ").split(","):
            words = raw.replace("*", " * ").split()
            kind = "tensor" if "*" in words else words[0]
            arguments.append((words[-1], kind))
        prototypes[match.group(1)] = arguments
    return prototypes


def test_kernel_table_matches_the_c_prototypes() -> None:
    """ctypes checks no argument; this test checks the one table against the C source."""
    prototypes = _c_prototypes()
    table = {**_native.KERNELS, **_native.TWO_PASS}
    assert set(prototypes) == set(table)
    for name, (tensors, scalars) in table.items():
        expected = [(t, "tensor") for t in tensors] + [("n", "int64_t"), *scalars]
        assert prototypes[name] == expected, name


def test_a_kernel_call_with_a_wrong_argument_name_fails() -> None:
    x = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(TypeError, match="nesterov"):
        _native.run("nesterov", [dict(p=x, g=x, v=x, lr=0.1, momentum=0.9, wd=0.0, sgn=1.0)])
