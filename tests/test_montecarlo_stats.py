"""montecarlo test statistics: z-scores, pooled prefactors, identity-block errors, projections,
and the exact kurtosis constant of one hidden layer (checked against Monte Carlo of networks)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbook import montecarlo, networks
from ntkbook.experiments import moments


def test_z_scores_match_the_formula_and_detect_a_wrong_reference() -> None:
    x = 1.0 + 0.5 * jax.random.normal(jax.random.key(0), (4000, 3), jnp.float64)
    out = montecarlo.z_scores(x, 1.0)
    mean = np.mean(np.asarray(x), axis=0)
    sem = np.std(np.asarray(x), axis=0, ddof=1) / np.sqrt(4000)
    np.testing.assert_allclose(out.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(out.sem, sem, rtol=1e-12)
    np.testing.assert_allclose(out.z, (mean - 1.0) / sem, rtol=1e-10, atol=1e-10)
    assert np.all(np.abs(out.z) < 4)
    # a reference 5 % off is (0.05 / (0.5 / √4000)) ≈ 6.3 standard errors away
    assert np.all(np.abs(montecarlo.z_scores(x, 1.05).z) > 4)
    # per-entry references broadcast; axis selects the sample axis
    z_t = montecarlo.z_scores(x.T, jnp.array([1.0, 1.0, 1.0]), axis=1)
    np.testing.assert_allclose(z_t.z, out.z, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    ("samples", "reference", "match"),
    [
        (np.ones((1, 3)), 0.0, "samples"),
        (np.array([[1.0, np.nan], [2.0, 3.0]]), 0.0, "samples"),
        (np.ones((5, 2)), 0.0, "samples: zero spread"),
        (np.arange(10.0).reshape(5, 2), np.zeros(3), "reference"),
        (np.arange(10.0).reshape(5, 2), np.inf, "reference"),
    ],
)
def test_z_scores_errors(samples: np.ndarray, reference: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        montecarlo.z_scores(samples, reference)


def test_pooled_prefactor_is_constant_for_the_right_rate_only() -> None:
    widths = np.array([64, 256, 1024])
    rng = np.random.default_rng(0)
    errors = 2.0 * widths[:, None] ** -0.5 * np.exp(0.1 * rng.standard_normal((3, 50)))
    c = montecarlo.pooled_prefactor(widths, errors, slope=-0.5)
    np.testing.assert_allclose(c.mean, np.mean(np.sqrt(widths)[:, None] * errors), rtol=1e-12)
    assert abs(float(c.mean) - 2.0 * np.exp(0.005)) < 4 * float(c.sem)
    # with the wrong rate the per-width prefactors drift by 16^{1/6} across the widths
    wrong = [montecarlo.pooled_prefactor(widths[i:i + 1], errors[i:i + 1], slope=-1 / 3)
             for i in (0, 2)]
    assert float(wrong[1].mean) / float(wrong[0].mean) < 0.8


@pytest.mark.parametrize(
    ("widths", "errors", "slope", "match"),
    [
        ([1, 2], [0.1, 0.2], -0.5, "errors"),
        ([1, 2], [[0.1], [0.2], [0.3]], -0.5, "errors"),
        ([0, 2], [[0.1], [0.2]], -0.5, "widths"),
        ([1, 2], [[0.1], [-0.2]], -0.5, "errors"),
        ([1, 2], [[0.1], [0.2]], np.nan, "slope"),
    ],
)
def test_pooled_prefactor_errors(widths: object, errors: object, slope: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        montecarlo.pooled_prefactor(widths, errors, slope=slope)


def test_identity_block_errors_against_a_loop() -> None:
    rng = np.random.default_rng(1)
    k = rng.standard_normal((4, 5))
    theta = rng.standard_normal((2, 4, 5, 3, 3))
    out = montecarlo.identity_block_errors(theta, k)
    for s in range(2):
        diag = np.mean([np.sum((theta[s, :, :, i, i] - k) ** 2) for i in range(3)])
        off = np.mean([np.sum(theta[s, :, :, i, j] ** 2)
                       for i in range(3) for j in range(3) if i != j])
        np.testing.assert_allclose(out.diagonal[s], np.sqrt(diag / np.sum(k**2)), rtol=1e-12)
        np.testing.assert_allclose(out.offdiagonal[s], np.sqrt(off / np.sum(k**2)), rtol=1e-12)
    exact = montecarlo.identity_block_errors(k[:, :, None, None] * np.eye(3), k)
    assert float(exact.diagonal) == 0.0 and float(exact.offdiagonal) == 0.0


@pytest.mark.parametrize(
    ("theta", "reference", "match"),
    [
        (np.ones((4, 5, 1, 1)), np.ones((4, 5)), "m >= 2"),
        (np.ones((4, 4, 2, 2)), np.ones((4, 5)), "theta"),
        (np.ones((4, 5, 2, 3)), np.ones((4, 5)), "theta"),
        (np.ones((4, 5, 2, 2)), np.zeros((4, 5)), "reference: has zero norm"),
        (np.ones((4, 5, 2, 2)), np.ones(5), "reference"),
        (np.full((4, 5, 2, 2), np.nan), np.ones((4, 5)), "theta"),
    ],
)
def test_identity_block_errors_errors(theta: np.ndarray, reference: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        montecarlo.identity_block_errors(theta, reference)


def test_kernel_projection() -> None:
    rng = np.random.default_rng(2)
    k = rng.standard_normal((3, 3))
    e = rng.standard_normal((3, 3))
    e = e - np.sum(e * k) / np.sum(k * k) * k            # orthogonal to k
    c = montecarlo.kernel_projection(np.stack([1.03 * k, k + e]), k)
    np.testing.assert_allclose(c, [1.03, 1.0], rtol=1e-12)
    with pytest.raises(ValueError, match="estimate"):
        montecarlo.kernel_projection(np.ones((3, 4)), k)
    with pytest.raises(ValueError, match="reference"):
        montecarlo.kernel_projection(k, np.zeros((3, 3)))


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
        return networks.apply(net, networks.init(k, net, dtype=jnp.float64), x)[0, 0]

    f = montecarlo.ensemble(draw, jax.random.key(3), s)
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
