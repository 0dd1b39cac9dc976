"""Paper A's Claim 2 at web scale: the caption-order pipeline of :mod:`caption_order` over image-text shards,
on one core or as a Ray Data job on many.

LAION-400M holds 400M captions; the scene-graph extractor takes a few ms a caption (weeks on one core) and
areas need a detector or segmenter on the images: work for a cluster. This module runs the same four stages
either as a plain loop (:func:`run_local`) or as a Ray Data pipeline (:func:`run_ray`; locally by default, on
a cluster with ``address=``), and both write the same files:

1. **read** (:func:`read_stage`): a shard (img2dataset tar or parquet, :mod:`datasets.shards`) -> one row per
   sample: shard stem, path, index in the shard, key (``image_id``), template (the sample's meta ``template``,
   else ``"web"``), caption (``text``), and the image bytes when the area source needs them.
2. **extract** (:class:`ExtractStage`): the objects a caption mentions, in order of first mention, by an
   extractor built once per worker: :class:`caption_order.SceneGraphExtractor` by default, or any factory
   (``extractor_factory=functools.partial(LLMExtractor, llm)`` for paper A's LLM, under an extractor name of
   its own such as ``"llm:llama3-8b"``: the name keys the results).
3. **areas** (:class:`AreaStage` with an area source): :class:`SidecarAreas` reads the shard's sidecar of
   annotated objects (``NNNNN.segments.parquet``) and matches mentions to its classes with
   :class:`caption_order.ClassMatcher` (largest instance per class), as ``caption_records`` does with
   ground-truth areas; :class:`DetectorAreas` asks an open-vocabulary detector (OWL-ViT, OWLv2, Grounding DINO
   from a local Hugging Face folder) for each mention on the image, area = the largest box over the threshold
   (GPU actors with ``num_gpus``, CPU otherwise).
4. **position** (:func:`position_stage`): per caption the record ``caption_order.largest_position_table``
   reads (:data:`RECORD_COLUMNS`, i.e. ``caption_order.RECORD_COLUMNS`` after ``shard`` and ``index``) plus the
   largest object's ``position`` (0 under two objects) and ``n_tied``.

**Results as files, resumable shard by shard.** Each shard's records go atomically to
``<out>/records/<stem>-<id>.parquet``, ``id`` naming the shard's content (and its sidecar's under
``"sidecar"``): a changed shard is recomputed, a finished one skipped, a run killed inside a shard leaves no
file for it. ``<out>/job.json`` records the stage configuration; ``<out>`` defaults to
``<cache>/claim2/<key>`` with ``key`` a hash of that configuration (extractor and its versions, area source,
vocabulary, synonyms, code version), never of the shard list, so more shards extend the same results.
Both runners write a shard's file as soon as the shard is done, so a killed run keeps every shard written
before it (and never a partial one). :func:`run_local` is the plain loop, shard after shard. :func:`run_ray` runs
every pending shard through one streaming Ray Data execution (its actors start once: seconds of imports and
spaCy); each row read carries its shard's row count (:data:`SHARD_ROWS`), so the driver
(:class:`ShardWriter`) writes a shard when its last row arrives and holds only the records of shards still in
flight: a few hundred bytes a caption. Shard ids hash every shard's bytes once (``paths.file_sha256``
remembers the hash of files of 16 MB and more per path, size and mtime).

Records are sorted by (shard, key); the only column that differs between two runs is ``seconds`` (the
extraction time of the caption).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import logging
import math
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from ..datasets.coco import SYNONYMS_FILE, normalise
from ..datasets.shards import SEGMENTS_SUFFIX, list_shards, read_segments, read_shard, segments_path, shard_stem
from ..datasets.tables import DatasetError
from ..device import pick_device
from ..paths import atomic_write, cache_dir, content_id, file_sha256
from ..versions import package_versions
from . import caption_order
from .caption_order import (
    DEFAULT_SPACY_MODEL,
    ClassMatcher,
    ClassNameExtractor,
    Extractor,
    LargestPosition,
    Mention,
    SceneGraphExtractor,
    largest_position,
    largest_position_table,
    mentions_of,
)

CLAIM2_VERSION = 1  # bump when the records of an unchanged configuration would change
AREA_SOURCES = ("sidecar", "detector:<folder>")
EXTRACTORS = ("scenegraph", "scenegraph:<spaCy model>", "classnames", "<any name> with extractor_factory")
DEFAULT_WEB_TEMPLATE = "web"
DETECT_BATCH = 8
READ_COLUMNS = ["shard", "path", "index", "image_id", "template", "text"]
SHARD_ROWS = "shard_rows"  # Ray only: each row carries its shard's row count, so the driver knows when it is done
EXTRACT_COLUMNS = ["extracted", "lemmas", "seconds"]
AREA_COLUMNS = ["classes", "areas", "n_unknown", "n_absent", "n_no_area"]
RECORD_COLUMNS = ["shard", "index", *caption_order.RECORD_COLUMNS, "position", "n_tied"]
LIST_COLUMNS = ("extracted", "lemmas", "classes", "areas")
_TYPES = {
    "shard": pa.string(), "path": pa.string(), "index": pa.int64(), "image_id": pa.string(),
    "template": pa.string(), "text": pa.string(), "image": pa.binary(),
    "extracted": pa.list_(pa.string()), "lemmas": pa.list_(pa.string()), "seconds": pa.float64(),
    "classes": pa.list_(pa.string()), "areas": pa.list_(pa.float64()),
    "n_extracted": pa.int64(), "n_unknown": pa.int64(), "n_absent": pa.int64(), "n_no_area": pa.int64(),
    "n_mentioned": pa.int64(), "position": pa.int64(), "n_tied": pa.int64(), SHARD_ROWS: pa.int64(),
}
RAY_MODULES = r"ray(\.|$)"  # warnings raised inside Ray, silenced while it runs
_RECORD_FILE = re.compile(r"^(?P<stem>.+)-(?P<id>[0-9a-f]{16})\.parquet$")


def schema(columns: Sequence[str]) -> pa.Schema:
    """The Arrow schema of a stage's output columns (fixed types, so empty batches and files agree)."""
    return pa.schema([(c, _TYPES[c]) for c in columns])


RECORD_SCHEMA = schema(RECORD_COLUMNS)


def to_arrow(frame: pd.DataFrame, columns: Sequence[str]) -> pa.Table:
    """A stage's frame as an Arrow table of its fixed schema (list cells may be lists or arrays)."""
    if frame.empty:  # pandas gives an empty column no type Arrow could convert to a list
        return schema(columns).empty_table()
    table = pa.Table.from_pandas(frame[list(columns)], schema=schema(columns), preserve_index=False)
    return table.replace_schema_metadata(None)  # no pandas dtypes recorded: files and Ray blocks read back alike


def tidy(table: pa.Table) -> pd.DataFrame:
    """Records as pandas with list cells as Python lists (as ``caption_order.caption_records`` gives them)."""
    frame = table.to_pandas(ignore_metadata=True)
    for c in LIST_COLUMNS:
        if c in frame.columns:
            frame[c] = [list(np.asarray(v).tolist()) if v is not None else [] for v in frame[c]]
    return frame


# -- the job --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Claim2Job:
    """What to compute: shards and the stage configuration.

    ``source``: shards as :func:`datasets.shards.list_shards` takes them (folder, glob, brace range, list).
    ``area_source``: ``"sidecar"`` (each shard's ``NNNNN.segments.parquet``) or ``"detector:<folder>"`` (a
    local Hugging Face zero-shot detector; needs images, so tar shards). ``classes``: the matching vocabulary;
    ``()`` = under "sidecar" the classes annotated in the shard's sidecar, under a detector the mention phrases
    themselves. ``extractor``: ``"scenegraph"``, ``"scenegraph:<spaCy model>"``, ``"classnames"`` (needs
    ``classes``) or the name of an ``extractor_factory`` given to the runner. ``out``: results folder (default
    ``<cache>/claim2/<key>``). ``detector_threshold``: a box counts when its score is at least this.
    """

    source: object
    area_source: str = "sidecar"
    classes: tuple[str, ...] = ()
    extractor: str = "scenegraph"
    out: str = ""
    detector_threshold: float = 0.1

    def __post_init__(self) -> None:
        if isinstance(self.source, list):
            object.__setattr__(self, "source", tuple(self.source))
        if isinstance(self.classes, str):
            raise ValueError(f"classes must be a sequence of class names, not the string {self.classes!r}")
        object.__setattr__(self, "classes", tuple(self.classes))

    @property
    def detector_folder(self) -> Path | None:
        """The detector's folder of a ``"detector:<folder>"`` area source, else None."""
        kind, _, rest = self.area_source.partition(":")
        return Path(rest).expanduser() if kind == "detector" else None

    @property
    def needs_images(self) -> bool:
        return self.detector_folder is not None


def _check_config(job: Claim2Job, extractor_factory, extracting: bool = True) -> None:
    """Everything about the job but its shards (``extracting``: and how to build its extractor); raises naming the
    parameter and what to do."""
    if not isinstance(job.area_source, str):
        raise ValueError(f"area_source must be a string, one of {AREA_SOURCES}; got {job.area_source!r}")
    kind, sep, rest = job.area_source.partition(":")
    if job.area_source != "sidecar" and not (kind == "detector" and sep and rest):
        raise ValueError(f"unknown area_source {job.area_source!r}; use one of {AREA_SOURCES}")
    folder = job.detector_folder
    if folder is not None and not folder.is_dir():
        raise DatasetError(f"area_source {job.area_source!r}: the detector folder {folder} does not exist; save a "
                           "zero-shot detector there (e.g. OWLv2 or Grounding DINO with save_pretrained) or use "
                           "area_source='sidecar'")
    t = job.detector_threshold
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t <= 1:
        raise ValueError(f"detector_threshold must be a score in (0, 1], got {t!r}")
    if not all(isinstance(c, str) and c.strip() for c in job.classes):
        raise ValueError(f"classes must be non-empty class names, got {list(job.classes)!r}")
    if not isinstance(job.extractor, str) or not job.extractor:
        raise ValueError(f"extractor must be a name ({EXTRACTORS}), got {job.extractor!r}")
    if extracting and extractor_factory is None and not _builtin_extractor(job.extractor):
        raise ValueError(f"extractor {job.extractor!r} is not built in ({EXTRACTORS[:3]}): pass its "
                         "extractor_factory (e.g. functools.partial(LLMExtractor, llm)) to the runner")
    if extractor_factory is not None and not callable(extractor_factory):
        raise TypeError("extractor_factory must be a callable with no arguments that returns an extractor")
    if job.extractor == "classnames" and not job.classes:
        raise ValueError("extractor 'classnames' matches class names: give the vocabulary as classes=(...)")


def _builtin_extractor(name: str) -> bool:
    return name in ("scenegraph", "classnames") or (name.startswith("scenegraph:") and len(name) > 11)


def check_job(job: Claim2Job, extractor_factory: Callable[[], Extractor] | None = None) -> list[Path]:
    """The job's shards, after checking everything before any work: the configuration, that every shard exists
    with a unique stem, a sidecar beside each under "sidecar" and images (tars) under a detector."""
    _check_config(job, extractor_factory)
    shards = list_shards(job.source)
    stems: dict[str, Path] = {}
    for p in shards:
        other = stems.setdefault(shard_stem(p), p)
        if other != p:
            raise DatasetError(f"shards {other} and {p} share the stem {shard_stem(p)!r}; results are stored per "
                               "stem: rename one or run them as separate jobs with separate out folders")
    if job.area_source == "sidecar":
        missing = [p for p in shards if not segments_path(p).is_file()]
        if missing:
            raise DatasetError(f"area_source 'sidecar' needs the annotated objects beside each shard, but "
                               f"{len(missing)} shard(s) have no {SEGMENTS_SUFFIX} sidecar, e.g. {missing[0]} "
                               f"(expected {segments_path(missing[0])}); write sidecars (datasets.shards.write_shard "
                               "segments=...) or use area_source='detector:<folder>' on tar shards with images")
    if job.needs_images:
        meta = [p for p in shards if p.suffix == ".parquet"]
        if meta:
            raise DatasetError(f"area_source {job.area_source!r} detects objects on the images, but {meta[0]} is a "
                               "metadata parquet without images; download the images (img2dataset, "
                               "output_format='webdataset') or use area_source='sidecar' with sidecars")
    return shards


def _extractor_versions(name: str) -> dict[str, str]:
    if name.startswith("scenegraph"):
        model = name.partition(":")[2] or DEFAULT_SPACY_MODEL
        return package_versions(["spacy", "scenegraphparser", model])
    return {}


def job_config(job: Claim2Job) -> dict:
    """The stage configuration the results depend on (what ``job.json`` records and the default key hashes)."""
    folder = job.detector_folder
    areas: object = "sidecar"
    if folder is not None:
        areas = {"detector": str(folder.resolve()), "weights": content_id(folder),
                 "threshold": float(job.detector_threshold), **package_versions(["transformers"])}
    return {"claim2": CLAIM2_VERSION, "extractor": job.extractor,
            "extractor_versions": _extractor_versions(job.extractor), "areas": areas, "classes": list(job.classes),
            "synonyms": file_sha256(SYNONYMS_FILE)}


def job_folder(job: Claim2Job) -> Path:
    """``job.out``, else ``<cache>/claim2/<hash of the stage configuration>``."""
    if job.out:
        return Path(job.out).expanduser()
    key = hashlib.sha256(json.dumps(job_config(job), sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "claim2" / key


def shard_id(path: Path, job: Claim2Job) -> str:
    """What a shard's records depend on: its content (and its sidecar's under "sidecar"), 16 hex digits."""
    parts = [content_id(path)]
    if job.area_source == "sidecar":
        parts.append(content_id(segments_path(path)))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def record_path(folder: Path, path: Path, job: Claim2Job) -> Path:
    """``<out>/records/<stem>-<shard id>.parquet``."""
    return Path(folder) / "records" / f"{shard_stem(path)}-{shard_id(path, job)}.parquet"


def _open_folder(job: Claim2Job) -> Path:
    """The results folder with its ``job.json``; a folder holding another configuration's results raises."""
    folder = job_folder(job)
    config = job_config(job)
    marker = folder / "job.json"
    if marker.is_file():
        try:
            saved = json.loads(marker.read_text()).get("config")
        except (OSError, ValueError, AttributeError):
            saved = None
        if saved != config:
            raise DatasetError(f"out folder {folder} holds Claim 2 records of another configuration ({marker}); "
                               "choose another out folder or delete that one")
    else:
        payload = (json.dumps({"config": config, "record_columns": RECORD_COLUMNS}, indent=1, sort_keys=True)
                   + "\n").encode()
        atomic_write(marker, lambda f: f.write(payload))
    return folder


def old_records(folder: Path) -> dict[str, list[Path]]:
    """The record files in ``<folder>/records`` by shard stem: one listing of the folder for a whole run."""
    out: dict[str, list[Path]] = {}
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(Path(folder) / "records"):
            m = _RECORD_FILE.match(entry.name)
            if m:
                out.setdefault(m["stem"], []).append(Path(entry.path))
    return out


def write_records(folder: Path, path: Path, job: Claim2Job, shard_records: pa.Table,
                  old: Sequence[Path] | None = None) -> Path:
    """One shard's records (:data:`RECORD_COLUMNS`), sorted by key, written atomically; then the shard's older
    files (of another shard id) are removed: ``old``, as :func:`old_records` found them, else looked up."""
    out = record_path(folder, path, job)
    table = shard_records.select(RECORD_COLUMNS).replace_schema_metadata(None).cast(RECORD_SCHEMA)
    table = table.sort_by([("image_id", "ascending"), ("index", "ascending")])
    atomic_write(out, lambda f: pq.write_table(table, f))
    for f in old_records(folder).get(shard_stem(path), []) if old is None else old:
        if f != out:
            f.unlink(missing_ok=True)
    return out


def records(job: Claim2Job) -> pd.DataFrame:
    """Every finished shard's records (:data:`RECORD_COLUMNS`), concatenated and sorted by (shard, key)."""
    _check_config(job, None, extracting=False)
    shards = list_shards(job.source)
    folder = job_folder(job)
    tables = [pq.read_table(f, schema=RECORD_SCHEMA) for f in (record_path(folder, p, job) for p in shards)
              if f.is_file()]
    if not tables:
        return tidy(RECORD_SCHEMA.empty_table())
    frame = tidy(pa.concat_tables(tables))
    return frame.sort_values(["shard", "image_id", "index"], kind="stable").reset_index(drop=True)


def table(records_frame: pd.DataFrame, ties: str = "drop", n_boot: int = 1000, seed: int = 0) -> LargestPosition:
    """Fig. 4b's tables from the records: :func:`caption_order.largest_position_table`."""
    return largest_position_table(records_frame, ties=ties, n_boot=n_boot, seed=seed)


# -- stages ---------------------------------------------------------------------------------------
def read_stage(path, images: bool = False) -> pd.DataFrame:
    """A shard's samples as rows (:data:`READ_COLUMNS`, plus ``image`` bytes or None with ``images``)."""
    path = Path(path)
    stem = shard_stem(path)
    rows = []
    for i, s in enumerate(read_shard(path)):
        template = s.meta.get("template") if isinstance(s.meta, dict) else None
        row = [stem, str(path), i, s.key, str(template) if template else DEFAULT_WEB_TEMPLATE, s.caption]
        rows.append([*row, s.image] if images else row)
    return pd.DataFrame(rows, columns=READ_COLUMNS + (["image"] if images else []))


def extractor_factory_of(job: Claim2Job) -> Callable[[], Extractor]:
    """The built-in extractor a job names, as a picklable factory (built once per worker)."""
    if job.extractor == "classnames":
        return functools.partial(ClassNameExtractor, list(job.classes))
    if job.extractor.startswith("scenegraph"):
        return functools.partial(SceneGraphExtractor, job.extractor.partition(":")[2] or DEFAULT_SPACY_MODEL)
    raise ValueError(f"extractor {job.extractor!r} is not built in: pass extractor_factory")


class ExtractStage:
    """Extract: adds ``extracted`` (phrases in order of first mention), ``lemmas`` ("" = unknown) and ``seconds``.
    The extractor is built once, from ``extractor_factory`` (default :class:`SceneGraphExtractor`)."""

    def __init__(self, extractor_factory: Callable[[], Extractor] | None = None):
        self.extractor = (extractor_factory or SceneGraphExtractor)()

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        extracted, lemmas, seconds = [], [], []
        for text in batch["text"]:
            t0 = time.perf_counter()
            found = mentions_of(self.extractor, text)
            seconds.append(time.perf_counter() - t0)
            extracted.append([m.text for m in found])
            lemmas.append([m.lemma or "" for m in found])
        return batch.assign(extracted=extracted, lemmas=lemmas, seconds=seconds)


@dataclass(frozen=True)
class Matched:
    """What an area source finds for one caption: matched classes in mention order, their areas, and the
    mentions it dropped (no class / not in the image / no area known), as in ``caption_order.caption_records``."""

    classes: list[str]
    areas: list[float]
    n_unknown: int = 0
    n_absent: int = 0
    n_no_area: int = 0


class SidecarAreas:
    """Areas from the shard's sidecar: mentions matched to classes with :class:`ClassMatcher` over ``classes``
    (``()`` = the classes annotated in the shard's sidecar), the largest instance of each class of the sample;
    a class the sample does not have is absent, one whose area is unknown (NaN) has no area."""

    needs_images = False

    def __init__(self, classes: Sequence[str] = (), synonyms=None):
        self.classes = tuple(classes)
        self.synonyms = synonyms
        self.matcher = ClassMatcher(self.classes, synonyms) if self.classes else None
        self.shard: str | None = None
        self.areas_of: dict[str, dict[str, float]] = {}
        self.shard_matcher: ClassMatcher | None = None

    def load(self, path: str) -> None:
        """Read a shard's sidecar (kept until another shard comes)."""
        if path == self.shard:
            return
        seg = read_segments(path)
        if seg is None:
            raise DatasetError(f"shard {path} has no sidecar {segments_path(path)}: area_source 'sidecar' needs one")
        area = pd.to_numeric(seg.area_px, errors="coerce")
        best = seg.assign(area=area).groupby(["key", "class_name"]).area.max()
        self.areas_of = {}
        for (key, name), a in best.items():
            self.areas_of.setdefault(key, {})[name] = float(a)
        self.shard_matcher = self.matcher or ClassMatcher(sorted(set(seg.class_name)), self.synonyms)
        self.shard = path

    def __call__(self, path: str, key: str, image: bytes | None, mentions: Sequence[Mention]) -> Matched:
        self.load(path)
        named, unknown = self.shard_matcher.classes_of(list(mentions))
        gt = self.areas_of.get(key, {})
        classes, areas, absent, no_area = [], [], 0, 0
        for name in named:
            if name not in gt:
                absent += 1
            elif not math.isfinite(gt[name]):
                no_area += 1
            else:
                classes.append(name)
                areas.append(gt[name])
        return Matched(classes, areas, unknown, absent, no_area)


Detection = tuple[int, float, tuple[float, float, float, float]]  # (query index, score, (x0, y0, x1, y1))


def largest_box_areas(detections: Sequence[Detection], n_queries: int, threshold: float,
                      size: tuple[int, int] | None = None) -> list[float]:
    """Per query the area of its largest box scoring at least ``threshold`` (0 = none): boxes clipped to the
    image ``size`` (width, height) when given, degenerate boxes count 0."""
    best = [0.0] * n_queries
    for query, score, (x0, y0, x1, y1) in detections:
        if not 0 <= query < n_queries or not score >= threshold:
            continue
        if size is not None:
            x0, x1 = min(max(x0, 0.0), size[0]), min(max(x1, 0.0), size[0])
            y0, y1 = min(max(y0, 0.0), size[1]), min(max(y1, 0.0), size[1])
        best[query] = max(best[query], max(0.0, float(x1) - float(x0)) * max(0.0, float(y1) - float(y0)))
    return best


def label_query(label, queries: Sequence[str]) -> int | None:
    """The query a detector's label stands for: OWL-ViT/OWLv2 give its index; Grounding DINO gives the words of the
    prompt it matched (lower-cased, sometimes part of a phrase or two phrases run together): the query with the same
    words, else the longest query inside the label, else the first query the label is part of; None if none."""
    if not isinstance(label, str):
        index = int(label)
        return index if 0 <= index < len(queries) else None
    words = normalise(label)
    keys = [normalise(q) for q in queries]
    if not words:
        return None
    if words in keys:
        return keys.index(words)
    inside = [(len(k), -i) for i, k in enumerate(keys) if k and re.search(rf"\b{re.escape(k)}\b", words)]
    if inside:
        return -max(inside)[1]
    return next((i for i, k in enumerate(keys) if re.search(rf"\b{re.escape(words)}\b", k)), None)


class HFDetector:
    """A zero-shot detector from a local Hugging Face folder (``AutoProcessor`` +
    ``AutoModelForZeroShotObjectDetection``: OWL-ViT, OWLv2, Grounding DINO); called as
    ``detector(image, queries, threshold) -> [(query index, score, box in pixels)]``."""

    def __init__(self, model_dir, device: str = "auto"):
        import torch
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor
        from transformers.utils import logging as hf_logging

        self.torch = torch
        self.device = pick_device(device)
        bars, level = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
        hf_logging.disable_progress_bar()  # loading quietly (a book page shows nothing), then as it was
        hf_logging.set_verbosity_error()
        try:
            self.processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
            self.model = AutoModelForZeroShotObjectDetection.from_pretrained(model_dir, local_files_only=True)
        finally:
            hf_logging.set_verbosity(level)
            if bars:
                hf_logging.enable_progress_bar()
        self.model.to(self.device).eval()
        self.square = self.model.config.model_type == "owlv2"  # OWLv2 pads to a square: boxes are in its frame

    def __call__(self, image: Image.Image, queries: Sequence[str], threshold: float) -> list[Detection]:
        queries = list(queries)
        w, h = image.size
        inputs = self.processor(images=image, text=[queries], return_tensors="pt").to(self.device)
        with self.torch.inference_mode():
            outputs = self.model(**inputs)
        target = (max(w, h), max(w, h)) if self.square else (h, w)
        result = self.processor.post_process_grounded_object_detection(
            outputs, threshold=threshold, target_sizes=[target], text_labels=[queries])[0]
        out = []
        for label, score, box in zip(result["labels"], result["scores"].tolist(), result["boxes"].tolist()):
            query = label_query(label, queries)
            if query is not None:
                out.append((query, float(score), tuple(box)))
        return out


class DetectorAreas:
    """Areas from an open-vocabulary detector: each mentioned phrase (or, with ``classes``, each matched class)
    is queried on the image; its area is the largest box scoring at least ``threshold`` (none = absent). A
    sample without a readable image counts its mentions as ``n_no_area``. ``detector``: any
    ``callable(image, queries, threshold) -> [(query index, score, box)]``; default :class:`HFDetector` on
    ``model_dir``."""

    needs_images = True

    def __init__(self, model_dir, threshold: float = 0.1, classes: Sequence[str] = (), synonyms=None,
                 device: str = "auto", detector: Callable | None = None):
        self.threshold = float(threshold)
        self.matcher = ClassMatcher(list(classes), synonyms) if classes else None
        self.detector = detector if detector is not None else HFDetector(model_dir, device)

    def queries(self, mentions: Sequence[Mention]) -> tuple[list[str], int]:
        """What to ask the detector for, in mention order, and how many mentions matched no class."""
        if self.matcher is not None:
            return self.matcher.classes_of(list(mentions))
        out: dict[str, str] = {}
        for m in mentions:
            key = normalise(m.text)
            if key:
                out.setdefault(key, m.text)
        return list(out.values()), sum(1 for m in mentions if not normalise(m.text))

    def __call__(self, path: str, key: str, image: bytes | None, mentions: Sequence[Mention]) -> Matched:
        names, unknown = self.queries(mentions)
        if not names:
            return Matched([], [], unknown)
        try:
            with Image.open(io.BytesIO(image)) as im:
                picture = im.convert("RGB")
        except (TypeError, UnidentifiedImageError, OSError):
            return Matched([], [], unknown, 0, len(names))
        found = largest_box_areas(self.detector(picture, names, self.threshold), len(names), self.threshold,
                                  picture.size)
        kept = [(n, a) for n, a in zip(names, found) if a > 0]
        return Matched([n for n, _ in kept], [a for _, a in kept], unknown, len(names) - len(kept), 0)


def area_factory_of(job: Claim2Job) -> Callable:
    """The job's area source as a picklable factory (built once per worker)."""
    folder = job.detector_folder
    if folder is None:
        return functools.partial(SidecarAreas, job.classes)
    return functools.partial(DetectorAreas, str(folder), job.detector_threshold, job.classes)


class AreaStage:
    """Areas: adds :data:`AREA_COLUMNS` from an area source built once (``source_factory()``), drops images."""

    def __init__(self, source_factory: Callable):
        self.source = source_factory()

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        images = batch["image"] if "image" in batch.columns else [None] * len(batch)
        found = []
        for path, key, image, phrases, lemmas in zip(batch["path"], batch["image_id"], images, batch["extracted"],
                                                     batch["lemmas"]):
            mentions = [Mention(str(p), lemma=str(l) or None) for p, l in zip(phrases, lemmas)]
            found.append(self.source(path, key, image, mentions))
        out = batch.drop(columns=[c for c in ("image",) if c in batch.columns])
        return out.assign(classes=[m.classes for m in found], areas=[m.areas for m in found],
                          n_unknown=[m.n_unknown for m in found], n_absent=[m.n_absent for m in found],
                          n_no_area=[m.n_no_area for m in found])


def position_stage(batch: pd.DataFrame) -> pd.DataFrame:
    """Position: the records (:data:`RECORD_COLUMNS`, and :data:`SHARD_ROWS` on Ray): counts, and the largest
    object's 1-based ``position`` among the matched ones with ``n_tied`` (both 0 under two matched objects)."""
    pos = [largest_position(list(a)) if len(a) >= 2 else (0, 0) for a in batch["areas"]]
    out = batch.assign(n_extracted=[len(e) for e in batch["extracted"]],
                       n_mentioned=[len(c) for c in batch["classes"]],
                       position=[p for p, _ in pos], n_tied=[k for _, k in pos])
    return out[RECORD_COLUMNS + ([SHARD_ROWS] if SHARD_ROWS in out.columns else [])]  # Ray's rows keep their count


class RecordStage:
    """Areas then position, in one worker (it holds the area source)."""

    def __init__(self, source_factory: Callable):
        self.areas = AreaStage(source_factory)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        return position_stage(self.areas(batch))


class StageChain:
    """Stages built once in one worker (``builds``: their factories), each batch through one after the other:
    the plain loop's extraction and records, and Ray's extraction actors when areas come from sidecars."""

    def __init__(self, *builds: Callable[[], Callable]):
        self.stages = [build() for build in builds]

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        for stage in self.stages:
            batch = stage(batch)
        return batch


class ArrowStage:
    """A stage built once per Ray worker, its output as an Arrow table of fixed columns (so that Ray's blocks
    agree on types even when a batch is empty or all its lists are)."""

    def __init__(self, build: Callable[[], Callable], columns: Sequence[str]):
        self.stage = build()
        self.columns = list(columns)

    def __call__(self, batch: pd.DataFrame) -> pa.Table:
        return to_arrow(self.stage(batch), self.columns)


class ShardReader:
    """Read, as the first stage of Ray's extraction actors: each shard path of the batch (column ``path``) -> its
    rows (:func:`read_stage`), each with its shard's row count (:data:`SHARD_ROWS`: the driver's sign that a
    shard is complete)."""

    def __init__(self, images: bool = False):
        self.images = images

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        frames = [read_stage(p, self.images) for p in batch["path"]]
        if not frames:
            return pd.DataFrame(columns=READ_COLUMNS + (["image"] if self.images else []) + [SHARD_ROWS])
        return pd.concat([f.assign(**{SHARD_ROWS: len(f)}) for f in frames], ignore_index=True)


# -- runners --------------------------------------------------------------------------------------
def pending(job: Claim2Job, extractor_factory: Callable[[], Extractor] | None = None) -> tuple[Path, list[Path]]:
    """The job checked (:func:`check_job`), its results folder opened, and the shards without a record file."""
    shards = check_job(job, extractor_factory)
    folder = _open_folder(job)
    return folder, [p for p in shards if not record_path(folder, p, job).is_file()]


def run_local(job: Claim2Job, extractor_factory: Callable[[], Extractor] | None = None,
              progress: bool = False) -> pd.DataFrame:
    """The plain single-process loop over the stages, shard after shard, each shard's file written when it is
    done; returns :func:`records`. The baseline for Ray's overhead, and the same records. A shard that fails
    raises its error, noting the shards kept before it."""
    folder, todo = pending(job, extractor_factory)
    if todo:  # the extractor and area source are built once, and only when there is work
        stages = StageChain(functools.partial(ExtractStage, extractor_factory or extractor_factory_of(job)),
                            functools.partial(RecordStage, area_factory_of(job)))
        old = old_records(folder)
    for n, path in enumerate(tqdm(todo, desc="shards", disable=not progress)):
        try:
            rows = stages(read_stage(path, job.needs_images))
        except Exception as e:
            e.add_note(f"Claim 2: shard {path} failed; the {n} shard(s) done before it are kept in "
                       f"{folder / 'records'}: run again to resume")
            raise
        write_records(folder, path, job, to_arrow(rows, RECORD_COLUMNS), old.get(shard_stem(path), []))
    return records(job)


class ShardWriter:
    """The driver's side of :func:`run_ray`: takes the pipeline's record batches, rows of any shards in any order,
    each row with its shard's row count (:data:`SHARD_ROWS`), and writes a shard's file as soon as all its rows
    are in (checking that they are rows 0..n-1 once each); holds only the shards in flight. :meth:`finish`
    after the last batch writes the shards that had no rows."""

    def __init__(self, folder: Path, job: Claim2Job, todo: Sequence[Path]):
        self.folder, self.job = Path(folder), job
        self.paths = {shard_stem(p): Path(p) for p in todo}
        self.parts: dict[str, list[pa.Table]] = {}
        self.rows: dict[str, int] = {}
        self.written: set[str] = set()
        self.old = old_records(folder)

    def add(self, batch: pa.Table) -> None:
        if not batch.num_rows:
            return
        shard = batch.column("shard")
        stems = pc.unique(shard).to_pylist()
        for stem in stems:
            part = batch if len(stems) == 1 else batch.filter(pc.equal(shard, stem))
            if stem not in self.paths or stem in self.written:
                raise RuntimeError(f"Claim 2: records of shard {stem!r} arrived "
                                   + ("after its file was written" if stem in self.paths else "but it is not pending"))
            expected = part.column(SHARD_ROWS)[0].as_py()
            self.parts.setdefault(stem, []).append(part.select(RECORD_COLUMNS).replace_schema_metadata(None)
                                                   .cast(RECORD_SCHEMA))
            self.rows[stem] = self.rows.get(stem, 0) + part.num_rows
            if self.rows[stem] >= expected:
                self._write(stem, expected)

    def _write(self, stem: str, expected: int) -> None:
        rows = pa.concat_tables(self.parts.pop(stem))
        index = np.sort(rows.column("index").to_numpy())
        if not np.array_equal(index, np.arange(expected)):
            raise RuntimeError(f"Claim 2: shard {stem!r} should give rows 0..{expected - 1} once each, but got "
                               f"{len(index)} rows with {len(np.unique(index))} distinct indices")
        write_records(self.folder, self.paths[stem], self.job, rows, self.old.get(stem, []))
        self.written.add(stem)

    def finish(self) -> None:
        if self.parts:
            stem = next(iter(self.parts))
            raise RuntimeError(f"Claim 2: the pipeline ended with {len(self.parts)} shard(s) incomplete, e.g. "
                               f"{stem!r} ({self.rows[stem]} rows)")
        for stem, path in self.paths.items():
            if stem not in self.written:  # no samples: no rows came, and its empty file says it is done
                write_records(self.folder, path, self.job, RECORD_SCHEMA.empty_table(), self.old.get(stem, []))
                self.written.add(stem)


def quiet_ray() -> None:
    """No progress bars, no execution banners, Ray's Python loggers at ERROR (a book page shows nothing)."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    for name in ("enable_progress_bars", "enable_operator_progress_bars", "enable_rich_progress_bars",
                 "print_on_execution_start", "enable_auto_log_stats", "verbose_stats_logs"):
        if hasattr(ctx, name):
            setattr(ctx, name, False)
    for name in ("ray", "ray.data", "ray.train", "ray.tune"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None, num_gpus: float = 0) -> Iterator[bool]:
    """Ray for the block: an already running session is used as it is; else a quiet local one (``num_cpus``,
    default all cores; ``num_gpus``) or a connection to the cluster at ``address``, shut down after the block.
    Yields whether this call started it."""
    import ray

    started = False
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=RAY_MODULES)
        if not ray.is_initialized():
            quiet = dict(log_to_driver=False, logging_level=logging.ERROR)
            if address:
                ray.init(address=address, **quiet)
            else:
                ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), num_gpus=num_gpus,
                         include_dashboard=False, **quiet)
            started = True
        quiet_ray()  # the first DataContext warns about its own deprecated fields
    try:
        yield started
    finally:
        if started:
            ray.shutdown()


@dataclass(frozen=True)
class RayPlan:
    """Workers and resources of each Ray stage; ``area_workers`` 0: the extraction actors compute the areas."""

    extract_workers: int
    extract_gpus: float
    area_workers: int
    area_cpus: float
    area_gpus: float


def ray_plan(job: Claim2Job, cpus: float, gpus: float, num_gpus: float = 0, extract_workers: int | None = None,
             extract_gpus: float = 0) -> RayPlan:
    """Resources per stage on a cluster of ``cpus``/``gpus``: the detector on ``num_gpus`` GPUs (one actor per
    GPU, a fraction of one below one) or on one CPU; extraction on the remaining CPUs (or ``extract_workers``);
    the extraction actors read their shards and, sidecar areas being light, compute those too."""
    if num_gpus < 0 or extract_gpus < 0:
        raise ValueError("num_gpus and extract_gpus must be >= 0")
    if num_gpus > gpus + 1e-9:
        raise ValueError(f"num_gpus={num_gpus} but the Ray cluster has {gpus:g} GPU(s)")
    if job.needs_images:
        area_workers = max(1, int(num_gpus)) if num_gpus else 1
        area_gpus = min(1.0, float(num_gpus))
        area_cpus = 0.0 if num_gpus else 1.0
    else:
        area_workers, area_gpus, area_cpus = 0, 0.0, 0.0
    if extract_workers is None:
        extract_workers = max(1, int(cpus - area_cpus * area_workers))
    if isinstance(extract_workers, bool) or not isinstance(extract_workers, int) or extract_workers < 1:
        raise ValueError(f"extract_workers must be an integer >= 1, got {extract_workers!r}")
    if extract_workers + area_cpus * area_workers > cpus + 1e-9:  # actors that cannot be placed would wait forever
        raise ValueError(f"{extract_workers} extraction worker(s) (1 CPU each) and {area_cpus * area_workers:g} CPU(s) "
                         f"of the detector need more than the Ray cluster's {cpus:g} CPUs; lower extract_workers")
    if extract_workers * extract_gpus + area_gpus * area_workers > gpus + 1e-9:
        raise ValueError(f"{extract_workers} extraction worker(s) x extract_gpus={extract_gpus:g} and the detector's "
                         f"{area_gpus * area_workers:g} GPU(s) need more than the Ray cluster's {gpus:g} GPUs (a local "
                         "Ray gets num_gpus GPUs)")
    return RayPlan(extract_workers, float(extract_gpus), area_workers, area_cpus, area_gpus)


def ray_stages(job: Claim2Job, plan: RayPlan,
               extractor_factory: Callable[[], Extractor] | None = None) -> list[tuple[Callable, list[str]]]:
    """Ray's actor stages in order, each as (factory of the stage, its output columns): the extraction actors read
    a shard, extract its mentions and under "sidecar" finish its records (areas and position: light, and one hop
    less); under a detector a second stage finishes them. Every row carries :data:`SHARD_ROWS`."""
    read = functools.partial(ShardReader, job.needs_images)
    extract = functools.partial(ExtractStage, extractor_factory or extractor_factory_of(job))
    finish = functools.partial(RecordStage, area_factory_of(job))
    records_out = RECORD_COLUMNS + [SHARD_ROWS]
    if not plan.area_workers:
        return [(functools.partial(StageChain, read, extract, finish), records_out)]
    read_columns = READ_COLUMNS + (["image"] if job.needs_images else [])
    return [(functools.partial(StageChain, read, extract), read_columns + [SHARD_ROWS] + EXTRACT_COLUMNS),
            (finish, records_out)]


def ray_dataset(paths: Sequence[Path], job: Claim2Job, plan: RayPlan,
                extractor_factory: Callable[[], Extractor] | None = None):
    """The stages over ``paths`` as a lazy Ray Dataset of records (:data:`RECORD_COLUMNS` and :data:`SHARD_ROWS`):
    :func:`ray_stages` as actor pools, the extraction actors taking one shard path a call (reading it is a small
    part of its work, and a separate read stage would start one more worker that imports this package)."""
    import ray.data

    (first, columns), *detector = ray_stages(job, plan, extractor_factory)
    actors = dict(batch_format="pandas", max_restarts=0)  # no actor restarts: a failed run is resumed instead
    ds = ray.data.from_items([{"path": str(p)} for p in paths], override_num_blocks=len(paths))
    with warnings.catch_warnings():  # max_restarts as a remote arg is deprecated; it also keeps Ray's C++ log quiet
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
        ds = ds.map_batches(ArrowStage, fn_constructor_args=(first, columns), batch_size=1, num_cpus=1,
                            num_gpus=plan.extract_gpus or None,
                            compute=ray.data.ActorPoolStrategy(size=plan.extract_workers), **actors)
        for build, columns in detector:
            ds = ds.map_batches(ArrowStage, fn_constructor_args=(build, columns), batch_size=DETECT_BATCH,
                                num_cpus=plan.area_cpus, num_gpus=plan.area_gpus or None,
                                compute=ray.data.ActorPoolStrategy(size=plan.area_workers), **actors)
    return ds


def run_ray(job: Claim2Job, extractor_factory: Callable[[], Extractor] | None = None, address: str | None = None,
            num_cpus: int | None = None, num_gpus: float = 0, extract_workers: int | None = None,
            extract_gpus: float = 0) -> pd.DataFrame:
    """The stages as one streaming Ray Data pipeline over every pending shard (actors start once); the driver
    writes each shard's file as soon as its last row arrives (:class:`ShardWriter`), so a failed or killed run
    keeps every shard written before. Returns :func:`records`, equal to :func:`run_local`'s but for ``seconds``.

    Ray: a session already running is used; else a quiet local one on ``num_cpus`` (default all cores) or the
    cluster at ``address``, shut down at the end. ``num_gpus``: the GPUs a local Ray gets and the detector stage
    uses (one actor per GPU; 0 = one CPU actor); ``extract_workers``: extraction actors, 1 CPU each (default: the
    CPUs the detector leaves); ``extract_gpus``: GPUs per extraction actor (an LLM extractor on GPUs).
    ``extractor_factory`` must be picklable (Ray sends it to the workers): a class or a ``functools.partial``,
    with what it needs importable there.
    """
    import ray

    folder, todo = pending(job, extractor_factory)
    if not todo:
        return records(job)
    with ray_session(address, num_cpus, num_gpus), warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=RAY_MODULES)  # Ray's own deprecations and hints, not the user's
        res = ray.cluster_resources()
        plan = ray_plan(job, res.get("CPU", 1), res.get("GPU", 0), num_gpus, extract_workers, extract_gpus)
        writer = ShardWriter(folder, job, todo)
        try:
            for batch in ray_dataset(todo, job, plan, extractor_factory).iter_batches(batch_size=None,
                                                                                      batch_format="pyarrow"):
                writer.add(batch)
            writer.finish()
        except Exception as e:
            e.add_note(f"Claim 2 on Ray: {len(writer.written)} of {len(todo)} pending shard(s) were written before "
                       f"the failure and are kept in {folder / 'records'}: run again to resume")
            raise
    return records(job)
