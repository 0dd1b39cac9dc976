"""From a :class:`SceneSet` to the queries and references of the probes.

Queries carry their objects as class ids in *position order*: caption order for text (TOR, TOC),
size order for images (IOR, IOC: the large object first, then the small ones in slot order). The
probes compare class ids, never names, so "car" can never match "carrot".
"""

from __future__ import annotations

import math
import re
from typing import Sequence

import numpy as np
import pandas as pd

from ..datasets.captions import TEMPLATES, caption
from ..datasets.tables import SceneSet
from . import ProbeError


#: where the single-object references of a generated set sit (see ``reference_images``)
REFERENCE_POSITIONS = ("centre", "slots")

def _class_index(scenes: SceneSet) -> dict[str, int]:
    return {name: i for i, name in enumerate(scenes.classes)}


def caption_queries(scenes: SceneSet, template: str) -> pd.DataFrame:
    """Multi-object captions of one template: ``query_id``, ``image_id``, ``n_objects``, ``text``, ``objects``.

    An image may have several captions (COCO has about five); only captions whose ``order`` names at least
    two objects are kept (TOR needs two), objects in caption order. ``query_id`` is the image id, or
    ``"<image_id>#<k>"`` (k = the caption's 1-based place among the image's captions of this template) for
    images with more than one kept caption.
    """
    caps = scenes.multi().captions
    if template not in set(caps.template):
        raise ProbeError(f"no multi-object captions with template {template!r}; the dataset has "
                         f"{sorted(set(caps.template))}")
    caps = caps[caps.template == template]
    k = caps.groupby("image_id", sort=False).cumcount().to_numpy() + 1
    names = [[n for n in str(order).split("|") if n] for order in caps.order]
    keep = np.array([len(n) >= 2 for n in names], dtype=bool)
    if not keep.any():
        raise ProbeError(f"no caption of template {template!r} names two or more objects; TOR needs two")
    caps, k, names = caps[keep], k[keep], [n for n, kept in zip(names, keep) if kept]
    index = _class_index(scenes)
    unknown = sorted({n for order in names for n in order if n not in index})
    if unknown:
        raise ProbeError(f"caption objects not in the class list: {unknown[:10]}")
    objects = [tuple(index[n] for n in order) for order in names]
    image = caps.image_id.to_numpy()
    several = caps.image_id.map(caps.image_id.value_counts()).to_numpy() > 1
    ids = [f"{i}#{j}" if many else i for i, j, many in zip(image, k, several)]
    return pd.DataFrame({"query_id": ids, "image_id": image, "n_objects": [len(o) for o in objects],
                         "text": caps.text.to_numpy(), "objects": objects})


def class_combinations(classes: Sequence[str], n_objects: int, limit: int, seed: int = 0,
                       template: str = "bare") -> pd.DataFrame:
    """The authors' TOR queries: combinations of ``n_objects`` distinct classes, each in a seeded random order.

    All C(k, n) combinations when there are at most ``limit``, else ``limit`` distinct ones drawn with the
    seed. Each combination's caption order is its own seeded permutation, so position is not tied to class
    index. Columns as :func:`caption_queries` (``query_id``, ``n_objects``, ``text`` in ``template``,
    ``objects``).
    """
    k = len(classes)
    if int(n_objects) != n_objects or not 1 <= n_objects <= k:
        raise ProbeError(f"n_objects must be an integer in 1..{k} (the number of classes), got {n_objects!r}")
    if int(limit) != limit or limit < 1:
        raise ProbeError(f"limit must be a positive integer (how many combinations at most), got {limit!r}")
    if template not in TEMPLATES:
        raise ProbeError(f"unknown template {template!r}; allowed: {sorted(TEMPLATES)}")
    n, total = int(n_objects), math.comb(k, int(n_objects))
    rng = np.random.default_rng([seed, n])
    if total <= limit:
        ranks = range(total)
    elif total < 2**63:
        ranks = sorted(int(r) for r in rng.choice(total, size=int(limit), replace=False))
    else:
        raise ProbeError(f"C({k}, {n}) = {total} combinations are too many to sample from; use fewer objects")
    combos = [_unrank(r, k, n) for r in ranks]
    objects = [tuple(c[int(j)] for j in rng.permutation(n)) for c in combos]
    return pd.DataFrame({"query_id": [f"c{n}-{i:06d}" for i in range(len(objects))], "n_objects": n,
                         "text": [caption([classes[c] for c in o], template) for o in objects], "objects": objects})


def _unrank(rank: int, k: int, n: int) -> tuple[int, ...]:
    """The ``rank``-th n-subset of range(k) in lexicographic order (so a drawn index is one combination)."""
    out, first = [], 0
    while n:
        count = math.comb(k - first - 1, n - 1)  # subsets whose smallest remaining member is ``first``
        if rank < count:
            out.append(first)
            n -= 1
        else:
            rank -= count
        first += 1
    return tuple(out)


def covered_queries(queries: pd.DataFrame, ref_classes: Sequence[int], classes: Sequence[str], probe: str,
                    unit: str = "images") -> tuple[pd.DataFrame, str | None]:
    """The queries all of whose objects have a reference, and a note on those left out (None when none were).

    Real data has single-object reference images for some classes only (COCO's come from DomainNet); a
    query with an object that has no reference could never retrieve it, so it is left out, and said so.
    """
    have = set(int(c) for c in ref_classes)
    ok = np.array([all(int(c) in have for c in o) for o in queries.objects], dtype=bool)
    if ok.all():
        return queries, None
    lacking = sorted({int(c) for o in queries.objects[~ok] for c in o if int(c) not in have})
    names = ", ".join(repr(classes[c]) for c in lacking[:5]) + (", ..." if len(lacking) > 5 else "")
    if not ok.any():
        raise ProbeError(f"{probe}: every one of the {len(ok)} {unit} has a class without a reference image "
                         f"(e.g. {names}); add reference images for those classes")
    note = (f"{probe}: {int((~ok).sum())} of {len(ok)} {unit} left out: their classes lack a reference image "
            f"(e.g. {names})")
    return queries[ok].reset_index(drop=True), note


def single_captions(classes: list[str], template: str) -> pd.DataFrame:
    """One single-object caption per class, in the template of the queries (``class_id``, ``text``);
    ``"bare"`` gives the name itself ("person")."""
    if template not in TEMPLATES:
        raise ProbeError(f"template {template!r} has no single-object form; allowed: {sorted(TEMPLATES)} (for "
                         f"captions of a dataset such as 'coco', pass them as the query template)")
    return pd.DataFrame({"class_id": range(len(classes)), "class_name": classes,
                         "text": [caption([c], template) for c in classes]})


def image_queries(scenes: SceneSet) -> pd.DataFrame:
    """Multi-object images: ``query_id``, ``n_objects``, ``path``, ``objects`` (large first, then slot order)."""
    multi = scenes.multi()
    if multi.images.empty:
        raise ProbeError("the dataset has no multi-object images")
    objs = multi.objects.sort_values(["image_id", "size_rank", "object_index"], kind="stable")
    grouped = objs.groupby("image_id", sort=False).class_id.apply(lambda s: tuple(int(c) for c in s))
    images = multi.images.set_index("image_id")
    ids = [i for i in multi.images.image_id if i in grouped.index]
    return pd.DataFrame({"query_id": ids, "n_objects": [len(grouped[i]) for i in ids],
                         "path": [str(scenes.root / images.at[i, "path"]) for i in ids],
                         "objects": [grouped[i] for i in ids]})


def reference_images(scenes: SceneSet, size: str = "large", position: str = "centre") -> pd.DataFrame:
    """Single-object reference images per class: ``class_id``, ``image_id``, ``path``.

    Generated sets hold each class at the large (``s0-``) and small (``s1-``) size; ``size``
    picks one ("large", "small") or keeps both ("all": a class then scores its best reference).
    ``position`` "centre" keeps the centred references; "slots" also every slot reference the set has
    (``SceneSpec.single_slots``), so a class scores its reference nearest in position too. Other
    sources keep all their singles.
    """
    allowed = {"large": 0, "small": 1, "all": None}
    if size not in allowed:
        raise ProbeError(f"reference size must be one of {sorted(allowed)}, got {size!r}")
    if position not in REFERENCE_POSITIONS:
        raise ProbeError(f"reference position must be one of {list(REFERENCE_POSITIONS)}, got {position!r}")
    singles = scenes.singles()
    if singles.images.empty:
        raise ProbeError("the dataset has no single-object reference images")
    objs = singles.objects[["image_id", "class_id"]].merge(singles.images[["image_id", "path"]], on="image_id")
    parts = objs.image_id.str.extract(r"^s(\d+)-\d+(?:-([A-Z]+))?$")
    if parts[0].notna().all():  # a generated set
        if allowed[size] is not None:
            keep = parts[0].astype(int) == allowed[size]
            objs, parts = objs[keep], parts[keep]
        if position == "centre":
            objs = objs[parts[1].isna()]
        elif parts[1].isna().all():
            raise ProbeError("reference position 'slots' needs scenes generated with single_slots "
                             "(slot references); these have centred references only")
    objs = objs.assign(path=[str(scenes.root / p) for p in objs.path], class_id=objs.class_id.astype(int))
    return objs.sort_values(["class_id", "image_id"]).reset_index(drop=True)[["class_id", "image_id", "path"]]


def slug(name: str) -> str:
    """A file-name-safe form of a model or dataset name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")
