"""Where the project lives and where generated data goes.

Generated data (datasets, embeddings, checkpoints) goes to one git-ignored cache folder so that a
notebook run from Jupyter, from papermill or from a test finds the same files.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "CLIPSCOPE_CACHE"


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
