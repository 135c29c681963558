"""Depth against width: Θ(x, x) for several depths from one draw, and the fit of the
depth-to-width law (ntkbook.experiments.depth_width; chapter 10)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbook import data, empirical, networks
from ntkbook.experiments import depth_width


@pytest.mark.parametrize(("activation", "beta"), [("tanh", 0.3), ("relu", 0.0)])
def test_ntk_diagonal_by_depth_matches_empirical_ntk_of_each_subnetwork(activation, beta):
    x = 2.0 * data.sphere(3, 5, key=jax.random.key(1), dtype=jnp.float64)
    depths, n, seeds = (2, 3, 5, 6), 7, 2
    got = depth_width.ntk_diagonal_by_depth(
        x, key=jax.random.key(3), width=n, depths=depths, n_samples=seeds, activation=activation,
        beta=beta, sigma_w=1.3
    )
    assert got.shape == (seeds, len(depths), 3)
    widths = (5,) + (n,) * (max(depths) - 1) + (1,)
    deepest = networks.mlp(widths, activation=activation, beta=beta, sigma_w=1.3)
    for s, k in enumerate(jax.random.split(jax.random.key(3), seeds)):
        params = networks.init(deepest, key=k, dtype=jnp.float64)
        for j, depth in enumerate(depths):
            net = networks.mlp(widths[:depth] + (1,), activation=activation, beta=beta,
                               sigma_w=1.3)
            ref = jnp.diag(empirical.ntk(x, net=net, params=params[: depth - 1] + params[-1:],
                                         traced=True))
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


def _log_normal_grid(c, a, widths, depths, seeds, rng):
    """Log-normal samples with Var(log Θ) = c (L − 1)/n + a/n exactly in distribution."""
    out = []
    for n in widths:
        sd = np.sqrt((c * (np.asarray(depths) - 1) + a) / n)
        out.append(np.exp(sd[None, :] * rng.standard_normal((seeds, len(depths)))))
    return out


# The sample second moment of a log-normal with Var(log Θ) of order 1 or more is dominated by rare
# draws (biased low: the reason chapter 10 prefers the log-variance), so the moment ratio is
# checked where Var(log Θ) ≤ 0.9.
@pytest.mark.parametrize(("statistic", "widths"),
                         [("log_variance", (16, 32, 64)), ("moment_ratio", (64, 128, 256))])
def test_fit_depth_width_recovers_a_known_constant(statistic, widths):
    depths = (2, 4, 8, 12)
    samples = _log_normal_grid(5.0, 1.0, widths, depths, 20000, np.random.default_rng(0))
    fit = depth_width.fit_depth_width(samples, widths=widths, depths=depths, statistic=statistic,
                                     n_boot=200)
    assert fit.contains(5.0), fit
    assert fit.ci_high - fit.ci_low < 1.0
    assert fit.stat.shape == fit.beta.shape == (3, 4)
    np.testing.assert_allclose(fit.beta[1], (np.asarray(depths) - 1) / widths[1])


def test_fit_depth_width_rejects_a_wrong_constant():
    widths, depths = (16, 32, 64), (2, 4, 8, 12)
    samples = _log_normal_grid(2.0, 0.0, widths, depths, 20000, np.random.default_rng(1))
    fit = depth_width.fit_depth_width(samples, widths=widths, depths=depths, n_boot=200)
    assert not fit.contains(5.0) and fit.contains(2.0), fit


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"statistic": "mean"}, "statistic"),
        ({"widths": (16,)}, "samples"),
        ({"depths": (2, 2)}, "samples"),
        ({"depths": (1, 2, 3)}, "depths"),
        ({"n_boot": 0}, "n_boot"),
        ({"confidence": 1.0}, "confidence"),
    ],
)
def test_fit_depth_width_rejects_bad_arguments(kwargs, match):
    args = {"widths": (16, 32), "depths": (2, 3, 4)} | kwargs
    samples = [np.ones((5, 3)) + np.arange(5)[:, None], np.ones((5, 3)) + np.arange(5)[:, None]]
    with pytest.raises(ValueError, match=match):
        depth_width.fit_depth_width(samples, **args)


def test_fit_depth_width_rejects_nonpositive_samples():
    bad = [np.zeros((4, 2)), np.ones((4, 2))]
    with pytest.raises(ValueError, match="samples"):
        depth_width.fit_depth_width(bad, widths=(8, 16), depths=(2, 3))
    with pytest.raises(ValueError, match="depths"):
        depth_width.fit_depth_width([np.ones((4, 1))] * 2, widths=(8, 16), depths=(2,))
