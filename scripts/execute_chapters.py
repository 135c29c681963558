"""Execute every notebook page of the book ONCE, in parallel, into the build's execution cache.

``make test`` runs this before ``jupyter-book build``: the build then finds every chapter in the
cache (``execute_notebooks: cache``) and executes nothing, so each chapter runs once per CI run,
not once for nbval and once more for the build. Pages are read exactly as MyST-NB reads them
(jupyter-cache's ``myst_nb_md`` reader), so the cache keys match the build's.

Each chapter passes or fails on its own; a failing one (an ``assert`` in "What this chapter
verified", or any error) is reported with the chapter, the code cell number and its first line in
the ``.md``, and the error, and the script exits 1.

Scheduling: ``--jobs`` kernels at a time (default one per core), one chapter per task, the
longest first (by the times in ``_build/execute_times.json`` of an earlier run, else by
``LAST_KNOWN_SECONDS``), so the run does not end with one long chapter alone on a core.

Times: every chapter's wall and CPU seconds (its kernel's user + system time) are printed and
written with the pass/fail result to ``--times`` (default ``_build/execute_times.json``); the
chapters over ``--budget`` wall seconds (120, issue 21's limit on CI) are named at the end.

Compilation cache: ``--jax-cache DIR`` gives every kernel JAX's persistent compilation cache
in DIR (every program, however fast its compile). A chapter executed again (``make book`` after
an edit) then compiles only what changed: book/02_ntk 40 → 15 CPU s on a rerun. It does not
help a cold run (``make test`` on a fresh clone): chapters share almost no programs (02_ntk
with 01_notation's entries: 40.5 → 38.9 CPU s, within noise), so ``make test`` runs without.

Usage: ``python scripts/execute_chapters.py [--cache _build/.jupyter_cache] [--jobs N]
[--times FILE] [--jax-cache DIR] [PAGE.md ...]`` (pages default to every notebook of ``_toc.yml``).
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import re
import resource
import sys
import time
from pathlib import Path

from jupyter_cache import get_cache
from jupyter_cache.executors.basic import ExecutionWorkerLocalMProc, ProcessData

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_html import toc_files  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
READER = {"type": "plugin", "name": "myst_nb_md"}  # how MyST-NB reads a .md notebook

# Wall seconds of each chapter in the CI run of main before issue 21 (two chapters at a time
# beside the unit suite): only their order matters, to start the longest chapters first when no
# earlier _build/execute_times.json exists (a fresh clone). A page not listed goes first.
LAST_KNOWN_SECONDS = {
    "intro": 4, "01_notation": 42, "02_ntk": 117, "03_gp_limit": 191, "04_ntk_limit": 270,
    "05_ntk_constant": 190, "06_lemma1": 261, "07_positive_definite": 191, "08_intuition": 252,
    "09_least_squares": 273, "10_depth_and_scaling": 142, "11_large_steps_and_features": 166,
    "neural_tangents": 28, "scale": 15,
}  # fmt: skip


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
    cells = list(
        re.finditer(
            r"^```\{code-cell\}[^\n]*\n(?:---\n.*?\n---\n)?(.*?)^```", text, flags=re.S | re.M
        )
    )
    for number, cell in enumerate(cells, start=1):
        if cell.group(1).strip() == source:
            line = text.count("\n", 0, cell.start()) + 1
            return f"code cell {number} (line {line})"
    return f"the cell starting {source.splitlines()[0][:60]!r}"


def last_error(traceback: str) -> str:
    """The last non-empty line of the error (e.g. ``AssertionError: slope off by …``)."""
    lines = [ln for ln in re.sub(r"\x1b\[[0-9;]*m", "", traceback).splitlines() if ln.strip()]
    return lines[-1].strip() if lines else "(no message)"


def previous_rows(path: Path) -> dict[str, dict[str, object]]:
    """Each chapter's row of an earlier run's times file ({} if there is none or it is bad)."""
    try:
        chapters = json.loads(path.read_text())["chapters"]
        return {name: row for name, row in chapters.items() if float(row["wall_s"]) >= 0}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def execute_one(data: ProcessData) -> tuple[int, str, float, float]:
    """Execute one notebook into the cache (jupyter-cache's worker): (status, uri, wall, CPU s).

    Status 0 passed, 1 an exception in a cell, 2 a failure of the machinery. The kernel is a
    child of this pool process, reaped when it shuts down, so its CPU time is the growth of
    RUSAGE_CHILDREN over the call."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.monotonic()
    status, uri = ExecutionWorkerLocalMProc()(data)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return status, uri, time.monotonic() - wall, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", help="notebook pages (default: the TOC's)")
    parser.add_argument("--cache", default=str(ROOT / "_build" / ".jupyter_cache"))
    parser.add_argument("--timeout", type=int, default=300, help="seconds per cell")
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="chapters at a time (default: one per core)",
    )
    parser.add_argument(
        "--times",
        default=None,
        help="JSON summary of every chapter's wall and CPU seconds (default: "
        "_build/execute_times.json, or execute_times.json in a --cache "
        "given)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=120.0,
        help="wall seconds a chapter may take on CI (issue 21); a chapter over "
        "it is named at the end (a warning: wall time depends on the load)",
    )
    parser.add_argument(
        "--jax-cache",
        default=None,
        help="JAX persistent compilation cache for the kernels (default: none)",
    )
    args = parser.parse_args(argv)
    if args.jax_cache:  # read by jax in each kernel (the kernels inherit this environment)
        os.environ["JAX_COMPILATION_CACHE_DIR"] = str(Path(args.jax_cache).resolve())
        os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    if args.times is None:
        default_cache = Path(args.cache).resolve() == (ROOT / "_build" / ".jupyter_cache")
        args.times = str(ROOT / "_build" if default_cache else Path(args.cache)) + (
            "/execute_times.json"
        )
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
    uris = {str(p) for p in pages}
    records = [r for r in cache.list_unexecuted() if r.uri in uris]  # cached ones are kept
    previous = previous_rows(Path(args.times))
    known = {**LAST_KNOWN_SECONDS, **{k: float(v["wall_s"]) for k, v in previous.items()}}
    records.sort(key=lambda r: -known.get(Path(r.uri).stem, float("inf")))
    jobs = max(1, min(args.jobs, len(records)))
    logger.info(f"executing {len(records)} notebook(s), {jobs} at a time, longest first")
    start = time.monotonic()
    tasks = [ProcessData(r.pk, r.uri, cache, args.timeout, False) for r in records]
    times: dict[str, dict[str, object]] = dict(previous)  # pages found in the cache keep theirs
    failed: list[str] = []
    multiprocessing.log_to_stderr(logging.ERROR)  # a failure of the machinery, with traceback
    with multiprocessing.Pool(jobs) as pool:
        for status, uri, wall, cpu in pool.imap_unordered(execute_one, tasks, chunksize=1):
            name = Path(uri).stem
            times[name] = {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "passed": status == 0}
            print(
                f"execute_chapters: {name}: {'passed' if status == 0 else 'FAILED'} in "
                f"{wall:.0f} s ({cpu:.0f} CPU s)",
                flush=True,
            )
            if status != 0:
                failed.append(uri)
    total = time.monotonic() - start
    Path(args.times).parent.mkdir(parents=True, exist_ok=True)
    summary = {"wall_s": round(total, 1), "jobs": jobs, "chapters": dict(sorted(times.items()))}
    Path(args.times).write_text(json.dumps(summary, indent=1) + "\n")
    for uri in sorted(failed):
        path = Path(uri)
        record = cache.get_project_record(uri)
        traceback = record.traceback or "(no traceback recorded)"
        name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        print(f"\nFAILED {name}: {failing_cell(path, traceback)}: {last_error(traceback)}")
        plain = re.sub(r"\x1b\[[0-9;]*m", "", traceback)
        start_at = plain.find("An error occurred while executing")
        print(plain[start_at if start_at >= 0 else 0 :][-3000:])
    ran = {Path(r.uri).stem for r in records}
    slow = sorted(
        (float(row["wall_s"]), name)
        for name, row in times.items()
        if name in ran and float(row["wall_s"]) > args.budget
    )
    if slow:
        print(
            f"execute_chapters: over the {args.budget:.0f} s budget: "
            + ", ".join(f"{name} ({wall:.0f} s)" for wall, name in reversed(slow))
        )
    cached = [p for p in pages if str(p) not in failed]
    print(
        f"execute_chapters: {len(cached)} passed, {len(failed)} failed "
        f"({len(pages)} notebooks, {jobs} at a time, {total:.0f} s; times in {args.times})"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
