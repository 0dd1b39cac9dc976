"""Generated compositional items written in the published benchmarks' own file layouts, so the real loaders
(:mod:`.benchmarks` and the per-benchmark modules) can be proven on stand-ins in the rehearsal and the tests.

The *contents* are generated scenes (:func:`~clipscope_utils.compositional.scenes.synthetic_benchmark`); only
the layouts are the real ones. Numbers computed on them mean nothing.
"""

from __future__ import annotations

# ---------------------------------------------------------------- ARO, SugarCrepe, Winoground, VALSE (section A)
# Every writer takes ``bench = synthetic_benchmark(spec, n)`` and a folder ``out``, writes the whole layout into a
# temporary sibling folder that is renamed to ``out`` at the end (nothing is left at ``out`` by a failed write),
# copies each source image once, writes ``<out>/export.json`` (the layout, the counts, which generated item
# each record and which generated image each file comes from) and returns the loader's folder arguments, so
# ``load_<benchmark>(**paths)`` and ``check_files("<benchmark>", **paths)`` read it back. ``overwrite=True``
# replaces only a folder a writer made (one holding ``export.json``). Formats: see :mod:`.benchmarks`.

import json
import shutil
from collections.abc import Mapping
from pathlib import Path

from PIL import Image

from ..datasets.export import REPORT_FILE
from ..datasets.tables import atomic_folder
from .benchmarks import ARO_SUBSETS, SUGARCREPE_SUBSETS, VALSE_PIECES, winoground_clean_ids
from .items import BenchmarkError, ChoiceItem, PairItem
from .scenes import BENCHMARK_SUBSETS, RELATION_PHRASES

#: which generated subset fills each SugarCrepe subset (None: an empty file). The published subsets without a
#: generated counterpart take the nearest one (object edits: noun swaps; attribute edits: attribute swaps).
SUGARCREPE_STANDIN = {"add_att": "attribute", "add_obj": "relation", "replace_att": "attribute",
                      "replace_obj": "relation", "replace_rel": "relation_replace", "swap_att": "attribute",
                      "swap_obj": "relation"}
#: which generated subset fills each VALSE piece (None: an empty file); the relation pieces get their
#: counterparts (relation phrase replaced, nouns swapped), every other piece the noun swaps.
VALSE_STANDIN = {**dict.fromkeys(VALSE_PIECES, "relation"), "relations": "relation_replace",
                 "action-replacement": "relation_replace", "actant-swap": "relation"}
SUGARCREPE_FOLDERS = ("data", "val2017")  # <out>/data/<subset>.json, <out>/val2017/<image> (COCO val2017)
VALSE_FOLDERS = ("data", "images")  # <out>/data/<piece>.json, <out>/images/<image>
WINOGROUND_EXAMPLES = 400  # ids 0..399 as in the published examples.jsonl (more only when there are more pairs)
_ARTICLES = ("a", "an")


def _standin_out(out, overwrite: bool) -> Path:
    out = Path(out)
    if out.exists() and not overwrite:
        raise BenchmarkError(f"output folder {out} already exists (pass overwrite=True to replace it)")
    if out.exists() and not (out / REPORT_FILE).is_file():
        raise BenchmarkError(f"{out} exists and was not written by a stand-in writer (no {REPORT_FILE}); it is not "
                             "replaced even with overwrite=True")
    return out


def _standin_items(bench, subset: str, kind: type) -> list:
    if not isinstance(bench, Mapping):
        raise BenchmarkError(f"bench must be synthetic_benchmark()'s mapping subset -> items, got {type(bench).__name__}")
    if subset not in BENCHMARK_SUBSETS:
        raise BenchmarkError(f"unknown generated subset {subset!r}; allowed: {', '.join(BENCHMARK_SUBSETS)}")
    if subset not in bench:
        raise BenchmarkError(f"bench has no {subset!r} items (has {sorted(bench)})")
    items = list(bench[subset])
    bad = [getattr(it, "item_id", it) for it in items if not isinstance(it, kind)]
    if bad:
        raise BenchmarkError(f"bench[{subset!r}] holds items that are not {kind.__name__}: {bad[:5]}")
    if kind is ChoiceItem:
        bad = [it.item_id for it in items if len(it.false) != 1]
        if bad:
            raise BenchmarkError(f"bench[{subset!r}]: the layouts hold one false caption an item; {bad[:5]} have more")
    return items


def _standin_mapping(mapping, allowed: tuple[str, ...], what: str) -> dict:
    if not isinstance(mapping, Mapping):
        raise BenchmarkError(f"the {what} mapping must map {what} -> generated subset (or None)")
    bad = [k for k in mapping if k not in allowed]
    if bad:
        raise BenchmarkError(f"unknown {what} {bad}; allowed: {', '.join(allowed)}")
    return {name: mapping.get(name) for name in allowed}


class _ImageCopier:
    """Copies each source image once into ``folder`` as ``name(k, source)``; remembers file -> source."""

    def __init__(self, folder: Path, name, png: bool = False):
        self.folder, self.name, self.png = folder, name, png
        self.names: dict[Path, str] = {}
        folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, source) -> str:
        source = Path(source)
        if source not in self.names:
            if not source.is_file():
                raise BenchmarkError(f"source image {source} is missing")
            name = self.name(len(self.names), source)
            if self.png and source.suffix.lower() != ".png":
                with Image.open(source) as im:
                    im.save(self.folder / name, format="PNG")
            else:
                shutil.copyfile(source, self.folder / name)
            self.names[source] = name
        return self.names[source]

    def files(self, root: Path) -> dict[str, str]:
        rel = self.folder.relative_to(root).as_posix()
        return {f"{rel}/{name}": str(source) for source, name in self.names.items()}


def _write_standin_report(folder: Path, report: dict) -> None:
    (folder / REPORT_FILE).write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")


def _dump_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")


def relation_name(caption: str) -> str:
    """The relation phrase of a generated relation caption ("to the left of", "above", ...), as ARO names a
    record's relation by its words in the caption."""
    found = [p for p in RELATION_PHRASES.values() if f" {p} " in f" {caption} "]
    if len(found) != 1:
        raise BenchmarkError(f"cannot tell the relation of {caption!r}: found {found or 'none'} of "
                             f"{list(RELATION_PHRASES.values())}")
    return found[0]


def attribute_pair(true: str, false: str) -> tuple[str, str]:
    """The attributes an attribute swap exchanges, as ARO's ``attributes`` pair: the words in which the true and
    false captions differ (articles aside), the first half the first noun's, the second half the second's;
    "a large red cat and a large blue dog" -> ("red", "blue")."""
    t, f = true.split(), false.split()
    diff = [a for a, b in zip(t, f) if a != b and a not in _ARTICLES] if len(t) == len(f) else []
    if not diff or len(diff) % 2:
        raise BenchmarkError(f"not an attribute swap: {true!r} vs {false!r}")
    half = len(diff) // 2
    return " ".join(diff[:half]), " ".join(diff[half:])


def to_aro(bench: Mapping[str, list], out, overwrite: bool = False) -> dict[str, Path]:
    """ARO's layout: ``<out>/visual_genome_relation.json`` (from the "relation" items, ``relation_name`` the
    caption's relation phrase) and ``visual_genome_attribution.json`` (from "attribute", ``attributes`` the
    swapped pair, :func:`attribute_pair`), each a JSON list of records with ``image_id, image_path, bbox_x,
    bbox_y, bbox_w, bbox_h`` (the whole image), ``true_caption, false_caption``; images in ``<out>/images``.
    Returns ``{"root": out}`` for :func:`~.benchmarks.load_aro` and :func:`~.benchmarks.aro_categories`."""
    kinds = {"VG-Relation": "relation", "VG-Attribution": "attribute"}
    items = {subset: _standin_items(bench, kind, ChoiceItem) for subset, kind in kinds.items()}
    out = _standin_out(out, overwrite)
    with atomic_folder(out, overwrite=overwrite) as tmp:
        copy = _ImageCopier(tmp / "images", lambda k, src: f"{k + 1}{src.suffix.lower()}")
        sources = {}
        for subset, its in items.items():
            records = []
            for it in its:
                name = copy(it.image)
                with Image.open(it.image) as im:
                    width, height = im.size
                rec = {"image_id": Path(name).stem, "image_path": name, "bbox_x": 0, "bbox_y": 0, "bbox_w": width,
                       "bbox_h": height, "true_caption": it.true, "false_caption": it.false[0]}
                if subset == "VG-Relation":
                    rec["relation_name"] = relation_name(it.true)
                else:
                    rec["attributes"] = list(attribute_pair(it.true, it.false[0]))
                records.append(rec)
            _dump_json(tmp / ARO_SUBSETS[subset], records)
            sources[subset] = [it.item_id for it in its]
        _write_standin_report(tmp, {"layout": "aro", "counts": {s: len(v) for s, v in sources.items()},
                                    "records": sources, "files": copy.files(tmp)})
    return {"root": out}


def _choice_files(bench, mapping: dict, tmp: Path, copy: _ImageCopier, record) -> dict[str, list[str]]:
    """One ``<name>.json`` ``{id: record(item, image name)}`` per entry of ``mapping`` into ``tmp``."""
    sources = {}
    for name, subset in mapping.items():
        its = _standin_items(bench, subset, ChoiceItem) if subset is not None else []
        _dump_json(tmp / f"{name}.json", {str(k): record(it, copy(it.image)) for k, it in enumerate(its)})
        sources[name] = [it.item_id for it in its]
    return sources


def to_sugarcrepe(bench: Mapping[str, list], out, subsets: Mapping[str, str | None] = SUGARCREPE_STANDIN,
                  overwrite: bool = False) -> dict[str, Path]:
    """SugarCrepe's layout: ``<out>/data/<subset>.json`` for all seven subsets, each ``{id: {"filename", "caption",
    "negative_caption"}}``, images in ``<out>/val2017`` (standing for COCO val2017, named by a 12-digit number
    as COCO's are). ``subsets``: published subset -> generated subset (:data:`SUGARCREPE_STANDIN`; a subset
    left out or None gets an empty file). Returns ``{"root", "images"}`` for
    :func:`~.benchmarks.load_sugarcrepe`."""
    mapping = _standin_mapping(subsets, SUGARCREPE_SUBSETS, "SugarCrepe subset")
    for subset in filter(None, mapping.values()):
        _standin_items(bench, subset, ChoiceItem)  # every input checked before anything is written
    out = _standin_out(out, overwrite)
    data, images = SUGARCREPE_FOLDERS
    with atomic_folder(out, overwrite=overwrite) as tmp:
        copy = _ImageCopier(tmp / images, lambda k, src: f"{k + 1:012d}{src.suffix.lower()}")
        sources = _choice_files(bench, mapping, tmp / data, copy, lambda it, name: {
            "filename": name, "caption": it.true, "negative_caption": it.false[0]})
        _write_standin_report(tmp, {"layout": "sugarcrepe", "from": mapping,
                                    "counts": {s: len(v) for s, v in sources.items()}, "records": sources,
                                    "files": copy.files(tmp)})
    return {"root": out / data, "images": out / images}


def to_valse(bench: Mapping[str, list], out, pieces: Mapping[str, str | None] = VALSE_STANDIN,
             overwrite: bool = False) -> dict[str, Path]:
    """VALSE's layout: ``<out>/data/<piece>.json`` for all eleven pieces, each ``{id: {"dataset",
    "original_split", "dataset_idx", "image_file", "caption", "foil", "mturk": {"foil", "caption", "other"}}}``
    with every sample validated by all three annotators (``mturk.caption`` 3), images in ``<out>/images``.
    ``pieces``: piece -> generated subset (:data:`VALSE_STANDIN`; a piece left out or None gets an empty file).
    Returns ``{"root", "images"}`` for :func:`~.benchmarks.load_valse`."""
    mapping = _standin_mapping(pieces, VALSE_PIECES, "VALSE piece")
    for subset in filter(None, mapping.values()):
        _standin_items(bench, subset, ChoiceItem)
    out = _standin_out(out, overwrite)
    data, images = VALSE_FOLDERS
    with atomic_folder(out, overwrite=overwrite) as tmp:
        copy = _ImageCopier(tmp / images, lambda k, src: f"generated_{k + 1:06d}{src.suffix.lower()}")
        sources = _choice_files(bench, mapping, tmp / data, copy, lambda it, name: {
            "dataset": "clipscope-generated", "original_split": "test", "dataset_idx": it.item_id,
            "image_file": name, "caption": it.true, "foil": it.false[0],
            "mturk": {"foil": 0, "caption": 3, "other": 0}})
        _write_standin_report(tmp, {"layout": "valse", "from": mapping,
                                    "counts": {s: len(v) for s, v in sources.items()}, "records": sources,
                                    "files": copy.files(tmp)})
    return {"root": out / data, "images": out / images}


def to_winoground(bench: Mapping[str, list], out, overwrite: bool = False) -> dict[str, Path]:
    """Winoground's layout: ``<out>/examples.jsonl`` (one example a line, sorted by ``id``: ``id, caption_0,
    caption_1, image_0, image_1, tag, secondary_tag, num_main_preds, collapsed_tag``) and
    ``<out>/images/<image_k>.png``, from the "winoground" pairs.

    The ids are the published ones, the clean subset's first (:func:`~.benchmarks.winoground_clean_ids`), so
    ``load_winoground(out, clean=True)`` works: there are max(400, pairs) examples, pairs repeated in order
    when there are fewer than 400 (export.json says which pair each id holds). Returns ``{"root": out}``."""
    items = _standin_items(bench, "winoground", PairItem)
    if not items:
        raise BenchmarkError("bench has no 'winoground' pairs to write")
    clean = sorted(winoground_clean_ids())
    n = max(WINOGROUND_EXAMPLES, len(items))
    taken = set(clean)
    ids = clean + [i for i in range(n) if i not in taken]
    out = _standin_out(out, overwrite)
    with atomic_folder(out, overwrite=overwrite) as tmp:
        copy = _ImageCopier(tmp / "images", lambda k, src: f"img_{k}.png", png=True)
        examples, sources = [], {}
        for k, ex_id in enumerate(ids):
            it = items[k % len(items)]
            names = [copy(p)[: -len(".png")] for p in it.images]
            examples.append({"id": ex_id, "caption_0": it.captions[0], "caption_1": it.captions[1],
                             "image_0": names[0], "image_1": names[1], "tag": "Object", "secondary_tag": "",
                             "num_main_preds": 1, "collapsed_tag": "Object"})
            sources[str(ex_id)] = it.item_id
        examples.sort(key=lambda ex: ex["id"])
        (tmp / "examples.jsonl").write_text("".join(json.dumps(ex) + "\n" for ex in examples), encoding="utf-8")
        _write_standin_report(tmp, {"layout": "winoground", "counts": {"examples": len(examples), "clean": len(clean),
                                                                      "pairs": len(items)},
                                    "records": sources, "files": copy.files(tmp)})
    return {"root": out}

# ---------------------------------------------------------------- end of section A

# ---------------------------------------------------------------- VL-CheckList, SVO-Probes, ComVG (section B)
# Same conventions as section A (temporary folder renamed at the end, export.json, images copied once, the
# loader's folder arguments returned). SVO-Probes and ComVG need a sentence with a true and a false image: each
# generated "winoground" pair gives two rows (caption i, its image i true, the other image false); the twin
# differs from the scene by the arrangement the relation describes, so the rows are marked as verb (relation)
# negatives, the rows paper B reports. Images keep their PNG encoding (the loaders accept ``<id>.png``); the
# triplet columns are left empty (the items do not carry them); URLs are placeholders under ``.invalid``.

import csv

from .comvg import COMVG_COLUMNS, COMVG_CSV
from .svo_probes import SVO_PROBES_COLUMNS, SVO_PROBES_CSV
from .vl_checklist import VL_CHECKLIST_FILES, VL_CHECKLIST_SUBSETS

#: which generated subset fills each VL-CheckList type (None: empty files). Item k of a type goes to the
#: type's k-th source corpus in turn, so every type holds every item and every corpus file some.
VL_CHECKLIST_STANDIN = {**dict.fromkeys(VL_CHECKLIST_SUBSETS, "attribute"), "Relation/action": "relation",
                        "Relation/spatial": "relation_replace"}
#: where each VL-CheckList image folder puts its files, as in the real datasets (DATASETS.md)
VL_CHECKLIST_IMAGE_DIRS = {"vg": "VG_100K", "swig": "", "hake": "hake_images_20190730"}
COMVG_IMAGES = "comvg_images"  # ComCLIP's README: datasets/ComVG.csv beside datasets/comvg_images/
SVO_PROBES_IMAGES = "images"
_URL = "https://stand-in.invalid/{}"


def to_vl_checklist(bench: Mapping[str, list], out, types: Mapping[str, str | None] = VL_CHECKLIST_STANDIN,
                    overwrite: bool = False) -> dict[str, Path]:
    """VL-CheckList's layout: ``<out>/data/<file>`` for every file of
    :data:`~.vl_checklist.VL_CHECKLIST_FILES` (a JSON list of ``[image_path, {"POS": [true], "NEG": [false]}]``)
    and the images under ``<out>/images/{vg/VG_100K, swig, hake/hake_images_20190730}``; ``types`` says which
    generated subset fills each type. Returns ``{"root": out, "images": out / "images"}``."""
    mapping = _standin_mapping(types, VL_CHECKLIST_SUBSETS, "VL-CheckList type")
    items = {t: _standin_items(bench, s, ChoiceItem) if s is not None else [] for t, s in mapping.items()}
    cropped = [it.item_id for its in items.values() for it in its if it.crop is not None]
    if cropped:
        raise BenchmarkError(f"VL-CheckList records have no boxes; items with a crop: {cropped[:5]}")
    out = _standin_out(out, overwrite)
    with atomic_folder(out, overwrite=overwrite) as tmp:
        copiers = {root: _ImageCopier(tmp / "images" / root / sub, lambda k, src: f"{k + 1}{src.suffix.lower()}")
                   for root, sub in VL_CHECKLIST_IMAGE_DIRS.items()}
        records: dict[str, list[str]] = {}
        for vl_type, its in items.items():
            sources = list(VL_CHECKLIST_FILES[vl_type].items())
            files: dict[str, list] = {path: [] for _, (path, _) in sources}
            for k, it in enumerate(its):
                source, (path, root) = sources[k % len(sources)]
                sub = VL_CHECKLIST_IMAGE_DIRS[root]
                name = copiers[root](it.image)
                files[path].append([f"{sub}/{name}" if sub else name, {"POS": [it.true], "NEG": list(it.false)}])
                records.setdefault(f"{vl_type} ({source})", []).append(it.item_id)
            for path, recs in files.items():
                _dump_json(tmp / "data" / path, recs)
        _write_standin_report(tmp, {"layout": "vl_checklist", "counts": {k: len(v) for k, v in records.items()},
                                    "records": records,
                                    "files": {f: s for c in copiers.values() for f, s in c.files(tmp).items()}})
    return {"root": out, "images": out / "images"}


def _image_choice_rows(bench) -> list[tuple[str, str, Path, Path]]:
    """``(pair item_id, sentence, true image, false image)``: two rows per generated "winoground" pair."""
    pairs = _standin_items(bench, "winoground", PairItem)
    if not pairs:
        raise BenchmarkError("bench has no 'winoground' pairs: they give the sentence's true and false images")
    return [(it.item_id, it.captions[i], Path(it.images[i]), Path(it.images[1 - i])) for it in pairs for i in (0, 1)]


def _write_csv(path: Path, columns, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


def _image_choice_standin(bench, out, overwrite: bool, layout: str, images: str, csv_name: str, columns, row,
                          records) -> dict[str, Path]:
    """The writer SVO-Probes' and ComVG's layouts share: ``<out>/<csv_name>`` with one row per (sentence, true
    image, false image) of the bench's "winoground" pairs, made by ``row(n, sentence, pos, neg)`` (``n`` from 1;
    ``pos``, ``neg`` the copied images), the images in ``<out>/<images>``, and a report whose records are
    ``records(pair ids in row order)``. Returns ``{"root": out, "images": out / images}``."""
    rows = _image_choice_rows(bench)
    out = _standin_out(out, overwrite)
    with atomic_folder(out, overwrite=overwrite) as tmp:
        copy = _ImageCopier(tmp / images, lambda k, src: f"{k + 1}{src.suffix.lower()}")
        table = [row(n, sentence, Path(copy(true)), Path(copy(false)))
                 for n, (_, sentence, true, false) in enumerate(rows, 1)]
        _write_csv(tmp / csv_name, columns, table)
        _write_standin_report(tmp, {"layout": layout, "counts": {"rows": len(table)},
                                    "records": records([pair_id for pair_id, *_ in rows]), "files": copy.files(tmp)})
    return {"root": out, "images": out / images}


def to_svo_probes(bench: Mapping[str, list], out, overwrite: bool = False) -> dict[str, Path]:
    """SVO-Probes' layout: ``<out>/svo_probes.csv`` (its published columns; every row a verb negative) and the
    images as ``<out>/images/<image_id>.png``. Returns ``{"root": out, "images": out / "images"}``."""

    def row(n, sentence, pos, neg):
        return {"sentence": sentence, "pos_triplet": "", "neg_triplet": "",
                "pos_url": _URL.format(pos.name), "neg_url": _URL.format(neg.name),
                "pos_image_id": pos.stem, "neg_image_id": neg.stem,
                "subj_neg": False, "verb_neg": True, "obj_neg": False}

    return _image_choice_standin(bench, out, overwrite, "svo_probes", SVO_PROBES_IMAGES, SVO_PROBES_CSV,
                                 SVO_PROBES_COLUMNS, row, list)


def to_comvg(bench: Mapping[str, list], out, overwrite: bool = False) -> dict[str, Path]:
    """ComVG's layout: ``<out>/ComVG.csv`` (its published columns, ``id`` from 1, ``neg_value`` "verb") and the
    images as ``<out>/comvg_images/<image_id>.png``. Returns ``{"root": out, "images": out / "comvg_images"}``."""
    sentence_ids: dict[str, int] = {}

    def row(n, sentence, pos, neg):
        return {"id": n, "sentence": sentence, "pos_triplet": "", "neg_triplet": "",
                "pos_image_id": pos.stem, "neg_image_id": neg.stem,
                "neg_value": "verb", "sentence_id": sentence_ids.setdefault(sentence, len(sentence_ids))}

    return _image_choice_standin(bench, out, overwrite, "comvg", COMVG_IMAGES, COMVG_CSV, COMVG_COLUMNS, row,
                                 lambda pair_ids: {str(n): p for n, p in enumerate(pair_ids, 1)})

# ---------------------------------------------------------------- end of section B
