"""networks: the notes' MLP — forward pass, parametrisations, initialisation, validation."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbook import montecarlo, networks
from ntkbook.networks import Dense

F64 = jnp.float64


def _numpy_forward(net: networks.MLP, params, x: np.ndarray) -> np.ndarray:
    """Independent NumPy forward pass of the notes' formula (NTK or standard parametrisation)."""
    a = np.asarray(x, dtype=float)
    for l, layer in enumerate(params):  # noqa: E741 (the notes' index)
        W, b = np.asarray(layer.W), np.asarray(layer.b)
        if net.parametrisation == "ntk":
            z = net.sigma_w / np.sqrt(W.shape[0]) * a @ W + net.beta * b
        else:
            z = a @ W + b
        a = np.maximum(z, 0.0) if l < net.depth - 1 else z
    return a


def _relu_nngp(x: np.ndarray, depth: int, beta: float, sigma_w: float) -> np.ndarray:
    """Σ^(L) of a ReLU network by the arc-cosine closed form (Cho & Saul 2009), inline."""
    s = sigma_w**2 * x @ x.T / x.shape[1] + beta**2
    for _ in range(depth - 1):
        d = np.sqrt(np.diag(s))
        cos = np.clip(s / np.outer(d, d), -1.0, 1.0)
        t = np.arccos(cos)
        s = sigma_w**2 * np.outer(d, d) * (np.sin(t) + (np.pi - t) * cos) / (2 * np.pi) + beta**2
    return s


@pytest.mark.parametrize("parametrisation", ["ntk", "standard"])
def test_forward_matches_numpy_and_layers(parametrisation: str) -> None:
    net = networks.mlp((3, 7, 5, 2), beta=0.4, sigma_w=1.3, parametrisation=parametrisation)
    params = networks.init(net, key=jax.random.key(0), dtype=F64)
    x = jax.random.normal(jax.random.key(1), (4, 3), F64)
    f, layers = networks.apply(net, params, x, return_layers=True)
    assert f.shape == (4, 2)
    # Float64 rounding only: ~1e-16 per operation on O(1) values, summed over ≤ 7 terms.
    np.testing.assert_allclose(f, _numpy_forward(net, params, x), rtol=1e-12, atol=1e-12)
    assert [p.shape for p in layers.pre] == [(4, 7), (4, 5), (4, 2)]
    assert [p.shape for p in layers.post] == [(4, 3), (4, 7), (4, 5)]
    np.testing.assert_array_equal(layers.post[0], x)
    for pre, post in zip(layers.pre[:-1], layers.post[1:], strict=True):
        np.testing.assert_array_equal(post, jax.nn.relu(pre))
    np.testing.assert_array_equal(layers.pre[-1], f)


def test_same_key_bitwise_and_different_keys_differ() -> None:
    net = networks.mlp((3, 16, 1))
    p1 = networks.init(net, key=jax.random.key(7))
    p2 = networks.init(net, key=jax.random.key(7))
    p3 = networks.init(net, key=jax.random.key(8))
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(p1[0].W, p3[0].W)


def test_init_moments() -> None:
    """NTK: W, b ~ N(0, 1); standard: W ~ N(0, σ_w²/n_l), b ~ N(0, β²)."""
    n_in, n_out = 400, 300
    ntk_net = networks.mlp((n_in, n_out), beta=0.5, sigma_w=2.0)
    std_net = networks.mlp((n_in, n_out), beta=0.5, sigma_w=2.0, parametrisation="standard")
    (w_ntk,) = networks.init(ntk_net, key=jax.random.key(3), dtype=F64)
    (w_std,) = networks.init(std_net, key=jax.random.key(3), dtype=F64)
    m = n_in * n_out
    # Sample mean of m iid N(0, v): sd √(v/m); sample variance: sd v √(2/m). 5 sd bounds.
    assert abs(float(w_ntk.W.mean())) < 5 / np.sqrt(m)
    assert abs(float(w_ntk.W.var()) - 1.0) < 5 * np.sqrt(2 / m)
    v = 2.0**2 / n_in
    assert abs(float(w_std.W.var()) - v) < 5 * v * np.sqrt(2 / m)
    assert abs(float(w_std.b.var()) - 0.25) < 5 * 0.25 * np.sqrt(2 / n_out)


def test_ntk_and_standard_same_function_under_same_key() -> None:
    """Same key: W_std = σ_w W_ntk/√n_l and b_std = β b_ntk, so the two nets are one function."""
    kw = dict(beta=0.3, sigma_w=1.4, activation="tanh")
    ntk_net = networks.mlp((5, 64, 32, 3), **kw)
    std_net = networks.mlp((5, 64, 32, 3), parametrisation="standard", **kw)
    key = jax.random.key(11)
    x = jax.random.normal(jax.random.key(12), (6, 5), F64)
    f_ntk = networks.apply(ntk_net, networks.init(ntk_net, key=key, dtype=F64), x)
    f_std = networks.apply(std_net, networks.init(std_net, key=key, dtype=F64), x)
    # The two differ only in the order of a scalar multiplication: float64 rounding, ≲ 1e-14.
    np.testing.assert_allclose(f_ntk, f_std, rtol=1e-12, atol=1e-12)


def test_output_covariance_at_init_is_the_nngp() -> None:
    """Monte Carlo over initialisations ↔ arc-cosine closed form Σ^(L) (standard param.; the
    NTK parametrisation is the same function under the same key, tested above)."""
    width, n_samples, beta, sigma_w = 64, 512, 0.5, 1.2
    net = networks.mlp((3, width, width, 8), beta=beta, sigma_w=sigma_w, parametrisation="standard")
    x = np.array([[1.0, 0.0, 0.5], [0.2, -1.0, 0.3], [-0.7, 0.4, 1.1]])
    xj = jnp.asarray(x)

    def outputs(key: jax.Array) -> jax.Array:
        return networks.forward(net, networks.init(net, key=key, dtype=F64), xj).pre[-1]

    f = montecarlo.ensemble(outputs, key=jax.random.key(5), n_samples=n_samples, block_size=256)
    # The 8 outputs are iid given the hidden layer: S·n_L = 4096 draws of f(x) ∈ R^3.
    f = np.asarray(f).transpose(0, 2, 1).reshape(-1, 3)
    cov = f.T @ f / f.shape[0]
    ref = _relu_nngp(x, depth=3, beta=beta, sigma_w=sigma_w)
    # Sample second moment of M = 4096 Gaussians: sd ≤ √(2/M)·Σ ≈ 0.022 Σ(x,x) (plus the O(1/√n)
    # width fluctuation of the conditional variance, shared by the 8 outputs: relative sd
    # ≈ √(10/n) (Hanin & Nica 2019, two hidden layers), over S nets: √(10/n)/√S ≈ 0.017); the
    # finite-width mean is exact for ReLU on the diagonal, O(1/n) off it.
    # Tolerance: 5 × the summed sd ≈ 0.20 of the diagonal scale.
    scale = np.sqrt(np.outer(np.diag(ref), np.diag(ref)))
    sd = np.sqrt(2 / f.shape[0]) + np.sqrt(10 / width) / np.sqrt(n_samples)
    assert np.max(np.abs(cov - ref) / scale) < 5 * sd


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(widths=[3]), "widths"),
        (dict(widths=[3, 0]), "widths[1]"),
        (dict(widths=[3, 2.5]), "widths[1]"),
        (dict(widths=5), "widths"),
        (dict(widths=[3, 2], parametrisation="mean-field"), "parametrisation"),
        (dict(widths=[3, 2], beta=-1.0), "beta"),
        (dict(widths=[3, 2], sigma_w=0.0), "sigma_w"),
        (dict(widths=[3, 2], activation="swishy"), "activation"),
    ],
)
def test_mlp_bad_arguments(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(name) + ":"):
        networks.mlp(**kwargs)


def test_apply_bad_inputs() -> None:
    net = networks.mlp((3, 4, 2))
    params = networks.init(net, key=jax.random.key(0))
    with pytest.raises(ValueError, match="^x:"):
        networks.apply(net, params, jnp.ones((5, 4)))
    with pytest.raises(ValueError, match="^x:"):
        networks.apply(net, params, jnp.ones(3))
    with pytest.raises(ValueError, match="^x:"):
        networks.apply(net, params, jnp.array([[1.0, jnp.nan, 0.0]]))
    with pytest.raises(ValueError, match="^params:"):
        networks.apply(net, params[:1], jnp.ones((5, 3)))
    with pytest.raises(ValueError, match=r"^params\[1\]:"):
        networks.apply(net, (params[0], Dense(jnp.ones((4, 3)), jnp.ones(3))), jnp.ones((5, 3)))
    with pytest.raises(ValueError, match=r"^params\[0\]:"):
        networks.apply(net, ({"W": 1}, params[1]), jnp.ones((5, 3)))


def test_init_names_key_on_a_bad_key() -> None:
    net = networks.mlp((3, 4, 1), activation="relu")
    for bad in (0, np.zeros(2, np.int32), jax.random.split(jax.random.key(0), 2)):
        with pytest.raises(ValueError, match="^key:"):
            networks.init(net, key=bad)
