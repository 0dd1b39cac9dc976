"""The CAE chapter's tables and findings, on hand-made frames: seed statistics (paper B's Table 7), paired gains,
the sweep and ablation grids, retrieval (Table 3), the premise, paper B's numbers beside ours, and the findings."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from clipscope_utils import stats
from clipscope_utils.cae import CAEError
from clipscope_utils.cae.finetune import FinetuneConfig
from clipscope_utils.compositional.items import ItemList
from clipscope_utils.studies import cae as cx
from clipscope_utils.studies import findings

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(base="random:clipscope-tiny:0", scenes=32, batch_size=16, epochs=1, warmup=1)
NB = 200  # bootstrap draws: enough for a test, fast


# ------------------------------------------------------------------------------------------------ stats
@pytest.mark.parametrize("values, level", [([1.0, 2.0, 3.0, 4.0], 0.95), ([0.61, 0.64, 0.58, 0.66, 0.63], 0.95),
                                           ([0.2, 0.5], 0.9)])
def test_t_interval_matches_the_student_t_formula(values, level) -> None:
    x = np.asarray(values)
    sem = x.std(ddof=1) / math.sqrt(len(x))
    want = scipy_stats.t.interval(level, len(x) - 1, loc=x.mean(), scale=sem)
    assert stats.t_interval(values, level) == pytest.approx(want, rel=1e-12)


def test_t_interval_known_value() -> None:
    # mean 2.5, sd sqrt(5/3), t_{0.975, 3} = 3.182446305...
    lo, hi = stats.t_interval([1, 2, 3, 4])
    half = 3.182446305284263 * math.sqrt(5 / 3) / 2
    assert (lo, hi) == pytest.approx((2.5 - half, 2.5 + half), rel=1e-9)


@pytest.mark.parametrize("values", [[], [0.7]])
def test_t_interval_is_nan_under_two_values(values) -> None:
    lo, hi = stats.t_interval(values)
    assert math.isnan(lo) and math.isnan(hi)


# ------------------------------------------------------------------------------------------- seed tables
def _choice_rows(variant, seed, benchmark, correct, subset="s", start=0):
    return [{"variant": variant, "seed": seed, "benchmark": benchmark, "subset": subset, "item_id": str(start + i),
             "n_false": 1, "correct": float(c), "text": np.nan, "image": np.nan, "group": np.nan}
            for i, c in enumerate(correct)]


def _pair_rows(variant, seed, scores, benchmark="winoground", subset="winoground_clean"):
    return [{"variant": variant, "seed": seed, "benchmark": benchmark, "subset": subset, "item_id": str(i),
             "n_false": np.nan, "correct": np.nan, "text": float(t), "image": float(im), "group": float(g)}
            for i, (t, im, g) in enumerate(scores)]


@pytest.fixture
def seeded() -> pd.DataFrame:
    rows = _choice_rows("pretrained", -1, "relation", [1, 1, 1, 1])  # must never enter the seed table
    rows += _choice_rows("CLIP-FT", 0, "relation", [1, 1, 0, 0])  # 0.50
    rows += _choice_rows("CLIP-FT", 1, "relation", [1, 1, 1, 0])  # 0.75
    rows += _choice_rows("CLIP-FT", 2, "relation", [1, 0, 0, 0])  # 0.25
    rows += _choice_rows("CLIP-CAE (attention)", 0, "relation", [1, 1, 1, 0])  # one seed: 0.75
    rows += _pair_rows("CLIP-FT", 0, [(1, 0, 0), (1, 1, 1)])  # group 0.5
    rows += _pair_rows("CLIP-FT", 1, [(1, 1, 1), (1, 1, 1)])  # group 1.0
    return pd.DataFrame(rows)


def test_seed_table_gives_per_seed_mean_sd_and_t_interval(seeded) -> None:
    t = cx.seed_table(seeded)
    assert list(t.columns) == ["variant", "benchmark", "score", "seeds", "mean", "sd", "t_low", "t_high"]
    assert "pretrained" not in set(t.variant)
    ft = t[(t.variant == "CLIP-FT") & (t.benchmark == "relation") & (t.score == "correct")].iloc[0]
    assert ft.seeds == 3 and ft["mean"] == pytest.approx(0.5) and ft.sd == pytest.approx(0.25)
    assert (ft.t_low, ft.t_high) == pytest.approx(stats.t_interval([0.5, 0.75, 0.25]))
    one = t[(t.variant == "CLIP-CAE (attention)") & (t.score == "correct")].iloc[0]
    assert one.seeds == 1 and one["mean"] == pytest.approx(0.75)
    assert math.isnan(one.sd) and math.isnan(one.t_low) and math.isnan(one.t_high)
    grp = t[(t.variant == "CLIP-FT") & (t.benchmark == "winoground") & (t.score == "group")].iloc[0]
    assert grp.seeds == 2 and grp["mean"] == pytest.approx(0.75)
    assert grp.sd == pytest.approx(np.std([0.5, 1.0], ddof=1))
    # the pair rows have no 'correct', the choice rows no 'group': neither spills into the other's rows
    assert set(t[t.benchmark == "relation"].score) == {"correct"}
    assert set(t[t.benchmark == "winoground"].score) == {"text", "image", "group"}


def test_seed_table_of_only_the_base_model_is_empty_with_columns() -> None:
    t = cx.seed_table(pd.DataFrame(_choice_rows("pretrained", -1, "relation", [1, 0])))
    assert t.empty and list(t.columns) == ["variant", "benchmark", "score", "seeds", "mean", "sd", "t_low", "t_high"]


def test_seed_wide_writes_mean_sd_interval_and_seeds_in_percent(seeded) -> None:
    table = cx.seed_table(seeded)
    wide = cx.seed_wide(table)
    assert list(wide.index) == ["CLIP-FT", "CLIP-CAE (attention)"]  # first-seen order, no pretrained
    assert {"relation", "winoground (text)", "winoground (image)", "winoground (group)"} == set(wide.columns)
    lo, hi = stats.t_interval([0.5, 0.75, 0.25])
    assert wide.loc["CLIP-FT", "relation"] == f"50.0 ± 25.0 [{100 * lo:.1f}, {100 * hi:.1f}] (3)"
    assert wide.loc["CLIP-CAE (attention)", "relation"] == "75.0 (1)"  # one seed: no sd, no interval
    assert pd.isna(wide.loc["CLIP-CAE (attention)", "winoground (group)"])


# ------------------------------------------------------------------------------------------ paired gains
def test_paired_gain_pairs_by_subset_when_item_ids_repeat_across_subsets() -> None:
    rows = []
    for variant, rel, att in (("CLIP-FT", [0, 0, 0], [1, 1, 1]), ("CLIP-CAE (attention)", [1, 1, 1], [0, 1, 1]),
                              ("pretrained", [1, 1, 1], [1, 1, 1])):
        seed = -1 if variant == "pretrained" else 0
        rows += _choice_rows(variant, seed, "ARO", rel, subset="VG-Relation")  # item ids "0", "1", "2" ...
        rows += _choice_rows(variant, seed, "ARO", att, subset="VG-Attribution")  # ... and again here
    frame = pd.DataFrame(rows).drop(columns=["text", "image", "group"])
    g = cx.paired_gain(frame, n_boot=NB)
    assert len(g) == 1
    r = g.iloc[0]
    assert (r.variant, r.benchmark, r.score, r.n) == ("CLIP-CAE (attention)", "ARO", "correct", 6)
    # relation: +1, +1, +1; attribute: -1, 0, 0 (paired within each subset)
    assert r.gain == pytest.approx(2 / 6)
    assert r.ci_low <= r.gain <= r.ci_high


def test_paired_gain_pairs_seeds_and_skips_unmatched_items() -> None:
    rows = (_choice_rows("CLIP-FT", 0, "b", [0, 0]) + _choice_rows("CLIP-FT", 1, "b", [1, 1])
            + _choice_rows("CLIP-CAE (gradcam)", 0, "b", [1, 1, 1]) + _choice_rows("CLIP-CAE (gradcam)", 1, "b", [1, 1]))
    g = cx.paired_gain(pd.DataFrame(rows).drop(columns=["text", "image", "group"]), n_boot=NB).iloc[0]
    assert g.n == 4 and g.gain == pytest.approx(0.5)  # seed 0: +1, +1; seed 1: 0, 0; item "2" has no partner


# --------------------------------------------------------------------------------------- sweep / ablation
def test_sweep_gain_pairs_each_sweep_run_with_clip_ft_of_its_seed() -> None:
    grid = pd.DataFrame(_choice_rows("CLIP-FT", 0, "b", [0, 1, 0, 0]) + _choice_rows("CLIP-FT", 1, "b", [1, 1, 1, 1])
                        + _choice_rows("CLIP-CAE (attention)", 0, "b", [1, 1, 1, 1])).drop(columns=["text", "image", "group"])
    sweep = pd.DataFrame(_choice_rows("CLIP-CAE (attention), lr=0.001, λ=10", 0, "b", [1, 1, 1, 0])
                         + _choice_rows("CLIP-FT, lr=0.0005", 0, "b", [0, 0, 0, 0])).drop(columns=["text", "image", "group"])
    gains, note = cx.sweep_gain(sweep, grid, n_boot=NB)
    by = gains.set_index("variant").gain
    assert set(by.index) == {"CLIP-CAE (attention), lr=0.001, λ=10", "CLIP-FT, lr=0.0005"}  # grid's CAE run not in it
    assert by["CLIP-CAE (attention), lr=0.001, λ=10"] == pytest.approx(0.5)  # against seed 0's CLIP-FT only
    assert by["CLIP-FT, lr=0.0005"] == pytest.approx(-0.25)
    assert "CLIP-FT, lr=0.0005" in note
    assert "differ by up to 0.75" in note  # CLIP-FT's seeds: 0.25 and 1.0 on the same benchmark


def test_sweep_gain_without_a_clip_ft_run_of_the_seed_says_so() -> None:
    sweep = pd.DataFrame(_choice_rows("CLIP-CAE (attention), lr=0.001, λ=10", 3, "b", [1, 1]))
    grid = pd.DataFrame(_choice_rows("CLIP-FT", 0, "b", [0, 1]))
    gains, note = cx.sweep_gain(sweep, grid, n_boot=NB)
    assert gains.empty and "no CLIP-FT run" in note


def test_parse_sweep_reads_method_and_lambda() -> None:
    assert cx.parse_sweep(["attention:30", "gradcam:0.5", "gradient:1e-1"]) == [
        ("attention", 30.0), ("gradcam", 0.5), ("gradient", 0.1)]
    assert cx.parse_sweep([]) == []


@pytest.mark.parametrize("item", ["attention", "attention:", "attention:abc", "attention:0", "attention:-2",
                                  "none:5", "saliency:3", "attention:nan", 30])
def test_parse_sweep_names_the_bad_item(item) -> None:
    with pytest.raises(CAEError, match=re.escape(repr(item))):
        cx.parse_sweep(["gradcam:10", item])


def test_sweep_grid_varies_lr_for_clip_ft_and_lambda_at_the_template_lr() -> None:
    template = FinetuneConfig(**TINY, method="attention", lam=30.0, hard_negatives=True, lr=1e-3, seed=3)
    out = cx.sweep_grid(template, [1e-4, 5e-4], ["attention:10", "gradient:5"])
    assert [(c.method, c.lam, c.lr) for c in out] == [("none", 0.0, 1e-4), ("none", 0.0, 5e-4),
                                                      ("attention", 10.0, 1e-3), ("gradient", 5.0, 1e-3)]
    assert all(not c.hard_negatives and c.itc and c.seed == 3 for c in out)
    assert [c.variant for c in out] == ["CLIP-FT", "CLIP-FT", "CLIP-CAE (attention)", "CLIP-CAE (gradient)"]
    # every other knob is the template's
    assert all(c.replace(method="none", lam=0.0, lr=1e-3) == template.replace(method="none", hard_negatives=False)
               for c in out)


def test_sweep_grid_restores_the_contrastive_loss_of_an_ablation_template() -> None:
    template = FinetuneConfig(**TINY, method="attention", lam=30.0, itc=False)
    (c,) = cx.sweep_grid(template, [], ["gradcam:50"])
    assert c.itc and c.method == "gradcam" and c.lam == 50.0
    with pytest.raises(CAEError, match="'attention:x'"):
        cx.sweep_grid(template, [1e-4], ["attention:x"])


def test_ablation_grid_is_one_attribution_only_run_per_seed() -> None:
    configs = cx.grid(["none", "attention", "gradcam"], [False, True], [0, 1, 2],
                      {"attention": 30.0, "gradcam": 50.0}, **TINY)
    arms = cx.ablation_grid(configs, "attention")
    assert [c.seed for c in arms] == [0, 1, 2]
    assert all(not c.itc and c.method == "attention" and c.lam == 30.0 and not c.hard_negatives for c in arms)
    assert {c.variant for c in arms} == {"CAE attribution loss only (attention)"}
    with pytest.raises(CAEError, match="'perturbation'"):
        cx.ablation_grid(configs, "perturbation")
    hn_only = cx.grid(["attention"], [True], [0], {"attention": 30.0}, **TINY)
    with pytest.raises(CAEError, match="without hard negatives"):
        cx.ablation_grid(hn_only, "attention")


@pytest.fixture(scope="module")
def smoke_cae() -> dict:
    from clipscope_utils.book.profiles import load_profile
    from clipscope_utils.book.runner import toc_notebooks

    return dict(load_profile(ROOT / "profiles", "smoke", toc_notebooks(ROOT)).params["cae"])


def test_chapter_configs_of_the_smoke_profile(smoke_cae) -> None:
    p = smoke_cae
    configs, ablation, sweep = cx.chapter_configs(p)
    assert len(configs) == len(p["methods"]) * len(p["hard_negatives"]) * len(p["seeds"])
    assert len(ablation) == len(p["seeds"]) and all(not c.itc for c in ablation)
    assert all(c.method == p["ablation_method"] for c in ablation)
    assert len(sweep) == len(p["sweep_lr"]) + len(p["sweep_lambda"])
    assert all(c.device == "cpu" for c in configs + ablation + sweep)
    assert {c.base for c in configs} == {p["base"]}
    assert cx.chapter_configs({**p, "ablation_method": ""})[1] == []


def test_chapter_configs_refuses_a_warmup_as_long_as_training(smoke_cae) -> None:
    p = smoke_cae
    steps = p["epochs"] * (p["n_scenes"] // p["batch_size"])
    with pytest.raises(CAEError, match="warm-up"):
        cx.chapter_configs({**p, "warmup": steps})
    with pytest.raises(CAEError, match="sweep_lambda item"):
        cx.chapter_configs({**p, "sweep_lambda": ["attention"]})


# ---------------------------------------------------------------------------------------------- retrieval
def _hits(variant, seed, dataset="MSCOCO", pattern=None, queries=4, ks=(1, 5)):
    rows = []
    for direction in ("text->image", "image->text"):
        for k in ks:
            for q in range(queries):
                hit = pattern(direction, k, q) if pattern else True
                rows.append({"variant": variant, "seed": seed, "dataset": dataset, "direction": direction,
                             "query": q, "k": k, "hit": bool(hit)})
    return rows


@pytest.fixture
def hits() -> pd.DataFrame:
    rows = _hits("pretrained", -1, pattern=lambda d, k, q: q < 1 or k == 5)  # R@1 0.25, R@5 1
    rows += _hits("CLIP-CAE (attention)", 0, pattern=lambda d, k, q: q < 3 or k == 5)  # R@1 0.75
    rows += _hits("CLIP-CAE (attention)", 1, pattern=lambda d, k, q: q < 2 or k == 5)  # R@1 0.50
    rows += _hits("CLIP-FT", 0, pattern=lambda d, k, q: d == "image->text")  # text->image nothing
    return pd.DataFrame(rows)


def test_retrieval_gain_is_paired_over_queries_per_set_direction_and_k(hits) -> None:
    g = cx.retrieval_gain(hits, n_boot=NB)
    assert list(g.columns) == ["variant", "dataset", "direction", "k", "n", "gain", "ci_low", "ci_high"]
    assert "pretrained" not in set(g.variant)
    assert len(g) == 2 * 2 * 2  # two variants, two directions, two ks
    cae = g[(g.variant == "CLIP-CAE (attention)") & (g.direction == "text->image") & (g.k == 1)].iloc[0]
    # seed 0: queries 1, 2 gain +1; seed 1: query 1 gains +1 -> 3 / 8
    assert cae.n == 8 and cae.gain == pytest.approx(3 / 8)
    assert cae.ci_low <= cae.gain <= cae.ci_high
    assert g[(g.variant == "CLIP-CAE (attention)") & (g.k == 5)].gain.eq(0).all()
    ft = g[(g.variant == "CLIP-FT") & (g.direction == "text->image") & (g.k == 1)].iloc[0]
    assert ft.n == 4 and ft.gain == pytest.approx(-0.25)
    assert isinstance(cae.k, (int, np.integer))


def test_retrieval_gain_drops_queries_the_baseline_lacks_and_handles_no_hits(hits) -> None:
    base_missing = hits[~((hits.variant == "pretrained") & (hits["query"] == 3))]
    g = cx.retrieval_gain(base_missing, n_boot=NB)
    assert set(g.n) == {6, 3}  # CAE: two seeds x 3 queries; CLIP-FT: 3 queries
    empty = cx.retrieval_gain(pd.DataFrame())
    assert empty.empty and list(empty.columns) == ["variant", "dataset", "direction", "k", "n", "gain", "ci_low",
                                                   "ci_high"]


def test_retrieval_table_puts_table_3_beside_the_same_model_set_and_column(hits) -> None:
    extra = pd.DataFrame(_hits("pretrained", -1, dataset="generated") + _hits("pretrained", -1, ks=(10,)))
    t = cx.retrieval_table(pd.concat([hits, extra], ignore_index=True), n_boot=NB)

    def cell(variant, dataset="MSCOCO", direction="text->image", k=1):
        return t[(t.variant == variant) & (t.dataset == dataset) & (t.direction == direction) & (t.k == k)].iloc[0]

    assert cell("pretrained").paper == pytest.approx(0.302)  # Table 3 'CLIP', MSCOCO text->image R@1
    assert cell("pretrained", direction="image->text", k=5).paper == pytest.approx(0.749)
    assert cell("CLIP-CAE (attention)").paper == pytest.approx(0.383)
    assert math.isnan(cell("CLIP-FT").paper)  # Table 3 has no CLIP-FT row
    assert math.isnan(cell("pretrained", k=10).paper)  # nor R@10
    assert math.isnan(cell("pretrained", dataset="generated").paper)
    r = cell("CLIP-CAE (attention)")
    assert r.n == 8 and r.recall == pytest.approx(5 / 8)  # seeds pooled


def test_retrieval_wide_orders_pretrained_first_and_shows_the_paper_value(hits) -> None:
    t = cx.retrieval_table(hits, n_boot=NB)
    wide = cx.retrieval_wide(t)
    assert list(wide.index) == ["pretrained", "CLIP-CAE (attention)", "CLIP-FT"]
    assert "MSCOCO text->image R@1" in wide.columns and "MSCOCO image->text R@5" in wide.columns
    assert len(wide.columns) == 4
    assert wide.loc["pretrained", "MSCOCO text->image R@5"] == "1.00 [1.00, 1.00] (4) | paper 0.56"
    assert wide.loc["pretrained", "MSCOCO text->image R@1"].endswith("(4) | paper 0.30")
    assert wide.loc["CLIP-FT", "MSCOCO text->image R@1"] == "0.00 [0.00, 0.00] (4)"


# ------------------------------------------------------------------------------------------------ premise
@pytest.fixture
def premise() -> pd.DataFrame:
    rows = [("pretrained", "attention", 40, 0.5, 0.8, 0.4, 0.8, 0.7, 0.9),
            ("pretrained", "gradcam", 40, 1e6, -500.0, np.nan, 0.3, 0.2, 0.4),
            ("pretrained", "gradient", 40, 1.2, 99.5, 1.5, 0.5, 0.4, 0.6),
            ("CLIP-FT", "attention", 40, 0.1, 0.1, 0.1, 0.99, 0.98, 1.0)]
    return pd.DataFrame(rows, columns=["model", "method", "n", "ratio", "attribute_ratio", "relation_ratio",
                                       "share_comp_below_obj", "ci_low", "ci_high"]).assign(object=1.0,
                                                                                            composition=0.5)


def test_premise_table_formats_ratios_of_one_model(premise) -> None:
    t = cx.premise_table(premise)
    assert list(t.columns) == ["method", "captions", "attribute / object", "relation / object",
                               "composition / object", "composition below object"]
    assert list(t.method) == ["attention", "gradcam", "gradient"]  # the pretrained model's rows only
    assert list(t["composition / object"]) == ["0.50", ">100", "1.20"]
    assert list(t["attribute / object"]) == ["0.80", "<-100", "99.50"]
    assert list(t["relation / object"]) == ["0.40", "–", "1.50"]
    assert t["composition below object"].iloc[0] == "0.80 [0.70, 0.90]"
    assert list(cx.premise_table(premise, model="CLIP-FT").method) == ["attention"]
    every = cx.premise_table(premise, model=None)  # every model, named in a column of its own
    assert every.columns[0] == "model" and len(every) == len(premise)
    assert list(every[every.model == "pretrained"]["composition / object"]) == ["0.50", ">100", "1.20"]


def test_premise_note_says_where_the_premise_holds_and_reverses(premise) -> None:
    note = cx.premise_note(premise, "held-out captions")
    assert note.startswith("On held-out captions:")
    assert "under **attention** (95 % interval above one half)" in note
    assert "the reverse under **gradcam**." in note
    assert "Relation tokens get less than object tokens under attention (relation / object below 1)" in note
    assert "gradient" not in note  # its interval straddles one half, its relation ratio is above 1
    assert "has work to do only where the premise holds" in note


def test_premise_note_when_no_method_holds(premise) -> None:
    none = premise[premise.method == "gradient"]
    note = cx.premise_note(none, "x")
    assert "**no method**" in note and "reverse" not in note
    assert "Relation tokens are not behind object tokens under any method" in note
    assert "The premise does not hold on this base" in note


# -------------------------------------------------------------------------------------- paper B beside ours
def _categories() -> pd.DataFrame:
    rel = [("VG-Relation", str(i), "on" if i < 4 else "wearing") for i in range(6)]
    # VG-Attribution: categories are counted in the whole file; 'big_small' has under 25 records and drops out
    att = [("VG-Attribution", str(i), "red_blue" if i < 30 else "big_small") for i in range(35)]
    return pd.DataFrame(rel + att, columns=["subset", "item_id", "category"])


def _beside_frame() -> pd.DataFrame:
    rows = []
    for variant in ("CLIP-FT", "CLIP-CAE (attention)"):
        for seed in (0, 1):
            rows += _choice_rows(variant, seed, "ARO relation", [1, 1, 1, 1, 0, 0], subset="VG-Relation")
            att = _choice_rows(variant, seed, "ARO attribute", [1, 0, 1, 0], subset="VG-Attribution")
            att += _choice_rows(variant, seed, "ARO attribute", [1, 1], subset="VG-Attribution", start=30)
            rows += att
            rows += _pair_rows(variant, seed, [(1, 0, 0), (1, 1, 1), (0, 0, 0), (1, 1, 0)],
                               benchmark="Winoground (clean)")
    return pd.DataFrame(rows)


def test_paper_b_beside_mixes_choice_and_pair_rows_and_places_the_paper_value() -> None:
    t = cx.paper_b_beside(_beside_frame(), n_boot=NB, categories=_categories())
    assert list(dict.fromkeys(t.variant)) == ["CLIP-FT", "CLIP-CAE (attention)"]
    ft = t[t.variant == "CLIP-FT"]
    assert set(ft.paper_row) == {"Table 1: CLIP-FT"}
    assert set(zip(ft.benchmark, ft.column)) == {("ARO", "Relation"), ("ARO", "Attribute"), ("Winoground", "Text"),
                                                 ("Winoground", "Image"), ("Winoground", "Group")}

    def row(frame, bench, column, paper_measure):
        return frame[(frame.benchmark == bench) & (frame.column == column)
                     & (frame.paper_measure == paper_measure)].iloc[0]

    macro, items = row(ft, "ARO", "Relation", True), row(ft, "ARO", "Relation", False)
    assert macro.accuracy == pytest.approx(0.5)  # 'on' 1.0, 'wearing' 0.0: mean over relations
    assert items.accuracy == pytest.approx(4 / 6)
    assert macro.paper == pytest.approx(0.647) and math.isnan(items.paper)  # the paper value on its measure only
    att = row(ft, "ARO", "Attribute", True)
    assert att.n == 8 and att.accuracy == pytest.approx(0.5)  # big_small (< 25 records) left out
    assert att.paper == pytest.approx(0.663)
    assert row(ft, "Winoground", "Text", True).accuracy == pytest.approx(0.75)
    assert row(ft, "Winoground", "Group", True).accuracy == pytest.approx(0.25)
    assert [row(ft, "Winoground", c, True).paper for c in ("Text", "Image", "Group")] == pytest.approx(
        [0.331, 0.088, 0.055])
    assert t[~t.paper_measure].paper.isna().all()
    assert t[t.paper_measure].paper.notna().all()
    cae = t[t.variant == "CLIP-CAE (attention)"]
    assert set(cae.paper_row) == {"Table 1: CLIP-CAE (Attention-Based)"}
    assert row(cae, "ARO", "Relation", True).paper == pytest.approx(0.698)
    assert row(cae, "Winoground", "Image", True).paper == pytest.approx(0.125)


def test_paper_b_beside_without_categories_gives_only_item_rows_without_aro_paper_values() -> None:
    t = cx.paper_b_beside(_beside_frame(), n_boot=NB)
    aro = t[t.benchmark == "ARO"]
    assert len(aro) == 4 and not aro.paper_measure.any() and aro.paper.isna().all()
    assert t[t.benchmark == "Winoground"].paper.notna().all()


def test_paper_b_beside_hard_negative_variant_reads_table_2() -> None:
    f = _beside_frame()
    f = f[f.variant == "CLIP-FT"].assign(variant="CLIP-FT + HN")
    t = cx.paper_b_beside(f, n_boot=NB, categories=_categories())
    assert set(t.paper_row) == {"Table 2: CLIP-FT with HN"}


# ---------------------------------------------------------------------------------------------- dropped
def test_dropped_note_counts_what_the_loaders_left_out() -> None:
    published = {"ARO relation": [object()], "SVO-Probes": ItemList([object()], dropped={"missing image": 3,
                                                                                          "no single type": 2}),
                 "ComVG": ItemList([], dropped={"missing image": 0})}
    assert cx.dropped_note(published) == "Rows left out by the loaders — SVO-Probes: 3 missing image, 2 no single type."
    assert cx.dropped_note({"ComVG": ItemList([object()])}) == "No benchmark row was left out."
    assert cx.dropped_note({}) == "No benchmark row was left out."


# ---------------------------------------------------------------------------------------------- findings
def _gains(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["variant", "benchmark", "score", "n", "gain", "ci_low", "ci_high"])


def test_cae_ablation_reads_a_negative_interval_as_reproduced() -> None:
    gains = _gains([("CAE attribution loss only (attention)", "relation", "correct", 50, -0.1, -0.2, -0.05),
                    ("CAE attribution loss only (gradcam)", "relation", "correct", 50, 0.1, 0.05, 0.2),
                    ("CAE attribution loss only (gradient)", "relation", "correct", 5, -0.3, -0.5, -0.1),
                    ("CAE attribution loss only (attention)", "attribute", "correct", 50, -0.1, -0.2, -0.05),
                    ("CLIP-CAE (attention)", "relation", "correct", 50, -0.1, -0.2, -0.05)])
    out = findings.cae_ablation(gains, "synthetic")
    assert [f.model for f in out] == ["CAE attribution loss only (attention)", "CAE attribution loss only (gradcam)",
                                      "CAE attribution loss only (gradient)"]
    assert [f.verdict for f in out] == ["reproduced", "reversed", "not shown"]
    assert all(f.claim == "B-ABL" for f in out)
    assert out[2].note == f"too few samples for a verdict (n < {findings.MIN_N})."
    assert out[0].note == "" and out[0].value == pytest.approx(-0.1) and out[0].n == 50
    assert out[0].paper_value.startswith("-0.028 (Table 5 average")
    assert findings.cae_ablation(pd.DataFrame(), "synthetic") == []


def _ret_gains() -> pd.DataFrame:
    return pd.DataFrame([("CLIP-CAE (attention)", "generated", "text->image", 1, 40, 0.1, 0.05, 0.15),
                         ("CLIP-CAE (gradcam)", "generated", "text->image", 1, 40, 0.0, -0.05, 0.05),
                         ("CLIP-CAE (attention)", "generated", "text->image", 5, 40, 0.1, 0.05, 0.15),
                         ("CLIP-CAE (attention)", "generated", "image->text", 1, 40, 0.1, 0.05, 0.15)],
                        columns=["variant", "dataset", "direction", "k", "n", "gain", "ci_low", "ci_high"])


def test_cae_retrieval_own_measure_labels_it_and_has_no_paper_value() -> None:
    out = findings.cae_retrieval(_ret_gains(), "generated scenes", own_measure=True)
    assert [f.model for f in out] == ["CLIP-CAE (attention) · generated", "CLIP-CAE (gradcam) · generated"]
    assert all(f.paper_value == "" and f.measure.startswith("own measure:") for f in out)
    assert all("generated scenes, not COCO" in f.measure for f in out)
    assert [f.verdict for f in out] == ["reproduced", "not shown"]
    assert [f.primary for f in out] == [True, False]


def test_cae_retrieval_on_coco_carries_table_3() -> None:
    out = findings.cae_retrieval(_ret_gains().assign(dataset="MSCOCO"), "COCO 5k", own_measure=False)
    assert len(out) == 2
    assert all(f.paper_value.startswith("+0.081 (MSCOCO 5k text->image R@1") for f in out)
    assert all(not f.measure.startswith("own measure") for f in out)
    assert findings.cae_retrieval(pd.DataFrame(), "x", own_measure=True) == []


def test_cae_benchmarks_primary_row_and_no_hard_negative_rows() -> None:
    gains = _gains([("CLIP-CAE (attention)", "ARO relation", "correct", 100, 0.05, 0.01, 0.09),
                    ("CLIP-CAE (attention)", "SugarCrepe", "correct", 100, 0.0, -0.02, 0.02),
                    ("CLIP-CAE (gradcam)", "ARO relation", "correct", 100, -0.05, -0.09, -0.01),
                    ("CLIP-CAE (attention) + HN", "ARO relation", "correct", 100, 0.05, 0.01, 0.09),
                    ("CAE attribution loss only (attention)", "ARO relation", "correct", 100, 0.05, 0.01, 0.09),
                    ("CLIP-CAE (attention)", "Winoground (clean)", "text", 50, 0.05, 0.01, 0.09),
                    ("CLIP-CAE (attention)", "Winoground (clean)", "group", 50, 0.05, 0.01, 0.09)])
    out = findings.cae_benchmarks(gains, "published")
    assert [(f.model, f.measure.split(",")[0]) for f in out] == [
        ("CLIP-CAE (attention)", "ARO relation accuracy"), ("CLIP-CAE (attention)", "SugarCrepe accuracy"),
        ("CLIP-CAE (gradcam)", "ARO relation accuracy"), ("CLIP-CAE (attention)", "Winoground (clean) group score")]
    assert [f.primary for f in out] == [True, False, False, False]
    assert [f.verdict for f in out] == ["reproduced", "not shown", "reversed", "reproduced"]
    assert all(f.claim == "B-BENCH" for f in out)
    assert findings.cae_benchmarks(pd.DataFrame(), "published") == []


def test_cae_gain_leaves_out_the_attribution_only_rows() -> None:
    gains = _gains([("CLIP-CAE (attention)", "relation", "correct", 100, 0.05, 0.01, 0.09),
                    ("CAE attribution loss only (attention)", "relation", "correct", 100, -0.05, -0.09, -0.01),
                    ("CLIP-CAE (gradient)", "relation", "correct", 100, 0.0, -0.03, 0.03),
                    ("CLIP-CAE (attention)", "attribute", "correct", 100, 0.05, 0.01, 0.09)])
    out = findings.cae_gain(gains, "synthetic")
    assert [f.model for f in out] == ["CLIP-CAE (attention)", "CLIP-CAE (gradient)"]
    assert [f.verdict for f in out] == ["reproduced", "not shown"]
    assert [f.primary for f in out] == [True, False]
    assert all(f.claim == "B-CAE" for f in out)
