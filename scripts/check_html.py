"""Check the rendered website without a browser: every page of the table of contents exists, every
chapter shows its figures as images that resolve to files, typesets math, has no error output, and
no page shows raw MyST or TeX markup in its ordinary text (a role such as ``{glue:text}`` that was
not parsed, a TeX command such as ``\\sum`` outside math, ``$$``, ``**bold**`` markers).

Usage: ``python scripts/check_html.py [_build/html]`` — exits non-zero, listing every problem.
``scripts/browser_check.py`` imports :data:`RAW_MARKUP` and :func:`raw_markup` from here and runs
the same scan on the text a browser shows after MathJax has run.
"""

from __future__ import annotations

import re
import sys
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Markup that must never reach a reader as text: (what it is, regex). Text inside math, code,
#: ``pre``, scripts and styles is not ordinary text and is not scanned.
RAW_MARKUP: tuple[tuple[str, str], ...] = (
    ("MyST role not rendered", r"\{[a-z][a-z-]*(?::[a-z-]+)*\}`"),
    ("glue reference not rendered", r"\{glue[:}]"),
    ("MyST directive fence", r"(?:```|:::)\{[a-z]"),
    ("TeX command outside math", r"\\(?:[A-Za-z]{2,}|[()\[\]{}])"),
    ("TeX sub/superscript outside math", r"[_^]\{"),
    ("$$ outside math", r"\$\$"),
    ("$...$ outside math", r"(?<![\w$])\$[^\s$][^$\n]{0,200}?\$(?![\w$])"),
    ("markdown bold marker", r"\*\*[^*\s][^*\n]{0,80}?\*\*"),
)

_COMPILED = [(name, re.compile(rx)) for name, rx in RAW_MARKUP]


def raw_markup(text: str) -> list[tuple[str, str]]:
    """Every (kind, excerpt) of :data:`RAW_MARKUP` found in ``text``."""
    found = []
    for name, rx in _COMPILED:
        for m in rx.finditer(text):
            a, b = max(m.start() - 30, 0), min(m.end() + 30, len(text))
            found.append((name, " ".join(text[a:b].split())))
    return found


_TEXT_COMMANDS = re.compile(
    r"\\(?:text|mathrm|textrm|textit|textbf|mbox|operatorname|mathit)\s*\{[^{}]*\}"
)
_PROSE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}(?:[ ,]+[A-Za-z]{2,}){3,}")


def suspicious_math(tex: str) -> list[tuple[str, str]]:
    """Signs that a math span holds text that was meant to be prose — the trace of a ``$`` pair
    that matched the wrong partner: ``**`` markers, or a run of four or more plain words
    outside ``\\text{…}``."""
    found = []
    bare = _TEXT_COMMANDS.sub(" ", tex)
    if "**" in bare:
        found.append(("markdown inside math (a $ pair mismatched?)", " ".join(tex.split())[:90]))
    m = _PROSE.search(bare)
    if m:
        found.append(("prose inside math (a $ pair mismatched?)", " ".join(m.group(0).split())))
    return found


def summarise(name: str, found: list[tuple[str, str]], *, examples: int = 3) -> list[str]:
    """One line per kind of raw markup: how often, and the first few places."""
    lines = []
    for kind in dict.fromkeys(k for k, _ in found):
        excerpts = [e for k, e in found if k == kind]
        shown = " | ".join(f"…{e}…" for e in excerpts[:examples])
        more = f" (+{len(excerpts) - examples} more)" if len(excerpts) > examples else ""
        lines.append(f"{name}: {kind} ×{len(excerpts)}: {shown}{more}")
    return lines


# Elements whose text is not ordinary prose: code, math (before or after MathJax), scripts.
_SKIP_TAGS = {"pre", "code", "script", "style", "textarea", "kbd", "samp", "tt", "svg", "math"}
_SKIP_CLASSES = {"math", "highlight", "MathJax", "headerlink", "cell_output", "output"}
_VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "track",
    "wbr",
}


class Page(HTMLParser):
    """Collects image sources, math elements, error-output blocks and the ordinary text (outside
    code and math) of the article of one HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.images: list[str] = []
        self.math = 0
        self.errors = 0
        self.text: list[str] = []
        self.tex: list[str] = []  # content of each math element
        self._stack: list[tuple[str, bool]] = []  # (tag, skips its content)
        self._article = 0  # depth inside <main>/<article>

    def _skipping(self) -> bool:
        return any(skip for _, skip in self._stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = set((a.get("class") or "").split())
        if tag == "img" and a.get("src"):
            self.images.append(a["src"] or "")
        if "math" in classes or "MathJax" in classes:
            self.math += 1
        if "traceback" in classes or ("output" in classes and "error" in classes):
            self.errors += 1
        if tag in _VOID:
            return
        skip = tag in _SKIP_TAGS or bool(classes & _SKIP_CLASSES)
        self._stack.append((tag, "math" if "math" in classes else skip))
        if tag in ("main", "article"):
            self._article += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        # pop to the matching tag (tolerates unclosed <p>, <li> …)
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i][0] == tag:
                del self._stack[i:]
                break
        if tag in ("main", "article"):
            self._article = max(self._article - 1, 0)

    def handle_data(self, data: str) -> None:
        if self._article and not self._skipping():
            self.text.append(data)
        elif self._stack and self._stack[-1][0] in ("span", "div") and self._in_math():
            self.tex.append(data)

    def _in_math(self) -> bool:
        return any(tag in ("span", "div") and skip == "math" for tag, skip in self._stack)


def toc_files(toc: Path) -> list[str]:
    """Every ``file:`` (and the ``root:``) named in ``_toc.yml``, in order."""
    text = toc.read_text()
    return re.findall(r"^\s*(?:-\s*)?(?:file|root):\s*(\S+)", text, flags=re.M)


def check_page(name: str, page_path: Path, *, is_chapter: bool) -> list[str]:
    """The problems of one rendered page (see the module docstring)."""
    problems = []
    page = Page()
    page.feed(page_path.read_text(encoding="utf-8"))
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
    found = raw_markup(" ".join(page.text))
    for tex in page.tex:
        found += suspicious_math(tex)
    problems += summarise(name, found)
    return problems


def check(html: Path) -> list[str]:
    problems = []
    for name in toc_files(ROOT / "_toc.yml"):
        page_path = html / f"{name}.html"
        if not page_path.exists():
            problems.append(f"{name}: page {page_path} is missing")
            continue
        is_chapter = re.match(r"book/\d\d_", name) is not None
        problems += check_page(name, page_path, is_chapter=is_chapter)
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
