"""Two-dimensional test functions for watching update rules race: each with its formula, an
analytic gradient (tested against autograd), its known minima (or saddle) and a view box.

Every function takes two tensors ``x`` and ``y`` of the same shape and works elementwise, so a
whole grid (for contours) or a batch of points (one per rule) is one call.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from descent.errors import InputError

Function = Callable[[Tensor, Tensor], Tensor]
Gradient = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class Point:
    """A stationary point: where it is, the function's value there, and what it is."""

    x: float
    y: float
    value: float
    kind: str = "minimum"  # or "saddle"


@dataclass(frozen=True)
class Landscape:
    """A 2-D test function with what a race needs to know about it.

    Example::

        >>> beale = LANDSCAPES["beale"]
        >>> beale(torch.tensor(3.0), torch.tensor(0.5))      # its minimum, 0
        >>> beale.gradient(torch.tensor(0.0), torch.tensor(0.0))
    """

    name: str
    formula: str
    function: Function = field(repr=False)
    gradient: Gradient = field(repr=False)
    points: tuple[Point, ...]
    box: tuple[float, float, float, float]  # x_min, x_max, y_min, y_max
    start: tuple[float, float]
    #: learning rates that make a readable race from ``start`` (``--tune`` picks them instead)
    learning_rates: dict[str, float] = field(default_factory=dict, repr=False)
    description: str = ""

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        return self.function(x, y)

    @property
    def minima(self) -> tuple[Point, ...]:
        return tuple(point for point in self.points if point.kind == "minimum")

    @property
    def lowest(self) -> float:
        """The smallest stated value (the global minimum's), or the saddle's value."""
        return min(point.value for point in self.points)

    def contains(self, x: float, y: float) -> bool:
        x_min, x_max, y_min, y_max = self.box
        return x_min <= x <= x_max and y_min <= y <= y_max


def user_landscape(
    function: Function,
    box: tuple[float, float, float, float],
    start: tuple[float, float],
    points: tuple[Point, ...] = (),
    name: str = "custom",
) -> Landscape:
    """Any function of two tensors as a landscape; its gradient comes from autograd."""

    def gradient(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        with torch.enable_grad():
            xs = x.detach().requires_grad_(True)
            ys = y.detach().requires_grad_(True)
            gx, gy = torch.autograd.grad(function(xs, ys).sum(), (xs, ys))
        return gx, gy

    return Landscape(name, "user function", function, gradient, points, box, start)


# -- the functions and their gradients -----------------------------------------------------------

RAVINE_STEEPNESS = 50.0


def _ravine(x: Tensor, y: Tensor) -> Tensor:
    return 0.5 * (x**2 + RAVINE_STEEPNESS * y**2)


def _ravine_grad(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    return x, RAVINE_STEEPNESS * y


def _bowl(x: Tensor, y: Tensor) -> Tensor:
    return x**2 + y**2


def _bowl_grad(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    return 2 * x, 2 * y


def _rosenbrock(x: Tensor, y: Tensor) -> Tensor:
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def _rosenbrock_grad(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    return -2 * (1 - x) - 400 * x * (y - x**2), 200 * (y - x**2)


_BEALE = ((1.5, 1), (2.25, 2), (2.625, 3))


def _beale(x: Tensor, y: Tensor) -> Tensor:
    return sum((c - x + x * y**k) ** 2 for c, k in _BEALE)  # type: ignore[return-value]


def _beale_grad(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    gx = torch.zeros_like(x)
    gy = torch.zeros_like(y)
    for c, k in _BEALE:
        term = c - x + x * y**k
        gx = gx + 2 * term * (y**k - 1)
        gy = gy + 2 * term * k * x * y ** (k - 1)
    return gx, gy


def _himmelblau(x: Tensor, y: Tensor) -> Tensor:
    return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


def _himmelblau_grad(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    a = x**2 + y - 11
    b = x + y**2 - 7
    return 4 * x * a + 2 * b, 2 * a + 4 * y * b


def _booth(x: Tensor, y: Tensor) -> Tensor:
    return (x + 2 * y - 7) ** 2 + (2 * x + y - 5) ** 2


def _booth_grad(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    a = x + 2 * y - 7
    b = 2 * x + y - 5
    return 2 * a + 4 * b, 4 * a + 2 * b


def _saddle(x: Tensor, y: Tensor) -> Tensor:
    return x**2 - y**2


def _saddle_grad(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    return 2 * x, -2 * y


def _monkey(x: Tensor, y: Tensor) -> Tensor:
    return x**3 - 3 * x * y**2


def _monkey_grad(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    return 3 * x**2 - 3 * y**2, -6 * x * y


PLATEAU_WIDTH = 1.0


def _plateau(x: Tensor, y: Tensor) -> Tensor:
    # A Gaussian well: a bowl near the origin, and far from it a plateau whose gradient decays
    # like exp(-r²/2): gradient descent started out there crawls before it finds the bowl.
    return 1 - torch.exp(-(x**2 + y**2) / (2 * PLATEAU_WIDTH**2))


def _plateau_grad(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    well = torch.exp(-(x**2 + y**2) / (2 * PLATEAU_WIDTH**2)) / PLATEAU_WIDTH**2
    return x * well, y * well


def _camel(x: Tensor, y: Tensor) -> Tensor:
    return (4 - 2.1 * x**2 + x**4 / 3) * x**2 + x * y + (-4 + 4 * y**2) * y**2


def _camel_grad(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    return 8 * x - 8.4 * x**3 + 2 * x**5 + y, x - 8 * y + 16 * y**3


def _rastrigin(x: Tensor, y: Tensor) -> Tensor:
    return 20 + x**2 - 10 * torch.cos(2 * math.pi * x) + y**2 - 10 * torch.cos(2 * math.pi * y)


def _rastrigin_grad(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    return (
        2 * x + 20 * math.pi * torch.sin(2 * math.pi * x),
        2 * y + 20 * math.pi * torch.sin(2 * math.pi * y),
    )


# The camel's minima to full double precision (the usual 4-digit values are not stationary).
_CAMEL_X, _CAMEL_Y, _CAMEL_VALUE = 0.08984201368301331, -0.7126564032704135, -1.031628453489877

#: The adaptive rules' learning rates on a problem whose coordinates are of order one: their steps
#: are about η per coordinate whatever the gradient's scale, so one set serves every landscape
#: (each overrides what its shape needs) and the demo's standardized regression.
ADAPTIVE_RATES = {
    "adagrad": 0.5,
    "adadelta": 1.0,
    "rmsprop": 0.01,
    "adam": 0.05,
    "adamax": 0.05,
    "nadam": 0.05,
    "amsgrad": 0.05,
    "adamw": 0.05,
}

def race_rates(sgd: float, momentum: float, **adaptive: float) -> dict[str, float]:
    """A landscape's learning rates: ``sgd`` for plain descent, ``momentum`` for both heavy-ball
    rules (Nesterov's look-ahead moves the same distance per step, so it suits the same rate),
    and :data:`ADAPTIVE_RATES` with the ``adaptive`` rules this landscape's shape overrides."""
    return {"sgd": sgd, "momentum": momentum, "nesterov": momentum, **ADAPTIVE_RATES, **adaptive}


LANDSCAPES: dict[str, Landscape] = {
    landscape.name: landscape
    for landscape in (
        Landscape(
            "ravine",
            f"½(x² + {RAVINE_STEEPNESS:g}y²)",
            _ravine,
            _ravine_grad,
            (Point(0, 0, 0),),
            (-10, 10, -2, 2),
            (-8.0, 1.0),
            race_rates(0.035, 0.01, adagrad=1.0, rmsprop=0.05, adam=0.3),
            "a narrow valley (condition number 50): SGD zig-zags across it, momentum runs along it",
        ),
        Landscape(
            "bowl",
            "x² + y²",
            _bowl,
            _bowl_grad,
            (Point(0, 0, 0),),
            (-3, 3, -3, 3),
            (-2.5, 2.0),
            race_rates(0.1, 0.05),
            "the round bowl: every rule's easiest case",
        ),
        Landscape(
            "rosenbrock",
            "(1 − x)² + 100(y − x²)²",
            _rosenbrock,
            _rosenbrock_grad,
            (Point(1, 1, 0),),
            (-2, 2, -1, 3),
            (-1.5, 2.0),
            race_rates(1e-3, 1e-4, adam=0.02, rmsprop=0.005),
            "a curved banana valley: finding it is easy, following it to (1, 1) is slow",
        ),
        Landscape(
            "beale",
            "(1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²",
            _beale,
            _beale_grad,
            (Point(3, 0.5, 0),),
            (-4.5, 4.5, -4.5, 4.5),
            (0.7, 1.4),
            race_rates(1e-3, 1e-4, adam=0.02, rmsprop=0.005),
            "flat plains and steep walls: rates suited to one are wrong for the other",
        ),
        Landscape(
            "himmelblau",
            "(x² + y − 11)² + (x + y² − 7)²",
            _himmelblau,
            _himmelblau_grad,
            (
                Point(3.0, 2.0, 0),
                Point(-2.805118086952745, 3.131312518250573, 0),
                Point(-3.779310253377747, -3.283185991286170, 0),
                Point(3.584428340330492, -1.848126526964404, 0),
            ),
            (-5, 5, -5, 5),
            (0.0, 0.0),
            race_rates(0.01, 2e-3),
            "four minima of equal value: where a rule ends depends on its path",
        ),
        Landscape(
            "booth",
            "(x + 2y − 7)² + (2x + y − 5)²",
            _booth,
            _booth_grad,
            (Point(1, 3, 0),),
            (-10, 10, -10, 10),
            (-8.0, -8.0),
            race_rates(0.05, 0.01, adam=0.5),
            "a tilted convex bowl",
        ),
        Landscape(
            "saddle",
            "x² − y²",
            _saddle,
            _saddle_grad,
            (Point(0, 0, 0, "saddle"),),
            (-2, 2, -2, 2),
            (-1.5, 1e-3),
            race_rates(0.05, 0.01),
            "a saddle: attracting along x, repelling along y; started on y = 0 exactly, "
            "gradient descent converges to it",
        ),
        Landscape(
            "monkey_saddle",
            "x³ − 3xy²",
            _monkey,
            _monkey_grad,
            (Point(0, 0, 0, "saddle"),),
            (-1.5, 1.5, -1.5, 1.5),
            (-1.0, 0.2),
            race_rates(0.02, 0.005),
            "a degenerate saddle (zero curvature at the origin), three valleys down",
        ),
        Landscape(
            "plateau",
            f"1 − exp(−(x² + y²)/{2 * PLATEAU_WIDTH**2:g})",
            _plateau,
            _plateau_grad,
            (Point(0, 0, 0),),
            (-4, 4, -4, 4),
            (3.0, 2.5),
            race_rates(1.0, 0.1),
            "a plateau leading to a bowl: the gradient out there is ~1e-3, so plain descent "
            "crawls; adaptive rules normalize it away",
        ),
        Landscape(
            "six_hump_camel",
            "(4 − 2.1x² + x⁴/3)x² + xy + (4y² − 4)y²",
            _camel,
            _camel_grad,
            (
                Point(_CAMEL_X, _CAMEL_Y, _CAMEL_VALUE),
                Point(-_CAMEL_X, -_CAMEL_Y, _CAMEL_VALUE),
            ),
            (-2, 2, -1, 1),
            (-1.5, 0.8),
            race_rates(0.01, 2e-3),
            "six local minima, two of them global",
        ),
        Landscape(
            "rastrigin",
            "20 + x² − 10cos 2πx + y² − 10cos 2πy",
            _rastrigin,
            _rastrigin_grad,
            (Point(0, 0, 0),),
            (-5.12, 5.12, -5.12, 5.12),
            (3.2, 2.1),
            race_rates(2e-3, 5e-4),
            "a grid of local minima: every rule stops in the first one it meets",
        ),
    )
}


def get(name: str) -> Landscape:
    """A landscape by name (case, '-' and '_' do not matter)."""
    from descent.validate import normalize_name

    table = {normalize_name(key): value for key, value in LANDSCAPES.items()}
    landscape = table.get(normalize_name(name)) if isinstance(name, str) else None
    if landscape is None:
        raise InputError(f"unknown function {name!r}; accepted: {', '.join(LANDSCAPES)}")
    return landscape
