"""descent's update rules: torch.optim.Optimizer subclasses with the lecture's formulas as defaults.

Each rule has a pure reference step (``*_reference``: one tensor, the formula line by line) and a
fast multi-tensor path (the default, ``impl="fast"``) that equals it. Any rule takes a float or a
schedule (a callable of the 0-based update number) as its learning rate.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from descent.optim.adam import (
    Adam,
    AdaMax,
    AdamW,
    AMSGrad,
    Nadam,
    adam_reference,
    adamax_reference,
    amsgrad_reference,
    nadam_reference,
)
from descent.optim.adaptive import (
    Adadelta,
    Adagrad,
    RMSprop,
    adadelta_reference,
    adagrad_reference,
    rmsprop_reference,
)
from descent.optim.base import DescentOptimizer, UnknownArgumentError
from descent.optim.sgd import (
    SGD,
    Momentum,
    Nesterov,
    momentum_reference,
    nesterov_reference,
    sgd_reference,
)

#: every rule by the name the CLI, configs and :func:`create` use
OPTIMIZERS: dict[str, type[DescentOptimizer]] = {
    "sgd": SGD,
    "momentum": Momentum,
    "nesterov": Nesterov,
    "adagrad": Adagrad,
    "adadelta": Adadelta,
    "rmsprop": RMSprop,
    "adam": Adam,
    "adamax": AdaMax,
    "nadam": Nadam,
    "amsgrad": AMSGrad,
    "adamw": AdamW,
}


def create(name: str, params: Iterable[Any], **hyperparameters: Any) -> DescentOptimizer:
    """Build an update rule by name: ``create("adam", model.parameters(), lr=1e-3)``."""
    key = name.lower().replace("-", "").replace("_", "")
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; accepted: {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[key](params, **hyperparameters)


__all__ = [
    "OPTIMIZERS",
    "SGD",
    "AMSGrad",
    "AdaMax",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "DescentOptimizer",
    "Momentum",
    "Nadam",
    "Nesterov",
    "RMSprop",
    "UnknownArgumentError",
    "adadelta_reference",
    "adagrad_reference",
    "adam_reference",
    "adamax_reference",
    "amsgrad_reference",
    "create",
    "momentum_reference",
    "nadam_reference",
    "nesterov_reference",
    "rmsprop_reference",
    "sgd_reference",
]
