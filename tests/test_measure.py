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
    pairs = ex.image_text_matching(tiny, scenes, "second")
    assert len(pairs) == 12 and set(pairs.hit) <= {0.0, 0.5, 1.0}
    with pytest.raises(ProbeError, match="image encoder"):
        ex.ior(load_model("glove"), scenes)


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
