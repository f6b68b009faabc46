"""The options every descent rule takes besides its own hyperparameters, declared once.

A rule's ``__init__`` ends in ``**options: Unpack[RuleOptions]`` and passes them on to
:class:`~descent.optim.base.DescentOptimizer`, which fills in :data:`OPTIONS` (the defaults), checks
them here, and shows them in the rule's signature. Four are torch's own construction arguments
(docs/optimizers.md, "Options every rule takes"):

- ``foreach``: None (descent's choice), True (the foreach formulation, no kernel), False (torch's
  for-loop implementation: descent's per-tensor reference step).
- ``fused``: None, True (the fast path, for a rule that has a single-pass kernel; refused for the
  others), False (no kernel: the foreach formulation).
- ``capturable``: the foreach formulation with the step count on the device (no host value in the
  step, so a CUDA graph can capture it).
- ``differentiable``: the reference step recorded by autograd, for the rules it can go through.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Literal, TypedDict

import torch

from descent import validate
from descent.errors import InputError

if TYPE_CHECKING:
    from descent.optim.base import DescentOptimizer

Impl = Literal["fast", "reference"]


class RuleOptions(TypedDict, total=False):
    """The keyword arguments every rule takes besides its own hyperparameters (defaults:
    :data:`OPTIONS`; meanings: docs/optimizers.md, "Options every rule takes")."""

    maximize: bool
    impl: Impl
    state_dtype: torch.dtype | None
    stochastic_rounding: bool
    foreach: bool | None
    fused: bool | None
    capturable: bool
    differentiable: bool


#: each shared option and its default (the one place they are declared)
OPTIONS: dict[str, Any] = {
    "maximize": False,
    "impl": "fast",
    "state_dtype": None,
    "stochastic_rounding": False,
    "foreach": None,
    "fused": None,
    "capturable": False,
    "differentiable": False,
}


def hyperparameters(arguments: dict[str, Any]) -> dict[str, Any]:
    """A rule's hyperparameters from its ``__init__``'s ``locals()`` (called first thing, so they
    hold just the arguments): everything but ``self``, ``params`` and the shared ``options``."""
    return {
        name: value
        for name, value in arguments.items()
        if name not in ("self", "params", "options", "__class__")
    }


def show_options_in_signature(cls: type) -> None:
    """Show the shared options in the signature of a rule whose ``__init__`` takes them as
    ``**options`` (for ``help()``, :func:`descent.optim.create` and configuration checks)."""
    init = cls.__dict__.get("__init__")
    if init is None:
        return
    signature = inspect.signature(init)
    parameters = list(signature.parameters.values())
    if not parameters or parameters[-1].kind is not inspect.Parameter.VAR_KEYWORD:
        return
    shared = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
        for name, default in OPTIONS.items()
    ]
    init.__signature__ = signature.replace(parameters=parameters[:-1] + shared)


def check_torch_options(optimizer: DescentOptimizer, group: dict[str, Any]) -> None:
    """torch's foreach/fused/capturable/differentiable where descent honours them; one
    sentence naming what descent does instead where it does not."""
    from descent.optim.base import DescentOptimizer

    for name in ("foreach", "fused"):
        if group[name] is not None:
            validate.flag(group[name], name)
    validate.flag(group["capturable"], "capturable")
    validate.flag(group["differentiable"], "differentiable")
    name = type(optimizer).__name__
    reference = group["impl"] == "reference" or group["foreach"] is False
    if group["fused"] and (reference or group["foreach"] or group["differentiable"]):
        raise InputError(
            "fused=True asks for the single-pass kernel, which excludes foreach=True, "
            "foreach=False, impl='reference' and differentiable=True; pass one of them"
        )
    if group["fused"] and type(optimizer)._fast_update is DescentOptimizer._fast_update:
        raise InputError(
            f"{name} has no fused kernel (its fast path is the foreach formulation); leave "
            "fused unset, or compile the step with torch.compile to fuse it"
        )
    if group["foreach"] and group["impl"] == "reference":
        raise InputError(
            "foreach=True asks for the multi-tensor step and impl='reference' for the "
            "per-tensor formula; pass one of them"
        )
    if group["differentiable"]:
        if not optimizer.supports_differentiable:
            raise InputError(
                f"{name} does not support differentiable=True (autograd cannot go through "
                "its step); differentiate through a rule that does, e.g. Adam or SGD"
            )
        if group["foreach"] or group["capturable"]:
            raise InputError(
                "differentiable=True runs the per-tensor reference step under autograd; it "
                "cannot be combined with foreach=True or capturable=True"
            )
    if group["capturable"]:
        if not optimizer.device_steps:
            raise InputError(
                f"{name} cannot be capturable: each step reads values back to the host; "
                "run it uncaptured"
            )
        if reference or group["fused"]:
            raise InputError(
                "capturable=True runs the foreach formulation with the step count on the "
                "device; it cannot be combined with impl='reference', foreach=False or "
                "fused=True"
            )
