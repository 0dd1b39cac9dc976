"""Serve the ipywidgets JavaScript from the book itself, so widgets render offline.

MyST-NB loads RequireJS and the widget HTML manager from CDNs by default; a reader offline (or a
build machine without internet) then sees no widgets. The runner fetches both from the npm
registry once (pinned versions, npm checks their integrity) into ``book/_static/vendor`` and
``_config.yml`` points ``nb_ipywidgets_js`` at those local copies.
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
}
VENDOR = Path("book") / "_static" / "vendor"
# the files _config.yml names in nb_ipywidgets_js (relative to _static)
REQUIRED = ["vendor/requirejs/require.js", "vendor/html-manager/dist/embed-amd.js"]


class WidgetJsError(RuntimeError):
    """The widget JavaScript is missing and could not be fetched."""


def missing(root: Path) -> list[str]:
    return [rel for rel in REQUIRED if not (root / "book" / "_static" / rel).is_file()]


def ensure_widget_js(root: Path) -> bool:
    """Fetch the widget JS into ``book/_static/vendor`` unless present; True if it fetched."""
    if not missing(root):
        return False
    npm = shutil.which("npm")
    if npm is None:
        raise WidgetJsError(
            "the widget JavaScript is missing from book/_static/vendor and npm is not installed to fetch it; "
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
        raise WidgetJsError(f"fetched the widget packages but {still} are not among their files")
    return True
