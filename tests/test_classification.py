"""TOC / IOC position probes on constructed embeddings whose decodable positions are known."""

import numpy as np
import pandas as pd
import pytest

from clipscope_utils.probes import ProbeError
from clipscope_utils.probes.classification import position_probe, probe_accuracy, split_items

N_CLASSES = 5


def planted(n_items: int = 300, n_objects: int = 2, seed: int = 1, dim: int = 16):
    """Position 1's class is written into the first N_CLASSES dims (one-hot x 6 + unit noise); the other
    positions' classes are drawn independently and never enter the embedding."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, N_CLASSES, size=(n_items, n_objects))
    emb = rng.normal(size=(n_items, dim))
    emb[np.arange(n_items), labels[:, 0]] += 6.0
    return emb, labels.tolist()


def test_encoded_position_is_decodable_and_the_other_is_at_chance() -> None:
    emb, labels = planted()
    acc = probe_accuracy(position_probe(emb, labels, seed=0), n_boot=200)
    first, second = acc.set_index("position").loc[1], acc.set_index("position").loc[2]
    assert first.n == second.n == 90  # round(0.3 * 300) test items per position
    assert first.rate > 0.9 and first.ci_low > 0.8
    assert second.rate < 0.45  # chance is 0.2; 90 test items
    assert first.chance == second.chance == pytest.approx(1 / N_CLASSES)
    assert 0.1 < second.majority < 0.4


def test_same_inputs_give_identical_frames_and_seed_changes_split() -> None:
    emb, labels = planted(n_items=80)
    a, b = position_probe(emb, labels, seed=3), position_probe(emb, labels, seed=3)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(probe_accuracy(a, n_boot=100, seed=2), probe_accuracy(b, n_boot=100, seed=2))
    pd.testing.assert_frame_equal(a, position_probe(emb, np.array(labels), seed=3))  # ndarray labels too
    c = position_probe(emb, labels, seed=4)
    assert set(a.item_id) != set(c.item_id)


def test_split_is_disjoint_shared_across_positions_and_reproducible() -> None:
    emb, labels = planted(n_items=50, n_objects=3)
    ids = [f"img{i:03d}" for i in range(50)]
    frame = position_probe(emb, labels, test_fraction=0.2, seed=7, item_ids=ids)
    per_pos = [set(g.item_id) for _, g in frame.groupby("position")]
    assert per_pos[0] == per_pos[1] == per_pos[2] and len(per_pos[0]) == 10
    assert (frame.n_train == 40).all() and (frame.n_test == 10).all()
    mask = split_items(50, 3, 0.2, 7)
    assert set(np.array(ids)[mask]) == per_pos[0]  # the documented split, nothing else
    assert np.array_equal(mask, split_items(50, 3, 0.2, 7))
    # true labels are carried through exactly
    lookup = dict(zip(ids, labels))
    assert all(lookup[r.item_id][r.position - 1] == r.class_id for r in frame.itertuples())


def test_mixed_lengths_get_one_probe_per_group_and_position() -> None:
    emb2, lab2 = planted(n_items=40, n_objects=2, seed=1)
    emb3, lab3 = planted(n_items=30, n_objects=3, seed=2)
    frame = position_probe(np.vstack([emb2, emb3]), lab2 + lab3)
    keys = sorted(set(zip(frame.n_objects, frame.position)))
    assert keys == [(2, 1), (2, 2), (3, 1), (3, 2), (3, 3)]
    assert set(frame[frame.n_objects == 2].item_id) <= set(range(40))
    assert set(frame[frame.n_objects == 3].item_id) <= set(range(40, 70))
    assert (frame[frame.n_objects == 3].n_test == 9).all()
    assert set(frame.hit) <= {0.0, 1.0}


def test_class_only_in_test_is_a_miss_not_a_crash() -> None:
    emb, labels = planted(n_items=60)
    mask = split_items(60, 2, 0.3, 0)
    test_row = int(np.flatnonzero(mask)[0])
    labels[test_row][0] = 99  # never in train
    frame = position_probe(emb, labels, seed=0)
    row = frame[(frame.item_id == test_row) & (frame.position == 1)].iloc[0]
    assert row.class_id == 99 and row.predicted != 99 and row.hit == 0.0


def test_errors_are_probe_errors_raised_before_fitting() -> None:
    emb, labels = planted(n_items=40)
    with pytest.raises(ProbeError, match="40 rows but objects has 39"):
        position_probe(emb, labels[:39])
    with pytest.raises(ProbeError, match="n_objects=2: 5 items give 3 train / 2 test"):
        position_probe(emb[:5], labels[:5])
    with pytest.raises(ProbeError, match="need >= 4 train"):
        position_probe(emb[:5], labels[:5])
    one_class = [[0, c] for _, c in labels]
    with pytest.raises(ProbeError, match="position 1: 1 distinct class"):
        position_probe(emb, one_class)
    # a bad group anywhere stops the whole run: the valid n=2 group is not fitted first
    mixed = labels + [[1, 2, 3]] * 3
    with pytest.raises(ProbeError, match="n_objects=3"):
        position_probe(np.vstack([emb, emb[:3]]), mixed)
    with pytest.raises(ProbeError, match="test_fraction"):
        position_probe(emb, labels, test_fraction=1.0)
    with pytest.raises(ProbeError, match="2-D"):
        position_probe(emb[0], labels[:1])
    with pytest.raises(ProbeError, match="int class ids"):
        position_probe(emb, [["cat", "dog"]] * 40)
    with pytest.raises(ProbeError, match="unique"):
        position_probe(emb, labels, item_ids=[0] * 40)
    with pytest.raises(ProbeError, match="lacks columns"):
        probe_accuracy(pd.DataFrame({"hit": [1.0]}))
