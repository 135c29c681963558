r"""Finite-width moments of a network's output, exactly (notes §3, chapter 3).

:func:`kurtosis_constant` is n times the excess kurtosis of a depth-2 network's output at one
input, exact at every width: the constant of the n⁻¹ rate at which the output becomes Gaussian
(Proposition 1), to compare with :func:`ntkbook.montecarlo.excess_kurtosis` of an ensemble.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import roots_genlaguerre

from .. import _checks, activations

Array = jax.Array


def kurtosis_constant(
    activation: str | Callable[[Array], Array],
    *,
    variance: float = 1.0,
    beta: float = 0.0,
    points: int = 100,
) -> float:
    r"""n · (excess kurtosis) of one hidden layer's output, exact at every width n.

    For :math:`f = n^{-1/2}\sum_{i=1}^n w_i\,\sigma(h_i) + \beta b` with :math:`w_i, b` standard
    Gaussian and :math:`h_i \sim \mathcal N(0, v)`, all independent (a network of depth 2 at one
    input, :math:`v = \Sigma^{(1)}(x, x)`), fourth cumulants add and
    :math:`\mathbb E[w^4] = 3`, so

    .. math::

        n\,\kappa(f) = \frac{3\,\mathbb E[\sigma(h)^4] - 3\,\mathbb E[\sigma(h)^2]^2}
            {\big(\mathbb E[\sigma(h)^2] + \beta^2\big)^2},

    15 for the ReLU with β = 0. The moments come from the half-range Gauss rule for
    :math:`|z|`, :math:`z \sim \mathcal N(0, 1)` (generalised Gauss–Laguerre in :math:`t = z^2/2`,
    α = −1/2), applied to :math:`\sigma(\sqrt v\,|z|)` and :math:`\sigma(-\sqrt v\,|z|)`
    separately: exact for σ polynomial on each half-line (ReLU, abs), fast for smooth σ.

    Args:
        activation: a name or JAX function, as in :func:`ntkbook.activations.get`.
        variance: v > 0.
        beta: β ≥ 0.
        points: quadrature nodes, 2 … 300 (the rule's weights underflow beyond).

    Returns:
        n κ as a float.

    Raises:
        ValueError: naming ``activation``, ``variance``, ``beta`` or ``points``.

    Example:
        >>> round(kurtosis_constant("relu"), 3)
        15.0
    """
    act = activations.get(activation)
    v = _checks.positive("variance", variance)
    b = _checks.nonnegative("beta", beta)
    points = _checks.positive_int("points", points, minimum=2)
    if points > 300:
        raise ValueError(f"points: at most 300 (the Laguerre weights underflow), got {points}")
    t, w = roots_genlaguerre(points, -0.5)
    r = np.sqrt(2.0 * v * t)
    w = w / np.sqrt(np.pi)  # E[g(|z|)] = Σ w_k g(√(2 t_k)) / √π
    both = np.asarray(act(jnp.asarray(np.concatenate([r, -r]))), dtype=float)
    m2, m4 = (float(np.sum(np.tile(w, 2) * both**k) / 2.0) for k in (2, 4))
    if m2 == 0.0:
        raise ValueError(f"activation: E[sigma(h)^2] = 0 for {act.name}")
    return float((3.0 * m4 - 3.0 * m2**2) / (m2 + b**2) ** 2)
