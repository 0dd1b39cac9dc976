"""Serve the ipywidgets JavaScript and MathJax from the book itself, so widgets and maths render offline.

MyST-NB loads RequireJS and the widget HTML manager from CDNs by default, and Sphinx loads MathJax
from a CDN; a reader offline (or a build machine without internet) then sees no widgets and raw TeX.
The runner fetches all three from the npm registry once (pinned versions, npm checks their
integrity) into ``book/_static/vendor``; ``_config.yml`` points ``nb_ipywidgets_js`` and
``mathjax_path`` at those local copies.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

# name@version in the npm registry -> files to copy (relative to the package folder) -> target subfolder
PACKAGES = {
    "requirejs@2.3.8": (["require.js"], "requirejs"),
    "@jupyter-widgets/html-manager@1.0.15": (["dist"], "html-manager"),
    # MathJax finds its fonts and lazily loaded parts (TeX extensions by autoload, the menu's accessibility
    # tools) relative to its own script, so those travel with it; the other builds (SVG, MathML-only) do not.
    "mathjax@3.2.2": ([
        "es5/tex-mml-chtml.js", "es5/output/chtml/fonts/woff-v2", "es5/input/tex/extensions",
        "es5/ui", "es5/a11y", "es5/sre",
    ], "mathjax"),
}
VENDOR = Path("book") / "_static" / "vendor"
# the files _config.yml names in nb_ipywidgets_js (relative to _static), in its order; widget-assets.js is the
# book's own (tracked): it shows the manager where its fonts are, beside it in vendor/ rather than beside the page
REQUIRED = ["vendor/requirejs/require.js", "widget-assets.js", "vendor/html-manager/dist/embed-amd.js"]
# the file _config.yml names in mathjax_path (relative to _static), and one of its fonts: without the fonts
# MathJax renders boxes, so a copy without them is incomplete too
MATHJAX = "vendor/mathjax/es5/tex-mml-chtml.js"
VENDORED = REQUIRED + [MATHJAX, "vendor/mathjax/es5/output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff"]


class WidgetJsError(RuntimeError):
    """The widget JavaScript or MathJax is missing and could not be fetched."""


def missing(root: Path) -> list[str]:
    return [rel for rel in VENDORED if not (root / "book" / "_static" / rel).is_file()]


def ensure_widget_js(root: Path) -> bool:
    """Fetch the widget JS and MathJax into ``book/_static/vendor`` unless present; True if it fetched."""
    if not missing(root):
        return False
    npm = shutil.which("npm")
    if npm is None:
        raise WidgetJsError(
            f"the widget JavaScript / MathJax ({', '.join(missing(root))}) is missing from book/_static "
            "and npm is not installed to fetch it; "
            "install Node.js/npm (conda: nodejs, Debian: apt install npm) and rerun"
        )
    vendor = root / VENDOR
    with tempfile.TemporaryDirectory() as tmp:
        for spec, (files, target) in PACKAGES.items():
            done = subprocess.run([npm, "pack", spec, "--silent"], cwd=tmp, capture_output=True, text=True)
            if done.returncode != 0:
                raise WidgetJsError(f"npm pack {spec} failed: {done.stderr.strip()[-500:]}")
            tgz = Path(tmp) / done.stdout.strip().splitlines()[-1]
            with tarfile.open(tgz) as tar:
                tar.extractall(Path(tmp) / target, filter="data")
            dest = vendor / target
            shutil.rmtree(dest, ignore_errors=True)
            for rel in files:
                src = Path(tmp) / target / "package" / rel
                if src.is_dir():
                    shutil.copytree(src, dest / rel, ignore=shutil.ignore_patterns("*.map"))
                else:
                    (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dest / rel)
    still = missing(root)
    if still:
        raise WidgetJsError(f"fetched {', '.join(PACKAGES)} from npm but {still} are not among their files")
    return True
