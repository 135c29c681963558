"""ntkbook.montecarlo: ensembles over keys (chunked vmap), ensemble statistics, NTKs at
initialisation, test statistics."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbook import empirical, limits, montecarlo, networks, stats


def _draw(key: jax.Array) -> dict:
    """A pytree of random outputs with some arithmetic, as a network-like fn(key)."""
    z = jax.random.normal(key, (3, 2), jnp.float64)
    return {"z": z, "norm": jnp.sqrt(jnp.sum(z * z))}


def test_ensemble_equals_a_loop_over_split_keys() -> None:
    key = jax.random.key(4)
    out = montecarlo.ensemble(_draw, key=key, n_samples=7, block_size=3)  # 3 does not divide 7
    assert out["z"].shape == (7, 3, 2) and out["norm"].shape == (7,)
    for s, k in enumerate(jax.random.split(key, 7)):
        ref = _draw(k)
        # Same random bits; the arithmetic may be batched differently: float64 rounding only.
        np.testing.assert_allclose(out["z"][s], ref["z"], rtol=1e-14, atol=0)
        np.testing.assert_allclose(out["norm"][s], ref["norm"], rtol=1e-14, atol=0)


def test_ensemble_same_key_bitwise_and_chunking_does_not_change_draws() -> None:
    a = montecarlo.ensemble(_draw, key=jax.random.key(1), n_samples=10, block_size=4)
    b = montecarlo.ensemble(_draw, key=jax.random.key(1), n_samples=10, block_size=4)
    c = montecarlo.ensemble(_draw, key=jax.random.key(1), n_samples=10)
    np.testing.assert_array_equal(a["z"], b["z"])
    np.testing.assert_allclose(a["z"], c["z"], rtol=1e-14, atol=0)
    assert not np.array_equal(
        a["z"], montecarlo.ensemble(_draw, key=jax.random.key(2), n_samples=10)["z"]
    )


# ------------------------------------------------------------------ ensemble statistics
# Tolerances are Monte Carlo standard errors: the sample excess kurtosis of S draws has standard
# error ≈ √(24/S) near a Gaussian (√(var of the 4th-moment estimator)), a sample second moment
# has standard error √(Var(x_a x_b)/S); we allow 5 standard errors (a false alarm < 1e-6).

S = 200_000


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
    ms = stats.mean_sem(ks)
    assert abs(float(ms.mean) - 3.0) < 5 * float(ms.sem) + 0.05  # + O(1/S) bias


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
    draws = montecarlo.gaussian_samples(K, key=jax.random.key(3), n_samples=S)
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
        montecarlo.gaussian_samples(
            jnp.array([[1.0, 0.5], [0.0, 1.0]]), key=jax.random.key(0), n_samples=3
        )
    with pytest.raises(ValueError, match="cov"):
        montecarlo.gaussian_samples(-jnp.eye(2), key=jax.random.key(0), n_samples=3)
    with pytest.raises(ValueError, match="n_samples"):
        montecarlo.gaussian_samples(jnp.eye(2), key=jax.random.key(0), n_samples=0)


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


# ------------------------------------------------------------------ ntk_at_init
# Cross-checks: (i) each sample equals ``empirical.ntk`` of ``networks.init`` with the same key
# (float rounding of batched GEMMs only); (ii) the per-layer split adds up to the traced full
# kernel; (iii) for one hidden layer the empirical NTK is an *unbiased* estimate of the
# closed-form limit at any width (both halves of the §4.2 split are averages of i.i.d. terms with
# means Σ^(2) and Σ^(1) Σ̇^(2)), so the ensemble mean must lie within 5 standard errors of
# ``limits.kernels`` (a 5σ excursion has probability < 1e-6 per entry).

X = jnp.array([[1.0, 0.0], [0.6, 0.8], [-0.8, 0.6]])


def test_samples_match_empirical_ntk_with_the_same_keys():
    net = networks.mlp((2, 16, 16, 3), activation="erf", beta=0.3)
    key = jax.random.key(0)
    out = montecarlo.ntk_at_init(
        X, X[:2], net=net, key=key, n_samples=3, dtype=jnp.float64, block_size=2
    )
    assert out.by_layer.shape == (3, 3, 3, 2)
    assert out.full.shape == (3, 3, 2, 3, 3)
    for s, k in enumerate(jax.random.split(key, 3)):
        params = networks.init(net, key=k, dtype=jnp.float64)
        ref = empirical.ntk(X, X[:2], net=net, params=params)
        np.testing.assert_allclose(out.full[s], ref, rtol=1e-10)
    traced = jnp.trace(out.full, axis1=3, axis2=4) / 3
    np.testing.assert_allclose(out.by_layer.sum(axis=1), traced, rtol=1e-10)


def test_one_hidden_layer_mean_is_the_limit():
    n, n_samples = 8, 4000
    net = networks.mlp((2, n, 1), activation="relu", beta=0.5)
    out = montecarlo.ntk_at_init(
        X, net=net, key=jax.random.key(1), n_samples=n_samples, dtype=jnp.float64
    )
    k = limits.kernels(X, depth=2, activation="relu", beta=0.5)
    last = stats.mean_sem(out.by_layer[:, 1])
    rest = stats.mean_sem(out.by_layer[:, 0])
    assert np.all(np.abs(last.mean - k.sigma[1]) < 5 * last.sem)
    assert np.all(np.abs(rest.mean - k.theta[0] * k.sigma_dot[1]) < 5 * rest.sem)
    # the samples really fluctuate (width 8): the test above is not vacuous
    assert float(jnp.min(last.sem)) > 1e-3


def test_ntk_at_init_float32_default():
    net = networks.mlp((2, 4, 1), activation="relu")
    out = montecarlo.ntk_at_init(X, net=net, key=jax.random.key(2), n_samples=2)
    assert out.full.dtype == jnp.float32


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_samples": 0}, "n_samples"),
        ({"n_samples": 2, "dtype": jnp.int32}, "dtype"),
        ({"n_samples": 2, "dtype": "nonsense"}, "dtype"),
        ({"n_samples": 2, "block_size": 0}, "block_size"),
    ],
)
def test_ntk_at_init_bad_options(kwargs, name):
    net = networks.mlp((2, 4, 1), activation="relu")
    with pytest.raises(ValueError, match=name):
        montecarlo.ntk_at_init(X, net=net, key=jax.random.key(0), **kwargs)


def test_ntk_at_init_bad_inputs():
    net = networks.mlp((2, 4, 1), activation="relu")
    with pytest.raises(ValueError, match="net"):
        montecarlo.ntk_at_init(X, net="mlp", key=jax.random.key(0), n_samples=2)
    with pytest.raises(ValueError, match="x1"):
        montecarlo.ntk_at_init(X[:, :1], net=net, key=jax.random.key(0), n_samples=2)
    with pytest.raises(ValueError, match="x2"):
        montecarlo.ntk_at_init(
            X, X.at[0, 0].set(jnp.nan), net=net, key=jax.random.key(0), n_samples=2
        )
    with pytest.raises(ValueError, match="key"):
        montecarlo.ntk_at_init(X, net=net, key=0, n_samples=2)


def test_identity_block_errors_against_a_loop() -> None:
    rng = np.random.default_rng(1)
    k = rng.standard_normal((4, 5))
    theta = rng.standard_normal((2, 4, 5, 3, 3))
    out = montecarlo.identity_block_errors(theta, k)
    for s in range(2):
        diag = np.mean([np.sum((theta[s, :, :, i, i] - k) ** 2) for i in range(3)])
        off = np.mean(
            [np.sum(theta[s, :, :, i, j] ** 2) for i in range(3) for j in range(3) if i != j]
        )
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
    e = e - np.sum(e * k) / np.sum(k * k) * k  # orthogonal to k
    c = montecarlo.kernel_projection(np.stack([1.03 * k, k + e]), k)
    np.testing.assert_allclose(c, [1.03, 1.0], rtol=1e-12)
    with pytest.raises(ValueError, match="estimate"):
        montecarlo.kernel_projection(np.ones((3, 4)), k)
    with pytest.raises(ValueError, match="reference"):
        montecarlo.kernel_projection(k, np.zeros((3, 3)))
