"""The LAION origin analysis at scale (paper A section 4.3): Claim 2 over web-caption shards on Ray Data, and
the causal caption-order experiment through ``open_clip_train`` under torchrun.

Paper A's evidence for the origin of the first-object bias is LAION's: its captions name the largest object
first far more often than 1/n (Fig. 4b), and the bias grows over a LAION training run (Fig. 4c). At LAION's size
both are cluster work, so the book runs them on existing distributed engines: Claim 2 as a Ray Data pipeline
(:mod:`claim2_ray`) over img2dataset shards, and the causal test as CLIP pretraining by ``open_clip_train``
(:mod:`training.openclip`) on shards whose captions are rewritten by an order policy (:mod:`reorder`).

Offline the same code runs on generated scenes exported as img2dataset shards with their true object areas in
the sidecars (:func:`scene_shards`), where the truth is known: the pipeline's largest-object positions are
checked against it (:func:`truth_agreement`), and the reordered captions train small CLIPs whose checkpoints
the origin and progression chapters probe like any other (:func:`causal_jobs`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from ..datasets import SceneSpec, generate_cached
from ..datasets.shards import export_scene_shards, list_shards, read_shard, shard_stem
from ..device import pick_device
from ..paths import cache_dir, content_id
from ..stats import bootstrap_ci
from ..training import OpenClipResult, OpenClipRun, TrainingError, train_openclip
from ..training.data import scene_spec
from . import claim2_ray
from . import pretraining as pt
from .caption_order import (LargestPosition, SceneGraphExtractor, claim2_spec, extractor_quality,
                            largest_position)
from .reorder import ORDER_POLICIES, REPORT_FILE, ReorderReport, reorder_shards

EXPORT_VERSION = 1  # bump when export_scene_shards writes other bytes for the same scenes
REORDER_VERSION = 1  # bump when reorder_shards rewrites captions differently
ENGINES = ("ray", "local")


# -- shards of generated scenes ------------------------------------------------------------------------------
def scene_shards(spec: SceneSpec, shard_size: int = 1000) -> list[Path]:
    """The multi-object scenes of ``spec`` as img2dataset shards with their true areas in the sidecars, cached by
    the spec and the shard size (LAION's layout with a known truth)."""
    folder = cache_dir() / "shards" / f"{spec.key()}-{shard_size}-v{EXPORT_VERSION}"
    if not folder.is_dir():
        export_scene_shards(generate_cached(spec, progress=False), folder, shard_size)
    return list_shards(folder)


# -- Claim 2 at scale ----------------------------------------------------------------------------------------
@dataclass
class Claim2AtScale:
    """Claim 2 over shards: the per-caption records, Fig. 4b's tables, and how the run went."""

    records: pd.DataFrame
    largest: LargestPosition
    engine: str
    shards: int
    seconds: float
    source: str

    def summary(self) -> str:
        c = self.largest.counts
        return (f"{len(self.records)} captions in {self.shards} shard(s) of {self.source}, engine **{self.engine}** "
                f"({self.seconds:.0f} s, cached shards included): {c['in_table']} captions with two or more objects "
                f"in the table, {c['ties']} with a tie for the largest area left out, "
                f"{c['mentions_unknown']} mentions matched to no object.")


def claim2_job(source, area_source: str = "sidecar") -> claim2_ray.Claim2Job:
    """The pipeline's job, checked (shards, sidecars, area source) before any work."""
    job = claim2_ray.Claim2Job(source=source, area_source=area_source)
    claim2_ray.check_job(job)
    return job


def claim2_at_scale(job: claim2_ray.Claim2Job, engine: str = "ray", ray_address: str = "", ray_cpus: int = 0,
                    source_label: str = "", n_boot: int = 1000, seed: int = 0, ray_gpus: float = 0) -> Claim2AtScale:
    """Run the Claim 2 pipeline (``engine`` "ray": Ray Data, on a cluster when ``ray_address`` is given, else on
    this machine's ``ray_cpus`` cores, 0 = all, the detector on ``ray_gpus`` GPUs; "local": one process), then
    Fig. 4b's tables."""
    if engine not in ENGINES:
        raise ValueError(f"claim2_engine must be one of {ENGINES}, got {engine!r}")
    t0 = time.perf_counter()
    if engine == "ray":
        records = claim2_ray.run_ray(job, address=ray_address or None, num_cpus=ray_cpus or None, num_gpus=ray_gpus)
    else:
        records = claim2_ray.run_local(job)
    seconds = time.perf_counter() - t0
    shards = list_shards(job.source)
    return Claim2AtScale(records, claim2_ray.table(records, n_boot=n_boot, seed=seed), engine, len(shards), seconds,
                         source_label or str(job.source))


@dataclass
class GeneratedClaim2:
    """Claim 2 on generated captions, where the truth is known: the extractor against the caption's objects, the
    pipeline's run, and how often it finds the true position of the largest object."""

    quality: pd.DataFrame
    run: Claim2AtScale
    agreement: pd.DataFrame


def claim2_generated(family: str, n_captions: int, shard_size: int = 100, engine: str = "ray",
                     ray_address: str = "", ray_cpus: int = 0, n_boot: int = 1000, seed: int = 0) -> GeneratedClaim2:
    """:func:`caption_order.claim2_spec`'s scenes exported as img2dataset shards with their true areas in the
    sidecars, then the same pipeline as for LAION (``engine``) and its check against the truth."""
    spec = claim2_spec(family, n_captions, seed)
    scenes = generate_cached(spec, progress=False)
    shards = scene_shards(spec, shard_size)
    quality = extractor_quality(scenes, SceneGraphExtractor(), n_boot=n_boot, seed=seed)
    run = claim2_at_scale(claim2_job(shards), engine, ray_address, ray_cpus,
                          f"generated captions ({n_captions} scenes per object count, random order)", n_boot, seed)
    return GeneratedClaim2(quality, run, truth_agreement(run.records, true_positions(scenes, shards), n_boot, seed))


def true_positions(scenes, shards: Sequence[Path]) -> pd.DataFrame:
    """Per shard sample of generated scenes: the true 1-based position of the largest object among the caption's
    objects (the caption's ``order`` and the objects' areas), keyed like the pipeline's records."""
    caps = scenes.captions.set_index(["image_id", "template"]).order
    areas = scenes.objects.groupby(["image_id", "class_name"]).area_px.max()
    rows = []
    for path in shards:
        for s in read_shard(path):
            names = [c for c in caps[(s.meta["image_id"], s.meta["template"])].split("|") if c]
            if len(names) >= 2:
                pos, k = largest_position([float(areas[(s.meta["image_id"], c)]) for c in names])
                rows.append((shard_stem(path), s.key, len(names), pos, k))
    return pd.DataFrame(rows, columns=["shard", "image_id", "n_true", "true_position", "true_tied"])


def truth_agreement(records: pd.DataFrame, truth: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """How often the pipeline finds the true position of the largest object, per number of objects (captions
    without a tie in truth; a caption the pipeline left out, or read with fewer objects, counts as a miss)."""
    joined = truth[truth.true_tied == 1].merge(records[["shard", "image_id", "n_mentioned", "position"]],
                                               on=["shard", "image_id"], how="left")
    hit = ((joined.position == joined.true_position) & (joined.n_mentioned == joined.n_true)).astype(float)
    rows = []
    for n, h in hit.groupby(joined.n_true):
        lo, hi = bootstrap_ci(h.to_numpy(), n_boot=n_boot, seed=seed)
        rows.append({"n_objects": int(n), "n": len(h), "found": float(h.mean()), "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


# -- the causal experiment through open_clip_train -------------------------------------------------------------
@dataclass(frozen=True)
class CausalAtScale:
    """The origin chapter's ``openclip_*`` parameters: one open_clip_train run per caption-order policy."""

    orders: tuple[str, ...] = ()
    model: str = "clipscope-tiny"
    samples: int = 4096
    epochs: int = 2
    batch_size: int = 64
    lr: float = 1e-3
    processes: int = 2
    source: str = ""  # shards with sidecars ('' = the pretraining chapter's training scenes, exported)
    shard_size: int = 1000
    device: str = "cpu"
    seed: int = 0
    engine: str = "local"  # where the captions are rewritten: "local" (one process) or "ray" (a task per shard)
    ray_address: str = ""
    ray_cpus: int = 0

    @classmethod
    def from_params(cls, p: Mapping, device: str = "auto") -> "CausalAtScale":
        """From a chapter's parameters (``openclip_orders`` ...), checked before any work: the policies, and the
        run's config (batch split, samples per epoch, schedule) on placeholder shards. ``device``: "auto", "cpu"
        or "cuda[:N]" (open_clip_train takes one GPU per process)."""
        kind = torch.device(pick_device(device)).type
        cfg = cls(tuple(p["openclip_orders"]), p["openclip_model"], p["openclip_samples"], p["openclip_epochs"],
                  p["openclip_batch_size"], p["openclip_lr"], p["openclip_processes"], p["openclip_source"],
                  p["openclip_shard_size"], kind, p["seed"], p["claim2_engine"], p["ray_address"], p["ray_cpus"])
        unknown = sorted(set(cfg.orders) - set(ORDER_POLICIES))
        if unknown:
            raise ValueError(f"openclip_orders: unknown policies {unknown}; choose from {list(ORDER_POLICIES)}")
        if cfg.orders:
            cfg.run(("placeholder.tar",), cfg.orders[0])  # OpenClipRun.validate reads no file
        return cfg

    def run(self, shards: Sequence[str | Path], order: str) -> OpenClipRun:
        steps = self.epochs * (self.samples // self.batch_size)  # warm-up: a tenth, shorter than training
        return OpenClipRun(tuple(str(s) for s in shards), model=self.model, samples=self.samples, epochs=self.epochs,
                           batch_size=self.batch_size, lr=self.lr, warmup=min(max(1, steps // 10), steps - 1),
                           processes=self.processes, device=self.device, seed=self.seed, label=order)


def source_shards(cfg: CausalAtScale, pretraining: Mapping) -> list[Path]:
    """The shards to reorder: ``cfg.source`` (shards with sidecars, e.g. LAION with a segmenter's areas), or the
    pretraining chapter's training scenes (its first config) exported with their true areas."""
    if cfg.source:
        return list_shards(cfg.source)
    return scene_shards(scene_spec(pt.configs(pretraining)[0]), cfg.shard_size)


def reordered_folder(shards: Sequence[Path], policy: str, seed: int = 0) -> Path:
    """Where :func:`reordered` keeps ``shards`` rewritten by ``policy``: keyed by their contents and the seed."""
    material = {"shards": [content_id(p) for p in shards], "policy": policy, "seed": seed, "v": REORDER_VERSION}
    key = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "reordered" / f"{policy}-{key}"


def reordered(shards: Sequence[Path], policy: str, seed: int = 0, engine: str = "local", ray_address: str = "",
              ray_cpus: int = 0) -> tuple[list[Path], ReorderReport]:
    """``shards`` with their captions rewritten by ``policy`` (:func:`reorder.reorder_shards`, on ``engine``),
    cached by the shards' contents, the policy and the seed (both engines write the same bytes)."""
    folder = reordered_folder(shards, policy, seed)
    if not folder.is_dir():
        reorder_shards(list(shards), folder, policy, seed=seed, engine=engine, ray_address=ray_address,
                       ray_cpus=ray_cpus)
    report = ReorderReport(**{k: v for k, v in json.loads((folder / REPORT_FILE).read_text()).items()
                              if k in ReorderReport.__dataclass_fields__})
    return [folder / p.name for p in shards], report


@dataclass
class CausalRun:
    """One caption-order policy at scale: its rewritten data and its open_clip_train run."""

    order: str
    report: ReorderReport
    result: OpenClipResult
    sources: list[Path]  # the shards before rewriting, in the order of the run's shards


def causal_runs(cfg: CausalAtScale, pretraining: Mapping, progress: bool = False) -> list[CausalRun]:
    """Reorder the source shards by every policy of ``cfg.orders`` and train one CLIP on each through
    open_clip_train under torchrun (cached by config and shard contents)."""
    source = source_shards(cfg, pretraining)
    missing = [o for o in cfg.orders if not reordered_folder(source, o, cfg.seed).is_dir()]
    # one Ray session for every policy to rewrite: its workers load the extractor once
    with (claim2_ray.ray_session(cfg.ray_address or None, cfg.ray_cpus or None) if cfg.engine == "ray" and missing
          else contextlib.nullcontext()):
        rewritten = {o: reordered(source, o, cfg.seed, cfg.engine, cfg.ray_address, cfg.ray_cpus) for o in cfg.orders}
    runs = []
    for order in cfg.orders:
        shards, report = rewritten[order]
        try:
            result = train_openclip(cfg.run(shards, order), progress=progress)
        except TrainingError as e:
            raise TrainingError(f"open_clip_train on the {order} captions: {e}") from None
        runs.append(CausalRun(order, report, result, list(source)))
    return runs


def causal_jobs(runs: Sequence[CausalRun], final_only: bool = False) -> list[tuple[dict, str]]:
    """``(tags, model name)`` of every epoch checkpoint (or the last), tagged ``order``, ``seed`` and ``samples``
    as the book's own runs are, for :func:`origin.probe_checkpoints`."""
    jobs = []
    for r in runs:
        points = r.result.checkpoints[-1:] if final_only else r.result.checkpoints
        jobs += [(dict(order=f"open_clip_train: {r.order}", seed=r.result.run.seed, samples=s), name)
                 for s, name in points]
    return jobs


def reorder_table(runs: Sequence[CausalRun]) -> pd.DataFrame:
    """What each policy rewrote: captions, rewritten, left (fewer than two matched objects), unmatched phrases."""
    return pd.DataFrame([{"order": r.order, "captions": r.report.captions, "rewritten": r.report.rewritten,
                          "fewer than 2 objects": r.report.unchanged_fewer_than_2,
                          "phrases matched to no object": r.report.unknown_mentions,
                          "steps": r.result.run.steps, "processes": r.result.run.processes,
                          "train seconds": round(r.result.seconds, 1)} for r in runs])


def example_captions(runs: Sequence[CausalRun], k: int = 4) -> pd.DataFrame:
    """The first ``k`` captions (in shard order) that some policy rewrote, as written and under every policy, side
    by side."""
    if not runs:
        return pd.DataFrame()
    pairs = [(source, [Path(r.result.run.shards[i]) for r in runs]) for i, source in enumerate(runs[0].sources)]
    rows = []
    for source, rewritten in pairs:
        per = [{s.key: s.caption for s in read_shard(p)} for p in [source, *rewritten]]
        rows += [[c[key] for c in per] for key in per[0] if len({c[key] for c in per}) > 1]
        if len(rows) >= k:
            break
    return pd.DataFrame(rows[:k], columns=["as written", *(r.order for r in runs)])
