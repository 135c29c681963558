r"""Depth against width: the NTK's fluctuations grow like exp(c L/n) (Hanin & Nica 2019;
chapter 10).

:func:`ntk_diagonal_by_depth` draws Θ(x, x) of networks of several depths from one draw of the
deepest per seed (one backward sweep for every depth); :func:`fit_depth_width` fits
n · Var(log Θ) ≈ a + c (L − 1) over the grid of widths and depths.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks, montecarlo, networks

Array = jax.Array


def _diagonal_by_depth(
    widths: tuple[int, ...], depths: tuple[int, ...], activation: str, sigma_w: float,
    beta: float, x: Array, key: Array,
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


class DepthWidthFit(NamedTuple):
    r"""The fit ``n · stat(L, n) ≈ a + c (L − 1)``, i.e. stat ≈ c β + a/n with β = (L − 1)/n.

    Attributes:
        c: the fitted constant of the exponent (Hanin & Nica: 5 for ReLU).
        a: the fitted finite-depth offset (in units of 1/n).
        ci_low, ci_high: percentile bootstrap interval of ``c`` (seeds resampled per width).
        confidence: the interval's level.
        stat: (W, D) the statistic at each width and depth.
        beta: (W, D) β = (L − 1)/n.
    """

    c: float
    a: float
    ci_low: float
    ci_high: float
    confidence: float
    stat: np.ndarray
    beta: np.ndarray

    def contains(self, value: float) -> bool:
        """True when ``value`` lies in [ci_low, ci_high]."""
        return self.ci_low <= value <= self.ci_high


def _depth_width_stat(theta: np.ndarray, statistic: str) -> np.ndarray:
    """(..., S, D) positive samples → (..., D): Var(log Θ) or log(E[Θ²]/E[Θ]²) over S."""
    if statistic == "log_variance":
        return np.log(theta).var(axis=-2, ddof=1)
    return np.log(np.mean(theta**2, axis=-2) / np.mean(theta, axis=-2) ** 2)


def fit_depth_width(
    samples: Sequence[Array],
    *,
    widths: Sequence[int],
    depths: Sequence[int],
    statistic: str = "log_variance",
    n_boot: int = 1000,
    key: Array | None = None,
    confidence: float = 0.95,
) -> DepthWidthFit:
    r"""Fit the depth-to-width law of the NTK's fluctuations (Hanin & Nica 2019).

    For each width n_w and depth L_j a statistic of the S samples of Θ(x, x) is formed:
    ``"log_variance"``, :math:`V = \operatorname{Var}(\log\Theta)`, or ``"moment_ratio"``,
    :math:`V = \log\big(\mathbb E[\Theta^2]/\mathbb E[\Theta]^2\big)` (equal for a log-normal
    Θ). Then, by least squares over the whole grid,

    .. math::

        n\, V(L, n) \approx a + c\,(L - 1)
        \quad\Longleftrightarrow\quad
        V \approx c\,\beta + \frac{a}{n}, \qquad \beta = \frac{L-1}{n},

    so that the points collapse onto the line cβ when a/n is small. The interval for c resamples
    the seeds (whole rows, so the correlation between depths of one draw is kept) within each
    width.

    Args:
        samples: one array per width, each (S, D) positive (from :func:`ntk_diagonal_by_depth`
            at one input), S ≥ 2.
        widths: the W widths n.
        depths: the D depths L (≥ 2), the columns of every sample array.
        statistic: ``"log_variance"`` or ``"moment_ratio"``.
        n_boot: bootstrap resamples.
        key: ``jax.random`` key for the resampling (default ``jax.random.key(0)``).
        confidence: the interval's level, in (0, 1).

    Returns:
        :class:`DepthWidthFit`.

    Raises:
        ValueError: naming ``samples``, ``widths``, ``depths``, ``statistic``, ``n_boot`` or
            ``confidence``.
    """
    statistic = _checks.choice("statistic", statistic, ("log_variance", "moment_ratio"))
    ws = np.asarray([_checks.positive_int("widths", w) for w in widths], dtype=float)
    ds = np.asarray([_checks.positive_int("depths", d, minimum=2) for d in depths], dtype=float)
    if len(samples) != ws.size:
        raise ValueError(f"samples: expected one array per width ({ws.size}), got {len(samples)}")
    arrays = []
    for w, s in zip(widths, samples, strict=True):
        a = np.asarray(s, dtype=float)
        if a.ndim != 2 or a.shape[1] != ds.size or a.shape[0] < 2:
            raise ValueError(f"samples: width {w}: expected (S >= 2, {ds.size}), got {a.shape}")
        if not np.all(np.isfinite(a)) or np.any(a <= 0):
            raise ValueError(f"samples: width {w}: must be finite and > 0")
        arrays.append(a)
    if len(set((ds - 1)[None, :].repeat(ws.size, 0).ravel())) < 2:
        raise ValueError("depths: need at least two distinct depths to fit c")
    n_boot = _checks.positive_int("n_boot", n_boot)
    level = _checks.positive("confidence", confidence)
    if level >= 1:
        raise ValueError(f"confidence: must be in (0, 1), got {confidence!r}")
    key = _checks.key("key", jax.random.key(0) if key is None else key)

    u = np.broadcast_to(ds - 1, (ws.size, ds.size)).ravel()

    def fit(stats: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:  # stats: (B, D) each
        v = np.stack([w * st for w, st in zip(ws, stats, strict=True)], axis=-2)
        v = v.reshape(v.shape[:-2] + (-1,))
        return montecarlo._ols(np.broadcast_to(u, v.shape), v)

    stat = np.stack([_depth_width_stat(a, statistic) for a in arrays])
    a0, c0 = fit(list(stat))
    keys = jax.random.split(key, ws.size)
    boot = []
    for k, a in zip(keys, arrays, strict=True):
        idx = np.asarray(jax.random.randint(k, (n_boot, a.shape[0]), 0, a.shape[0]))
        boot.append(_depth_width_stat(a[idx], statistic))  # (B, D)
    _, cb = fit(boot)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(cb, [alpha, 1.0 - alpha])
    return DepthWidthFit(float(c0), float(a0), float(low), float(high), level, stat,
                         (ds[None, :] - 1) / ws[:, None])
