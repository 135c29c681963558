"""Support code of chapter 10 (beyond the kernel regime): depth-to-width fluctuations,
μP / mean-field training, catapult diagnostics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbook import data, empirical, networks
from ntkbook.experiments import catapult, depth_width, mup

# ------------------------------------------------------------------ §10.1 depth against width


@pytest.mark.parametrize(("activation", "beta"), [("tanh", 0.3), ("relu", 0.0)])
def test_ntk_diagonal_by_depth_matches_empirical_ntk_of_each_subnetwork(activation, beta):
    x = 2.0 * data.sphere(jax.random.key(1), 3, 5, dtype=jnp.float64)
    depths, n, seeds = (2, 3, 5, 6), 7, 2
    got = depth_width.ntk_diagonal_by_depth(
        jax.random.key(3), x, width=n, depths=depths, n_samples=seeds, activation=activation,
        beta=beta, sigma_w=1.3,
    )
    assert got.shape == (seeds, len(depths), 3)
    widths = (5,) + (n,) * (max(depths) - 1) + (1,)
    deepest = networks.mlp(widths, activation=activation, beta=beta, sigma_w=1.3)
    for s, k in enumerate(jax.random.split(jax.random.key(3), seeds)):
        params = networks.init(k, deepest, dtype=jnp.float64)
        for j, depth in enumerate(depths):
            net = networks.mlp(widths[:depth] + (1,), activation=activation, beta=beta,
                               sigma_w=1.3)
            ref = jnp.diag(empirical.ntk(net, params[: depth - 1] + params[-1:], x, traced=True))
            np.testing.assert_allclose(got[s, j], ref, rtol=1e-12)


def test_ntk_diagonal_by_depth_mean_matches_the_limit():
    # Θ∞^(L)(x, x) of a ReLU net with σ_w² = 2, β = 0 is 2 L ‖x‖²/n_0 (limits.ntk), and the
    # mean over initialisations is close to it at width 64: a check of the scale that does not
    # go through empirical.ntk. 4 standard errors: a false alarm has probability ~1e-4.
    x = jnp.sqrt(4.0) * data.sphere(jax.random.key(0), 1, 4, dtype=jnp.float32)
    th = depth_width.ntk_diagonal_by_depth(jax.random.key(2), x, width=64, depths=(2, 4),
                                          n_samples=2000)
    mean = np.asarray(th[:, :, 0]).mean(axis=0)
    sem = np.asarray(th[:, :, 0]).std(axis=0) / np.sqrt(2000)
    np.testing.assert_array_less(np.abs(mean - np.array([4.0, 8.0])), 4 * sem)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"width": 0}, "width"),
        ({"depths": (1, 2)}, "depths"),
        ({"depths": ()}, "depths"),
        ({"depths": 3}, "depths"),
        ({"n_samples": 0}, "n_samples"),
        ({"activation": "nope"}, "activation"),
        ({"beta": -1.0}, "beta"),
    ],
)
def test_ntk_diagonal_by_depth_rejects_bad_arguments(kwargs, match):
    args = {"width": 4, "depths": (2, 3), "n_samples": 2} | kwargs
    with pytest.raises(ValueError, match=match):
        depth_width.ntk_diagonal_by_depth(jax.random.key(0), jnp.ones((1, 2)), **args)


@pytest.mark.parametrize("x", [jnp.ones(3), jnp.array([[1.0, jnp.nan]])])
def test_ntk_diagonal_by_depth_rejects_bad_x(x):
    with pytest.raises(ValueError, match="x"):
        depth_width.ntk_diagonal_by_depth(jax.random.key(0), x, width=4, depths=(2,), n_samples=2)


def _log_normal_grid(c, a, widths, depths, seeds, rng):
    """Log-normal samples with Var(log Θ) = c (L − 1)/n + a/n exactly in distribution."""
    out = []
    for n in widths:
        sd = np.sqrt((c * (np.asarray(depths) - 1) + a) / n)
        out.append(np.exp(sd[None, :] * rng.standard_normal((seeds, len(depths)))))
    return out


# The sample second moment of a log-normal with Var(log Θ) of order 1 or more is dominated by rare
# draws (biased low: the reason chapter 10 prefers the log-variance), so the moment ratio is
# checked where Var(log Θ) ≤ 0.9.
@pytest.mark.parametrize(("statistic", "widths"),
                         [("log_variance", (16, 32, 64)), ("moment_ratio", (64, 128, 256))])
def test_fit_depth_width_recovers_a_known_constant(statistic, widths):
    depths = (2, 4, 8, 12)
    samples = _log_normal_grid(5.0, 1.0, widths, depths, 20000, np.random.default_rng(0))
    fit = depth_width.fit_depth_width(samples, widths=widths, depths=depths, statistic=statistic,
                                     n_boot=200)
    assert fit.contains(5.0), fit
    assert fit.ci_high - fit.ci_low < 1.0
    assert fit.stat.shape == fit.beta.shape == (3, 4)
    np.testing.assert_allclose(fit.beta[1], (np.asarray(depths) - 1) / widths[1])


def test_fit_depth_width_rejects_a_wrong_constant():
    widths, depths = (16, 32, 64), (2, 4, 8, 12)
    samples = _log_normal_grid(2.0, 0.0, widths, depths, 20000, np.random.default_rng(1))
    fit = depth_width.fit_depth_width(samples, widths=widths, depths=depths, n_boot=200)
    assert not fit.contains(5.0) and fit.contains(2.0), fit


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"statistic": "mean"}, "statistic"),
        ({"widths": (16,)}, "samples"),
        ({"depths": (2, 2)}, "samples"),
        ({"depths": (1, 2, 3)}, "depths"),
        ({"n_boot": 0}, "n_boot"),
        ({"confidence": 1.0}, "confidence"),
    ],
)
def test_fit_depth_width_rejects_bad_arguments(kwargs, match):
    args = {"widths": (16, 32), "depths": (2, 3, 4)} | kwargs
    samples = [np.ones((5, 3)) + np.arange(5)[:, None], np.ones((5, 3)) + np.arange(5)[:, None]]
    with pytest.raises(ValueError, match=match):
        depth_width.fit_depth_width(samples, **args)


def test_fit_depth_width_rejects_nonpositive_samples():
    bad = [np.zeros((4, 2)), np.ones((4, 2))]
    with pytest.raises(ValueError, match="samples"):
        depth_width.fit_depth_width(bad, widths=(8, 16), depths=(2, 3))
    with pytest.raises(ValueError, match="depths"):
        depth_width.fit_depth_width([np.ones((4, 1))] * 2, widths=(8, 16), depths=(2,))


# ------------------------------------------------------------------ §10.3 large learning rates


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


# ------------------------------------------------------------------ §10.2 parametrisations


def test_mup_scale_and_its_errors():
    assert mup.mup_scale(networks.mlp((3, 16, 1))) == pytest.approx(0.25)
    assert mup.mup_scale(networks.mlp((3, 9, 64, 2))) == pytest.approx(1 / 8)
    with pytest.raises(ValueError, match="net"):
        mup.mup_scale(networks.mlp((3, 16, 1), parametrisation="standard"))
    with pytest.raises(ValueError, match="net"):
        mup.mup_scale((3, 16, 1))


def test_train_mup_is_gradient_descent_on_the_mean_field_network():
    # Reference: plain autodiff GD on f_μP = f_ntk / √n with the learning rate η n.
    net = networks.mlp((3, 16, 2), activation="tanh", beta=0.5)
    params = networks.init(jax.random.key(0), net, dtype=jnp.float64)
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
    traj = mup.train_mup(net, params, x, y, lr=eta, steps=steps, record_at=(0, steps),
                              x_test=x[:2], record_ntk=True)
    np.testing.assert_allclose(traj.f_train[-1], f_mup(p, x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(traj.f_test[-1], f_mup(p, x[:2]), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(traj.loss[-1], loss(p), rtol=1e-12)
    np.testing.assert_allclose(traj.t, [0.0, eta * steps])
    for a, b in zip(jax.tree.leaves(traj.params), jax.tree.leaves(p), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    # its kernel is the NTK of f_μP itself, by generic autodiff at the final parameters
    want = empirical.ntk_fn(f_mup, p, x, traced=True)
    np.testing.assert_allclose(traj.ntk[-1], want, rtol=1e-10, atol=1e-12)


def test_train_mup_rejects_bad_lr():
    net = networks.mlp((2, 4, 1))
    params = networks.init(jax.random.key(0), net)
    with pytest.raises(ValueError, match="lr"):
        mup.train_mup(net, params, jnp.ones((2, 2)), jnp.ones((2, 1)), lr=0.0, steps=1)


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


# ------------------------------------------------------------------ §10.5 a single-index task


def test_single_index_statistics_and_shared_direction():
    w = jnp.zeros(6).at[2].set(3.0)
    ds = data.single_index(jax.random.key(0), 20000, dim=6, direction=w, dtype=jnp.float64)
    assert ds.x.shape == (20000, 6) and ds.y.shape == (20000, 1)
    np.testing.assert_allclose(jnp.sum(ds.x**2, axis=1), 6.0, rtol=1e-12)
    np.testing.assert_allclose(ds.y[:, 0], (ds.x[:, 2] ** 2 - 1) / np.sqrt(2), rtol=1e-12)
    # ⟨w, x⟩ for x uniform on the sphere of radius √d has mean 0 and variance 1, so
    # E[y] = 0 and E[y²] = (E u⁴ − 2 E u² + 1)/2 with E u⁴ = 3d/(d + 2): 0.625 for d = 6
    assert abs(float(ds.y.mean())) < 5 * float(ds.y.std()) / np.sqrt(20000)
    assert float(jnp.mean(ds.y**2)) == pytest.approx(0.625, rel=0.05)
    a = data.single_index(jax.random.key(1), 3, dim=4)
    b = data.single_index(jax.random.key(1), 3, dim=4)
    np.testing.assert_array_equal(a.y, b.y)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dim": 0}, "dim"),
        ({"direction": jnp.ones(3)}, "direction"),
        ({"direction": jnp.zeros(4)}, "direction"),
        ({"direction": jnp.array([1.0, jnp.nan, 0.0, 0.0])}, "direction"),
    ],
)
def test_single_index_rejects_bad_arguments(kwargs, match):
    args = {"dim": 4} | kwargs
    with pytest.raises(ValueError, match=match):
        data.single_index(jax.random.key(0), 5, **args)


def test_activation_flips_counts_sign_changes():
    net = networks.mlp((2, 3, 1), activation="relu")
    params = networks.init(jax.random.key(0), net, dtype=jnp.float64)
    x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    assert float(mup.activation_flips(net, params, params, x)[0]) == 0.0
    flipped = (networks.Dense(-params[0].W, params[0].b),) + params[1:]
    assert float(mup.activation_flips(net, params, flipped, x)[0]) == 1.0
    half = (networks.Dense(params[0].W.at[:, 0].multiply(-1.0), params[0].b),) + params[1:]
    assert float(mup.activation_flips(net, params, half, x)[0]) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="net"):
        mup.activation_flips(networks.mlp((2, 1)), params[:1], params[:1], x)
    with pytest.raises(ValueError, match="x"):
        mup.activation_flips(net, params, params, jnp.ones((2, 3)))
