"""The package as a dependency: ``import ntkbook`` is light and leaves global state alone, optional
parts fail with an ImportError naming their extra, and the metadata files agree with the code.

Each import check runs in a fresh interpreter (a subprocess), since this test session has long
since imported matplotlib and ntkbook.plotting.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str) -> str:
    """stdout of ``code`` run by a fresh Python that finds ntkbook in this checkout."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_import_loads_no_matplotlib():
    out = _run("import ntkbook, sys; print('matplotlib' in sys.modules)")
    assert out == "False"


def test_plotting_loads_on_first_access():
    out = _run("""
        import sys
        import ntkbook
        before = 'matplotlib' in sys.modules
        ax = ntkbook.plotting.loglog_rate(None, [1, 2, 4], [1.0, 0.25, 0.0625], theory_slope=-2)
        from ntkbook import plotting
        print(before, 'matplotlib' in sys.modules, ax.get_xscale(), plotting is ntkbook.plotting)
    """)
    assert out == "False True log True"


def test_unknown_attribute_is_attribute_error():
    out = _run("""
        import ntkbook
        try:
            ntkbook.plotings
        except AttributeError as err:
            print(err)
    """)
    assert "plotings" in out


def test_plotting_leaves_ipython_figure_format_alone():
    # Importing ntkbook.plotting inside a running IPython shell used to switch the inline backend
    # to SVG for the whole session; the chapters now opt in with %config themselves.
    out = _run("""
        from IPython.core.interactiveshell import InteractiveShell
        from matplotlib_inline.backend_inline import InlineBackend
        shell = InteractiveShell.instance()
        before = sorted(InlineBackend.instance().figure_formats)
        import ntkbook
        ntkbook.plotting
        print(before == sorted(InlineBackend.instance().figure_formats), before)
    """)
    assert out.startswith("True"), out


def test_missing_matplotlib_names_the_plot_extra():
    out = _run("""
        import sys
        sys.modules['matplotlib'] = None  # as if matplotlib were not installed
        import ntkbook
        try:
            ntkbook.plotting
        except ImportError as err:
            print(err)
    """)
    assert "ntkbook[plot]" in out, out


def test_missing_sklearn_names_the_data_extra():
    out = _run("""
        import sys
        sys.modules['sklearn'] = None  # as if scikit-learn were not installed
        import jax
        import ntkbook
        try:
            ntkbook.data.digits(key=jax.random.key(0), n_train=10, n_test=10)
        except ImportError as err:
            print(err)
    """)
    assert "ntkbook[data]" in out, out


def test_citation_matches_version_and_cites_the_paper():
    import ntkbook

    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0"
    assert cff["version"] == ntkbook.__version__
    (paper,) = cff["references"]
    assert [a["family-names"] for a in paper["authors"]] == ["Jacot", "Gabriel", "Hongler"]
    assert paper["year"] == 2018
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
