"""plotting.share_y: one y-range covering every panel's data."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ntkbook import plotting  # noqa: E402


def test_share_y_covers_all_panels_on_log_axes() -> None:
    fig, axes = plotting.figure(1, 2)
    axes[0, 0].loglog([1, 10], [1.0, 2.0])
    axes[0, 1].loglog([1, 10], [0.01, 0.5])          # below the first panel's range
    plotting.share_y(axes[0])
    lo, hi = axes[0, 1].get_ylim()
    assert axes[0, 0].get_ylim() == (lo, hi)
    assert lo < 0.01 and hi > 2.0
    # widened by 5 % of the 2.3 decades on each side
    np.testing.assert_allclose(np.log10([lo, hi]), [-2 - 0.05 * np.log10(200),
                                                    np.log10(2) + 0.05 * np.log10(200)])


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
