"""DomainNet-layout folders as single-object reference images (paper A's COCO IOR), and merging them with scenes.

Layout (DomainNet, ai.bu.edu/M3SDA, one folder per domain after unzipping)::

    <root>/<domain>/<class folder>/<file>.jpg|.png     e.g. real/wine_glass/real_339_000001.jpg

Paper A measures image-based object retrieval on COCO with single-object reference images from
DomainNet. :func:`load_domainnet` reads such a folder as a ``SceneSet`` of single-object images
(kind ``"single"``, one object, caption "a X"), and :func:`merge_references` puts them beside COCO's
multi-object images so the retrieval probes see one dataset.

Rules chosen here:

* **Domains.** A domain folder is a sub-folder of ``root`` that itself has sub-folders (its class
  folders); hidden folders are ignored. ``domains`` picks some by name (a missing one raises, listing
  those present); None takes them all.
* **Class folders -> target classes.** Without ``classes`` every class folder is a class named by its
  normalised folder name: lower case, ``_`` and ``-`` read as spaces (``wine_glass`` -> ``wine glass``,
  ``teddy-bear`` -> ``teddy bear``, ``The_Eiffel_Tower`` -> ``the eiffel tower``). With ``classes``
  (a target vocabulary, e.g. COCO's 80 names) a folder maps to a target class by the first rule that
  applies, comparing normalised forms:

  1. *same name* (``airplane``, ``hot_dog`` -> "hot dog", ``wine_glass`` -> "wine glass",
     ``cell_phone`` -> "cell phone", ``teddy-bear`` -> "teddy bear");
  2. *the explicit table* :data:`DOMAINNET_FOLDERS` of known DomainNet/COCO name differences
     (``motorbike`` -> "motorcycle", ``television`` -> "tv", ``purse`` -> "handbag", ``house_plant``
     -> "potted plant", ``tennis_racquet`` -> "tennis racket", ``remote_control`` -> "remote",
     ``table`` -> "dining table", ``soccer_ball`` -> "sports ball");
  3. *a synonym* of the target in the COCO synonym table (``data/coco_synonyms.json``, see
     :func:`coco.load_synonyms`; ``synonyms={}`` turns this off), except the DomainNet names in
     :data:`NOT_SYNONYMS`, which name something else there (DomainNet's ``bat`` is the animal, not a
     baseball bat).

  A folder no rule maps is listed in ``meta["unmapped"]``; a target class without any folder in
  ``meta["missing_classes"]``. When several folders map to one class the best rule wins (same name,
  then table, then synonym; then the folder name's sort order) and the others are listed in
  ``meta["shadowed"]`` (DomainNet has ``cup``, ``mug`` and ``coffee_cup``: "cup" takes ``cup``).
  ``classes`` of the result is the target list, ``class_id`` its index, so the set merges with a
  COCO ``SceneSet`` by class id. (DomainNet's ``mouse`` is matched by name; whether a folder shows
  the animal or the device is not checked.)
* **Files.** ``*.jpg``, ``*.jpeg``, ``*.png`` (any case, hidden files ignored), sorted by name; the
  first ``per_class`` per (domain, class) are kept. ``image_id`` is ``<domain>/<folder>/<stem>``,
  ``path`` is relative to ``root``.
* **Sizes.** ``width`` and ``height`` come from each file's header (no decoding; a file whose header
  is not an image's raises, naming it). ``verify_images=True`` decodes every kept file, so a
  truncated one fails here, naming it, instead of in the middle of a probe.
* **Rows.** Objects: ``is_large`` False, ``size_rank`` 1, ``slot`` "", no box or area,
  ``caption_position`` 1. Captions: one per image, template ``"and"`` ("a wine glass").
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd
from PIL import Image, UnidentifiedImageError

from .captions import caption
from .coco import load_synonyms
from .tables import CAPTION_COLUMNS, IMAGE_COLUMNS, OBJECT_COLUMNS, DatasetError, SceneSet, open_image

#: COCO name -> the DomainNet class folder of the same thing where the two names differ beyond spelling
#: (case, ``_``/``-`` for spaces). Used both ways: the loader maps these folders to COCO names, the
#: stand-in exporter writes COCO classes under these folder names. Only true equivalents: COCO's "boat"
#: could be DomainNet's canoe, sailboat or speedboat, so it has none.
DOMAINNET_FOLDERS = {
    "motorcycle": "motorbike",
    "tv": "television",
    "handbag": "purse",
    "potted plant": "house_plant",
    "tennis racket": "tennis_racquet",
    "remote": "remote_control",
    "dining table": "table",
    "sports ball": "soccer_ball",
    "teddy bear": "teddy-bear",
}
#: DomainNet folder names that a COCO synonym would map but that name something else in DomainNet
NOT_SYNONYMS = frozenset({"bat"})
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
LAYOUT_HELP = ("expected the DomainNet layout <root>/<domain>/<class>/<image>.jpg (e.g. real/airplane/"
               "real_002_000001.jpg); unzip each domain's archive (real.zip, sketch.zip, ...) into <root>")
_RULES = ("name", "table", "synonym")


def folder_key(name: str) -> str:
    """The normalised form names are compared by: lower case, ``_`` and ``-`` as spaces, single spaces."""
    return " ".join(w for w in re.split(r"[\s_\-]+", name.lower()) if w)


def folder_name(class_name: str) -> str:
    """The DomainNet folder a class is stored under: :data:`DOMAINNET_FOLDERS`, else lower case with ``_``."""
    return DOMAINNET_FOLDERS.get(class_name, "_".join(class_name.lower().split()))


def _subdirs(folder: Path) -> list[Path]:
    return sorted(Path(e.path) for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def _image_files(folder: Path) -> list[Path]:
    return sorted(Path(e.path) for e in os.scandir(folder)
                  if e.is_file() and not e.name.startswith(".") and e.name.lower().endswith(IMAGE_SUFFIXES))


def domain_folders(root: str | Path, domains: Sequence[str] | None = None) -> list[Path]:
    """The domain folders to read below ``root`` (all, or those named); DatasetError says what is wrong."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"DomainNet folder {root} does not exist; {LAYOUT_HELP}")
    subdirs = _subdirs(root)
    found = {p.name: p for p in subdirs if _subdirs(p)}
    if not found:
        zips = sorted(p.name for p in root.glob("*.zip"))
        if zips:
            raise DatasetError(f"{root} holds {zips} but no unpacked domain folder; unzip them there. {LAYOUT_HELP}")
        if any(_image_files(p) for p in subdirs):
            raise DatasetError(f"{root} has no domain folders: its sub-folders hold images directly, so it looks like "
                               f"one domain folder; pass its parent. {LAYOUT_HELP}")
        raise DatasetError(f"{root} has no domain folders (a sub-folder holding class folders); {LAYOUT_HELP}")
    if domains is None:
        return list(found.values())
    if isinstance(domains, str):
        domains = [domains]
    missing = [d for d in domains if d not in found]
    if missing:
        raise DatasetError(f"DomainNet domain(s) {missing} not in {root}; present: {sorted(found)}")
    if len(set(domains)) != len(domains):
        raise DatasetError(f"domains {list(domains)} repeats a name")
    return [found[d] for d in domains]


def _synonym_keys(classes: Sequence[str], synonyms: Mapping[str, list[str]]) -> dict[str, str]:
    by_key = {folder_key(c): c for c in classes}
    out: dict[str, str] = {}
    for name, words in synonyms.items():
        target = by_key.get(folder_key(name))
        if target is None:
            continue
        for word in words:
            other = out.setdefault(folder_key(word), target)
            if other != target:
                raise DatasetError(f"the synonym {word!r} names both {other!r} and {target!r}; "
                                   "make the synonym table unambiguous")
    return out


def map_folders(folders: Sequence[str], classes: Sequence[str],
                synonyms: Mapping[str, list[str]] | str | Path | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """Folder name -> (target class, rule) for every folder a rule maps; see the module docstring.

    Returns ``(mapping, rule)``: the target class and the rule that matched ("name", "table", "synonym").
    """
    by_key = {folder_key(c): c for c in classes}
    table = {folder_key(dn): coco for coco, dn in DOMAINNET_FOLDERS.items() if folder_key(coco) in by_key}
    syn = _synonym_keys(classes, load_synonyms(synonyms))
    mapping: dict[str, str] = {}
    rule: dict[str, str] = {}
    for f in folders:
        k = folder_key(f)
        if k in by_key:
            mapping[f], rule[f] = by_key[k], "name"
        elif k in table:
            mapping[f], rule[f] = by_key[folder_key(table[k])], "table"
        elif k in syn and k not in NOT_SYNONYMS:
            mapping[f], rule[f] = syn[k], "synonym"
    return mapping, rule


def _size(path: Path, verify: bool) -> tuple[int, int]:
    if verify:
        return open_image(path).size
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DatasetError(f"image file {path} is not an image ({e})") from None


def load_domainnet(root: str | Path, classes: Sequence[str] | None = None, domains: Sequence[str] | None = None,
                   per_class: int | None = None, synonyms: Mapping[str, list[str]] | str | Path | None = None,
                   verify_images: bool = False) -> SceneSet:
    """Read a DomainNet-layout folder as single-object images (rules in the module docstring).

    ``classes``: a target vocabulary the class folders are mapped onto (None: every folder is a class);
    ``domains``: which domain folders (None: all); ``per_class``: at most this many files per domain and
    class (the first by name); ``synonyms``: the COCO synonym table (None: ``data/coco_synonyms.json``,
    ``{}``: none); ``verify_images``: decode every kept file.
    """
    root = Path(root)
    if per_class is not None and (isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1):
        raise DatasetError(f"per_class must be None or an integer >= 1, got {per_class!r}")
    if classes is not None:
        classes = list(classes)
        keys = [folder_key(c) for c in classes]
        if not classes or len(set(keys)) != len(keys):
            raise DatasetError(f"classes must be a non-empty list of distinct names, got {classes[:10]}")
    chosen = domain_folders(root, domains)
    folders = sorted({p.name for d in chosen for p in _subdirs(d)})
    if classes is None:
        classes = sorted({folder_key(f) for f in folders})
        mapping, rule = {f: folder_key(f) for f in folders}, dict.fromkeys(folders, "name")
    else:
        mapping, rule = map_folders(folders, classes, synonyms)
    # the best-ruled folder of each class wins; the others are shadowed
    winner: dict[str, str] = {}
    for f in sorted(mapping, key=lambda f: (_RULES.index(rule[f]), f)):
        winner.setdefault(mapping[f], f)
    used = set(winner.values())
    shadowed = {f: mapping[f] for f in sorted(mapping) if f not in used}
    class_ids = {c: i for i, c in enumerate(classes)}

    images, objects, captions = [], [], []
    for domain in chosen:
        for target, folder in sorted(winner.items(), key=lambda kv: class_ids[kv[0]]):
            path = domain / folder
            if not path.is_dir():
                continue
            files = _image_files(path)
            for file in files[:per_class] if per_class else files:
                image_id = f"{domain.name}/{folder}/{file.stem}"
                width, height = _size(file, verify_images)
                images.append((image_id, file.relative_to(root).as_posix(), "single", 1, width, height, ""))
                objects.append((image_id, 0, target, class_ids[target], False, 1, "",
                                *[float("nan")] * 5, "", 1))
                captions.append((image_id, "and", caption([target], "and"), target))
    if not images:
        if not mapping:
            raise DatasetError(f"no class folder under {root} maps to the {len(classes)} target classes "
                               f"(e.g. {classes[:5]}); folders found: {folders[:10]}")
        raise DatasetError(f"no image (*.jpg, *.jpeg, *.png) in the class folders of {[d.name for d in chosen]} "
                           f"under {root}; {LAYOUT_HELP}")
    image_table = pd.DataFrame(images, columns=IMAGE_COLUMNS)
    duplicated = image_table.image_id[image_table.image_id.duplicated()].tolist()
    if duplicated:
        raise DatasetError(f"{root}: image ids are not unique (files differing only in suffix?): {duplicated[:5]}")
    found_classes = {o[2] for o in objects}
    meta = {
        "source": "domainnet",
        "domains": [d.name for d in chosen],
        "per_class": per_class,
        "mapping": {f: target for target, f in sorted(winner.items(), key=lambda kv: kv[1])},
        "rules": {f: rule[f] for f in sorted(used)},
        "unmapped": [f for f in folders if f not in mapping],
        "shadowed": shadowed,
        "missing_classes": [c for c in classes if c not in found_classes],
        "sizes_verified": verify_images,
    }
    return SceneSet(
        root=root,
        classes=list(classes),
        images=image_table,
        objects=pd.DataFrame(objects, columns=OBJECT_COLUMNS),
        captions=pd.DataFrame(captions, columns=CAPTION_COLUMNS),
        meta=meta,
    )


def _absolute(frame: pd.DataFrame, root: Path) -> pd.DataFrame:
    frame = frame.copy()
    frame["path"] = [str((root / p).absolute()) for p in frame.path]
    return frame


def merge_references(scenes: SceneSet, refs: SceneSet) -> SceneSet:
    """One SceneSet: the multi-object images of ``scenes`` and the single-object images of ``refs``.

    For COCO's IOR with DomainNet references: ``refs`` should be loaded with ``classes=scenes.classes``;
    otherwise its classes are matched to ``scenes``' by name (one missing there raises). Image paths
    become absolute, so the result's ``root`` (that of ``scenes``) serves both: ``root / path`` is
    ``path``. ``meta`` keeps both sources' meta under ``scenes`` and ``references``.
    """
    multi, singles = scenes.multi(), refs.singles()
    if multi.images.empty:
        raise DatasetError("merge_references: the scenes have no multi-object image")
    if singles.images.empty:
        raise DatasetError("merge_references: the references have no single-object image")
    ref_objects = singles.objects.copy()
    if list(refs.classes) != list(scenes.classes):
        index = {c: i for i, c in enumerate(scenes.classes)}
        unknown = sorted(set(ref_objects.class_name) - set(index))
        if unknown:
            raise DatasetError(f"merge_references: reference classes {unknown[:5]} are not classes of the scenes; "
                               "load the references with classes=scenes.classes")
        ref_objects["class_id"] = ref_objects.class_name.map(index)
    images = pd.concat([_absolute(multi.images, multi.root), _absolute(singles.images, singles.root)],
                       ignore_index=True)
    clash = images.image_id[images.image_id.duplicated()].tolist()
    if clash:
        raise DatasetError(f"merge_references: image ids in both sets: {clash[:5]}")
    return SceneSet(
        root=scenes.root,
        classes=list(scenes.classes),
        images=images,
        objects=pd.concat([multi.objects, ref_objects], ignore_index=True),
        captions=pd.concat([multi.captions, singles.captions], ignore_index=True),
        meta={**scenes.meta, "scenes": dict(scenes.meta), "references": dict(refs.meta)},
    )
