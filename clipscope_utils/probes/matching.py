"""Image–text matching under the encoders' biases (paper A, section 5.1, Table 6).

Each multi-object image gets a correct and an incorrect caption; the model is right when the image
is more similar to the correct one. The two scenarios put the biases on the model's side or
against it:

* ``"first"`` (biases help): the correct caption names the largest object FIRST, then the others;
  in the incorrect caption the object at the first position is swapped for a class absent from
  the image, so the error sits where both biases (first-mentioned, largest) look.
* ``"second"`` (biases hurt): the correct caption names the largest object LAST; the incorrect
  caption swaps the object at the last position, where neither bias looks.

Ambiguity. The paper's Figure 5, which shows the exact caption structures, is missing from our
text; the prose says only that the non-existent object "is deliberately placed at the beginning /
at the end". The default ``replace="large"`` reads it as: the swapped object is the large one
(which sits at that position). ``replace="small"`` is the other reading: a random small object is
dropped and the absent class is placed at the scenario's position (first / last), the rest
keeping their order: first ``[A, L, s...]``, second ``[s..., L, A]``.

Randomness is per image, from ``numpy.random.default_rng([seed, crc32(image_id)])``: the order of
the small objects, the absent class (uniform among classes not in the image) and the small object
to drop are drawn in that fixed sequence whatever ``scenario`` and ``replace`` are. So the result
is independent of row order and of which other images are present, and both scenarios (and both
readings) of one image share the same small-object order and the same absent class: they differ
only in where the large object and the swap sit.
"""

from __future__ import annotations

import zlib
from typing import Sequence

import numpy as np
import pandas as pd

from clipscope_utils.datasets.captions import TEMPLATES, caption
from clipscope_utils.probes import ProbeError
from clipscope_utils.stats import rate_table

SCENARIOS = ("first", "second")
REPLACE = ("large", "small")
PAIR_COLUMNS = ["image_id", "scenario", "n_objects", "correct_text", "incorrect_text", "correct_order",
                "incorrect_order", "absent_class_id", "replaced_class_id"]
OBJECT_COLUMNS = ["image_id", "object_index", "class_name", "class_id", "size_rank"]


def _check_objects(objects: pd.DataFrame, classes: Sequence[str]) -> pd.DataFrame:
    missing = [c for c in OBJECT_COLUMNS if c not in objects.columns]
    if missing:
        raise ProbeError(f"objects frame lacks columns {missing}")
    if len(classes) < 2:
        raise ProbeError(f"need the full class list to draw absent classes from, got {len(classes)} classes")
    obj = objects[OBJECT_COLUMNS]
    ids = pd.to_numeric(obj.class_id, errors="coerce")
    bad = obj[ids.isna() | (ids < 0) | (ids >= len(classes))]
    if not bad.empty:
        raise ProbeError(f"class_id outside 0..{len(classes) - 1}: image {bad.image_id.iloc[0]!r}")
    named = [classes[int(c)] for c in obj.class_id]
    wrong = obj[obj.class_name.to_numpy() != np.array(named, dtype=object)]
    if not wrong.empty:
        r = wrong.iloc[0]
        raise ProbeError(f"class_name {r.class_name!r} != classes[{r.class_id}] = {classes[int(r.class_id)]!r}"
                         f" (image {r.image_id!r}); pass the dataset's own class list")
    counts = obj.groupby("image_id").size()
    obj = obj[obj.image_id.isin(counts[counts >= 2].index)]
    if obj.empty:
        raise ProbeError("no image with >= 2 objects")
    n_large = obj.assign(large=pd.to_numeric(obj.size_rank, errors="coerce") == 1).groupby("image_id").large.sum()
    if (n_large != 1).any():
        bad_id = n_large[n_large != 1].index[0]
        raise ProbeError(f"image {bad_id!r} has {int(n_large[bad_id])} objects of size_rank 1; need exactly one")
    full = obj.groupby("image_id").class_id.nunique()
    if (full >= len(classes)).any():
        raise ProbeError(f"image {full[full >= len(classes)].index[0]!r} contains every class; no absent class")
    return obj.sort_values(["image_id", "object_index"], kind="stable")


def _image_rng(seed: int, image_id) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(str(image_id).encode())])


def matching_pairs(
    objects: pd.DataFrame, classes: Sequence[str], scenario: str, template: str = "and",
    replace: str = "large", seed: int = 0,
) -> pd.DataFrame:
    """Correct / incorrect caption per image with >= 2 objects (single-object images are skipped).

    ``objects``: a SceneSet objects frame; ``classes``: all class names, index = class_id. Orders
    are tuples of class ids in caption order; ``replaced_class_id`` is the class the absent one
    stands in for. Rows sorted by ``image_id``.
    """
    if scenario not in SCENARIOS:
        raise ProbeError(f"scenario must be one of {SCENARIOS}, got {scenario!r}")
    if replace not in REPLACE:
        raise ProbeError(f"replace must be one of {REPLACE}, got {replace!r}")
    if template not in TEMPLATES:
        raise ProbeError(f"unknown caption template {template!r}; allowed: {sorted(TEMPLATES)}")
    obj = _check_objects(objects, classes)

    rows = []
    for image_id, group in obj.groupby("image_id", sort=True):
        rng = _image_rng(seed, image_id)
        cls = group.class_id.astype(int).tolist()
        large_at = int(np.flatnonzero(pd.to_numeric(group.size_rank).to_numpy() == 1)[0])
        small = [cls[i] for i in range(len(cls)) if i != large_at]
        small = [small[int(j)] for j in rng.permutation(len(small))]
        absent = int(rng.choice(np.setdiff1d(np.arange(len(classes)), cls)))
        drop = int(rng.integers(len(small)))
        large = cls[large_at]
        rest = small[:drop] + small[drop + 1:]
        if scenario == "first":
            correct = [large, *small]
            incorrect = [absent, *small] if replace == "large" else [absent, large, *rest]
        else:
            correct = [*small, large]
            incorrect = [*small, absent] if replace == "large" else [*rest, large, absent]
        replaced = large if replace == "large" else small[drop]
        rows.append({
            "image_id": image_id, "scenario": scenario, "n_objects": len(cls),
            "correct_text": caption([classes[c] for c in correct], template),
            "incorrect_text": caption([classes[c] for c in incorrect], template),
            "correct_order": tuple(correct), "incorrect_order": tuple(incorrect),
            "absent_class_id": absent, "replaced_class_id": replaced,
        })
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def matching_hits(image_emb: np.ndarray, correct_emb: np.ndarray, incorrect_emb: np.ndarray) -> np.ndarray:
    """Per row: 1.0 if cos(image, correct) > cos(image, incorrect), 0.0 if lower, 0.5 on an exact tie.

    Embeddings are (N, D) and L2-normalised here (float64); an exact tie means equal computed
    cosines (e.g. identical caption embeddings) and scores half, as a coin flip would on average.
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in (image_emb, correct_emb, incorrect_emb)]
    shapes = [a.shape for a in arrays]
    if arrays[0].ndim != 2 or arrays[0].size == 0 or len(set(shapes)) != 1:
        raise ProbeError(f"image, correct and incorrect embeddings must be non-empty (N, D) of one shape, got {shapes}")
    for name, a in zip(("image", "correct", "incorrect"), arrays):
        if not np.isfinite(a).all():
            raise ProbeError(f"{name} embeddings contain NaN or infinite values")
        zero = np.flatnonzero(np.linalg.norm(a, axis=1) == 0)
        if zero.size:
            raise ProbeError(f"{name} embedding row {int(zero[0])} is a zero vector; cosine undefined")
    img, pos, neg = (a / np.linalg.norm(a, axis=1, keepdims=True) for a in arrays)
    s_pos, s_neg = (img * pos).sum(axis=1), (img * neg).sum(axis=1)
    return np.where(s_pos > s_neg, 1.0, np.where(s_pos < s_neg, 0.0, 0.5))


def matching_accuracy(
    pairs_with_hits: pd.DataFrame, n_boot: int = 1000, seed: int = 0, hit: str = "hit"
) -> pd.DataFrame:
    """Per (scenario, n_objects): ``n, rate, ci_low, ci_high`` of column ``hit`` (stats.rate_table)."""
    missing = [c for c in ("scenario", "n_objects", hit) if c not in pairs_with_hits.columns]
    if missing:
        raise ProbeError(f"frame lacks columns {missing}")
    return rate_table(pairs_with_hits, ["scenario", "n_objects"], hit, n_boot=n_boot, seed=seed)
