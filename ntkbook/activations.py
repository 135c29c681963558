r"""Nonlinearities σ and their derivatives :math:`\dot\sigma` (notes §3, §4).

An :class:`Activation` bundles the pointwise nonlinearity ``sigma`` (σ), its derivative
``sigma_dot`` (:math:`\dot\sigma`), and — where one exists — a closed form for the Gaussian
expectations that
the infinite-width recursions need (see :mod:`ntkbook.limits`).

Activations are looked up by name with :func:`get`, or built from any JAX-differentiable
function with :func:`from_function` (:math:`\dot\sigma` then comes from autodiff).
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from . import piecewise

Array = jax.Array
ArrayFn = Callable[[Array], Array]
Expectation = Callable[[Array, Array, Array], tuple[Array, Array]]


@dataclass(frozen=True)
class Activation:
    r"""A pointwise nonlinearity σ with its derivative :math:`\dot\sigma`.

    Attributes:
        name: a short name, used in error messages, plots and cache keys.
        sigma: σ, applied elementwise.
        sigma_dot: :math:`\dot\sigma = d\sigma/dz`, applied elementwise (a.e. derivative for
            kinked σ).
        kinked: True when :math:`\dot\sigma` is discontinuous at 0 (ReLU, abs, leaky ReLU):
            the quadrature of
            :mod:`ntkbook.limits` then splits its integration domain at the kink.
        expectation: optional closed form ``(k11, k12, k22) -> (E[σ(u)σ(v)], E[σ'(u)σ'(v)])``
            for (u, v) ~ N(0, [[k11, k12], [k12, k22]]), elementwise over broadcastable
            arrays; ``None`` means :mod:`ntkbook.limits` integrates numerically.
        homogeneous: True when σ(cz) = c σ(z) for c > 0 (ReLU, leaky ReLU, abs, identity):
            with β = 0 the kernels then scale as :math:`\lVert x\rVert \lVert x'\rVert`, which
            :mod:`ntkbook.limits` uses to stay exact for huge or tiny inputs in float32.
    """

    name: str
    sigma: ArrayFn
    sigma_dot: ArrayFn
    kinked: bool = False
    expectation: Expectation | None = None
    homogeneous: bool = False

    def __call__(self, z: Array) -> Array:
        return self.sigma(z)


def _elementwise_grad(fn: ArrayFn) -> ArrayFn:
    """σ̇ of a scalar function σ by autodiff, applied elementwise to arrays of any shape."""
    scalar_grad = jax.grad(fn)

    def sigma_dot(z: Array) -> Array:
        z = jnp.asarray(z)
        flat = jax.vmap(scalar_grad)(z.reshape(-1).astype(jnp.result_type(z, float)))
        return flat.reshape(z.shape)

    return sigma_dot


def from_function(
    fn: ArrayFn,
    *,
    name: str | None = None,
    kinked: bool = False,
    kinks: Sequence[float] | None = None,
) -> Activation:
    r"""Wrap a JAX function σ as an :class:`Activation`, with :math:`\dot\sigma` from ``jax.grad``.

    Args:
        fn: an elementwise, JAX-traceable function of one array.
        name: a name for plots and messages (default: ``fn.__name__``).
        kinked: set True if :math:`\dot\sigma` jumps at 0 (selects the kink-aware quadrature of
            :mod:`ntkbook.limits`).
        kinks: the points where σ̇ jumps, if σ is continuous and *linear between them*
            (relu6, hard_tanh, a clipped or shifted ReLU, …): σ is then fitted as
            c + a z + Σ_k s_k relu(z − t_k) and gets the exact closed form of
            :mod:`ntkbook.piecewise` (error ≈ 1e-15 instead of the 1e-3 of a quadrature across
            a kink away from 0). ``kinks=(0.0,)`` for a σ that is not piecewise linear means
            ``kinked=True``.

    Raises:
        ValueError: naming ``kinks`` if they are not finite numbers, or if σ is not linear
            between them and a kink lies away from 0 (no rule is exact for that).

    Returns:
        The activation (cached: the same ``fn`` gives the same object, so ``jit`` does not
        recompile).

    Example:
        >>> import jax.numpy as jnp
        >>> act = from_function(jnp.sin)
        >>> float(act.sigma_dot(jnp.array(0.0)))
        1.0
    """
    if not callable(fn):
        raise ValueError(f"activation: expected a name or a callable, got {fn!r}")
    if isinstance(fn, np.ufunc):
        raise TypeError(
            f"activation: {fn.__name__!r} is a NumPy ufunc, which JAX cannot trace; pass its "
            f"jax.numpy counterpart (jnp.{fn.__name__})"
        )
    points = None if kinks is None else _kinks(kinks)
    try:
        return _from_function_cached(fn, name, kinked, points)
    except TypeError:  # an unhashable callable: build it afresh (jit then retraces per call)
        return _build(fn, name, kinked, points)


def _kinks(kinks: object) -> tuple[float, ...]:
    """``kinks`` as a sorted tuple of distinct finite floats, or ``ValueError`` naming it."""
    try:
        points = tuple(sorted({float(t) for t in kinks}))  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise ValueError(f"kinks: expected a sequence of numbers, got {kinks!r}") from None
    if not all(math.isfinite(t) for t in points):
        raise ValueError(f"kinks: must be finite, got {kinks!r}")
    return points


def _build(
    fn: ArrayFn, name: str | None, kinked: bool, kinks: tuple[float, ...] | None = None
) -> Activation:
    label = str(name or getattr(fn, "__name__", "custom"))
    _check_elementwise(fn, label)
    if kinks is None:
        return Activation(label, fn, _elementwise_grad(fn), kinked=kinked)
    pieces = piecewise.fit(fn, kinks=kinks)
    if pieces is not None:
        return _piecewise_activation(label, fn, pieces)
    if any(t != 0.0 for t in kinks):
        raise ValueError(
            f"kinks: {label!r} is not linear between the kinks {kinks}; exact expectations "
            "are available for piecewise-linear σ (any kinks) or for a kink at 0 only"
        )
    return Activation(label, fn, _elementwise_grad(fn), kinked=True)


_PROBE = (0.3, -1.7, 2.2, -0.4, 1.1, -2.9, 0.0)  # unsorted, so that a sort is caught too


def _check_elementwise(fn: ArrayFn, label: str) -> None:
    """Raise naming ``activation`` unless ``fn`` traces under JAX, keeps shapes and acts entry by
    entry (``fn(z)`` equals ``vmap(fn)(z)`` on a probe)."""
    z = np.asarray(_PROBE, np.float32)  # NumPy: a jnp constant would be a tracer under a trace
    spec = jax.ShapeDtypeStruct(z.shape, jnp.float32)
    try:
        shape = jax.eval_shape(fn, jax.ShapeDtypeStruct((2, 3), jnp.float32)).shape
        # compiled executables run on the concrete probe even when the caller is tracing
        # (jit, eval_shape inside sharding), where fn(z) itself would be staged out
        whole = np.asarray(jax.jit(fn).lower(spec).compile()(z))
        single = np.asarray(jax.jit(jax.vmap(fn)).lower(spec).compile()(z))
    except Exception as err:  # any failure of a user's function, re-raised with the name
        raise TypeError(
            f"activation: {label!r} cannot be traced by JAX as a function of one array "
            f"({type(err).__name__}: {err})"
        ) from err
    if (
        shape != (2, 3)
        or whole.shape != z.shape
        or not np.allclose(whole, single, rtol=1e-5, atol=1e-6, equal_nan=True)
    ):
        raise ValueError(
            f"activation: {label!r} is not elementwise (σ(z)_i must depend on z_i alone, and "
            "keep the shape of z)"
        )


def _piecewise_activation(name: str, fn: ArrayFn, pieces: piecewise.Pieces) -> Activation:
    """A piecewise-linear σ with the exact expectations of :func:`ntkbook.piecewise.expectation`."""
    return Activation(
        name,
        fn,
        functools.partial(piecewise.sigma_dot, pieces),
        kinked=bool(pieces.kinks),
        expectation=functools.partial(piecewise.expectation, pieces),
    )


_from_function_cached = functools.lru_cache(maxsize=256)(_build)


@functools.lru_cache(maxsize=64)
def leaky_relu(slope: float) -> Activation:
    r"""Leaky ReLU σ(z) = z for z > 0, a z otherwise, with closed-form Gaussian expectations.

    Writing σ(z) = a z + (1 − a) relu(z) and using E[u relu(v)] = k12 / 2:

    .. math::

        E[σ(u)σ(v)] = a k_{12} + (1-a)^2 J_{relu}, \qquad
        E[\dot σ(u)\dot σ(v)] = a + (1-a)^2 \frac{π - θ}{2π}.

    ``a = 0`` is ReLU, ``a = −1`` is abs(z), ``a = 1`` the identity.
    """
    a = float(slope)
    return Activation(
        f"leaky_relu({a:g})",
        lambda z: jnp.where(z > 0, z, a * z),
        lambda z: jnp.where(z > 0, 1.0, a).astype(jnp.result_type(z, float)),
        kinked=True,
        expectation=functools.partial(_leaky_relu_expectation, a),
        homogeneous=True,
    )


def safe_sqrt(x: Array) -> Array:
    """√max(x, 0) whose gradient is 0 (not inf or NaN) where x ≤ 0."""
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def correlation(k11: Array, k12: Array, k22: Array) -> tuple[Array, Array]:
    r"""Scale s = √k11 √k22 and correlation ρ = k12 / s ∈ [−1, 1] of a 2-D Gaussian.

    ρ := 0 where s = 0 (a degenerate input such as x = 0 with β = 0), and ρ is clipped so a
    rounding error cannot push it outside [−1, 1]. The square roots are taken separately so
    that tiny variances (deep networks in float32) do not underflow in the product.
    """
    s = safe_sqrt(k11) * safe_sqrt(k22)
    rho = k12 * (_safe_rsqrt(k11) * _safe_rsqrt(k22))  # multiplications only: no division per pair
    return s, jnp.clip(rho, -1.0, 1.0)


def _safe_rsqrt(x: Array) -> Array:
    """1/√x where x > 0, else 0 (gradient 0 there)."""
    positive = x > 0
    return jnp.where(positive, jax.lax.rsqrt(jnp.where(positive, x, 1.0)), 0.0)


@jax.custom_jvp
def angle(rho: Array) -> tuple[Array, Array]:
    r"""θ = arccos ρ ∈ [0, π] and sin θ = √(1 − ρ²) for ρ ∈ [−1, 1], by elementwise arithmetic.

    XLA's CPU ``arccos``/``atan2`` are scalar loops (≈ 30 ns per entry, 10× a GEMM entry), so
    with :math:`a = |ρ|`:

    - float32: the polynomial of Abramowitz & Stegun 4.4.46,
      :math:`\arccos a = \sqrt{1-a} \sum_i c_i a^i`
      (error ≤ 2e-8, below float32 rounding), and sin θ = √(1−a) √(1+a);
    - float64: arccos a = √(1−a) g(a), g analytic on [0, 1] (its singularity is at a = −1), as
      a degree-18 polynomial in 2a − 1 fitted at import (:func:`_arccos_factor_coefficients`;
      error ≤ 7e-16). No division, so XLA fuses it like the float32 path;

    then θ = π − arccos a for ρ < 0. Where 1 − a ≤ ``_SNAP_ULPS`` units of roundoff (or a > 1),
    ρ counts as ±1, so θ = 0 or π: there ρ is ±1 up to rounding (ρ(x, x) comes out as
    :math:`1 - 2^{-23}` or so, its numerator and denominator being computed by different
    arithmetic),
    and arccos would turn a few ulps into an angle of √ulps (3e-4 in float32).

    The forward pass has one guard (a double ``where`` at the snap, so that second-order
    autodiff, which differentiates this primal too, never sees √0); the derivatives come from a
    custom JVP,

    .. math:: \frac{dθ}{dρ} = -\frac{1}{\sin θ}, \qquad \frac{d \sin θ}{dρ} = -\frac{ρ}{\sin θ},

    set to 0 where sin θ = 0 (ρ = ±1, i.e. x = ±x′), so gradients stay finite there.

    What the ReLU-type kernels then return at x = ±x′ (θ = 0 or π): their values are the
    limits; Σ is C² there (its singular part is θ³ or (π − θ)³), and its first and second
    derivatives are exact. :math:`\dot\Sigma \propto π − θ` has a cone-shaped kink in x − x′,
    so Θ is only Lipschitz there: its first derivative is the symmetric subgradient (the mean
    of the one-sided slopes, which a central difference measures), and its second derivative,
    singular in truth, is returned finite with the singular :math:`d^2θ/dρ^2` term dropped.
    No NaN under any composition of ``jvp``/``vjp`` (``grad``, ``jacfwd``, ``jacrev``,
    ``hessian``).
    """
    a = jnp.abs(rho)
    gap = 1.0 - a
    snap = gap <= _SNAP_ULPS * jnp.finfo(rho.dtype).eps
    # double where: under jacfwd ∘ jacrev JAX differentiates this primal too, and √0 has an
    # infinite derivative (0 · inf = NaN); the inner where keeps √ away from 0
    root = jnp.where(snap, 0.0, jnp.sqrt(jnp.where(snap, 1.0, gap)))
    sin = root * jnp.sqrt(1.0 + a)
    coefficients: tuple[float, ...]
    if jnp.finfo(rho.dtype).bits <= 32:
        x, coefficients = a, _AS_4_4_46
    else:
        x, coefficients = 2.0 * a - 1.0, _ARCCOS_64
    poly: Array | float = 0.0
    for c in coefficients[::-1]:
        poly = poly * x + c
    acos = root * poly
    return jnp.where(rho < 0, jnp.pi - acos, acos), sin


@angle.defjvp
def _angle_jvp(primals: tuple[Array], tangents: tuple[Array]) -> tuple[tuple, tuple]:
    (rho,), (d_rho,) = primals, tangents
    theta, sin = angle(rho)
    positive = sin > 0
    inv = jnp.where(positive, 1.0 / jnp.where(positive, sin, 1.0), 0.0)
    return (theta, sin), (-d_rho * inv, -rho * d_rho * inv)


_SNAP_ULPS = 8


def _arccos_factor_coefficients(degree: int) -> tuple[float, ...]:
    """Power-basis coefficients in x = 2a − 1 of the Chebyshev interpolant of arccos(a)/√(1−a)
    on a ∈ [0, 1] (float64, 4·degree nodes). Its Chebyshev coefficients fall like 5.8^−n (the
    singularity at a = −1 is x = −3), so the power basis is well conditioned: |coefficients| ≤ 1.5.
    """
    nodes = np.cos(np.pi * (np.arange(4 * degree) + 0.5) / (4 * degree))
    a = (nodes + 1.0) / 2.0
    fit = np.polynomial.chebyshev.chebfit(nodes, np.arccos(a) / np.sqrt(1.0 - a), degree)
    return tuple(float(c) for c in np.polynomial.chebyshev.cheb2poly(fit))


_ARCCOS_64 = _arccos_factor_coefficients(18)
_AS_4_4_46 = (
    1.5707963050,
    -0.2145988016,
    0.0889789874,
    -0.0501743046,
    0.0308918810,
    -0.0170881256,
    0.0066700901,
    -0.0012624911,
)
_TAN_C = tuple(math.tan(i * math.pi / 16) for i in range(5))
_SIN_MID = tuple(math.sin((2 * i + 1) * math.pi / 16) for i in range(4))  # |z| at atan t = mid


def _atan_small(x: Array) -> Array:
    """atan x for |x| ≤ tan(π/32) ≈ 0.098 by its Taylor series: 4 terms in float32 (error
    ≤ 1e-10), 8 in float64 (≤ 1e-18)."""
    x2 = x * x
    series = 0.0
    for n in range((3 if jnp.finfo(x.dtype).bits <= 32 else 7), -1, -1):
        series = series * x2 + (-1) ** n / (2 * n + 1)
    return x * series


def arcsin(z: Array) -> Array:
    r"""arcsin z for z ∈ [−1, 1], to a few ulps *relative* (small z included), elementwise.

    arcsin z = 2 atan t with :math:`t = |z|/(1 + s)`, s = √(1 − z²), t ∈ [0, 1]. With c = jπ/16
    the multiple of π/16 nearest atan t, read off :math:`|z|` (thresholds sin 2a_i at the
    midpoints a_i),

    .. math:: \operatorname{atan} t - c = \operatorname{atan}
        \frac{|z| - (1 + s)\tan c}{1 + s + |z| \tan c}.

    XLA's CPU ``asin`` is a scalar loop (≈ 30 ns per entry); with this the erf kernels run
    about 3× faster.
    """
    a = jnp.abs(z)
    s = safe_sqrt((1.0 - z) * (1.0 + z))
    j = functools.reduce(operator.add, [(a > m).astype(a.dtype) for m in _SIN_MID])
    tan_c = _tan_table(j)
    x = (a - (1.0 + s) * tan_c) / (1.0 + s + a * tan_c)
    return jnp.where(z < 0, -2.0, 2.0) * (j * (jnp.pi / 16) + _atan_small(x))


def _tan_table(j: Array) -> Array:
    """tan(j π / 16) for j ∈ {0, …, 4} by selection (no transcendental call)."""
    out = jnp.zeros_like(j)
    for i in range(1, 5):
        out = jnp.where(j == i, _TAN_C[i], out)
    return out


def _relu_expectation(k11: Array, k12: Array, k22: Array) -> tuple[Array, Array]:
    r"""Arc-cosine kernels (Cho & Saul 2009) for σ = relu:

    .. math::

        E[σ(u)σ(v)] = \frac{\sqrt{k_{11}k_{22}}}{2π}\big(\sin θ + (π - θ)\cos θ\big), \qquad
        E[\dot σ(u)\dot σ(v)] = \frac{π - θ}{2π}, \qquad \cos θ = ρ.
    """
    s, rho = correlation(k11, k12, k22)
    theta, sin = angle(rho)
    return s * (sin + (jnp.pi - theta) * rho) / (2 * jnp.pi), (jnp.pi - theta) / (2 * jnp.pi)


def _leaky_relu_expectation(a: float, k11: Array, k12: Array, k22: Array) -> tuple[Array, Array]:
    relu_ss, relu_dd = _relu_expectation(k11, k12, k22)
    return a * k12 + (1 - a) ** 2 * relu_ss, a + (1 - a) ** 2 * relu_dd


def _identity_expectation(k11: Array, k12: Array, k22: Array) -> tuple[Array, Array]:
    """E[uv] = k12 and E[1·1] = 1."""
    return k12, jnp.ones_like(k12)


def _erf_expectation(k11: Array, k12: Array, k22: Array) -> tuple[Array, Array]:
    r"""Williams (1997) for σ = erf:

    .. math::

        E[σ(u)σ(v)] = \frac{2}{π}\arcsin\frac{2k_{12}}{\sqrt{(1+2k_{11})(1+2k_{22})}},\qquad
        E[\dot σ(u)\dot σ(v)] = \frac{4}{π}\big((1+2k_{11})(1+2k_{22}) - 4k_{12}^2\big)^{-1/2}.

    The determinant is evaluated as 1 + 2(k11 + k22) + 4 max(k11 k22 − k12², 0) ≥ 1, so
    rounding cannot make it vanish.
    """
    a = 1.0 + 2.0 * k11
    b = 1.0 + 2.0 * k22
    arg = jnp.clip(2.0 * k12 / (jnp.sqrt(a) * jnp.sqrt(b)), -1.0, 1.0)
    det = 1.0 + 2.0 * (k11 + k22) + 4.0 * jnp.maximum(k11 * k22 - k12 * k12, 0.0)
    return 2.0 / jnp.pi * arcsin(arg), 4.0 / jnp.pi / jnp.sqrt(det)


def _sin_expectation(k11: Array, k12: Array, k22: Array) -> tuple[Array, Array]:
    r"""For σ = sin, σ̇ = cos, from E[cos(u ∓ v)] = exp(−(k11 + k22 ∓ 2k12)/2):

    .. math::

        E[\sin u \sin v] = e^{-(k_{11}+k_{22})/2}\sinh k_{12}, \qquad
        E[\cos u \cos v] = e^{-(k_{11}+k_{22})/2}\cosh k_{12},

    each evaluated as a sum of exp(±k12 − (k11 + k22)/2) ≤ 1, which cannot overflow.
    """
    half = 0.5 * (k11 + k22)
    plus, minus = jnp.exp(k12 - half), jnp.exp(-k12 - half)
    return 0.5 * (plus - minus), 0.5 * (plus + minus)


def _square_expectation(k11: Array, k12: Array, k22: Array) -> tuple[Array, Array]:
    r"""For σ(z) = z², σ̇ = 2z (Isserlis): :math:`E[u^2 v^2] = k_{11}k_{22} + 2k_{12}^2`,
    :math:`E[4uv] = 4k_{12}`."""
    return k11 * k22 + 2.0 * k12 * k12, 4.0 * k12


def _gelu_dot(z: Array) -> Array:
    """d/dz z Φ(z) = Φ(z) + z φ(z) (written out: autodiff through ``vmap(grad)`` is slower)."""
    return 0.5 * (1.0 + jax.scipy.special.erf(z / math.sqrt(2.0))) + z * jnp.exp(
        -0.5 * z * z
    ) / math.sqrt(2.0 * math.pi)


def _relu_dot(z: Array) -> Array:
    return (z > 0).astype(jnp.result_type(z, float))


def _erf_dot(z: Array) -> Array:
    return 2.0 / jnp.sqrt(jnp.pi) * jnp.exp(-jnp.square(z))


_REGISTRY: dict[str, Activation] = {
    "relu": Activation(
        "relu",
        jax.nn.relu,
        _relu_dot,
        kinked=True,
        expectation=_relu_expectation,
        homogeneous=True,
    ),  # fmt: skip
    "erf": Activation("erf", jax.scipy.special.erf, _erf_dot, expectation=_erf_expectation),
    "identity": Activation(
        "identity",
        lambda z: z,
        jnp.ones_like,
        expectation=_identity_expectation,
        homogeneous=True,
    ),  # fmt: skip
    "abs": Activation(
        "abs",
        jnp.abs,
        jnp.sign,
        kinked=True,
        expectation=functools.partial(_leaky_relu_expectation, -1.0),
        homogeneous=True,
    ),
    "tanh": Activation("tanh", jnp.tanh, lambda z: 1.0 - jnp.square(jnp.tanh(z))),
    "softplus": Activation("softplus", jax.nn.softplus, jax.nn.sigmoid),
    "gelu": Activation("gelu", functools.partial(jax.nn.gelu, approximate=False), _gelu_dot),
    "sin": Activation("sin", jnp.sin, jnp.cos, expectation=_sin_expectation),
    "square": Activation("square", jnp.square, lambda z: 2.0 * z, expectation=_square_expectation),
    "gelu_tanh": from_function(jax.nn.gelu, name="gelu_tanh"),
    "relu6": _piecewise_activation(
        "relu6", jax.nn.relu6, piecewise.Pieces(0.0, 0.0, (0.0, 6.0), (1.0, -1.0))
    ),
    "hard_tanh": _piecewise_activation(
        "hard_tanh", jax.nn.hard_tanh, piecewise.Pieces(-1.0, 0.0, (-1.0, 1.0), (1.0, -1.0))
    ),
    "hard_sigmoid": _piecewise_activation(
        "hard_sigmoid",
        jax.nn.hard_sigmoid,
        piecewise.Pieces(0.0, 0.0, (-3.0, 3.0), (1.0 / 6.0, -1.0 / 6.0)),
    ),  # fmt: skip
}
_ALIASES = {"linear": "identity", "none": "identity", "x2": "square"}

NAMES: tuple[str, ...] = tuple(sorted(_REGISTRY))


def get(activation: str | ArrayFn | Activation) -> Activation:
    r"""Resolve ``activation`` — a name, a JAX function, or an :class:`Activation`.

    Known names: ``relu``, ``erf``, ``identity`` (alias ``linear``), ``abs``, ``tanh``,
    ``softplus``, ``gelu`` (exact, with Φ), ``gelu_tanh`` (the tanh approximation, the default of
    ``jax.nn.gelu``), ``sin``, ``square``, and the piecewise-linear ``relu6``, ``hard_tanh``,
    ``hard_sigmoid`` (exact closed forms of :mod:`ntkbook.piecewise`, kinks declared); use
    :func:`leaky_relu` for leaky ReLU.

    A callable is first matched *by identity* against well-known JAX functions
    (:func:`recognise`): ``jax.nn.relu``, ``jnp.abs``, ``jnp.tanh``, ``jax.scipy.special.erf``,
    ``jax.nn.softplus``, ``jax.nn.gelu`` (either form, also as a ``functools.partial``),
    ``jnp.sin``, ``jnp.square``, ``jax.nn.identity``, ``jax.nn.relu6``, ``jax.nn.hard_tanh``,
    ``jax.nn.hard_sigmoid`` and ``jax.nn.leaky_relu`` (any
    ``negative_slope``), so that they get their closed form and their kink flag. Any other
    callable becomes :func:`from_function` (:math:`\dot\sigma` by autodiff,
    ``kinked=False``); the automatic
    rule of :mod:`ntkbook.limits` then checks numerically how fast its Hermite coefficients
    decay, which exposes a kink.

    Raises:
        ValueError: naming ``activation`` if the name is unknown or the object is not callable.
    """
    if isinstance(activation, Activation):
        return activation
    if isinstance(activation, str):
        key = _ALIASES.get(activation.lower(), activation.lower())
        if key not in _REGISTRY:
            raise ValueError(
                f"activation: unknown name {activation!r}; known: {', '.join(NAMES)} "
                "(or pass a JAX function, or ntkbook.activations.leaky_relu(slope))"
            )
        return _REGISTRY[key]
    known = recognise(activation)
    return known if known is not None else from_function(activation)


def _known_functions() -> tuple[tuple[object, str], ...]:
    """(JAX function, registry name) pairs recognised by identity in :func:`recognise`."""
    pairs = [
        (jax.nn.relu, "relu"),
        (jnp.abs, "abs"),
        (jnp.absolute, "abs"),
        (jnp.tanh, "tanh"),
        (jax.nn.tanh, "tanh"),
        (jax.scipy.special.erf, "erf"),
        (jax.lax.erf, "erf"),
        (jax.nn.softplus, "softplus"),
        (jnp.sin, "sin"),
        (jnp.square, "square"),
        (jax.nn.identity, "identity"),
        (jax.nn.relu6, "relu6"),
        (jax.nn.hard_tanh, "hard_tanh"),
        (jax.nn.hard_sigmoid, "hard_sigmoid"),
    ]
    return tuple(pairs)


_KNOWN = _known_functions()


def recognise(fn: object) -> Activation | None:
    """The registry's :class:`Activation` for a well-known JAX function, or ``None``.

    Matching is by identity (``fn is jax.nn.relu``), never by name or by sampling values.
    ``functools.partial`` objects with keyword arguments only are unwrapped:
    ``partial(jax.nn.gelu, approximate=False)`` is ``"gelu"``, ``jax.nn.gelu`` and
    ``partial(jax.nn.gelu, approximate=True)`` are ``"gelu_tanh"``, and
    ``partial(jax.nn.leaky_relu, negative_slope=a)`` is :func:`leaky_relu` (a)
    (``jax.nn.leaky_relu`` itself: a = 0.01, JAX's default).

    Example:
        >>> import functools, jax
        >>> recognise(functools.partial(jax.nn.gelu, approximate=False)).name
        'gelu'
        >>> recognise(lambda z: z) is None
        True
    """
    target, keywords = fn, {}
    if isinstance(fn, functools.partial):
        if fn.args:
            return None
        target, keywords = fn.func, dict(fn.keywords)
    if target is jax.nn.gelu:
        approximate = keywords.pop("approximate", True)
        if keywords or not isinstance(approximate, bool):
            return None
        return _REGISTRY["gelu_tanh" if approximate else "gelu"]
    if target is jax.nn.leaky_relu:
        slope = keywords.pop("negative_slope", 0.01)
        return None if keywords else leaky_relu(float(slope))
    if keywords:
        return None
    for known, name in _KNOWN:
        if target is known:
            return _REGISTRY[name]
    return None
