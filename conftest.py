"""Collect the book's jupytext chapters (``book/**/*.md``) as notebooks for nbval.

``pytest --nbval-lax --nbval-current-env book/`` runs every executable chapter — a MyST
markdown file whose front matter names a ``kernelspec`` — directly from its ``.md`` source:
jupytext turns it into a notebook in memory, so no generated ``.ipynb`` is ever committed. A cell
that raises (a failed ``assert`` included) fails its test.
"""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import pytest
from nbval import plugin as nbval_plugin


def is_chapter(path: Path) -> bool:
    """True for a MyST markdown notebook: front matter that names a ``kernelspec``."""
    if path.suffix != ".md":
        return False
    text = path.read_text(encoding="utf-8")
    return text.startswith("---") and "kernelspec:" in text.split("\n---", 1)[0]


class _NotebookReader:
    """Stands in for ``nbformat`` inside nbval: reads ``.md`` chapters with jupytext."""

    def __getattr__(self, name: str):
        return getattr(nbformat, name)

    @staticmethod
    def read(path: str, as_version: int = 4) -> nbformat.NotebookNode:
        if path.endswith(".md"):
            return jupytext.read(path, fmt="md:myst")
        return nbformat.read(path, as_version=as_version)


class JupytextChapter(nbval_plugin.IPyNbFile):
    """nbval's notebook collector, fed from a jupytext ``.md`` chapter."""


def pytest_configure(config: pytest.Config) -> None:
    nbval_plugin.nbformat = _NotebookReader()


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    opt = parent.config.option
    if (getattr(opt, "nbval", False) or getattr(opt, "nbval_lax", False)) and is_chapter(file_path):
        return JupytextChapter.from_parent(parent, path=file_path)
    return None
