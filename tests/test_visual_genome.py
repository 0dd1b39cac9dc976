"""Paper B's perturbation vocabularies (appendix I) from Visual Genome's scene-graph label file or a plain list file."""

import json

import pytest

from clipscope_utils.datasets import DatasetError
from clipscope_utils.datasets.visual_genome import (INSIGNIFICANT_RELATIONS, MERGED_RELATIONS, filter_relations,
                                                    load_vocabularies, to_vg_dicts)

#: the 50 predicates of VG-SGG-dicts-with-attri.json in index order (KaihuaTang/Scene-Graph-Benchmark.pytorch,
#: datasets/vg/), so the relation filter is checked on the real list
VG_PREDICATES = [
    "above", "across", "against", "along", "and", "at", "attached to", "behind", "belonging to", "between",
    "carrying", "covered in", "covering", "eating", "flying in", "for", "from", "growing on", "hanging from", "has",
    "holding", "in", "in front of", "laying on", "looking at", "lying on", "made of", "mounted on", "near", "of",
    "on", "on back of", "over", "painted on", "parked on", "part of", "playing", "riding", "says", "sitting on",
    "standing on", "to", "under", "using", "walking in", "walking on", "watching", "wearing", "wears", "with",
]


def _vocab(n_objects=150, n_attributes=200):
    return {"object": [f"object{i}" for i in range(n_objects)],
            "attribute": [f"attribute{i}" for i in range(n_attributes)], "relation": VG_PREDICATES}


def test_the_scene_graph_file_gives_150_objects_200_attributes_and_36_relations(tmp_path) -> None:
    path = to_vg_dicts(_vocab(), tmp_path / "VG-SGG-dicts-with-attri.json")
    raw = json.loads(path.read_text())
    assert raw["idx_to_label"]["1"] == "object0" and raw["predicate_to_idx"]["above"] == 1
    vocab = load_vocabularies(path)
    assert set(vocab) == {"object", "attribute", "relation"}
    assert vocab["object"] == _vocab()["object"] and len(vocab["attribute"]) == 200
    assert len(vocab["relation"]) == 36  # paper B's count (our word list, see the module)
    assert not {"of", "for", "with", "above"} & set(vocab["relation"])
    assert {"on", "wearing", "lying on", "in front of"} <= set(vocab["relation"])
    assert vocab["relation"] == [r for r in VG_PREDICATES if r in vocab["relation"]]  # index order kept
    assert len(load_vocabularies(path, drop=(), merge={})["relation"]) == 50


def test_index_order_not_file_order(tmp_path) -> None:
    path = tmp_path / "v.json"
    path.write_text(json.dumps({"idx_to_label": {"10": "zebra", "2": "bike", "1": "man", **{str(i): f"o{i}" for i in range(3, 10)}},
                                "idx_to_attribute": {"1": "red"}, "idx_to_predicate": {"2": "on", "1": "of"}}))
    vocab = load_vocabularies(path)
    assert vocab["object"][:3] == ["man", "bike", "o3"] and vocab["object"][-1] == "zebra"
    assert vocab["relation"] == ["on"]


def test_merges_only_drop_a_relation_whose_synonym_is_kept() -> None:
    assert filter_relations(["above", "below"]) == ["above", "below"]  # "on" absent: "above" stays
    assert filter_relations(["above", "on", "Of"]) == ["on"]
    assert filter_relations(["a", "b"], drop=("a",), merge={"b": "c"}) == ["b"]
    assert set(MERGED_RELATIONS.values()).isdisjoint(MERGED_RELATIONS) and "with" in INSIGNIFICANT_RELATIONS


def test_plain_lists_are_read_as_given(tmp_path) -> None:
    path = tmp_path / "own.json"
    path.write_text(json.dumps({"object": ["cat"], "attribute": ["red"], "relation": ["of", "on"]}))
    assert load_vocabularies(path) == {"object": ["cat"], "attribute": ["red"], "relation": ["of", "on"]}


@pytest.mark.parametrize("content, message", [
    ("{oops", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ({"idx_to_label": {"1": "a"}, "idx_to_predicate": {"1": "on"}}, r"lacks \['idx_to_attribute'\].*with-attri"),
    ({"idx_to_label": {"x": "a"}, "idx_to_predicate": {"1": "on"}, "idx_to_attribute": {"1": "red"}},
     "not an integer index: 'x'"),
    ({"idx_to_label": {"2": "a"}, "idx_to_predicate": {"1": "on"}, "idx_to_attribute": {"1": "red"}},
     r"indices must be 1\.\.1"),
    ({"idx_to_label": {"1": "a", "2": "a"}, "idx_to_predicate": {"1": "on"}, "idx_to_attribute": {"1": "red"}},
     r"'idx_to_label' repeats \['a'\]"),
    ({"idx_to_label": {"1": "a"}, "idx_to_predicate": {"1": "of"}, "idx_to_attribute": {"1": "red"}},
     "no relation is left"),
    ({"object": ["cat"], "attribute": ["red"]}, r"lacks \['relation'\]"),
    ({"object": ["cat"], "attribute": [], "relation": ["on"]}, "'attribute' must be a non-empty list"),
    ({"object": ["cat", 3], "attribute": ["red"], "relation": ["on"]}, "non-words, e.g. 3"),
])
def test_errors_name_the_file_and_key(tmp_path, content, message) -> None:
    path = tmp_path / "v.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(DatasetError, match=message):
        load_vocabularies(path)


def test_missing_file_and_bad_writer_input(tmp_path) -> None:
    with pytest.raises(DatasetError, match="nope.json is missing"):
        load_vocabularies(tmp_path / "nope.json")
    with pytest.raises(DatasetError, match="must map exactly"):
        to_vg_dicts({"object": ["a"]}, tmp_path / "x.json")
    with pytest.raises(DatasetError, match="repeats"):
        to_vg_dicts({"object": ["a", "a"], "attribute": ["r"], "relation": ["on"]}, tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()
