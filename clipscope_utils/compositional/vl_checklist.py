"""VL-CheckList (Zhao et al. 2022), the Relation and Attribute groups paper B reports, as :class:`ChoiceItem` s.

Format, read (not copied) from github:om-ai-lab/VL-CheckList @6f8d6a3 (``data/``, ``corpus/v1/*/*.yaml``,
``vl_checklist/data_loader.py``, ``vl_checklist/evaluate.py``, ``DATASETS.md``):

* annotations: one JSON file per (type, source corpus) under the repository's ``data/`` folder, a JSON *list*
  of ``[image_path, {"POS": [caption, ...], "NEG": [caption, ...]}]`` pairs (every published record has one
  caption in each list). The files and the image folder each reads from are those of ``corpus/v1``, listed in
  :data:`VL_CHECKLIST_FILES` (e.g. ``Relation/vg/spatial.json`` from ``vg/``, ``Relation/swig_action.json``
  from ``swig/``, ``Attribute/vaw/color.json`` from ``vg/``: VAW's images are Visual Genome's).
* images: one folder holding ``vg/`` (``VG_100K/``, ``VG_100K_2/``), ``swig/`` and ``hake/`` (DATASETS.md);
  ``image_path`` is relative to the corpus's folder.

``root`` is a clone of the repository (holding ``data/``) or its ``data/`` folder itself. The authors'
loader silently skips records whose image is missing; here that is an error unless ``skip_missing=True``,
and then the dropped rows are counted. Their ``itc`` evaluation scores ``POS[0]`` against ``NEG[0]`` on the
first ``MAX_NUM / 2`` records of each file (``MAX_NUM: 2000`` in their sample config). Here ``POS[0]`` is
the true caption and every ``NEG`` a false one (the same, as each published record has one of each);
``limit`` makes the same cut; by default every record is used.

Subsets are the checklist's types (``"Relation/action"`` ... ``"Attribute/state"``), each pooling its
source files; ``item_id`` is ``"<source>:<record index in its file>"``. Paper B reports the mean over the
types of each group (Relation: action, spatial; Attribute: action, color, material, size, state).
"""

from __future__ import annotations

import numpy as np

from .items import BenchmarkError, ChoiceItem, ItemList
from .readers import folder, image_folders, keep_present, names, need_file, read_json, text

#: type -> source corpus -> (annotation file under ``data/``, image folder), as in the authors' corpus/v1
VL_CHECKLIST_FILES: dict[str, dict[str, tuple[str, str]]] = {
    "Relation/action": {"hake": ("Relation/hake_action.json", "hake"),
                        "swig": ("Relation/swig_action.json", "swig"),
                        "vg": ("Relation/vg/action.json", "vg")},
    "Relation/spatial": {"vg": ("Relation/vg/spatial.json", "vg")},
    **{f"Attribute/{kind}": {"vaw": (f"Attribute/vaw/{kind}.json", "vg"), "vg": (f"Attribute/vg/{kind}.json", "vg")}
       for kind in ("action", "color", "material", "size", "state")},
}
VL_CHECKLIST_SUBSETS = tuple(VL_CHECKLIST_FILES)
VL_CHECKLIST_RELATION = ("Relation/action", "Relation/spatial")
VL_CHECKLIST_ATTRIBUTE = tuple(s for s in VL_CHECKLIST_SUBSETS if s.startswith("Attribute/"))
VL_CHECKLIST_IMAGE_ROOTS = ("vg", "swig", "hake")
VL_CHECKLIST_SOURCES = ("vg", "vaw", "swig", "hake")


def vl_checklist_data(root):
    """The annotation folder: ``root/data`` when it exists (a clone of the repository), else ``root``."""
    root = folder(root, "VL-CheckList")
    return root / "data" if (root / "data").is_dir() else root


def _files(subsets, sources) -> dict[str, dict[str, tuple[str, str]]]:
    chosen = names(subsets, VL_CHECKLIST_SUBSETS, "VL-CheckList subset")
    keep = set(names(sources, VL_CHECKLIST_SOURCES, "VL-CheckList source"))
    files = {s: {src: f for src, f in VL_CHECKLIST_FILES[s].items() if src in keep} for s in chosen}
    empty = [s for s, f in files.items() if not f]
    if empty:
        raise BenchmarkError(f"VL-CheckList subsets {empty} have no file from sources {sorted(keep)}")
    return files


def check_vl_checklist(root, images) -> None:
    """The annotation files and the three image folders exist (no file is read)."""
    data = vl_checklist_data(root)
    if images is None:
        raise BenchmarkError("VL-CheckList needs its image folder too (holding vg/, swig/ and hake/)")
    image_folders(images, VL_CHECKLIST_IMAGE_ROOTS, "VL-CheckList")
    for per_source in VL_CHECKLIST_FILES.values():
        for path, _ in per_source.values():
            need_file(data / path, "VL-CheckList")


def _record(rec, where: str) -> tuple[str, str, tuple[str, ...]]:
    if not (isinstance(rec, list) and len(rec) == 2):
        raise BenchmarkError(f"{where} must be a pair [image_path, {{\"POS\": [...], \"NEG\": [...]}}], got "
                             f"{str(rec)[:80]}")
    path, captions = rec
    if not isinstance(captions, dict) or "POS" not in captions or "NEG" not in captions:
        raise BenchmarkError(f"{where} lacks fields POS / NEG (has {str(captions)[:80]})")
    pos, neg = captions["POS"], captions["NEG"]
    if not (isinstance(pos, list) and pos and isinstance(neg, list) and neg):
        raise BenchmarkError(f"{where}: POS and NEG must be non-empty lists of captions")
    return (text(path, f"{where} image path"), text(pos[0], f"{where} POS[0]"),
            tuple(text(c, f"{where} NEG") for c in neg))


def load_vl_checklist(root, images, subsets=VL_CHECKLIST_SUBSETS, sources=VL_CHECKLIST_SOURCES,
                      limit: int | None = None, skip_missing: bool = False) -> ItemList:
    """VL-CheckList's Relation / Attribute records as :class:`ChoiceItem` s (true: ``POS[0]``, false: ``NEG``).

    ``images``: the folder holding ``vg/``, ``swig/``, ``hake/``, or a mapping of those names to folders.
    ``sources`` keeps only some corpora (``vg``, ``vaw``, ``swig``, ``hake``); ``limit`` the first records of
    each file. ``skip_missing`` drops records whose image is missing (counted in the result's ``dropped``).
    """
    files = _files(subsets, sources)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1):
        raise BenchmarkError(f"limit must be a positive integer or None, got {limit!r}")
    data = vl_checklist_data(root)
    roots = sorted({r for per_source in files.values() for _, r in per_source.values()})
    folders = image_folders(images, roots, "VL-CheckList")
    records = {(s, src): read_json(data / path, f"VL-CheckList {s} ({src})")
               for s, per_source in files.items() for src, (path, _) in per_source.items()}
    items = []
    for (subset, source), recs in records.items():
        path, image_root = files[subset][source]
        if not isinstance(recs, list):
            raise BenchmarkError(f"VL-CheckList {subset} ({source}): {data / path} must hold a JSON list")
        for i, rec in enumerate(recs[:limit]):
            image, true, false = _record(rec, f"VL-CheckList {data / path} record {i}")
            items.append(ChoiceItem(item_id=f"{source}:{i}", subset=subset, image=folders[image_root] / image,
                                    true=true, false=false))
    return keep_present(items, lambda it: (it.image,), skip_missing, "VL-CheckList")
