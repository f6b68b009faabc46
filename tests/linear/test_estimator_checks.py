"""scikit-learn's own estimator checks."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from descent.linear import LinearRegressionGD


@parametrize_with_checks(
    [LinearRegressionGD(), LinearRegressionGD(mode="minibatch", max_epochs=50)]
)
def test_scikit_learn_compatible(estimator, check) -> None:
    check(estimator)
