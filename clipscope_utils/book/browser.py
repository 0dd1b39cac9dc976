"""Load the built book in headless Chromium and list what a reader would see go wrong.

A build can pass (Sphinx exits 0, nbval agrees) and still show a reader raw TeX because MathJax came from a
CDN, a ``UserWarning`` or a tqdm bar in a cell's output, a broken image or a dead link. Only a browser sees
these, so :func:`check_pages` serves the HTML on loopback, opens every page in one Chromium (driven over the
DevTools protocol through a pipe: standard library only, no port to find) and returns per page:

* ``external`` — requests that left the book (anything but the loopback server, ``data:``, ``blob:``,
  ``about:``); every host name but the loopback address is made unresolvable, so such requests fail fast
  and the result is the same with or without internet;
* ``text`` — visible text that reads like a traceback, a Python or logging warning, or a progress bar;
* ``images`` — ``<img>`` that did not load;
* ``links`` — links into the book whose file or anchor does not exist;
* ``missing`` — requests to the book's own server that failed (a vendored script or font not copied);
* ``maths`` — formulas MathJax did not typeset (the reader sees raw TeX);
* ``errors`` — uncaught JavaScript exceptions (a script that failed to load or clashed with another).

``python -m clipscope_utils.book.browser [_build/html]`` prints the same; ``--screenshot PAGE PNG`` saves
how one page looks.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import functools
import http.server
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check", "--mute-audio", "--hide-scrollbars",
    "--window-size=1280,1000",
    # no name resolves but the loopback address: a request that leaves the book fails at once, offline or not
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
LOCAL_SCHEMES = ("data:", "blob:", "about:")
# what Python prints for a traceback, a warning (UserWarning, FutureWarning, ...), a logging warning, and tqdm
TEXT_PATTERNS = {
    "traceback": re.compile(r"Traceback"),
    "warning": re.compile(r"\b[A-Z]\w*Warning\b|\bWARNING\b|^\s*Warning:", re.M),
    "progress bar": re.compile(r"\d+%\|[█▏▎▍▌▋▊▉#▇▆▅▄▃▂▁ ]*\|"),
}
# JavaScript errors of the toolchain itself, harmless to a reader: Sphinx 7 writes an extension's inline scripts
# into each page twice, and sphinx-thebe's declares a `const` (the first declaration stands; thebe is off anyway)
KNOWN_ERRORS = re.compile(r"Identifier 'THEBE_JS_URL' has already been declared")

# evaluated in each page once it settled: visible text, images (lazy ones made eager and awaited), link targets
PAGE_SCRIPT = """(async () => {
  const imgs = [...document.images];
  for (const i of imgs) if (i.loading === "lazy") i.loading = "eager";
  await Promise.race([
    Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; }))),
    new Promise(r => setTimeout(r, 5000)),
  ]);
  return {
    text: document.body ? document.body.innerText : "",
    images: imgs.map(i => ({src: i.currentSrc || i.src || i.outerHTML.slice(0, 120),
                            ok: i.complete && i.naturalWidth > 0})),
    links: [...document.querySelectorAll("a[href]")].map(a => a.href),
    maths: [...document.querySelectorAll(".math")].filter(m => !m.querySelector("mjx-container"))
             .map(m => m.textContent.trim().slice(0, 100)),
  };
})()"""
# MathJax typesets after the load event; wait for it (when the page has it) so a screenshot shows the maths
MATHJAX_SCRIPT = """(async () => {
  const t0 = Date.now();
  while (!(window.MathJax && MathJax.startup && MathJax.startup.promise) && Date.now() - t0 < 1500
         && document.querySelector('script[src*="mathjax" i]')) await new Promise(r => setTimeout(r, 50));
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await Promise.race([MathJax.startup.promise, new Promise(r => setTimeout(r, 10000))]);
  }
  return true;
})()"""


class BrowserError(RuntimeError):
    """Chromium is missing, did not start, or stopped answering."""


def find_chromium() -> str | None:
    """The first Chromium-like browser on PATH (``CLIPSCOPE_CHROMIUM`` names one explicitly)."""
    explicit = os.environ.get("CLIPSCOPE_CHROMIUM")
    if explicit:
        return shutil.which(explicit)
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def book_pages(html: Path) -> list[str]:
    """Every page of a built book (relative POSIX paths), Sphinx's index and search pages included; not the
    files under ``_static``, ``_sources`` and ``_images``, which are no pages."""
    return sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html")
                  if not p.relative_to(html).parts[0].startswith("_"))


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        pass


@contextlib.contextmanager
def serve(folder: Path):
    """Serve ``folder`` on a free loopback port in a thread; yields the base URL (ending in ``/``)."""
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class Chromium:
    """Headless Chromium with one tab, driven over the DevTools protocol on ``--remote-debugging-pipe``
    (JSON messages ended by NUL on file descriptors 3 and 4 of the browser)."""

    def __init__(self, executable: str | None = None, timeout: float = 30.0) -> None:
        executable = executable or find_chromium()
        if executable is None:
            raise BrowserError(f"no Chromium on PATH (looked for {', '.join(BROWSERS)})")
        self.timeout = timeout
        self.profile = tempfile.TemporaryDirectory(prefix="clipscope-chromium-", ignore_cleanup_errors=True)
        to_browser, self._to_browser = os.pipe()
        self._from_browser, from_browser = os.pipe()
        # a small Python puts the browser's pipe ends on the descriptors 3 and 4 it expects, then becomes the
        # browser (subprocess cannot renumber descriptors; moving both above 9 first avoids any collision)
        ends = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser, from_browser)]
        for fd in (to_browser, from_browser):
            os.close(fd)
        to_browser, from_browser = ends
        trampoline = (f"import os, sys; os.dup2({to_browser}, 3); os.dup2({from_browser}, 4); "
                      f"os.close({to_browser}); os.close({from_browser}); os.execv(sys.argv[1], sys.argv[1:])")
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-S", "-c", trampoline, executable, *FLAGS, "--remote-debugging-pipe",
             f"--user-data-dir={self.profile.name}", "about:blank"],
            pass_fds=(to_browser, from_browser), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self.stderr, start_new_session=True,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._next_id = 0
        self._replies: dict[int, queue.Queue] = {}
        self._lock = threading.Lock()
        self.events: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        try:
            self.call("Browser.getVersion")
            target = self.call("Target.createTarget", url="about:blank")["targetId"]
            self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        except BaseException:
            self.close()
            raise

    def _read(self) -> None:
        buffer = b""
        with os.fdopen(self._from_browser, "rb", buffering=0) as pipe:
            while chunk := pipe.read(1 << 16):
                buffer += chunk
                *messages, buffer = buffer.split(b"\0")
                for raw in messages:
                    message = json.loads(raw)
                    if "id" in message:
                        with self._lock:
                            waiting = self._replies.pop(message["id"], None)
                        if waiting is not None:
                            waiting.put(message)
                    else:
                        self.events.put(message)
        self.events.put({"method": "closed"})

    def _log_tail(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace").strip()[-1500:]

    def call(self, method: str, session: bool = False, timeout: float | None = None, **params) -> dict:
        """Send one command and wait for its answer; ``session`` sends it to the tab rather than the browser."""
        with self._lock:
            self._next_id += 1
            ident = self._next_id
            self._replies[ident] = answer = queue.Queue()
        message = {"id": ident, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        try:
            os.write(self._to_browser, json.dumps(message).encode() + b"\0")
            reply = answer.get(timeout=timeout or self.timeout)
        except (OSError, queue.Empty):
            raise BrowserError(f"Chromium did not answer {method} (exit code {self.proc.poll()}); "
                               f"its log ends:\n{self._log_tail()}") from None
        if "error" in reply:
            raise BrowserError(f"{method} failed: {reply['error'].get('message')}")
        return reply.get("result", {})

    def evaluate(self, expression: str, timeout: float | None = None):
        """Run JavaScript in the tab (awaiting a promise) and return its JSON value."""
        result = self.call("Runtime.evaluate", session=True, timeout=timeout, expression=expression,
                           awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"script failed: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def close(self) -> None:
        """Close the browser (killing its process group if it does not go) and remove its profile."""
        if self.proc.poll() is None:
            with contextlib.suppress(BrowserError, OSError):
                self.call("Browser.close", timeout=5)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        with contextlib.suppress(OSError):
            os.close(self._to_browser)
        self.stderr.close()
        self.profile.cleanup()

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class PageReport:
    """What went wrong on one page (every list empty: nothing)."""

    page: str
    external: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    maths: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    requests: dict[str, str] = field(default_factory=dict, repr=False)  # request id -> URL, as the tab sent them

    def problems(self) -> dict[str, list[str]]:
        kinds = ("external", "text", "images", "links", "missing", "maths", "errors")
        return {kind: getattr(self, kind) for kind in kinds if getattr(self, kind)}


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs) -> None:
        self.ids.update(value for name, value in attrs if name in ("id", "name") and value)


@functools.lru_cache(maxsize=None)
def _anchors(path: Path) -> frozenset[str]:
    parser = _Ids()
    parser.feed(path.read_text(errors="replace"))
    return frozenset(parser.ids)


def broken_link(html: Path, base: str, href: str) -> str | None:
    """Why an internal link does not resolve (its file or anchor is missing), or None; other links: None."""
    if not href.startswith(base):
        return None
    parts = urlsplit(href)
    rel = unquote(parts.path)[len(urlsplit(base).path):]
    target = html / rel
    if rel == "" or rel.endswith("/") or target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        return f"{href} (no file {target.relative_to(html).as_posix()})"
    anchor = unquote(parts.fragment)
    if anchor and target.suffix == ".html" and anchor not in _anchors(target):
        return f"{href} (no id {anchor!r} in {target.relative_to(html).as_posix()})"
    return None


def _snippets(text: str) -> list[str]:
    found = []
    for kind, pattern in TEXT_PATTERNS.items():
        for match in list(pattern.finditer(text))[:5]:
            start = text.rfind("\n", 0, match.start()) + 1
            end = text.find("\n", match.end())
            line = text[start:end if end >= 0 else None].strip()
            found.append(f"{kind}: {line[:160]}")
    return found


def _settle(browser: Chromium, page: PageReport, base: str, loaded: bool = False, quiet: float = 0.3,
            limit: float = 15.0) -> None:
    """Collect the tab's events until its load event fired (or ``loaded``) and no request was in flight for
    ``quiet`` s."""
    in_flight: set[str] = set()

    start = last = time.monotonic()
    while time.monotonic() - start < limit:
        now = time.monotonic()
        if loaded and not in_flight and now - last >= quiet:
            return
        try:
            event = browser.events.get(timeout=0.05)
        except queue.Empty:
            continue
        method, params = event.get("method"), event.get("params", {})
        if method == "closed":
            raise BrowserError(f"Chromium exited while loading {page.page}:\n{browser._log_tail()}")
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if not url.startswith(base) and not url.startswith(LOCAL_SCHEMES) and url not in page.external:
                page.external.append(url)
            in_flight.add(params["requestId"])
            page.requests[params["requestId"]] = url
        elif method == "Network.responseReceived":
            url, status = params["response"]["url"], params["response"]["status"]
            if url.startswith(base) and status >= 400 and url != base + "favicon.ico":  # Chromium asks, not the page
                page.missing.append(f"{url} (HTTP {status})")
        elif method in ("Network.loadingFinished", "Network.loadingFailed"):
            in_flight.discard(params["requestId"])
            url = page.requests.get(params["requestId"], "")
            if method == "Network.loadingFailed" and url.startswith(base) and not params.get("canceled"):
                page.missing.append(f"{url} ({params.get('errorText')})")
        elif method == "Page.loadEventFired":
            loaded = True
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = (details.get("exception") or {}).get("description") or details.get("text", "")
            text = text.splitlines()[0][:200] if text else "exception"
            if not KNOWN_ERRORS.search(text):
                page.errors.append(text)
        else:
            continue
        last = time.monotonic()
    # still busy after the limit (a script that polls forever): check what is there


def open_page(browser: Chromium, base: str, rel: str) -> PageReport:
    """Navigate the tab to one page and wait until it loaded, settled and typeset its maths."""
    page = PageReport(rel)
    while not browser.events.empty():  # events of the page before (late ones) are not this page's
        browser.events.get_nowait()
    failed = browser.call("Page.navigate", session=True, url=base + rel).get("errorText")
    if failed:
        page.missing.append(f"{base + rel} ({failed})")
    _settle(browser, page, base)
    browser.evaluate(MATHJAX_SCRIPT, timeout=20)
    return page


def check_pages(html: Path, pages: list[str] | None = None, executable: str | None = None) -> list[PageReport]:
    """Open every page of the built book ``html`` (or the given ones) in headless Chromium; one report each."""
    html = Path(html).resolve()
    pages = book_pages(html) if pages is None else pages
    reports = []
    with serve(html) as base, Chromium(executable) as browser:
        for domain in ("Page", "Network", "Runtime"):
            browser.call(f"{domain}.enable", session=True)
        for rel in pages:
            start = time.monotonic()
            page = open_page(browser, base, rel)
            seen = browser.evaluate(PAGE_SCRIPT, timeout=20)
            _settle(browser, page, base, loaded=True)  # what reading the text started (fonts load on layout)
            page.text = _snippets(seen["text"])
            page.images = [img["src"] for img in seen["images"] if not img["ok"]]
            page.links = sorted({why for href in seen["links"] if (why := broken_link(html, base, href))})
            page.maths = seen["maths"]
            page.seconds = time.monotonic() - start
            reports.append(page)
    return reports


def screenshot(html: Path, rel: str, out: Path, executable: str | None = None) -> Path:
    """Save a PNG of one page as a reader sees it (after its maths is typeset)."""
    with serve(Path(html).resolve()) as base, Chromium(executable) as browser:
        for domain in ("Page", "Network"):
            browser.call(f"{domain}.enable", session=True)
        open_page(browser, base, rel)
        data = browser.call("Page.captureScreenshot", session=True, format="png", captureBeyondViewport=False)
    Path(out).write_bytes(base64.b64decode(data["data"]))
    return Path(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clipscope_utils.book.browser",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("html", nargs="?", default="_build/html", type=Path,
                        help="the built book (default _build/html)")
    parser.add_argument("--screenshot", nargs=2, metavar=("PAGE", "PNG"), help="save a screenshot of one page")
    args = parser.parse_args(argv)
    if not (args.html / "index.html").is_file():
        print(f"{args.html} holds no built book: build it first (make smoke)", file=sys.stderr)
        return 2
    start = time.monotonic()
    try:
        if args.screenshot:
            print(screenshot(args.html, args.screenshot[0], Path(args.screenshot[1])))
            return 0
        reports = check_pages(args.html)
    except BrowserError as e:
        print(e, file=sys.stderr)
        return 2
    bad = 0
    for report in reports:
        problems = report.problems()
        bad += bool(problems)
        print(f"{'FAIL' if problems else 'ok  '} {report.page} ({report.seconds:.1f} s)")
        for kind, items in problems.items():
            for item in items:
                print(f"     {kind}: {item}")
    print(f"{len(reports)} pages, {bad} with problems, {time.monotonic() - start:.1f} s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
