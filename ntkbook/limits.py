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

  The coefficients are 1-D integrals per *input*, so each *pair* costs m multiply-adds
  (Horner in ρ). The truncation error is at most the tail :math:`\sum_{j \ge m} c_j^2` at
  ρ = 1, which grows with the variance (tanh: 96 terms at k = 1, 1344 at k = 16).
- ``"polar"`` (σ kinked at 0): :math:`(z_1, z_2) = r(\cos\varphi, \sin\varphi)`, so
  :math:`u = \sqrt{k_{11}}\, r\cos\varphi` and :math:`v = \sqrt{k_{22}}\, r\cos(\varphi -
  \theta)` with :math:`\cos\theta = \rho`. The kinks lie at :math:`\cos\varphi = 0` and
  :math:`\cos(\varphi - \theta) = 0`, which cut the circle into four arcs
  (:func:`ntkbook.gaussian.polar_nodes`). The integrand is smooth on every cell, so the rule
  converges exponentially even for ReLU or abs, or, graded, for tanh at k = 1e4.
- ``"hermite"`` (reference only): the tensor Gauss–Hermite rule of neural-tangents,
  :math:`u = \sqrt{k_{11}} z_1`, :math:`v = \sqrt{k_{22}}(\rho z_1 + \sqrt{1-\rho^2} z_2)`.

**The rule** (``quadrature="auto"``, ``points=None``) is chosen once per call from static
information only — the activation, the dtype and the variance bound ``max_variance`` — and
used for every layer, so a call gives one number eagerly and under ``jit``, ``grad``,
``vmap`` or ``mesh=`` (:mod:`ntkbook.quadrature`: the closed form; else the Mehler series
while it needs at most 2048 terms on the whole range; else the polar rule, graded towards the
kinks for large variances). Inputs beyond the bound raise eagerly and are NaN under tracing.

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
from .activations import Activation, get
from .gaussian import (
    QUADRATURES,
    Table,
    _Marginal,
    _marginal,
    _pair,
    _Rule,
    _table,
    hermite_functions,
    hermite_rule,
    legendre_rule,
    polar_size,
    radial_rule,
)
from .quadrature import (
    bounds,
    data_bound,
    expectation,
    homogeneous_scales,
    method_points,
)
from .quadrature import (
    rule as choose_rule,
)

# gaussian's public names re-exported: limits.expectation etc. predate the split
__all__ = ["QUADRATURES", "Kernels", "expectation", "hermite_functions", "hermite_rule", "kernels"]
__all__ += ["legendre_rule", "nngp", "ntk", "radial_rule", "standard_ntk"]
Array = jax.Array
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


# ---------------------------------------------------------------------------- recursions


class _Config(NamedTuple):
    """Static (hashable) description of one kernel computation: one rule per layer transition
    l → l + 1, l = 1 … L − 1."""

    depth: int
    activation: Activation
    rules: tuple[_Rule, ...]
    bound: float = math.inf  # entries with a Σ^(l)(x, x) > bound, l < L, are NaN


Layer = tuple[Array, Array, Array]  # (Σ, Σ̇, Θ) of one layer
Which = str | tuple[int, ...]  # the last Σ ("nngp") or Θ ("ntk"), or layers (0-based, sorted)
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
        return prev[_LAST[str(which)]]
    stacked = (jnp.concatenate([first[f][None], *(r[f] for r in rests)]) for f in range(3))  # type: ignore[index]
    return _pick(Kernels(*stacked), which)


def _pick(k: Kernels, which: Which) -> Kernels | Array:
    """From stacked kernels: the last Σ (``"nngp"``), the last Θ (``"ntk"``), or the layers
    with the 0-based indices in the tuple ``which``."""
    if isinstance(which, str):
        return k[_LAST[which]][-1]
    if len(which) == k.sigma.shape[0]:  # all of them (indices are sorted and distinct)
        return k
    return Kernels(*(f[np.asarray(which)] for f in k))


def _as_rows(tree: Marginals) -> Marginals:
    """Per-input leaves (..., N) as rows of a tile: a trailing unit axis, (..., N, 1)."""
    return jax.tree.map(lambda a: a[..., None], tree)


def _as_columns(tree: Marginals) -> Marginals:
    """Per-input leaves (..., N) as columns of a tile: (..., 1, N)."""
    return jax.tree.map(lambda a: a[..., None, :], tree)


def _by_rows(
    fn: Callable[[Array, Marginals], Kernels | Array], x1: Array, m1: Marginals, rows: int
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
) -> tuple[Kernels | Array, Array]:
    """The (N1, N2) kernels, evaluated over blocks of ``block_size`` rows of ``x1``, and the
    largest variance for the range check (:func:`_poison`).

    The per-input marginals (diagonal recursion, Mehler coefficients) are computed once; each
    block then costs one GEMM and the elementwise layer recursion over a (block_size, N2) tile.
    With ``symmetric`` (x2 is x1) the diagonal is then overwritten by the diagonal recursion,
    where ρ = 1 exactly: from the Gram matrix, ρ(x, x) = xᵀx / (√(xᵀx) √(xᵀx)) is 1 only up to
    the rounding of two different summations, which the arc-cosine amplifies to √eps.
    """
    n0 = x1.shape[1]
    own, m1 = _self_diagonal(cfg, sigma_w, beta, x1, tables)
    own2, m2 = _self_diagonal(cfg, sigma_w, beta, x2, tables)
    m2 = _as_columns(m2)

    def block(xb: Array, mb: Marginals) -> Kernels | Array:
        first = _first(sigma_w, beta, xb @ x2.T, n0)
        return _cross(cfg, sigma_w, beta, first, _as_rows(mb), m2, which)

    out = _by_rows(block, x1, m1, block_size)
    if symmetric:
        i = jnp.arange(x1.shape[0])
        diag = _pick(own, which)
        if isinstance(which, tuple):
            out = Kernels(*(o.at[:, i, i].set(d) for o, d in zip(out, diag, strict=True)))
        else:
            out = out.at[i, i].set(diag)  # type: ignore[union-attr]
    return _poison(cfg, out, own, own2, outer=True)


def _poison(
    cfg: _Config, out: Kernels | Array, own1: Kernels, own2: Kernels | None, *, outer: bool
) -> tuple[Kernels | Array, Array]:
    r"""The range check: entries whose inputs reach a :math:`\Sigma^{(l)}(x, x) >` ``cfg.bound``,
    l < L, were computed with a rule not chosen for them, so they are made NaN (value and
    derivatives): a loud failure instead of a silently inaccurate number. Also returns the
    largest such variance, from which an eager caller raises."""
    if cfg.depth < 2 or all(r.method == "closed" for r in cfg.rules):
        return out, jnp.zeros((), own1.sigma.dtype)
    top1 = jnp.max(own1.sigma[:-1], axis=0)
    top2 = top1 if own2 is None else jnp.max(own2.sigma[:-1], axis=0)
    bad1, bad2 = top1 > cfg.bound, top2 > cfg.bound
    bad = (bad1[:, None] | bad2[None, :]) if outer else (bad1 | bad2)
    factor = jnp.where(bad, jnp.nan, 1.0).astype(own1.sigma.dtype)
    worst = jnp.maximum(jnp.max(top1, initial=0.0), jnp.max(top2, initial=0.0))
    if isinstance(out, Kernels):
        return Kernels(*(f * factor[None] for f in out)), worst
    return out * factor, worst


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
) -> tuple[Kernels | Array, Array]:
    """k(x1_i, x1_i) — or k(x1_i, x2_i) when ``x2`` is given — for every layer, and the largest
    variance for the range check (:func:`_poison`)."""
    own, m1 = _self_diagonal(cfg, sigma_w, beta, x1, tables)
    if x2 is None:
        return _poison(cfg, _pick(own, which), own, None, outer=False)
    own2, m2 = _self_diagonal(cfg, sigma_w, beta, x2, tables)
    first = _first(sigma_w, beta, jnp.sum(x1 * x2, axis=1), x1.shape[1])
    return _poison(cfg, _cross(cfg, sigma_w, beta, first, m1, m2, which), own, own2, outer=False)


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
            + [polar_size(r) for r in cfg.rules if r.method == "polar"]
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
        (_checks.positive if positive else _checks.nonnegative)(name, concrete)
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
    which: Which,
    layers: Sequence[int] | None = None,
    max_variance: object = None,
) -> Kernels | Array:
    """Validate the public arguments, choose the rule, then run the jitted computation
    (``which``: "nngp", "ntk" or "kernels", the last with the notes' layer numbers ``layers``)."""
    x1 = _checks.inputs("x1", x1)
    if x2 is not None:
        x2 = _checks.inputs("x2", x2, n_features=x1.shape[1])
    cfg_depth = _checks.positive_int("depth", depth)
    if not isinstance(diagonal, (bool, np.bool_)):
        raise TypeError(f"diagonal: expected True or False, got {diagonal!r}")
    if which == "kernels":
        which = _layer_indices(layers, cfg_depth)
    act = get(activation)
    beta, beta_v = _hyperparameter("beta", beta, positive=False)
    sigma_w, sigma_w_v = _hyperparameter("sigma_w", sigma_w, positive=True)
    method, n = method_points(act, quadrature, points)
    dt = (
        jnp.result_type(*(x for x in (x1, x2) if x is not None))
        if dtype is None
        else _checks.float_dtype("dtype", dtype)  # type: ignore[arg-type]
    )
    if jnp.finfo(dt).bits < 32:
        raise ValueError(
            f"dtype: {jnp.dtype(dt).name} is not supported (the arc-cosine and the series lose "
            "all accuracy); compute in float32 or float64 and cast the result"
        )
    xs = [x for x in (x1, x2) if x is not None]
    if not (act.homogeneous and beta_v == 0.0):  # (that case is rescaled exactly below)
        _checks.gram_range(xs, sigma_w_v, dt)
    found = None
    if method != "closed" and max_variance is None:
        found = data_bound(act, xs, cfg_depth, sigma_w_v, beta_v)
    bound, check = bounds(max_variance, found)
    layer_rule = choose_rule(act, method, n, bound, dt, check if found is None else found)
    cfg = _Config(cfg_depth, act, (layer_rule,) * (cfg_depth - 1), check)
    tables = tuple(_table(r, dt) for _, _, r in _segments(cfg))
    x1 = x1.astype(dt)
    x2 = None if x2 is None else x2.astype(dt)
    sw, b = jnp.asarray(sigma_w, dt), jnp.asarray(beta, dt)
    out = _dispatch(x1, x2, sw, b, tables, cfg=cfg, which=which, diagonal=diagonal,
                    block_size=block_size)  # fmt: skip
    if act.homogeneous and beta_v == 0.0 and sigma_w_v is not None and jnp.finfo(dt).bits <= 32:
        # checked after the dispatch, so that the check's host round trip overlaps the kernel
        scaled = homogeneous_scales(act, xs, sigma_w_v, cfg_depth)
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
    """Run the jitted diagonal or full computation on validated inputs; eagerly, raise if an
    input's variance is beyond the rule's range (traced, those entries are NaN)."""
    if diagonal:
        if x2 is not None and x2.shape[0] != x1.shape[0]:
            raise ValueError(
                f"x2: diagonal=True pairs rows of x1 and x2, so both need N rows; got "
                f"{x1.shape[0]} and {x2.shape[0]}"
            )
        out, worst = _diagonal(x1, x2, sw, b, tables, cfg=cfg, which=which)
    else:
        symmetric = x2 is None
        x2 = x1 if x2 is None else x2
        if block_size is None:
            rows = _auto_block(x1.shape[0], x2.shape[0], cfg)
        else:
            rows = min(_checks.positive_int("block_size", block_size), x1.shape[0])
        out, worst = _full(x1, x2, sw, b, tables, cfg=cfg, which=which, block_size=rows,
                           symmetric=symmetric)  # fmt: skip
    if _checks.is_concrete(worst) and float(worst) > cfg.bound:
        raise ValueError(
            f"max_variance: the inputs reach Σ^(l)(x, x) = {float(worst):.6g} before the last "
            f"layer, above the {cfg.bound:.6g} the rule was chosen for; pass a larger "
            "max_variance (static under jit)"
        )
    return out


def rule_options(
    x1: Array, x2: Array | None, *, depth: int, options: dict[str, object]
) -> dict[str, object]:
    """``options`` with ``max_variance`` set to what an eager call on (x1, x2) would choose, for
    callers that evaluate blocks under tracing (:mod:`ntkbook.sharding`): one rule for all."""
    if options.get("max_variance") is not None:
        return options
    act = get(options.get("activation", "relu"))  # type: ignore[arg-type]
    method, _ = method_points(act, options.get("quadrature", "auto"), None)  # type: ignore[arg-type]
    if method == "closed":
        return options
    _, beta = _hyperparameter("beta", options.get("beta", 0.0), positive=False)
    _, sigma_w = _hyperparameter("sigma_w", options.get("sigma_w", 1.0), positive=True)
    xs = [x for x in (x1, x2) if x is not None]
    found = data_bound(act, xs, _checks.positive_int("depth", depth), sigma_w, beta)
    return {**options, "max_variance": bounds(None, found)[0]}


_KERNEL_ARGS = r"""
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
        points: Mehler terms, or polar nodes per cell / Gauss–Hermite nodes per dimension;
            default (``None``): chosen for relative error 1e-10 (float64) on the whole variance
            range. An explicit value that misses 1e-8 on it draws a ``UserWarning`` naming it.
        block_size: rows of ``x1`` per block (default: chosen to bound temporaries).
        dtype: compute dtype, float32 or float64 (default: that of the inputs). float16 and
            bfloat16 are refused (``ValueError``).
        max_variance: the largest :math:`\Sigma^{(l)}(x, x)`, l < L, the rule must cover: a
            Python number, **static under** ``jit`` (a new value, rounded up to a power of 2,
            recompiles). Default: from the inputs' values where they have any (eager calls,
            ``grad`` in β or σ_w), at least 16; 16 inside ``jit``/``vmap``/``shard_map``.
            Beyond it an eager call raises ``ValueError`` naming ``max_variance``; a traced one
            returns NaN for those entries. Ignored by closed forms (exact at any variance).
            Static under ``jit`` besides: ``depth``, ``activation``, ``quadrature``,
            ``points``, ``diagonal``, ``layers``, ``block_size``, ``dtype`` and the shapes."""


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
    max_variance: float | None = None,
    layers: Sequence[int] | None = None,
) -> Kernels:
    r""":math:`\Sigma^{(l)}, \dot\Sigma^{(l)}, \Theta_\infty^{(l)}` for l = 1 … L (the recursion
    in the module docstring), on one device (:func:`ntkbook.sharding.kernels`: on several).

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
        max_variance=max_variance,
    )  # fmt: skip
    return _compute(x1, x2, depth=depth, **options, which="kernels")  # type: ignore[arg-type,return-value]


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
    max_variance: float | None = None,
) -> Array:
    r""":math:`\Sigma^{(L)}`, the NNGP kernel of the output: (N1, N2), or (N,) with
    ``diagonal=True``.

    Only the last layer is kept, so memory is one matrix. One device;
    :func:`ntkbook.sharding.nngp` splits the rows of ``x1`` over several.

    Args:{args}

    Returns:
        :math:`\Sigma^{(L)}(x_{1,i}, x_{2,j})`.

    Example:
        >>> import jax.numpy as jnp
        >>> round(float(nngp(jnp.ones((1, 4)), depth=2)[0, 0]), 6)  # E[relu(u)²] = 1/2
        0.5
    """
    return _compute(  # type: ignore[return-value]
        x1, x2, depth=depth, activation=activation, beta=beta, sigma_w=sigma_w,
        diagonal=diagonal, quadrature=quadrature, points=points, block_size=block_size,
        dtype=dtype, which="nngp", max_variance=max_variance,
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
    max_variance: float | None = None,
) -> Array:
    r""":math:`\Theta_\infty^{(L)}`, the limiting NTK of the output: (N1, N2), or (N,) with
    ``diagonal=True``.

    Only the last layer is kept, so memory is one matrix. One device;
    :func:`ntkbook.sharding.ntk` splits the rows of ``x1`` over several.

    Args:{args}

    Returns:
        :math:`\Theta_\infty^{(L)}(x_{1,i}, x_{2,j})`.

    Example:
        >>> import jax.numpy as jnp
        >>> round(float(ntk(jnp.ones((1, 4)), depth=2)[0, 0]), 6)  # Σ¹ × 1/2 + Σ² = 1/2 + 1/2
        1.0
    """
    return _compute(  # type: ignore[return-value]
        x1, x2, depth=depth, activation=activation, beta=beta, sigma_w=sigma_w,
        diagonal=diagonal, quadrature=quadrature, points=points, block_size=block_size,
        dtype=dtype, which="ntk", max_variance=max_variance,
    )  # fmt: skip


for _fn in (kernels, nngp, ntk):
    _fn.__doc__ = (_fn.__doc__ or "").replace("Args:{args}", "Args:" + _KERNEL_ARGS)


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
    max_variance: float | None = None,
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
        activation, beta, sigma_w, diagonal: as in :func:`kernels`.
        quadrature, points, block_size, dtype, max_variance: as in :func:`kernels`.

    Returns:
        (N1, N2), or (N,) with ``diagonal=True``.
    """
    widths = _checks.widths(widths)
    k: Kernels = _compute(  # type: ignore[assignment]
        x1, x2, depth=len(widths) - 1, activation=activation, beta=beta, sigma_w=sigma_w,
        diagonal=diagonal, quadrature=quadrature, points=points, block_size=block_size,
        dtype=dtype, which="kernels", max_variance=max_variance,
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
