r"""Exact Gaussian expectations for piecewise-linear activations (kinks anywhere).

A continuous piecewise-linear σ with kinks :math:`t_1 < \dots < t_K` is

.. math:: σ(z) = c + a z + \sum_k s_k \operatorname{relu}(z - t_k), \qquad
    \dot σ(z) = a + \sum_k s_k \mathbb{1}[z > t_k],

(:class:`Pieces`; :math:`s_k` is the jump of the slope at :math:`t_k`). For
:math:`(u, v) \sim N\big(0, \big[\begin{smallmatrix} k_{11} & k_{12} \\ k_{12} & k_{22}
\end{smallmatrix}\big]\big)`, :math:`d_i = \sqrt{k_{ii}}`, :math:`ρ = k_{12}/(d_1 d_2)`,
standardised thresholds :math:`h = t/d_1`, :math:`k = t'/d_2` and (X, Y) standard with
correlation ρ:

.. math::

    \begin{aligned}
    L(h, k; ρ) &= P(X > h, Y > k), \\
    R(h, k; ρ) &= E[(X - h)_+ (Y - k)_+]
        = (ρ + hk) L - k φ(h) A - h φ(k) B + \sqrt{1-ρ^2}\, φ(h)\, φ(α), \\
    A &= Q(α),\ α = \tfrac{k - ρh}{\sqrt{1-ρ^2}}, \qquad
    B = Q\big(\tfrac{h - ρk}{\sqrt{1-ρ^2}}\big),
    \end{aligned}

(Q = 1 − Φ; R from the truncated bivariate-normal moments of Rosenbaum 1961), so that
:math:`E[\operatorname{relu}(u - t)\operatorname{relu}(v - t')] = d_1 d_2 R`,
:math:`E[u \operatorname{relu}(v - t')] = k_{12} Q(k)` (Stein's lemma) and
:math:`P(u > t, v > t') = L`. Summing over pairs of kinks gives
:math:`E[σ(u)σ(v)]` and :math:`E[\dot σ(u) \dot σ(v)]` exactly (:func:`expectation`).

L is the bivariate normal upper orthant probability of Genz (2004), after Drezner &
Wesolowsky (1990): Gauss–Legendre over the correlation (20 nodes), with the high-correlation
expansion for :math:`|ρ| ≥ 0.925`; absolute error ≈ 1e-15 in float64. Only arithmetic and
``jnp.where``, so it runs under ``jit``, ``vmap`` and ``grad``.

**Derivatives.** L and R have custom JVPs with the exact partial derivatives

.. math::

    \partial_ρ L = φ_2(h, k; ρ), \quad \partial_h L = -φ(h) A, \quad
    \partial_ρ R = L, \quad \partial_h R = -(φ(k) B + ρ φ(h) A - k L)

(and h ↔ k), so first and second derivatives never pass through the quadrature.
At ρ = ±1 exactly (inputs x = ±x′, where :math:`\dot Σ` has a cone-shaped kink), A and B
are the one-sided step values (½ where the two thresholds coincide) and
:math:`\partial_ρ L := 0`: the value is the limit ρ → ±1, its ρ-derivative the symmetric
subgradient 0. Zero variances (x = 0 with β = 0) use u ≡ 0 exactly. No NaN anywhere.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special

Array = jax.Array
_X, _W = special.roots_legendre(20)
_X = tuple(float(v) for v in _X)
_W = tuple(float(v) for v in _W)
_HIGH = 0.925  # |ρ| from which the high-correlation expansion of Genz is used
_SNAP_ULPS = 8  # |ρ| this close to 1 counts as ±1 (as in activations.angle)
_FIT_RTOL = 1e-12  # how closely σ must match its piecewise-linear fit (relative to its scale)


class Pieces(NamedTuple):
    r"""σ(z) = c + a z + Σ_k s_k relu(z − t_k) (static, hashable: a cache key for ``jit``)."""

    c: float
    a: float
    kinks: tuple[float, ...]
    jumps: tuple[float, ...]


def sigma(p: Pieces, z: Array) -> Array:
    """σ(z) of the pieces, elementwise."""
    out = p.c + p.a * z
    for t, s in zip(p.kinks, p.jumps, strict=True):
        out = out + s * jax.nn.relu(z - t)
    return out


def sigma_dot(p: Pieces, z: Array) -> Array:
    r""":math:`\dot σ(z) = a + \sum_k s_k 1[z > t_k]` (right-continuous at no kink: the value
    at a kink is the left slope, as ``jax.grad`` of relu gives 0 at 0)."""
    z = jnp.asarray(z)
    out = jnp.full(z.shape, p.a, jnp.result_type(z, float))
    for t, s in zip(p.kinks, p.jumps, strict=True):
        out = out + s * (z > t)
    return out


def fit(fn: Callable[[Array], Array], *, kinks: Sequence[float]) -> Pieces | None:
    r"""The :class:`Pieces` of ``fn`` if it is continuous and linear between the ``kinks``,
    else ``None``.

    The slopes are read off by differences of ``fn`` (float64, on the host) across each
    interval, and the fit is accepted if it reproduces ``fn`` at 9 points per interval to
    ``_FIT_RTOL`` of the scale of σ (far above float64 rounding, far below any curvature that
    matters).
    """
    ts = sorted(float(t) for t in kinks)
    span = max([1.0, *(abs(t) for t in ts)])
    edges = [ts[0] - span, *ts, ts[-1] + span] if ts else [-span, span]
    intervals = list(zip(edges[:-1], edges[1:], strict=True))
    probes = np.concatenate([np.linspace(lo, hi, 11)[1:-1] for lo, hi in intervals])
    with jax.ensure_compile_time_eval(), jax.enable_x64(True):
        at = functools.partial(_host, fn)
        slopes = [(at(hi) - at(lo)) / (hi - lo) for lo, hi in intervals]
        want = np.asarray([at(z) for z in probes])
        c = at(edges[0]) - slopes[0] * edges[0]
    jumps = tuple(float(b - a) for a, b in zip(slopes[:-1], slopes[1:], strict=True))
    pieces = Pieces(float(c), float(slopes[0]), tuple(ts), jumps)
    got = c + slopes[0] * probes
    for t, s in zip(ts, jumps, strict=True):
        got = got + s * np.maximum(probes - t, 0.0)
    scale = max(1.0, float(np.max(np.abs(want))))
    if not np.all(np.isfinite(want)) or np.max(np.abs(got - want)) > _FIT_RTOL * scale * span:
        return None
    return pieces


def _host(fn: Callable[[Array], Array], z: float) -> float:
    """``fn`` at one float64 point, as a Python float."""
    return float(np.asarray(fn(jnp.asarray(z, jnp.float64))))


# ---------------------------------------------------------------------------- Φ₂ and moments


def _q(z: Array) -> Array:
    """Q(z) = 1 − Φ(z) = erfc(z/√2)/2, accurate in both tails."""
    return 0.5 * jax.scipy.special.erfc(z / math.sqrt(2.0))


def _phi(z: Array) -> Array:
    return jnp.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


def _safe(cond: Array, x: Array, fill: float = 1.0) -> Array:
    """``x`` where ``cond``, else ``fill``: the inner half of the double-where trick."""
    return jnp.where(cond, x, fill)


def _conditional(h: Array, k: Array, rho: Array) -> tuple[Array, Array, Array, Array]:
    r"""A = Q((k − ρh)/s), B = Q((h − ρk)/s), s = √(1 − ρ²), and φ(α)/s, α = (k − ρh)/s (the
    density factor); at s = 0 the step limits of A and B (½ on the tie) and 0."""
    s2 = (1.0 - rho) * (1.0 + rho)
    inside = s2 > 0
    s = jnp.sqrt(_safe(inside, s2))
    num_a, num_b = k - rho * h, h - rho * k

    def step(num: Array) -> Array:
        return jnp.where(num < 0, 1.0, jnp.where(num > 0, 0.0, 0.5))

    alpha = num_a / s
    a = jnp.where(inside, _q(alpha), step(num_a))
    b = jnp.where(inside, _q(num_b / s), step(num_b))
    density = jnp.where(inside, _phi(alpha) / s, 0.0)
    return a, b, jnp.where(inside, s, 0.0), density


def _genz(h: Array, k: Array, rho: Array) -> Array:
    """P(X > h, Y > k) by Genz's BVNU (both branches evaluated, one selected per entry)."""
    hk = h * k
    # |ρ| < 0.925: Φ₂ = Q(h)Q(k) + (1/2π) ∫_0^{asin ρ} exp(−(h² + k² − 2hk sin θ)/(2cos² θ)) dθ
    r_low = jnp.where(jnp.abs(rho) < _HIGH, rho, 0.0)
    half = 0.5 * jnp.arcsin(r_low)
    hs = 0.5 * (h * h + k * k)
    lead = (1,) * h.ndim  # a trailing node axis (a small graph), at equal rank
    x, w = (jnp.asarray(v, h.dtype).reshape(*lead, -1) for v in (_X, _W))
    sn = jnp.sin(half[..., None] * (1.0 + x))
    low = jnp.sum(w * jnp.exp((sn * hk[..., None] - hs[..., None]) / (1.0 - sn * sn)), axis=-1)
    low = low * half / (2.0 * jnp.pi) + _q(h) * _q(k)
    # |ρ| ≥ 0.925: Genz's expansion about |ρ| = 1 in √(1 − ρ²)
    neg = rho < 0
    kk = jnp.where(neg, -k, k)
    hk2 = jnp.where(neg, -hk, hk)
    as_ = (1.0 - jnp.abs(rho)) * (1.0 + jnp.abs(rho))
    usable = (as_ > 0) & (jnp.abs(rho) >= _HIGH)
    as_ = _safe(usable, as_, 0.1)
    a = jnp.sqrt(as_)
    bs = (h - kk) ** 2
    c = (4.0 - hk2) / 8.0
    d = (12.0 - hk2) / 16.0
    asr = -(bs / as_ + hk2) / 2.0
    high = jnp.where(
        asr > -100.0,
        a
        * jnp.exp(jnp.maximum(asr, -100.0))
        * (1.0 - c * (bs - as_) * (1.0 - d * bs / 5.0) / 3.0 + c * d * as_ * as_ / 5.0),
        0.0,
    )
    b = jnp.sqrt(bs)
    sp = math.sqrt(2.0 * math.pi) * _q(b / a)
    high = high - jnp.where(
        hk2 > -100.0,
        jnp.exp(-jnp.maximum(hk2, -100.0) / 2.0)
        * sp
        * b
        * (1.0 - c * bs * (1.0 - d * bs / 5.0) / 3.0),
        0.0,
    )
    xs = (0.5 * a[..., None] * (1.0 + x)) ** 2
    rs = jnp.sqrt(1.0 - xs)
    bs_, hk_, c_, d_ = (v[..., None] for v in (bs, hk2, c, d))
    e = -(bs_ / xs + hk_) / 2.0
    term = jnp.exp(jnp.maximum(e, -200.0)) * (
        jnp.exp(-hk_ * xs / (2.0 * (1.0 + rs) ** 2)) / rs - (1.0 + c_ * xs * (1.0 + d_ * xs))
    )
    high = high + 0.5 * a * jnp.sum(w * jnp.where(e > -100.0, term, 0.0), axis=-1)
    high = jnp.where(usable, -high / (2.0 * jnp.pi), 0.0)
    top = _q(jnp.maximum(h, kk))
    band = jnp.maximum(_q(h) - _q(kk), 0.0)  # P(h < X < −k) = P(X > h, Y > k) at ρ = −1
    high = jnp.where(neg, band - high, high + top)
    return jnp.clip(jnp.where(jnp.abs(rho) < _HIGH, low, high), 0.0, 1.0)


@jax.custom_jvp
def orthant(h: Array, k: Array, rho: Array) -> Array:
    r"""L(h, k; ρ) = P(X > h, Y > k) for standard (X, Y) with correlation ρ ∈ [−1, 1]."""
    return _genz(h, k, rho)


@orthant.defjvp
def _orthant_jvp(primals: tuple[Array, ...], tangents: tuple[Array, ...]) -> tuple[Array, Array]:
    h, k, rho = primals
    dh, dk, drho = tangents
    a, b, _, density = _conditional(h, k, rho)
    out = orthant(h, k, rho)
    return out, -_phi(h) * a * dh - _phi(k) * b * dk + _phi(h) * density * drho


@jax.custom_jvp
def ramp_moment(h: Array, k: Array, rho: Array) -> Array:
    r"""R(h, k; ρ) = E[(X − h)₊ (Y − k)₊] for standard (X, Y) with correlation ρ."""
    a, b, s, density = _conditional(h, k, rho)
    return (
        (rho + h * k) * orthant(h, k, rho)
        - k * _phi(h) * a
        - h * _phi(k) * b
        + s * s * _phi(h) * density
    )


@ramp_moment.defjvp
def _ramp_jvp(primals: tuple[Array, ...], tangents: tuple[Array, ...]) -> tuple[Array, Array]:
    h, k, rho = primals
    dh, dk, drho = tangents
    a, b, _, _ = _conditional(h, k, rho)
    big_l = orthant(h, k, rho)
    d_h = -(_phi(k) * b + rho * _phi(h) * a - k * big_l)
    d_k = -(_phi(h) * a + rho * _phi(k) * b - h * big_l)
    return ramp_moment(h, k, rho), d_h * dh + d_k * dk + big_l * drho


# ---------------------------------------------------------------------------- expectations


def _ramp_mean(d: Array, t: Array) -> Array:
    """E[relu(d z − t)] = d φ(t/d) − t Q(t/d), z ~ N(0, 1); relu(−t) where d = 0."""
    pos = d > 0
    ds = _safe(pos, d)
    return jnp.where(pos, ds * _phi(t / ds) - t * _q(t / ds), jnp.maximum(-t, 0.0))


def _tail(d: Array, t: Array) -> Array:
    """P(d z > t) = Q(t/d); 1[0 > t] where d = 0."""
    pos = d > 0
    return jnp.where(pos, _q(t / _safe(pos, d)), (t < 0).astype(d.dtype))


def expectation(p: Pieces, k11: Array, k12: Array, k22: Array) -> tuple[Array, Array]:
    r""":math:`(E[σ(u)σ(v)], E[\dot σ(u)\dot σ(v)])` for the pieces p (module docstring),
    elementwise over broadcastable arrays; exact up to the ≈ 1e-15 of Φ₂.

    .. math::

        \begin{aligned}
        E[σσ] &= c^2 + c \sum_k s_k (m_{1k} + m_{2k}) + a^2 k_{12}
            + a k_{12} \sum_k s_k (Q_{1k} + Q_{2k}) + d_1 d_2 \sum_{k,l} s_k s_l R_{kl}, \\
        E[\dot σ \dot σ] &= a^2 + a \sum_k s_k (Q_{1k} + Q_{2k}) + \sum_{k,l} s_k s_l L_{kl},
        \end{aligned}

    with :math:`m_{ik} = E[\operatorname{relu}(u_i - t_k)]`, :math:`Q_{ik} = P(u_i > t_k)`.
    The kinks and the pairs of kinks run along a trailing axis (one small graph, whatever K).
    """
    k11, k12, k22 = jnp.broadcast_arrays(
        *(jnp.asarray(x, jnp.result_type(x, float)) for x in (k11, k12, k22))
    )
    dt = k12.dtype
    pos1, pos2 = k11 > 0, k22 > 0
    both = pos1 & pos2
    d1 = jnp.where(pos1, jnp.sqrt(_safe(pos1, k11)), 0.0)
    d2 = jnp.where(pos2, jnp.sqrt(_safe(pos2, k22)), 0.0)
    d1s, d2s = _safe(both, d1), _safe(both, d2)
    rho = jnp.clip(jnp.where(both, k12 / (d1s * d2s), 0.0), -1.0, 1.0)
    # ρ within a few ulps of ±1 is ±1 up to rounding (x = x′ from a Gram matrix), as in
    # activations.angle: the ρ-derivative there is then the subgradient 0, not 1/√ulp
    snap = 1.0 - jnp.abs(rho) <= _SNAP_ULPS * jnp.finfo(dt).eps
    rho = jnp.where(snap, jnp.sign(rho), rho)
    ss = p.c * p.c + p.a * p.a * k12
    dd = jnp.full(k12.shape, p.a * p.a, dt)
    if not p.kinks:
        return ss, dd
    lead = (1,) * k12.ndim  # the kinks along a trailing axis, same rank as the arrays
    t, s = (jnp.asarray(v, dt).reshape(*lead, -1) for v in (p.kinks, p.jumps))
    m1, m2 = _ramp_mean(d1[..., None], t), _ramp_mean(d2[..., None], t)
    q1, q2 = _tail(d1[..., None], t), _tail(d2[..., None], t)
    ss = ss + jnp.sum(s * (p.c * (m1 + m2) + p.a * k12[..., None] * (q1 + q2)), axis=-1)
    dd = dd + p.a * jnp.sum(s * (q1 + q2), axis=-1)
    n = len(p.kinks)
    i, j = np.repeat(np.arange(n), n), np.tile(np.arange(n), n)  # all pairs (k, l)
    weight = s[..., i] * s[..., j]
    h, k = t[..., i] / d1s[..., None], t[..., j] / d2s[..., None]
    r = jnp.broadcast_to(rho[..., None], h.shape)
    on = both[..., None]
    pair_ss = jnp.where(on, (d1 * d2)[..., None] * ramp_moment(h, k, r), m1[..., i] * m2[..., j])
    pair_dd = jnp.where(on, orthant(h, k, r), q1[..., i] * q2[..., j])
    return ss + jnp.sum(weight * pair_ss, axis=-1), dd + jnp.sum(weight * pair_dd, axis=-1)
