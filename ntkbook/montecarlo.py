r"""Ensembles over random initialisations and the moments of their draws (used by every chapter).

:func:`ensemble` evaluates ``fn(key)`` for ``n_samples`` independent keys — vmapped inside ``jit``
in blocks of ``block_size`` samples (``lax.map``), so memory is that of one block. Rates,
intervals and tests over such ensembles are in :mod:`ntkbook.stats`.

Example:
    >>> import jax
    >>> draws = ensemble(lambda k: jax.random.normal(k, (3,)), key=jax.random.key(0), n_samples=10)
    >>> draws.shape
    (10, 3)
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from . import _checks, empirical, networks, stats

Array = jax.Array


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
    moments = stats.mean_sem(products, axis=0)
    return Covariance(moments.mean, moments.sem)


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


def gaussian_samples(cov: Array, *, key: Array, n_samples: int, jitter: float = 1e-10) -> Array:
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
    block2 = jnp.sum(jnp.square(th), axis=(-4, -3))  # ‖Θ_ii′‖²_F, (…, m, m)
    diag = jnp.diagonal(th, axis1=-2, axis2=-1)  # (…, N1, N2, m)
    ref_b = jnp.broadcast_to(ref[..., None], diag.shape)
    diag2 = jnp.sum(jnp.square(diag - ref_b), axis=(-3, -2))  # (…, m)
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
