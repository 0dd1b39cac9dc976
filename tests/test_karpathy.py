"""Karpathy split files (COCO / Flickr30k retrieval, paper B Table 3): loader checks, the writer, recall@k with
known answers, and the encoder-level measure on a random-init tiny CLIP."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from clipscope_utils import measure
from clipscope_utils.datasets import DatasetError, SceneSpec, generate
from clipscope_utils.datasets.karpathy import load_karpathy, scene_items, to_karpathy
from clipscope_utils.models.registry import load_model
from clipscope_utils.probes import ProbeError
from clipscope_utils.probes.recall import recall_at_k, recall_table, retrieval_ranks


def _image(path, colour):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)
    return path


@pytest.fixture
def pairs(tmp_path):
    return [(_image(tmp_path / "src" / f"{i}.png", (40 * i, 0, 0)), [f"image {i} caption {j}" for j in range(1 + i % 2)])
            for i in range(4)]


def _write(path, images, dataset="coco"):
    path.write_text(json.dumps({"images": images, "dataset": dataset}))
    return path


# -- loader ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dataset, folder", [("coco", "val2014"), ("flickr30k", "flickr30k-images")])
def test_writer_round_trip_in_both_layouts(tmp_path, pairs, dataset, folder) -> None:
    out = to_karpathy(pairs, tmp_path / dataset, dataset=dataset)
    name = {"coco": "dataset_coco.json", "flickr30k": "dataset_flickr30k.json"}[dataset]
    raw = json.loads((out / name).read_text())
    assert raw["dataset"] == dataset and all(r["split"] == "test" for r in raw["images"])
    assert ("filepath" in raw["images"][0]) == (dataset == "coco") and ("cocoid" in raw["images"][0]) == (dataset == "coco")
    split = load_karpathy(out / name)  # default images_root fits the layout
    assert split.n_images == 4 and split.dataset == dataset
    assert all(p.parent == out / folder and p.is_file() for p in split.image_paths)
    assert split.captions == [t for _, texts in pairs for t in texts]
    assert split.text_image.tolist() == [i for i, (_, texts) in enumerate(pairs) for _ in texts]
    assert split.captions_of(1) == pairs[1][1]
    with pytest.raises(DatasetError, match="already exists"):
        to_karpathy(pairs, out, dataset=dataset)
    to_karpathy(pairs[:2], out, dataset=dataset, overwrite=True)
    assert load_karpathy(out / name).n_images == 2


def test_split_selection_max_images_and_explicit_images_root(tmp_path, pairs) -> None:
    out = to_karpathy(pairs, tmp_path / "c")
    data = json.loads((out / "dataset_coco.json").read_text())
    data["images"][0]["split"] = "train"
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (out / "val2014").rename(moved / "val2014")
    _write(out / "dataset_coco.json", data["images"])
    with pytest.raises(DatasetError, match="missing under images_root"):
        load_karpathy(out / "dataset_coco.json")  # images moved away (the folder itself exists)
    split = load_karpathy(out / "dataset_coco.json", images_root=moved)
    assert split.n_images == 3 and split.captions[0] == pairs[1][1][0]
    assert load_karpathy(out / "dataset_coco.json", images_root=moved, split="train").n_images == 1
    assert load_karpathy(out / "dataset_coco.json", images_root=moved, max_images=2).n_images == 2


def test_loader_errors_name_the_file_or_parameter(tmp_path, pairs) -> None:
    out = to_karpathy(pairs, tmp_path / "c")
    good = json.loads((out / "dataset_coco.json").read_text())["images"]
    with pytest.raises(DatasetError, match="nope.json is missing"):
        load_karpathy(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        load_karpathy(tmp_path / "bad.json")
    with pytest.raises(DatasetError, match="'images' list"):
        load_karpathy(_write(tmp_path / "x.json", None))
    for key in ("filename", "split", "sentences"):
        rec = {k: v for k, v in good[0].items() if k != key}
        with pytest.raises(DatasetError, match=rf"images\[0\] lacks '{key}'"):
            load_karpathy(_write(out / "x.json", [rec, *good[1:]]))
    with pytest.raises(DatasetError, match=r"split 'val' holds no images .*'test': 4"):
        load_karpathy(out / "dataset_coco.json", split="val")
    with pytest.raises(DatasetError, match="split must be one of"):
        load_karpathy(out / "dataset_coco.json", split="testing")
    with pytest.raises(DatasetError, match="images_root .* is not a folder"):
        load_karpathy(out / "dataset_coco.json", images_root=tmp_path / "no-such-folder")
    no_caption = [dict(good[0], sentences=[{"raw": "  "}]), *good[1:]]
    with pytest.raises(DatasetError, match=r"images\[0\].*non-empty 'raw'"):
        load_karpathy(_write(out / "x.json", no_caption))
    for rec in good[:2]:
        (out / "val2014" / rec["filename"]).unlink()
    with pytest.raises(DatasetError, match=r"2 of 4 test image\(s\).*COCO_val2014_000000000001\.jpg"):
        load_karpathy(out / "dataset_coco.json")


def test_writer_rejects_bad_items_and_writes_generated_scenes(tmp_path) -> None:
    with pytest.raises(DatasetError, match="dataset must be one of"):
        to_karpathy([], tmp_path / "a", dataset="flickr8k")
    with pytest.raises(DatasetError, match="nothing to write"):
        to_karpathy([], tmp_path / "a")
    with pytest.raises(DatasetError, match="item 0"):
        to_karpathy([("x.png", "a caption, not a list")], tmp_path / "a")
    assert not (tmp_path / "a").exists()
    spec = SceneSpec(family="comco", objects=(2,), images=3, image_size=32, order="random", seed=1)
    scenes = generate(spec, tmp_path / "scenes", workers=1, progress=False)
    items = scene_items(scenes)
    split = load_karpathy(to_karpathy(scenes, tmp_path / "f", dataset="flickr30k") / "dataset_flickr30k.json")
    assert split.n_images == len(items) > 0 and split.n_captions == sum(len(t) for _, t in items)


# -- recall@k -------------------------------------------------------------------------------------------------------
def test_recall_on_a_constructed_matrix_with_several_captions_per_image() -> None:
    # 3 images; texts 0, 1 -> image 0, text 2 -> image 1, texts 3, 4 -> image 2
    owner = np.array([0, 0, 1, 2, 2])
    sim = np.array([
        [0.9, 0.1, 0.2],   # t0: own image first (rank 1)
        [0.1, 0.5, 0.3],   # t1: own image last (rank 3)
        [0.2, 0.4, 0.8],   # t2: image 2 beats its own image 1 (rank 2)
        [0.0, 0.0, 0.1],   # t3: own image first
        [0.3, 0.2, 0.25],  # t4: image 0 beats its own image 2 (rank 2)
    ])
    ranks = retrieval_ranks(sim, owner)
    assert ranks["text->image"].tolist() == [1, 3, 2, 1, 2]
    # image 0: its best caption t0 (0.9) tops the column -> 1; image 1: t2 (0.4) behind t1 (0.5) -> 2;
    # image 2: its best caption t4 (0.25) behind t2 (0.8) and t1 (0.3) -> 3
    assert ranks["image->text"].tolist() == [1, 2, 3]
    hits = recall_at_k(sim, owner, ks=(1, 2))
    assert len(hits) == 2 * (5 + 3)
    table = recall_table(hits, n_boot=200).set_index(["direction", "k"])
    assert table.loc[("text->image", 1), "recall"] == pytest.approx(2 / 5)
    assert table.loc[("text->image", 2), "recall"] == pytest.approx(4 / 5)
    assert table.loc[("image->text", 1), "recall"] == pytest.approx(1 / 3)
    assert table.loc[("image->text", 2), "recall"] == pytest.approx(2 / 3)
    assert table.loc[("image->text", 1), "n"] == 3 and table.loc[("text->image", 1), "n"] == 5
    assert (table.ci_low <= table.recall).all() and (table.recall <= table.ci_high).all()
    assert list(recall_table(hits).columns) == ["direction", "k", "n", "recall", "ci_low", "ci_high"]


def test_identity_scores_perfectly_and_ties_count_against() -> None:
    owner = np.repeat(np.arange(4), 5)
    perfect = np.eye(4)[owner]
    table = recall_table(recall_at_k(perfect, owner, ks=(1,)))
    assert (table.recall == 1).all()
    flat = recall_table(recall_at_k(np.zeros((20, 4)), owner, ks=(1, 3, 4)), n_boot=50).set_index(["direction", "k"])
    assert flat.loc[("text->image", 3), "recall"] == 0 and flat.loc[("text->image", 4), "recall"] == 1
    assert flat.loc[("image->text", 4), "recall"] == 0  # 15 wrong captions tie with the right ones


def test_ranks_agree_with_a_plain_sort_on_random_scores() -> None:
    rng = np.random.default_rng(3)
    owner = rng.permutation(np.repeat(np.arange(10), 3))
    sim = rng.standard_normal((30, 10))
    ranks = retrieval_ranks(sim, owner)
    text_ref = [1 + int(np.flatnonzero(np.argsort(-sim[t]) == owner[t])[0]) for t in range(30)]
    image_ref = [1 + int(np.flatnonzero(owner[np.argsort(-sim[:, i])] == i)[0]) for i in range(10)]
    assert ranks["text->image"].tolist() == text_ref and ranks["image->text"].tolist() == image_ref


def test_recall_rejects_bad_inputs() -> None:
    sim = np.zeros((3, 2))
    with pytest.raises(ProbeError, match="one image index per text"):
        recall_at_k(sim, [0, 1])
    with pytest.raises(ProbeError, match="must lie in"):
        recall_at_k(sim, [0, 1, 2])
    with pytest.raises(ProbeError, match="have no caption"):
        recall_at_k(sim, [0, 0, 0])
    with pytest.raises(ProbeError, match="ks must be"):
        recall_at_k(sim, [0, 1, 1], ks=(0, 1))
    with pytest.raises(ProbeError, match="NaN"):
        recall_at_k(np.full((3, 2), np.nan), [0, 1, 1])
    with pytest.raises(ProbeError, match="integers"):
        recall_at_k(sim, [0.0, 1.0, 1.0])


# -- on an encoder --------------------------------------------------------------------------------------------------
def test_retrieval_recall_on_a_random_init_clip(tmp_path, pairs, module_cache) -> None:
    tiny = load_model("random:clipscope-tiny", device="cpu")
    split = load_karpathy(to_karpathy(pairs, tmp_path / "c") / "dataset_coco.json")
    table = measure.retrieval_recall(tiny, split, ks=(1, 6), n_boot=50)
    assert set(table.model) == {tiny.name} and set(table.probe) == {"retrieval"} and set(table.dataset) == {"coco"}
    assert table.set_index(["direction", "k"]).n.to_dict() == {
        ("image->text", 1): 4, ("image->text", 6): 4, ("text->image", 1): 6, ("text->image", 6): 6}
    assert (table[table.k == 6].recall == 1).all()  # every rank is within the 6 texts / 4 images
    with pytest.raises(ProbeError, match="image encoder"):
        measure.retrieval_recall(SimpleNamespace(name="text-only", has_images=False), split)
