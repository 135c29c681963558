r"""Gaussian expectations :math:`E[\sigma(u)\sigma(v)]`, :math:`E[\dot\sigma(u)\dot\sigma(v)]`
over a 2-D Gaussian: the quadrature rules (Gauss–Hermite, Gauss–Legendre, radial), the
Mehler series, the polar rule and the automatic choice of a rule (see :mod:`ntkbook.limits`
for the formulas and the accuracy targets), and the public :func:`expectation`."""

from __future__ import annotations

import functools
import math
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
    with jax.ensure_compile_time_eval():  # concrete probes, also while a caller traces (jit)
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
    if known:
        _check_growth(act, ks, depth, sigma_w, beta, dtype)  # type: ignore[arg-type]
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
    if k.size == 0:  # no rows: an empty result, for which any rule will do
        return np.array([beta**2])
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


def _check_growth(
    act: Activation, ks: np.ndarray, depth: int, sigma_w: float, beta: float, dtype: jnp.dtype
) -> None:
    """Raise ``ValueError`` naming ``depth`` if the diagonal recursion Σ^(l)(x, x) leaves the
    range of ``dtype`` before layer L (e.g. σ = relu(z)², whose variances square each layer),
    before any rule is searched for (propagated in float64 by :func:`_next_variances`)."""
    top = float(np.finfo(np.dtype(dtype)).max) / 16  # headroom for Θ = Θ Σ̇ + Σ
    for layer in range(1, depth):
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is what we look for
            ks = _next_variances(act, ks, sigma_w, beta)
        if not np.all(np.isfinite(ks)) or float(np.max(ks)) > top:
            raise ValueError(
                f"depth: Σ^({layer + 1})(x, x) of {act.name!r} overflows {jnp.dtype(dtype).name} "
                f"(the variances grow without bound with depth; L = {depth}): use fewer layers, "
                "smaller inputs or sigma_w"
            )
