"""Check the rendered website in a real browser: headless Chromium loads every page from a local
HTTP server, MathJax typesets (it is served from the site itself, ``_static/mathjax``), and the
check fails on what a reader would see wrong:

- math: a ``.math`` element MathJax left untypeset, a formula with a TeX error (``merror``) or
  an undefined macro (drawn in red), MathJax missing on a page that has math;
- width (at 1280 px): a display equation, with its number, wider than the text column (it would
  be cut off or scroll); a code input that scrolls sideways; at 390 px (a phone), a page that
  pans sideways, or a display equation that overflows without being scrollable;
- figures: an image that fails to load, or one shrunk so far that its smallest text is below
  :data:`MIN_TEXT_PX` CSS px (see :func:`smallest_text_pt`);
- raw MyST/TeX text outside math (the patterns of ``check_html.RAW_MARKUP``);
- console errors (exceptions, ``console.error``, failed or ≥ 400 loads) from the site itself;
- broken internal links: a link to a missing file or to an anchor that is not in its page.

Usage::

    python scripts/browser_check.py [_build/html] [--page book/02_ntk ...] [--screenshots DIR]
        [--jobs 2]

Pages default to every page of ``_toc.yml``. ``--screenshots`` writes a full-page PNG of each page
at 1280 px; ``--jobs`` browsers check pages side by side. Exits non-zero listing every problem
as ``page: what (where)``. Needs ``chromium`` (Debian's package; ``--chromium PATH`` to use
another binary). Standard library only: the browser
is driven through the DevTools protocol over a pipe (``--remote-debugging-pipe``).
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import json
import os
import re
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_html import RAW_MARKUP, summarise, suspicious_math, toc_files  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

#: Window widths (CSS px): the desktop width every check runs at, and a phone.
DESKTOP, PHONE = 1280, 390

#: Smallest legible text in a figure, CSS px. The house style's smallest font is 10 pt, shown at
#: ≥ 13.9 px when a 7 in figure fills the 720 px column; 9 px is where text becomes hard to read.
MIN_TEXT_PX = 9.0

#: Assumed smallest font (pt) of a raster image, whose text sizes cannot be read from the file.
RASTER_FONT_PT = 10.0

#: Seconds a page may take to load and typeset.
PAGE_TIMEOUT = 60.0

#: Screenshots are cut into tiles at most this tall (Chromium cannot capture much taller).
TILE_PX = 8000

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
    "--mute-audio",
    "--font-render-hinting=none",
    "--remote-debugging-pipe",
]


# ------------------------------------------------------------------------------------ the browser


class Browser:
    """Chromium driven through the DevTools protocol over ``--remote-debugging-pipe``: commands go
    to the browser's fd 3 and replies come from its fd 4, each a JSON message ended by NUL."""

    def __init__(self, binary: str) -> None:
        self.profile = tempfile.mkdtemp(prefix="ntkbook-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        # bash moves the pipe ends to fds 3 and 4 before exec'ing Chromium (no preexec_fn:
        # forking with Python code in the child warns, and fails, in a process running JAX;
        # not sh: dash cannot redirect from an fd above 9).
        wire = f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w}'
        self.proc = subprocess.Popen(
            [
                "/bin/bash",
                "-c",
                wire,
                binary,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={self.profile}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(to_browser_r, from_browser_w),
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except Exception:  # noqa: BLE001 — the browser may already be gone
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from Chromium")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe (did it crash?)")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(
        self,
        method: str,
        params: dict | None = None,
        *,
        session: str | None = None,
        timeout: float = PAGE_TIMEOUT,
    ) -> dict:
        """Send one command and return its result (events read meanwhile are kept)."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, session: str, timeout: float = PAGE_TIMEOUT) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self.events):
                if event.get("method") == method and event.get("sessionId") == session:
                    return self.events.pop(i)
            self.events.append(self._read_message(deadline))


# ------------------------------------------------------------------------- what runs in the page

# Runs in the page after its load event; returns everything the checks need as JSON. It waits for
# MathJax's first typeset and for every image, then measures.
PAGE_JS = r"""
(async (rawMarkup) => {
  const out = {math: {}, displays: [], images: [], raw: [], pre: [], pageWidth: 0};
  for (const img of document.images) { img.loading = "eager"; }
  await Promise.all([...document.images].map(img => img.decode().catch(() => null)));
  const hasMath = document.querySelector(".math") !== null;
  out.math.mathjax = !!(window.MathJax && MathJax.startup && MathJax.startup.promise);
  if (out.math.mathjax) {
    await MathJax.startup.promise;
  }
  await document.fonts.ready;
  out.math.present = hasMath;
  // untypeset: a Sphinx math element with no MathJax output in it
  out.math.untypeset = [...document.querySelectorAll("span.math, div.math")]
    .filter(el => !el.querySelector("mjx-container"))
    .map(el => el.textContent.trim().slice(0, 90));
  // errors: MathJax's internal tree of each formula, as MathML
  out.math.errors = [];
  out.math.tex = [];
  const texOf = new Map();
  if (out.math.mathjax && MathJax.startup.document) {
    for (const item of MathJax.startup.document.math) {
      const tex = String(item.math).trim();
      out.math.tex.push(tex);
      if (item.typesetRoot) texOf.set(item.typesetRoot, tex);
      let mml = "";
      try { mml = MathJax.startup.toMML(item.root); } catch (e) { mml = ""; }
      const error = /<merror/.test(mml) ? "TeX error"
                  : /mathcolor="red"/.test(mml) ? "undefined macro (drawn in red)" : null;
      if (error) {
        const message = item.typesetRoot && item.typesetRoot.querySelector("[data-mjx-error]");
        out.math.errors.push({error, tex: tex.slice(0, 120),
          detail: message ? message.getAttribute("data-mjx-error") : ""});
      }
    }
  }
  // display equations: the formula and its number against the block that holds them
  for (const c of document.querySelectorAll('mjx-container[display="true"]')) {
    const block = c.closest("div.math") || c.parentElement;
    const eqno = block.querySelector(":scope > .eqno, :scope > span.eqno");
    const formula = c.querySelector("mjx-math") || c;
    const style = getComputedStyle(c), blockStyle = getComputedStyle(block);
    const scrollable = ["auto", "scroll"].includes(style.overflowX)
                    || ["auto", "scroll"].includes(blockStyle.overflowX);
    out.displays.push({
      id: block.id || "",
      number: eqno ? eqno.textContent.replace(/[#¶]/g, "").trim() : "",
      tex: (texOf.get(c) || "").replace(/\s+/g, " ").slice(0, 110),
      formula: formula.getBoundingClientRect().width,
      eqno: eqno ? eqno.getBoundingClientRect().width : 0,
      // the theme lays div.math out as a flex row (number, formula) with a gap of .5em between
      // them: that gap takes column width too (omitting it let a 7 px overflow through)
      gap: eqno ? (parseFloat(blockStyle.columnGap) || 0) : 0,
      block: block.clientWidth,
      scrollable,
    });
  }
  // images of the article
  const article = document.querySelector("article") || document.querySelector("main")
                  || document.body;
  for (const img of article.querySelectorAll("img")) {
    const r = img.getBoundingClientRect();
    const figure = img.closest("figure");
    const number = figure && figure.querySelector(".caption-number");
    out.images.push({src: img.currentSrc || img.src, attr: img.getAttribute("src"),
      figure: number ? number.textContent.trim() : "",
      alt: img.getAttribute("alt") || "", loaded: img.complete && img.naturalWidth > 0,
      natural: img.naturalWidth, rendered: r.width});
  }
  // ordinary text outside math and code
  const skip = "pre, code, script, style, textarea, kbd, samp, svg, math, mjx-container, " +
               ".math, .highlight, .headerlink, .cell_output, .output, mjx-assistive-mml";
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  const texts = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (!n.parentElement || n.parentElement.closest(skip)) continue;
    texts.push(n.textContent);
  }
  const text = texts.join(" ");
  for (const [kind, source] of rawMarkup) {
    const rx = new RegExp(source, "g");
    for (const m of text.matchAll(rx)) {
      const a = Math.max(m.index - 30, 0), b = Math.min(m.index + m[0].length + 30, text.length);
      out.raw.push({kind, excerpt: text.slice(a, b).replace(/\s+/g, " ")});
    }
  }
  // code that scrolls sideways
  for (const pre of article.querySelectorAll("pre")) {
    if (pre.scrollWidth > pre.clientWidth + 1) {
      const input = pre.closest(".cell_input, .highlight") && !pre.closest(".cell_output");
      out.pre.push({input: !!input, overflow: pre.scrollWidth - pre.clientWidth,
                    line: pre.textContent.split("\n")
                             .reduce((a, l) => l.length > a.length ? l : a, "").slice(0, 90)});
    }
  }
  out.pageWidth = document.documentElement.scrollWidth;
  out.viewport = window.innerWidth;
  out.height = document.documentElement.scrollHeight;
  return out;
})
"""


def load(browser: Browser, url: str, width: int) -> tuple[str, dict, list[dict]]:
    """Open ``url`` in a new tab ``width`` CSS px wide; returns (session, measurements, the
    console/network events of the tab)."""
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
        "sessionId"
    ]
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.send(f"{domain}.enable", session=session)
    browser.send(
        "Emulation.setDeviceMetricsOverride",
        {
            "width": width,
            "height": 900,
            "deviceScaleFactor": 1,
            "mobile": width < 600,
        },
        session=session,
    )
    browser.send("Page.navigate", {"url": url}, session=session)
    browser.wait_event("Page.loadEventFired", session)
    result = browser.send(
        "Runtime.evaluate",
        {
            "expression": f"{PAGE_JS}({json.dumps(RAW_MARKUP)})",
            "awaitPromise": True,
            "returnByValue": True,
        },
        session=session,
    )
    if "exceptionDetails" in result:
        raise RuntimeError(f"{url}: the page check itself failed: {result['exceptionDetails']}")
    measured = result["result"]["value"]
    time.sleep(0.2)  # let late console messages arrive
    browser.send("Runtime.evaluate", {"expression": "1"}, session=session)
    events = [e for e in browser.events if e.get("sessionId") == session]
    browser.events = [e for e in browser.events if e.get("sessionId") != session]
    measured["_target"] = target
    return session, measured, events


def close_tab(browser: Browser, measured: dict) -> None:
    browser.send("Target.closeTarget", {"targetId": measured["_target"]})


def screenshot(browser: Browser, session: str, height: int, width: int, path: Path) -> list[Path]:
    """Full-page PNG(s) of the tab: one file, or tiles ``path-1.png, …`` for a very tall page."""
    paths = []
    tiles = max(1, -(-height // TILE_PX))
    for k in range(tiles):
        top = k * TILE_PX
        clip = {"x": 0, "y": top, "width": width, "height": min(TILE_PX, height - top), "scale": 1}
        data = browser.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": clip,
            },
            session=session,
        )["data"]
        target = path if tiles == 1 else path.with_name(f"{path.stem}-{k + 1}{path.suffix}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(base64.b64decode(data))
        paths.append(target)
    return paths


# ------------------------------------------------------------------------------------ the checks


def png_dpi(data: bytes) -> float | None:
    """Horizontal resolution (dots per inch) from a PNG's pHYs chunk, or None."""
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"pHYs" and length == 9:
            x, _, unit = struct.unpack(">IIB", data[pos + 8 : pos + 17])
            return x * 0.0254 if unit == 1 else None
        if kind == b"IDAT":
            return None
        pos += 12 + length
    return None


_SVG_WIDTH = re.compile(rb'<svg[^>]*?\swidth="([\d.]+)(pt|px|in|cm|mm)?"', re.S)
_SVG_GLYPH_SCALE = re.compile(rb"scale\(([\d.]+) -\1\)")
_UNIT_PT = {b"pt": 1.0, b"px": 0.75, b"in": 72.0, b"cm": 72 / 2.54, b"mm": 72 / 25.4, None: 0.75}


def smallest_text_pt(path: Path) -> tuple[float, float | None]:
    """(image width in pt, its smallest base font size in pt or None if unknown).

    SVG from matplotlib (``svg.fonttype = "path"``) draws each text as glyph outlines inside
    ``<g transform="… scale(s -s)">`` with s = font size / 100; the smallest s gives the smallest
    font (sub- and superscripts, scaled again inside, are not counted). A PNG's width in pt comes
    from its pHYs resolution (matplotlib writes it), else 96 px per inch; its font sizes are not
    known.
    """
    data = path.read_bytes()
    if path.suffix.lower() == ".svg" or data.lstrip()[:5] in (b"<?xml", b"<svg "):
        m = _SVG_WIDTH.search(data)
        width_pt = float(m.group(1)) * _UNIT_PT[m.group(2)] if m else float("nan")
        scales = [float(s) for s in _SVG_GLYPH_SCALE.findall(data)]
        return width_pt, (100 * min(scales) if scales else None)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        width_px = struct.unpack(">I", data[16:20])[0]
        dpi = png_dpi(data) or 96.0
        return width_px / dpi * 72.0, None
    return float("nan"), None


def check_images(name: str, images: list[dict], html: Path, base_url: str) -> list[str]:
    problems = []
    for img in images:
        src = img["attr"] or img["src"]
        if img.get("figure"):
            src = f"{img['figure']} {src}"
        if not img["loaded"]:
            problems.append(f"{name}: image does not load ({src})")
            continue
        path = url_to_file(img["src"], html, base_url)
        if path is None or not path.is_file():
            continue  # not ours (e.g. a data: URL)
        if re.fullmatch(r"[0-9a-f]{32,}(\.\w+)?", img["alt"]) or img["alt"] == path.name:
            problems.append(f"{name}: image alt text is its file name ({src})")
        width_pt, font_pt = smallest_text_pt(path)
        if not (width_pt > 0) or img["rendered"] <= 0:
            continue
        px_per_pt = img["rendered"] / width_pt
        font = font_pt if font_pt is not None else RASTER_FONT_PT
        text_px = font * px_per_pt
        if text_px < MIN_TEXT_PX:
            problems.append(
                f"{name}: figure text too small: {font:.3g} pt text drawn at {text_px:.1f} px "
                f"< {MIN_TEXT_PX:g} px (figure {width_pt / 72:.1f} in wide shown at "
                f"{img['rendered']:.0f} px, {100 * img['rendered'] / img['natural']:.0f} % of "
                f"natural size) ({src})"
            )
    return problems


def check_measured(name: str, m: dict, width: int) -> list[str]:
    problems = []
    math = m["math"]
    if width == DESKTOP:
        if math["present"] and not math["mathjax"]:
            problems.append(f"{name}: MathJax did not load; formulas show as raw TeX")
        for tex in math["untypeset"][:10]:
            problems.append(f"{name}: math not typeset: {tex}")
        if len(math["untypeset"]) > 10:
            problems.append(f"{name}: … and {len(math['untypeset']) - 10} more untypeset")
        for err in math["errors"]:
            detail = f" — {err['detail']}" if err["detail"] else ""
            problems.append(f"{name}: math {err['error']}{detail}: {err['tex']}")
        found = [(r["kind"], r["excerpt"]) for r in m["raw"]]
        for tex in math["tex"]:
            found += suspicious_math(tex)
        problems += summarise(name, found)
    for d in m["displays"]:
        label = d["number"] or d["id"] or "unnumbered"
        need = d["formula"] + d["eqno"] + d.get("gap", 0.0)
        if width == DESKTOP and need > d["block"] + 1:
            problems.append(
                f"{name} @{width}px: display equation {label} is {need:.0f} px wide (formula "
                f"{d['formula']:.0f} + gap {d.get('gap', 0.0):.0f} + number {d['eqno']:.0f}) in a "
                f"{d['block']} px column: {d['tex']}"
            )
        elif width != DESKTOP and d["formula"] > d["block"] + 1 and not d["scrollable"]:
            problems.append(
                f"{name} @{width}px: display equation {label} ({d['formula']:.0f} px) overflows "
                f"its {d['block']} px column and cannot be scrolled: {d['tex']}"
            )
    if m["pageWidth"] > width + 1:  # (a phone widens innerWidth to the content: use the window)
        problems.append(
            f"{name} @{width}px: the page pans sideways ({m['pageWidth']} px wide in "
            f"a {width} px window)"
        )
    if width == DESKTOP:
        for pre in m["pre"]:
            what = "code cell" if pre["input"] else "output"
            problems.append(
                f"{name} @{width}px: {what} scrolls sideways by {pre['overflow']} px: "
                f"{pre['line']!r}"
            )
    return problems


def check_console(name: str, events: list[dict], base_url: str) -> list[str]:
    """Errors of the page itself: exceptions, console.error, failed or ≥ 400 loads of our URLs."""
    problems = []

    def ours(url: str | None) -> bool:
        return not url or url.startswith(base_url) or url.startswith(("data:", "blob:"))

    for e in events:
        method, p = e.get("method"), e.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            text = d.get("exception", {}).get("description") or d.get("text", "")
            if ours(d.get("url")):
                problems.append(f"{name}: JavaScript exception: {text.splitlines()[0][:200]}")
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])
            problems.append(f"{name}: console.{p['type']}: {text[:200]}")
        elif method == "Log.entryAdded" and p["entry"]["level"] == "error":
            entry = p["entry"]
            if ours(entry.get("url")) and entry.get("source") != "network":
                problems.append(f"{name}: console error: {entry['text'][:200]}")
        elif method == "Network.responseReceived":
            r = p["response"]
            if r["status"] >= 400 and ours(r["url"]):
                problems.append(f"{name}: {r['status']} for {r['url'].removeprefix(base_url)}")
        elif method == "Network.loadingFailed" and not p.get("canceled"):
            pass  # reported with its URL by Network.responseReceived or as an unloaded image
    return problems


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"] or "")
        if tag == "a" and a.get("name"):
            self.ids.add(a["name"] or "")
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"] or "")


@functools.cache
def _parsed(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return parser


def check_links(name: str, page: Path, html: Path) -> list[str]:
    """Every relative link of the page names an existing file, and its #anchor exists there."""
    problems = []
    for href in sorted(set(_parsed(page).hrefs)):
        parts = urllib.parse.urlsplit(href)
        if parts.scheme or parts.netloc or href.startswith(("mailto:", "javascript:")):
            continue
        target = page if not parts.path else (page.parent / urllib.parse.unquote(parts.path))
        if target.is_dir():
            target = target / "index.html"
        if not target.resolve().is_relative_to(html.resolve()):
            problems.append(f"{name}: link leaves the site: {href}")
            continue
        if not target.exists():
            problems.append(f"{name}: broken link: {href} (no file {target.relative_to(html)})")
            continue
        anchor = urllib.parse.unquote(parts.fragment)
        if anchor and target.suffix == ".html" and anchor not in _parsed(target).ids:
            problems.append(
                f"{name}: broken link: {href} (no #{anchor} in {target.relative_to(html)})"
            )
    return problems


def url_to_file(url: str, html: Path, base_url: str) -> Path | None:
    if not url.startswith(base_url):
        return None
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path).lstrip("/")
    return html / path


# ------------------------------------------------------------------------------------ the server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # no access log on stderr
        pass


def serve(html: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def find_chromium(given: str | None) -> str:
    for candidate in (
        given,
        os.environ.get("CHROMIUM"),
        "chromium",
        "chromium-browser",
        "google-chrome",
    ):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate) or candidate
    raise SystemExit(
        "browser_check: no Chromium found; install Debian's `chromium` package "
        "(`.ci/run` does) or pass --chromium PATH"
    )


def check_pages(
    browser: Browser,
    html: Path,
    base_url: str,
    pages: list[str],
    *,
    screenshots: Path | None,
    widths: tuple[int, ...],
) -> dict[str, list[str]]:
    """The problems of each of ``pages``, loaded one after another in ``browser``."""
    found: dict[str, list[str]] = {}
    for name in pages:
        problems = found.setdefault(name, [])
        page = html / f"{name}.html"
        if not page.exists():
            problems.append(f"{name}: page {page} is missing")
            continue
        problems += check_links(name, page, html)
        for width in widths:
            session, measured, events = load(browser, base_url + f"{name}.html", width)
            problems += check_measured(name, measured, width)
            if width == DESKTOP:
                problems += check_images(name, measured["images"], html, base_url)
                problems += check_console(name, events, base_url)
                if screenshots is not None:
                    screenshot(
                        browser,
                        session,
                        measured["height"],
                        width,
                        screenshots / f"{name.replace('/', '__')}.png",
                    )
            close_tab(browser, measured)
    return found


def run(
    html: Path,
    pages: list[str],
    *,
    chromium: str,
    screenshots: Path | None,
    widths: tuple[int, ...] = (DESKTOP, PHONE),
    jobs: int = 2,
) -> list[str]:
    """Check ``pages`` (paths relative to ``html`` without ``.html``); returns the problems, in
    the order of ``pages``.

    ``jobs`` browsers check the pages side by side (page k goes to browser k mod jobs): layout and
    MathJax typesetting are CPU-bound, so on CI's 2 cores a second browser uses the core that one
    browser leaves idle, and every page is still checked alone in its own tab, as before."""
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs: must be a positive integer, got {jobs!r}")
    html = html.resolve()
    server, base_url = serve(html)
    shares = [pages[k::jobs] for k in range(min(jobs, len(pages)))]

    def one_browser(share: list[str]) -> dict[str, list[str]]:
        browser = Browser(chromium)
        try:
            return check_pages(
                browser, html, base_url, share, screenshots=screenshots, widths=widths
            )
        finally:
            browser.close()

    try:
        with ThreadPoolExecutor(max_workers=max(len(shares), 1)) as pool:
            found: dict[str, list[str]] = {}
            for part in pool.map(one_browser, shares):
                found.update(part)
    finally:
        server.shutdown()
        server.server_close()
    return [problem for name in dict.fromkeys(pages) for problem in found.get(name, [])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", nargs="?", default=str(ROOT / "_build" / "html"))
    parser.add_argument(
        "--page",
        action="append",
        default=[],
        help="a page to check, e.g. book/02_ntk (repeatable; default: the TOC)",
    )
    parser.add_argument("--screenshots", default=None, help="folder for 1280 px screenshots")
    parser.add_argument("--chromium", default=None, help="the Chromium binary")
    parser.add_argument(
        "--jobs", type=int, default=2, help="browsers side by side (default 2, one per CI core)"
    )
    args = parser.parse_args(argv)
    html = Path(args.html)
    pages = [p.removesuffix(".html").removesuffix(".md") for p in args.page] or toc_files(
        ROOT / "_toc.yml"
    )
    start = time.monotonic()
    problems = run(
        html,
        pages,
        chromium=find_chromium(args.chromium),
        screenshots=Path(args.screenshots) if args.screenshots else None,
        jobs=args.jobs,
    )
    for p in problems:
        print(f"browser_check: {p}")
    print(
        f"browser_check: {len(pages)} page(s) checked at {DESKTOP} and {PHONE} px in "
        f"{time.monotonic() - start:.1f} s, {len(problems)} problem(s)"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
