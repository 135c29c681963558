"""Execute every notebook page of the book ONCE, in parallel, into the build's execution cache.

``make test`` runs this before ``jupyter-book build``: the build then finds every chapter in the
cache (``execute_notebooks: cache``) and executes nothing, so each chapter runs once per CI run,
not once for nbval and once more for the build. Pages are read exactly as MyST-NB reads them
(jupyter-cache's ``myst_nb_md`` reader), so the cache keys match the build's.

Each chapter passes or fails on its own; a failing one (an ``assert`` in "What this chapter
verified", or any error) is reported with the chapter, the code cell number and its first line in
the ``.md``, and the error, and the script exits 1.

Usage: ``python scripts/execute_chapters.py [--cache _build/.jupyter_cache] [PAGE.md ...]``
(pages default to every notebook of ``_toc.yml``).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from pathlib import Path

from jupyter_cache import get_cache
from jupyter_cache.executors import load_executor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_html import toc_files  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
READER = {"type": "plugin", "name": "myst_nb_md"}  # how MyST-NB reads a .md notebook


def is_notebook(path: Path) -> bool:
    """A MyST markdown notebook: front matter that names a ``kernelspec``."""
    text = path.read_text(encoding="utf-8")
    return text.startswith("---") and "kernelspec:" in text.split("\n---", 1)[0]


def failing_cell(path: Path, traceback: str) -> str:
    """'code cell N (line L)' of the cell whose source the execution error quotes."""
    m = re.search(r"-{18}\n(.*?)\n-{18}", traceback, flags=re.S)
    if not m:
        return "an unknown cell"
    source = m.group(1).strip()
    text = path.read_text(encoding="utf-8")
    cells = list(re.finditer(r"^```\{code-cell\}[^\n]*\n(?:---\n.*?\n---\n)?(.*?)^```",
                             text, flags=re.S | re.M))
    for number, cell in enumerate(cells, start=1):
        if cell.group(1).strip() == source:
            line = text.count("\n", 0, cell.start()) + 1
            return f"code cell {number} (line {line})"
    return f"the cell starting {source.splitlines()[0][:60]!r}"


def last_error(traceback: str) -> str:
    """The last non-empty line of the error (e.g. ``AssertionError: slope off by …``)."""
    lines = [ln for ln in re.sub(r"\x1b\[[0-9;]*m", "", traceback).splitlines() if ln.strip()]
    return lines[-1].strip() if lines else "(no message)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", help="notebook pages (default: the TOC's)")
    parser.add_argument("--cache", default=str(ROOT / "_build" / ".jupyter_cache"))
    parser.add_argument("--timeout", type=int, default=300, help="seconds per cell")
    args = parser.parse_args(argv)
    if args.pages:
        pages = [Path(p).resolve() for p in args.pages]
    else:
        pages = [ROOT / f"{name}.md" for name in toc_files(ROOT / "_toc.yml")]
    pages = [p for p in pages if p.exists() and is_notebook(p)]
    logging.basicConfig(level=logging.INFO, format="execute_chapters: %(message)s")
    logger = logging.getLogger("execute_chapters")

    cache = get_cache(args.cache)
    for page in pages:
        cache.add_nb_to_project(str(page), read_data=READER)
    start = time.monotonic()
    executor = load_executor("local-parallel", cache, logger=logger)
    # jupyter-cache's parallel executor runs one notebook per CPU core (2 on CI)
    result = executor.run_and_cache(filter_uris=[str(p) for p in pages], timeout=args.timeout)
    failed = sorted(set(result.excepted) | set(result.errored))
    for uri in failed:
        path = Path(uri)
        record = cache.get_project_record(uri)
        traceback = record.traceback or "(no traceback recorded)"
        name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        print(f"\nFAILED {name}: {failing_cell(path, traceback)}: {last_error(traceback)}")
        plain = re.sub(r"\x1b\[[0-9;]*m", "", traceback)
        start_at = plain.find("An error occurred while executing")
        print(plain[start_at if start_at >= 0 else 0:][-3000:])
    cached = [p for p in pages if str(p) not in failed]
    print(f"execute_chapters: {len(cached)} passed, {len(failed)} failed "
          f"({len(pages)} notebooks, {os.cpu_count()} at a time, {time.monotonic() - start:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
