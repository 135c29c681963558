r"""Depth against width: the relative variance of Θ(x, x) at depth L and width n (chapter 10).

:func:`ntk_diagonal_by_depth` draws Θ(x, x) of real networks of several depths from one draw of
the deepest per seed (one backward sweep for every depth). :func:`theta_law` samples the exact
finite-width law of Θ(x, x) for bias-free ReLU networks (a function of 3(L − 1) + 1 scalars, no
network), :func:`relative_variance` is the statistic R = n Var / mean², and
:func:`first_order_law` / :func:`forward_law` its first-order and forward-norm values,
(L − 1)(11L − 4)/(3L) and n((1 + 5/n)^(L−1) − 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from .. import _checks, montecarlo, networks

Array = jax.Array


def _diagonal_by_depth(
    widths: tuple[int, ...],
    depths: tuple[int, ...],
    activation: str,
    sigma_w: float,
    beta: float,
    x: Array,
    key: Array,
) -> Array:
    """Θ^{(L)}(x, x) for every L ≤ L_max from one draw of the deepest network, in one backward
    sweep: column L of ``g`` is ∂f_L/∂α̃^{(m)} of the depth-L network (zero while m ≥ L)."""
    net = networks.mlp(widths, activation=activation, sigma_w=sigma_w, beta=beta)
    params = networks.init(net, key=key, dtype=x.dtype)
    act, depth, n = net.activation, net.depth, widths[1]
    s = sigma_w / n**0.5
    hidden_W = jnp.stack([p.W for p in params[1:-1]] + [jnp.zeros((n, n), x.dtype)])
    hidden_b = jnp.stack([p.b for p in params[1:-1]])

    def forward(z: Array, layer: tuple[Array, Array]) -> tuple[Array, Array]:
        W, b = layer
        z_next = s * (act.sigma(z) @ W) + beta * b[None, :]
        return z_next, z_next

    z1 = networks.affine(net, params[0], x)  # α̃^(1), (N, n)
    _, rest = jax.lax.scan(forward, z1, (hidden_W[:-1], hidden_b))
    pre = jnp.concatenate([z1[None], rest])  # α̃^(1 … L_max−1), (L_max − 1, N, n)
    # A_l = c_w ‖α^(l)‖² + β², the factor of the parameters of affine layer l (l = 0 … L_max−1)
    a_in = sigma_w**2 * jnp.sum(x * x, axis=1) / x.shape[1] + beta**2
    a_hidden = s**2 * jnp.sum(jnp.square(act.sigma(pre)), axis=2) + beta**2  # (L_max − 1, N)
    a = jnp.concatenate([a_in[None], a_hidden])  # (L_max, N)
    readout = s * params[-1].W[:, 0]  # (n,)
    columns = jnp.arange(depth + 1)

    def backward(g: Array, layer: tuple[Array, Array, Array, Array]) -> tuple[Array, Array]:
        m, z, W, a_prev = layer  # m: index of α̃^(m); W: W^(m) (zero for m = L_max − 1)
        dot = act.sigma_dot(z)  # (N, n)
        g = dot[:, :, None] * (s * jnp.einsum("ij,njL->niL", W, g))
        start = dot[:, :, None] * readout[None, :, None]  # the depth-(m+1) network's g^(m)
        g = jnp.where((columns == m + 1)[None, None, :], start, g)
        return g, a_prev[:, None] * jnp.sum(g * g, axis=1)  # (N, L_max + 1)

    g0 = jnp.zeros((x.shape[0], n, depth + 1), x.dtype)
    ms = jnp.arange(depth - 1, 0, -1)
    _, terms = jax.lax.scan(backward, g0, (ms, pre[::-1], hidden_W[::-1], a[:-1][::-1]))
    theta = terms.sum(axis=0)  # (N, L_max + 1): Σ_{m < L} A_{m−1} ‖g_L^(m)‖²
    ells = jnp.asarray(depths)
    return theta[:, ells].T + a[ells - 1]  # + A_{L−1}: the readout layer's own term


def ntk_diagonal_by_depth(
    x: Array,
    *,
    key: Array,
    width: int,
    depths: Sequence[int],
    n_samples: int,
    activation: str = "relu",
    sigma_w: float = 1.0,
    beta: float = 0.0,
    block_size: int | None = None,
) -> Array:
    r"""Θ(x_i, x_i) of scalar-output networks of several depths L, all hidden widths n, over seeds.

    For each seed s one deepest network (widths n_0, n, …, n, 1 with L_max − 1 hidden layers) is
    drawn in the NTK parametrisation; the depth-L network is its first L − 1 affine layers
    followed by its readout layer :math:`W^{(L_{max}-1)}`. Each is a network of depth L with i.i.d.
    N(0, 1) parameters, so for each L the S values are i.i.d. draws of

    .. math::

        \begin{aligned}
        \Theta^{(L)}(x, x) &= \sum_p \big(\partial_{\theta_p} f(x)\big)^2
            = \sum_{l=0}^{L-1} A_l \, \lVert g^{(l+1)}_L(x) \rVert^2, \\
        A_l &= c_w^{(l)} \lVert \alpha^{(l)}(x) \rVert^2 + \beta^2 ,
        \end{aligned}

    with :math:`g^{(l)}_L = \partial f_L/\partial\tilde\alpha^{(l)}` (so :math:`g^{(L)}_L = 1`), the
    structured rule of
    :mod:`ntkbook.empirical`, evaluated for every depth in one backward sweep (a ``lax.scan``
    over layers carrying one column per depth). The networks of different L share their lower
    layers, which correlates depths but not seeds. Compiled once per (width, L_max).

    Args:
        key: a ``jax.random`` key; seed s uses ``jax.random.split(key, n_samples)[s]``.
        x: inputs (N, n_0) (typically one).
        width: the hidden width n ≥ 1.
        depths: the depths L ≥ 2 (numbers of affine layers; at least one hidden layer).
        n_samples: S ≥ 1.
        activation: σ (a name, as in :func:`ntkbook.networks.mlp`).
        sigma_w: σ_w (the package's default 1; √2 keeps a ReLU network's forward scale
            constant with depth — pass it explicitly).
        beta: β ≥ 0.
        block_size: seeds per vmapped block.

    Returns:
        (S, len(depths), N): :math:`\Theta^{(L)}(x_i, x_i)` for every seed, depth and input.

    Raises:
        ValueError: naming ``x``, ``width``, ``depths``, ``n_samples`` or the network options.
    """
    width = _checks.positive_int("width", width)
    try:
        ds = tuple(_checks.positive_int("depths", d, minimum=2) for d in depths)
    except TypeError:
        raise ValueError(f"depths: expected a sequence of integers >= 2, got {depths!r}") from None
    if not ds:
        raise ValueError("depths: expected at least one depth, got an empty sequence")
    x = _checks.matrix("x", x)
    networks.mlp((x.shape[1], width, 1), activation=activation, sigma_w=sigma_w, beta=beta)
    widths = (x.shape[1],) + (width,) * (max(ds) - 1) + (1,)
    draw = partial(_diagonal_by_depth, widths, ds, activation, float(sigma_w), float(beta), x)
    return montecarlo.ensemble(draw, key=key, n_samples=n_samples, block_size=block_size)


class ExactLaw(NamedTuple):
    r"""Draws of the exact law: Θ(x, x) and the forward norm :math:`A_{L-1}`, each (S,)."""

    theta: np.ndarray
    forward: np.ndarray


def theta_law(*, width: int, depth: int, n_samples: int, rng: np.random.Generator) -> ExactLaw:
    r"""Draws of Θ(x, x) of a bias-free ReLU network (σ_w² = 2, ‖x‖² = n_0, hidden widths n).

    With :math:`A_l = \frac2n\lVert\alpha^{(l)}(x)\rVert^2` (:math:`A_0 = 2`) and
    :math:`B_l = \lVert\partial f/\partial\tilde\alpha^{(l)}\rVert^2` (:math:`B_L = 1`),

    .. math::

        \begin{aligned}
        \Theta(x, x) &= \sum_{l=0}^{L-1} A_l B_{l+1}, \qquad
        A_l = A_{l-1}\,\frac2n\chi^2_{m_l}, \qquad m_l \sim \mathrm{Bin}(n, \tfrac12), \\
        B_l &= \frac2n\Big(\frac{f^2}{A_l} + B_{l+1}\rho_l\Big), \quad
        \rho_l \sim \chi^2_{m_l - 1}, \quad f^2 = A_{L-1} z^2,\ z \sim \mathcal N(0, 1),
        \end{aligned}

    all independent given the active counts :math:`m_l` (chapter 10 derives it). Exact at every
    finite n; the ratio R of :func:`relative_variance` does not depend on σ_w. Float64 scalar
    draws, 3(L − 1) + 1 per sample.

    Args:
        width: n ≥ 1.
        depth: L ≥ 2 (affine layers).
        n_samples: S ≥ 1.
        rng: a ``numpy.random.Generator``.

    Returns:
        :class:`ExactLaw` of S draws of Θ(x, x) and :math:`A_{L-1}`.

    Raises:
        ValueError: naming ``width``, ``depth``, ``n_samples`` or ``rng``.

    Example:
        >>> law = theta_law(width=64, depth=2, n_samples=4, rng=np.random.default_rng(0))
        >>> law.theta.shape
        (4,)
    """
    width = _checks.positive_int("width", width)
    depth = _checks.positive_int("depth", depth, minimum=2)
    n_samples = _checks.positive_int("n_samples", n_samples)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng: expected a numpy.random.Generator, got {rng!r}")
    m = rng.binomial(width, 0.5, size=(depth - 1, n_samples))  # active units m_l
    chi = 2 / width * rng.chisquare(np.maximum(m, 1)) * (m > 0)  # forward factors
    rho = rng.chisquare(np.maximum(m - 1, 1)) * (m > 1)  # ρ_l ~ χ²_{m_l − 1}
    a = 2 * np.cumprod(np.vstack([np.ones(n_samples), chi]), axis=0)  # A_0 … A_{L−1}
    f2 = a[-1] * rng.standard_normal(n_samples) ** 2  # f(x)²
    b, theta = np.ones(n_samples), a[-1].copy()  # B_L = 1: term l = L−1
    for k in range(depth - 2, -1, -1):  # B_{k+1}, A_k B_{k+1}
        b = (
            2
            / width
            * (np.divide(f2, a[k + 1], out=np.zeros_like(f2), where=a[k + 1] > 0) + b * rho[k])
        )
        theta += a[k] * b
    return ExactLaw(theta, a[-1])


def relative_variance(samples: ArrayLike, *, width: int, axis: int = 0) -> np.ndarray:
    r"""R = n Var(x) / E[x]² along ``axis`` (sample variance with ddof = 1).

    Args:
        samples: positive draws, ≥ 2 along ``axis``.
        width: n ≥ 1, the factor in front.
        axis: the sample axis.

    Returns:
        R with ``axis`` removed.

    Raises:
        ValueError: naming ``samples`` or ``width``.

    Example:
        >>> float(relative_variance(np.array([1.0, 3.0]), width=4))
        2.0
    """
    width = _checks.positive_int("width", width)
    x = np.asarray(samples, dtype=float)
    if x.ndim == 0 or x.shape[axis] < 2 or not np.all(np.isfinite(x)):
        raise ValueError(f"samples: need >= 2 finite draws along axis {axis}, got {x.shape}")
    return width * x.var(axis=axis, ddof=1) / x.mean(axis=axis) ** 2


def first_order_law(depth: int) -> float:
    r"""The limit :math:`\lim_n n\operatorname{Var}\Theta(x,x)/\mathbb E[\Theta(x,x)]^2
    = (L-1)(11L-4)/(3L)` for bias-free ReLU (3 at L = 2, slope 11/3 in L).

    Example:
        >>> first_order_law(2)
        3.0
    """
    depth = _checks.positive_int("depth", depth, minimum=2)
    return (depth - 1) * (11 * depth - 4) / (3 * depth)


def forward_law(*, width: int, depth: int) -> float:
    r"""The forward norm's exact :math:`n\big(\mathbb E[A_{L-1}^2]/\mathbb E[A_{L-1}]^2 - 1\big)
    = n\big((1 + 5/n)^{L-1} - 1\big)`, which tends to 5(L − 1).

    Example:
        >>> forward_law(width=5, depth=2)
        5.0
    """
    width = _checks.positive_int("width", width)
    depth = _checks.positive_int("depth", depth, minimum=2)
    return width * ((1 + 5 / width) ** (depth - 1) - 1)
