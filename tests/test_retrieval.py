"""Object retrieval (TOR / IOR core) on constructed embeddings whose answers are known by hand."""

import numpy as np
import pandas as pd
import pytest

from clipscope_utils.probes import ProbeError
from clipscope_utils.probes.retrieval import (
    caption_labels,
    chance_rate,
    object_retrieval,
    position_accuracy,
    size_labels,
)

EYE = np.eye(8)


def one_query(weights: dict[int, float], dim: int = 8) -> np.ndarray:
    v = np.zeros(dim)
    for c, w in weights.items():
        v[c] = w
    return v


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_dominant_position_is_retrieved(n: int) -> None:
    objects = [7, 2, 5, 0, 3][:n]
    for winner in range(n):  # the object with the largest weight wins, whatever its position
        w = {c: (2.0 if i == winner else 1.0) for i, c in enumerate(objects)}
        f = object_retrieval(one_query(w)[None], [objects], EYE, range(8))
        assert f["position"].tolist() == list(range(1, n + 1))
        assert f["class_id"].tolist() == objects
        assert f["hit"].tolist() == [1.0 if i == winner else 0.0 for i in range(n)]
        assert (f["top_class"] == objects[winner]).all() and (f["n_tied"] == 1).all()
        assert (f["miss"] == 0).all() and (f["n_objects"] == n).all() and f["in_top_n"].all()


def test_exact_tie_splits_the_credit() -> None:
    q = np.stack([one_query({4: 1, 1: 1}), one_query({4: 1, 6: 1, 2: 0.3})])
    f = object_retrieval(q, [[4, 1], [4, 2]], EYE, range(8), query_ids=["a", "b"])
    a, b = f[f.query_id == "a"], f[f.query_id == "b"]
    assert a["hit"].tolist() == [0.5, 0.5] and (a["n_tied"] == 2).all() and (a["top_class"] == 1).all()
    assert (a["miss"] == 0).all()
    # tie between an object (4) and an outsider (6): half the credit leaves the query
    assert b["hit"].tolist() == [0.5, 0.0] and (b["miss"] == 0.5).all() and (b["top_class"] == 4).all()
    assert not b["in_top_n"].any()


def test_class_score_is_max_over_its_reference_rows() -> None:
    q = one_query({0: 0.8, 1: 0.6})[None]
    base = object_retrieval(q, [[0, 1]], EYE[:3], [0, 1, 2])
    assert base["hit"].tolist() == [1.0, 0.0]
    extra = one_query({0: 1, 1: 1})  # cosine 0.99 with q, filed under class 1
    refs, classes = np.vstack([EYE[:3], extra]), [0, 1, 2, 1]
    f = object_retrieval(q, [[0, 1]], refs, classes)
    assert f["hit"].tolist() == [0.0, 1.0] and (f["top_class"] == 1).all()
    perm = [3, 2, 0, 1]  # row order does not matter
    g = object_retrieval(q, [[0, 1]], refs[perm], np.array(classes)[perm])
    pd.testing.assert_frame_equal(f, g)


def test_arbitrary_ids_and_norms() -> None:
    # references scaled arbitrarily (cosine ignores norms); class ids sparse and unordered
    refs = EYE[:4] * np.array([[3.0], [0.01], [7.0], [1.0]])
    q = one_query({1: 2.0, 3: 1.0}, dim=4)[None] * 50
    f = object_retrieval(q, [[13, 11]], refs[:, :4], [110, 11, 12, 13])  # ids need not be 0..C-1
    assert f["hit"].tolist() == [0.0, 1.0] and (f["top_class"] == 11).all()


def test_conditional_flag_is_top_n_equals_objects_and_tie_safe() -> None:
    objs = [0, 1, 2]
    q = np.stack([
        one_query({0: 1, 1: 1, 2: 1, 3: 0.5}),  # all objects above the outsider -> True
        one_query({0: 1, 1: 0.9, 2: 0.2, 3: 0.5}),  # outsider 3 beats object 2 -> False
        one_query({0: 1, 1: 1, 2: 0.5, 3: 0.5}),  # tie at the boundary -> False
        one_query({0: 3, 1: 2, 2: 1}),  # strict and clean -> True
    ])
    f = object_retrieval(q, [objs] * 4, EYE, range(8))
    flags = f.groupby("query_id")["in_top_n"]
    assert (flags.nunique() == 1).all() and flags.first().tolist() == [True, False, False, True]
    acc = position_accuracy(f, conditional=True, n_boot=50)
    assert (acc["n"] == 2).all() and (acc["measure"] == "conditional").all()
    pd.testing.assert_frame_equal(acc, position_accuracy(f, "conditional", n_boot=50))  # the older spelling
    # queries 0 and 3: q0 ties three ways (1/3 each), q3 retrieves object 0
    assert acc.set_index("position")["rate"].to_dict() == pytest.approx({1: (1 / 3 + 1) / 2, 2: 1 / 6, 3: 1 / 6, 0: 0.0})


def test_position_rates_plus_none_sum_to_one_per_n() -> None:
    rng = np.random.default_rng(1)
    objects = [list(rng.choice(8, size=n, replace=False)) for n in rng.integers(2, 5, size=200)]
    q = rng.normal(size=(200, 8))
    f = object_retrieval(q, objects, EYE, range(8))
    assert np.allclose(f.groupby("query_id")["hit"].sum() + f.groupby("query_id")["miss"].first(), 1.0)
    acc = position_accuracy(f, n_boot=100, labels=caption_labels)
    for n, g in acc.groupby("n_objects"):
        assert g["position"].tolist() == [*range(1, n + 1), 0]
        assert g["label"].iloc[-1] == "none" and g["label"].iloc[0] == "first"
        assert g["rate"].sum() == pytest.approx(1.0)
        assert g["n"].nunique() == 1 and g["n"].iloc[0] == sum(len(o) == n for o in objects)
        assert (g["ci_low"] <= g["rate"] + 1e-12).all() and (g["rate"] <= g["ci_high"] + 1e-12).all()
    again = position_accuracy(f, n_boot=100, labels=caption_labels)
    pd.testing.assert_frame_equal(acc, again)  # seeded bootstrap


def test_conditional_with_no_qualifying_query_keeps_rows_with_n_zero() -> None:
    f = object_retrieval(one_query({5: 2, 0: 1})[None], [[0, 1]], EYE, range(8))
    acc = position_accuracy(f, conditional=True, n_boot=10, labels=size_labels)
    assert acc["position"].tolist() == [1, 2, 0] and acc["label"].tolist() == ["large", "small 1", "none"]
    assert (acc["n"] == 0).all() and acc["rate"].isna().all() and acc["ci_low"].isna().all()
    un = position_accuracy(f, n_boot=10)
    assert un["rate"].tolist() == [0.0, 0.0, 1.0] and (un["n"] == 1).all() and "label" not in un


def test_own_measure_ranks_only_the_querys_own_objects() -> None:
    q = np.stack([
        one_query({7: 3, 0: 2, 1: 1}),  # an outsider (7) wins top-1; among its own objects 0 wins
        one_query({7: 3, 0: 1, 1: 1, 2: 0.5}),  # outsider wins; own objects 0 and 1 tie exactly
        one_query({2: 2, 0: 1, 1: 0.5}),  # its own object 2 wins both measures
    ])
    f = object_retrieval(q, [[0, 1], [0, 1, 2], [1, 0, 2]], EYE, range(8), query_ids=["a", "b", "c"])
    by = f.set_index(["query_id", "position"])
    assert by.loc["a", "own"].tolist() == [1.0, 0.0] and by.loc["a", "hit"].tolist() == [0.0, 0.0]
    assert by.loc["b", "own"].tolist() == [0.5, 0.5, 0.0] and (by.loc["b", "miss"] == 1).all()
    assert by.loc["c", "own"].tolist() == by.loc["c", "hit"].tolist() == [0.0, 0.0, 1.0]
    assert np.allclose(f.groupby("query_id").own.sum(), 1.0)


def test_position_accuracy_by_measure() -> None:
    rng = np.random.default_rng(3)
    objects = [list(rng.choice(8, size=n, replace=False)) for n in rng.integers(2, 5, size=300)]
    f = object_retrieval(rng.normal(size=(300, 8)), objects, EYE, range(8))
    assert np.allclose(f.groupby("query_id").own.sum(), 1.0)  # exactly one unit of credit per query
    own = position_accuracy(f, "own", n_boot=100, labels=caption_labels)
    top1 = position_accuracy(f, "top1", n_boot=100, labels=caption_labels)
    cond = position_accuracy(f, "conditional", n_boot=100, labels=caption_labels)
    assert (own.measure == "own").all() and (top1.measure == "top1").all() and (cond.measure == "conditional").all()
    for n, g in own.groupby("n_objects"):
        assert g.position.tolist() == list(range(1, n + 1)) and "none" not in set(g.label)  # no "none" row
        assert g.rate.sum() == pytest.approx(1.0) and (g.n == sum(len(o) == n for o in objects)).all()
    assert (top1.position == 0).any()
    # a foreign class often wins top-1, so the own measure credits positions that top-1 does not
    pos = top1[top1.position > 0].set_index(["n_objects", "position"]).rate
    assert (own.set_index(["n_objects", "position"]).rate >= pos - 1e-12).all()
    assert (own.set_index(["n_objects", "position"]).rate > pos + 0.05).any()
    pd.testing.assert_frame_equal(top1, position_accuracy(f, n_boot=100, labels=caption_labels))  # default
    assert cond.n.max() < own.n.max()
    with pytest.raises(ProbeError, match="measure must be one of"):
        position_accuracy(f, "best")
    with pytest.raises(ProbeError, match="contradicts"):
        position_accuracy(f, "own", conditional=True)
    with pytest.raises(ProbeError, match=r"lacks columns \['own'\]"):
        position_accuracy(f.drop(columns="own"), "own")
    position_accuracy(f.drop(columns="own"), "top1", n_boot=10)  # only the own measure needs that column


def test_labels_helpers_and_mapping() -> None:
    assert [caption_labels(p) for p in (0, 1, 2, 5, 6, 11, 21, 22, 23)] == [
        "none", "first", "second", "fifth", "6th", "11th", "21st", "22nd", "23rd"]
    assert [size_labels(p) for p in (0, 1, 2, 4)] == ["none", "large", "small 1", "small 3"]
    with pytest.raises(ProbeError, match="non-negative"):
        size_labels(-1)
    f = object_retrieval(one_query({0: 2, 1: 1})[None], [[0, 1]], EYE, range(8))
    acc = position_accuracy(f, n_boot=10, labels={1: "big", 2: "tiny"})
    assert acc["label"].tolist() == ["big", "tiny", "none"]
    with pytest.raises(ProbeError, match="position 2"):
        position_accuracy(f, n_boot=10, labels={1: "big"})


def test_chance_rate() -> None:
    assert chance_rate(4) == 0.25 and chance_rate(4, 80) == 1 / 80
    with pytest.raises(ProbeError):
        chance_rate(5, 3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(query_emb=np.ones((2, 5))), "dims differ"),
        (dict(query_objects=[[0, 1]]), "1 entries but query_emb has 2"),
        (dict(ref_classes=[0, 1, 2]), "3 entries but ref_emb has 8"),
        (dict(query_objects=[[0, 1], [2, 9, 12]]), r"without any reference row: \[9, 12\]"),
        (dict(query_objects=[[0, 1], [2, 3, 2]]), r"duplicate object.*\[1\]"),
        (dict(query_objects=[[0, 1], []]), "without objects"),
        (dict(query_objects=[[0, 1], [2.0, 3.0]]), "integer class ids"),
        (dict(query_objects=[[0, 1], "ab"]), "sequence of class-id sequences"),
        (dict(query_emb=np.vstack([np.ones(8), np.zeros(8)])), r"query_emb has zero-norm rows.*\[1\]"),
        (dict(ref_emb=np.vstack([EYE[:7], np.zeros(8)])), "ref_emb has zero-norm rows"),
        (dict(query_emb=np.full((2, 8), np.nan)), "NaN"),
        (dict(query_emb=np.ones(8)), "2-D"),
        (dict(query_ids=["x", "x"]), "unique"),
        (dict(query_ids=["x"]), "one entry per query"),
        (dict(chunk_size=0), "chunk_size"),
    ],
)
def test_bad_inputs_raise_probe_error(kwargs: dict, message: str) -> None:
    args = dict(query_emb=np.ones((2, 8)), query_objects=[[0, 1], [2, 3]], ref_emb=EYE, ref_classes=range(8))
    with pytest.raises(ProbeError, match=message):
        object_retrieval(**{**args, **kwargs})


def test_position_accuracy_rejects_wrong_frames() -> None:
    with pytest.raises(ProbeError, match="lacks columns"):
        position_accuracy(pd.DataFrame({"hit": [1.0]}))
    f = object_retrieval(one_query({0: 2, 1: 1})[None], [[0, 1]], EYE, range(8))
    with pytest.raises(ProbeError, match="empty"):
        position_accuracy(f.iloc[:0])


def naive(query_emb, query_objects, ref_emb, ref_classes) -> pd.DataFrame:
    """Loop-per-query reference implementation of the documented semantics."""
    r = ref_emb / np.linalg.norm(ref_emb, axis=1, keepdims=True)
    classes = sorted(set(ref_classes))
    rows = []
    for qi, (q, objs) in enumerate(zip(query_emb, query_objects)):
        sims = (q / np.linalg.norm(q)) @ r.T
        score = {c: max(s for s, rc in zip(sims, ref_classes) if rc == c) for c in classes}
        best = max(score.values())
        tied = [c for c in classes if score[c] == best]
        outside = [score[c] for c in classes if c not in objs]
        in_top = min(score[c] for c in objs) > (max(outside) if outside else -np.inf)
        hits = [1 / len(tied) if c in tied else 0.0 for c in objs]
        best_own = max(score[c] for c in objs)
        own_tied = [c for c in objs if score[c] == best_own]
        for p, (c, h) in enumerate(zip(objs, hits), start=1):
            rows.append(dict(query_id=qi, n_objects=len(objs), position=p, class_id=c, hit=h, top_class=tied[0],
                             n_tied=len(tied), in_top_n=in_top, miss=1 - sum(hits),
                             own=1 / len(own_tied) if c in own_tied else 0.0))
    return pd.DataFrame(rows)


def test_chunked_matches_naive_on_a_large_random_problem() -> None:
    rng = np.random.default_rng(7)
    n_q, n_classes, dim = 3000, 40, 64
    ref = rng.normal(size=(80, dim))
    ref_classes = np.repeat(np.arange(n_classes), 2)[rng.permutation(80)]
    ref[ref_classes == 39] = ref[ref_classes == 38]  # classes 38 and 39 share vectors: exact ties
    objects = [[int(c) for c in rng.choice(n_classes, size=n, replace=False)] for n in rng.integers(1, 6, size=n_q)]
    q = rng.normal(size=(n_q, dim)) + 0.8 * np.stack([ref[np.isin(ref_classes, o)].sum(0) for o in objects])
    q[:50] = ref[ref_classes == 38][0]  # these queries tie between 38 and 39 at cosine 1
    want = naive(q, objects, ref, list(ref_classes))
    assert (want["n_tied"] == 2).sum() >= 50
    for chunk in (None, 7, 5000):
        got = object_retrieval(q, objects, ref, ref_classes, chunk_size=chunk)
        pd.testing.assert_frame_equal(got, want, check_dtype=False, atol=1e-12)
    equal_lengths = [o[:1] for o in objects]  # ndarray fast path gives the same as lists
    pd.testing.assert_frame_equal(
        object_retrieval(q, np.array(equal_lengths), ref, ref_classes), object_retrieval(q, equal_lengths, ref, ref_classes))
