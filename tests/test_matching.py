"""Image–text matching pairs of paper A section 5.1 and their scoring on constructed vectors."""

import numpy as np
import pandas as pd
import pytest

from clipscope_utils.probes import ProbeError
from clipscope_utils.probes.matching import (
    matching_hits,
    matching_pairs,
    matching_table,
    rephrased,
    remembered,
)

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
    pairs = matching_pairs(objects_frame(), CLASSES, scenario, replace="large")
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
    first, second = (matching_pairs(frame, CLASSES, s, replace="large", seed=5) for s in ("first", "second"))
    pd.testing.assert_frame_equal(first, matching_pairs(frame, CLASSES, "first", replace="large", seed=5))
    assert list(first.absent_class_id) == list(second.absent_class_id)
    for a, b in zip(first.correct_order, second.correct_order):
        assert a[1:] == b[:-1] and a[0] == b[-1]
    shuffled = frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    pd.testing.assert_frame_equal(first, matching_pairs(shuffled, CLASSES, "first", replace="large", seed=5))
    # an image's pair does not depend on which other images are present
    alone = matching_pairs(frame[frame.image_id == "m3"], CLASSES, "first", replace="large", seed=5)
    pd.testing.assert_frame_equal(alone, first[first.image_id == "m3"].reset_index(drop=True))
    # seeds vary the draws
    draws = {tuple(matching_pairs(frame, CLASSES, "first", replace="large", seed=s).absent_class_id) for s in range(10)}
    assert len(draws) > 1


def test_template_is_applied() -> None:
    pairs = matching_pairs(objects_frame(), CLASSES, "first", template="photo")
    assert set(pairs[pairs.image_id == "m2"].correct_text) == {"a photo of a bear and a dog"}
    bare = matching_pairs(objects_frame(), CLASSES, "second", template="bare")
    assert set(bare[bare.image_id == "m2"].correct_text) == {"dog and bear"}


def test_hits_cosine_with_exact_tie() -> None:
    img = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])
    pos = np.array([[10.0, 1.0], [0.0, 1.0], [0.0, 5.0], [6.0, 8.0]])
    neg = np.array([[0.1, 0.1], [1.0, 0.1], [0.0, 0.5], [6.0, 8.0]])
    # row 0: norm does not matter (cosine); row 2: both parallel -> tie; row 3: identical -> tie
    assert matching_hits(img, pos, neg).tolist() == [1.0, 0.0, 0.5, 0.5]
    assert matching_hits(img, pos, neg, tie=0.0).tolist() == [1.0, 0.0, 0.0, 0.0]  # the authors' strict >
    with pytest.raises(ProbeError, match="tie"):
        matching_hits(img, pos, neg, tie=1.0)


def test_errors() -> None:
    frame = objects_frame()
    with pytest.raises(ProbeError, match="scenario"):
        matching_pairs(frame, CLASSES, "third")
    with pytest.raises(ProbeError, match="replace"):
        matching_pairs(frame, CLASSES, "first", replace="medium")
    with pytest.raises(ProbeError, match="template"):
        matching_pairs(frame, CLASSES, "first", template="poem")
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
    with pytest.raises(ProbeError, match="no image can be paired.*contain every class"):
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
    with pytest.raises(ProbeError, match="lacks columns.*image_id"):
        matching_table(pd.DataFrame({"scenario": ["first"], "pairing": "authors", "hit": [1.0]}))


# -- the authors' pairs (reference README: Image_Text_Matching.py) -------------------------------------------
NAMES = ["apple", "bear", "cat", "dog", "egg", "fox"]


def image(image_id: str, objects: list[tuple[str, int]]) -> pd.DataFrame:
    """One hand-made image: (class name, size_rank) in object_index order."""
    return pd.DataFrame([(image_id, k, n, NAMES.index(n), r) for k, (n, r) in enumerate(objects)],
                        columns=["image_id", "object_index", "class_name", "class_id", "size_rank"])


def test_authors_scenario_1_puts_every_absent_class_first_in_the_large_objects_place() -> None:
    three = image("i3", [("cat", 2), ("bear", 1), ("fox", 2)])  # large object not at index 0
    pairs = matching_pairs(three, NAMES, "first", template="bare")
    assert set(pairs.correct_text) == {"bear and cat and fox"}
    assert pairs.incorrect_text.tolist() == ["apple and cat and fox", "dog and cat and fox", "egg and cat and fox"]
    assert pairs.absent_class_id.tolist() == [0, 3, 4] and (pairs.replaced_class_id == 1).all()
    assert (pairs.pairing == "authors").all() and (pairs.n_objects == 3).all()
    four = matching_pairs(image("i4", [("cat", 2), ("bear", 1), ("fox", 2), ("apple", 2)]), NAMES, "first")
    assert four.correct_text.iloc[0] == "a bear and a cat and a fox and an apple"
    assert four.incorrect_text.tolist() == ["a dog and a cat and a fox and an apple",
                                            "an egg and a cat and a fox and an apple"]


def test_authors_scenario_2_moves_the_large_object_first_and_replaces_the_last_small_one() -> None:
    three = matching_pairs(image("i3", [("cat", 2), ("bear", 1), ("fox", 2)]), NAMES, "second", template="bare")
    assert set(three.correct_text) == {"cat and fox and bear"}
    assert three.incorrect_text.tolist() == ["bear and cat and apple", "bear and cat and dog", "bear and cat and egg"]
    assert (three.replaced_class_id == NAMES.index("fox")).all()
    four = matching_pairs(image("i4", [("cat", 2), ("bear", 1), ("fox", 2), ("apple", 2)]), NAMES, "second",
                          template="bare")
    assert set(four.correct_text) == {"cat and fox and apple and bear"}
    assert four.incorrect_text.tolist() == ["bear and cat and fox and dog", "bear and cat and fox and egg"]
    assert four.incorrect_order.tolist() == [(1, 2, 5, 3), (1, 2, 5, 4)]


def test_authors_pairs_enumerate_every_absent_class_per_image_and_ignore_the_seed() -> None:
    frame = objects_frame()
    for scenario in ("first", "second"):
        pairs = matching_pairs(frame, CLASSES, scenario)
        for img, present in PRESENT.items():
            rows = pairs[pairs.image_id == img]
            assert sorted(rows.absent_class_id) == sorted(set(range(len(CLASSES))) - present)
        pd.testing.assert_frame_equal(pairs, matching_pairs(frame, CLASSES, scenario, seed=9))


def test_tied_largest_object_and_full_images_are_skipped_with_a_note() -> None:
    frame = objects_frame()
    two_large = frame.assign(size_rank=np.where(frame.image_id == "m3", 1, frame.size_rank))
    notes: list[str] = []
    pairs = matching_pairs(two_large, CLASSES, "first", notes=notes)
    assert set(pairs.image_id) == {"m1", "m2"}
    assert notes == ["matching: 1 of 3 images skipped: not exactly one object of size_rank 1 (largest area tied "
                     "or unknown), e.g. 'm3'"]
    full = image("all", [(n, 1 if n == "cat" else 2) for n in NAMES])
    notes = []
    both = matching_pairs(pd.concat([full, image("i2", [("cat", 1), ("dog", 2)])]), NAMES, "first", notes=notes)
    assert set(both.image_id) == {"i2"} and "1 of 2 images skipped: they contain every class" in notes[0]
    with pytest.raises(ProbeError, match="no image can be paired.*size_rank 1"):
        matching_pairs(two_large[two_large.image_id == "m3"], CLASSES, "first")


def test_matching_table_bootstraps_over_images_and_counts_pairs() -> None:
    rows = []
    for img, hits in {"a": [1, 1, 1, 1], "b": [0, 0], "c": [1, 0, 0, 0, 0, 1]}.items():
        rows += [{"model": "m", "paper_model": "", "image_id": img, "scenario": "first", "pairing": "authors",
                  "n_objects": 2, "hit": float(h)} for h in hits]
    frame = pd.DataFrame(rows)
    t = matching_table(frame, n_boot=200)
    r = t.iloc[0]
    assert r.n == 3 and r.n_images == 3 and r.n_pairs == 12 and r.rate == pytest.approx(6 / 12)
    assert r.ci_low <= r.rate <= r.ci_high and list(t.columns[:4]) == ["model", "paper_model", "pairing", "scenario"]
    pd.testing.assert_frame_equal(t, matching_table(frame, n_boot=200))  # seeded
    # the interval is that of whole images: resampling the 12 pairs as if independent is narrower
    naive = frame.assign(image_id=range(12))
    n = matching_table(naive, n_boot=2000).iloc[0]
    wide = matching_table(frame, n_boot=2000).iloc[0]
    assert n.n == 12 and wide.ci_high - wide.ci_low > n.ci_high - n.ci_low
    # one pair per image: the ordinary bootstrap of the mean, variants never pooled
    one = pd.concat([naive.assign(pairing="large"), frame])
    t = matching_table(one, ("scenario", "n_objects"), n_boot=100)
    assert t.pairing.tolist() == ["authors", "large"] and t.n.tolist() == [3, 12] and t.n_pairs.tolist() == [12, 12]


def test_rephrase_by_mapping_and_by_callable() -> None:
    pairs = matching_pairs(image("i2", [("cat", 1), ("dog", 2)]), NAMES, "first", template="bare")
    table = {"cat and dog": "a cat next to a dog", "apple and dog": "an apple next to a dog"}
    notes: list[str] = []
    out = rephrased(pairs, table, notes)
    assert set(out.correct_text) == {"a cat next to a dog"} and set(out.correct_source_text) == {"cat and dog"}
    assert out.incorrect_text.tolist() == ["an apple next to a dog", "bear and dog", "egg and dog", "fox and dog"]
    assert out.incorrect_source_text.tolist() == pairs.incorrect_text.tolist()
    assert notes == ["rephrase (first scenario): 3 of 5 captions have no rephrasing and keep their template text"]
    asked: list[list[str]] = []

    def shout(texts: list[str]) -> list[str]:
        asked.append(list(texts))
        return [t.upper() for t in texts]

    out = rephrased(pairs, shout)
    assert out.correct_text.tolist() == ["CAT AND DOG"] * 4 and out.incorrect_text.iloc[0] == "APPLE AND DOG"
    assert asked[0] == ["cat and dog", "apple and dog", "bear and dog", "egg and dog", "fox and dog"]  # each once
    memo = remembered(shout)
    rephrased(pairs, memo)
    rephrased(pairs, memo)
    assert len(asked) == 2  # a second model's identical captions are not asked about again
    none = rephrased(pairs, None)
    assert none.correct_text.equals(none.correct_source_text)
    with pytest.raises(ProbeError, match="one per caption"):
        rephrased(pairs, lambda texts: texts[:1])
    with pytest.raises(ProbeError, match="empty or non-text"):
        rephrased(pairs, {"cat and dog": ""})
    with pytest.raises(ProbeError, match="mapping caption"):
        rephrased(pairs, 42)
