"""Learning-rate schedules with TensorFlow's exact semantics, cyclical rates, and a torch adapter.

Every schedule is a small immutable object: ``schedule(step) -> float`` with ``step`` the 0-based
update number (TF's ``global_step``, Keras' ``iterations``, torch's ``last_epoch``), a readable
``repr``, equality by parameters, and ``to_dict()`` / :func:`from_dict` so it can live in a YAML
config, a checkpoint or an HParams table. Any schedule is a valid ``lr`` for descent's optimizers,
and :func:`torch_scheduler` drives torch's own optimizers with it.

- :mod:`descent.schedules.tensorflow`: TF's family, class and functional forms;
- :mod:`descent.schedules.practical`: cyclical, step, warm-up, join, one-cycle;
- :mod:`descent.schedules.torch_adapter`: :class:`ScheduleLR` for torch optimizers.

docs/schedules.md has the formulas, the peers' quirks and the test vectors.
"""

from descent.schedules.base import Schedule, create, from_dict, names, parameters
from descent.schedules.practical import (
    Constant,
    Cyclical,
    Join,
    LinearWarmup,
    MultiStepDecay,
    OneCycle,
    StepDecay,
    Warmup,
    join,
)
from descent.schedules.tensorflow import (
    CosineDecay,
    CosineDecayRestarts,
    ExponentialDecay,
    InverseTimeDecay,
    LinearCosineDecay,
    NaturalExpDecay,
    NoisyLinearCosineDecay,
    PiecewiseConstantDecay,
    PolynomialDecay,
    cosine_decay,
    cosine_decay_restarts,
    exponential_decay,
    inverse_time_decay,
    linear_cosine_decay,
    natural_exp_decay,
    noisy_linear_cosine_decay,
    piecewise_constant,
    polynomial_decay,
)
from descent.schedules.torch_adapter import ScheduleLR, torch_scheduler

__all__ = [
    "Constant",
    "CosineDecay",
    "CosineDecayRestarts",
    "Cyclical",
    "ExponentialDecay",
    "InverseTimeDecay",
    "Join",
    "LinearCosineDecay",
    "LinearWarmup",
    "MultiStepDecay",
    "NaturalExpDecay",
    "NoisyLinearCosineDecay",
    "OneCycle",
    "PiecewiseConstantDecay",
    "PolynomialDecay",
    "Schedule",
    "ScheduleLR",
    "StepDecay",
    "Warmup",
    "cosine_decay",
    "cosine_decay_restarts",
    "create",
    "exponential_decay",
    "from_dict",
    "inverse_time_decay",
    "join",
    "linear_cosine_decay",
    "names",
    "natural_exp_decay",
    "noisy_linear_cosine_decay",
    "parameters",
    "piecewise_constant",
    "polynomial_decay",
    "torch_scheduler",
]
