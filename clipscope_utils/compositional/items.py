"""The two shapes every compositional benchmark item takes, so one evaluator scores them all.

``ChoiceItem``: one image, its true caption and one or more false ones (ARO, SugarCrepe, VALSE and the
generated relation / attribute swaps); the model is right when the true caption scores highest.
``ImageChoiceItem``: one sentence, its true image and one or more false ones (SVO-Probes, ComVG); the model
is right when the true image scores highest.
``PairItem``: Winoground's two images and two captions, caption ``i`` belonging to image ``i``.
``ItemList``: a loader's items with the rows it left out and why, so a dropped row is counted, never silent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class BenchmarkError(ValueError):
    """A benchmark folder or file that cannot be read (missing, corrupt, unknown subset)."""


@dataclass(frozen=True)
class ChoiceItem:
    item_id: str
    subset: str  # e.g. "VG-Relation", "replace_rel", "relation_swap"
    image: Path
    true: str
    false: tuple[str, ...]
    crop: tuple[int, int, int, int] | None = None  # (x0, y0, x1, y1) in pixels, as ARO crops to a box


@dataclass(frozen=True)
class PairItem:
    item_id: str
    subset: str  # e.g. Winoground's tag, or "relation_swap"
    images: tuple[Path, Path]
    captions: tuple[str, str]  # captions[i] describes images[i]


@dataclass(frozen=True)
class ImageChoiceItem:
    item_id: str
    subset: str  # e.g. "svo-verb", "comvg-verb"
    text: str
    true_image: Path
    false_images: tuple[Path, ...]


class ItemList(list):
    """A loader's items (a plain list to every caller) plus ``dropped``: reason -> rows left out (e.g. rows
    whose images are missing, with ``skip_missing=True``), and ``missing``: the image files that were absent.
    Real copies of SVO-Probes lack images whose URLs died, so dropping must be possible, and visible."""

    def __init__(self, items=(), dropped=None, missing=()):
        super().__init__(items)
        self.dropped: dict[str, int] = {k: int(v) for k, v in (dropped or {}).items() if v}
        self.missing: tuple[str, ...] = tuple(missing)

    def __repr__(self) -> str:
        return f"ItemList({len(self)} items, dropped {self.dropped or 'nothing'})"
