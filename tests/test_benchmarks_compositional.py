"""Published compositional benchmarks: loaders on small files in each published format, their error paths,
the scoring rules (strict ties, Winoground's official definitions), evaluate() end to end with a tiny model,
summaries, and the transcription of paper B's Tables 1 and 2."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from clipscope_utils import embeddings
from clipscope_utils.compositional import benchmarks as B
from clipscope_utils.compositional.benchmarks import (
    BenchmarkError, aro_categories, category_macro, choice_correct, evaluate, load_aro, load_sugarcrepe,
    load_valse, load_winoground, paper_b_summary, published_b, summary, winoground_clean_ids, winoground_scores)
from clipscope_utils.compositional.items import ChoiceItem, PairItem
from conftest import image, write_json


# ------------------------------------------------------------------------------------------ ARO


def aro_root(tmp_path):
    root = tmp_path / "aro"
    image(root / "images" / "2315375.jpg", size=(50, 40), seed=1, fmt="JPEG")
    image(root / "images" / "2400001.jpg", size=(30, 30), seed=2, fmt="JPEG")
    rel = [
        {"image_id": "2315375", "image_path": "2315375.jpg", "bbox_x": 5, "bbox_y": 4, "bbox_w": 20, "bbox_h": 10,
         "relation_name": "wearing", "true_caption": "the man is wearing the shirt",
         "false_caption": "the shirt is wearing the man"},
        {"image_id": "2400001", "image_path": "2400001.jpg", "bbox_x": 1.4, "bbox_y": 2.6, "bbox_w": 10.2,
         "bbox_h": 12.0, "relation_name": "on", "true_caption": "the cup is on the table",
         "false_caption": "the table is on the cup"},
    ]
    att = [{"image_id": "2315375", "image_path": "2315375.jpg", "bbox_x": 0, "bbox_y": 0, "bbox_w": 50,
            "bbox_h": 40, "attributes": ["white", "black"], "true_caption": "the white dog and the black cat",
            "false_caption": "the black dog and the white cat"}]
    write_json(root / "visual_genome_relation.json", rel)
    write_json(root / "visual_genome_attribution.json", att)
    return root


def test_load_aro_fields_and_boxes(tmp_path):
    root = aro_root(tmp_path)
    items = load_aro(root, "VG-Relation")
    assert [it.item_id for it in items] == ["0", "1"]
    first = items[0]
    assert first.subset == "VG-Relation" and first.image == root / "images" / "2315375.jpg"
    assert first.true == "the man is wearing the shirt" and first.false == ("the shirt is wearing the man",)
    assert first.crop == (5, 4, 25, 14)  # (x, y, x + w, y + h)
    assert items[1].crop == (1, 3, 12, 15)  # float boxes rounded like PIL: 1.4, 2.6, 11.6, 14.6
    att = load_aro(root, "VG-Attribution")
    assert len(att) == 1 and att[0].crop == (0, 0, 50, 40) and att[0].subset == "VG-Attribution"


def test_aro_categories(tmp_path):
    root = aro_root(tmp_path)
    rel = aro_categories(root, "VG-Relation")
    assert rel.to_dict("list") == {"item_id": ["0", "1"], "subset": ["VG-Relation"] * 2, "category": ["wearing", "on"]}
    assert aro_categories(root, "VG-Attribution").category.tolist() == ["white_black"]


def test_aro_errors(tmp_path):
    with pytest.raises(BenchmarkError, match="does not exist"):
        load_aro(tmp_path / "nowhere")
    root = aro_root(tmp_path)
    with pytest.raises(BenchmarkError, match="VG-Relation, VG-Attribution"):
        load_aro(root, "VG-Relations")
    (root / "visual_genome_attribution.json").unlink()
    with pytest.raises(BenchmarkError, match="visual_genome_attribution.json is missing"):
        load_aro(root, "VG-Attribution")
    (root / "visual_genome_attribution.json").write_text("[{not json")
    with pytest.raises(BenchmarkError, match="not valid JSON"):
        load_aro(root, "VG-Attribution")
    write_json(root / "visual_genome_attribution.json", {"0": {}})
    with pytest.raises(BenchmarkError, match="JSON list"):
        load_aro(root, "VG-Attribution")
    rel = json.loads((root / "visual_genome_relation.json").read_text())
    write_json(root / "visual_genome_relation.json", [{k: v for k, v in rel[0].items() if k != "bbox_h"}])
    with pytest.raises(BenchmarkError, match=r"record 0 lacks fields \['bbox_h'\]"):
        load_aro(root)
    write_json(root / "visual_genome_relation.json", [{**rel[0], "bbox_w": 0}])
    with pytest.raises(BenchmarkError, match="empty box"):
        load_aro(root)
    write_json(root / "visual_genome_relation.json", [{**rel[0], "image_path": "gone.jpg"}, rel[1]])
    with pytest.raises(BenchmarkError, match=r"1 referenced image\(s\) missing.*gone.jpg"):
        load_aro(root)
    os.rename(root / "images", root / "imgs")
    with pytest.raises(BenchmarkError, match="ARO images folder"):
        load_aro(root)


# ------------------------------------------------------------------------------------------ SugarCrepe


def sugarcrepe_root(tmp_path):
    root, coco = tmp_path / "sugar-crepe" / "data", tmp_path / "val2017"
    for i in (85329, 562121, 166391):
        image(coco / f"{i:012d}.jpg", seed=i % 7, fmt="JPEG")
    write_json(root / "replace_rel.json", {
        "0": {"filename": "000000085329.jpg", "caption": "A man rides a horse.",
              "negative_caption": "A man feeds a horse."},
        "1": {"filename": "000000562121.jpg", "caption": "Two zebras stand in a field.",
              "negative_caption": "Two zebras lie in a field."}})
    write_json(root / "swap_att.json", {
        "0": {"filename": "000000166391.jpg", "caption": "A red car beside a blue bus.",
              "negative_caption": "A blue car beside a red bus."}})
    return root, coco


def test_load_sugarcrepe(tmp_path):
    root, coco = sugarcrepe_root(tmp_path)
    items = load_sugarcrepe(root, coco, subsets=("replace_rel", "swap_att"))
    assert [(it.subset, it.item_id) for it in items] == [("replace_rel", "0"), ("replace_rel", "1"), ("swap_att", "0")]
    assert items[0].image == coco / "000000085329.jpg" and items[0].crop is None
    assert items[2].true == "A red car beside a blue bus." and items[2].false == ("A blue car beside a red bus.",)
    assert len(load_sugarcrepe(root, coco, subsets="swap_att")) == 1  # one name as a plain string


def test_sugarcrepe_errors(tmp_path):
    root, coco = sugarcrepe_root(tmp_path)
    with pytest.raises(BenchmarkError, match=r"unknown SugarCrepe subset \['add_ent'\].*add_obj"):
        load_sugarcrepe(root, coco, subsets=["add_ent"])
    with pytest.raises(BenchmarkError, match="no SugarCrepe subset"):
        load_sugarcrepe(root, coco, subsets=[])
    with pytest.raises(BenchmarkError, match="add_att.json is missing"):
        load_sugarcrepe(root, coco)  # the default asks for all seven
    with pytest.raises(BenchmarkError, match="images folder"):
        load_sugarcrepe(root, tmp_path / "no-coco", subsets="swap_att")
    (root / "swap_att.json").write_text('{"0": ')
    with pytest.raises(BenchmarkError, match="swap_att.json is not valid JSON"):
        load_sugarcrepe(root, coco, subsets="swap_att")
    write_json(root / "swap_att.json", {"0": {"filename": "x.jpg", "caption": "a"}})
    with pytest.raises(BenchmarkError, match="lacks fields.*negative_caption"):
        load_sugarcrepe(root, coco, subsets="swap_att")
    for f in coco.iterdir():
        f.unlink()
    with pytest.raises(BenchmarkError, match=r"2 referenced image\(s\) missing.*000000085329.jpg"):
        load_sugarcrepe(root, coco, subsets="replace_rel")


# ------------------------------------------------------------------------------------------ Winoground


def winoground_root(tmp_path, ids=(0, 1, 3)):
    root = tmp_path / "winoground"
    lines = []
    for i in ids:
        for k in (0, 1):
            image(root / "data" / "images" / f"ex_{i}_img_{k}.png", size=(24, 24), seed=10 * i + k)
        lines.append(json.dumps({"id": i, "caption_0": f"a dog chases cat {i}", "caption_1": f"a cat chases dog {i}",
                                 "image_0": f"ex_{i}_img_0", "image_1": f"ex_{i}_img_1", "tag": "Noun",
                                 "secondary_tag": "", "num_main_preds": 1, "collapsed_tag": "Object"}))
    (root / "data" / "examples.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_load_winoground_full_and_clean(tmp_path):
    root = winoground_root(tmp_path)
    items = load_winoground(root)
    assert [it.item_id for it in items] == ["0", "1", "3"] and {it.subset for it in items} == {"winoground"}
    assert items[0].images == (root / "data" / "images" / "ex_0_img_0.png", root / "data" / "images" / "ex_0_img_1.png")
    assert items[0].captions == ("a dog chases cat 0", "a cat chases dog 0")
    clean = load_winoground(root, clean=True, clean_ids=[3, 0])
    assert [it.item_id for it in clean] == ["0", "3"] and {it.subset for it in clean} == {"winoground_clean"}
    ids_file = write_json(tmp_path / "ids.json", {"source": "a user's list", "ids": [1]})
    assert [it.item_id for it in load_winoground(root, clean=True, clean_ids=ids_file)] == ["1"]


def test_bundled_clean_ids():
    ids = winoground_clean_ids()
    assert len(ids) == 171 == len(set(ids)) and list(ids) == sorted(ids)
    assert ids[:5] == (0, 1, 2, 5, 6) and ids[-1] == 397
    assert 3 not in ids and 313 not in ids  # 3 is tagged; 313 is in the authors' "Harder" list
    doc = json.loads(B.CLEAN_IDS_JSON.read_text())
    assert "why-winoground-hard" in doc["source"]


def test_winoground_errors(tmp_path):
    with pytest.raises(BenchmarkError, match="does not exist"):
        load_winoground(tmp_path / "nowhere")
    root = winoground_root(tmp_path)
    with pytest.raises(BenchmarkError, match=r"clean ids not in examples.jsonl: \[2, 5"):
        load_winoground(root, clean=True)  # a copy missing some of the 171
    with pytest.raises(BenchmarkError, match="only used with clean=True"):
        load_winoground(root, clean_ids=[0])
    with pytest.raises(BenchmarkError, match="integers"):
        load_winoground(root, clean=True, clean_ids=["a"])
    (root / "data" / "images" / "ex_3_img_1.png").unlink()
    with pytest.raises(BenchmarkError, match=r"1 referenced image\(s\) missing.*ex_3_img_1.png"):
        load_winoground(root)
    jsonl = root / "data" / "examples.jsonl"
    jsonl.write_text(jsonl.read_text() + "{broken\n")
    with pytest.raises(BenchmarkError, match="line 4 is not JSON"):
        load_winoground(root)
    jsonl.write_text('{"id": 0, "caption_0": "a", "caption_1": "b", "image_0": "ex_0_img_0"}\n')
    with pytest.raises(BenchmarkError, match=r"lacks fields \['image_1'\]"):
        load_winoground(root)
    jsonl.unlink()
    with pytest.raises(BenchmarkError, match="no examples.jsonl"):
        load_winoground(root)


# ------------------------------------------------------------------------------------------ VALSE


def valse_root(tmp_path):
    root, swig, coco = tmp_path / "VALSE" / "data", tmp_path / "swig", tmp_path / "coco2017"
    image(swig / "exercising_255.jpg", seed=3, fmt="JPEG")
    image(coco / "000000462576.jpg", seed=4, fmt="JPEG")
    write_json(root / "actant-swap.json", {
        "actions_test_0": {"dataset": "SWiG", "image_file": "exercising_255.jpg",
                           "caption": "A man exercises his torso.",
                           "foil": "A torso exercises for a man.", "mturk": {"foil": 0, "caption": 3, "other": 0}},
        "actions_test_1": {"dataset": "SWiG", "image_file": "exercising_255.jpg", "caption": "A man lifts a weight.",
                           "foil": "A weight lifts a man.", "mturk": {"foil": 2, "caption": 1, "other": 0}}})
    write_json(root / "relations.json", {
        "relations_0": {"dataset": "coco_2017", "image_file": "000000462576.jpg",
                        "caption": "Breakfast items are on the table.",
                        "foils": ["Breakfast items are off the table.", "Breakfast items are under the table."],
                        "mturk": {"foil": 0, "caption": 2, "other": 1}}})
    return root, {"actant-swap": swig, "relations": coco}


def test_load_valse(tmp_path):
    root, folders = valse_root(tmp_path)
    items = load_valse(root, folders, pieces=["actant-swap", "relations"])
    assert [(it.subset, it.item_id) for it in items] == [("actant-swap", "actions_test_0"),
                                                         ("relations", "relations_0")]
    assert items[0].image == folders["actant-swap"] / "exercising_255.jpg"
    assert items[0].false == ("A torso exercises for a man.",)
    assert items[1].false == ("Breakfast items are off the table.", "Breakfast items are under the table.")
    everything = load_valse(root, folders, pieces=["actant-swap", "relations"], valid_only=False)
    assert len(everything) == 3  # the sample one annotator validated is kept only on request
    one_folder = load_valse(root, folders["actant-swap"], pieces="actant-swap")
    assert len(one_folder) == 1


def test_valse_errors(tmp_path):
    root, folders = valse_root(tmp_path)
    with pytest.raises(BenchmarkError, match=r"unknown VALSE piece \['actions-swap'\].*actant-swap"):
        load_valse(root, folders, pieces="actions-swap")
    with pytest.raises(BenchmarkError, match=r"no folder for \['relations'\]"):
        load_valse(root, {"actant-swap": folders["actant-swap"]}, pieces=["actant-swap", "relations"])
    with pytest.raises(BenchmarkError, match="existence.json is missing"):
        load_valse(root, folders["relations"], pieces=["existence"])
    with pytest.raises(BenchmarkError, match=r"1 referenced image\(s\) missing.*000000462576.jpg"):
        load_valse(root, folders["actant-swap"], pieces=["actant-swap", "relations"])  # one folder for both
    write_json(root / "relations.json",
               {"r": {"image_file": "000000462576.jpg", "caption": "x", "mturk": {"caption": 3}}})
    with pytest.raises(BenchmarkError, match="neither 'foil' nor"):
        load_valse(root, folders["relations"], pieces="relations")
    (root / "relations.json").write_text("nope")
    with pytest.raises(BenchmarkError, match="not valid JSON"):
        load_valse(root, folders["relations"], pieces="relations")


# ------------------------------------------------------------------------------------------ scoring


def test_choice_correct_is_strict():
    true = [0.5, 0.5, 0.5, 0.2]
    false = [[0.4, 0.3], [0.5, 0.1], [0.6, -np.inf], [0.1, -np.inf]]  # -inf: an absent option
    assert choice_correct(true, false).tolist() == [True, False, False, True]
    with pytest.raises(BenchmarkError, match=r"\[N\]"):
        choice_correct([0.1, 0.2], [[0.1]])
    with pytest.raises(BenchmarkError, match="NaN"):
        choice_correct([np.nan], [[0.1]])


def official_winoground(s):
    """Winoground's definitions written out by hand with its c<caption>_i<image> names."""
    out = []
    for m in s:
        c0_i0, c0_i1, c1_i0, c1_i1 = m[0][0], m[0][1], m[1][0], m[1][1]
        text = c0_i0 > c1_i0 and c1_i1 > c0_i1
        img = c0_i0 > c0_i1 and c1_i1 > c1_i0
        out.append((text, img, text and img))
    return out


def test_winoground_scores_constructed():
    s = np.array([
        [[1.0, 0.0], [0.0, 1.0]],  # all right
        [[0.5, 0.6], [0.4, 0.7]],  # text right (0.5 > 0.4, 0.7 > 0.6), image wrong (0.5 < 0.6)
        [[0.5, 0.4], [0.6, 0.7]],  # image right (0.5 > 0.4, 0.7 > 0.6), text wrong (0.5 < 0.6)
        [[0.5, 0.2], [0.5, 0.9]],  # a tie s00 == s10 fails text; image right
        [[0.3, 0.3], [0.3, 0.3]],  # all tied: nothing right
    ])
    got = winoground_scores(s)
    assert list(got.columns) == ["text", "image", "group"]
    assert got.to_dict("list") == {"text": [True, True, False, False, False],
                                   "image": [True, False, True, True, False],
                                   "group": [True, False, False, False, False]}
    rng = np.random.default_rng(0)
    many = rng.integers(0, 3, (200, 2, 2)).astype(float)  # coarse values: many ties
    assert list(winoground_scores(many).itertuples(index=False, name=None)) == official_winoground(many)
    with pytest.raises(BenchmarkError, match=r"\[N, 2, 2\]"):
        winoground_scores(np.zeros((3, 2)))
    with pytest.raises(BenchmarkError, match="NaN"):
        winoground_scores(np.full((1, 2, 2), np.nan))


# ------------------------------------------------------------------------------------------ evaluate


def dot(encoder, text, path):
    t = embeddings.embed_texts(encoder, [text], cache=False, progress=False)[0]
    i = embeddings.embed_images(encoder, [path], cache=False, progress=False)[0]
    return float(t.astype(np.float64) @ i.astype(np.float64))


def test_evaluate_choice_items_with_crops(tiny, tmp_path, cache, monkeypatch):
    items = load_aro(aro_root(tmp_path))
    items.append(ChoiceItem("tie", "made-up", items[0].image, "same words", ("same words",)))
    items.append(ChoiceItem("multi", "made-up", items[1].image, "a red cube", ("a blue cube", "a red cone")))
    seen = []
    real = embeddings.embed_texts
    monkeypatch.setattr(embeddings, "embed_texts",
                        lambda enc, texts, **kw: seen.append(list(texts)) or real(enc, texts, **kw))
    frame = evaluate(tiny, items, batch_size=2, cache=tmp_path / "emb", progress=False)
    assert list(frame.columns) == ["item_id", "subset", "n_false", "true_score", "max_false_score", "correct"]
    assert frame.n_false.tolist() == [1, 1, 1, 2]
    assert len(seen) == 1 and len(seen[0]) == 8  # 9 captions, "same words" embedded once
    crops = sorted((cache / "crops").glob("*.png"))
    assert len(crops) == 2
    with Image.open(crops[0]) as a, Image.open(crops[1]) as b:
        assert {a.size, b.size} == {(20, 10), (11, 12)}  # each item's box
    crop0 = next(p for p in crops if p.name.endswith("-5_4_25_14.png"))
    assert frame.true_score[0] == pytest.approx(dot(tiny, items[0].true, crop0), abs=1e-5)
    assert frame.max_false_score[0] == pytest.approx(dot(tiny, items[0].false[0], crop0), abs=1e-5)
    assert frame.correct[0] == (frame.true_score[0] > frame.max_false_score[0])
    assert not frame.correct[2] and frame.true_score[2] == frame.max_false_score[2]  # exact tie: wrong
    multi = [dot(tiny, t, items[3].image) for t in items[3].false]  # no crop: the file itself
    assert frame.max_false_score[3] == pytest.approx(max(multi), abs=1e-5)
    stamp = crop0.stat().st_mtime_ns
    again = evaluate(tiny, items, cache=tmp_path / "emb", progress=False)
    pd.testing.assert_frame_equal(frame, again)
    assert crop0.stat().st_mtime_ns == stamp  # crops are written once


def test_evaluate_pair_items(tiny, tmp_path, cache):
    items = load_winoground(winoground_root(tmp_path, ids=(0, 1)))
    frame = evaluate(tiny, items, cache=False, progress=False)
    assert list(frame.columns) == ["item_id", "subset", "s00", "s01", "s10", "s11", "text", "image", "group"]
    it = items[1]
    assert frame.s10[1] == pytest.approx(dot(tiny, it.captions[1], it.images[0]), abs=1e-5)
    s = frame[["s00", "s01", "s10", "s11"]].to_numpy().reshape(-1, 2, 2)
    pd.testing.assert_frame_equal(frame[["text", "image", "group"]], winoground_scores(s))


def test_evaluate_errors(tiny, tmp_path, cache):
    img = image(tmp_path / "a.png")
    choice = ChoiceItem("0", "x", img, "a", ("b",))
    pair = PairItem("0", "y", (img, img), ("a", "b"))
    with pytest.raises(BenchmarkError, match="separately"):
        evaluate(tiny, [choice, pair], progress=False)
    with pytest.raises(BenchmarkError, match="no items"):
        evaluate(tiny, [], progress=False)
    with pytest.raises(BenchmarkError, match="repeat"):
        evaluate(tiny, [choice, choice], progress=False)
    with pytest.raises(BenchmarkError, match="without false captions"):
        evaluate(tiny, [ChoiceItem("0", "x", img, "a", ())], progress=False)
    with pytest.raises(BenchmarkError, match="crop"):
        evaluate(tiny, [ChoiceItem("0", "x", img, "a", ("b",), crop=(5, 5, 5, 9))], progress=False)
    with pytest.raises(BenchmarkError, match=r"1 image\(s\) missing"):
        evaluate(tiny, [ChoiceItem("0", "x", tmp_path / "gone.png", "a", ("b",))], progress=False)
    with pytest.raises(BenchmarkError, match="batch_size"):
        evaluate(tiny, [choice], batch_size=0, progress=False)
    assert not (cache / "crops").exists()  # nothing was written by the refused calls


# ------------------------------------------------------------------------------------------ summaries


def choice_frame(spec):
    """spec: subset -> (n_right, n_wrong, n_false)"""
    rows = []
    for subset, (right, wrong, k) in spec.items():
        rows += [{"item_id": f"{subset}{i}", "subset": subset, "n_false": k, "correct": i < right}
                 for i in range(right + wrong)]
    return pd.DataFrame(rows)


def test_summary_choice_and_pair():
    frame = choice_frame({"a": (3, 1, 1), "b": (1, 3, 3)})
    out = summary(frame)
    assert list(out.columns) == ["subset", "metric", "n", "accuracy", "ci_low", "ci_high", "chance"]
    assert out.subset.tolist() == ["a", "b"] and set(out.metric) == {"correct"}
    assert out.n.tolist() == [4, 4] and out.accuracy.tolist() == [0.75, 0.25]
    assert out.chance.tolist() == [0.5, 0.25]
    assert (out.ci_low <= out.accuracy).all() and (out.accuracy <= out.ci_high).all()
    pairs = pd.DataFrame({"item_id": list("pqrs"), "subset": "winoground_clean",
                          "text": [True, True, False, False], "image": [True, False, False, False],
                          "group": [True, False, False, False]})
    ps = summary(pairs)
    assert ps.metric.tolist() == ["text", "image", "group"] and ps.accuracy.tolist() == [0.5, 0.25, 0.25]
    assert ps.chance.tolist() == pytest.approx([0.25, 0.25, 1 / 6])
    with pytest.raises(BenchmarkError, match="cannot group"):
        summary(frame, by=("tag",))
    with pytest.raises(BenchmarkError, match="n_false"):
        summary(frame.drop(columns="n_false"))
    with pytest.raises(BenchmarkError, match="not an evaluate"):
        summary(pd.DataFrame({"subset": ["a"], "hit": [True]}))


def test_paper_b_summary_macro_over_subsets():
    frame = choice_frame({"replace_att": (4, 0, 1), "swap_att": (2, 2, 1), "add_att": (0, 8, 1),
                          "replace_rel": (1, 1, 1)})
    out = paper_b_summary(frame).set_index(["benchmark", "column"])
    assert set(out.index) == {("SugarCrepe", "Attribute"), ("SugarCrepe", "Relation")}
    att = out.loc[("SugarCrepe", "Attribute")]
    assert att.accuracy == pytest.approx((1.0 + 0.5 + 0.0) / 3)  # mean of subset accuracies, not pooled 6/16
    assert att.n == 16 and att.subsets == "replace_att+swap_att+add_att" and att.chance == 0.5
    assert att.ci_low <= att.accuracy <= att.ci_high


def test_category_macro():
    frame = choice_frame({"VG-Relation": (3, 3, 1)})
    cats = pd.DataFrame({"item_id": [f"VG-Relation{i}" for i in range(6)], "subset": "VG-Relation",
                         "category": ["on", "on", "wearing", "on", "by", "wearing"]})
    # on: items 0,1 right, 3 wrong -> 2/3; wearing: 2 right, 5 wrong -> 1/2; by: 4 wrong -> 0
    out = category_macro(frame, cats)
    assert out.macro_accuracy[0] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3) and out.n_categories[0] == 3
    assert category_macro(frame, cats, min_count=2).macro_accuracy[0] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert category_macro(frame, cats, exclude=["by", "on"]).macro_accuracy[0] == pytest.approx(0.5)
    with pytest.raises(BenchmarkError, match="no category"):
        category_macro(frame, cats.iloc[:3])


# ------------------------------------------------------------------------------------------ paper B tables


T1_COLUMNS = [("ARO", "Relation"), ("ARO", "Attribute"), ("SugarCrepe", "Relation"), ("SugarCrepe", "Attribute"),
              ("VL-Checklist", "Relation"), ("VL-Checklist", "Attribute"), ("VALSE", "Relation"),
              ("SVO-Probes", "Relation"), ("ComVG", "Relation"), ("Winoground", "Text"), ("Winoground", "Image"),
              ("Winoground", "Group")]


def row(table, model):
    t = B.paper_b_tables()
    cells = t[(t.table == table) & (t.model == model)].set_index(["benchmark", "column"]).value
    return [cells.get(c, np.nan) for c in T1_COLUMNS]


def test_paper_b_tables_shape():
    t = B.paper_b_tables()
    assert list(t.columns) == ["table", "model", "benchmark", "column", "value", "note"]
    assert len(t) == 170 + 48 + 24 and not t.duplicated(["table", "model", "benchmark", "column"]).any()
    assert t.groupby("table").model.nunique().to_dict() == {1: 8, 2: 7, 3: 6, 5: 4}
    assert t.value.between(0, 100).all()
    retrieval = {(b, f"{d} R@{k}") for b in ("MSCOCO", "Flickr30K") for d in ("text->image", "image->text")
                 for k in (1, 5)}
    assert set(zip(t[t.table == 3].benchmark, t[t.table == 3].column)) == retrieval
    assert set(t[t.table == 5].column) == {"Ablation"} and len(t[t.table == 5]) == 24
    assert set(zip(t[t.table < 3].benchmark, t[t.table < 3].column)) == set(T1_COLUMNS)
    assert sorted(t.loc[t.model == "SDS-CLIP", "value"]) == [53.0, 62.0]  # its other cells are blank


def test_paper_b_tables_values_cross_checked():
    assert row(1, "CLIP") == [58.7, 62.7, 68.8, 70.8, 63.6, 67.7, 66.1, 79.5, 66.7, 31.6, 11.1, 9.4]
    assert row(2, "CLIP") == row(1, "CLIP")
    assert row(1, "Random Chance")[-3:] == [25.0, 25.0, 16.7]
    # Table 1 against Table 7's five-seed means (Attention-Based and CLIP-FT)
    t7 = {"CLIP-FT": [64.74, 66.28, 71.06, 77.54, 60.84, 67.44, 67.40, 84.08, 70.72, 33.14, 8.78, 5.54],
          "CLIP-CAE (Attention-Based)": [69.84, 65.30, 72.08, 79.16, 65.42, 68.44, 69.14, 84.52, 72.80, 33.90,
                                         12.54, 7.96]}
    for model, means in t7.items():
        assert row(1, model) == pytest.approx(means, abs=0.051)
    fixed = published_b("SugarCrepe", "Attribute")
    assert "71.5" in fixed.loc[fixed.model == "CLIP-FT", "note"].item()  # the OCR's reading is recorded
    # Table 2's GradCAM row is Table 9's "NegCLIP + CAE"; CLIP-FT with HN is Table 9's NegCLIP
    assert row(2, "CLIP-CAE (GradCAM-Based)")[:9] == [80.0, 68.9, 74.8, 80.8, 74.0, 70.1, 74.3, 84.1, 73.0]
    assert row(2, "CLIP-FT with HN")[:9] == [80.5, 71.4, 73.3, 79.8, 71.9, 70.0, 75.5, 83.7, 70.2]
    # section 4.2: with HN, Winoground gains up to 4.7 (text), 4.1 (image), 2.9 (group) over CLIP-FT with HN
    wino = B.paper_b_tables().query("table == 2 and benchmark == 'Winoground'").pivot(index="model", columns="column",
                                                                                      values="value")
    gains = wino.drop(index=["Random Chance", "CLIP"]) - wino.loc["CLIP-FT with HN"]
    assert gains.max().round(1).to_dict() == {"Group": 2.9, "Image": 4.1, "Text": 4.7}


def test_published_b():
    aro = published_b("ARO")
    assert set(aro.column) == {"Relation", "Attribute"} and (aro.table == 1).all()
    assert aro.loc[(aro.model == "CLIP") & (aro.column == "Relation"), "fraction"].item() == pytest.approx(0.587)
    assert len(published_b(table=2)) == 84
    with pytest.raises(BenchmarkError, match="ARO, ComVG"):
        published_b("Sugar-Crepe")
    with pytest.raises(BenchmarkError, match="Group, Image, Text"):
        published_b("Winoground", "text")
    with pytest.raises(BenchmarkError, match="not transcribed"):
        published_b(table=7)


def test_paper_b_groups_name_real_subsets_and_cells():
    known = {*B.ARO_SUBSETS, *B.SUGARCREPE_SUBSETS, *B.VALSE_PIECES, "winoground_clean", *B.VL_CHECKLIST_SUBSETS,
             *B.SVO_PROBES_SUBSETS, *B.COMVG_SUBSETS}
    t = B.paper_b_tables()
    for (bench, column), group in B.PAPER_B_GROUPS.items():
        assert set(group.subsets) <= known
        assert ((t.benchmark == bench) & (t.column == column)).any()
    assert B.PAPER_B_GROUPS[("VALSE", "Relation")].subsets == ("action-replacement", "actant-swap", "relations")
