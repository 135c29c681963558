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


@pytest.mark.parametrize(
    ("loss", "phase"),
    [
        ([1.0, 0.5, 0.1, 1e-5], "lazy"),
        ([1.0, 3.0, 50.0, 0.2, 1e-6], "catapult"),
        ([1.0, 3.0, np.inf, np.nan], "divergent"),
        ([1.0, 0.9, 0.8], "divergent"),  # not converged within the steps
    ],
)
def test_lr_phase_classifies_curves(loss, phase):
    assert catapult.lr_phase(np.array(loss)) == phase


@pytest.mark.parametrize(
    ("loss", "kwargs", "match"),
    [
        (np.ones(1), {}, "loss"),
        (np.ones((2, 2)), {}, "loss"),
        (np.array([np.nan, 1.0]), {}, "loss"),
        (np.array([0.0, 1.0]), {}, "loss"),
        (np.array([1.0, 0.0]), {"converged": 1.5}, "converged"),
        (np.array([1.0, 0.0]), {"converged": 0.0}, "converged"),
    ],
)
def test_lr_phase_rejects_bad_input(loss, kwargs, match):
    with pytest.raises(ValueError, match=match):
        catapult.lr_phase(loss, **kwargs)


def _catapult_problem(width=512):
    x = jnp.sqrt(8.0) * data.sphere(jax.random.key(1), 16, 8, dtype=jnp.float32)
    y = jnp.sign(x[:, :1])
    net = networks.mlp((8, width, 1), activation="relu")
    params = networks.init(jax.random.key(2), net)
    lam0 = float(catapult.top_eigenvalue(empirical.ntk(net, params, x, traced=True)))
    return net, params, x, y, lam0


def test_lr_phases_finds_the_three_phases_of_a_relu_net_and_stops_at_divergence():
    # η < 2/λ_0: lazy (linear picture); η = 1.5 × 2/λ_0: catapult; η = 8/λ_0 ... : divergent.
    net, params, x, y, lam0 = _catapult_problem()
    lrs = np.array([0.8, 1.5, 4.0, 5.0]) * 2 / lam0
    phases = catapult.lr_phases(net, params, x, y, lrs=lrs, steps=300)
    assert phases == ("lazy", "catapult", "divergent")


@pytest.mark.parametrize("lrs", [[], [0.1, -0.2], [0.2, 0.1], [np.nan]])
def test_lr_phases_rejects_bad_lrs(lrs):
    net, params, x, y, _ = _catapult_problem(width=8)
    with pytest.raises(ValueError, match="lrs"):
        catapult.lr_phases(net, params, x, y, lrs=lrs, steps=3)
