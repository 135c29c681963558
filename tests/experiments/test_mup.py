"""μP / mean-field training (ntkbook.experiments.mup)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbook import empirical, networks, training
from ntkbook.experiments import mup


def test_mup_scale_and_its_errors():
    assert mup.mup_scale(networks.mlp((3, 16, 1))) == pytest.approx(0.25)
    assert mup.mup_scale(networks.mlp((3, 9, 64, 2))) == pytest.approx(1 / 8)
    with pytest.raises(ValueError, match="net"):
        mup.mup_scale(networks.mlp((3, 16, 1), parametrisation="standard"))
    with pytest.raises(ValueError, match="net"):
        mup.mup_scale((3, 16, 1))


def test_mup_training_is_gradient_descent_on_the_mean_field_network():
    # training.train with output_scale=mup_scale(net) and lr η n against a reference: plain
    # autodiff GD on f_μP = f_ntk / √n with the learning rate η n.
    net = networks.mlp((3, 16, 2), activation="tanh", beta=0.5)
    params = networks.init(net, key=jax.random.key(0), dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(1), (5, 3), dtype=jnp.float64)
    y = jax.random.normal(jax.random.key(2), (5, 2), dtype=jnp.float64)
    eta, steps, n = 0.3, 4, 16

    def f_mup(p, z):
        return networks.forward(net, p, z).pre[-1] / jnp.sqrt(n)

    def loss(p):
        return 0.5 * jnp.mean(jnp.sum((f_mup(p, x) - y) ** 2, axis=1))

    p = params
    for _ in range(steps):
        p = jax.tree.map(lambda a, g: a - eta * n * g, p, jax.grad(loss)(p))
    traj = training.train(
        x, y, net=net, params=params, lr=eta * n, steps=steps, record_at=(0, steps),
        x_test=x[:2], record_ntk=True, output_scale=mup.mup_scale(net),
    )  # fmt: skip
    np.testing.assert_allclose(traj.f_train[-1], f_mup(p, x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(traj.f_test[-1], f_mup(p, x[:2]), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(traj.loss[-1], loss(p), rtol=1e-12)
    np.testing.assert_allclose(traj.t, [0.0, eta * n * steps])
    for a, b in zip(jax.tree.leaves(traj.params), jax.tree.leaves(p), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    # its kernel is the NTK of f_μP itself, by generic autodiff at the final parameters
    want = empirical.ntk_fn(x, fn=f_mup, params=p, traced=True)
    np.testing.assert_allclose(traj.ntk[-1], want, rtol=1e-10, atol=1e-12)


def test_output_scale_must_be_positive():
    net = networks.mlp((2, 4, 1))
    params = networks.init(net, key=jax.random.key(0))
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="output_scale"):
            training.train(
                jnp.ones((2, 2)), jnp.ones((2, 1)), net=net, params=params, lr=0.1, steps=1,
                output_scale=bad,
            )  # fmt: skip


def test_activation_flips_counts_sign_changes():
    net = networks.mlp((2, 3, 1), activation="relu")
    params = networks.init(net, key=jax.random.key(0), dtype=jnp.float64)
    x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    assert float(mup.activation_flips(x, net=net, params=params, params0=params)[0]) == 0.0
    flipped = (networks.Dense(-params[0].W, params[0].b),) + params[1:]
    assert float(mup.activation_flips(x, net=net, params=flipped, params0=params)[0]) == 1.0
    half = (networks.Dense(params[0].W.at[:, 0].multiply(-1.0), params[0].b),) + params[1:]
    flips = mup.activation_flips(x, net=net, params=half, params0=params)
    assert float(flips[0]) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="net"):
        mup.activation_flips(x, net=networks.mlp((2, 1)), params=params[:1], params0=params[:1])
    with pytest.raises(ValueError, match="x"):
        mup.activation_flips(jnp.ones((2, 3)), net=net, params=params, params0=params)
