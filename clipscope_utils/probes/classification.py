"""TOC / IOC: linear probes per object position on frozen embeddings (paper A, appendix 7.2 / 7.4).

Retrieval (TOR / IOR) asks which single object a multi-object embedding is *nearest* to; a probe
asks the weaker question whether the object is *decodable* at all. For position ``p`` a logistic
regression predicts the class of the object at ``p`` from the multi-object embedding. If an
encoder keeps every object, every position is decodable; a position bias shows as lower accuracy
at later positions. "Position" is whatever order the caller lists the objects in: caption order
for TOC on text embeddings, size order (large, small 1, small 2, ...) for IOC on image embeddings.

Protocol (fixed, so numbers are reproducible):

* items are grouped by their number of objects ``n``; each (n, position) gets its own probe;
* per group ONE split, drawn by ``numpy.random.default_rng([seed, n])``: ``round(test_fraction *
  n_items)`` items (Python round, half to even) go to test, the rest to train. The split depends
  only on ``seed``, ``n`` and the group's items in input order, and is shared by all positions of
  the group, so an item is never in train for one position and test for another;
* features are standardised with train statistics only; the probe is sklearn's
  ``LogisticRegression(C, max_iter)`` (lbfgs, multinomial);
* a test class never seen in training cannot be predicted: it counts as a miss.

Two baselines come with every accuracy: ``chance`` = 1 / (number of distinct classes in that
probe's training set), and ``majority`` = test accuracy of always answering the most frequent
training class (ties to the smallest id). On skewed label sets (COCO) only the second is honest.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from clipscope_utils.probes import ProbeError
from clipscope_utils.stats import rate_table

MIN_TRAIN = 4
MIN_TEST = 1
FRAME_COLUMNS = ["item_id", "n_objects", "position", "class_id", "predicted", "hit", "n_train", "n_test",
                 "n_classes", "majority_hit"]


def split_items(n_items: int, n_objects: int, test_fraction: float, seed: int) -> np.ndarray:
    """Boolean test mask over a group's ``n_items`` items (the documented, seeded split)."""
    n_test = round(test_fraction * n_items)  # Python round: half to even
    mask = np.zeros(n_items, dtype=bool)
    mask[np.random.default_rng([seed, n_objects]).choice(n_items, size=n_test, replace=False)] = True
    return mask


def _check_inputs(emb, objects, test_fraction, item_ids) -> tuple[np.ndarray, list[tuple[int, ...]], np.ndarray]:
    x = np.asarray(emb, dtype=float)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ProbeError(f"emb must be a non-empty 2-D array (N, D), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ProbeError("emb contains NaN or infinite values")
    if len(objects) != x.shape[0]:
        raise ProbeError(f"emb has {x.shape[0]} rows but objects has {len(objects)} items")
    labels = []
    for i, item in enumerate(objects):
        ids = tuple(item)
        if not ids or not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in ids):
            raise ProbeError(f"objects[{i}] must be a non-empty sequence of int class ids, got {item!r}")
        labels.append(tuple(int(c) for c in ids))
    if not 0 < test_fraction < 1:
        raise ProbeError(f"test_fraction must be in (0, 1), got {test_fraction}")
    ids = np.arange(len(labels)) if item_ids is None else np.asarray(list(item_ids))
    if len(ids) != len(labels):
        raise ProbeError(f"item_ids has {len(ids)} entries but objects has {len(labels)} items")
    if len(set(ids.tolist())) != len(ids):
        raise ProbeError("item_ids must be unique")
    return x, labels, ids


def position_probe(
    emb: np.ndarray,
    objects: Sequence[Sequence[int]],
    test_fraction: float = 0.3,
    seed: int = 0,
    C: float = 1.0,
    max_iter: int = 1000,
    item_ids: Sequence | None = None,
) -> pd.DataFrame:
    """One linear probe per (n_objects, position); one row per (test item, position).

    ``emb`` (N, D); ``objects[i]`` = class ids of item ``i`` in position order. Columns:
    ``item_id, n_objects, position`` (1-based)``, class_id, predicted, hit`` (0./1.)``, n_train,
    n_test, n_classes`` (distinct train classes of that probe)``, majority_hit`` (0./1., the
    majority-class baseline). Every group is validated before anything is fitted.
    """
    x, labels, ids = _check_inputs(emb, objects, test_fraction, item_ids)
    lengths = np.array([len(lab) for lab in labels])
    plans = []
    for n in sorted(set(lengths.tolist())):
        rows = np.flatnonzero(lengths == n)
        test = split_items(len(rows), n, test_fraction, seed)
        n_train, n_test = int((~test).sum()), int(test.sum())
        if n_train < MIN_TRAIN or n_test < MIN_TEST:
            raise ProbeError(f"group n_objects={n}: {len(rows)} items give {n_train} train / {n_test} test; "
                             f"need >= {MIN_TRAIN} train and >= {MIN_TEST} test")
        y = np.array([labels[r] for r in rows])  # (items, n)
        for p in range(n):
            k = len(np.unique(y[~test, p]))
            if k < 2:
                raise ProbeError(f"group n_objects={n}, position {p + 1}: {k} distinct class in {n_train} "
                                 "train items; a probe needs >= 2")
        plans.append((n, rows, test, y))

    out = []
    for n, rows, test, y in plans:
        scaler = StandardScaler().fit(x[rows[~test]])
        x_train, x_test = scaler.transform(x[rows[~test]]), scaler.transform(x[rows[test]])
        for p in range(n):
            y_train, y_test = y[~test, p], y[test, p]
            with warnings.catch_warnings():  # 63 class ids over few samples is the probe's design, not regression
                warnings.filterwarnings("ignore", message="The number of unique classes is greater than 50%")
                pred = LogisticRegression(C=C, max_iter=max_iter).fit(x_train, y_train).predict(x_test)
            values, counts = np.unique(y_train, return_counts=True)
            majority = values[np.argmax(counts)]  # np.unique sorts, argmax takes the first: smallest id
            out.append(pd.DataFrame({
                "item_id": ids[rows[test]], "n_objects": n, "position": p + 1, "class_id": y_test,
                "predicted": pred.astype(int), "hit": (pred == y_test).astype(float),
                "n_train": len(y_train), "n_test": len(y_test), "n_classes": len(values),
                "majority_hit": (y_test == majority).astype(float),
            }))
    return pd.concat(out, ignore_index=True)[FRAME_COLUMNS]


def probe_accuracy(frame: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per (n_objects, position): ``n, rate, ci_low, ci_high`` (bootstrap) plus ``chance`` and ``majority``."""
    missing = [c for c in FRAME_COLUMNS if c not in frame.columns]
    if missing:
        raise ProbeError(f"frame lacks columns {missing}; pass position_probe's output")
    if frame.empty:
        raise ProbeError("frame is empty")
    by = ["n_objects", "position"]
    table = rate_table(frame, by, "hit", n_boot=n_boot, seed=seed)
    base = frame.groupby(by, sort=True).agg(n_classes=("n_classes", "first"), majority=("majority_hit", "mean"))
    base["chance"] = 1.0 / base.pop("n_classes")
    return table.merge(base[["chance", "majority"]].reset_index(), on=by, how="left")
