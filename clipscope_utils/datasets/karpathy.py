"""COCO 5k and Flickr30k 1k test sets in Karpathy's split files, for zero-shot image–text retrieval (paper B, Table 3).

Layout (Karpathy's ``caption_datasets.zip``: ``dataset_coco.json``, ``dataset_flickr30k.json``)::

    {"images": [{"filepath": "val2014",               COCO only: the image's sub-folder
                 "filename": "COCO_val2014_000000391895.jpg",
                 "split": "train" | "val" | "test" | "restval",
                 "sentences": [{"raw": "A man ...", "tokens": [...], "imgid": 0, "sentid": 0}, ...],
                 "imgid": 0, "sentids": [0, ...], "cocoid": 391895},   cocoid: COCO only
                ...],
     "dataset": "coco" | "flickr30k"}

Image files: ``<images_root>/<filepath>/<filename>`` when a record has ``filepath`` (COCO, ``images_root`` the
COCO folder holding ``val2014/``), else ``<images_root>/<filename>`` (Flickr30k, ``images_root`` its
``flickr30k-images/`` folder). Default ``images_root``: the JSON's folder, or ``<JSON folder>/flickr30k-images``
for ``"dataset": "flickr30k"``. The format and the path rule were checked against public readers:
sgrvinod/a-PyTorch-Tutorial-to-Image-Captioning ``utils.py`` (``create_input_files``: ``filepath``/``filename``
for COCO, ``filename`` alone for Flickr, splits train/restval/val/test, captions under ``sentences``),
feizc/IMITER ``data/DATA.md`` (folders ``val2014/`` and ``flickr30k-images/`` beside the split file) and
LAION-AI/CLIP_benchmark ``metrics/zeroshot_retrieval.py`` (every caption a query, each mapped to its image).

:func:`to_karpathy` writes a stand-in in the same layout from (image, captions) pairs or generated scenes, so
the rehearsal proves the loader and the retrieval measure without the real data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .export import REPORT_FILE
from .tables import DatasetError, SceneSet, atomic_folder, open_image, read_json

#: the split file each dataset ships as, and its image folder for the writer (COCO: ``filepath``)
FILES = {"coco": "dataset_coco.json", "flickr30k": "dataset_flickr30k.json"}
IMAGE_FOLDERS = {"coco": "val2014", "flickr30k": "flickr30k-images"}
SPLITS = ("train", "val", "test", "restval")
MISSING_SHOWN = 5  # missing image files named in the error
JPEG_QUALITY = 95
LAYOUT_HELP = ("expected Karpathy's split file ({\"images\": [{\"filename\", \"split\", \"sentences\": [{\"raw\"}], "
               "\"filepath\"?}], \"dataset\"}), e.g. dataset_coco.json beside val2014/ or dataset_flickr30k.json "
               "beside flickr30k-images/")


@dataclass
class KarpathySplit:
    """One split of a Karpathy file: image files in file order, every caption, and each caption's image index."""

    json_file: Path
    images_root: Path
    split: str
    dataset: str
    image_paths: list[Path]
    image_ids: list[str]
    captions: list[str]
    text_image: np.ndarray  # int64, len(captions): index into image_paths
    meta: dict = field(default_factory=dict)

    @property
    def n_images(self) -> int:
        return len(self.image_paths)

    @property
    def n_captions(self) -> int:
        return len(self.captions)

    def captions_of(self, i: int) -> list[str]:
        """The captions of image ``i``, in file order."""
        return [self.captions[t] for t in np.flatnonzero(self.text_image == i)]


def _read(json_file: Path) -> dict:
    data = read_json(json_file, "Karpathy split file", f"; {LAYOUT_HELP}")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DatasetError(f"{json_file}: expected a JSON object with an 'images' list; {LAYOUT_HELP}")
    for i, rec in enumerate(data["images"]):
        if not isinstance(rec, dict):
            raise DatasetError(f"{json_file}: images[{i}] is not an object")
        for key, kind in (("filename", str), ("split", str), ("sentences", list)):
            if not isinstance(rec.get(key), kind):
                raise DatasetError(f"{json_file}: images[{i}] lacks {key!r} (a {kind.__name__}); {LAYOUT_HELP}")
        if "filepath" in rec and not isinstance(rec["filepath"], str):
            raise DatasetError(f"{json_file}: images[{i}]['filepath'] must be a folder name")
    return data


def default_images_root(json_file: str | Path, dataset: str = "") -> Path:
    """Where the images usually are: ``flickr30k-images/`` beside a Flickr30k file, else the file's own folder
    (COCO records carry their ``val2014/`` sub-folder in ``filepath``)."""
    folder = Path(json_file).parent
    return folder / IMAGE_FOLDERS["flickr30k"] if dataset == "flickr30k" else folder


def load_karpathy(json_file: str | Path, images_root: str | Path | None = None, split: str = "test",
                  max_images: int | None = None) -> KarpathySplit:
    """Read one split of a Karpathy file (COCO: 5000 test images, Flickr30k: 1000), checked before any work.

    The file must parse with every record's ``filename``, ``split`` and ``sentences``; the split must hold
    images, each with at least one non-empty ``raw`` caption; every image file must exist (the first few
    missing ones are named). ``max_images`` keeps the first images in file order (a CPU-sized run).
    """
    json_file = Path(json_file)
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {list(SPLITS)}, got {split!r}")
    if max_images is not None and (isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1):
        raise DatasetError(f"max_images must be None or a positive integer, got {max_images!r}")
    data = _read(json_file)
    dataset = str(data.get("dataset", ""))
    records = [(i, r) for i, r in enumerate(data["images"]) if r["split"] == split]
    if not records:
        counts = {s: sum(r["split"] == s for r in data["images"]) for s in sorted({r["split"] for r in data["images"]})}
        raise DatasetError(f"{json_file}: split {split!r} holds no images (splits in the file: {counts})")
    records = records[:max_images] if max_images else records
    root = Path(images_root) if images_root is not None else default_images_root(json_file, dataset)
    if not root.is_dir():
        raise DatasetError(f"images_root {root} is not a folder (for {json_file}); pass images_root=, the folder "
                           "holding val2014/ for COCO or the flickr30k-images/ folder for Flickr30k")
    paths, ids, captions, owner = [], [], [], []
    for k, (i, rec) in enumerate(records):
        texts = [s.get("raw") if isinstance(s, dict) else None for s in rec["sentences"]]
        if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            raise DatasetError(f"{json_file}: images[{i}] ({rec['filename']}) needs at least one sentence, each with "
                               "a non-empty 'raw' caption")
        paths.append(root / rec.get("filepath", "") / rec["filename"])
        ids.append(str(rec.get("cocoid", rec.get("imgid", rec["filename"]))))
        captions.extend(t.strip() for t in texts)
        owner.extend([k] * len(texts))
    missing = [p for p in paths if not p.is_file()]
    if missing:
        shown = ", ".join(str(p.relative_to(root)) for p in missing[:MISSING_SHOWN])
        raise DatasetError(f"{len(missing)} of {len(paths)} {split} image(s) of {json_file} are missing under "
                           f"images_root {root}, e.g. {shown}")
    return KarpathySplit(json_file=json_file, images_root=root, split=split, dataset=dataset, image_paths=paths,
                         image_ids=ids, captions=captions, text_image=np.asarray(owner, dtype=np.int64),
                         meta={"n_in_split": sum(r["split"] == split for r in data["images"])})


# -- the stand-in writer -----------------------------------------------------------------------------
def scene_items(scenes: SceneSet) -> list[tuple[Path, list[str]]]:
    """(image file, its distinct captions in table order) for every image of ``scenes`` that has a caption."""
    caps = scenes.captions.groupby("image_id", sort=False).text.agg(lambda t: list(dict.fromkeys(t)))
    return [(scenes.root / path, caps[image_id]) for image_id, path in zip(scenes.images.image_id, scenes.images.path)
            if image_id in caps.index]


def to_karpathy(items: SceneSet | Sequence[tuple[str | Path, Sequence[str]]], out: str | Path,
                dataset: str = "coco", split: str = "test", overwrite: bool = False) -> Path:
    """Write ``items`` (``(image file, [captions])`` pairs, or generated scenes) as a Karpathy split file.

    ``dataset="coco"``: ``<out>/dataset_coco.json`` with ``filepath`` "val2014", ``cocoid`` and the images as
    ``<out>/val2014/COCO_val2014_<cocoid:012d>.jpg``; ``"flickr30k"``: ``<out>/dataset_flickr30k.json`` and
    ``<out>/flickr30k-images/<n>.jpg``. Every image gets ``split``; images are re-encoded as JPEG. Written into a
    temporary folder and renamed (``overwrite`` replaces only an earlier export, one holding ``export.json``).
    Read back with ``load_karpathy(<out>/<file>)``, whose default images_root fits both layouts.
    """
    if dataset not in FILES:
        raise DatasetError(f"dataset must be one of {sorted(FILES)}, got {dataset!r}")
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {list(SPLITS)}, got {split!r}")
    pairs = scene_items(items) if isinstance(items, SceneSet) else list(items)
    if not pairs:
        raise DatasetError("to_karpathy: nothing to write (no image with captions)")
    for n, pair in enumerate(pairs):
        if (not isinstance(pair, (tuple, list)) or len(pair) != 2 or isinstance(pair[1], str)
                or not pair[1] or not all(isinstance(t, str) and t.strip() for t in pair[1])):
            raise DatasetError(f"to_karpathy: item {n} must be (image path, [non-empty captions]), got {pair!r}")
    out = Path(out)
    if out.exists() and overwrite and not (out / REPORT_FILE).is_file():
        raise DatasetError(f"{out} exists and was not written by an exporter (no {REPORT_FILE}); it is not replaced")
    coco = dataset == "coco"
    images, files, sentid = [], {}, 0
    with atomic_folder(out, overwrite=overwrite) as tmp:
        folder = tmp / IMAGE_FOLDERS[dataset]
        folder.mkdir()
        for imgid, (src, texts) in enumerate(pairs):
            name = f"COCO_val2014_{imgid + 1:012d}.jpg" if coco else f"{1000000 + imgid}.jpg"
            open_image(Path(src)).save(folder / name, quality=JPEG_QUALITY)
            files[name] = str(src)
            sents = [{"raw": t, "tokens": t.lower().rstrip(" .").split(), "imgid": imgid, "sentid": sentid + j}
                     for j, t in enumerate(texts)]
            rec = {"filename": name, "imgid": imgid, "split": split, "sentences": sents,
                   "sentids": [s["sentid"] for s in sents]}
            if coco:
                rec = {"filepath": IMAGE_FOLDERS["coco"], **rec, "cocoid": imgid + 1}
            images.append(rec)
            sentid += len(sents)
        (tmp / FILES[dataset]).write_text(json.dumps({"images": images, "dataset": dataset}))
        report = {"layout": f"karpathy-{dataset}", "split": split, "skipped": {},
                  "written": {"images": len(images), "captions": sentid}, "files": files}
        (tmp / REPORT_FILE).write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    return out
