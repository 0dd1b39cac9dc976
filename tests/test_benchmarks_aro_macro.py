"""ARO reported as its authors do: the macro accuracy over relations (symmetric ones left out) and over attribute
pairs with at least 25 records, on constructed frames with known per-category accuracies, and paper B's summary
with and without the categories."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from clipscope_utils.compositional import benchmarks as B
from clipscope_utils.compositional.benchmarks import (
    MEASURE_ARO, MEASURE_ITEMS, MEASURE_SUBSETS, BenchmarkError, aro_macro, aro_symmetric_relations, paper_b_summary)


def category_frame(subset, spec):
    """spec: [(category, n_right, n_wrong)] -> (evaluate()-like frame, aro_categories()-like frame)"""
    rows, cats = [], []
    for category, right, wrong in spec:
        for i in range(right + wrong):
            item_id = str(len(rows))
            rows.append({"item_id": item_id, "subset": subset, "n_false": 1, "correct": i < right})
            cats.append({"item_id": item_id, "subset": subset, "category": category})
    return pd.DataFrame(rows), pd.DataFrame(cats)


# on 3/4, wearing 1/2; "next to" and "by" are in the authors' symmetric list (0/5, 0/3)
REL = [("on", 3, 1), ("wearing", 1, 1), ("next to", 0, 5), ("by", 0, 3)]
# white_black 20/25 and red_blue 15/30 count; big_small has 24 records (< 25) and is dropped though all right
ATT = [("white_black", 20, 5), ("red_blue", 15, 15), ("big_small", 24, 0)]


@pytest.fixture
def aro():
    rel, rel_cats = category_frame("VG-Relation", REL)
    att, att_cats = category_frame("VG-Attribution", ATT)
    return (pd.concat([rel, att], ignore_index=True), pd.concat([rel_cats, att_cats], ignore_index=True))


def test_symmetric_relations_bundled_with_source():
    names = aro_symmetric_relations()
    assert len(names) == 157 and len(set(names)) == 157
    assert {"by", "of", "near", "next to", "with", "beside", "around", "sitting next to"} <= set(names)
    assert not {"on", "wearing", "has", "holding", "in", "to the left of"} & set(names)
    doc = json.loads(B.ARO_SYMMETRIC_JSON.read_text())
    assert "mertyg/vision-language-models-are-bows" in doc["source"] and "81fdd20" in doc["source"]


def test_aro_macro_authors_rules(aro):
    frame, cats = aro
    out = aro_macro(frame, cats).set_index("subset")
    rel, att = out.loc["VG-Relation"], out.loc["VG-Attribution"]
    assert rel.macro_accuracy == pytest.approx((3 / 4 + 1 / 2) / 2)  # symmetric relations left out
    assert rel.n == 6 and rel.n_categories == 2
    assert att.macro_accuracy == pytest.approx((20 / 25 + 15 / 30) / 2)  # big_small (24 records) dropped
    assert att.n == 55 and att.n_categories == 2
    assert (out.ci_low <= out.macro_accuracy).all() and (out.macro_accuracy <= out.ci_high).all()
    # item-level accuracy would differ: 4/14 and 59/79
    assert frame[frame.subset == "VG-Relation"].correct.mean() == pytest.approx(4 / 14)


def test_aro_macro_counts_records_not_rows(aro):
    frame, cats = aro
    pooled = pd.concat([frame.assign(seed=0), frame.assign(seed=1)], ignore_index=True)  # big_small: 48 rows
    out = aro_macro(pooled, cats).set_index("subset")
    assert out.loc["VG-Attribution"].n_categories == 2 and out.loc["VG-Attribution"].n == 110
    assert out.loc["VG-Attribution"].macro_accuracy == pytest.approx(0.65)
    # a subsample keeps white_black (25 records in the file) though only 10 of its items were scored
    sub = frame[~((cats.category == "white_black") & (frame.item_id.astype(int) >= 10))]
    out = aro_macro(sub, cats).set_index("subset")
    assert out.loc["VG-Attribution"].n_categories == 2 and out.loc["VG-Attribution"].n == 40


def test_aro_macro_only_present_subsets_and_empty(aro):
    frame, cats = aro
    rel_only = frame[frame.subset == "VG-Relation"]
    assert aro_macro(rel_only, cats).subset.tolist() == ["VG-Relation"]
    few, few_cats = category_frame("VG-Attribution", [("a_b", 3, 1)])  # no pair reaches 25 records
    out = aro_macro(few, few_cats)
    assert out.empty and list(out.columns) == ["subset", "n", "n_categories", "macro_accuracy", "ci_low", "ci_high"]


def test_aro_macro_errors(aro):
    frame, cats = aro
    with pytest.raises(BenchmarkError, match="columns"):
        aro_macro(frame, cats.drop(columns="category"))
    with pytest.raises(BenchmarkError, match="repeat"):
        aro_macro(frame, pd.concat([cats, cats.iloc[:1]]))
    with pytest.raises(BenchmarkError, match="no category"):
        aro_macro(frame, cats.iloc[2:])


def test_paper_b_summary_without_categories_is_item_level(aro):
    frame, _ = aro
    out = paper_b_summary(frame)
    assert list(out.columns) == ["benchmark", "column", "measure", "subsets", "n", "n_categories", "accuracy",
                                 "ci_low", "ci_high", "chance", "paper_measure"]
    assert out[["benchmark", "column"]].values.tolist() == [["ARO", "Relation"], ["ARO", "Attribute"]]
    assert (out.measure == MEASURE_ITEMS).all() and not out.paper_measure.any() and out.n_categories.isna().all()
    assert out.accuracy.tolist() == pytest.approx([4 / 14, 59 / 79]) and out.n.tolist() == [14, 79]


def test_paper_b_summary_with_categories(aro):
    frame, cats = aro
    sugar = pd.DataFrame([{"item_id": str(i), "subset": s, "n_false": 1, "correct": i < 2}
                          for s in ("replace_att", "swap_att", "add_att", "replace_rel") for i in range(4)])
    out = paper_b_summary(pd.concat([frame, sugar], ignore_index=True), categories=cats)
    aro_rows = out[out.benchmark == "ARO"]
    assert aro_rows[["column", "measure"]].values.tolist() == [
        ["Relation", MEASURE_ARO], ["Relation", MEASURE_ITEMS], ["Attribute", MEASURE_ARO], ["Attribute", MEASURE_ITEMS]]
    assert aro_rows.paper_measure.tolist() == [True, False, True, False]
    macro = aro_rows[aro_rows.measure == MEASURE_ARO]
    assert macro.accuracy.tolist() == pytest.approx([0.625, 0.65])
    assert macro.n.tolist() == [6, 55] and macro.n_categories.tolist() == [2, 2]
    assert (macro.ci_low <= macro.accuracy).all() and (macro.accuracy <= macro.ci_high).all()
    assert macro.chance.tolist() == [0.5, 0.5]
    items = aro_rows[aro_rows.measure == MEASURE_ITEMS]
    assert items.accuracy.tolist() == pytest.approx([4 / 14, 59 / 79])
    # other benchmarks keep their one row, unchanged by categories
    other = out[out.benchmark != "ARO"].set_index("column")
    assert other.measure.to_dict() == {"Relation": MEASURE_ITEMS, "Attribute": MEASURE_SUBSETS}
    assert other.paper_measure.all() and other.accuracy.tolist() == pytest.approx([0.5, 0.5])
    # categories but no ARO subset in the frame: nothing to add
    plain = paper_b_summary(sugar, categories=cats)
    assert plain.drop(columns="n_categories").equals(paper_b_summary(sugar).drop(columns="n_categories"))


def test_paper_b_summary_no_macro_row_when_no_category_counts():
    frame, cats = category_frame("VG-Attribution", [("a_b", 3, 1), ("c_d", 2, 2)])
    out = paper_b_summary(frame, categories=cats)
    assert out.measure.tolist() == [MEASURE_ITEMS] and not out.paper_measure.any()
    assert np.isclose(out.accuracy[0], 5 / 8)
