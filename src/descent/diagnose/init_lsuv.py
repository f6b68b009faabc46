"""The remedy that measures: layer-sequential unit-variance initialization (LSUV)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from descent import validate
from descent.diagnose.init_hooks import _model_dtype_device, _untouched
from descent.errors import InputError

if TYPE_CHECKING:
    from descent.diagnose.init import InitReport

# -- the remedy: LSUV ---------------------------------------------------------------------------


class _StopForwardError(Exception):
    """Raised by a hook to end a forward pass once the layer being scaled has run."""


def lsuv(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor | None = None,
    loss: Callable[[Tensor, Tensor], Tensor] | None = None,
    *,
    tol: float = 0.1,
    max_iterations: int = 10,
    generator: torch.Generator | None = None,
    report: bool = True,
) -> InitReport | None:
    """Layer-sequential unit-variance initialization (Mishkin & Matas, "All you need is a good
    init", ICLR 2016, Algorithm 1), in place:

    1. every Linear and Conv layer gets an orthonormal weight matrix (Saxe et al. 2014) and a
       zero bias;
    2. for each such layer L in forward order: run the batch, measure Var(B_L) of L's output,
       W_L ← W_L / √Var(B_L); repeat until |Var(B_L) − 1| < ``tol`` or ``max_iterations``.

    Each forward stops right after layer L (a hook ends it), so the cost is about one forward per
    layer and iteration over the layers up to L. Returns the :func:`init_report` of the result
    (``report=False``: nothing, for use inside :func:`descent.models.initialize`).

    Example::

        >>> report = lsuv(model, batch)   # model is now initialized; report.healthy tells
    """
    from descent.diagnose.init import init_report
    from descent.models import WEIGHT_LAYERS

    validate.positive(tol, "tol")
    validate.positive_int(max_iterations, "max_iterations")
    if not isinstance(inputs, Tensor) or inputs.dim() == 0 or len(inputs) < 2:
        raise InputError("lsuv needs a batch of at least 2 examples as inputs")
    inputs = _model_dtype_device(model, inputs)
    layers = _forward_order(model, inputs, WEIGHT_LAYERS)
    with torch.no_grad():
        for layer in layers:
            nn.init.orthogonal_(layer.weight, generator=generator)
            if layer.bias is not None:
                layer.bias.zero_()
    for layer in layers:
        for _ in range(max_iterations):
            variance = _output_variance(model, layer, inputs)
            if not math.isfinite(variance) or variance <= 0 or abs(variance - 1.0) < tol:
                break
            with torch.no_grad():
                layer.weight.div_(math.sqrt(variance))
    return init_report(model, inputs, targets, loss) if report else None


def _forward_order(model: nn.Module, inputs: Tensor, kinds: tuple[type, ...]) -> list[nn.Module]:
    order: list[nn.Module] = []

    def hook(module: nn.Module, _inputs: Any, _output: Any) -> None:
        if module not in order:
            order.append(module)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)]
    try:
        with _untouched(model), torch.no_grad():
            model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return order


def _output_variance(model: nn.Module, layer: nn.Module, inputs: Tensor) -> float:
    captured: list[Tensor] = []

    def hook(_module: nn.Module, _inputs: Any, output: Tensor) -> None:
        captured.append(output.detach().float().var())
        raise _StopForwardError

    handle = layer.register_forward_hook(hook)
    try:
        with _untouched(model), torch.no_grad():
            model(inputs)
    except _StopForwardError:
        pass
    finally:
        handle.remove()
    return float(captured[0]) if captured else math.nan
