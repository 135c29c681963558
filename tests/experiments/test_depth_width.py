"""Depth against width: Θ(x, x) for several depths from one draw, and the exact law of Θ(x, x)
for bias-free ReLU networks (ntkbook.experiments.depth_width; chapter 10)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as sps

from ntkbook import data, empirical, networks, stats
from ntkbook.experiments import depth_width


@pytest.mark.parametrize(("activation", "beta"), [("tanh", 0.3), ("relu", 0.0)])
def test_ntk_diagonal_by_depth_matches_empirical_ntk_of_each_subnetwork(activation, beta):
    x = 2.0 * data.sphere(3, 5, key=jax.random.key(1), dtype=jnp.float64)
    depths, n, seeds = (2, 3, 5, 6), 7, 2
    got = depth_width.ntk_diagonal_by_depth(
        x,
        key=jax.random.key(3),
        width=n,
        depths=depths,
        n_samples=seeds,
        activation=activation,
        beta=beta,
        sigma_w=1.3,
    )
    assert got.shape == (seeds, len(depths), 3)
    widths = (5,) + (n,) * (max(depths) - 1) + (1,)
    deepest = networks.mlp(widths, activation=activation, beta=beta, sigma_w=1.3)
    for s, k in enumerate(jax.random.split(jax.random.key(3), seeds)):
        params = networks.init(deepest, key=k, dtype=jnp.float64)
        for j, depth in enumerate(depths):
            net = networks.mlp(widths[:depth] + (1,), activation=activation, beta=beta, sigma_w=1.3)
            ref = jnp.diag(
                empirical.ntk(x, net=net, params=params[: depth - 1] + params[-1:], traced=True)
            )
            np.testing.assert_allclose(got[s, j], ref, rtol=1e-12)


def test_ntk_diagonal_by_depth_mean_matches_the_limit():
    # Θ∞^(L)(x, x) of a ReLU net with σ_w² = 2, β = 0 is 2 L ‖x‖²/n_0 (limits.ntk), and the
    # mean over initialisations is close to it at width 64: a check of the scale that does not
    # go through empirical.ntk. 4 standard errors: a false alarm has probability ~1e-4.
    x = jnp.sqrt(4.0) * data.sphere(1, 4, key=jax.random.key(0), dtype=jnp.float32)
    th = depth_width.ntk_diagonal_by_depth(
        x, key=jax.random.key(2), width=64, depths=(2, 4), n_samples=2000, sigma_w=2**0.5
    )
    mean = np.asarray(th[:, :, 0]).mean(axis=0)
    sem = np.asarray(th[:, :, 0]).std(axis=0) / np.sqrt(2000)
    np.testing.assert_array_less(np.abs(mean - np.array([4.0, 8.0])), 4 * sem)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"width": 0}, "width"),
        ({"depths": (1, 2)}, "depths"),
        ({"depths": ()}, "depths"),
        ({"depths": 3}, "depths"),
        ({"n_samples": 0}, "n_samples"),
        ({"activation": "nope"}, "activation"),
        ({"beta": -1.0}, "beta"),
    ],
)
def test_ntk_diagonal_by_depth_rejects_bad_arguments(kwargs, match):
    args = {"width": 4, "depths": (2, 3), "n_samples": 2} | kwargs
    with pytest.raises(ValueError, match=match):
        depth_width.ntk_diagonal_by_depth(jnp.ones((1, 2)), key=jax.random.key(0), **args)


@pytest.mark.parametrize("x", [jnp.ones(3), jnp.array([[1.0, jnp.nan]])])
def test_ntk_diagonal_by_depth_rejects_bad_x(x):
    with pytest.raises(ValueError, match="x"):
        depth_width.ntk_diagonal_by_depth(
            x, key=jax.random.key(0), width=4, depths=(2,), n_samples=2
        )


def test_theta_law_matches_real_networks_in_distribution():
    # The law against an independent computation: Θ(x, x) of real bias-free ReLU networks
    # (σ_w² = 2, ‖x‖² = n_0) by the structured rule above, which is itself checked against
    # empirical.ntk. Width 3, where the law is far from Gaussian (m_l = 0 has probability 1/8).
    # Two-sample Kolmogorov–Smirnov test per depth at level 1e-3/2 (false alarm ≤ 1e-3 in all);
    # with 8000 networks it rejects a change of the law's scale by 10 % at L = 2 and 25 % at L = 4
    # (the deeper law is broader; KS distances ≈ 0.05 and 0.04, the critical value is ≈ 0.02
    # against 50 000 law draws).
    x = 2.0 * data.sphere(1, 4, key=jax.random.key(5), dtype=jnp.float64)  # ‖x‖² = n_0 = 4
    nets = depth_width.ntk_diagonal_by_depth(
        x, key=jax.random.key(6), width=3, depths=(2, 4), n_samples=8000, sigma_w=2**0.5
    )
    for j, (depth, scale) in enumerate(((2, 1.10), (4, 1.25))):
        law = depth_width.theta_law(
            width=3, depth=depth, n_samples=50_000, rng=np.random.default_rng(depth)
        )
        ks = sps.ks_2samp(np.asarray(nets[:, j, 0]), law.theta)
        assert ks.pvalue > 5e-4, (depth, ks)
        shifted = sps.ks_2samp(np.asarray(nets[:, j, 0]), scale * law.theta)
        assert shifted.pvalue < 5e-4, (depth, shifted)


def test_theta_law_two_layers_has_the_closed_form_moments():
    # At L = 2, Θ = (1/n) Σ_j Z_j with E Z = 4 and E Z² = 64 (chapter 10), so E Θ = 4 and
    # E Θ² = (64 + 16 (n − 1))/n, at every width; t tests over 32 batches, α = 1e-3 each.
    law = depth_width.theta_law(width=5, depth=2, n_samples=2**17, rng=np.random.default_rng(0))
    batches = law.theta.reshape(32, -1)
    assert not stats.t_test(batches.mean(axis=1), 4.0).reject
    assert not stats.t_test((batches**2).mean(axis=1), (64 + 16 * 4) / 5).reject
    # and R = 3 exactly: a test that rejects 5 (Hanin & Nica's constant read as a coefficient)
    r = depth_width.relative_variance(batches, width=5, axis=1)
    assert not stats.t_test(r, 3.0).reject and stats.t_test(r, 5.0).reject


def test_theta_law_converges_to_the_first_order_value_and_the_forward_norm_to_its_law():
    # n = 2^14: the O(1/n) correction to R is ~L²/n < 2e-3, below the batches' standard error
    # (≈ 0.03); t tests over 32 batches at α = 1e-3. The forward norm's R is exact at every n.
    law = depth_width.theta_law(width=2**14, depth=4, n_samples=2**18, rng=np.random.default_rng(1))
    r = depth_width.relative_variance(law.theta.reshape(32, -1), width=2**14, axis=1)
    assert depth_width.first_order_law(4) == pytest.approx(10.0)
    assert not stats.t_test(r, depth_width.first_order_law(4)).reject
    assert stats.t_test(r, 5.0 * 3).reject
    small = depth_width.theta_law(width=4, depth=4, n_samples=2**17, rng=np.random.default_rng(2))
    r_fwd = depth_width.relative_variance(small.forward.reshape(32, -1), width=4, axis=1)
    assert depth_width.forward_law(width=4, depth=4) == pytest.approx(4 * (2.25**3 - 1))
    assert not stats.t_test(r_fwd, depth_width.forward_law(width=4, depth=4)).reject


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"width": 0}, "width"),
        ({"depth": 1}, "depth"),
        ({"n_samples": 0}, "n_samples"),
        ({"rng": 3}, "rng"),
    ],
)
def test_theta_law_rejects_bad_arguments(kwargs, match):
    args = {"width": 4, "depth": 2, "n_samples": 2, "rng": np.random.default_rng(0)} | kwargs
    with pytest.raises(ValueError, match=match):
        depth_width.theta_law(**args)


def test_relative_variance_and_laws_reject_bad_arguments():
    with pytest.raises(ValueError, match="samples"):
        depth_width.relative_variance(np.ones(1), width=4)
    with pytest.raises(ValueError, match="width"):
        depth_width.relative_variance(np.ones(3), width=0)
    with pytest.raises(ValueError, match="depth"):
        depth_width.first_order_law(1)
    with pytest.raises(ValueError, match="width"):
        depth_width.forward_law(width=0, depth=3)
