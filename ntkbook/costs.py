r"""Costs on network outputs and the notes' p_in inner product (notes §1, §2.1, §5).

The notes define, for functions f, g on the inputs with values in R^k,

.. math::

    \langle f, g\rangle_{p^{in}} = \mathbb{E}_{x\sim p^{in}}\big[f(x)^\top g(x)\big]
        = \frac1N \sum_{i=1}^N f(x_i)^\top g(x_i),

with p_in the empirical distribution of the N training inputs. A function is represented by its
values on those inputs: an array of shape (N, k).

A cost C(f) has a *function-space gradient* d with respect to this inner product,
:math:`C(f + h) = C(f) + \langle d, h\rangle_{p^{in}} + o(h)`. For a cost that averages a
per-example loss, :math:`C(f) = \frac1N \sum_i c(f(x_i), y_i)`, that gradient is
:math:`d(x_i) = \partial c/\partial f\,(f(x_i), y_i)`. The parameter
gradient then is

.. math::

    \partial_\theta C = \frac1N \sum_i J(x_i)^\top d(x_i),

so gradient flow :math:`\partial_t \theta = -\partial_\theta C` moves the outputs by
:math:`\partial_t f = -\frac1N \Theta d` (Θ the :math:`N n_L \times N n_L` Gram matrix of the
NTK), i.e. :math:`\partial_t f = -\Phi_\Theta(\langle d, \cdot\rangle_{p^{in}})`.
:mod:`ntkbook.training` and :mod:`ntkbook.regression` use this convention when
``normalise=True``; ``normalise=False`` drops the 1/N (the sum-of-squares cost
:math:`\tfrac12 \sum_i \lVert f(x_i) - y_i \rVert^2` of Lee et al. 2019), with the same d.

Example:
    >>> import jax.numpy as jnp
    >>> f = jnp.array([[1.0], [3.0]]); y = jnp.zeros((2, 1))
    >>> float(mse(f, y))  # ½ · (1 + 9) / 2
    2.5
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import _checks

Array = jax.Array


class Cost(NamedTuple):
    r"""A cost given by its value and its function-space gradient.

    Attributes:
        value: ``value(f, y)`` → C(f), a scalar, averaged over the N points (p_in convention).
        grad: ``grad(f, y)`` → :math:`d = \partial C/\partial f` with respect to
            :math:`\langle\cdot,\cdot\rangle_{p^{in}}`, shape (N, k).
    """

    value: Callable[[Array, Array], Array]
    grad: Callable[[Array, Array], Array]


def _pair(f: object, g: object, *, names: tuple[str, str] = ("f", "g")) -> tuple[Array, Array]:
    """Validate two functions-on-the-data of the same shape (N, k)."""
    f = _checks.matrix(names[0], f)
    g = _checks.matrix(names[1], g)
    if f.shape != g.shape:
        raise ValueError(f"{names[1]}: shape {g.shape} does not match {names[0]} {f.shape}")
    return f, g


def _inner(f: Array, g: Array) -> Array:
    """⟨f, g⟩_{p_in} without validation (jit-safe)."""
    return jnp.sum(f * g) / f.shape[0]


def inner(f: object, g: object) -> Array:
    r"""The p_in inner product of two functions given on the N training inputs.

    .. math:: \langle f, g\rangle_{p^{in}} = \frac1N \sum_{i=1}^N f(x_i)^\top g(x_i)

    Args:
        f, g: arrays (N, k) of the same shape.

    Returns:
        A scalar.
    """
    return _inner(*_pair(f, g))


def norm(f: object) -> Array:
    r""":math:`\lVert f \rVert_{p^{in}} = \sqrt{\langle f, f\rangle_{p^{in}}}` for f of shape
    (N, k)."""
    f = _checks.matrix("f", f)
    return jnp.sqrt(_inner(f, f))


def _mse(f: Array, y: Array) -> Array:
    return 0.5 * _inner(f - y, f - y)


def _mse_grad(f: Array, y: Array) -> Array:
    return f - y


def mse(f: object, y: object, *, normalise: bool = True) -> Array:
    r"""The least-squares cost.

    .. math:: C(f) = \tfrac12 \|f - y\|^2_{p^{in}} = \frac1{2N}\sum_i \|f(x_i) - y_i\|^2

    (without the 1/N when ``normalise=False``:
    :math:`\tfrac12 \sum_i \lVert f(x_i) - y_i \rVert^2`, as in Lee et al. 2019).

    Args:
        f: outputs (N, k).
        y: targets (N, k).
        normalise: use the p_in average (default) or the plain sum.
    """
    f, y = _pair(f, y, names=("f", "y"))
    c = _mse(f, y)
    return c if normalise else c * f.shape[0]


def mse_grad(f: object, y: object) -> Array:
    r"""The function-space gradient of :func:`mse`: d = f − y (the same for both ``normalise``)."""
    return _mse_grad(*_pair(f, y, names=("f", "y")))


MSE = Cost(value=_mse, grad=_mse_grad)
"""The least-squares :class:`Cost` (unvalidated callables, safe inside ``jit``)."""


def from_pointwise(loss: Callable[[Array, Array], Array]) -> Cost:
    r"""Turn a per-example loss c(f(x), y) into a :class:`Cost` whose gradient comes by autodiff.

    .. math:: C(f) = \frac1N\sum_i c(f(x_i), y_i), \qquad d(x_i) = \partial_f c(f(x_i), y_i)

    Args:
        loss: ``loss(f_i, y_i)`` → scalar for one example (f_i, y_i of shape (k,)).

    Example:
        >>> import jax.numpy as jnp
        >>> huber = from_pointwise(lambda f, y: jnp.sum(jnp.sqrt(1 + (f - y) ** 2) - 1))
        >>> huber.grad(jnp.zeros((2, 1)), jnp.zeros((2, 1))).shape
        (2, 1)
    """
    if not callable(loss):
        raise ValueError(f"loss: expected a callable loss(f_i, y_i), got {loss!r}")
    per_example = jax.vmap(loss)
    grad = jax.vmap(jax.grad(loss))
    return Cost(value=lambda f, y: jnp.mean(per_example(f, y)), grad=grad)


def scaled_mse(kappa: float) -> Cost:
    r"""Least squares on the rescaled output κ f, as a cost of the network's own output f.

    .. math::

        C(f) = \tfrac12 \|\kappa f - y\|^2_{p^{in}}, \qquad d = \partial_f C = \kappa(\kappa f - y).

    With :math:`\kappa = 1/\sqrt{n_{L-1}}` and the learning rate multiplied by 1/κ²,
    :func:`ntkbook.training.train` runs the *mean-field* scaling f_mf = κ f (the output layer
    divides by n rather than √n): the outputs still move by O(1), but the parameters, and so the
    kernel, move by O(1) too — the regime that Theorem 2 excludes (Chizat et al. 2019's
    "non-lazy" training).

    Args:
        kappa: κ > 0.

    Returns:
        a :class:`Cost` for the ``cost`` argument of :func:`ntkbook.training.train`; the recorded
        ``f_train`` is the unscaled f, and ``loss`` is C.
    """
    return _scaled_mse(_checks.positive("kappa", kappa))


@lru_cache(maxsize=64)
def _scaled_mse(kappa: float) -> Cost:
    """One :class:`Cost` object per κ, so that a jitted loop taking it as a static argument
    compiles once per κ."""
    return Cost(
        value=lambda f, y: _mse(kappa * f, y),
        grad=lambda f, y: kappa * _mse_grad(kappa * f, y),
    )
