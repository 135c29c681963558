"""Input validation shared by every module: clear ``ValueError``s that name the argument.

Checks on values (finiteness) run only on concrete arrays; inside ``jit`` they are skipped, so
public functions validate before they enter compiled code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

_S = TypeVar("_S", bound=str)


def is_concrete(x: object) -> bool:
    """True when ``x`` holds values (not a JAX tracer inside jit/vmap/grad)."""
    return not isinstance(x, jax.core.Tracer)


def finite(name: str, x: jax.Array | np.ndarray) -> None:
    """Raise ``ValueError`` naming ``name`` if a concrete ``x`` has NaN or inf entries.

    Tested in NumPy: inside a ``jit``/``vmap`` trace even an op on a concrete array is staged
    out, and ``bool`` of the result would raise.
    """
    if is_concrete(x) and not bool(np.all(np.isfinite(np.asarray(x)))):
        raise ValueError(f"{name}: contains NaN or inf")


def matrix(
    name: str, x: object, *, n_features: int | None = None, width_name: str = "n_0"
) -> jax.Array:
    """Return ``x`` as a 2-D float array (N, n_features), checking shape and finiteness.

    Args:
        name: the argument's name, for the error message.
        x: array-like of shape (N, d); a 1-D array is *not* silently promoted.
        n_features: the required second dimension, if fixed.
        width_name: the notes' symbol of the second dimension, for the message (``n_0`` for
            inputs, ``n_L`` for outputs and targets).
    """
    try:
        arr = jnp.asarray(x)
    except (TypeError, ValueError):  # None, ragged lists, strings
        raise ValueError(f"{name}: expected a 2-D array, got {type(x).__name__}") from None
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (N, {width_name}), got shape {arr.shape}")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(
            f"{name}: expected {width_name} = {n_features} columns (second dimension), got "
            f"shape {arr.shape}"
        )
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.result_type(float))
    finite(name, arr)
    return arr


def positive_int(name: str, value: object, *, minimum: int = 1) -> int:
    """Return ``value`` as an int ≥ ``minimum`` or raise ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    return int(value)


def widths(value: Sequence[int]) -> tuple[int, ...]:
    """Validate layer widths (n_0, …, n_L): at least two entries, each an integer ≥ 1."""
    try:
        items = tuple(value)
    except TypeError:
        raise ValueError(f"widths: expected a sequence (n_0, ..., n_L), got {value!r}") from None
    if len(items) < 2:
        raise ValueError(f"widths: need at least (n_0, n_L) — depth >= 1 — got {items}")
    return tuple(positive_int(f"widths[{i}]", w) for i, w in enumerate(items))


def nonnegative(name: str, value: float) -> float:
    """Return ``value`` as a float ≥ 0 (finite) or raise ``ValueError`` naming ``name``."""
    v = float(value)
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"{name}: must be finite and >= 0, got {value!r}")
    return v


def positive(name: str, value: float) -> float:
    """Return ``value`` as a float > 0 (finite) or raise ``ValueError`` naming ``name``."""
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name}: must be finite and > 0, got {value!r}")
    return v


def key(name: str, value: object) -> jax.Array:
    """Return ``value`` if it is a ``jax.random`` key (typed, or legacy uint32 (2,)), else raise."""
    if isinstance(value, jax.Array) and jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
        if value.shape != ():
            raise ValueError(f"{name}: expected one key, got a key array of shape {value.shape}")
        return value
    if isinstance(value, jax.Array) and value.dtype == jnp.uint32 and value.shape == (2,):
        return value
    raise ValueError(f"{name}: expected a jax.random key (jax.random.key(seed)), got {value!r}")


def choice(name: str, value: _S, options: Sequence[str]) -> _S:
    """Return ``value`` if it is one of ``options``, else raise ``ValueError`` naming ``name``."""
    if value not in options:
        raise ValueError(f"{name}: expected one of {tuple(options)}, got {value!r}")
    return value


def float_dtype(name: str, dtype: DTypeLike) -> jnp.dtype:
    """``dtype`` as a JAX floating dtype, or ``ValueError`` naming ``name``."""
    try:
        dt = jnp.dtype(dtype)
    except TypeError:
        raise ValueError(f"{name}: not a dtype: {dtype!r}") from None
    if not jnp.issubdtype(dt, jnp.floating):
        raise ValueError(f"{name}: expected a floating dtype, got {dt}")
    return dt


def inputs(name: str, x: object, *, n_features: int | None = None) -> jax.Array:
    """:func:`matrix`, refusing besides complex and half-precision arrays and n_0 = 0 features.

    float16 and bfloat16 are refused rather than silently promoted: the kernels' arc-cosines
    and series have no accuracy left at 3 decimal digits.
    """
    if x is None or isinstance(x, (str, bytes)):
        raise TypeError(f"{name}: expected a 2-D array (N, n_0), got {type(x).__name__}")
    try:
        raw = x if hasattr(x, "dtype") else np.asarray(x)
    except ValueError:  # a ragged nested sequence
        raise ValueError(f"{name}: expected a 2-D array (N, n_0); rows of unequal length") from None
    if raw.dtype == object:
        raise TypeError(f"{name}: expected a numeric 2-D array (N, n_0), got objects {x!r:.60}")
    kind = jnp.dtype(raw.dtype)
    if jnp.issubdtype(kind, jnp.complexfloating):
        raise ValueError(f"{name}: complex inputs are not supported, got dtype {kind}")
    if jnp.issubdtype(kind, jnp.floating) and jnp.finfo(kind).bits < 32:
        raise ValueError(
            f"{name}: dtype {kind} is not supported; cast to float32 or float64 "
            "(half precision leaves the kernels no accurate digit)"
        )
    arr = matrix(name, x, n_features=n_features)
    if arr.shape[1] == 0:
        raise ValueError(f"{name}: n_0 = 0 features (shape {arr.shape}); need n_0 >= 1")
    return arr


def real_scalar(name: str, value: object) -> jax.Array:
    """``value`` as a 0-d real array (a float, a NumPy or JAX scalar, possibly traced), or raise
    ``ValueError`` naming ``name`` for arrays with more elements, complex or non-numbers."""
    try:
        arr = jnp.asarray(value)
    except TypeError:
        raise ValueError(f"{name}: expected a real scalar, got {value!r}") from None
    if arr.shape != ():
        raise ValueError(f"{name}: expected a scalar, got an array of shape {arr.shape}")
    if not (jnp.issubdtype(arr.dtype, jnp.floating) or jnp.issubdtype(arr.dtype, jnp.integer)):
        raise ValueError(f"{name}: expected a real scalar, got dtype {arr.dtype}")
    return arr


def concrete_value(x: jax.Array) -> float | None:
    """The float value of a scalar, also under ``jax.grad``/``jvp`` (whose tracers carry their
    primal value); ``None`` inside ``jit``/``vmap``, where there is no value yet."""
    if is_concrete(x):
        return float(x)
    try:
        from jax._src import core  # the primal of a differentiation tracer; no public API

        value = core.to_concrete_value(x)
    except (ImportError, AttributeError):  # pragma: no cover - depends on the JAX version
        return None
    return None if value is None else float(value)


def symmetric(name: str, k: object) -> jax.Array:
    """A finite, symmetric (N, N) kernel; symmetrised after a check at √eps relative tolerance."""
    k = matrix(name, k)
    if k.shape[0] != k.shape[1]:
        raise ValueError(f"{name}: expected a square (N, N) kernel, got shape {k.shape}")
    scale = float(jnp.max(jnp.abs(k)))
    # √eps: far above the round-off of a Gram matrix computed in the same precision, far below
    # any genuine asymmetry.
    rtol = np.sqrt(float(jnp.finfo(k.dtype).eps))
    if float(jnp.max(jnp.abs(k - k.T))) > rtol * max(scale, 1e-300):
        raise ValueError(f"{name}: not symmetric")
    return 0.5 * (k + k.T)


def train_test_blocks(
    names: tuple[str, str, str], xx: object, zx: object, zz: object
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """A kernel's blocks on training inputs X (N rows) and test inputs Z (M rows): (X, X)
    symmetric (N, N), (Z, X) (M, N), (Z, Z) symmetric (M, M); errors name the block."""
    kxx = symmetric(names[0], xx)
    kzx = matrix(names[1], zx, n_features=kxx.shape[0])
    kzz = symmetric(names[2], zz)
    if kzz.shape[0] != kzx.shape[0]:
        raise ValueError(f"{names[2]}: expected shape {(kzx.shape[0],) * 2}, got {kzz.shape}")
    return kxx, kzx, kzz


def times(name: str, t: object, *, integer: bool = False) -> tuple[jax.Array, bool]:
    """Times (or step counts) ≥ 0 as a 1-D float array, and whether the input was a scalar."""
    arr = np.asarray(t, dtype=float)
    if arr.ndim > 1 or arr.size == 0:
        raise ValueError(f"{name}: expected a scalar or a non-empty 1-D array, got {arr.shape}")
    if np.any(np.isnan(arr)) or np.any(arr < 0):
        raise ValueError(f"{name}: must be >= 0 (inf allowed), got {t!r}")
    if integer and (np.any(~np.isfinite(arr)) or np.any(arr != np.round(arr))):
        raise ValueError(f"{name}: expected non-negative integers, got {t!r}")
    return jnp.asarray(np.atleast_1d(arr)), arr.ndim == 0


def _eigh_tol(n: int, dtype: jnp.dtype) -> float:
    """Relative round-off of a symmetric eigendecomposition of an n × n matrix: ≈ n · eps."""
    return 10.0 * n * float(jnp.finfo(dtype).eps)


def psd_eigh(
    name: str, theta: jax.Array, reg: float, *, need_inverse: bool
) -> tuple[jax.Array, jax.Array]:
    """Eigendecomposition of Θ + reg·I, checking positive semi-definiteness (and invertibility)."""
    theta = theta + reg * jnp.eye(theta.shape[0], dtype=theta.dtype)
    lam, v = jnp.linalg.eigh(theta)
    top = float(jnp.max(jnp.abs(lam)))
    tol = _eigh_tol(theta.shape[0], theta.dtype) * top
    if float(lam[0]) < -tol:
        raise ValueError(f"{name}: not positive semi-definite (eigenvalue {float(lam[0]):.3g})")
    if need_inverse and float(lam[0]) <= tol:
        raise ValueError(
            f"{name}: singular or ill-conditioned (smallest eigenvalue {float(lam[0]):.3g} of "
            f"largest {top:.3g}); t = inf needs an invertible kernel: pass reg > 0"
        )
    return jnp.clip(lam, 0.0, None), v


def gram_range(xs: Sequence[jax.Array], sigma_w: float | None, dtype: DTypeLike) -> None:
    """Raise ``ValueError`` naming ``x1`` (or ``x2``) if σ_w² ‖x‖² of a concrete input row
    overflows ``dtype`` (float32 inputs of norm ~1e19 and more): the Gram matrix would be inf
    and the kernels NaN. Computed in float64 on the host."""
    if sigma_w is None:
        return
    top = float(np.finfo(np.dtype(dtype)).max) / 16  # headroom for the layer recursion
    for name, x in zip(("x1", "x2"), xs, strict=False):
        if not is_concrete(x) or x.size == 0:
            continue
        reach = sigma_w**2 * float(np.max(np.sum(np.square(np.asarray(x, np.float64)), axis=1)))
        if reach > top:
            raise ValueError(
                f"{name}: σ_w² ‖x‖² reaches {reach:.2g}, beyond the {np.dtype(dtype).name} range "
                f"({top * 16:.2g}), so the kernels would be NaN; compute in float64 "
                "(dtype=jnp.float64) or rescale the inputs"
            )
