"""Glue from datasets to probes, paper numbers beside measured ones, and the report tables."""

from itertools import combinations

import numpy as np
import pandas as pd
import pytest

from clipscope_utils import paper
from clipscope_utils.datasets import SceneSpec, generate
from clipscope_utils.probes import ProbeError, inputs, report, retrieval
from clipscope_utils.probes.retrieval import object_retrieval


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    spec = SceneSpec(family="simco", objects=(2, 3), images=4, image_size=32, templates=("and", "photo"), seed=3)
    return generate(spec, tmp_path_factory.mktemp("ds") / "d", workers=1, progress=False)


def test_caption_queries_follow_caption_order_by_class_id(scenes) -> None:
    q = inputs.caption_queries(scenes, "and")
    assert len(q) == 8 and set(q.n_objects) == {2, 3} and q.query_id.equals(q.image_id)
    caps = scenes.captions.set_index(["image_id", "template"])
    for row in q.itertuples():
        names = caps.loc[(row.query_id, "and"), "order"].split("|")
        assert [scenes.classes[c] for c in row.objects] == names
        assert row.text == caps.loc[(row.query_id, "and"), "text"]
    with pytest.raises(ProbeError, match="template 'scene'"):
        inputs.caption_queries(scenes, "scene")


def test_image_queries_put_the_large_object_first(scenes) -> None:
    q = inputs.image_queries(scenes)
    objs = scenes.objects
    for row in q.itertuples():
        large = objs[(objs.image_id == row.query_id) & objs.is_large].class_id.item()
        assert row.objects[0] == large and len(set(row.objects)) == row.n_objects
        assert row.path.endswith(f"{row.query_id}.png")


def test_reference_images_pick_one_size_per_class(scenes) -> None:
    large = inputs.reference_images(scenes, "large")
    small = inputs.reference_images(scenes, "small")
    both = inputs.reference_images(scenes, "all")
    assert list(large.class_id) == list(range(len(scenes.classes)))
    assert large.image_id.str.startswith("s0-").all() and small.image_id.str.startswith("s1-").all()
    assert len(both) == 2 * len(large)
    with pytest.raises(ProbeError, match="reference size"):
        inputs.reference_images(scenes, "medium")


def test_single_captions_use_the_query_template() -> None:
    refs = inputs.single_captions(["apple", "cat"], "photo")
    assert refs.text.tolist() == ["a photo of an apple", "a photo of a cat"]
    bare = inputs.single_captions(["person", "traffic_light", "The_Eiffel_Tower"], "bare")
    assert bare.text.tolist() == ["person", "traffic light", "The Eiffel Tower"]
    with pytest.raises(ProbeError, match="no single-object form.*query template"):
        inputs.single_captions(["cat"], "coco")


def test_caption_queries_take_several_captions_per_image_and_need_two_objects(scenes) -> None:
    multi = scenes.multi()
    two = multi.images.image_id.iloc[0]
    order = multi.captions[(multi.captions.image_id == two) & (multi.captions.template == "and")].order.iloc[0]
    names = order.split("|")
    extra = pd.DataFrame({"image_id": [two, two, two], "template": "coco",
                          "text": ["first", "only one", "second"],
                          "order": ["|".join(names[::-1]), names[0], "|".join(names[:2])]})
    lone = multi.images.image_id.iloc[1]
    lone_order = multi.captions[(multi.captions.image_id == lone) & (multi.captions.template == "and")].order.iloc[0]
    extra = pd.concat([extra, pd.DataFrame({"image_id": [lone, lone], "template": "coco", "text": ["mine", "none"],
                                            "order": [lone_order, ""]})])
    scenes2 = type(scenes)(scenes.root, scenes.classes, scenes.images, scenes.objects,
                           pd.concat([scenes.captions, extra], ignore_index=True))
    q = inputs.caption_queries(scenes2, "coco")
    assert q.query_id.tolist() == [f"{two}#1", f"{two}#3", lone]  # "#k" only where an image has several
    assert q.image_id.tolist() == [two, two, lone] and q.text.tolist() == ["first", "second", "mine"]
    index = {n: i for i, n in enumerate(scenes.classes)}
    assert q.objects.iloc[0] == tuple(index[n] for n in names[::-1])  # caption order, not image order
    assert q.n_objects.tolist() == [len(names), 2, len(lone_order.split("|"))]
    single = extra.assign(order=names[0])
    with pytest.raises(ProbeError, match="names two or more objects"):
        inputs.caption_queries(type(scenes)(scenes.root, scenes.classes, scenes.images, scenes.objects, single), "coco")


def test_class_combinations_all_or_a_seeded_sample_in_seeded_orders() -> None:
    classes = ["person", "bicycle", "car", "dog", "traffic_light"]
    every = inputs.class_combinations(classes, 3, limit=10, seed=0)
    assert len(every) == 10 and (every.n_objects == 3).all()
    assert {frozenset(o) for o in every.objects} == {frozenset(c) for c in combinations(range(5), 3)}
    assert list(every.columns) == ["query_id", "n_objects", "text", "objects"] and every.query_id.is_unique
    row = every.iloc[0]
    assert row.text == " and ".join(classes[c].replace("_", " ") for c in row.objects)
    assert len({o[0] for o in every.objects}) > 2  # position is not tied to class index
    sample = inputs.class_combinations(classes, 3, limit=4, seed=1)
    assert len(sample) == 4 and len({frozenset(o) for o in sample.objects}) == 4  # distinct combinations
    pd.testing.assert_frame_equal(sample, inputs.class_combinations(classes, 3, limit=4, seed=1))
    draws = {tuple(inputs.class_combinations(classes, 3, limit=4, seed=s).objects) for s in range(6)}
    assert len(draws) > 1
    big = inputs.class_combinations([f"c{i}" for i in range(40)], 4, limit=300, seed=0)
    assert len({frozenset(o) for o in big.objects}) == 300 and all(len(set(o)) == 4 for o in big.objects)
    assert inputs.class_combinations(classes, 2, limit=3, template="and").text.str.startswith("a").all()
    with pytest.raises(ProbeError, match="n_objects"):
        inputs.class_combinations(classes, 6, limit=3)
    with pytest.raises(ProbeError, match="limit"):
        inputs.class_combinations(classes, 2, limit=0)


def test_covered_queries_leave_out_classes_without_a_reference() -> None:
    q = pd.DataFrame({"query_id": ["a", "b", "c"], "objects": [(0, 1), (1, 2), (0, 3)]})
    kept, note = inputs.covered_queries(q, [0, 1, 2], ["cat", "dog", "car", "toaster"], "IOR")
    assert kept.query_id.tolist() == ["a", "b"]
    assert note == "IOR: 1 of 3 images left out: their classes lack a reference image (e.g. 'toaster')"
    same, none = inputs.covered_queries(q, [0, 1, 2, 3], ["cat", "dog", "car", "toaster"], "IOR")
    assert none is None and same is q
    with pytest.raises(ProbeError, match="every one of the 3 captions"):
        inputs.covered_queries(q, [5], ["cat", "dog", "car", "toaster"], "cross-modal TOR", "captions")


def test_published_tables_are_fractions_per_position() -> None:
    t1 = paper.published("TOR", table=1)
    assert set(t1.position) == {1, 2, 3, 4} and t1.paper_model.nunique() == 7
    assert t1.paper.between(0, 1).all()
    laion = t1[t1.paper_model == "CLIP LAION"].set_index("position").paper
    assert laion[1] == pytest.approx(0.6396) and laion[4] == pytest.approx(0.0376)
    t6 = paper.published("image_text_matching", table=6)
    assert set(t6.scenario) == {"first", "second"}
    with pytest.raises(KeyError):
        paper.published("TOR", dataset="nowhere")


def test_beside_joins_only_matching_model_cell_and_object_count() -> None:
    measured = pd.DataFrame({"paper_model": ["CLIP LAION", "CLIP LAION", "", "CLIP LAION"],
                             "position": [1, 2, 1, 1], "n_objects": [4, 4, 4, 3], "rate": [0.5, 0.2, 0.3, 0.6],
                             "measure": "conditional"})
    out = paper.beside(measured, "TOR", on="position", table=1)
    assert out.paper.iloc[0] == pytest.approx(0.6396) and out.paper.iloc[1] == pytest.approx(0.2159)
    assert np.isnan(out.paper.iloc[2]) and np.isnan(out.paper.iloc[3])
    assert len(out) == len(measured)
    t5 = paper.beside(out, "TOR", on="position", table=5)  # a second table replaces the first's numbers
    assert list(t5.columns).count("paper") == 1 and t5.paper.isna().all()


def test_paper_numbers_stand_only_beside_the_measure_of_their_table() -> None:
    """The authors' TOR scripts rate the conditional measure (Tables 1, 3, 5), Table 2 is conditional too, COCO's
    IOR/I2TOR (Table 4) are read as own; a number never lands on another measure's row."""
    assert paper.paper_measure("TOR", "ComCO") == "conditional" and paper.paper_measure("IOR", "COCO") == "own"
    rows = pd.DataFrame({"paper_model": "CLIP LAION", "position": [1, 1, 1], "n_objects": 4, "rate": 0.5,
                         "measure": ["own", "top1", "conditional"]})
    out = report.with_paper(rows, "TOR", table_no=1)
    assert out.paper.iloc[2] == pytest.approx(0.6396) and out.paper.iloc[:2].isna().all()
    with pytest.raises(ProbeError, match="never shown beside another measure"):
        report.with_paper(rows[rows.measure != "conditional"], "TOR", table_no=1)
    with pytest.raises(ProbeError, match="lacks column 'measure'"):
        report.with_paper(rows.drop(columns="measure"), "TOR", table_no=1)
    coco = report.with_paper(rows.assign(position=1), "IOR", table_no=4, dataset="COCO")
    assert coco.paper.iloc[0] == pytest.approx(0.3944) and coco.paper.iloc[1:].isna().all()
    pairs = pd.DataFrame({"paper_model": "CLIP openAI", "scenario": ["first", "first"], "rate": 0.9,
                          "pairing": ["authors", "large"]})
    m = report.with_paper(pairs, "image_text_matching", on="scenario", table_no=6)
    assert m.paper.iloc[0] == pytest.approx(0.9959) and np.isnan(m.paper.iloc[1])
    coco = report.with_paper(pairs, "image_text_matching", on="scenario", table_no=6, dataset="COCO")
    assert coco.paper.iloc[0] == pytest.approx(0.635)


def test_table5_clip_row_is_openai_clip() -> None:
    t5 = paper.published("TOR", table=5)
    assert set(t5.paper_model) == {"CLIP openAI", "SBERT", "SimCSE"}
    rows = pd.DataFrame({"paper_model": ["CLIP openAI", "SBERT"], "position": 1, "n_objects": 4,
                         "measure": "conditional"})
    assert report.with_paper(rows, "TOR", table_no=5).paper.tolist() == pytest.approx([0.5628, 0.2902])


def test_measure_tables_give_every_measure_and_the_paper_beside_its_own_measure_only() -> None:
    rng = np.random.default_rng(0)
    objects = [list(rng.choice(8, size=4, replace=False)) for _ in range(60)]
    f = object_retrieval(rng.normal(size=(60, 8)), objects, np.eye(8), range(8))
    f = f.assign(model="m", paper_model="CLIP LAION")
    t = report.measure_tables(f, retrieval.caption_labels, task="TOR", table_no=1, n_boot=50)
    assert t.paper_measure == "conditional" and t.paper is t.conditional
    assert (t.conditional.measure == "conditional").all() and t.conditional.paper.notna().all()
    assert (t.own.position > 0).all() and "paper" not in t.own
    assert (t.top1.position == 0).any() and "paper" not in t.top1
    assert set(t.all().measure) == {"own", "top1", "conditional"}
    coco = report.measure_tables(f, retrieval.size_labels, task="IOR", table_no=4, dataset="COCO", n_boot=10)
    assert coco.paper_measure == "own" and coco.own.paper.notna().all() and "paper" not in coco.conditional
    assert "paper" not in report.measure_tables(f, n_boot=10).own


def _table(rates, cis, n=100, model="m"):
    return pd.DataFrame({"model": model, "n_objects": 3, "position": range(1, len(rates) + 1),
                         "label": [f"p{i}" for i in range(1, len(rates) + 1)], "n": n, "rate": rates,
                         "ci_low": [c[0] for c in cis], "ci_high": [c[1] for c in cis]})


def test_wide_shows_rate_interval_n_and_paper() -> None:
    t = _table([0.6, 0.3, 0.1], [(0.5, 0.7), (0.2, 0.4), (0.05, 0.15)]).assign(paper=[0.64, np.nan, 0.1])
    w = report.wide(t, ["model"], "label")
    assert w.loc["m", "n"] == 100
    assert w.loc["m", "p1"] == "0.60 [0.50, 0.70] (paper 0.64)"
    assert w.loc["m", "p2"] == "0.30 [0.20, 0.40]"
    assert report.fmt(float("nan"), 0, 0) == "–"


def test_position_bias_summary_needs_separated_intervals() -> None:
    clear = _table([0.6, 0.3, 0.1], [(0.5, 0.7), (0.2, 0.4), (0.05, 0.15)], model="a")
    overlap = _table([0.45, 0.35, 0.2], [(0.3, 0.6), (0.25, 0.5), (0.1, 0.3)], model="b")
    last = _table([0.1, 0.2, 0.7], [(0.05, 0.15), (0.1, 0.3), (0.6, 0.8)], model="c")
    text = report.position_bias_summary(pd.concat([clear, overlap, last]), "TOR")
    lines = text.splitlines()
    assert "p1 preferred" in next(l for l in lines if "`a`" in l)
    assert "no single dominant position" in next(l for l in lines if "`b`" in l)
    assert "p3 preferred" in next(l for l in lines if "`c`" in l)


def test_paired_difference_summary_pairs_by_query() -> None:
    frame = pd.DataFrame({"model": "m", "query_id": [0, 1, 2, 3] * 2, "group": ["a"] * 4 + ["b"] * 4,
                          "hit": [1, 1, 1, 1, 0, 0, 0, 1]})
    text = report.paired_difference_summary(frame, "group", "a", "b", n_boot=200, seed=0)
    assert "a − b = +0.750" in text and "over 4 pairs" in text


def test_trend_summary_reports_rise_fall_and_fading() -> None:
    rows = []
    for order, rates in {"up": [0.1, 0.3, 0.5], "flat": [0.2, 0.22, 0.21], "fade": [0.1, 0.6, 0.12]}.items():
        for s, r in zip([0, 10, 20], rates):
            rows.append({"probe": "TOR", "n_objects": 2, "order": order, "samples": s, "rate": r,
                         "ci_low": r - 0.03, "ci_high": r + 0.03})
    text = report.trend_summary(pd.DataFrame(rows))
    line = {o: next(l for l in text.splitlines() if f"order {o}:" in l) for o in ("up", "flat", "fade")}
    assert "**rose**" in line["up"] and "no change detected" in line["flat"]
    assert "**faded**" in line["fade"] and "samples = 10" in line["fade"]
