"""The LAION origin analysis at scale (``studies/laion``): generated scenes as cached shards, Claim 2 over them
against the known truth, the open_clip_train experiment's config checked before any work, captions reordered and
cached by content, the runs' tables (with a fake trainer: no process starts here), their checkpoints in the
progression and their findings.

Everything runs the plain one-process Claim 2 loop (``engine="local"``); Ray has its own tests
(``test_claim2_ray.py``), and open_clip_train its own (``test_openclip_train.py``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clipscope_utils.book.profiles import load_profile
from clipscope_utils.book.runner import toc_notebooks
from clipscope_utils.datasets import SceneSpec, generate_cached
from clipscope_utils.datasets.shards import read_segments, read_shard, shard_stem
from clipscope_utils.studies import findings, laion, origin
from clipscope_utils.studies.caption_order import claim2_spec
from clipscope_utils.training import OpenClipResult, TrainingError, openclip

ROOT = Path(__file__).resolve().parents[1]
ORDERS = ("largest_first", "largest_last")
# 6 two- and three-object scenes, one caption each, names in random order (so both policies rewrite some)
SPEC = SceneSpec(family="comco", objects=(2, 3), images=3, image_size=32, order="random", seed=5)


def refuse(what: str):
    def fail(*args, **kwargs):
        raise AssertionError(f"{what} was called")
    return fail


def captions(paths) -> dict[tuple[str, str], str]:
    return {(shard_stem(p), s.key): s.caption for p in paths for s in read_shard(p)}


@pytest.fixture(scope="module")
def shards(module_cache) -> list[Path]:
    """SPEC's scenes as two shards (4 + 2 captions), cached in the module's cache."""
    return laion.scene_shards(SPEC, shard_size=4)


@pytest.fixture(scope="module")
def smoke_origin() -> dict:
    return dict(load_profile(ROOT / "profiles", "smoke", toc_notebooks(ROOT)).params["origin"])


# -- shards of generated scenes ------------------------------------------------------------------------------
def test_scene_shards_are_cached_by_spec_and_shard_size(shards, monkeypatch) -> None:
    assert [p.name for p in shards] == ["00000.tar", "00001.tar"]
    assert [len(list(read_shard(p))) for p in shards] == [4, 2]
    assert all(read_segments(p) is not None for p in shards)  # the true areas travel in the sidecars
    folder = shards[0].parent
    assert folder.name.endswith(f"-4-v{laion.EXPORT_VERSION}") and SPEC.key() in folder.name
    mtimes = {p: p.stat().st_mtime_ns for p in folder.iterdir()}

    monkeypatch.setattr(laion, "export_scene_shards", refuse("export_scene_shards"))
    assert laion.scene_shards(SPEC, shard_size=4) == shards  # the same folder, nothing exported again
    assert {p: p.stat().st_mtime_ns for p in folder.iterdir()} == mtimes
    monkeypatch.undo()

    other = laion.scene_shards(SPEC, shard_size=6)
    assert [p.name for p in other] == ["00000.tar"] and other[0].parent != folder
    assert sorted(captions(other).values()) == sorted(captions(shards).values())  # the same captions, regrouped


# -- Claim 2 on generated captions ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def claim2(module_cache) -> laion.GeneratedClaim2:
    # 2 scenes per object count (2-5) x 3 templates = 24 captions in 3 shards of 10
    return laion.claim2_generated("comco", 2, shard_size=10, engine="local", n_boot=50, seed=0)


def test_claim2_generated_covers_every_caption_and_checks_the_truth(claim2) -> None:
    spec = claim2_spec("comco", 2, 0)
    paths = laion.scene_shards(spec, 10)
    assert len(paths) == 3
    run = claim2.run
    assert run.engine == "local" and run.shards == 3 and "24 captions in 3 shard(s)" in run.summary()
    keys = {(shard_stem(p), s.key) for p in paths for s in read_shard(p)}
    assert len(keys) == 24 and set(zip(run.records.shard, run.records.image_id)) == keys
    assert len(run.records) == 24

    first = run.largest.first
    assert set(first.n_mentioned) <= {2, 3, 4, 5} and len(first)
    np.testing.assert_allclose(first.uniform, 1 / first.n_mentioned)

    agree = claim2.agreement
    assert agree.n_objects.tolist() == [2, 3, 4, 5]  # one row per object count
    assert {"n", "found", "ci_low", "ci_high"} <= set(agree.columns)
    assert (agree.ci_low <= agree.found + 1e-12).all() and (agree.found <= agree.ci_high + 1e-12).all()
    assert agree.found.between(0, 1).all()
    truth = laion.true_positions(generate_cached(spec, progress=False), paths)
    untied = truth[truth.true_tied == 1]
    assert agree.set_index("n_objects").n.to_dict() == untied.groupby("n_true").size().to_dict()
    assert set(claim2.quality.template) == {"and", "photo", "scene"}


def test_true_positions_against_a_hand_computed_sample(module_cache) -> None:
    spec = claim2_spec("comco", 2, 0)
    scenes = generate_cached(spec, progress=False)
    paths = laion.scene_shards(spec, 10)
    truth = laion.true_positions(scenes, paths)
    assert len(truth) == 24  # every caption names 2-5 objects
    assert set(truth.shard) == {"00000", "00001", "00002"}

    sample = list(read_shard(paths[1]))[3]  # any sample: its truth by hand
    order = scenes.captions[(scenes.captions.image_id == sample.meta["image_id"])
                            & (scenes.captions.template == sample.meta["template"])].order.item()
    names = [c for c in order.split("|") if c]
    objs = scenes.objects[scenes.objects.image_id == sample.meta["image_id"]]
    areas = [float(objs[objs.class_name == c].area_px.max()) for c in names]
    biggest = max(areas)
    row = truth[(truth.shard == "00001") & (truth.image_id == sample.key)].iloc[0]
    assert row.n_true == len(names)
    assert row.true_position == areas.index(biggest) + 1
    assert row.true_tied == areas.count(biggest)


def test_truth_agreement_counts_short_reads_and_left_out_captions_as_misses() -> None:
    truth = pd.DataFrame([("00000", "k1", 2, 1, 1),   # read right: hit
                          ("00000", "k2", 2, 2, 1),   # wrong position: miss
                          ("00000", "k3", 3, 1, 1),   # position right but only 2 of 3 objects read: miss
                          ("00000", "k4", 3, 2, 2),   # tied in truth: left out
                          ("00001", "k5", 3, 2, 1),   # no record (the pipeline left it out): miss
                          ("00001", "k6", 3, 2, 1)],  # hit
                         columns=["shard", "image_id", "n_true", "true_position", "true_tied"])
    records = pd.DataFrame([("00000", "k1", 2, 1), ("00000", "k2", 2, 1), ("00000", "k3", 2, 1),
                            ("00000", "k4", 3, 2), ("00001", "k6", 3, 2), ("00001", "k1", 2, 2)],
                           columns=["shard", "image_id", "n_mentioned", "position"])
    got = laion.truth_agreement(records, truth, n_boot=100).set_index("n_objects")
    assert got.index.tolist() == [2, 3]
    assert got.n.tolist() == [2, 3]
    assert got.found.tolist() == pytest.approx([1 / 2, 1 / 3])
    assert (got.ci_low <= got.found).all() and (got.found <= got.ci_high).all()
    all_hits = laion.truth_agreement(records.assign(position=[1, 2, 1, 2, 2, 2], n_mentioned=[2, 2, 3, 3, 3, 2]),
                                     truth[truth.image_id != "k5"], n_boot=100)
    assert all_hits.found.tolist() == [1.0, 1.0] and all_hits.ci_low.tolist() == [1.0, 1.0]


# -- the causal experiment: config ---------------------------------------------------------------------------
@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if any shard is read or written, any scene generated or any process started."""
    for name in ("list_shards", "scene_shards", "generate_cached", "reorder_shards", "train_openclip",
                 "read_shard"):
        monkeypatch.setattr(laion, name, refuse(name))
    monkeypatch.setattr(openclip, "torchrun", refuse("torchrun"))


def test_smoke_profile_builds_a_checked_config(smoke_origin, no_work) -> None:
    cfg = laion.CausalAtScale.from_params(smoke_origin, device="cpu")
    assert cfg.orders == tuple(smoke_origin["openclip_orders"]) == ("largest_first",)
    assert (cfg.engine, cfg.ray_address, cfg.ray_cpus) == ("local", "", 0)  # the smoke profile keeps Ray for CI time
    assert (cfg.model, cfg.samples, cfg.epochs, cfg.batch_size, cfg.processes, cfg.device, cfg.seed) == (
        "clipscope-tiny", 64, 2, 32, 2, "cpu", 0)
    run = cfg.run(["/data/00000.tar"], "largest_last")
    assert run.label == "largest_last" and run.steps == 4 and 1 <= run.warmup < run.steps
    assert run.shards == (str(Path("/data/00000.tar").resolve()),)
    assert laion.CausalAtScale.from_params({**smoke_origin, "openclip_orders": []}, device="cpu").orders == ()
    one_step = laion.CausalAtScale.from_params({**smoke_origin, "openclip_samples": 32, "openclip_epochs": 1},
                                               device="cpu")  # a legal profile: its warm-up must fit
    assert (one_step.run(["/data/00000.tar"], "largest_first").steps,
            one_step.run(["/data/00000.tar"], "largest_first").warmup) == (1, 0)


@pytest.mark.parametrize("change, error, message", [
    ({"openclip_orders": ["largest_first", "biggest_first"]}, ValueError,
     r"openclip_orders: unknown policies \['biggest_first'\]; choose from \['largest_first'"),
    ({"openclip_processes": 3}, TrainingError, "batch_size=32 .* does not split evenly over 3 processes"),
    ({"openclip_samples": 80}, TrainingError, "samples=80 per epoch is not a whole number of batches.*e.g. 96"),
])
def test_bad_configs_fail_before_any_work(smoke_origin, no_work, change, error, message) -> None:
    with pytest.raises(error, match=message):
        laion.CausalAtScale.from_params({**smoke_origin, **change}, device="cpu")


# -- the causal experiment: reordered shards -----------------------------------------------------------------
def test_reordered_shards_are_cached_by_content_policy_and_seed(shards, monkeypatch) -> None:
    first, report = laion.reordered(shards, "largest_first")
    folder = first[0].parent
    assert [p.name for p in first] == [p.name for p in shards] and folder.name.startswith("largest_first-")
    assert report.policy == "largest_first" and report.captions == 6
    mtimes = {p: p.stat().st_mtime_ns for p in folder.iterdir()}

    monkeypatch.setattr(laion, "reorder_shards", refuse("reorder_shards"))
    again, report_again = laion.reordered(shards, "largest_first")
    assert again == first and report_again == report
    assert {p: p.stat().st_mtime_ns for p in folder.iterdir()} == mtimes
    monkeypatch.undo()

    last, last_report = laion.reordered(shards, "largest_last")
    assert last[0].parent != folder and last[0].parent.name.startswith("largest_last-")
    assert laion.reordered(shards, "shuffled", seed=1)[0][0].parent != laion.reordered(shards, "shuffled")[0][0].parent

    source, lf, ll = captions(shards), captions(first), captions(last)
    assert lf.keys() == ll.keys() == source.keys()
    changed = [k for k in source if lf[k] != ll[k]]
    assert changed  # a scene of 2-3 objects with distinct areas reads differently under the two policies
    assert any(ll[k] != source[k] for k in source) and any(lf[k] != source[k] for k in source)
    assert report.rewritten + last_report.rewritten >= len(changed)
    for k in changed:  # the same words, moved
        assert sorted(lf[k].split()) == sorted(ll[k].split())


# -- the causal experiment: runs with a fake trainer ---------------------------------------------------------
class FakeTrainer:
    """Stands in for ``train_openclip``: records each run, returns a result with one checkpoint per epoch."""

    def __init__(self, folder: Path):
        self.folder, self.runs = folder, []

    def __call__(self, run, progress: bool = False) -> OpenClipResult:
        self.runs.append(run)
        points = [(run.samples * (k + 1), f"clipscope-tiny@{self.folder / run.label / f'epoch_{k + 1}.pt'}")
                  for k in range(run.epochs)]
        return OpenClipResult(self.folder / run.label, run, points, seconds=1.5)


def test_causal_runs_reorder_train_and_tabulate(shards, tmp_path, monkeypatch) -> None:
    fake = FakeTrainer(tmp_path)
    monkeypatch.setattr(laion, "train_openclip", fake)
    monkeypatch.setattr(openclip, "torchrun", refuse("torchrun"))
    cfg = laion.CausalAtScale(orders=ORDERS, samples=64, epochs=2, batch_size=32, processes=2,
                              source=str(shards[0].parent), seed=0)
    runs = laion.causal_runs(cfg, {})  # a source is given: the pretraining block is not needed
    assert [r.order for r in runs] == list(ORDERS) and [r.label for r in fake.runs] == list(ORDERS)
    assert all(r.sources == list(shards) for r in runs)
    for r, order in zip(fake.runs, ORDERS):
        assert r.shards == tuple(str(p.resolve()) for p in laion.reordered(shards, order)[0])

    jobs = laion.causal_jobs(runs)
    assert [(t["order"], t["samples"]) for t, _ in jobs] == [
        ("open_clip_train: largest_first", 64), ("open_clip_train: largest_first", 128),
        ("open_clip_train: largest_last", 64), ("open_clip_train: largest_last", 128)]
    assert all(t["seed"] == 0 for t, _ in jobs) and jobs[1][1].endswith("largest_first/epoch_2.pt")
    final = laion.causal_jobs(runs, final_only=True)
    assert [(t["order"], t["samples"]) for t, _ in final] == [("open_clip_train: largest_first", 128),
                                                            ("open_clip_train: largest_last", 128)]

    table = laion.reorder_table(runs)
    assert table.columns.tolist() == ["order", "captions", "rewritten", "fewer than 2 objects",
                                      "phrases matched to no object", "steps", "processes", "train seconds"]
    assert table.order.tolist() == list(ORDERS) and table.captions.tolist() == [6, 6]
    assert table.steps.tolist() == [4, 4] and table.processes.tolist() == [2, 2]
    assert table["train seconds"].tolist() == [1.5, 1.5]

    examples = laion.example_captions(runs, k=2)
    assert examples.columns.tolist() == ["as written", *ORDERS]
    assert 1 <= len(examples) <= 2
    written = {s.caption for s in read_shard(shards[0])}
    assert set(examples["as written"]) <= written
    for _, row in examples.iterrows():
        assert len(set(row)) > 1  # some policy changed each shown caption
    assert (examples["largest_first"] != examples["largest_last"]).any()
    assert laion.example_captions([]).empty


# -- progression and findings --------------------------------------------------------------------------------
def test_progression_of_tagged_checkpoints_needs_no_runs(module_cache) -> None:
    scenes = generate_cached(SceneSpec(family="comco", objects=(2, 3), images=3, image_size=32, order="random",
                                       seed=7), progress=False)
    tags = dict(order="open_clip_train: largest_first", seed=0)
    prog = origin.progression([], scenes, device="cpu", n_boot=50, checkpoints=[
        ({**tags, "samples": 1}, "random:clipscope-tiny:0"), ({**tags, "samples": 2}, "random:clipscope-tiny:1")])
    assert (prog.position == 1).all()
    assert set(prog.probe) == {"TOR", "IOR"} and set(prog.order) == {"open_clip_train: largest_first"}
    assert sorted(set(prog.samples)) == [1, 2] and set(prog.n_objects) == {2, 3}
    assert len(prog) == 2 * 2 * 2  # probe x samples x object count, one row each
    assert prog.duplicated(["probe", "samples", "n_objects"]).sum() == 0
    assert (prog.n == 3).all()  # three scenes per object count, one query each
    assert prog.rate.between(0, 1).all() and (prog.ci_low <= prog.rate).all() and (prog.rate <= prog.ci_high).all()


def test_causal_findings_of_the_open_clip_train_runs() -> None:
    prefix = "open_clip_train: "
    t = pd.DataFrame({"state": "trained", "position": 1, "n_objects": [2, 2, 3, 3],
                      "order": [f"{prefix}largest_first", f"{prefix}shuffled"] * 2, "n": 40,
                      "rate": [0.9, 0.4, 0.3, 0.6], "ci_low": [0.8, 0.3, 0.2, 0.5], "ci_high": [0.95, 0.5, 0.4, 0.7]})
    found = findings.causal(t, "scenes, open_clip_train runs", prefix=prefix, headline=False)
    assert [f.verdict for f in found] == ["reproduced", "reversed"]
    assert [f.n for f in found] == [40, 40] and not any(f.primary for f in found)
    assert all(f.claim == "A-CAUSE" and f.model == f"{prefix}largest_first (seeds pooled)" for f in found)
    assert re.search(r"3 objects", found[1].measure)
    assert [f.primary for f in findings.causal(t, "s", prefix=prefix)] == [False, True]  # headline: the largest n
    assert findings.causal(t, "scenes") == []  # unprefixed labels find none of these rows
