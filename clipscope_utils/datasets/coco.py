"""COCO 2017 (captions + instances) as a ``SceneSet``: each image's annotated objects, their sizes,
and the order in which its captions mention them (paper A's real-image check of both biases).

Official layout::

    <root>/annotations/captions_<split>.json     {"annotations": [{"image_id", "caption", ...}], ...}
    <root>/annotations/instances_<split>.json    {"images": [...], "annotations": [...], "categories": [...]}
    <root>/<split>/<file_name>                   the images

Rules chosen here:

* **Mentions.** A caption mentions a category when the category name, one of its synonyms
  (``data/coco_synonyms.json``) or a regular plural of either (+s; +es after s/x/z/ch/sh/o;
  y -> ies) occurs as a whole word, case-insensitively, with spaces and hyphens interchangeable
  inside multi-word names ("hot dog", "hot-dog"). Never a substring: "car" does not match "carrot",
  "cart" or "scar". Captions are matched against the *whole* category vocabulary, leftmost match
  first and the longest term at a position winning, and only then restricted to the image's
  annotated categories, so "hot dog" never counts as a mention of dog even when only dog is
  annotated. The order of mention is the order of first occurrence.
* **Objects.** One row per annotated category of the image. Its largest instance (non-crowd
  instances preferred) gives ``area_px`` (the annotation's ``area``) and the box
  (x0 = floor(x), y0 = floor(y), x1 = ceil(x + w), y1 = ceil(y + h), x1/y1 exclusive).
  ``size_rank`` ranks those areas within the image (1 = largest, ties share a rank), ``is_large``
  is rank 1, ``object_index`` follows size order (then category id), ``slot`` is "".
* **Reference caption.** ``objects.caption_position`` refers to one caption per image: the first
  caption (by annotation id) mentioning at least ``max(min_mentions, 1)`` annotated categories, else
  the image's first caption. It is the image's *first row* in the captions table; the other
  captions follow in annotation id order (template ``"coco"``, ``order`` = mentioned classes).
* **Kept images.** An image is kept when one caption mentions at least ``min_mentions`` distinct
  annotated categories (default 2, what paper A's multi-object probes need; 0 keeps every image).
  ``max_images`` then keeps the first ones by COCO image id. ``kind`` is "multi" for images with
  at least two annotated categories, else "single".
* **Image files.** Every kept image's file must exist in the image folder (checked with one stat per
  file before anything is built); missing ones raise one DatasetError naming how many, the first few
  and the folder. Files are not decoded here.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from ..paths import data_file
from .tables import CAPTION_COLUMNS, IMAGE_COLUMNS, OBJECT_COLUMNS, DatasetError, SceneSet, read_json

SYNONYMS_FILE = data_file("coco_synonyms.json")
TEMPLATE = "coco"
LAYOUT_HELP = (
    "expected the COCO 2017 layout: <root>/annotations/captions_<split>.json, "
    "<root>/annotations/instances_<split>.json and images in <root>/<split>/"
)
#: the 80 COCO 2017 category names by their official ids (ids 12, 26, 29, 30, 45, 66, 68, 69, 71, 83 are unused)
COCO_CATEGORY_IDS = {
    1: "person", 2: "bicycle", 3: "car", 4: "motorcycle", 5: "airplane", 6: "bus", 7: "train", 8: "truck",
    9: "boat", 10: "traffic light", 11: "fire hydrant", 13: "stop sign", 14: "parking meter", 15: "bench",
    16: "bird", 17: "cat", 18: "dog", 19: "horse", 20: "sheep", 21: "cow", 22: "elephant", 23: "bear",
    24: "zebra", 25: "giraffe", 27: "backpack", 28: "umbrella", 31: "handbag", 32: "tie", 33: "suitcase",
    34: "frisbee", 35: "skis", 36: "snowboard", 37: "sports ball", 38: "kite", 39: "baseball bat",
    40: "baseball glove", 41: "skateboard", 42: "surfboard", 43: "tennis racket", 44: "bottle", 46: "wine glass",
    47: "cup", 48: "fork", 49: "knife", 50: "spoon", 51: "bowl", 52: "banana", 53: "apple", 54: "sandwich",
    55: "orange", 56: "broccoli", 57: "carrot", 58: "hot dog", 59: "pizza", 60: "donut", 61: "cake", 62: "chair",
    63: "couch", 64: "potted plant", 65: "bed", 67: "dining table", 70: "toilet", 72: "tv", 73: "laptop",
    74: "mouse", 75: "remote", 76: "keyboard", 77: "cell phone", 78: "microwave", 79: "oven", 80: "toaster",
    81: "sink", 82: "refrigerator", 84: "book", 85: "clock", 86: "vase", 87: "scissors", 88: "teddy bear",
    89: "hair drier", 90: "toothbrush",
}
MISSING_SHOWN = 5  # missing image files named in the error
# the keys every record of each section must have, per file kind
REQUIRED = {
    "captions": {"annotations": ("image_id", "caption")},
    "instances": {
        "images": ("id", "file_name", "width", "height"),
        "annotations": ("image_id", "category_id", "area", "bbox"),
        "categories": ("id", "name"),
    },
}


@dataclass(frozen=True)
class CocoFiles:
    """The two annotation files and the image folder of one split."""

    captions: Path
    instances: Path
    images: Path


def coco_files(root: str | Path | None, split: str, captions_file: str | Path | None = None,
               instances_file: str | Path | None = None, images_dir: str | Path | None = None) -> CocoFiles:
    """Resolve explicit paths or the official layout under ``root``; missing ones raise now."""
    def pick(explicit: str | Path | None, default: str) -> Path:
        if explicit is not None:
            return Path(explicit)
        if root is None:
            raise DatasetError(
                f"pass root (the COCO folder) or captions_file, instances_file and images_dir; {LAYOUT_HELP}"
            )
        return Path(root) / default

    files = CocoFiles(
        pick(captions_file, f"annotations/captions_{split}.json"),
        pick(instances_file, f"annotations/instances_{split}.json"),
        pick(images_dir, split),
    )
    for path in (files.captions, files.instances):
        if not path.is_file():
            raise DatasetError(f"COCO annotation file {path} is missing; {LAYOUT_HELP}")
    if not files.images.is_dir():
        raise DatasetError(f"COCO image folder {files.images} is missing; {LAYOUT_HELP}")
    return files


def read_annotations(path: Path, kind: str) -> dict:
    """Parse a COCO JSON file and check that every needed key is there, naming the file and key if not."""
    data = read_json(path)
    required = REQUIRED[kind]
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object with the keys {sorted(required)}")
    for section, keys in required.items():
        if section not in data:
            raise DatasetError(f"{path} lacks the key {section!r} (a COCO {kind} file has {sorted(required)})")
        records = data[section]
        if not isinstance(records, list):
            raise DatasetError(f"{path}: {section!r} must be a list of records")
        for i, record in enumerate(records):
            missing = [k for k in keys if not isinstance(record, dict) or k not in record]
            if missing:
                raise DatasetError(f"{path}: {section}[{i}] lacks the key {missing[0]!r} (each needs {list(keys)})")
    return data


# -- mentions -------------------------------------------------------------------------------------
def load_synonyms(synonyms: Mapping[str, list[str]] | str | Path | None = None) -> dict[str, list[str]]:
    """The synonym table: a mapping, a JSON file, or None for ``data/coco_synonyms.json`` (``_`` keys are comments)."""
    if synonyms is None or isinstance(synonyms, (str, Path)):
        path = Path(synonyms) if synonyms is not None else SYNONYMS_FILE
        synonyms = read_json(path, "synonym file", " (pass synonyms={} to match category names only)")
    if not isinstance(synonyms, Mapping):
        raise DatasetError("synonyms must map a category name to a list of words")
    table = {k: v for k, v in synonyms.items() if not str(k).startswith("_")}
    bad = [k for k, v in table.items()
           if not isinstance(v, list) or not all(isinstance(w, str) and w.strip() for w in v)]
    if bad:
        raise DatasetError(f"synonyms of {bad} must be lists of non-empty words")
    return table


_TOKEN = re.compile(r"\w+")
_GAP = re.compile(r"[\s-]+")  # what may separate the words of a multi-word name in a caption


def normalise(text: str) -> str:
    """Lower-case words joined by one space ("Hot-Dog" -> "hot dog"): the key a phrase is looked up by."""
    return " ".join(_TOKEN.findall(text.lower()))


def plurals(term: str) -> list[str]:
    """Regular plurals of the last word: +s; +es after s/x/z/ch/sh/o; consonant+y -> ies."""
    head, _, last = term.rpartition(" ")
    forms = [last + "s"]
    if last.endswith(("s", "x", "z", "ch", "sh", "o")):
        forms.append(last + "es")
    if len(last) > 1 and last.endswith("y") and last[-2] not in "aeiou":
        forms.append(last[:-1] + "ies")
    return [f"{head} {f}" if head else f for f in forms]


def mention_terms(categories: Mapping[int, str], synonyms: Mapping[str, list[str]]) -> dict[str, int]:
    """Every word form naming a category -> its id; a form naming two categories raises (ambiguous)."""
    terms: dict[str, int] = {}
    for cid, name in categories.items():
        for word in (name, *synonyms.get(name, [])):
            base = normalise(word)
            for form in (base, *plurals(base)):
                other = terms.setdefault(form, cid)
                if other != cid:
                    raise DatasetError(
                        f"the word {form!r} names both {categories[other]!r} and {name!r}; "
                        "make the synonym table unambiguous"
                    )
    return terms


class MentionFinder:
    """Category ids a text mentions, in order of first occurrence.

    The text is cut into words (``\\w+``); at each word the longest known term starting there wins
    (a multi-word term only across spaces or hyphens) and matching resumes after it. A dictionary
    look-up per word keeps this fast on the 600k captions of train2017.
    """

    def __init__(self, terms: Mapping[str, int]):
        self.terms = dict(terms)
        self.max_words = max((t.count(" ") + 1 for t in self.terms), default=1)
        self.starts = {t.split(" ")[0] for t in self.terms if " " in t}  # words a multi-word term begins with

    def _joinable(self, text: str, words: list[re.Match], i: int, k: int) -> bool:
        return all(_GAP.fullmatch(text, words[j].end(), words[j + 1].start()) for j in range(i, i + k - 1))

    def __call__(self, text: str) -> list[int]:
        words = list(_TOKEN.finditer(text))
        lower = [w.group().lower() for w in words]
        found: list[int] = []
        i = 0
        while i < len(words):
            step = 1
            longest = min(self.max_words, len(words) - i) if lower[i] in self.starts else 1
            for k in range(longest, 0, -1):
                cid = self.terms.get(" ".join(lower[i:i + k]))
                if cid is not None and self._joinable(text, words, i, k):
                    if cid not in found:
                        found.append(cid)
                    step = k
                    break
            i += step
        return found


# -- tables ---------------------------------------------------------------------------------------
def _categories(data: dict, path: Path) -> dict[int, str]:
    cats = {int(c["id"]): str(c["name"]) for c in data["categories"]}
    if len(set(cats.values())) != len(cats):
        raise DatasetError(f"{path}: category names are not unique")
    return dict(sorted(cats.items()))


def largest_instances(data: dict, path: Path, categories: Mapping[int, str]) -> pd.DataFrame:
    """One row per (image, category): the largest instance's area and box, its size rank and object index."""
    cols = ["id", "image_id", "category_id", "area", "bbox", "iscrowd"]
    ann = pd.DataFrame([{k: a.get(k, i if k == "id" else 0) for k in cols} for i, a in enumerate(data["annotations"])],
                       columns=cols)
    unknown = sorted(set(ann.category_id) - set(categories))
    if unknown:
        raise DatasetError(f"{path}: annotations use category ids {unknown[:5]} missing from 'categories'")
    try:
        box = np.array(ann.bbox.tolist(), dtype=float).reshape(len(ann), 4)
    except (ValueError, TypeError):
        raise DatasetError(f"{path}: every 'bbox' must be [x, y, width, height]") from None
    bad = ~np.isfinite(box).all(axis=1) | (box[:, 2] < 0) | (box[:, 3] < 0)
    if bad.any():
        first = ann[bad].iloc[0]
        raise DatasetError(f"{path}: {int(bad.sum())} annotation(s) with a non-finite or negative box size, e.g. "
                           f"annotation id {first.id} (image {first.image_id}): bbox {list(box[bad][0])}; "
                           "fix or remove them")
    ann["x0"], ann["y0"] = np.floor(box[:, 0]).astype(int), np.floor(box[:, 1]).astype(int)
    ann["x1"], ann["y1"] = np.ceil(box[:, 0] + box[:, 2]).astype(int), np.ceil(box[:, 1] + box[:, 3]).astype(int)
    ann["area_px"] = pd.to_numeric(ann.area, errors="coerce").astype(float)
    if ann.area_px.isna().any():
        raise DatasetError(f"{path}: every 'area' must be a number")
    ann = ann.sort_values(["image_id", "category_id", "iscrowd", "area_px"], ascending=[True, True, True, False],
                          kind="stable").drop_duplicates(["image_id", "category_id"])
    ann["size_rank"] = ann.groupby("image_id").area_px.rank(ascending=False, method="min").astype(int)
    ann = ann.sort_values(["image_id", "size_rank", "category_id"], kind="stable").reset_index(drop=True)
    ann["object_index"] = ann.groupby("image_id").cumcount()
    return ann.drop(columns=["id", "area", "bbox", "iscrowd"])


def caption_mentions(data: dict, find: MentionFinder, annotated: Mapping[int, set[int]]) -> pd.DataFrame:
    """Each caption with the annotated categories it mentions (in order) and its position among the image's captions."""
    rows = [(a["image_id"], a.get("id", i), str(a["caption"]).strip()) for i, a in enumerate(data["annotations"])]
    caps = pd.DataFrame(rows, columns=["image_id", "caption_id", "text"])
    caps = caps.sort_values(["image_id", "caption_id"], kind="stable").reset_index(drop=True)
    caps["mentioned"] = [
        [c for c in find(text) if c in annotated.get(img, ())] for img, text in zip(caps.image_id, caps.text)
    ]
    caps["n_mentioned"] = caps.mentioned.map(len)
    caps["seq"] = caps.groupby("image_id").cumcount()
    return caps


def choose_references(caps: pd.DataFrame, image_ids: list[int], min_mentions: int) -> pd.Series:
    """Kept image id -> row of its reference caption in ``caps`` (-1 for a kept image without captions)."""
    enough = caps[caps.n_mentioned >= max(min_mentions, 1)].groupby("image_id").head(1)
    first = caps.groupby("image_id").head(1)
    ref = pd.concat([enough, first]).drop_duplicates("image_id")
    ref = pd.DataFrame({"row": ref.index, "n": ref.n_mentioned.to_numpy()}, index=ref.image_id.to_numpy())
    ref = ref.reindex(pd.Index(image_ids))
    keep = ref.n >= min_mentions if min_mentions > 0 else pd.Series(True, index=ref.index)
    return ref.row[keep].fillna(-1).astype(int)


def _object_table(objects: pd.DataFrame, caps: pd.DataFrame, refs: pd.Series, classes: list[str],
                  class_index: Mapping[int, int]) -> pd.DataFrame:
    objects = objects[objects.image_id.isin(refs.index)].copy()
    mentioned = caps.mentioned.to_numpy()
    position = {
        (img, cid): p + 1
        for img, row in refs.items() if row >= 0
        for p, cid in enumerate(mentioned[row])
    }
    objects["caption_position"] = [position.get(k, 0) for k in zip(objects.image_id, objects.category_id)]
    objects["class_id"] = objects.category_id.map(class_index)
    objects["class_name"] = [classes[i] for i in objects.class_id]
    objects["is_large"] = objects.size_rank == 1
    objects["slot"] = ""
    objects["color"] = ""
    objects["image_id"] = objects.image_id.astype(str)
    return objects[OBJECT_COLUMNS].reset_index(drop=True)


def _caption_table(caps: pd.DataFrame, refs: pd.Series, categories: Mapping[int, str]) -> pd.DataFrame:
    caps = caps[caps.image_id.isin(refs.index)].copy()
    caps["not_ref"] = ~caps.index.isin(refs[refs >= 0].to_numpy())
    caps = caps.sort_values(["image_id", "not_ref", "seq"], kind="stable")
    caps["template"] = TEMPLATE
    caps["order"] = caps.mentioned.map(lambda ids: "|".join(categories[c] for c in ids))
    caps["image_id"] = caps.image_id.astype(str)
    return caps[CAPTION_COLUMNS].reset_index(drop=True)


def missing_images(folder: Path, file_names: list[str]) -> list[str]:
    """The ``file_names`` with no file in ``folder`` (a stat per file: about a second for COCO's 118k)."""
    return [name for name in file_names if not os.path.isfile(os.path.join(folder, name))]


def check_images(folder: Path, file_names: list[str], split: str) -> None:
    """Raise one DatasetError naming how many of the kept images are missing, the first few and the folder."""
    missing = missing_images(folder, file_names)
    if missing:
        raise DatasetError(
            f"{len(missing)} of the {len(file_names)} COCO images to read are missing from {folder}, e.g. "
            f"{missing[:MISSING_SHOWN]}; download the {split} images (http://images.cocodataset.org/zips/"
            f"{split}.zip) and unpack them there, or point images_dir at the folder holding them"
        )


def _image_table(data: dict, refs: pd.Series, objects: pd.DataFrame) -> pd.DataFrame:
    info = {int(im["id"]): im for im in data["images"]}
    counts = objects.groupby("image_id").size().to_dict()
    rows = []
    for img in refs.index:
        n = int(counts.get(str(img), 0))
        im = info[img]
        rows.append((str(img), str(im["file_name"]), "multi" if n >= 2 else "single", n,
                     int(im["width"]), int(im["height"]), ""))
    return pd.DataFrame(rows, columns=IMAGE_COLUMNS)


def load_coco(root: str | Path | None = None, split: str = "val2017", *, captions_file: str | Path | None = None,
              instances_file: str | Path | None = None, images_dir: str | Path | None = None,
              min_mentions: int = 2, max_images: int | None = None,
              synonyms: Mapping[str, list[str]] | str | Path | None = None) -> SceneSet:
    """Read a COCO split into a SceneSet (rules in the module docstring); ``root`` of the result is the image folder.

    Give ``root`` for the official layout, or the three explicit paths (they override ``root``).
    Files and keys are all checked before any matching starts, so a wrong path fails in a second.
    """
    if not isinstance(min_mentions, int) or min_mentions < 0:
        raise DatasetError(f"min_mentions must be an integer >= 0, got {min_mentions!r}")
    if max_images is not None and (not isinstance(max_images, int) or max_images < 1):
        raise DatasetError(f"max_images must be None or an integer >= 1, got {max_images!r}")
    files = coco_files(root, split, captions_file, instances_file, images_dir)
    captions_json = read_annotations(files.captions, "captions")
    instances_json = read_annotations(files.instances, "instances")
    table = load_synonyms(synonyms)

    categories = _categories(instances_json, files.instances)
    find = MentionFinder(mention_terms(categories, table))
    objects = largest_instances(instances_json, files.instances, categories)
    annotated = objects.groupby("image_id").category_id.agg(set).to_dict()
    caps = caption_mentions(captions_json, find, annotated)
    image_ids = sorted(int(im["id"]) for im in instances_json["images"])
    orphans = sorted(set(objects.image_id) - set(image_ids))
    if orphans:  # annotations of images the file does not list: counted and said, never dropped in silence
        warnings.warn(f"{files.instances}: {len(orphans)} annotated image id(s) are not in 'images' and are left "
                      f"out, e.g. {orphans[:5]}", stacklevel=2)
    refs = choose_references(caps, image_ids, min_mentions)
    if max_images is not None:
        refs = refs.iloc[:max_images]

    file_names = {int(im["id"]): str(im["file_name"]) for im in instances_json["images"]}
    check_images(files.images, [file_names[i] for i in refs.index], split)

    classes = list(categories.values())
    class_index = {cid: i for i, cid in enumerate(categories)}
    object_table = _object_table(objects, caps, refs, classes, class_index)
    meta = {
        "source": "coco",
        "split": split,
        "coco_category_ids": list(categories),
        "min_mentions": min_mentions,
        "max_images": max_images,
        "orphan_annotated_images": len(orphans),
    }
    return SceneSet(
        root=files.images,
        classes=classes,
        images=_image_table(instances_json, refs, object_table),
        objects=object_table,
        captions=_caption_table(caps, refs, categories),
        meta=meta,
    )
