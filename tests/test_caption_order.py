"""Tests for the caption-order pipeline (paper A, Fig. 4b): extractors, matching, areas, the table."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clipscope_utils.studies.caption_order import (
    ClassMatcher,
    ClassNameExtractor,
    ExtractionError,
    Extractor,
    LLMExtractor,
    Mention,
    SceneGraphExtractor,
    caption_records,
    extractor_quality,
    largest_position,
    largest_position_table,
    parse_llm_reply,
    run,
    singular,
)
from clipscope_utils.datasets import SceneSpec, generate
from clipscope_utils.datasets.families import classes as family_classes
from clipscope_utils.datasets.tables import DatasetError, SceneSet

CLASSES = family_classes("comco")  # COCO names: dog, hot dog, bear, teddy bear, scissors, traffic light, ...

# (caption, classes in order of first mention): names, plurals, synonyms, multi-word names,
# "hot dog" is not a dog, "teddy bear" is not a bear, repeated mentions keep the first position.
TRICKY = [
    ("a hot dog and a dog", ["hot dog", "dog"]),
    ("a dog and a hot dog", ["dog", "hot dog"]),
    ("Two dogs and a cat", ["dog", "cat"]),
    ("a pair of scissors and a traffic light", ["scissors", "traffic light"]),
    ("A man in front of a car with a frisbee", ["person", "car", "frisbee"]),
    ("A television in front of a SOFA.", ["tv", "couch"]),
    ("a dog and a cat and another dog", ["dog", "cat"]),
    ("a pair of skis and a sports ball and a potted plant", ["skis", "sports ball", "potted plant"]),
    ("A group of people sitting at a table with cups", ["person", "cup"]),  # "dining table" is not a comco class
]


@pytest.fixture(scope="module")
def scene_graph() -> SceneGraphExtractor:
    return SceneGraphExtractor()  # spaCy loads once for the module (a few seconds)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> SceneSet:
    spec = SceneSpec(family="comco", objects=(2, 3, 4, 5), images=6, templates=("and", "photo", "scene"), seed=5)
    return generate(spec, tmp_path_factory.mktemp("co") / "comco", workers=1, progress=False)


def tiny_set(objects: dict[str, list[tuple[str, float]]], captions: list[tuple[str, str]],
             classes=CLASSES, root: Path = Path(".")) -> SceneSet:
    """A SceneSet from (class, area) per image and (image_id, caption) pairs; kind by object count."""
    images = pd.DataFrame([
        {"image_id": i, "path": f"{i}.png", "kind": "multi" if len(objs) >= 2 else "single", "n_objects": len(objs),
         "width": 64, "height": 64, "large_slot": ""} for i, objs in objects.items()
    ])
    rows = []
    for i, objs in objects.items():
        for k, (name, area) in enumerate(objs):
            rows.append({"image_id": i, "object_index": k, "class_name": name, "class_id": classes.index(name),
                         "is_large": False, "size_rank": math.nan, "slot": "", "x0": 0, "y0": 0, "x1": 1, "y1": 1,
                         "area_px": area, "color": "", "caption_position": 0})
    caps = pd.DataFrame([{"image_id": i, "template": "coco", "text": t, "order": ""} for i, t in captions])
    return SceneSet(root=root, classes=list(classes), images=images, objects=pd.DataFrame(rows), captions=caps)


# -- extractors -----------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", TRICKY)
def test_class_name_extractor_on_tricky_captions(text: str, expected: list[str]) -> None:
    assert ClassNameExtractor(CLASSES).extract(text) == expected


@pytest.mark.parametrize("text, expected", TRICKY)
def test_scene_graph_extractor_on_tricky_captions(scene_graph: SceneGraphExtractor, text: str,
                                                  expected: list[str]) -> None:
    mentions = scene_graph.mentions(text)
    classes, _ = ClassMatcher(CLASSES).classes_of(mentions)
    assert classes == expected
    starts = [m.start for m in mentions]
    assert starts == sorted(starts) and all(text[m.start:].startswith(m.text) for m in mentions)
    assert scene_graph.extract(text) == [m.text for m in mentions]


def test_scene_graph_phrases_skip_frames_partitives_and_pronouns(scene_graph: SceneGraphExtractor) -> None:
    text = "in this picture we can see a bus, a hot dog, and also a tie placed on a plain background"
    assert scene_graph.extract(text) == ["bus", "hot dog", "tie"]
    assert scene_graph.extract("a pair of scissors") == ["scissors"]
    assert [m.lemma for m in scene_graph.mentions("two dogs")] == ["dog"]
    assert isinstance(scene_graph, Extractor) and isinstance(ClassNameExtractor(CLASSES), Extractor)


# -- matching -------------------------------------------------------------------------------------
@pytest.mark.parametrize("phrase, expected", [
    ("hot dog", "hot dog"), ("a hot-dog", "hot dog"), ("dogs", "dog"), ("Dog", "dog"),
    ("pair of scissors", "scissors"), ("man with a dog", "person"), ("potted plant", "potted plant"),
    ("traffic lights", "traffic light"), ("stop-signs", "stop sign"), ("teddy bear", "teddy bear"), ("bear", "bear"), ("sofa", "couch"),
    ("knives", "knife"), ("large brown dog", "dog"), ("dog bed", "bed"), ("cup of coffee", "cup"),
    ("slice of pizza", "pizza"), ("picture", None), ("hotdogs", None), ("", None),
])
def test_class_matcher_head_rule(phrase: str, expected: str | None) -> None:
    assert ClassMatcher(CLASSES).match(phrase) == expected


def test_class_matcher_uses_the_lemma_of_the_head() -> None:
    matcher = ClassMatcher(["ox"], synonyms={})
    assert matcher.match("oxen") is None  # no regular plural gives "oxen"
    assert matcher.match(Mention("two oxen", 0, lemma="ox")) == "ox"
    assert singular("boxes") == "box" and singular("ponies") == "pony" and singular("glass") == "glass"
    assert ClassMatcher(["box"], synonyms={}).match("boxes") == "box"


def test_unmatched_mentions_are_dropped_and_counted() -> None:
    ds = tiny_set({"a": [("dog", 100.0), ("cat", 40.0)]},
                  [("a", "A dog, a zebra and a unicorn next to a cat"), ("a", "two dogs and a dog")])
    rec = caption_records(ds, ClassNameExtractor(CLASSES))
    assert rec.classes.tolist() == [["dog", "cat"], ["dog"]]
    assert rec.n_absent.tolist() == [1, 0]  # zebra is a class, but not in this image
    assert rec.n_mentioned.tolist() == [2, 1]
    sg = caption_records(ds, SceneGraphExtractor())
    assert sg.classes.tolist()[0] == ["dog", "cat"]
    assert sg.n_unknown.tolist()[0] == 1 and sg.n_absent.tolist()[0] == 1  # unicorn: no class; zebra: absent


# -- the LLM extractor ----------------------------------------------------------------------------
def test_llm_extractor_with_a_fake_model() -> None:
    prompts = []

    def fake(prompt: str) -> str:
        prompts.append(prompt)
        return 'Sure! Here they are:\n```json\n["hot dog", "Dog", "dog", "traffic light"]\n```'

    ex = LLMExtractor(fake)
    assert ex.extract("A hot dog near a dog under a traffic light") == ["hot dog", "Dog", "traffic light"]
    assert "A hot dog near a dog under a traffic light" in prompts[0] and "JSON list" in prompts[0]
    assert ClassMatcher(CLASSES).classes_of([Mention(x) for x in ex.extract("x")]) == (
        ["hot dog", "dog", "traffic light"], 0)
    assert parse_llm_reply('{"objects": ["cat", " "]}') == ["cat"]
    assert parse_llm_reply("[]") == []
    ds = tiny_set({"a": [("dog", 10.0), ("hot dog", 30.0)]}, [("a", "whatever")])
    assert caption_records(ds, LLMExtractor(lambda p: '["dog", "hot dog"]')).classes.tolist() == [["dog", "hot dog"]]


@pytest.mark.parametrize("reply, message", [
    ("dog, cat", "could not find a JSON list"),
    ("[dog, cat]", "could not find a JSON list"),
    ('["dog", 3]', "only strings"),
    ('{"things": ["dog"]}', "could not find a JSON list"),
    ("", "could not find a JSON list"),
])
def test_llm_extractor_rejects_malformed_replies(reply: str, message: str) -> None:
    with pytest.raises(ExtractionError, match=message):
        LLMExtractor(lambda p: reply).extract("a dog and a cat")


def test_llm_extractor_arguments() -> None:
    with pytest.raises(TypeError):
        LLMExtractor("not callable")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="caption"):
        LLMExtractor(lambda p: "[]", template="no slot")
    with pytest.raises(ExtractionError, match="not text"):
        LLMExtractor(lambda p: None).extract("a dog")  # type: ignore[arg-type, return-value]


# -- the largest-position computation -------------------------------------------------------------
def test_largest_position_and_ties() -> None:
    assert largest_position([10, 50, 20]) == (2, 1)
    assert largest_position([50, 10, 50]) == (1, 2)
    with pytest.raises(ValueError):
        largest_position([])


def records(rows: list[list[float]]) -> pd.DataFrame:
    """Per-caption records as caption_records makes them, from the mentioned objects' areas."""
    return pd.DataFrame([{
        "image_id": f"i{k}", "template": "t", "text": "", "extracted": [], "classes": [f"c{j}" for j in range(len(a))],
        "areas": list(a), "n_extracted": len(a), "n_unknown": 0, "n_absent": 0, "n_no_area": 0,
        "n_mentioned": len(a), "seconds": 0.0,
    } for k, a in enumerate(rows)])


def test_distribution_and_denominators() -> None:
    recs = records([
        [9, 1], [9, 1], [1, 9],           # n = 2: largest first twice, second once
        [5, 9, 1], [9, 5, 1],             # n = 3: positions 2 and 1
        [4, 4, 1],                        # n = 3, tie between positions 1 and 2
        [7],                              # one object: not in the table
    ])
    out = largest_position_table(recs, n_boot=200)
    assert out.counts["captions"] == 7 and out.counts["fewer_than_2_objects"] == 1
    assert out.counts["ties"] == 1 and out.counts["ties_dropped"] == 1 and out.counts["in_table"] == 5
    assert out.captions.position.tolist() == [1, 1, 2, 2, 1]
    assert out.captions.largest.tolist() == ["c0", "c0", "c1", "c1", "c0"]
    d = out.distribution.set_index(["n_mentioned", "position"])
    assert d.loc[(2, 1), "share"] == pytest.approx(2 / 3) and d.loc[(2, 2), "share"] == pytest.approx(1 / 3)
    assert d.loc[(3, 1), "share"] == 0.5 and d.loc[(3, 2), "share"] == 0.5 and d.loc[(3, 3), "share"] == 0
    assert d.n.loc[2].tolist() == [3, 3] and d.n.loc[3].tolist() == [2, 2, 2]  # n = captions with that count
    assert out.distribution.groupby("n_mentioned").share.sum().tolist() == pytest.approx([1, 1])
    assert (d.ci_low <= d.share + 1e-12).all() and (d.share <= d.ci_high + 1e-12).all()
    assert d.uniform.loc[2].tolist() == [0.5, 0.5]
    f = out.first.set_index("n_mentioned")
    assert f.n.tolist() == [3, 2] and f.share_first.tolist() == pytest.approx([2 / 3, 0.5])
    assert f.ratio.tolist() == pytest.approx([4 / 3, 1.5])

    split = largest_position_table(recs, ties="split", n_boot=200)
    s = split.distribution.set_index(["n_mentioned", "position"])
    assert split.counts["ties_dropped"] == 0 and split.counts["in_table"] == 6
    assert s.loc[(3, 1), "share"] == pytest.approx(1.5 / 3) and s.loc[(3, 2), "share"] == pytest.approx(1.5 / 3)
    assert s.n.loc[3].tolist() == [3, 3, 3]
    assert split.captions.n_tied.tolist() == [1, 1, 1, 1, 1, 2]

    with pytest.raises(ValueError, match="ties"):
        largest_position_table(recs, ties="first")
    empty = largest_position_table(records([[3]]), n_boot=10)
    assert empty.distribution.empty and empty.first.empty and empty.counts["in_table"] == 0


# -- areas ----------------------------------------------------------------------------------------
def test_ground_truth_and_segmenter_areas(generated: SceneSet) -> None:
    ds = generated.subset(generated.images.image_id[generated.images.n_objects == 3][:2])
    ds.captions = ds.captions[ds.captions.template == "and"].reset_index(drop=True)
    gt = caption_records(ds, ClassNameExtractor(ds.classes))
    obj = ds.objects.set_index(["image_id", "class_name"]).area_px
    for img, classes, areas in zip(gt.image_id, gt.classes, gt.areas):
        assert areas == [float(obj[(img, c)]) for c in classes]

    calls = []
    sizes = {name: 10 * (k + 1) for k, name in enumerate(ds.classes)}
    missing = ds.objects.class_name.iloc[0]

    def segmenter(image, class_name):
        calls.append((image.size, class_name))
        if class_name == missing:
            return None  # not found in the image
        mask = np.zeros((image.size[1], image.size[0]), bool)
        mask.flat[:sizes[class_name]] = True
        return mask

    seg = caption_records(ds, ClassNameExtractor(ds.classes), segmenter=segmenter)
    assert all(a == [float(sizes[c]) for c in cl] for cl, a in zip(seg.classes, seg.areas))
    assert seg.n_absent.tolist() == [1, 0] and seg.n_mentioned.tolist() == [2, 3]
    assert len(calls) == 6 and all(size == (64, 64) for size, _ in calls)


def test_unknown_area_is_counted() -> None:
    ds = tiny_set({"a": [("dog", math.nan), ("cat", 4.0), ("bird", 9.0)]}, [("a", "a dog, a cat and a bird")])
    rec = caption_records(ds, ClassNameExtractor(CLASSES))
    assert rec.classes.tolist() == [["cat", "bird"]] and rec.n_no_area.tolist() == [1]


def test_arguments_are_checked(generated: SceneSet) -> None:
    ex = ClassNameExtractor(generated.classes)
    with pytest.raises(DatasetError, match="templates"):
        caption_records(generated, ex, templates=["coco"])
    with pytest.raises(ValueError, match="max_captions"):
        caption_records(generated, ex, max_captions=0)
    with pytest.raises(ValueError, match="ties"):
        run(generated, ex, ties="last")


# -- end to end on generated captions -------------------------------------------------------------
def test_class_name_extractor_quality_is_perfect_on_generated_captions(generated: SceneSet) -> None:
    q = extractor_quality(generated, ClassNameExtractor(generated.classes), n_boot=100)
    assert q.template.tolist() == ["and", "photo", "scene"] and q.n.tolist() == [24, 24, 24]
    assert (q.precision == 1).all() and (q.recall == 1).all() and (q.exact_order == 1).all()
    assert (q.unknown_per_caption == 0).all() and (q.ms_per_caption > 0).all()
    small = extractor_quality(generated, ClassNameExtractor(generated.classes), templates=["and"], max_captions=5)
    assert small.n.tolist() == [5]


def test_scene_graph_extractor_quality_on_generated_captions(generated: SceneSet,
                                                             scene_graph: SceneGraphExtractor) -> None:
    q, per = extractor_quality(generated, scene_graph, n_boot=100, details=True)
    assert q.n.tolist() == [24, 24, 24]
    assert (q.precision == 1).all()  # it never invents an object on these captions
    assert (q.recall >= 0.95).all() and (q.exact_order >= 0.9).all()  # spaCy sometimes misses one
    missed = per[~per.exact]
    assert all(set(p) < set(t) for p, t in zip(missed.pred, missed.truth))  # misses only, order kept


def test_run_end_to_end_matches_the_known_order(generated: SceneSet) -> None:
    recs, out = run(generated, ClassNameExtractor(generated.classes), templates=["and"], n_boot=100)
    assert len(recs) == 24 and out.counts["in_table"] == 24 and out.counts["mentions_unknown"] == 0
    # the truth: position of the object with the largest area_px in captions.order
    caps = generated.captions[(generated.captions.template == "and")
                              & generated.captions.image_id.isin(recs.image_id)]
    area = generated.objects.set_index(["image_id", "class_name"]).area_px
    expected = [int(np.argmax([area[(i, c)] for c in o.split("|")])) + 1 for i, o in zip(caps.image_id, caps.order)]
    assert out.captions.position.tolist() == expected
    assert out.distribution.groupby("n_mentioned").n.first().tolist() == [6, 6, 6, 6]
    # the generator names the large object first; by mask area it is the largest in most scenes
    assert (out.first.share_first >= 0.8).all() and (out.first.ratio > 1).all()
