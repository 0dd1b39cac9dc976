"""Where the project lives and where generated data goes.

Generated data (datasets, embeddings, checkpoints) goes to one git-ignored cache folder so that a
notebook run from Jupyter, from papermill or from a test finds the same files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

CACHE_ENV = "CLIPSCOPE_CACHE"
DATA_DIR = Path(__file__).resolve().parent.parent / "data"
T = TypeVar("T")


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


def data_file(name: str) -> Path:
    """A committed input of the book (``data/<name>``: class tables, paper tables, size categories)."""
    return DATA_DIR / name


def is_complete(folder: Path, marker: str = "done.json") -> bool:
    """Whether a keyed cache folder is complete: its ``marker`` file is written last, atomically."""
    return (Path(folder) / marker).is_file()


def cached_folder(folder: Path, marker: str, load: Callable[[Path], T], make: Callable[[Path], object]) -> T:
    """The one cache pattern of the package: a folder named by a key is complete once ``marker`` exists in it;
    then it is loaded, else ``make(folder)`` fills it (writing ``marker`` last) and it is loaded. A cache of
    single files is the same with the file as its own marker (``folder`` holds many keyed files)."""
    if not is_complete(folder, marker):
        make(Path(folder))
    return load(Path(folder))


_HASHES: dict[tuple[str, int, int], str] = {}
_PERSIST_BYTES = 16 * 2**20


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, remembered per (path, size, mtime); files >= 16 MB also on disk, so large
    weight files are hashed once. The one file hash of the package: caches key on file contents with it."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key in _HASHES:
        return _HASHES[key]
    record = None
    if st.st_size >= _PERSIST_BYTES:
        record = cache_dir() / "hashes" / (hashlib.sha1(json.dumps(key).encode()).hexdigest() + ".json")
        try:
            saved = json.loads(record.read_text())
            if [saved["path"], saved["size"], saved["mtime_ns"]] == list(key) and len(saved["sha256"]) == 64:
                _HASHES[key] = saved["sha256"]
                return saved["sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            pass
    with open(p, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    _HASHES[key] = digest
    if record is not None:
        payload = json.dumps({"path": key[0], "size": key[1], "mtime_ns": key[2], "sha256": digest}).encode()
        atomic_write(record, lambda f: f.write(payload))
    return digest


def content_id(path: str | os.PathLike) -> str:
    """What a named input is, for cache keys and fingerprints: a file's sha256, or for a folder the sha256 of its
    listing (relative path, size, modification time of every file; hashing every image of COCO would take
    minutes), so a replaced file or a changed folder never passes for the old one."""
    p = Path(path)
    if p.is_file():
        return file_sha256(p)
    h = hashlib.sha256()
    for root, dirs, files in os.walk(p):
        dirs.sort()
        for name in sorted(files):
            f = Path(root) / name
            st = f.stat()
            h.update(f"{f.relative_to(p).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return "tree:" + h.hexdigest()
