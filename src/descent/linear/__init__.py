"""Linear regression over basis functions, trained by gradient descent (the lecture, part 1)."""

from descent.linear.basis import (
    RBF,
    Basis,
    Custom,
    Fourier,
    Identity,
    Polynomial,
    Sigmoid,
    parse_basis,
)
from descent.linear.estimator import FitReport, LinearRegressionGD
from descent.linear.solve import (
    Gram,
    LeastSquares,
    Moments,
    decay_steps,
    gradient,
    largest_eigenvalue,
    least_squares,
    lipschitz_step,
    loss,
    moments,
)

__all__ = [
    "RBF",
    "Basis",
    "Custom",
    "FitReport",
    "Fourier",
    "Gram",
    "Identity",
    "LeastSquares",
    "LinearRegressionGD",
    "Moments",
    "Polynomial",
    "Sigmoid",
    "decay_steps",
    "gradient",
    "largest_eigenvalue",
    "least_squares",
    "lipschitz_step",
    "loss",
    "moments",
    "parse_basis",
]
