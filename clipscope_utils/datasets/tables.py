"""The one tidy structure every multi-object dataset of the book is read into.

Generated scenes, the authors' released ComCO/SimCO folders and COCO all become a ``SceneSet``:
three pandas frames (images, objects, captions) plus the class list. Probes only ever see this
structure, so a probe written for generated data runs unchanged on the real datasets.

Columns (``-`` marks a value a source may not know: NaN for numbers, ``""`` for text):

images   image_id, path (relative to ``root``), kind ("single" | "multi"), n_objects, width, height,
         large_slot
objects  image_id, object_index (0.., slot order), class_name, class_id, is_large, size_rank (1 =
         largest, -), slot, x0, y0, x1, y1 (pixels, x1/y1 exclusive, -), area_px (-), color (-),
         caption_position (1-based position in the image's captions, 0 = not mentioned)
captions image_id, template, text, order ("|"-joined class names in caption order)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

IMAGE_COLUMNS = ["image_id", "path", "kind", "n_objects", "width", "height", "large_slot"]
OBJECT_COLUMNS = [
    "image_id", "object_index", "class_name", "class_id", "is_large", "size_rank", "slot",
    "x0", "y0", "x1", "y1", "area_px", "color", "caption_position",
]
CAPTION_COLUMNS = ["image_id", "template", "text", "order"]
META_FILE = "dataset.json"


class DatasetError(ValueError):
    """A dataset request or a dataset on disk is impossible, missing or malformed."""


@dataclass
class SceneSet:
    """Images, their objects and captions, as tidy frames; ``root`` is where ``images.path`` points."""

    root: Path
    classes: list[str]
    images: pd.DataFrame
    objects: pd.DataFrame
    captions: pd.DataFrame
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        for name, frame, cols in (
            ("images", self.images, IMAGE_COLUMNS),
            ("objects", self.objects, OBJECT_COLUMNS),
            ("captions", self.captions, CAPTION_COLUMNS),
        ):
            missing = [c for c in cols if c not in frame.columns]
            if missing:
                raise DatasetError(f"{name} table lacks columns {missing}")

    # -- access -------------------------------------------------------------------------------
    def image(self, image_id: str) -> Image.Image:
        """The RGB image; a corrupt or missing file raises DatasetError naming it."""
        rel = self.images.loc[self.images.image_id == image_id, "path"]
        if rel.empty:
            raise DatasetError(f"no image {image_id!r} in this dataset")
        return open_image(self.root / rel.iloc[0])

    def mask(self, image_id: str) -> np.ndarray:
        """Label map of the image: 0 = background, ``k + 1`` = pixels of object ``object_index == k``."""
        path = self.root / "masks" / f"{image_id}.png"
        if not path.is_file():
            raise DatasetError(f"no stored mask for {image_id!r} (only generated datasets store masks)")
        return np.asarray(open_image(path, mode="L"))

    def multi(self, n_objects: int | None = None) -> "SceneSet":
        """The multi-object part (optionally only scenes with ``n_objects``)."""
        keep = self.images.kind == "multi"
        if n_objects is not None:
            keep &= self.images.n_objects == n_objects
        return self.subset(self.images.image_id[keep])

    def singles(self) -> "SceneSet":
        """The single-object reference images."""
        return self.subset(self.images.image_id[self.images.kind == "single"])

    def subset(self, image_ids) -> "SceneSet":
        ids = set(image_ids)
        return SceneSet(
            root=self.root,
            classes=self.classes,
            images=self.images[self.images.image_id.isin(ids)].reset_index(drop=True),
            objects=self.objects[self.objects.image_id.isin(ids)].reset_index(drop=True),
            captions=self.captions[self.captions.image_id.isin(ids)].reset_index(drop=True),
            meta=self.meta,
        )

    # -- disk ---------------------------------------------------------------------------------
    def save_tables(self, folder: Path) -> None:
        """Write the three tables and ``dataset.json`` (deterministic bytes for equal content)."""
        folder = Path(folder)
        self.images[IMAGE_COLUMNS].to_csv(folder / "images.csv", index=False, lineterminator="\n")
        self.objects[OBJECT_COLUMNS].to_csv(folder / "objects.csv", index=False, lineterminator="\n")
        self.captions[CAPTION_COLUMNS].to_csv(folder / "captions.csv", index=False, lineterminator="\n")
        meta = {**self.meta, "classes": self.classes}
        (folder / META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")

    @classmethod
    def load(cls, folder: Path) -> "SceneSet":
        """Read a dataset written by :meth:`save_tables` (e.g. by the generator)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise DatasetError(f"dataset folder {folder} does not exist")
        needed = [META_FILE, "images.csv", "objects.csv", "captions.csv"]
        missing = [n for n in needed if not (folder / n).is_file()]
        if missing:
            raise DatasetError(f"{folder} is not a clipscope dataset: missing {missing}")
        try:
            meta = json.loads((folder / META_FILE).read_text())
            read = dict(keep_default_na=False, na_values={"x0": [""], "y0": [""], "x1": [""], "y1": [""],
                                                          "area_px": [""], "size_rank": [""]})
            images = pd.read_csv(folder / "images.csv", dtype={"image_id": str, "large_slot": str}, **read)
            objects = pd.read_csv(folder / "objects.csv", dtype={"image_id": str, "slot": str, "color": str}, **read)
            captions = pd.read_csv(folder / "captions.csv", dtype=str, keep_default_na=False)
        except (json.JSONDecodeError, pd.errors.ParserError, UnicodeDecodeError) as e:
            raise DatasetError(f"{folder}: corrupt table ({e})") from None
        classes = meta.pop("classes", None)
        if not isinstance(classes, list):
            raise DatasetError(f"{folder / META_FILE} has no class list")
        return cls(root=folder, classes=classes, images=images, objects=objects, captions=captions, meta=meta)


def read_json(path: Path, what: str = "", missing_hint: str = ""):
    """The parsed JSON file at ``path``; a DatasetError naming it (``what``, then the path) when it is missing
    (``missing_hint`` appended) or is not valid UTF-8 JSON."""
    name = f"{what} {path}" if what else str(path)
    if not path.is_file():
        raise DatasetError(f"{name} is missing{missing_hint}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{name} is not valid JSON ({e})") from None


def open_image(path: Path, mode: str = "RGB") -> Image.Image:
    """Open and fully decode an image, turning any decoding failure into a DatasetError."""
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert(mode)
    except FileNotFoundError:
        raise DatasetError(f"image file {path} is missing") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DatasetError(f"image file {path} is corrupt or not an image ({e})") from None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_dead_temporaries(folder: Path, name: str = "*") -> list[Path]:
    """Temporary folders (``.<name>.tmp-<pid>-*``) in ``folder`` whose writer process is gone: a killed generation
    left them. Removed, and returned; a writer still running keeps its folder."""
    gone = []
    for tmp in Path(folder).glob(f".{name}.tmp-*"):
        pid = tmp.name.rsplit(".tmp-", 1)[1].split("-", 1)[0]
        if tmp.is_dir() and (not pid.isdigit() or not _pid_alive(int(pid))):
            shutil.rmtree(tmp, ignore_errors=True)
            gone.append(tmp)
    return gone


@contextmanager
def atomic_folder(out: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder; move it to ``out`` only if the block succeeds.

    So a failed or interrupted write never leaves a half-written dataset at ``out``; what a killed writer left
    (its process gone) is removed first. The folder gets the usual permissions (umask), not mkdtemp's 0700.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise DatasetError(f"output folder {out} already exists (pass overwrite=True / --overwrite to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temporaries(out.parent, out.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
