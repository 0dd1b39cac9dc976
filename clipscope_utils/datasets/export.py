"""Generated scenes written in the layouts of the real datasets, so the real loaders can be proven on stand-ins.

No real data can be downloaded where the book is rehearsed, so its real-data code paths (the authors'
ComCO/SimCO release, COCO 2017, DomainNet, a rephrased-captions file) run on generated scenes exported
here in each real layout and read back by the real loaders (:mod:`official`, :mod:`coco`,
:mod:`domainnet`). The *contents* are generated scenes; only the layouts are the real ones.

Every exporter writes into a temporary folder beside ``out`` and renames it at the end (a failed export
leaves nothing at ``out``), returns ``out``, and writes ``<out>/export.json`` (:data:`REPORT_FILE`): the
layout, the counts written, the scenes skipped per reason, and which scene image each exported file
comes from. Skipped scenes are also announced with a warning: never silently. ``overwrite=True``
replaces only a folder an exporter wrote (one holding ``export.json``), never a real dataset.

* :func:`to_release` — the authors' release (``<out>/ComCo/CoCo-OneObject/<class>.png``,
  ``<out>/ComCo/CoCo-ThreeObject-BRBig/<c1>_<c2>_<c3>.png``; SimCO under ``SimCo/SimCo-...``). Skips
  scenes the release names cannot express: no large slot (layout "free"), objects not in the slot
  layout's reading order, a class without a single-object image, a file name already taken.
* :func:`to_coco` — COCO 2017 (``annotations/{captions,instances}_<split>.json``, JPEGs in ``<split>/``).
  Exports every image; skips nothing (an object without mask, box and area raises).
* :func:`to_domainnet` — DomainNet (``<out>/<domain>/<class folder>/<class folder>_<nnn>.jpg``) from the
  single-object images; skips classes without one.
* :func:`rephrasings` / :func:`to_rephrase_file` — a rule-based stand-in for the LLM rephraser.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections import Counter
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter, ImageOps

from ..paths import atomic_write
from .captions import TEMPLATES, caption, noun_phrase
from .coco import COCO_CATEGORY_IDS
from .domainnet import folder_name
from .official import FAMILIES as RELEASE_DIRS
from .official import COUNT_WORDS, big_position, slots_of
from .png import write_png
from .scenes import SLOT_LAYOUTS
from .tables import DatasetError, SceneSet, atomic_folder

REPORT_FILE = "export.json"
RELEASE_PREFIX = {"comco": "CoCo", "simco": "SimCo"}  # scene folder prefix per family (CoCo-ThreeObject-BRBig)
RELEASE_SLOT = {"UL": "UL", "UR": "UR", "BL": "BL", "BR": "BR", "M": "Middle", "Middle": "Middle"}
JPEG_QUALITY = 95
_ARTICLE = re.compile(r"^(a|an|the) \S")
_PHRASE = re.compile(r"^\w[\w' -]*(?<! )$")  # an object's words: no sentence punctuation
DOMAINNET_DOMAINS = ("real", "sketch", "clipart", "painting", "quickdraw", "infograph")
#: sentence patterns of the rule-based rephraser ({} = the objects' noun phrases, in the caption's order)
REPHRASE_PATTERNS = (
    "There is {} in this picture.",
    "This picture shows {}.",
    "In this image we can see {}.",
    "A photo showing {}.",
)


# -- shared ---------------------------------------------------------------------------------------
def _target(out: str | Path, overwrite: bool) -> Path:
    """``out``, refusing to replace anything but an earlier export."""
    out = Path(out)
    if out.exists() and overwrite and not (out / REPORT_FILE).is_file():
        raise DatasetError(f"{out} exists and was not written by an exporter (no {REPORT_FILE}); it is not replaced "
                           "even with overwrite=True: choose another folder or remove it yourself")
    return out


def _write_report(folder: Path, out: str | Path, report: dict) -> None:
    """``export.json`` into the export's temporary ``folder``; a warning when anything was skipped."""
    skipped = {k: v for k, v in report.get("skipped", {}).items() if v}
    report = {**report, "skipped": skipped}
    (folder / REPORT_FILE).write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    if skipped:
        warnings.warn(f"{report['layout']} export to {out}: skipped {sum(skipped.values())} item(s): {skipped} "
                      f"(listed in {REPORT_FILE})", stacklevel=3)


def export_report(out: str | Path) -> dict:
    """The ``export.json`` an exporter wrote into ``out``: layout, counts, skipped scenes, file -> scene image."""
    path = Path(out) / REPORT_FILE
    if not path.is_file():
        raise DatasetError(f"{out} holds no {REPORT_FILE}: not written by clipscope_utils.datasets.export")
    return json.loads(path.read_text())


def _resized(im: Image.Image, size: int | None) -> Image.Image:
    if size is None or im.size == (size, size):
        return im
    return im.resize((size, size), Image.Resampling.BICUBIC)


def _check_size(image_size: int | None) -> None:
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int)
                                   or not 16 <= image_size <= 4096):
        raise DatasetError(f"image_size must be None or an integer in 16..4096, got {image_size!r}")


def _ordered_objects(scenes: SceneSet) -> dict[str, pd.DataFrame]:
    objs = scenes.objects.sort_values(["image_id", "object_index"], kind="stable")
    return {k: g for k, g in objs.groupby("image_id", sort=False)}


def _first_singles(scenes: SceneSet) -> dict[str, list[str]]:
    """Class name -> its single-object images, the largest object first (then by image id)."""
    singles = scenes.singles()
    objs = singles.objects.assign(area=pd.to_numeric(singles.objects.area_px).fillna(0))
    objs = objs.sort_values(["class_name", "area", "image_id"], ascending=[True, False, True], kind="stable")
    return {c: list(g.image_id) for c, g in objs.groupby("class_name", sort=False)}


# -- the authors' release -------------------------------------------------------------------------
def release_folder(family: str, n: int, large_slot: str = "") -> str:
    """Scene folder name of the release: ``CoCo-OneObject``, ``CoCo-ThreeObject-BRBig``, ``CoCo-FourObject-Middle-Big``."""
    word = {v: k for k, v in COUNT_WORDS.items()}[n].title()
    name = f"{RELEASE_PREFIX[family]}-{word}Object"
    if not large_slot:
        return name
    code = RELEASE_SLOT[large_slot]
    return f"{name}-{code}-Big" if code == "Middle" else f"{name}-{code}Big"


def _release_reason(objs: pd.DataFrame, large_slot: str, has_single: set[str]) -> str:
    """Why a multi-object scene cannot be written as a release file ("" if it can)."""
    n = len(objs)
    if large_slot not in RELEASE_SLOT:
        return "no large slot (layout 'free')" if not large_slot else f"large slot {large_slot!r} not a release slot"
    if n not in COUNT_WORDS.values():
        return f"{n} objects (the release names 1..{max(COUNT_WORDS.values())})"
    if n == 1:
        return "one-object scene (the release's one-object folder holds the class references)"
    large = np.flatnonzero(objs.is_large.astype(bool).to_numpy())
    if len(large) != 1:
        return "not exactly one large object"
    code = RELEASE_SLOT[large_slot]
    try:
        position = big_position(code, n)
    except DatasetError:
        return f"large slot {large_slot!r} does not exist with {n} objects"
    slots = list(objs.slot.astype(str))
    reading_order = (n in SLOT_LAYOUTS and slots == list(SLOT_LAYOUTS[n])) or slots == slots_of(code, n)
    if not reading_order or large[0] != position or slots[position] != large_slot:
        return "slots not in the release's reading order"
    if not set(objs.class_name) <= has_single:
        return "a class without a single-object image"
    return ""


def to_release(scenes: SceneSet, out: str | Path, family: str | None = None, image_size: int | None = 512,
               overwrite: bool = False) -> Path:
    """Write ``scenes`` in the layout of the authors' ComCO / SimCO release (``official.py`` reads it back).

    ``<out>/ComCo/CoCo-OneObject/<class>.png`` holds one single-object image per class (its largest);
    each multi-object scene becomes ``<out>/ComCo/CoCo-<Count>Object-<Slot>Big/<c1>_<c2>_..png`` with
    the classes in slot (reading) order and the folder naming the large object's slot, so
    :func:`official.load_official` gives back each position's class and the large object. ``family``:
    "comco" / "simco" (None: the scenes' own, else comco) picks ``ComCo/CoCo-`` or ``SimCo/SimCo-``.
    Images are resized to ``image_size`` (the release is 512 px; None keeps them). Skipped scenes (see
    the module docstring) are counted in ``export.json`` and warned about.
    """
    family = (family or scenes.meta.get("family") or "comco").lower()
    if family not in RELEASE_PREFIX:
        raise DatasetError(f"unknown family {family!r}; allowed: {sorted(RELEASE_PREFIX)}")
    _check_size(image_size)
    bad = [c for c in scenes.classes if "/" in c or "\\" in c or c.startswith(".") or not c.strip()]
    if bad:
        raise DatasetError(f"class names {bad} cannot be file names of the release")
    singles = _first_singles(scenes)
    objects = _ordered_objects(scenes)
    data_dir = RELEASE_DIRS[family]
    skipped: Counter = Counter()
    examples: dict[str, list[str]] = {}
    files: dict[str, str] = {}  # release path -> scene image id
    with atomic_folder(_target(out, overwrite), overwrite=overwrite) as tmp:
        def write(image_id: str, folder: str, stem: str) -> None:
            path = tmp / data_dir / folder / f"{stem}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_png(path, np.asarray(_resized(scenes.image(image_id), image_size)))
            files[path.relative_to(tmp).as_posix()] = image_id

        for cls in scenes.classes:
            if cls in singles:
                write(singles[cls][0], release_folder(family, 1), cls)
        multi = scenes.images[scenes.images.kind == "multi"]
        for image_id, large_slot in zip(multi.image_id, multi.large_slot.fillna("").astype(str)):
            objs = objects.get(image_id)
            reason = "no objects" if objs is None else _release_reason(objs, large_slot, set(singles))
            if not reason:
                folder, stem = release_folder(family, len(objs), large_slot), "_".join(objs.class_name)
                if f"{data_dir}/{folder}/{stem}.png" in files:
                    reason = "file name taken by an earlier scene (same classes, order and large slot)"
                else:
                    write(image_id, folder, stem)
            if reason:
                skipped[reason] += 1
                examples.setdefault(reason, []).append(image_id)
        _write_report(tmp, out, {
            "layout": "release", "family": family, "image_size": image_size,
            "written": {"single": sum(1 for f in files if "-OneObject/" in f),
                        "multi": sum(1 for f in files if "-OneObject/" not in f)},
            "skipped": dict(skipped), "skipped_images": examples, "files": files,
        })
    return Path(out)


# -- COCO 2017 ------------------------------------------------------------------------------------
def _category_ids(classes: Sequence[str]) -> dict[str, int]:
    """COCO's own ids when every class is a COCO category, else 1..K in class order."""
    coco = {name: cid for cid, name in COCO_CATEGORY_IDS.items()}
    if all(c in coco for c in classes):
        return {c: coco[c] for c in classes}
    return {c: i + 1 for i, c in enumerate(classes)}


def _rle(mask: np.ndarray) -> dict:
    """Uncompressed COCO RLE of a boolean mask: run lengths in column-major order, starting with background."""
    flat = mask.T.ravel()
    bounds = np.concatenate([[0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [flat.size]])
    counts = np.diff(bounds).tolist() if flat.size else []
    if flat.size and flat[0]:
        counts = [0, *counts]
    return {"counts": [int(c) for c in counts], "size": [int(mask.shape[0]), int(mask.shape[1])]}


def caption_variants(names: Sequence[str], own: Sequence[str], k: int) -> list[str]:
    """``k`` captions naming ``names`` (class names, caption order): ``own`` first, then other templates, the
    rephrasing patterns, then the same with other orders (reversed, rotations); repeated if fewer exist."""
    orders = [list(names), list(reversed(names))] + [list(names[i:]) + list(names[:i]) for i in range(1, len(names))]
    out: list[str] = []
    for text in own:
        if text not in out:
            out.append(text)
    for order in orders:
        nps = [noun_phrase(n) for n in order]
        for text in [caption(order, t) for t in sorted(TEMPLATES)] + [p.format(_listing(nps)) for p in REPHRASE_PATTERNS]:
            if text not in out:
                out.append(text)
    return [out[i % len(out)] for i in range(k)]


def _annotation(mask: np.ndarray | None, box: Sequence[float], area: float, sx: float, sy: float,
                image_id: str, k: int) -> tuple[list[float], float, dict | None]:
    """bbox [x, y, w, h], area and segmentation of object ``k`` in output pixels."""
    region = mask == k + 1 if mask is not None else None
    if region is not None and region.any():
        px_area = float(region.sum())
        if np.isfinite(box).all():
            x0, y0, x1, y1 = box
            bbox = [x0 * sx, y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy]
        else:
            ys, xs = np.nonzero(region)
            bbox = [float(xs.min()), float(ys.min()), float(xs.max() + 1 - xs.min()), float(ys.max() + 1 - ys.min())]
        return [float(v) for v in bbox], px_area, _rle(region)
    if np.isfinite(box).all() and np.isfinite(area):
        x0, y0, x1, y1 = box
        return [float(x0 * sx), float(y0 * sy), float((x1 - x0) * sx), float((y1 - y0) * sy)], float(area * sx * sy), None
    raise DatasetError(f"to_coco: object {k} of image {image_id!r} has no mask, box or area (COCO needs them; "
                       "export generated scenes, which store masks)")


def to_coco(scenes: SceneSet, out: str | Path, split: str = "val2017", captions_per_image: int = 5,
            image_size: int | None = None, overwrite: bool = False) -> Path:
    """Write ``scenes`` in the COCO 2017 layout (``coco.load_coco`` reads it back).

    ``annotations/instances_<split>.json``: images (ids 1..N in table order, ``<id:012d>.jpg``), one
    annotation per object (bbox ``[x, y, w, h]`` from the object's box, ``area`` = its mask's pixel
    count, ``segmentation`` = its mask as uncompressed RLE, ``iscrowd`` 0), categories (COCO's ids
    when every class is a COCO name, else 1..K). ``annotations/captions_<split>.json``: per image
    ``captions_per_image`` captions, the scene's own first (so load_coco's reference caption, the
    first by id, gives the scene's caption positions), then deterministic variants naming the objects
    by class name (:func:`caption_variants`). JPEGs in ``<split>/``, resized to ``image_size`` (None
    keeps them); masks are resized with nearest neighbours, so areas are those of the written image.
    """
    _check_size(image_size)
    if not isinstance(captions_per_image, int) or captions_per_image < 1:
        raise DatasetError(f"captions_per_image must be an integer >= 1, got {captions_per_image!r}")
    if not split or "/" in split:
        raise DatasetError(f"split must be a folder name like 'val2017', got {split!r}")
    cat_ids = _category_ids(scenes.classes)
    objects = _ordered_objects(scenes)
    captions = {k: list(g.text) for k, g in scenes.captions.groupby("image_id", sort=False)}
    orders = {k: g.order.iloc[0].split("|") for k, g in scenes.captions.groupby("image_id", sort=False)}
    info = {"description": "clipscope stand-in: generated scenes in the COCO 2017 layout", "version": "1.0",
            "year": 2017, "contributor": "clipscope_utils.datasets.export", "date_created": "2017/09/01"}
    licenses = [{"id": 1, "name": "generated", "url": ""}]
    images, annotations, caption_rows, files = [], [], [], {}
    with atomic_folder(_target(out, overwrite), overwrite=overwrite) as tmp:
        (tmp / "annotations").mkdir()
        (tmp / split).mkdir()
        for coco_id, image_id in enumerate(scenes.images.image_id, start=1):
            im = scenes.image(image_id)
            size = (image_size, image_size) if image_size else im.size
            sx, sy = size[0] / im.size[0], size[1] / im.size[1]
            name = f"{coco_id:012d}.jpg"
            (im if im.size == size else im.resize(size, Image.Resampling.BICUBIC)).save(
                tmp / split / name, quality=JPEG_QUALITY)
            files[name] = image_id
            images.append({"id": coco_id, "file_name": name, "width": size[0], "height": size[1], "license": 1,
                           "coco_url": "", "flickr_url": "", "date_captured": ""})
            try:
                mask = scenes.mask(image_id)
                if mask.shape[::-1] != size:
                    mask = np.asarray(Image.fromarray(mask).resize(size, Image.Resampling.NEAREST))
            except DatasetError:
                mask = None
            objs = objects.get(image_id)
            for k, row in enumerate(objs.itertuples() if objs is not None else []):
                box = np.array([row.x0, row.y0, row.x1, row.y1], dtype=float)
                bbox, area, seg = _annotation(mask, box, float(row.area_px), sx, sy, image_id, int(row.object_index))
                ann = {"id": len(annotations) + 1, "image_id": coco_id, "category_id": cat_ids[row.class_name],
                       "bbox": bbox, "area": area, "iscrowd": 0}
                if seg is not None:
                    ann["segmentation"] = seg
                annotations.append(ann)
            names = orders.get(image_id) or ([] if objs is None else list(objs.class_name))
            if names:
                for text in caption_variants(names, captions.get(image_id, []), captions_per_image):
                    caption_rows.append({"id": len(caption_rows) + 1, "image_id": coco_id, "caption": text})
        categories = [{"id": cid, "name": c, "supercategory": scenes.meta.get("family", "object") or "object"}
                      for c, cid in sorted(cat_ids.items(), key=lambda kv: kv[1])]
        for name, data in ((f"instances_{split}.json", {"info": info, "licenses": licenses, "images": images,
                                                         "annotations": annotations, "categories": categories}),
                           (f"captions_{split}.json", {"info": info, "licenses": licenses, "images": images,
                                                        "annotations": caption_rows})):
            (tmp / "annotations" / name).write_text(json.dumps(data))
        _write_report(tmp, out, {"layout": "coco", "split": split, "image_size": image_size,
                            "captions_per_image": captions_per_image,
                            "written": {"images": len(images), "annotations": len(annotations),
                                        "captions": len(caption_rows)},
                            "skipped": {}, "files": files})
    return Path(out)


# -- DomainNet ------------------------------------------------------------------------------------
def _style(im: Image.Image, domain: str) -> Image.Image:
    """A crude look of each DomainNet domain (the point is the layout, not the look)."""
    if domain in ("sketch", "quickdraw"):
        edges = ImageOps.invert(ImageOps.grayscale(im).filter(ImageFilter.FIND_EDGES))
        edges = ImageOps.autocontrast(edges)
        if domain == "quickdraw":
            edges = edges.point(lambda v: 255 if v > 200 else 0)
        return edges.convert("RGB")
    if domain == "clipart":
        return ImageOps.posterize(im, 3)
    if domain == "painting":
        return im.filter(ImageFilter.SMOOTH_MORE).filter(ImageFilter.EDGE_ENHANCE)
    if domain == "infograph":
        return ImageOps.expand(im.resize((im.width * 3 // 4, im.height * 3 // 4)), border=im.width // 8, fill="#dde8f0")
    return im


_VARIANTS = (lambda im: im, ImageOps.mirror, ImageOps.flip, lambda im: im.rotate(90), lambda im: im.rotate(270))


def to_domainnet(scenes: SceneSet, out: str | Path, domains: Sequence[str] = ("real", "sketch"), per_class: int = 2,
                 image_size: int | None = None, overwrite: bool = False) -> Path:
    """Write the single-object images of ``scenes`` in the DomainNet layout (``domainnet.load_domainnet`` reads it).

    ``<out>/<domain>/<folder>/<folder>_<nnn>.jpg``, ``per_class`` files per class and domain; ``<folder>``
    is DomainNet's name (:func:`domainnet.folder_name`: lower case, ``_`` for spaces, DomainNet's own
    word where it differs, e.g. ``motorbike``, ``television``, ``teddy-bear``). File ``k`` of a class is its
    single image ``k mod m`` (``m`` of them, largest object first), mirrored / flipped / rotated when
    ``k >= m``, in the domain's crude look (sketch: edges; real: as is). Classes without a single-object
    image are skipped and counted.
    """
    _check_size(image_size)
    domains = [domains] if isinstance(domains, str) else list(domains)
    unknown = [d for d in domains if d not in DOMAINNET_DOMAINS]
    if not domains or unknown or len(set(domains)) != len(domains):
        raise DatasetError(f"domains must be distinct DomainNet domains {list(DOMAINNET_DOMAINS)}, got {domains}")
    if isinstance(per_class, bool) or not isinstance(per_class, int) or not 1 <= per_class <= 999:
        raise DatasetError(f"per_class must be an integer in 1..999, got {per_class!r}")
    singles = _first_singles(scenes)
    folders = {c: folder_name(c) for c in scenes.classes}
    clash = [f for f, n in Counter(folders.values()).items() if n > 1]
    if clash:
        raise DatasetError(f"classes share the DomainNet folders {clash}")
    files: dict[str, str] = {}
    missing = [c for c in scenes.classes if c not in singles]
    with atomic_folder(_target(out, overwrite), overwrite=overwrite) as tmp:
        for cls in scenes.classes:
            ids = singles.get(cls, [])
            if not ids:
                continue
            base = {i: _resized(scenes.image(i), image_size) for i in ids}
            for k in range(per_class):
                im = _VARIANTS[(k // len(ids)) % len(_VARIANTS)](base[ids[k % len(ids)]])
                for domain in domains:
                    path = tmp / domain / folders[cls] / f"{folders[cls]}_{k + 1:03d}.jpg"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    _style(im, domain).save(path, quality=JPEG_QUALITY)
                    files[path.relative_to(tmp).as_posix()] = ids[k % len(ids)]
        _write_report(tmp, out, {"layout": "domainnet", "domains": domains, "per_class": per_class,
                            "image_size": image_size, "folders": folders,
                            "written": {"images": len(files), "classes": len(scenes.classes) - len(missing)},
                            "skipped": {"class without a single-object image": len(missing)},
                            "skipped_images": {"class without a single-object image": missing} if missing else {},
                            "files": files})
    return Path(out)


# -- rephrasings ----------------------------------------------------------------------------------
def _listing(nps: Sequence[str]) -> str:
    return nps[0] if len(nps) == 1 else ", ".join(nps[:-1]) + " and " + nps[-1]


def _template_parts(template: str) -> tuple[str, str, str, str]:
    """(prefix, suffix, separator, last separator) of a caption template, read off captions of sentinel names."""
    render = TEMPLATES[template]
    prefix, suffix = render(["\0"]).split("\0")

    def body(n: int) -> str:
        text = render([chr(i) for i in range(n)])
        return text[len(prefix):len(text) - len(suffix)]

    two, three = body(2), body(3)
    return prefix, suffix, three[1:three.index("\1")], two[1:two.index("\1")]


def noun_phrases(text: str) -> list[str] | None:
    """The objects of a caption built by :func:`captions.caption` (any template) as noun phrases, in order; None if
    the text is no such caption. Templates with the longest fixed words are tried first; bare class names
    ("cat and dog") get their article (:func:`captions.noun_phrase`). Phrases are words only (letters, digits,
    spaces, ``'``, ``-``), so a sentence with punctuation is no caption; a bare phrase is not checked against
    any vocabulary."""
    parts = {t: _template_parts(t) for t in TEMPLATES}
    for template in sorted(TEMPLATES, key=lambda t: (-len(parts[t][0]) - len(parts[t][1]), t)):
        prefix, suffix, sep, last = parts[template]
        if not (text.startswith(prefix) and text.endswith(suffix)) or len(text) <= len(prefix) + len(suffix):
            continue
        body = text[len(prefix):len(text) - len(suffix)]
        head, found, tail = body.rpartition(last)
        phrases = (head.split(sep) + [tail]) if found else [body]
        if not all(_PHRASE.match(p) for p in phrases) or TEMPLATES[template](phrases) != text:
            continue
        if all(_ARTICLE.match(p) for p in phrases):
            return phrases
        return [noun_phrase(p) for p in phrases]
    return None


def rephrasings(texts: Iterable[str], seed: int = 0) -> dict[str, str]:
    """A deterministic, rule-based STAND-IN for paper A's LLM rephrasing: ``{caption: rephrased caption}``.

    Paper A rephrased COCO captions with GPT-4o; a real rephrase file is that model's output, a JSON
    object mapping each template caption to a free rephrasing of it, e.g. ``{"a cat and a dog and a
    cow": "A cat sits beside a dog while a cow grazes nearby."}`` — the wording varies, objects may be
    reordered or described. This stand-in only exercises the file's path through the book: each caption
    made by :func:`captions.caption` (any template) is cut into its noun phrases and put, in the same
    order, into one of :data:`REPHRASE_PATTERNS` ("a X and a Y and a Z" -> "There is a X, a Y and a Z
    in this picture."), the pattern chosen by a hash of ``seed`` and the text (the same on every
    machine). A text that is not such a caption raises DatasetError naming it.
    """
    out: dict[str, str] = {}
    for text in texts:
        nps = noun_phrases(text)
        if nps is None:
            raise DatasetError(f"rephrasings: {text!r} is not a caption of the templates {sorted(TEMPLATES)}; the "
                               "rule-based stand-in rephrases only those (a real rephrase file comes from an LLM)")
        digest = hashlib.sha256(f"{seed}\0{text}".encode()).digest()
        pattern = REPHRASE_PATTERNS[int.from_bytes(digest[:4], "big") % len(REPHRASE_PATTERNS)]
        out[text] = pattern.format(_listing(nps))
    return out


def to_rephrase_file(mapping: Mapping[str, str], path: str | Path) -> Path:
    """Write ``{caption: rephrasing}`` as one JSON object (atomically), the form a ``rephrase_file`` parameter reads."""
    if not isinstance(mapping, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
        raise DatasetError("a rephrase file maps caption strings to rephrased strings")
    payload = (json.dumps(dict(mapping), indent=1, ensure_ascii=False) + "\n").encode("utf-8")
    atomic_write(Path(path), lambda f: f.write(payload))
    return Path(path)
