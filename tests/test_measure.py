"""The probes end to end on models the project makes (GloVe, a random-init tiny CLIP) and generated scenes."""

import json
from pathlib import Path

import numpy as np
import pytest

from clipscope_utils.datasets import SceneSpec, generate
from clipscope_utils import measure as ex
from clipscope_utils.models import ModelError
from clipscope_utils.models.registry import load_model
from clipscope_utils.probes import ProbeError
from clipscope_utils.studies import probes as study
from clipscope_utils.zoo import ModelZoo

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    spec = SceneSpec(family="comco", objects=(2, 3), images=6, image_size=32, order="random", seed=1)
    return generate(spec, tmp_path_factory.mktemp("ds") / "d", workers=1, progress=False)


@pytest.fixture(scope="module")
def tiny(module_cache):
    return load_model("random:clipscope-tiny", device="cpu")


@pytest.fixture(scope="module")
def glove(module_cache):
    return load_model("glove", device="cpu")


def test_controls_are_added_per_clip_architecture_and_names_are_canonical(tmp_path) -> None:
    ckpt = tmp_path / "tiny.pt"
    ckpt.write_bytes(b"not read by resolve")
    zoo = ModelZoo()
    names = zoo.with_controls(["glove", f"clipscope-tiny@{ckpt}", "random:clipscope-tiny"])
    assert names == ["GloVe", f"clipscope-tiny@{ckpt}", "random:clipscope-tiny:0"]
    assert zoo.with_controls([f"clipscope-tiny@{ckpt}"], controls=False) == [f"clipscope-tiny@{ckpt}"]
    with pytest.raises(ModelError, match="text-only"):
        zoo.with_controls(["glove"], need_images=True)
    with pytest.raises(ValueError, match="unknown model name"):
        zoo.with_controls(["glove", "no-such-model"])
    table = zoo.describe(names)
    assert table.role.tolist() == ["text-only baseline", "CLIP", "random-init control"]


def test_tor_scores_every_caption_position_with_class_ids(scenes, glove) -> None:
    frame = ex.tor(glove, scenes, "and")
    assert len(frame) == 6 * 2 + 6 * 3
    assert set(frame.model) == {"GloVe"} and set(frame.probe) == {"TOR"}
    caps = scenes.captions.set_index("image_id")
    for qid, rows in frame.groupby("query_id"):
        names = caps.loc[qid, "order"].split("|")
        assert [scenes.classes[c] for c in rows.sort_values("position").class_id] == names
        assert rows.hit.sum() + rows.miss.iloc[0] == pytest.approx(1.0)


def test_image_probes_and_matching_run_on_a_random_init_clip(scenes, tiny) -> None:
    ior = ex.ior(tiny, scenes)
    large = scenes.objects[scenes.objects.is_large].set_index("image_id").class_id
    first = ior[ior.position == 1].set_index("query_id").class_id
    assert (first == large.loc[first.index]).all()
    assert len(ex.i2tor(tiny, scenes)) == len(ior)
    assert len(ex.cross_modal_tor(tiny, scenes)) == len(ex.tor(tiny, scenes))
    pairs = ex.image_text_matching(tiny, scenes, "second")  # the authors' pairs: one per absent class
    k = len(scenes.classes)
    assert len(pairs) == 6 * (k - 2) + 6 * (k - 3) and set(pairs.hit) <= {0.0, 1.0}  # a tie fails
    assert (pairs.pairing == "authors").all() and pairs.correct_text.equals(pairs.correct_source_text)
    large = ex.image_text_matching(tiny, scenes, "second", replace="large")
    assert len(large) == 12 and set(large.hit) <= {0.0, 0.5, 1.0}
    with pytest.raises(ProbeError, match="image encoder"):
        ex.ior(load_model("glove"), scenes)


def test_tor_queries_and_references_may_use_different_templates(scenes, glove) -> None:
    frame = ex.tor(glove, scenes, "bare", query_template="and")
    assert len(frame) == len(ex.tor(glove, scenes, "and"))
    assert np.allclose(frame.groupby("query_id").own.sum(), 1.0)
    with pytest.raises(ProbeError, match="no single-object form"):
        ex.tor(glove, scenes, "coco")


def test_tor_over_class_combinations(glove) -> None:
    classes = ["person", "bicycle", "car", "dog", "traffic_light", "cat"]
    frame = ex.tor_combinations(glove, classes, [2, 3], limit=8, seed=1)
    assert set(frame.probe) == {"TOR (class combinations)"}
    assert frame.groupby("n_objects").query_id.nunique().to_dict() == {2: 8, 3: 8}
    again = ex.tor_combinations(glove, classes, [2, 3], limit=8, seed=1)
    assert frame.equals(again)


def test_ior_leaves_out_images_whose_classes_lack_a_reference(scenes, tiny) -> None:
    gone = int(scenes.objects[scenes.objects.image_id.isin(scenes.multi().images.image_id)].class_id.iloc[0])
    singles = scenes.objects[scenes.objects.image_id.isin(scenes.singles().images.image_id)]
    drop = set(singles[singles.class_id == gone].image_id)
    partial = scenes.subset(set(scenes.images.image_id) - drop)
    notes: list[str] = []
    frame = ex.ior(tiny, partial, notes=notes)
    multi = scenes.multi().objects
    lacking = multi[multi.class_id == gone].image_id.nunique()
    assert frame.query_id.nunique() == 12 - lacking and gone not in set(frame.class_id)
    assert notes == [f"IOR: {lacking} of 12 images left out: their classes lack a reference image "
                     f"(e.g. {scenes.classes[gone]!r})"]
    ex.ior(tiny, partial, notes=notes)
    assert len(notes) == 1  # a second model adds no second copy of the line
    xnotes: list[str] = []
    ex.cross_modal_tor(tiny, partial, notes=xnotes)
    assert xnotes and xnotes[0].startswith("cross-modal TOR: ") and "captions left out" in xnotes[0]


def test_matching_rephrase_through_the_measure(scenes, tiny) -> None:
    notes: list[str] = []
    pairs = ex.image_text_matching(tiny, scenes, "first", replace="large", rephrase=lambda texts: [t.upper() for t in texts],
                                   notes=notes)
    assert (pairs.correct_text == pairs.correct_source_text.str.upper()).all() and not notes
    some = {pairs.correct_source_text.iloc[0]: "a rephrased caption"}
    again = ex.image_text_matching(tiny, scenes, "first", replace="large", rephrase=some, notes=notes)
    assert (again.correct_text == "a rephrased caption").sum() >= 1
    assert len(notes) == 1 and notes[0].startswith("rephrase (first scenario): ")


def test_studies_tables_by_measure_with_the_paper_beside_its_measure(scenes, module_cache) -> None:
    zoo = ModelZoo()
    text = study.text_probes(zoo, ["glove"], scenes, claim1_sentences=3, cross_modal=False,
                             combination_objects=[2], combination_limit=5)
    t = text.tables(n_boot=20)
    assert (t.tor.own.measure == "own").all() and (t.tor.top1.position == 0).any()
    assert t.combinations is not None and (t.combinations.own.n == 5).all()
    assert t.table5 is None and t.cross_modal is None  # no 4-object scenes here
    with pytest.raises(ProbeError, match="paper_dataset"):
        text.tables(paper_dataset="coco")
    images = study.image_probes(zoo, ["random:clipscope-tiny"], scenes)
    it = images.tables(n_boot=20, paper_dataset="COCO")
    assert set(it.ior.all().measure) == {"own", "top1", "conditional"} and it.notes == []
    m = study.matching(zoo, ["random:clipscope-tiny"], scenes, rephrase=lambda texts: [t + "." for t in texts])
    mt = m.tables(n_boot=20)
    assert set(mt.pooled.scenario) == {"first", "second"} and (mt.pooled.n == 12).all()
    assert (mt.pooled.n_pairs > mt.pooled.n).all() and "paper" in mt.pooled
    assert m.frame.correct_text.str.endswith(".").all()


def test_claim1_pairs_large_and_small_first_sentences(glove) -> None:
    categories = json.loads((ROOT / "data" / "size_categories.json").read_text())
    frame = ex.claim1_tor(glove, categories, n_sentences=5, seed=2)
    assert frame.groupby("first_category").query_id.nunique().to_dict() == {"large": 5, "small": 5}
    assert set(frame.position) == {1, 2, 3, 4}


def test_explorer_ranks_single_object_captions(tiny) -> None:
    ranked = ex.explore(tiny, "a cat and a dog", ["cat", "dog", "car", "book"], top=3)
    assert ranked["rank"].tolist() == [1, 2, 3]
    assert np.all(np.diff(ranked.cosine.to_numpy()) <= 0)
    with pytest.raises(ProbeError):
        ex.explore(tiny, "  ", ["cat"])
