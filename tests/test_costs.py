"""Tests of ntkbook.costs: the p_in inner product, the MSE and its function-space gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbook import costs, networks, training


def _fy(seed: int = 0, n: int = 5, k: int = 3):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.normal(size=(n, k))), jnp.asarray(rng.normal(size=(n, k)))


def test_inner_and_norm_are_the_empirical_average():
    f, g = _fy()
    # independent: a Python loop over the N points
    want = sum(float(np.dot(f[i], g[i])) for i in range(f.shape[0])) / f.shape[0]
    assert float(costs.inner(f, g)) == pytest.approx(want, rel=1e-14)
    assert float(costs.norm(f)) ** 2 == pytest.approx(float(costs.inner(f, f)), rel=1e-14)


def test_mse_gradient_is_the_p_in_gradient():
    """C(f + εh) − C(f) = ε⟨d, h⟩_{p_in} + O(ε²): the defining property of d = f − y."""
    f, y = _fy(1)
    h, _ = _fy(2)
    d = costs.mse_grad(f, y)
    # central difference: error O(ε²) with ε = 1e-4 → ~1e-8 relative, and C is quadratic so the
    # central difference is exact up to round-off (~1e-16 / ε²·ε = 1e-12)
    eps = 1e-4
    fd = (costs.mse(f + eps * h, y) - costs.mse(f - eps * h, y)) / (2 * eps)
    assert float(fd) == pytest.approx(float(costs.inner(d, h)), rel=1e-9)


def test_mse_normalise_false_is_the_plain_sum():
    f, y = _fy(3)
    want = 0.5 * float(jnp.sum((f - y) ** 2))
    assert float(costs.mse(f, y, normalise=False)) == pytest.approx(want, rel=1e-14)
    assert float(costs.mse(f, y)) == pytest.approx(want / f.shape[0], rel=1e-14)


def test_from_pointwise_matches_mse_and_autodiff():
    f, y = _fy(4)
    c = costs.from_pointwise(lambda fi, yi: 0.5 * jnp.sum((fi - yi) ** 2))
    assert float(c.value(f, y)) == pytest.approx(float(costs.mse(f, y)), rel=1e-14)
    np.testing.assert_allclose(c.grad(f, y), costs.mse_grad(f, y), rtol=1e-14)
    # for any pointwise cost, N ∂C/∂f (Euclidean) is the p_in gradient
    huber = costs.from_pointwise(lambda fi, yi: jnp.sum(jnp.sqrt(1 + (fi - yi) ** 2) - 1))
    euclid = jax.grad(lambda g: huber.value(g, y))(f) * f.shape[0]
    np.testing.assert_allclose(huber.grad(f, y), euclid, rtol=1e-13)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda f, y: costs.inner(f, y[:, :2]), "g"),
        (lambda f, y: costs.mse(f, y[:4]), "y"),
        (lambda f, y: costs.mse(f.at[0, 0].set(jnp.nan), y), "f"),
        (lambda f, y: costs.norm(f[:, 0]), "f"),
        (lambda f, y: costs.from_pointwise(3.0), "loss"),
    ],
)
def test_bad_inputs_name_the_argument(call, name):
    f, y = _fy()
    with pytest.raises(ValueError, match=f"^{name}"):
        call(f, y)


def test_scaled_mse_value_gradient_and_training():
    f = jnp.array([[1.0], [3.0]])
    y = jnp.array([[0.5], [0.0]])
    cost = costs.scaled_mse(0.5)
    np.testing.assert_allclose(cost.value(f, y), 0.5 * np.mean(np.array([0.0, 1.5]) ** 2))
    np.testing.assert_allclose(
        cost.grad(f, y),
        jax.vmap(jax.grad(lambda fi, yi: 0.5 * jnp.sum((0.5 * fi - yi) ** 2)))(f, y),
    )
    np.testing.assert_allclose(costs.scaled_mse(1.0).grad(f, y), costs.mse_grad(f, y))
    # κ = 1 is plain least squares: the same trajectory as the default cost
    net = networks.mlp((2, 8, 1), activation="tanh")
    p = networks.init(net, key=jax.random.key(0), dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(1), (4, 2))
    yy = jnp.ones((4, 1))
    a = training.train(x, yy, net=net, params=p, lr=0.1, steps=3, record_at=2)
    b = training.train(
        x, yy, net=net, params=p, lr=0.1, steps=3, record_at=2, cost=costs.scaled_mse(1.0)
    )
    np.testing.assert_allclose(a.f_train, b.f_train, rtol=1e-12)
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-12)
    with pytest.raises(ValueError, match="kappa"):
        costs.scaled_mse(0.0)
