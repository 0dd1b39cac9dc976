"""The built book as a reader's browser shows it: every page in headless Chromium, offline.

The HTML build and nbval cannot see what only a browser sees: a script or font fetched from a CDN (MathJax
once was: offline the maths stayed raw TeX) or missing from the book, a warning, traceback or tqdm bar printed
into a cell's output, an image that does not load, a link to a page or anchor that does not exist. The checks
live in ``clipscope_utils.book.browser``; this module runs them over ``CLIPSCOPE_HTML`` (default: this
checkout's ``_build/html``), one test per page, and first shows that the checks catch each kind of problem.

``make nbval`` runs it right after the smoke build with ``CLIPSCOPE_REQUIRE_BROWSER=1``: there a missing
Chromium or a missing build fails instead of skipping, so CI cannot pass without looking. ``make unit`` leaves
it out (it would test whatever old build lies around).
"""

import base64
import os
from pathlib import Path

import pytest

from clipscope_utils.book import browser

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("CLIPSCOPE_HTML") or ROOT / "_build" / "html").resolve()
REQUIRED = os.environ.get("CLIPSCOPE_REQUIRE_BROWSER", "") not in ("", "0")
CHROMIUM = browser.find_chromium()
PAGES = browser.book_pages(HTML) if (HTML / "index.html").is_file() else []
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="  # 1x1 PNG


def unavailable(reason: str) -> None:
    """Skip, or fail where the browser test must run (CLIPSCOPE_REQUIRE_BROWSER=1, as in CI)."""
    if REQUIRED:
        pytest.fail(f"{reason} (CLIPSCOPE_REQUIRE_BROWSER=1: the browser test must run)", pytrace=False)
    pytest.skip(reason)


def need_chromium() -> str:
    if CHROMIUM is None:
        looked = os.environ.get("CLIPSCOPE_CHROMIUM") or ", ".join(browser.BROWSERS)
        unavailable(f"no Chromium on PATH (looked for {looked}; Debian/Ubuntu: apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="module")
def reports() -> dict[str, browser.PageReport]:
    """All pages in one browser, once: starting Chromium per page would cost more than loading the pages."""
    chromium = need_chromium()
    if not PAGES:
        unavailable(f"no built book in {HTML}: build the book first: make smoke")
    return {report.page: report for report in browser.check_pages(HTML, PAGES, chromium)}


def test_the_checks_catch_each_kind_of_problem(tmp_path: Path) -> None:
    """A test that cannot fail proves nothing: a page with one problem of each kind, and a clean one."""
    chromium = need_chromium()
    (tmp_path / "pixel.png").write_bytes(base64.b64decode(PIXEL))
    (tmp_path / "index.html").write_text("""<!DOCTYPE html><html><head><meta charset="utf-8">
<script src="https://cdn.example.org/mathjax.js"></script><script src="vendor/gone.js"></script></head><body>
<p>raw maths: <span class="math">\\(x^2\\)</span></p>
<pre>Traceback (most recent call last):
/x/y.py:3: UserWarning: a warning printed into a cell
 50%|█████     | 5/10 [00:01&lt;00:01,  4.99it/s]</pre>
<img src="pixel.png"><img src="missing.png">
<a href="clean.html">ok</a><a href="clean.html#here">ok</a><a href="#top">ok</a><a href="https://example.org/">a
link out is no request</a><a href="gone.html">no file</a><a href="clean.html#nowhere">no anchor</a>
<h1 id="top">top</h1><script>notDefinedAnywhere();</script></body></html>""")
    (tmp_path / "clean.html").write_text("""<!DOCTYPE html><html><body>
<div class="admonition warning"><p class="admonition-title">Warning</p><p id="here">an admonition is no
Python warning; 100% of it is prose.</p></div><img src="data:image/png;base64,PIXEL"></body></html>"""
                                         .replace("PIXEL", PIXEL))
    found = {r.page: r for r in browser.check_pages(tmp_path, executable=chromium)}
    assert found["clean.html"].problems() == {}
    bad = found["index.html"]
    assert bad.external == ["https://cdn.example.org/mathjax.js"]
    assert [line.split(":")[0] for line in bad.text] == ["traceback", "warning", "progress bar"]
    assert [src.rsplit("/", 1)[-1] for src in bad.images] == ["missing.png"]
    assert sorted(url.split(" ")[0].rsplit("/", 1)[-1] for url in bad.missing) == ["gone.js", "missing.png"]
    assert bad.maths == ["\\(x^2\\)"]
    assert [link.rsplit("/", 1)[-1] for link in bad.links] == [
        "clean.html#nowhere (no id 'nowhere' in clean.html)", "gone.html (no file gone.html)"]
    assert len(bad.errors) == 1 and "notDefinedAnywhere" in bad.errors[0]


@pytest.mark.parametrize("page", PAGES or ["(no built book)"])
def test_page_loads_only_from_the_book_and_shows_no_problem(reports: dict, page: str) -> None:
    """Every request stays on the book's server and succeeds, no traceback/warning/progress bar in the visible
    text, every image loaded, every formula typeset, every link into the book finds its file and anchor, no
    uncaught JavaScript error."""
    problems = reports[page].problems()
    assert not problems, f"{page}:\n" + "\n".join(
        f"  {kind}: {item}" for kind, items in problems.items() for item in items)
