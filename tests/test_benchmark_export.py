"""Generated items written in ARO's, SugarCrepe's, Winoground's and VALSE's layouts and read back by the real
loaders: check_files passes, every item comes back with its captions and image, counts match, the writes are
atomic and never replace a folder they did not write."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from PIL import Image

from clipscope_utils.compositional import benchmarks as B
from clipscope_utils.compositional import export as X
from clipscope_utils.compositional.benchmarks import BenchmarkError
from clipscope_utils.compositional.items import ChoiceItem
from clipscope_utils.compositional.scenes import RELATION_PHRASES, CompositionSpec, synthetic_benchmark

SPEC = CompositionSpec(family="simco", images=5, attributes=("colour", "size"), seed=2)
N = 6


@pytest.fixture(scope="module")
def bench(module_cache):
    return synthetic_benchmark(SPEC, N, progress=False)


def texts(items):
    return [(it.true, it.false) for it in items]


def test_attribute_pair_and_relation_name():
    assert X.attribute_pair("a large red cat and a large blue dog", "a large blue cat and a large red dog") == \
        ("red", "blue")
    assert X.attribute_pair("an orange cube and a small red heart", "a red cube and a small orange heart") == \
        ("orange", "red")
    assert X.attribute_pair("a large red cat and a small blue dog", "a small blue cat and a large red dog") == \
        ("large red", "small blue")
    assert X.relation_name("a cat to the left of a dog") == "to the left of"
    assert X.relation_name("a cat below a dog") == "below"
    with pytest.raises(BenchmarkError, match="not an attribute swap"):
        X.attribute_pair("a cat and a dog", "a cat and a dog")
    with pytest.raises(BenchmarkError, match="cannot tell the relation"):
        X.relation_name("a cat and a dog")


def test_aro_round_trip(bench, tmp_path):
    paths = X.to_aro(bench, tmp_path / "aro")
    assert paths == {"root": tmp_path / "aro"}
    B.check_files("aro", **paths)
    rel, att = B.load_aro(**paths), B.load_aro(**paths, subset="VG-Attribution")
    assert len(rel) == len(bench["relation"]) == N and len(att) == len(bench["attribute"])
    assert texts(rel) == texts(bench["relation"]) and texts(att) == texts(bench["attribute"])
    for loaded, source in zip(rel + att, bench["relation"] + bench["attribute"]):
        assert loaded.image.read_bytes() == source.image.read_bytes()
        with Image.open(loaded.image) as im:
            assert loaded.crop == (0, 0, *im.size)  # the box is the whole image
    rel_cats = B.aro_categories(paths["root"], "VG-Relation")
    assert set(rel_cats.category) <= set(RELATION_PHRASES.values())
    assert rel_cats.category.tolist() == [X.relation_name(it.true) for it in bench["relation"]]
    att_cats = B.aro_categories(paths["root"], "VG-Attribution")
    assert att_cats.category.tolist() == ["_".join(X.attribute_pair(it.true, it.false[0])) for it in bench["attribute"]]
    # every scene image copied once; the report says where each record came from
    assert len(list((paths["root"] / "images").iterdir())) == len({it.image for it in bench["relation"]})
    report = json.loads((paths["root"] / "export.json").read_text())
    assert report["counts"] == {"VG-Relation": N, "VG-Attribution": len(att)}
    assert report["records"]["VG-Relation"] == [it.item_id for it in bench["relation"]]


def test_aro_stand_in_feeds_the_authors_macro(bench, tmp_path):
    paths = X.to_aro(bench, tmp_path / "aro")
    cats = pd.concat([B.aro_categories(paths["root"], s) for s in B.ARO_SUBSETS], ignore_index=True)
    items = B.load_aro(**paths) + B.load_aro(**paths, subset="VG-Attribution")
    frame = pd.DataFrame({"item_id": [it.item_id for it in items], "subset": [it.subset for it in items],
                          "n_false": 1, "correct": [i % 2 == 0 for i in range(len(items))]})
    out = B.paper_b_summary(frame, categories=cats)
    rel = out[out.column == "Relation"]
    assert rel.measure.tolist() == [B.MEASURE_ARO, B.MEASURE_ITEMS]  # no generated relation is symmetric
    att = out[out.column == "Attribute"]
    assert att.measure.tolist() == [B.MEASURE_ITEMS]  # no attribute pair reaches 25 records


def test_sugarcrepe_round_trip(bench, tmp_path):
    paths = X.to_sugarcrepe(bench, tmp_path / "sugar")
    assert paths == {"root": tmp_path / "sugar" / "data", "images": tmp_path / "sugar" / "val2017"}
    B.check_files("sugarcrepe", **paths)
    items = B.load_sugarcrepe(**paths)
    for subset in B.SUGARCREPE_SUBSETS:
        source = bench[X.SUGARCREPE_STANDIN[subset]]
        got = [it for it in items if it.subset == subset]
        assert len(got) == len(source) and texts(got) == texts(source)
        assert [g.image.read_bytes() for g in got] == [s.image.read_bytes() for s in source]
    assert all(len(p.stem) == 12 and p.stem.isdigit() for p in paths["images"].iterdir())
    report = json.loads((tmp_path / "sugar" / "export.json").read_text())
    assert sum(report["counts"].values()) == len(items)


def test_valse_round_trip_and_mapping(bench, tmp_path):
    paths = X.to_valse(bench, tmp_path / "valse")
    B.check_files("valse", **paths)
    items = B.load_valse(**paths)
    assert len(B.load_valse(**paths, valid_only=False)) == len(items)  # every sample validated (3 votes)
    for piece in B.VALSE_PIECES:
        got = [it for it in items if it.subset == piece]
        assert texts(got) == texts(bench[X.VALSE_STANDIN[piece]])
    record = next(iter(json.loads((paths["root"] / "relations.json").read_text()).values()))
    assert record["mturk"] == {"foil": 0, "caption": 3, "other": 0} and record["dataset_idx"].startswith("relation_replace")
    # a piece mapped to None (or left out) gets an empty file, still read by the loader
    paths = X.to_valse(bench, tmp_path / "valse2", pieces={"relations": "relation_replace", "existence": None})
    B.check_files("valse", **paths)
    got = B.load_valse(**paths)
    assert {it.subset for it in got} == {"relations"} and len(got) == N
    with pytest.raises(BenchmarkError, match="unknown VALSE piece"):
        X.to_valse(bench, tmp_path / "valse3", pieces={"action-replacements": "relation"})
    with pytest.raises(BenchmarkError, match="unknown generated subset"):
        X.to_valse(bench, tmp_path / "valse3", pieces={"relations": "colour"})
    assert not (tmp_path / "valse3").exists()


def test_winoground_round_trip_with_clean_ids(bench, tmp_path):
    paths = X.to_winoground(bench, tmp_path / "wino")
    B.check_files("winoground", **paths)
    full = B.load_winoground(**paths)
    clean = B.load_winoground(**paths, clean=True)
    ids = B.winoground_clean_ids()
    assert len(full) == X.WINOGROUND_EXAMPLES and [int(it.item_id) for it in full] == list(range(400))
    assert len(clean) == len(ids) and sorted(int(it.item_id) for it in clean) == sorted(ids)
    pairs = bench["winoground"]
    by_id = {int(it.item_id): it for it in full}
    for k, ex_id in enumerate(sorted(ids)[:2 * N]):  # the clean ids come first, pairs in order
        assert by_id[ex_id].captions == pairs[k % N].captions
        assert [p.read_bytes() for p in by_id[ex_id].images] == [p.read_bytes() for p in pairs[k % N].images]
    assert len(list((paths["root"] / "images").iterdir())) == 2 * N  # each image copied once
    report = json.loads((paths["root"] / "export.json").read_text())
    assert report["counts"] == {"examples": 400, "clean": len(ids), "pairs": N}


def test_writes_are_atomic_and_never_replace_other_folders(bench, tmp_path):
    out = tmp_path / "aro"
    X.to_aro(bench, out)
    with pytest.raises(BenchmarkError, match="already exists"):
        X.to_aro(bench, out)
    X.to_aro(bench, out, overwrite=True)  # an earlier export may be replaced
    real = tmp_path / "real"
    real.mkdir()
    with pytest.raises(BenchmarkError, match="not written by a stand-in writer"):
        X.to_winoground(bench, real, overwrite=True)
    broken = {**bench, "relation": [*bench["relation"][:-1],
                                    ChoiceItem("x", "relation", tmp_path / "gone.png", "a b", ("b a",))]}
    with pytest.raises(BenchmarkError, match="gone.png"):
        X.to_aro(broken, tmp_path / "broken")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aro", "real"]  # nothing half-written left
    with pytest.raises(BenchmarkError, match="not ChoiceItem"):
        X.to_sugarcrepe({**bench, "relation": bench["winoground"]}, tmp_path / "s")
    with pytest.raises(BenchmarkError, match="mapping subset -> items"):
        X.to_winoground(list(bench), tmp_path / "w")
