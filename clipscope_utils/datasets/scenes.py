"""Controlled multi-object scenes (ComCO-like / SimCO-like), generated offline and deterministically.

Paper A renders its scenes with Blender: one large object and several small ones in fixed slots,
captions naming them in a known order. Here a ``SceneSpec`` fixes every knob, every random choice of
image ``i`` with ``n`` objects comes from ``default_rng([seed, n, i])`` (so the bytes do not depend on
the number of worker processes), images stream to disk and the dataset appears at its final path
only when complete.

An optional *class-size prior* (``size_prior``, ``prior_classes``) makes some classes usually the large
object, as large things are in real photos, so paper A's Claim 1 (encoders favour objects that are
large in the real world) can be tested causally on models trained on such scenes.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import itertools
import json
import os
import shutil
from dataclasses import dataclass, field
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from tqdm.auto import tqdm

from ..paths import cache_dir, cached_folder
from . import families
from .captions import ORDER_POLICIES, TEMPLATES, caption, caption_order
from .png import write_png
from .tables import CAPTION_COLUMNS, IMAGE_COLUMNS, OBJECT_COLUMNS, DatasetError, SceneSet, atomic_folder

GENERATOR_VERSION = 1  # bump when the pixels or tables for an unchanged spec would change
MAX_OBJECTS = 5
LAYOUTS = ("slots", "free")
# Slot anchors as fractions of the free range: 0 = against the top/left margin, 1 = bottom/right.
SLOT_ANCHORS = {"UL": (0.0, 0.0), "UR": (1.0, 0.0), "M": (0.5, 0.5), "BL": (0.0, 1.0), "BR": (1.0, 1.0)}
SLOT_LAYOUTS = {
    1: ("M",),
    2: ("UL", "BR"),
    3: ("UL", "M", "BR"),
    4: ("UL", "UR", "BL", "BR"),
    5: ("UL", "UR", "M", "BL", "BR"),
}
BACKGROUNDS = {"white": (255, 255, 255), "gray": (128, 128, 128), "black": (0, 0, 0)}
MASK_ALPHA = 128  # a pixel belongs to an object when the sprite's alpha there is at least this
_FREE_TRIES = 200


@lru_cache(maxsize=64)
def _background_rgb(background: str) -> tuple[int, int, int]:
    if background in BACKGROUNDS:
        return BACKGROUNDS[background]
    if len(background) == 7 and background.startswith("#"):
        try:
            return tuple(int(background[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
        except ValueError:
            pass
    raise DatasetError(f"unknown background {background!r}; allowed: {sorted(BACKGROUNDS)} or '#rrggbb'")


@dataclass(frozen=True)
class SceneSpec:
    """Every knob of a generated dataset; equal specs give byte-identical datasets.

    Sizes are fractions of the image side (the side of the object's square box), so one spec
    scales from 64 px training images to 512 px paper-size images.
    """

    family: str = "comco"
    objects: tuple[int, ...] = (2, 3, 4, 5)  # object counts; ``images`` scenes are made per count
    images: int = 100
    image_size: int = 64
    large_size: float = 0.38
    small_size: float = 0.18
    layout: str = "slots"  # "slots": the paper's fixed slots; "free": random non-overlapping places
    large_slot: str = "random"  # slot of the large object in the "slots" layout, or "random"
    order: str = "largest_first"
    templates: tuple[str, ...] = ("and",)
    single_sizes: tuple[float, ...] = ()  # sizes of the single-object references; () = (large, small)
    # slots of the single-object references; () = the centre only. Every slot of the layouts: the position
    # control of IOR (a centred reference resembles a scene whose large object sits in the centre slot)
    single_slots: tuple[str, ...] = ()
    background: str = "white"
    class_names: tuple[str, ...] = ()  # restrict to these classes; () = all of the family
    margin: float = 0.02
    seed: int = 0
    # Class-size prior: with probability ``size_prior`` a scene of ``objects`` (a 1-object one too: its lone
    # object is drawn large) takes its large object from ``prior_classes`` and its small ones from the other
    # classes; otherwise classes are drawn as without a prior. The single-object references are unaffected.
    size_prior: float = 0.0
    prior_classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("objects", "templates", "single_sizes", "single_slots", "class_names", "prior_classes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        self.validate()
        # canonical (class-list) order: the draw does not depend on the order given, so neither does the key
        chosen = set(self.prior_classes)
        object.__setattr__(self, "prior_classes", tuple(c for c in self.classes if c in chosen))

    # -- validation: everything impossible is refused before anything is written -------------------
    def validate(self) -> None:
        if self.family not in families.FAMILIES:
            raise DatasetError(f"unknown object family {self.family!r}; allowed: {list(families.FAMILIES)}")
        known = families.classes(self.family)
        unknown = [c for c in self.class_names if c not in known]
        if unknown:
            raise DatasetError(f"classes {unknown} are not in family {self.family!r}; known: {known}")
        if len(set(self.class_names)) != len(self.class_names):
            raise DatasetError("class_names has duplicates")
        if not self.objects or any(not isinstance(n, int) or not 1 <= n <= MAX_OBJECTS for n in self.objects):
            raise DatasetError(f"objects {list(self.objects)}: each count must be an integer in 1..{MAX_OBJECTS}")
        for name in ("objects", "templates", "single_sizes", "single_slots"):
            values = list(getattr(self, name))
            if len(set(values)) != len(values):
                raise DatasetError(f"{name} {values} repeats a value: each would make the same images again")
        n_classes = len(self.classes)
        if max(self.objects) > n_classes:
            raise DatasetError(f"{max(self.objects)} objects per image but only {n_classes} classes to draw from")
        if not isinstance(self.images, int) or self.images < 0:
            raise DatasetError(f"images must be a non-negative integer, got {self.images!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise DatasetError(f"seed must be an integer in [0, 2**63 - 1], got {self.seed!r}")
        if not isinstance(self.image_size, int) or not 16 <= self.image_size <= 1024:
            raise DatasetError(f"image_size must be an integer in 16..1024, got {self.image_size!r}")
        sizes = [("large_size", self.large_size), ("small_size", self.small_size)]
        for name, v in sizes + [("single_sizes", v) for v in self.single_sizes]:
            if not 0 < v <= 1:
                raise DatasetError(f"{name} must be a fraction of the image side in (0, 1], got {v!r}")
        if self.small_size >= self.large_size:
            raise DatasetError(
                f"small_size {self.small_size} must be below large_size {self.large_size} (exactly one large object)"
            )
        if round(self.small_size * self.image_size) < 4:
            raise DatasetError(f"small objects would be under 4 px at image_size {self.image_size}")
        if not 0 <= self.margin < 0.25:
            raise DatasetError(f"margin must be in [0, 0.25), got {self.margin!r}")
        if self.layout not in LAYOUTS:
            raise DatasetError(f"unknown layout {self.layout!r}; allowed: {list(LAYOUTS)}")
        if self.order not in ORDER_POLICIES:
            raise DatasetError(f"unknown order policy {self.order!r}; allowed: {list(ORDER_POLICIES)}")
        bad = [t for t in self.templates if t not in TEMPLATES]
        if bad or not self.templates:
            raise DatasetError(f"unknown caption templates {bad}; allowed: {sorted(TEMPLATES)} (at least one)")
        _background_rgb(self.background)
        bad = [s for s in self.single_slots if s not in SLOT_ANCHORS]
        if bad:
            raise DatasetError(f"single_slots {bad} are not slots; slots: {list(SLOT_ANCHORS)}")
        self._check_prior()
        if self.large_slot != "random":
            if self.layout != "slots":
                raise DatasetError("large_slot can only be fixed in the 'slots' layout")
            missing = [n for n in self.objects if self.large_slot not in SLOT_LAYOUTS[n]]
            if missing:
                raise DatasetError(
                    f"large_slot {self.large_slot!r} is not a slot of the {missing}-object layout; "
                    f"slots: { {n: SLOT_LAYOUTS[n] for n in self.objects} }"
                )
        self._check_fit()

    def _check_prior(self) -> None:
        p = self.size_prior
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise DatasetError(f"size_prior must be a probability in [0, 1], got {p!r}")
        if any(not isinstance(c, str) for c in self.prior_classes):
            raise DatasetError(f"prior_classes must be class names, got {list(self.prior_classes)}")
        known = self.classes
        unknown = [c for c in self.prior_classes if c not in known]
        if unknown:
            raise DatasetError(f"prior_classes {unknown} are not among the spec's classes ({len(known)}: {known})")
        if len(set(self.prior_classes)) != len(self.prior_classes):
            raise DatasetError("prior_classes has duplicates")
        if p > 0:
            if not self.prior_classes:
                raise DatasetError(f"size_prior {p} needs prior_classes (the classes usually drawn large)")
            others = len(known) - len(self.prior_classes)
            if max(self.objects) - 1 > others:
                raise DatasetError(
                    f"with the size prior the small objects come from the {others} classes outside prior_classes, "
                    f"too few for {max(self.objects)} objects per image; name fewer prior_classes"
                )

    def _check_fit(self) -> None:
        """Refuse sizes whose objects cannot be placed without overlap (or outside the image)."""
        side = self.image_size
        lo, sm = self.px(self.large_size), self.px(self.small_size)
        room = side - 2 * self.px_margin
        if lo > room:
            raise DatasetError(f"large_size {self.large_size} does not fit inside the margins of a {side} px image")
        for n in self.objects:
            if n == 1:
                continue
            if self.layout == "slots":
                for big in self.large_slots(n):
                    boxes = _slot_boxes(n, big, side, lo, sm, self.px_margin)
                    for (i, a), (j, b) in itertools.combinations(enumerate(boxes), 2):
                        if _overlap(a, b):
                            raise DatasetError(
                                f"{n} objects with large_size {self.large_size} and small_size {self.small_size} "
                                f"do not fit the slot layout {SLOT_LAYOUTS[n]} at {side} px: with the large object "
                                f"at {big}, slots {SLOT_LAYOUTS[n][i]} and {SLOT_LAYOUTS[n][j]} overlap; "
                                "use smaller sizes or layout='free'"
                            )
            else:
                filled = (lo * lo + (n - 1) * sm * sm) / (room * room)
                if filled > 0.5:
                    raise DatasetError(
                        f"{n} objects with large_size {self.large_size} and small_size {self.small_size} cover "
                        f"{filled:.0%} of the image; random non-overlapping placement needs at most 50%"
                    )

    # -- derived --------------------------------------------------------------------------------
    @property
    def classes(self) -> list[str]:
        return list(self.class_names) if self.class_names else families.classes(self.family)

    @property
    def px_margin(self) -> int:
        return max(1, round(self.margin * self.image_size)) if self.margin > 0 else 0

    def px(self, fraction: float) -> int:
        return max(1, round(fraction * self.image_size))

    def large_slots(self, n: int) -> tuple[str, ...]:
        return SLOT_LAYOUTS[n] if self.large_slot == "random" else (self.large_slot,)

    def single_fractions(self) -> tuple[float, ...]:
        return self.single_sizes or (self.large_size, self.small_size)

    def reference_slots(self) -> tuple[str, ...]:
        return self.single_slots or ("M",)

    def to_dict(self) -> dict:
        """The spec as JSON-ready data (the cache key's material and ``dataset.json``'s ``spec``).

        Without a prior (``size_prior == 0``) the prior fields are left out: the generator then draws
        exactly as before they existed, so every such dataset keeps its key and ``dataset.json`` bytes
        (``prior_classes`` alone changes nothing, so it does not split the cache either).
        """
        d = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}
        if not self.size_prior:
            d.pop("size_prior")
            d.pop("prior_classes")
        if not self.single_slots:  # centre-only references, as before the knob existed: same key
            d.pop("single_slots")
        return d

    def key(self) -> str:
        """Hash of everything that determines the dataset's bytes (the cache key)."""
        payload = json.dumps({"spec": self.to_dict(), "generator": GENERATOR_VERSION}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _slot_box(slot: str, side: int, size: int, margin: int) -> tuple[int, int, int, int]:
    ax, ay = SLOT_ANCHORS[slot]
    free = side - 2 * margin - size
    x0, y0 = margin + round(ax * free), margin + round(ay * free)
    return (x0, y0, x0 + size, y0 + size)


def _slot_boxes(n: int, big: str, side: int, lo: int, sm: int, margin: int) -> list[tuple[int, int, int, int]]:
    return [_slot_box(s, side, lo if s == big else sm, margin) for s in SLOT_LAYOUTS[n]]


def _free_boxes(rng: np.random.Generator, side: int, sizes: list[int], margin: int) -> list[tuple[int, int, int, int]]:
    """Random non-overlapping boxes (largest placed first); DatasetError if no placement is found."""
    for _ in range(_FREE_TRIES):
        boxes: list[tuple[int, int, int, int]] = []
        for s in sizes:
            for _ in range(_FREE_TRIES):
                x0, y0 = (int(v) for v in rng.integers(margin, side - margin - s + 1, size=2))
                box = (x0, y0, x0 + s, y0 + s)
                if not any(_overlap(box, b) for b in boxes):
                    boxes.append(box)
                    break
            else:
                break
        if len(boxes) == len(sizes):
            return boxes
    raise DatasetError(f"could not place {len(sizes)} objects of sizes {sizes} px without overlap in {side} px")


@dataclass
class _Scene:
    """One rendered image: pixels, label map and its table rows."""

    image_id: str
    rgb: np.ndarray
    mask: np.ndarray
    image_row: tuple
    object_rows: list[tuple] = field(default_factory=list)
    caption_rows: list[tuple] = field(default_factory=list)


@lru_cache(maxsize=16)
def _class_ids(spec: SceneSpec) -> dict[str, int]:
    return {c: i for i, c in enumerate(spec.classes)}


def _compose(
    spec: SceneSpec, image_id: str, kind: str, names: list[str], colors: list[str], boxes, large_idx: int,
    slots: list[str], large_slot: str, rng: np.random.Generator,
) -> _Scene:
    """Draw the objects onto the background and build the image's rows."""
    side = spec.image_size
    canvas = np.empty((side, side, 3), np.float32)
    canvas[:] = _background_rgb(spec.background)
    labels = np.zeros((side, side), np.uint8)
    class_ids = _class_ids(spec)
    objects = []
    for k, (name, color, box) in enumerate(zip(names, colors, boxes)):
        x0, y0, x1, y1 = box
        spr = families.prepared(spec.family, name, x1 - x0, color, MASK_ALPHA)
        region = canvas[y0:y1, x0:x1]
        region *= spr.keep
        region += spr.paint
        labels[y0:y1, x0:x1][spr.solid] = k + 1
        tx0, ty0, tx1, ty1 = spr.tight
        objects.append((name, color, (x0 + tx0, y0 + ty0, x0 + tx1, y0 + ty1), spr.area))
    n = len(names)
    ranks = [1 if k == large_idx else 2 for k in range(n)]
    centers = [((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in boxes]
    order = caption_order(ranks, centers, spec.order, rng) if n > 1 else [0]
    position = {k: p + 1 for p, k in enumerate(order)}
    ordered = [names[k] for k in order]
    obj_rows = [
        (image_id, k, name, class_ids[name], ranks[k] == 1 and n > 1, ranks[k] if n > 1 else 1, slots[k],
         *tight, area, color, position[k])
        for k, (name, color, tight, area) in enumerate(objects)
    ]
    cap_rows = [(image_id, t, caption(ordered, t), "|".join(ordered)) for t in spec.templates]
    image_row = (image_id, f"images/{image_id}.png", kind, n, side, side, large_slot)
    return _Scene(image_id, np.rint(canvas).astype(np.uint8), labels, image_row, obj_rows, cap_rows)


def _prior_draw(spec: SceneSpec, n: int, rng: np.random.Generator) -> list[str] | None:
    """Classes of a prior scene, the large object first, or None when this scene draws without the prior.

    Without a prior no random number is consumed, so prior-free specs stay byte-identical to the
    datasets generated before the prior existed.
    """
    if not spec.size_prior or rng.random() >= spec.size_prior:
        return None
    prior = set(spec.prior_classes)
    large = [c for c in spec.classes if c in prior]
    small = [c for c in spec.classes if c not in prior]
    big = large[int(rng.integers(len(large)))]
    return [big, *(small[int(i)] for i in rng.choice(len(small), size=n - 1, replace=False))]


def _multi_scene(spec: SceneSpec, n: int, index: int) -> _Scene:
    rng = np.random.default_rng([spec.seed, n, index])
    classes = spec.classes
    prior_names = _prior_draw(spec, n, rng)
    if prior_names is None:
        names = [classes[int(i)] for i in rng.choice(len(classes), size=n, replace=False)]
    else:
        names = prior_names
    palette = families.colors(spec.family)
    colors = [palette[int(i)] for i in rng.integers(0, len(palette), size=n)]
    lo, sm = spec.px(spec.large_size), spec.px(spec.small_size)
    if spec.layout == "slots":
        choices = spec.large_slots(n)
        big = choices[int(rng.integers(len(choices)))]
        slots = list(SLOT_LAYOUTS[n])
        large_idx = slots.index(big)
        boxes = _slot_boxes(n, big, spec.image_size, lo, sm, spec.px_margin)
    else:
        boxes = _free_boxes(rng, spec.image_size, [lo] + [sm] * (n - 1), spec.px_margin)
        # objects are indexed in reading order, like the official file names (slot order)
        perm = sorted(range(n), key=lambda k: ((boxes[k][1] + boxes[k][3]), (boxes[k][0] + boxes[k][2])))
        boxes = [boxes[k] for k in perm]
        large_idx = perm.index(0)
        slots = [""] * n
        big = ""
    if prior_names is not None:  # the prior's large class goes where the large box is
        names.insert(large_idx, names.pop(0))
    return _compose(spec, f"m{n}-{index:06d}", "multi", names, colors, boxes, large_idx, slots, big, rng)


def _single_scene(spec: SceneSpec, class_id: int, size_idx: int, slot: str = "M") -> _Scene:
    """A class alone at one reference size, centred or at a layout slot (same colour at every slot: the
    references of a class differ only in where the object is)."""
    rng = np.random.default_rng([spec.seed, 0, class_id, size_idx])
    name = spec.classes[class_id]
    palette = families.colors(spec.family)
    color = palette[int(rng.integers(len(palette)))]
    size = spec.px(spec.single_fractions()[size_idx])
    box = _slot_box(slot, spec.image_size, size, 0 if slot == "M" else spec.px_margin)  # as in the scenes
    image_id = f"s{size_idx}-{class_id:03d}" + ("" if slot == "M" else f"-{slot}")
    return _compose(spec, image_id, "single", [name], [color], [box], 0, [slot], "", rng)


def _jobs(spec: SceneSpec) -> Iterator[tuple]:
    """Every image to render, singles first, lazily (the list would grow with the dataset)."""
    for s in range(len(spec.single_fractions())):
        for c in range(len(spec.classes)):
            for slot in spec.reference_slots():
                yield ("single", c, (s, slot))
    for n in spec.objects:
        for i in range(spec.images):
            yield ("multi", n, i)


def count_images(spec: SceneSpec) -> int:
    """How many images ``spec`` makes (single-object references included)."""
    singles = len(spec.single_fractions()) * len(spec.reference_slots()) * len(spec.classes)
    return singles + len(spec.objects) * spec.images


#: bytes on disk per image pixel (image PNG, mask PNG and table rows), measured on 64 px scenes: about 2.3 kB
BYTES_PER_PIXEL = 0.6


def estimate_bytes(spec: SceneSpec) -> int:
    """Disk space ``spec`` will take, from the measured size of generated scenes."""
    return int(count_images(spec) * spec.image_size ** 2 * BYTES_PER_PIXEL)


def check_disk(spec: SceneSpec, out: Path) -> None:
    """Refuse, before writing anything, a dataset that cannot fit on the disk of ``out``."""
    need = estimate_bytes(spec)
    folder = next(p for p in (Path(out), *Path(out).parents) if p.exists())
    free = shutil.disk_usage(folder).free
    if need > 0.9 * free:
        raise DatasetError(f"{count_images(spec):,} images of {spec.image_size} px need about {need / 1e9:.1f} GB "
                           f"but {folder} has {free / 1e9:.1f} GB free (the limit is 90 % of it); lower the number "
                           "of images or the image size, or free space")


def render(spec: SceneSpec, job: tuple) -> _Scene:
    """Render one job of :func:`_jobs` (``("single", class_id, (size_idx, slot))`` or ``("multi", n, index)``)."""
    kind, a, b = job
    return _single_scene(spec, a, *b) if kind == "single" else _multi_scene(spec, a, b)


def _write_job(args: tuple) -> tuple:
    """Render one image and write its PNGs (in the worker, so encoding runs in parallel); return its rows."""
    spec, job, folder = args
    scene = render(spec, job)
    write_png(folder / "images" / f"{scene.image_id}.png", scene.rgb)
    write_png(folder / "masks" / f"{scene.image_id}.png", scene.mask)
    return scene.image_row, scene.object_rows, scene.caption_rows


def _warm_sprites(spec: SceneSpec) -> None:
    """Render every sprite once in the parent so forked workers inherit the cache."""
    sizes = {spec.px(spec.large_size), spec.px(spec.small_size), *map(spec.px, spec.single_fractions())}
    for name, size, color in itertools.product(spec.classes, sizes, families.colors(spec.family)):
        families.sprite(spec.family, name, size, color)


def _written(spec: SceneSpec, folder: Path, workers: int) -> Iterable[tuple]:
    """Rows of every image, in job order, rendering in ``workers`` processes."""
    jobs = ((spec, j, folder) for j in _jobs(spec))
    if workers <= 1 or count_images(spec) < 256:
        yield from map(_write_job, jobs)
        return
    _warm_sprites(spec)
    with get_context("fork" if os.name == "posix" else "spawn").Pool(workers) as pool:
        yield from pool.imap(_write_job, jobs, chunksize=64)


def generate(spec: SceneSpec, out: str | Path, workers: int | None = None, overwrite: bool = False,
             progress: bool = True, load: bool = True) -> SceneSet | Path:
    """Render ``spec`` to folder ``out`` (images/, masks/, images.csv, objects.csv, captions.csv, dataset.json).

    The folder appears only once complete; memory stays flat (rows stream to the CSV files). Returns
    the loaded SceneSet, or just the folder with ``load=False`` (for very large datasets).
    """
    spec.validate()
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    if workers < 1:
        raise DatasetError(f"workers must be at least 1, got {workers}")
    check_disk(spec, Path(out))
    total = count_images(spec)
    with atomic_folder(Path(out), overwrite=overwrite) as tmp:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        files = {name: open(tmp / f"{name}.csv", "w", newline="", encoding="utf-8") for name in ("images", "objects", "captions")}
        try:
            writers = {name: csv.writer(f, lineterminator="\n") for name, f in files.items()}
            writers["images"].writerow(IMAGE_COLUMNS)
            writers["objects"].writerow(OBJECT_COLUMNS)
            writers["captions"].writerow(CAPTION_COLUMNS)
            bar = tqdm(total=total, desc=f"{spec.family} scenes", unit="img", disable=not progress)
            for image_row, object_rows, caption_rows in _written(spec, tmp, workers):
                writers["images"].writerow(image_row)
                writers["objects"].writerows(object_rows)
                writers["captions"].writerows(caption_rows)
                bar.update()
            bar.close()
        finally:
            for f in files.values():
                f.close()
        meta = {
            "source": "generated",
            "family": spec.family,
            "spec": spec.to_dict(),
            "generator_version": GENERATOR_VERSION,
            "credit": families.OPENMOJI_CREDIT if spec.family == "comco" else "",
            "classes": spec.classes,
        }
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return SceneSet.load(out) if load else Path(out)


def generate_cached(spec: SceneSpec, workers: int | None = None, progress: bool = True) -> SceneSet:
    """The dataset of ``spec`` from the cache, generated once (keyed by every knob and the generator version)."""
    folder = cache_dir() / "datasets" / f"{spec.family}-{spec.key()}"
    return cached_folder(folder, "dataset.json", SceneSet.load,
                         lambda out: generate(spec, out, workers=workers, progress=progress, load=False))
