"""Two-object scenes with attributes and relations: paper B's training data and its ARO/Winoground tests, offline.

Paper B fine-tunes CLIP on COCO captions parsed into objects, attributes and relations, then tests on ARO
(relation and attribute swaps) and Winoground. No COCO exists here, so this module draws its own world: two
objects of different classes (ComCO emoji or SimCO shapes, from :mod:`clipscope_utils.datasets.families`)
side by side or one above the other, each large or small (and, for SimCO, coloured), with a caption that is
true of the picture and that states the role of each word.

**Captions and roles.** "a large cat to the left of a small dog": each word group gets the role below as one
``(start, end, role)`` character span (the format of :class:`clipscope_utils.cae.roles.RoledCaption`):

=====================================================  ==========  =============================================
words                                                  role        why
=====================================================  ==========  =============================================
class name ("cat", "traffic light", "scissors")        object      one span, also for two-word classes
"large" / "small"; colour names ("red", ...)           attribute   one span per word; size before colour
"to the left of", "to the right of", "above", "below"  relation    one span for the whole phrase (see below)
"a" / "an"; "pair of" ("a pair of skis"); "and"        none        determiners, counters and the conjunction
=====================================================  ==========  =============================================

The relation is one span because it is one concept, as "above" is, and because swapping the whole phrase
for another relation phrase keeps the caption grammatical (the perturbations of appendix I and
``relation_replace`` do exactly that). Its "the" belongs to the fixed preposition; the articles that get no
role are the "a"/"an" opening each noun phrase. (The scene-graph parser used on real captions splits the
phrase into relation "to", object "left", relation "of", see :mod:`clipscope_utils.cae.roles`; generated
captions state the intended reading instead.) Attributes not in ``spec.attributes`` are drawn, not named.

**Truth.** An object's box is the extent of its visible pixels. "X left of Y" holds when X's box ends at or
before Y's box starts on the x axis (right of, above, below likewise). Generation guarantees that the
captioned relation holds and, because the two boxes always overlap on the other axis, that no other of the
four relations does. "left of" and "right of" are the same arrangement with subject and object exchanged;
each scene draws one of ``spec.relations``, so both occur.

**Hard negatives** (NegCLIP-style, one per scene, always false of the image):

* ``relation_swap``: the two class nouns exchange places; every other word stays in its slot (the attribute
  words describe whatever noun now follows them, and each article is re-chosen for the word after it):
  "a large cat to the left of a small dog" -> "a large dog to the left of a small cat". False because the
  dog is right of the cat, whatever the attributes.
* ``relation_replace``: the relation becomes its opposite (left <-> right, above <-> below), all else kept.
* ``attribute_swap``: the values of every named attribute move to the other noun: "... a small cat to the
  left of a large dog". When the two objects have the same named values (or no attribute is named) that
  would be the true caption again, so such a scene gets its ``relation_replace`` negative instead
  (:attr:`CompositionSet.attribute_swappable` says which scenes).

**Seeds.** Training scene ``i`` draws everything from ``default_rng([seed, 0, i])``; benchmark scene ``i``
from ``default_rng([seed, 1, i])``, so the benchmark's scenes are fresh draws ("unseen"; a class pair may
recur, as in COCO -> ARO) and do not depend on how many training scenes exist.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..datasets import families
from ..datasets.captions import PLURAL_ONLY
from ..datasets.png import write_png
from ..datasets.tables import atomic_folder
from ..paths import cache_dir, cached_folder
from .items import BenchmarkError, ChoiceItem, PairItem

__all__ = [
    "ATTRIBUTES", "BenchmarkError", "CompositionSet", "CompositionSpec", "HARD_NEGATIVE_KINDS", "RELATIONS",
    "ROLES", "SIZES", "BENCHMARK_SUBSETS", "benchmark_scenes", "compose", "concept_candidates",
    "generate_compositions", "relation_holds", "synthetic_benchmark",
]

GENERATOR_VERSION = 1  # bump when the pixels or tables of an unchanged spec would change
RELATIONS = ("left of", "right of", "above", "below")
RELATION_PHRASES = {"left of": "to the left of", "right of": "to the right of", "above": "above", "below": "below"}
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
ATTRIBUTES = ("size", "colour")
SIZES = ("large", "small")
ROLES = ("object", "attribute", "relation")
HARD_NEGATIVE_KINDS = ("relation_swap", "relation_replace", "attribute_swap")
BENCHMARK_SUBSETS = ("relation", "attribute", "relation_replace", "winoground")
BACKGROUND = (255, 255, 255)
MASK_ALPHA = 128  # sprite alpha at which a pixel counts as the object's (for the solid-pixel count)
MARGIN = 0.03  # free border around the scene, fraction of the side
MIN_GAP = 0.05  # least gap between the two objects along their axis, fraction of the side
JITTER = 0.05  # largest shift of an object across its axis, fraction of the side
_STREAMS = {"train": 0, "benchmark": 1}
BOX_COLUMNS = [f"{who}_{c}" for who in ("subject", "object") for c in ("x0", "y0", "x1", "y1")]
COLUMNS = [
    "scene_id", "pair_id", "variant", "path", "caption", "relation", "axis", "subject", "object",
    "subject_size", "object_size", "subject_colour", "object_colour", *BOX_COLUMNS,
]
_COUNTER = "pair of"  # counter before plural-only nouns ("a small pair of scissors")

Span = tuple[int, int, str]


# -- the spec -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CompositionSpec:
    """Every knob of a set of generated compositional scenes; equal specs give byte-identical sets.

    Sizes are fractions of the image side (the side of an object's square box). ``relations``,
    ``attributes`` and ``class_names`` are sets: they are stored in canonical order, so the order they are
    given in changes neither the key nor the scenes.
    """

    family: str = "comco"
    images: int = 2000
    image_size: int = 64
    large_size: float = 0.38
    small_size: float = 0.2
    relations: tuple[str, ...] = RELATIONS
    attributes: tuple[str, ...] = ("size",)
    class_names: tuple[str, ...] = ()  # restrict to these classes; () = all of the family
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("relations", "attributes", "class_names"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise BenchmarkError(f"{name} must be a sequence of names, not the string {value!r}")
            object.__setattr__(self, name, tuple(value))
        self._validate()
        for name in ("images", "image_size", "seed"):  # numpy integers would not survive json in key()
            object.__setattr__(self, name, int(getattr(self, name)))
        for name in ("large_size", "small_size"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "relations", tuple(r for r in RELATIONS if r in self.relations))
        object.__setattr__(self, "attributes", tuple(a for a in ATTRIBUTES if a in self.attributes))
        known = families.classes(self.family)
        object.__setattr__(self, "class_names", tuple(c for c in known if c in self.class_names))

    def _validate(self) -> None:
        if self.family not in families.FAMILIES:
            raise BenchmarkError(f"unknown object family {self.family!r}; allowed: {list(families.FAMILIES)}")
        for name in ("images", "image_size", "seed"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
                raise BenchmarkError(f"{name} must be a non-negative integer, got {value!r}")
        if not 16 <= self.image_size <= 1024:
            raise BenchmarkError(f"image_size must be in 16..1024 px, got {self.image_size}")
        _check_names("relations", self.relations, RELATIONS, allow_empty=False)
        _check_names("attributes", self.attributes, ATTRIBUTES, allow_empty=True)
        if "colour" in self.attributes and self.family != "simco":
            raise BenchmarkError(f"attribute 'colour' needs family 'simco'; {self.family!r} objects have fixed colours")
        known = families.classes(self.family)
        unknown = [c for c in self.class_names if c not in known]
        if unknown:
            raise BenchmarkError(f"classes {unknown} are not in family {self.family!r}; known: {known}")
        if len(set(self.class_names)) != len(self.class_names):
            raise BenchmarkError(f"class_names has duplicates: {list(self.class_names)}")
        if 0 < len(self.class_names) < 2:
            raise BenchmarkError("a scene shows two different classes: give at least two class_names (or none)")
        for name in ("large_size", "small_size"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool) \
                    or not 0 < value < 1:
                raise BenchmarkError(f"{name} must be a fraction of the image side in (0, 1), got {value!r}")
        large, small = self.px(self.large_size), self.px(self.small_size)
        if small < 4:
            raise BenchmarkError(f"small objects would be {small} px at image_size {self.image_size}; need >= 4 px")
        if small >= large:
            raise BenchmarkError(f"small_size {self.small_size} ({small} px) must draw smaller than large_size "
                                 f"{self.large_size} ({large} px) at image_size {self.image_size}")
        room = self.image_size - 2 * self.px_margin
        axes = sorted({_axis(r) for r in self.relations})
        for first, second in ((large, large), (large, small), (small, small)):
            need = first + second + self.px_gap
            if need > room:
                arrangement = " and ".join("side by side" if a == "horizontal" else "one above the other" for a in axes)
                raise BenchmarkError(
                    f"two objects of {first} and {second} px do not fit {arrangement} in a {self.image_size} px "
                    f"image: they need {need} px with the {self.px_gap} px gap, the image has {room} px inside its "
                    f"{self.px_margin} px margins; lower large_size/small_size"
                )

    # -- derived ----------------------------------------------------------------------------------------------
    @property
    def classes(self) -> list[str]:
        return list(self.class_names) if self.class_names else families.classes(self.family)

    @property
    def px_margin(self) -> int:
        return max(1, round(MARGIN * self.image_size))

    @property
    def px_gap(self) -> int:
        return max(1, round(MIN_GAP * self.image_size))

    def px(self, fraction: float) -> int:
        return max(1, round(fraction * self.image_size))

    def size_px(self, size: str) -> int:
        """Side in pixels of a "large" or "small" object's box."""
        return self.px(self.large_size if size == "large" else self.small_size)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def key(self) -> str:
        """Hash of every knob and the generator version: the cache key of the training scenes."""
        payload = json.dumps({"spec": self.to_dict(), "generator": GENERATOR_VERSION}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _check_names(name: str, values: tuple, allowed: tuple, allow_empty: bool) -> None:
    bad = [v for v in values if v not in allowed]
    if bad:
        raise BenchmarkError(f"unknown {name} {bad}; allowed: {list(allowed)}")
    if len(set(values)) != len(values):
        raise BenchmarkError(f"{name} has duplicates: {list(values)}")
    if not values and not allow_empty:
        raise BenchmarkError(f"{name} must name at least one of {list(allowed)}")


def _axis(relation: str) -> str:
    return "horizontal" if relation in ("left of", "right of") else "vertical"


# -- captions with roles ------------------------------------------------------------------------------------
def _noun_phrase(noun: str, attributes: Sequence[str]) -> list[tuple[str, str | None]]:
    """Words of "a large red cube" with their roles; the article agrees with the word after it."""
    words: list[tuple[str, str | None]] = [(a, "attribute") for a in attributes]
    if noun in PLURAL_ONLY:
        words.append((_COUNTER, None))
    words.append((noun, "object"))
    article = "an" if words[0][0][:1].lower() in "aeiou" else "a"
    return [(article, None), *words]


def compose(subject: str, obj: str, relation: str | None = None, subject_attributes: Sequence[str] = (),
            object_attributes: Sequence[str] = ()) -> tuple[str, tuple[Span, ...]]:
    """Caption and role spans of "a <attrs> <subject> <relation phrase> a <attrs> <obj>".

    ``relation=None`` joins the two noun phrases with "and" (the attribute benchmark's form). Every caption,
    hard negative and benchmark text of this module is built here, so they all share one grammar.
    """
    if relation is not None and relation not in RELATIONS:
        raise BenchmarkError(f"unknown relation {relation!r}; allowed: {list(RELATIONS)} or None for 'and'")
    for noun in (subject, obj):
        if not isinstance(noun, str) or not noun.strip():
            raise BenchmarkError(f"object names must be non-empty strings, got {noun!r}")
    middle = ("and", None) if relation is None else (RELATION_PHRASES[relation], "relation")
    words = [*_noun_phrase(subject, subject_attributes), middle, *_noun_phrase(obj, object_attributes)]
    spans, pos = [], 0
    for word, role in words:
        if role is not None:
            spans.append((pos, pos + len(word), role))
        pos += len(word) + 1
    return " ".join(w for w, _ in words), tuple(spans)


def relation_holds(relation: str, subject_box: Sequence[int], object_box: Sequence[int]) -> bool:
    """Whether ``subject relation object`` is true of two ``(x0, y0, x1, y1)`` boxes (x1, y1 exclusive)."""
    s, o = subject_box, object_box
    tests = {"left of": s[2] <= o[0], "right of": o[2] <= s[0], "above": s[3] <= o[1], "below": o[3] <= s[1]}
    if relation not in tests:
        raise BenchmarkError(f"unknown relation {relation!r}; allowed: {list(RELATIONS)}")
    return bool(tests[relation])


def concept_candidates(spec: CompositionSpec) -> dict[str, list[str]]:
    """Concepts a perturbation may put in place of a span, per role (paper B, appendix I).

    Paper B draws from Visual Genome's object, attribute and relation vocabularies; here the vocabulary is
    the generator's: the spec's classes, the values of its named attributes, and all four relation phrases
    (also those the spec does not draw, like Visual Genome's relations beyond a caption's). Each entry is
    the exact text a span of that role holds, so a replacement keeps the caption grammatical.
    """
    if not isinstance(spec, CompositionSpec):
        raise BenchmarkError(f"concept_candidates needs a CompositionSpec, got {type(spec).__name__}")
    values = {"size": list(SIZES), "colour": list(families.SIMCO_PALETTE)}
    return {
        "object": spec.classes,
        "attribute": [v for a in spec.attributes for v in values[a]],
        "relation": [RELATION_PHRASES[r] for r in RELATIONS],
    }


# -- drawing ------------------------------------------------------------------------------------------------
@dataclass
class _Object:
    name: str
    size: str
    colour: str
    sprite: families.Prepared
    side: int  # of the sprite's square box, px
    along: int = 0  # box start on the scene's axis
    across: int = 0  # box start on the other axis

    def box(self, axis: str) -> tuple[int, int, int, int]:
        """Extent of the visible pixels, ``(x0, y0, x1, y1)`` in the image."""
        x, y = (self.along, self.across) if axis == "horizontal" else (self.across, self.along)
        tx0, ty0, tx1, ty1 = self.sprite.tight
        return (x + tx0, y + ty0, x + tx1, y + ty1)


def _extent_across(obj: _Object, axis: str, shift: int) -> tuple[int, int]:
    tx0, ty0, tx1, ty1 = obj.sprite.tight
    lo, hi = (ty0, ty1) if axis == "horizontal" else (tx0, tx1)
    return obj.across + shift + lo, obj.across + shift + hi


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> int:
    return min(a[1], b[1]) - max(a[0], b[0])


def _place(spec: CompositionSpec, rng: np.random.Generator, first: _Object, second: _Object, axis: str) -> int:
    """Place ``first`` before ``second`` on ``axis`` with seeded slack; return the extra gap drawn.

    Across the axis each object is centred and shifted by a small seeded jitter, chosen so that the two
    visible extents still overlap by at least half the thinner one: then only the captioned relation holds.
    """
    side, margin = spec.image_size, spec.px_margin
    s1, s2 = first.side, second.side
    free = side - 2 * margin - s1 - s2 - spec.px_gap
    extra = int(rng.integers(0, free + 1))
    lead = int(rng.integers(0, free - extra + 1))
    first.along = margin + lead
    second.along = first.along + s1 + spec.px_gap + extra
    cap = max(0, round(JITTER * side))
    first.across, second.across = (side - s1) // 2, (side - s2) // 2
    j1 = min(cap, first.across - margin)
    d1 = int(rng.integers(-j1, j1 + 1))
    a = _extent_across(first, axis, d1)
    j2 = min(cap, second.across - margin)
    shifts = list(range(-j2, j2 + 1))
    b0 = _extent_across(second, axis, 0)
    thin = min(a[1] - a[0], b0[1] - b0[0])
    best = max(_overlap(a, _extent_across(second, axis, d)) for d in shifts)
    need = min(math.ceil(thin / 2), best)
    if need < 1:  # cannot happen with centred sprites; refuse rather than draw an ambiguous scene
        raise RuntimeError(f"objects {first.name!r} and {second.name!r} cannot be aligned across the {axis} axis")
    ok = [d for d in shifts if _overlap(a, _extent_across(second, axis, d)) >= need]
    d2 = ok[int(rng.integers(len(ok)))]
    first.across += d1
    second.across += d2
    return extra


def _draw(spec: CompositionSpec, objects: Sequence[_Object], axis: str) -> np.ndarray:
    side = spec.image_size
    canvas = np.empty((side, side, 3), np.float32)
    canvas[:] = BACKGROUND
    for obj in objects:
        x, y = (obj.along, obj.across) if axis == "horizontal" else (obj.across, obj.along)
        region = canvas[y:y + obj.side, x:x + obj.side]
        region *= obj.sprite.keep
        region += obj.sprite.paint
    return np.rint(canvas).astype(np.uint8)


def _row(scene_id: str, pair_id: str, variant: str, relation: str, subject: _Object, obj: _Object,
         spec: CompositionSpec) -> dict:
    axis = _axis(relation)
    sa, oa = _named(spec.attributes, subject.size, subject.colour, obj.size, obj.colour)
    text, _ = compose(subject.name, obj.name, relation, sa, oa)
    row = {
        "scene_id": scene_id, "pair_id": pair_id, "variant": variant, "path": f"images/{scene_id}.png",
        "caption": text, "relation": relation, "axis": axis, "subject": subject.name, "object": obj.name,
        "subject_size": subject.size, "object_size": obj.size,
        "subject_colour": subject.colour, "object_colour": obj.colour,
    }
    for who, o in (("subject", subject), ("object", obj)):
        row.update(zip((f"{who}_{c}" for c in ("x0", "y0", "x1", "y1")), o.box(axis)))
    holding = [r for r in RELATIONS if relation_holds(r, subject.box(axis), obj.box(axis))]
    if holding != [relation]:
        raise RuntimeError(f"scene {scene_id}: the drawn boxes do not make {relation!r} the only true relation")
    return row


def _scene(spec: CompositionSpec, stream: str, index: int) -> list[tuple[dict, np.ndarray]]:
    """Scene ``index`` of ``stream``: its row and pixels, plus the swapped twin for the benchmark."""
    rng = np.random.default_rng([spec.seed, _STREAMS[stream], index])
    relation = spec.relations[int(rng.integers(len(spec.relations)))]
    classes = spec.classes
    names = [classes[int(k)] for k in rng.choice(len(classes), size=2, replace=False)]
    sizes = [SIZES[int(k)] for k in rng.integers(0, len(SIZES), size=2)]
    palette = families.colors(spec.family)
    colours = [palette[int(k)] for k in rng.integers(0, len(palette), size=2)]
    subject, obj = (
        _Object(n, s, c, families.prepared(spec.family, n, spec.size_px(s), c, MASK_ALPHA), spec.size_px(s))
        for n, s, c in zip(names, sizes, colours)
    )
    axis = _axis(relation)
    first, second = (subject, obj) if relation in ("left of", "above") else (obj, subject)
    extra = _place(spec, rng, first, second, axis)
    pair_id = f"{stream[0]}{index:06d}"
    out = [(_row(pair_id, pair_id, "original", relation, subject, obj, spec), _draw(spec, (subject, obj), axis))]
    if stream == "benchmark":  # Winoground's second image: the same two sprites, places exchanged
        twin_subject, twin_object = dataclasses.replace(obj), dataclasses.replace(subject)
        new_first, new_second = (twin_subject, twin_object) if subject is first else (twin_object, twin_subject)
        new_first.along = first.along
        new_second.along = new_first.along + new_first.side + spec.px_gap + extra
        # the captioned relation now holds with subject and object exchanged
        row = _row(f"{pair_id}-swap", pair_id, "swapped", relation, twin_subject, twin_object, spec)
        out.append((row, _draw(spec, (twin_subject, twin_object), axis)))
    return out


def _named(attributes: Sequence[str], s_size: str, s_colour: str, o_size: str, o_colour: str):
    """The attribute words the captions name, subject's and object's, in caption order (size, colour)."""
    s = tuple(v for a, v in (("size", s_size), ("colour", s_colour)) if a in attributes)
    o = tuple(v for a, v in (("size", o_size), ("colour", o_colour)) if a in attributes)
    return s, o


# -- the cached sets ----------------------------------------------------------------------------------------
@dataclass
class CompositionSet:
    """Generated scenes as one tidy frame (one row per image, ``COLUMNS``) and their captions with roles.

    ``root`` holds ``images/*.png``, ``scenes.csv`` and ``spec.json``; ``frame.path`` is relative to it.
    """

    spec: CompositionSpec
    root: Path
    frame: pd.DataFrame

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        missing = [c for c in COLUMNS if c not in self.frame.columns]
        if missing:
            raise BenchmarkError(f"{self.root}: scene table lacks columns {missing}")
        self._parts = [
            (r.subject, r.object, r.relation, *_named(self.spec.attributes, r.subject_size, r.subject_colour,
                                                      r.object_size, r.object_colour))
            for r in self.frame.itertuples(index=False)
        ]
        built = [compose(*p) for p in self._parts]
        stale = [i for i, ((text, _), cap) in enumerate(zip(built, self.frame.caption)) if text != cap]
        if stale:
            raise BenchmarkError(f"{self.root}: caption of row {stale[0]} does not match its scene "
                                 f"({self.frame.caption.iloc[stale[0]]!r}); delete the folder to regenerate it")
        self.captions: list[str] = [t for t, _ in built]
        self.spans: list[tuple[Span, ...]] = [s for _, s in built]
        self.paths: list[Path] = [self.root / p for p in self.frame.path]

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def attribute_swappable(self) -> np.ndarray:
        """Per scene, whether its two objects differ in a named attribute (else attribute_swap falls back)."""
        return np.array([sa != oa for *_, sa, oa in self._parts], dtype=bool)

    def hard_negatives(self, kind: str) -> list[str]:
        """One false caption per scene, of ``kind`` in ``HARD_NEGATIVE_KINDS`` (see the module docstring)."""
        if kind not in HARD_NEGATIVE_KINDS:
            raise BenchmarkError(f"unknown hard-negative kind {kind!r}; allowed: {list(HARD_NEGATIVE_KINDS)}")
        out = []
        for subject, obj, relation, sa, oa in self._parts:
            if kind == "relation_swap":
                out.append(compose(obj, subject, relation, sa, oa)[0])
            elif kind == "attribute_swap" and sa != oa:
                out.append(compose(subject, obj, relation, oa, sa)[0])
            else:
                out.append(compose(subject, obj, OPPOSITE[relation], sa, oa)[0])
        return out


def _folder(spec: CompositionSpec, stream: str) -> Path:
    if stream == "train":
        return cache_dir() / "compositional" / f"{spec.family}-{spec.key()}"
    key = hashlib.sha256(f"{spec.key()}|{stream}".encode()).hexdigest()[:16]
    return cache_dir() / "compositional" / f"{spec.family}-{stream}-{key}"


def _load(spec: CompositionSpec, folder: Path) -> CompositionSet:
    text_columns = [c for c in COLUMNS if c not in BOX_COLUMNS]
    try:
        frame = pd.read_csv(folder / "scenes.csv", dtype={c: str for c in text_columns}, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, FileNotFoundError) as e:
        raise BenchmarkError(f"{folder}: unreadable scene table ({e}); delete the folder to regenerate it") from None
    return CompositionSet(spec, folder, frame)


def _generate(spec: CompositionSpec, stream: str, progress: bool) -> CompositionSet:
    """Render ``spec.images`` scenes of ``stream`` into the cache once; the folder appears only when complete."""
    def make(folder: Path) -> None:
        rows = []
        # overwrite=True: a concurrent run that finished first wrote the same bytes
        with atomic_folder(folder, overwrite=True) as tmp:
            (tmp / "images").mkdir()
            for i in tqdm(range(spec.images), desc=f"{spec.family} {stream} scenes", unit="scene",
                          disable=not progress):
                for row, rgb in _scene(spec, stream, i):
                    write_png(tmp / row["path"], rgb)
                    rows.append(row)
            pd.DataFrame(rows, columns=COLUMNS).to_csv(tmp / "scenes.csv", index=False, lineterminator="\n")
            meta = {"spec": spec.to_dict(), "stream": stream, "generator_version": GENERATOR_VERSION,
                    "credit": families.OPENMOJI_CREDIT if spec.family == "comco" else ""}
            (tmp / "spec.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")

    return cached_folder(_folder(spec, stream), "scenes.csv", lambda folder: _load(spec, folder), make)


def generate_compositions(spec: CompositionSpec, progress: bool = True) -> CompositionSet:
    """The training scenes of ``spec``, rendered once into ``cache_dir()/compositional/<family>-<key>``."""
    if not isinstance(spec, CompositionSpec):
        raise BenchmarkError(f"generate_compositions needs a CompositionSpec, got {type(spec).__name__}")
    return _generate(spec, "train", progress)


def _check_n(n) -> int:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise BenchmarkError(f"the benchmark needs a positive integer number of scenes, got {n!r}")
    return int(n)


def benchmark_scenes(spec: CompositionSpec, n: int, progress: bool = True) -> CompositionSet:
    """``n`` unseen scenes (seed stream 1) and their swapped twins, cached like the training scenes.

    Rows come in pairs sharing ``pair_id``: ``variant`` "original", then "swapped" (same sprites, places
    exchanged, so the same relation holds with subject and object exchanged). ``spec.images`` is ignored.
    """
    if not isinstance(spec, CompositionSpec):
        raise BenchmarkError(f"benchmark_scenes needs a CompositionSpec, got {type(spec).__name__}")
    return _generate(dataclasses.replace(spec, images=_check_n(n)), "benchmark", progress)


def synthetic_benchmark(spec: CompositionSpec, n: int, progress: bool = True) -> dict[str, list]:
    """ARO- and Winoground-style items on ``n`` unseen scenes of ``spec``, per subset of ``BENCHMARK_SUBSETS``.

    * "relation" (ARO VG-Relation): "a cat to the left of a dog" vs "a dog to the left of a cat";
    * "attribute" (ARO VG-Attribution): "a large cat and a small dog" vs "a small cat and a large dog", only
      for scenes whose named attributes differ (none when the spec names no attribute);
    * "relation_replace": "a cat to the left of a dog" vs "a cat to the right of a dog";
    * "winoground": :class:`PairItem` of the scene and its swapped twin, "a cat to the left of a dog" /
      "a dog to the left of a cat".

    Relation captions name no attributes, as ARO's relation captions do, so only the relation decides.
    """
    scenes = benchmark_scenes(spec, n, progress=progress)
    frame = scenes.frame
    out: dict[str, list] = {s: [] for s in BENCHMARK_SUBSETS}
    for k in range(0, len(frame), 2):
        a, b = frame.iloc[k], frame.iloc[k + 1]
        if (a.variant, b.variant) != ("original", "swapped") or a.pair_id != b.pair_id:
            raise BenchmarkError(f"{scenes.root}: rows {k}, {k + 1} are not an original and its swapped twin")
        image, twin = scenes.paths[k], scenes.paths[k + 1]
        true = compose(a.subject, a.object, a.relation)[0]
        out["relation"].append(ChoiceItem(f"relation-{a.pair_id}", "relation", image, true,
                                          (compose(a.object, a.subject, a.relation)[0],)))
        out["relation_replace"].append(ChoiceItem(f"relation_replace-{a.pair_id}", "relation_replace", image, true,
                                                  (compose(a.subject, a.object, OPPOSITE[a.relation])[0],)))
        sa, oa = _named(spec.attributes, a.subject_size, a.subject_colour, a.object_size, a.object_colour)
        if sa != oa:
            out["attribute"].append(ChoiceItem(f"attribute-{a.pair_id}", "attribute", image,
                                               compose(a.subject, a.object, None, sa, oa)[0],
                                               (compose(a.subject, a.object, None, oa, sa)[0],)))
        out["winoground"].append(PairItem(f"winoground-{a.pair_id}", "winoground", (image, twin),
                                          (true, compose(b.subject, b.object, b.relation)[0])))
    return out
