"""empirical: the finite-width NTK — explicit J Jᵀ, agreement of the methods, the layer split,
the sub-network NTK, and convergence to the infinite-width kernel at the n^{-1/2} rate."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from ntkbook import activations, costs, empirical, montecarlo, networks, stats

F64 = jnp.float64
X1 = jax.random.normal(jax.random.key(1), (6, 3), F64)
X2 = jax.random.normal(jax.random.key(2), (5, 3), F64)
# Float64 cross-checks: each entry is a sum of ≲ 100 products of O(1) terms, rounding ≲ 1e-14
# relative; 1e-11 leaves three orders of margin and still catches any wrong factor or index.
TIGHT = 1e-11


def _rel(a: jax.Array, b: jax.Array) -> float:
    """Relative Frobenius distance ‖a − b‖ / ‖b‖."""
    return float(jnp.linalg.norm((a - b).ravel()) / jnp.linalg.norm(b.ravel()))


@partial(jax.jit, static_argnums=0)
def _explicit_ntk(fn, params, x1: jax.Array, x2: jax.Array) -> jax.Array:
    """Θ = J(x1) J(x2)ᵀ from a forward-mode Jacobian of the flat parameter vector (independent
    of every implementation in :mod:`ntkbook.empirical`), shape (N1, N2, n, n)."""
    flat, unravel = ravel_pytree(params)
    j1 = jax.jacfwd(lambda t: fn(unravel(t), x1))(flat)
    j2 = jax.jacfwd(lambda t: fn(unravel(t), x2))(flat)
    return jnp.einsum("akp,bmp->abkm", j1, j2)


def _mlp_out(net: networks.MLP):
    return lambda p, x: networks.forward(net, p, x).pre[-1]


NET_A = networks.mlp((3, 5, 4, 2), activation="tanh", beta=0.3, sigma_w=1.3)
CONFIGS = {
    "ntk-tanh-beta": NET_A,
    "standard-relu": networks.mlp(
        (3, 6, 4, 3), activation="relu", beta=0.5, parametrisation="standard"
    ),
    "depth1-erf": networks.mlp((3, 2), activation="erf", beta=0.7),
    "custom-autodiff-sigma-dot": networks.mlp(
        (3, 6, 2), activation=activations.from_function(lambda z: jnp.sin(z) + 0.1 * z), beta=0.2
    ),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_method_equals_explicit_jjt(name: str) -> None:
    net = CONFIGS[name]
    params = networks.init(net, key=jax.random.key(0), dtype=F64)
    ref = _explicit_ntk(_mlp_out(net), params, X1, X2)
    for method in ("structured", "jacobian", "ntvp"):
        theta = empirical.ntk(X1, X2, net=net, params=params, method=method)
        assert theta.shape == (6, 5, net.widths[-1], net.widths[-1])
        assert _rel(theta, ref) < TIGHT, method
    traced = empirical.ntk(X1, X2, net=net, params=params, traced=True)
    assert _rel(traced, jnp.trace(ref, axis1=2, axis2=3) / net.widths[-1]) < TIGHT


def test_depth_one_is_sigma_one_times_identity() -> None:
    """Notes §4.1: for L = 1, Θ_kk′ = (σ_w² xᵀx′/n_0 + β²) δ_kk′ exactly."""
    net = CONFIGS["depth1-erf"]
    params = networks.init(net, key=jax.random.key(0), dtype=F64)
    sigma1 = X1 @ X2.T / 3 + 0.7**2
    expected = sigma1[:, :, None, None] * jnp.eye(2, dtype=F64)[None, None, :, :]
    assert _rel(empirical.ntk(X1, X2, net=net, params=params), expected) < TIGHT


def test_methods_agree_in_float32_with_batching() -> None:
    """The issue's bar: ≤ 1e-5 relative in float32, whatever the method or block size."""
    net = networks.mlp((8, 64, 64, 3), activation="erf", beta=0.2)
    params = networks.init(net, key=jax.random.key(3), dtype=jnp.float32)
    x1 = jax.random.normal(jax.random.key(4), (7, 8), jnp.float32)
    x2 = jax.random.normal(jax.random.key(5), (5, 8), jnp.float32)
    ref = empirical.ntk(x1, x2, net=net, params=params, method="jacobian")
    assert ref.dtype == jnp.float32
    for method, batch_size in [("structured", None), ("auto", 3), ("ntvp", 4)]:
        theta = empirical.ntk(x1, x2, net=net, params=params, method=method, block_size=batch_size)
        assert theta.shape == ref.shape
        assert _rel(theta, ref) <= 1e-5, (method, batch_size)
    traced = empirical.ntk(
        x1, x2, net=net, params=params, method="jacobian", traced=True, block_size=4
    )
    assert _rel(traced, jnp.trace(ref, axis1=2, axis2=3) / 3) <= 1e-5


def test_layer_split_and_subnetworks() -> None:
    net = NET_A
    params = networks.init(net, key=jax.random.key(0), dtype=F64)
    traced = empirical.ntk(X1, X2, net=net, params=params, traced=True)
    by_layer = empirical.ntk_by_layer(X1, X2, net=net, params=params)
    assert by_layer.shape == (3, 6, 5)
    assert _rel(by_layer.sum(axis=0), traced) < TIGHT
    jac = empirical.ntk_by_layer(X1, X2, net=net, params=params, method="jacobian")
    assert _rel(jac, by_layer) < TIGHT

    # Notes §4.2: the last layer's term is σ_w² α^(L−1)(x)·α^(L−1)(x′)/n_{L−1} + β², computed
    # here from the forward pass alone.
    last, rest = empirical.last_layer_split(X1, X2, net=net, params=params, block_size=4)
    _, l1 = networks.apply(net, params, X1, return_layers=True)
    _, l2 = networks.apply(net, params, X2, return_layers=True)
    expected_last = 1.3**2 * l1.post[-1] @ l2.post[-1].T / 4 + 0.3**2
    assert _rel(last, expected_last) < TIGHT
    assert _rel(last + rest, traced) < TIGHT

    # Sub-network NTKs: Θ^(1) = Σ^(1) exactly; Θ^(L) is the traced NTK; Θ^(2) against autodiff
    # of the preactivation α̃^(2) (mean over its n_2 = 4 units).
    sub1 = empirical.subnetwork_ntk(X1, X2, net=net, params=params, layer=1)
    assert _rel(sub1, 1.3**2 * X1 @ X2.T / 3 + 0.3**2) < TIGHT
    assert _rel(empirical.subnetwork_ntk(X1, X2, net=net, params=params, layer=3), traced) < TIGHT
    pre2 = lambda p, x: networks.forward(net, p, x).pre[1]  # noqa: E731
    ref2 = jnp.trace(_explicit_ntk(pre2, params, X1, X2), axis1=2, axis2=3) / 4
    assert _rel(empirical.subnetwork_ntk(X1, X2, net=net, params=params, layer=2), ref2) < TIGHT
    # untraced: every Θ^(2)_{ii′}, and Θ^(1)_{ii′} = Σ^(1) δ_{ii′} exactly
    full2 = empirical.subnetwork_ntk(X1, X2, net=net, params=params, layer=2, traced=False)
    assert full2.shape == (X1.shape[0], X2.shape[0], 4, 4)
    assert _rel(full2, _explicit_ntk(pre2, params, X1, X2)) < TIGHT
    full1 = empirical.subnetwork_ntk(X1, X2, net=net, params=params, layer=1, traced=False)
    assert _rel(full1, sub1[:, :, None, None] * jnp.eye(full1.shape[-1])[None, None]) < TIGHT


def _toy_model(p: dict, x: jax.Array) -> jax.Array:
    """A model that is not an MLP: a gated two-branch map with a shared first layer."""
    h = x @ p["w"]
    return jnp.tanh(h) @ p["v"] + jnp.sin(h) @ p["u"] * p["s"]


def test_ntk_fn_on_a_generic_model() -> None:
    keys = jax.random.split(jax.random.key(9), 4)
    params = {
        "w": jax.random.normal(keys[0], (3, 7), F64),
        "v": jax.random.normal(keys[1], (7, 2), F64),
        "u": jax.random.normal(keys[2], (7, 2), F64),
        "s": jax.random.normal(keys[3], (), F64),
    }
    ref = _explicit_ntk(_toy_model, params, X1, X2)
    for method in ("jacobian", "ntvp", "auto"):
        out = empirical.ntk_fn(X1, X2, fn=_toy_model, params=params, method=method)
        assert _rel(out, ref) < TIGHT
    traced = empirical.ntk_fn(X1, X2, fn=_toy_model, params=params, traced=True, block_size=4)
    assert _rel(traced, jnp.trace(ref, axis1=2, axis2=3) / 2) < TIGHT


def _relu_ntk_limit(x: np.ndarray, depth: int, beta: float, sigma_w: float) -> np.ndarray:
    """Θ∞^(L) for ReLU from the arc-cosine closed forms (Cho & Saul 2009), written inline so the
    check does not depend on :mod:`ntkbook.limits`:
    E[σ(u)σ(v)] = √(ab)(sin θ + (π − θ) cos θ)/(2π), E[σ̇(u)σ̇(v)] = (π − θ)/(2π)."""
    s = sigma_w**2 * x @ x.T / x.shape[1] + beta**2
    theta = s.copy()
    for _ in range(depth - 1):
        d = np.sqrt(np.diag(s))
        cos = np.clip(s / np.outer(d, d), -1.0, 1.0)
        t = np.arccos(cos)
        s_dot = sigma_w**2 * (np.pi - t) / (2 * np.pi)
        s = sigma_w**2 * np.outer(d, d) * (np.sin(t) + (np.pi - t) * cos) / (2 * np.pi) + beta**2
        theta = theta * s_dot + s
    return theta


def test_wide_relu_ntk_approaches_the_limit_at_the_sqrt_n_rate() -> None:
    """Theorem 1 at finite width: ‖Θ_n − Θ∞‖/‖Θ∞‖ = O(n^{-1/2}).

    Tolerance: for ReLU nets, Var Θ_n(x,x)/Θ∞(x,x)² ≈ exp(5 Σ_l 1/n_l) − 1 ≈ 5 Σ_l 1/n_l
    (Hanin & Nica 2019), i.e. a relative sd √(10/n) for two hidden layers of width n; the mean
    relative error over S seeds is below that r.m.s. value (Jensen), plus a sampling sd
    ≤ √(10/n)/√S. Bound: √(10/n)(1 + 3/√S). The rate is then checked by a log–log fit over the
    two widths: its 99.9 % t interval (ntkbook.stats) must contain −1/2.
    """
    x = np.asarray(jax.random.normal(jax.random.key(21), (5, 4), jnp.float32), dtype=float)
    beta, sigma_w, n_seeds = 0.5, 1.2, 8
    limit = _relu_ntk_limit(x, 3, beta, sigma_w)
    xj = jnp.asarray(x, jnp.float32)
    widths = (256, 1024)
    errors = []
    for n in widths:
        net = networks.mlp((4, n, n, 1), activation="relu", beta=beta, sigma_w=sigma_w)

        def draw(key: jax.Array, net: networks.MLP = net) -> jax.Array:
            return empirical.ntk(xj, net=net, params=networks.init(net, key=key), traced=True)

        thetas = np.asarray(
            montecarlo.ensemble(draw, key=jax.random.key(n), n_samples=n_seeds, block_size=4)
        )
        err = np.linalg.norm(thetas - limit, axis=(1, 2)) / np.linalg.norm(limit)
        assert err.mean() < np.sqrt(10 / n) * (1 + 3 / np.sqrt(n_seeds)), (n, err.mean())
        errors.append(err)
    fit = stats.fit_rate(widths, np.array(errors), confidence=0.999)  # false alarm 1e-3
    assert fit.contains(-0.5), fit


def test_same_inputs_same_kernel_bitwise() -> None:
    net = NET_A
    params = networks.init(net, key=jax.random.key(0))
    a = empirical.ntk(X1, net=net, params=params)
    b = empirical.ntk(X1, net=net, params=networks.init(net, key=jax.random.key(0)))
    np.testing.assert_array_equal(a, b)


def test_bad_inputs() -> None:
    net = NET_A
    params = networks.init(net, key=jax.random.key(0), dtype=F64)
    with pytest.raises(ValueError, match="^net:"):
        empirical.ntk(X1, net=_mlp_out(net), params=params)
    with pytest.raises(ValueError, match="^params:"):
        empirical.ntk(X1, net=net, params=params[:2])
    with pytest.raises(ValueError, match="^x1:"):
        empirical.ntk(X1[:, :2], net=net, params=params)
    with pytest.raises(ValueError, match="^x2:"):
        empirical.ntk(X1, X2[:, :2], net=net, params=params)
    with pytest.raises(ValueError, match="^x2:"):
        empirical.ntk(X1, X2.at[0, 0].set(jnp.inf), net=net, params=params)
    with pytest.raises(ValueError, match="^method:"):
        empirical.ntk(X1, net=net, params=params, method="finite-differences")
    with pytest.raises(ValueError, match="^block_size:"):
        empirical.ntk(X1, net=net, params=params, block_size=0)
    with pytest.raises(ValueError, match="^layer:"):
        empirical.subnetwork_ntk(X1, net=net, params=params, layer=0)
    with pytest.raises(ValueError, match="^layer:"):
        empirical.subnetwork_ntk(X1, net=net, params=params, layer=4)
    with pytest.raises(ValueError, match="^method:"):
        empirical.ntk_by_layer(X1, net=net, params=params, method="ntvp")
    with pytest.raises(ValueError, match="^fn:"):
        empirical.ntk_fn(X1, fn="not a function", params=params)
    with pytest.raises(ValueError, match="^fn:"):
        empirical.ntk_fn(X1, fn=lambda p, x: x.sum(axis=1) * p, params=1.0)
    with pytest.raises(ValueError, match="^method:"):
        empirical.ntk_fn(X1, fn=_mlp_out(net), params=params, method="structured")


def test_ntk_rejects_non_finite_params_as_train_does() -> None:
    net = networks.mlp((3, 4, 1), activation="relu")
    params = networks.init(net, key=jax.random.key(0), dtype=F64)
    bad = (params[0]._replace(W=params[0].W.at[0, 0].set(jnp.nan)), *params[1:])
    with pytest.raises(ValueError, match=r"^params\[0\]: contains NaN"):
        empirical.ntk(X1, net=net, params=bad)


def test_kernel_target_alignment_known_values():
    y = jnp.array([[1.0], [-2.0], [0.5]])
    assert float(empirical.kernel_target_alignment(5.0 * y @ y.T, y)) == pytest.approx(1.0)
    assert float(empirical.kernel_target_alignment(jnp.eye(3), y)) == pytest.approx(3**-0.5)
    stack = jnp.stack([jnp.eye(3), y @ y.T])
    np.testing.assert_allclose(empirical.kernel_target_alignment(stack, y), [3**-0.5, 1.0])


@pytest.mark.parametrize(
    ("theta", "y", "match"),
    [
        (jnp.eye(3), jnp.ones((2, 1)), "y"),
        (jnp.eye(3), jnp.ones((3, 2)), "y"),
        (jnp.eye(3), jnp.zeros((3, 1)), "y"),
        (jnp.ones((3, 2)), jnp.ones((3, 1)), "theta"),
        (jnp.eye(3).at[0, 0].set(jnp.nan), jnp.ones((3, 1)), "theta"),
    ],
)
def test_kernel_target_alignment_rejects_bad_input(theta, y, match):
    with pytest.raises(ValueError, match=match):
        empirical.kernel_target_alignment(theta, y)


def test_subnetwork_ntk_untraced_base_case_and_trace():
    beta = 0.3
    net = networks.mlp((3, 16, 12, 2), activation="erf", beta=beta)
    params = networks.init(net, key=jax.random.key(0), dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(1), (5, 3))
    t1 = empirical.subnetwork_ntk(x, net=net, params=params, layer=1, traced=False)
    want = (x @ x.T / 3 + beta**2)[:, :, None, None] * jnp.eye(16)[None, None]
    np.testing.assert_allclose(t1, want, atol=1e-13)
    t2 = empirical.subnetwork_ntk(x, net=net, params=params, layer=2, traced=False)
    traced = empirical.subnetwork_ntk(x, net=net, params=params, layer=2)
    np.testing.assert_allclose(jnp.trace(t2, axis1=2, axis2=3) / 12, traced, rtol=1e-12)
    with pytest.raises(ValueError, match="layer"):
        empirical.subnetwork_ntk(x, net=net, params=params, layer=4, traced=False)


def test_kernel_op_norm():
    g = jax.random.normal(jax.random.key(0), (12, 5))
    k = g @ g.T
    np.testing.assert_allclose(empirical.kernel_op_norm(k), np.linalg.eigvalsh(k)[-1] / 12)
    # Θ ⊗ Id_k has the same operator norm as Θ
    full = k[:, :, None, None] * jnp.eye(3)[None, None]
    np.testing.assert_allclose(empirical.kernel_op_norm(full), empirical.kernel_op_norm(k))
    # the definition: sup ‖Φ_Θ g‖_{p_in} / ‖g‖_{p_in}, attained at the top eigenvector
    v = np.linalg.eigh(np.asarray(k))[1][:, -1:]
    ratio = costs.norm(k @ v / 12) / costs.norm(v)
    np.testing.assert_allclose(empirical.kernel_op_norm(k), ratio, rtol=1e-12)
    with pytest.raises(ValueError, match="theta"):
        empirical.kernel_op_norm(jnp.ones((3, 4)))
    with pytest.raises(ValueError, match="theta"):
        empirical.kernel_op_norm(jnp.ones((3, 3, 2, 1)))
