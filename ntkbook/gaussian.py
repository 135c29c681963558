r"""Gaussian expectations :math:`E[\sigma(u)\sigma(v)]`, :math:`E[\dot\sigma(u)\dot\sigma(v)]`
over a 2-D Gaussian: the quadrature rules (Gauss–Hermite, Gauss–Legendre, radial, the graded
polar grid), the Mehler series and the polar rule, evaluated on arrays (traceable: every rule is
static, its nodes small constants). Which rule a computation uses is chosen in
:mod:`ntkbook.quadrature`; the formulas and the accuracy targets are in :mod:`ntkbook.limits`."""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import linalg, special

from .activations import Activation, angle, correlation, safe_sqrt

Array = jax.Array
QUADRATURES: tuple[str, ...] = ("auto", "closed", "mehler", "polar", "hermite")
_MEHLER_NODES = 200  # at least this many Gauss–Hermite nodes for the coefficients c_j(k)
_NODE_CUT = 13.0  # nodes beyond |z| = 13 carry e^{-z²/4} < 1e-18 of a coefficient
_HORNER_UNROLL = 64  # Mehler series up to this length are unrolled
_HORNER_CHUNK = 16  # longer ones run a loop over chunks of this many terms (also the chunk
# of Hermite functions built per step of the coefficients' recurrence; 8 compiled faster but
# hit an XLA CPU codegen failure under vmap, 'Failed to translate module to LLVM IR')
_GRADE = 0.2  # ratio of successive cells of the graded polar grid towards a kink or r = 0
_R_EDGES = (1.0, 2.0, 3.5, 5.5, 9.0)  # radial cells beyond r = 1 (r > 9: mass < 1e-17)


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


def _cells(edges: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n-point Gauss–Legendre on each cell [edges[i], edges[i+1]], concatenated."""
    x, w = legendre_rule(n)
    a, b = edges[:-1, None], edges[1:, None]
    return ((a + b) / 2 + (b - a) / 2 * x).ravel(), ((b - a) / 2 * w).ravel()


@functools.lru_cache(maxsize=64)
def polar_nodes(n: int, *, levels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""The polar grid: nodes t ∈ [0, 1] with weights (sum 1) along each arc, and radii r with
    weights (sum 1) for :math:`\int_0^\infty g(r)\, r e^{-r^2/2}\, dr`.

    ``levels = 0``: n-point Gauss–Legendre on the arc and the n-point radial Gauss rule
    (:func:`radial_rule`), exact for σ homogeneous on each cell (ReLU-like).

    ``levels = G ≥ 1`` (σ(√k z) with features of width 1/√k at z = 0, large k): each half-arc is
    cut into cells graded geometrically (ratio ``_GRADE``) towards its end, the finest of
    relative length :math:`q^G/2`; r ∈ [0, 1] likewise towards 0 (G − 1 levels), then the cells
    ``_R_EDGES`` up to r = 9, each cell with n Gauss–Legendre points (the weight
    :math:`r e^{-r^2/2}` multiplied in). A boundary layer of width ε at a cell's end is resolved
    once the finest cell is ~ε: the error then falls exponentially in n at a cost that grows
    like log(1/ε) (tanh at k = 16384: 16 points per cell, 1e-14).
    """
    if levels == 0:
        x, w = legendre_rule(n)
        r, wr = radial_rule(n)
        return (x + 1) / 2, w / 2, r, wr
    half = np.concatenate([[0.0], 0.5 * _GRADE ** np.arange(levels, 0, -1), [0.5]])
    t, wt = _cells(half, n)
    t, wt = np.concatenate([t, 1 - t[::-1]]), np.concatenate([wt, wt[::-1]])
    inner = np.concatenate([[0.0], _GRADE ** np.arange(max(levels - 1, 0), 0, -1), _R_EDGES])
    r, w = _cells(inner, n)
    wr = w * r * np.exp(-r * r / 2)
    return t, wt, r, wr


def _const(a: np.ndarray, dtype: jnp.dtype, ndim: int, axis: int) -> Array:
    """A 1-D rule as an array of rank ``ndim`` whose only non-unit axis is ``axis``."""
    shape = [1] * ndim
    shape[axis] = a.size
    return jnp.asarray(a.reshape(shape), dtype)


# ---------------------------------------------------------------------------- expectations


class _Rule(NamedTuple):
    """How one layer's expectations are taken (static, hashable): ``method`` is ``"closed"``,
    ``"mehler"`` (``points`` terms for σ, ``points_dot`` for σ̇), ``"polar"`` (``points`` nodes
    per cell, ``levels`` of grading; :func:`polar_nodes`) or ``"hermite"`` (``points`` nodes per
    dimension)."""

    method: str
    points: int = 0
    points_dot: int = 0
    levels: int = 0


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


def _polar(act: Activation, rule: _Rule, k11: Array, k12: Array, k22: Array) -> tuple[Array, Array]:
    r"""E[σ(u)σ(v)], E[σ̇(u)σ̇(v)] in polar coordinates, split at the kinks of σ at 0:

    .. math::

        E[g(u)h(v)] = \frac{1}{2π}\int_{π/2}^{5π/2}\!dφ \int_0^∞\! r e^{-r^2/2}
            g(\sqrt{k_{11}}\, r\cos φ)\, h(\sqrt{k_{22}}\, r \cos(φ - θ))\, dr,

    with φ on the arcs [π/2, π/2+θ], [π/2+θ, 3π/2], [3π/2, 3π/2+θ], [3π/2+θ, 5π/2], each
    with the nodes of :func:`polar_nodes` (``rule.points``, ``rule.levels``).
    """
    nd = k12.ndim
    dtype = k12.dtype
    t, wt, r, wr = polar_nodes(rule.points, levels=rule.levels)
    _, rho = correlation(k11, k12, k22)
    theta, _ = angle(rho)
    half = jnp.pi / 2
    start = jnp.stack([half + 0 * theta, half + theta, 3 * half + 0 * theta, 3 * half + theta], -1)
    length = jnp.stack([theta, jnp.pi - theta, theta, jnp.pi - theta], -1)
    phi = start[..., None] + length[..., None] * _const(t, dtype, nd + 2, nd + 1)
    w_phi = length[..., None] * _const(wt, dtype, nd + 2, nd + 1) / (2 * jnp.pi)
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


def polar_size(rule: _Rule) -> int:
    """Nodes of a polar rule per pair (4 arcs × nodes along an arc × radii)."""
    t, _, r, _ = polar_nodes(rule.points, levels=rule.levels)
    return 4 * t.size * r.size


class _Marginal(NamedTuple):
    """What a pairwise expectation needs of one input: its variance k and, for ``"mehler"``, the
    Hermite coefficients of σ and σ̇ at that variance (leading axis: the series index, so that
    each term of the series reads contiguous memory)."""

    k: Array
    c_sigma: Array | None = None
    c_dot: Array | None = None


Table = tuple[Array, Array]  # Gauss–Hermite nodes z_p and √w_p, as arrays


def _table(rule: _Rule, dtype: jnp.dtype) -> Table | None:
    """The Gauss–Hermite nodes a ``"mehler"`` rule needs: 1-D arrays of 2m + 64 entries at most,
    passed to the jitted code as arguments. The nodes × m table of Hermite functions is built
    inside the computation (:func:`_mehler_coefficients`), never as a constant: a baked 6000-term
    table (tens of MB) made ``jax.jit(ntk)`` with tanh compile for minutes."""
    if rule.method != "mehler":
        return None
    z, root = _hermite_nodes(max(_MEHLER_NODES, 2 * max(rule.points, rule.points_dot) + 64))
    return jnp.asarray(z, dtype), jnp.asarray(root, dtype)


def _mehler_coefficients(act: Activation, rule: _Rule, table: Table, k: Array) -> _Marginal:
    r"""c_j(k) = E[σ(√k z) He_j(z)]/√j! for j < ``rule.points`` and the same for σ̇, j <
    ``rule.points_dot``; shapes (m,) + k.shape.

    The table of Hermite functions :math:`h_j(z_p) = \sqrt{w_p} He_j(z_p)/\sqrt{j!}` (m ×
    nodes) is generated by the recurrence of :func:`hermite_functions` inside a ``lax.scan``,
    ``_HORNER_CHUNK`` rows per step (compile time independent of m), then contracted with
    :math:`\sqrt{w_p}\,σ(\sqrt{k} z_p)` in one GEMM.
    """
    z, root = table
    m = max(rule.points, rule.points_dot)
    chunks = -(-m // _HORNER_CHUNK)
    z_b, root_b = (a.reshape((1,) * k.ndim + a.shape) for a in (z, root))
    nodes = safe_sqrt(k)[..., None] * z_b
    values = jnp.stack([root_b * act.sigma(nodes), root_b * act.sigma_dot(nodes)])  # (2, ..., P)

    def chunk(carry: tuple[Array, Array], j0: Array) -> tuple[tuple[Array, Array], Array]:
        prev, cur = carry
        rows = []
        for i in range(_HORNER_CHUNK):
            rows.append(cur)
            prev, cur = cur, (z * cur - jnp.sqrt(j0 + i) * prev) / jnp.sqrt(j0 + i + 1.0)
        return (prev, cur), jnp.stack(rows)

    starts = jnp.arange(chunks, dtype=z.dtype) * _HORNER_CHUNK
    _, rows = jax.lax.scan(chunk, (jnp.zeros_like(z), root), starts)  # (chunks, chunk, P)
    # the table depends on the nodes only, so derivatives never run through the scan
    c = jnp.moveaxis(values @ rows.reshape(-1, z.size).T, -1, 0)  # (M, 2, ...)
    return _Marginal(k, c[: rule.points, 0], c[: rule.points_dot, 1])


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
    if rule.method == "hermite":
        return _hermite(act, rule.points, m1.k, k12, m2.k)
    return _polar(act, rule, m1.k, k12, m2.k)
