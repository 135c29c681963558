"""The book pipeline itself: nbval runs jupytext chapters and reports failures.

Each test writes a throwaway chapter next to a copy of the repository's root ``conftest.py``
and runs ``pytest --nbval-lax --nbval-current-env`` on it in a subprocess, exactly as
``make test`` runs the book.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FRONT_MATTER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# A throwaway chapter

```{code-cell} ipython3
value = 2 + 2
```

"""


def run_nbval(tmp_path: Path, closing_cell: str) -> subprocess.CompletedProcess[str]:
    shutil.copy(ROOT / "conftest.py", tmp_path / "conftest.py")
    chapter = tmp_path / "chapter.md"
    chapter.write_text(FRONT_MATTER + f"```{{code-cell}} ipython3\n{closing_cell}\n```\n")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "--nbval-current-env",
            "-p",
            "no:cacheprovider",
            "-q",
            "--rootdir",
            str(tmp_path),
            "-c",
            "/dev/null",
            str(chapter),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_nbval_reports_a_failing_assert(tmp_path: Path) -> None:
    result = run_nbval(tmp_path, 'assert value == 5, "arithmetic is broken"')
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 1 passed" in result.stdout, result.stdout
    assert "arithmetic is broken" in result.stdout


def test_nbval_passes_a_true_chapter(tmp_path: Path) -> None:
    result = run_nbval(tmp_path, 'assert value == 4, "arithmetic is broken"')
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout, result.stdout


def test_every_book_chapter_is_in_the_toc() -> None:
    toc = (ROOT / "_toc.yml").read_text()
    chapters = [p for p in (ROOT / "book").glob("*.md")]
    missing = [p.stem for p in chapters if f"book/{p.stem}" not in toc]
    assert not missing, f"chapters not listed in _toc.yml: {missing}"


def test_execute_chapters_names_the_failing_chapter_and_cell(tmp_path: Path) -> None:
    """`make test` executes each chapter once with scripts/execute_chapters.py: a failing assert
    must fail it with a message naming the chapter, the cell and the assert's message."""
    bad = tmp_path / "bad.md"
    bad.write_text(
        FRONT_MATTER + '```{code-cell} ipython3\nassert value == 5, "arithmetic is broken"\n```\n'
    )
    good = tmp_path / "good.md"
    good.write_text(FRONT_MATTER)
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "execute_chapters.py"),
            "--cache",
            str(tmp_path / "cache"),
            str(bad),
            str(good),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert f"FAILED {bad}: code cell 2 (line 19): AssertionError: arithmetic is broken" in out, out
    assert "1 passed, 1 failed" in out, out
    # every chapter's time and result, in the JSON summary next to the cache
    times = json.loads((tmp_path / "cache" / "execute_times.json").read_text())
    assert {name: row["passed"] for name, row in times["chapters"].items()} == {
        "bad": False, "good": True,
    }, times  # fmt: skip
    assert all(row["wall_s"] > 0 and row["cpu_s"] >= 0 for row in times["chapters"].values())
