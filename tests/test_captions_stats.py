"""Caption wording and order policies; the bootstrap intervals every reported rate carries."""

import numpy as np
import pandas as pd
import pytest

from clipscope_utils.datasets.captions import caption, caption_order, noun_phrase
from clipscope_utils.stats import bootstrap_ci, rate_table


def test_paper_form_and_articles() -> None:
    assert caption(["dog", "apple", "umbrella"]) == "a dog and an apple and an umbrella"
    assert caption(["scissors"]) == "a pair of scissors"
    assert caption(["cat", "dog"], "photo") == "a photo of a cat and a dog"
    assert caption(["cat", "dog", "cow"], "photo") == "a photo of a cat, a dog and a cow"
    assert noun_phrase("hot dog") == "a hot dog"
    assert noun_phrase("The Eiffel Tower") == "the Eiffel Tower"
    assert caption(["The Great Wall of China", "cat"]) == "the Great Wall of China and a cat"
    with pytest.raises(ValueError, match="unknown caption template 'poem'"):
        caption(["cat"], "poem")


def test_bare_template_uses_raw_names() -> None:
    assert caption(["person", "bicycle", "car"], "bare") == "person and bicycle and car"
    assert caption(["person"], "bare") == "person"
    assert caption(["traffic_light", "scissors", "apple"], "bare") == "traffic light and scissors and apple"


@pytest.mark.parametrize("policy", ["largest_first", "largest_last", "random"])
def test_order_policies_are_permutations_with_the_largest_where_asked(policy: str) -> None:
    ranks = [2, 2, 1, 2]
    centers = [(0, 0)] * 4
    seen = set()
    for seed in range(30):
        order = caption_order(ranks, centers, policy, np.random.default_rng(seed))
        assert sorted(order) == [0, 1, 2, 3]
        if policy == "largest_first":
            assert order[0] == 2
        if policy == "largest_last":
            assert order[-1] == 2
        seen.add(tuple(order))
    assert len(seen) > 3  # the other objects are shuffled, not fixed


def test_position_policy_reads_top_to_bottom_then_left_to_right() -> None:
    centers = [(50, 50), (10, 10), (40, 10), (5, 50)]
    assert caption_order([1, 2, 2, 2], centers, "position", np.random.default_rng(0)) == [1, 2, 3, 0]


def test_same_seed_same_order() -> None:
    a = caption_order([1, 2, 2, 2, 2], [(0, 0)] * 5, "random", np.random.default_rng([4, 2]))
    b = caption_order([1, 2, 2, 2, 2], [(0, 0)] * 5, "random", np.random.default_rng([4, 2]))
    assert a == b


def test_bootstrap_interval_brackets_the_mean_and_is_seeded() -> None:
    x = np.r_[np.ones(30), np.zeros(70)]
    lo, hi = bootstrap_ci(x, seed=1)
    assert lo < 0.3 < hi and 0.15 < lo and hi < 0.45
    assert bootstrap_ci(x, seed=1) == (lo, hi)
    assert np.isnan(bootstrap_ci([])[0])
    assert bootstrap_ci(np.ones(10)) == (1.0, 1.0)


def test_rate_table_counts_and_rates() -> None:
    frame = pd.DataFrame({"g": ["a"] * 4 + ["b"] * 2, "hit": [1, 1, 0, 0, 1, 1]})
    t = rate_table(frame, ["g"], "hit")
    assert t.g.tolist() == ["a", "b"] and t.n.tolist() == [4, 2] and t.rate.tolist() == [0.5, 1.0]
    assert (t.ci_low <= t.rate).all() and (t.rate <= t.ci_high).all()
