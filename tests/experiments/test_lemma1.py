"""The quantities of the proofs of Theorem 2 and Lemma 1 (ntkbook.experiments.lemma1, ch. 5–6)."""

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
    params = networks.init(net, key=jax.random.key(0), dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(1), (5, 3))
    return net, params, x


def _moved(net, params, x, steps=5):
    y = jnp.zeros((x.shape[0], net.widths[-1]))
    return training.train(x, y, net=net, params=params, lr=0.5, steps=steps, record_at=2).params


# ------------------------------------------------------------------ layer_directions


def test_layer_directions_give_the_weight_gradients(setup):
    net, params, x = setup
    d = jax.random.normal(jax.random.key(2), (5, 2))

    def cost(p):
        f = networks.forward(net, p, x).pre[-1]
        return jnp.mean(jnp.sum(f * d, axis=1))  # ∂C/∂f = d (p_in convention)

    grads = jax.grad(cost)(params)
    dirs = lemma1.layer_directions(x, d, net=net, params=params)
    post = networks.forward(net, params, x).post
    assert [q.shape for q in dirs] == [(5, 16), (5, 12), (5, 2)]
    np.testing.assert_array_equal(dirs[-1], d)
    for ell in range(net.depth):
        want = post[ell].T @ dirs[ell] / (x.shape[0] * np.sqrt(net.widths[ell]))
        np.testing.assert_allclose(grads[ell].W, want, atol=1e-14)


def test_layer_directions_bound_by_lipschitz_and_op_norm(setup):
    net, params, x = setup
    d = jax.random.normal(jax.random.key(3), (5, 2))
    dirs = lemma1.layer_directions(x, d, net=net, params=params)
    c = 2 / np.sqrt(np.pi)
    for ell in range(1, net.depth):
        w = float(training.op_norm(params[ell].W)) / np.sqrt(net.widths[ell])
        assert float(costs.norm(dirs[ell - 1])) <= c * w * float(costs.norm(dirs[ell])) + 1e-12


def test_layer_directions_errors(setup):
    net, params, x = setup
    with pytest.raises(ValueError, match="d"):
        lemma1.layer_directions(x, jnp.ones((4, 2)), net=net, params=params)
    with pytest.raises(ValueError, match="d"):
        lemma1.layer_directions(x, jnp.ones((5, 3)), net=net, params=params)
    with pytest.raises(ValueError, match="x"):
        lemma1.layer_directions(jnp.ones((5, 4)), jnp.ones((5, 2)), net=net, params=params)
    std = networks.mlp((3, 16, 12, 2), activation="erf", parametrisation="standard")
    with pytest.raises(ValueError, match="net"):
        lemma1.layer_directions(
            x, jnp.ones((5, 2)), net=std, params=networks.init(std, key=jax.random.key(0))
        )


# ------------------------------------------------------------------ neuron_changes


def test_neuron_changes_at_zero_time_and_by_hand(setup):
    net, params, x = setup
    at0 = lemma1.neuron_changes(x, net=net, params=params, params0=params)
    np.testing.assert_array_equal(at0.w_change, 0.0)
    np.testing.assert_array_equal(at0.pre_change, 0.0)
    np.testing.assert_allclose(at0.w0, np.linalg.norm(params[2].W, axis=1))
    act = np.asarray(networks.forward(net, params, x).post[2])
    np.testing.assert_allclose(at0.act0, np.sqrt(np.mean(act**2, axis=0)))
    moved = _moved(net, params, x)
    ch = lemma1.neuron_changes(x, net=net, params=moved, params0=params, layer=1)
    pre = [np.asarray(networks.forward(net, p, x).pre[0]) for p in (moved, params)]
    np.testing.assert_allclose(ch.pre_change, np.sqrt(np.mean((pre[0] - pre[1]) ** 2, axis=0)))
    np.testing.assert_allclose(ch.w_change, np.linalg.norm(moved[1].W - params[1].W, axis=1))
    a = ch.gronwall_a(2.0)
    np.testing.assert_allclose(a, ch.act0 + 2 * ch.pre_change + ch.w0 + ch.w_change)


def test_neuron_changes_errors(setup):
    net, params, x = setup
    with pytest.raises(ValueError, match="layer"):
        lemma1.neuron_changes(x, net=net, params=params, params0=params, layer=3)
    with pytest.raises(ValueError, match="params"):
        lemma1.neuron_changes(x, net=net, params=params, params0=params[:2])
    one = networks.mlp((3, 2))
    p1 = networks.init(one, key=jax.random.key(0))
    with pytest.raises(ValueError, match="net"):
        lemma1.neuron_changes(x, net=one, params=p1, params0=p1)
    with pytest.raises(ValueError, match="c"):
        lemma1.neuron_changes(x, net=net, params=params, params0=params).gronwall_a(0.0)


# ------------------------------------------------------------------ lemma1_norms


def test_lemma1_norms_by_hand(setup):
    net, params, x = setup
    moved = _moved(net, params, x)
    q = lemma1.lemma1_norms(x, net=net, params=moved, params0=params)
    assert q.a.shape == (2,)
    for k in (1, 2):
        s = 1 / np.sqrt(net.widths[k])
        post = [np.asarray(networks.forward(net, p, x).post[k]) for p in (moved, params)]
        pre = [np.asarray(networks.forward(net, p, x).pre[k - 1]) for p in (moved, params)]
        np.testing.assert_allclose(q.a[k - 1], s * np.sqrt(np.mean(np.sum(post[0] ** 2, 1))))
        np.testing.assert_allclose(q.a0[k - 1], s * np.sqrt(np.mean(np.sum(post[1] ** 2, 1))))
        np.testing.assert_allclose(
            q.a_change[k - 1], s * np.sqrt(np.mean(np.sum((pre[0] - pre[1]) ** 2, 1)))
        )
        # these matrices are small, so op_norm is exact: compare with an SVD
        np.testing.assert_allclose(q.w[k - 1], s * np.linalg.norm(moved[k].W, 2), rtol=1e-10)
        np.testing.assert_allclose(q.w0[k - 1], s * np.linalg.norm(params[k].W, 2), rtol=1e-10)
        np.testing.assert_allclose(
            q.w_change[k - 1], s * np.linalg.norm(moved[k].W - params[k].W, 2), rtol=1e-10
        )
    big_a = q.a0 + 1.5 * q.a_change + q.w0 + q.w_change
    np.testing.assert_allclose(q.big_a(1.5), big_a.sum())
    at0 = lemma1.lemma1_norms(x, net=net, params=params, params0=params)
    np.testing.assert_array_equal(at0.a_change, 0.0)
    np.testing.assert_array_equal(at0.w_change, 0.0)


def test_lemma1_norms_errors(setup):
    net, params, x = setup
    with pytest.raises(ValueError, match="x"):
        lemma1.lemma1_norms(jnp.full((5, 3), jnp.nan), net=net, params=params, params0=params)
    with pytest.raises(ValueError, match="c"):
        lemma1.lemma1_norms(x, net=net, params=params, params0=params).big_a(-1.0)


# ------------------------------------------------------------------ ntk_recursion


def test_ntk_recursion_matches_autodiff(setup):
    net, params, x = setup
    moved = _moved(net, params, x, steps=10)
    for p in (params, moved):
        for ell in (1, 2):
            theta = empirical.subnetwork_ntk(x, net=net, params=p, layer=ell, traced=False)
            got = lemma1.ntk_recursion(x, theta, net=net, params=p, layer=ell)
            want = empirical.subnetwork_ntk(x, net=net, params=p, layer=ell + 1, traced=False)
            np.testing.assert_allclose(got, want, atol=1e-12)


def test_ntk_recursion_needs_the_transpose():
    # with W^(l) square but not symmetric, the untransposed product of the notes' display is
    # a different matrix: the recursion must not be invariant under W → Wᵀ
    net = networks.mlp((2, 6, 6, 1), activation="erf", beta=BETA)
    p = networks.init(net, key=jax.random.key(5), dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(6), (3, 2))
    theta = empirical.subnetwork_ntk(x, net=net, params=p, layer=1, traced=False)
    flipped = (p[0], networks.Dense(p[1].W.T, p[1].b), p[2])
    a = lemma1.ntk_recursion(x, theta, net=net, params=p, layer=1)
    b = lemma1.ntk_recursion(x, theta, net=net, params=flipped, layer=1)
    assert float(jnp.max(jnp.abs(a - b))) > 1e-3


def test_ntk_recursion_errors(setup):
    net, params, x = setup
    theta = empirical.subnetwork_ntk(x, net=net, params=params, layer=1, traced=False)
    with pytest.raises(ValueError, match="theta"):
        lemma1.ntk_recursion(x, theta[:, :, :3, :3], net=net, params=params, layer=1)
    with pytest.raises(ValueError, match="theta"):
        lemma1.ntk_recursion(x, theta * jnp.nan, net=net, params=params, layer=1)
    with pytest.raises(ValueError, match="layer"):
        lemma1.ntk_recursion(x, theta, net=net, params=params, layer=3)
    std = networks.mlp((3, 16, 12, 2), activation="erf", parametrisation="standard")
    with pytest.raises(ValueError, match="net"):
        lemma1.ntk_recursion(
            x, theta, net=std, params=networks.init(std, key=jax.random.key(0)), layer=1
        )


# ------------------------------------------------------------------ subnetwork_op_norm


def test_subnetwork_op_norm_matches_the_formed_kernel(setup):
    # Reference: λ_max of the formed (N n_l × N n_l) Gram matrix over N (empirical.kernel_op_norm).
    # Here N n_l ≤ 60: subspace iteration with an 8-vector block converges geometrically at rate
    # λ_9/λ_1 per iteration, and after 40 the Ritz value is exact to float64 rounding (measured
    # 2e-15 relative); 1e-10 leaves room for rounding and fails on an unconverged or wrong norm.
    # A hidden layer (l = 2, the chapter's) before and after training, and the outputs (l = L).
    net, params, x = setup
    moved = _moved(net, params, x)
    for p, ell in ((params, 2), (moved, 2), (moved, 3)):
        theta = empirical.subnetwork_ntk(x, net=net, params=p, layer=ell, traced=False)
        want = float(empirical.kernel_op_norm(theta))
        got = float(lemma1.subnetwork_op_norm(x, net=net, params=p, layer=ell))
        assert got == pytest.approx(want, rel=1e-10)


def test_subnetwork_op_norm_is_a_lower_bound_before_convergence(setup):
    # One iteration from the fixed start: a Rayleigh quotient of a PSD operator is ≤ λ_max.
    net, params, x = setup
    theta = empirical.subnetwork_ntk(x, net=net, params=params, layer=2, traced=False)
    want = float(empirical.kernel_op_norm(theta))
    got = float(lemma1.subnetwork_op_norm(x, net=net, params=params, layer=2, block=1, iters=1))
    assert 0 < got <= want * (1 + 1e-12)


def test_subnetwork_op_norm_errors(setup):
    net, params, x = setup
    for kwargs, name in (
        ({"layer": 0}, "layer"),
        ({"layer": 4}, "layer"),
        ({"layer": 1, "block": 0}, "block"),
        ({"layer": 1, "iters": 0}, "iters"),
    ):
        with pytest.raises(ValueError, match=name):
            lemma1.subnetwork_op_norm(x, net=net, params=params, **kwargs)
    with pytest.raises(ValueError, match="x"):
        lemma1.subnetwork_op_norm(x[:, :2], net=net, params=params, layer=1)
