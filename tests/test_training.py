"""Tests of ntkbook.training: GD on networks and on the linearised model, checked against the
closed forms of ntkbook.regression with an explicitly computed J Jᵀ, the n^{-1/2} rate of the
network–kernel deviation, and the recorded quantities against direct computations."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbook import costs, empirical, networks, regression, stats, training

N, N0 = 6, 3


def _data(k: int = 1, n: int = N, seed: int = 1):
    x = jax.random.normal(jax.random.key(seed), (n, N0), jnp.float64)
    y = jnp.sin(2 * x[:, :k]) + 0.1
    return x, y


def _net(width: int = 16, k: int = 1, activation: str = "tanh", depth: int = 2, **kw):
    net = networks.mlp((N0, *[width] * (depth - 1), k), activation=activation, beta=0.3, **kw)
    return net, networks.init(net, key=jax.random.key(0), dtype=jnp.float64)


@partial(jax.jit, static_argnums=0)
def _explicit_ntk(net, params, x1, x2):
    """Θ_kk′(x, x′) = Σ_p ∂_p f_k(x) ∂_p f_k′(x′) from the full Jacobian (jax.jacobian)."""

    def jac(x):
        j = jax.jacobian(lambda p: networks.forward(net, p, x).pre[-1])(params)
        leaves = [leaf.reshape(*leaf.shape[:2], -1) for leaf in jax.tree.leaves(j)]
        return jnp.concatenate(leaves, axis=2)

    return jnp.einsum("ikp,jlp->ijkl", jac(x1), jac(x2))


@pytest.mark.parametrize("normalise", [True, False])
def test_linearised_gd_equals_discrete_closed_form(normalise):
    """GD on f_lin is exactly f_k = f_0 + Θ(·,X)Θ⁻¹(I − (I − ηsΘ)^k)(Y − f_0), Θ = J Jᵀ at θ₀."""
    net, params = _net(k=2)
    x, y = _data(k=2)
    x_test = _data(n=4, seed=2)[0]
    lr = 0.5 if normalise else 0.5 / N
    traj = training.train(
        x,
        y,
        net=net,
        params=params,
        lr=lr,
        steps=60,
        record_at=4,
        x_test=x_test,
        linearised=True,
        normalise=normalise,
    )
    theta_xx = _explicit_ntk(net, params, x, x)
    theta_zx = _explicit_ntk(net, params, x_test, x)
    want = regression.gradient_descent(
        theta_xx,
        y,
        traj.f_train[0],
        t=np.asarray(traj.steps),
        lr=lr,
        theta_zx=theta_zx,
        f0_z=traj.f_test[0],
        normalise=normalise,
    )
    # both sides are exact float64 computations of the same iteration: round-off ~steps·eps·‖Y‖
    np.testing.assert_allclose(traj.f_train, want.train, atol=1e-11)
    np.testing.assert_allclose(traj.f_test, want.test, atol=1e-11)


def test_gd_converges_to_the_flow_at_first_order():
    """Euler: GD at step η reaches the flow at t = ηk with error C η + O(η²), so halving η halves
    the error (ratio 2 + O(ηλ_max s); here η λ_max s ≤ 0.05, so the ratio lies in [1.8, 2.2])."""
    net, params = _net()
    x, y = _data()
    theta = _explicit_ntk(net, params, x, x)[:, :, 0, 0]
    lam_max = float(jnp.linalg.eigvalsh(theta)[-1])
    t_end = 3.0 * N / lam_max  # three time constants of the fastest mode
    lr = 0.05 * N / lam_max
    errors = []
    for h in (lr, lr / 2):
        steps = int(round(t_end / h))
        traj = training.train(
            x, y, net=net, params=params, lr=h, steps=steps, record_at=2, linearised=True
        )
        flow = regression.gradient_flow(theta, y, traj.f_train[0], t=h * steps)
        errors.append(float(jnp.max(jnp.abs(traj.f_train[-1] - flow.train))))
    assert 1.8 <= errors[0] / errors[1] <= 2.2


def test_wide_network_tracks_its_kernel_at_the_inverse_sqrt_width_rate():
    """sup_t ‖f_t − f_t^lin‖ = O(n^{-1/2}) (Lee et al. 2019, Thm 2.1): the fitted log-log slope over
    widths 128 … 2048 has a CI reaching −1/2 or below, and at n = 2048 the deviation is within
    the n^{-1/2} extrapolation from n = 128 (factor 2 for seed-to-seed spread)."""
    x, y = _data(n=8)
    widths, seeds = (128, 512, 2048), 6
    devs = np.zeros((len(widths), seeds))
    for a, n in enumerate(widths):
        net = networks.mlp((N0, n, 1), activation="erf")
        for s in range(seeds):
            params = networks.init(net, key=jax.random.key(s), dtype=jnp.float64)
            traj = training.train(x, y, net=net, params=params, lr=1.0, steps=300, record_at=7)
            theta = empirical.ntk(x, net=net, params=params, traced=True)
            lin = regression.gradient_descent(
                theta, y, traj.f_train[0], t=np.asarray(traj.steps), lr=1.0
            )
            dev = jnp.linalg.norm(traj.f_train - lin.train, axis=(1, 2))
            devs[a, s] = float(jnp.max(dev) / jnp.linalg.norm(y - traj.f_train[0]))
    # the training actually fits: the loss drops by orders of magnitude (not a trivial run)
    assert float(traj.loss[-1]) < 1e-2 * float(traj.loss[0])
    fit = stats.fit_rate(widths, devs, confidence=0.999)  # t interval: false alarm 1e-3
    assert fit.ci_low <= -0.5 and fit.ci_high < 0
    assert devs[-1].mean() <= 2 * devs[0].mean() * np.sqrt(widths[0] / widths[-1])


def test_records_match_direct_computations():
    net, params = _net(width=24, depth=3)
    x, y = _data()
    lr, steps = 0.4, 12
    traj = training.train(
        x,
        y,
        net=net,
        params=params,
        lr=lr,
        steps=steps,
        record_at=range(steps + 1),
        record_ntk=True,
    )
    np.testing.assert_array_equal(traj.steps, np.arange(steps + 1))
    np.testing.assert_allclose(traj.t, lr * np.arange(steps + 1), rtol=1e-15)
    # loss is C = ½‖f − y‖²_{p_in} of the recorded outputs
    want_loss = [float(costs.mse(f, y)) for f in traj.f_train]
    np.testing.assert_allclose(traj.loss, want_loss, rtol=1e-12)
    # ∫‖d‖ dt: left Riemann sum of ‖f_j − y‖_{p_in} over the recorded steps
    norms = np.array([float(costs.norm(f - y)) for f in traj.f_train])
    np.testing.assert_allclose(
        traj.d_integral, lr * np.concatenate([[0], np.cumsum(norms[:-1])]), rtol=1e-12
    )
    # outputs are the network at the returned parameters; NTK records equal empirical.ntk
    np.testing.assert_allclose(traj.f_train[-1], networks.apply(net, traj.params, x), rtol=1e-12)
    for rec, p in ((traj.ntk[0], params), (traj.ntk[-1], traj.params)):
        want = empirical.ntk(x, net=net, params=p, traced=True)
        np.testing.assert_allclose(rec, want, rtol=1e-12)
    # weight changes: zero at step 0, and the final ones from the parameters (numpy SVD)
    np.testing.assert_array_equal(traj.w_change_fro[0], np.zeros(net.depth))
    for ell in range(net.depth):
        dw = np.asarray(traj.params[ell].W - params[ell].W)
        assert float(traj.w_change_fro[-1, ell]) == pytest.approx(np.linalg.norm(dw), rel=1e-12)
        assert float(traj.w_change_op[-1, ell]) == pytest.approx(np.linalg.norm(dw, 2), rel=1e-10)
    # MSE decreases along small-step GD
    assert np.all(np.diff(np.asarray(traj.loss)) < 0)


def test_op_norm_subspace_iteration():
    """Against an exact SVD; the subspace-iteration error bound is (σ_{b+1}/σ_1)^{2q}·σ_1."""
    rng = np.random.default_rng(0)
    u, v = rng.normal(size=(200, 5)), rng.normal(size=(5, 150))
    a = u @ v + 0.05 * rng.normal(size=(200, 150))  # rank 5 plus a small full-rank bulk
    sv = np.linalg.svd(a, compute_uv=False)
    block, iters = 8, 3
    bound = 10 * sv[0] * (sv[block] / sv[0]) ** (2 * iters) + 1e-12 * sv[0]
    est = float(training.op_norm(jnp.asarray(a), block=block, iters=iters))
    assert sv[0] - bound <= est <= sv[0] * (1 + 1e-12)
    # exact branch when a dimension is at most the block size
    small = a[:, :6]
    assert float(training.op_norm(jnp.asarray(small))) == pytest.approx(
        np.linalg.norm(small, 2), rel=1e-12
    )


def test_custom_costs():
    net, params = _net()
    x, y = _data()
    base = training.train(x, y, net=net, params=params, lr=0.3, steps=10, record_at=2)
    as_grad = training.train(
        x, y, net=net, params=params, lr=0.3, steps=10, record_at=2, cost=lambda f, t: f - t
    )
    np.testing.assert_allclose(as_grad.f_train, base.f_train, rtol=1e-14)
    assert as_grad.loss is None
    huber = costs.from_pointwise(lambda f, t: jnp.sum(jnp.sqrt(1 + (f - t) ** 2) - 1))
    traj = training.train(x, y, net=net, params=params, lr=0.3, steps=30, record_at=4, cost=huber)
    assert np.all(np.diff(np.asarray(traj.loss)) < 0)


def test_infinite_ensemble_moments_from_trained_networks():
    """A one-layer network (L = 1) is linear in its parameters with Θ = Σ^(1) = σ_w² xᵀx′/n_0 + β²
    at every width, and its n_L outputs are independent draws of f_0 ~ GP(0, Σ^(1)): training one
    with S outputs gives S samples of the ensemble at time t = η k, whose mean and covariance
    must match ensemble_moments (eqs. (15)–(16)) within their standard errors plus the exactly
    computed gap between GD (I − ηΘ/N)^k and the flow e^{−ηΘk/N}."""
    x, _ = _data(n=5)
    z = _data(n=3, seed=7)[0]
    s, beta, lr, steps = 4000, 0.5, 0.02, 150
    y1 = jnp.cos(x[:, :1])
    net = networks.mlp((N0, s), activation="identity", beta=beta)
    params = networks.init(net, key=jax.random.key(3), dtype=jnp.float64)
    traj = training.train(
        x,
        jnp.tile(y1, (1, s)),
        net=net,
        params=params,
        lr=lr,
        steps=steps,
        record_at=[steps],
        x_test=z,
    )

    def k(a, b):
        return np.asarray(a @ b.T / N0 + beta**2)

    kxx, kzx, kzz = k(x, x), k(z, x), k(z, z)
    mom = regression.ensemble_moments(
        kxx, k_zx=kzx, k_zz=kzz, theta_xx=kxx, theta_zx=kzx, y=y1, t=lr * steps
    )
    # the same moments for k GD steps, densely: A = Θ⁻¹(I − (I − ηΘ/N)^k), B = Θ(Z, X) A
    n = x.shape[0]
    b = kzx @ np.linalg.solve(
        kxx, np.eye(n) - np.linalg.matrix_power(np.eye(n) - lr * kxx / n, steps)
    )
    gd_mean = b @ np.asarray(y1)
    gd_cov = kzz + b @ kxx @ b.T - b @ kzx.T - kzx @ b.T
    samples = np.asarray(traj.f_test[0])  # (M, S)
    var = np.diag(mom.cov)
    se_mean = np.sqrt(var / s)  # Gaussian samples: SE of a mean and of a covariance entry
    se_cov = np.sqrt((np.outer(var, var) + np.asarray(mom.cov) ** 2) / s)
    gap_mean, gap_cov = np.abs(gd_mean - mom.mean), np.abs(gd_cov - mom.cov)
    assert np.all(gap_mean[:, 0] < se_mean) and np.all(gap_cov < se_cov)  # small η: GD ≈ flow
    assert np.all(np.abs(samples.mean(axis=1) - mom.mean[:, 0]) <= 5 * se_mean + gap_mean[:, 0])
    assert np.all(np.abs(np.cov(samples) - mom.cov) <= 5 * se_cov + gap_cov)


def test_same_key_same_bits():
    x, y = _data()

    def run():
        net = networks.mlp((N0, 32, 32, 1), activation="relu")
        params = networks.init(net, key=jax.random.key(42))
        return training.train(
            x, y, net=net, params=params, lr=0.5, steps=20, record_at=3, record_ntk=True
        )

    a, b = run(), run()
    for la, lb in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(la, lb)


def test_bad_inputs_name_the_argument():
    net, params = _net()
    x, y = _data()
    nan_x = x.at[0, 0].set(jnp.nan)

    def bad(name, **kw):
        args = {"net": net, "params": params, "x": x, "y": y, "lr": 0.1, "steps": 5} | kw
        with pytest.raises(ValueError, match=f"^{name}"):
            training.train(
                args.pop("x"), args.pop("y"), net=args.pop("net"), params=args.pop("params"), **args
            )

    bad("lr", lr=0.0)
    bad("lr", lr=-1.0)
    bad("steps", steps=-1)
    bad("record_at", record_at=[0, 6])
    bad("record_at", record_at=0)
    bad("x", x=x[:, :2])
    bad("x", x=nan_x)
    bad("y", y=y[:-1])
    bad("y", y=y.at[0, 0].set(jnp.inf))
    bad("x_test", x_test=x[:, :1])
    bad("cost", cost=3)
    bad("net", net="mlp")
    bad("params", params=params[:1])
    with pytest.raises(ValueError, match="^params"):
        training.linearise(net=net, params0=params[:1])


def test_train_names_x_for_no_points_and_n_l_for_bad_targets():
    net, params = _net(k=2)
    x, y = _data()
    y2 = jnp.concatenate([y, y], axis=1)
    with pytest.raises(ValueError, match=r"^x: no training points \(N = 0"):
        training.train(x[:0], y2[:0], net=net, params=params, lr=0.1, steps=1)
    with pytest.raises(ValueError, match=r"^y: expected n_L = 2 columns"):
        training.train(x, y, net=net, params=params, lr=0.1, steps=1)


def test_singular_values_exact_and_iterated():
    a = jax.random.normal(jax.random.key(0), (300, 200), jnp.float64)
    low = a[:, :6] @ jax.random.normal(jax.random.key(1), (6, 200), jnp.float64)  # rank 6
    exact = np.linalg.svd(np.asarray(low), compute_uv=False)
    got = training.singular_values(low, k=8)
    np.testing.assert_allclose(got[:6], exact[:6], rtol=1e-10)
    assert float(got[6]) < 1e-9 * float(got[0])
    small = a[:10]
    np.testing.assert_allclose(
        training.singular_values(small, k=3),
        np.linalg.svd(np.asarray(small), compute_uv=False)[:3],
        rtol=1e-10,
    )
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


def _setup():
    net = networks.mlp((3, 64, 2), activation="tanh", beta=0.5)
    params = networks.init(net, key=jax.random.key(0), dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(1), (5, 3), jnp.float64)
    y = jax.random.normal(jax.random.key(2), (5, 2), jnp.float64)
    return net, params, x, y


def test_frozen_layers_do_not_move():
    net, params, x, y = _setup()
    traj = training.train(
        x, y, net=net, params=params, lr=0.5, steps=10, record_at=2, trainable=[-1]
    )
    np.testing.assert_array_equal(traj.params[0].W, params[0].W)
    np.testing.assert_array_equal(traj.params[0].b, params[0].b)
    assert float(jnp.max(jnp.abs(traj.params[1].W - params[1].W))) > 0
    np.testing.assert_array_equal(traj.w_change_fro[-1, 0], 0.0)
    # trainable = every layer is the default
    a = training.train(x, y, net=net, params=params, lr=0.5, steps=3, record_at=2)
    b = training.train(x, y, net=net, params=params, lr=0.5, steps=3, record_at=2, trainable=[0, 1])
    np.testing.assert_array_equal(a.f_train, b.f_train)


def test_readout_only_is_kernel_descent_with_the_last_layer_kernel():
    net, params, x, y = _setup()
    layers = networks.forward(net, params, x).post[-1]  # α^(L−1)(x), (N, n)
    n = layers.shape[1]
    kern = layers @ layers.T / n + net.beta**2  # last-layer kernel, exact
    f0 = networks.apply(net, params, x)
    traj = training.train(
        x, y, net=net, params=params, lr=0.7, steps=25, record_at=[25], trainable=[1]
    )
    expect = regression.gradient_descent(kern, y, f0, t=25, lr=0.7).train
    # read-out training is exactly linear: agreement to float64 round-off
    np.testing.assert_allclose(traj.f_train[0], expect, atol=1e-10)


@pytest.mark.parametrize("bad", [[2], [-3], [], ["a"], 1])
def test_trainable_errors(bad):
    net, params, x, y = _setup()
    with pytest.raises(ValueError, match="trainable"):
        training.train(x, y, net=net, params=params, lr=0.1, steps=1, trainable=bad)
