r"""The book's figures, in one house style (used by every chapter).

Every function takes an ``ax`` (``None`` creates a new figure in the house style) and returns
the axes it drew on (``ax.figure`` is the figure). Nothing is kept between calls; the only
shared state is the style, applied with :func:`style` while a function draws.

House style: figures drawn for the book's text column, opaque white figure and axes backgrounds
(figures stay readable on a dark page theme), and the Okabe–Ito colour-blind-safe palette
:data:`PALETTE` as the colour cycle.

The text column is about 720 CSS px wide at a 1280 px window, and a figure is scaled to fit it.
A figure :data:`MAX_WIDTH_IN` = 7 in wide is therefore shown at about 100 px per inch, where the
house style's smallest font (10 pt: ticks and legends) is about 14 px tall. A wider figure is
shrunk and its text with it (a 15 in figure: 10 pt becomes 6.7 px), so :func:`figure` warns
about one, and the book's browser check (``scripts/browser_check.py``) fails on text rendered
below 9 px. Draw one panel per row, or at most two side by side.

Importing this module changes no global state (rcParams are applied only while a function
draws, and IPython's inline figure format is left alone). The book's chapters opt into SVG
figures themselves, with ``%config InlineBackend.figure_formats = ['svg']`` in their first cell.
This module needs matplotlib: ``pip install 'ntkbook[plot]'``.

- :func:`figure` — a new figure (grid of axes) in the house style;
- :func:`loglog_rate` — error against width (or step size) on log-log axes with a fitted slope,
  its confidence interval in the legend, and a theory-slope guide;
- :func:`kernel_heatmap` — a kernel matrix :math:`K(x_i, x_j)`, or :math:`\Theta_{kk'}(x_i, x_j)`
  shown in blocks k, k′;
- :func:`spectrum` — eigenvalues in decreasing order on a log scale;
- :func:`network_schematic` — the network of the notes' Fig. 1.

Example:
    >>> import numpy as np
    >>> ax = loglog_rate(None, [1, 2, 4], [1.0, 0.25, 0.0625], theory_slope=-2, label="error")
    >>> ax.get_xscale(), ax.get_yscale()
    ('log', 'log')
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

try:
    import matplotlib as mpl
    from cycler import cycler
    from matplotlib.lines import Line2D
except ImportError as err:  # pragma: no cover - exercised by tests/test_package.py in a subprocess
    raise ImportError(
        "ntkbook.plotting needs matplotlib: pip install 'ntkbook[plot]' (or matplotlib>=3.8)"
    ) from err

from . import _checks

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.typing import RcKeyType

#: Okabe & Ito (2008) colour-blind-safe palette: blue, orange, bluish green, vermillion,
#: reddish purple, sky blue, yellow, black.
PALETTE: tuple[str, ...] = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
    "#000000",
)

#: Widest figure (inches) that the text column shows at ≥ 100 px per inch (see the module docs).
MAX_WIDTH_IN: float = 7.0

#: Smallest font size (points) of the house style; no text in a figure should be smaller.
MIN_FONT_PT: float = 10.0

#: rcParams of the house style (applied by :func:`style`).
STYLE: dict[RcKeyType, Any] = {
    "figure.facecolor": "white",
    "figure.edgecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "savefig.transparent": False,
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "savefig.format": "svg",
    "svg.fonttype": "path",
    "svg.hashsalt": "ntkbook",
    "figure.figsize": (6.5, 3.8),
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "legend.title_fontsize": 10,
    "figure.titlesize": 12,
    "legend.framealpha": 0.9,
    "lines.linewidth": 1.8,
    "lines.markersize": 6,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.prop_cycle": cycler(color=list(PALETTE)),
    "image.cmap": "viridis",
}


class RateLike(Protocol):
    """What :func:`loglog_rate` reads from a fit (e.g. :class:`ntkbook.stats.RateFit`):
    ``log y ≈ intercept + slope · log x`` (natural logs), slope CI [ci_low, ci_high]."""

    slope: float
    intercept: float
    ci_low: float
    ci_high: float


@contextlib.contextmanager
def style() -> Iterator[None]:
    """Apply the house style (:data:`STYLE`) inside a ``with`` block.

    Example:
        >>> import matplotlib.pyplot as plt
        >>> with style():
        ...     fig, ax = plt.subplots()
        >>> fig.get_facecolor()
        (1.0, 1.0, 1.0, 1.0)
    """
    # rc_context restores every rcParam on exit, "interactive" included. In Jupyter the inline
    # backend is activated by the first figure and switches interactive mode on; if that figure
    # is drawn here, the restore would switch it off again and later cells would show no
    # figures. The interactive mode set inside the block is therefore kept.
    with mpl.rc_context(STYLE):
        try:
            yield
        finally:
            interactive = mpl.is_interactive()
    mpl.interactive(interactive)


def _opaque(ax: Axes) -> None:
    """Make the figure and axes backgrounds opaque white (Jupyter's inline backend defaults to a
    transparent figure, which is unreadable on a dark theme)."""
    ax.figure.patch.set_facecolor("white")
    ax.figure.patch.set_alpha(1.0)
    ax.set_facecolor("white")


def figure(
    nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] | None = None
) -> tuple[object, np.ndarray]:
    """A new figure with an ``nrows × ncols`` grid of axes, in the house style.

    The default size fits the text column: 6.5 in wide for one column of panels, 7 in for two or
    more; 3.8 in per row for one column, 3.2 in per row otherwise. A ``figsize`` wider than
    :data:`MAX_WIDTH_IN` is allowed but warned about: the page would shrink it, and its text,
    below legibility (stack the panels instead).

    Args:
        nrows, ncols: the grid, each ≥ 1.
        figsize: (width, height) in inches, each > 0; default as above.

    Returns:
        ``(fig, axes)`` with ``axes`` always a 2-D object array of shape (nrows, ncols).

    Raises:
        ValueError: naming ``nrows``, ``ncols`` or ``figsize`` on a bad value.
    """
    import matplotlib.pyplot as plt

    nrows = _checks.positive_int("nrows", nrows)
    ncols = _checks.positive_int("ncols", ncols)
    size: tuple[float, ...]
    if figsize is None:
        size = (6.5, 3.8 * nrows) if ncols == 1 else (MAX_WIDTH_IN, 3.2 * nrows)
    else:
        size = tuple(float(v) for v in figsize)
        if len(size) != 2 or not all(np.isfinite(v) and v > 0 for v in size):
            raise ValueError(f"figsize: expected (width, height) in inches > 0, got {figsize}")
        if size[0] > MAX_WIDTH_IN:
            warnings.warn(
                f"figsize: {size[0]:g} in is wider than the text column ({MAX_WIDTH_IN:g} in); "
                f"the page will shrink its {MIN_FONT_PT:g} pt text below "
                f"{MIN_FONT_PT * MAX_WIDTH_IN / size[0]:.1f} pt. Stack the panels instead.",
                UserWarning,
                stacklevel=2,
            )
    with style():
        fig, axes = plt.subplots(nrows, ncols, figsize=size, squeeze=False, layout="constrained")
    for ax in axes.flat:
        _opaque(ax)
    return fig, axes


def _axes(ax: Axes | None) -> Axes:
    """``ax`` itself, or the single axes of a new house-style figure."""
    if ax is None:
        _, axes = figure()
        ax = axes[0, 0]
    _opaque(ax)
    return ax


def _positive_vector(name: str, values: object) -> np.ndarray:
    """``values`` as a finite 1-D float array of positive entries (for log axes)."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name}: log axes need finite values > 0, got {arr}")
    return arr


def loglog_rate(
    ax: Axes | None,
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    *,
    fit: RateLike | None = None,
    theory_slope: float | None = None,
    label: str | None = None,
    yerr: Sequence[float] | np.ndarray | None = None,
    color: str | None = None,
) -> Axes:
    r"""Points (x_i, y_i) on log-log axes, with a fitted power law and a theory-slope guide.

    The fitted line is :math:`y = e^{c}\, x^{s}` with c = ``fit.intercept``, s = ``fit.slope``
    (natural logs, as :func:`ntkbook.stats.fit_rate` returns); its legend entry reads
    ``fit: slope s [ci_low, ci_high]`` (two decimals). The theory guide is the dashed line of slope
    ``theory_slope`` through the geometric mean of the points, labelled ``theory: slope …``.

    Args:
        ax: axes to draw on, or ``None`` for a new figure.
        x, y: positive values (e.g. widths and errors), same length.
        fit: a rate fit of ``(x, y)``, or ``None``.
        theory_slope: the slope the theory predicts, or ``None``.
        label: legend label of the points.
        yerr: optional symmetric error bars (same length as y, ≥ 0).
        color: colour of the points and fitted line (default: next in the palette).

    Returns:
        The axes. ``ax.lines`` in drawing order: points, [fit line], [theory guide].

    Raises:
        ValueError: naming ``x``, ``y`` or ``yerr`` on empty, non-positive or mismatched input.
    """
    xs = _positive_vector("x", x)
    ys = _positive_vector("y", y)
    if xs.shape != ys.shape:
        raise ValueError(f"y: expected the shape of x {xs.shape}, got {ys.shape}")
    ax = _axes(ax)
    with style():
        if yerr is None:
            (points,) = ax.plot(xs, ys, "o", color=color, label=label)
        else:
            err = np.asarray(yerr, dtype=float)
            if err.shape != ys.shape or not np.all(np.isfinite(err)) or np.any(err < 0):
                raise ValueError(f"yerr: expected finite values >= 0 of shape {ys.shape}")
            points = ax.errorbar(xs, ys, yerr=err, fmt="o", color=color, label=label, capsize=3)[0]
        drawn = points.get_color()  # the palette's colour when none was given
        grid = np.geomspace(xs.min(), xs.max(), 50)
        if fit is not None:
            ax.plot(
                grid,
                np.exp(fit.intercept) * grid**fit.slope,
                "-",
                color=drawn,
                label=f"fit: slope {fit.slope:.2f} [{fit.ci_low:.2f}, {fit.ci_high:.2f}]",
            )
        if theory_slope is not None:
            x0, y0 = np.exp(np.mean(np.log(xs))), np.exp(np.mean(np.log(ys)))
            ax.plot(
                grid,
                y0 * (grid / x0) ** theory_slope,
                "--",
                color="0.35",
                label=f"theory: slope {theory_slope:g}",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        _integer_ticks(ax, xs)
        if ax.get_legend_handles_labels()[1]:
            ax.legend()
    return ax


def _integer_ticks(ax: Axes, xs: np.ndarray) -> None:
    """On a log x-axis over a few integers (widths), label exactly those integers; otherwise
    drop the minor tick labels, which overlap when the axis spans less than two decades."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    if xs.size <= 10 and np.all(xs == np.round(xs)):
        ax.xaxis.set_major_locator(FixedLocator(xs.tolist()))
        ax.xaxis.set_major_formatter(lambda v, _pos: f"{v:.0f}")
        ax.xaxis.set_minor_locator(NullLocator())
    else:
        ax.xaxis.set_minor_formatter(NullFormatter())


def _blocks(K: np.ndarray) -> tuple[np.ndarray, int]:
    """Θ (N1, N2, n_L, n_L) → the (n_L N1, n_L N2) matrix of blocks [Θ_kk′(x_i, x_j)]_{k,k′}."""
    n1, n2, m, m2 = K.shape
    if m != m2:
        raise ValueError(f"K: expected (N1, N2, n_L, n_L), got shape {K.shape}")
    return K.transpose(2, 0, 3, 1).reshape(m * n1, m2 * n2), m


def kernel_heatmap(
    ax: Axes | None,
    K: np.ndarray,
    *,
    title: str | None = None,
    cmap: str | None = None,
    colorbar: bool = True,
    extent: tuple[float, float, float, float] | None = None,
) -> Axes:
    r"""A heatmap of a kernel matrix.

    A 2-D ``K`` (N1, N2) is shown as is. A 4-D ``K`` (N1, N2, n_L, n_L) — the full NTK
    :math:`\Theta_{kk'}(x_i, x_j)` — is shown as an :math:`n_L \times n_L` grid of N1 × N2 blocks:
    block (k, k′) is the matrix :math:`[\Theta_{kk'}(x_i, x_j)]_{ij}`, the blocks are separated by
    white lines and labelled by k.
    Non-negative kernels use a sequential colour map (viridis); kernels with both signs use a
    diverging map (RdBu_r) with limits ±max|K|, so that zero is white.

    Args:
        ax: axes to draw on, or ``None`` for a new figure.
        K: the kernel, 2-D or 4-D, finite.
        title: axes title.
        cmap: colour map name (default chosen from the signs of K as above).
        colorbar: add a colour bar.
        extent: (left, right, bottom, top) data coordinates, e.g. angles; 2-D K only.

    Returns:
        The axes (the image is ``ax.images[0]``).
    """
    arr = np.asarray(K, dtype=float)
    if arr.ndim not in (2, 4):
        raise ValueError(f"K: expected 2-D (N1, N2) or 4-D (N1, N2, n_L, n_L), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("K: contains NaN or inf")
    n_blocks = 1
    if arr.ndim == 4:
        if extent is not None:
            raise ValueError("extent: only for a 2-D K")
        arr, n_blocks = _blocks(arr)
    ax = _axes(ax)
    with style():
        kw: dict[str, Any]
        if arr.min() < 0:
            vmax = float(np.abs(arr).max()) or 1.0
            kw = {"cmap": cmap or "RdBu_r", "vmin": -vmax, "vmax": vmax}
        else:
            kw = {"cmap": cmap or "viridis"}
        origin: Literal["upper", "lower"] = "lower" if extent is not None else "upper"
        im = ax.imshow(arr, interpolation="none", origin=origin, extent=extent, **kw)
        ax.grid(False)
        if n_blocks > 1:
            rows, cols = arr.shape[0] // n_blocks, arr.shape[1] // n_blocks
            for k in range(1, n_blocks):
                ax.axhline(k * rows - 0.5, color="white", linewidth=2)
                ax.axvline(k * cols - 0.5, color="white", linewidth=2)
            ax.set_xticks([(k + 0.5) * cols - 0.5 for k in range(n_blocks)])
            ax.set_xticklabels([f"k′={k + 1}" for k in range(n_blocks)])
            ax.set_yticks([(k + 0.5) * rows - 0.5 for k in range(n_blocks)])
            ax.set_yticklabels([f"k={k + 1}" for k in range(n_blocks)])
        if colorbar:
            ax.figure.colorbar(im, ax=ax, shrink=0.85)
        if title is not None:
            ax.set_title(title)
    return ax


def spectrum(
    ax: Axes | None,
    eigs: Sequence[float] | np.ndarray,
    *,
    label: str | None = None,
    relative: bool = False,
    color: str | None = None,
) -> Axes:
    r"""Eigenvalues λ_1 ≥ λ_2 ≥ … against their rank i on a log y-axis.

    Eigenvalues ≤ 0 (round-off in a positive semi-definite kernel) cannot be shown on a log
    axis: they are left out and counted in the legend label (``… (m ≤ 0 not shown)``).

    Args:
        ax: axes to draw on, or ``None`` for a new figure.
        eigs: eigenvalues (any order), 1-D, finite.
        label: legend label.
        relative: divide by the largest eigenvalue (plot λ_i / λ_1).
        color: line colour (default: next in the palette).

    Returns:
        The axes; the line's x data are the ranks 1, 2, … of the positive eigenvalues.
    """
    lam = np.asarray(eigs, dtype=float)
    if lam.ndim != 1 or lam.size == 0 or not np.all(np.isfinite(lam)):
        raise ValueError(f"eigs: expected a non-empty finite 1-D array, got shape {lam.shape}")
    lam = np.sort(lam)[::-1]
    if lam[0] <= 0:
        raise ValueError("eigs: need at least one eigenvalue > 0 for a log scale")
    if relative:
        lam = lam / lam[0]
    rank = np.arange(1, lam.size + 1)
    keep = lam > 0
    n_dropped = int(lam.size - keep.sum())
    if label is not None and n_dropped:
        label = f"{label} ({n_dropped} ≤ 0 not shown)"
    ax = _axes(ax)
    with style():
        ax.plot(rank[keep], lam[keep], ".-", color=color, label=label)
        ax.set_yscale("log")
        ax.set_xlabel("rank $i$")
        ax.set_ylabel(r"$\lambda_i / \lambda_1$" if relative else r"$\lambda_i$")
        if label is not None:
            ax.legend()
    return ax


def _layer_label(j: int, depth: int) -> str:
    """The column label of layer ``j`` (l in the notes) in :func:`network_schematic`."""
    if j == 0:
        return r"$\alpha^{(0)} = x$"
    if j == depth:
        return rf"$f = \tilde\alpha^{{({j})}}$"
    return rf"$\tilde\alpha^{{({j})}} \to \alpha^{{({j})}}$"


def network_schematic(
    ax: Axes | None = None,
    *,
    nodes: Sequence[int] = (3, 4, 4, 2),
    symbolic: bool = True,
) -> Axes:
    r"""The network of the notes' Fig. 1: L affine maps between L + 1 columns of neurons.

    Column l = 0 … L holds n_l neurons (only ``nodes[l]`` are drawn; the labels say n_l).
    Column 0 is the input :math:`\alpha^{(0)} = x`; each hidden neuron of column
    1 ≤ l ≤ L − 1 receives its preactivation :math:`\tilde\alpha^{(l)}` and emits
    :math:`\alpha^{(l)} = \sigma(\tilde\alpha^{(l)})`; column L is the output
    :math:`f = \tilde\alpha^{(L)}`. Between columns l and l + 1 sit :math:`W^{(l)}` and
    :math:`b^{(l)}` (a bias node "1"):

    .. math::

        \tilde\alpha^{(l+1)} = \tfrac{1}{\sqrt{n_l}} W^{(l)\top}\alpha^{(l)} + \beta b^{(l)} .

    The parameters :math:`\tilde\theta` of the first L − 1 affine maps are drawn in blue, those
    of the last map :math:`(W^{(L-1)}, b^{(L-1)})` in orange.

    Args:
        ax: axes to draw on, or ``None`` for a new figure.
        nodes: neurons drawn per column (n_0, …, n_L), each between 1 and 8; L = len − 1 ≥ 1.
        symbolic: label widths as n_l (True) or by the drawn counts (False).

    Returns:
        The axes: ``ax.lines`` are the connections, one per drawn weight or bias, in layer
        order; the legend names θ̃ and the last layer.
    """
    counts = _checks.widths(nodes)
    if max(counts) > 8:
        raise ValueError(f"nodes: draw at most 8 neurons per column, got {counts}")
    depth = len(counts) - 1
    theta_tilde, last = PALETTE[0], PALETTE[1]
    ax = _axes(ax)
    top = max(counts) / 2 + 0.3

    def ys(n: int) -> np.ndarray:
        return np.arange(n)[::-1] - (n - 1) / 2

    with style():
        for j in range(depth):
            colour = last if j == depth - 1 else theta_tilde
            y_in, y_out = ys(counts[j]), ys(counts[j + 1])
            y_bias = -top
            for yo in y_out:
                for yi in y_in:
                    ax.plot([j, j + 1], [yi, yo], "-", color=colour, lw=0.9, alpha=0.7, zorder=1)
                ax.plot([j + 0.35, j + 1], [y_bias, yo], ":", color=colour, lw=0.9, zorder=1)
            ax.scatter(
                [j + 0.35],
                [y_bias],
                s=260,
                marker="s",
                facecolor="white",
                edgecolor=colour,
                zorder=3,
            )
            ax.text(j + 0.35, y_bias, "1", ha="center", va="center", fontsize=10, zorder=4)
            ax.text(
                j + 0.5,
                top + 0.15,
                rf"$W^{{({j})}},\ b^{{({j})}}$",
                ha="center",
                va="bottom",
                color=colour,
                fontsize=12,
            )
        for j, n in enumerate(counts):
            face = "0.85" if j == 0 else ("white" if j < depth else "#FCE5C0")
            ax.scatter(np.full(n, j), ys(n), s=420, facecolor=face, edgecolor="black", zorder=2)
            if 0 < j < depth:
                for y in ys(n):
                    ax.text(j, y, r"$\sigma$", ha="center", va="center", fontsize=10, zorder=4)
            ax.text(j, -top - 0.55, _layer_label(j, depth), ha="center", va="top", fontsize=11)
            width = f"$n_{{{j}}}$" if symbolic else f"$n_{{{j}}} = {n}$"
            ax.text(j, -top - 1.15, width, ha="center", va="top", fontsize=11)
        L1 = depth - 1
        handles = [
            Line2D([], [], color=theta_tilde, label=r"$\tilde\theta$ (all but the last layer)"),
            Line2D([], [], color=last, label=rf"last layer $W^{{({L1})}},\ b^{{({L1})}}$"),
        ]
        ax.legend(
            handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=2, frameon=False
        )
        ax.set_xlim(-0.5, depth + 0.5)
        ax.set_ylim(-top - 1.7, top + 0.8)
        ax.set_aspect("auto")
        ax.axis("off")
    return ax


# ------------------------------------------ distributions and functions of the angle (ch. 3–4)


def _finite_array(name: str, values: object, ndim: tuple[int, ...]) -> np.ndarray:
    """``values`` as a finite float array with one of the allowed numbers of dimensions."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim not in ndim or arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected a non-empty finite {ndim}-D array, got {arr.shape}")
    return arr


def _once(ax: Axes, label: str) -> str:
    """``label``, or matplotlib's no-legend marker if a line of ``ax`` already carries it (a
    reference curve drawn once per sample set should appear once in the legend)."""
    return "_nolegend_" if label in [line.get_label() for line in ax.lines] else label


def histogram_vs_gaussian(
    ax: Axes | None,
    samples: Sequence[float] | np.ndarray,
    variance: float,
    *,
    label: str | None = None,
    bins: int = 60,
    color: str | None = None,
) -> Axes:
    r"""Histogram (density, log y-axis) of draws beside the density of N(0, v).

    .. math::

        p(z) = \frac{1}{\sqrt{2\pi v}} e^{-z^2 / (2v)}

    On a log axis the Gaussian is a parabola, so heavy tails show as excess mass at the ends.
    The histogram is a step outline over the non-empty bins (an empty bin is a gap, not a drop to
    the axis floor).

    Args:
        ax: axes to draw on, or ``None`` for a new figure.
        samples: 1-D draws, finite.
        variance: v > 0 of the reference Gaussian (e.g. :math:`\Sigma^{(L)}(x, x)`).
        label: legend label of the histogram.
        bins: number of bins (≥ 2).
        color: histogram colour.

    Returns:
        The axes; the histogram is ``ax.lines[-2]`` and the reference density the last line
        (``ax.lines[-1]``).
    """
    z = _finite_array("samples", samples, (1,))
    v = _checks.positive("variance", variance)
    bins = _checks.positive_int("bins", bins, minimum=2)
    ax = _axes(ax)
    with style():
        density, edges = np.histogram(z, bins=bins, density=True)
        # A step outline with a gap at each empty bin: on the log axis an empty bin would
        # otherwise be drawn as two walls down to the axis floor.
        heights = np.where(density > 0, density, np.nan)
        ax.plot(
            np.repeat(edges, 2)[1:-1], np.repeat(heights, 2), "-", lw=1.8, color=color, label=label
        )
        grid = np.linspace(z.min(), z.max(), 200)
        ax.plot(
            grid,
            np.exp(-(grid**2) / (2 * v)) / np.sqrt(2 * np.pi * v),
            "--",
            color="0.2",
            label=_once(ax, rf"$\mathcal{{N}}(0, {v:.3g})$"),
        )
        ax.set_yscale("log")
        ax.set_xlabel("$f(x)$")
        ax.set_ylabel("density")
        ax.legend()
    return ax


def qq_vs_gaussian(
    ax: Axes | None,
    samples: Sequence[float] | np.ndarray,
    variance: float,
    *,
    label: str | None = None,
    n_quantiles: int = 200,
    color: str | None = None,
) -> Axes:
    r"""Quantile–quantile plot of draws against N(0, v): sample quantiles against
    :math:`\sqrt{v}\, \Phi^{-1}(p)`.

    Points on the diagonal mean the draws follow N(0, v); an S-shape means heavier (or lighter)
    tails. Quantile levels p_i = (i − ½)/m, i = 1 … m.

    Args:
        ax: axes to draw on, or ``None`` for a new figure.
        samples: 1-D draws, finite.
        variance: v > 0 of the reference Gaussian.
        label: legend label.
        n_quantiles: m ≥ 2 quantile levels.
        color: marker colour.

    Returns:
        The axes; the diagonal is the last line (``ax.lines[-1]``).
    """
    from scipy.special import ndtri

    z = _finite_array("samples", samples, (1,))
    v = _checks.positive("variance", variance)
    m = _checks.positive_int("n_quantiles", n_quantiles, minimum=2)
    p = (np.arange(1, m + 1) - 0.5) / m
    theory = np.sqrt(v) * ndtri(p)
    ax = _axes(ax)
    with style():
        ax.plot(theory, np.quantile(z, p), ".", color=color, label=label)
        ax.plot(theory, theory, "-", color="0.2", lw=1.0, label=_once(ax, "$y = x$"))
        ax.set_xlabel(r"quantile of $\mathcal{N}(0, \Sigma)$")
        ax.set_ylabel("sample quantile")
        ax.legend()
    return ax


def curves_vs_angle(
    ax: Axes | None,
    angles: Sequence[float] | np.ndarray,
    curves: Sequence[Sequence[float]] | np.ndarray,
    *,
    reference: Sequence[float] | np.ndarray | None = None,
    label: str | None = None,
    reference_label: str | None = None,
    color: str | None = None,
    alpha: float = 0.6,
) -> Axes:
    r"""Several curves y_s(γ) against an angle γ (thin), and optionally a reference curve (bold).

    Used for sample functions f_s(x(γ)) on the unit circle x(γ) = (cos γ, sin γ), and for kernels
    K(x(0), x(γ)) of finite networks beside their infinite-width limit.

    Args:
        ax: axes to draw on, or ``None`` for a new figure.
        angles: γ, shape (N,), finite.
        curves: (S, N) or (N,) values, finite.
        reference: the limit curve (N,), drawn bold and dashed in black.
        label: legend label of the thin curves (given once).
        reference_label: legend label of the reference.
        color: colour of the thin curves (default: next in the palette).
        alpha: opacity of the thin curves, in (0, 1].

    Returns:
        The axes; ``ax.lines`` are the S curves, then the reference if any.
    """
    g = _finite_array("angles", angles, (1,))
    y = np.atleast_2d(_finite_array("curves", curves, (1, 2)))
    if y.shape[1] != g.size:
        raise ValueError(f"curves: expected (S, {g.size}) to match angles, got {y.shape}")
    ax = _axes(ax)
    with style():
        colour: Any = color
        for s, row in enumerate(y):
            (line,) = ax.plot(
                g, row, "-", color=colour, lw=1.0, alpha=alpha, label=label if s == 0 else None
            )
            colour = line.get_color()
        if reference is not None:
            ref = _finite_array("reference", reference, (1,))
            if ref.shape != g.shape:
                raise ValueError(f"reference: expected shape {g.shape}, got {ref.shape}")
            ax.plot(g, ref, "--", color="black", lw=2.2, label=reference_label)
        ax.set_xlabel(r"angle $\gamma$")
        if label is not None or reference_label is not None:
            ax.legend()
    return ax


def share_y(axes: Sequence[Axes] | np.ndarray, *, pad: float = 0.05) -> None:
    r"""Give panels meant to be compared one y-axis that shows all of their data.

    ``Axes.sharey`` alone keeps the limits of the axes shared *with*, so data of the other panels
    outside that range is cut off. This joins the y-axes and sets the common range to the union
    :math:`[y_{\min}, y_{\max}]` of every panel's data, widened by ``pad`` of the span (in
    :math:`\log_{10} y` on log axes).

    Args:
        axes: two or more axes with the same y-scale, already drawn on.
        pad: relative margin ≥ 0 on each side.

    Raises:
        ValueError: naming ``axes`` (fewer than two, mixed scales, no finite data) or ``pad``.
    """
    flat = list(np.ravel(np.asarray(axes, dtype=object)))
    if len(flat) < 2:
        raise ValueError(f"axes: need at least two axes to share, got {len(flat)}")
    pad = _checks.nonnegative("pad", pad)
    scales = {ax.get_yscale() for ax in flat}
    if len(scales) != 1:
        raise ValueError(f"axes: mixed y-scales {sorted(scales)}")
    log = scales == {"log"}
    lows, highs = [], []
    for ax in flat:
        ax.relim()
        lim = ax.dataLim
        if np.isfinite(lim.y0) and np.isfinite(lim.y1):
            lows.append(lim.y0)
            highs.append(lim.y1)
    if not lows:
        raise ValueError("axes: no finite data to span")
    lo, hi = min(lows), max(highs)
    if log:
        if lo <= 0:
            raise ValueError("axes: log y-axes with data <= 0")
        a, b = np.log10(lo), np.log10(hi)
        span = max(b - a, 1e-12)
        lo, hi = 10 ** (a - pad * span), 10 ** (b + pad * span)
    else:
        span = max(hi - lo, 1e-12)
        lo, hi = lo - pad * span, hi + pad * span
    for ax in flat[1:]:
        ax.sharey(flat[0])
    flat[0].set_ylim(lo, hi)
