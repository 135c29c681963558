"""The book's Sphinx extension (scripts/sphinx_ntkbook.py): bibliography labels in the same
author–year form as the in-text citations, NamedTuple field aliases left out of the API page."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NamedTuple

from pybtex.database import parse_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import sphinx_ntkbook  # noqa: E402


def test_bibliography_labels_are_author_year() -> None:
    data = parse_file(str(ROOT / "book" / "references.bib"))
    entries = [data.entries[k] for k in ("jacot2018", "lee2019", "chizat2019")]
    labels = list(sphinx_ntkbook.AuthorYearLabels().format_labels(entries))
    assert labels == ["Jacot et al., 2018", "Lee et al., 2019", "Chizat et al., 2019"]


def test_label_forms_for_one_and_two_authors_and_accents() -> None:
    data = parse_file(str(ROOT / "book" / "references.bib"))
    entries = [data.entries[k] for k in ("tao2012", "cho2009", "valleperez2019")]
    labels = list(sphinx_ntkbook.AuthorYearLabels().format_labels(entries))
    # one author, two authors, and a LaTeX accent decoded ({\'e} → é)
    assert labels == ["Tao, 2012", "Cho and Saul, 2009", "Valle Pérez, 2019"]


def test_namedtuple_field_aliases_are_skipped() -> None:
    class Pair(NamedTuple):
        left: int
        right: int

    skip = sphinx_ntkbook._skip_namedtuple_aliases
    assert skip(None, "attribute", "left", Pair.left, False, {}) is True
    assert skip(None, "class", "Pair", Pair, False, {}) is None
