"""LAION-style image-text shards in the forms people hold them: img2dataset's webdataset tars and parquet files.

Claim 2 at scale (paper A section 4.3, appendix 7.8/7.9) and the causal test of its origin read web data as
img2dataset writes it, so this module reads and writes exactly that, with the stdlib ``tarfile`` only:

* ``NNNNN.tar`` (webdataset): per sample the members ``<key>.jpg`` (or png / webp), ``<key>.txt`` (the
  caption) and ``<key>.json`` (metadata: key, caption, url, width, height, status, ...), a sample's members
  next to each other. A member's key is its path up to the first ``.`` of its base name (webdataset's rule).
* ``NNNNN.parquet`` beside each tar (img2dataset's companion: key, caption, url, width, height, status, ...),
  or LAION's own metadata parquet files (URL, TEXT, WIDTH, HEIGHT, similarity, ...): metadata only.
* ``NNNNN.segments.parquet`` (:data:`SEGMENTS_SUFFIX`), our sidecar: one row per object of a sample
  (:data:`SEGMENT_COLUMNS`; ``area_px`` = mask pixels, box in pixels), the object areas Claim 2 needs.

Written shards are byte-identical for the same samples (members in sample order, mtime 0, uid/gid 0, no user
names), because caches key on file contents; every file is written atomically, the tar last.
"""

from __future__ import annotations

import copy
import glob
import io
import json
import math
import os
import re
import tarfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from braceexpand import braceexpand

from ..paths import atomic_write
from .png import encode_png
from .tables import DatasetError, SceneSet, atomic_folder

SEGMENTS_SUFFIX = ".segments.parquet"  # sidecar beside NNNNN.tar: NNNNN.segments.parquet
SEGMENT_COLUMNS = ["key", "class_name", "area_px", "x0", "y0", "x1", "y1"]  # one row per object of a sample
COMPANION_COLUMNS = ["key", "caption", "url", "width", "height", "status"]  # img2dataset's parquet (its core)
IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
CAPTION_COLUMNS = ("caption", "TEXT")  # img2dataset's, then LAION metadata's
ROW_KEY_WIDTH = 9  # keys of parquet rows without a key column: the row index, zero-padded like img2dataset's keys
MAX_SHARD_SIZE = 10_000  # export keys are f"{shard:05d}{i:04d}"
_BLOCK = 512  # tar block; an archive ends with zero blocks
_MAGIC = re.compile(r"[*?\[]")
_BATCH = 10_000  # parquet rows turned into samples at a time


@dataclass(frozen=True)
class ShardSample:
    """One image-text pair of a shard; ``image`` is None when the shard is metadata only (parquet)."""

    key: str
    caption: str
    image: bytes | None = None  # the encoded image member
    image_ext: str = "jpg"
    meta: dict = field(default_factory=dict)  # the .json member (a parquet row for parquet shards)


# -- names ----------------------------------------------------------------------------------------
def shard_stem(path) -> str:
    """``"00003"`` for ``.../00003.tar``, ``.../00003.parquet`` or ``.../00003.segments.parquet``."""
    name = Path(path).name
    for suffix in (SEGMENTS_SUFFIX, ".tar", ".parquet"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    raise DatasetError(f"{path} is not a shard: expected a .tar or .parquet file "
                       "(img2dataset's NNNNN.tar / NNNNN.parquet)")


def segments_path(path) -> Path:
    """The sidecar of a shard: ``NNNNN.segments.parquet`` beside ``NNNNN.tar`` / ``NNNNN.parquet``."""
    path = Path(path)
    return path.with_name(shard_stem(path) + SEGMENTS_SUFFIX)


def _companion(path: Path) -> Path:
    return path.with_name(shard_stem(path) + ".parquet")


def _kind(path: Path) -> str:
    """"tar" or "parquet"; a sidecar or any other file is refused, naming it."""
    name = path.name
    if name.endswith(SEGMENTS_SUFFIX):
        raise DatasetError(f"{path} is a segments sidecar, not a shard: name the .tar or .parquet beside it")
    if path.suffix in (".tar", ".parquet"):
        return path.suffix[1:]
    raise DatasetError(f"{path} is not a shard: expected a .tar (webdataset) or .parquet (metadata) file")


def _split_member(name: str) -> tuple[str, str] | None:
    """(key, extension) of a tar member by webdataset's rule: the path up to the first '.' of its base name."""
    name = name[2:] if name.startswith("./") else name
    folder, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    if not dot or not stem or not ext:
        return None
    return (f"{folder}/{stem}" if folder else stem), ext


# -- listing --------------------------------------------------------------------------------------
def _shards_among(paths: Sequence[Path]) -> list[Path]:
    """Shards among matched files: every .tar, and every .parquet that is neither a sidecar nor the companion
    of a matched tar."""
    files = [p for p in paths if p.is_file()]
    tars = [p for p in files if p.suffix == ".tar"]
    stems = {(p.parent, shard_stem(p)) for p in tars}
    parquets = [p for p in files if p.suffix == ".parquet" and not p.name.endswith(SEGMENTS_SUFFIX)
                and (p.parent, shard_stem(p)) not in stems]
    return tars + parquets


def _folder_shards(folder: Path) -> list[Path]:
    tars = sorted(p for p in folder.glob("*.tar") if p.is_file())
    if tars:
        return tars
    parquets = sorted(p for p in folder.glob("*.parquet") if p.is_file() and not p.name.endswith(SEGMENTS_SUFFIX))
    if not parquets:
        raise DatasetError(f"shard folder {folder} holds no .tar or .parquet shards")
    return parquets


def _expand(item) -> list[Path]:
    """The shards one source item names: a folder, a glob, a brace range, or a path."""
    if isinstance(item, os.PathLike):
        parts = [os.fspath(item)]
    elif isinstance(item, str):
        parts = list(braceexpand(item))
    else:
        raise DatasetError(f"shard source {item!r} must be a path, a glob, a brace range or a list of these")
    out: list[Path] = []
    for part in parts:
        part = os.path.expanduser(part)
        named = "" if part == item else f" (from {item!r})"
        if isinstance(item, str) and _MAGIC.search(part):
            hits = _shards_among([Path(h) for h in sorted(glob.glob(part))])
            if not hits:
                raise DatasetError(f"no shard (.tar or .parquet) matches {part!r}{named}")
            out.extend(hits)
            continue
        path = Path(part)
        if path.is_dir():
            out.extend(_folder_shards(path))
        elif path.is_file():
            _kind(path)
            out.append(path)
        else:
            raise DatasetError(f"shard {path} does not exist{named}")
    return out


def list_shards(source) -> list[Path]:
    """The shard files of ``source``, sorted and de-duplicated.

    ``source``: a folder (its ``*.tar``, else its ``*.parquet``; companions and sidecars excluded), a glob, a
    brace range like ``"data/{00000..00009}.tar"``, a path, or a list of these. Nothing matching, or a named
    file missing, raises a DatasetError naming the source.
    """
    items = list(source) if isinstance(source, (list, tuple)) else [source]
    if not items:
        raise DatasetError("no shard source given (an empty list)")
    found: dict[Path, Path] = {}
    for item in items:
        for path in _expand(item):
            found.setdefault(path.resolve(), path)
    return sorted(found.values(), key=str)


# -- writing --------------------------------------------------------------------------------------
def _plain(value):
    """JSON form of numpy scalars and paths in metadata."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _member_info(name: str, size: int) -> tarfile.TarInfo:
    """A regular file's header with nothing of the writer in it (mtime 0, uid/gid 0, no user names)."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    tf.addfile(_member_info(name, len(data)), io.BytesIO(data))


def _check_sample(s: ShardSample, seen: set[str], path: Path) -> None:
    if not isinstance(s, ShardSample):
        raise DatasetError(f"write_shard {path}: samples must be ShardSample, got {type(s).__name__}")
    if not isinstance(s.key, str) or not s.key or "." in s.key or "/" in s.key or s.key.startswith("_"):
        raise DatasetError(f"write_shard {path}: key {s.key!r} must be a non-empty string without '.', '/' or a "
                           "leading '_' (webdataset splits member names at the first '.')")
    if s.key in seen:
        raise DatasetError(f"write_shard {path}: key {s.key!r} repeats; keys must be unique within a shard")
    if not isinstance(s.caption, str):
        raise DatasetError(f"write_shard {path}: sample {s.key!r} has caption {s.caption!r}, not a string")
    if s.image is not None and s.image_ext not in IMAGE_EXTS:
        raise DatasetError(f"write_shard {path}: sample {s.key!r} has image_ext {s.image_ext!r}; allowed: {IMAGE_EXTS}")


def _checked_segments(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """The sidecar frame with :data:`SEGMENT_COLUMNS` first, keys and class names as strings, numbers as float."""
    if not isinstance(frame, pd.DataFrame):
        raise DatasetError(f"{where}: segments must be a DataFrame with columns {SEGMENT_COLUMNS}")
    missing = [c for c in SEGMENT_COLUMNS if c not in frame.columns]
    if missing:
        raise DatasetError(f"{where}: segments lack columns {missing}; expected {SEGMENT_COLUMNS}")
    out = frame[SEGMENT_COLUMNS + [c for c in frame.columns if c not in SEGMENT_COLUMNS]].reset_index(drop=True)
    out = out.astype({"key": str, "class_name": str})
    try:
        return out.astype({c: "float64" for c in SEGMENT_COLUMNS[2:]})
    except (TypeError, ValueError) as e:
        raise DatasetError(f"{where}: segments' area_px and box columns must be numbers ({e})") from None


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def _write_parquet(path: Path, frame: pd.DataFrame) -> None:
    data = _parquet_bytes(frame)
    atomic_write(path, lambda f: f.write(data))


def _companion_frame(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=COMPANION_COLUMNS)
    return frame.astype({"key": "string", "caption": "string", "url": "string", "width": "Int64",
                         "height": "Int64", "status": "string"})


def _companion_row(s: ShardSample, path: Path) -> tuple:
    meta = s.meta
    try:
        size = [None if meta.get(k) is None else int(meta[k]) for k in ("width", "height")]
    except (TypeError, ValueError):
        raise DatasetError(f"write_shard {path}: sample {s.key!r} has a non-integer width/height in its meta") from None
    url = meta.get("url")
    return s.key, s.caption, None if url is None else str(url), *size, str(meta.get("status", "success"))


def write_shard(path, samples: Iterable[ShardSample], segments: pd.DataFrame | None = None) -> Path:
    """Write ``samples`` as an img2dataset webdataset shard ``path`` (``NNNNN.tar``); returns the path.

    Members per sample, in the given sample order: ``<key>.<image_ext>`` (when there is an image),
    ``<key>.txt`` (the caption, UTF-8) and ``<key>.json`` (``meta`` with ``key`` and ``caption`` set, as
    img2dataset writes it). Equal samples give a byte-identical tar. Beside it the companion ``NNNNN.parquet``
    (:data:`COMPANION_COLUMNS`, from the meta; status "success" unless given) and, when ``segments`` is given,
    the sidecar (an old one is removed otherwise). Every file is atomic; the tar is renamed into place last.
    """
    path = Path(path)
    if path.suffix != ".tar":
        raise DatasetError(f"write_shard: {path} must end in .tar (img2dataset's NNNNN.tar)")
    where = f"write_shard {path}"
    seg = None if segments is None else _checked_segments(segments, where)

    def write(f) -> None:
        rows, seen = [], set()
        with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tf:
            for s in samples:
                _check_sample(s, seen, path)
                seen.add(s.key)
                try:
                    meta = json.dumps({**s.meta, "key": s.key, "caption": s.caption}, sort_keys=True, default=_plain)
                except (TypeError, ValueError) as e:
                    raise DatasetError(f"{where}: sample {s.key!r}'s meta is not JSON ({e})") from None
                if s.image is not None:
                    _add(tf, f"{s.key}.{s.image_ext}", bytes(s.image))
                _add(tf, f"{s.key}.txt", s.caption.encode("utf-8"))
                _add(tf, f"{s.key}.json", meta.encode("utf-8"))
                rows.append(_companion_row(s, path))
        if seg is not None:
            stray = sorted(set(seg.key) - seen)
            if stray:
                raise DatasetError(f"{where}: segments name keys {stray[:5]} that are not samples of the shard")
            _write_parquet(segments_path(path), seg)
        else:
            segments_path(path).unlink(missing_ok=True)
        _write_parquet(_companion(path), _companion_frame(rows))

    atomic_write(path, write)
    return path


# -- reading --------------------------------------------------------------------------------------
def _check_end(f, tf: tarfile.TarFile, path: Path) -> None:
    """A tar ends with a zero block after its last member; without it the file was cut (tarfile stops quietly)."""
    f.seek(tf.offset)
    if f.read(_BLOCK) != bytes(_BLOCK):
        raise DatasetError(f"tar shard {path} is truncated or corrupt: no end-of-archive block after "
                           f"{len(tf.members)} member(s); download or write it again")


def _sample(path: Path, key: str, parts: dict[str, bytes]) -> ShardSample:
    meta: dict = {}
    if "json" in parts:
        try:
            meta = json.loads(parts["json"].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DatasetError(f"tar shard {path}: {key}.json is not valid JSON ({e})") from None
        if not isinstance(meta, dict):
            raise DatasetError(f"tar shard {path}: {key}.json holds a {type(meta).__name__}, not an object")
    if "txt" in parts:
        try:
            caption = parts["txt"].decode("utf-8")
        except UnicodeDecodeError as e:
            raise DatasetError(f"tar shard {path}: {key}.txt is not UTF-8 ({e})") from None
    elif isinstance(meta.get("caption"), str):
        caption = meta["caption"]
    else:
        raise DatasetError(f"tar shard {path}: sample {key!r} has no caption (no {key}.txt and no \"caption\" in "
                           f"{key}.json); members: {sorted(parts)}")
    ext = next((e for e in parts if e.lower() in IMAGE_EXTS), None)
    return ShardSample(key, caption, None if ext is None else parts[ext], ext or "jpg", meta)


def _tar_samples(path: Path) -> Iterator[ShardSample]:
    """Samples in member order: consecutive members of one key form a sample (webdataset's grouping)."""
    try:
        with open(path, "rb") as f, tarfile.open(fileobj=f, mode="r:", encoding="utf-8") as tf:
            key, parts, seen = None, {}, set()
            for info in tf:
                split = _split_member(info.name) if info.isfile() else None
                if split is None:
                    continue
                if split[0] != key:
                    if key is not None:
                        yield _sample(path, key, parts)
                    if split[0] in seen:
                        raise DatasetError(f"tar shard {path}: the members of key {split[0]!r} are not next to "
                                           "each other (webdataset reads a sample's members consecutively)")
                    key, parts = split[0], {}
                    seen.add(key)
                parts.setdefault(split[1], tf.extractfile(info).read())
            _check_end(f, tf, path)
            if key is not None:
                yield _sample(path, key, parts)
    except (tarfile.TarError, EOFError) as e:
        raise DatasetError(f"tar shard {path} is truncated or corrupt ({e}); download or write it again") from None


def _read_parquet(path: Path, what: str) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except FileNotFoundError:
        raise DatasetError(f"{what} {path} is missing") from None
    except (OSError, ValueError) as e:
        raise DatasetError(f"{what} {path} is not a readable parquet file ({e})") from None


def _native(value):
    """A parquet cell as plain Python: missing values (NaN, NA) as None."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _parquet_samples(path: Path, frame: pd.DataFrame) -> Iterator[ShardSample]:
    """Rows of an img2dataset companion (key, caption) or of LAION metadata (TEXT); failed downloads skipped."""
    text = next(c for c in CAPTION_COLUMNS if c in frame.columns)
    has_key, has_status = "key" in frame.columns, "status" in frame.columns
    for start in range(0, len(frame), _BATCH):
        for i, rec in enumerate(frame.iloc[start:start + _BATCH].to_dict("records"), start):
            rec = {k: _native(v) for k, v in rec.items()}
            if has_status and rec["status"] != "success":
                continue
            key = str(rec["key"]) if has_key and rec["key"] is not None else f"{i:0{ROW_KEY_WIDTH}d}"
            if not isinstance(rec[text], str):
                raise DatasetError(f"parquet shard {path}: row {i} (key {key!r}) has no caption in column {text!r}")
            yield ShardSample(key, rec[text], None, meta=rec)


def read_shard(path) -> Iterator[ShardSample]:
    """The samples of one shard, in file order.

    ``.tar``: members grouped by key; the caption from ``<key>.txt`` (else the json's ``caption``), the image
    from the first jpg/jpeg/png/webp member, ``meta`` the json. ``.parquet``: img2dataset's (key, caption) or
    LAION's metadata (TEXT; keys the row index, zero-padded to :data:`ROW_KEY_WIDTH`), image None, ``meta`` the
    row; rows whose ``status`` is not "success" are skipped. Problems raise DatasetError naming the file.
    """
    path = Path(path)
    kind = _kind(path)
    if not path.is_file():
        raise DatasetError(f"shard {path} does not exist")
    if kind == "tar":
        return _tar_samples(path)
    frame = _read_parquet(path, "parquet shard")
    if not any(c in frame.columns for c in CAPTION_COLUMNS):
        raise DatasetError(f"parquet shard {path} has no caption column (img2dataset's 'caption' or LAION's 'TEXT'); "
                           f"its columns: {list(frame.columns)}")
    return _parquet_samples(path, frame)


def read_segments(path) -> pd.DataFrame | None:
    """The sidecar of a shard (its ``.tar`` or ``.parquet`` path) as a frame, or None when it has none."""
    side = segments_path(path)
    if not side.is_file():
        return None
    return _checked_segments(_read_parquet(side, "segments sidecar"), f"segments sidecar {side}")


# -- rewriting ------------------------------------------------------------------------------------
def _new_json(data: bytes, caption: str) -> bytes | None:
    """The json member with its ``caption`` replaced (key order kept), or None when it has no caption."""
    try:
        meta = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(meta, dict) or "caption" not in meta:
        return None
    meta["caption"] = caption
    return json.dumps(meta).encode("utf-8")


def _tar_keys(src: Path) -> set[str]:
    try:
        with open(src, "rb") as f, tarfile.open(fileobj=f, mode="r:", encoding="utf-8") as tf:
            keys = {s[0] for s in (_split_member(m.name) for m in tf.getmembers() if m.isfile()) if s}
            _check_end(f, tf, src)
            return keys
    except (tarfile.TarError, EOFError) as e:
        raise DatasetError(f"tar shard {src} is truncated or corrupt ({e}); download or write it again") from None


def _copy_tar(src: Path, out, captions: Mapping[str, str]) -> None:
    """Every member of ``src`` into ``out`` (a binary file), the captions of ``captions``' keys replaced."""
    done: set[str] = set()
    with open(src, "rb") as f, tarfile.open(fileobj=f, mode="r:", encoding="utf-8") as tf, \
            tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as dst:
        for info in tf:
            if not info.isfile():
                dst.addfile(info)
                continue
            data = tf.extractfile(info).read()
            split = _split_member(info.name)
            if split and split[0] in captions:
                key, ext = split
                new = (captions[key].encode("utf-8") if ext == "txt"
                       else _new_json(data, captions[key]) if ext == "json" else None)
                if new is not None:
                    data = new
                    done.add(key)
                    info = copy.copy(info)
                    info.size = len(data)
                    info.pax_headers = {k: v for k, v in info.pax_headers.items() if k != "size"}
            dst.addfile(info, io.BytesIO(data))
    missing = sorted(set(captions) - done)
    if missing:
        raise DatasetError(f"rewrite_captions {src}: samples {missing[:5]} have no .txt member and no \"caption\" in "
                           "their .json: nothing to replace")


def _with_captions(frame: pd.DataFrame, captions: Mapping[str, str], keys: pd.Series, column: str) -> pd.DataFrame:
    frame = frame.copy()
    hit = keys.isin(list(captions)).to_numpy()
    frame.loc[hit, column] = keys[hit].map(captions).to_numpy()
    return frame


def _parquet_keys(frame: pd.DataFrame) -> pd.Series:
    """Each row's key as :func:`read_shard` gives it."""
    rows = pd.Series([f"{i:0{ROW_KEY_WIDTH}d}" for i in range(len(frame))], index=frame.index)
    if "key" not in frame.columns:
        return rows
    return frame["key"].astype(object).where(frame["key"].notna(), rows).astype(str)


def _rewrite_parquet(src: Path, dst: Path, captions: Mapping[str, str], strict: bool) -> None:
    frame = _read_parquet(src, "parquet shard")
    column = next((c for c in CAPTION_COLUMNS if c in frame.columns), None)
    if column is None:
        raise DatasetError(f"parquet {src} has no caption column ({' or '.join(CAPTION_COLUMNS)}); "
                           f"its columns: {list(frame.columns)}")
    keys = _parquet_keys(frame)
    missing = sorted(set(captions) - set(keys))
    if strict and missing:
        raise DatasetError(f"rewrite_captions: keys {missing[:5]} are not in shard {src}")
    _write_parquet(dst, _with_captions(frame, captions, keys, column))


def _copy_segments(src: Path, dst: Path) -> None:
    side, out = segments_path(src), segments_path(dst)
    if side.resolve() == out.resolve():
        return
    if side.is_file():
        data = side.read_bytes()
        atomic_write(out, lambda f: f.write(data))
    else:
        out.unlink(missing_ok=True)


def rewrite_captions(src, dst, captions: Mapping[str, str]) -> Path:
    """Copy shard ``src`` to ``dst`` with the captions of the given keys replaced; returns ``dst``.

    A tar keeps every member and header field; only the ``.txt`` of those keys and the ``"caption"`` of their
    ``.json`` change. The companion parquet (a tar's) is updated, the sidecar copied; a parquet shard gets its
    caption column replaced. Keys not in the shard raise a DatasetError before anything is written. Atomic, the
    shard itself renamed into place last.
    """
    src, dst = Path(src), Path(dst)
    kind = _kind(src)
    if _kind(dst) != kind:
        raise DatasetError(f"rewrite_captions: {dst} must be a .{kind} like its source {src}")
    if not src.is_file():
        raise DatasetError(f"shard {src} does not exist")
    bad = [k for k, v in captions.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        raise DatasetError(f"rewrite_captions: captions must map string keys to strings; bad keys {bad[:5]}")
    captions = dict(captions)
    if kind == "parquet":
        _copy_segments(src, dst)
        _rewrite_parquet(src, dst, captions, strict=True)
        return dst
    missing = sorted(set(captions) - _tar_keys(src))
    if missing:
        raise DatasetError(f"rewrite_captions: keys {missing[:5]} are not in shard {src}")

    def write(f) -> None:
        try:
            _copy_tar(src, f, captions)
        except (tarfile.TarError, EOFError) as e:
            raise DatasetError(f"tar shard {src} is truncated or corrupt ({e}); download or write it again") from None
        _copy_segments(src, dst)
        if _companion(src).is_file():
            _rewrite_parquet(_companion(src), _companion(dst), captions, strict=False)
        else:
            _companion(dst).unlink(missing_ok=True)

    atomic_write(dst, write)
    return dst


# -- generated scenes -----------------------------------------------------------------------------
def _scene_captions(scenes: SceneSet, kind: str | None, templates: Sequence[str] | None) -> pd.DataFrame:
    caps = scenes.captions
    if kind is not None:
        caps = caps[caps.image_id.isin(set(scenes.images.image_id[scenes.images.kind == kind]))]
    if templates is not None:
        unknown = sorted(set(templates) - set(scenes.captions.template))
        if unknown:
            raise DatasetError(f"no captions with templates {unknown}; the dataset has "
                               f"{sorted(set(scenes.captions.template))}")
        caps = caps[caps.template.isin(list(templates))]
    return caps.reset_index(drop=True)


def _png_bytes(scenes: SceneSet, image_id: str, rel_path: str) -> bytes:
    """The stored PNG's bytes (generated scenes are deterministic PNGs), else the image encoded as PNG."""
    path = scenes.root / rel_path
    if path.suffix.lower() == ".png" and path.is_file():
        return path.read_bytes()
    return encode_png(np.asarray(scenes.image(image_id)))


def export_scene_shards(scenes: SceneSet, out_dir, shard_size: int = 1000, kind: str | None = "multi",
                        templates: Sequence[str] | None = None) -> list[Path]:
    """Generated scenes as img2dataset shards with true object areas: the stand-in for LAION at scale.

    One sample per caption (``kind`` images, ``templates``; None = all), ``shard_size`` per shard, keys
    ``f"{shard:05d}{i:04d}"``, the image as PNG bytes, meta with image_id, template, width, height and status;
    the sidecar holds each sample's objects (class, mask area, box) from ``scenes.objects``. The folder
    ``out_dir`` must not exist; it appears complete or not at all. Deterministic. Returns the tar paths.
    """
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or not 1 <= shard_size <= MAX_SHARD_SIZE:
        raise DatasetError(f"shard_size must be an integer in 1..{MAX_SHARD_SIZE} (keys hold 4 digits), "
                           f"got {shard_size!r}")
    caps = _scene_captions(scenes, kind, templates)
    if caps.empty:
        raise DatasetError(f"no captions to export (kind={kind!r}, templates={templates!r})")
    if len(caps) > shard_size * 100_000:
        raise DatasetError(f"{len(caps)} captions need more than 100000 shards of {shard_size}: raise shard_size")
    images = scenes.images.set_index("image_id")
    objects = {k: g for k, g in scenes.objects.sort_values(["image_id", "object_index"], kind="stable")
               .groupby("image_id", sort=False)}
    out_dir = Path(out_dir)
    paths, cache = [], {}
    with atomic_folder(out_dir) as tmp:
        for shard, start in enumerate(range(0, len(caps), shard_size)):
            part = caps.iloc[start:start + shard_size]
            samples, seg = [], []
            for i, (image_id, template, text) in enumerate(zip(part.image_id, part.template, part.text)):
                key, row = f"{shard:05d}{i:04d}", images.loc[image_id]
                if image_id not in cache:
                    cache.clear()  # captions come grouped by image: keep one encoded image
                    cache[image_id] = _png_bytes(scenes, image_id, row.path)
                meta = {"image_id": image_id, "template": template, "width": int(row.width),
                        "height": int(row.height), "status": "success"}
                samples.append(ShardSample(key, text, cache[image_id], "png", meta))
                objs = objects.get(image_id)
                if objs is not None:
                    seg.extend((key, c, *v) for c, *v in zip(objs.class_name, objs.area_px, objs.x0, objs.y0,
                                                              objs.x1, objs.y1))
            write_shard(tmp / f"{shard:05d}.tar", samples, pd.DataFrame(seg, columns=SEGMENT_COLUMNS))
            paths.append(out_dir / f"{shard:05d}.tar")
    return paths
