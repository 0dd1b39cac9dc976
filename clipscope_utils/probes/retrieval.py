"""Object retrieval: the shared core of paper A's TOR, IOR, I2TOR and cross-modal TOR (section 2.2).

Each multi-object query embedding (a caption for TOR, an image for IOR) is compared with single-object
references (captions for TOR / I2TOR, images for IOR / cross-modal TOR); a class scores the max cosine
over its reference rows. Rates are reported per position of the query's objects (caption position for
TOR, size order large, small 1, small 2, ... for IOR). Hits are decided by class id, never by name: the
authors' code matched substrings, so "car" also matched "carrot".

Three measures, each with its own denominator (:data:`MEASURES`):

* ``own`` — the measure the book reads paper A's tables as (reference README: Tables 1–4 rows sum to
  100 %, Table 2's are exact fractions; the authors' IOR script prints it as "object k has most
  similarity between n objects"): among the query's *own* n objects only, which one is most similar.
  Every query counts and its credits sum to 1, so there is no "none" share.
* ``top1`` — the nearest class among *all* classes; positions plus "none" (a class outside the query)
  sum to 1.
* ``conditional`` — ``top1`` restricted to queries whose top-n classes are exactly their n objects
  (small denominators; the authors' scripts print it too, "accuracy in correct top-n", and its rows
  also sum to 100 %).
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from clipscope_utils.probes import ProbeError
from clipscope_utils.stats import rate_table

FRAME_COLUMNS = ("query_id", "n_objects", "position", "class_id", "hit", "top_class", "n_tied", "in_top_n", "miss",
                 "own")
MEASURES = ("own", "top1", "conditional")
# the frame column each measure rates per position
_MEASURE_COLUMN = {"own": "own", "top1": "hit", "conditional": "hit"}
_CHUNK_CELLS = 2**21  # similarity cells per chunk (float64: 16 MiB per chunk-sized matrix)


def _matrix(x, what: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ProbeError(f"{what} must be a non-empty 2-D array (rows, dim), got shape {a.shape}")
    if a.dtype.kind not in "fiu":
        raise ProbeError(f"{what} must be numeric, got dtype {a.dtype}")
    if not np.isfinite(a).all():
        raise ProbeError(f"{what} contains NaN or infinite values")
    return a


def _normalise(x: np.ndarray, what: str, offset: int = 0) -> np.ndarray:
    """Rows of ``x`` as unit vectors in float64; a zero row has no direction, so it is an error."""
    x = x.astype(np.float64)
    norms = np.linalg.norm(x, axis=1)
    if (norms == 0).any():
        bad = (np.flatnonzero(norms == 0) + offset)[:10].tolist()
        raise ProbeError(f"{what} has zero-norm rows (cosine undefined), e.g. rows {bad}")
    return x / norms[:, None]


def _int_ids(values, what: str) -> np.ndarray:
    a = np.asarray(values)
    if a.size and a.dtype.kind not in "iu":
        raise ProbeError(f"{what} must be integer class ids, got dtype {a.dtype}")
    return a.astype(np.int64)


def _parse_objects(query_objects: Sequence[Sequence[int]], n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    """(lengths, flat class ids) of the ragged query objects, checked: non-empty, integer, no duplicates."""
    if isinstance(query_objects, np.ndarray) and query_objects.ndim == 2:  # fast path: equal lengths
        lengths = np.full(query_objects.shape[0], query_objects.shape[1], dtype=np.int64)
        flat = _int_ids(query_objects.reshape(-1), "query_objects")
    else:
        if any(isinstance(o, (str, bytes)) or not hasattr(o, "__len__") for o in query_objects):
            raise ProbeError("query_objects must be a sequence of class-id sequences (one per query)")
        lengths = np.array([len(o) for o in query_objects], dtype=np.int64)
        flat = _int_ids([c for o in query_objects for c in o], "query_objects")
    if len(lengths) != n_queries:
        raise ProbeError(f"query_objects has {len(lengths)} entries but query_emb has {n_queries} rows")
    if (lengths == 0).any():
        raise ProbeError(f"queries without objects, e.g. query indices {np.flatnonzero(lengths == 0)[:10].tolist()}")
    owner = np.repeat(np.arange(n_queries), lengths)
    order = np.lexsort((flat, owner))
    dup = (owner[order][1:] == owner[order][:-1]) & (flat[order][1:] == flat[order][:-1])
    if dup.any():
        q = owner[order][1:][dup][:10].tolist()
        raise ProbeError(f"a query lists the same class twice (duplicate object), e.g. query indices {q}")
    return lengths, flat


def object_retrieval(
    query_emb,
    query_objects: Sequence[Sequence[int]],
    ref_emb,
    ref_classes: Sequence[int],
    query_ids: Sequence | None = None,
    *,
    chunk_size: int | None = None,
) -> pd.DataFrame:
    """Top-1 object retrieval, one row per (query, position): did the nearest reference class hit it?

    A class's score is the max cosine over its reference rows. Cosines are computed in float64 and
    ties are *exact* float64 equality: the tied set T gets expected credit ``1/|T|`` per member
    (a uniform random tie-break without the randomness), so a query's hits sum to at most 1.
    Identical reference vectors tie; scores that differ only by rounding do not.

    Columns: ``query_id``, ``n_objects``, ``position`` (1-based), ``class_id``, ``hit`` (float),
    ``top_class`` (smallest id among the tied best), ``n_tied`` (|T|), ``in_top_n`` (per query: each of
    its n objects scores strictly above every other class, so a tie at the boundary is False) and
    ``miss`` (per query: credit that went to classes outside the query, ``1 - sum(hit)``) and ``own``
    (paper A's measure: credit among the query's own objects only, exact ties split, summing to 1 per
    query).
    ``chunk_size`` queries are scored at a time (default: about 2M similarity cells) to bound memory.
    """
    q = _matrix(query_emb, "query_emb")
    r = _matrix(ref_emb, "ref_emb")
    if q.shape[1] != r.shape[1]:
        raise ProbeError(f"embedding dims differ: query_emb has {q.shape[1]}, ref_emb has {r.shape[1]}")
    n_q = q.shape[0]
    rc = _int_ids(ref_classes, "ref_classes").reshape(-1)
    if len(rc) != r.shape[0]:
        raise ProbeError(f"ref_classes has {len(rc)} entries but ref_emb has {r.shape[0]} rows")
    lengths, flat = _parse_objects(query_objects, n_q)
    if query_ids is None:
        ids = np.arange(n_q)
    else:
        ids = np.asarray(query_ids)
        if ids.shape != (n_q,):
            raise ProbeError(f"query_ids must have one entry per query ({n_q}), got shape {ids.shape}")
        if len(pd.unique(ids)) != n_q:
            raise ProbeError("query_ids must be unique")

    # Group reference rows by class so a class's max is one reduceat over contiguous columns.
    order = np.argsort(rc, kind="stable")
    classes, starts = np.unique(rc[order], return_index=True)
    missing = np.setdiff1d(flat, classes)
    if missing.size:
        raise ProbeError(f"query classes without any reference row: {missing[:20].tolist()}"
                         + (f" (+{missing.size - 20} more)" if missing.size > 20 else ""))
    refs = _normalise(r[order], "ref_emb").T  # (D, R), columns grouped by class
    col = np.searchsorted(classes, flat)  # class column of every (query, position) row
    owner = np.repeat(np.arange(n_q), lengths)
    bounds = np.concatenate([[0], np.cumsum(lengths)])

    if chunk_size is not None and (int(chunk_size) != chunk_size or chunk_size < 1):
        raise ProbeError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    step = int(chunk_size) if chunk_size is not None else max(1, _CHUNK_CELLS // r.shape[0])
    hit = np.empty(len(flat))
    top = np.empty(n_q, dtype=np.int64)
    n_tied = np.empty(n_q, dtype=np.int64)
    in_top = np.empty(n_q, dtype=bool)
    miss = np.empty(n_q)
    own = np.empty(len(flat))
    for a in range(0, n_q, step):
        b = min(a + step, n_q)
        scores = _normalise(q[a:b], "query_emb", a) @ refs
        if len(classes) < len(rc):  # several rows for some class: its score is the max over them
            scores = np.maximum.reduceat(scores, starts, axis=1)  # (chunk, C)
        tied = scores == scores.max(axis=1, keepdims=True)
        k = tied.sum(axis=1)
        rows = slice(bounds[a], bounds[b])
        local = owner[rows] - a
        member = np.zeros_like(tied)
        member[local, col[rows]] = True
        hit[rows] = tied[local, col[rows]] / k[local]
        top[a:b] = classes[tied.argmax(axis=1)]  # first True = smallest class id among the tied
        n_tied[a:b] = k
        miss[a:b] = (k - (tied & member).sum(axis=1)) / k
        in_top[a:b] = np.where(member, scores, np.inf).min(axis=1) > np.where(member, -np.inf, scores).max(axis=1)
        mine = scores[local, col[rows]]  # the query's own objects only: ties among them split the credit
        best = np.where(member, scores, -np.inf).max(axis=1)
        top_own = mine == best[local]
        own[rows] = top_own / np.bincount(local, weights=top_own, minlength=b - a)[local]

    return pd.DataFrame({
        "query_id": ids[owner],
        "n_objects": lengths[owner],
        "position": np.arange(len(flat)) - bounds[owner] + 1,
        "class_id": flat,
        "hit": hit,
        "top_class": top[owner],
        "n_tied": n_tied[owner],
        "in_top_n": in_top[owner],
        "miss": miss[owner],
        "own": own,
    })


_ORDINALS = ("none", "first", "second", "third", "fourth", "fifth")


def _check_position(position: int) -> int:
    p = int(position)
    if p < 0 or p != position:
        raise ProbeError(f"position must be a non-negative integer (0 = none of the objects), got {position!r}")
    return p


def caption_labels(position: int) -> str:
    """TOR position names: 1 -> "first" ... 5 -> "fifth", then "6th", "21st"...; 0 -> "none"."""
    p = _check_position(position)
    if p < len(_ORDINALS):
        return _ORDINALS[p]
    suffix = "th" if 10 <= p % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(p % 10, "th")
    return f"{p}{suffix}"


def size_labels(position: int) -> str:
    """IOR size-order names: 1 -> "large", 2 -> "small 1", 3 -> "small 2"...; 0 -> "none"."""
    p = _check_position(position)
    return "none" if p == 0 else "large" if p == 1 else f"small {p - 1}"


def _label(labels: Mapping[int, str] | Callable[[int], str], position: int) -> str:
    if callable(labels):
        return labels(position)
    if position == 0:
        return labels.get(0, "none")
    if position not in labels:
        raise ProbeError(f"labels has no entry for position {position}")
    return labels[position]


def _measure(measure: str | None, conditional: bool | None) -> str:
    """The measure asked for; ``conditional=`` is the older spelling of ``measure="conditional"``."""
    if conditional is not None:
        legacy = "conditional" if conditional else "top1"
        if measure is not None and measure != legacy:
            raise ProbeError(f"measure={measure!r} contradicts conditional={conditional!r}; pass only measure")
        return legacy
    measure = "top1" if measure is None else measure
    if measure not in MEASURES:
        raise ProbeError(f"measure must be one of {MEASURES} (own: among the query's own objects, paper A's; "
                         f"top1: among all classes with a 'none' share; conditional: top1 on clean queries), "
                         f"got {measure!r}")
    return measure


def position_accuracy(
    frame: pd.DataFrame,
    measure: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    labels: Mapping[int, str] | Callable[[int], str] | None = None,
    *,
    conditional: bool | None = None,
) -> pd.DataFrame:
    """Retrieval rate per (``n_objects``, ``position``) under one ``measure``, with n and a bootstrap 95 % CI.

    ``measure`` (see :data:`MEASURES`; default ``"top1"``): ``"own"`` rates the ``own`` column, every
    query counts, positions sum to 1 per ``n_objects`` and there is no "none" row. ``"top1"`` rates
    ``hit`` over every query and adds position 0 ("none", the mean ``miss``) so that positions 1..n plus
    0 sum to 1. ``"conditional"`` keeps only queries with ``in_top_n``; groups left empty get ``n = 0``
    and NaN rate instead of disappearing. ``conditional=True/False`` is the older spelling of
    ``measure="conditional"/"top1"``. ``rate`` is a fraction; ``n`` counts the queries behind it;
    ``labels`` (a mapping or e.g. ``caption_labels`` / ``size_labels``) adds a ``label`` column. Rows: by
    ``n_objects``, positions 1..n, then 0; the ``measure`` column names the measure.
    """
    measure = _measure(measure, conditional)
    needed = [c for c in FRAME_COLUMNS if c != "own" or measure == "own"]
    absent = [c for c in needed if c not in frame.columns]
    if absent:
        raise ProbeError(f"frame lacks columns {absent}; pass the output of object_retrieval")
    if frame.empty:
        raise ProbeError("frame is empty: no queries to score")
    if (frame["position"] < 1).any():
        raise ProbeError("frame has positions < 1; pass the output of object_retrieval, not of position_accuracy")
    keys = ["n_objects", "position"]
    used = frame[frame["in_top_n"].astype(bool)] if measure == "conditional" else frame
    parts = [rate_table(used, keys, _MEASURE_COLUMN[measure], n_boot=n_boot, seed=seed)]
    grid = frame[keys]
    if measure != "own":  # the share retrieved outside the query, one row per query
        per_query = used[used["position"] == 1].assign(position=0)
        parts.append(rate_table(per_query, keys, "miss", n_boot=n_boot, seed=seed))
        grid = pd.concat([grid, frame[["n_objects"]].assign(position=0)])
    rates = pd.concat(parts)
    grid = grid.drop_duplicates()
    out = grid.merge(rates, on=keys, how="left") if len(rates) else grid.assign(rate=np.nan, ci_low=np.nan, ci_high=np.nan, n=0)
    out["n"] = out["n"].fillna(0).astype(np.int64)
    for c in ("rate", "ci_low", "ci_high"):
        out[c] = out[c].astype(float)
    out["measure"] = measure
    out = out.assign(_last=out["position"] == 0).sort_values(["n_objects", "_last", "position"]).drop(columns="_last")
    if labels is not None:
        out.insert(2, "label", [_label(labels, int(p)) for p in out["position"]])
    return out[[c for c in ("n_objects", "position", "label", "n", "rate", "ci_low", "ci_high", "measure") if c in out]].reset_index(drop=True)


def chance_rate(n_objects: int, n_classes: int | None = None) -> float:
    """Per-position rate with no position/size preference, a reference line for plots.

    With ``n_classes``: a retriever picking uniformly among all classes hits a given object with
    probability ``1 / n_classes``. Without: a retriever that always finds *one* of the n objects but
    ignores order gives each position ``1 / n_objects`` (the flat row an unbiased encoder would show,
    and the chance level of the ``own`` and ``conditional`` measures).
    """
    if n_objects < 1:
        raise ProbeError(f"n_objects must be >= 1, got {n_objects}")
    if n_classes is None:
        return 1.0 / n_objects
    if n_classes < n_objects:
        raise ProbeError(f"n_classes ({n_classes}) must be >= n_objects ({n_objects})")
    return 1.0 / n_classes
