"""Where the project lives and where generated data goes.

Generated data (datasets, embeddings, checkpoints) goes to one git-ignored cache folder so that a
notebook run from Jupyter, from papermill or from a test finds the same files.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

CACHE_ENV = "CLIPSCOPE_CACHE"


def atomic_write(path: Path, write) -> None:
    """Write ``path`` through ``write(binary_file)`` into a temporary sibling, then rename: a reader (or a
    crash) never sees half a file, which is what lets every cache trust a file that exists."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def project_root(start: Path | None = None) -> Path | None:
    """The nearest folder above ``start`` (default: cwd) holding ``_toc.yml``, or None."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file() and (folder / "clipscope_utils").is_dir():
            return folder
    return None


def cache_dir() -> Path:
    """The cache folder: ``$CLIPSCOPE_CACHE``, else ``<project>/.cache``, else ``~/.cache/clipscope``."""
    if os.environ.get(CACHE_ENV):
        path = Path(os.environ[CACHE_ENV])
    else:
        root = project_root()
        path = root / ".cache" if root else Path.home() / ".cache" / "clipscope"
    path.mkdir(parents=True, exist_ok=True)
    return path
