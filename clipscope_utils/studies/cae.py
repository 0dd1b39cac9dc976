"""Paper B's experiment end to end (the CAE chapter): the grid of fine-tuning runs, their benchmark scores over
seeds, and the object vs composition attribution distributions before and after fine-tuning (paper B Figure
1b / 7). Models are loaded through the chapter's :class:`~clipscope_utils.zoo.ModelZoo`, so a ``trained:`` base
is the profile's self-trained CLIP.

The notebook calls these; each returns a tidy frame. Scores are pooled over seeds with a bootstrap 95 %
interval over (item, seed) pairs, and the per-seed spread is reported beside it, as paper B reports means and
standard deviations over five seeds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
import functools
import json
import textwrap
from functools import lru_cache
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
import matplotlib.pyplot as plt
import seaborn as sns
from matplotlib.patches import Patch
import torch
from PIL import Image

from .. import figures
from ..cae import CAEError
from ..cae import finetune as ft
from ..cae.attribution import attribution
from ..cae.finetune import METHODS, FinetuneConfig, FinetunedModel, finetune, load_finetuned
from ..cae.loss import role_means
from ..cae.pairs import coco_pairs
from ..cae.roles import RoledCaption, token_roles
from ..compositional import benchmarks as bm
from ..compositional.benchmarks import evaluate, paper_b_summary, published_b
from ..compositional.comvg import load_comvg
from ..compositional.items import ImageChoiceItem, PairItem
from ..compositional.svo_probes import load_svo_probes
from ..compositional.vl_checklist import load_vl_checklist
from ..compositional.scenes import concept_candidates, generate_compositions
from ..datasets.karpathy import KarpathySplit, load_karpathy
from ..measure import retrieval_hits
from ..parallel import in_parallel
from ..paths import is_complete
from ..probes.recall import recall_table
from ..probes.report import fmt
from ..stats import bootstrap_ci, t_interval
from ..zoo import ModelZoo

ATTRIBUTION_METHODS = tuple(m for m in METHODS if m != "none")
#: the roles whose mean attribution is reported: paper B pools attributes and relations as "composition" (what
#: its loss pulls level with the objects) and its Figure 1b / 7 show them apart
ATTRIBUTION_ROLES = ("object", "attribute", "relation", "composition")


def grid(methods, hard_negatives, seeds, lambdas: dict[str, float], **knobs) -> list[FinetuneConfig]:
    """One config per (method, hard negatives, seed), equal in every other knob ("none" = CLIP-FT)."""
    missing = [m for m in methods if m != "none" and m not in lambdas]
    if missing:
        raise CAEError(f"no loss weight given for methods {missing}")
    return [FinetuneConfig(method=m, lam=lambdas.get(m, 0.0), hard_negatives=bool(h), seed=int(s), **knobs)
            for h in hard_negatives for m in methods for s in seeds]


@lru_cache(maxsize=8)
def _base_identity(zoo: ModelZoo, base: str, device: str) -> str:
    return json.dumps(zoo.load(base, device=device).identity, sort_keys=True)


def run_folder(cfg: FinetuneConfig, zoo: ModelZoo | None = None) -> Path:
    """Where ``cfg``'s run is cached (loads the base model once per process to read its weights hash)."""
    return ft.run_folder(cfg, json.loads(_base_identity(zoo or ModelZoo(), cfg.base, cfg.device)))


def _finetune_quiet(cfg: FinetuneConfig, zoo: ModelZoo, processes: int | None = None) -> str:
    return str(finetune(cfg, progress=False, loader=zoo.load, processes=processes).folder)


def finetune_many(configs: list[FinetuneConfig], zoo: ModelZoo | None = None, workers: int = 2,
                  progress: bool = False, processes: int = 0) -> list[FinetunedModel]:
    """Fine-tune every config (cached runs return at once), ``workers`` single-thread runs in parallel; the
    base is trained first if it is a self-trained CLIP not yet cached (``zoo``: the chapter's model zoo).
    ``processes`` > 1 splits each run over that many data-parallel processes (torchrun), one run at a time;
    0 = one per GPU when several are present."""
    zoo = zoo or ModelZoo()
    for c in configs:  # every schedule before any work: a warm-up as long as training is refused here
        ft.check_schedule(c)
    zoo.train_missing([c.base for c in configs], workers=workers, progress=progress)
    todo = [c for c in configs if not is_complete(run_folder(c, zoo), ft.DONE)]
    # generated scenes first, here: parallel runs sharing them would each generate and replace the folder
    for spec in {c.composition_spec().key(): c.composition_spec() for c in todo if not c.coco_root}.values():
        generate_compositions(spec, progress=False)
    split = processes > 1 or (processes == 0 and any(ft.default_processes(c) > 1 for c in todo))
    in_parallel(functools.partial(_finetune_quiet, zoo=zoo, processes=processes or None), todo,
                1 if split else workers, desc="fine-tuning runs", progress=progress)
    return [load_finetuned(run_folder(c, zoo)) for c in configs]


def ablation_grid(configs: list[FinetuneConfig], method: str) -> list[FinetuneConfig]:
    """Paper B's Table 5 third arm: the attribution loss of ``method`` alone (no contrastive loss), for every seed
    of the grid's run of that method without hard negatives (ITC alone is CLIP-FT, both is CLIP-CAE)."""
    arms = [c.replace(itc=False) for c in configs if c.method == method and not c.hard_negatives]
    if not arms:
        raise CAEError(f"the loss ablation needs a {method!r} run without hard negatives in the grid (methods, "
                       "hard_negatives)")
    return arms


def parse_sweep(sweep_lambda) -> list[tuple[str, float]]:
    """``["attention:30", ...]`` -> ``[("attention", 30.0), ...]`` (paper B Table 8's rows), checked."""
    out = []
    for item in sweep_lambda:
        method, _, value = str(item).partition(":")
        try:
            lam = float(value)
        except ValueError:
            lam = float("nan")
        if method not in ATTRIBUTION_METHODS or not lam > 0:
            raise CAEError(f"sweep_lambda item {item!r}: write <method>:<lambda>, method one of "
                           f"{list(ATTRIBUTION_METHODS)}, lambda > 0 (e.g. 'attention:30')")
        out.append((method, lam))
    return out


def sweep_grid(template: FinetuneConfig, sweep_lr, sweep_lambda) -> list[FinetuneConfig]:
    """Paper B's Table 8 as a grid: CLIP-FT at every learning rate of ``sweep_lr``, and every ``method:lambda`` of
    ``sweep_lambda`` at the template's learning rate (one seed, the template's, as the appendix reports)."""
    t = template.replace(hard_negatives=False, itc=True)
    return ([t.replace(method="none", lam=0.0, lr=float(lr)) for lr in sweep_lr]
            + [t.replace(method=m, lam=lam) for m, lam in parse_sweep(sweep_lambda)])


def sweep_models(runs: list[FinetunedModel]) -> pd.DataFrame:
    """The sweep's runs to evaluate, each labelled by its variant, learning rate and loss weight."""
    return pd.DataFrame([{"variant": f"{r.config.variant}, lr={r.config.lr:g}"
                          + (f", λ={r.config.lam:g}" if r.config.method != "none" else ""),
                          "seed": r.config.seed, "model": r.model_name, "lr": r.config.lr, "lam": r.config.lam,
                          "method": r.config.method} for r in runs])


def chapter_configs(p: Mapping, device: str = "cpu") -> tuple[list, list, list]:
    """The chapter's runs from its parameters (notebook parameter names): the grid, the loss ablation's arm and
    the λ/lr sweep, each config validated; the runner's checks call this too, so a bad knob or a warm-up as long as
    training fails before the first notebook."""
    lambdas = {m: p[f"lam_{m}"] for m in ATTRIBUTION_METHODS}
    configs = grid(p["methods"], p["hard_negatives"], p["seeds"], lambdas, base=p["base"], margin=p["margin"],
                   lr=p["lr"], weight_decay=p["weight_decay"], warmup=p["warmup"], epochs=p["epochs"],
                   batch_size=p["batch_size"], scenes=p["n_scenes"], family=p["family"],
                   relations=tuple(p["relations"]), attributes=tuple(p["attributes"]), classes=tuple(p["classes"]),
                   negative_kinds=tuple(p["negative_kinds"]), n_perturb=p["n_perturb"],
                   temperature=p["gradient_temperature"], coco_root=p["coco_root"], coco_split=p["coco_split"],
                   coco_images=p["coco_train_images"], vocabulary=p["vg_vocabulary"], device=device)
    ablation = ablation_grid(configs, p["ablation_method"]) if p["ablation_method"] else []
    sweep = sweep_grid(configs[0], p["sweep_lr"], p["sweep_lambda"])
    for c in configs + ablation + sweep:
        ft.check_schedule(c)
    return configs, ablation, sweep


def models_of(base: str, runs: list[FinetunedModel]) -> pd.DataFrame:
    """The models to evaluate: the base ("pretrained") and every run, with variant and seed."""
    rows = [{"variant": "pretrained", "seed": -1, "model": base}]
    rows += [{"variant": r.config.variant, "seed": r.config.seed, "model": r.model_name} for r in runs]
    return pd.DataFrame(rows)


def benchmark_frame(models: pd.DataFrame, benchmark: dict[str, list], device: str = "auto",
                    progress: bool = False, zoo: ModelZoo | None = None) -> pd.DataFrame:
    """Per-item results of every model on every subset (``benchmark``: name -> items), with two evaluation
    calls per model (choice items, pair items) rather than one per subset."""
    zoo = zoo or ModelZoo()
    groups = {}
    for name, items in benchmark.items():
        for item in items:
            groups.setdefault(isinstance(item, PairItem), []).append((name, item))
    frames = []
    for row in models.itertuples(index=False):
        enc = zoo.load(row.model, device=device)
        for tagged in groups.values():
            f = evaluate(enc, [item for _, item in tagged], progress=progress)
            if list(f.item_id.astype(str)) != [str(item.item_id) for _, item in tagged]:
                raise CAEError("evaluate() changed the order of the items")
            frames.append(f.assign(variant=row.variant, seed=row.seed, benchmark=[name for name, _ in tagged]))
    return pd.concat(frames, ignore_index=True)


def score_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in ("correct", "text", "image", "group") if c in frame.columns and frame[c].notna().any()]


def results_table(frame: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Accuracy per variant, benchmark and score column: pooled over seeds with n and a bootstrap 95 % interval
    over (item, seed) pairs, plus the mean and standard deviation of the per-seed accuracies."""
    rows = []
    for col in score_columns(frame):
        sub = frame[frame[col].notna()]
        for (variant, bench), g in sub.groupby(["variant", "benchmark"], sort=False):
            values = g[col].astype(float).to_numpy()
            lo, hi = bootstrap_ci(values, n_boot=n_boot, seed=seed)
            per_seed = g.groupby("seed")[col].mean().astype(float)
            rows.append({"variant": variant, "benchmark": bench, "score": col, "n": len(values),
                         "seeds": len(per_seed), "accuracy": float(values.mean()), "ci_low": lo, "ci_high": hi,
                         "seed_sd": float(per_seed.std(ddof=1)) if len(per_seed) > 1 else np.nan})
    return pd.DataFrame(rows)


def seed_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Paper B's own measure (its Table 7): per variant, benchmark and score, the mean and standard deviation of
    the per-seed accuracies and a Student-t 95 % interval over seeds (n = seeds), beside our pooled bootstrap."""
    rows = []
    for col in score_columns(frame):
        sub = frame[frame[col].notna() & (frame.variant != "pretrained")]
        for (variant, bench), g in sub.groupby(["variant", "benchmark"], sort=False):
            per_seed = g.groupby("seed")[col].mean().astype(float).to_numpy()
            lo, hi = t_interval(per_seed)
            rows.append({"variant": variant, "benchmark": bench, "score": col, "seeds": len(per_seed),
                         "mean": float(per_seed.mean()),
                         "sd": float(per_seed.std(ddof=1)) if len(per_seed) > 1 else np.nan,
                         "t_low": lo, "t_high": hi})
    return pd.DataFrame(rows, columns=["variant", "benchmark", "score", "seeds", "mean", "sd", "t_low", "t_high"])


def seed_wide(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`seed_table` for reading: variants as rows, (benchmark, score) as columns, cells 'mean ± sd [t interval]
    (seeds)' in percent, as paper B's Table 7 writes them."""
    def cell(r) -> str:
        sd = f" ± {100 * r.sd:.1f}" if np.isfinite(r.sd) else ""
        ci = f" [{100 * r.t_low:.1f}, {100 * r.t_high:.1f}]" if np.isfinite(r.t_low) else ""
        return f"{100 * r.mean:.1f}{sd}{ci} ({r.seeds})"

    t = table.assign(cell=[cell(r) for r in table.itertuples()],
                     column=[b if sc == "correct" else f"{b} ({sc})" for b, sc in zip(table.benchmark, table.score)])
    order = list(dict.fromkeys(table.variant))
    return t.pivot_table(index="variant", columns="column", values="cell", aggfunc="first").reindex(order)


def paired_gain(frame: pd.DataFrame, baseline: str = "CLIP-FT", n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Each variant minus ``baseline`` on the same items and seeds (a paired bootstrap over items)."""
    rows = []
    for col in score_columns(frame):
        sub = frame[frame[col].notna()]
        keys = ["benchmark", "subset", "seed", "item_id"]  # item ids repeat across a benchmark's subsets
        base = sub[sub.variant == baseline].set_index(keys)[col].astype(float)
        for variant, g in sub[~sub.variant.isin([baseline, "pretrained"])].groupby("variant", sort=False):
            mine = g.set_index(keys)[col].astype(float)
            joined = pd.concat([mine.rename("v"), base.rename("b")], axis=1, join="inner").reset_index()
            for bench, j in joined.groupby("benchmark", sort=False):
                d = (j.v - j.b).to_numpy()
                lo, hi = bootstrap_ci(d, n_boot=n_boot, seed=seed)
                rows.append({"variant": variant, "benchmark": bench, "score": col, "n": len(d),
                             "gain": float(d.mean()), "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


def attribution_frame(model_name: str, methods, captions, images: list, device: str = "auto",
                      batch_size: int = 64, n_perturb: int = 4, candidates=None, temperature: float = 1.0,
                      seed: int = 0, zoo: ModelZoo | None = None) -> pd.DataFrame:
    """Mean attribution of each caption's object tokens and composition tokens, per method.

    ``captions``: RoledCaptions; ``images``: their image paths (caption i describes image i).
    """
    bad = [m for m in methods if m not in ATTRIBUTION_METHODS]
    if bad:
        raise CAEError(f"unknown attribution methods {bad}; allowed: {list(ATTRIBUTION_METHODS)}")
    if "perturbation" in methods and not candidates:
        raise CAEError("the perturbation method needs candidate concepts per role")
    enc = (zoo or ModelZoo()).load(model_name, device=device)
    model = enc.model
    roles = token_roles(captions, enc.tokenizer)
    rows = []
    for start in range(0, len(captions), batch_size):
        sl = slice(start, start + batch_size)
        pixels = torch.stack([enc.preprocess(Image.open(p).convert("RGB")) for p in images[sl]]).to(enc.device)
        with torch.no_grad():
            img = model.encode_image(pixels, normalize=True)
        tokens = roles.tokens[sl].to(enc.device)
        for method in methods:
            extra = {"temperature": temperature}
            if method == "perturbation":
                batch = captions[sl]
                reps, pos = ft.perturbation_inputs([c.text for c in batch], [c.spans for c in batch], candidates,
                                                   enc.tokenizer, n_perturb, seed=seed + start)
                extra.update(replacements=[[r.to(enc.device) for r in row] for row in reps], positions=pos)
            scores = attribution(method, model, img, tokens, **extra).detach().float().cpu()
            for role in ATTRIBUTION_ROLES:
                mask = roles.mask(role)[sl]
                mean, has = role_means(scores, mask)
                for k in np.flatnonzero(has.numpy()):
                    rows.append({"caption": start + int(k), "method": method, "role": role, "score": float(mean[k])})
    return pd.DataFrame(rows)


def attribution_summary(frame: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per model and method: mean object and composition attribution, their ratio, and the share of captions
    whose composition tokens get less than their object tokens (what the hinge penalises), with intervals; and
    the attribute and relation tokens apart (``attribute_ratio``, ``relation_ratio``: their mean over the
    captions that have them, divided by the same captions' object mean), as paper B's Figure 1b shows them."""
    def ratio(wide: pd.DataFrame, role: str) -> float:
        both = wide[["object", role]].dropna() if role in wide else wide.iloc[:0]
        obj = both["object"].mean()
        return float(both[role].mean() / obj) if len(both) and obj != 0 else float("nan")

    rows = []
    for key, g in frame.groupby(["model", "method"], sort=False):
        wide = g.pivot_table(index="caption", columns="role", values="score")
        pair = wide[["object", "composition"]].dropna()
        below = (pair["composition"] < pair["object"]).astype(float).to_numpy()
        lo, hi = bootstrap_ci(below, n_boot=n_boot, seed=seed)
        rows.append({"model": key[0], "method": key[1], "n": len(pair), "object": pair["object"].mean(),
                     "composition": pair["composition"].mean(), "ratio": ratio(wide, "composition"),
                     "attribute_ratio": ratio(wide, "attribute"), "relation_ratio": ratio(wide, "relation"),
                     "share_comp_below_obj": below.mean(), "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------- reader's views
PAPER_B_METHOD = {"attention": "Attention-Based", "gradcam": "GradCAM-Based", "perturbation": "Perturbation-Based",
                  "gradient": "Gradient-Based"}


def paper_b_model(variant: str) -> tuple[int, str]:
    """Paper B's table and row name of one of our variants (Table 2 holds the hard-negative runs)."""
    hn = variant.endswith(" + HN")
    name = variant.removesuffix(" + HN")
    if name == "pretrained":
        return 1, "CLIP"
    if name == "CLIP-FT":
        return (2, "CLIP-FT with HN") if hn else (1, "CLIP-FT")
    if name.startswith("CAE attribution loss only"):  # Table 5 reports it only as benchmark averages
        return 5, "CAE attribution loss only"
    method = name.removeprefix("CLIP-CAE (").removesuffix(")")
    return (2 if hn else 1), f"CLIP-CAE ({PAPER_B_METHOD[method]})"


def wide_results(table: pd.DataFrame) -> pd.DataFrame:
    """Variants as rows, (benchmark, score) as columns, cells 'accuracy [95 % CI] (n)'; n counts (item, seed)
    pairs, so the seed-less base model has fewer."""
    t = table.assign(cell=[f"{fmt(a, lo, hi)} ({n})" for a, lo, hi, n in
                           zip(table.accuracy, table.ci_low, table.ci_high, table.n)],
                     column=[b if s == "correct" else f"{b} ({s})" for b, s in zip(table.benchmark, table.score)])
    order = list(dict.fromkeys(table.variant))
    wide = t.pivot_table(index="variant", columns="column", values="cell", aggfunc="first")
    return wide.reindex([v for v in order if v in wide.index])


def gain_commentary(gains: pd.DataFrame, baseline: str = "CLIP-FT") -> str:
    """One sentence per variant: on which benchmarks its paired 95 % interval against ``baseline`` lies above 0,
    below 0, or straddles it."""
    lines = []
    for variant, g in gains.groupby("variant", sort=False):
        if variant.endswith("+ HN") and baseline == "CLIP-FT":
            continue
        up = [f"{r.benchmark}/{r.score} ({r.gain:+.2f})" for r in g.itertuples() if r.ci_low > 0]
        down = [f"{r.benchmark}/{r.score} ({r.gain:+.2f})" for r in g.itertuples() if r.ci_high < 0]
        flat = len(g) - len(up) - len(down)
        text = f"- **{variant}** vs {baseline}: "
        text += (f"better on {', '.join(up)}; " if up else "better on none; ")
        text += (f"worse on {', '.join(down)}; " if down else "worse on none; ")
        text += f"no clear difference on {flat} of {len(g)}."
        lines.append(text)
    return "\n".join(lines) if lines else "No variant to compare."


def attribution_commentary(summary: pd.DataFrame) -> str:
    """Does each method give object tokens more attribution than composition tokens (paper B's finding), and
    does fine-tuning change the share of captions where it does?"""
    lines = []
    for method, g in summary.groupby("method", sort=False):
        parts = [f"{r.model}: composition/object ratio {ratio_text(r.ratio)}, composition below object in "
                 f"{r.share_comp_below_obj:.0%} [{r.ci_low:.0%}, {r.ci_high:.0%}] of {r.n} captions"
                 for r in g.itertuples()]
        lines.append(f"- **{method}** — " + "; ".join(parts) + ".")
    return "\n".join(lines)


def paper_b_beside(frame: pd.DataFrame, n_boot: int = 1000, seed: int = 0,
                   categories: pd.DataFrame | None = None) -> pd.DataFrame:
    """Paper B's table columns measured on published benchmarks, per variant (seeds pooled), with the
    paper's number for the same model row only beside the measure that produced it (ARO: the authors' macro
    over categories, given ARO's ``categories``; the item-level row stays, labelled, without a paper value)."""
    rows = []
    for variant, g in frame.groupby("variant", sort=False):
        # choice items and Winoground's pairs carry different score columns: summarise each kind on its own rows
        kinds = [k for k in (g[g["correct"].notna()] if "correct" in g else g.iloc[:0],
                             g[g["group"].notna()].dropna(axis=1, how="all") if "group" in g else g.iloc[:0]) if len(k)]
        s = pd.concat([paper_b_summary(k.dropna(axis=1, how="all"), n_boot=n_boot, seed=seed, categories=categories)
                       for k in kinds], ignore_index=True)
        table, model = paper_b_model(variant)
        pub = published_b(table=table)
        pub = pub[pub.model == model].set_index(["benchmark", "column"])["value"] / 100
        s["paper"] = [pub.get((b, c), np.nan) for b, c in zip(s.benchmark, s.column)]
        s["paper"] = s["paper"].where(s.paper_measure)
        rows.append(s.assign(variant=variant, paper_row=f"Table {table}: {model}"))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def training_curves(runs: list[FinetunedModel]) -> pd.DataFrame:
    """The runs' loss logs in long form: variant, seed, step, loss ("contrastive" / "attribution hinge"), value."""
    frames = [r.log.assign(variant=r.config.variant, seed=r.config.seed) for r in runs]
    log = pd.concat(frames, ignore_index=True).rename(columns={"itc": "contrastive", "attr": "attribution hinge"})
    return log.melt(id_vars=["variant", "seed", "step"], value_vars=["contrastive", "attribution hinge"],
                    var_name="loss", value_name="value")


def timing_table(runs: list[FinetunedModel]) -> pd.DataFrame:
    """Measured fine-tuning speed per variant: its runs (one per seed), steps per run, and seconds, samples and
    samples per second over all its runs, read off the runs' own logs (what each extra attribution pass costs over
    CLIP-FT)."""
    rows = [{"variant": r.config.variant, "seed": r.config.seed, "steps": len(r.log),
             "seconds": float(r.log.seconds.iloc[-1]), "samples": int(r.log.samples.iloc[-1])} for r in runs]
    g = pd.DataFrame(rows).groupby("variant", sort=False)
    t = g[["seconds", "samples"]].sum()  # over the variant's runs (one per seed)
    t.insert(0, "steps per run", g.steps.first())
    t.insert(0, "runs", g.size())
    t["samples_per_s"] = t.samples / t.seconds
    base = t.samples_per_s.get("CLIP-FT", np.nan)
    t["cost_vs_clip_ft"] = base / t.samples_per_s
    return t.reset_index()


@dataclass(frozen=True)
class HeldOut:
    """Captions with role spans and their images, unseen in fine-tuning, for the attribution distributions; and
    the concepts the perturbation method may swap in."""

    captions: list
    paths: list
    candidates: dict
    source: str  # what a reader is told the captions are


def held_out_captions(cfg: FinetuneConfig, n_captions: int, coco_split: str = "val2017",
                      vocabulary: dict | None = None) -> HeldOut:
    """Unseen captions of the run's own kind: with ``cfg.coco_root``, COCO captions of ``coco_split`` (the
    split paper B does not train on) tagged by the scene-graph parser; otherwise the run's generator with another
    seed. ``vocabulary`` (role -> concepts, e.g. Visual Genome's) replaces the data's own candidates."""
    if cfg.coco_root:
        if coco_split == cfg.coco_split:
            raise CAEError(f"the attribution captions must be unseen: coco_split {coco_split!r} is the fine-tuning "
                           "split too; use val2017 (paper B trains on train2017)")
        pairs = coco_pairs(cfg.coco_root, coco_split, n_captions, seed=cfg.data_seed)
        captions = [RoledCaption(t, s) for t, s in zip(pairs.texts, pairs.spans)]
        return HeldOut(captions, list(pairs.paths), vocabulary or pairs.candidates,
                       f"{len(captions)} COCO {coco_split} captions (scene-graph parser roles)")
    spec = cfg.composition_spec()
    held_out = generate_compositions(dataclasses.replace(spec, images=n_captions, seed=spec.seed + 10_000),
                                     progress=False)
    captions = [RoledCaption(t, s) for t, s in zip(held_out.captions, held_out.spans)]
    return HeldOut(captions, list(held_out.paths), vocabulary or concept_candidates(spec),
                   f"{len(captions)} held-out generated captions")


def attributions_before_after(base: str, runs: list[FinetunedModel], held_out: HeldOut, zoo: ModelZoo,
                              seed_of_runs: int, device: str = "auto", n_perturb: int = 4, temperature: float = 1.0,
                              seed: int = 0, base_frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per-caption object, attribute, relation and composition attributions of every method, for the base
    ("pretrained"; ``base_frame`` when already computed for the premise) and the runs of one seed without hard
    negatives, on held-out captions."""
    chosen = [r for r in runs if r.config.seed == seed_of_runs and not r.config.hard_negatives]
    models = ([] if base_frame is not None else [("pretrained", base)]) + [(r.config.variant, r.model_name)
                                                                           for r in chosen]
    frames = [attribution_frame(name, ATTRIBUTION_METHODS, held_out.captions, held_out.paths, device=device,
                                n_perturb=n_perturb, candidates=held_out.candidates, temperature=temperature,
                                seed=seed, zoo=zoo).assign(model=label) for label, name in models]
    return pd.concat(([base_frame] if base_frame is not None else []) + frames, ignore_index=True)


def ratio_text(v: float) -> str:
    """A ratio to the object tokens' mean for reading: a near-zero object mean makes one meaningless beyond
    two digits, so it is capped at 100 either way."""
    return "–" if not np.isfinite(v) else f"{v:.2f}" if abs(v) < 100 else (">100" if v > 0 else "<-100")


def premise_table(summary: pd.DataFrame, model: str | None = "pretrained") -> pd.DataFrame:
    """Paper B's premise per method (on one model; ``None``: every model, a column of its own): attribute,
    relation and composition tokens' mean attribution relative to the object tokens' (below 1: objects ahead),
    and the share of captions the hinge penalises."""
    t = summary if model is None else summary[summary.model == model]
    table = pd.DataFrame({"model": t.model, "method": t.method, "captions": t.n,
                          "attribute / object": t.attribute_ratio.map(ratio_text),
                          "relation / object": t.relation_ratio.map(ratio_text),
                          "composition / object": t.ratio.map(ratio_text),
                          "composition below object": [fmt(v, lo, hi) for v, lo, hi in
                                                       zip(t.share_comp_below_obj, t.ci_low, t.ci_high)]})
    return (table if model is None else table.drop(columns="model")).reset_index(drop=True)


def premise_note(summary: pd.DataFrame, source: str, model: str = "pretrained") -> str:
    """Does the premise hold on this base, method by method (the share of captions whose composition tokens get
    less than their object tokens, against an even 0.5), and which role lags: what CAE can act on here."""
    t = summary[summary.model == model]
    held = [r.method for r in t.itertuples() if r.ci_low > 0.5]
    against = [r.method for r in t.itertuples() if r.ci_high < 0.5]
    rel = [r.method for r in t.itertuples() if r.relation_ratio < 1]
    text = (f"On {source}: composition tokens get less attribution than object tokens in most captions under "
            f"**{', '.join(held) or 'no method'}** (95 % interval above one half)")
    text += f"; the reverse under **{', '.join(against)}**." if against else "."
    text += (f" Relation tokens get less than object tokens under {', '.join(rel)} (relation / object below 1)"
             if rel else " Relation tokens are not behind object tokens under any method")
    text += (". CAE's hinge pulls the composition mean up to the object mean, so it has work to do only where the "
             "premise holds." if held else ". The premise does not hold on this base, so the hinge is mostly "
             "inactive and CAE cannot be expected to differ from CLIP-FT.")
    return text


# ----------------------------------------------------------------------------------------- the chapter
@dataclass(frozen=True)
class BenchmarkFolders:
    """Where the user keeps each published benchmark of paper B's Tables 1–2 ('' = not given)."""

    aro_root: str = ""
    sugarcrepe_root: str = ""
    coco_images: str = ""  # SugarCrepe's images (COCO val2017)
    winoground_root: str = ""
    valse_root: str = ""
    valse_images: str = ""
    vl_checklist_root: str = ""
    vl_checklist_images: str = ""
    svo_probes_root: str = ""
    svo_probes_images: str = ""
    comvg_root: str = ""
    comvg_images: str = ""
    skip_missing: bool = False  # SVO-Probes / VL-CheckList / ComVG: drop (and count) rows whose image is absent


def published_benchmarks(folders: BenchmarkFolders) -> dict[str, list]:
    """The published benchmarks whose folders are given, read (every image path checked) before any training."""
    f, skip = folders, folders.skip_missing
    published = {}
    if f.aro_root:
        published["ARO relation"] = bm.load_aro(f.aro_root, "VG-Relation")
        published["ARO attribute"] = bm.load_aro(f.aro_root, "VG-Attribution")
    if f.sugarcrepe_root:
        published["SugarCrepe"] = bm.load_sugarcrepe(f.sugarcrepe_root, f.coco_images)
    if f.winoground_root:
        published["Winoground (clean)"] = bm.load_winoground(f.winoground_root, clean=True)
    if f.valse_root:
        published["VALSE"] = bm.load_valse(f.valse_root, f.valse_images)
    if f.vl_checklist_root:
        published["VL-CheckList"] = load_vl_checklist(f.vl_checklist_root, f.vl_checklist_images, skip_missing=skip)
    if f.svo_probes_root:
        published["SVO-Probes"] = load_svo_probes(f.svo_probes_root, f.svo_probes_images, skip_missing=skip)
    if f.comvg_root:
        published["ComVG"] = load_comvg(f.comvg_root, f.comvg_images, skip_missing=skip)
    return published


def aro_categories(folders: BenchmarkFolders) -> pd.DataFrame | None:
    """ARO's relation / attribute-pair of every record, for the authors' macro average (None without ARO)."""
    if not folders.aro_root:
        return None
    return pd.concat([bm.aro_categories(folders.aro_root, s) for s in bm.ARO_SUBSETS], ignore_index=True)


def dropped_note(published: dict[str, list]) -> str:
    """What a loader left out (skip_missing, negatives of no single type), so no row is dropped silently."""
    parts = [f"{name}: " + ", ".join(f"{n} {why}" for why, n in items.dropped.items())
             for name, items in published.items() if getattr(items, "dropped", None)]
    return ("Rows left out by the loaders — " + "; ".join(parts) + ".") if parts else "No benchmark row was left out."


# ------------------------------------------------------------------------------------ Table 3: retrieval
TABLE3_ROW = {"pretrained": "CLIP", **{f"CLIP-CAE ({m})": f"CLIP-CAE ({name})" for m, name in PAPER_B_METHOD.items()}}


def retrieval_sets(coco_karpathy: str = "", coco_karpathy_images: str = "", flickr_karpathy: str = "",
                   flickr_karpathy_images: str = "", max_images: int = 0) -> dict[str, KarpathySplit]:
    """Paper B's Table 3 test sets from their Karpathy split files (COCO 5k, Flickr30k 1k), checked up front;
    ``max_images`` keeps the first images of each (0 = all)."""
    sets = {}
    for name, file, images in (("MSCOCO", coco_karpathy, coco_karpathy_images),
                               ("Flickr30K", flickr_karpathy, flickr_karpathy_images)):
        if file:
            sets[name] = load_karpathy(file, images or None, "test", max_images or None)
    return sets


def generated_retrieval_set(cfg: FinetuneConfig, n_images: int) -> KarpathySplit:
    """An own-measure stand-in for Table 3 offline: held-out generated scenes, one caption each, as a test split
    (captions repeat across scenes here, so recall@1 is bounded well below 1 even for a perfect model)."""
    spec = cfg.composition_spec()
    held = generate_compositions(dataclasses.replace(spec, images=n_images, seed=spec.seed + 20_000), progress=False)
    return KarpathySplit(json_file=Path("generated"), images_root=Path(held.paths[0]).parent, split="test",
                         dataset="generated", image_paths=[Path(p) for p in held.paths],
                         image_ids=[str(i) for i in range(len(held.paths))], captions=list(held.captions),
                         text_image=np.arange(len(held.paths), dtype=np.int64))


def retrieval_frame(models: pd.DataFrame, sets: dict[str, KarpathySplit], ks=(1, 5, 10), device: str = "auto",
                    zoo: ModelZoo | None = None) -> pd.DataFrame:
    """Per-query retrieval hits of every model on every test set (variant, seed, dataset, direction, query, k)."""
    zoo = zoo or ModelZoo()
    frames = [retrieval_hits(zoo.load(row.model, device=device), ds, ks).assign(variant=row.variant, seed=row.seed,
                                                                                dataset=name)
              for row in models.itertuples(index=False) for name, ds in sets.items()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def retrieval_wide(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`retrieval_table` for reading: variants as rows, (test set, direction, R@k) as columns, cells
    'recall [95 % CI] (n)' with paper B's value after a bar where it has one."""
    def cell(r) -> str:
        paper = f" | paper {r.paper:.2f}" if np.isfinite(r.paper) else ""
        return f"{fmt(r.recall, r.ci_low, r.ci_high)} ({r.n}){paper}"

    t = table.assign(cell=[cell(r) for r in table.itertuples()],
                     column=[f"{d} {direction} R@{k}" for d, direction, k in zip(table.dataset, table.direction,
                                                                                 table.k)])
    order = list(dict.fromkeys(["pretrained", *table.variant]))
    wide = t.pivot_table(index="variant", columns="column", values="cell", aggfunc="first")
    return wide.reindex([v for v in order if v in wide.index])


def retrieval_gain(hits: pd.DataFrame, baseline: str = "pretrained", n_boot: int = 1000, seed: int = 0
                   ) -> pd.DataFrame:
    """Each fine-tuned variant's recall minus ``baseline``'s on the same queries (each seed's run against the one
    baseline model), per test set, direction and k, with a paired bootstrap 95 % interval."""
    if hits.empty:
        return pd.DataFrame(columns=["variant", "dataset", "direction", "k", "n", "gain", "ci_low", "ci_high"])
    keys = ["dataset", "direction", "k", "query"]
    base = hits[hits.variant == baseline].set_index(keys).hit.astype(float).rename("b")
    rows = []
    for (variant, dataset, direction, k), g in hits[hits.variant != baseline].groupby(
            ["variant", "dataset", "direction", "k"], sort=False):
        d = (g.hit.astype(float).to_numpy() - base.reindex(pd.MultiIndex.from_frame(g[keys])).to_numpy())
        d = d[~np.isnan(d)]
        lo, hi = bootstrap_ci(d, n_boot=n_boot, seed=seed)
        rows.append({"variant": variant, "dataset": dataset, "direction": direction, "k": int(k), "n": len(d),
                     "gain": float(d.mean()) if len(d) else np.nan, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


def retrieval_table(hits: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Recall@k per variant, test set, direction and k (seeds pooled: n counts query and seed pairs) with its 95 %
    interval, and paper B's Table 3 value for the same model row, set and column where there is one."""
    table = recall_table(hits, by=["variant", "dataset"], n_boot=n_boot, seed=seed)
    pub = published_b(table=3).set_index(["model", "benchmark", "column"]).fraction
    table["paper"] = [pub.get((TABLE3_ROW.get(v, ""), d, f"{direction} R@{k}"), np.nan)
                      for v, d, direction, k in zip(table.variant, table.dataset, table.direction, table.k)]
    return table


def plot_curves(runs: list[FinetunedModel]):
    """Contrastive loss and attribution hinge per step, one line per run (colour: variant), ln(batch) dotted:
    the contrastive loss of a model that cannot tell the pairs of a batch apart."""
    curves = training_curves(runs)
    losses = list(dict.fromkeys(curves["loss"]))
    fig, axes = figures.facets(len(losses), height=2.6, width=figures.FULL_WIDTH_IN)
    colours = figures.palette(curves.variant)
    for loss, ax in zip(losses, axes):
        for (variant, seed), t in curves[curves["loss"] == loss].groupby(["variant", "seed"], sort=False):
            ax.plot(t.step, t.value, color=colours[variant], lw=1, label=variant)
        if loss == "contrastive" and runs:
            chance = float(np.log(runs[0].config.batch_size))
            figures.chance_line(ax, chance, label=f"chance: ln(batch) = {chance:.2f}")
        ax.set(title=loss, xlabel="step", ylabel="loss" if ax is axes[0] else "")
    figures.title(fig, "Fine-tuning losses")
    figures.legend(fig, axes)
    return figures.finish(fig)


def result_chance(results: pd.DataFrame, choice: float = 0.5) -> pd.Series:
    """Chance per row of :func:`results_table`: its ``chance`` column where there is one, else ``choice`` for a
    choice item's ``correct`` (one true and one false caption: 0.5) and Winoground's 1/4, 1/4, 1/6."""
    if "chance" in results:
        return results["chance"].astype(float)
    return results.score.map(lambda s: bm.PAIR_CHANCE.get(s, choice)).astype(float)


def plot_results(results: pd.DataFrame, title: str = "Synthetic benchmark accuracy (seeds pooled)"):
    """Accuracy per task and variant (seeds pooled) with its 95 % interval (over item and seed pairs), each
    task's chance dotted (:func:`result_chance`)."""
    t = results.assign(task=(results.benchmark + " " + results.score.str.replace("correct", "")).str.strip(),
                       chance=result_chance(results))
    tasks = list(dict.fromkeys(t.task))
    colours = figures.palette(t.variant)
    variants = list(colours)
    fig, (ax,) = figures.facets(1, height=min(7.0, 0.6 + 0.09 * len(tasks) * len(variants) + 0.3 * len(tasks)),
                                width=figures.FULL_WIDTH_IN)
    step = 0.8 / max(1, len(variants))
    for k, variant in enumerate(variants):
        rows = t[t.variant == variant].drop_duplicates("task").set_index("task").reindex(tasks).dropna(
            subset=["accuracy"])
        y = np.array([tasks.index(v) for v in rows.index]) + (k - (len(variants) - 1) / 2) * step
        ax.plot(rows.accuracy, y, "o", ms=5, color=colours[variant], label=variant)
        figures.error_bars(ax, y, rows, rate="accuracy", horizontal=True, color_=colours[variant], capsize=1.5)
    chance = t.groupby("task", sort=False).chance.first().reindex(tasks)
    ax.vlines(chance, np.arange(len(tasks)) - 0.45, np.arange(len(tasks)) + 0.45, colors=figures.CHANCE,
              linestyles=":", lw=1.4, label="chance")
    figures.ticks(ax, tasks, axis="y")
    ax.grid(False, axis="y")
    for boundary in np.arange(len(tasks) - 1) + 0.5:
        ax.axhline(boundary, color="#DDDDDD", lw=0.8)
    ax.set(xlim=(-0.02, 1.02), xlabel="accuracy", ylabel="")
    ax.invert_yaxis()
    figures.title(fig, title)
    figures.legend(fig, [ax])
    return figures.finish(fig)


def gains_against_ft(scores: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> tuple[pd.DataFrame, str]:
    """Each variant against CLIP-FT (hard-negative variants against CLIP-FT + HN) on the same items, and the
    commentary read off the paired intervals."""
    hn_rows = scores.variant.str.endswith("+ HN")
    gains = pd.concat([paired_gain(scores[~hn_rows], "CLIP-FT", n_boot, seed),
                       paired_gain(scores[hn_rows], "CLIP-FT + HN", n_boot, seed)], ignore_index=True)
    if not len(gains):
        return gains, ""
    hn = gains.variant.str.endswith("+ HN")
    notes = [gain_commentary(gains[~hn], "CLIP-FT")] + ([gain_commentary(gains[hn], "CLIP-FT + HN")] if hn.any() else [])
    return gains, "\n".join(notes)


def sweep_gain(sweep_scores: pd.DataFrame, scores: pd.DataFrame, n_boot: int = 1000, seed: int = 0
               ) -> tuple[pd.DataFrame, str]:
    """Each sweep run against the grid's CLIP-FT run of the same seed on the same items (paired), so a loss
    weight that helps where the paper's does not is read off an interval, not off two pooled rates."""
    ft_rows = scores[(scores.variant == "CLIP-FT") & scores.seed.isin(set(sweep_scores.seed))]
    if not len(ft_rows):
        return pd.DataFrame(), "The grid has no CLIP-FT run of the sweep's seed: no paired comparison."
    gains = paired_gain(pd.concat([ft_rows, sweep_scores[sweep_scores.variant != "CLIP-FT"]], ignore_index=True),
                        "CLIP-FT", n_boot, seed)
    if not len(gains):
        return gains, ""
    note = gain_commentary(gains, "CLIP-FT")
    spread = seed_spread(scores[scores.variant == "CLIP-FT"])
    if np.isfinite(spread):
        note += (f"\n\nOne training run per setting: these intervals cover the test items, not the run's own "
                 f"randomness, and CLIP-FT's own seeds differ by up to {spread:.2f} on these scores (Table 7's "
                 "layout above). A gain smaller than that is not yet a property of the loss weight.")
    return gains, note


def seed_spread(frame: pd.DataFrame) -> float:
    """The largest difference between two seeds' accuracies on any benchmark and score (NaN under two seeds)."""
    spreads = []
    for col in score_columns(frame):
        per_seed = frame[frame[col].notna()].groupby(["benchmark", "seed"])[col].mean().astype(float)
        spreads += [g.max() - g.min() for _, g in per_seed.groupby(level=0) if len(g) > 1]
    return float(max(spreads)) if spreads else float("nan")


def plot_attributions(attr: pd.DataFrame):
    """Per-caption mean attribution of object vs composition tokens, per method (panels, two a row for four)
    and model (colour: the variant's)."""
    methods = list(dict.fromkeys(attr.method))
    colours = figures.palette(attr.model)
    fig, axes = figures.facets(len(methods), height=2.3, max_columns=2 if len(methods) == 4 else 3,
                               width=figures.FULL_WIDTH_IN)
    for method, ax in zip(methods, axes):
        sns.boxplot(data=attr[attr.method == method], x="role", y="score", hue="model", hue_order=list(colours),
                    palette=colours, fliersize=1, saturation=1, linewidth=0.8, ax=ax, legend=False)
        ax.set(title=method, xlabel="", ylabel="mean attribution" if ax.get_subplotspec().is_first_col() else "")
    handles = [Patch(facecolor=c, label=m) for m, c in colours.items()]
    figures.title(fig, "Per-caption mean attribution of object vs composition tokens")
    figures.legend(fig, handles=handles, labels=list(colours), title_="model")
    return figures.finish(fig)


# ------------------------------------------------------------------------------------------- honest caveats
WINOGROUND_CHANCE = {"text": 0.25, "image": 0.25, "group": 1 / 6}


def collapsed_runs(runs: list[FinetunedModel], tolerance: float = 0.95) -> pd.DataFrame:
    """Runs whose contrastive loss ended at chance, ln(batch size): the model stopped telling pairs apart. Their
    benchmark rows are then averaged into their variant, which a reader must know."""
    rows = []
    for r in runs:
        chance = float(np.log(r.config.batch_size))
        tail = r.log.itc.tail(max(1, len(r.log) // 10)).mean()
        rows.append({"variant": r.config.variant, "seed": r.config.seed, "final contrastive loss": round(tail, 3),
                     "chance ln(batch)": round(chance, 3), "collapsed": bool(tail >= tolerance * chance)})
    return pd.DataFrame(rows)


def collapse_note(table: pd.DataFrame) -> str:
    bad = table[table.collapsed]
    if bad.empty:
        return ("No run collapsed: every run's final contrastive loss is below 95 % of ln(batch size), the loss of "
                "a model that cannot tell the pairs of a batch apart.")
    if len(bad) == len(table):
        return (f"**Every run ended at chance** (contrastive loss ≈ ln(batch size) = {table['chance ln(batch)'].iloc[0]}): "
                "this budget is too short for any run to learn, so the benchmark rows below compare untrained "
                "fine-tunes and say nothing about the methods.")
    names = ", ".join(f"{r.variant} (seed {r.seed}, loss {r['final contrastive loss']})" for _, r in bad.iterrows())
    return (f"**{len(bad)} run(s) collapsed** — their contrastive loss ended at chance, ln(batch size): {names}. "
            "Their variant's benchmark rows above include them; read those rows as the cost of an unstable "
            "attribution loss at this learning rate, not as what the method does when it trains.")


def below_chance_note(results: pd.DataFrame) -> str:
    """Winoground scores whose interval lies below chance, and why that happens to a model that ignores the
    composition: its preferred caption wins for both images, so the text score (both captions must win their
    own image) fails one of the two every time."""
    t = results[(results.benchmark == "winoground") & results.score.isin(list(WINOGROUND_CHANCE))]
    low = [f"{r.variant} {r.score} {r.accuracy:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}] (chance "
           f"{WINOGROUND_CHANCE[r.score]:.2f})" for r in t.itertuples() if r.ci_high < WINOGROUND_CHANCE[r.score]]
    if not low:
        return "No Winoground score lies below its chance level."
    return ("**Below chance:** " + "; ".join(low) + ". Winoground's chance levels assume random scores. A model "
            "that prefers one of the two captions whatever the image (or one image whatever the caption) fails the "
            "text (image) rule on every such item, because the rule needs each caption to win its own image; so "
            "a model blind to the swapped composition scores *below* chance, not at it. Below-chance text and "
            "group scores therefore say the models read these captions as the same bag of objects.")


def plot_examples(bench: dict[str, list], width: float = 7.2):
    """One item of each benchmark subset as the model sees it: the image(s) with the true caption (✓) and the
    false one (✗); Winoground items show both images, caption i belonging to image i."""
    panels = []
    for subset, items in bench.items():
        if not items:
            continue
        item = items[0]
        if isinstance(item, PairItem):
            panels += [(f"{subset}, image {i + 1}", p, f"✓ {c}") for i, (p, c) in enumerate(zip(item.images, item.captions))]
        elif isinstance(item, ImageChoiceItem):  # one caption, its image (✓) and a wrong one (✗)
            panels += [(f"{subset}, ✓ image", item.true_image, item.text),
                       (f"{subset}, ✗ image", item.false_images[0], item.text)]
        else:
            panels.append((subset, item.image, f"✓ {item.true}\n✗ {item.false[0]}"))
    rows, cols = figures.grid_shape(len(panels))
    figures.style()
    fig, axes = plt.subplots(rows, cols, figsize=(min(width, figures.FULL_WIDTH_IN), 2.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, path, text) in zip(axes.flat, panels):
        ax.imshow(Image.open(path).convert("RGB"))
        ax.set_title(title, fontsize=10)
        wrapped = "\n".join(textwrap.fill(line, 30) for line in text.splitlines())
        ax.text(0.5, -0.04, wrapped, transform=ax.transAxes, ha="center", va="top", fontsize=figures.FONT_PT)
    fig.tight_layout()
    return figures.finish(fig)
