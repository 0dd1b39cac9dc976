"""VL-CheckList, SVO-Probes and ComVG: loaders on small files in each published format, their error paths
(each names the file, field or image), image-choice scoring in evaluate() against dot products by hand, the
stand-in writers read back by the loaders, and paper B's columns they fill."""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest

from clipscope_utils import embeddings
from clipscope_utils.compositional import benchmarks as B
from clipscope_utils.compositional import export as X
from clipscope_utils.compositional.benchmarks import BenchmarkError, evaluate, paper_b_summary
from clipscope_utils.compositional.comvg import COMVG_COLUMNS, load_comvg
from clipscope_utils.compositional.items import ChoiceItem, ImageChoiceItem, ItemList, PairItem
from clipscope_utils.compositional.scenes import CompositionSpec, synthetic_benchmark
from clipscope_utils.compositional.svo_probes import SVO_PROBES_COLUMNS, load_svo_probes
from clipscope_utils.compositional.vl_checklist import VL_CHECKLIST_FILES, VL_CHECKLIST_SUBSETS, load_vl_checklist
from conftest import image, write_json


def write_csv(path, columns, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
    return path


def file_errors(path, load, cases):
    """For each ``(content, match)`` in turn: write ``content`` to ``path`` (text or bytes; None deletes the
    file), then ``load()`` must raise a BenchmarkError matching ``match``."""
    for content, match in cases:
        if content is None:
            path.unlink()
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        with pytest.raises(BenchmarkError, match=match):
            load()


# ------------------------------------------------------------------------------------------ VL-CheckList


def vlc_root(tmp_path):
    """A clone-like folder (``data/`` with every file of corpus/v1, most empty) and the $DATASET images."""
    root, images = tmp_path / "VL-CheckList", tmp_path / "dataset"
    for per_source in VL_CHECKLIST_FILES.values():
        for path, _ in per_source.values():
            write_json(root / "data" / path, [])
    image(images / "vg" / "VG_100K" / "2361911.jpg", seed=1, fmt="JPEG")
    image(images / "vg" / "VG_100K_2" / "2408124.jpg", seed=2, fmt="JPEG")
    image(images / "swig" / "dialing_8.jpg", seed=3, fmt="JPEG")
    image(images / "hake" / "openimages" / "0030feaa83a02c0d.jpg", seed=4, fmt="JPEG")
    write_json(root / "data" / "Relation" / "vg" / "spatial.json", [
        ["VG_100K/2361911.jpg", {"POS": ["control switch ON oven"], "NEG": ["control switch under oven"]}],
        ["VG_100K_2/2408124.jpg", {"POS": ["tracks next to train"], "NEG": ["tracks far from train"]}]])
    write_json(root / "data" / "Relation" / "swig_action.json", [
        ["dialing_8.jpg", {"POS": ["a person dials on a phone"], "NEG": ["a person hugs on a phone"]}]])
    write_json(root / "data" / "Relation" / "hake_action.json", [
        ["openimages/0030feaa83a02c0d.jpg", {"POS": ["person ride motorcycle"], "NEG": ["person wash motorcycle"]}]])
    write_json(root / "data" / "Attribute" / "vg" / "color.json", [
        ["VG_100K/2361911.jpg", {"POS": ["brown knob"], "NEG": ["teal knob"]}]])
    write_json(root / "data" / "Attribute" / "vaw" / "color.json", [
        ["VG_100K_2/2408124.jpg", {"POS": ["red bottle"], "NEG": ["silver bottle", "green bottle"]}]])
    return root, images


def test_load_vl_checklist_fields(tmp_path):
    root, images = vlc_root(tmp_path)
    items = load_vl_checklist(root, images)
    assert isinstance(items, ItemList) and items.dropped == {} and items.missing == ()
    got = {(it.subset, it.item_id): it for it in items}
    assert sorted(got) == [("Attribute/color", "vaw:0"), ("Attribute/color", "vg:0"), ("Relation/action", "hake:0"),
                           ("Relation/action", "swig:0"), ("Relation/spatial", "vg:0"), ("Relation/spatial", "vg:1")]
    spatial = got[("Relation/spatial", "vg:1")]
    assert spatial.image == images / "vg" / "VG_100K_2" / "2408124.jpg" and spatial.crop is None
    assert spatial.true == "tracks next to train" and spatial.false == ("tracks far from train",)
    assert got[("Relation/action", "hake:0")].image == images / "hake" / "openimages" / "0030feaa83a02c0d.jpg"
    assert got[("Relation/action", "swig:0")].image == images / "swig" / "dialing_8.jpg"
    assert got[("Attribute/color", "vaw:0")].false == ("silver bottle", "green bottle")
    # the data folder itself, one type, some sources, the authors' first-records cut, a mapping of folders
    assert len(load_vl_checklist(root / "data", images, subsets="Relation/spatial")) == 2
    assert [it.item_id for it in load_vl_checklist(root, images, "Relation/action", sources=["swig"])] == ["swig:0"]
    assert [it.item_id for it in load_vl_checklist(root, images, "Relation/spatial", limit=1)] == ["vg:0"]
    mapped = load_vl_checklist(root, {"vg": images / "vg"}, subsets="Relation/spatial")
    assert mapped[0].image == images / "vg" / "VG_100K" / "2361911.jpg"


def test_vl_checklist_errors(tmp_path):
    root, images = vlc_root(tmp_path)
    data = root / "data"
    with pytest.raises(BenchmarkError, match=r"unknown VL-CheckList subset \['Relation/actions'\].*Relation/spatial"):
        load_vl_checklist(root, images, subsets="Relation/actions")
    with pytest.raises(BenchmarkError, match=r"have no file from sources \['vaw'\]"):
        load_vl_checklist(root, images, subsets="Relation/spatial", sources="vaw")
    with pytest.raises(BenchmarkError, match="limit"):
        load_vl_checklist(root, images, limit=0)
    with pytest.raises(BenchmarkError, match="VL-CheckList folder .* does not exist"):
        load_vl_checklist(tmp_path / "nowhere", images)
    with pytest.raises(BenchmarkError, match="VL-CheckList hake images folder .*hake does not exist"):
        load_vl_checklist(root, {"vg": images / "vg", "swig": images / "swig", "hake": tmp_path / "no-hake"})
    with pytest.raises(BenchmarkError, match=r"mapping has no folder for \['hake', 'swig'\]"):
        load_vl_checklist(root, {"vg": images / "vg"})
    (data / "Relation" / "swig_action.json").unlink()
    with pytest.raises(BenchmarkError, match="swig_action.json is missing"):
        load_vl_checklist(root, images, subsets="Relation/action")
    (data / "Relation" / "swig_action.json").write_text('[["dialing_8.jpg", {"POS": ')
    with pytest.raises(BenchmarkError, match="swig_action.json is not valid JSON"):
        load_vl_checklist(root, images, subsets="Relation/action")
    write_json(data / "Relation" / "swig_action.json", {"dialing_8.jpg": {}})
    with pytest.raises(BenchmarkError, match="swig_action.json must hold a JSON list"):
        load_vl_checklist(root, images, subsets="Relation/action")
    write_json(data / "Relation" / "swig_action.json", [["dialing_8.jpg"]])
    with pytest.raises(BenchmarkError, match="swig_action.json record 0 must be a pair"):
        load_vl_checklist(root, images, subsets="Relation/action")
    write_json(data / "Relation" / "swig_action.json", [["dialing_8.jpg", {"POS": ["a"]}]])
    with pytest.raises(BenchmarkError, match="swig_action.json record 0 lacks fields POS / NEG"):
        load_vl_checklist(root, images, subsets="Relation/action")
    write_json(data / "Relation" / "swig_action.json", [["dialing_8.jpg", {"POS": [], "NEG": ["b"]}]])
    with pytest.raises(BenchmarkError, match="non-empty lists"):
        load_vl_checklist(root, images, subsets="Relation/action")
    write_json(data / "Relation" / "swig_action.json", [["gone_1.jpg", {"POS": ["a"], "NEG": ["b"]}],
                                                         ["dialing_8.jpg", {"POS": ["c"], "NEG": ["d"]}]])
    with pytest.raises(BenchmarkError, match=r"1 referenced image\(s\) missing.*gone_1.jpg.*skip_missing"):
        load_vl_checklist(root, images, subsets="Relation/action")
    kept = load_vl_checklist(root, images, subsets="Relation/action", skip_missing=True)
    assert sorted(it.item_id for it in kept) == ["hake:0", "swig:1"]
    assert kept.dropped == {"missing image": 1} and kept.missing == (str(images / "swig" / "gone_1.jpg"),)


# ------------------------------------------------------------------------------------------ SVO-Probes


def svo_row(sentence, pos, neg, kind):
    return {"sentence": sentence, "pos_triplet": "girl,stand,grass", "neg_triplet": "girl,sit,grass",
            "pos_url": f"https://example.invalid/{pos}.jpg", "neg_url": f"https://example.invalid/{neg}.jpg",
            "pos_image_id": pos, "neg_image_id": neg, "subj_neg": kind == "subj", "verb_neg": kind == "verb",
            "obj_neg": kind == "obj"}


def svo_root(tmp_path, index=False):
    root, images = tmp_path / "svo", tmp_path / "svo-images"
    rows = [svo_row("A girl stands in grass.", 10, 11, "verb"), svo_row("A dog chases a ball.", 12, 13, "subj"),
            svo_row("A man rides a horse.", 14, 15, "obj"), svo_row("A cat sleeps on a sofa.", 16, 17, "none"),
            svo_row("A woman holds a baby.", 18, 10, "verb")]
    columns = SVO_PROBES_COLUMNS
    if index:
        columns = ("index", *columns)
        rows = [{"index": 100 + n, **r} for n, r in enumerate(rows)]
    write_csv(root / "svo_probes.csv", columns, rows)
    for i in range(10, 19):
        image(images / f"{i}.jpg", seed=i, fmt="JPEG")
    (images / "18.jpg").rename(images / "18.png")  # saved under another suffix: found by its id
    return root, images


def test_load_svo_probes_fields(tmp_path):
    root, images = svo_root(tmp_path)
    items = load_svo_probes(root, images)
    assert [(it.item_id, it.subset) for it in items] == [("0", "svo-verb"), ("1", "svo-subject"), ("2", "svo-object"),
                                                         ("4", "svo-verb")]
    first = items[0]
    assert isinstance(first, ImageChoiceItem) and first.text == "A girl stands in grass."
    assert first.true_image == images / "10.jpg" and first.false_images == (images / "11.jpg",)
    assert items[3].true_image == images / "18.png"
    assert items.dropped == {"negative of no single type": 1}  # the row of no type is counted, not silent
    verbs = load_svo_probes(root, images, subsets="svo-verb")
    assert [it.item_id for it in verbs] == ["0", "4"]
    indexed_root, indexed_images = svo_root(tmp_path / "indexed", index=True)
    assert [it.item_id for it in load_svo_probes(indexed_root, indexed_images)] == ["100", "101", "102", "104"]


def test_svo_probes_errors(tmp_path):
    root, images = svo_root(tmp_path)
    path = root / "svo_probes.csv"
    good = path.read_text()
    with pytest.raises(BenchmarkError, match=r"unknown SVO-Probes subset \['verb'\].*svo-verb"):
        load_svo_probes(root, images, subsets="verb")
    with pytest.raises(BenchmarkError, match="SVO-Probes images folder .* does not exist"):
        load_svo_probes(root, tmp_path / "no-images")
    (images / "13.jpg").unlink()
    with pytest.raises(BenchmarkError, match=r"1 referenced image\(s\) missing.*13.jpg"):
        load_svo_probes(root, images)
    kept = load_svo_probes(root, images, skip_missing=True)
    assert [it.item_id for it in kept] == ["0", "2", "4"]
    assert kept.dropped == {"missing image": 1, "negative of no single type": 1}
    assert kept.missing == (str(images / "13.jpg"),)
    assert len(load_svo_probes(root, images, subsets="svo-verb")) == 2  # the missing image is not needed there
    file_errors(path, lambda: load_svo_probes(root, images), [
        (good.replace("verb_neg", "verb_negative"), r"svo_probes.csv lacks columns \['verb_neg'\]"),
        (good + "A late row,,,,,1,2,False,True,False,extra\n", "svo_probes.csv line 7 has 11 fields, the header 10"),
        (good.replace("True", "yes", 1), "svo_probes.csv row 0 verb_neg must be True or False, got 'yes'"),
        (good.replace("A girl stands in grass.", ""), "row 0 sentence must be a non-empty string"),
        (b"\xff\xfe\x00bad", "svo_probes.csv is not UTF-8"),
        ("", "svo_probes.csv is empty"),
        (None, "svo_probes.csv is missing"),
    ])


# ------------------------------------------------------------------------------------------ ComVG


def comvg_root(tmp_path):
    """Rows shaped like ComCLIP's datasets/ComVG.csv; the images split over VG_100K and VG_100K_2."""
    root, vg = tmp_path / "ComCLIP" / "datasets", tmp_path / "vg"
    rows = [
        {"id": 1, "sentence": "a man is sitting at a table", "pos_triplet": "man,sit,table",
         "neg_triplet": "('dog', 'sit', 'table')", "pos_image_id": 2358258, "neg_image_id": 2357994,
         "neg_value": "subject", "sentence_id": 215},
        {"id": 2, "sentence": "a man is holding a laptop.", "pos_triplet": "man,hold,laptop",
         "neg_triplet": "('man', 'type on', 'laptop')", "pos_image_id": 2354355, "neg_image_id": 2400993,
         "neg_value": "verb", "sentence_id": 49},
        {"id": 3, "sentence": "a cat is laying in grass.", "pos_triplet": "cat,layingin,grass",
         "neg_triplet": "('cat', 'laying in', 'table')", "pos_image_id": 2379026, "neg_image_id": 2399401,
         "neg_value": "object", "sentence_id": 31},
    ]
    write_csv(root / "ComVG.csv", COMVG_COLUMNS, rows)
    for n, i in enumerate((2358258, 2357994, 2354355)):
        image(vg / "VG_100K" / f"{i}.jpg", seed=n, fmt="JPEG")
    for n, i in enumerate((2400993, 2379026, 2399401)):
        image(vg / "VG_100K_2" / f"{i}.jpg", seed=10 + n, fmt="JPEG")
    return root, [vg / "VG_100K", vg / "VG_100K_2"]


def test_load_comvg_fields(tmp_path):
    root, folders = comvg_root(tmp_path)
    items = load_comvg(root, folders)
    assert [(it.item_id, it.subset) for it in items] == [("1", "comvg-subject"), ("2", "comvg-verb"),
                                                         ("3", "comvg-object")]
    verb = items[1]
    assert verb.text == "a man is holding a laptop."
    assert verb.true_image == folders[0] / "2354355.jpg" and verb.false_images == (folders[1] / "2400993.jpg",)
    assert [it.item_id for it in load_comvg(root, folders, subsets="comvg-verb")] == ["2"]


def test_comvg_errors(tmp_path):
    root, folders = comvg_root(tmp_path)
    path = root / "ComVG.csv"
    good = path.read_text()
    with pytest.raises(BenchmarkError, match=r"3 referenced image\(s\) missing.*VG_100K/2400993.jpg"):
        load_comvg(root, folders[0])  # only one of the two folders
    kept = load_comvg(root, folders[0], skip_missing=True)
    assert [it.item_id for it in kept] == ["1"] and kept.dropped == {"missing image": 2}
    with pytest.raises(BenchmarkError, match="ComVG needs its image folder too"):
        load_comvg(root, None)
    with pytest.raises(BenchmarkError, match="ComVG images folder .*VG_100K_3 does not exist"):
        load_comvg(root, [folders[0], folders[0].parent / "VG_100K_3"])
    file_errors(path, lambda: load_comvg(root, folders), [
        (good.replace(",verb,", ",predicate,"), r"row 1 \(id '2'\): neg_value must be one of .*'predicate'"),
        (good.replace("\n3,", "\n2,"), r"ComVG.csv column id: ids repeat, e.g. \['2'\]"),
        (good.replace("neg_image_id", "negative_image"), r"ComVG.csv lacks columns \['neg_image_id'\]"),
        ('id,sentence,pos_image_id,neg_image_id,neg_value\n1,"an unclosed quote,1,2,verb\n',
         "ComVG.csv (is not valid CSV|line .* has)"),
        (None, "ComVG.csv is missing"),
    ])


def test_check_files_new_kinds(tmp_path):
    vlc, vlc_images = vlc_root(tmp_path)
    svo, svo_images = svo_root(tmp_path)
    comvg, vg = comvg_root(tmp_path)
    B.check_files("vl_checklist", vlc, vlc_images)
    B.check_files("svo_probes", svo, svo_images)
    B.check_files("comvg", comvg, vg)
    with pytest.raises(BenchmarkError, match="VL-CheckList needs its image folder too"):
        B.check_files("vl_checklist", vlc)
    with pytest.raises(BenchmarkError, match="SVO-Probes needs its image folder too"):
        B.check_files("svo_probes", svo)
    (vlc / "data" / "Attribute" / "vaw" / "state.json").unlink()
    with pytest.raises(BenchmarkError, match="state.json is missing"):
        B.check_files("vl_checklist", vlc, vlc_images)
    (comvg / "ComVG.csv").unlink()
    with pytest.raises(BenchmarkError, match="ComVG.csv is missing"):
        B.check_files("comvg", comvg, vg)
    with pytest.raises(BenchmarkError, match="allowed: .*vl_checklist, svo_probes, comvg"):
        B.check_files("svo", svo, svo_images)


# ------------------------------------------------------------------------------------------ evaluate


def dot(encoder, text, path):
    t = embeddings.embed_texts(encoder, [text], cache=False, progress=False)[0]
    i = embeddings.embed_images(encoder, [path], cache=False, progress=False)[0]
    return float(t.astype(np.float64) @ i.astype(np.float64))


def test_evaluate_image_choice_items(tiny, tmp_path, cache):
    root, folders = comvg_root(tmp_path)
    items = list(load_comvg(root, folders))
    a, b, c = (image(tmp_path / f"extra{k}.png", seed=40 + k) for k in range(3))
    items.append(ImageChoiceItem("tie", "made-up", "a red cube", a, (a,)))  # the same image twice: a tie
    items.append(ImageChoiceItem("multi", "made-up", "a red cube", a, (b, c)))
    frame = evaluate(tiny, items, batch_size=2, cache=tmp_path / "emb", progress=False)
    assert list(frame.columns) == ["item_id", "subset", "n_false", "true_score", "max_false_score", "correct"]
    assert frame.n_false.tolist() == [1, 1, 1, 1, 2]
    for n, it in enumerate(items):
        true = dot(tiny, it.text, it.true_image)
        false = max(dot(tiny, it.text, p) for p in it.false_images)
        assert frame.true_score[n] == pytest.approx(true, abs=1e-5)
        assert frame.max_false_score[n] == pytest.approx(false, abs=1e-5)
        if it.item_id != "tie":
            assert frame.correct[n] == (true > false)
    assert not frame.correct[3] and frame.true_score[3] == frame.max_false_score[3]  # exact tie: wrong
    # choice and image-choice items score together (same columns), each as it would alone
    choice = ChoiceItem("c0", "made-up-choice", b, "a blue cone", ("a red cube",))
    both = evaluate(tiny, [*items, choice], cache=False, progress=False)  # other batches: float noise only
    pd.testing.assert_frame_equal(both.iloc[:-1], frame, atol=1e-5)
    alone = evaluate(tiny, [choice], cache=False, progress=False)
    pd.testing.assert_frame_equal(both.iloc[-1:].reset_index(drop=True), alone, atol=1e-5)
    assert B.summary(frame).set_index("subset").chance.to_dict() == pytest.approx(
        {"comvg-object": 0.5, "comvg-subject": 0.5, "comvg-verb": 0.5, "made-up": (0.5 + 1 / 3) / 2})


def test_evaluate_image_choice_errors(tiny, tmp_path, cache):
    img = image(tmp_path / "a.png")
    item = ImageChoiceItem("0", "x", "a", img, (img,))
    with pytest.raises(BenchmarkError, match="separately"):
        evaluate(tiny, [item, PairItem("1", "y", (img, img), ("a", "b"))], progress=False)
    with pytest.raises(BenchmarkError, match="without false captions"):
        evaluate(tiny, [ImageChoiceItem("0", "x", "a", img, ())], progress=False)
    with pytest.raises(BenchmarkError, match=r"1 image\(s\) missing.*gone.png"):
        evaluate(tiny, [ImageChoiceItem("0", "x", "a", img, (tmp_path / "gone.png",))], progress=False)


# ------------------------------------------------------------------------------------------ stand-ins


SPEC = CompositionSpec(family="simco", images=5, attributes=("colour", "size"), seed=2)
N = 6


@pytest.fixture(scope="module")
def bench(module_cache):
    return synthetic_benchmark(SPEC, N, progress=False)


def test_vl_checklist_round_trip(bench, tmp_path):
    paths = X.to_vl_checklist(bench, tmp_path / "vlc")
    assert paths == {"root": tmp_path / "vlc", "images": tmp_path / "vlc" / "images"}
    B.check_files("vl_checklist", **paths)
    items = load_vl_checklist(**paths)
    assert items.dropped == {}
    by_type = {s: [it for it in items if it.subset == s] for s in VL_CHECKLIST_SUBSETS}
    sources = {"Relation/action": "relation", "Relation/spatial": "relation_replace"}
    for subset, loaded in by_type.items():
        generated = bench[sources.get(subset, "attribute")]
        assert len(loaded) == len(generated) > 0
        # every generated item, once, in some corpus file of its type: same captions, same image bytes
        want = sorted((it.true, it.false, it.image.read_bytes()) for it in generated)
        assert sorted((it.true, it.false, it.image.read_bytes()) for it in loaded) == want
    assert {it.item_id.split(":")[0] for it in by_type["Relation/action"]} == {"hake", "swig", "vg"}
    assert json.loads((paths["root"] / "export.json").read_text())["layout"] == "vl_checklist"


@pytest.mark.parametrize("kind", ["svo_probes", "comvg"])
def test_image_choice_round_trip(bench, tmp_path, kind):
    write, load = {"svo_probes": (X.to_svo_probes, load_svo_probes), "comvg": (X.to_comvg, load_comvg)}[kind]
    paths = write(bench, tmp_path / kind)
    B.check_files(kind, **paths)
    items = load(**paths)
    pairs = bench["winoground"]
    assert len(items) == 2 * len(pairs) and items.dropped == {}
    assert {it.subset for it in items} == {"svo-verb" if kind == "svo_probes" else "comvg-verb"}
    for n, it in enumerate(items):
        pair, i = pairs[n // 2], n % 2  # caption i: its own image true, the twin false
        assert it.text == pair.captions[i]
        assert it.true_image.read_bytes() == pair.images[i].read_bytes()
        assert [p.read_bytes() for p in it.false_images] == [pair.images[1 - i].read_bytes()]
    with pytest.raises(ValueError, match="already exists"):
        write(bench, tmp_path / kind)


def test_image_choice_round_trip_scores(bench, tiny, tmp_path, cache):
    loaded = load_comvg(**X.to_comvg(bench, tmp_path / "comvg"))
    direct = [ImageChoiceItem(str(n + 1), "comvg-verb", pair.captions[i], pair.images[i], (pair.images[1 - i],))
              for n, (pair, i) in enumerate((p, i) for p in bench["winoground"] for i in (0, 1))]
    a = evaluate(tiny, loaded, cache=False, progress=False)
    b = evaluate(tiny, direct, cache=False, progress=False)
    pd.testing.assert_frame_equal(a, b)  # the copies are the same bytes: the same scores


# ------------------------------------------------------------------------------------------ paper B's columns


def choice_frame(spec):
    """spec: subset -> (n_right, n_wrong)"""
    rows = []
    for subset, (right, wrong) in spec.items():
        rows += [{"item_id": f"{subset}{i}", "subset": subset, "n_false": 1, "correct": i < right}
                 for i in range(right + wrong)]
    return pd.DataFrame(rows)


def test_paper_b_summary_fills_the_new_columns():
    spec = {"Relation/action": (3, 1), "Relation/spatial": (1, 1), "svo-verb": (4, 1), "svo-subject": (0, 5),
            "comvg-verb": (1, 3), **{s: (2, 2) for s in B.VL_CHECKLIST_SUBSETS if s.startswith("Attribute/")}}
    out = paper_b_summary(choice_frame(spec)).set_index(["benchmark", "column"])
    assert {("VL-Checklist", "Relation"), ("VL-Checklist", "Attribute"), ("SVO-Probes", "Relation"),
            ("ComVG", "Relation")} <= set(out.index)
    assert out.loc[("VL-Checklist", "Relation"), "accuracy"] == pytest.approx((0.75 + 0.5) / 2)  # mean of types
    assert out.loc[("VL-Checklist", "Relation"), "n"] == 6
    assert out.loc[("VL-Checklist", "Attribute"), "accuracy"] == pytest.approx(0.5)
    assert out.loc[("VL-Checklist", "Attribute"), "n"] == 20
    assert out.loc[("SVO-Probes", "Relation"), "accuracy"] == pytest.approx(0.8)  # the verb rows only
    assert out.loc[("ComVG", "Relation"), "accuracy"] == pytest.approx(0.25)
    assert out.loc[("ComVG", "Relation"), "chance"] == 0.5
    for bench, column in [("VL-Checklist", "Relation"), ("VL-Checklist", "Attribute"), ("SVO-Probes", "Relation"),
                          ("ComVG", "Relation")]:
        assert len(B.published_b(bench, column)) > 0  # the names match data/paper_b_tables.csv
