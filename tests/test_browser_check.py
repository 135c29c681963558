"""The site checks must be able to fail: each defect they look for is planted in a small page, and
the check must report it (and report nothing on a clean page).

``scripts/check_html.py`` runs without a browser. ``scripts/browser_check.py`` needs Chromium
(Debian's ``chromium``, which ``.ci/run`` installs): without it these tests are skipped on a
developer machine and FAIL in CI (``CI`` set), so CI cannot pass them by not running them.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import browser_check  # noqa: E402
import check_html  # noqa: E402

MATHJAX = (
    Path(importlib.import_module("sphinx-mathjax-offline").__file__).parent / "static" / "mathjax"
)

HEAD = """<!DOCTYPE html><html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<style>body {{ margin: 0; font: 16px sans-serif; }}
article {{ max-width: 720px; margin: 0 auto; padding: 0 8px; }}
.eqno {{ float: right; }} img {{ max-width: 100%; }} pre {{ overflow: auto; }}</style>
{css}
<script>window.MathJax = {{tex: {{macros: {{R: "\\\\mathbb{{R}}"}}}},
  options: {{ignoreHtmlClass: "document", processHtmlClass: "math"}}}};</script>
<script defer src="{mathjax}"></script>
</head><body class="document"><main><article class="bd-article">
"""
TAIL = "</article></main></body></html>\n"

SHORT = r'<div class="math" id="equation-short"><span class="eqno">(1)</span>\[ f(x) = x^2 \]</div>'
LONG = (
    r'<div class="math" id="equation-long"><span class="eqno">(2)</span>\[ '
    + " + ".join(rf"\frac{{a_{{{i}}}}}{{b_{{{i}}}}}" for i in range(40))
    + r" \]</div>"
)
MEDIUM = (
    r'<div class="math" id="equation-medium"><span class="eqno">(3)</span>\[ '
    + " + ".join(rf"\frac{{a_{{{i}}}}}{{b_{{{i}}}}}" for i in range(12))
    + r" \]</div>"
)


def figure_file(path: Path, width_in: float, *, fontsize: float = 10, dpi: int = 100) -> str:
    fig, ax = plt.subplots(figsize=(width_in, 3))
    ax.plot([0, 1], [0, 1], label="a line")
    ax.tick_params(labelsize=fontsize)
    ax.legend(fontsize=fontsize)
    ax.set_xlabel("x", fontsize=fontsize)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path.name


def page(body: str, *, mathjax: str = "mathjax/tex-chtml.js", css: str = "") -> str:
    return HEAD.format(mathjax=mathjax, css=css) + body + TAIL


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    html = tmp_path_factory.mktemp("site")
    (html / "mathjax").symlink_to(MATHJAX)
    shutil.copy(ROOT / "_static" / "ntkbook.css", html / "ntkbook.css")
    ours = '<link rel="stylesheet" href="ntkbook.css">'
    good_svg = figure_file(html / "good.svg", 6.5)
    pages = {
        "clean": page(
            r'<p>Inline <span class="math">\(x \in \R\)</span> math.</p>'
            + SHORT
            + f'<figure><img src="{good_svg}" alt="A line."></figure>'
            + '<p><a href="#equation-short">(1)</a> <a href="untypeset.html">a page</a></p>'
            + '<pre>a = {"glue": 1}  # code may hold anything: \\frac **x**</pre>',
            css=ours,
        ),
        "untypeset": page(
            r'<p>Inline <span class="math">\(x\)</span> math.</p>', mathjax="missing/tex-chtml.js"
        ),
        "tex_error": page(
            r'<p>A <span class="math">\(\frac{1}\)</span> and '
            r'<span class="math">\(\undefinedmacro x\)</span>.</p>'
        ),
        "too_wide": page(SHORT + LONG, css=ours),
        # the theme's flex layout: number and formula side by side with a gap; a formula that
        # fits beside its number only when the gap is forgotten must be reported
        "gap_too_wide": page(
            "<style>div.math { display: flex; flex-direction: row-reverse; "
            "gap: 400px; }</style>" + MEDIUM
        ),
        "phone_clipped": page(r"<style>div.math { overflow: hidden; }</style>" + MEDIUM),
        "phone_scrolls": page(MEDIUM, css=ours),
        "image_missing": page('<figure><img src="nothing-here.png" alt="gone"></figure>'),
        "image_wide_svg": page(f'<img src="{figure_file(html / "wide.svg", 15)}" alt="w">'),
        "image_tiny_font": page(
            f'<img src="{figure_file(html / "tiny.svg", 6.5, fontsize=5)}" alt="t">'
        ),
        "image_wide_png": page(f'<img src="{figure_file(html / "wide.png", 15)}" alt="p">'),
        "raw_markup": page(
            "<p>The value is {glue:text}`ch1_x:.2f` and {ref}`sec`.</p>"
            r"<p>+ \sum_{R \in ST} \ldots $$ x $$ <strong>b</strong> **Restored:**</p>"
        ),
        "mismatched_dollars": page(r'<p>Text <span class="math">\(". **Restored:** \)</span>.</p>'),
        "console": page(
            '<script>console.error("boom from the page")</script>'
            '<script>throw new Error("bang from the page")</script>'
        ),
        "links": page(
            '<p><a href="clean.html#no-such-anchor">x</a> '
            '<a href="missing.html">y</a> '
            '<a href="clean.html#equation-short">ok</a></p>'
        ),
        "pans": page('<div style="width: 900px">wide block</div>'),
    }
    for name, text in pages.items():
        (html / f"{name}.html").write_text(text, encoding="utf-8")
    return html


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name) or name
    if os.environ.get("CI"):
        pytest.fail("CI must run the browser check: install Debian's chromium (.ci/run does)")
    pytest.skip("no chromium here (CI installs it and runs these tests)")


@pytest.fixture(scope="module")
def problems(site: Path) -> dict[str, list[str]]:
    names = [p.stem for p in sorted(site.glob("*.html"))]
    found = browser_check.run(site, names, chromium=chromium(), screenshots=site / "shots")
    by_page: dict[str, list[str]] = {n: [] for n in names}
    for line in found:
        by_page[line.split(":")[0].split(" @")[0]].append(line)
    return by_page


EXPECTED = {
    "untypeset": [
        "MathJax did not load",
        "math not typeset: \\(x\\)",
        "404 for missing/tex-chtml.js",
    ],
    "tex_error": ["math TeX error", "undefined macro (drawn in red)"],
    "too_wide": ["@1280px: display equation (2) is"],
    "gap_too_wide": ["@1280px: display equation (3) is", "+ gap 400 +"],
    "phone_clipped": ["@390px: display equation (3)", "cannot be scrolled"],
    "image_missing": ["image does not load (nothing-here.png)"],
    "image_wide_svg": ["figure text too small: 10 pt text drawn at"],
    "image_tiny_font": ["figure text too small: 5 pt text"],
    "image_wide_png": ["figure text too small", "figure 15.0 in wide"],
    "raw_markup": [
        "MyST role not rendered",
        "glue reference not rendered",
        "TeX command outside math",
        "$$ outside math",
        "markdown bold marker",
    ],
    "mismatched_dollars": ["markdown inside math (a $ pair mismatched?)"],
    "console": [
        "console.error: boom from the page",
        "JavaScript exception: Error: bang from the page",
    ],
    "links": ["broken link: clean.html#no-such-anchor", "broken link: missing.html"],
    "pans": ["@390px: the page pans sideways"],
}


def test_jobs_must_be_a_positive_integer(tmp_path: Path) -> None:
    for jobs in (0, 1.5):
        with pytest.raises(ValueError, match="^jobs: "):
            browser_check.run(tmp_path, ["clean"], chromium="chromium", screenshots=None, jobs=jobs)


def test_a_clean_page_passes(problems: dict[str, list[str]]) -> None:
    assert problems["clean"] == []
    assert problems["phone_scrolls"] == []  # ntkbook.css makes a wide display scroll on a phone


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_defect_is_reported(problems: dict[str, list[str]], name: str) -> None:
    text = "\n".join(problems[name])
    for expected in EXPECTED[name]:
        assert expected in text, f"{name}: expected {expected!r} in:\n{text}"
    if name != "too_wide":
        assert "display equation (1)" not in text


def test_screenshots_are_written(site: Path, problems: dict[str, list[str]]) -> None:
    shots = sorted((site / "shots").glob("*.png"))
    assert {p.stem for p in shots} >= {"clean", "raw_markup"}
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in shots)


def test_check_html_catches_raw_tex_without_a_browser(site: Path) -> None:
    found = check_html.check_page("raw_markup", site / "raw_markup.html", is_chapter=False)
    text = "\n".join(found)
    for kind in (
        "MyST role not rendered",
        "TeX command outside math",
        "$$ outside math",
        "markdown bold marker",
    ):
        assert kind in text, text
    assert check_html.check_page("clean", site / "clean.html", is_chapter=False) == []
    found = check_html.check_page("m", site / "mismatched_dollars.html", is_chapter=False)
    assert any("mismatched" in line for line in found), found


def test_smallest_text_is_read_from_matplotlib_svg(tmp_path: Path) -> None:
    name = figure_file(tmp_path / "f.svg", 5.0, fontsize=7)
    width_pt, font_pt = browser_check.smallest_text_pt(tmp_path / name)
    assert width_pt == pytest.approx(360.0)
    assert font_pt == pytest.approx(7.0)
    name = figure_file(tmp_path / "f.png", 5.0, dpi=150)
    width_pt, font_pt = browser_check.smallest_text_pt(tmp_path / name)
    assert width_pt == pytest.approx(360.0, rel=1e-3) and font_pt is None
