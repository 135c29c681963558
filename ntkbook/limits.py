r"""The infinite-width kernels Σ^(l), Σ̇^(l) and Θ∞^(l) of every layer (notes §3, §4, §7).

With L affine layers, inputs of dimension n_0, weight scale σ_w and bias scale β:

.. math::

    Σ^{(1)}(x, x') &= σ_w^2\, x^\top x' / n_0 + β^2, \\
    Σ^{(l+1)}(x, x') &= σ_w^2\, E_{f \sim N(0, Σ^{(l)})}[σ(f(x))\, σ(f(x'))] + β^2, \\
    \dot Σ^{(l+1)}(x, x') &= σ_w^2\, E_{f \sim N(0, Σ^{(l)})}[\dot σ(f(x))\, \dot σ(f(x'))], \\
    Θ^{(1)} &= Σ^{(1)}, \qquad Θ^{(l+1)} = Θ^{(l)} \dot Σ^{(l+1)} + Σ^{(l+1)}.

The output NTK of the network is Θ^{(L)} ⊗ Id_{n_L}; σ_w = 1 in the notes.

Each expectation is over a 2-D Gaussian (u, v) ~ N(0, [[k11, k12], [k12, k22]]). It is taken in
closed form where :mod:`ntkbook.activations` has one (ReLU, leaky ReLU, abs, erf, identity,
square), and otherwise by quadrature (:func:`expectation`):

- ``"mehler"`` (smooth σ, default): the Hermite (Mehler) series
  E[σ(u)σ(v)] = Σ_{j<m} c_j(k11) c_j(k22) ρ^j with c_j(k) = E[σ(√k z) He_j(z)]/√j!. The
  coefficients are 1-D integrals per *input* (200-node Gauss–Hermite, one matrix product), so
  each *pair* costs only m multiply-adds (Horner in ρ) instead of a 2-D rule's ~m² evaluations
  of σ. For tanh the truncation error at m = 64 is ≲ 1e-10 for variances k ≤ 1, 7e-8 at k = 2,
  6e-6 at k = 4 (worst case ρ = 1); raise ``points`` for larger variances.
- ``"hermite"`` (reference only): the tensor Gauss–Hermite rule of neural-tangents,
  u = √k11 z1, v = √k22 (ρ z1 + √(1−ρ²) z2), ``points`` nodes in each of z1 and z2.
- ``"polar"`` (σ kinked at 0): (z1, z2) = r(cos φ, sin φ), so u = √k11 r cos φ and
  v = √k22 r cos(φ − θ) with cos θ = ρ. The kinks lie at cos φ = 0 and cos(φ − θ) = 0, which
  cut the circle into four arcs; on each, Gauss–Legendre in φ, and in r the Gauss rule of weight
  r e^{−r²/2} on [0, ∞). The integrand is smooth on every cell, so the rule converges
  exponentially even for ReLU or abs (a tensor Gauss–Hermite rule converges only algebraically).

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
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from .activations import Activation, angle, correlation, get, safe_sqrt

Array = jax.Array
QUADRATURES: tuple[str, ...] = ("auto", "closed", "mehler", "polar", "hermite")
DEFAULT_POINTS = {"mehler": 64, "polar": 12, "hermite": 20}
_MEHLER_NODES = 200  # Gauss–Hermite nodes for the coefficients c_n(k), n < 64 by default
# Work per block (entries × quadrature nodes) that keeps temporaries to tens of MB.
_BLOCK_BUDGET = 1 << 22
_TILE_ENTRIES = 1 << 19
_FUSED_TILE_ENTRIES = 1 << 24
_UNROLL_DEPTH = 16  # deeper closed-form recursions use lax.scan over layers


class Kernels(NamedTuple):
    """Σ^(l), Σ̇^(l), Θ^(l) for l = 1 … L, stacked along axis 0 (index l − 1 holds layer l).

    Each field has shape (L, N1, N2), or (L, N) for ``diagonal=True``. Σ̇^(1) := 0, which keeps
    Θ^(1) = Θ^(0) Σ̇^(1) + Σ^(1) = Σ^(1) consistent with the recursion.
    """

    sigma: Array
    sigma_dot: Array
    theta: Array


# ---------------------------------------------------------------------------- quadrature rules


@functools.lru_cache(maxsize=32)
def hermite_rule(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the n-point Gauss rule for E_{z ~ N(0,1)}[g(z)] (weights sum to 1)."""
    z, w = np.polynomial.hermite_e.hermegauss(n)
    return z, w / math.sqrt(2 * math.pi)


@functools.lru_cache(maxsize=8)
def hermite_functions(m: int, n: int = _MEHLER_NODES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Nodes z_p, √w_p and the table √w_p He_j(z_p)/√j! (n × m) of normalised Hermite functions.

    Built by the stable recurrence h_{j+1} = (z h_j − √j h_{j−1})/√(j+1), so that
    c_j(k) = Σ_p √w_p σ(√k z_p) · table[p, j] = E[σ(√k z) He_j(z)]/√j! (a matrix product).
    """
    z, w = hermite_rule(max(n, 2 * m))
    root = np.sqrt(w)
    table = np.zeros((z.size, m))
    table[:, 0] = root
    if m > 1:
        table[:, 1] = z * root
    for j in range(1, m - 1):
        table[:, j + 1] = (z * table[:, j] - math.sqrt(j) * table[:, j - 1]) / math.sqrt(j + 1)
    return z, root, table


@functools.lru_cache(maxsize=32)
def legendre_rule(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes and weights on [−1, 1]."""
    return np.polynomial.legendre.leggauss(n)


@functools.lru_cache(maxsize=32)
def radial_rule(n: int) -> tuple[np.ndarray, np.ndarray]:
    r"""The n-point Gauss rule for ∫_0^∞ g(r) r e^{−r²/2} dr (weights sum to 1).

    Built in float64 by the discretised Stieltjes procedure (orthonormal three-term recurrence
    of the weight, sampled by 1000-point Gauss–Legendre on [0, 16], beyond which the weight is
    below e^{−128}) and the Golub–Welsch eigenvalue method.
    """
    t, wt = np.polynomial.legendre.leggauss(1000)
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
    jacobi = np.diag(alpha) + np.diag(np.sqrt(beta[1:]), 1) + np.diag(np.sqrt(beta[1:]), -1)
    nodes, vectors = np.linalg.eigh(jacobi)
    return nodes, mass.sum() * vectors[0] ** 2


def _const(a: np.ndarray, dtype: jnp.dtype, ndim: int, axis: int) -> Array:
    """A 1-D rule as an array of rank ``ndim`` whose only non-unit axis is ``axis``."""
    shape = [1] * ndim
    shape[axis] = a.size
    return jnp.asarray(a.reshape(shape), dtype)


# ---------------------------------------------------------------------------- expectations


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


def _resolve(act: Activation, quadrature: str) -> str:
    """The method ``"auto"`` stands for: closed form if any, else polar (kinked) or mehler."""
    if quadrature != "auto":
        return quadrature
    if act.expectation is not None:
        return "closed"
    return "polar" if act.kinked else "mehler"


class _Marginal(NamedTuple):
    """What a pairwise expectation needs of one input: its variance k and, for ``"mehler"``, the
    Hermite coefficients of σ and σ̇ at that variance (leading axis: the series index, so that
    each term of the series reads contiguous memory)."""

    k: Array
    c_sigma: Array | None = None
    c_dot: Array | None = None


def _mehler_coefficients(act: Activation, m: int, k: Array) -> tuple[Array, Array]:
    r"""c_j(k) = E[σ(√k z) He_j(z)]/√j! and the same for σ̇, j < m; shape (m,) + k.shape."""
    z, root, table = hermite_functions(m)
    nodes = safe_sqrt(k)[..., None] * _const(z, k.dtype, k.ndim + 1, k.ndim)
    weight = _const(root, k.dtype, k.ndim + 1, k.ndim)
    tab = jnp.asarray(table, k.dtype)
    return tuple(jnp.moveaxis((weight * f(nodes)) @ tab, -1, 0) for f in (act.sigma, act.sigma_dot))


def _marginal(act: Activation, method: str, points: int, k: Array) -> _Marginal:
    """Per-input data for :func:`_pair` (computed once per input and layer, not per pair)."""
    if method == "mehler":
        return _Marginal(k, *_mehler_coefficients(act, points, k))
    return _Marginal(k)


def _mehler(m1: _Marginal, k12: Array, m2: _Marginal) -> tuple[Array, Array]:
    r"""The Mehler (Hermite) series, summed by Horner's rule in ρ:

    .. math::

        E[σ(u)σ(v)] = \sum_{j<m} c_j(k_{11})\, c_j(k_{22})\, ρ^j, \qquad
        c_j(k) = E[σ(\sqrt{k} z) He_j(z)] / \sqrt{j!},

    and likewise for σ̇. The error is the tail Σ_{j≥m} |c_j c_j ρ^j| ≤ the tail at ρ = 1,
    which decays like exp(−c√j) for σ analytic in a strip (tanh) and faster for entire σ.
    """
    _, rho = correlation(m1.k, k12, m2.k)
    m = m1.c_sigma.shape[0]  # type: ignore[union-attr]
    e_ss = jnp.zeros_like(rho)
    e_dd = jnp.zeros_like(rho)
    for j in range(m - 1, -1, -1):
        e_ss = e_ss * rho + m1.c_sigma[j] * m2.c_sigma[j]  # type: ignore[index]
        e_dd = e_dd * rho + m1.c_dot[j] * m2.c_dot[j]  # type: ignore[index]
    return e_ss, e_dd


def _pair(
    act: Activation, method: str, points: int, m1: _Marginal, k12: Array, m2: _Marginal
) -> tuple[Array, Array]:
    """Dispatch to the closed form, the Mehler series or a quadrature (arrays of equal rank)."""
    if method == "closed":
        return act.expectation(m1.k, k12, m2.k)  # type: ignore[misc]
    if method == "mehler":
        return _mehler(m1, k12, m2)
    rule = _hermite if method == "hermite" else _polar
    return rule(act, points, m1.k, k12, m2.k)


def _expect(
    act: Activation, method: str, points: int, k11: Array, k12: Array, k22: Array
) -> tuple[Array, Array]:
    """Expectations for arrays of equal rank (no validation)."""
    m1 = _marginal(act, method, points, k11)
    m2 = _marginal(act, method, points, k22)
    return _pair(act, method, points, m1, k12, m2)


def _method_points(act: Activation, quadrature: str, points: int | None) -> tuple[str, int]:
    """Validate ``quadrature`` and ``points`` for ``act``; return the concrete method and points."""
    method = _resolve(act, _checks.choice("quadrature", quadrature, QUADRATURES))
    if method == "closed" and act.expectation is None:
        raise ValueError(f"quadrature: activation {act.name!r} has no closed form")
    if points is None:
        return method, DEFAULT_POINTS.get(method, 0)
    return method, _checks.positive_int("points", points, minimum=2)


def expectation(
    k11: Array,
    k12: Array,
    k22: Array,
    *,
    activation: str | Callable[[Array], Array] | Activation = "relu",
    quadrature: str = "auto",
    points: int | None = None,
) -> tuple[Array, Array]:
    r"""Gaussian expectations (E[σ(u)σ(v)], E[σ̇(u)σ̇(v)]), (u, v) ~ N(0, [[k11, k12], [k12, k22]]).

    Args:
        k11, k12, k22: broadcastable arrays with k11, k22 ≥ 0 and k12² ≤ k11 k22.
        activation: a name, a JAX function or an :class:`~ntkbook.activations.Activation`.
        quadrature: ``"auto"`` (closed form if known, else ``"polar"`` for kinked σ and
            ``"mehler"`` for smooth σ), ``"closed"``, ``"mehler"``, ``"polar"`` or
            ``"hermite"`` (see the module docstring).
        points: series terms for mehler (default 64); nodes per dimension for polar (default
            12: 4·12·12 nodes) and hermite (default 20).

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
    return _expect(act, method, n, k11, k12, k22)


# ---------------------------------------------------------------------------- recursions


class _Config(NamedTuple):
    """Static (hashable) description of one kernel computation."""

    depth: int
    activation: Activation
    method: str
    points: int


Layer = tuple[Array, Array, Array]  # (Σ, Σ̇, Θ) of one layer
# What to return: the last Σ ("nngp"), the last Θ ("ntk"), or layers by 0-based index (sorted).
Which = str | tuple[int, ...]
_LAST = {"nngp": 0, "ntk": 2}  # position in a Layer


def _step(
    cfg: _Config, sigma_w: Array, beta: Array, m1: _Marginal, m2: _Marginal, prev: Layer
) -> Layer:
    """One layer: (Σ^(l), Θ^(l)) and the marginals of layer l ↦ (Σ^(l+1), Σ̇^(l+1), Θ^(l+1))."""
    e_ss, e_dd = _pair(cfg.activation, cfg.method, cfg.points, m1, prev[0], m2)
    sw2 = sigma_w * sigma_w
    sigma = sw2 * e_ss + beta * beta
    sigma_dot = sw2 * e_dd
    return sigma, sigma_dot, prev[2] * sigma_dot + sigma


def _first(sigma_w: Array, beta: Array, gram: Array, n0: int) -> Layer:
    """Layer 1: Σ^(1) = Θ^(1) = σ_w² xᵀx′ / n_0 + β², Σ̇^(1) = 0, from a Gram matrix."""
    k = sigma_w * sigma_w * gram / n0 + beta * beta
    return k, jnp.zeros_like(k), k


def _self_diagonal(
    cfg: _Config, sigma_w: Array, beta: Array, x: Array
) -> tuple[Kernels, _Marginal]:
    """Every layer at (x_i, x_i), stacked (L, N), and the marginals of layers 1 … L − 1
    stacked along a leading axis (``lax.scan`` over layers: compile time independent of L)."""
    first = _first(sigma_w, beta, jnp.sum(x * x, axis=1), x.shape[1])

    def body(prev: Layer, _: None) -> tuple[Layer, tuple[Layer, _Marginal]]:
        m = _marginal(cfg.activation, cfg.method, cfg.points, prev[0])
        new = _step(cfg, sigma_w, beta, m, m, prev)
        return new, (new, m)

    _, (rest, marginals) = jax.lax.scan(body, first, None, length=cfg.depth - 1)
    stacked = Kernels(*(jnp.concatenate([f[None], r]) for f, r in zip(first, rest, strict=True)))
    return stacked, marginals


def _unrolled(cfg: _Config) -> bool:
    """Whether the layers are unrolled in Python: closed forms up to depth ``_UNROLL_DEPTH``.

    Unrolled, everything after the Gram matrix is elementwise, so XLA fuses all layers into one
    pass that reads the Gram tile once and writes the result once. A ``lax.scan`` carries Σ, Σ̇,
    Θ between layers as (N1, N2) arrays, three memory passes per layer (measured 2.5× slower at
    N = 4000). Deep networks keep the scan (compile time independent of L); the Mehler series
    keeps it too (measured faster: its 64-term Horner sum per layer is compute-bound).
    """
    return cfg.method == "closed" and cfg.depth <= _UNROLL_DEPTH


def _cross(
    cfg: _Config,
    sigma_w: Array,
    beta: Array,
    first: Layer,
    m1: _Marginal,
    m2: _Marginal,
    which: Which,
) -> Kernels | Array:
    """Layers 1 … L from layer 1 and the stacked marginals of both inputs (broadcast against
    it); the last Σ (``"nngp"``) or Θ (``"ntk"``), or the layers listed in ``which``."""
    if _unrolled(cfg):
        layers = [first]
        for ell in range(cfg.depth - 1):
            ms = jax.tree.map(lambda a, ell=ell: a[ell], (m1, m2))
            layers.append(_step(cfg, sigma_w, beta, ms[0], ms[1], layers[-1]))
        if isinstance(which, tuple):
            return Kernels(*(jnp.stack([layers[i][f] for i in which]) for f in range(3)))
        return layers[-1][_LAST[which]]
    keep = isinstance(which, tuple)

    def body(prev: Layer, ms: tuple[_Marginal, _Marginal]) -> tuple[Layer, Layer | None]:
        new = _step(cfg, sigma_w, beta, ms[0], ms[1], prev)
        return new, (new if keep else None)

    last, rest = jax.lax.scan(body, first, (m1, m2))
    if not keep:
        return last[_LAST[which]]
    stacked = (jnp.concatenate([f[None], r]) for f, r in zip(first, rest, strict=True))
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
    own, m1 = _self_diagonal(cfg, sigma_w, beta, x1)  # (L, N1) and leaves (L − 1, N1, ...)
    m2 = _as_columns(_self_diagonal(cfg, sigma_w, beta, x2)[1])

    def block(xb: Array, mb: _Marginal) -> Kernels | Array:
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
    x1: Array, x2: Array | None, sigma_w: Array, beta: Array, *, cfg: _Config, which: Which
) -> Kernels | Array:
    """k(x1_i, x1_i) — or k(x1_i, x2_i) when ``x2`` is given — for every layer."""
    own, m1 = _self_diagonal(cfg, sigma_w, beta, x1)
    if x2 is None:
        return _pick(own, which)
    m2 = _self_diagonal(cfg, sigma_w, beta, x2)[1]
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
    elif cfg.method in ("closed", "mehler"):
        rows = _TILE_ENTRIES // max(1, n2)
    else:
        nodes = cfg.points if cfg.method == "hermite" else 4 * cfg.points
        rows = _BLOCK_BUDGET // max(1, n2 * nodes)
    return max(1, min(n1, rows))


def _compute(
    x1: object,
    x2: object,
    *,
    depth: int,
    activation: str | Callable[[Array], Array] | Activation,
    beta: float,
    sigma_w: float,
    diagonal: bool,
    quadrature: str,
    points: int | None,
    block_size: int | None,
    dtype: object,
    which: str,
    layers: Sequence[int] | None = None,
) -> Kernels | Array:
    """Validate the public arguments, then run the jitted computation (``which``: "nngp", "ntk"
    or "kernels", the last with the notes' layer numbers ``layers``)."""
    x1 = _checks.matrix("x1", x1)
    if x2 is not None:
        x2 = _checks.matrix("x2", x2, n_features=x1.shape[1])
    cfg_depth = _checks.positive_int("depth", depth)
    if which == "kernels":
        which = _layer_indices(layers, cfg_depth)
    act = get(activation)
    beta_v = _checks.nonnegative("beta", beta)
    sigma_w_v = _checks.positive("sigma_w", sigma_w)
    method, n = _method_points(act, quadrature, points)
    dt = (
        jnp.result_type(*(x for x in (x1, x2) if x is not None))
        if dtype is None
        else _checks.float_dtype("dtype", dtype)
    )
    cfg = _Config(cfg_depth, act, method, n)
    x1 = x1.astype(dt)
    x2 = None if x2 is None else x2.astype(dt)
    sw, b = jnp.asarray(sigma_w_v, dt), jnp.asarray(beta_v, dt)
    if diagonal:
        if x2 is not None and x2.shape[0] != x1.shape[0]:
            raise ValueError(
                f"x2: diagonal=True pairs rows of x1 and x2, so both need N rows; got "
                f"{x1.shape[0]} and {x2.shape[0]}"
            )
        return _diagonal(x1, x2, sw, b, cfg=cfg, which=which)
    symmetric = x2 is None
    x2 = x1 if x2 is None else x2
    if block_size is None:
        rows = _auto_block(x1.shape[0], x2.shape[0], cfg)
    else:
        rows = min(_checks.positive_int("block_size", block_size), x1.shape[0])
    return _full(x1, x2, sw, b, cfg=cfg, which=which, block_size=rows, symmetric=symmetric)


def kernels(
    x1: Array,
    x2: Array | None = None,
    *,
    depth: int,
    activation: str | Callable[[Array], Array] | Activation = "relu",
    beta: float = 0.0,
    sigma_w: float = 1.0,
    diagonal: bool = False,
    quadrature: str = "auto",
    points: int | None = None,
    block_size: int | None = None,
    dtype: object = None,
    layers: Sequence[int] | None = None,
) -> Kernels:
    r"""Σ^(l), Σ̇^(l), Θ∞^(l) for l = 1 … L (the recursion in the module docstring).

    Args:
        x1: inputs (N1, n_0), finite.
        x2: inputs (N2, n_0); default ``x1``.
        depth: L ≥ 1, the number of affine layers.
        activation: a name, a JAX function (σ̇ by autodiff; pass an
            :class:`~ntkbook.activations.Activation` with ``kinked=True`` for σ kinked at 0),
            or an ``Activation``.
        beta: β ≥ 0, the bias scale.
        sigma_w: σ_w > 0, the weight scale (W ~ N(0, σ_w²); √2 is He initialisation for ReLU).
        diagonal: only k(x1_i, x1_i) (or k(x1_i, x2_i) if ``x2`` has as many rows), shape (L, N).
        quadrature: ``"auto"``, ``"closed"``, ``"mehler"``, ``"polar"`` or ``"hermite"`` (see
            :func:`expectation`).
        points: Mehler terms (default 64) or quadrature nodes per dimension (see
            :func:`expectation`).
        block_size: rows of ``x1`` per block (default: chosen to bound temporaries).
        dtype: compute dtype (default: that of the inputs).
        layers: the layers l to return, numbered 1 … L as in the notes (−1 is L, −2 is L − 1,
            …); default all. ``layers=[-1]`` gives Σ^(L), Σ̇^(L) and Θ^(L) from one Gram
            matrix, at the memory of three matrices instead of 3L. (:func:`ntk` alone is
            fastest: one output lets XLA fuse all layers into one pass.)

    Returns:
        :class:`Kernels`, each field (L, N1, N2) (or (L, N)); index l − 1 is layer l; Σ̇^(1) = 0.
        With ``layers``, the leading axis holds the requested layers in increasing order.

    Raises:
        ValueError: naming the argument (shapes, NaN/inf, depth < 1, β < 0, σ_w ≤ 0, unknown
            activation or quadrature, a layer outside 1 … L).

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
        >>> k = kernels(x, depth=2)  # one hidden ReLU layer: Σ^(2) = |x|²/(2 n_0) on the diagonal
        >>> round(float(k.sigma[1, 0, 0]), 6), round(float(k.theta[1, 0, 0]), 6)
        (0.25, 0.5)
    """
    return _compute(
        x1, x2, depth=depth, activation=activation, beta=beta, sigma_w=sigma_w,
        diagonal=diagonal, quadrature=quadrature, points=points, block_size=block_size,
        dtype=dtype, which="kernels", layers=layers,
    )  # fmt: skip


def nngp(x1: Array, x2: Array | None = None, *, depth: int, **options: object) -> Array:
    """Σ^(L), the NNGP kernel of the output (N1, N2) (or (N,) with ``diagonal=True``).

    Same arguments as :func:`kernels`; only the last layer is kept, so memory is one matrix.
    """
    return _compute(x1, x2, depth=depth, **_defaults(options), which="nngp")


def ntk(x1: Array, x2: Array | None = None, *, depth: int, **options: object) -> Array:
    """Θ∞^(L), the limiting NTK of the output (N1, N2) (or (N,) with ``diagonal=True``).

    Same arguments as :func:`kernels`; only the last layer is kept, so memory is one matrix.

    Example:
        >>> import jax.numpy as jnp
        >>> round(float(ntk(jnp.ones((1, 4)), depth=2)[0, 0]), 6)  # Θ = Σ¹ Σ̇² + Σ² = 1/2 + 1/2
        1.0
    """
    return _compute(x1, x2, depth=depth, **_defaults(options), which="ntk")


def standard_ntk(
    x1: Array, x2: Array | None = None, *, widths: Sequence[int], **options: object
) -> Array:
    r"""The NTK of a wide network in the *standard* parametrisation, from the limits' statistics.

    The forward statistics are those of the NTK parametrisation (same function distribution),
    but a weight W^{(l)} has no 1/√n_l in front, so its n_l·n_{l+1} entries count n_l times
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
        **options: as in :func:`kernels` (``activation``, ``beta``, ``sigma_w``, ``diagonal``, …).

    Returns:
        (N1, N2), or (N,) with ``diagonal=True``.
    """
    widths = _checks.widths(widths)
    opts = _defaults(options)
    k = _compute(x1, x2, depth=len(widths) - 1, **opts, which="kernels")
    sw2, b2 = float(opts["sigma_w"]) ** 2, float(opts["beta"]) ** 2  # type: ignore[arg-type]
    total = jnp.zeros_like(k.theta[0])
    for ell, fan_in in enumerate(widths[:-1]):
        after = jnp.prod(k.sigma_dot[ell + 1 :], axis=0)  # Π_{m ≥ l+2} Σ̇^(m); 1 if empty
        total = total + (fan_in * (k.sigma[ell] - b2) / sw2 + 1.0) * after
    return total


_OPTIONS = {
    "activation": "relu",
    "beta": 0.0,
    "sigma_w": 1.0,
    "diagonal": False,
    "quadrature": "auto",
    "points": None,
    "block_size": None,
    "dtype": None,
}


def _defaults(options: dict[str, object]) -> dict[str, object]:
    """Fill in :func:`kernels`' defaults; an unknown option is a ``ValueError`` naming it."""
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown option; known: {', '.join(_OPTIONS)}")
    return {**_OPTIONS, **options}


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

        \operatorname{rank}_\tau K = \#\{i : \lambda_i(K) > \tau\}, \qquad
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
            P_k^{(d)}(\cos\gamma)\, \sin^{d-2}\gamma \, d\gamma, \qquad
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
        ValueError: naming ``dim``, ``max_degree``, ``kernel`` or ``nodes``, or an option.
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
    opts = {**_defaults(options), "dtype": jnp.float64}
    kappa = np.asarray(fn(jnp.asarray(x0), jnp.asarray(xg), depth=depth, **opts), float)[0]
    const = math.gamma(d / 2) / (math.sqrt(math.pi) * math.gamma((d - 1) / 2))
    p = _gegenbauer_normalised(d, k_max, np.cos(gamma))
    mu = const * (p * (kappa * np.sin(gamma) ** (d - 2) * w)[None, :]).sum(axis=1)
    degrees = np.arange(k_max + 1)
    mult = np.array([harmonic_dimension(d, int(k)) for k in degrees])
    return ZonalSpectrum(degrees, mu, mult)
