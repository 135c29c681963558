"""A small Sphinx extension for the ntkbook site, loaded by ``_config.yml`` (``local_extensions``).

- an author–year label style for the bibliography (``bibtex_default_style: ntkbook_authoryear``):
  the reference list shows "Jacot et al., 2018", as the citations in the text do, instead of
  pybtex's alpha labels ("JGH18");
- every script a page loads is emitted once (sphinx-thebe registers its configuration script
  twice under Jupyter Book 1.x, and the second ``const THEBE_JS_URL`` is a SyntaxError);
- the API page lists a NamedTuple's fields once, from the class docstring's Attributes section,
  without autodoc's generated "Alias for field number N" entries;
- a figure's image gets its caption as alt text instead of its hashed file name;
- the site's favicon (``_static/favicon.svg``; without one every page load logs a 404), also in
  a single-page build (``jupyter-book build book/NN_x.md``), which gets the site's
  ``_static/ntkbook.css`` too, so that it looks (and is checked) like the site;
- type hints print ``jax.Array``, not the private ``jax.jaxlib._jax.Array`` where the class is
  defined (the API page's signatures and parameter lists).
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path

import latexcodec  # noqa: F401  (registers the "ulatex" codec)
from docutils import nodes
from pybtex.plugin import register_plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.sorting.author_year_title import SortingStyle


def _plain(latex: str) -> str:
    return codecs.decode(latex, "ulatex").replace("{", "").replace("}", "")


class AuthorYearLabels(BaseLabelStyle):
    """ "Last, year", "Last and Other, year", "Last et al., year" — as the in-text citations."""

    def format_labels(self, sorted_entries):
        for entry in sorted_entries:
            persons = entry.persons.get("author") or entry.persons.get("editor") or []
            last = [_plain(" ".join(p.prelast_names + p.last_names)) for p in persons]
            if not last:
                who = entry.key
            elif len(last) == 1:
                who = last[0]
            elif len(last) == 2:
                who = f"{last[0]} and {last[1]}"
            else:
                who = f"{last[0]} et al."
            yield f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearStyle(UnsrtStyle):
    default_label_style = AuthorYearLabels
    default_sorting_style = SortingStyle


register_plugin("pybtex.style.formatting", "ntkbook_authoryear", AuthorYearStyle)


def _scripts_once(app, pagename, templatename, context, doctree) -> None:
    seen, unique = set(), []
    for script in context.get("script_files", []):
        # the same inline script may be registered once with filename None and once with ""
        attributes = getattr(script, "attributes", None) or {}
        key = (getattr(script, "filename", str(script)) or "", tuple(sorted(attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def _skip_namedtuple_aliases(app, what, name, obj, skip, options):
    if re.fullmatch(r"Alias for field number \d+", (getattr(obj, "__doc__", None) or "").strip()):
        return True
    return None


def _alt_from_caption(app, doctree, docname) -> None:
    for figure in doctree.findall(nodes.figure):
        captions = list(figure.findall(nodes.caption))
        if not captions:
            continue
        text = " ".join(captions[0].astext().split())
        for image in figure.findall(nodes.image):
            uri = image.get("uri", "")
            alt = image.get("alt", "")
            if not alt or alt == uri or alt in uri or re.fullmatch(r"[0-9a-f]{16,}.*", alt):
                image["alt"] = text


def _public_jax_array(app) -> None:
    import jax

    # where users import it from (its __qualname__ is "jaxlib._jax.Array"); only the printing
    jax.Array.__module__ = "jax"
    jax.Array.__qualname__ = "Array"


STATIC = Path(__file__).resolve().parents[1] / "_static"


def _site_assets(app) -> None:
    static = [Path(app.confdir, p).resolve() for p in app.config.html_static_path]
    if STATIC not in static:  # Jupyter Book adds <source>/_static and its CSS only for the book
        app.config.html_static_path.append(str(STATIC))
        app.add_css_file("ntkbook.css")
    if not app.config.html_favicon:
        app.config.html_favicon = str(STATIC / "favicon.svg")


def setup(app):
    app.connect("builder-inited", _site_assets)
    app.connect("builder-inited", _public_jax_array)
    app.connect("html-page-context", _scripts_once, priority=999)  # after every other handler
    app.connect("autodoc-skip-member", _skip_namedtuple_aliases)
    app.connect("doctree-resolved", _alt_from_caption)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
