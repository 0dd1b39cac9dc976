"""CAE fine-tuning over data-parallel processes (two gloo processes = one process at the same global batch), the
schedule known from the data size before any work, and the attribution-loss-only ablation (paper B Table 5)."""

import dataclasses
import json
import multiprocessing
import os
import socket

import pandas as pd
import pytest
import torch
from PIL import Image

from clipscope_utils.cae import CAEError, distributed
from clipscope_utils.cae.finetune import (LATER_FIELDS, FinetuneConfig, FinetuneData, check_schedule, finetune,
                                          planned_steps, run_key, train, warmup_steps)
from clipscope_utils.cae.pairs import coco_pairs
from clipscope_utils.cae.roles import RoledCaption
from clipscope_utils.models.registry import load_model

BASE = "random:clipscope-tiny:0"
# a global batch of 8 (4 + 4 over two processes), 3 steps; lr 1e-3 moves every weight by ~2.5e-3
TINY = dict(base=BASE, scenes=24, batch_size=8, epochs=1, warmup=1)


# ------------------------------------------------------------------------------------ two processes = one
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, size: int, port: int, job: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(size))
    distributed.main([job])


def run_world(cfg: FinetuneConfig, folder, size: int = 2) -> None:
    """The torchrun entry point in ``size`` forked gloo processes (what torchrun starts, without its agent)."""
    job = folder.parent / f"{folder.name}.json"
    job.write_text(json.dumps({"config": cfg.to_dict(), "folder": str(folder), "progress": False}))
    ctx = multiprocessing.get_context("fork")  # the test process's imports are reused: seconds, not tens
    port = _free_port()
    procs = [ctx.Process(target=_rank, args=(r, size, port, str(job))) for r in range(size)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    for p in procs:
        if p.is_alive():  # a rank stuck in a collective after the other failed
            p.terminate()
    assert [p.exitcode for p in procs] == [0] * size


def key_biases(state: dict) -> dict:
    """The attention key biases: softmax ignores a constant shift, so their gradient is zero up to rounding,
    and Adam scales that rounding noise up to a step; they are compared with a looser bound."""
    out = {}
    for k, v in state.items():
        if k.endswith("in_proj_bias"):
            w = v.shape[0] // 3
            out[k] = v[w:2 * w]
    return out


def assert_same_run(one: dict, log_one, two: dict, log_two, cfg: FinetuneConfig) -> None:
    """Same weights and losses up to float rounding. Adam moves a weight by about ``lr`` per step whatever the
    size of its gradient, so rounding in a near-zero gradient shows in units of ``lr * steps`` (3e-3 here):
    measured at most 0.4 % of it (1e-5; most weights 1e-6), 1.8 % for the key biases; the losses agree to 5e-7."""
    bound = cfg.lr * len(log_one)
    keys = key_biases(one)
    for k in one:
        a, b = one[k].clone(), two[k].clone()
        if k in keys:
            w = a.shape[0] // 3
            assert (a[w:2 * w] - b[w:2 * w]).abs().max() < 0.1 * bound, k
            a[w:2 * w] = b[w:2 * w] = 0
        assert torch.allclose(a, b, rtol=0, atol=0.01 * bound), (k, float((a - b).abs().max()))
    assert len(log_one) == len(log_two) == cfg.steps == 3
    for col in ("itc", "attr", "loss"):
        assert log_one[col].to_numpy() == pytest.approx(log_two[col].to_numpy(), abs=1e-5)


@pytest.mark.parametrize("knobs", [dict(method="none", hard_negatives=True),
                                   dict(method="gradient", lam=30.0, temperature=100.0),  # double backward
                                   dict(method="perturbation", lam=0.2, n_perturb=2)],  # batch-seeded draws
                         ids=["clip-ft-hn", "gradient", "perturbation"])
def test_two_gloo_processes_match_one_process(knobs, tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPSCOPE_CACHE", str(tmp_path / "cache"))
    cfg = FinetuneConfig(**TINY, **knobs)
    model, log = train(cfg, load_model(BASE, device="cpu"))
    run_world(cfg, tmp_path / "run")
    written = json.loads((tmp_path / "run" / "config.json").read_text())
    assert FinetuneConfig.from_dict(written["config"]) == cfg  # rank 0 wrote the run folder
    two = torch.load(tmp_path / "run" / "model.pt")
    assert_same_run(model.state_dict(), log, two, pd.read_csv(tmp_path / "run" / "log.csv"), cfg)
    if cfg.method != "none":
        assert log.attr.gt(0).any()  # the attribution loss took part


def test_finetune_launches_torchrun_and_caches_under_the_same_key(tmp_path, monkeypatch):
    cfg = FinetuneConfig(**TINY, method="attention", lam=30.0)
    monkeypatch.setenv("CLIPSCOPE_CACHE", str(tmp_path / "one"))
    one = finetune(cfg, progress=False)
    monkeypatch.setenv("CLIPSCOPE_CACHE", str(tmp_path / "two"))
    two = finetune(cfg, progress=False, processes=2)
    assert two.folder.name == one.folder.name and two.folder != one.folder
    assert_same_run(torch.load(one.weights), one.log, torch.load(two.weights), two.log, cfg)
    assert not any(p.name.startswith(".launch-") for p in two.folder.parent.iterdir())  # the job files are gone
    with pytest.raises(CAEError, match="does not split evenly over 3 processes"):
        finetune(cfg.replace(seed=1), progress=False, processes=3)


# ------------------------------------------------------------------------------------ the schedule
def test_paper_schedule_on_2000_scenes_is_refused_before_any_work():
    paper = FinetuneConfig(scenes=2000, batch_size=256, epochs=5, warmup=50, lr=5e-7)
    assert planned_steps(paper) == paper.steps == 35
    with pytest.raises(CAEError, match=r"warmup=50: 50 steps\) is not shorter than training: 35 steps = "
                                       r"epochs=5 x \(scenes=2000 // batch_size=256\)") as e:
        check_schedule(paper)
    assert "fraction" in str(e.value)
    with pytest.raises(CAEError, match="warm-up"):
        finetune(paper, loader=lambda *a, **k: pytest.fail("the base was loaded before the check"))
    frac = paper.replace(warmup=0.1)
    assert check_schedule(frac) == 35 and warmup_steps(frac) == 3
    assert check_schedule(paper.replace(warmup=34)) == 35


def test_warmup_knob_is_steps_or_a_fraction_and_one_key():
    ident = {"weights_sha256": "abc"}
    assert FinetuneConfig(warmup=50.0) == FinetuneConfig(warmup=50)
    assert run_key(FinetuneConfig(warmup=50.0), ident) == run_key(FinetuneConfig(warmup=50), ident)
    assert run_key(FinetuneConfig(warmup=0.1), ident) != run_key(FinetuneConfig(warmup=0), ident)
    with pytest.raises(CAEError, match="whole warm-up steps"):
        FinetuneConfig(warmup=2.5)
    hash(FinetuneConfig(warmup=0.1))


class RolesByPosition:
    """Stands in for the scene-graph parser: first and last words objects, the second an attribute."""

    model = "fake-roles"

    def __call__(self, captions):
        out = []
        for c in captions:
            words = c.split(" ")
            out.append(RoledCaption.from_words(words, ["object", "attribute"] + [None] * (len(words) - 3) + ["object"]))
        return out


def write_coco(root, n: int) -> None:
    """A COCO-layout folder: ``n`` captioned images (two captions each) and one image no caption names."""
    (root / "annotations").mkdir(parents=True)
    (root / "train2017").mkdir()
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 8, "height": 8} for i in range(1, n + 2)]
    for im in images:
        Image.new("RGB", (8, 8), (im["id"] * 20, 0, 0)).save(root / "train2017" / im["file_name"])
    caps = [{"image_id": i, "id": 10 * i + k, "caption": f"cat red {k} near dog"} for i in range(1, n + 1)
            for k in (0, 1)]
    (root / "annotations" / "captions_train2017.json").write_text(json.dumps({"images": images, "annotations": caps}))
    (root / "annotations" / "instances_train2017.json").write_text(json.dumps(
        {"images": images, "annotations": [], "categories": []}))


def test_steps_of_a_coco_run_come_from_its_captions_file(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPSCOPE_CACHE", str(tmp_path / "cache"))
    write_coco(tmp_path / "coco", n=7)
    cfg = FinetuneConfig(coco_root=str(tmp_path / "coco"), batch_size=2, epochs=3, warmup=1)
    assert planned_steps(cfg) == 3 * (7 // 2)
    assert planned_steps(cfg.replace(coco_images=4)) == 3 * 2
    # the scan counts what coco_pairs trains on
    assert len(coco_pairs(tmp_path / "coco", images=0, parser=RolesByPosition()).texts) == 7
    with pytest.raises(CAEError, match=r"warmup=6: 6 steps\) is not shorter than training: 6 steps = epochs=3 x "
                                       r"\(4 captioned COCO images // batch_size=2\).*raise coco_images or epochs"):
        check_schedule(cfg.replace(coco_images=4, warmup=6))
    with pytest.raises(CAEError, match="no training step: 1 captioned COCO images make no full batch"):
        check_schedule(cfg.replace(coco_images=1))
    with pytest.raises(CAEError, match="COCO fine-tuning data"):
        check_schedule(cfg.replace(coco_root=str(tmp_path / "nowhere")))


def test_data_steps_agree_with_the_plan(module_cache):
    cfg = FinetuneConfig(**TINY)
    data = FinetuneData(cfg, load_model(BASE, device="cpu"))
    assert data.steps == planned_steps(cfg) == check_schedule(cfg) == 3


# ------------------------------------------------------------------------------------ the loss ablation
def test_attribution_only_knob_is_checked_named_and_keeps_old_keys():
    with pytest.raises(CAEError, match="needs a method other than 'none'"):
        FinetuneConfig(itc=False)
    with pytest.raises(CAEError, match="hard negatives enter only the contrastive loss"):
        FinetuneConfig(itc=False, method="attention", lam=1.0, hard_negatives=True)
    only = FinetuneConfig(itc=False, method="gradcam", lam=50.0)
    assert only.variant == "CAE attribution loss only (gradcam)"
    assert FinetuneConfig(method="gradcam", lam=50.0).variant == "CLIP-CAE (gradcam)"
    # fields added later are no part of the key material at their defaults: runs cached before keep their keys
    fields = {f.name for f in dataclasses.fields(FinetuneConfig)}
    assert set(FinetuneConfig().to_dict()) == fields - set(LATER_FIELDS)
    assert only.to_dict()["itc"] is False and FinetuneConfig.from_dict(only.to_dict()) == only
    ident = {"weights_sha256": "abc"}
    assert run_key(only, ident) != run_key(only.replace(itc=True), ident)


def test_attribution_only_run_trains_the_text_tower_on_the_hinge_alone(module_cache):
    cfg = FinetuneConfig(**{**TINY, "scenes": 16}, method="attention", lam=30.0, itc=False)
    base = load_model(BASE, device="cpu")
    model, log = train(cfg, base)
    before, after = base.model.state_dict(), model.state_dict()
    assert log.attr.gt(0).any() and log.itc.gt(0).all()  # the contrastive loss is logged, not trained on
    assert log.loss.to_numpy() == pytest.approx(30.0 * log.attr.to_numpy())
    visual = [k for k in before if k.startswith("visual.")]
    assert all(torch.equal(before[k], after[k]) for k in visual)  # image features enter detached
    text = [k for k in before if k.startswith("transformer.")]
    assert not all(torch.equal(before[k], after[k]) for k in text)  # the text tower's attention moved
    assert torch.equal(before["logit_scale"], after["logit_scale"])  # only the contrastive loss uses it
