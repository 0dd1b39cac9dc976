"""Caption reordering for the causal test of Claim 2's origin: one caption by a policy, and whole shards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clipscope_utils.datasets.scenes import SceneSpec, generate_cached
from clipscope_utils.datasets.shards import (
    SEGMENT_COLUMNS, ShardSample, export_scene_shards, read_segments, read_shard, write_shard,
)
from clipscope_utils.datasets.tables import DatasetError
from clipscope_utils.studies.caption_order import ClassMatcher, Mention, SceneGraphExtractor
from clipscope_utils.studies.reorder import (
    ORDER_POLICIES, REPORT_FILE, ReorderReport, reorder_caption, reorder_shards, widen,
)

TEXT = "a small cat beside a big dog and a tiny mouse"
SPANS = [(2, 11), (21, 28), (35, 45)]  # small cat, big dog, tiny mouse
AREAS = [10.0, 50.0, 5.0]


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# -- one caption ----------------------------------------------------------------------------------
@pytest.mark.parametrize("policy, expected", [
    ("largest_first", "a big dog beside a small cat and a tiny mouse"),
    ("largest_last", "a small cat beside a tiny mouse and a big dog"),
])
def test_reorder_caption_moves_the_largest_phrase(policy: str, expected: str) -> None:
    assert [TEXT[s:e] for s, e in SPANS] == ["small cat", "big dog", "tiny mouse"]
    assert reorder_caption(TEXT, SPANS, AREAS, policy, rng()) == expected


def test_ties_count_the_first_as_largest_and_short_captions_stay() -> None:
    tied = [50.0, 10.0, 50.0]
    assert reorder_caption(TEXT, SPANS, tied, "largest_first", rng()) == TEXT
    assert reorder_caption(TEXT, SPANS, tied, "largest_last", rng()) == "a big dog beside a tiny mouse and a small cat"
    for policy in ORDER_POLICIES:
        assert reorder_caption(TEXT, SPANS[:1], [3.0], policy, rng()) == TEXT
        assert reorder_caption(TEXT, [], [], policy, rng()) == TEXT


def test_shuffled_is_a_seeded_permutation() -> None:
    outs = {reorder_caption(TEXT, SPANS, AREAS, "shuffled", rng(s)) for s in range(30)}
    assert len(outs) == 6  # every order of three phrases occurs
    for out in outs:
        assert out.startswith("a ") and " beside a " in out and " and a " in out
        assert sorted(out.replace(" beside ", "|").replace(" and ", "|").split("|")) == sorted(
            ["a small cat", "a big dog", "a tiny mouse"])
    twice = {reorder_caption(TEXT, SPANS, AREAS, "shuffled", rng(7)) for _ in range(2)}
    assert len(twice) == 1


def test_reorder_caption_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="largest_first.*shuffled.*largest_last"):
        reorder_caption(TEXT, SPANS, AREAS, "smallest_first", rng())
    with pytest.raises(ValueError, match="3 spans but 2 areas"):
        reorder_caption(TEXT, SPANS, AREAS[:2], "largest_first", rng())
    with pytest.raises(ValueError, match="not overlapping"):
        reorder_caption(TEXT, [(2, 11), (5, 28)], AREAS[:2], "largest_first", rng())
    with pytest.raises(ValueError, match="finite"):
        reorder_caption(TEXT, SPANS, [1.0, float("nan"), 2.0], "largest_first", rng())


def test_widen_takes_articles_numbers_and_amounts_not_places() -> None:
    text = "a pair of skis, two dogs, the cat, in front of cars"
    assert text[widen(text, text.index("skis")):].startswith("a pair of skis")
    assert text[widen(text, text.index("dogs")):].startswith("two dogs")
    assert text[widen(text, text.index("cat")):].startswith("the cat")
    assert widen(text, text.index("cars")) == text.index("cars")
    assert widen("a dog", 2, floor=1) == 2  # never before the floor


# -- shards ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def extractor() -> SceneGraphExtractor:
    return SceneGraphExtractor()  # spaCy loads once for the module


@pytest.fixture(scope="module")
def source(module_cache, tmp_path_factory) -> Path:
    """Generated captions in random order, as shards with a sidecar."""
    scenes = generate_cached(SceneSpec(family="comco", objects=(2, 3, 4), images=2, image_size=32,
                                       templates=("and", "scene"), order="random", seed=2), progress=False)
    out = tmp_path_factory.mktemp("shards") / "src"
    export_scene_shards(scenes, out, shard_size=7)
    return out


def largest_position(text: str, key: str, segments: pd.DataFrame, extractor) -> tuple[int, int]:
    """(0-based position of the largest object among the objects the extractor finds, how many it finds)."""
    rows = segments[segments.key == key]
    areas = rows.groupby("class_name").area_px.max().to_dict()
    found, _ = ClassMatcher(sorted(areas)).classes_of(extractor.mentions(text))
    sizes = [areas[c] for c in found]
    return (int(np.argmax(sizes)) if sizes else -1), len(sizes)


@pytest.mark.parametrize("policy, where", [("largest_first", 0), ("largest_last", -1)])
def test_reorder_shards_puts_the_largest_object_in_place(source: Path, extractor, tmp_path: Path, policy: str,
                                                         where: int) -> None:
    report = reorder_shards(source, tmp_path / policy, policy, extractor=extractor)
    assert [p.name for p in report.shards] == ["00000.tar", "00001.tar"]
    assert report.captions == 12 and report.rewritten > 0 and report.unmatched_mentions == 0
    checked = 0
    for src, dst in zip(sorted(source.glob("*.tar")), report.shards):
        segments = read_segments(dst)
        assert segments.equals(read_segments(src))
        for before, after in zip(read_shard(src), read_shard(dst)):
            assert (before.key, before.image) == (after.key, after.image)
            assert before.meta["image_id"] == after.meta["image_id"]
            pos, n = largest_position(after.caption, after.key, segments, extractor)
            if n >= 2:
                assert pos == (n - 1 if where == -1 else 0), (before.caption, after.caption)
                checked += 1
    assert checked >= 8
    saved = json.loads((tmp_path / policy / REPORT_FILE).read_text())
    assert saved["policy"] == policy and saved["rewritten"] == report.rewritten
    assert report.to_frame().set_index("measure").value["captions"] == 12


def test_shuffled_shards_are_deterministic(source: Path, extractor, tmp_path: Path) -> None:
    a = reorder_shards(source, tmp_path / "a", "shuffled", extractor=extractor, seed=3)
    b = reorder_shards(source, tmp_path / "b", "shuffled", extractor=extractor, seed=3)
    assert [p.read_bytes() for p in a.shards] == [p.read_bytes() for p in b.shards]
    assert a.rewritten > 0


def test_phrases_move_whole_and_a_capital_stays_first(extractor, tmp_path: Path) -> None:
    samples = [ShardSample("k0", "A cat and a pair of skis."), ShardSample("k1", "Two dogs next to an apple"),
               ShardSample("k2", "a cat sitting alone")]
    segments = pd.DataFrame([("k0", "cat", 5, 0, 0, 1, 1), ("k0", "skis", 50, 0, 0, 1, 1),
                             ("k1", "dog", 40, 0, 0, 1, 1), ("k1", "apple", 90, 0, 0, 1, 1),
                             ("k2", "cat", 7, 0, 0, 1, 1)], columns=SEGMENT_COLUMNS)
    write_shard(tmp_path / "src" / "00000.tar", samples, segments)
    report = reorder_shards(tmp_path / "src", tmp_path / "out", "largest_first", extractor=extractor)
    got = [s.caption for s in read_shard(report.shards[0])]
    assert got == ["A pair of skis and a cat.", "An apple next to two dogs", "a cat sitting alone"]
    assert (report.rewritten, report.unchanged_fewer_than_2) == (2, 1)


class WordsOnly:
    """An extractor without offsets (like an LLM's list); one phrase it names is not in the caption."""

    def extract(self, text: str) -> list[str]:
        return ["cat", "dog", "unicorn"] if "cat" in text else []


def test_mentions_without_offsets_are_found_in_the_text(tmp_path: Path) -> None:
    samples = [ShardSample("k0", "a concatenated string, a cat and a dog")]
    segments = pd.DataFrame([("k0", "cat", 5, 0, 0, 1, 1), ("k0", "dog", 50, 0, 0, 1, 1)], columns=SEGMENT_COLUMNS)
    write_shard(tmp_path / "src" / "00000.tar", samples, segments)
    report = reorder_shards(tmp_path / "src", tmp_path / "out", "largest_first", extractor=WordsOnly())
    assert [s.caption for s in read_shard(report.shards[0])] == ["a concatenated string, a dog and a cat"]
    assert report.unmatched_mentions == 1 and isinstance(report, ReorderReport)


def test_bad_policy_or_missing_sidecar_fails_before_writing(tmp_path: Path) -> None:
    write_shard(tmp_path / "src" / "00000.tar", [ShardSample("k0", "a cat and a dog")])
    with pytest.raises(ValueError, match="choose one of"):
        reorder_shards(tmp_path / "src", tmp_path / "out", "biggest_first", extractor=WordsOnly())
    with pytest.raises(DatasetError, match=r"00000\.tar has no segments sidecar"):
        reorder_shards(tmp_path / "src", tmp_path / "out", "largest_first", extractor=WordsOnly())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
    assert Mention("dog").end == -1  # the new field keeps old constructions working
