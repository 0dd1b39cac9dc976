"""From a :class:`SceneSet` to the queries and references of the probes.

Queries carry their objects as class ids in *position order*: caption order for text (TOR, TOC),
size order for images (IOR, IOC: the large object first, then the small ones in slot order). The
probes compare class ids, never names, so "car" can never match "carrot".
"""

from __future__ import annotations

import re

import pandas as pd

from ..datasets.captions import TEMPLATES, caption
from ..datasets.tables import SceneSet
from . import ProbeError


def _class_index(scenes: SceneSet) -> dict[str, int]:
    return {name: i for i, name in enumerate(scenes.classes)}


def caption_queries(scenes: SceneSet, template: str) -> pd.DataFrame:
    """Multi-object captions of one template: ``query_id`` (image id), ``n_objects``, ``text``, ``objects``."""
    caps = scenes.multi().captions
    if template not in set(caps.template):
        raise ProbeError(f"no multi-object captions with template {template!r}; the dataset has "
                         f"{sorted(set(caps.template))}")
    caps = caps[caps.template == template]
    index = _class_index(scenes)
    unknown = sorted({n for order in caps.order for n in order.split("|") if n not in index})
    if unknown:
        raise ProbeError(f"caption objects not in the class list: {unknown[:10]}")
    objects = [tuple(index[n] for n in order.split("|")) for order in caps.order]
    return pd.DataFrame({"query_id": caps.image_id.to_numpy(), "n_objects": [len(o) for o in objects],
                         "text": caps.text.to_numpy(), "objects": objects})


def single_captions(classes: list[str], template: str) -> pd.DataFrame:
    """One single-object caption per class, in the template of the queries (``class_id``, ``text``)."""
    if template not in TEMPLATES:
        raise ProbeError(f"unknown template {template!r}; allowed: {sorted(TEMPLATES)}")
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


def reference_images(scenes: SceneSet, size: str = "large") -> pd.DataFrame:
    """Single-object reference images per class: ``class_id``, ``image_id``, ``path``.

    Generated sets hold each class at the large (``s0-``) and small (``s1-``) size; ``size``
    picks one ("large", "small") or keeps both ("all": a class then scores its best reference).
    Other sources keep all their singles.
    """
    allowed = {"large": 0, "small": 1, "all": None}
    if size not in allowed:
        raise ProbeError(f"reference size must be one of {sorted(allowed)}, got {size!r}")
    singles = scenes.singles()
    if singles.images.empty:
        raise ProbeError("the dataset has no single-object reference images")
    objs = singles.objects[["image_id", "class_id"]].merge(singles.images[["image_id", "path"]], on="image_id")
    prefix = objs.image_id.str.extract(r"^s(\d+)-", expand=False)
    if allowed[size] is not None and prefix.notna().all():
        objs = objs[prefix.astype(int) == allowed[size]]
    objs = objs.assign(path=[str(scenes.root / p) for p in objs.path], class_id=objs.class_id.astype(int))
    return objs.sort_values(["class_id", "image_id"]).reset_index(drop=True)[["class_id", "image_id", "path"]]


def slug(name: str) -> str:
    """A file-name-safe form of a model or dataset name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")
