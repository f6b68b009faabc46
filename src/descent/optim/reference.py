"""Calling a rule's pure reference function (``descent.optim.*_reference``: one tensor, the
formula line by line) from the shell's per-tensor step, so that a rule's ``_reference_update`` is
one line: which function, which state tensors it takes and returns."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Sequence
from typing import Any

from torch import Tensor

_KEYWORDS: dict[Callable[..., Any], tuple[str, ...]] = {}


def _keywords(function: Callable[..., Any]) -> tuple[str, ...]:
    names = _KEYWORDS.get(function)
    if names is None:
        parameters = inspect.signature(function).parameters.values()
        names = tuple(p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY)
        _KEYWORDS[function] = names
    return names


def apply_reference(
    function: Callable[..., Any],
    group: dict[str, Any],
    param: Tensor,
    grad: Tensor,
    state: dict[str, Any],
    host: dict[str, Any],
    lr: float,
    tensors: Sequence[str],
    *,
    held: Collection[str] | None = None,
    **given: Any,
) -> None:
    """``function(param, grad, *state[tensors], **keywords)``, its results written back into
    ``param`` and ``state[tensors]`` (in that order), then into the host scalars it takes.

    ``held``: the names of ``tensors`` this parameter's state holds under its group's options
    (the rule's ``_state_names``; None: all of them). A name the state does not hold is passed as
    None and its result is not written (a buffer the options leave out, e.g. RMSprop's Ē when not
    centered); one of ``held`` that the state lacks (loaded from another rule, or an option
    turned on after the state was made) raises KeyError naming it, as the fast path's lookup
    does. A host scalar
    (the rule's ``scalar_state``, e.g. Nadam's μ-product) that ``function`` takes as a keyword it
    also returns, after the tensors and in the order of its keywords: each is written to the host
    and to its 0-d state tensor.

    Each keyword-only argument of ``function`` is taken from ``given``, else: ``step`` from the
    host's (already advanced) count, ``lr`` as this update's rate, ``beta1``/``beta2`` from the
    group's ``betas``, a host scalar from the host, anything else from the group's entry of that
    name; one found nowhere keeps its default.
    """
    keywords = {}
    scalars = []
    for name in _keywords(function):
        if name in given:
            keywords[name] = given[name]
        elif name == "step":
            keywords[name] = int(host["step"])
        elif name == "lr":
            keywords[name] = lr
        elif name in ("beta1", "beta2") and "betas" in group:
            keywords[name] = group["betas"][0 if name == "beta1" else 1]
        elif name in host:
            keywords[name] = host[name]
            scalars.append(name)
        elif name in group:
            keywords[name] = group[name]
    for key in tensors if held is None else held:
        if key not in state:
            # As the fast path's state[key] would, but saying which state and why it may lack it.
            raise KeyError(
                f"the optimizer state of a {tuple(param.shape)} parameter has no {key!r}, which "
                f"{getattr(function, '__name__', 'the rule')} needs (a state loaded from another "
                "rule, or saved with other options?)"
            )
    targets = [param, *(state.get(key) for key in tensors)]
    new = function(param, grad, *targets[1:], **keywords)
    results = (new,) if isinstance(new, Tensor) else new
    for target, value in zip(targets, results[: len(targets)], strict=True):
        if target is not None:
            target.copy_(value)
    for name, value in zip(scalars, results[len(targets) :], strict=True):
        host[name] = value
        state[name].fill_(value)
