"""The 18 SimCO shapes of "CLIP Under the Microscope", drawn in 2-D with Pillow.

A small CLIP must tell the shapes apart by their outline and shading alone: the caller picks the
colour at random per object and never names it in captions. So every shape is drawn in a single
hue; the only extra tones are lighter and darker versions of that hue, used to suggest 3-D.

Each shape is drawn in unit coordinates ([0, 1] square, y down) on two supersampled layers: an
alpha mask (the silhouette) and a tone layer (how much lighter or darker than the requested colour
each pixel is). The colour is applied only at the end through a lookup table, which keeps the
geometry independent of the colour and guarantees that no foreign hue appears. The result is
downsampled with a box filter, which anti-aliases the edges.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageChops, ImageDraw

SHAPES: tuple[str, ...] = (
    "cube", "sphere", "cylinder", "mug", "pentagon", "heart", "cone", "pyramid", "diamond",
    "moon", "cross", "snowflake", "leaf", "arrow", "star", "torus", "pot", "cap",
)

_SUPERSAMPLE = 4
_MIN_SIZE = 4
_MARGIN = 0.02  # gap between the shape and the square's border, as a fraction of the side

Point = tuple[float, float]
Box = tuple[float, float, float, float]


_BACKGROUND_CODE = 0  # tone byte reserved for "outside the shape"; maps to black


def _tone_code(tone: float) -> int:
    """Encode a tone in [-1, 1] (darker .. lighter) as a byte; 128 is the requested colour."""
    return max(_BACKGROUND_CODE + 1, int(round(128 + 127 * max(-1.0, min(1.0, tone)))))


def _palette(color: tuple[int, int, int]) -> list[int]:
    """Tone byte -> RGB: mix toward white above 128, toward black below; background is black.

    Only ever mixing with white or black keeps the hue of ``color`` (the channel order of every
    pixel is that of the request), so the shading cannot act as an extra colour attribute.
    """
    tone = (np.arange(256, dtype=np.float64)[:, None] - 128) / 127
    value = np.array(color, dtype=np.float64)[None, :]
    rgb = np.where(tone >= 0, value + (255 - value) * tone, value * (1 + tone))
    rgb[_BACKGROUND_CODE] = 0
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8).ravel().tolist()


class _Pen:
    """Draws in unit coordinates on a supersampled alpha mask and tone layer.

    ``solid=True`` (default) draws on both layers, i.e. adds to the silhouette; ``solid=False``
    only shades what is already there, so gradients can be drawn with plain, oversized strips
    without worrying about the outline.
    """

    def __init__(self, size: int) -> None:
        self.scale = size * _SUPERSAMPLE
        self.mask = Image.new("L", (self.scale, self.scale), 0)
        self.tone = Image.new("L", (self.scale, self.scale), _tone_code(0.0))
        self._mask_draw = ImageDraw.Draw(self.mask)
        self._tone_draw = ImageDraw.Draw(self.tone)

    def _px(self, coords: Sequence[float]) -> list[float]:
        return [c * self.scale for c in coords]

    def _apply(self, method: str, geom: list[float], tone: float, solid: bool,
               ink: str = "fill", **kw) -> None:
        """Call one ImageDraw method on the tone layer, and on the mask when ``solid``."""
        getattr(self._tone_draw, method)(geom, **{ink: _tone_code(tone)}, **kw)
        if solid:
            getattr(self._mask_draw, method)(geom, **{ink: 255}, **kw)

    def polygon(self, points: Sequence[Point], tone: float = 0.0, solid: bool = True) -> None:
        self._apply("polygon", self._px([c for p in points for c in p]), tone, solid)

    def ellipse(self, box: Box, tone: float = 0.0, solid: bool = True) -> None:
        self._apply("ellipse", self._px(box), tone, solid)

    def ring(self, box: Box, width: float, tone: float = 0.0, solid: bool = True) -> None:
        self._apply("ellipse", self._px(box), tone, solid, ink="outline",
                    width=self._width(width))

    def chord(self, box: Box, start: float, end: float, tone: float = 0.0,
              solid: bool = True) -> None:
        """Ellipse segment; angles in degrees, clockwise from 3 o'clock (PIL's convention)."""
        self._apply("chord", self._px(box), tone, solid, start=start, end=end)

    def line(self, points: Sequence[Point], width: float, tone: float = 0.0,
             solid: bool = True) -> None:
        self._apply("line", self._px([c for p in points for c in p]), tone, solid,
                    width=self._width(width), joint="curve")

    def erase_ellipse(self, box: Box) -> None:
        self._mask_draw.ellipse(self._px(box), fill=0)

    def _width(self, width: float) -> int:
        return max(1, int(round(width * self.scale)))

    def to_rgba(self, color: tuple[int, int, int], size: int) -> np.ndarray:
        """Colour the layers and box-downsample them to ``size`` with premultiplied alpha.

        Premultiplying keeps the transparent background from darkening the anti-aliased edges.
        The supersampled mask is binary, so premultiplying just means painting the outside
        black, which the reserved background tone does; this is several times faster than
        letting Pillow convert an RGBA image to premultiplied form and back.
        """
        tone = self.tone.copy()
        tone.paste(_BACKGROUND_CODE, mask=ImageChops.invert(self.mask))
        tone.putpalette(_palette(color))
        shape = (size, size)
        premultiplied = np.asarray(tone.convert("RGB").resize(shape, Image.Resampling.BOX),
                                   dtype=np.float32)
        alpha = np.asarray(self.mask.resize(shape, Image.Resampling.BOX), dtype=np.float32)
        covered = alpha[..., None] > 0
        rgb = np.divide(premultiplied * 255, alpha[..., None],
                        out=np.zeros_like(premultiplied), where=covered)
        rgba = np.dstack([np.clip(np.rint(rgb), 0, 255), alpha])
        return rgba.astype(np.uint8)


# --- geometry helpers ---------------------------------------------------------------------

def _fitter(points: Sequence[Point]) -> Callable[[Sequence[Point]], list[Point]]:
    """A transform that scales and centres ``points`` (keeping aspect) to fill the unit square.

    Lets outlines defined by formulas (heart, star, leaf) be written in their natural
    coordinates while still touching the borders.
    """
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    scale = (1 - 2 * _MARGIN) / max(x1 - x0, y1 - y0)
    dx = 0.5 - scale * (x0 + x1) / 2
    dy = 0.5 - scale * (y0 + y1) / 2
    return lambda pts: [(dx + scale * x, dy + scale * y) for x, y in pts]


def _regular(n: int, radius: float = 1.0, phase: float = -90.0) -> list[Point]:
    """Vertices of a regular n-gon around the origin; the default phase puts one on top."""
    return [(radius * math.cos(math.radians(phase + 360 * k / n)),
             radius * math.sin(math.radians(phase + 360 * k / n))) for k in range(n)]


def _lerp_box(a: Box, b: Box, t: float) -> Box:
    return tuple(p + (q - p) * t for p, q in zip(a, b))  # type: ignore[return-value]


def _concentric(pen: _Pen, outer: Box, inner: Box, tones: Sequence[float]) -> None:
    """Shade with nested ellipses from ``outer`` to ``inner``: radial gradients (sphere, torus)."""
    steps = len(tones)
    for i, tone in enumerate(tones):
        pen.ellipse(_lerp_box(outer, inner, i / steps), tone, solid=False)


def _side_light(u: float) -> float:
    """Tone across a round body lit from the upper left: u=0 left edge, u=1 right edge."""
    return 0.3 - 0.75 * abs(u - 0.3)


def _round_body_shading(pen: _Pen, x0: float, x1: float, y0: float, y1: float,
                        steps: int = 12) -> None:
    """Vertical strips of ``_side_light``: makes cylinders, mugs and pots look round."""
    for i in range(steps):
        u = (i + 0.5) / steps
        left = x0 + (x1 - x0) * i / steps
        right = x0 + (x1 - x0) * (i + 1) / steps
        pen.polygon([(left, y0), (right, y0), (right, y1), (left, y1)], _side_light(u),
                    solid=False)


def _vessel(pen: _Pen, x0: float, x1: float, top: float, bottom: float, lip: float) -> None:
    """A round upright body (cylinder, mug, pot): shaded side, light elliptical top.

    ``lip`` is the half-height of the rim ellipse, i.e. how much we see the opening from above.
    """
    pen.polygon([(x0, top), (x1, top), (x1, bottom), (x0, bottom)])
    pen.ellipse((x0, bottom - lip, x1, bottom + lip))
    _round_body_shading(pen, x0, x1, top - lip, bottom + lip)
    pen.ellipse((x0, top - lip, x1, top + lip), 0.35)


# --- the shapes -------------------------------------------------------------------------

def _cube(pen: _Pen) -> None:
    """Isometric cube: a hexagon split into a light top, a mid left and a dark right face."""
    half_w = (0.5 - _MARGIN) * math.sqrt(3) / 2
    top, bottom = (0.5, _MARGIN), (0.5, 1 - _MARGIN)
    ul, ur = (0.5 - half_w, 0.25 + _MARGIN / 2), (0.5 + half_w, 0.25 + _MARGIN / 2)
    ll, lr = (0.5 - half_w, 0.75 - _MARGIN / 2), (0.5 + half_w, 0.75 - _MARGIN / 2)
    centre = (0.5, 0.5)
    pen.polygon([top, ur, centre, ul], 0.45)
    pen.polygon([ul, centre, bottom, ll], 0.0)
    pen.polygon([centre, ur, lr, bottom], -0.4)


def _sphere(pen: _Pen) -> None:
    """Disc shaded radially toward an upper-left highlight, so it reads as a ball, not a coin."""
    outer = (_MARGIN, _MARGIN, 1 - _MARGIN, 1 - _MARGIN)
    pen.ellipse(outer, -0.45)
    steps = 14
    _concentric(pen, outer, (0.3, 0.3, 0.38, 0.38),
                [-0.45 + 1.05 * i / (steps - 1) for i in range(steps)])


def _cylinder(pen: _Pen) -> None:
    """Closed upright can: shaded side between an elliptical bottom and a light elliptical top."""
    lip = 0.12
    _vessel(pen, 0.18, 0.82, _MARGIN + lip, 1 - _MARGIN - lip, lip)


def _mug(pen: _Pen) -> None:
    """Tall cup with a dark opening and a ring handle on the right."""
    lip = 0.08
    pen.ring((0.5, 0.28, 1 - _MARGIN, 0.74), 0.11, -0.2)
    _vessel(pen, _MARGIN, 0.68, _MARGIN + lip, 1 - _MARGIN - lip, lip)
    pen.ellipse((_MARGIN + 0.05, _MARGIN + 0.02, 0.63, _MARGIN + 2 * lip - 0.02), -0.55)


def _pentagon(pen: _Pen) -> None:
    """Regular pentagon, point up."""
    points = _regular(5)
    pen.polygon(_fitter(points)(points))


def _heart(pen: _Pen) -> None:
    """The classic parametric heart curve (two lobes, pointed bottom)."""
    points = []
    for k in range(96):
        t = 2 * math.pi * k / 96
        points.append((16 * math.sin(t) ** 3,
                       -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t)
                         - math.cos(4 * t))))
    pen.polygon(_fitter(points)(points))


def _cone(pen: _Pen) -> None:
    """Triangle on an elliptical base, shaded in a fan from the apex (smooth, unlike pyramid)."""
    apex, rx, ry = (0.5, _MARGIN), 0.47, 0.13
    base_y = 1 - _MARGIN - ry
    pen.polygon([apex, (0.5 - rx, base_y), (0.5 + rx, base_y)])
    pen.ellipse((0.5 - rx, base_y - ry, 0.5 + rx, base_y + ry))
    steps = 12
    for i in range(steps):
        left = 0.5 - rx + 2 * rx * i / steps
        right = 0.5 - rx + 2 * rx * (i + 1) / steps
        pen.polygon([apex, (left, 1.0), (right, 1.0)], _side_light((i + 0.5) / steps),
                    solid=False)


def _pyramid(pen: _Pen) -> None:
    """Square pyramid seen from a corner: two flat faces of clearly different shade."""
    apex = (0.5, _MARGIN)
    left, front, right = (_MARGIN, 0.76), (0.6, 1 - _MARGIN), (1 - _MARGIN, 0.7)
    pen.polygon([apex, left, front], 0.25)
    pen.polygon([apex, front, right], -0.4)


def _diamond(pen: _Pen) -> None:
    """Cut gem: flat table on top, wide girdle, pointed bottom, facets in several shades."""
    t1, t2 = (0.3, 0.06), (0.7, 0.06)
    g0, g1, g2, g3 = (_MARGIN, 0.34), (0.36, 0.34), (0.64, 0.34), (1 - _MARGIN, 0.34)
    culet = (0.5, 1 - _MARGIN)
    for face, tone in (([g0, t1, g1], 0.2), ([t1, t2, g2, g1], 0.5), ([t2, g3, g2], 0.05),
                       ([g0, g1, culet], -0.05), ([g1, g2, culet], 0.2),
                       ([g2, g3, culet], -0.4)):
        pen.polygon(face, tone)


def _moon(pen: _Pen) -> None:
    """Crescent: a disc with an offset disc cut out, horns to the right."""
    pen.ellipse((_MARGIN, _MARGIN, 1 - _MARGIN, 1 - _MARGIN))
    cx, cy, r = 0.8, 0.4, 0.42
    pen.erase_ellipse((cx - r, cy - r, cx + r, cy + r))


def _cross(pen: _Pen) -> None:
    """Plus sign with arms of equal length."""
    lo, hi = 0.33, 0.67
    a, b = _MARGIN, 1 - _MARGIN
    pen.polygon([(lo, a), (hi, a), (hi, lo), (b, lo), (b, hi), (hi, hi), (hi, b), (lo, b),
                 (lo, hi), (a, hi), (a, lo), (lo, lo)])


def _snowflake(pen: _Pen) -> None:
    """Six thin arms, each with two pairs of small V branches, around a small hexagon."""
    width = 0.075
    arm = 0.5 - _MARGIN - width / 2
    centre = (0.5, 0.5)
    pen.polygon([(0.5 + x, 0.5 + y) for x, y in _regular(6, 0.1, 0.0)])
    for k in range(6):
        angle = math.radians(-90 + 60 * k)
        direction = (math.cos(angle), math.sin(angle))
        tip = (0.5 + arm * direction[0], 0.5 + arm * direction[1])
        pen.line([centre, tip], width)
        for at, length in ((0.5, 0.3), (0.78, 0.18)):
            base = (0.5 + at * arm * direction[0], 0.5 + at * arm * direction[1])
            for side in (-1, 1):
                branch = angle + side * math.radians(50)
                end = (base[0] + length * arm * math.cos(branch),
                       base[1] + length * arm * math.sin(branch))
                pen.line([base, end], width * 0.85)


def _leaf(pen: _Pen) -> None:
    """Pointed lens on the diagonal with a short stem and a darker midrib."""
    half_width, steps = 0.5, 48
    upper = [(x, -half_width * (1 - x * x)) for x in np.linspace(-1, 1, steps)]
    outline = upper + [(x, -y) for x, y in reversed(upper[1:-1])]
    stem = [(-1.0, 0.0), (-1.35, 0.0)]

    def rotate(pts: Sequence[Point]) -> list[Point]:  # tip toward the upper right
        c = s = math.sqrt(0.5)
        return [(c * x - s * y, -(s * x + c * y)) for x, y in pts]

    fit = _fitter(rotate(outline + stem))
    pen.polygon(fit(rotate(outline)), 0.1)
    pen.line(fit(rotate(stem)), 0.06, -0.3)
    pen.line(fit(rotate([(-1.0, 0.0), (0.85, 0.0)])), 0.035, -0.35, solid=False)


def _arrow(pen: _Pen) -> None:
    """Shaft plus triangular head, pointing right."""
    a, b = _MARGIN, 1 - _MARGIN
    pen.polygon([(a, 0.37), (0.5, 0.37), (0.5, 0.1), (b, 0.5), (0.5, 0.9), (0.5, 0.63),
                 (a, 0.63)])


def _star(pen: _Pen) -> None:
    """Five-pointed star, a bit fatter than a pentagram so the points survive small sizes."""
    outer, inner = _regular(5, 1.0), _regular(5, 0.45, -90 + 36)
    points = [p for pair in zip(outer, inner) for p in pair]
    pen.polygon(_fitter(points)(points))


def _torus(pen: _Pen) -> None:
    """Ring seen slightly from above; the tube is lit in the middle so it reads as a doughnut."""
    outer = (_MARGIN, 0.1, 1 - _MARGIN, 0.9)
    hole = (0.33, 0.39, 0.67, 0.61)
    pen.ellipse(outer, -0.4)
    steps = 12
    _concentric(pen, outer, hole,
                [-0.4 + 0.85 * math.sin(math.pi * (i + 0.5) / steps) for i in range(steps)])
    pen.erase_ellipse(hole)


def _pot(pen: _Pen) -> None:
    """Cooking pot: wide, low body with an open rim and a small tab handle on each side."""
    for x0, x1 in ((_MARGIN, 0.2), (0.8, 1 - _MARGIN)):
        pen.polygon([(x0, 0.4), (x1, 0.4), (x1, 0.52), (x0, 0.52)], -0.25)
    lip = 0.1
    _vessel(pen, 0.12, 0.88, 0.3, 1 - _MARGIN - lip, lip)
    pen.ellipse((0.17, 0.22, 0.83, 0.38), -0.55)


def _cap(pen: _Pen) -> None:
    """Baseball cap in side view: dome with a top button and a dark brim sticking out right."""
    pen.chord((_MARGIN, 0.14, 0.74, 1.14), 180, 360, 0.1)
    pen.chord((0.28, 0.5, 1 - _MARGIN, 0.8), 0, 180, -0.35)
    pen.ellipse((0.32, 0.08, 0.44, 0.17), 0.35)
    pen.line([(0.38, 0.15), (0.56, 0.3), (0.66, 0.64)], 0.03, -0.25, solid=False)


_DRAWERS: dict[str, Callable[[_Pen], None]] = {
    "cube": _cube, "sphere": _sphere, "cylinder": _cylinder, "mug": _mug,
    "pentagon": _pentagon, "heart": _heart, "cone": _cone, "pyramid": _pyramid,
    "diamond": _diamond, "moon": _moon, "cross": _cross, "snowflake": _snowflake,
    "leaf": _leaf, "arrow": _arrow, "star": _star, "torus": _torus, "pot": _pot, "cap": _cap,
}
assert tuple(_DRAWERS) == SHAPES


def render_shape(name: str, size: int, color: tuple[int, int, int]) -> np.ndarray:
    """Render one shape as an RGBA uint8 array of shape (size, size, 4).

    The background is transparent (alpha 0); the shape is anti-aliased (drawn at 4x and box
    downsampled), uses only tones of ``color``, and nearly touches the square's borders.
    Deterministic: the same arguments always give the same bytes.
    """
    if name not in _DRAWERS:
        raise ValueError(f"unknown shape {name!r}; allowed shapes: {', '.join(SHAPES)}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < _MIN_SIZE:
        raise ValueError(f"size must be an integer >= {_MIN_SIZE}, got {size!r} "
                         f"(shape {name!r}; allowed shapes: {', '.join(SHAPES)})")
    if len(color) != 3 or not all(isinstance(c, (int, np.integer)) and 0 <= c <= 255
                                  for c in color):
        raise ValueError(f"color must be three integers in 0..255, got {color!r}")
    pen = _Pen(int(size))
    _DRAWERS[name](pen)
    return pen.to_rgba(tuple(int(c) for c in color), int(size))
