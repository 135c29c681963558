r"""The infinite-width kernels :math:`\Sigma^{(l)}`, :math:`\dot\Sigma^{(l)}` and
:math:`\Theta_\infty^{(l)}` of every layer (notes §3, §4, §7).

With L affine layers, inputs of dimension :math:`n_0`, weight scale :math:`\sigma_w` and bias
scale :math:`\beta`:

.. math::

    \Sigma^{(1)}(x, x') &= \sigma_w^2\, x^\top x' / n_0 + \beta^2, \\
    \Sigma^{(l+1)}(x, x') &= \sigma_w^2\,
        \mathbb{E}_{f \sim N(0, \Sigma^{(l)})}[\sigma(f(x))\, \sigma(f(x'))] + \beta^2, \\
    \dot\Sigma^{(l+1)}(x, x') &= \sigma_w^2\,
        \mathbb{E}_{f \sim N(0, \Sigma^{(l)})}[\dot\sigma(f(x))\, \dot\sigma(f(x'))], \\
    \Theta^{(1)} &= \Sigma^{(1)}, \qquad
        \Theta^{(l+1)} = \Theta^{(l)} \dot\Sigma^{(l+1)} + \Sigma^{(l+1)}.

The output NTK of the network is :math:`\Theta^{(L)} \otimes \mathrm{Id}_{n_L}`;
:math:`\sigma_w = 1` in the notes.

Each expectation is over a 2-D Gaussian :math:`(u, v) \sim N\big(0, \big[\begin{smallmatrix}
k_{11} & k_{12} \\ k_{12} & k_{22}\end{smallmatrix}\big]\big)`, :math:`\rho = k_{12} /
\sqrt{k_{11} k_{22}}`. It is taken in closed form where :mod:`ntkbook.activations` has one
(ReLU, leaky ReLU, abs, erf, identity, sin, square), and otherwise by one of three rules:

- ``"mehler"`` (smooth σ): the Hermite (Mehler) series

  .. math::

      \mathbb{E}[\sigma(u)\sigma(v)] = \sum_{j<m} c_j(k_{11})\, c_j(k_{22})\, \rho^j, \qquad
      c_j(k) = \mathbb{E}[\sigma(\sqrt{k} z)\, He_j(z)] / \sqrt{j!}.

  The coefficients are 1-D integrals per *input* (Gauss–Hermite from
  :func:`scipy.special.roots_hermitenorm`, one matrix product), so each *pair* costs m
  multiply-adds (Horner in ρ) instead of a 2-D rule's :math:`O(m^2)` evaluations of σ. The
  truncation error is at most the tail :math:`\sum_{j \ge m} c_j^2` at ρ = 1, which grows with
  the variance: for tanh, m = 96 terms reach 1e-10 at k = 1, but about 2700 are needed at
  k = 30 and 9000 at k = 100.
- ``"polar"`` (σ kinked at 0): :math:`(z_1, z_2) = r(\cos\varphi, \sin\varphi)`, so
  :math:`u = \sqrt{k_{11}}\, r\cos\varphi` and :math:`v = \sqrt{k_{22}}\, r\cos(\varphi -
  \theta)` with :math:`\cos\theta = \rho`. The kinks lie at :math:`\cos\varphi = 0` and
  :math:`\cos(\varphi - \theta) = 0`, which cut the circle into four arcs; on each,
  Gauss–Legendre in φ, and in r the Gauss rule of weight :math:`r e^{-r^2/2}` on
  :math:`[0, \infty)`. The integrand is smooth on every cell, so the rule converges
  exponentially even for ReLU or abs (a tensor Gauss–Hermite rule, or the Mehler series,
  converges only algebraically across a kink).
- ``"hermite"`` (reference only): the tensor Gauss–Hermite rule of neural-tangents,
  :math:`u = \sqrt{k_{11}} z_1`, :math:`v = \sqrt{k_{22}}(\rho z_1 + \sqrt{1-\rho^2} z_2)`.

**The automatic choice** (``quadrature="auto"``, ``points=None``) aims at a relative error of
1e-10 in float64 (1e-8 in float32) at every input scale, one rule per layer l → l + 1:

1. a closed form, if the activation has one;
2. else, for σ not declared kinked, the Mehler series with the fewest terms whose coefficient
   tail is below the tolerance at the smallest, median and largest variance
   :math:`\Sigma^{(l)}(x, x)` of the inputs (tried with 2m computed coefficients, m doubling
   from 64 up to 16384; σ and :math:`\dot\sigma` get their own lengths). The variances are
   propagated from :math:`\Sigma^{(1)}(x, x) = \sigma_w^2 \lVert x\rVert^2/n_0 + \beta^2` by
   the diagonal recursion, so a tanh network with :math:`\Sigma^{(1)} = 100` pays for the long
   series in its first layer only;
3. else (a kinked σ, whose coefficients decay only like a power of j) the polar rule with the
   fewest points (8, 12, 18, … ≤ 64) that agrees with twice as many to the tolerance on probe
   pairs at the extreme variances. An unknown callable is treated the same way, so a kink at 0
   is found by the slow decay of its Hermite tail and handled exactly; a kink elsewhere
   (e.g. relu(z − 1)) defeats both rules and draws a ``UserWarning`` naming ``activation``.

Explicit ``points`` are checked the same way and draw a ``UserWarning`` naming ``points`` when
they miss 1e-8 (float64). Inside ``jit`` the inputs have no values; the choice then assumes
variances up to 100 (pass ``points`` to avoid the cost).

Large inputs are evaluated in blocks of rows of ``x1`` (a ``fori_loop`` writing in place), so
the memory besides the output stays bounded; ``diagonal=True`` computes only k(x, x) (or
k(x1_i, x2_i)). For the closed forms up to depth 16 the layers are unrolled, so that XLA fuses
the whole recursion after the Gram matrix into one elementwise pass. The diagonal of a
symmetric kernel (``x2=None``) is taken from the diagonal recursion, where ρ = 1 exactly.

Example:
    >>> import jax.numpy as jnp
    >>> x = jnp.eye(3)
    >>> k = kernels(x, depth=2, activation="relu")
    >>> k.theta.shape
    (2, 3, 3)
"""

from __future__ import annotations

import functools
import math
import operator
import warnings
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import linalg, special

from . import _checks
from .activations import Activation, angle, correlation, get, safe_sqrt

Array = jax.Array
QUADRATURES: tuple[str, ...] = ("auto", "closed", "mehler", "polar", "hermite")
_MEHLER_NODES = 200  # at least this many Gauss–Hermite nodes for the coefficients c_j(k)
_NODE_CUT = 13.0  # nodes beyond |z| = 13 carry e^{-z²/4} < 1e-18 of a coefficient
_MEHLER_MAX = 16384  # longest automatic series (beyond: the polar rule)
_POLAR_MAX = 64  # most automatic polar points per dimension
_EVAL_CHUNK = 1 << 16  # values per compiled evaluation of σ while choosing a rule
_HERMITE_MAX = 160  # most automatic tensor Gauss–Hermite points per dimension
_POINTS_MAX = {"mehler": 32768, "polar": 256, "hermite": 1024}  # explicit points
_HORNER_UNROLL = 64  # Mehler series up to this length are unrolled
_HORNER_CHUNK = 32  # longer ones run a loop over chunks of this many terms
_TRACED_VARIANCE = 100.0  # variance bound assumed inside jit, where values are unknown
# Work per block (entries × quadrature nodes) that keeps temporaries to tens of MB.
_BLOCK_BUDGET = 1 << 22
_TILE_ENTRIES = 1 << 19
_FUSED_TILE_ENTRIES = 1 << 24
_UNROLL_DEPTH = 16  # deeper closed-form recursions use lax.scan over layers


class Kernels(NamedTuple):
    r""":math:`\Sigma^{(l)}, \dot\Sigma^{(l)}, \Theta^{(l)}` for l = 1 … L, stacked along axis 0
    (index l − 1 holds layer l).

    Each field has shape (L, N1, N2), or (L, N) for ``diagonal=True``.
    :math:`\dot\Sigma^{(1)} := 0`, which keeps :math:`\Theta^{(1)} = \Theta^{(0)}
    \dot\Sigma^{(1)} + \Sigma^{(1)} = \Sigma^{(1)}` consistent with the recursion.
    """

    sigma: Array
    sigma_dot: Array
    theta: Array


# ---------------------------------------------------------------------------- quadrature rules


@functools.lru_cache(maxsize=32)
def hermite_rule(n: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Nodes and weights of the n-point Gauss rule for :math:`E_{z \sim N(0,1)}[g(z)]` (weights
    sum to 1).

    From :func:`scipy.special.roots_hermitenorm`, which stays accurate for large n (numpy's
    ``hermegauss`` overflows to NaN beyond n ≈ 190).
    """
    z, w = special.roots_hermitenorm(n)
    return z, w / math.sqrt(2 * math.pi)


def _hermite_nodes(n: int) -> tuple[np.ndarray, np.ndarray]:
    r"""The nodes of the n-point rule with :math:`|z| \le 13` and the square roots of their
    weights.

    A node beyond contributes at most :math:`e^{-z^2/4} < 10^{-18}` to a Hermite coefficient
    (the integrand carries √w twice), so dropping it changes nothing in float64.
    """
    z, w = hermite_rule(n)
    keep = np.abs(z) <= _NODE_CUT
    return z[keep], np.sqrt(w[keep])


@functools.lru_cache(maxsize=4)
def hermite_functions(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Nodes :math:`z_p`, :math:`\sqrt{w_p}` and the table :math:`T_{pj} = \sqrt{w_p}\,
    He_j(z_p)/\sqrt{j!}` (nodes × m) of Hermite functions.

    Built by the stable recurrence :math:`h_{j+1} = (z h_j - \sqrt{j} h_{j-1})/\sqrt{j+1}` on the
    nodes (:math:`|z| \le 13`) of the (2m + 64)-point rule, which integrates
    :math:`\sigma(\sqrt{k} z) He_j(z)` exactly up to the Hermite tail of σ beyond index 3m, so
    that

    .. math::

        \begin{aligned}
        c_j(k) &= \sum_p \sqrt{w_p}\, σ(\sqrt{k} z_p)\, T_{pj} \quad \text{(a matrix product)} \\
            &= E[σ(\sqrt{k} z) He_j(z)] / \sqrt{j!} .
        \end{aligned}
    """
    z, root = _hermite_nodes(max(_MEHLER_NODES, 2 * m + 64))
    table = np.zeros((z.size, m))
    table[:, 0] = root
    if m > 1:
        table[:, 1] = z * root
    for j in range(1, m - 1):
        table[:, j + 1] = (z * table[:, j] - math.sqrt(j) * table[:, j - 1]) / math.sqrt(j + 1)
    return z, root, table


@functools.lru_cache(maxsize=32)
def legendre_rule(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes and weights on [−1, 1] (:func:`scipy.special.roots_legendre`)."""
    return special.roots_legendre(n)


@functools.lru_cache(maxsize=32)
def radial_rule(n: int) -> tuple[np.ndarray, np.ndarray]:
    r"""The n-point Gauss rule for :math:`\int_0^\infty g(r)\, r e^{-r^2/2}\, dr` (weights sum
    to 1).

    Built in float64 by the discretised Stieltjes procedure (orthonormal three-term recurrence
    of the weight, sampled by 1000-point Gauss–Legendre on [0, 16], beyond which the weight is
    below :math:`e^{-128}`) and the Golub–Welsch eigenvalue method.
    """
    t, wt = special.roots_legendre(1000)
    r = 8.0 * (t + 1.0)
    mass = 8.0 * wt * r * np.exp(-0.5 * r * r)
    alpha, beta = np.zeros(n), np.zeros(n)
    p_prev, p = np.zeros_like(r), np.full_like(r, 1.0 / math.sqrt(mass.sum()))
    for k in range(n):
        alpha[k] = np.sum(mass * r * p * p)
        q = (r - alpha[k]) * p - (math.sqrt(beta[k]) if k else 0.0) * p_prev
        if k + 1 < n:
            beta[k + 1] = np.sum(mass * q * q)
            p_prev, p = p, q / math.sqrt(beta[k + 1])
    nodes, vectors = linalg.eigh_tridiagonal(alpha, np.sqrt(beta[1:]))
    return nodes, mass.sum() * vectors[0] ** 2


def _const(a: np.ndarray, dtype: jnp.dtype, ndim: int, axis: int) -> Array:
    """A 1-D rule as an array of rank ``ndim`` whose only non-unit axis is ``axis``."""
    shape = [1] * ndim
    shape[axis] = a.size
    return jnp.asarray(a.reshape(shape), dtype)


# ---------------------------------------------------------------------------- expectations


class _Rule(NamedTuple):
    """How one layer's expectations are taken (static, hashable): ``method`` is ``"closed"``,
    ``"mehler"`` (``points`` terms for σ, ``points_dot`` for σ̇), ``"polar"`` or ``"hermite"``
    (``points`` nodes per dimension)."""

    method: str
    points: int = 0
    points_dot: int = 0


def _hermite(act: Activation, n: int, k11: Array, k12: Array, k22: Array) -> tuple[Array, Array]:
    r"""E[σ(u)σ(v)], E[σ̇(u)σ̇(v)] by a tensor Gauss–Hermite rule:

    .. math::

        E[g(u)h(v)] ≈ \sum_q w_q\, g(\sqrt{k_{11}} z_q)
            \sum_r w_r\, h\big(\sqrt{k_{22}}(ρ z_q + \sqrt{1-ρ^2} z_r)\big).
    """
    nd = k12.ndim
    z, w = hermite_rule(n)
    _, rho = correlation(k11, k12, k22)
    cos = rho[..., None, None]
    sin = safe_sqrt((1.0 - rho) * (1.0 + rho))[..., None, None]
    v = safe_sqrt(k22)[..., None, None] * (
        cos * _const(z, k12.dtype, nd + 2, nd) + sin * _const(z, k12.dtype, nd + 2, nd + 1)
    )
    w_inner = _const(w, k12.dtype, nd + 2, nd + 1)
    inner_s = jnp.sum(w_inner * act.sigma(v), axis=-1)
    inner_d = jnp.sum(w_inner * act.sigma_dot(v), axis=-1)
    u = safe_sqrt(k11)[..., None] * _const(z, k12.dtype, nd + 1, nd)
    w_outer = _const(w, k12.dtype, nd + 1, nd)
    return (
        jnp.sum(w_outer * act.sigma(u) * inner_s, axis=-1),
        jnp.sum(w_outer * act.sigma_dot(u) * inner_d, axis=-1),
    )


def _polar(act: Activation, n: int, k11: Array, k12: Array, k22: Array) -> tuple[Array, Array]:
    r"""E[σ(u)σ(v)], E[σ̇(u)σ̇(v)] in polar coordinates, split at the kinks of σ at 0:

    .. math::

        E[g(u)h(v)] = \frac{1}{2π}\int_{π/2}^{5π/2}\!dφ \int_0^∞\! r e^{-r^2/2}
            g(\sqrt{k_{11}}\, r\cos φ)\, h(\sqrt{k_{22}}\, r \cos(φ - θ))\, dr,

    with φ on the arcs [π/2, π/2+θ], [π/2+θ, 3π/2], [3π/2, 3π/2+θ], [3π/2+θ, 5π/2].
    """
    nd = k12.ndim
    dtype = k12.dtype
    x, wx = legendre_rule(n)
    r, wr = radial_rule(n)
    _, rho = correlation(k11, k12, k22)
    theta, _ = angle(rho)
    half = jnp.pi / 2
    start = jnp.stack([half + 0 * theta, half + theta, 3 * half + 0 * theta, 3 * half + theta], -1)
    length = jnp.stack([theta, jnp.pi - theta, theta, jnp.pi - theta], -1)
    phi = start[..., None] + 0.5 * length[..., None] * (_const(x, dtype, nd + 2, nd + 1) + 1.0)
    w_phi = length[..., None] * _const(wx, dtype, nd + 2, nd + 1) / (4 * jnp.pi)
    rr = _const(r, dtype, nd + 3, nd + 2)
    weight = w_phi[..., None] * _const(wr, dtype, nd + 3, nd + 2)
    u = safe_sqrt(k11)[..., None, None, None] * rr * jnp.cos(phi)[..., None]
    v = (
        safe_sqrt(k22)[..., None, None, None]
        * rr
        * jnp.cos(phi - theta[..., None, None])[..., None]
    )
    axes = (-3, -2, -1)
    return (
        jnp.sum(weight * act.sigma(u) * act.sigma(v), axis=axes),
        jnp.sum(weight * act.sigma_dot(u) * act.sigma_dot(v), axis=axes),
    )


class _Marginal(NamedTuple):
    """What a pairwise expectation needs of one input: its variance k and, for ``"mehler"``, the
    Hermite coefficients of σ and σ̇ at that variance (leading axis: the series index, so that
    each term of the series reads contiguous memory)."""

    k: Array
    c_sigma: Array | None = None
    c_dot: Array | None = None


Table = tuple[Array, Array, Array]  # nodes z_p, √w_p and the Hermite table, as arrays


def _table(rule: _Rule, dtype: jnp.dtype) -> Table | None:
    """The Gauss–Hermite data a ``"mehler"`` rule needs (passed to the jitted code as arguments,
    not baked into it as constants: a 6000-term table is tens of MB)."""
    if rule.method != "mehler":
        return None
    z, root, table = hermite_functions(max(rule.points, rule.points_dot))
    return tuple(jnp.asarray(a, dtype) for a in (z, root, table))  # type: ignore[return-value]


def _mehler_coefficients(act: Activation, rule: _Rule, table: Table, k: Array) -> _Marginal:
    r"""c_j(k) = E[σ(√k z) He_j(z)]/√j! for j < ``rule.points`` and the same for σ̇, j <
    ``rule.points_dot``; shapes (m,) + k.shape."""
    z, root = (a.reshape((1,) * k.ndim + a.shape) for a in table[:2])
    tab = table[2]
    nodes = safe_sqrt(k)[..., None] * z
    c = [
        jnp.moveaxis((root * f(nodes)) @ tab[:, :m], -1, 0)
        for f, m in ((act.sigma, rule.points), (act.sigma_dot, rule.points_dot))
    ]
    return _Marginal(k, *c)


def _marginal(act: Activation, rule: _Rule, table: Table | None, k: Array) -> _Marginal:
    """Per-input data for :func:`_pair` (computed once per input and layer, not per pair)."""
    if rule.method == "mehler":
        return _mehler_coefficients(act, rule, table, k)  # type: ignore[arg-type]
    return _Marginal(k)


def _horner(a: Array, b: Array, rho: Array) -> Array:
    r""":math:`\sum_j a_j b_j ρ^j` by Horner's rule (a, b: coefficients along axis 0).

    Up to ``_HORNER_UNROLL`` terms the loop is unrolled (one fused pass); longer series run a
    ``fori_loop`` over chunks of ``_HORNER_CHUNK`` unrolled terms (compile time bounded; the
    tile is read and written once per chunk, so the loop stays compute-bound).
    """
    m = a.shape[0]
    e = jnp.zeros_like(rho)
    if m <= _HORNER_UNROLL:
        for j in range(m - 1, -1, -1):
            e = e * rho + a[j] * b[j]
        return e
    pad = -m % _HORNER_CHUNK
    a = jnp.concatenate([a, jnp.zeros((pad, *a.shape[1:]), a.dtype)])
    b = jnp.concatenate([b, jnp.zeros((pad, *b.shape[1:]), b.dtype)])
    chunks = a.shape[0] // _HORNER_CHUNK

    def chunk(i: Array, e: Array) -> Array:
        start = (chunks - 1 - i) * _HORNER_CHUNK
        ca = jax.lax.dynamic_slice_in_dim(a, start, _HORNER_CHUNK, 0)
        cb = jax.lax.dynamic_slice_in_dim(b, start, _HORNER_CHUNK, 0)
        for j in range(_HORNER_CHUNK - 1, -1, -1):
            e = e * rho + ca[j] * cb[j]
        return e

    return jax.lax.fori_loop(0, chunks, chunk, e)


def _mehler(m1: _Marginal, k12: Array, m2: _Marginal) -> tuple[Array, Array]:
    r"""The Mehler (Hermite) series, summed by Horner's rule in ρ:

    .. math::

        E[σ(u)σ(v)] = \sum_{j<m} c_j(k_{11})\, c_j(k_{22})\, ρ^j, \qquad
        c_j(k) = E[σ(\sqrt{k} z) He_j(z)] / \sqrt{j!},

    and likewise for σ̇ (with its own number of terms). By Cauchy–Schwarz the truncation error
    is at most :math:`\big(\sum_{j \ge m} c_j(k_{11})^2 \sum_{j \ge m} c_j(k_{22})^2\big)^{1/2}`,
    the tails at ρ = 1, which :func:`_series_length` makes small at the largest variance.
    """
    _, rho = correlation(m1.k, k12, m2.k)
    return _horner(m1.c_sigma, m2.c_sigma, rho), _horner(m1.c_dot, m2.c_dot, rho)  # type: ignore[arg-type]


def _pair(
    act: Activation, rule: _Rule, m1: _Marginal, k12: Array, m2: _Marginal
) -> tuple[Array, Array]:
    """Dispatch to the closed form, the Mehler series or a quadrature (arrays of equal rank)."""
    if rule.method == "closed":
        return act.expectation(m1.k, k12, m2.k)  # type: ignore[misc]
    if rule.method == "mehler":
        return _mehler(m1, k12, m2)
    quad = _hermite if rule.method == "hermite" else _polar
    return quad(act, rule.points, m1.k, k12, m2.k)


# ---------------------------------------------------------------------------- choosing the rule


def _tolerance(dtype: jnp.dtype) -> float:
    """Relative error the automatic choice aims at: 1e-10 in float64 (a 100× margin under the
    promised 1e-8 for errors that add up over layers), 1e-8 in float32 (below its rounding)."""
    return 1e-10 if jnp.finfo(dtype).bits > 32 else 1e-8


def _warn_level(dtype: jnp.dtype) -> float:
    """Estimated relative error above which an explicit ``points`` draws a warning."""
    return 1e-8 if jnp.finfo(dtype).bits > 32 else 1e-6


def _evaluate(fn: Callable[[Array], Array], z: np.ndarray, dtype: jnp.dtype) -> np.ndarray:
    """σ or σ̇ on a concrete grid, in the compute dtype, as float64 numpy (outside any jit).

    Evaluated in padded chunks of ``_EVAL_CHUNK`` values by one compiled function per (σ,
    dtype), so that probing many grid shapes does not compile (or trace an autodiff σ̇) anew
    for each.
    """
    flat = np.ravel(z)
    pad = -flat.size % _EVAL_CHUNK
    chunks = np.concatenate([flat, np.zeros(pad)]).reshape(-1, _EVAL_CHUNK)
    run = _compiled(fn, jnp.dtype(dtype))
    with jax.ensure_compile_time_eval():
        out = np.concatenate([np.asarray(run(c), np.float64) for c in chunks])
    return out[: flat.size].reshape(z.shape)


@functools.lru_cache(maxsize=64)
def _compiled(fn: Callable[[Array], Array], dtype: jnp.dtype) -> Callable[[np.ndarray], Array]:
    """``fn`` jitted on a float array of the given dtype."""
    jitted = jax.jit(fn)
    return lambda c: jitted(jnp.asarray(c, dtype))


def _coefficients(values: np.ndarray, z: np.ndarray, root: np.ndarray, m: int) -> np.ndarray:
    """Hermite coefficients c_j, j < m, of the rows of ``values`` = √w_p g(z_p) (numpy), by the
    recurrence of :func:`hermite_functions` run on the fly (no nodes × m table in memory)."""
    out = np.zeros((values.shape[0], m))
    prev, cur = np.zeros_like(z), root.copy()
    for j in range(m):
        out[:, j] = values @ cur
        prev, cur = cur, (z * cur - math.sqrt(j) * prev) / math.sqrt(j + 1)
    return out


def _tail_need(
    act: Activation, ks: np.ndarray, m_total: int, dtype: jnp.dtype
) -> tuple[int, int, float, float]:
    """From the first ``m_total`` Hermite coefficients of σ and σ̇ at the variances ``ks``: the
    smallest m whose tail Σ_{m ≤ j < m_total} c_j² is ≤ the tolerance times Σ_j c_j² (worst over
    ``ks``), for σ and σ̇, and the tail fractions at m_total/2 (the error of m_total/2 terms)."""
    z, root = _hermite_nodes(2 * m_total + 64)
    grid = np.sqrt(ks)[:, None] * z
    tol = _tolerance(dtype)
    out: list[float] = []
    fractions: list[float] = []
    for fn in (act.sigma, act.sigma_dot):
        c2 = _coefficients(root * _evaluate(fn, grid, dtype), z, root, m_total) ** 2
        total = np.maximum(c2.sum(axis=1, keepdims=True), np.finfo(np.float64).tiny)
        tail = np.cumsum(c2[:, ::-1], axis=1)[:, ::-1] / total  # tail[:, j] = Σ_{i ≥ j}
        ok = tail <= tol
        need = np.where(ok.any(axis=1), np.argmax(ok, axis=1), m_total).max()
        out.append(int(need))
        fractions.append(float(tail[:, m_total // 2].max()))
    return out[0], out[1], fractions[0], fractions[1]


def _series_length(act: Activation, ks: np.ndarray, dtype: jnp.dtype) -> tuple[int, int] | None:
    """Mehler terms (σ, σ̇) for the relative tolerance at the variances ``ks``, or ``None`` if
    more than ``_MEHLER_MAX`` would be needed (the coefficients of a kinked σ decay only like a
    power of j, so a kink anywhere ends up here).

    Doubling m from 64, the tail is measured among the first 2m coefficients; m is accepted
    once the tail beyond it (up to 2m) is below the tolerance, i.e. once half of the computed
    coefficients are already negligible.
    """
    m = 64
    while m <= _MEHLER_MAX:
        need_s, need_d, _, _ = _tail_need(act, ks, 2 * m, dtype)
        if max(need_s, need_d) <= m:
            return _round_terms(max(need_s, 1)), _round_terms(max(need_d, 1))
        m *= 2
    return None


def _round_terms(m: int) -> int:
    """Series lengths on a coarse grid (multiples of 8, or of the Horner chunk beyond the
    unrolled range), so that nearby variances share one compiled program."""
    if m <= _HORNER_UNROLL:
        return min(_HORNER_UNROLL, -(-m // 8) * 8)
    return -(-m // _HORNER_CHUNK) * _HORNER_CHUNK


def _probe_pairs(ks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(k11, k12, k22) probing a 2-D rule at the extreme variances: correlations from −1 to 1
    at k_min and k_max each, and between them."""
    lo, hi = float(ks.min()), float(ks.max())
    rho = np.array([-0.999, -0.7, -0.2, 0.0, 0.3, 0.8, 0.99, 0.999999])
    k11 = np.concatenate([np.full(rho.size, lo), np.full(rho.size, hi), np.full(rho.size, lo)])
    k22 = np.concatenate([np.full(rho.size, lo), np.full(rho.size, hi), np.full(rho.size, hi)])
    k12 = np.tile(rho, 3) * np.sqrt(k11 * k22)
    return k11, k12, k22


def _rule_error(act: Activation, rule: _Rule, ks: np.ndarray, dtype: jnp.dtype) -> float:
    """Estimated relative error of a 2-D rule: its distance to the same rule with twice the
    points, on probe pairs, relative to the largest value of each expectation."""
    pairs = [jnp.asarray(a, dtype) for a in _probe_pairs(ks)]
    coarse = _compiled_rule(act, rule.method, rule.points)(*pairs)
    fine = _compiled_rule(act, rule.method, 2 * rule.points)(*pairs)
    err = 0.0
    for c, f in zip(coarse, fine, strict=True):
        c, f = np.asarray(c, np.float64), np.asarray(f, np.float64)
        err = max(err, float(np.max(np.abs(c - f)) / max(np.max(np.abs(f)), 1e-300)))
    return err


@functools.lru_cache(maxsize=64)
def _compiled_rule(act: Activation, method: str, n: int) -> Callable[..., tuple[Array, Array]]:
    """The ``"polar"`` or ``"hermite"`` rule with n points for ``act``, jitted (one compile per
    probe instead of one per operation, as eager evaluation would)."""
    quad = _hermite if method == "hermite" else _polar
    return jax.jit(functools.partial(quad, act, n))


def _polar_points(act: Activation, ks: np.ndarray, dtype: jnp.dtype) -> int | None:
    """The fewest polar points (from 8, ×1.5 per step up to ``_POLAR_MAX``) whose estimated
    error (:func:`_rule_error`) is below the tolerance, or ``None``."""
    n = 8
    while n <= _POLAR_MAX:
        if _rule_error(act, _Rule("polar", n), ks, dtype) <= _tolerance(dtype):
            return n
        n = int(n * 1.5)
    return None


def _auto_rule(
    act: Activation, method: str, ks: np.ndarray, dtype: jnp.dtype, layer: int, notes: list[str]
) -> _Rule:
    """The automatic rule for one layer whose variances are ``ks`` (see :func:`kernels`);
    warnings are appended to ``notes``."""
    if method in ("auto", "mehler") and not act.kinked:
        terms = _series_length(act, ks, dtype)
        if terms is not None:
            return _Rule("mehler", *terms)
        if method == "mehler":
            notes.append(f"points: the Mehler series of {act.name!r} needs more than {_MEHLER_MAX} "
                  f"terms at variance {ks.max():.3g} (layer {layer}); using {_MEHLER_MAX}")
            return _Rule("mehler", _MEHLER_MAX, _MEHLER_MAX)
    if method == "hermite":
        n = 20
        tol = _tolerance(dtype)
        while n < _HERMITE_MAX and _rule_error(act, _Rule("hermite", n), ks, dtype) > tol:
            n *= 2
        rule = _Rule("hermite", min(n, _HERMITE_MAX))
        _check_points(act, rule, ks, dtype, layer, notes)
        return rule
    n = _polar_points(act, ks, dtype)
    if n is None:
        err = _rule_error(act, _Rule("polar", _POLAR_MAX), ks, dtype)
        notes.append(
            f"activation: no rule reaches relative error {_tolerance(dtype):.0e} for "
            f"{act.name!r} at variance {ks.max():.3g} (layer {layer}); the polar rule with "
            f"{_POLAR_MAX} points is off by about {err:.1e}. The polar rule is exact only for "
            "σ smooth away from 0; a kink elsewhere (e.g. relu(z − 1)) converges slowly"
        )
        return _Rule("polar", _POLAR_MAX)
    return _Rule("polar", n)


def _check_points(
    act: Activation, rule: _Rule, ks: np.ndarray, dtype: jnp.dtype, layer: int, notes: list[str]
) -> None:
    """A warning (appended to ``notes``) naming ``points`` when a rule misses the accuracy
    target at the variances ``ks``."""
    if rule.method == "mehler":
        m = max(rule.points, rule.points_dot)
        need_s, need_d, frac_s, frac_d = _tail_need(act, ks, 2 * m, dtype)
        err = max(frac_s, frac_d)
        hint = f"about {max(need_s, need_d)} are needed" if max(need_s, need_d) < 2 * m else (
            f"more than {2 * m} are needed")
        what = f"{m} Mehler terms"
    else:
        err = _rule_error(act, rule, ks, dtype)
        what, hint = f"{rule.points} {rule.method} points", "raise points"
    if err > _warn_level(dtype):
        notes.append(
            f"points: {what} leave a relative error of about {err:.1e} for {act.name!r} at "
            f"variance {ks.max():.3g} (layer {layer}), above {_warn_level(dtype):.0e}; {hint} "
            "(or leave points=None to choose them automatically)"
        )


def _rules(
    act: Activation,
    method: str,
    points: int | None,
    variances: np.ndarray | None,
    depth: int,
    sigma_w: float | None,
    beta: float | None,
    dtype: jnp.dtype,
) -> tuple[_Rule, ...]:
    """One rule per layer transition l → l + 1 (l = 1 … L − 1), chosen from the variances
    Σ^(l)(x, x) of that layer, propagated from the samples ``variances`` of Σ^(1)(x, x).

    Without concrete values (inside ``jit``) the variances are taken as [0, ``_TRACED_VARIANCE``].
    """
    if method == "closed":
        return (_Rule("closed"),) * (depth - 1)
    known = variances is not None and sigma_w is not None and beta is not None
    ks = variances if known else np.array([0.0, _TRACED_VARIANCE])
    rules = []
    for layer in range(1, depth):
        rule, notes = _choose(act, method, points, *_variance_key(ks), jnp.dtype(dtype), layer)
        for note in notes:
            warnings.warn(note, UserWarning, stacklevel=4)
        rules.append(rule)
        if layer < depth - 1:
            ks = _next_variances(act, ks, sigma_w, beta) if known else ks
    return tuple(rules)


def _variance_key(ks: np.ndarray) -> tuple[float, float, float]:
    """Min, median and max of the variances, rounded outwards to 2^(1/8) steps (so that nearby
    inputs share a cached choice and a compiled program, and the choice stays conservative)."""
    lo, mid, hi = (float(v) for v in np.quantile(ks, [0.0, 0.5, 1.0]))

    def grid(v: float, up: bool) -> float:
        if v <= 0:
            return 0.0
        step = math.log2(v) * 8
        return 2.0 ** ((math.ceil(step) if up else math.floor(step)) / 8)

    return grid(lo, False), grid(mid, True), grid(hi, True)


@functools.lru_cache(maxsize=256)
def _choose(
    act: Activation,
    method: str,
    points: int | None,
    lo: float,
    mid: float,
    hi: float,
    dtype: jnp.dtype,
    layer: int,
) -> tuple[_Rule, tuple[str, ...]]:
    """The rule of one layer and the warnings it calls for (cached on the rounded variance
    range; the warnings are issued by the caller on every call)."""
    ks = np.array(sorted({lo, mid, hi}))
    notes: list[str] = []
    if points is None:
        return _auto_rule(act, method, ks, dtype, layer, notes), tuple(notes)
    if method == "auto":
        method = "polar" if act.kinked else "mehler"
    rule = _Rule(method, points, points) if method == "mehler" else _Rule(method, points)
    _check_points(act, rule, ks, dtype, layer, notes)
    return rule, tuple(notes)


def _next_variances(act: Activation, ks: np.ndarray, sigma_w: float, beta: float) -> np.ndarray:
    """Σ^(l+1)(x, x) = σ_w² E[σ(√k z)²] + β² for each k (1-D Gauss–Hermite, 400 nodes: ample
    for a range estimate, which the choice rounds outwards)."""
    z, w = hermite_rule(400)
    grid = np.sqrt(ks)[:, None] * z
    second = _evaluate(act.sigma, grid, jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
    return sigma_w**2 * (second**2 @ w) + beta**2


def _variance_samples(
    xs: Sequence[Array], sigma_w: float | None, beta: float | None
) -> np.ndarray | None:
    """Up to 65 quantiles (min and max included) of Σ^(1)(x, x) = σ_w² |x|²/n_0 + β² over the
    rows of the inputs; ``None`` if the inputs or the hyperparameters have no concrete value."""
    if sigma_w is None or beta is None or not all(_checks.is_concrete(x) for x in xs):
        return None
    sq = np.concatenate(
        [np.sum(np.square(np.asarray(x, np.float64)), axis=1) / x.shape[1] for x in xs]
    )
    k = sigma_w**2 * sq + beta**2
    return np.quantile(k, np.linspace(0.0, 1.0, min(65, k.size)))


def _method_points(act: Activation, quadrature: str, points: int | None) -> tuple[str, int | None]:
    """Validate ``quadrature`` and ``points`` for ``act``: ``"closed"`` where a closed form is
    asked for or ``"auto"`` finds one; else the method (``"auto"`` kept: it is chosen per
    layer) and the explicit points or ``None``."""
    method = _checks.choice("quadrature", quadrature, QUADRATURES)
    if method == "closed" and act.expectation is None:
        raise ValueError(f"quadrature: activation {act.name!r} has no closed form")
    if method == "auto" and act.expectation is not None:
        method = "closed"
    if act.kinked and method in ("mehler", "hermite"):
        raise ValueError(
            f"quadrature: {method!r} cannot be accurate for {act.name!r}: σ or σ̇ is kinked at "
            "0, so its Hermite coefficients decay only like a power of j and a Gauss–Hermite "
            "rule converges only algebraically; use 'polar' (split at the kink) or 'auto'"
        )
    if points is None or method == "closed":
        return method, None
    n = _checks.positive_int("points", points, minimum=2)
    cap = _POINTS_MAX.get(method if method != "auto" else ("polar" if act.kinked else "mehler"))
    if cap is not None and n > cap:
        raise ValueError(f"points: at most {cap} for {method!r}, got {n}")
    return method, n


def expectation(
    k11: Array,
    k12: Array,
    k22: Array,
    *,
    activation: str | Callable[[Array], Array] | Activation = "relu",
    quadrature: str = "auto",
    points: int | None = None,
) -> tuple[Array, Array]:
    r"""Gaussian expectations :math:`(E[σ(u)σ(v)], E[\dot σ(u)\dot σ(v)])` for
    :math:`(u, v) \sim N\big(0, \big[\begin{smallmatrix} k_{11} & k_{12} \\ k_{12} & k_{22}
    \end{smallmatrix}\big]\big)`.

    Args:
        k11, k12, k22: broadcastable arrays with k11, k22 ≥ 0 and k12² ≤ k11 k22.
        activation: a name, a JAX function or an :class:`~ntkbook.activations.Activation`.
        quadrature: ``"auto"`` (closed form if known, else chosen from the variances: the
            Mehler series, or ``"polar"`` for kinked σ or where the series would be too long),
            ``"closed"``, ``"mehler"``, ``"polar"`` or ``"hermite"`` (see the module docstring).
        points: series terms for mehler; nodes per dimension for polar (4·points² nodes in
            all) and hermite; default: chosen for relative error 1e-10 (float64) at the
            largest variance, as in :func:`kernels`.

    Returns:
        Two arrays of the broadcast shape.

    Example:
        >>> import jax.numpy as jnp
        >>> e_ss, e_dd = expectation(jnp.ones(1), jnp.zeros(1), jnp.ones(1), activation="relu")
        >>> round(float(e_ss[0]), 6), float(e_dd[0])  # 1/(2π) and 1/4 at ρ = 0
        (0.159155, 0.25)
    """
    act = get(activation)
    method, n = _method_points(act, quadrature, points)
    k11, k12, k22 = jnp.broadcast_arrays(
        *(jnp.asarray(k, jnp.result_type(k, float)) for k in (k11, k12, k22))
    )
    dt = k12.dtype
    ks = None
    if method != "closed" and _checks.is_concrete(k11) and _checks.is_concrete(k22):
        ks = np.concatenate([np.ravel(np.asarray(k, np.float64)) for k in (k11, k22)])
    (rule,) = _rules(act, method, n, ks, 2, 1.0, 0.0, dt)
    table = _table(rule, dt)
    m1 = _marginal(act, rule, table, k11)
    m2 = _marginal(act, rule, table, k22)
    return _pair(act, rule, m1, k12, m2)


# ---------------------------------------------------------------------------- recursions


class _Config(NamedTuple):
    """Static (hashable) description of one kernel computation: one rule per layer transition
    l → l + 1, l = 1 … L − 1."""

    depth: int
    activation: Activation
    rules: tuple[_Rule, ...]


Layer = tuple[Array, Array, Array]  # (Σ, Σ̇, Θ) of one layer
# What to return: the last Σ ("nngp"), the last Θ ("ntk"), or layers by 0-based index (sorted).
Which = str | tuple[int, ...]
_LAST = {"nngp": 0, "ntk": 2}  # position in a Layer
Marginals = tuple[_Marginal, ...]  # per segment, stacked over its layers
Tables = tuple[Table | None, ...]  # per segment


def _segments(cfg: _Config) -> tuple[tuple[int, int, _Rule], ...]:
    """Maximal runs (start, stop, rule) of transitions with the same rule (a ``lax.scan`` each)."""
    runs: list[tuple[int, int, _Rule]] = []
    for i, rule in enumerate(cfg.rules):
        if runs and runs[-1][2] == rule:
            runs[-1] = (runs[-1][0], i + 1, rule)
        else:
            runs.append((i, i + 1, rule))
    return tuple(runs)


def _step(
    act: Activation, rule: _Rule, sigma_w: Array, beta: Array, m1: _Marginal, m2: _Marginal,
    prev: Layer,
) -> Layer:  # fmt: skip
    """One layer: (Σ^(l), Θ^(l)) and the marginals of layer l ↦ (Σ^(l+1), Σ̇^(l+1), Θ^(l+1))."""
    e_ss, e_dd = _pair(act, rule, m1, prev[0], m2)
    sw2 = sigma_w * sigma_w
    sigma = sw2 * e_ss + beta * beta
    sigma_dot = sw2 * e_dd
    return sigma, sigma_dot, prev[2] * sigma_dot + sigma


def _first(sigma_w: Array, beta: Array, gram: Array, n0: int) -> Layer:
    """Layer 1: Σ^(1) = Θ^(1) = σ_w² xᵀx′ / n_0 + β², Σ̇^(1) = 0, from a Gram matrix."""
    k = sigma_w * sigma_w * gram / n0 + beta * beta
    return k, jnp.zeros_like(k), k


def _self_diagonal(
    cfg: _Config, sigma_w: Array, beta: Array, x: Array, tables: Tables
) -> tuple[Kernels, Marginals]:
    """Every layer at (x_i, x_i), stacked (L, N), and the marginals of layers 1 … L − 1, one
    stack per segment of equal rules (``lax.scan`` within a segment: compile time independent
    of its length)."""
    first = _first(sigma_w, beta, jnp.sum(x * x, axis=1), x.shape[1])
    layers, marginals, prev = [tuple(f[None] for f in first)], [], first
    for (start, stop, rule), table in zip(_segments(cfg), tables, strict=True):

        def body(
            prev: Layer, _: None, rule: _Rule = rule, table: Table | None = table
        ) -> tuple[Layer, tuple[Layer, _Marginal]]:
            m = _marginal(cfg.activation, rule, table, prev[0])
            new = _step(cfg.activation, rule, sigma_w, beta, m, m, prev)
            return new, (new, m)

        prev, (rest, ms) = jax.lax.scan(body, prev, None, length=stop - start)
        layers.append(rest)
        marginals.append(ms)
    stacked = Kernels(*(jnp.concatenate([lay[f] for lay in layers]) for f in range(3)))
    return stacked, tuple(marginals)


def _unrolled(cfg: _Config) -> bool:
    """Whether the layers are unrolled in Python: closed forms up to depth ``_UNROLL_DEPTH``.

    Unrolled, everything after the Gram matrix is elementwise, so XLA fuses all layers into one
    pass that reads the Gram tile once and writes the result once. A ``lax.scan`` carries Σ, Σ̇,
    Θ between layers as (N1, N2) arrays, three memory passes per layer (measured 2.5× slower at
    N = 4000). Deep networks keep the scan (compile time independent of L); the Mehler series
    keeps it too (measured faster: its Horner sum per layer is compute-bound).
    """
    return all(r.method == "closed" for r in cfg.rules) and cfg.depth <= _UNROLL_DEPTH


def _cross(
    cfg: _Config,
    sigma_w: Array,
    beta: Array,
    first: Layer,
    m1: Marginals,
    m2: Marginals,
    which: Which,
) -> Kernels | Array:
    """Layers 1 … L from layer 1 and the stacked marginals of both inputs (broadcast against
    it); the last Σ (``"nngp"``) or Θ (``"ntk"``), or the layers listed in ``which``."""
    act = cfg.activation
    if _unrolled(cfg):
        layers = [first]
        for ell in range(cfg.depth - 1):
            ms = jax.tree.map(lambda a, ell=ell: a[ell], (m1[0], m2[0]))
            layers.append(_step(act, cfg.rules[ell], sigma_w, beta, ms[0], ms[1], layers[-1]))
        if isinstance(which, tuple):
            return Kernels(*(jnp.stack([layers[i][f] for i in which]) for f in range(3)))
        return layers[-1][_LAST[which]]
    keep = isinstance(which, tuple)
    prev, rests = first, []
    for (_, _, rule), a, b in zip(_segments(cfg), m1, m2, strict=True):

        def body(
            prev: Layer, ms: tuple[_Marginal, _Marginal], rule: _Rule = rule
        ) -> tuple[Layer, Layer | None]:
            new = _step(act, rule, sigma_w, beta, ms[0], ms[1], prev)
            return new, (new if keep else None)

        prev, rest = jax.lax.scan(body, prev, (a, b))
        rests.append(rest)
    if not keep:
        return prev[_LAST[which]]
    stacked = (
        jnp.concatenate([first[f][None], *(r[f] for r in rests)]) for f in range(3)
    )
    return _pick(Kernels(*stacked), which)


def _pick(k: Kernels, which: Which) -> Kernels | Array:
    """From stacked kernels: the last Σ (``"nngp"``), the last Θ (``"ntk"``), or the layers
    with the 0-based indices in the tuple ``which``."""
    if isinstance(which, str):
        return k[_LAST[which]][-1]
    if len(which) == k.sigma.shape[0]:  # all of them (indices are sorted and distinct)
        return k
    return Kernels(*(f[np.asarray(which)] for f in k))


def _as_rows(tree: _Marginal) -> _Marginal:
    """Per-input leaves (..., N) as rows of a tile: a trailing unit axis, (..., N, 1)."""
    return jax.tree.map(lambda a: a[..., None], tree)


def _as_columns(tree: _Marginal) -> _Marginal:
    """Per-input leaves (..., N) as columns of a tile: (..., 1, N)."""
    return jax.tree.map(lambda a: a[..., None, :], tree)


def _by_rows(
    fn: Callable[[Array, _Marginal], Kernels | Array], x1: Array, m1: _Marginal, rows: int
) -> Kernels | Array:
    """``fn`` over blocks of ``rows`` rows of ``x1`` (and of the marginals, last axis), written in
    place into the output (row axis −2 of every leaf).

    The last block starts at N1 − rows, so it overlaps the previous one and recomputes a few
    rows instead of padding: neither the inputs nor the (N1, N2) output is ever copied.
    """
    n1 = x1.shape[0]
    if rows >= n1:
        return fn(x1, m1)
    shapes = jax.eval_shape(fn, x1[:rows], jax.tree.map(lambda a: a[..., :rows], m1))
    out = jax.tree.map(lambda s: jnp.zeros((*s.shape[:-2], n1, s.shape[-1]), s.dtype), shapes)

    def block(i: Array, out: Kernels | Array) -> Kernels | Array:
        start = jnp.minimum(i * rows, n1 - rows)
        xb = jax.lax.dynamic_slice_in_dim(x1, start, rows, 0)
        mb = jax.tree.map(lambda a: jax.lax.dynamic_slice_in_dim(a, start, rows, a.ndim - 1), m1)
        return jax.tree.map(functools.partial(_write_rows, start=start), out, fn(xb, mb))

    return jax.lax.fori_loop(0, -(-n1 // rows), block, out)


def _write_rows(out: Array, new: Array, *, start: Array) -> Array:
    """``new`` into rows start … of ``out`` (axis −2), in place; a stack of layers (L′, B, N2) one
    layer at a time, so that XLA computes each layer inside its own update (written as one
    update, the stack's elements were all evaluated for every entry: 3× slower)."""
    if new.ndim == 2:
        return jax.lax.dynamic_update_slice(out, new, (start, 0))
    for t in range(new.shape[0]):
        out = jax.lax.dynamic_update_slice(out, new[t : t + 1], (t, start, 0))
    return out


@functools.partial(jax.jit, static_argnames=("cfg", "which", "block_size", "symmetric"))
def _full(
    x1: Array,
    x2: Array,
    sigma_w: Array,
    beta: Array,
    tables: Tables,
    *,
    cfg: _Config,
    which: Which,
    block_size: int,
    symmetric: bool,
) -> Kernels | Array:
    """The (N1, N2) kernels, evaluated over blocks of ``block_size`` rows of ``x1``.

    The per-input marginals (diagonal recursion, Mehler coefficients) are computed once; each
    block then costs one GEMM and the elementwise layer recursion over a (block_size, N2) tile.
    With ``symmetric`` (x2 is x1) the diagonal is then overwritten by the diagonal recursion,
    where ρ = 1 exactly: from the Gram matrix, ρ(x, x) = xᵀx / (√(xᵀx) √(xᵀx)) is 1 only up to
    the rounding of two different summations, which the arc-cosine amplifies to √eps.
    """
    n0 = x1.shape[1]
    own, m1 = _self_diagonal(cfg, sigma_w, beta, x1, tables)
    m2 = _as_columns(_self_diagonal(cfg, sigma_w, beta, x2, tables)[1])

    def block(xb: Array, mb: Marginals) -> Kernels | Array:
        first = _first(sigma_w, beta, xb @ x2.T, n0)
        return _cross(cfg, sigma_w, beta, first, _as_rows(mb), m2, which)

    out = _by_rows(block, x1, m1, block_size)
    if not symmetric:
        return out
    i = jnp.arange(x1.shape[0])
    diag = _pick(own, which)
    if isinstance(which, tuple):
        return Kernels(*(o.at[:, i, i].set(d) for o, d in zip(out, diag, strict=True)))
    return out.at[i, i].set(diag)


@functools.partial(jax.jit, static_argnames=("cfg", "which"))
def _diagonal(
    x1: Array,
    x2: Array | None,
    sigma_w: Array,
    beta: Array,
    tables: Tables,
    *,
    cfg: _Config,
    which: Which,
) -> Kernels | Array:
    """k(x1_i, x1_i) — or k(x1_i, x2_i) when ``x2`` is given — for every layer."""
    own, m1 = _self_diagonal(cfg, sigma_w, beta, x1, tables)
    if x2 is None:
        return _pick(own, which)
    m2 = _self_diagonal(cfg, sigma_w, beta, x2, tables)[1]
    first = _first(sigma_w, beta, jnp.sum(x1 * x2, axis=1), x1.shape[1])
    return _cross(cfg, sigma_w, beta, first, m1, m2, which)


# ---------------------------------------------------------------------------- public API


def _auto_block(n1: int, n2: int, cfg: _Config) -> int:
    """Rows per block.

    - Unrolled closed forms: tiles of up to 2^24 entries (64 MiB in float32), so N = 4000 is one
      block: one GEMM, then one fused elementwise pass over it that XLA runs on all cores
      (a loop over smaller blocks runs them one after another).
    - Mehler and the scanned recursion: tiles of ~2^19 entries (2 MiB in float32), whose
      per-layer temporaries stay in cache (measured 2.7× faster than one 4000-row tile).
    - The 2-D rules: tile entries × nodes ≤ 2^22.
    """
    if _unrolled(cfg):
        rows = _FUSED_TILE_ENTRIES // max(1, n2)
    else:
        nodes = max(
            [1]
            + [r.points for r in cfg.rules if r.method == "hermite"]
            + [4 * r.points for r in cfg.rules if r.method == "polar"]
        )
        rows = min(_TILE_ENTRIES, _BLOCK_BUDGET // nodes) // max(1, n2)
    return max(1, min(n1, rows))


def _hyperparameter(name: str, value: object, *, positive: bool) -> tuple[object, float | None]:
    """``value`` checked as a real scalar (a JAX scalar may be traced, e.g. under ``jax.grad``),
    and its concrete float value, or ``None`` if it has none (inside ``jit``)."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        concrete: float | None = float(value)  # the common case, without a device round trip
    else:
        concrete = _checks.concrete_value(_checks.real_scalar(name, value))
    if concrete is not None:
        check = _checks.positive if positive else _checks.nonnegative
        check(name, concrete)
    return value, concrete


def _compute(
    x1: object,
    x2: object,
    *,
    depth: int,
    activation: str | Callable[[Array], Array] | Activation,
    beta: object,
    sigma_w: object,
    diagonal: bool,
    quadrature: str,
    points: int | None,
    block_size: int | None,
    dtype: object,
    which: str,
    layers: Sequence[int] | None = None,
) -> Kernels | Array:
    """Validate the public arguments, choose the rules, then run the jitted computation
    (``which``: "nngp", "ntk" or "kernels", the last with the notes' layer numbers ``layers``)."""
    x1 = _checks.inputs("x1", x1)
    if x2 is not None:
        x2 = _checks.inputs("x2", x2, n_features=x1.shape[1])
    cfg_depth = _checks.positive_int("depth", depth)
    if which == "kernels":
        which = _layer_indices(layers, cfg_depth)
    act = get(activation)
    beta, beta_v = _hyperparameter("beta", beta, positive=False)
    sigma_w, sigma_w_v = _hyperparameter("sigma_w", sigma_w, positive=True)
    method, n = _method_points(act, quadrature, points)
    dt = (
        jnp.result_type(*(x for x in (x1, x2) if x is not None))
        if dtype is None
        else _checks.float_dtype("dtype", dtype)
    )
    if jnp.finfo(dt).bits < 32:
        raise ValueError(
            f"dtype: {jnp.dtype(dt).name} is not supported (the arc-cosine and the series lose "
            "all accuracy); compute in float32 or float64 and cast the result"
        )
    xs = [x for x in (x1, x2) if x is not None]
    samples = _variance_samples(xs, sigma_w_v, beta_v) if method != "closed" else None
    rules = _rules(act, method, n, samples, cfg_depth, sigma_w_v, beta_v, dt)
    cfg = _Config(cfg_depth, act, rules)
    tables = tuple(_table(rule, dt) for _, _, rule in _segments(cfg))
    x1 = x1.astype(dt)
    x2 = None if x2 is None else x2.astype(dt)
    sw, b = jnp.asarray(sigma_w, dt), jnp.asarray(beta, dt)
    out = _dispatch(x1, x2, sw, b, tables, cfg=cfg, which=which, diagonal=diagonal,
                    block_size=block_size)  # fmt: skip
    if act.homogeneous and beta_v == 0.0 and sigma_w_v is not None and jnp.finfo(dt).bits <= 32:
        # checked after the dispatch, so that the check's host round trip overlaps the kernel
        scaled = _homogeneous_scales(act, xs, sigma_w_v, cfg_depth)
        if scaled is not None:
            norms, unit = scaled
            unit2 = unit[1] if x2 is not None else None
            out = _dispatch(unit[0], unit2, sw, b, tables, cfg=cfg, which=which,
                            diagonal=diagonal, block_size=block_size)  # fmt: skip
            return _rescale(out, norms, diagonal=diagonal, dtype=dt)
    return out


def _dispatch(
    x1: Array,
    x2: Array | None,
    sw: Array,
    b: Array,
    tables: Tables,
    *,
    cfg: _Config,
    which: Which,
    diagonal: bool,
    block_size: int | None,
) -> Kernels | Array:
    """Run the jitted diagonal or full computation on validated inputs."""
    if diagonal:
        if x2 is not None and x2.shape[0] != x1.shape[0]:
            raise ValueError(
                f"x2: diagonal=True pairs rows of x1 and x2, so both need N rows; got "
                f"{x1.shape[0]} and {x2.shape[0]}"
            )
        return _diagonal(x1, x2, sw, b, tables, cfg=cfg, which=which)
    symmetric = x2 is None
    x2 = x1 if x2 is None else x2
    if block_size is None:
        rows = _auto_block(x1.shape[0], x2.shape[0], cfg)
    else:
        rows = min(_checks.positive_int("block_size", block_size), x1.shape[0])
    return _full(x1, x2, sw, b, tables, cfg=cfg, which=which, block_size=rows, symmetric=symmetric)


_KERNEL_ARGS = """
        x1: inputs (N1, n_0), finite, real, float32 or float64 (or integer), n_0 ≥ 1.
        x2: inputs (N2, n_0); default ``x1``.
        depth: L ≥ 1, the number of affine layers.
        activation: a name, a JAX function or an :class:`~ntkbook.activations.Activation`.
            Well-known JAX functions (``jax.nn.relu``, ``jnp.tanh``, ``jax.nn.gelu``, …) are
            recognised by identity (:func:`ntkbook.activations.recognise`) and get their
            closed form or rule; any other function is handled by the automatic choice below.
        beta: β ≥ 0, the bias scale: a float or a JAX scalar (``jax.grad`` with respect to it
            works).
        sigma_w: σ_w > 0, the weight scale (W ~ N(0, σ_w²); √2 is He initialisation for ReLU),
            a float or a JAX scalar.
        diagonal: only k(x1_i, x1_i) (or k(x1_i, x2_i) if ``x2`` has as many rows).
        quadrature: ``"auto"`` (default), ``"closed"``, ``"mehler"``, ``"polar"`` or
            ``"hermite"`` (see :func:`expectation`).
        points: Mehler terms or nodes per dimension; default (``None``): chosen per layer from
            the largest input variance for relative error 1e-10 (float64). An explicit value
            that misses 1e-8 at the inputs' variances draws a ``UserWarning`` naming it.
        block_size: rows of ``x1`` per block (default: chosen to bound temporaries).
        dtype: compute dtype, float32 or float64 (default: that of the inputs). float16 and
            bfloat16 are refused (``ValueError``).
        mesh: a :class:`jax.sharding.Mesh` or ``"all"`` (every device): the rows of ``x1``
            are split over its devices by :mod:`ntkbook.sharding`; ``None``: one device."""


def kernels(
    x1: Array,
    x2: Array | None = None,
    *,
    depth: int,
    activation: str | Callable[[Array], Array] | Activation = "relu",
    beta: float | Array = 0.0,
    sigma_w: float | Array = 1.0,
    diagonal: bool = False,
    quadrature: str = "auto",
    points: int | None = None,
    block_size: int | None = None,
    dtype: object = None,
    layers: Sequence[int] | None = None,
    mesh: object = None,
) -> Kernels:
    r""":math:`\Sigma^{(l)}, \dot\Sigma^{(l)}, \Theta_\infty^{(l)}` for l = 1 … L (the recursion
    in the module docstring).

    Args:{args}
        layers: the layers l to return, numbered 1 … L as in the notes (−1 is L, −2 is L − 1,
            …); default all. ``layers=[-1]`` gives :math:`\Sigma^{(L)}, \dot\Sigma^{(L)}` and
            :math:`\Theta^{(L)}` from one Gram matrix, at the memory of three matrices instead
            of 3L. (:func:`ntk` alone is
            fastest: one output lets XLA fuse all layers into one pass.)

    Returns:
        :class:`Kernels`, each field (L, N1, N2) (or (L, N)); index l − 1 is layer l;
        :math:`\dot\Sigma^{(1)} = 0`.
        With ``layers``, the leading axis holds the requested layers in increasing order.

    Raises:
        ValueError: naming the argument (shapes, n_0 = 0, complex or half-precision inputs,
            NaN/inf, depth < 1, β < 0, σ_w ≤ 0, a non-scalar β or σ_w, unknown activation or
            quadrature, ``"mehler"``/``"hermite"`` for a kinked σ, a layer outside 1 … L).

    Warns:
        UserWarning: naming ``points`` when explicit points miss the accuracy target.

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
        >>> k = kernels(x, depth=2)  # one hidden ReLU layer: Σ^(2) = ‖x‖²/(2 n_0) on the diagonal
        >>> round(float(k.sigma[1, 0, 0]), 6), round(float(k.theta[1, 0, 0]), 6)
        (0.25, 0.5)
    """
    options = dict(
        activation=activation, beta=beta, sigma_w=sigma_w, diagonal=diagonal,
        quadrature=quadrature, points=points, block_size=block_size, dtype=dtype, layers=layers,
    )  # fmt: skip
    if mesh is not None:  # several devices: ntkbook.sharding (imported here: it imports limits)
        from . import sharding

        return sharding.kernels(x1, x2, depth=depth, mesh=mesh, **options)
    return _compute(x1, x2, depth=depth, **options, which="kernels")


def nngp(
    x1: Array,
    x2: Array | None = None,
    *,
    depth: int,
    activation: str | Callable[[Array], Array] | Activation = "relu",
    beta: float | Array = 0.0,
    sigma_w: float | Array = 1.0,
    diagonal: bool = False,
    quadrature: str = "auto",
    points: int | None = None,
    block_size: int | None = None,
    dtype: object = None,
    mesh: object = None,
) -> Array:
    r""":math:`\Sigma^{(L)}`, the NNGP kernel of the output: (N1, N2), or (N,) with
    ``diagonal=True``.

    Only the last layer is kept, so memory is one matrix.

    Args:{args}

    Returns:
        :math:`\Sigma^{(L)}(x_{1,i}, x_{2,j})`.

    Example:
        >>> import jax.numpy as jnp
        >>> round(float(nngp(jnp.ones((1, 4)), depth=2)[0, 0]), 6)  # E[relu(u)²] = 1/2
        0.5
    """
    if mesh is not None:  # several devices: ntkbook.sharding (imported here: it imports limits)
        from . import sharding

        return sharding.nngp(
            x1, x2, depth=depth, mesh=mesh, activation=activation, beta=beta,
            sigma_w=sigma_w, diagonal=diagonal, quadrature=quadrature, points=points,
            block_size=block_size, dtype=dtype,
        )
    return _compute(
        x1, x2, depth=depth, activation=activation, beta=beta, sigma_w=sigma_w,
        diagonal=diagonal, quadrature=quadrature, points=points, block_size=block_size,
        dtype=dtype, which="nngp",
    )  # fmt: skip


def ntk(
    x1: Array,
    x2: Array | None = None,
    *,
    depth: int,
    activation: str | Callable[[Array], Array] | Activation = "relu",
    beta: float | Array = 0.0,
    sigma_w: float | Array = 1.0,
    diagonal: bool = False,
    quadrature: str = "auto",
    points: int | None = None,
    block_size: int | None = None,
    dtype: object = None,
    mesh: object = None,
) -> Array:
    r""":math:`\Theta_\infty^{(L)}`, the limiting NTK of the output: (N1, N2), or (N,) with
    ``diagonal=True``.

    Only the last layer is kept, so memory is one matrix.

    Args:{args}

    Returns:
        :math:`\Theta_\infty^{(L)}(x_{1,i}, x_{2,j})`.

    Example:
        >>> import jax.numpy as jnp
        >>> round(float(ntk(jnp.ones((1, 4)), depth=2)[0, 0]), 6)  # Σ¹ × 1/2 + Σ² = 1/2 + 1/2
        1.0
    """
    if mesh is not None:  # several devices: ntkbook.sharding (imported here: it imports limits)
        from . import sharding

        return sharding.ntk(
            x1, x2, depth=depth, mesh=mesh, activation=activation, beta=beta,
            sigma_w=sigma_w, diagonal=diagonal, quadrature=quadrature, points=points,
            block_size=block_size, dtype=dtype,
        )
    return _compute(
        x1, x2, depth=depth, activation=activation, beta=beta, sigma_w=sigma_w,
        diagonal=diagonal, quadrature=quadrature, points=points, block_size=block_size,
        dtype=dtype, which="ntk",
    )  # fmt: skip


for _fn in (kernels, nngp, ntk):
    _fn.__doc__ = _fn.__doc__.replace("Args:{args}", "Args:" + _KERNEL_ARGS)


def standard_ntk(
    x1: Array,
    x2: Array | None = None,
    *,
    widths: Sequence[int],
    activation: str | Callable[[Array], Array] | Activation = "relu",
    beta: float | Array = 0.0,
    sigma_w: float | Array = 1.0,
    diagonal: bool = False,
    quadrature: str = "auto",
    points: int | None = None,
    block_size: int | None = None,
    dtype: object = None,
) -> Array:
    r"""The NTK of a wide network in the *standard* parametrisation, from the limits' statistics.

    The forward statistics are those of the NTK parametrisation (same function distribution),
    but a weight :math:`W^{(l)}` has no :math:`1/\sqrt{n_l}` in front, so its
    :math:`n_l n_{l+1}` entries count :math:`n_l` times
    more, and a bias derivative is 1 instead of β:

    .. math::

        \Theta_{\rm std}(x, x') \approx \sum_{l=0}^{L-1}
            \Big(\frac{n_l}{\sigma_w^2}\big(\Sigma^{(l+1)} - \beta^2\big) + 1\Big)
            \prod_{m=l+2}^{L} \dot\Sigma^{(m)},

    which grows like n: the standard-parametrisation NTK has no finite limit unless the
    learning rate is scaled by 1/n (notes §2.2).

    Args:
        x1, x2: inputs as in :func:`kernels`.
        widths: (n_0, …, n_L) of the network; L = len(widths) − 1.
        activation, beta, sigma_w, diagonal, quadrature, points, block_size, dtype: as in
            :func:`kernels`.

    Returns:
        (N1, N2), or (N,) with ``diagonal=True``.
    """
    widths = _checks.widths(widths)
    k = _compute(
        x1, x2, depth=len(widths) - 1, activation=activation, beta=beta, sigma_w=sigma_w,
        diagonal=diagonal, quadrature=quadrature, points=points, block_size=block_size,
        dtype=dtype, which="kernels",
    )  # fmt: skip
    sw2, b2 = jnp.square(sigma_w), jnp.square(beta)
    total = jnp.zeros_like(k.theta[0])
    for ell, fan_in in enumerate(widths[:-1]):
        after = jnp.prod(k.sigma_dot[ell + 1 :], axis=0)  # Π_{m ≥ l+2} Σ̇^(m); 1 if empty
        total = total + (fan_in * (k.sigma[ell] - b2) / sw2 + 1.0) * after
    return total


def _layer_indices(layers: Sequence[int] | None, depth: int) -> tuple[int, ...]:
    """0-based, sorted, distinct indices of the notes' layers 1 … L (negative: from the end)."""
    if layers is None:
        return tuple(range(depth))
    try:
        items = [operator.index(layer) for layer in layers]
    except TypeError:
        raise ValueError(f"layers: expected a sequence of integers, got {layers!r}") from None
    bad = [layer for layer in items if not (1 <= layer <= depth or -depth <= layer <= -1)]
    if bad or not items:
        raise ValueError(
            f"layers: each must be in 1 … {depth} or −{depth} … −1 (the depth); got {layers!r}"
        )
    return tuple(sorted({layer - 1 if layer > 0 else depth + layer for layer in items}))


# ---------------------------------------------------------------------------- extreme scales


@jax.jit
def _extent(x: Array) -> tuple[Array, Array]:
    """The largest entry in absolute value, and the smallest nonzero row maximum."""
    rows = jnp.max(jnp.abs(x), axis=1)
    return jnp.max(rows), jnp.min(jnp.where(rows > 0, rows, jnp.inf))


_SAFE_EXTENT = 1e15  # float32 Gram entries up to n_0·1e30 < 3.4e38 and down to 1e-30 > 1.2e-38


def _homogeneous_scales(
    act: Activation, xs: Sequence[Array], sigma_w: float, depth: int
) -> tuple[list[np.ndarray], list[Array]] | None:
    r"""For a positively homogeneous σ with β = 0 in float32: warn when a depth makes
    :math:`\Sigma^{(L)}(x, x)` underflow (or overflow), and, when an input is beyond
    ``_SAFE_EXTENT`` (its Gram entries would overflow or underflow), the row norms and the
    normalised inputs. With β = 0 every :math:`\Sigma^{(l)}` and :math:`\Theta^{(l)}` is
    homogeneous of degree 1 in each argument and :math:`\dot\Sigma^{(l)}` of degree 0, so the
    kernels are those of the unit inputs times :math:`\lVert x\rVert \lVert x'\rVert`.
    """
    if not all(_checks.is_concrete(x) for x in xs):
        return None
    extents = [tuple(float(v) for v in _extent(x)) for x in xs]
    big = max(e[0] for e in extents) * sigma_w > _SAFE_EXTENT
    small = min(e[1] for e in extents) * sigma_w < 1 / _SAFE_EXTENT
    one = jnp.ones(())
    gain = sigma_w**2 * float(act.expectation(one, one, one)[0])  # type: ignore[misc]
    shrink = (depth - 1) * math.log2(gain) if gain > 0 else -math.inf
    if not (big or small or abs(shrink) > 60):
        return None
    norms = [np.sqrt(np.sum(np.square(np.asarray(x, np.float64)), axis=1)) for x in xs]
    positive = [n[n > 0] for n in norms]
    if all(p.size for p in positive):  # the output's scale σ_w² |x| |x'| / n_0 · gain^(L−1)
        a, b = positive[0], positive[-1]
        unit = math.log2(sigma_w**2 / xs[0].shape[1]) + shrink
        low = math.log2(a.min()) + math.log2(b.min()) + unit
        high = math.log2(a.max()) + math.log2(b.max()) + unit
        tiny, huge = math.log2(np.finfo(np.float32).tiny), math.log2(np.finfo(np.float32).max)
        if low < tiny or high > huge:
            reach = low if low < tiny else high
            name = "depth" if abs(shrink) > 60 else "x1"
            warnings.warn(
                f"{name}: in float32, the kernels of {act.name!r} reach 2^{reach:.0f} "
                f"at depth {depth} (σ_w² E[σ(z)²] = {gain:.3g} per layer, β = 0), beyond the "
                "float32 range, so kernels underflow to 0 or overflow; compute in float64",
                UserWarning,
                stacklevel=4,
            )
    if not (big or small):
        return None
    unit = [
        x / jnp.asarray(np.where(n > 0, n, 1.0)[:, None], x.dtype)
        for x, n in zip(xs, norms, strict=True)
    ]
    return norms, unit


def _rescale(
    out: Kernels | Array, norms: list[np.ndarray], *, diagonal: bool, dtype: jnp.dtype
) -> Kernels | Array:
    r"""Multiply kernels of unit inputs by :math:`\lVert x\rVert \lVert x'\rVert` (computed in
    float64, so that 1e20 × 1e−20 is 1); :math:`\dot\Sigma` is unchanged."""
    n1, n2 = norms[0], norms[-1]
    scale = n1 * n2 if diagonal else np.outer(n1, n2)
    with np.errstate(over="ignore"):
        factor = jnp.asarray(scale.astype(np.dtype(dtype)), dtype)
    if isinstance(out, Kernels):
        return Kernels(out.sigma * factor[None], out.sigma_dot, out.theta * factor[None])
    return out * factor


# ------------------------------------------------- positive definiteness and spectra (notes §7)


class Rank(NamedTuple):
    """The numerical rank of a symmetric positive semi-definite matrix, with its spectral gap.

    Attributes:
        rank: the number of eigenvalues above ``tol``.
        tol: the threshold, ``rtol`` · λ_max.
        eigs: all eigenvalues, in decreasing order (float64 NumPy).
        smallest_kept: λ_rank, the smallest eigenvalue counted (> tol).
        largest_dropped: the largest absolute value among the eigenvalues not counted (0 if none);
            round-off makes these of either sign.
        gap: smallest_kept / largest_dropped (inf if nothing is dropped): how unambiguous the
            rank is — a matrix of exact rank r has a gap of many orders of magnitude.
    """

    rank: int
    tol: float
    eigs: np.ndarray
    smallest_kept: float
    largest_dropped: float
    gap: float


def numerical_rank(gram: Array, *, rtol: float | None = None) -> Rank:
    r"""Rank of a symmetric PSD matrix K: the eigenvalues above a tolerance relative to λ_max.

    .. math::

        \operatorname{rank}_\tau K = \#\{i : \lambda_i(K) > \tau\},

        \tau = \mathrm{rtol}\cdot\lambda_{\max}(K), \quad
        \mathrm{rtol} = N\,\varepsilon_{64} \text{ by default.}

    A backward-stable symmetric eigensolver returns the eigenvalues of K + E with
    :math:`\lVert E\rVert_2 \lesssim p(N)\,\varepsilon\,\lVert K\rVert_2`, p(N) at most of order
    N; entries computed by closed forms carry a relative error of a few ε. Eigenvalues that are
    exactly zero therefore come out below :math:`N\varepsilon\lambda_{\max}`, and the rank is
    unambiguous when :attr:`Rank.gap` is large.

    Args:
        gram: a symmetric (N, N) matrix, finite (computed in float64).
        rtol: the tolerance relative to λ_max; default N · 2.2e-16.

    Returns:
        :class:`Rank`.

    Raises:
        ValueError: naming ``gram`` (not square, not finite, not symmetric to 1e-10 relative,
            λ_max ≤ 0) or ``rtol`` (not in (0, 1)).
    """
    k = np.asarray(gram, dtype=float)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] == 0:
        raise ValueError(f"gram: expected a square (N, N) matrix, got shape {k.shape}")
    if not np.all(np.isfinite(k)):
        raise ValueError("gram: contains NaN or inf")
    scale = np.max(np.abs(k))
    if np.max(np.abs(k - k.T)) > 1e-10 * scale:
        raise ValueError("gram: not symmetric (relative asymmetry above 1e-10)")
    n = k.shape[0]
    rtol = n * np.finfo(float).eps if rtol is None else float(rtol)
    if not 0.0 < rtol < 1.0:
        raise ValueError(f"rtol: must be in (0, 1), got {rtol!r}")
    eigs = np.linalg.eigvalsh(0.5 * (k + k.T))[::-1]
    if eigs[0] <= 0:
        raise ValueError("gram: largest eigenvalue is not positive")
    tol = rtol * eigs[0]
    kept, dropped = eigs[eigs > tol], eigs[eigs <= tol]
    largest_dropped = float(np.max(np.abs(dropped))) if dropped.size else 0.0
    gap = float(kept[-1] / largest_dropped) if largest_dropped > 0 else float("inf")
    return Rank(int(kept.size), float(tol), eigs, float(kept[-1]), largest_dropped, gap)


def harmonic_dimension(dim: int, degree: int) -> int:
    r"""The dimension of the spherical harmonics of degree k on :math:`S^{d-1}`.

    .. math::

        N(d, k) = \binom{k + d - 1}{k} - \binom{k + d - 3}{k - 2}

    (homogeneous polynomials of degree k in d variables, less those divisible by
    :math:`\lVert x\rVert^2`); N(2, k) = 2 for k ≥ 1, N(3, k) = 2k + 1. Polynomials of degree
    ≤ m restricted to the sphere span :math:`\sum_{k \le m} N(d, k)` dimensions.

    Args:
        dim: d ≥ 2, the ambient dimension n_0.
        degree: k ≥ 0.

    Raises:
        ValueError: naming ``dim`` or ``degree``.
    """
    d = _checks.positive_int("dim", dim, minimum=2)
    k = _checks.positive_int("degree", degree, minimum=0)
    return math.comb(k + d - 1, k) - (math.comb(k + d - 3, k - 2) if k >= 2 else 0)


class ZonalSpectrum(NamedTuple):
    """Eigenvalues of a zonal kernel on the sphere, one per degree (see :func:`zonal_spectrum`).

    Attributes:
        degree: k = 0 … K.
        mu: μ_k, the eigenvalue of the integral operator on every degree-k harmonic.
        multiplicity: N(d, k), how many harmonics share μ_k (:func:`harmonic_dimension`).
    """

    degree: np.ndarray
    mu: np.ndarray
    multiplicity: np.ndarray


def _gegenbauer_normalised(dim: int, max_degree: int, t: np.ndarray) -> np.ndarray:
    """(K + 1, n) Legendre polynomials of dimension d with P_k(1) = 1, by their recurrence."""
    p = np.empty((max_degree + 1,) + t.shape)
    p[0] = 1.0
    if max_degree >= 1:
        p[1] = t
    for k in range(1, max_degree):
        p[k + 1] = ((2 * k + dim - 2) * t * p[k] - k * p[k - 1]) / (k + dim - 2)
    return p


def zonal_spectrum(
    *,
    dim: int,
    max_degree: int,
    depth: int,
    kernel: str = "ntk",
    nodes: int | None = None,
    **options: object,
) -> ZonalSpectrum:
    r"""Funk–Hecke eigenvalues of Θ∞^(L) (or Σ^(L)) restricted to the sphere :math:`S^{d-1}`.

    On the unit sphere the kernels depend only on t = x·x′, κ(x, x′) = κ(t). For the operator
    :math:`(Tf)(x) = \E_{y \sim \mathrm{unif}(S^{d-1})}[\kappa(x \cdot y) f(y)]`, every spherical
    harmonic of degree k is an eigenfunction with eigenvalue

    .. math::

        \mu_k = \frac{\omega_{d-2}}{\omega_{d-1}} \int_0^\pi \kappa(\cos\gamma)\,
            P_k^{(d)}(\cos\gamma)\, \sin^{d-2}\gamma \, d\gamma,

        \frac{\omega_{d-2}}{\omega_{d-1}} = \frac{\Gamma(d/2)}{\sqrt\pi\,\Gamma((d-1)/2)},

    with :math:`P_k^{(d)}` the Legendre (Gegenbauer) polynomial of dimension d normalised by
    :math:`P_k^{(d)}(1) = 1` (d = 2: cos kγ, μ_k the Fourier coefficients of κ(cos γ) divided
    by 2 for k ≥ 1; d = 3: the Legendre polynomials), and
    :math:`\kappa(1) = \sum_k N(d, k)\, \mu_k`. The integral is taken by Gauss–Legendre in the
    angle γ, where the ReLU kernels are smooth on [0, π] (their kink is at t = 1 in t, not in γ).

    Args:
        dim: d = n_0 ≥ 2.
        max_degree: K ≥ 0, the largest degree.
        depth: L ≥ 1.
        kernel: ``"ntk"`` (Θ∞^(L)) or ``"nngp"`` (Σ^(L)).
        nodes: Gauss–Legendre nodes in γ (default max(512, 4K)); must exceed K.
        **options: as in :func:`kernels` (``activation``, ``beta``, ``sigma_w``, …).

    Returns:
        :class:`ZonalSpectrum` (float64 NumPy).

    Raises:
        ValueError: naming ``dim``, ``max_degree``, ``kernel`` or ``nodes``, or an option
            (an unknown option is a ``TypeError``).
    """
    d = _checks.positive_int("dim", dim, minimum=2)
    k_max = _checks.positive_int("max_degree", max_degree, minimum=0)
    which = _checks.choice("kernel", kernel, ("ntk", "nngp"))
    n = max(512, 4 * k_max) if nodes is None else _checks.positive_int("nodes", nodes)
    if n <= k_max:
        raise ValueError(f"nodes: need more nodes than max_degree = {k_max}, got {n}")
    u, w = np.polynomial.legendre.leggauss(n)
    gamma, w = 0.5 * np.pi * (u + 1.0), 0.5 * np.pi * w
    x0 = np.zeros((1, d))
    x0[0, 0] = 1.0
    xg = np.zeros((n, d))
    xg[:, 0], xg[:, 1] = np.cos(gamma), np.sin(gamma)
    fn = ntk if which == "ntk" else nngp
    opts = {**options, "dtype": jnp.float64}
    kappa = np.asarray(fn(jnp.asarray(x0), jnp.asarray(xg), depth=depth, **opts), float)[0]
    const = math.gamma(d / 2) / (math.sqrt(math.pi) * math.gamma((d - 1) / 2))
    p = _gegenbauer_normalised(d, k_max, np.cos(gamma))
    mu = const * (p * (kappa * np.sin(gamma) ** (d - 2) * w)[None, :]).sum(axis=1)
    degrees = np.arange(k_max + 1)
    mult = np.array([harmonic_dimension(d, int(k)) for k in degrees])
    return ZonalSpectrum(degrees, mu, mult)
