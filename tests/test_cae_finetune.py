"""CAE fine-tuning and the experiment helpers: config checks, caching, determinism, tables."""

import numpy as np
import pandas as pd
import pytest
import torch

from clipscope_utils.cae import CAEError
from clipscope_utils.studies import cae as ex
from clipscope_utils.cae.finetune import FinetuneConfig, FinetuneData, finetune, run_key

TINY = dict(base="random:clipscope-tiny:0", scenes=32, batch_size=16, epochs=1, warmup=1)


def test_config_refuses_bad_knobs_before_any_work():
    with pytest.raises(CAEError, match="method must be one of"):
        FinetuneConfig(method="saliency")
    with pytest.raises(CAEError, match="lam > 0"):
        FinetuneConfig(method="attention", lam=0.0)
    with pytest.raises(CAEError, match="at least one batch"):
        FinetuneConfig(scenes=8, batch_size=16)
    with pytest.raises(CAEError, match="negative_kinds"):
        FinetuneConfig(negative_kinds=("noun_swap",))
    with pytest.raises(CAEError, match="temperature"):
        FinetuneConfig(method="gradient", lam=1.0, temperature=0.0)


def test_knobs_a_method_ignores_do_not_split_the_cache():
    assert FinetuneConfig(method="none", lam=5.0) == FinetuneConfig(method="none")
    assert FinetuneConfig(method="attention", lam=1.0, temperature=7.0) == FinetuneConfig(method="attention", lam=1.0)
    ident = {"weights_sha256": "abc"}
    keys = {run_key(c, ident) for c in (FinetuneConfig(), FinetuneConfig(hard_negatives=True),
                                        FinetuneConfig(method="attention", lam=1.0),
                                        FinetuneConfig(method="attention", lam=2.0), FinetuneConfig(seed=1))}
    assert len(keys) == 5
    assert run_key(FinetuneConfig(), ident) != run_key(FinetuneConfig(), {"weights_sha256": "abd"})


def test_grid_names_every_variant_and_needs_lambdas():
    cfgs = ex.grid(["none", "gradcam"], [False, True], [0, 1], {"gradcam": 50.0}, **TINY)
    assert len(cfgs) == 8
    assert {c.variant for c in cfgs} == {"CLIP-FT", "CLIP-FT + HN", "CLIP-CAE (gradcam)", "CLIP-CAE (gradcam) + HN"}
    with pytest.raises(CAEError, match="no loss weight"):
        ex.grid(["attention"], [False], [0], {})


@pytest.fixture(scope="module")
def runs(module_cache):
    cfgs = ex.grid(["none", "attention"], [False], [0], {"attention": 30.0}, **TINY)
    return cfgs, ex.finetune_many(cfgs, workers=1, progress=False)


def test_runs_train_change_the_weights_and_are_cached(runs):
    from clipscope_utils.models.registry import load_model

    cfgs, done = runs
    assert [r.config for r in done] == cfgs
    base = load_model("random:clipscope-tiny:0", device="cpu").model.state_dict()
    tuned = torch.load(done[1].weights, map_location="cpu")
    assert not torch.equal(base["text_projection"], tuned["text_projection"])
    assert len(done[1].log) == cfgs[1].steps and done[1].log.attr.gt(0).any()
    assert done[0].log.attr.eq(0).all()  # CLIP-FT has no attribution loss
    mtime = done[1].weights.stat().st_mtime_ns
    again = finetune(cfgs[1], progress=False)
    assert again.folder == done[1].folder and again.weights.stat().st_mtime_ns == mtime
    enc = load_model(done[1].model_name, device="cpu")  # the registry loads the fine-tuned weights
    assert torch.equal(enc.model.state_dict()["text_projection"], tuned["text_projection"])


def test_same_config_gives_the_same_weights(runs, tmp_path, monkeypatch):
    cfgs, done = runs
    monkeypatch.setenv("CLIPSCOPE_CACHE", str(tmp_path))
    redo = finetune(cfgs[1], progress=False)
    assert redo.folder != done[1].folder
    a, b = torch.load(redo.weights), torch.load(done[1].weights)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_hard_negatives_are_seeded_and_of_the_chosen_kinds(module_cache):
    from clipscope_utils.models.registry import load_model

    cfg = FinetuneConfig(hard_negatives=True, negative_kinds=("relation_replace",), **TINY)
    data = FinetuneData(cfg, load_model(cfg.base, device="cpu"))
    idx = data.indices(0)
    neg = data.negative_tokens(idx, 0)
    assert torch.equal(neg, data.negative_tokens(idx, 0))
    assert not torch.equal(neg, data.roles.tokens[torch.from_numpy(idx)])
    assert sorted(np.concatenate([data.indices(s) for s in range(2)])) == list(range(32))  # one epoch = a permutation


def _frame():
    rows = []
    for variant, hits in (("CLIP-FT", [1, 0, 0, 1]), ("CLIP-CAE (attention)", [1, 1, 0, 1])):
        for seed in (0, 1):
            for i, h in enumerate(hits):
                rows.append({"variant": variant, "seed": seed, "benchmark": "relation", "item_id": str(i),
                             "subset": "relation", "correct": bool(h)})
    return pd.DataFrame(rows)


def test_results_table_pools_seeds_and_reports_their_spread():
    t = ex.results_table(_frame(), n_boot=200)
    row = t[t.variant == "CLIP-CAE (attention)"].iloc[0]
    assert (row.n, row.seeds, row.accuracy, row.seed_sd) == (8, 2, 0.75, 0.0)
    assert row.ci_low <= 0.75 <= row.ci_high


def test_paired_gain_compares_the_same_items():
    g = ex.paired_gain(_frame(), n_boot=200).iloc[0]
    assert g.variant == "CLIP-CAE (attention)" and g.n == 8 and g.gain == pytest.approx(0.25)


def test_attribution_frame_gives_both_roles_per_caption(module_cache):
    from clipscope_utils.cae.roles import RoledCaption
    from clipscope_utils.compositional.scenes import CompositionSpec, concept_candidates, generate_compositions

    spec = CompositionSpec(images=6, seed=3)
    comp = generate_compositions(spec, progress=False)
    caps = [RoledCaption(t, s) for t, s in zip(comp.captions, comp.spans)]
    f = ex.attribution_frame("random:clipscope-tiny:0", ["attention", "perturbation"], caps, comp.paths,
                             device="cpu", n_perturb=2, candidates=concept_candidates(spec))
    # every caption names a size and a relation: the four roles of paper B's Figure 1b each get a row
    assert len(f) == 6 * 2 * 4 and set(f.role) == {"object", "attribute", "relation", "composition"}
    wide = f.pivot_table(index=["method", "caption"], columns="role", values="score")
    between = (wide.composition >= wide[["attribute", "relation"]].min(axis=1) - 1e-6) & (
        wide.composition <= wide[["attribute", "relation"]].max(axis=1) + 1e-6)
    assert between.all()  # composition pools the attribute and relation tokens
    s = ex.attribution_summary(f.assign(model="random"), n_boot=100)
    assert set(s.method) == {"attention", "perturbation"} and (s.n == 6).all()
    assert s[["attribute_ratio", "relation_ratio"]].notna().all().all()
    with pytest.raises(CAEError, match="unknown attribution"):
        ex.attribution_frame("random:clipscope-tiny:0", ["saliency"], caps, comp.paths)
