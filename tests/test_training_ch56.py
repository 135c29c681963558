"""Tests of the chapter 5–6 quantities in ntkbook.training and ntkbook.empirical."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbook import costs, empirical, networks, training
from ntkbook.experiments import lemma1

BETA = 0.3


@pytest.fixture(scope="module")
def setup():
    net = networks.mlp((3, 16, 12, 2), activation="erf", beta=BETA)
    params = networks.init(jax.random.key(0), net, dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(1), (5, 3))
    return net, params, x


def _moved(net, params, x, steps=5):
    y = jnp.zeros((x.shape[0], net.widths[-1]))
    return training.train(net, params, x, y, lr=0.5, steps=steps, record_at=2).params


# ------------------------------------------------------------------ layer_directions


def test_layer_directions_give_the_weight_gradients(setup):
    net, params, x = setup
    d = jax.random.normal(jax.random.key(2), (5, 2))

    def cost(p):
        f = networks.forward(net, p, x).pre[-1]
        return jnp.mean(jnp.sum(f * d, axis=1))  # ∂C/∂f = d (p_in convention)

    grads = jax.grad(cost)(params)
    dirs = lemma1.layer_directions(net, params, x, d)
    post = networks.forward(net, params, x).post
    assert [q.shape for q in dirs] == [(5, 16), (5, 12), (5, 2)]
    np.testing.assert_array_equal(dirs[-1], d)
    for ell in range(net.depth):
        want = post[ell].T @ dirs[ell] / (x.shape[0] * np.sqrt(net.widths[ell]))
        np.testing.assert_allclose(grads[ell].W, want, atol=1e-14)


def test_layer_directions_bound_by_lipschitz_and_op_norm(setup):
    net, params, x = setup
    d = jax.random.normal(jax.random.key(3), (5, 2))
    dirs = lemma1.layer_directions(net, params, x, d)
    c = 2 / np.sqrt(np.pi)
    for ell in range(1, net.depth):
        w = float(training.op_norm(params[ell].W)) / np.sqrt(net.widths[ell])
        assert float(costs.norm(dirs[ell - 1])) <= c * w * float(costs.norm(dirs[ell])) + 1e-12


def test_layer_directions_errors(setup):
    net, params, x = setup
    with pytest.raises(ValueError, match="d"):
        lemma1.layer_directions(net, params, x, jnp.ones((4, 2)))
    with pytest.raises(ValueError, match="d"):
        lemma1.layer_directions(net, params, x, jnp.ones((5, 3)))
    with pytest.raises(ValueError, match="x"):
        lemma1.layer_directions(net, params, jnp.ones((5, 4)), jnp.ones((5, 2)))
    std = networks.mlp((3, 16, 12, 2), activation="erf", parametrisation="standard")
    with pytest.raises(ValueError, match="net"):
        lemma1.layer_directions(std, networks.init(jax.random.key(0), std), x, jnp.ones((5, 2)))


# ------------------------------------------------------------------ neuron_changes


def test_neuron_changes_at_zero_time_and_by_hand(setup):
    net, params, x = setup
    at0 = lemma1.neuron_changes(net, params, params, x)
    np.testing.assert_array_equal(at0.w_change, 0.0)
    np.testing.assert_array_equal(at0.pre_change, 0.0)
    np.testing.assert_allclose(at0.w0, np.linalg.norm(params[2].W, axis=1))
    act = np.asarray(networks.forward(net, params, x).post[2])
    np.testing.assert_allclose(at0.act0, np.sqrt(np.mean(act**2, axis=0)))
    moved = _moved(net, params, x)
    ch = lemma1.neuron_changes(net, moved, params, x, layer=1)
    pre = [np.asarray(networks.forward(net, p, x).pre[0]) for p in (moved, params)]
    np.testing.assert_allclose(ch.pre_change, np.sqrt(np.mean((pre[0] - pre[1]) ** 2, axis=0)))
    np.testing.assert_allclose(ch.w_change, np.linalg.norm(moved[1].W - params[1].W, axis=1))
    a = ch.gronwall_a(2.0)
    np.testing.assert_allclose(a, ch.act0 + 2 * ch.pre_change + ch.w0 + ch.w_change)


def test_neuron_changes_errors(setup):
    net, params, x = setup
    with pytest.raises(ValueError, match="layer"):
        lemma1.neuron_changes(net, params, params, x, layer=3)
    with pytest.raises(ValueError, match="params"):
        lemma1.neuron_changes(net, params, params[:2], x)
    one = networks.mlp((3, 2))
    p1 = networks.init(jax.random.key(0), one)
    with pytest.raises(ValueError, match="net"):
        lemma1.neuron_changes(one, p1, p1, x)
    with pytest.raises(ValueError, match="c"):
        lemma1.neuron_changes(net, params, params, x).gronwall_a(0.0)


# ------------------------------------------------------------------ lemma1_norms


def test_lemma1_norms_by_hand(setup):
    net, params, x = setup
    moved = _moved(net, params, x)
    q = lemma1.lemma1_norms(net, moved, params, x)
    assert q.a.shape == (2,)
    for k in (1, 2):
        s = 1 / np.sqrt(net.widths[k])
        post = [np.asarray(networks.forward(net, p, x).post[k]) for p in (moved, params)]
        pre = [np.asarray(networks.forward(net, p, x).pre[k - 1]) for p in (moved, params)]
        np.testing.assert_allclose(q.a[k - 1], s * np.sqrt(np.mean(np.sum(post[0] ** 2, 1))))
        np.testing.assert_allclose(q.a0[k - 1], s * np.sqrt(np.mean(np.sum(post[1] ** 2, 1))))
        np.testing.assert_allclose(
            q.a_change[k - 1], s * np.sqrt(np.mean(np.sum((pre[0] - pre[1]) ** 2, 1))))
        # these matrices are small, so op_norm is exact: compare with an SVD
        np.testing.assert_allclose(q.w[k - 1], s * np.linalg.norm(moved[k].W, 2), rtol=1e-10)
        np.testing.assert_allclose(q.w0[k - 1], s * np.linalg.norm(params[k].W, 2), rtol=1e-10)
        np.testing.assert_allclose(
            q.w_change[k - 1], s * np.linalg.norm(moved[k].W - params[k].W, 2), rtol=1e-10)
    big_a = q.a0 + 1.5 * q.a_change + q.w0 + q.w_change
    np.testing.assert_allclose(q.big_a(1.5), big_a.sum())
    at0 = lemma1.lemma1_norms(net, params, params, x)
    np.testing.assert_array_equal(at0.a_change, 0.0)
    np.testing.assert_array_equal(at0.w_change, 0.0)


def test_lemma1_norms_errors(setup):
    net, params, x = setup
    with pytest.raises(ValueError, match="x"):
        lemma1.lemma1_norms(net, params, params, jnp.full((5, 3), jnp.nan))
    with pytest.raises(ValueError, match="c"):
        lemma1.lemma1_norms(net, params, params, x).big_a(-1.0)


# ------------------------------------------------------------------ singular_values


def test_singular_values_exact_and_iterated():
    a = jax.random.normal(jax.random.key(0), (300, 200), jnp.float64)
    low = a[:, :6] @ jax.random.normal(jax.random.key(1), (6, 200), jnp.float64)  # rank 6
    exact = np.linalg.svd(np.asarray(low), compute_uv=False)
    got = training.singular_values(low, k=8)
    np.testing.assert_allclose(got[:6], exact[:6], rtol=1e-10)
    assert float(got[6]) < 1e-9 * float(got[0])
    small = a[:10]
    np.testing.assert_allclose(training.singular_values(small, k=3),
                               np.linalg.svd(np.asarray(small), compute_uv=False)[:3],
                               rtol=1e-10)
    full = np.linalg.svd(np.asarray(a), compute_uv=False)
    top = training.singular_values(a, k=3)
    assert np.all(np.asarray(top) <= full[:3] * (1 + 1e-12))  # Ritz values are lower bounds
    np.testing.assert_allclose(top[0], full[0], rtol=2e-2)


def test_singular_values_errors():
    with pytest.raises(ValueError, match="k"):
        training.singular_values(jnp.ones((3, 4)), k=4)
    with pytest.raises(ValueError, match="a"):
        training.singular_values(jnp.ones(3), k=1)
    with pytest.raises(ValueError, match="a"):
        training.singular_values(jnp.full((3, 3), jnp.inf), k=1)


# ------------------------------------------------------------------ scaled_mse


def test_scaled_mse_value_gradient_and_training():
    f = jnp.array([[1.0], [3.0]])
    y = jnp.array([[0.5], [0.0]])
    cost = costs.scaled_mse(0.5)
    np.testing.assert_allclose(cost.value(f, y), 0.5 * np.mean(np.array([0.0, 1.5]) ** 2))
    np.testing.assert_allclose(cost.grad(f, y), jax.vmap(jax.grad(
        lambda fi, yi: 0.5 * jnp.sum((0.5 * fi - yi) ** 2)))(f, y))
    np.testing.assert_allclose(costs.scaled_mse(1.0).grad(f, y), costs.mse_grad(f, y))
    # κ = 1 is plain least squares: the same trajectory as the default cost
    net = networks.mlp((2, 8, 1), activation="tanh")
    p = networks.init(jax.random.key(0), net, dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(1), (4, 2))
    yy = jnp.ones((4, 1))
    a = training.train(net, p, x, yy, lr=0.1, steps=3, record_at=2)
    b = training.train(net, p, x, yy, lr=0.1, steps=3, record_at=2,
                       cost=costs.scaled_mse(1.0))
    np.testing.assert_allclose(a.f_train, b.f_train, rtol=1e-12)
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-12)
    with pytest.raises(ValueError, match="kappa"):
        costs.scaled_mse(0.0)


# ------------------------------------------------------------------ empirical (Lemma 1)


def test_subnetwork_ntk_untraced_base_case_and_trace(setup):
    net, params, x = setup
    t1 = empirical.subnetwork_ntk(net, params, x, layer=1, traced=False)
    want = (x @ x.T / 3 + BETA**2)[:, :, None, None] * jnp.eye(16)[None, None]
    np.testing.assert_allclose(t1, want, atol=1e-13)
    t2 = empirical.subnetwork_ntk(net, params, x, layer=2, traced=False)
    traced = empirical.subnetwork_ntk(net, params, x, layer=2)
    np.testing.assert_allclose(jnp.trace(t2, axis1=2, axis2=3) / 12, traced, rtol=1e-12)
    with pytest.raises(ValueError, match="layer"):
        empirical.subnetwork_ntk(net, params, x, layer=4, traced=False)


def test_ntk_recursion_matches_autodiff(setup):
    net, params, x = setup
    moved = _moved(net, params, x, steps=10)
    for p in (params, moved):
        for ell in (1, 2):
            theta = empirical.subnetwork_ntk(net, p, x, layer=ell, traced=False)
            got = lemma1.ntk_recursion(net, p, x, theta, layer=ell)
            want = empirical.subnetwork_ntk(net, p, x, layer=ell + 1, traced=False)
            np.testing.assert_allclose(got, want, atol=1e-12)


def test_ntk_recursion_needs_the_transpose():
    # with W^(l) square but not symmetric, the untransposed product of the notes' display is
    # a different matrix: the recursion must not be invariant under W → Wᵀ
    net = networks.mlp((2, 6, 6, 1), activation="erf", beta=BETA)
    p = networks.init(jax.random.key(5), net, dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(6), (3, 2))
    theta = empirical.subnetwork_ntk(net, p, x, layer=1, traced=False)
    flipped = (p[0], networks.Dense(p[1].W.T, p[1].b), p[2])
    a = lemma1.ntk_recursion(net, p, x, theta, layer=1)
    b = lemma1.ntk_recursion(net, flipped, x, theta, layer=1)
    assert float(jnp.max(jnp.abs(a - b))) > 1e-3


def test_ntk_recursion_errors(setup):
    net, params, x = setup
    theta = empirical.subnetwork_ntk(net, params, x, layer=1, traced=False)
    with pytest.raises(ValueError, match="theta"):
        lemma1.ntk_recursion(net, params, x, theta[:, :, :3, :3], layer=1)
    with pytest.raises(ValueError, match="theta"):
        lemma1.ntk_recursion(net, params, x, theta * jnp.nan, layer=1)
    with pytest.raises(ValueError, match="layer"):
        lemma1.ntk_recursion(net, params, x, theta, layer=3)
    std = networks.mlp((3, 16, 12, 2), activation="erf", parametrisation="standard")
    with pytest.raises(ValueError, match="net"):
        lemma1.ntk_recursion(std, networks.init(jax.random.key(0), std), x, theta, layer=1)


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
