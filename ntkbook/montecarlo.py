r"""Ensembles over random initialisations, and rates of convergence (used by every chapter).

:func:`ensemble` evaluates ``fn(key)`` for ``n_samples`` independent keys — vmapped inside ``jit``
in blocks of ``block_size`` samples (``lax.map``), so memory is that of one block.
:func:`fit_rate` fits the slope of log(error) against log(width), with a bootstrap
confidence interval: a width-n quantity converging at the :math:`n^{-1/2}` rate of the
notes' Theorems 1–2 has slope −1/2.

Example:
    >>> import jax
    >>> draws = ensemble(lambda k: jax.random.normal(k, (3,)), key=jax.random.key(0), n_samples=10)
    >>> draws.shape
    (10, 3)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from . import _checks, empirical, networks

Array = jax.Array


class RateFit(NamedTuple):
    """log(error) ≈ intercept + slope · log(width), with a bootstrap CI for the slope.

    Attributes:
        slope: OLS slope of log(error) on log(width).
        intercept: OLS intercept (error ≈ e^intercept · width^slope).
        ci_low, ci_high: percentile bootstrap confidence interval of the slope.
        confidence: the CI's level, e.g. 0.95.
        n_boot: number of bootstrap resamples used.
    """

    slope: float
    intercept: float
    ci_low: float
    ci_high: float
    confidence: float
    n_boot: int

    def contains(self, rate: float) -> bool:
        """True when ``rate`` lies in [ci_low, ci_high]."""
        return self.ci_low <= rate <= self.ci_high


class MeanSem(NamedTuple):
    """Sample mean and its standard error s/√S along the sample axis."""

    mean: Array
    sem: Array


@partial(jax.jit, static_argnames=("fn", "n_samples", "chunk_size"))
def _ensemble(fn: Callable[[Array], Any], key: Array, n_samples: int, chunk_size: int) -> Any:
    return jax.lax.map(fn, jax.random.split(key, n_samples), batch_size=chunk_size)


def ensemble(
    fn: Callable[[Array], Any],
    *,
    key: Array,
    n_samples: int,
    block_size: int | None = None,
) -> Any:
    r"""Stack ``fn(k_s)`` over keys k_1 … k_S = ``jax.random.split(key, n_samples)``, on one
    device (:func:`ntkbook.sharding.ensemble` splits the keys over several).

    Blocks of ``block_size`` keys run vmapped, blocks one after another (``lax.map`` with
    ``batch_size``), all inside one ``jit``: peak memory ∝ block_size. The same (key, n_samples,
    block_size) gives bitwise the same result; sample s depends only on k_s, up to float rounding
    of batched kernels.

    Args:
        fn: ``fn(key)`` → a pytree of arrays (e.g. a network's NTK at an initialisation drawn from
            ``key``). Pass the same function object on repeated calls to reuse the compilation.
        key: a ``jax.random`` key.
        n_samples: S ≥ 1.
        block_size: samples per vmapped block (default: all S at once).

    Returns:
        The pytree of ``fn``'s outputs, each leaf with a leading axis of length S.

    Raises:
        ValueError: naming ``fn``, ``key``, ``n_samples`` or ``block_size``.
    """
    if not callable(fn):
        raise ValueError(f"fn: expected a function of a key, got {fn!r}")
    key = _checks.key("key", key)
    n_samples = _checks.positive_int("n_samples", n_samples)
    chunk = n_samples if block_size is None else _checks.positive_int("block_size", block_size)
    return _ensemble(fn, key, n_samples, min(chunk, n_samples))


def mean_sem(samples: Array, *, axis: int = 0) -> MeanSem:
    r"""Mean and standard error over ``axis``: x̄ and s/√S with s² = Σ(x − x̄)²/(S − 1).

    Raises:
        ValueError: naming ``samples`` when fewer than 2 samples or non-finite values.
    """
    x = jnp.asarray(samples)
    if x.ndim == 0 or x.shape[axis] < 2:
        raise ValueError(f"samples: need at least 2 samples along axis {axis}, got shape {x.shape}")
    _checks.finite("samples", x)
    n = x.shape[axis]
    return MeanSem(x.mean(axis=axis), x.std(axis=axis, ddof=1) / np.sqrt(n))


def _ols(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares line y ≈ a + b x over the last axis: (a, b); NaN slope if x is constant."""
    xm, ym = x.mean(axis=-1, keepdims=True), y.mean(axis=-1, keepdims=True)
    sxx = np.sum(np.square(x - xm), axis=-1)
    sxy = np.sum((x - xm) * (y - ym), axis=-1)
    slope = np.divide(sxy, sxx, out=np.full_like(sxy, np.nan), where=sxx > 0)
    return ym[..., 0] - slope * xm[..., 0], slope


def _rate_inputs(widths: Sequence[float], errors: Array) -> tuple[np.ndarray, np.ndarray]:
    """Validated (log widths (W,), errors (W,) or (W, S))."""
    w = np.asarray(widths, dtype=float)
    e = np.asarray(errors, dtype=float)
    if w.ndim != 1 or np.unique(w).size < 2:
        raise ValueError(f"widths: need a 1-D sequence with >= 2 distinct widths, got {widths!r}")
    if not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ValueError("widths: must be finite and > 0")
    if e.ndim not in (1, 2) or e.shape[0] != w.size:
        raise ValueError(
            f"errors: expected shape ({w.size},) or ({w.size}, n_seeds) to match widths, "
            f"got {e.shape}"
        )
    if e.ndim == 1 and np.unique(w).size < 3:
        raise ValueError(
            "widths: resampling (width, error) pairs needs >= 3 distinct widths "
            "(or pass errors as (n_widths, n_seeds))"
        )
    if e.ndim == 2 and e.shape[1] < 2:
        raise ValueError(f"errors: need >= 2 seeds per width in the 2-D form, got shape {e.shape}")
    if not np.all(np.isfinite(e)) or np.any(e <= 0):
        raise ValueError("errors: must be finite and > 0 (their logarithm is fitted)")
    return np.log(w), e


def fit_rate(
    widths: Sequence[float],
    errors: Array,
    *,
    n_boot: int = 1000,
    key: Array | None = None,
    confidence: float = 0.95,
) -> RateFit:
    r"""Fit error ≈ C · width^slope by least squares in log–log, with a bootstrap CI.

    .. math::

        \log e_i = a + s \log n_i + \varepsilon_i, \qquad
        \hat s = \frac{\sum_i (u_i - \bar u)(v_i - \bar v)}{\sum_i (u_i - \bar u)^2},

    with :math:`u = \log n` and :math:`v = \log e`.

    ``errors`` of shape (W,) is one error per width (W ≥ 3 distinct widths); the CI then comes
    from resampling the (width, error) pairs. Of shape (W, S) — S seeds per width, what the
    chapters use — the fit is to the log of the per-width mean error (e_i = mean over seeds),
    and the CI resamples the seeds within each width. Resamples whose widths are all equal
    (possible for pairs) are dropped. The CI is the percentile interval at level ``confidence``.

    Args:
        widths: n_1 … n_W > 0, at least two distinct (three for 1-D ``errors``).
        errors: positive, shape (W,) or (W, S) with S ≥ 2.
        n_boot: bootstrap resamples (≥ 1).
        key: ``jax.random`` key for the resampling (default ``jax.random.key(0)``): the same key
            gives the same CI.
        confidence: the CI level, in (0, 1).

    Returns:
        :class:`RateFit`.

    Example:
        >>> fit = fit_rate([100, 400, 1600], [[0.1, 0.11], [0.05, 0.052], [0.026, 0.024]])
        >>> round(fit.slope, 2)
        -0.5
    """
    u, e = _rate_inputs(widths, errors)
    n_boot = _checks.positive_int("n_boot", n_boot)
    level = _checks.positive("confidence", confidence)
    if level >= 1:
        raise ValueError(f"confidence: must be in (0, 1), got {confidence!r}")
    key = _checks.key("key", jax.random.key(0) if key is None else key)

    # Resampling indices from JAX (reproducible from ``key``); the arithmetic in float64 NumPy.
    if e.ndim == 1:
        v = np.log(e)
        idx = np.asarray(jax.random.randint(key, (n_boot, u.size), 0, u.size))
        _, boot = _ols(u[idx], v[idx])
    else:
        v = np.log(e.mean(axis=1))
        idx = np.asarray(jax.random.randint(key, (n_boot,) + e.shape, 0, e.shape[1]))
        means = np.take_along_axis(np.broadcast_to(e, idx.shape), idx, axis=2).mean(axis=2)
        _, boot = _ols(np.broadcast_to(u, means.shape), np.log(means))
    intercept, slope = _ols(u, v)
    boot = boot[np.isfinite(boot)]
    if boot.size == 0:
        raise ValueError("n_boot: every resample had a single distinct width; increase n_boot")
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(boot, [alpha, 1.0 - alpha])
    return RateFit(float(slope), float(intercept), float(low), float(high), level, int(boot.size))


# ------------------------------------------------- statistics of ensembles (chapters 3–4)


def _samples(name: str, samples: object, *, minimum: int = 2) -> Array:
    """``samples`` as a finite float array with ≥ ``minimum`` draws along axis 0."""
    x = jnp.asarray(samples)
    if x.ndim == 0 or x.shape[0] < minimum:
        raise ValueError(f"{name}: need at least {minimum} samples along axis 0, got {x.shape}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    _checks.finite(name, x)
    return x


def excess_kurtosis(samples: Array) -> Array:
    r"""Sample excess kurtosis along axis 0 (the ensemble axis), per remaining entry.

    .. math::

        \hat\kappa = \frac{\tfrac1S \sum_s (x_s - \bar x)^4}
                          {\big(\tfrac1S \sum_s (x_s - \bar x)^2\big)^2} - 3,

    zero for a Gaussian. A sum of n i.i.d. terms of excess kurtosis κ has excess kurtosis κ/n
    (fourth cumulants add, the variance is n times that of a term): the :math:`n^{-1}` rate of
    Proposition 1's central limit. The estimator's standard error for a near-Gaussian x is
    ≈ √(24/S).

    Args:
        samples: (S, …) draws, S ≥ 4, finite, not constant.

    Returns:
        κ̂ of shape samples.shape[1:].

    Example:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (100_000,))
        >>> abs(float(excess_kurtosis(x))) < 5 * (24 / 100_000) ** 0.5
        True
    """
    x = _samples("samples", samples, minimum=4)
    centred = x - x.mean(axis=0, keepdims=True)
    m2 = jnp.mean(jnp.square(centred), axis=0)
    if _checks.is_concrete(m2) and bool(jnp.any(m2 == 0)):
        raise ValueError("samples: constant along axis 0 (zero variance)")
    return jnp.mean(jnp.square(jnp.square(centred)), axis=0) / jnp.square(m2) - 3.0


class Covariance(NamedTuple):
    """An ensemble's second moments and their Monte Carlo standard errors (same shape)."""

    cov: Array
    sem: Array


def second_moments(samples: Array) -> Covariance:
    r"""The uncentred covariance :math:`\hat C_{ab} = \tfrac1S \sum_s x_{s,a} x_{s,b}` of centred
    random vectors, with the standard error of each entry.

    For an ensemble of networks f_s(x) (mean zero by the symmetry W ↦ −W of the last layer),
    :math:`\hat C` estimates :math:`\mathbb E[f(x_a) f(x_b)] = \Sigma^{(L)}(x_a, x_b)` without the
    O(1/S) bias of centring; the
    standard error is the sample standard deviation of the products over √S:

    .. math::

        \operatorname{se}(\hat C_{ab}) = \sqrt{\tfrac{1}{S(S-1)}
            \textstyle\sum_s (x_{s,a} x_{s,b} - \hat C_{ab})^2 } .

    Args:
        samples: (S, D) draws of a D-vector (e.g. f at N inputs, or n_L outputs), S ≥ 2.

    Returns:
        :class:`Covariance` with ``cov`` and ``sem`` of shape (D, D).
    """
    x = _samples("samples", samples)
    if x.ndim != 2:
        raise ValueError(f"samples: expected (S, D), got shape {x.shape}")
    products = x[:, :, None] * x[:, None, :]
    stats = mean_sem(products, axis=0)
    return Covariance(stats.mean, stats.sem)


def relative_frobenius_error(estimate: Array, reference: Array) -> Array:
    r"""The relative error :math:`\lVert E - R \rVert_F / \lVert R \rVert_F` of an estimate E of a
    reference R, over the last two axes.

    .. math::

        e = \frac{\lVert \hat K - K \rVert_F}{\lVert K \rVert_F}

    Args:
        estimate: (…, N1, N2), e.g. empirical NTKs of several seeds stacked on leading axes.
        reference: (N1, N2), nonzero.

    Returns:
        e of shape estimate.shape[:-2].
    """
    ref = jnp.asarray(reference)
    est = jnp.asarray(estimate)
    if ref.ndim != 2 or est.ndim < 2 or est.shape[-2:] != ref.shape:
        raise ValueError(
            f"estimate: expected (..., {ref.shape[-2:] if ref.ndim == 2 else 'N1, N2'}) "
            f"matching reference, got {est.shape} and reference {ref.shape}"
        )
    _checks.finite("estimate", est)
    _checks.finite("reference", ref)
    norm = jnp.linalg.norm(ref)
    if float(norm) == 0.0:
        raise ValueError("reference: has zero norm")
    diff = est - jnp.broadcast_to(ref, est.shape)
    return jnp.sqrt(jnp.sum(jnp.square(diff), axis=(-2, -1))) / norm


def gaussian_samples(
    cov: Array, *, key: Array, n_samples: int, jitter: float = 1e-10
) -> Array:
    r"""Draws of a centred Gaussian vector with covariance K (e.g. a GP prior on a grid).

    .. math::

        g = L z, \qquad L L^\top = K + \epsilon\, \bar k\, I, \qquad z \sim \mathcal N(0, I),

    with ε = ``jitter`` relative to the mean diagonal k̄ (K is only positive semi-definite
    in general; the added variance ε k̄ is far below anything plotted).

    Args:
        cov: K, (D, D), symmetric positive semi-definite.
        key: a ``jax.random`` key.
        n_samples: S ≥ 1.
        jitter: ε ≥ 0.

    Returns:
        (S, D) draws.
    """
    key = _checks.key("key", key)
    k = _checks.matrix("cov", cov)
    if k.shape[0] != k.shape[1] or not bool(jnp.allclose(k, k.T)):
        raise ValueError(f"cov: expected a symmetric square matrix, got shape {k.shape}")
    n_samples = _checks.positive_int("n_samples", n_samples)
    eps = _checks.nonnegative("jitter", jitter)
    scale = jnp.mean(jnp.diag(k))
    chol = jnp.linalg.cholesky(k + eps * scale * jnp.eye(k.shape[0], dtype=k.dtype))
    if not bool(jnp.all(jnp.isfinite(chol))):
        raise ValueError("cov: not positive semi-definite (Cholesky failed); raise jitter?")
    z = jax.random.normal(key, (n_samples, k.shape[0]), k.dtype)
    return z @ chol.T


# ------------------------------------------------- empirical NTKs at initialisation (chapter 4)


class InitNTK(NamedTuple):
    r"""Empirical NTKs of S independent initialisations of one architecture.

    Attributes:
        by_layer: (S, L, N1, N2), traced contribution of the parameters
            :math:`(W^{(l)}, b^{(l)})` of each affine layer
            (:func:`ntkbook.empirical.ntk_by_layer`); summed over l it is the traced NTK
            :math:`\frac{1}{n_L}\sum_k \Theta_{kk}`.
        full: (S, N1, N2, n_L, n_L), the full kernel Θ_kk′(x, x′) (:func:`ntkbook.empirical.ntk`).
    """

    by_layer: Array
    full: Array


def _init_ntk(
    net: networks.MLP, x1: Array, x2: Array | None, dtype: jnp.dtype, key: Array
) -> InitNTK:
    params = networks.init(net, key=key, dtype=dtype)
    return InitNTK(
        empirical.ntk_by_layer(x1, x2, net=net, params=params),
        empirical.ntk(x1, x2, net=net, params=params),
    )


def init_ntk_draw(
    x1: Array,
    x2: Array | None = None,
    *,
    net: networks.MLP,
    dtype: DTypeLike = jnp.float32,
) -> Callable[[Array], InitNTK]:
    r"""The draw of :func:`ntk_at_init`: ``draw(k)`` initialises θ ~ N(0, I) of ``net`` from
    the key k and returns :class:`InitNTK` ``(Θ^(l) by layer, Θ_kk'(x1, x2; θ))``.

    For an ensemble runner of one's own (:func:`ensemble`, :func:`ntkbook.sharding.ensemble`).

    Args:
        x1: inputs (N1, n_0); x2: inputs (N2, n_0), default ``x1``.
        net: the architecture (:func:`ntkbook.networks.mlp`).
        dtype: float dtype of the parameters (and of the computation); inputs are cast to it.

    Returns:
        A function of one ``jax.random`` key.

    Raises:
        ValueError: naming ``net``, ``x1``, ``x2`` or ``dtype``.
    """
    if not isinstance(net, networks.MLP):
        raise ValueError(
            f"net: expected an MLP from ntkbook.networks.mlp, got {type(net).__name__}"
        )
    dt = _checks.float_dtype("dtype", dtype)
    a = _checks.matrix("x1", x1, n_features=net.widths[0]).astype(dt)
    b = None if x2 is None else _checks.matrix("x2", x2, n_features=net.widths[0]).astype(dt)
    return partial(_init_ntk, net, a, b, dt)


def ntk_at_init(
    x1: Array,
    x2: Array | None = None,
    *,
    net: networks.MLP,
    key: Array,
    n_samples: int,
    dtype: DTypeLike = jnp.float32,
    block_size: int | None = None,
) -> InitNTK:
    r"""Empirical NTKs of ``n_samples`` independent initialisations θ_s ~ N(0, I) of ``net``.

    .. math::

        \Theta_{kk'}(x, x'; \theta_s) = \sum_p \partial_{\theta_p} f_k(x; \theta_s)\,
            \partial_{\theta_p} f_{k'}(x'; \theta_s), \qquad s = 1, \dots, S,

    split by layer as well (the §4.2 split: index L − 1 of ``by_layer`` is the last layer).
    Sample s uses the key k_s = ``jax.random.split(key, n_samples)[s]`` and is what
    ``empirical.ntk(x1, x2, net=net, params=networks.init(net, key=k_s, dtype=dtype))``
    returns; all S run in one compiled :func:`ensemble` (vmapped in blocks of
    ``block_size``), on one device (:func:`ntkbook.sharding.ntk_at_init` splits the
    initialisations over several).

    Args:
        x1: inputs (N1, n_0); x2: inputs (N2, n_0), default ``x1``.
        net: the architecture (:func:`ntkbook.networks.mlp`).
        key: a ``jax.random`` key.
        n_samples: S ≥ 1.
        dtype: float dtype of the parameters (and of the computation); inputs are cast to it.
        block_size: initialisations per vmapped block (peak memory ∝ block_size · parameters).

    Returns:
        :class:`InitNTK` ``(by_layer (S, L, N1, N2), full (S, N1, N2, n_L, n_L))``.

    Raises:
        ValueError: naming ``net``, ``key``, ``x1``, ``x2``, ``n_samples``, ``dtype`` or
            ``block_size``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from ntkbook import networks
        >>> net = networks.mlp((2, 64, 3), activation="relu")
        >>> out = ntk_at_init(jnp.eye(2), net=net, key=jax.random.key(0), n_samples=4)
        >>> out.by_layer.shape, out.full.shape
        ((4, 2, 2, 2), (4, 2, 2, 3, 3))
    """
    draw = init_ntk_draw(x1, x2, net=net, dtype=dtype)
    return ensemble(draw, key=key, n_samples=n_samples, block_size=block_size)


# ------------------------------------------------- test statistics shared by chapters 1–4


class ZScore(NamedTuple):
    """A Monte Carlo mean, its standard error, and its distance to a reference in standard errors.

    Attributes:
        mean: sample mean over the draws.
        sem: its standard error s/√S.
        z: (mean − reference) / sem.
    """

    mean: Array
    sem: Array
    z: Array


def z_scores(samples: Array, reference: Array | float, *, axis: int = 0) -> ZScore:
    r"""How many standard errors a Monte Carlo mean lies from a reference value, entry by entry.

    .. math::

        z = \frac{\bar x - x_{\rm ref}}{s / \sqrt S}, \qquad
        s^2 = \frac{1}{S-1}\sum_{s=1}^S (x_s - \bar x)^2 .

    For S independent draws with mean :math:`x_{\rm ref}`, z is approximately standard normal
    (Student t with S − 1 degrees of freedom), so a few units bound it; a wrong reference moves it
    by (bias)·√S/s.

    Args:
        samples: draws along ``axis`` (≥ 2 of them), finite, not all equal.
        reference: the value the mean should have, broadcastable to the mean's shape.
        axis: the sample axis.

    Returns:
        :class:`ZScore` ``(mean, sem, z)``, each of the shape of the mean.

    Raises:
        ValueError: naming ``samples`` (too few, non-finite, zero spread) or ``reference``
            (non-finite, or not broadcastable to the mean).

    Example:
        >>> import jax
        >>> x = 2.0 + jax.random.normal(jax.random.key(0), (10_000,))
        >>> abs(float(z_scores(x, 2.0).z)) < 4
        True
    """
    stats = mean_sem(samples, axis=axis)
    ref = jnp.asarray(reference, dtype=stats.mean.dtype)
    _checks.finite("reference", ref)
    try:
        ref = jnp.broadcast_to(ref, stats.mean.shape)
    except ValueError:
        raise ValueError(
            f"reference: shape {ref.shape} does not broadcast to the mean's {stats.mean.shape}"
        ) from None
    if bool(jnp.any(stats.sem == 0)):
        raise ValueError("samples: zero spread along the sample axis (no standard error)")
    return ZScore(stats.mean, stats.sem, (stats.mean - ref) / stats.sem)


def pooled_prefactor(widths: Sequence[float], errors: Array, *, slope: float) -> MeanSem:
    r"""The prefactor C of error ≈ C · width^slope, pooled over widths and seeds.

    .. math::

        C_{i,s} = n_i^{-\text{slope}}\, e_{i,s}, \qquad \hat C = \frac{1}{WS}\sum_{i,s} C_{i,s},

    with the standard error of :math:`\hat C` over the W·S values. If the rate is right, every
    :math:`C_{i,s}` has the same mean; the per-width means drift like
    :math:`n^{\text{true} - \text{slope}}` otherwise.

    Args:
        widths: n_1 … n_W > 0.
        errors: (W, S) positive errors, S ≥ 1 seeds per width (W·S ≥ 2).
        slope: the rate whose prefactor is estimated (e.g. −1/2).

    Returns:
        :class:`MeanSem` of the pooled prefactor.

    Raises:
        ValueError: naming ``widths``, ``errors`` or ``slope``.

    Example:
        >>> c = pooled_prefactor([100, 400], [[0.1, 0.1], [0.05, 0.05]], slope=-0.5)
        >>> round(float(c.mean), 6)
        1.0
    """
    w = np.asarray(widths, dtype=float)
    e = np.asarray(errors, dtype=float)
    if w.ndim != 1 or w.size == 0 or not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ValueError(f"widths: expected a non-empty 1-D sequence of values > 0, got {widths!r}")
    if e.ndim != 2 or e.shape[0] != w.size or e.size < 2:
        raise ValueError(f"errors: expected ({w.size}, n_seeds) with >= 2 values, got {e.shape}")
    if not np.all(np.isfinite(e)) or np.any(e <= 0):
        raise ValueError("errors: must be finite and > 0")
    if not np.isfinite(slope):
        raise ValueError(f"slope: must be finite, got {slope!r}")
    return mean_sem(jnp.asarray((w[:, None] ** (-slope) * e).ravel()))


class BlockErrors(NamedTuple):
    r"""Distance of a matrix-valued kernel :math:`\Theta_{ii'}` from :math:`K \otimes \mathrm{Id}`.

    Attributes:
        diagonal: RMS over i of ‖Θ_ii − K‖_F / ‖K‖_F.
        offdiagonal: RMS over i ≠ i′ of ‖Θ_ii′‖_F / ‖K‖_F.
    """

    diagonal: Array
    offdiagonal: Array


def identity_block_errors(theta: Array, reference: Array) -> BlockErrors:
    r"""How far a kernel with output indices is from the limit form :math:`K\,\delta_{ii'}`.

    For :math:`\Theta` of shape (…, N1, N2, m, m) — outputs i, i′ of a network (or of a
    sub-network's preactivations) — and a scalar kernel K (N1, N2):

    .. math::

        e_{\rm diag}^2 = \frac{1}{m}\sum_{i=1}^m \frac{\lVert \Theta_{ii} - K\rVert_F^2}
            {\lVert K \rVert_F^2}, \qquad
        e_{\rm off}^2 = \frac{1}{m(m-1)}\sum_{i \ne i'} \frac{\lVert \Theta_{ii'}\rVert_F^2}
            {\lVert K \rVert_F^2},

    the Frobenius norms over the inputs. Theorem 1 (and its induction hypothesis) says both
    tend to 0, each like :math:`n^{-1/2}` when the fluctuations are of central-limit size.

    Args:
        theta: (…, N1, N2, m, m) with m ≥ 2, finite.
        reference: K, (N1, N2), finite and nonzero.

    Returns:
        :class:`BlockErrors`, each of shape theta.shape[:-4].

    Raises:
        ValueError: naming ``theta`` (shape, m < 2, non-finite) or ``reference``.

    Example:
        >>> import jax.numpy as jnp
        >>> k = jnp.ones((3, 3))
        >>> e = identity_block_errors(k[:, :, None, None] * jnp.eye(2), k)
        >>> float(e.diagonal), float(e.offdiagonal)
        (0.0, 0.0)
    """
    th = jnp.asarray(theta)
    ref = jnp.asarray(reference)
    if ref.ndim != 2:
        raise ValueError(f"reference: expected (N1, N2), got shape {ref.shape}")
    if th.ndim < 4 or th.shape[-4:-2] != ref.shape or th.shape[-1] != th.shape[-2]:
        raise ValueError(
            f"theta: expected (..., {ref.shape[0]}, {ref.shape[1]}, m, m) matching reference, "
            f"got {th.shape}"
        )
    m = th.shape[-1]
    if m < 2:
        raise ValueError(f"theta: need m >= 2 outputs for off-diagonal blocks, got m = {m}")
    _checks.finite("theta", th)
    _checks.finite("reference", ref)
    norm2 = jnp.sum(jnp.square(ref))
    if float(norm2) == 0.0:
        raise ValueError("reference: has zero norm")
    block2 = jnp.sum(jnp.square(th), axis=(-4, -3))                  # ‖Θ_ii′‖²_F, (…, m, m)
    diag = jnp.diagonal(th, axis1=-2, axis2=-1)                        # (…, N1, N2, m)
    ref_b = jnp.broadcast_to(ref[..., None], diag.shape)
    diag2 = jnp.sum(jnp.square(diag - ref_b), axis=(-3, -2))          # (…, m)
    off2 = jnp.sum(block2, axis=(-2, -1)) - jnp.sum(jnp.diagonal(block2, axis1=-2, axis2=-1), -1)
    return BlockErrors(
        jnp.sqrt(jnp.mean(diag2, axis=-1) / norm2),
        jnp.sqrt(off2 / (m * (m - 1)) / norm2),
    )


def kernel_projection(estimate: Array, reference: Array) -> Array:
    r"""The coefficient of an estimated kernel along the reference kernel.

    .. math::

        c = \frac{\langle \hat K, K\rangle_F}{\lVert K \rVert_F^2}, \qquad
        \langle A, B\rangle_F = \sum_{ij} A_{ij} B_{ij},

    equal to 1 when :math:`\hat K = K`, and to 1 + ε when :math:`K` is off by a factor
    (1 + ε)⁻¹. Over draws of a random kernel whose mean is K, :func:`z_scores` of c against 1
    tests the mean: a test of the limit itself rather than of a rate.

    Args:
        estimate: (…, N1, N2), e.g. the kernels of S seeds.
        reference: K, (N1, N2), nonzero.

    Returns:
        c of shape estimate.shape[:-2].

    Raises:
        ValueError: naming ``estimate`` or ``reference``.

    Example:
        >>> import jax.numpy as jnp
        >>> float(kernel_projection(2 * jnp.eye(3), jnp.eye(3)))
        2.0
    """
    ref = jnp.asarray(reference)
    est = jnp.asarray(estimate)
    if ref.ndim != 2 or est.ndim < 2 or est.shape[-2:] != ref.shape:
        raise ValueError(
            f"estimate: expected (..., N1, N2) matching reference {ref.shape}, got {est.shape}"
        )
    _checks.finite("estimate", est)
    _checks.finite("reference", ref)
    norm2 = jnp.sum(jnp.square(ref))
    if float(norm2) == 0.0:
        raise ValueError("reference: has zero norm")
    return jnp.sum(est * jnp.broadcast_to(ref, est.shape), axis=(-2, -1)) / norm2


# ------------------------------------------------- decay of deterministic sequences (chapter 7)


def local_slopes(
    x: Sequence[float], y: Sequence[float], *, edges: Sequence[float], log_x: bool = True
) -> np.ndarray:
    r"""Least-squares slopes of log y against log x (or x) within consecutive windows.

    For window j, the points with :math:`e_j \le x_i \le e_{j+1}`:

    .. math::

        s_j = \arg\min_{s, a} \sum_i \big(\log y_i - a - s\, u_i\big)^2,

        u_i = \log x_i \ (\text{or } x_i \text{ if } \texttt{log\_x} = \text{False}).

    For a *deterministic* sequence (eigenvalues μ_k of a kernel) there is no noise to bootstrap:
    the local slopes themselves show whether the sequence has reached its asymptotic power law
    (they converge, e.g. −2.02, −2.005, −2.001 …) or decays faster than any power (they keep
    steepening). With ``log_x=False`` the slope is the rate r of geometric decay
    :math:`y \propto e^{-r x}`.

    Args:
        x: positive abscissae (degrees k), 1-D.
        y: positive values, same length.
        edges: increasing window edges e_0 < e_1 < …; each window needs ≥ 2 distinct x.
        log_x: fit against log x (power law) or x (geometric decay).

    Returns:
        (len(edges) − 1,) slopes.

    Raises:
        ValueError: naming ``x``, ``y`` or ``edges``.
    """
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xs.ndim != 1 or xs.shape != ys.shape:
        raise ValueError(f"y: expected the 1-D shape of x {xs.shape}, got {ys.shape}")
    if not np.all(np.isfinite(xs)) or np.any(xs <= 0):
        raise ValueError("x: must be finite and > 0")
    if not np.all(np.isfinite(ys)) or np.any(ys <= 0):
        raise ValueError("y: must be finite and > 0 (their logarithm is fitted)")
    e = np.asarray(edges, dtype=float)
    if e.ndim != 1 or e.size < 2 or np.any(np.diff(e) <= 0):
        raise ValueError(f"edges: need >= 2 increasing values, got {edges!r}")
    u = np.log(xs) if log_x else xs
    out = []
    for lo, hi in zip(e[:-1], e[1:], strict=True):
        sel = (xs >= lo) & (xs <= hi)
        if np.unique(xs[sel]).size < 2:
            raise ValueError(f"edges: window [{lo:g}, {hi:g}] holds fewer than 2 distinct x")
        _, slope = _ols(u[sel], np.log(ys[sel]))
        out.append(float(slope))
    return np.asarray(out)
