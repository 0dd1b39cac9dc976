"""Image–text matching pairs of paper A section 5.1 and their scoring on constructed vectors."""

import numpy as np
import pandas as pd
import pytest

from clipscope_utils.probes import ProbeError
from clipscope_utils.probes.matching import matching_accuracy, matching_hits, matching_pairs

CLASSES = ["apple", "bear", "cat", "dog", "elephant", "fork", "giraffe", "horse"]


def objects_frame() -> pd.DataFrame:
    """Three multi-object images (large object not at index 0 everywhere) and one single."""
    scenes = {"m1": [(2, 2), (0, 1), (5, 2)], "m2": [(1, 1), (3, 2)], "m3": [(4, 2), (6, 2), (7, 2), (0, 1)],
              "s1": [(3, 1)]}
    rows = [(img, k, CLASSES[c], c, r) for img, objs in scenes.items() for k, (c, r) in enumerate(objs)]
    return pd.DataFrame(rows, columns=["image_id", "object_index", "class_name", "class_id", "size_rank"])


LARGE = {"m1": 0, "m2": 1, "m3": 0}
PRESENT = {"m1": {2, 0, 5}, "m2": {1, 3}, "m3": {4, 6, 7, 0}}


@pytest.mark.parametrize("scenario", ["first", "second"])
def test_large_object_and_swap_sit_at_the_scenario_position(scenario: str) -> None:
    pairs = matching_pairs(objects_frame(), CLASSES, scenario)
    assert list(pairs.image_id) == ["m1", "m2", "m3"]  # single-object image skipped, sorted
    at = 0 if scenario == "first" else -1
    for r in pairs.itertuples():
        assert r.scenario == scenario and r.n_objects == len(PRESENT[r.image_id])
        assert set(r.correct_order) == PRESENT[r.image_id] and r.correct_order[at] == LARGE[r.image_id]
        assert r.absent_class_id not in PRESENT[r.image_id] and r.replaced_class_id == LARGE[r.image_id]
        expected = list(r.correct_order)
        expected[at] = r.absent_class_id
        assert list(r.incorrect_order) == expected  # only the large object is swapped, in place
    m2 = pairs.set_index("image_id").loc["m2"]
    if scenario == "first":
        assert m2.correct_text == "a bear and a dog"
        assert m2.incorrect_text == f"{'an' if CLASSES[m2.absent_class_id][0] in 'aeiou' else 'a'} " \
                                    f"{CLASSES[m2.absent_class_id]} and a dog"
    else:
        assert m2.correct_text == "a dog and a bear"
        assert m2.incorrect_text.startswith("a dog and ") and m2.incorrect_text.endswith(CLASSES[m2.absent_class_id])


def test_small_reading_drops_a_small_object_and_puts_the_absent_class_at_the_end_or_start() -> None:
    frame = objects_frame()
    for scenario in ("first", "second"):
        pairs = matching_pairs(frame, CLASSES, scenario, replace="small").set_index("image_id")
        large = matching_pairs(frame, CLASSES, scenario, replace="large").set_index("image_id")
        for img, r in pairs.iterrows():
            big = LARGE[img]
            assert r.replaced_class_id != big and r.replaced_class_id in PRESENT[img]
            inc = list(r.incorrect_order)
            assert len(inc) == r.n_objects and big in inc and r.replaced_class_id not in inc
            assert (inc[0] if scenario == "first" else inc[-1]) == r.absent_class_id
            assert (inc[1] if scenario == "first" else inc[-2]) == big
            # the remaining small objects keep their correct-caption order
            rest = [c for c in r.correct_order if c not in (big, r.replaced_class_id)]
            assert [c for c in inc if c not in (big, r.absent_class_id)] == rest
            # both readings share the correct caption and the absent class
            assert r.correct_order == large.loc[img, "correct_order"]
            assert r.absent_class_id == large.loc[img, "absent_class_id"]


def test_scenarios_share_small_order_and_absent_class_and_are_deterministic() -> None:
    frame = objects_frame()
    first, second = (matching_pairs(frame, CLASSES, s, seed=5) for s in ("first", "second"))
    pd.testing.assert_frame_equal(first, matching_pairs(frame, CLASSES, "first", seed=5))
    assert list(first.absent_class_id) == list(second.absent_class_id)
    for a, b in zip(first.correct_order, second.correct_order):
        assert a[1:] == b[:-1] and a[0] == b[-1]
    shuffled = frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    pd.testing.assert_frame_equal(first, matching_pairs(shuffled, CLASSES, "first", seed=5))
    # an image's pair does not depend on which other images are present
    alone = matching_pairs(frame[frame.image_id == "m3"], CLASSES, "first", seed=5)
    pd.testing.assert_frame_equal(alone, first[first.image_id == "m3"].reset_index(drop=True))
    # seeds vary the draws
    draws = {tuple(matching_pairs(frame, CLASSES, "first", seed=s).absent_class_id) for s in range(10)}
    assert len(draws) > 1


def test_template_is_applied() -> None:
    pairs = matching_pairs(objects_frame(), CLASSES, "first", template="photo")
    assert pairs.set_index("image_id").loc["m2", "correct_text"] == "a photo of a bear and a dog"


def test_hits_cosine_with_exact_tie() -> None:
    img = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])
    pos = np.array([[10.0, 1.0], [0.0, 1.0], [0.0, 5.0], [6.0, 8.0]])
    neg = np.array([[0.1, 0.1], [1.0, 0.1], [0.0, 0.5], [6.0, 8.0]])
    # row 0: norm does not matter (cosine); row 2: both parallel -> tie; row 3: identical -> tie
    assert matching_hits(img, pos, neg).tolist() == [1.0, 0.0, 0.5, 0.5]
    frame = pd.DataFrame({"scenario": ["first"] * 2 + ["second"] * 2, "n_objects": 2,
                          "hit": matching_hits(img, pos, neg)})
    acc = matching_accuracy(frame, n_boot=50)
    assert acc.rate.tolist() == [0.5, 0.5] and acc.n.tolist() == [2, 2]


def test_errors() -> None:
    frame = objects_frame()
    with pytest.raises(ProbeError, match="scenario"):
        matching_pairs(frame, CLASSES, "third")
    with pytest.raises(ProbeError, match="replace"):
        matching_pairs(frame, CLASSES, "first", replace="medium")
    with pytest.raises(ProbeError, match="template"):
        matching_pairs(frame, CLASSES, "first", template="poem")
    two_large = frame.assign(size_rank=np.where(frame.image_id == "m3", 1, frame.size_rank))
    with pytest.raises(ProbeError, match="'m3' has 4 objects of size_rank 1"):
        matching_pairs(two_large, CLASSES, "first")
    with pytest.raises(ProbeError, match="no image with >= 2 objects"):
        matching_pairs(frame[frame.image_id == "s1"], CLASSES, "first")
    with pytest.raises(ProbeError, match="lacks columns"):
        matching_pairs(frame.drop(columns="size_rank"), CLASSES, "first")
    with pytest.raises(ProbeError, match="class_id outside"):
        matching_pairs(frame, CLASSES[:5], "first")
    with pytest.raises(ProbeError, match="class list"):
        matching_pairs(frame, CLASSES[::-1], "first")
    every = pd.DataFrame({"image_id": "x", "object_index": range(3), "class_name": ["a", "b", "c"],
                          "class_id": range(3), "size_rank": [1, 2, 2]})
    with pytest.raises(ProbeError, match="every class"):
        matching_pairs(every, ["a", "b", "c"], "first")
    v = np.ones((3, 4))
    with pytest.raises(ProbeError, match="one shape"):
        matching_hits(v, v, np.ones((3, 5)))
    with pytest.raises(ProbeError, match="one shape"):
        matching_hits(v[0], v[0], v[0])
    z = v.copy()
    z[1] = 0
    with pytest.raises(ProbeError, match="correct embedding row 1 is a zero vector"):
        matching_hits(v, z, v)
    with pytest.raises(ProbeError, match="lacks columns"):
        matching_accuracy(pd.DataFrame({"scenario": ["first"], "hit": [1.0]}))
