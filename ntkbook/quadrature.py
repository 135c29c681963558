r"""Which rule takes the Gaussian expectations of :mod:`ntkbook.gaussian`, chosen once from
static information, and the public :func:`expectation`.

**One rule per declared range.** The rule (closed form, Mehler length, polar grid) is a function
of the activation, ``quadrature``/``points``, the dtype and a variance bound K only, never of the
inputs' values, so a call gives the same number eagerly and under ``jit``, ``grad``, ``vmap`` or
``shard_map`` (same program, up to the order of reductions). K bounds every
:math:`\Sigma^{(l)}(x, x)` that enters an expectation (l < L):

- ``max_variance=K`` (static under ``jit``: a new value recompiles) declares it. It is rounded
  up to a power of 2, so nearby values share a rule and a compiled program;
- ``max_variance=None`` (default): where the inputs have values (eager calls, ``grad`` with
  respect to β or σ_w), the largest :math:`\Sigma^{(l)}(x, x)` of the data (propagated on the
  host), rounded up, but at least ``DEFAULT_VARIANCE`` = 16; inside ``jit``/``vmap`` (no
  values) ``DEFAULT_VARIANCE``. So eager and traced calls agree bit-for-bit whenever the data
  stay within 16, and ``max_variance`` makes them agree beyond.

An entry whose inputs exceed the bound is not computed with a rule that was not chosen for it:
eagerly a ``ValueError`` naming ``max_variance``; under tracing (no Python exception can be
raised from values) the entry is NaN, value and derivatives — a NaN-poison instead of
``jax.debug.callback`` (which would need a host round trip and is not allowed everywhere) or
``checkify`` (which the caller would have to wrap around every use).

**The rule for [0, K]** (target: relative error 1e-10 in float64, 1e-7 in float32, at every
variance in the range, relative to the Cauchy–Schwarz scale
:math:`\sqrt{E[\sigma(u)^2]E[\sigma(v)^2]}`):

1. the closed form, where :mod:`ntkbook.activations` has one;
2. for σ not declared kinked, the Mehler series, if its tail is below the tolerance at the
   variances ``_probe_variances(K)`` with at most ``_MEHLER_CAP`` terms (tanh: 96 terms at
   K = 1, 832/1344 (σ/σ̇) at K = 16; the length grows about linearly with K);
3. else the polar rule: the plain grid (``levels = 0``, exact for ReLU-like σ) if it converges,
   else the grid graded towards the kinks and r = 0 with ``levels`` from K
   (:func:`ntkbook.gaussian.polar_nodes`), the fewest points per cell that agree with the next
   size on probe pairs spanning [0, K]. A kink away from 0 (relu(z − 1)) defeats every rule
   and draws a ``UserWarning`` naming ``activation``.

The search runs on the host with one compiled evaluation of σ per dtype and is cached per
(activation, method, points, K, dtype).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax._src import core  # the primal value of a differentiation tracer: no public API

from . import _checks
from .activations import Activation, get
from .gaussian import (
    _GRADE,
    QUADRATURES,
    _hermite_nodes,
    _marginal,
    _pair,
    _Rule,
    _table,
    hermite_rule,
    polar_nodes,
)

Array = jax.Array
DEFAULT_VARIANCE = 16.0  # the bound without max_variance inside jit/vmap, and the eager floor
_MEHLER_CAP = 2048  # longest automatic series (beyond: the graded polar rule)
_MEHLER_MAX = 16384  # longest series for quadrature="mehler" without points
_PLAIN_POINTS = (8, 12, 18, 27, 40)  # candidate sizes of the plain polar grid
_GRADED_POINTS = (6, 8, 12, 16, 22)  # points per cell of the graded grid
_HERMITE_MAX = 160  # most automatic tensor Gauss–Hermite points per dimension
_POINTS_MAX = {"mehler": 32768, "polar": 128, "hermite": 1024}  # explicit points
_EVAL_CHUNK = 1 << 16  # values per compiled evaluation of σ while choosing a rule
_R_MAX = 9.0  # radius beyond which r e^{-r²/2} carries < 1e-16 of the mass


# ---------------------------------------------------------------------------- tolerances


def _tolerance(dtype: jnp.dtype) -> float:
    """Relative error the automatic choice aims at: 1e-10 in float64 (a 100× margin under the
    promised 1e-8 for errors that add up over layers), 1e-7 in float32 (its rounding)."""
    return 1e-10 if jnp.finfo(dtype).bits > 32 else 1e-7


def _warn_level(dtype: jnp.dtype) -> float:
    """Estimated relative error above which an explicit ``points`` draws a warning."""
    return 1e-8 if jnp.finfo(dtype).bits > 32 else 1e-6


def variance_grid(v: float) -> float:
    """The bound a rule is chosen for: v rounded up to a power of 2 (at least 2^-20)."""
    return 2.0 ** max(-20, math.ceil(math.log2(max(v, 2.0**-20))))


def _probe_variances(bound: float) -> np.ndarray:
    """Variances at which a rule for [0, bound] is checked: bound × 4^-j, j = 0 … 6."""
    return bound * 0.25 ** np.arange(7)[::-1]


# ---------------------------------------------------------------------------- host evaluation


def _search_dtype() -> jnp.dtype:
    """float64 when JAX has it (the rule's error, not float32 rounding, is measured)."""
    return jnp.dtype(jnp.result_type(float))  # float64 under jax_enable_x64


def _evaluate(fn: Callable[[Array], Array], z: np.ndarray) -> np.ndarray:
    """σ or σ̇ on a concrete grid as float64 numpy (outside any jit), in padded chunks of
    ``_EVAL_CHUNK`` values by one compiled function per σ, so that probing many grid shapes
    does not compile (or trace an autodiff σ̇) anew for each."""
    flat = np.ravel(z)
    pad = -flat.size % _EVAL_CHUNK
    chunks = np.concatenate([flat, np.zeros(pad)]).reshape(-1, _EVAL_CHUNK)
    run = _compiled(fn, _search_dtype())
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
    recurrence of :func:`ntkbook.gaussian.hermite_functions` run on the fly."""
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
    out: list[int] = []
    fractions: list[float] = []
    for fn in (act.sigma, act.sigma_dot):
        c2 = _coefficients(root * _evaluate(fn, grid), z, root, m_total) ** 2
        total = np.maximum(c2.sum(axis=1, keepdims=True), np.finfo(np.float64).tiny)
        tail = np.cumsum(c2[:, ::-1], axis=1)[:, ::-1] / total  # tail[:, j] = Σ_{i ≥ j}
        ok = tail <= tol
        out.append(int(np.where(ok.any(axis=1), np.argmax(ok, axis=1), m_total).max()))
        fractions.append(float(tail[:, m_total // 2].max()))
    return out[0], out[1], fractions[0], fractions[1]


def _series_length(
    act: Activation, ks: np.ndarray, dtype: jnp.dtype, cap: int
) -> tuple[int, int] | None:
    """Mehler terms (σ, σ̇) for the tolerance at the variances ``ks``, or ``None`` if more than
    ``cap`` would be needed (a kinked σ's coefficients decay only like a power of j). Doubling
    m from 64, m is accepted once the tail among the first 2m coefficients beyond m is below
    the tolerance."""
    m = 64
    while m <= cap:
        need_s, need_d, frac_s, frac_d = _tail_need(act, ks, 2 * m, dtype)
        if max(need_s, need_d) <= m:
            return _round_terms(max(need_s, 1)), _round_terms(max(need_d, 1))
        m *= 2
    return None


def _round_terms(m: int) -> int:
    """Series lengths as multiples of 8, so that nearby rules share one
    compiled program."""
    return -(-m // 8) * 8


def _probe_pairs(ks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(k11, k12, k22) probing a 2-D rule: groups of correlations from −1 to 1 at every
    variance of ``ks`` and between the smallest, the middle and the largest."""
    lo, mid, hi = ks[0], ks[ks.size // 2], ks[-1]
    a = np.concatenate([ks, [lo, mid]])
    b = np.concatenate([ks, [hi, hi]])
    k11, k22 = np.repeat(a, _PROBE_RHO.size), np.repeat(b, _PROBE_RHO.size)
    return k11, np.tile(_PROBE_RHO, a.size) * np.sqrt(k11 * k22), k22


_PROBE_RHO = np.array([-0.999, -0.5, 0.0, 0.3, 0.9, 0.999999])  # a group of probe pairs


def _rule_values(act: Activation, rule: _Rule, pairs: tuple[np.ndarray, ...]) -> np.ndarray:
    """(E[σσ], E[σ̇σ̇]) of a polar or tensor Gauss–Hermite rule on probe pairs, in numpy:
    shape (2, pairs)."""
    k11, k12, k22 = pairs
    rho = np.clip(k12 / np.sqrt(k11 * k22), -1.0, 1.0)[:, None, None]  # (pairs, 1, 1)
    s11, s22 = np.sqrt(k11)[:, None, None], np.sqrt(k22)[:, None, None]
    if rule.method == "hermite":
        z, w = hermite_rule(rule.points)
        u = s11 * z[:, None] + 0 * rho
        v = s22 * (rho * z[:, None] + np.sqrt(1 - rho * rho) * z[None, :])
        weight = w[:, None] * w[None, :]
    else:
        t, wt, r, wr = polar_nodes(rule.points, levels=rule.levels)
        theta = np.arccos(rho[:, :, 0])  # (pairs, 1)
        start = np.concatenate(
            [
                np.pi / 2 + 0 * theta,
                np.pi / 2 + theta,
                1.5 * np.pi + 0 * theta,
                1.5 * np.pi + theta,
            ],
            -1,
        )  # (pairs, 4)
        length = np.concatenate([theta, np.pi - theta, theta, np.pi - theta], -1)
        phi = (start[..., None] + length[..., None] * t).reshape(k12.size, -1, 1)
        wphi = (length[..., None] * wt / (2 * np.pi)).reshape(k12.size, -1, 1)
        u = s11 * r * np.cos(phi)
        v = s22 * r * np.cos(phi - theta[..., None])
        weight = wphi * wr
    out = [np.sum(weight * _evaluate(f, u) * _evaluate(f, v), axis=(1, 2))
           for f in (act.sigma, act.sigma_dot)]  # fmt: skip
    return np.stack(out)


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    r"""Largest difference of two rules' values (2, pairs) on probe pairs, relative to each
    group's scale :math:`\max_\rho |E|` (at ρ → 1 with equal variances, E[σ²]: the
    Cauchy–Schwarz scale of the group)."""
    scale = np.abs(b).reshape(2, -1, _PROBE_RHO.size).max(axis=2, keepdims=True)
    diff = np.abs(a - b).reshape(scale.shape[0], -1, _PROBE_RHO.size)
    return float(np.max(diff / np.maximum(scale, np.finfo(np.float64).tiny)))


def _rule_error(act: Activation, rule: _Rule, finer: _Rule, ks: np.ndarray) -> float:
    """Estimated relative error of a 2-D rule: its distance to a finer one on probe pairs."""
    pairs = _probe_pairs(ks)
    return _distance(_rule_values(act, rule, pairs), _rule_values(act, finer, pairs))


def _levels(bound: float) -> int:
    r"""Grading levels of the polar grid for variances up to ``bound``: the finest φ-cell,
    :math:`\pi q^G/2`, below the width :math:`1/(\sqrt{K} r_{\max})` of σ(√k r cos φ)'s
    transition at the kink (r ≤ 9 carries all but 1e-16 of the mass)."""
    width = 1.0 / (math.sqrt(max(bound, 1.0)) * _R_MAX)
    return max(1, math.ceil(math.log(width / (math.pi / 2)) / math.log(_GRADE)))


def _polar_rule(act: Activation, ks: np.ndarray, dtype: jnp.dtype) -> tuple[_Rule, float]:
    """The cheapest polar rule (plain grid, then graded) whose estimated error on probes at
    ``ks`` is below the tolerance, and that estimate (the best found, if none).

    Along a sequence of sizes, with d_i the distance between sizes i and i + 1, the error of
    size i + 1 is estimated as d_i² / d_(i−1) (geometric convergence, which the rules have for σ
    smooth away from 0); each size is evaluated once.
    """
    tol = _tolerance(dtype)
    pairs = _probe_pairs(ks)
    best: tuple[_Rule, float] = (_Rule("polar", _GRADED_POINTS[-1], levels=1), math.inf)
    for sizes, levels in ((_PLAIN_POINTS, 0), (_GRADED_POINTS, _levels(float(ks[-1])))):
        values_prev = _rule_values(act, _Rule("polar", sizes[0], levels=levels), pairs)
        d_prev = math.inf
        for n in sizes[1:]:
            rule = _Rule("polar", n, levels=levels)
            values_n = _rule_values(act, rule, pairs)
            d = _distance(values_prev, values_n)
            est = d * min(1.0, d / d_prev) if math.isfinite(d_prev) and d_prev > 0 else d
            est = est if math.isfinite(d_prev) else math.inf  # two distances are needed
            if est < best[1]:
                best = (rule, est)
            if est <= tol:
                return rule, est
            values_prev, d_prev = values_n, d
    return best


# ---------------------------------------------------------------------------- the rule


def _check_points(
    act: Activation, rule: _Rule, ks: np.ndarray, dtype: jnp.dtype, notes: list[str]
) -> None:
    """A warning (appended to ``notes``) naming ``points`` when a rule misses the accuracy
    target at the variances ``ks``."""
    if rule.method == "mehler":
        m = max(rule.points, rule.points_dot)
        need_s, need_d, frac_s, frac_d = _tail_need(act, ks, 2 * m, dtype)
        err = max(frac_s, frac_d)
        need = max(need_s, need_d)
        hint = f"about {need} are needed" if need < 2 * m else f"more than {2 * m} are needed"
        what = f"{m} Mehler terms"
    else:
        finer = rule._replace(points=2 * rule.points)
        err = _rule_error(act, rule, finer, ks)
        what, hint = f"{rule.points} {rule.method} points", "raise points"
    if err > _warn_level(dtype):
        notes.append(
            f"points: {what} leave a relative error of about {err:.1e} for {act.name!r} at "
            f"variance {ks.max():.3g}, above {_warn_level(dtype):.0e}; {hint} "
            "(or leave points=None to choose them automatically)"
        )


@functools.lru_cache(maxsize=256)
def choose(
    act: Activation,
    method: str,
    points: int | None,
    bound: float,
    dtype: jnp.dtype,
    probe: float | None = None,
) -> tuple[_Rule, tuple[str, ...]]:
    """The rule for every variance in [0, ``bound``] and the warnings it calls for (cached; the
    caller issues the warnings on every call). ``method``/``points`` as from
    :func:`method_points`. Explicit ``points`` fix the rule; they are checked up to ``probe``
    (the data's largest variance where known: the warning, not the number, depends on it)."""
    if method == "closed":
        return _Rule("closed"), ()
    ks = _probe_variances(bound)
    notes: list[str] = []
    if points is not None:
        if method == "auto":
            method = "polar" if act.kinked else "mehler"
        rule = _Rule(method, points, points) if method == "mehler" else _Rule(method, points)
        _check_points(act, rule, _probe_variances(probe or bound), dtype, notes)
        return rule, tuple(notes)
    if method in ("auto", "mehler") and not act.kinked:
        terms = _series_length(act, ks, dtype, _MEHLER_CAP if method == "auto" else _MEHLER_MAX)
        if terms is not None:
            return _Rule("mehler", *terms), ()
        if method == "mehler":
            notes.append(
                f"points: the Mehler series of {act.name!r} needs more than "
                f"{_MEHLER_MAX} terms at variance {bound:.3g}; using {_MEHLER_MAX}"
            )
            return _Rule("mehler", _MEHLER_MAX, _MEHLER_MAX), tuple(notes)
    if method == "hermite":
        n = 20
        while n < _HERMITE_MAX and _rule_error(
            act, _Rule("hermite", n), _Rule("hermite", 2 * n), ks
        ) > _tolerance(dtype):
            n *= 2
        rule = _Rule("hermite", min(n, _HERMITE_MAX))
        _check_points(act, rule, ks, dtype, notes)
        return rule, tuple(notes)
    rule, err = _polar_rule(act, ks, dtype)
    if err > _tolerance(dtype):
        notes.append(
            f"activation: no rule reaches relative error {_tolerance(dtype):.0e} for "
            f"{act.name!r} at variances up to {bound:.3g}; the polar rule with {rule.points} "
            f"points per cell is off by about {err:.1e}. The polar rule is exact only for "
            "σ smooth away from 0; a kink elsewhere (e.g. relu(z − 1)) converges slowly"
        )
    return rule, tuple(notes)


def rule(
    act: Activation,
    method: str,
    points: int | None,
    bound: float,
    dtype: jnp.dtype,
    probe: float | None = None,
) -> _Rule:
    """:func:`choose`, issuing its warnings."""
    if points is None:
        probe = None  # one cache entry per rule
    chosen, notes = choose(act, method, points, bound, jnp.dtype(dtype), probe)
    for note in notes:
        warnings.warn(note, UserWarning, stacklevel=5)
    return chosen


# ---------------------------------------------------------------------------- the bound


def values(x: object) -> np.ndarray | None:
    """The values of an array as float64 numpy, also under ``jax.grad``/``jvp`` (the primal of
    a differentiation tracer); ``None`` inside ``jit``/``vmap``, where there are none."""
    if _checks.is_concrete(x):
        return np.asarray(x, np.float64)
    try:
        primal = core.to_concrete_value(x)
    except Exception:  # noqa: BLE001 - any tracer without a concrete primal
        return None
    return None if primal is None else np.asarray(primal, np.float64)


def _next_variances(act: Activation, ks: np.ndarray, sigma_w: float, beta: float) -> np.ndarray:
    """Σ^(l+1)(x, x) = σ_w² E[σ(√k z)²] + β² for each k (400-node Gauss–Hermite: ample for a
    bound, which the caller pads by 1 % and rounds up)."""
    z, w = hermite_rule(400)
    return sigma_w**2 * (_evaluate(act.sigma, np.sqrt(ks)[:, None] * z) ** 2 @ w) + beta**2


def data_bound(
    act: Activation, xs: Sequence[object], depth: int, sigma_w: float | None, beta: float | None
) -> float | None:
    r"""The largest :math:`\Sigma^{(l)}(x, x)`, l = 1 … L − 1, over the rows of the inputs
    (propagated from up to 65 quantiles of :math:`\Sigma^{(1)} = \sigma_w^2\lVert x\rVert^2/n_0
    + \beta^2`), or ``None`` without concrete values."""
    if sigma_w is None or beta is None:
        return None
    arrays = [values(x) for x in xs]
    if any(a is None for a in arrays):
        return None
    sq = np.concatenate([np.sum(a * a, axis=1) / a.shape[1] for a in arrays if a is not None])
    if sq.size == 0:
        return 0.0
    ks = sigma_w**2 * np.quantile(sq, np.linspace(0.0, 1.0, min(65, sq.size))) + beta**2
    worst = float(ks.max())
    for layer in range(2, depth):
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is what we look for
            ks = _next_variances(act, ks, sigma_w, beta)
        if not np.all(np.isfinite(ks)) or float(ks.max()) > np.finfo(np.float64).max / 16:
            raise ValueError(
                f"depth: Σ^({layer})(x, x) of {act.name!r} overflows float64 (the variances "
                f"grow without bound with depth; L = {depth}): use fewer layers, smaller "
                "inputs or sigma_w"
            )
        worst = max(worst, float(ks.max()))
    return worst


def bounds(declared: object, found: float | None) -> tuple[float, float]:
    """(K, check): the variance a rule is chosen for and the one entries are checked against —
    from ``max_variance`` (``declared``) if given, else from the data (``found``, padded 1 %),
    at least ``DEFAULT_VARIANCE``."""
    if declared is not None:
        if isinstance(declared, bool) or not isinstance(
            declared, (int, float, np.integer, np.floating)
        ):
            raise TypeError(
                f"max_variance: expected a Python number (static under jit), got {declared!r}"
            )
        check = _checks.positive("max_variance", float(declared))
        return variance_grid(check), check
    bound = variance_grid(max(DEFAULT_VARIANCE, 1.01 * (found or 0.0)))
    return bound, bound


# ---------------------------------------------------------------------------- public


def method_points(act: Activation, quadrature: str, points: int | None) -> tuple[str, int | None]:
    """Validate ``quadrature`` and ``points`` for ``act``: ``"closed"`` where a closed form is
    asked for or ``"auto"`` finds one; else the method and the explicit points or ``None``."""
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
    max_variance: float | None = None,
) -> tuple[Array, Array]:
    r"""Gaussian expectations :math:`(E[σ(u)σ(v)], E[\dot σ(u)\dot σ(v)])` for
    :math:`(u, v) \sim N\big(0, \big[\begin{smallmatrix} k_{11} & k_{12} \\ k_{12} & k_{22}
    \end{smallmatrix}\big]\big)`.

    Args:
        k11, k12, k22: broadcastable arrays with k11, k22 ≥ 0 and k12² ≤ k11 k22.
        activation: a name, a JAX function or an :class:`~ntkbook.activations.Activation`.
        quadrature: ``"auto"`` (closed form if known, else the rule for the variance range:
            the Mehler series, or ``"polar"`` for kinked σ or large variances), ``"closed"``,
            ``"mehler"``, ``"polar"`` or ``"hermite"`` (see :mod:`ntkbook.limits`).
        points: series terms for mehler; nodes per cell for polar and per dimension for
            hermite; default: chosen for relative error 1e-10 (float64) on the range.
        max_variance: the largest k11, k22 the rule must cover (static under ``jit``);
            default: that of concrete inputs (at least 16), or 16 inside ``jit`` — entries
            beyond are NaN there (see the module docstring).

    Returns:
        Two arrays of the broadcast shape.

    Example:
        >>> import jax.numpy as jnp
        >>> e_ss, e_dd = expectation(jnp.ones(1), jnp.zeros(1), jnp.ones(1), activation="relu")
        >>> round(float(e_ss[0]), 6), float(e_dd[0])  # 1/(2π) and 1/4 at ρ = 0
        (0.159155, 0.25)
    """
    act = get(activation)
    method, n = method_points(act, quadrature, points)
    k11, k12, k22 = jnp.broadcast_arrays(
        *(jnp.asarray(k, jnp.result_type(k, float)) for k in (k11, k12, k22))
    )
    dt = k12.dtype
    found = None
    a, b = values(k11), values(k22)
    if method != "closed" and a is not None and b is not None and a.size:
        found = float(max(a.max(), b.max()))
    bound, check = bounds(max_variance, found)
    chosen = rule(act, method, n, bound, dt, found if max_variance is None else check)
    table = _table(chosen, dt)
    e_ss, e_dd = _pair(act, chosen, _marginal(act, chosen, table, k11), k12,
                       _marginal(act, chosen, table, k22))  # fmt: skip
    if chosen.method == "closed":
        return e_ss, e_dd
    if found is not None and found > check:
        raise ValueError(f"max_variance: the variances reach {found:.6g}, above {check:.6g}")
    bad = jnp.maximum(k11, k22) > check
    return jnp.where(bad, jnp.nan, e_ss), jnp.where(bad, jnp.nan, e_dd)


# ---------------------------------------------------------------------------- float32 extremes


@jax.jit
def _extent(x: Array) -> tuple[Array, Array]:
    """The largest entry in absolute value, and the smallest nonzero row maximum."""
    rows = jnp.max(jnp.abs(x), axis=1)
    return jnp.max(rows), jnp.min(jnp.where(rows > 0, rows, jnp.inf))


_SAFE_EXTENT = 1e15  # float32 Gram entries up to n_0·1e30 < 3.4e38 and down to 1e-30 > 1.2e-38


def homogeneous_scales(
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
    units = [
        x / jnp.asarray(np.where(n > 0, n, 1.0)[:, None], x.dtype)
        for x, n in zip(xs, norms, strict=True)
    ]
    return norms, units
