"""Tests of the helpers chapters 3–4 added to ``montecarlo`` and ``plotting``.

Tolerances are Monte Carlo standard errors: the sample excess kurtosis of S draws has standard
error ≈ √(24/S) near a Gaussian (√(var of the 4th-moment estimator)), a sample second moment
has standard error √(Var(x_a x_b)/S); we allow 5 standard errors (a false alarm < 1e-6).
"""

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

from ntkbook import montecarlo, plotting  # noqa: E402

S = 200_000


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_excess_kurtosis_gaussian_is_zero():
    x = jax.random.normal(jax.random.key(0), (S, 3))
    k = montecarlo.excess_kurtosis(x)
    assert k.shape == (3,)
    assert np.all(np.abs(np.asarray(k)) < 5 * np.sqrt(24 / S))


def test_excess_kurtosis_of_sums_is_kappa_over_n():
    # Uniform[−1, 1] has excess kurtosis −6/5 (closed form); a sum of n i.i.d. copies has −6/(5n).
    # The estimator's standard error for a near-Gaussian sum is ≈ √(24/S).
    for n in (1, 4):
        u = jax.random.uniform(jax.random.key(n), (S, n), minval=-1.0, maxval=1.0)
        k = float(montecarlo.excess_kurtosis(u.sum(axis=1)))
        assert abs(k - (-1.2 / n)) < 5 * np.sqrt(24 / S), (n, k)


def test_excess_kurtosis_laplace():
    # Laplace has excess kurtosis 3; its estimator's variance is larger: use the empirical
    # standard error of the fourth moment via 10 independent batches.
    x = jax.random.laplace(jax.random.key(1), (10, S // 10))
    ks = montecarlo.excess_kurtosis(x.T)
    stats = montecarlo.mean_sem(ks)
    assert abs(float(stats.mean) - 3.0) < 5 * float(stats.sem) + 0.05  # + O(1/S) bias


def test_excess_kurtosis_rejects_bad_input():
    with pytest.raises(ValueError, match="samples"):
        montecarlo.excess_kurtosis(jnp.ones(3))
    with pytest.raises(ValueError, match="samples"):
        montecarlo.excess_kurtosis(jnp.ones(10))
    with pytest.raises(ValueError, match="samples"):
        montecarlo.excess_kurtosis(jnp.array([1.0, 2.0, jnp.nan, 4.0, 5.0]))


def _psd(d: int, key: jax.Array) -> jax.Array:
    a = jax.random.normal(key, (d, d + 2))
    return a @ a.T / (d + 2)


def test_gaussian_samples_and_second_moments_agree_with_the_covariance():
    # Two independent ways: Cholesky sampling (gaussian_samples) and the ensemble estimate
    # (second_moments); each entry within 5 of its own standard errors, and the standard errors
    # within 5 % of the Gaussian closed form √((K_aa K_bb + K_ab²)/S) (relative error of a
    # sample sd from S = 2e5 draws of a product with kurtosis ≤ 9 is ≈ √(8/4S) < 0.5 %).
    K = _psd(4, jax.random.key(2))
    draws = montecarlo.gaussian_samples(jax.random.key(3), K, S)
    assert draws.shape == (S, 4)
    est = montecarlo.second_moments(draws)
    assert np.all(np.abs(np.asarray(est.cov - K)) < 5 * np.asarray(est.sem))
    d = np.diag(np.asarray(K))
    sem = np.sqrt((np.outer(d, d) + np.asarray(K) ** 2) / S)
    np.testing.assert_allclose(np.asarray(est.sem), sem, rtol=0.05)


def test_second_moments_and_gaussian_samples_reject_bad_input():
    with pytest.raises(ValueError, match="samples"):
        montecarlo.second_moments(jnp.ones((5, 2, 2)))
    with pytest.raises(ValueError, match="samples"):
        montecarlo.second_moments(jnp.ones((1, 2)))
    with pytest.raises(ValueError, match="cov"):
        montecarlo.gaussian_samples(jax.random.key(0), jnp.array([[1.0, 0.5], [0.0, 1.0]]), 3)
    with pytest.raises(ValueError, match="cov"):
        montecarlo.gaussian_samples(jax.random.key(0), -jnp.eye(2), 3)
    with pytest.raises(ValueError, match="n_samples"):
        montecarlo.gaussian_samples(jax.random.key(0), jnp.eye(2), 0)


def test_relative_frobenius_error_matches_numpy():
    ref = np.asarray(_psd(5, jax.random.key(4)))
    est = ref[None] + 0.1 * np.asarray(jax.random.normal(jax.random.key(5), (3, 5, 5)))
    got = np.asarray(montecarlo.relative_frobenius_error(est, ref))
    want = [np.linalg.norm(e - ref, "fro") / np.linalg.norm(ref, "fro") for e in est]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert float(montecarlo.relative_frobenius_error(ref, ref)) == 0.0


def test_relative_frobenius_error_rejects_bad_input():
    with pytest.raises(ValueError, match="estimate"):
        montecarlo.relative_frobenius_error(jnp.ones((3, 4)), jnp.ones((4, 4)))
    with pytest.raises(ValueError, match="reference"):
        montecarlo.relative_frobenius_error(jnp.ones((2, 2)), jnp.zeros((2, 2)))
    with pytest.raises(ValueError, match="estimate"):
        montecarlo.relative_frobenius_error(jnp.full((2, 2), jnp.inf), jnp.ones((2, 2)))


def test_histogram_and_qq_plots():
    z = np.asarray(jax.random.normal(jax.random.key(6), (5000,)))
    ax = plotting.histogram_vs_gaussian(None, z, 1.0, label="draws")
    assert ax.get_yscale() == "log"
    assert ax.figure.get_facecolor() == (1.0, 1.0, 1.0, 1.0)
    ax = plotting.qq_vs_gaussian(None, 2 * z, 4.0, n_quantiles=50)
    pts = ax.lines[0].get_xydata()
    # Quantiles of N(0, 4) draws lie near the diagonal (5000 draws: within 0.3 in the middle).
    mid = np.abs(pts[:, 0]) < 2
    assert np.all(np.abs(pts[mid, 1] - pts[mid, 0]) < 0.3)
    with pytest.raises(ValueError, match="variance"):
        plotting.qq_vs_gaussian(None, z, 0.0)
    with pytest.raises(ValueError, match="samples"):
        plotting.histogram_vs_gaussian(None, np.ones((2, 2)), 1.0)


def test_curves_vs_angle():
    g = np.linspace(0, 2 * np.pi, 30)
    ax = plotting.curves_vs_angle(None, g, np.stack([np.sin(g), np.cos(g)]), reference=0 * g,
                                  label="samples", reference_label="limit")
    assert len(ax.lines) == 3
    assert ax.lines[0].get_color() == ax.lines[1].get_color()
    with pytest.raises(ValueError, match="curves"):
        plotting.curves_vs_angle(None, g, np.ones((2, 5)))
    with pytest.raises(ValueError, match="reference"):
        plotting.curves_vs_angle(None, g, np.ones(30), reference=np.ones(4))
