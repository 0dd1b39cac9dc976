"""The published compositional benchmarks of paper B (ARO, SugarCrepe, Winoground, VALSE here; VL-CheckList,
SVO-Probes, ComVG in their own modules), read from the users' local copies into :class:`ChoiceItem` /
:class:`ImageChoiceItem` / :class:`PairItem` lists, and one evaluator that scores any
such list (these or the generated ones of :mod:`.scenes`) with any CLIP model of the project.

Nothing here downloads anything: each loader reads the files as their authors publish them and checks,
before returning, that the folder and files exist and parse, that every record has the fields it needs and
that every referenced image exists (all paths up front; the first few missing ones are named). Every bad
input raises :class:`BenchmarkError` (a ``ValueError``) before any work starts.

Formats, checked against the authors' own files and code (read, not copied):

ARO (github:mertyg/vision-language-models-are-bows @81fdd20, ``dataset_zoo/aro_datasets.py``)
    ``<root>/visual_genome_relation.json`` / ``visual_genome_attribution.json``: a JSON *list* of records
    with ``image_path`` (relative to ``<root>/images``), ``bbox_x``, ``bbox_y``, ``bbox_w``, ``bbox_h``,
    ``true_caption``, ``false_caption`` and ``relation_name`` (VG-Relation) or ``attributes`` (a pair,
    VG-Attribution). The image is cropped to ``(x, y, x + w, y + h)`` as the authors' loader does (PIL
    semantics: coordinates rounded, parts outside the image filled black). Records have no id: ``item_id``
    is the record's index. The authors' headline numbers are *macro* accuracies: :func:`aro_macro` applies
    their rules (@81fdd20, ``dataset_zoo/aro_datasets.py`` ``evaluate_scores``: one accuracy per relation of
    VG-Relation, per attribute pair ``"<attr>_<attr>"`` of VG-Attribution, pairs with fewer than 25 records
    dropped; ``notebooks/Replicate ARO! VG-Relation, VG-Attribution.ipynb``: the mean over relations leaves
    out their list ``symmetric``, bundled as ``data/aro_symmetric_relations.json`` with its source), on
    :func:`aro_categories` and the general :func:`category_macro`.
SugarCrepe (github:RAIVNLab/sugar-crepe @0047054, ``data/*.json`` and ``main_eval.py``)
    one ``<subset>.json`` per subset (``add_att add_obj replace_att replace_obj replace_rel swap_att
    swap_obj``): ``{id: {"filename", "caption", "negative_caption"}}``, images in the COCO val2017 folder
    passed as ``images``.
Winoground (HF facebook/winoground; its card, a dump of ``examples.jsonl`` in github:zhuxiangru/Winoground-T2I
    and the image list of github:ajd12342/why-winoground-hard)
    ``examples.jsonl`` (one JSON object a line: ``id``, ``caption_0``, ``caption_1``, ``image_0``, ``image_1``,
    ``tag``, ``secondary_tag``, ``num_main_preds``, ``collapsed_tag``) and ``images/<image_k>.png``, either
    directly in ``root`` or in ``root/data`` (the hub layout after unzipping ``images.zip``). The clean
    subset is the 171 ids of ``data/winoground_clean_ids.json`` (Diwan et al. 2022, taken from
    github:ajd12342/why-winoground-hard ``score_subsets.py``, list ``'None'``; its source is in the file).
VALSE (github:Heidelberg-NLP/VALSE @2152d90, ``data/*.json`` and README)
    one ``<piece>.json`` per piece; ``{id: {"image_file", "caption", "foil", "mturk": {"caption", ...},
    "dataset", ...}}`` (``foils``, a list, is accepted too: the authors' FOIL converter writes it). The real
    piece files are ``actant-swap`` and ``action-replacement`` (not "actions-..."). Images come from
    several source datasets, so ``images`` is one folder or a mapping piece -> folder. By default only the
    *valid* samples are kept (``mturk.caption >= 2``, the authors' recommendation).
VL-CheckList (github:om-ai-lab/VL-CheckList @6f8d6a3; :mod:`.vl_checklist`)
    one JSON list per (type, corpus) under ``data/`` (``Relation/vg/spatial.json``, ``Attribute/vaw/color.json``
    ...) of ``[image_path, {"POS": [...], "NEG": [...]}]``, images under ``vg/``, ``swig/``, ``hake/``;
    subsets are the types (``Relation/action`` ... ``Attribute/state``), :class:`ChoiceItem` s.
SVO-Probes (github:deepmind/svo_probes @206219e; :mod:`.svo_probes`)
    ``svo_probes.csv`` (``sentence``, ``pos_image_id``, ``neg_image_id``, ``subj_neg``, ``verb_neg``,
    ``obj_neg``, ...), the images saved by the user as ``<image_id>.jpg``; subsets ``svo-subject``,
    ``svo-verb``, ``svo-object``; :class:`ImageChoiceItem` s.
ComVG (github:eric-ai-lab/ComCLIP @75ef16e, ``datasets/ComVG.csv``; :mod:`.comvg`)
    ``ComVG.csv`` (``id``, ``sentence``, ``pos_image_id``, ``neg_image_id``, ``neg_value``, ...), Visual
    Genome images ``<image_id>.jpg``; subsets ``comvg-subject``, ``comvg-verb``, ``comvg-object``;
    :class:`ImageChoiceItem` s.

Scoring: similarity = dot product of the L2-normalised embeddings. A choice item is right when the true
caption scores *strictly* above every false one, so a tie (e.g. a false caption equal to the true one)
counts as wrong, as in the authors' ``argmax`` over ``[false, true]``; an image-choice item likewise when
its sentence scores strictly higher with the true image than with every false one. Winoground uses its
strict official rules (:func:`winoground_scores`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import embeddings
from ..datasets.tables import DatasetError, open_image
from ..paths import atomic_write, cache_dir, cached_folder, data_file, file_sha256
from ..stats import rate_table
from . import readers
from .comvg import COMVG_SUBSETS, check_comvg, load_comvg
from .items import BenchmarkError, ChoiceItem, ImageChoiceItem, PairItem
from .svo_probes import SVO_PROBES_SUBSETS, check_svo_probes, load_svo_probes
from .vl_checklist import (VL_CHECKLIST_ATTRIBUTE, VL_CHECKLIST_RELATION, VL_CHECKLIST_SUBSETS,
                           check_vl_checklist, load_vl_checklist)

__all__ = [
    "ARO_SUBSETS", "SUGARCREPE_SUBSETS", "VALSE_PIECES", "PAPER_B_GROUPS", "PaperBGroup", "BenchmarkError",
    "VL_CHECKLIST_SUBSETS", "SVO_PROBES_SUBSETS", "COMVG_SUBSETS", "load_vl_checklist", "load_svo_probes",
    "load_comvg", "ImageChoiceItem", "check_files",
    "load_aro", "aro_categories", "load_sugarcrepe", "load_winoground", "load_valse", "winoground_clean_ids",
    "choice_correct", "winoground_scores", "evaluate", "summary", "category_macro", "paper_b_summary",
    "published_b", "paper_b_tables", "aro_symmetric_relations", "aro_macro", "ARO_MIN_RECORDS", "MEASURE_ARO",
    "MEASURE_ITEMS", "MEASURE_SUBSETS",
]

CLEAN_IDS_JSON = data_file("winoground_clean_ids.json")
TABLES_CSV = data_file("paper_b_tables.csv")
ARO_SYMMETRIC_JSON = data_file("aro_symmetric_relations.json")
CROP_FORMAT = 1  # bump when the way crops are written changes: old files are then never served

ARO_SUBSETS = {"VG-Relation": "visual_genome_relation.json", "VG-Attribution": "visual_genome_attribution.json"}
# the fewest records a category needs to count in the authors' macro mean (VG_Attribution.evaluate_scores: < 25
# dropped; VG_Relation.evaluate_scores keeps every relation)
ARO_MIN_RECORDS = {"VG-Relation": 1, "VG-Attribution": 25}
# how a row of paper_b_summary was computed (its ``measure`` column)
MEASURE_ARO = "macro over categories (ARO authors)"
MEASURE_ITEMS = "item-level"
MEASURE_SUBSETS = "item-level, mean over subsets"
SUGARCREPE_SUBSETS = ("add_att", "add_obj", "replace_att", "replace_obj", "replace_rel", "swap_att", "swap_obj")
VALSE_PIECES = ("existence", "plurals", "counting-hard", "counting-small-quant", "counting-adversarial",
                "relations", "action-replacement", "actant-swap", "coreference-standard", "coreference-hard",
                "foil-it")
WINOGROUND, WINOGROUND_CLEAN = "winoground", "winoground_clean"
PAIR_METRICS = ("text", "image", "group")
PAIR_CHANCE = {"text": 0.25, "image": 0.25, "group": 1 / 6}


@dataclass(frozen=True)
class PaperBGroup:
    """Which of our subsets make one column of paper B's tables, and which per-item metric it averages."""

    subsets: tuple[str, ...]
    metric: str  # "correct" for choice items, "text" / "image" / "group" for Winoground


# Paper B (App. B) names the categories but not the subsets. Decisions: SugarCrepe relation is its only
# relation subset; attribute is every attribute subset (replace, swap, add), averaged per subset (paper B
# averages VALSE's pieces that way, and the macro mean of the three matches the published CLIP ViT-B/32
# numbers better than pooling items). VALSE relation is the "three subsets on action and spatial
# relations". Winoground is scored on the clean subset, as paper B does following Cascante-Bonilla et al.
# VL-CheckList: "average results for each of the main (Relation and Attribute) groups", read as the mean over
# the group's types (each type pooling its corpora). SVO-Probes and ComVG "assess VLMs on verb (relation)
# understanding": their rows whose negative changes the verb.
PAPER_B_GROUPS: dict[tuple[str, str], PaperBGroup] = {
    ("ARO", "Relation"): PaperBGroup(("VG-Relation",), "correct"),
    ("ARO", "Attribute"): PaperBGroup(("VG-Attribution",), "correct"),
    ("SugarCrepe", "Relation"): PaperBGroup(("replace_rel",), "correct"),
    ("SugarCrepe", "Attribute"): PaperBGroup(("replace_att", "swap_att", "add_att"), "correct"),
    ("VL-Checklist", "Relation"): PaperBGroup(VL_CHECKLIST_RELATION, "correct"),
    ("VL-Checklist", "Attribute"): PaperBGroup(VL_CHECKLIST_ATTRIBUTE, "correct"),
    ("VALSE", "Relation"): PaperBGroup(("action-replacement", "actant-swap", "relations"), "correct"),
    ("SVO-Probes", "Relation"): PaperBGroup(("svo-verb",), "correct"),
    ("ComVG", "Relation"): PaperBGroup(("comvg-verb",), "correct"),
    ("Winoground", "Text"): PaperBGroup((WINOGROUND_CLEAN,), "text"),
    ("Winoground", "Image"): PaperBGroup((WINOGROUND_CLEAN,), "image"),
    ("Winoground", "Group"): PaperBGroup((WINOGROUND_CLEAN,), "group"),
}


# ------------------------------------------------------------------------------------------ checks


def _need(record, keys: Sequence[str], where: str) -> None:
    if not isinstance(record, dict):
        raise BenchmarkError(f"{where} is a {type(record).__name__}, not a JSON object")
    missing = [k for k in keys if k not in record]
    if missing:
        raise BenchmarkError(f"{where} lacks fields {missing} (has {sorted(record)})")


#: check_files kinds whose checks live in the benchmark's own module
MODULE_CHECKS = {"vl_checklist": check_vl_checklist, "svo_probes": check_svo_probes, "comvg": check_comvg}


def check_files(kind: str, root, images=None) -> None:
    """The files a benchmark folder must hold, checked without reading them (seconds, before any work):
    ``kind`` is "aro", "sugarcrepe", "winoground", "valse", "vl_checklist", "svo_probes" or "comvg";
    ``images`` the separate image folder of SugarCrepe (COCO val2017), VALSE, VL-CheckList (holding vg/, swig/,
    hake/), SVO-Probes and ComVG (Visual Genome; one folder or several)."""
    if kind == "aro":
        root = readers.folder(root, "ARO")
        readers.folder(root / "images", "ARO images")
        for name in ARO_SUBSETS.values():
            readers.need_file(root / name, "ARO")
    elif kind in ("sugarcrepe", "valse"):
        what = "SugarCrepe" if kind == "sugarcrepe" else "VALSE"
        root = readers.folder(root, what)
        if not images:
            raise BenchmarkError(f"{what} needs its image folder too ({'coco_images' if kind == 'sugarcrepe' else 'valse_images'})")
        readers.folder(images, f"{what} images")
        for name in (SUGARCREPE_SUBSETS if kind == "sugarcrepe" else VALSE_PIECES):
            readers.need_file(root / f"{name}.json", what)
    elif kind == "winoground":
        readers.folder(_winoground_dir(readers.folder(root, "Winoground")) / "images", "Winoground images")
    elif kind in MODULE_CHECKS:
        MODULE_CHECKS[kind](root, images)
    else:
        raise BenchmarkError(f"unknown benchmark {kind!r}; allowed: aro, sugarcrepe, winoground, valse, "
                             f"{', '.join(MODULE_CHECKS)}")


# ------------------------------------------------------------------------------------------ ARO


def _aro_records(root: Path, subset: str) -> list:
    data = readers.read_json(root / ARO_SUBSETS[subset], f"ARO {subset}")
    if not isinstance(data, list):
        raise BenchmarkError(f"ARO {subset}: {root / ARO_SUBSETS[subset]} must hold a JSON list of records")
    return data


def _aro_box(rec: dict, where: str) -> tuple[int, int, int, int]:
    vals = [rec[k] for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h")]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in vals):
        raise BenchmarkError(f"{where}: bbox fields must be finite numbers, got {vals}")
    x, y, w, h = vals
    if w <= 0 or h <= 0:
        raise BenchmarkError(f"{where}: empty box (bbox_w={w}, bbox_h={h})")
    box = tuple(int(round(v)) for v in (x, y, x + w, y + h))  # PIL rounds a float box the same way
    if box[2] <= box[0] or box[3] <= box[1]:
        raise BenchmarkError(f"{where}: box {box} is empty after rounding to pixels")
    return box


def load_aro(root, subset: str = "VG-Relation") -> list[ChoiceItem]:
    """ARO's VG-Relation or VG-Attribution: one :class:`ChoiceItem` per record, cropped to its box."""
    (subset,) = readers.names([subset], tuple(ARO_SUBSETS), "ARO subset")
    root = readers.folder(root, "ARO")
    images = readers.folder(root / "images", "ARO images")
    records = _aro_records(root, subset)
    items = []
    for i, rec in enumerate(records):
        where = f"ARO {subset} record {i}"
        _need(rec, ("image_path", "bbox_x", "bbox_y", "bbox_w", "bbox_h", "true_caption", "false_caption"), where)
        items.append(ChoiceItem(
            item_id=str(i), subset=subset, image=images / readers.text(rec["image_path"], f"{where} image_path"),
            true=readers.text(rec["true_caption"], f"{where} true_caption"),
            false=(readers.text(rec["false_caption"], f"{where} false_caption"),), crop=_aro_box(rec, where)))
    readers.keep_present(items, lambda it: (it.image,), False, f"ARO {subset}", offer_skip=False)
    return items


def aro_categories(root, subset: str = "VG-Relation") -> pd.DataFrame:
    """``item_id, subset, category`` of ARO records: the relation, or ``"<attr>_<attr>"`` for VG-Attribution,
    as the authors group them for their macro accuracy."""
    (subset,) = readers.names([subset], tuple(ARO_SUBSETS), "ARO subset")
    records = _aro_records(readers.folder(root, "ARO"), subset)
    field = "relation_name" if subset == "VG-Relation" else "attributes"
    cats = []
    for i, rec in enumerate(records):
        _need(rec, (field,), f"ARO {subset} record {i}")
        value = rec[field]
        if field == "attributes":
            if not (isinstance(value, list) and len(value) == 2):
                raise BenchmarkError(f"ARO {subset} record {i}: attributes must be a pair, got {value!r}")
            value = f"{value[0]}_{value[1]}"
        cats.append(str(value))
    return pd.DataFrame({"item_id": [str(i) for i in range(len(records))], "subset": subset, "category": cats})


@lru_cache(maxsize=1)
def aro_symmetric_relations() -> tuple[str, ...]:
    """The VG-Relation relations ARO's authors leave out of their macro accuracy (157 names, bundled in
    ``data/aro_symmetric_relations.json``; the file names its source)."""
    doc = readers.read_json(ARO_SYMMETRIC_JSON, "ARO symmetric relations")
    names = doc.get("relations") if isinstance(doc, dict) else None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise BenchmarkError(f"{ARO_SYMMETRIC_JSON}: expected an object with a non-empty 'relations' list of names")
    return tuple(names)


# ------------------------------------------------------------------------------------------ SugarCrepe


def load_sugarcrepe(root, images, subsets=SUGARCREPE_SUBSETS) -> list[ChoiceItem]:
    """SugarCrepe: ``root`` holds ``<subset>.json``; ``images`` is the COCO val2017 image folder."""
    names = readers.names(subsets, SUGARCREPE_SUBSETS, "SugarCrepe subset")
    root, images = readers.folder(root, "SugarCrepe"), readers.folder(images, "SugarCrepe (COCO val2017) images")
    data = {s: readers.read_json(root / f"{s}.json", f"SugarCrepe {s}") for s in names}
    items = []
    for subset, records in data.items():
        if not isinstance(records, dict):
            raise BenchmarkError(f"SugarCrepe {subset}: expected a JSON object id -> record")
        for key, rec in records.items():
            where = f"SugarCrepe {subset} item {key!r}"
            _need(rec, ("filename", "caption", "negative_caption"), where)
            items.append(ChoiceItem(
                item_id=str(key), subset=subset, image=images / readers.text(rec["filename"], f"{where} filename"),
                true=readers.text(rec["caption"], f"{where} caption"),
                false=(readers.text(rec["negative_caption"], f"{where} negative_caption"),)))
    readers.keep_present(items, lambda it: (it.image,), False, "SugarCrepe", offer_skip=False)
    return items


# ------------------------------------------------------------------------------------------ Winoground


@lru_cache(maxsize=1)
def _bundled_clean_ids() -> tuple[int, ...]:
    doc = readers.read_json(CLEAN_IDS_JSON, "Winoground clean ids")
    return tuple(doc["ids"])


def winoground_clean_ids(clean_ids=None) -> tuple[int, ...]:
    """The clean-subset ids: the bundled 171 (``None``), a JSON file (a list, or an object with ``ids``),
    or an iterable of integers."""
    if clean_ids is None:
        return _bundled_clean_ids()
    if isinstance(clean_ids, (str, os.PathLike)):
        doc = readers.read_json(Path(clean_ids), "Winoground clean ids")
        ids = doc.get("ids") if isinstance(doc, dict) else doc
        if not isinstance(ids, list):
            raise BenchmarkError(f"{clean_ids}: expected a JSON list of ids or an object with an 'ids' list")
    else:
        ids = list(clean_ids)
    if not ids or not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in ids):
        raise BenchmarkError(f"clean ids must be a non-empty list of integers, got {ids[:readers.SHOW]!r}")
    if len(set(ids)) != len(ids):
        raise BenchmarkError("clean ids contain duplicates")
    return tuple(int(i) for i in ids)


def _winoground_dir(root: Path) -> Path:
    for folder in (root, root / "data"):
        if (folder / "examples.jsonl").is_file():
            return folder
    raise BenchmarkError(f"Winoground: no examples.jsonl in {root} or {root / 'data'}")


def load_winoground(root, clean: bool = False, clean_ids=None) -> list[PairItem]:
    """Winoground's 400 examples (or the clean subset) as :class:`PairItem` s, ``item_id`` = its ``id``.

    ``subset`` is ``"winoground"``, or ``"winoground_clean"`` with ``clean=True``. ``clean_ids`` overrides
    the bundled id list (see :func:`winoground_clean_ids`); it is only used with ``clean=True``.
    """
    if clean_ids is not None and not clean:
        raise BenchmarkError("clean_ids is only used with clean=True")
    keep = set(winoground_clean_ids(clean_ids)) if clean else None
    folder = _winoground_dir(readers.folder(root, "Winoground"))
    images = readers.folder(folder / "images", "Winoground images")
    path = folder / "examples.jsonl"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise BenchmarkError(f"Winoground: {path} is not UTF-8 text ({e})") from None
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise BenchmarkError(f"Winoground: {path} line {n} is not JSON ({e})") from None
    items, seen = [], set()
    for n, rec in enumerate(rows, 1):
        where = f"Winoground example {n}"
        _need(rec, ("id", "caption_0", "caption_1", "image_0", "image_1"), where)
        ex_id = rec["id"]
        if isinstance(ex_id, str) and ex_id.isdigit():
            ex_id = int(ex_id)
        if not isinstance(ex_id, int) or isinstance(ex_id, bool) or ex_id in seen:
            raise BenchmarkError(f"{where}: id {rec['id']!r} is not an integer or repeats")
        seen.add(ex_id)
        if keep is not None and ex_id not in keep:
            continue
        items.append(PairItem(
            item_id=str(ex_id), subset=WINOGROUND_CLEAN if clean else WINOGROUND,
            images=tuple(images / f"{readers.text(rec[k], f'{where} {k}')}.png" for k in ("image_0", "image_1")),
            captions=tuple(readers.text(rec[k], f"{where} {k}") for k in ("caption_0", "caption_1"))))
    if keep is not None and keep - seen:
        raise BenchmarkError(f"Winoground: clean ids not in examples.jsonl: {sorted(keep - seen)[:readers.SHOW]}")
    readers.keep_present(items, lambda it: it.images, False, "Winoground", offer_skip=False)
    return items


# ------------------------------------------------------------------------------------------ VALSE


def load_valse(root, images, pieces=VALSE_PIECES, valid_only: bool = True) -> list[ChoiceItem]:
    """VALSE: ``root`` holds ``<piece>.json``; ``images`` is one folder or a mapping piece -> folder.

    ``valid_only`` keeps the samples at least two of three annotators validated (``mturk.caption >= 2``).
    """
    names = readers.names(pieces, VALSE_PIECES, "VALSE piece")
    if isinstance(images, Mapping):
        missing = [p for p in names if p not in images]
        extra = [p for p in images if p not in names]
        if missing or extra:
            raise BenchmarkError(f"VALSE images mapping: no folder for {missing}; unrequested pieces {extra}")
        folders = {p: readers.folder(images[p], f"VALSE {p} images") for p in names}
    else:
        folder = readers.folder(images, "VALSE images")
        folders = dict.fromkeys(names, folder)
    root = readers.folder(root, "VALSE")
    data = {p: readers.read_json(root / f"{p}.json", f"VALSE {p}") for p in names}
    items = []
    for piece, records in data.items():
        if not isinstance(records, dict):
            raise BenchmarkError(f"VALSE {piece}: expected a JSON object id -> record")
        for key, rec in records.items():
            where = f"VALSE {piece} item {key!r}"
            _need(rec, ("image_file", "caption"), where)
            if "foil" in rec:
                foils = (rec["foil"],)
            elif isinstance(rec.get("foils"), list) and rec["foils"]:
                foils = tuple(rec["foils"])
            else:
                raise BenchmarkError(f"{where} has neither 'foil' nor a non-empty 'foils' list")
            if valid_only:
                votes = rec.get("mturk", {}).get("caption") if isinstance(rec.get("mturk"), dict) else None
                if not isinstance(votes, (int, float)):
                    raise BenchmarkError(f"{where} has no mturk.caption vote count (pass valid_only=False)")
                if votes < 2:
                    continue
            items.append(ChoiceItem(
                item_id=str(key), subset=piece,
                image=folders[piece] / readers.text(rec["image_file"], f"{where} image_file"),
                true=readers.text(rec["caption"], f"{where} caption"),
                false=tuple(readers.text(f, f"{where} foil") for f in foils)))
    readers.keep_present(items, lambda it: (it.image,), False, "VALSE", offer_skip=False)
    return items


# ------------------------------------------------------------------------------------------ scoring


def choice_correct(true_scores, false_scores) -> np.ndarray:
    """``bool [N]``: the true caption scores strictly above every false one (ties count as wrong).

    ``true_scores [N]``, ``false_scores [N, K]``; ``-inf`` marks an absent option (items with fewer
    false captions), NaN is refused.
    """
    t = np.asarray(true_scores, dtype=float)
    f = np.asarray(false_scores, dtype=float)
    if t.ndim != 1 or f.ndim != 2 or f.shape[0] != t.shape[0] or f.shape[1] < 1:
        raise BenchmarkError(f"need true_scores [N] and false_scores [N, K>=1], got {t.shape} and {f.shape}")
    if np.isnan(t).any() or np.isnan(f).any():
        raise BenchmarkError("scores contain NaN")
    return t > f.max(axis=1)


def winoground_scores(s) -> pd.DataFrame:
    """Winoground's strict per-example scores from ``s[n, i, j]`` = similarity(caption i, image j).

    text: each image prefers its own caption (``s00 > s10`` and ``s11 > s01``); image: each caption
    prefers its own image (``s00 > s01`` and ``s11 > s10``); group: both. Ties fail.
    """
    s = np.asarray(s, dtype=float)
    if s.ndim != 3 or s.shape[1:] != (2, 2):
        raise BenchmarkError(f"need similarities of shape [N, 2, 2], got {s.shape}")
    if np.isnan(s).any():
        raise BenchmarkError("similarities contain NaN")
    text = (s[:, 0, 0] > s[:, 1, 0]) & (s[:, 1, 1] > s[:, 0, 1])
    image = (s[:, 0, 0] > s[:, 0, 1]) & (s[:, 1, 1] > s[:, 1, 0])
    return pd.DataFrame({"text": text, "image": image, "group": text & image})


# ------------------------------------------------------------------------------------------ evaluate


def _file_sha256(path: Path) -> str:
    try:
        return file_sha256(path)
    except FileNotFoundError:
        raise BenchmarkError(f"image file {path} is missing") from None


def _crop_path(src: Path, box: tuple[int, int, int, int], digests: dict) -> Path:
    """The crop of ``src`` to ``box`` as a PNG in ``<cache>/crops``, keyed by source content + box; written
    once, atomically, so the embedding engine can read and cache it like any image file."""
    if src not in digests:
        digests[src] = _file_sha256(src)
    name = f"v{CROP_FORMAT}-{digests[src]}-{'_'.join(str(v) for v in box)}.png"

    def crop_to(folder: Path) -> None:
        try:
            crop = open_image(src).crop(box)
        except DatasetError as e:
            raise BenchmarkError(str(e)) from None
        atomic_write(folder / name, lambda f: crop.save(f, format="PNG"))

    return cached_folder(cache_dir() / "crops", name, lambda folder: folder / name, crop_to)


def _valid_box(box) -> bool:
    return (isinstance(box, tuple) and len(box) == 4
            and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in box)
            and box[2] > box[0] and box[3] > box[1])


def _index(values) -> tuple[list, dict]:
    uniq = list(dict.fromkeys(values))
    return uniq, {v: i for i, v in enumerate(uniq)}


def _item_files(item) -> tuple:
    """The image files an item needs."""
    if isinstance(item, ChoiceItem):
        return (item.image,)
    if isinstance(item, ImageChoiceItem):
        return (item.true_image, *item.false_images)
    return tuple(item.images)


def _options(item, digests: dict) -> list[tuple[str, Path]]:
    """``(text, image)`` of a choice-like item's true option, then of each false one: a choice item varies
    the caption on one image (its crop, written once), an image-choice item the image under one sentence."""
    if isinstance(item, ImageChoiceItem):
        return [(item.text, Path(p)) for p in (item.true_image, *item.false_images)]
    image = _crop_path(Path(item.image), item.crop, digests) if item.crop else Path(item.image)
    return [(t, image) for t in (item.true, *item.false)]


def evaluate(encoder, items: Sequence[ChoiceItem | ImageChoiceItem | PairItem], batch_size: int = 64, cache=True,
             progress: bool = True) -> pd.DataFrame:
    """Score ``items`` (choice and image-choice items, or pair items) with ``encoder``: one row per item.

    Choice and image-choice items: ``item_id, subset, n_false, true_score, max_false_score, correct`` (an
    image-choice item's options are its images under one sentence, so the same columns fit). Pair items:
    ``item_id, subset, s00, s01, s10, s11`` (``sij`` = similarity of caption i and image j) and
    ``text, image, group``. Texts and images are deduplicated and embedded once through the project's
    cached engine (``cache``: True, False or a folder, as in :func:`~clipscope_utils.embeddings.embed_texts`);
    crops are written to ``<cache_dir>/crops`` first.
    """
    items = list(items)
    if not items:
        raise BenchmarkError("no items to evaluate")
    kinds = {type(it) for it in items}
    if not kinds <= {ChoiceItem, ImageChoiceItem, PairItem}:
        raise BenchmarkError(f"items must be ChoiceItem, ImageChoiceItem or PairItem, got "
                             f"{sorted(k.__name__ for k in kinds)}")
    if PairItem in kinds and len(kinds) > 1:
        raise BenchmarkError("evaluate choice items and pair items separately (their scores differ)")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise BenchmarkError(f"batch_size must be a positive integer, got {batch_size!r}")
    keys = [(it.subset, it.item_id) for it in items]
    if len(set(keys)) != len(keys):
        raise BenchmarkError("items repeat a (subset, item_id) pair")
    choice = PairItem not in kinds
    if choice:
        bad = [it.item_id for it in items if not (it.false if isinstance(it, ChoiceItem) else it.false_images)]
        if bad:
            raise BenchmarkError(f"choice items without false captions (or images): {bad[:readers.SHOW]}")
        bad = [it.item_id for it in items if getattr(it, "crop", None) is not None and not _valid_box(it.crop)]
        if bad:
            raise BenchmarkError(f"items with a crop that is not (x0, y0, x1, y1) integers with x1 > x0 and "
                                 f"y1 > y0: {bad[:readers.SHOW]}")
    missing = [str(p) for it in items for p in _item_files(it) if not Path(p).is_file()]
    if missing:
        raise BenchmarkError(f"{len(missing)} image(s) missing, e.g. {missing[:readers.SHOW]}")

    # image files to embed (crops written once), texts; each deduplicated
    digests: dict = {}
    if choice:  # per item: (text, image) of the true option, then of each false one
        crops = any(getattr(it, "crop", None) for it in items)
        options = [_options(it, digests) for it in tqdm(items, disable=not progress or not crops, desc="crops",
                                                         unit="item")]
        item_texts = [[t for t, _ in opts] for opts in options]
        flat_images = [p for opts in options for _, p in opts]
    else:
        item_images = [tuple(Path(p) for p in it.images) for it in items]
        item_texts = [it.captions for it in items]
        flat_images = [p for pair in item_images for p in pair]
    uniq_images, image_at = _index(flat_images)
    uniq_texts, text_at = _index(t for texts in item_texts for t in texts)
    img_emb = embeddings.embed_images(encoder, uniq_images, batch_size=batch_size, cache=cache, progress=progress)
    txt_emb = embeddings.embed_texts(encoder, uniq_texts, batch_size=batch_size, cache=cache, progress=progress)
    img_emb, txt_emb = img_emb.astype(np.float64), txt_emb.astype(np.float64)

    sims: dict[tuple[int, int], float] = {}  # one value per (text, image): equal inputs tie exactly

    def sim(text: str, image: Path) -> float:
        key = (text_at[text], image_at[image])
        if key not in sims:
            sims[key] = float(txt_emb[key[0]] @ img_emb[key[1]])
        return sims[key]

    ids = pd.DataFrame({"item_id": [it.item_id for it in items], "subset": [it.subset for it in items]})
    if choice:
        k = max(len(opts) - 1 for opts in options)
        true_s = np.array([sim(*opts[0]) for opts in options])
        false_s = np.full((len(items), k), -np.inf)
        for n, opts in enumerate(options):
            false_s[n, :len(opts) - 1] = [sim(*o) for o in opts[1:]]
        return ids.assign(n_false=[len(opts) - 1 for opts in options], true_score=true_s,
                          max_false_score=false_s.max(axis=1), correct=choice_correct(true_s, false_s))
    s = np.array([[[sim(caps[i], imgs[j]) for j in range(2)] for i in range(2)]
                  for caps, imgs in zip(item_texts, item_images)])
    scores = winoground_scores(s)
    return ids.assign(s00=s[:, 0, 0], s01=s[:, 0, 1], s10=s[:, 1, 0], s11=s[:, 1, 1],
                      **{m: scores[m].to_numpy() for m in PAIR_METRICS})


# ------------------------------------------------------------------------------------------ summaries


def _metrics(frame: pd.DataFrame) -> list[str]:
    if "correct" in frame.columns:
        if "n_false" not in frame.columns:
            raise BenchmarkError("a choice-item frame needs n_false (for the chance level); use evaluate()")
        return ["correct"]
    if set(PAIR_METRICS) <= set(frame.columns):
        return list(PAIR_METRICS)
    raise BenchmarkError(f"not an evaluate() frame: columns {list(frame.columns)}")


def summary(frame: pd.DataFrame, by=("subset",), n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per group and metric: ``n, accuracy``, a 95 % bootstrap interval and the chance level.

    Chance: ``1 / (1 + n_false)`` averaged over the group for choice items; 1/4, 1/4 and 1/6 for
    Winoground's text, image and group scores.
    """
    metrics = _metrics(frame)
    by = [by] if isinstance(by, str) else list(by)
    missing = [c for c in by if c not in frame.columns]
    if missing:
        raise BenchmarkError(f"cannot group by {missing}: not columns of the frame")
    if frame.empty:
        raise BenchmarkError("the frame has no rows")
    out = []
    for metric in metrics:
        table = rate_table(frame, by, metric, n_boot=n_boot, seed=seed).rename(columns={"rate": "accuracy"})
        if metric == "correct":
            chance = (frame.assign(chance=1 / (1 + frame.n_false)).groupby(by, sort=True)["chance"].mean()
                      .reset_index())
            table = table.merge(chance, on=by, how="left")
        else:
            table["chance"] = PAIR_CHANCE[metric]
        out.append(table.assign(metric=metric))
    cols = [*by, "metric", "n", "accuracy", "ci_low", "ci_high", "chance"]
    return pd.concat(out, ignore_index=True)[cols]


def _macro(groups: list[np.ndarray], n_boot: int, seed: int) -> tuple[float, float, float]:
    """Mean of per-group accuracies and its percentile interval. Resampling a 0/1 sample of size n with
    k hits is exactly a Binomial(n, k/n) draw, so each group is bootstrapped in O(n_boot), not O(n_boot n)."""
    rng = np.random.default_rng(seed)
    means = [g.mean() for g in groups]
    boots = np.mean([rng.binomial(len(g), g.mean(), size=n_boot) / len(g) for g in groups], axis=0)
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return float(np.mean(means)), float(lo), float(hi)


def category_macro(frame: pd.DataFrame, categories: pd.DataFrame, min_count: int = 1, exclude=(),
                   n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """ARO-style macro accuracy per subset: the mean over categories (with at least ``min_count`` items,
    not in ``exclude``) of each category's accuracy. ARO uses ``min_count=25`` for VG-Attribution and
    excludes its symmetric relations for VG-Relation."""
    _metrics(frame)
    if "correct" not in frame.columns:
        raise BenchmarkError("category_macro is for choice items")
    need = {"item_id", "subset", "category"}
    if not need <= set(categories.columns):
        raise BenchmarkError(f"categories need columns {sorted(need)}")
    merged = frame.merge(categories[list(need)], on=["subset", "item_id"], how="left")
    if merged.category.isna().any():
        raise BenchmarkError(f"{int(merged.category.isna().sum())} item(s) have no category")
    merged = merged[~merged.category.isin(set(exclude))]
    rows = []
    for subset, part in merged.groupby("subset", sort=True):
        counts = part.category.value_counts()
        kept = part[part.category.isin(counts.index[counts >= min_count])]
        if kept.empty:
            continue
        groups = [g.correct.to_numpy(dtype=float) for _, g in kept.groupby("category", sort=True)]
        acc, lo, hi = _macro(groups, n_boot, seed)
        rows.append({"subset": subset, "n": len(kept), "n_categories": len(groups), "macro_accuracy": acc,
                     "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=["subset", "n", "n_categories", "macro_accuracy", "ci_low", "ci_high"])


def aro_macro(frame: pd.DataFrame, categories: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """ARO's headline accuracies as its authors compute them, for each ARO subset in ``frame``: the mean over
    relations (VG-Relation, :func:`aro_symmetric_relations` left out) or attribute pairs (VG-Attribution, pairs
    with fewer than ``ARO_MIN_RECORDS`` records left out) of the per-category accuracy; columns as
    :func:`category_macro`. ``categories``: :func:`aro_categories` of the subsets, concatenated. Records are
    counted in ``categories`` (the whole file, as the authors count), not in ``frame``, so pooled seeds or a
    subsample do not change which categories count. A subset none of whose categories count gives no row."""
    need = {"item_id", "subset", "category"}
    if not isinstance(categories, pd.DataFrame) or not need <= set(categories.columns):
        raise BenchmarkError(f"categories must be a frame with columns {sorted(need)} (aro_categories)")
    if categories.duplicated(["subset", "item_id"]).any():
        raise BenchmarkError("categories repeat a (subset, item_id) pair")
    rows = []
    for subset, min_records in ARO_MIN_RECORDS.items():
        part = frame[frame.subset == subset]
        if part.empty:
            continue
        cats = categories[categories.subset == subset]
        counts = cats.category.value_counts()
        exclude = set(counts.index[counts < min_records])
        if subset == "VG-Relation":
            exclude |= set(aro_symmetric_relations())
        rows += category_macro(part, cats, exclude=exclude, n_boot=n_boot, seed=seed).to_dict("records")
    return pd.DataFrame(rows, columns=["subset", "n", "n_categories", "macro_accuracy", "ci_low", "ci_high"])


def paper_b_summary(frame: pd.DataFrame, n_boot: int = 1000, seed: int = 0,
                    categories: pd.DataFrame | None = None) -> pd.DataFrame:
    """Paper B's table columns that ``frame`` can fill (all their subsets present): ``benchmark, column,
    measure, subsets, n, n_categories, accuracy``, a 95 % stratified bootstrap interval, the chance level (as
    fractions) and ``paper_measure``.

    Every column gets an item-level row (``measure`` :data:`MEASURE_ITEMS`; :data:`MEASURE_SUBSETS`, the mean
    of the subsets' accuracies, when it has several). With ``categories`` (:func:`aro_categories` of both
    subsets, concatenated), each ARO column also gets, first, the authors' macro accuracy
    (:data:`MEASURE_ARO`, :func:`aro_macro`; ``n`` counts the items of the categories kept). ``paper_measure``
    is True on the row computed the way paper B's number was (ARO: the authors' macro, which paper B copies;
    elsewhere: the item-level row, read as :data:`PAPER_B_GROUPS` says), so a published number can be put
    beside that row only."""
    metrics = _metrics(frame)
    macro = aro_macro(frame, categories, n_boot, seed).set_index("subset") if categories is not None else None
    rows = []
    for (bench, column), group in PAPER_B_GROUPS.items():
        if group.metric not in metrics or not set(group.subsets) <= set(frame.subset):
            continue
        parts = [frame.loc[frame.subset == s] for s in group.subsets]
        acc, lo, hi = _macro([p[group.metric].to_numpy(dtype=float) for p in parts], n_boot, seed)
        chance = (np.mean([(1 / (1 + p.n_false)).mean() for p in parts]) if group.metric == "correct"
                  else PAIR_CHANCE[group.metric])
        base = {"benchmark": bench, "column": column, "subsets": "+".join(group.subsets), "chance": float(chance)}
        aro = len(group.subsets) == 1 and group.subsets[0] in ARO_SUBSETS
        if aro and macro is not None and group.subsets[0] in macro.index:
            m = macro.loc[group.subsets[0]]
            rows.append({**base, "measure": MEASURE_ARO, "n": int(m.n), "n_categories": int(m.n_categories),
                         "accuracy": m.macro_accuracy, "ci_low": m.ci_low, "ci_high": m.ci_high,
                         "paper_measure": True})
        rows.append({**base, "measure": MEASURE_ITEMS if len(parts) == 1 else MEASURE_SUBSETS,
                     "n": int(sum(len(p) for p in parts)), "n_categories": pd.NA, "accuracy": acc, "ci_low": lo,
                     "ci_high": hi, "paper_measure": not aro})
    out = pd.DataFrame(rows, columns=["benchmark", "column", "measure", "subsets", "n", "n_categories", "accuracy",
                                      "ci_low", "ci_high", "chance", "paper_measure"])
    return out.astype({"n_categories": "Int64", "paper_measure": bool})


# ------------------------------------------------------------------------------------------ published


@lru_cache(maxsize=1)
def paper_b_tables() -> pd.DataFrame:
    """Every transcribed cell of paper B's Tables 1, 2, 3 and 5 (Table 3: retrieval recall@k on MSCOCO and
    Flickr30K, columns ``"<direction> R@<k>"``; Table 5: the loss ablation, one "Ablation" column per benchmark
    and their "Average"): ``table, model, benchmark, column, value`` (percent,
    as published), ``note`` (how an unclear OCR cell was read; empty otherwise). Missing cells are absent."""
    if not TABLES_CSV.is_file():
        raise FileNotFoundError(f"{TABLES_CSV} is missing; it ships with the repository")
    return pd.read_csv(TABLES_CSV, dtype={"note": str}, keep_default_na=False,
                       converters={"value": float, "table": int})


def published_b(benchmark: str | None = None, column: str | None = None, table: int = 1) -> pd.DataFrame:
    """Paper B's published cells of one table, optionally one benchmark / column, with ``fraction`` = value/100."""
    t = paper_b_tables()
    if table not in set(t.table):
        raise BenchmarkError(f"paper B table {table!r} is not transcribed; tables: {sorted(set(t.table))}")
    t = t[t.table == table]
    for name, value in (("benchmark", benchmark), ("column", column)):
        if value is not None:
            allowed = sorted(set(t[name]))
            if value not in allowed:
                raise BenchmarkError(f"unknown {name} {value!r}; allowed: {', '.join(allowed)}")
            t = t[t[name] == value]
    if t.empty:
        raise BenchmarkError(f"paper B table {table} has no {benchmark} {column} cells")
    return t.assign(fraction=t.value / 100).reset_index(drop=True)
