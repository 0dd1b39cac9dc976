"""Checked readers of benchmark files for the VL-CheckList, SVO-Probes and ComVG loaders: every failure is a
:class:`BenchmarkError` that names the file (and the row or field), raised before any work starts.

Also the one rule for images that may be missing: name the first few missing files, or, when the caller
allows it, drop the rows that need them and count them in the returned :class:`ItemList`.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from .items import BenchmarkError, ItemList

SHOW = 5  # how many offending entries an error message names
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")  # accepted for "<image id>.<suffix>", in this order of preference
MISSING_IMAGE = "missing image"  # the ItemList.dropped reason for rows dropped with skip_missing=True


def names(requested, allowed: Sequence[str], what: str) -> list[str]:
    """Validate subset names (one string or several) against ``allowed``; order kept, duplicates dropped."""
    chosen = [requested] if isinstance(requested, str) else list(requested)
    if not chosen:
        raise BenchmarkError(f"no {what} requested; allowed: {', '.join(allowed)}")
    bad = [n for n in chosen if not isinstance(n, str) or n not in allowed]
    if bad:
        raise BenchmarkError(f"unknown {what} {bad}; allowed: {', '.join(allowed)}")
    return list(dict.fromkeys(chosen))


def folder(path, what: str) -> Path:
    if path is None or (isinstance(path, str) and not path.strip()):
        raise BenchmarkError(f"{what} folder is not given")
    path = Path(path)
    if not path.is_dir():
        raise BenchmarkError(f"{what} folder {path} does not exist")
    return path


def need_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise BenchmarkError(f"{what}: file {path} is missing")
    return path


def read_json(path: Path, what: str):
    need_file(path, what)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BenchmarkError(f"{what}: {path} is not valid JSON ({e})") from None


def read_csv(path: Path, what: str, columns: Sequence[str]) -> list[dict[str, str]]:
    """The rows of a CSV file with a header line, as dicts of strings; the header must hold ``columns`` and
    every row as many fields as the header (a short or long row means a broken file, not an empty value)."""
    need_file(path, what)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise BenchmarkError(f"{what}: {path} is empty (no header line)")
            lacking = [c for c in columns if c not in header]
            if lacking:
                raise BenchmarkError(f"{what}: {path} lacks columns {lacking} (has {header})")
            rows = []
            for fields in reader:
                if not fields:
                    continue
                if len(fields) != len(header):
                    raise BenchmarkError(f"{what}: {path} line {reader.line_num} has {len(fields)} fields, the "
                                         f"header {len(header)}")
                rows.append(dict(zip(header, fields)))
    except UnicodeDecodeError as e:
        raise BenchmarkError(f"{what}: {path} is not UTF-8 text ({e})") from None
    except csv.Error as e:
        raise BenchmarkError(f"{what}: {path} is not valid CSV ({e})") from None
    return rows


def text(value, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BenchmarkError(f"{where} must be a non-empty string, got {value!r}")
    return value


def flag(value: str, where: str) -> bool:
    """A CSV truth value as pandas writes it ("True" / "False"; also 1 / 0, any case)."""
    word = str(value).strip().lower()
    if word in ("true", "1"):
        return True
    if word in ("false", "0"):
        return False
    raise BenchmarkError(f"{where} must be True or False, got {value!r}")


def unique_ids(ids: Sequence[str], what: str) -> None:
    seen, repeated = set(), []
    for i in ids:
        if i in seen:
            repeated.append(i)
        seen.add(i)
    if repeated:
        raise BenchmarkError(f"{what}: ids repeat, e.g. {list(dict.fromkeys(repeated))[:SHOW]}")


def image_dirs(folders, what: str) -> list[Path]:
    """One image folder or several, each of which must exist."""
    if folders is None:
        raise BenchmarkError(f"{what} needs its image folder too")
    if isinstance(folders, (str, os.PathLike)):
        folders = [folders]
    folders = [folder(f, f"{what} images") for f in folders]
    if not folders:
        raise BenchmarkError(f"{what}: no image folder given")
    return folders


class ImageIds:
    """Images saved as ``<image id>.<suffix>`` (suffix one of :data:`IMAGE_SUFFIXES`, any case) in one or
    several folders (say Visual Genome's ``VG_100K`` and ``VG_100K_2``): each folder is listed once, so a
    lookup costs nothing, and the first folder (then suffix) that has the id wins."""

    def __init__(self, folders, what: str):
        folders = image_dirs(folders, what)
        self.first = folders[0]
        self.found: dict[str, Path] = {}
        for path in folders:
            by_stem: dict[str, dict[str, Path]] = {}
            with os.scandir(path) as entries:
                for entry in entries:
                    stem, suffix = os.path.splitext(entry.name)
                    if suffix.lower() in IMAGE_SUFFIXES:
                        by_stem.setdefault(stem, {})[suffix.lower()] = path / entry.name
            for stem, files in by_stem.items():
                if stem not in self.found:
                    self.found[stem] = next(files[s] for s in IMAGE_SUFFIXES if s in files)

    def path(self, image_id: str) -> Path:
        """The file of ``image_id``, or ``<first folder>/<id>.jpg`` (which does not exist) when none has it."""
        return self.found.get(image_id, self.first / f"{image_id}.jpg")


def keep_present(items: Sequence, files: Callable[[object], Iterable[Path]], skip_missing: bool,
                 what: str, offer_skip: bool = True) -> ItemList:
    """All ``items`` when every file they need exists; else a :class:`BenchmarkError` naming the first few
    missing files, or with ``skip_missing`` the items that have all their files, the rest counted under
    ``dropped["missing image"]`` and the absent files listed in ``missing``. ``offer_skip=False`` (a loader
    without ``skip_missing``) leaves the hint to pass ``skip_missing=True`` out of the error."""
    checked: dict[Path, bool] = {}
    absent = []
    kept = []
    for item in items:
        ok = True
        for p in files(item):
            if p not in checked:
                checked[p] = Path(p).is_file()
                if not checked[p]:
                    absent.append(str(p))
            ok = ok and checked[p]
        if ok:
            kept.append(item)
    if absent and not skip_missing:
        hint = " (pass skip_missing=True to drop their rows, counted in the result's .dropped)" if offer_skip else ""
        raise BenchmarkError(f"{what}: {len(absent)} referenced image(s) missing, e.g. {absent[:SHOW]}{hint}")
    return ItemList(kept, {MISSING_IMAGE: len(items) - len(kept)}, absent)


def image_folders(images, keys: Sequence[str], what: str) -> dict[str, Path]:
    """``images`` as one folder holding a sub-folder per key, or a mapping key -> folder."""
    if isinstance(images, Mapping):
        lacking = [k for k in keys if k not in images]
        if lacking:
            raise BenchmarkError(f"{what} images mapping has no folder for {lacking}")
        return {k: folder(images[k], f"{what} {k} images") for k in keys}
    base = folder(images, f"{what} images")
    return {k: folder(base / k, f"{what} {k} images") for k in keys}
