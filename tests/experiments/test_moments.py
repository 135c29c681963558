"""Exact finite-width moments (ntkbook.experiments.moments, chapter 3): the kurtosis constant."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from ntkbook import montecarlo, networks
from ntkbook.experiments import moments


def test_kurtosis_constant_closed_forms() -> None:
    # ReLU: E h₊⁴ = 3v²/2, E h₊² = v/2 → 3·(3/2)/(1/4) − 3 = 15 at any v; identity: w·h → 6
    assert moments.kurtosis_constant("relu") == pytest.approx(15.0, rel=1e-6)
    assert moments.kurtosis_constant("relu", variance=3.0) == pytest.approx(15.0, rel=1e-6)
    assert moments.kurtosis_constant("identity", variance=2.0) == pytest.approx(6.0, rel=1e-6)
    # a bias adds β² to the variance, not to the fourth cumulant: (3·3/2 − 3/4)/(1/2 + β²)²
    assert moments.kurtosis_constant("relu", beta=0.5) == pytest.approx(3.75 / 0.5625, rel=1e-6)
    # erf: the rule has converged (two node counts agree)
    a, b = (moments.kurtosis_constant("erf", points=p) for p in (60, 120))
    assert a == pytest.approx(b, rel=1e-6)


def test_kurtosis_constant_against_networks() -> None:
    """n κ of real one-hidden-layer erf networks (one input, v = 1) matches the constant."""
    n, s = 4, 200_000
    net = networks.mlp((1, n, 1), activation="erf", beta=0.5)
    x = jnp.ones((1, 1), jnp.float64)

    def draw(k: jax.Array) -> jax.Array:
        return networks.apply(net, networks.init(net, key=k, dtype=jnp.float64), x)[0, 0]

    f = montecarlo.ensemble(draw, key=jax.random.key(3), n_samples=s)
    kappa = n * float(montecarlo.excess_kurtosis(f))
    exact = moments.kurtosis_constant("erf", beta=0.5)
    # the estimator's standard error ≈ √(24/S)·(1 + κ-dependent terms); n·√(24/S)·3 ≈ 0.13
    assert abs(kappa - exact) < 0.15 + 0.1 * exact, (kappa, exact)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"activation": "nope"}, "activation"),
        ({"activation": "relu", "variance": 0.0}, "variance"),
        ({"activation": "relu", "beta": -1.0}, "beta"),
        ({"activation": "relu", "points": 1}, "points"),
        ({"activation": "relu", "points": 301}, "points"),
    ],
)
def test_kurtosis_constant_errors(kwargs: dict, match: str) -> None:
    act = kwargs.pop("activation")
    with pytest.raises(ValueError, match=match):
        moments.kurtosis_constant(act, **kwargs)
