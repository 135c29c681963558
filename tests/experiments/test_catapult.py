"""Catapult, lazy and divergent phases of large learning rates (ntkbook.experiments.catapult)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbook import data, empirical, networks
from ntkbook.experiments import catapult


def test_top_eigenvalue_matches_eigvalsh_and_marks_diverged_records():
    a = jax.random.normal(jax.random.key(0), (5, 5), dtype=jnp.float64)
    k = a @ a.T
    want = np.linalg.eigvalsh(np.asarray(k))[-1]
    assert float(catapult.top_eigenvalue(k)) == pytest.approx(want / 5, rel=1e-12)
    assert float(catapult.top_eigenvalue(k, normalise=False)) == pytest.approx(want, rel=1e-12)
    stack = jnp.stack([k, k.at[0, 0].set(jnp.inf)])
    out = catapult.top_eigenvalue(stack)
    assert out.shape == (2,) and out[0] == pytest.approx(want / 5) and np.isnan(out[1])


@pytest.mark.parametrize("bad", [np.ones(3), np.ones((2, 3)), np.ones((2, 2, 3))])
def test_top_eigenvalue_rejects_non_square(bad):
    with pytest.raises(ValueError, match="ntk"):
        catapult.top_eigenvalue(bad)


_K = np.arange(301)


@pytest.mark.parametrize(
    ("loss", "phase"),
    [
        (0.9**_K, "lazy"),  # geometric decay
        (1.0 - 1e-4 * _K, "lazy"),  # slow convergence, far from 1e-3 (was "divergent")
        (np.r_[1.0, 10.0, 100.0, 100.0 * 0.9 ** _K[1:]], "catapult"),  # spike, then decay
        (np.r_[1.0, 50.0, 50.0 * 0.995 ** _K[1:]], "catapult"),  # still above C_0 but falling
        (1.05**_K, "divergent"),  # exponential growth
        (np.r_[1.0, 3.0, np.inf, np.full(20, np.nan)], "divergent"),  # overflow
        (np.r_[1.0, 2.0 * np.ones(300)], "divergent"),  # stuck above C_0: no decrease
        (np.r_[1.0 - 1e-3 * _K[:200], 0.8 + 1e-3 * _K[:101]], "lazy"),  # rises late, below C_0
    ],
)
def test_lr_phase_classifies_constructed_curves(loss, phase):
    assert catapult.lr_phase(np.asarray(loss)) == phase


def test_lr_phase_reads_the_growth_over_the_window():
    # above C_0 at the end: falling over the last 5 records (catapult) but growing over the
    # last 20 (divergent) — the window decides
    loss = np.r_[1.0, 2.0 * 1.01 ** np.arange(30), 2.0 * 1.01**29 * 0.99 ** np.arange(1, 6)]
    assert catapult.lr_phase(loss, window=5) == "catapult"
    assert catapult.lr_phase(loss, window=20) == "divergent"


@pytest.mark.parametrize(
    ("loss", "kwargs", "match"),
    [
        (np.ones(1), {}, "loss"),
        (np.ones((2, 2)), {}, "loss"),
        (np.array([np.nan, 1.0]), {}, "loss"),
        (np.array([0.0, 1.0]), {}, "loss"),
        (np.ones(5), {"window": 5}, "window"),
        (np.ones(5), {"window": 0}, "window"),
        (np.ones(5), {"window": 1.5}, "window"),
    ],
)
def test_lr_phase_rejects_bad_input(loss, kwargs, match):
    with pytest.raises(ValueError, match=match):
        catapult.lr_phase(loss, **kwargs)


def _catapult_problem(width=512):
    x = jnp.sqrt(8.0) * data.sphere(16, 8, key=jax.random.key(1), dtype=jnp.float32)
    y = jnp.sign(x[:, :1])
    net = networks.mlp((8, width, 1), activation="relu")
    params = networks.init(net, key=jax.random.key(2))
    lam0 = float(catapult.top_eigenvalue(empirical.ntk(x, net=net, params=params, traced=True)))
    return net, params, x, y, lam0


def test_lr_phases_finds_the_three_phases_of_a_relu_net_and_stops_at_divergence():
    # η < 2/λ_0: lazy (linear picture); η = 1.5 × 2/λ_0: catapult; η = 8/λ_0 ... : divergent.
    net, params, x, y, lam0 = _catapult_problem()
    lrs = np.array([0.8, 1.5, 4.0, 5.0]) * 2 / lam0
    phases = catapult.lr_phases(x, y, net=net, params=params, lrs=lrs, steps=300)
    assert phases == ("lazy", "catapult", "divergent")


@pytest.mark.parametrize("lrs", [[], [0.1, -0.2], [0.2, 0.1], [np.nan]])
def test_lr_phases_rejects_bad_lrs(lrs):
    net, params, x, y, _ = _catapult_problem(width=8)
    with pytest.raises(ValueError, match="lrs"):
        catapult.lr_phases(x, y, net=net, params=params, lrs=lrs, steps=3)
