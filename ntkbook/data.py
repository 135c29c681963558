r"""Small datasets made in code, with explicit ``jax.random`` keys (used by every chapter).

Inputs are rows: every function returns ``x`` of shape (N, n_0), the layout of
:func:`ntkbook.networks.apply`. The same key gives bitwise the same data.

- :func:`circle` — a deterministic grid of N angles γ_i on the unit circle, x_i = (cos γ_i, sin γ_i)
  (the inputs of Jacot et al.'s figures);
- :func:`sphere` — N points uniform on the unit sphere
  :math:`S^{n_0 - 1} \subset \mathbb R^{n_0}`;
- :func:`interval` — a deterministic grid on [low, high] as an (N, 1) input matrix;
- :func:`regression` — a toy regression problem :math:`y = f^*(x) + \text{noise} \cdot \varepsilon`
  on :math:`[-1, 1]^{n_0}`;
- :func:`digits` — scikit-learn's bundled 8×8 handwritten digits (real data, no download),
  split at random, centred and put on the sphere of radius :math:`\sqrt{n_0}`.

Example:
    >>> import jax
    >>> circle(8).shape
    (8, 2)
    >>> sphere(5, 3, key=jax.random.key(0)).shape
    (5, 3)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks

Array = jax.Array


class Dataset(NamedTuple):
    """A regression dataset.

    Attributes:
        x: inputs, (N, n_0).
        y: noisy targets y = f*(x) + noise · ε, (N, 1).
        y_clean: the noiseless targets f*(x), (N, 1).
    """

    x: Array
    y: Array
    y_clean: Array


def _float_dtype(dtype: jnp.dtype | None) -> jnp.dtype:
    """The requested float dtype, or JAX's default float (float64 when x64 is enabled)."""
    if dtype is None:
        return jnp.result_type(float)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"dtype: expected a floating dtype, got {dtype!r}")
    return jnp.dtype(dtype)


def circle_angles(n_angles: int, *, dtype: jnp.dtype | None = None) -> Array:
    r"""The angles :math:`\gamma_i = 2\pi i / N`, i = 0 … N − 1, of :func:`circle`.

    Args:
        n_angles: N ≥ 1.
        dtype: float dtype (default: JAX's default float).

    Returns:
        γ of shape (N,), in [0, 2π).
    """
    n = _checks.positive_int("n_angles", n_angles)
    return 2.0 * jnp.pi * jnp.arange(n, dtype=_float_dtype(dtype)) / n


def circle(n_angles: int, *, dtype: jnp.dtype | None = None) -> Array:
    r"""A deterministic grid of N points on the unit circle.

    .. math::

        x_i = (\cos\gamma_i, \sin\gamma_i), \qquad \gamma_i = 2\pi i / N .

    Args:
        n_angles: N ≥ 1.
        dtype: float dtype (default: JAX's default float).

    Returns:
        x of shape (N, 2), every row of norm 1; row i is at angle :func:`circle_angles`\ [i].

    Example:
        >>> circle(4).round(6).tolist()
        [[1.0, 0.0], [0.0, 1.0], [-1.0, -0.0], [-0.0, -1.0]]
    """
    gamma = circle_angles(n_angles, dtype=dtype)
    return jnp.stack([jnp.cos(gamma), jnp.sin(gamma)], axis=1)


def sphere(n: int, dim: int, *, key: Array, dtype: jnp.dtype | None = None) -> Array:
    r"""N points drawn uniformly on the unit sphere :math:`S^{d-1} \subset \mathbb{R}^d`.

    .. math::

        x_i = z_i / \lVert z_i \rVert, \qquad z_i \sim \mathcal N(0, I_d) \text{ i.i.d.}

    (the Gaussian is rotation invariant, so x_i is uniform on the sphere).

    Args:
        n: number of points N ≥ 1.
        dim: ambient dimension d = n_0 ≥ 1 (d = 1 gives ±1).
        key: a ``jax.random`` key.
        dtype: float dtype (default: JAX's default float).

    Returns:
        x of shape (N, d) with :math:`\lVert x_i \rVert = 1`.
    """
    key = _checks.key("key", key)
    n = _checks.positive_int("n", n)
    dim = _checks.positive_int("dim", dim)
    z = jax.random.normal(key, (n, dim), _float_dtype(dtype))
    return z / jnp.linalg.norm(z, axis=1, keepdims=True)


def interval(
    n: int, *, low: float = -1.0, high: float = 1.0, dtype: jnp.dtype | None = None
) -> Array:
    """A deterministic grid of N equally spaced points on [low, high], as inputs (N, 1).

    Args:
        n: number of points N ≥ 2.
        low, high: the end points, low < high (both included).
        dtype: float dtype (default: JAX's default float).

    Returns:
        x of shape (N, 1).
    """
    n = _checks.positive_int("n", n, minimum=2)
    if not float(low) < float(high):
        raise ValueError(f"high: must be > low, got low={low!r}, high={high!r}")
    return jnp.linspace(low, high, n, dtype=_float_dtype(dtype))[:, None]


def smooth_target(x: Array) -> Array:
    r"""The default regression target, smooth and of order one on :math:`[-1, 1]^{n_0}`:

    .. math::

        f^*(x) = \frac{1}{\sqrt{n_0}} \sum_{j=1}^{n_0} \sin(\pi x_j).

    Args:
        x: inputs (N, n_0).

    Returns:
        f*(x) of shape (N, 1).
    """
    return jnp.sum(jnp.sin(jnp.pi * x), axis=1, keepdims=True) / jnp.sqrt(x.shape[1])


def regression(
    n: int,
    *,
    key: Array,
    dim: int = 1,
    noise: float = 0.1,
    target: Callable[[Array], Array] = smooth_target,
    dtype: jnp.dtype | None = None,
) -> Dataset:
    r"""A toy regression problem: uniform inputs on :math:`[-1, 1]^{n_0}`, a smooth target plus
    noise.

    .. math::

        x_i \sim \mathcal U([-1, 1]^{n_0}), \qquad y_i = f^*(x_i) + \text{noise}\cdot\varepsilon_i,
        \qquad \varepsilon_i \sim \mathcal N(0, 1).

    Args:
        n: number of samples N ≥ 1.
        key: a ``jax.random`` key (split into one key for x and one for ε).
        dim: input dimension n_0 ≥ 1 (1 or 2 for pictures).
        noise: the noise standard deviation, ≥ 0.
        target: f*, mapping (N, n_0) to (N, 1); default :func:`smooth_target`.
        dtype: float dtype (default: JAX's default float).

    Returns:
        :class:`Dataset` ``(x, y, y_clean)``.

    Example:
        >>> import jax
        >>> ds = regression(20, key=jax.random.key(0), dim=2)
        >>> ds.x.shape, ds.y.shape
        ((20, 2), (20, 1))
    """
    key = _checks.key("key", key)
    n = _checks.positive_int("n", n)
    dim = _checks.positive_int("dim", dim)
    noise = _checks.nonnegative("noise", noise)
    if not callable(target):
        raise ValueError(f"target: expected a function of x (N, n_0), got {target!r}")
    dt = _float_dtype(dtype)
    kx, ke = jax.random.split(key)
    x = jax.random.uniform(kx, (n, dim), dt, minval=-1.0, maxval=1.0)
    y_clean = jnp.asarray(target(x), dt)
    if y_clean.shape != (n, 1):
        raise ValueError(
            f"target: must return shape ({n}, 1) for x of shape {x.shape}, got {y_clean.shape}"
        )
    y = y_clean + noise * jax.random.normal(ke, (n, 1), dt)
    return Dataset(x, y, y_clean)


# ------------------------------------------------------------------------------ real data (ch. 9)

DIGITS_SIZE = 1797
"""Images in scikit-learn's bundled 8×8 digits (``sklearn.datasets.load_digits``)."""


class Classification(NamedTuple):
    """A classification dataset split into training and test sets.

    Attributes:
        x: training inputs, (N, n_0).
        labels: training labels in {0, …, C − 1}, (N,) integers.
        x_test: test inputs, (M, n_0).
        labels_test: test labels, (M,).
        n_classes: C.
    """

    x: Array
    labels: Array
    x_test: Array
    labels_test: Array
    n_classes: int


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 images (flattened, 64 pixels in 0 … 16) and labels; read from the package."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # optional dependency: the ``data`` extra
        raise ImportError(
            "ntkbook.data.digits needs scikit-learn: pip install 'ntkbook[data]' "
            "(or scikit-learn>=1.3)"
        ) from err
    bunch = load_digits()
    return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target, dtype=np.int32)


def digits(
    *,
    key: Array,
    n_train: int,
    n_test: int,
    center: bool = True,
    dtype: jnp.dtype | None = None,
) -> Classification:
    r"""scikit-learn's 8×8 handwritten digits, split at random, inputs on the sphere of radius √n_0.

    The 1797 images (n_0 = 64 pixels, 10 classes) ship inside scikit-learn, so nothing is
    downloaded. A permutation drawn from ``key`` picks ``n_train`` training and ``n_test`` test
    images (disjoint). Each image u is then centred by the *training* mean ū (``center=True``)
    and projected onto the sphere of radius √n_0:

    .. math::

        x = \sqrt{n_0}\, \frac{u - \bar u}{\lVert u - \bar u \rVert}, \qquad
        \bar u = \frac{1}{N} \sum_{i \le N} u_i ,

    so that :math:`x^\top x / n_0 = 1`, the input scale of the notes' :math:`\Sigma^{(1)}`, and the
    kernels are positive
    definite (notes §7: inputs on a sphere). Without centring every pair of images has cosine
    ≳ 0.5, and the kernels are far worse conditioned.

    Args:
        key: a ``jax.random`` key for the split; the same key gives the same split.
        n_train: N ≥ 1 training images.
        n_test: M ≥ 1 test images, with N + M ≤ :data:`DIGITS_SIZE`.
        center: subtract the training mean image before projecting.
        dtype: float dtype (default: JAX's default float).

    Returns:
        :class:`Classification` with x (N, 64), labels (N,), x_test (M, 64), labels_test (M,),
        n_classes = 10.

    Raises:
        ValueError: naming ``key``, ``n_train``, ``n_test`` (too many images) or ``dtype``.
    """
    key = _checks.key("key", key)
    n_train = _checks.positive_int("n_train", n_train)
    n_test = _checks.positive_int("n_test", n_test)
    if n_train + n_test > DIGITS_SIZE:
        raise ValueError(
            f"n_test: n_train + n_test must be <= {DIGITS_SIZE}, got {n_train} + {n_test}"
        )
    dt = _float_dtype(dtype)
    images, labels = _load_digits()
    order = np.asarray(jax.random.permutation(key, DIGITS_SIZE))
    train, test = order[:n_train], order[n_train : n_train + n_test]
    mean = images[train].mean(axis=0) if center else np.zeros(images.shape[1])

    def project(u: np.ndarray) -> Array:
        v = u - mean
        norm = np.linalg.norm(v, axis=1, keepdims=True)
        return jnp.asarray(np.sqrt(v.shape[1]) * v / np.maximum(norm, 1e-300), dt)

    return Classification(
        project(images[train]),
        jnp.asarray(labels[train]),
        project(images[test]),
        jnp.asarray(labels[test]),
        10,
    )


def single_index(
    n: int,
    *,
    key: Array,
    dim: int,
    direction: Array | None = None,
    dtype: jnp.dtype | None = None,
) -> Dataset:
    r"""A single-index task on the sphere of radius √d: the target depends on one direction w.

    .. math::

        x_i = \sqrt{d}\, u_i,\ u_i \text{ uniform on } S^{d-1}, \qquad
        y_i = f^*(x_i) = \frac{\langle w, x_i\rangle^2 - 1}{\sqrt 2},

    the second Hermite polynomial of the projection ⟨w, x⟩ (mean 0, variance 1, ≈ N(0, 1) for
    large d), so y has mean 0 and variance (3d/(d + 2) − 1)/2 → 1. A rotation-invariant kernel
    spreads its capacity over all ≈ d²/2 quadratic directions; a network that learns w needs
    only one (noiseless: ``y == y_clean``).

    Args:
        n: number of points N ≥ 1.
        key: a ``jax.random`` key (the inputs; w too unless ``direction`` is given).
        dim: d ≥ 1.
        direction: w, a (d,) vector (normalised here); default: uniform on the sphere, drawn from
            a key split off ``key`` — pass it explicitly to draw a test set with the same w.
        dtype: float dtype (default: JAX's default float).

    Returns:
        :class:`Dataset` ``(x, y, y_clean)`` with x (N, d), y (N, 1).

    Raises:
        ValueError: naming ``key``, ``n``, ``dim`` or ``direction`` (wrong shape, zero, non-finite).
    """
    key = _checks.key("key", key)
    n = _checks.positive_int("n", n)
    dim = _checks.positive_int("dim", dim)
    dt = _float_dtype(dtype)
    kx, kw = jax.random.split(key)
    if direction is None:
        w = sphere(1, dim, key=kw, dtype=dt)[0]
    else:
        w = jnp.asarray(direction, dt)
        if w.shape != (dim,):
            raise ValueError(f"direction: expected shape ({dim},), got {w.shape}")
        _checks.finite("direction", w)
        norm = jnp.linalg.norm(w)
        if float(norm) == 0.0:
            raise ValueError("direction: must be non-zero")
        w = w / norm
    x = jnp.sqrt(jnp.asarray(dim, dt)) * sphere(n, dim, key=kx, dtype=dt)
    y = ((x @ w) ** 2 - 1.0)[:, None] / jnp.sqrt(jnp.asarray(2.0, dt))
    return Dataset(x, y, y)
