"""ntkbook.montecarlo: ensembles over keys (chunked vmap), rate fits, ensemble statistics, NTKs
at initialisation, test statistics."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbook import empirical, limits, montecarlo, networks


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
    assert not np.array_equal(a["z"], montecarlo.ensemble(_draw, key=jax.random.key(2),
                                                          n_samples=10)["z"])


def test_mean_sem_matches_numpy() -> None:
    x = np.asarray(jax.random.normal(jax.random.key(0), (50, 4), jnp.float64))
    stats = montecarlo.mean_sem(x)
    np.testing.assert_allclose(stats.mean, x.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(stats.sem, x.std(axis=0, ddof=1) / np.sqrt(50), rtol=1e-13)


def test_fit_rate_exact_power_law() -> None:
    widths = np.array([64, 128, 256, 512, 1024])
    errors = 3.0 * widths**-0.5
    fit = montecarlo.fit_rate(widths, errors)
    # Noise-free data: every resample lies on the same line, so the CI collapses to the slope.
    assert abs(fit.slope + 0.5) < 1e-12 and abs(fit.intercept - np.log(3.0)) < 1e-12
    assert abs(fit.ci_low + 0.5) < 1e-12 and abs(fit.ci_high + 0.5) < 1e-12


def test_fit_rate_per_seed_errors_and_ci() -> None:
    """2-D errors: slope of log(mean over seeds) (checked against np.polyfit), CI that covers the
    true rate, and the same key giving the same CI."""
    rng = np.random.default_rng(0)
    widths = np.array([100, 200, 400, 800, 1600])
    errors = 2.0 * widths[:, None] ** -0.5 * np.exp(0.3 * rng.standard_normal((5, 16)))
    fit = montecarlo.fit_rate(widths, errors, key=jax.random.key(1))
    slope, intercept = np.polyfit(np.log(widths), np.log(errors.mean(axis=1)), 1)
    assert abs(fit.slope - slope) < 1e-12 and abs(fit.intercept - intercept) < 1e-12
    assert fit.ci_low < fit.slope < fit.ci_high and fit.contains(-0.5)
    assert fit == montecarlo.fit_rate(widths, errors, key=jax.random.key(1))


def test_fit_rate_pairs_bootstrap_width_matches_ols_standard_error() -> None:
    """1-D errors, iid log-normal noise σ: OLS slope sd = σ/√Σ(u − ū)². The pairs bootstrap's 95%
    half-width should be ≈ 1.96 sd: with 60 points its sd estimate has relative error ≈ 1/√120
    ≈ 9% (plus ≈ 2% bootstrap Monte Carlo error at n_boot = 2000), so a ±35% band is ≈ 3.5 sd."""
    rng = np.random.default_rng(1)
    widths = np.geomspace(50, 5000, 60)
    sigma = 0.2
    errors = widths**-0.5 * np.exp(sigma * rng.standard_normal(60))
    fit = montecarlo.fit_rate(widths, errors, n_boot=2000, key=jax.random.key(2))
    u = np.log(widths)
    sd = sigma / np.sqrt(np.sum((u - u.mean()) ** 2))
    half_width = (fit.ci_high - fit.ci_low) / 2
    assert 0.65 < half_width / (1.96 * sd) < 1.35
    assert fit.n_boot == 2000


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="^fn:"):
        montecarlo.ensemble(3, key=jax.random.key(0), n_samples=2)
    with pytest.raises(ValueError, match="^key:"):
        montecarlo.ensemble(_draw, key=0, n_samples=2)
    with pytest.raises(ValueError, match="^n_samples:"):
        montecarlo.ensemble(_draw, key=jax.random.key(0), n_samples=0)
    with pytest.raises(ValueError, match="^block_size:"):
        montecarlo.ensemble(_draw, key=jax.random.key(0), n_samples=4, block_size=0)
    with pytest.raises(ValueError, match="^samples:"):
        montecarlo.mean_sem(np.ones(1))
    w = [10, 20, 40]
    with pytest.raises(ValueError, match="^errors:"):
        montecarlo.fit_rate(w, [0.1, 0.2])
    with pytest.raises(ValueError, match="^errors:"):
        montecarlo.fit_rate(w, [0.1, -0.2, 0.3])
    with pytest.raises(ValueError, match="^errors:"):
        montecarlo.fit_rate(w, [0.1, np.nan, 0.3])
    with pytest.raises(ValueError, match="^errors:"):
        montecarlo.fit_rate(w, [[0.1], [0.2], [0.3]])
    with pytest.raises(ValueError, match="^widths:"):
        montecarlo.fit_rate([10, 10, 10], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="^widths:"):
        montecarlo.fit_rate([10, 20], [0.1, 0.2])
    with pytest.raises(ValueError, match="^widths:"):
        montecarlo.fit_rate([0, 20, 40], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="^n_boot:"):
        montecarlo.fit_rate(w, [0.1, 0.2, 0.3], n_boot=0)
    with pytest.raises(ValueError, match="^confidence:"):
        montecarlo.fit_rate(w, [0.1, 0.2, 0.3], confidence=1.0)
    with pytest.raises(ValueError, match="^key:"):
        montecarlo.fit_rate(w, [0.1, 0.2, 0.3], key=7)


def test_local_slopes_power_law_and_geometric():
    k = np.arange(1, 257)
    s = montecarlo.local_slopes(k, 3.0 * k**-2.0 * (1 + 1 / k), edges=[8, 16, 32, 64, 128])
    # (1 + 1/k) steepens the slope by ≈ −1/k: the local slopes rise towards −2
    assert np.all(np.diff(s) > 0) and s[-1] == pytest.approx(-2.0, abs=0.02)
    g = montecarlo.local_slopes(k, np.exp(-0.3 * k), edges=[1, 10, 20], log_x=False)
    np.testing.assert_allclose(g, [-0.3, -0.3], rtol=1e-12)


@pytest.mark.parametrize(
    ("x", "y", "edges", "name"),
    [
        ([1.0, 2.0], [1.0], [1, 2], "y"),
        ([0.0, 2.0], [1.0, 1.0], [1, 2], "x"),
        ([1.0, 2.0], [1.0, -1.0], [1, 2], "y"),
        ([1.0, 2.0], [1.0, 1.0], [2, 1], "edges"),
        ([1.0, 2.0, 3.0], [1.0, 1.0, 1.0], [1, 1.5, 3], "edges"),
    ],
)
def test_local_slopes_errors(x, y, edges, name):
    with pytest.raises(ValueError, match=name):
        montecarlo.local_slopes(x, y, edges=edges)


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
    last = montecarlo.mean_sem(out.by_layer[:, 1])
    rest = montecarlo.mean_sem(out.by_layer[:, 0])
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


# ------------------------------------------------------------------ test statistics


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
