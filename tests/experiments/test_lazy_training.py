"""Lazy training (ntkbook.experiments.lazy_training, chapter 8): Jacobian sizes, Hessian norm,
Taylor terms, rescaled training."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from ntkbook import empirical, networks, training
from ntkbook.experiments import lazy_training

NET = networks.mlp((3, 7, 5, 1), activation="tanh", beta=0.3)


def _params(seed=0, dtype=jnp.float64):
    return networks.init(NET, key=jax.random.key(seed), dtype=dtype)


def _x(n=4, seed=1):
    return jax.random.normal(jax.random.key(seed), (n, 3), jnp.float64)


def test_jacobian_sizes_match_explicit_gradient_and_ntk_diagonal():
    p, x = _params(), _x()
    js = lazy_training.jacobian_sizes(x, net=NET, params=p)
    g = jax.grad(lambda q: networks.forward(NET, q, x[1:2]).pre[-1][0, 0])(p)
    for ell, layer in enumerate(g):
        np.testing.assert_allclose(js.sumsq_w[1, ell], jnp.sum(layer.W**2), rtol=1e-12)
        np.testing.assert_allclose(js.sumsq_b[1, ell], jnp.sum(layer.b**2), rtol=1e-12)
        np.testing.assert_allclose(js.rms_w[1, ell], jnp.sqrt(jnp.mean(layer.W**2)), rtol=1e-12)
    # the per-layer sums are the per-layer NTK on the diagonal (the structured rule)
    by_layer = empirical.ntk_by_layer(x, net=NET, params=p)
    diag = jnp.stack([jnp.diag(t) for t in by_layer], axis=1)
    np.testing.assert_allclose(js.sumsq_w + js.sumsq_b, diag, rtol=1e-10)


def test_jacobian_sizes_errors():
    p = _params()
    with pytest.raises(ValueError, match="net"):
        two = networks.mlp((3, 7, 2))
        lazy_training.jacobian_sizes(
            _x(), net=two, params=networks.init(two, key=jax.random.key(0))
        )
    with pytest.raises(ValueError, match="x"):
        lazy_training.jacobian_sizes(jnp.ones((2, 4)), net=NET, params=p)
    with pytest.raises(ValueError, match="params"):
        lazy_training.jacobian_sizes(_x(), net=NET, params=p[:2])


def _dense_hessian(p, x):
    flat, unravel = ravel_pytree(p)
    h = jax.hessian(lambda v: networks.forward(NET, unravel(v), x).pre[-1][0, 0])(flat)
    return h


def test_hessian_norm_matches_dense_hessian_within_its_residual():
    p, x = _params(), _x(1)
    eigs = np.linalg.eigvalsh(np.asarray(_dense_hessian(p, x)))
    exact = float(np.max(np.abs(eigs)))
    for tol in (1e-3, 1e-8):
        h = lazy_training.hessian_norm(x, net=NET, params=p, tol=tol, max_iters=2000)
        assert float(h.residual) < tol and 1 <= int(h.iterations) < 2000
        # a residual ρ|λ| puts an eigenvalue of the symmetric H within ρ|λ| of λ: here the top one
        assert abs(float(h.norm) - exact) <= float(h.residual) * exact * 1.01 + 1e-12
    # jit/eager agree, and a run cut short reports its (large) residual instead of hiding it
    short = lazy_training.hessian_norm(x, net=NET, params=p, tol=1e-12, max_iters=2)
    assert int(short.iterations) == 2 and float(short.residual) > 1e-12


def test_hessian_norm_separates_a_plus_minus_pair():
    # f = v·tanh(w x)/√n with opposite-sign Hessian eigenvalues of nearly equal modulus: plain
    # power iteration on H oscillates; the Ritz step on span{v, Hv} still converges
    net = networks.mlp((1, 1, 1), activation="tanh")
    p = (
        networks.Dense(jnp.array([[0.3]]), jnp.zeros(1)),
        networks.Dense(jnp.array([[1.0]]), jnp.zeros(1)),
    )
    x = jnp.array([[1.0]])
    flat, unravel = ravel_pytree(p)
    h = jax.hessian(lambda v: networks.forward(net, unravel(v), x).pre[-1][0, 0])(flat)
    exact = float(np.max(np.abs(np.linalg.eigvalsh(np.asarray(h)))))
    out = lazy_training.hessian_norm(x, net=net, params=p, tol=1e-10, max_iters=500)
    assert float(out.residual) < 1e-10
    np.testing.assert_allclose(float(out.norm), exact, rtol=1e-9)


def test_hessian_norm_errors():
    p = _params()
    with pytest.raises(ValueError, match="x"):
        lazy_training.hessian_norm(_x(2), net=NET, params=p)
    with pytest.raises(ValueError, match="max_iters"):
        lazy_training.hessian_norm(_x(1), net=NET, params=p, max_iters=0)
    with pytest.raises(ValueError, match="tol"):
        lazy_training.hessian_norm(_x(1), net=NET, params=p, tol=0.0)


def test_taylor_terms_against_dense_derivatives_and_third_order_remainder():
    p0, x = _params(), _x(3)
    direction = jax.tree.map(lambda a: 0.1 * jnp.ones_like(a), p0)
    flat0, unravel = ravel_pytree(p0)
    d = ravel_pytree(direction)[0]
    for i in range(3):
        xi = x[i : i + 1]
        h = jax.hessian(lambda v, xi=xi: networks.forward(NET, unravel(v), xi).pre[-1][0, 0])(flat0)
        g = jax.grad(lambda v, xi=xi: networks.forward(NET, unravel(v), xi).pre[-1][0, 0])(flat0)
        p = jax.tree.map(jnp.add, p0, direction)
        t = lazy_training.taylor_terms(x, net=NET, params=p, params0=p0)
        np.testing.assert_allclose(t.linear[i], g @ d, rtol=1e-10)
        np.testing.assert_allclose(t.quadratic[i], 0.5 * d @ h @ d, rtol=1e-10)
        np.testing.assert_allclose(t.delta_norm, jnp.linalg.norm(d), rtol=1e-12)
    # remainder − quadratic is third order: halving Δθ divides it by ≈ 8
    errs = []
    for s in (1.0, 0.5):
        p = jax.tree.map(lambda a, b, s=s: a + s * b, p0, direction)
        t = lazy_training.taylor_terms(x, net=NET, params=p, params0=p0)
        errs.append(float(jnp.max(jnp.abs(t.remainder - t.quadratic))))
    assert 6.0 < errs[0] / errs[1] < 10.0


def test_taylor_terms_errors():
    p = _params()
    with pytest.raises(ValueError, match="params"):
        lazy_training.taylor_terms(_x(), net=NET, params=p[:2], params0=p)


def test_train_rescaled_scale_one_is_centred_gd_and_lr_over_a2_is_lazy():
    p0, x = _params(dtype=jnp.float64), _x(6)
    y = jnp.sin(x[:, :1])
    one = lazy_training.train_rescaled(
        x, y, net=NET, params=p0, scale=1.0, lr=0.5, steps=40, record_at=3
    )
    # scale 1, centred: GD with d = f − f0 − y, i.e. plain train() on targets y + f0
    f0 = networks.apply(NET, p0, x)
    ref = training.train(x, y + f0, net=NET, params=p0, lr=0.5, steps=40, record_at=3)
    np.testing.assert_allclose(one.f_train, ref.f_train - f0[None], atol=1e-10)
    np.testing.assert_allclose(one.loss, ref.loss, rtol=1e-10)
    assert float(one.rel_change[0]) == 0.0 and float(one.loss[0]) > float(one.loss[-1])
    # η = η0/a²: the function-space trajectory tends to the linearised one; θ moves O(1/a)
    rel, dist = [], []
    for a in (10.0, 100.0):
        tr = lazy_training.train_rescaled(
            x, y, net=NET, params=p0, scale=a, lr=0.5 / a**2, steps=40, record_at=3
        )
        lin = lazy_training.train_rescaled(
            x, y, net=NET, params=p0, scale=a, lr=0.5 / a**2, steps=40, record_at=3, linearised=True
        )
        rel.append(float(tr.rel_change[-1]))
        dist.append(float(jnp.max(jnp.abs(tr.f_train - lin.f_train))))
    assert rel[0] / rel[1] == pytest.approx(10.0, rel=0.05)
    assert dist[0] / dist[1] == pytest.approx(10.0, rel=0.2)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"scale": 0.0}, "scale"),
        ({"lr": -1.0}, "lr"),
        ({"steps": -1}, "steps"),
        ({"record_at": [50]}, "record_at"),
    ],
)
def test_train_rescaled_errors(kwargs, name):
    p0, x = _params(), _x(4)
    args = {"scale": 1.0, "lr": 0.1, "steps": 10, **kwargs}
    with pytest.raises(ValueError, match=name):
        lazy_training.train_rescaled(x, jnp.zeros((4, 1)), net=NET, params=p0, **args)
    with pytest.raises(ValueError, match="y"):
        lazy_training.train_rescaled(
            x, jnp.zeros((3, 1)), net=NET, params=p0, scale=1.0, lr=0.1, steps=1
        )


def test_linearisation_gap_matches_rescaled_runs_and_the_single_seed_functions():
    # reference, seed by seed: train_rescaled at a = 1 is GD on f − f₀ (the network, and its
    # linearisation through training._linearised, an independent implementation of f^lin)
    x, steps, lr = _x(5), 12, 0.7
    y = jnp.sin(x[:, :1])
    seeds = [_params(s) for s in (3, 4)]
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *seeds)
    out = lazy_training.linearisation_gap(x, y, net=NET, params0=stacked, lr=lr, steps=steps)
    for s, p0 in enumerate(seeds):
        kw = dict(scale=1.0, lr=lr, steps=steps, record_at=list(range(steps + 1)))
        run = lazy_training.train_rescaled(x, y, net=NET, params=p0, **kw)
        lin = lazy_training.train_rescaled(x, y, net=NET, params=p0, linearised=True, **kw)
        gap = jnp.max(jnp.sqrt(jnp.mean((run.f_train - lin.f_train) ** 2, axis=(1, 2))))
        np.testing.assert_allclose(out.gap[s], gap, rtol=1e-9)  # float64: round-off only
        js = lazy_training.jacobian_sizes(x, net=NET, params=p0)
        np.testing.assert_allclose(out.sumsq_w[s], js.sumsq_w, rtol=1e-12)
        t = lazy_training.taylor_terms(x, net=NET, params=run.params, params0=p0)
        np.testing.assert_allclose(out.taylor.quadratic[s], t.quadratic, rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(out.taylor.delta_norm[s], t.delta_norm, rtol=1e-9)
    assert float(out.gap.min()) > 0  # a finite network is not its linearisation


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(net="mlp"), "net"),
        (dict(params0=[1.0]), "params0"),
        (dict(y=jnp.zeros(3)), "y"),
        (dict(lr=0.0), "lr"),
        (dict(steps=0), "steps"),
    ],
)
def test_linearisation_gap_errors(kwargs, name):
    p = jax.tree.map(lambda a: a[None], _params())
    args = dict(net=NET, params0=p, x=_x(4), y=jnp.zeros(4), lr=0.1, steps=2) | kwargs
    with pytest.raises(ValueError, match=name):
        lazy_training.linearisation_gap(args.pop("x"), args.pop("y"), **args)
