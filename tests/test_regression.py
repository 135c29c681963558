"""Tests of ntkbook.regression against independent dense computations (scipy.linalg.expm, explicit
iteration, Cholesky GP inference, Monte Carlo over Gaussian initial functions)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg as sl
from scipy.stats import multivariate_normal

from ntkbook import limits, regression

N, M, K = 6, 4, 2


def _psd(seed: int, n: int, rank: int) -> np.ndarray:
    a = np.random.default_rng(seed).normal(size=(n, rank))
    return a @ a.T / rank


def _problem(seed: int = 0, rank: int = N + 3):
    """A random PSD kernel on X ∪ Z (first N rows are X), targets and initial outputs."""
    rng = np.random.default_rng(seed + 100)
    kern = _psd(seed, N + M, rank)
    y = rng.normal(size=(N, K))
    f0x, f0z = rng.normal(size=(N, K)), rng.normal(size=(M, K))
    return kern[:N, :N], kern[N:, :N], kern[N:, N:], y, f0x, f0z


def _expm_reference(txx, tzx, y, f0x, f0z, a):
    """f_t = f_0 + Θ(·,X)Θ⁻¹(I − e^{−aΘ})(Y − f_0) with a dense scipy expm (float64)."""
    decay = np.eye(N) - sl.expm(-a * txx)
    train = f0x + decay @ (y - f0x)
    test = f0z + tzx @ np.linalg.solve(txx, decay @ (y - f0x))
    return train, test


@pytest.mark.parametrize("normalise", [True, False])
def test_gradient_flow_matches_dense_expm(normalise):
    txx, tzx, _, y, f0x, f0z = _problem()
    times, lr = np.array([0.0, 0.3, 2.0, 40.0]), 0.7
    out = regression.gradient_flow(
        txx, y, f0x, t=times, lr=lr, theta_zx=tzx, f0_z=f0z, normalise=normalise
    )
    s = 1 / N if normalise else 1.0
    for i, t in enumerate(times):
        train, test = _expm_reference(txx, tzx, y, f0x, f0z, lr * s * t)
        # both sides are float64 dense linear algebra on a kernel with condition number ~1e2:
        # agreement to ~1e3·eps·cond is expected; 1e-10 absolute leaves margin
        np.testing.assert_allclose(out.train[i], train, atol=1e-10)
        np.testing.assert_allclose(out.test[i], test, atol=1e-10)


def test_gradient_flow_scalar_time_and_infinity():
    txx, tzx, kzz, y, f0x, f0z = _problem(1)
    single = regression.gradient_flow(txx, y, f0x, t=1.5, theta_zx=tzx, f0_z=f0z)
    stacked = regression.gradient_flow(txx, y, f0x, t=[1.5], theta_zx=tzx, f0_z=f0z)
    assert single.train.shape == (N, K) and single.test.shape == (M, K)
    np.testing.assert_array_equal(single.train, stacked.train[0])
    # t = ∞ interpolates the targets, and on Z (with f0 = 0) equals the GP posterior mean
    # computed through a Cholesky factorisation (an independent solver)
    inf = regression.gradient_flow(txx, y, t=np.inf, theta_zx=tzx)
    np.testing.assert_allclose(inf.train, y, atol=1e-10)
    gp = regression.gp_posterior(txx, k_zx=tzx, k_zz=kzz, y=y)
    np.testing.assert_allclose(inf.test, gp.mean, atol=1e-10)


def test_rank_deficient_kernel_is_fine_at_finite_time():
    """g(λ) = (1 − e^{−aλ})/λ → a as λ → 0: no division by a zero eigenvalue at finite t."""
    txx, tzx, _, y, f0x, f0z = _problem(2, rank=3)
    out = regression.gradient_flow(txx, y, f0x, t=5.0, lr=1.0)
    want = f0x + (np.eye(N) - sl.expm(-5.0 / N * txx)) @ (y - f0x)
    np.testing.assert_allclose(out.train, want, atol=1e-10)
    with pytest.raises(ValueError, match="^theta_xx: singular"):
        regression.gradient_flow(txx, y, f0x, t=np.inf)
    # with a ridge the converged solution exists: Θ(X,X)(Θ(X,X) + rI)⁻¹(Y − f0) on X
    ridge = regression.gradient_flow(txx, y, f0x, t=np.inf, reg=0.1)
    want = f0x + txx @ np.linalg.solve(txx + 0.1 * np.eye(N), y - f0x)
    np.testing.assert_allclose(ridge.train, want, atol=1e-10)


def test_gradient_descent_matches_explicit_iteration():
    txx, tzx, _, y, f0x, f0z = _problem(3)
    lr, steps = 2.0, [0, 1, 7, 30]
    out = regression.gradient_descent(txx, y, f0x, t=steps, lr=lr, theta_zx=tzx, f0_z=f0z)
    fx, fz = f0x.copy(), f0z.copy()
    for k in range(max(steps) + 1):
        if k in steps:
            i = steps.index(k)
            # float64 iteration of a contraction: round-off stays ~k·eps
            np.testing.assert_allclose(out.train[i], fx, atol=1e-11)
            np.testing.assert_allclose(out.test[i], fz, atol=1e-11)
        d = fx - y
        fx, fz = fx - lr / N * txx @ d, fz - lr / N * tzx @ d


def test_full_kernel_matches_dense_expm_and_kron_identity():
    """A full (N, N, k, k) kernel: flattened over (i, k) pairs; Θ ⊗ Id equals the traced form."""
    txx, tzx, _, y, f0x, f0z = _problem(4)
    full_kernel = _psd(5, (N + M) * K, (N + M) * K + 2).reshape(N + M, K, N + M, K)
    full_kernel = full_kernel.transpose(0, 2, 1, 3)  # (N+M, N+M, K, K)
    fxx, fzx = full_kernel[:N, :N], full_kernel[N:, :N]
    out = regression.gradient_flow(fxx, y, f0x, t=3.0, theta_zx=fzx, f0_z=f0z)
    flat = fxx.transpose(0, 2, 1, 3).reshape(N * K, N * K)
    flat_z = fzx.transpose(0, 2, 1, 3).reshape(M * K, N * K)
    decay = np.eye(N * K) - sl.expm(-3.0 / N * flat)
    r = (y - f0x).reshape(-1)
    np.testing.assert_allclose(out.train, f0x + (decay @ r).reshape(N, K), atol=1e-10)
    want_z = f0z + (flat_z @ np.linalg.solve(flat, decay @ r)).reshape(M, K)
    np.testing.assert_allclose(out.test, want_z, atol=1e-10)
    eye = np.eye(K)
    kron = regression.gradient_flow(
        np.einsum("ij,kl->ijkl", txx, eye),
        y,
        f0x,
        t=3.0,
        theta_zx=np.einsum("ij,kl->ijkl", tzx, eye),
        f0_z=f0z,
    )
    traced = regression.gradient_flow(txx, y, f0x, t=3.0, theta_zx=tzx, f0_z=f0z)
    np.testing.assert_allclose(kron.train, traced.train, atol=1e-12)
    np.testing.assert_allclose(kron.test, traced.test, atol=1e-12)


def test_gp_posterior_matches_dense_formula():
    txx, tzx, kzz, y, *_ = _problem(6)
    gp = regression.gp_posterior(txx, k_zx=tzx, k_zz=kzz, y=y, reg=0.05)
    inv = np.linalg.inv(txx + 0.05 * np.eye(N))
    np.testing.assert_allclose(gp.mean, tzx @ inv @ y, atol=1e-10)
    np.testing.assert_allclose(gp.cov, kzz - tzx @ inv @ tzx.T, atol=1e-10)


def test_ensemble_moments_limits():
    """t = 0: the prior GP(0, K); t = ∞ with Θ = K: the GP posterior (Lee et al. 2019, §2.3)."""
    kxx, kzx, kzz, y, *_ = _problem(7)
    txx, tzx = _problem(8)[:2]
    at0 = regression.ensemble_moments(
        kxx, k_zx=kzx, k_zz=kzz, theta_xx=txx, theta_zx=tzx, y=y, t=0.0
    )
    np.testing.assert_allclose(at0.mean, np.zeros((M, K)), atol=1e-14)
    np.testing.assert_allclose(at0.cov, kzz, atol=1e-12)
    gp = regression.gp_posterior(kxx, k_zx=kzx, k_zz=kzz, y=y)
    inf = regression.ensemble_moments(
        kxx, k_zx=kzx, k_zz=kzz, theta_xx=kxx, theta_zx=kzx, y=y, t=np.inf
    )
    np.testing.assert_allclose(inf.mean, gp.mean, atol=1e-10)
    np.testing.assert_allclose(inf.cov, gp.cov, atol=1e-10)


def test_ensemble_moments_match_monte_carlo_over_initial_functions():
    """f_0 ~ GP(0, K) on X ∪ Z, each sample evolved under Θ by the (expm-tested) flow: the sample
    mean and covariance match eqs. (15)–(16) within their standard errors."""
    kern = _psd(9, N + M, N + M + 1)  # K on X ∪ Z
    theta = _psd(10, N + M, N + M + 2)  # a different Θ
    y = np.random.default_rng(11).normal(size=(N, 1))
    t, s = 4.0, 6000
    mom = regression.ensemble_moments(
        kern[:N, :N],
        k_zx=kern[N:, :N],
        k_zz=kern[N:, N:],
        theta_xx=theta[:N, :N],
        theta_zx=theta[N:, :N],
        y=y,
        t=t,
    )
    f0 = np.linalg.cholesky(kern + 1e-12 * np.eye(N + M)) @ np.random.default_rng(12).normal(
        size=(N + M, s)
    )
    out = regression.gradient_flow(
        theta[:N, :N], np.repeat(y, s, axis=1), f0[:N], t=t, theta_zx=theta[N:, :N], f0_z=f0[N:]
    )
    samples = np.asarray(out.test)  # (M, s): s independent draws of f_t(Z)
    mean, cov = samples.mean(axis=1), np.cov(samples)
    # Gaussian samples: SE(mean_a) = √(Σ_aa / s); SE(cov_ab) = √((Σ_aa Σ_bb + Σ_ab²) / s).
    # 5 SE bounds every one of the M + M² entries with family-wise false-alarm rate < 1e-4.
    var = np.diag(mom.cov)
    assert np.all(np.abs(mean - mom.mean[:, 0]) <= 5 * np.sqrt(var / s))
    se_cov = np.sqrt((np.outer(var, var) + np.asarray(mom.cov) ** 2) / s)
    assert np.all(np.abs(cov - mom.cov) <= 5 * se_cov)


def test_time_axis_shapes():
    kxx, kzx, kzz, y, *_ = _problem(13)
    mom = regression.ensemble_moments(
        kxx, k_zx=kzx, k_zz=kzz, theta_xx=kxx, theta_zx=kzx, y=y, t=[0.5, 1.0, np.inf]
    )
    assert mom.mean.shape == (3, M, K) and mom.cov.shape == (3, M, M)


def _bad(call, name):
    with pytest.raises(ValueError, match=f"^{name}"):
        call()


def test_bad_inputs_name_the_argument():
    txx, tzx, kzz, y, f0x, f0z = _problem(14)
    gf = regression.gradient_flow
    _bad(lambda: gf(txx[:, :-1], y, t=1.0), "theta_xx")  # not square
    _bad(lambda: gf(txx + np.triu(np.ones((N, N)), 1), y, t=1.0), "theta_xx")  # not symmetric
    _bad(lambda: gf(txx - 2 * np.eye(N) * np.abs(txx).max(), y, t=1.0), "theta_xx")  # indefinite
    _bad(lambda: gf(np.ones((N, N, 2)), y, t=1.0), "theta_xx")
    _bad(lambda: gf(txx, y[:-1], t=1.0), "y")
    _bad(lambda: gf(txx, _nan(y), t=1.0), "y")
    _bad(lambda: gf(txx, y, f0x[:, :1], t=1.0), "f0_x")
    _bad(lambda: gf(txx, y, t=-1.0), "t")
    _bad(lambda: gf(txx, y, t=np.nan), "t")
    _bad(lambda: gf(txx, y, t=[[1.0]]), "t")
    _bad(lambda: gf(txx, y, t=1.0, lr=0.0), "lr")
    _bad(lambda: gf(txx, y, t=1.0, reg=-1.0), "reg")
    _bad(lambda: gf(txx, y, t=1.0, theta_zx=tzx[:, :-1]), "theta_zx")
    _bad(lambda: gf(txx, y, f0x, t=1.0, theta_zx=tzx), "f0_z")
    _bad(lambda: gf(txx, y, f0x, t=1.0, theta_zx=tzx, f0_z=f0z[:-1]), "f0_z")
    _bad(lambda: gf(txx, y, f0x, t=1.0, f0_z=f0z), "f0_z")  # a test start without test kernel
    _bad(lambda: regression.gradient_descent(txx, y, t=1.5, lr=1.0), "t")
    singular = _psd(15, N, 2)
    _bad(lambda: regression.gp_posterior(singular, k_zx=tzx, k_zz=kzz, y=y), "k_xx")
    _bad(lambda: regression.gp_posterior(txx, k_zx=tzx, k_zz=kzz[:-1, :-1], y=y), "k_zz")
    _bad(lambda: regression.gp_posterior(txx, k_zx=tzx[:, :-1], k_zz=kzz, y=y), "k_zx")
    em = functools.partial(regression.ensemble_moments, txx, k_zx=tzx, k_zz=kzz, y=y)
    _bad(lambda: em(theta_xx=txx[:-1, :-1], theta_zx=tzx, t=1.0), "theta_xx")
    _bad(lambda: em(theta_xx=txx, theta_zx=tzx[:-1], t=1.0), "theta_zx")
    _bad(lambda: em(theta_xx=singular, theta_zx=tzx, t=np.inf), "theta_xx")
    # a missing test kernel is a ValueError naming it (it was an AttributeError in descent)
    _bad(lambda: em(theta_xx=txx, theta_zx=None, t=1.0), "theta_zx")
    de = functools.partial(regression.descent_ensemble_moments, txx, tzx, kzz, txx)
    _bad(lambda: de(None, y, t=1, lr=0.1), "theta_zx")


def _nan(a):
    a = np.array(a)
    a[0, 0] = np.nan
    return a


def test_jax_inputs_accepted():
    txx, tzx, _, y, f0x, f0z = _problem(16)
    a = regression.gradient_flow(jnp.asarray(txx), jnp.asarray(y), jnp.asarray(f0x), t=1.0)
    b = regression.gradient_flow(txx, y, f0x, t=1.0)
    np.testing.assert_array_equal(a.train, b.train)


def test_modes_sorted_and_orthonormal():
    theta = _psd(0, N, N + 3)
    basis = regression.modes(theta)
    lam = np.asarray(basis.lam)
    assert np.all(np.diff(lam) <= 0)
    np.testing.assert_allclose(lam, np.sort(np.linalg.eigvalsh(theta))[::-1], rtol=1e-12)
    v = np.asarray(basis.vectors)
    np.testing.assert_allclose(v.T @ v, np.eye(N), atol=1e-12)
    np.testing.assert_allclose(v @ np.diag(lam) @ v.T, theta, atol=1e-12)


def test_mode_rates_of_gradient_flow_are_lambda_over_n():
    # residuals from a dense scipy expm (independent of the eigendecomposition in regression)
    theta = _psd(1, N, N + 3)
    y = np.random.default_rng(2).normal(size=(N, K))
    times = np.linspace(0.0, 3.0, 7)
    r = np.stack([-sl.expm(-theta * t / N) @ y for t in times])  # f_t − y with f_0 = 0
    basis = regression.modes(theta)
    rates = regression.decay_rates(times, regression.mode_amplitudes(basis, r))
    np.testing.assert_allclose(rates, np.asarray(basis.lam) / N, rtol=1e-8)


def test_mode_amplitudes_shapes_and_errors():
    basis = regression.modes(_psd(3, N, N + 3))
    r = np.ones((N, K))
    assert regression.mode_amplitudes(basis, r).shape == (N,)
    assert regression.mode_amplitudes(basis, np.ones((3, N, K))).shape == (3, N)
    with pytest.raises(ValueError, match="r:"):
        regression.mode_amplitudes(basis, np.ones((N + 1, K)))
    with pytest.raises(ValueError, match="r:"):
        regression.mode_amplitudes(basis, np.full((N, K), np.nan))
    with pytest.raises(ValueError, match="theta_xx"):
        regression.modes(np.ones((N, N + 1)))


def test_decay_rates_errors():
    with pytest.raises(ValueError, match="t:"):
        regression.decay_rates([1.0, 1.0], np.ones((2, 3)))
    with pytest.raises(ValueError, match="amplitudes"):
        regression.decay_rates([0.0, 1.0], np.ones((3, 3)))
    with pytest.raises(ValueError, match="amplitudes"):
        regression.decay_rates([0.0, 1.0], np.zeros((2, 3)))
    np.testing.assert_allclose(
        regression.decay_rates([0.0, 1.0, 2.0], np.exp(-np.outer([0, 1, 2], [0.5, 2.0]))),
        [0.5, 2.0],
        rtol=1e-12,
    )


def test_one_hot_and_accuracy():
    labels = np.array([0, 2, 1, 2])
    y = regression.one_hot(labels, n_classes=3)
    np.testing.assert_allclose(y.sum(axis=1), 0.0, atol=1e-15)
    assert np.argmax(np.asarray(y), axis=1).tolist() == labels.tolist()
    raw = regression.one_hot(labels, n_classes=3, center=False)
    np.testing.assert_array_equal(np.asarray(raw).sum(axis=1), 1.0)
    scores = np.array([[1.0, 0, 0], [0, 0, 1], [0, 0, 1], [0, 0, 1]])
    assert regression.accuracy(scores, labels) == 0.75
    with pytest.raises(ValueError, match="labels"):
        regression.one_hot(np.array([0, 3]), n_classes=3)
    with pytest.raises(ValueError, match="labels"):
        regression.one_hot(np.array([0.0, 1.0]), n_classes=3)
    with pytest.raises(ValueError, match="n_classes"):
        regression.one_hot(labels, n_classes=1)
    with pytest.raises(ValueError, match="labels"):
        regression.accuracy(scores, labels[:3])


def test_one_hot_regression_interpolates_and_matches_solve():
    kern = _psd(4, N + M, N + M + 3)
    labels = np.array([0, 1, 2, 0, 1, 2])
    scores = regression.one_hot_regression(kern[:N, :N], kern[:N, :N], labels, n_classes=3)
    # on the training inputs: the targets themselves (interpolation)
    np.testing.assert_allclose(scores, regression.one_hot(labels, n_classes=3), atol=1e-10)
    test = regression.one_hot_regression(kern[:N, :N], kern[N:, :N], labels, n_classes=3, reg=0.1)
    y = np.asarray(regression.one_hot(labels, n_classes=3))
    ref = kern[N:, :N] @ np.linalg.solve(kern[:N, :N] + 0.1 * np.eye(N), y)
    np.testing.assert_allclose(test, ref, atol=1e-10)


def test_nngp_log_likelihood_matches_scipy_and_is_differentiable():
    kern = _psd(5, N, N + 3)
    y = np.random.default_rng(6).normal(size=(N, K))
    ref = sum(
        multivariate_normal(np.zeros(N), kern + 0.01 * np.eye(N)).logpdf(y[:, j]) for j in range(K)
    )
    got = regression.nngp_log_likelihood(kern, y, reg=0.01)
    np.testing.assert_allclose(got, ref, rtol=1e-10)
    # d/da log p under K → a K: analytic  ½ tr(Yᵀ K⁻¹ Y)/a² − kN/(2a) at a = 1
    grad = jax.grad(lambda a: regression.nngp_log_likelihood(a * kern, y))(1.0)
    expect = 0.5 * np.trace(y.T @ np.linalg.solve(kern, y)) - K * N / 2
    np.testing.assert_allclose(grad, expect, rtol=1e-8)
    with pytest.raises(ValueError, match="k_xx"):
        regression.nngp_log_likelihood(-np.eye(N), y)
    with pytest.raises(ValueError, match="y"):
        regression.nngp_log_likelihood(kern, y[:-1])


def _moment_blocks(seed=7):
    kern, theta = _psd(seed, N + M, N + M + 3), _psd(seed + 1, N + M, N + M + 3)
    y = np.random.default_rng(seed).normal(size=(N, K))
    blocks = dict(
        k_xx=kern[:N, :N],
        k_zx=kern[N:, :N],
        k_zz=kern[N:, N:],
        theta_xx=theta[:N, :N],
        theta_zx=theta[N:, :N],
        y=y,
    )
    return blocks, kern, theta, y


def test_descent_moments_against_monte_carlo_iteration():
    blocks, kern, theta, y = _moment_blocks()
    lr, steps = 0.7 * N / np.linalg.eigvalsh(theta[:N, :N])[-1], 5
    got = regression.descent_ensemble_moments(**blocks, t=steps, lr=lr)
    # explicit iteration of f ← f − (η/N) Θ(·, X)(f(X) − y) on exact Gaussian draws of f_0
    rng = np.random.default_rng(0)
    f = rng.multivariate_normal(np.zeros(N + M), kern, size=(20000, K)).transpose(0, 2, 1)
    for _ in range(steps):
        f = f - lr / N * np.einsum("ij,sjk->sik", theta[:, :N], f[:, :N] - y)
    fz = f[:, N:]
    np.testing.assert_allclose(got.mean, fz.mean(0), atol=5 * fz.std(0).max() / np.sqrt(20000))
    emp = np.einsum("sik,sjk->ij", fz - fz.mean(0), fz - fz.mean(0)) / (20000 * K)
    # Monte Carlo error of a covariance from 40000 draws: ~ (Σ_ii Σ_jj)^½ / 200
    scale = np.sqrt(np.outer(np.diag(got.cov), np.diag(got.cov)))
    assert np.all(np.abs(emp - got.cov) < 5 * scale / np.sqrt(20000 * K))


def test_descent_moments_tend_to_flow_moments():
    blocks, *_ = _moment_blocks(8)
    t = 2.0
    flow = regression.ensemble_moments(**blocks, t=t)
    errs = []
    for k in (100, 200, 400):
        d = regression.descent_ensemble_moments(**blocks, t=k, lr=t / k)
        gap = jnp.max(jnp.abs(d.cov - flow.cov)) + jnp.max(jnp.abs(d.mean - flow.mean))
        errs.append(float(gap))
    # an O(η) error: halving η halves it (ratio 2, not 4 or √2)
    assert abs(errs[0] / errs[1] - 2) < 0.05 and abs(errs[1] / errs[2] - 2) < 0.05, errs
    stacked = regression.descent_ensemble_moments(**blocks, t=[0, 3], lr=0.1)
    assert stacked.mean.shape == (2, M, K) and stacked.cov.shape == (2, M, M)
    np.testing.assert_allclose(stacked.cov[0], blocks["k_zz"], atol=1e-12)  # no step: prior
    with pytest.raises(ValueError, match="k_zz"):
        regression.descent_ensemble_moments(**{**blocks, "k_zz": np.eye(M + 1)}, t=1, lr=0.1)


def test_expected_test_cost_against_sampling():
    blocks, *_ = _moment_blocks(9)
    mom = regression.ensemble_moments(**blocks, t=1.0)
    y = np.random.default_rng(1).normal(size=(M, K))
    rng = np.random.default_rng(2)
    for s in (1, 4):
        draws = rng.multivariate_normal(np.zeros(M), np.asarray(mom.cov), size=(4000, s, K))
        f = np.asarray(mom.mean)[None] + draws.mean(axis=1).transpose(0, 2, 1)
        costs = 0.5 * np.sum((f - y) ** 2, axis=(1, 2)) / M
        expect = float(regression.expected_test_cost(mom, y, n_ensemble=s))
        assert abs(costs.mean() - expect) < 4 * costs.std() / np.sqrt(4000), (s, expect)
    with pytest.raises(ValueError, match="y"):
        regression.expected_test_cost(mom, y[:-1])
    with pytest.raises(ValueError, match="n_ensemble"):
        regression.expected_test_cost(mom, y, n_ensemble=0)


def test_one_hot_regression_errors():
    kern = _psd(10, N, N + 3)
    with pytest.raises(ValueError, match="labels"):
        regression.one_hot_regression(kern, kern, np.zeros(N - 1, int), n_classes=2)
    with pytest.raises(ValueError, match="k_xx"):
        regression.one_hot_regression(-kern, kern, np.zeros(N, int), n_classes=2)
    with pytest.raises(ValueError, match="k_zx"):
        regression.one_hot_regression(kern, kern[:, :-1], np.zeros(N, int), n_classes=2)
    # agrees with the eigendecomposition route of gradient_flow at t = ∞
    labels = np.arange(N) % 2
    y = regression.one_hot(labels, n_classes=2)
    np.testing.assert_allclose(
        regression.one_hot_regression(kern, kern[:3], labels, n_classes=2),
        regression.gradient_flow(kern, y, t=np.inf, theta_zx=kern[:3]).test,
        atol=1e-9,
    )


# ---------------------------------------------------------------------------------------------
# mse_ensemble: the one-call predictor (nt.predict.gradient_descent_mse_ensemble)


def _ensemble_reference(kern, theta, y, a):
    """Mean and covariance of f_t(Z) = f_0(Z) + B (Y − f_0(X)), f_0 ~ GP(0, K) on X ∪ Z, with
    B = Θ_ZX V diag((1 − e^{−aλ})/λ) Vᵀ from numpy's eigendecomposition of Θ_XX (a = ∞: 1/λ);
    the covariance as (I, −B) K (I, −B)ᵀ over the joint (Z, X) block."""
    lam, v = np.linalg.eigh(theta[:N, :N])
    g = 1 / lam if np.isinf(a) else -np.expm1(-a * lam) / lam
    b = theta[N:, :N] @ v @ np.diag(g) @ v.T
    proj = np.hstack([np.eye(M), -b])
    joint = np.block([[kern[N:, N:], kern[N:, :N]], [kern[:N, N:], kern[:N, :N]]])
    return b @ y, proj @ joint @ proj.T


def _blocks(seed):
    kern, theta = _psd(seed, N + M, N + M + 1), _psd(seed + 1, N + M, N + M + 2)
    blocks = regression.KernelBlocks(
        kern[:N, :N], kern[N:, :N], kern[N:, N:], theta[:N, :N], theta[N:, :N]
    )
    return blocks, kern, theta, np.random.default_rng(seed).normal(size=(N, K))


@pytest.mark.parametrize("get", ["ntk", "nngp"])
def test_mse_ensemble_matches_eigendecomposition_closed_form(get):
    blocks, kern, theta, y = _blocks(20)
    train_kernel = theta if get == "ntk" else kern  # "nngp": only the readout trains, under K
    times, lr = np.array([0.0, 0.4, 3.0, 50.0, np.inf]), 0.8
    out = regression.mse_ensemble(blocks, y, t=times, get=get, lr=lr)
    assert out.mean.shape == (5, M, K) and out.cov.shape == (5, M, M)
    for i, t in enumerate(times):
        mean, cov = _ensemble_reference(kern, train_kernel, y, lr * t / N)
        # float64 on both sides, kernels with condition number ~1e2–1e3: agreement to
        # ~1e3 · eps · cond; 1e-9 leaves margin, while a wrong s (1 for 1/N) or a missing
        # cross term changes entries by O(0.1)
        np.testing.assert_allclose(out.mean[i], mean, atol=1e-9)
        np.testing.assert_allclose(out.cov[i], cov, atol=1e-9)


def test_mse_ensemble_prior_at_zero_and_limits_at_infinity():
    blocks, kern, theta, y = _blocks(22)
    for get in ("ntk", "nngp"):
        at0 = regression.mse_ensemble(blocks, y, t=0.0, get=get)
        np.testing.assert_array_equal(at0.mean, np.zeros((M, K)))  # t = 0: the prior GP(0, K)
        np.testing.assert_allclose(at0.cov, kern[N:, N:], atol=1e-13)
        late = regression.mse_ensemble(blocks, y, t=1e4 * N, get=get)
        inf = regression.mse_ensemble(blocks, y, t=np.inf, get=get)
        # e^{−λ_min t/N} with λ_min ≳ 1e-2: below 1e-40 at t = 1e4 N, so t → ∞ is reached
        np.testing.assert_allclose(late.mean, inf.mean, atol=1e-9)
        np.testing.assert_allclose(late.cov, inf.cov, atol=1e-9)
    ntk_inf = regression.mse_ensemble(blocks, y, t=np.inf)
    np.testing.assert_allclose(
        ntk_inf.mean, theta[N:, :N] @ np.linalg.solve(theta[:N, :N], y), atol=1e-10
    )
    # NNGP at t = ∞: exact GP inference (Lee et al. 2019, §2.3), here by Cholesky
    gp = regression.gp_posterior(kern[:N, :N], kern[N:, :N], kern[N:, N:], y)
    nngp_inf = regression.mse_ensemble(blocks, y, t=np.inf, get="nngp")
    np.testing.assert_allclose(nngp_inf.mean, gp.mean, atol=1e-10)
    np.testing.assert_allclose(nngp_inf.cov, gp.cov, atol=1e-10)


def test_mse_ensemble_discrete_steps_and_conventions():
    blocks, kern, theta, y = _blocks(24)
    lr, steps = 0.5 * N / np.linalg.eigvalsh(theta[:N, :N])[-1], 7
    out = regression.mse_ensemble(blocks, y, t=steps, lr=lr, discrete=True)
    # dense reference: B = Θ_ZX Θ⁻¹ (I − (I − ηΘ/N)^k)
    decay = np.eye(N) - np.linalg.matrix_power(np.eye(N) - lr / N * theta[:N, :N], steps)
    b = theta[N:, :N] @ np.linalg.solve(theta[:N, :N], decay)
    np.testing.assert_allclose(out.mean, b @ y, atol=1e-10)
    # normalise=False is the plain sum-of-squares cost: time N t there equals t here
    plain = regression.mse_ensemble(blocks, y, t=2.0, normalise=False)
    np.testing.assert_allclose(
        plain.cov, regression.mse_ensemble(blocks, y, t=2.0 * N).cov, atol=1e-10
    )
    # reg enters the training kernel: at t = ∞ the mean is kernel ridge regression
    ridge = regression.mse_ensemble(blocks, y, t=np.inf, reg=0.3)
    want = theta[N:, :N] @ np.linalg.solve(theta[:N, :N] + 0.3 * np.eye(N), y)
    np.testing.assert_allclose(ridge.mean, want, atol=1e-10)
    _bad(lambda: regression.mse_ensemble(blocks, y, t=1.0, get="gp"), "get")
    _bad(lambda: regression.mse_ensemble(blocks, y, t=1.5, lr=0.1, discrete=True), "t")
    _bad(lambda: regression.mse_ensemble(blocks, y[:-1], t=1.0), "y")


def test_kernel_blocks_from_one_call_match_separate_calls():
    rng = np.random.default_rng(26)
    x, z = rng.normal(size=(N, 3)), rng.normal(size=(M, 3))

    def kernel_fn(a, b):
        k = limits.kernels(a, b, depth=3, beta=0.2, layers=(3,))
        return k.sigma[0], k.theta[0]

    blocks = regression.kernel_blocks(x, z, kernel_fn=kernel_fn)
    opts = dict(depth=3, beta=0.2)
    want = (limits.nngp(x, **opts), limits.nngp(z, x, **opts), limits.nngp(z, **opts),
            limits.ntk(x, **opts), limits.ntk(z, x, **opts))  # fmt: skip
    for got, ref in zip(blocks, want, strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-14)
    _bad(lambda: regression.kernel_blocks(x, z[:, :2], kernel_fn=kernel_fn), "x_test")
