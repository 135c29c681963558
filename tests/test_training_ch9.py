"""Tests of training.train(trainable=...): frozen layers stay put, read-out-only training is the
kernel regression of the last-layer kernel."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbook import networks, regression, training


def _setup():
    net = networks.mlp((3, 64, 2), activation="tanh", beta=0.5)
    params = networks.init(jax.random.key(0), net, dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(1), (5, 3), jnp.float64)
    y = jax.random.normal(jax.random.key(2), (5, 2), jnp.float64)
    return net, params, x, y


def test_frozen_layers_do_not_move():
    net, params, x, y = _setup()
    traj = training.train(net, params, x, y, lr=0.5, steps=10, record_at=2, trainable=[-1])
    np.testing.assert_array_equal(traj.params[0].W, params[0].W)
    np.testing.assert_array_equal(traj.params[0].b, params[0].b)
    assert float(jnp.max(jnp.abs(traj.params[1].W - params[1].W))) > 0
    np.testing.assert_array_equal(traj.w_change_fro[-1, 0], 0.0)
    # trainable = every layer is the default
    a = training.train(net, params, x, y, lr=0.5, steps=3, record_at=2)
    b = training.train(net, params, x, y, lr=0.5, steps=3, record_at=2, trainable=[0, 1])
    np.testing.assert_array_equal(a.f_train, b.f_train)


def test_readout_only_is_kernel_descent_with_the_last_layer_kernel():
    net, params, x, y = _setup()
    layers = networks.forward(net, params, x).post[-1]            # α^(L−1)(x), (N, n)
    n = layers.shape[1]
    kern = layers @ layers.T / n + net.beta**2                    # last-layer kernel, exact
    f0 = networks.apply(net, params, x)
    traj = training.train(net, params, x, y, lr=0.7, steps=25, record_at=[25], trainable=[1])
    expect = regression.gradient_descent(kern, y, f0, t=25, lr=0.7).train
    # read-out training is exactly linear: agreement to float64 round-off
    np.testing.assert_allclose(traj.f_train[0], expect, atol=1e-10)


@pytest.mark.parametrize("bad", [[2], [-3], [], ["a"], 1])
def test_trainable_errors(bad):
    net, params, x, y = _setup()
    with pytest.raises(ValueError, match="trainable"):
        training.train(net, params, x, y, lr=0.1, steps=1, trainable=bad)
