"""Tests of ``montecarlo.ntk_at_init``, the ensemble of empirical NTKs that chapter 4 uses.

Cross-checks: (i) each sample equals ``empirical.ntk`` of ``networks.init`` with the same key
(float rounding of batched GEMMs only); (ii) the per-layer split adds up to the traced full
kernel; (iii) for one hidden layer the empirical NTK is an *unbiased* estimate of the closed-form
limit at any width (both halves of the §4.2 split are averages of i.i.d. terms with means Σ^(2)
and Σ^(1) Σ̇^(2)), so the ensemble mean must lie within 5 standard errors of ``limits.kernels``
(a 5σ excursion has probability < 1e-6 per entry).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbook import empirical, limits, montecarlo, networks

X = jnp.array([[1.0, 0.0], [0.6, 0.8], [-0.8, 0.6]])


def test_samples_match_empirical_ntk_with_the_same_keys():
    net = networks.mlp((2, 16, 16, 3), activation="erf", beta=0.3)
    key = jax.random.key(0)
    out = montecarlo.ntk_at_init(net, key, X, X[:2], n_samples=3, dtype=jnp.float64, block_size=2)
    assert out.by_layer.shape == (3, 3, 3, 2)
    assert out.full.shape == (3, 3, 2, 3, 3)
    for s, k in enumerate(jax.random.split(key, 3)):
        params = networks.init(k, net, dtype=jnp.float64)
        np.testing.assert_allclose(out.full[s], empirical.ntk(net, params, X, X[:2]), rtol=1e-10)
    traced = jnp.trace(out.full, axis1=3, axis2=4) / 3
    np.testing.assert_allclose(out.by_layer.sum(axis=1), traced, rtol=1e-10)


def test_one_hidden_layer_mean_is_the_limit():
    n, n_samples = 8, 4000
    net = networks.mlp((2, n, 1), activation="relu", beta=0.5)
    out = montecarlo.ntk_at_init(net, jax.random.key(1), X, n_samples=n_samples, dtype=jnp.float64)
    k = limits.kernels(X, depth=2, activation="relu", beta=0.5)
    last = montecarlo.mean_sem(out.by_layer[:, 1])
    rest = montecarlo.mean_sem(out.by_layer[:, 0])
    assert np.all(np.abs(last.mean - k.sigma[1]) < 5 * last.sem)
    assert np.all(np.abs(rest.mean - k.theta[0] * k.sigma_dot[1]) < 5 * rest.sem)
    # the samples really fluctuate (width 8): the test above is not vacuous
    assert float(jnp.min(last.sem)) > 1e-3


def test_float32_default():
    net = networks.mlp((2, 4, 1), activation="relu")
    out = montecarlo.ntk_at_init(net, jax.random.key(2), X, n_samples=2)
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
def test_bad_options(kwargs, name):
    net = networks.mlp((2, 4, 1), activation="relu")
    with pytest.raises(ValueError, match=name):
        montecarlo.ntk_at_init(net, jax.random.key(0), X, **kwargs)


def test_bad_inputs():
    net = networks.mlp((2, 4, 1), activation="relu")
    with pytest.raises(ValueError, match="net"):
        montecarlo.ntk_at_init("mlp", jax.random.key(0), X, n_samples=2)
    with pytest.raises(ValueError, match="x1"):
        montecarlo.ntk_at_init(net, jax.random.key(0), X[:, :1], n_samples=2)
    with pytest.raises(ValueError, match="x2"):
        montecarlo.ntk_at_init(net, jax.random.key(0), X, X.at[0, 0].set(jnp.nan), n_samples=2)
    with pytest.raises(ValueError, match="key"):
        montecarlo.ntk_at_init(net, 0, X, n_samples=2)
