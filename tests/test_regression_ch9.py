"""Tests of chapter 9's additions to ntkbook.regression, against independent computations
(scipy's multivariate normal, dense expm, explicit iteration, Monte Carlo)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg as sl
from scipy.stats import multivariate_normal

from ntkbook import regression

N, M, K = 6, 4, 2


def _psd(seed: int, n: int) -> np.ndarray:
    a = np.random.default_rng(seed).normal(size=(n, n + 3))
    return a @ a.T / (n + 3)


def test_modes_sorted_and_orthonormal():
    theta = _psd(0, N)
    basis = regression.modes(theta)
    lam = np.asarray(basis.lam)
    assert np.all(np.diff(lam) <= 0)
    np.testing.assert_allclose(lam, np.sort(np.linalg.eigvalsh(theta))[::-1], rtol=1e-12)
    v = np.asarray(basis.vectors)
    np.testing.assert_allclose(v.T @ v, np.eye(N), atol=1e-12)
    np.testing.assert_allclose(v @ np.diag(lam) @ v.T, theta, atol=1e-12)


def test_mode_rates_of_gradient_flow_are_lambda_over_n():
    # residuals from a dense scipy expm (independent of the eigendecomposition in regression)
    theta = _psd(1, N)
    y = np.random.default_rng(2).normal(size=(N, K))
    times = np.linspace(0.0, 3.0, 7)
    r = np.stack([-sl.expm(-theta * t / N) @ y for t in times])   # f_t − y with f_0 = 0
    basis = regression.modes(theta)
    rates = regression.decay_rates(times, regression.mode_amplitudes(basis, r))
    np.testing.assert_allclose(rates, np.asarray(basis.lam) / N, rtol=1e-8)


def test_mode_amplitudes_shapes_and_errors():
    basis = regression.modes(_psd(3, N))
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
        [0.5, 2.0], rtol=1e-12)


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
    kern = _psd(4, N + M)
    labels = np.array([0, 1, 2, 0, 1, 2])
    scores = regression.one_hot_regression(kern[:N, :N], kern[:N, :N], labels, n_classes=3)
    # on the training inputs: the targets themselves (interpolation)
    np.testing.assert_allclose(scores, regression.one_hot(labels, n_classes=3), atol=1e-10)
    test = regression.one_hot_regression(kern[:N, :N], kern[N:, :N], labels, n_classes=3, reg=0.1)
    y = np.asarray(regression.one_hot(labels, n_classes=3))
    ref = kern[N:, :N] @ np.linalg.solve(kern[:N, :N] + 0.1 * np.eye(N), y)
    np.testing.assert_allclose(test, ref, atol=1e-10)


def test_nngp_log_likelihood_matches_scipy_and_is_differentiable():
    kern = _psd(5, N)
    y = np.random.default_rng(6).normal(size=(N, K))
    ref = sum(multivariate_normal(np.zeros(N), kern + 0.01 * np.eye(N)).logpdf(y[:, j])
              for j in range(K))
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


def _blocks(seed=7):
    kern, theta = _psd(seed, N + M), _psd(seed + 1, N + M)
    y = np.random.default_rng(seed).normal(size=(N, K))
    blocks = dict(k_xx=kern[:N, :N], k_zx=kern[N:, :N], k_zz=kern[N:, N:],
                  theta_xx=theta[:N, :N], theta_zx=theta[N:, :N], y=y)
    return blocks, kern, theta, y


def test_descent_moments_against_monte_carlo_iteration():
    blocks, kern, theta, y = _blocks()
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
    blocks, *_ = _blocks(8)
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
    blocks, *_ = _blocks(9)
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
    kern = _psd(10, N)
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
        regression.gradient_flow(kern, y, t=np.inf, theta_zx=kern[:3]).test, atol=1e-9)
