"""descent's update rules: torch.optim.Optimizer subclasses with the lecture's formulas as defaults.

Each rule has a pure reference step (``*_reference``: one tensor, the formula line by line) and a
fast multi-tensor path (the default, ``impl="fast"``) that equals it. Any rule takes a float or a
schedule (a callable of the 0-based update number) as its learning rate. The formulas, the peers'
conventions and which path runs where are in docs/optimizers.md.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

from descent import validate
from descent.errors import InputError
from descent.optim.adafactor import Adafactor, adafactor_reference
from descent.optim.adam import Adam, AdamW, AMSGrad, adam_reference, amsgrad_reference
from descent.optim.adamax import AdaMax, adamax_reference
from descent.optim.adaptive import Adadelta, Adagrad, adadelta_reference, adagrad_reference
from descent.optim.base import DescentOptimizer
from descent.optim.lamb import LAMB, lamb_reference
from descent.optim.lars import LARS, lars_reference
from descent.optim.lion import Lion, lion_reference
from descent.optim.muon import Muon, muon_reference
from descent.optim.nadam import Nadam, nadam_reference
from descent.optim.prodigy import Prodigy, prodigy_reference
from descent.optim.radam import RAdam, radam_reference
from descent.optim.rmsprop import RMSprop, rmsprop_reference
from descent.optim.schedule_free import (
    ScheduleFreeAdamW,
    ScheduleFreeSGD,
    schedule_free_reference,
)
from descent.optim.sgd import (
    SGD,
    Momentum,
    Nesterov,
    momentum_reference,
    nesterov_reference,
    sgd_reference,
)
from descent.optim.soap import SOAP, soap_reference

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
    "radam": RAdam,
    "lion": Lion,
    "lamb": LAMB,
    "lars": LARS,
    "schedule_free_sgd": ScheduleFreeSGD,
    "schedule_free_adamw": ScheduleFreeAdamW,
    "prodigy": Prodigy,
    "muon": Muon,
    "adafactor": Adafactor,
    "soap": SOAP,
}


class UnknownArgumentError(InputError, TypeError):
    """:func:`create` was given a hyperparameter the named rule does not take (a configuration
    error, so an :class:`~descent.errors.InputError`; also a TypeError, as Python's own is)."""


def create(name: str, params: Iterable[Any], **hyperparameters: Any) -> DescentOptimizer:
    """Build an update rule by name: ``create("adam", model.parameters(), lr=1e-3)``.

    The name is normalized by :func:`descent.validate.choice` ("Adam", "ada-max" work). Names and
    hyperparameters usually come from a configuration file, so an unknown one is reported with
    the accepted list (the rule classes themselves take plain keyword arguments and let Python
    report a misspelt one).
    """
    key = validate.choice(name, "optimizer", OPTIMIZERS)
    cls = OPTIMIZERS[key]
    accepted = [
        p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "params")
    ]
    unknown = [k for k in hyperparameters if k not in accepted]
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        raise UnknownArgumentError(
            f"{cls.__name__} got unknown argument(s) {names}; accepted: {', '.join(accepted)}"
        )
    return cls(params, **hyperparameters)


__all__ = [
    "LAMB",
    "LARS",
    "OPTIMIZERS",
    "SGD",
    "SOAP",
    "AMSGrad",
    "AdaMax",
    "Adadelta",
    "Adafactor",
    "Adagrad",
    "Adam",
    "AdamW",
    "DescentOptimizer",
    "Lion",
    "Momentum",
    "Muon",
    "Nadam",
    "Nesterov",
    "Prodigy",
    "RAdam",
    "RMSprop",
    "ScheduleFreeAdamW",
    "ScheduleFreeSGD",
    "UnknownArgumentError",
    "adadelta_reference",
    "adafactor_reference",
    "adagrad_reference",
    "adam_reference",
    "adamax_reference",
    "amsgrad_reference",
    "create",
    "lamb_reference",
    "lars_reference",
    "lion_reference",
    "momentum_reference",
    "muon_reference",
    "nadam_reference",
    "nesterov_reference",
    "prodigy_reference",
    "radam_reference",
    "rmsprop_reference",
    "schedule_free_reference",
    "sgd_reference",
    "soap_reference",
]
