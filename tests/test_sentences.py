"""Claim 1 caption sets: seeded, paired between large-first and small-first, distinct objects."""

import json
from pathlib import Path

import pytest

from clipscope_utils.datasets.captions import caption
from clipscope_utils.probes import ProbeError
from clipscope_utils.probes.sentences import size_category_sentences, vocabulary

SMALL = {"_about": "toy", "small": ["ant", "cup", "egg"], "medium": ["bed", "cow", "pig", "sofa", "oven"],
         "large": ["aircraft carrier", "barn", "bus"]}


@pytest.fixture(scope="module")
def real() -> dict:
    with open(Path(__file__).resolve().parents[1] / "data" / "size_categories.json") as fh:
        return json.load(fh)


def test_deterministic_and_seed_dependent(real: dict) -> None:
    a = size_category_sentences(real, "large", 200, seed=3)
    b = size_category_sentences(real, "large", 200, seed=3)
    c = size_category_sentences(real, "large", 200, seed=4)
    assert a.equals(b) and not a["objects"].equals(c["objects"])
    assert list(a.columns) == ["sentence_id", "first_category", "text", "objects"]
    assert a["sentence_id"].tolist() == list(range(200)) and (a["first_category"] == "large").all()


def test_large_and_small_sets_share_the_fillers(real: dict) -> None:
    big = size_category_sentences(real, "large", 300, seed=11)
    small = size_category_sentences(real, "small", 300, seed=11)
    assert [o[1:] for o in big["objects"]] == [o[1:] for o in small["objects"]]
    assert all(o[0] in real["large"] for o in big["objects"]) and all(o[0] in real["small"] for o in small["objects"])
    assert all(x != y for x, y in zip(big["objects"], small["objects"]))


def test_objects_are_distinct_from_the_right_categories_and_texts_match(real: dict) -> None:
    f = size_category_sentences(real, "small", 500, n_objects=5, template="photo", seed=0)
    for objects, text in zip(f["objects"], f["text"]):
        assert isinstance(objects, tuple) and len(objects) == 5 and len(set(objects)) == 5
        assert objects[0] in real["small"] and all(o in real["medium"] for o in objects[1:])
        assert text == caption(objects, "photo")
    assert f["objects"].map(lambda o: o[0]).nunique() > 50  # the first object varies


def test_fillers_may_come_from_the_first_category_without_repeats() -> None:
    f = size_category_sentences(SMALL, "medium", 100, n_objects=5, filler="medium", seed=2)
    assert all(sorted(o) == sorted(SMALL["medium"]) for o in f["objects"])  # all 5 distinct medium names
    g = size_category_sentences(SMALL, "large", 20, n_objects=2, filler="large", seed=2)
    assert all(len(set(o)) == 2 for o in g["objects"])
    assert any(t.startswith("an aircraft carrier and a") for t in g["text"])


def test_vocabulary_is_sorted_unique_and_ignores_private_keys(real: dict) -> None:
    v = vocabulary(real)
    assert v == sorted(set(real["small"]) | set(real["medium"]) | set(real["large"])) and "_about" not in v
    assert vocabulary(SMALL, keys=("large", "small")) == ["aircraft carrier", "ant", "barn", "bus", "cup", "egg"]
    with pytest.raises(ProbeError, match="unknown size category '_about'"):
        vocabulary(SMALL, keys=("_about",))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(first="huge"), r"unknown size category 'huge'; allowed: \['large', 'medium', 'small'\]"),
        (dict(filler="tiny"), "unknown size category 'tiny'"),
        (dict(n_objects=1), "n_objects must be an integer >= 2"),
        (dict(n_objects=7), "'medium' has 5 distinct names; 6 fillers"),
        (dict(n_sentences=0), "n_sentences must be a positive integer"),
        (dict(template="poem"), "unknown caption template 'poem'"),
        (dict(first="medium", n_objects=6), "can use up every 'medium' name"),
    ],
)
def test_errors(kwargs: dict, message: str) -> None:
    args = dict(categories=SMALL, first="large", n_sentences=5)
    with pytest.raises(ProbeError, match=message):
        size_category_sentences(**{**args, **kwargs})
