"""The fitted coefficients are those of the implementation before the blocked one-pass Gram and
the tight full-batch loop (commit in golden_coefficients.json), to 1e-10 relative."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_diabetes

from descent.linear import LinearRegressionGD

GOLDEN = json.loads((Path(__file__).parent / "golden_coefficients.json").read_text())


def dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "diabetes":
        return load_diabetes(return_X_y=True)
    rng = np.random.default_rng(0)  # tests/linear/test_estimator.py's synthetic(500, 0, ...)
    X = rng.normal(size=(500, 4))
    if name != "conditioned":
        X = X * [1.0, 3.0, 0.5, 2.0] + [0.0, 1.0, -2.0, 5.0]
    y = X @ np.array([1.0, -2.0, 0.5, 3.0]) + 2.0 + 0.3 * rng.normal(size=500)
    return X, y


@pytest.mark.parametrize(
    "case", GOLDEN["cases"], ids=[f"{c['data']}-{c['params']}" for c in GOLDEN["cases"]]
)
def test_coefficients_unchanged(case: dict[str, Any]) -> None:
    X, y = dataset(case["data"])
    model = LinearRegressionGD(**case["params"]).fit(X, y)
    expected = np.asarray(case["weights"])
    scale = np.abs(expected).max()
    np.testing.assert_allclose(model.weights_, expected, rtol=0, atol=1e-10 * scale)
    assert abs(model.n_iter_ - case["epochs"]) <= max(1, case["epochs"] // 1000)
