r"""Closed-form kernel regression: NTK gradient flow, NNGP posterior, infinite ensembles (notes §9).

Least squares with the :math:`p^{\mathrm{in}}` convention of :mod:`ntkbook.costs`:
:math:`C = \tfrac12 \lVert f - Y \rVert^2_{p^{\mathrm{in}}}`, d = f − Y, and under a constant
kernel Θ the outputs on the training inputs X follow
:math:`\partial_t f = -\eta s\, \Theta (f - Y)`, with s = 1/N (``normalise=True``) or s = 1
(``normalise=False``, the sum-of-squares cost of Lee et al. 2019). Solving this linear ODE,

.. math::

    f_t(z) = f_0(z) + \Theta(z, X)\,\Theta^{-1}(I - e^{-\eta s \Theta t})(Y - f_0(X)),

on the training inputs (z = X) and on any test input z. Gradient *descent* with step η replaces
:math:`e^{-\eta s \Theta t}` by :math:`(I - \eta s \Theta)^k` after k steps. Matrix functions are
evaluated through one symmetric eigendecomposition
:math:`\Theta = V \operatorname{diag}(\lambda) V^\top`, with
:math:`g(\lambda) = (1 - e^{-\eta s \lambda t})/\lambda \to \eta s t` as :math:`\lambda \to 0`,
so a finite t never divides by a small eigenvalue; t = ∞ needs Θ(X, X) non-singular (or
``reg > 0``).

``reg`` ≥ 0 replaces Θ(X, X) by Θ(X, X) + reg·I (kernel ridge regression at t = ∞).

:func:`mse_ensemble` is the one-call predictor (neural-tangents'
``predict.gradient_descent_mse_ensemble``): kernel blocks in, the trained infinite ensemble's
mean and covariance at any t out; ``book/neural_tangents.md`` maps the two libraries' conventions.

Kernels are either traced (N1, N2) — one kernel for all n_L outputs, Θ ⊗ Id — or full
(N1, N2, n_L, n_L) as returned by ``ntkbook.empirical.ntk(..., traced=False)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks

Array = jax.Array
Spectral = Callable[[Array], Array]


class Prediction(NamedTuple):
    """Outputs of kernel regression.

    Attributes:
        train: f on the training inputs, (N, k), or (T, N, k) for T times.
        test: f on the test inputs, (M, k) or (T, M, k); ``None`` without ``theta_zx``.
    """

    train: Array
    test: Array | None


class Moments(NamedTuple):
    """Mean (M, k) and covariance (M, M) of a Gaussian process over outputs (a leading T axis for
    T times); the covariance is the same for every output k."""

    mean: Array
    cov: Array


# ---------------------------------------------------------------------------------------------
# validation


def _flatten_full(name: str, k: object, *, square: bool) -> tuple[Array, int]:
    """Accept (N1, N2) or (N1, N2, k, k); return a 2-D matrix over (i, output) pairs and k."""
    arr = jnp.asarray(k)
    if arr.ndim == 2:
        return (_checks.symmetric(name, arr) if square else _checks.matrix(name, arr)), 0
    if arr.ndim == 4 and arr.shape[2] == arr.shape[3]:
        n1, n2, kk, _ = arr.shape
        flat = jnp.transpose(arr, (0, 2, 1, 3)).reshape(n1 * kk, n2 * kk)
        return (_checks.symmetric(name, flat) if square else _checks.matrix(name, flat)), kk
    raise ValueError(f"{name}: expected shape (N1, N2) or (N1, N2, n_L, n_L), got {arr.shape}")


def _targets(name: str, y: object, n: int, k_full: int) -> Array:
    """Targets (N, k) matching a kernel over N points (and k outputs when the kernel is full)."""
    y = _checks.matrix(name, y)
    if y.shape[0] != n or (k_full and y.shape[1] != k_full):
        want = f"({n}, {k_full})" if k_full else f"({n}, k)"
        raise ValueError(f"{name}: expected shape {want}, got {y.shape}")
    return y


# ---------------------------------------------------------------------------------------------
# spectral functions g(λ) with Θ⁻¹(I − M(Θ)) = V diag(g(λ)) Vᵀ


def _flow_g(a: Array) -> Spectral:
    """g(λ) = (1 − e^{−aλ})/λ, → a at λ = 0, → 1/λ at a = ∞ (a = η s t, one per time)."""

    def g(lam: Array) -> Array:
        a_, lam = a[:, None], lam[None, :]
        safe = jnp.where(lam > 0, lam, 1.0)
        finite = jnp.where(lam > 0, -jnp.expm1(-a_ * lam) / safe, a_)
        return jnp.where(jnp.isinf(a_), 1.0 / safe, finite)

    return g


def _descent_g(h: Array, k: Array) -> Spectral:
    """g(λ) = (1 − (1 − hλ)^k)/λ, → k h at λ = 0 (h = η s, k steps)."""

    def g(lam: Array) -> Array:
        k_, lam = k[:, None], lam[None, :]
        safe = jnp.where(lam > 0, lam, 1.0)
        return jnp.where(lam > 0, (1.0 - (1.0 - h * lam) ** k_) / safe, k_ * h)

    return g


def _solve(
    theta_xx: object,
    y: object,
    f0_x: object | None,
    g_of: Callable[[Array], tuple[Spectral, bool]],
    *,
    theta_zx: object | None,
    f0_z: object | None,
    reg: float,
    squeeze: bool,
) -> Prediction:
    """Shared body of :func:`gradient_flow` and :func:`gradient_descent`."""
    reg = _checks.nonnegative("reg", reg)
    kxx, k_full = _flatten_full("theta_xx", theta_xx, square=True)
    n = kxx.shape[0] // max(k_full, 1)
    y = _targets("y", y, n, k_full)
    f0_x = jnp.zeros_like(y) if f0_x is None else _targets("f0_x", f0_x, n, k_full)
    if f0_x.shape != y.shape:
        raise ValueError(f"f0_x: shape {f0_x.shape} does not match y {y.shape}")
    g, need_inverse = g_of(jnp.asarray(n))
    lam, v = _checks.psd_eigh("theta_xx", kxx, reg, need_inverse=need_inverse)

    def flat(a: Array) -> Array:  # (N, k) → (N k, 1) for a full kernel, unchanged otherwise
        return a.reshape(-1, 1) if k_full else a

    def unflat(a: Array) -> Array:  # (T, N k, 1) → (T, N, k)
        return a.reshape(a.shape[0], -1, y.shape[1]) if k_full else a

    coeff = g(lam)[:, :, None] * (v.T @ flat(y - f0_x))[None]  # (T, N', k'): diag(g) Vᵀ r
    train = f0_x[None] + unflat(jnp.einsum("ij,tjk->tik", kxx @ v, coeff))
    test = None
    if theta_zx is None and f0_z is not None:
        raise ValueError("f0_z: given without theta_zx (there are no test outputs to start from)")
    if theta_zx is not None:
        kzx, kz_full = _flatten_full("theta_zx", theta_zx, square=False)
        if kz_full != k_full or kzx.shape[1] != kxx.shape[0]:
            raise ValueError(
                f"theta_zx: shape {kzx.shape} (outputs flattened) does not match "
                f"theta_xx {kxx.shape}"
            )
        m = kzx.shape[0] // max(k_full, 1)
        if f0_z is None:
            if bool(jnp.any(f0_x != 0)):
                raise ValueError("f0_z: required with theta_zx when f0_x is non-zero")
            f0_z = jnp.zeros((m, y.shape[1]), y.dtype)
        f0_z = _checks.matrix("f0_z", f0_z)
        if f0_z.shape != (m, y.shape[1]):
            raise ValueError(f"f0_z: expected shape {(m, y.shape[1])}, got {f0_z.shape}")
        test = f0_z[None] + unflat(jnp.einsum("ij,tjk->tik", kzx @ v, coeff))
    if squeeze:
        train = train[0]
        test = None if test is None else test[0]
    return Prediction(train, test)


def _scale(normalise: bool, n: Array) -> Array:
    """s = 1/N for the p_in cost, 1 for the sum-of-squares cost."""
    return 1.0 / n if normalise else jnp.asarray(1.0)


def gradient_flow(
    theta_xx: object,
    y: object,
    f0_x: object | None = None,
    *,
    t: float | Array,
    lr: float = 1.0,
    theta_zx: object | None = None,
    f0_z: object | None = None,
    normalise: bool = True,
    reg: float = 0.0,
) -> Prediction:
    r"""Outputs at time t of gradient flow on least squares under a constant kernel.

    .. math::

        f_t(z) = f_0(z) + \Theta(z, X)\,\Theta^{-1}\big(I - e^{-\eta s \Theta t}\big)
            \big(Y - f_0(X)\big),

    with s = 1/N (``normalise=True``) or 1.

    With ``lr=1`` t is the flow time η·steps of :func:`ntkbook.training.train`; with ``lr=η``, t
    counts steps.

    Args:
        theta_xx: Θ(X, X), (N, N) or (N, N, n_L, n_L); symmetric positive semi-definite.
        y: targets (N, k).
        f0_x: outputs at initialisation on X, (N, k); zero if omitted.
        t: a time ≥ 0 or a 1-D array of times; ``inf`` gives the converged solution.
        lr: η > 0.
        theta_zx: Θ(Z, X), (M, N) or (M, N, n_L, n_L), for predictions on test inputs Z.
        f0_z: outputs at initialisation on Z, (M, k); required when ``f0_x`` is non-zero.
        normalise: the p_in (1/N) convention of :mod:`ntkbook.costs`, or the plain sum.
        reg: ≥ 0, added to the diagonal of Θ(X, X).

    Returns:
        :class:`Prediction` (train (N, k), test (M, k) or ``None``), with a leading time axis when
        ``t`` is an array.

    Raises:
        ValueError: naming the argument: mis-shaped, non-finite, non-symmetric, indefinite kernels;
            a singular Θ(X, X) with t = ∞ and reg = 0; negative or NaN times; lr ≤ 0.

    Example:
        >>> import jax.numpy as jnp
        >>> theta = jnp.array([[2.0, 1.0], [1.0, 2.0]]); y = jnp.array([[1.0], [-1.0]])
        >>> bool(jnp.allclose(gradient_flow(theta, y, t=jnp.inf).train, y))
        True
    """
    lr = _checks.positive("lr", lr)
    times, squeeze = _checks.times("t", t)

    def g_of(n: Array) -> tuple[Spectral, bool]:
        return _flow_g(lr * _scale(normalise, n) * times), bool(jnp.any(jnp.isinf(times)))

    return _solve(theta_xx, y, f0_x, g_of, theta_zx=theta_zx, f0_z=f0_z, reg=reg, squeeze=squeeze)


def gradient_descent(
    theta_xx: object,
    y: object,
    f0_x: object | None = None,
    *,
    t: float | Array,
    lr: float,
    theta_zx: object | None = None,
    f0_z: object | None = None,
    normalise: bool = True,
    reg: float = 0.0,
) -> Prediction:
    r"""Outputs after t steps of gradient descent on least squares under a constant kernel.

    The discrete counterpart of :func:`gradient_flow` (exact for the linearised network):

    .. math::

        f_t(z) = f_0(z) + \Theta(z, X)\,\Theta^{-1}\big(I - (I - \eta s\Theta)^t\big)(Y - f_0(X)).

    It converges when η s λ_max < 2. Arguments as in :func:`gradient_flow`; here ``t`` counts
    steps (an integer ≥ 0 or a 1-D array of them), so ``t`` means the same in both: the flow
    ``gradient_flow(..., t=k, lr=η)`` is the η → 0 limit of ``gradient_descent(..., t=k, lr=η)``.
    """
    lr = _checks.positive("lr", lr)
    ks, squeeze = _checks.times("t", t, integer=True)

    def g_of(n: Array) -> tuple[Spectral, bool]:
        return _descent_g(lr * _scale(normalise, n), ks), False

    return _solve(theta_xx, y, f0_x, g_of, theta_zx=theta_zx, f0_z=f0_z, reg=reg, squeeze=squeeze)


def gp_posterior(
    k_xx: object, k_zx: object, k_zz: object, y: object, *, reg: float = 0.0
) -> Moments:
    r"""Gaussian-process posterior (NNGP inference) given exact observations Y at X.

    .. math::

        \begin{aligned}
        \mu(z) &= K(z, X)(K + rI)^{-1} Y, \\
        \Sigma(z, z') &= K(z, z') - K(z, X)(K + rI)^{-1} K(X, z'),
        \end{aligned}

    computed through a Cholesky factorisation of K(X, X) + r I.

    Args:
        k_xx: K(X, X), (N, N), symmetric positive definite (or made so by ``reg``).
        k_zx: K(Z, X), (M, N).
        k_zz: K(Z, Z), (M, M), symmetric.
        y: targets (N, k).
        reg: r ≥ 0, the observation-noise variance.

    Returns:
        :class:`Moments`: mean (M, k), covariance (M, M).
    """
    reg = _checks.nonnegative("reg", reg)
    kxx, kzx, kzz = _checks.train_test_blocks(("k_xx", "k_zx", "k_zz"), k_xx, k_zx, k_zz)
    n = kxx.shape[0]
    y = _targets("y", y, n, 0)
    chol = jnp.linalg.cholesky(kxx + reg * jnp.eye(n, dtype=kxx.dtype))
    if not bool(jnp.all(jnp.isfinite(chol))):
        raise ValueError("k_xx: not positive definite (Cholesky failed); pass reg > 0")
    factor = (chol, True)
    mean = kzx @ jax.scipy.linalg.cho_solve(factor, y)
    cov = kzz - kzx @ jax.scipy.linalg.cho_solve(factor, kzx.T)
    return Moments(mean, 0.5 * (cov + cov.T))


def ensemble_moments(
    k_xx: object,
    k_zx: object,
    k_zz: object,
    theta_xx: object,
    theta_zx: object,
    y: object,
    *,
    t: float | Array,
    lr: float = 1.0,
    normalise: bool = True,
    reg: float = 0.0,
) -> Moments:
    r"""Mean and covariance at time t of an infinite ensemble of wide networks trained on MSE.

    Networks in NTK parametrisation start as :math:`f_0 \sim \mathcal{GP}(0, K)` (K the NNGP
    kernel :math:`\Sigma^{(L)}`) and evolve under the constant NTK Θ (Lee et al. 2019,
    eqs. (15)–(16)). With :math:`A_t = \Theta^{-1}(I - e^{-\eta s \Theta t})` (s as in
    :func:`gradient_flow`) and :math:`B = \Theta(z, X) A_t`:

    .. math::

        \begin{aligned}
        \mu_t(z) &= B\,Y, \\
        \Sigma_t(z, z') &= K(z, z') + B K(X, X) B'^\top - \big(B K(X, z') + K(z, X) B'^\top\big).
        \end{aligned}

    Args:
        k_xx, k_zx, k_zz: NNGP kernel K on (X, X) (N, N), (Z, X) (M, N), (Z, Z) (M, M).
        theta_xx, theta_zx: NTK Θ on (X, X) (N, N) and (Z, X) (M, N).
        y: targets (N, k).
        t: a time ≥ 0 (``inf`` allowed) or a 1-D array of times.
        lr, normalise, reg: as in :func:`gradient_flow` (``reg`` is added to Θ(X, X) only).

    Returns:
        :class:`Moments`: mean (M, k) and covariance (M, M), or (T, M, k), (T, M, M).
    """
    lr = _checks.positive("lr", lr)
    times, squeeze = _checks.times("t", t)

    def g_of(n: Array) -> tuple[Spectral, bool]:
        return _flow_g(lr * _scale(normalise, n) * times), bool(jnp.any(jnp.isinf(times)))

    return _ensemble(k_xx, k_zx, k_zz, theta_xx, theta_zx, y, g_of, reg=reg, squeeze=squeeze)


def _ensemble(
    k_xx: object,
    k_zx: object,
    k_zz: object,
    theta_xx: object,
    theta_zx: object,
    y: object,
    g_of: Callable[[Array], tuple[Spectral, bool]],
    *,
    reg: float,
    squeeze: bool,
) -> Moments:
    """Shared body of :func:`ensemble_moments` and :func:`descent_ensemble_moments`:
    B = Θ(Z, X) V diag(g(λ)) Vᵀ, mean B Y, covariance (I, −B) K(Z ∪ X) (I, −B)ᵀ."""
    reg = _checks.nonnegative("reg", reg)
    kxx, kzx, kzz = _checks.train_test_blocks(("k_xx", "k_zx", "k_zz"), k_xx, k_zx, k_zz)
    n = kxx.shape[0]
    txx = _checks.symmetric("theta_xx", theta_xx)
    if txx.shape != kxx.shape:
        raise ValueError(f"theta_xx: shape {txx.shape} does not match k_xx {kxx.shape}")
    tzx = _checks.matrix("theta_zx", theta_zx, n_features=n)
    if tzx.shape != kzx.shape:
        raise ValueError(f"theta_zx: shape {tzx.shape} does not match k_zx {kzx.shape}")
    y = _targets("y", y, n, 0)
    g, need_inverse = g_of(jnp.asarray(n))
    lam, v = _checks.psd_eigh("theta_xx", txx, reg, need_inverse=need_inverse)
    b = jnp.einsum("mj,tj,nj->tmn", tzx @ v, g(lam), v)  # Θ(Z, X) A_t, (T, M, N)
    mean = b @ y
    cross = b @ kzx.T  # B K(X, Z)
    cov = kzz[None] + b @ kxx @ jnp.swapaxes(b, 1, 2) - cross - jnp.swapaxes(cross, 1, 2)
    cov = 0.5 * (cov + jnp.swapaxes(cov, 1, 2))
    return Moments(mean[0], cov[0]) if squeeze else Moments(mean, cov)


# ---------------------------------------------------------------------------------------------
# modes of the kernel, classification, marginal likelihood (chapter 9)


class Modes(NamedTuple):
    """Eigendecomposition Θ(X, X) = V diag(λ) Vᵀ, largest eigenvalue first.

    Attributes:
        lam: (N,) eigenvalues λ_1 ≥ … ≥ λ_N.
        vectors: (N, N) orthonormal eigenvectors; column i belongs to ``lam[i]``.
    """

    lam: Array
    vectors: Array


def modes(theta_xx: object) -> Modes:
    r"""The eigenmodes of a kernel on the training inputs, largest eigenvalue first.

    .. math::

        \Theta(X, X) = \sum_{i=1}^N \lambda_i v_i v_i^\top, \qquad
        \lambda_1 \ge \dots \ge \lambda_N .

    Under gradient flow the residual's component along :math:`v_i` decays as
    :math:`e^{-s \lambda_i t}`.

    Args:
        theta_xx: Θ(X, X), (N, N), symmetric.

    Returns:
        :class:`Modes`.

    Raises:
        ValueError: naming ``theta_xx`` if it is not a finite symmetric square matrix.
    """
    lam, v = jnp.linalg.eigh(_checks.symmetric("theta_xx", theta_xx))
    return Modes(lam[::-1], v[:, ::-1])


def mode_amplitudes(basis: Modes, r: object) -> Array:
    r"""The size of a residual along each eigenvector, over all outputs:

    .. math::

        a_i = \big\lVert v_i^\top r \big\rVert_2
            = \Big(\sum_k (v_i^\top r_{\cdot k})^2\Big)^{1/2}.

    Args:
        basis: :class:`Modes` of Θ(X, X) over N points.
        r: residuals f − Y, (N, k), or (T, N, k) for T times.

    Returns:
        (N,) or (T, N): amplitude of mode i (in the order of ``basis.lam``).
    """
    arr = jnp.asarray(r)
    n = basis.vectors.shape[0]
    if arr.ndim not in (2, 3) or arr.shape[-2] != n:
        raise ValueError(f"r: expected shape ({n}, k) or (T, {n}, k), got {arr.shape}")
    _checks.finite("r", arr)
    coeff = jnp.einsum("ni,...nk->...ik", basis.vectors.astype(arr.dtype), arr)
    return jnp.linalg.norm(coeff, axis=-1)


def decay_rates(t: object, amplitudes: object) -> Array:
    r"""Exponential decay rates fitted to amplitudes over time, one per mode.

    Least squares of log a_i(t_j) ≈ c_i − ρ_i t_j over the T times:

    .. math::

        \hat\rho_i = -\frac{\sum_j (t_j - \bar t)(\log a_{ij} - \overline{\log a_i})}
        {\sum_j (t_j - \bar t)^2} .

    For a kernel model under gradient flow, :math:`a_i(t) = a_i(0)\, e^{-s \lambda_i t}` and
    :math:`\rho_i = s \lambda_i` exactly.

    Args:
        t: (T,) distinct times, T ≥ 2, finite.
        amplitudes: (T, P) positive amplitudes of P modes (e.g. :func:`mode_amplitudes`).

    Returns:
        (P,) fitted rates ρ_i.

    Raises:
        ValueError: naming ``t`` or ``amplitudes`` (shapes, fewer than 2 distinct times,
            non-positive or non-finite amplitudes).
    """
    times = np.asarray(t, dtype=float)
    if times.ndim != 1 or np.unique(times).size < 2 or not np.all(np.isfinite(times)):
        raise ValueError(f"t: expected a 1-D array of >= 2 distinct finite times, got {t!r}")
    a = jnp.asarray(amplitudes)
    if a.ndim != 2 or a.shape[0] != times.size:
        raise ValueError(f"amplitudes: expected shape ({times.size}, P), got {a.shape}")
    _checks.finite("amplitudes", a)
    if bool(jnp.any(a <= 0)):
        raise ValueError("amplitudes: must be > 0 (their logarithm is fitted)")
    tc = jnp.asarray(times - times.mean(), a.dtype)
    log_a = jnp.log(a)
    return -(tc @ (log_a - log_a.mean(axis=0, keepdims=True))) / jnp.sum(tc**2)


def one_hot(
    labels: object, *, n_classes: int, center: bool = True, dtype: jnp.dtype | None = None
) -> Array:
    r"""One-hot targets for least-squares classification, centred by default:

    .. math:: Y_{ic} = \delta_{c, y_i} - 1/C \quad (\text{or } \delta_{c, y_i} \text{ uncentred}).

    Centred targets sum to zero over classes, the mean of the network's outputs at
    initialisation (Lee et al. 2019 use the same shift).

    Args:
        labels: (N,) integers in {0, …, C − 1}.
        n_classes: C ≥ 2.
        center: subtract 1/C.
        dtype: float dtype (default: JAX's default float).

    Returns:
        (N, C).
    """
    c = _checks.positive_int("n_classes", n_classes, minimum=2)
    lab = np.asarray(labels)
    if lab.ndim != 1 or not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"labels: expected a 1-D integer array, got {lab.dtype} {lab.shape}")
    if lab.size and (lab.min() < 0 or lab.max() >= c):
        raise ValueError(f"labels: must lie in 0 … {c - 1}, got {lab.min()} … {lab.max()}")
    dt = jnp.result_type(float) if dtype is None else _checks.float_dtype("dtype", dtype)
    y = jnp.asarray(lab[:, None] == np.arange(c)[None, :], dt)
    return y - 1.0 / c if center else y


def accuracy(scores: object, labels: object) -> float:
    r"""Fraction of inputs whose largest score is the true class:

    .. math:: \frac1M \sum_{i=1}^M \mathbf 1\big[\arg\max_c f_c(z_i) = y_i\big].

    Args:
        scores: (M, C) outputs.
        labels: (M,) integers.

    Returns:
        the accuracy in [0, 1].
    """
    s = _checks.matrix("scores", scores)
    lab = np.asarray(labels)
    if lab.shape != (s.shape[0],) or not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"labels: expected {s.shape[0]} integers, got {lab.dtype} {lab.shape}")
    return float(np.mean(np.argmax(np.asarray(s), axis=1) == lab))


def one_hot_regression(
    k_xx: object,
    k_zx: object,
    labels: object,
    *,
    n_classes: int,
    reg: float = 0.0,
    center: bool = True,
) -> Array:
    r"""Least-squares classification with a kernel: interpolate one-hot targets, score test inputs.

    .. math:: F(Z) = K(Z, X)\,(K(X, X) + rI)^{-1}\, Y, \qquad Y = \text{one-hot}(y),

    the t = ∞ limit of :func:`gradient_flow` started from f_0 = 0 ("ridgeless" for r = 0),
    computed through a Cholesky factorisation. With
    K = Θ∞ it is the mean of the infinite ensemble of trained networks; with K = Σ the NNGP
    posterior mean.

    Args:
        k_xx: K(X, X), (N, N), positive definite (or made so by ``reg``).
        k_zx: K(Z, X), (M, N).
        labels: (N,) training labels.
        n_classes: C.
        reg: r ≥ 0.
        center: centre the one-hot targets (:func:`one_hot`).

    Returns:
        scores (M, C); predict with the largest (:func:`accuracy`).
    """
    reg = _checks.nonnegative("reg", reg)
    kxx = _checks.symmetric("k_xx", k_xx)
    n = kxx.shape[0]
    kzx = _checks.matrix("k_zx", k_zx, n_features=n)
    y = one_hot(labels, n_classes=n_classes, center=center, dtype=kxx.dtype)
    if y.shape[0] != n:
        raise ValueError(f"labels: expected {n} labels (one per row of k_xx), got {y.shape[0]}")
    chol = jnp.linalg.cholesky(kxx + reg * jnp.eye(n, dtype=kxx.dtype))  # cheaper than eigh
    if not bool(jnp.all(jnp.isfinite(chol))):
        raise ValueError("k_xx: not positive definite (Cholesky failed); pass reg > 0")
    return kzx @ jax.scipy.linalg.cho_solve((chol, True), y)


def expected_test_cost(moments: Moments, y: object, *, n_ensemble: int = 1) -> Array:
    r"""Expected cost :math:`\frac12\|f - Y\|^2_{p^{in}}` on test inputs of the average of S
    independent networks
    whose outputs are Gaussian with the given moments (mean μ (M, k), covariance Σ shared by the
    k outputs):

    .. math::

        \mathbb E\,\tfrac12\lVert \bar f_S - Y\rVert^2_{p_{in}}
        = \frac{1}{2M}\Big(\lVert \mu - Y\rVert_F^2 + \frac{k}{S}\operatorname{tr}\Sigma\Big).

    S = 1 is one network, S = ∞ the ensemble mean.

    Args:
        moments: :class:`Moments` (mean (M, k), cov (M, M)), e.g. from :func:`ensemble_moments`.
        y: test targets (M, k).
        n_ensemble: S ≥ 1 networks averaged.

    Returns:
        a scalar.
    """
    mean = _checks.matrix("moments.mean", moments.mean)
    cov = _checks.symmetric("moments.cov", moments.cov)
    m, k = mean.shape
    if cov.shape != (m, m):
        raise ValueError(f"moments.cov: expected shape {(m, m)}, got {cov.shape}")
    y = _checks.matrix("y", y)
    if y.shape != mean.shape:
        raise ValueError(f"y: expected shape {mean.shape}, got {y.shape}")
    s = _checks.positive_int("n_ensemble", n_ensemble)
    return (jnp.sum((mean - y) ** 2) + k * jnp.trace(cov) / s) / (2 * m)


def nngp_log_likelihood(k_xx: object, y: object, *, reg: float = 0.0) -> Array:
    r"""Log marginal likelihood of targets under the NNGP prior, f ~ GP(0, K), outputs i.i.d.:

    .. math::

        \log p(Y \mid X) = -\frac12 \operatorname{tr}\big(Y^\top (K + rI)^{-1} Y\big)
        - \frac k2 \log\det(K + rI) - \frac{Nk}{2}\log 2\pi ,

    for Y of shape (N, k). Differentiable in K (so in the kernel's hyperparameters).

    Args:
        k_xx: K(X, X), (N, N), positive definite (or made so by ``reg``).
        y: targets (N, k).
        reg: r ≥ 0, the observation-noise variance.

    Returns:
        a scalar (nats).

    Raises:
        ValueError: naming ``k_xx`` when K + rI is not positive definite (concrete inputs).
    """
    reg = _checks.nonnegative("reg", reg)
    # under jax.grad the kernel is a tracer: shape checks only (values cannot be inspected)
    kxx = _checks.symmetric("k_xx", k_xx) if _checks.is_concrete(k_xx) else jnp.asarray(k_xx)
    if kxx.ndim != 2 or kxx.shape[0] != kxx.shape[1]:
        raise ValueError(f"k_xx: expected a square (N, N) kernel, got shape {kxx.shape}")
    n = kxx.shape[0]
    y = _targets("y", y, n, 0).astype(kxx.dtype)
    value = _log_likelihood(kxx, y, jnp.asarray(reg, kxx.dtype))
    if _checks.is_concrete(value) and not bool(jnp.isfinite(value)):
        raise ValueError("k_xx: not positive definite (Cholesky failed); pass reg > 0")
    return value


@jax.jit
def _log_likelihood(kxx: Array, y: Array, reg: Array) -> Array:
    """The body of :func:`nngp_log_likelihood` (NaN when the Cholesky factorisation fails)."""
    n, k = y.shape
    chol = jnp.linalg.cholesky(kxx + reg * jnp.eye(n, dtype=kxx.dtype))
    alpha = jax.scipy.linalg.solve_triangular(chol, y, lower=True)
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol)))
    return -0.5 * jnp.sum(alpha**2) - 0.5 * k * logdet - 0.5 * n * k * jnp.log(2 * jnp.pi)


def descent_ensemble_moments(
    k_xx: object,
    k_zx: object,
    k_zz: object,
    theta_xx: object,
    theta_zx: object,
    y: object,
    *,
    t: float | Array,
    lr: float,
    normalise: bool = True,
    reg: float = 0.0,
) -> Moments:
    r"""Mean and covariance after t steps of gradient *descent* of an infinite ensemble of wide
    networks (the discrete counterpart of :func:`ensemble_moments`).

    Under a constant kernel, t steps of size η map f_0 to f_t(Z) = B_t Y + f_0(Z) − B_t f_0(X)
    with B_t = Θ(Z, X) Θ⁻¹(I − (I − ηsΘ)^t) (:func:`gradient_descent`). With f_0 ~ GP(0, K):

    .. math::

        \mu_t(z) = B_t Y, \qquad
        \Sigma_t = \begin{pmatrix} I & -B_t \end{pmatrix}
        \begin{pmatrix} K(Z, Z) & K(Z, X) \\ K(X, Z) & K(X, X) \end{pmatrix}
        \begin{pmatrix} I \\ -B_t^\top \end{pmatrix}.

    Args:
        k_xx, k_zx, k_zz, theta_xx, theta_zx, y, normalise, reg: as in :func:`ensemble_moments`.
        t: a number of steps, an integer ≥ 0, or a 1-D array of them.
        lr: η > 0.

    Returns:
        :class:`Moments`: mean (M, k) and covariance (M, M), or (T, M, k), (T, M, M).
    """
    lr = _checks.positive("lr", lr)
    ks, squeeze = _checks.times("t", t, integer=True)

    def g_of(n: Array) -> tuple[Spectral, bool]:
        return _descent_g(lr * _scale(normalise, n), ks), False

    return _ensemble(k_xx, k_zx, k_zz, theta_xx, theta_zx, y, g_of, reg=reg, squeeze=squeeze)


# ---------------------------------------------------------------------------------------------
# the one-call predictor (neural_tangents.predict.gradient_descent_mse_ensemble)


class KernelBlocks(NamedTuple):
    """NNGP kernel K and NTK Θ on training inputs X (N rows) and test inputs Z (M rows)."""

    k_xx: Array
    k_zx: Array
    k_zz: Array
    theta_xx: Array
    theta_zx: Array


KernelFn = Callable[[Array, Array], tuple[Array, Array]]  # (x1, x2) -> (K, Θ), each (N1, N2)


def kernel_blocks(x_train: object, x_test: object, *, kernel_fn: KernelFn) -> KernelBlocks:
    """The five blocks from one call ``kernel_fn(W, W)`` on W = X ∪ Z (X's rows first).

    Args:
        x_train: X, (N, n_0).
        x_test: Z, (M, n_0).
        kernel_fn: ``(x1, x2) -> (K, Θ)``; for the notes' MLP, ``k.sigma[0], k.theta[0]`` of
            ``k = ntkbook.limits.kernels(x1, x2, depth=L, layers=(L,))``.

    Returns:
        :class:`KernelBlocks`.
    """
    x = _checks.matrix("x_train", x_train)
    z = _checks.matrix("x_test", x_test, n_features=x.shape[1])
    w = jnp.concatenate([x, z.astype(x.dtype)])
    k, theta = kernel_fn(w, w)
    n = x.shape[0]
    return KernelBlocks(k[:n, :n], k[n:, :n], k[n:, n:], theta[:n, :n], theta[n:, :n])


Get = Literal["ntk", "nngp"]


def mse_ensemble(
    blocks: KernelBlocks,
    y: object,
    *,
    t: float | Array,
    get: Get = "ntk",
    lr: float = 1.0,
    normalise: bool = True,
    reg: float = 0.0,
    discrete: bool = False,
) -> Moments:
    r"""Test outputs of an infinite ensemble of infinitely wide networks trained on MSE, at time t:
    the analogue of ``neural_tangents.predict.gradient_descent_mse_ensemble``.

    At t = 0 the outputs are the prior GP(0, K). ``get="ntk"``: every layer is trained and the
    outputs move under Θ (:func:`ensemble_moments`). ``get="nngp"``: only the last layer is
    trained; its share of the NTK is :math:`\Sigma^{(L)}`, so Θ is replaced by K and, for
    reg = 0, t = ∞ gives the GP posterior (:func:`gp_posterior`):

    .. math::

        \mu_t = K_{ZX} K_{XX}^{-1}(I - e^{-\eta s K_{XX} t}) Y
        \;\xrightarrow{t \to \infty}\; K_{ZX} K_{XX}^{-1} Y .

    Args:
        blocks: :class:`KernelBlocks` (from :func:`kernel_blocks`, or computed any other way).
        y: targets (N, k).
        t: a time ≥ 0 (``inf`` allowed) or a 1-D array; with ``discrete=True`` a number of
            gradient-descent steps (:func:`descent_ensemble_moments`).
        get: ``"ntk"`` or ``"nngp"``.
        lr, normalise, reg: as in :func:`gradient_flow`; ``reg`` is absolute (nt's ``diag_reg``
            is relative: reg = diag_reg · tr Θ(X, X)/N) and enters the training kernel only.
        discrete: gradient descent with step η instead of gradient flow.

    Returns:
        :class:`Moments`: mean (M, k), covariance (M, M), with a leading time axis for an array t.
    """
    _checks.choice("get", get, ("ntk", "nngp"))
    b = blocks
    theta_xx, theta_zx = (b.theta_xx, b.theta_zx) if get == "ntk" else (b.k_xx, b.k_zx)
    moments = descent_ensemble_moments if discrete else ensemble_moments
    return moments(
        b.k_xx, b.k_zx, b.k_zz, theta_xx, theta_zx, y, t=t, lr=lr, normalise=normalise, reg=reg
    )
