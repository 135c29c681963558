"""Smoke tests for ntkbook.plotting with the Agg backend: check what was drawn, not pixels."""

from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import jax  # noqa: E402
import matplotlib
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

from ntkbook import (
    plotting,  # noqa: E402
)

WHITE = (1.0, 1.0, 1.0, 1.0)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_style_sets_opaque_white_background_and_palette():
    with plotting.style():
        fig = plt.figure()
        assert plt.rcParams["axes.prop_cycle"].by_key()["color"][0] == plotting.PALETTE[0]
    assert fig.get_facecolor() == WHITE
    # the style does not leak out of the context
    assert plt.rcParams["axes.prop_cycle"].by_key()["color"][0] != plotting.PALETTE[0]


def test_figure_is_opaque_even_under_a_transparent_default():
    # Jupyter's inline backend makes figures transparent; the house figure must stay opaque.
    with matplotlib.rc_context({"figure.facecolor": (1, 1, 1, 0), "axes.facecolor": "none"}):
        fig, axes = plotting.figure(1, 2)
    assert axes.shape == (1, 2)
    assert fig.patch.get_facecolor() == WHITE
    assert all(ax.get_facecolor() == WHITE for ax in axes.flat)


def test_loglog_rate_draws_points_fit_and_theory_guide():
    x = np.array([1.0, 2.0, 4.0, 8.0])
    y = 3.0 * x**-0.5
    fit = SimpleNamespace(slope=-0.5, intercept=np.log(3.0), ci_low=-0.55, ci_high=-0.45)
    ax = plotting.loglog_rate(None, x, y, fit=fit, theory_slope=-0.5, label="error")
    points, fit_line, guide = ax.lines
    np.testing.assert_allclose(points.get_xdata(), x)
    np.testing.assert_allclose(points.get_ydata(), y)
    # the fitted line is exp(intercept) · x^slope on its own grid
    gx = np.asarray(fit_line.get_xdata())
    np.testing.assert_allclose(fit_line.get_ydata(), 3.0 * gx**-0.5)
    assert gx.min() == pytest.approx(1.0) and gx.max() == pytest.approx(8.0)
    # the theory guide has the theory slope in log-log coordinates
    log_slope = np.diff(np.log(guide.get_ydata())) / np.diff(np.log(guide.get_xdata()))
    np.testing.assert_allclose(log_slope, -0.5)
    assert guide.get_linestyle() == "--"
    assert _legend_texts(ax) == ["error", "fit: slope -0.50 [-0.55, -0.45]", "theory: slope -0.5"]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert to_rgba(fit_line.get_color()) == to_rgba(points.get_color())


def test_loglog_rate_on_given_axes_with_error_bars():
    fig, axes = plotting.figure()
    ax = plotting.loglog_rate(axes[0, 0], [1, 10], [1, 100], yerr=[0.1, 1.0], label="pts")
    assert ax is axes[0, 0]
    assert len(ax.containers) == 1  # the error-bar container
    assert _legend_texts(ax) == ["pts"]


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"x": [1.0, 0.0], "y": [1.0, 1.0]}, "x"),
        ({"x": [1.0, 2.0], "y": [1.0, np.nan]}, "y"),
        ({"x": [1.0, 2.0], "y": [1.0, 2.0, 3.0]}, "y"),
        ({"x": [], "y": []}, "x"),
        ({"x": [1.0, 2.0], "y": [1.0, 2.0], "yerr": [-1.0, 0.0]}, "yerr"),
    ],
)
def test_loglog_rate_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        plotting.loglog_rate(None, **kwargs)


def test_kernel_heatmap_2d_sequential_and_diverging():
    K = np.array([[2.0, 1.0], [1.0, 2.0]])
    ax = plotting.kernel_heatmap(None, K, title="K")
    np.testing.assert_array_equal(ax.images[0].get_array(), K)
    assert ax.images[0].get_cmap().name == "viridis"
    assert ax.get_title() == "K"
    ax = plotting.kernel_heatmap(None, -K, colorbar=False)
    assert ax.images[0].get_cmap().name == "RdBu_r"
    assert ax.images[0].get_clim() == (-2.0, 2.0)  # symmetric: zero is the middle colour


def test_kernel_heatmap_4d_is_arranged_in_output_blocks():
    n, m = 3, 2
    theta = np.zeros((n, n, m, m))
    for k in range(m):
        for kp in range(m):
            theta[:, :, k, kp] = 10 * k + kp + np.arange(n)[:, None] * 0.1
    ax = plotting.kernel_heatmap(None, theta)
    shown = np.asarray(ax.images[0].get_array())
    assert shown.shape == (n * m, n * m)
    # block (k, k') is the N × N matrix Θ_kk'(x_i, x_j)
    for k in range(m):
        for kp in range(m):
            np.testing.assert_array_equal(
                shown[k * n : (k + 1) * n, kp * n : (kp + 1) * n], theta[:, :, k, kp]
            )
    assert [t.get_text() for t in ax.get_yticklabels()] == ["k=1", "k=2"]


@pytest.mark.parametrize(
    "K", [np.zeros(3), np.zeros((2, 2, 2)), np.full((2, 2), np.inf), np.zeros((2, 2, 2, 3))]
)
def test_kernel_heatmap_bad_input(K):
    with pytest.raises(ValueError, match=r"^K:"):
        plotting.kernel_heatmap(None, K)


def test_spectrum_sorts_and_drops_nonpositive():
    ax = plotting.spectrum(None, [1e-3, 4.0, -1e-16, 1.0], label="Θ")
    (line,) = ax.lines
    np.testing.assert_array_equal(line.get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(line.get_ydata(), [4.0, 1.0, 1e-3])
    assert _legend_texts(ax) == ["Θ (1 ≤ 0 not shown)"]
    assert ax.get_yscale() == "log"
    ax = plotting.spectrum(None, [2.0, 1.0], relative=True)
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [1.0, 0.5])


@pytest.mark.parametrize("eigs", [[], [[1.0]], [np.nan], [-1.0, 0.0]])
def test_spectrum_bad_input(eigs):
    with pytest.raises(ValueError, match=r"^eigs:"):
        plotting.spectrum(None, eigs)


def test_network_schematic_draws_every_connection_and_labels():
    nodes = (3, 4, 2)
    ax = plotting.network_schematic(nodes=nodes)
    # one line per weight (n_l · n_{l+1}) and one per bias (n_{l+1})
    expected = sum(a * b + b for a, b in zip(nodes[:-1], nodes[1:], strict=True))
    assert len(ax.lines) == expected
    texts = {t.get_text() for t in ax.texts}
    assert {r"$W^{(0)},\ b^{(0)}$", r"$W^{(1)},\ b^{(1)}$", "$n_{0}$", "$n_{2}$"} <= texts
    assert r"$\alpha^{(0)} = x$" in texts and r"$f = \tilde\alpha^{(2)}$" in texts
    assert r"$\tilde\alpha^{(1)} \to \alpha^{(1)}$" in texts
    legend = _legend_texts(ax)
    assert legend[0].startswith(r"$\tilde\theta$") and r"W^{(1)}" in legend[1]
    # the last layer's connections have the highlight colour, the others the θ̃ colour
    colours = [to_rgba(line.get_color()) for line in ax.lines]
    n_first = nodes[0] * nodes[1] + nodes[1]
    assert set(colours[:n_first]) == {to_rgba(plotting.PALETTE[0])}
    assert set(colours[n_first:]) == {to_rgba(plotting.PALETTE[1])}


def test_network_schematic_numeric_labels_and_bad_nodes():
    ax = plotting.network_schematic(nodes=(2, 3), symbolic=False)
    assert {"$n_{0} = 2$", "$n_{1} = 3$"} <= {t.get_text() for t in ax.texts}
    with pytest.raises(ValueError, match=r"^nodes:"):
        plotting.network_schematic(nodes=(2, 9, 1))
    with pytest.raises(ValueError, match=r"^widths"):
        plotting.network_schematic(nodes=(2,))


def test_loglog_rate_labels_integer_widths_exactly():
    ax = plotting.loglog_rate(None, [32, 64, 128], [1.0, 0.7, 0.5])
    ax.figure.canvas.draw()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["32", "64", "128"]


def test_reference_curves_appear_once_in_the_legend():
    rng = np.random.default_rng(0)
    ax = plotting.histogram_vs_gaussian(None, rng.normal(size=500), 1.0, label="a")
    plotting.histogram_vs_gaussian(ax, rng.normal(size=500), 1.0, label="b")
    qq = plotting.qq_vs_gaussian(None, rng.normal(size=500), 1.0, label="a")
    plotting.qq_vs_gaussian(qq, rng.normal(size=500), 1.0, label="b")
    for axes in (ax, qq):
        texts = [t.get_text() for t in axes.get_legend().get_texts()]
        assert len(texts) == len(set(texts)) == 3, texts
        plt.close(axes.figure)


def test_default_figures_fit_the_text_column():
    for nrows, ncols in [(1, 1), (2, 1), (1, 2), (3, 2)]:
        fig, _ = plotting.figure(nrows, ncols)
        assert fig.get_figwidth() <= plotting.MAX_WIDTH_IN
        plt.close(fig)
    fonts = [
        plotting.STYLE[k]
        for k in plotting.STYLE
        if k.endswith(("size", "fontsize")) and k != "figure.figsize" and k != "lines.markersize"
    ]
    assert min(fonts) >= plotting.MIN_FONT_PT, fonts


def test_a_figure_wider_than_the_column_is_warned_about():
    with pytest.warns(UserWarning, match=r"^figsize: 15 in is wider than the text column"):
        fig, _ = plotting.figure(1, 3, figsize=(15, 4))
    plt.close(fig)
    with pytest.raises(ValueError, match=r"^figsize:"):
        plotting.figure(1, 1, figsize=(0, 4))


def test_histogram_leaves_empty_bins_as_gaps():
    # two clusters far apart: the bins between them are empty
    samples = np.concatenate([np.full(50, -1.0), np.full(50, 1.0)])
    ax = plotting.histogram_vs_gaussian(None, samples, 1.0, bins=10)
    hist = ax.lines[-2]
    heights = np.asarray(hist.get_ydata(), dtype=float)
    assert np.isnan(heights).sum() == 2 * 8  # 8 empty bins, two points each
    assert np.all(heights[np.isfinite(heights)] > 0)  # nothing drawn down to the floor
    np.testing.assert_allclose(np.nansum(heights[::2] * np.diff(hist.get_xdata())[::2]), 1.0)
    plt.close(ax.figure)


SVG_CONFIG = '%config InlineBackend.figure_formats = ["svg"]'


def _figure_mimes(cells):
    """MIME types of every figure shown by ``cells`` run in a fresh Jupyter kernel."""
    import os

    import nbclient
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    env = {**os.environ, "PYTHONPATH": str(Path(plotting.__file__).parents[1])}
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=120).execute(env=env)
    return [
        [set(o.get("data", {})) for o in cell.outputs if o.output_type == "display_data"]
        for cell in nb.cells
    ]


def test_cells_show_figures_as_svg_when_the_chapter_opts_in():
    """Importing plotting leaves IPython's inline format alone (PNG by default); a chapter's
    ``%config`` line (before or after pyplot is imported) makes every figure SVG, so figures
    reach the book, JupyterLab and Binder as vector graphics."""
    draw = (
        "import matplotlib.pyplot as plt\nfrom ntkbook import plotting\n"
        "fig, axes = plotting.figure()\naxes[0, 0].plot([1, 2], [3, 4]);"
    )
    plain = "fig, ax = plt.subplots()\nax.plot([1, 2]);"
    # The plotting figure is the kernel's first: the plain pyplot figure of the next cell must
    # still be shown (style() used to switch interactive mode off again on leaving rc_context).
    cases = ([draw, plain], [SVG_CONFIG + "\n" + draw, plain], [draw + "\n" + SVG_CONFIG, plain])
    for cells in cases:
        want_svg = SVG_CONFIG in cells[0]
        for cell, mimes in zip(cells, _figure_mimes(cells), strict=True):
            assert mimes, cell
            for m in mimes:
                assert ("image/svg+xml" in m) == want_svg and ("image/png" in m) != want_svg, (
                    cell,
                    mimes,
                )


def test_every_chapter_with_figures_opts_into_svg():
    book = Path(__file__).resolve().parents[1] / "book"
    for chapter in sorted(book.glob("*.md")):
        text = chapter.read_text(encoding="utf-8")
        if "plotting." in text or "plt." in text:
            assert SVG_CONFIG in text, chapter.name


def test_share_y_covers_all_panels_on_log_axes() -> None:
    fig, axes = plotting.figure(1, 2)
    axes[0, 0].loglog([1, 10], [1.0, 2.0])
    axes[0, 1].loglog([1, 10], [0.01, 0.5])  # below the first panel's range
    plotting.share_y(axes[0])
    lo, hi = axes[0, 1].get_ylim()
    assert axes[0, 0].get_ylim() == (lo, hi)
    assert lo < 0.01 and hi > 2.0
    # widened by 5 % of the 2.3 decades on each side
    np.testing.assert_allclose(
        np.log10([lo, hi]), [-2 - 0.05 * np.log10(200), np.log10(2) + 0.05 * np.log10(200)]
    )


def test_share_y_linear_and_errors() -> None:
    fig, axes = plotting.figure(1, 3)
    axes[0, 0].plot([0, 1], [0.0, 1.0])
    axes[0, 1].plot([0, 1], [-1.0, 0.0])
    plotting.share_y(axes[0, :2], pad=0.0)
    assert axes[0, 1].get_ylim() == (-1.0, 1.0)
    with pytest.raises(ValueError, match="axes"):
        plotting.share_y(axes[0, :1])
    axes[0, 2].set_yscale("log")
    with pytest.raises(ValueError, match="axes: mixed"):
        plotting.share_y(axes[0])
    with pytest.raises(ValueError, match="pad"):
        plotting.share_y(axes[0, :2], pad=-1.0)


def test_histogram_and_qq_plots():
    z = np.asarray(jax.random.normal(jax.random.key(6), (5000,)))
    ax = plotting.histogram_vs_gaussian(None, z, 1.0, label="draws")
    assert ax.get_yscale() == "log"
    assert ax.figure.get_facecolor() == (1.0, 1.0, 1.0, 1.0)
    ax = plotting.qq_vs_gaussian(None, 2 * z, 4.0, n_quantiles=50)
    pts = ax.lines[0].get_xydata()
    # Quantiles of N(0, 4) draws lie near the diagonal (5000 draws: within 0.3 in the middle).
    mid = np.abs(pts[:, 0]) < 2
    assert np.all(np.abs(pts[mid, 1] - pts[mid, 0]) < 0.3)
    with pytest.raises(ValueError, match="variance"):
        plotting.qq_vs_gaussian(None, z, 0.0)
    with pytest.raises(ValueError, match="samples"):
        plotting.histogram_vs_gaussian(None, np.ones((2, 2)), 1.0)


def test_curves_vs_angle():
    g = np.linspace(0, 2 * np.pi, 30)
    ax = plotting.curves_vs_angle(
        None,
        g,
        np.stack([np.sin(g), np.cos(g)]),
        reference=0 * g,
        label="samples",
        reference_label="limit",
    )
    assert len(ax.lines) == 3
    assert ax.lines[0].get_color() == ax.lines[1].get_color()
    with pytest.raises(ValueError, match="curves"):
        plotting.curves_vs_angle(None, g, np.ones((2, 5)))
    with pytest.raises(ValueError, match="reference"):
        plotting.curves_vs_angle(None, g, np.ones(30), reference=np.ones(4))
