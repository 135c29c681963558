"""Check the rendered website: every page of the table of contents exists, and every chapter shows
its figures as images that resolve to files, typesets math, and has no error output.

Usage: ``python scripts/check_html.py [_build/html]`` — exits non-zero, listing every problem.
"""

from __future__ import annotations

import re
import sys
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class Page(HTMLParser):
    """Collects image sources, math elements and error-output blocks of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.math = 0
        self.errors = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "img" and a.get("src"):
            self.images.append(a["src"] or "")
        if "math" in classes or "MathJax" in classes:
            self.math += 1
        if "traceback" in classes or ("output" in classes and "error" in classes):
            self.errors += 1


def toc_files(toc: Path) -> list[str]:
    """Every ``file:`` (and the ``root:``) named in ``_toc.yml``, in order."""
    text = toc.read_text()
    return re.findall(r"^\s*(?:-\s*)?(?:file|root):\s*(\S+)", text, flags=re.M)


def check(html: Path) -> list[str]:
    problems = []
    for name in toc_files(ROOT / "_toc.yml"):
        page_path = html / f"{name}.html"
        if not page_path.exists():
            problems.append(f"{name}: page {page_path} is missing")
            continue
        page = Page()
        page.feed(page_path.read_text(encoding="utf-8"))
        is_chapter = re.match(r"book/\d\d_", name) is not None
        if page.errors:
            problems.append(f"{name}: {page.errors} error output block(s) in the page")
        if is_chapter and page.math == 0:
            problems.append(f"{name}: no typeset math found")
        if is_chapter and not page.images:
            problems.append(f"{name}: no figure images found")
        for src in page.images:
            if src.startswith(("http:", "https:", "data:")):
                continue
            target = (page_path.parent / src.split("#")[0]).resolve()
            if not target.exists():
                problems.append(f"{name}: image {src} does not resolve to a file")
    return problems


def main() -> int:
    html = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "_build" / "html"
    problems = check(html)
    for p in problems:
        print(f"check_html: {p}")
    pages = len(toc_files(ROOT / "_toc.yml"))
    print(f"check_html: {pages} pages checked, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
