"""montecarlo: ensembles over keys (chunked vmap) and log–log rate fits with bootstrap CIs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbook import montecarlo


def _draw(key: jax.Array) -> dict:
    """A pytree of random outputs with some arithmetic, as a network-like fn(key)."""
    z = jax.random.normal(key, (3, 2), jnp.float64)
    return {"z": z, "norm": jnp.sqrt(jnp.sum(z * z))}


def test_ensemble_equals_a_loop_over_split_keys() -> None:
    key = jax.random.key(4)
    out = montecarlo.ensemble(_draw, key, 7, block_size=3)  # 3 does not divide 7
    assert out["z"].shape == (7, 3, 2) and out["norm"].shape == (7,)
    for s, k in enumerate(jax.random.split(key, 7)):
        ref = _draw(k)
        # Same random bits; the arithmetic may be batched differently: float64 rounding only.
        np.testing.assert_allclose(out["z"][s], ref["z"], rtol=1e-14, atol=0)
        np.testing.assert_allclose(out["norm"][s], ref["norm"], rtol=1e-14, atol=0)


def test_ensemble_same_key_bitwise_and_chunking_does_not_change_draws() -> None:
    a = montecarlo.ensemble(_draw, jax.random.key(1), 10, block_size=4)
    b = montecarlo.ensemble(_draw, jax.random.key(1), 10, block_size=4)
    c = montecarlo.ensemble(_draw, jax.random.key(1), 10)
    np.testing.assert_array_equal(a["z"], b["z"])
    np.testing.assert_allclose(a["z"], c["z"], rtol=1e-14, atol=0)
    assert not np.array_equal(a["z"], montecarlo.ensemble(_draw, jax.random.key(2), 10)["z"])


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
        montecarlo.ensemble(3, jax.random.key(0), 2)
    with pytest.raises(ValueError, match="^key:"):
        montecarlo.ensemble(_draw, 0, 2)
    with pytest.raises(ValueError, match="^n_samples:"):
        montecarlo.ensemble(_draw, jax.random.key(0), 0)
    with pytest.raises(ValueError, match="^block_size:"):
        montecarlo.ensemble(_draw, jax.random.key(0), 4, block_size=0)
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


