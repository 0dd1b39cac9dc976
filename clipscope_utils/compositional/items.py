"""The two shapes every compositional benchmark item takes, so one evaluator scores them all.

``ChoiceItem``: one image, its true caption and one or more false ones (ARO, SugarCrepe, VALSE and the
generated relation / attribute swaps); the model is right when the true caption scores highest.
``PairItem``: Winoground's two images and two captions, caption ``i`` belonging to image ``i``.
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
