"""Training pairs for CAE: hard negatives edited from role spans, and COCO captions tagged by the parser."""

import json

import pytest
from PIL import Image

from clipscope_utils.cae import CAEError
from clipscope_utils.cae.pairs import coco_pairs, negatives_from_spans


def test_negatives_are_edits_of_the_spans():
    text = "a red car next to a small house"
    spans = ((2, 5, "attribute"), (6, 9, "object"), (10, 17, "relation"), (20, 25, "attribute"), (26, 31, "object"))
    other = "a dog"
    negs = negatives_from_spans([text, other], [spans, ((2, 5, "object"),)],
                                ["relation_swap", "attribute_swap", "relation_replace"],
                                {"relation": ["next to", "behind"]}, seed=0)
    assert negs["relation_swap"][0] == "a red house next to a small car"
    assert negs["attribute_swap"][0] == "a small car next to a red house"
    assert negs["relation_replace"][0] == "a red car behind a small house"  # never the span's own relation
    # a caption with nothing to edit gets another image's caption instead
    assert negs["relation_swap"][1] == text and negs["relation_replace"][1] == text


class FakeParser:
    """Stands in for the scene-graph parser: the first and last words are objects."""

    model = "fake"

    def __init__(self):
        self.calls = 0

    def __call__(self, captions):
        from clipscope_utils.cae.roles import RoledCaption

        self.calls += 1
        out = []
        for c in captions:
            words = c.split(" ")
            roles = ["object"] + [None] * (len(words) - 2) + ["object"]
            out.append(RoledCaption.from_words(words, roles))
        return out


def _coco(root, n=3, drop_image=None):
    (root / "annotations").mkdir(parents=True)
    (root / "train2017").mkdir()
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 8, "height": 8} for i in range(1, n + 1)]
    for im in images:
        if im["id"] != drop_image:
            Image.new("RGB", (8, 8), (im["id"] * 40, 0, 0)).save(root / "train2017" / im["file_name"])
    caps = [{"image_id": i, "id": 10 * i + k, "caption": f"cat {k}  near dog{i}"} for i in range(1, n + 1) for k in (0, 1)]
    (root / "annotations" / "captions_train2017.json").write_text(json.dumps({"images": images, "annotations": caps}))
    (root / "annotations" / "instances_train2017.json").write_text(json.dumps(
        {"images": images, "annotations": [], "categories": []}))


def test_coco_pairs_tag_captions_once_and_cache_the_parse(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPSCOPE_CACHE", str(tmp_path / "cache"))
    _coco(tmp_path / "coco")
    parser = FakeParser()
    pairs = coco_pairs(tmp_path / "coco", images=2, kinds=("relation_swap",), seed=0, parser=parser)
    assert [p.name for p in pairs.paths] == ["000000000001.jpg", "000000000002.jpg"]
    assert all(t.startswith("cat ") and "  " not in t for t in pairs.texts)  # whitespace normalised
    t = pairs.texts[0]
    assert pairs.negatives["relation_swap"][0] == t.split(" ")[-1] + t[3:-len(t.split(" ")[-1])] + "cat"
    assert pairs.candidates["object"][0] == "cat"
    again = coco_pairs(tmp_path / "coco", images=2, kinds=("relation_swap",), seed=0, parser=parser)
    assert parser.calls == 1 and again.spans == pairs.spans


def test_coco_pairs_refuse_missing_files_before_parsing(tmp_path):
    with pytest.raises(CAEError, match="COCO fine-tuning data"):
        coco_pairs(tmp_path / "nowhere")
    _coco(tmp_path / "coco", drop_image=2)
    with pytest.raises(CAEError, match="1 COCO images are missing"):
        coco_pairs(tmp_path / "coco", parser=FakeParser())


def test_finetune_on_coco_runs_and_keys_on_the_captions_file(tmp_path, monkeypatch):
    from clipscope_utils.cae.finetune import FinetuneConfig, data_identity, finetune

    monkeypatch.setenv("CLIPSCOPE_CACHE", str(tmp_path / "cache"))
    _coco(tmp_path / "coco", n=4)
    cfg = FinetuneConfig(base="random:clipscope-tiny:0", method="attention", lam=1.0, coco_root=str(tmp_path / "coco"),
                         batch_size=2, epochs=1, warmup=0, hard_negatives=True)
    run = finetune(cfg, progress=False)
    assert len(run.log) == 2  # 4 pairs / batch 2
    before = data_identity(cfg)
    caps = tmp_path / "coco" / "annotations" / "captions_train2017.json"
    caps.write_text(caps.read_text().replace("near", "beside"))
    assert data_identity(cfg) != before  # edited captions never reuse the old run


def test_a_missing_coco_folder_stops_the_grid_before_any_training(tmp_path, monkeypatch):
    from clipscope_utils.studies import cae as cx

    monkeypatch.setenv("CLIPSCOPE_CACHE", str(tmp_path / "cache"))
    cfgs = cx.grid(["none"], [False], [0], {}, base="random:clipscope-tiny:0", coco_root=str(tmp_path / "nowhere"))
    with pytest.raises(CAEError, match="COCO fine-tuning data"):
        cx.finetune_many(cfgs, workers=1, progress=False)
    assert not (tmp_path / "cache" / "finetuned").exists()
