r"""Positive definiteness and spectra of kernel matrices (notes §7): the numerical rank,
the dimension of spherical harmonics, the zonal (Funk–Hecke) spectrum of a dot-product kernel
and the local decay rates of a spectrum."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from .activations import Activation
from .limits import kernels

Array = jax.Array


class Rank(NamedTuple):
    """The numerical rank of a symmetric positive semi-definite matrix, with its spectral gap.

    Attributes:
        rank: the number of eigenvalues above ``tol``.
        tol: the threshold, ``rtol`` · λ_max.
        eigs: all eigenvalues, in decreasing order (float64 NumPy).
        smallest_kept: λ_rank, the smallest eigenvalue counted (> tol).
        largest_dropped: the largest absolute value among the eigenvalues not counted (0 if none);
            round-off makes these of either sign.
        gap: smallest_kept / largest_dropped (inf if nothing is dropped): how unambiguous the
            rank is — a matrix of exact rank r has a gap of many orders of magnitude.
    """

    rank: int
    tol: float
    eigs: np.ndarray
    smallest_kept: float
    largest_dropped: float
    gap: float


def numerical_rank(gram: Array, *, rtol: float | None = None) -> Rank:
    r"""Rank of a symmetric PSD matrix K: the eigenvalues above a tolerance relative to λ_max.

    .. math::

        \operatorname{rank}_\tau K = \#\{i : \lambda_i(K) > \tau\},

        \tau = \mathrm{rtol}\cdot\lambda_{\max}(K), \quad
        \mathrm{rtol} = N\,\varepsilon_{64} \text{ by default.}

    A backward-stable symmetric eigensolver returns the eigenvalues of K + E with
    :math:`\lVert E\rVert_2 \lesssim p(N)\,\varepsilon\,\lVert K\rVert_2`, p(N) at most of order
    N; entries computed by closed forms carry a relative error of a few ε. Eigenvalues that are
    exactly zero therefore come out below :math:`N\varepsilon\lambda_{\max}`, and the rank is
    unambiguous when :attr:`Rank.gap` is large.

    Args:
        gram: a symmetric (N, N) matrix, finite (computed in float64).
        rtol: the tolerance relative to λ_max; default N · 2.2e-16.

    Returns:
        :class:`Rank`.

    Raises:
        ValueError: naming ``gram`` (not square, not finite, not symmetric to 1e-10 relative,
            λ_max ≤ 0) or ``rtol`` (not in (0, 1)).
    """
    k = np.asarray(gram, dtype=float)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] == 0:
        raise ValueError(f"gram: expected a square (N, N) matrix, got shape {k.shape}")
    if not np.all(np.isfinite(k)):
        raise ValueError("gram: contains NaN or inf")
    scale = np.max(np.abs(k))
    if np.max(np.abs(k - k.T)) > 1e-10 * scale:
        raise ValueError("gram: not symmetric (relative asymmetry above 1e-10)")
    n = k.shape[0]
    rtol = n * np.finfo(float).eps if rtol is None else float(rtol)
    if not 0.0 < rtol < 1.0:
        raise ValueError(f"rtol: must be in (0, 1), got {rtol!r}")
    eigs = np.linalg.eigvalsh(0.5 * (k + k.T))[::-1]
    if eigs[0] <= 0:
        raise ValueError("gram: largest eigenvalue is not positive")
    tol = rtol * eigs[0]
    kept, dropped = eigs[eigs > tol], eigs[eigs <= tol]
    largest_dropped = float(np.max(np.abs(dropped))) if dropped.size else 0.0
    gap = float(kept[-1] / largest_dropped) if largest_dropped > 0 else float("inf")
    return Rank(int(kept.size), float(tol), eigs, float(kept[-1]), largest_dropped, gap)


def harmonic_dimension(dim: int, degree: int) -> int:
    r"""The dimension of the spherical harmonics of degree k on :math:`S^{d-1}`.

    .. math::

        N(d, k) = \binom{k + d - 1}{k} - \binom{k + d - 3}{k - 2}

    (homogeneous polynomials of degree k in d variables, less those divisible by
    :math:`\lVert x\rVert^2`); N(2, k) = 2 for k ≥ 1, N(3, k) = 2k + 1. Polynomials of degree
    ≤ m restricted to the sphere span :math:`\sum_{k \le m} N(d, k)` dimensions.

    Args:
        dim: d ≥ 2, the ambient dimension n_0.
        degree: k ≥ 0.

    Raises:
        ValueError: naming ``dim`` or ``degree``.
    """
    d = _checks.positive_int("dim", dim, minimum=2)
    k = _checks.positive_int("degree", degree, minimum=0)
    return math.comb(k + d - 1, k) - (math.comb(k + d - 3, k - 2) if k >= 2 else 0)


class ZonalSpectrum(NamedTuple):
    """Eigenvalues of a zonal kernel on the sphere, one per degree (see :func:`zonal_spectrum`).

    Attributes:
        degree: k = 0 … K.
        mu: μ_k, the eigenvalue of the integral operator on every degree-k harmonic.
        multiplicity: N(d, k), how many harmonics share μ_k (:func:`harmonic_dimension`).
    """

    degree: np.ndarray
    mu: np.ndarray
    multiplicity: np.ndarray


def _gegenbauer_normalised(dim: int, max_degree: int, t: np.ndarray) -> np.ndarray:
    """(K + 1, n) Legendre polynomials of dimension d with P_k(1) = 1, by their recurrence."""
    p = np.empty((max_degree + 1,) + t.shape)
    p[0] = 1.0
    if max_degree >= 1:
        p[1] = t
    for k in range(1, max_degree):
        p[k + 1] = ((2 * k + dim - 2) * t * p[k] - k * p[k - 1]) / (k + dim - 2)
    return p


def zonal_spectrum(
    *,
    dim: int,
    max_degree: int,
    depth: int,
    kernel: str = "ntk",
    nodes: int | None = None,
    activation: str | Callable[[Array], Array] | Activation = "relu",
    beta: float = 0.0,
    sigma_w: float = 1.0,
    quadrature: str = "auto",
    points: int | None = None,
) -> ZonalSpectrum:
    r"""Funk–Hecke eigenvalues of Θ∞^(L) (or Σ^(L)) restricted to the sphere :math:`S^{d-1}`.

    On the unit sphere the kernels depend only on t = x·x′, κ(x, x′) = κ(t). For the operator
    :math:`(Tf)(x) = \E_{y \sim \mathrm{unif}(S^{d-1})}[\kappa(x \cdot y) f(y)]`, every spherical
    harmonic of degree k is an eigenfunction with eigenvalue

    .. math::

        \mu_k = \frac{\omega_{d-2}}{\omega_{d-1}} \int_0^\pi \kappa(\cos\gamma)\,
            P_k^{(d)}(\cos\gamma)\, \sin^{d-2}\gamma \, d\gamma,

        \frac{\omega_{d-2}}{\omega_{d-1}} = \frac{\Gamma(d/2)}{\sqrt\pi\,\Gamma((d-1)/2)},

    with :math:`P_k^{(d)}` the Legendre (Gegenbauer) polynomial of dimension d normalised by
    :math:`P_k^{(d)}(1) = 1` (d = 2: cos kγ, μ_k the Fourier coefficients of κ(cos γ) divided
    by 2 for k ≥ 1; d = 3: the Legendre polynomials), and
    :math:`\kappa(1) = \sum_k N(d, k)\, \mu_k`. The integral is taken by Gauss–Legendre in the
    angle γ, where the ReLU kernels are smooth on [0, π] (their kink is at t = 1 in t, not in γ).

    Args:
        dim: d = n_0 ≥ 2.
        max_degree: K ≥ 0, the largest degree.
        depth: L ≥ 1.
        kernel: ``"ntk"`` (Θ∞^(L)) or ``"nngp"`` (Σ^(L)).
        nodes: Gauss–Legendre nodes in γ (default max(512, 4K)); must exceed K.
        activation, beta, sigma_w, quadrature, points: as in :func:`ntkbook.limits.kernels`.

    Returns:
        :class:`ZonalSpectrum` (float64 NumPy).

    Raises:
        ValueError: naming ``dim``, ``max_degree``, ``kernel``, ``nodes`` or an option.
    """
    d = _checks.positive_int("dim", dim, minimum=2)
    k_max = _checks.positive_int("max_degree", max_degree, minimum=0)
    which = _checks.choice("kernel", kernel, ("ntk", "nngp"))
    n = max(512, 4 * k_max) if nodes is None else _checks.positive_int("nodes", nodes)
    if n <= k_max:
        raise ValueError(f"nodes: need more nodes than max_degree = {k_max}, got {n}")
    u, w = np.polynomial.legendre.leggauss(n)
    gamma, w = 0.5 * np.pi * (u + 1.0), 0.5 * np.pi * w
    x0 = np.zeros((1, d))
    x0[0, 0] = 1.0
    xg = np.zeros((n, d))
    xg[:, 0], xg[:, 1] = np.cos(gamma), np.sin(gamma)
    # one recursion for both kernels (layers=[-1]): Θ∞^(L) and Σ^(L) share a compilation
    k = kernels(
        jnp.asarray(x0), jnp.asarray(xg), depth=depth, activation=activation, beta=beta,
        sigma_w=sigma_w, quadrature=quadrature, points=points, dtype=jnp.float64, layers=[-1],
    )  # fmt: skip
    kappa = np.asarray(k.theta if which == "ntk" else k.sigma, float)[0, 0]
    const = math.gamma(d / 2) / (math.sqrt(math.pi) * math.gamma((d - 1) / 2))
    p = _gegenbauer_normalised(d, k_max, np.cos(gamma))
    mu = const * (p * (kappa * np.sin(gamma) ** (d - 2) * w)[None, :]).sum(axis=1)
    degrees = np.arange(k_max + 1)
    mult = np.array([harmonic_dimension(d, int(k)) for k in degrees])
    return ZonalSpectrum(degrees, mu, mult)


_DECAY_LAWS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "power": np.log,
    "geometric": lambda k: k,
    "stretched": np.sqrt,
}


def decay_rates(
    degree: np.ndarray, values: np.ndarray, *, edges: tuple[float, ...] | list[float],
    law: str = "power",
) -> np.ndarray:  # fmt: skip
    r"""Local decay rates of a deterministic positive sequence (eigenvalues μ_k, coefficients a_k).

    For window j (the degrees :math:`e_j \le k \le e_{j+1}`), the least-squares slope

    .. math::

        \begin{aligned}
        s_j &= \arg\min_{s, c} \sum_{k} \big(\log y_k - c - s\, u(k)\big)^2, \\
        u(k) &= \log k \ (\text{power}), \quad k \ (\text{geometric}), \quad
        \sqrt k \ (\text{stretched}),
        \end{aligned}

    so :math:`y_k \propto k^{s}`, :math:`e^{s k}` or :math:`e^{s\sqrt k}` within the window. A
    sequence that has reached its law shows slopes that *converge* from window to window; a
    sequence decaying faster than the law keeps steepening. There is no interval: the sequence
    is computed, not sampled (no seeds, no noise), so the only uncertainty is how far the windows
    are from the asymptotic regime — which the drift of the slopes shows. (For noisy
    measurements over widths × seeds use :func:`ntkbook.stats.local_slopes`.)

    Args:
        degree: positive degrees k, 1-D.
        values: positive y_k, same shape.
        edges: increasing window edges e_0 < e_1 < …; each window needs ≥ 2 distinct degrees.
        law: ``"power"``, ``"geometric"`` or ``"stretched"``.

    Returns:
        (len(edges) − 1,) slopes s_j.

    Raises:
        ValueError: naming ``degree``, ``values``, ``edges`` or ``law``.

    Example:
        >>> k = np.arange(1.0, 65.0)
        >>> np.round(decay_rates(k, k**-2.0, edges=(4, 16, 64)), 6).tolist()
        [-2.0, -2.0]
    """
    u_of = _DECAY_LAWS[_checks.choice("law", law, tuple(_DECAY_LAWS))]
    k, y = np.asarray(degree, dtype=float), np.asarray(values, dtype=float)
    if k.ndim != 1 or not np.all(np.isfinite(k)) or np.any(k <= 0):
        raise ValueError(f"degree: expected finite values > 0 in a 1-D array, got shape {k.shape}")
    if y.shape != k.shape or not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise ValueError(f"values: expected finite values > 0 of shape {k.shape}")
    e = np.asarray(edges, dtype=float)
    if e.ndim != 1 or e.size < 2 or np.any(np.diff(e) <= 0):
        raise ValueError(f"edges: need >= 2 increasing values, got {edges!r}")
    u, logy = u_of(k), np.log(y)
    out = []
    for lo, hi in zip(e[:-1], e[1:], strict=True):
        sel = (k >= lo) & (k <= hi)
        if np.unique(k[sel]).size < 2:
            raise ValueError(f"edges: window [{lo:g}, {hi:g}] holds fewer than 2 distinct degrees")
        out.append(float(np.polyfit(u[sel], logy[sel], 1)[0]))
    return np.asarray(out)
