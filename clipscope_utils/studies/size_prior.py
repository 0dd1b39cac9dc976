"""Paper A's Claim 1 tested causally: CLIPs trained on scenes where some classes are usually drawn large.

Paper A (section 4, Fig. 4a, appendix 7.10) finds that CLIP's encoders favour objects that are large
*in the real world*, and reads it as learned from photos in which such objects usually fill the frame.
The correlation cannot tell that apart from anything else those words share. Here the cause is a knob:
the same scenes, seed and caption order, except that with probability ``size_prior`` the large object
of a training scene belongs to the real-world-large classes (:func:`clipscope_utils.datasets.sizes.prior_classes`). The runs without a
prior are the control; the untrained model of each seed is the floor.

Two measurements, both on inputs that carry no prior, so class and size are separated:

* text (TOR): captions mixing one prior-large class with other classes, the prior class at every
  position equally often: is the caption's nearest single-object caption the prior-large object more
  often after prior training than after prior-free training?
* image (IOR): the prior-free evaluation scenes, where a prior-large class is drawn small as often as
  any other: does the image embedding favour it even when it is small?
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import measure
from ..datasets.captions import TEMPLATES, caption
from ..datasets.tables import DatasetError
from ..probes import inputs, report, retrieval
from ..probes.report import fmt
from ..stats import bootstrap_ci, rate_table
from ..training import train_many
from ..zoo import ModelZoo

PRIOR = "prior-large class"
OTHER = "other class"


# -- probe inputs --------------------------------------------------------------------------------------
def mixed_captions(classes: Sequence[str], prior: Sequence[str], objects: Iterable[int] = (2, 3, 4),
                   per_count: int = 100, template: str = "and", seed: int = 0) -> pd.DataFrame:
    """Captions naming one prior-large class and ``n - 1`` other classes: the text-side queries.

    The prior class stands at each caption position equally often (caption ``i`` puts it at position
    ``i % n + 1``), so a class preference and a position preference cannot stand in for each other.
    Classes are drawn with ``default_rng([seed, n, i])``. Columns: ``query_id``, ``n_objects``, ``text``,
    ``objects`` (class ids into ``classes``, in caption order), ``prior_position``.
    """
    classes, prior, objects = list(classes), list(prior), [int(n) for n in objects]
    if template not in TEMPLATES:
        raise DatasetError(f"unknown caption template {template!r}; allowed: {sorted(TEMPLATES)}")
    if not prior or any(c not in classes for c in prior) or len(set(prior)) != len(prior):
        raise DatasetError(f"prior must be distinct names among the classes, got {prior}")
    others = [c for c in classes if c not in set(prior)]
    if not objects or any(not 2 <= n <= 5 for n in objects):
        raise DatasetError(f"objects must be counts in 2..5 (a caption mixes classes), got {objects}")
    if max(objects) - 1 > len(others):
        raise DatasetError(f"{max(objects)} objects need {max(objects) - 1} non-prior classes, only {len(others)}")
    if isinstance(per_count, bool) or not isinstance(per_count, (int, np.integer)) or per_count < 1:
        raise DatasetError(f"per_count must be a positive integer, got {per_count!r}")
    index = {c: i for i, c in enumerate(classes)}
    rows = []
    for n in objects:
        for i in range(per_count):
            rng = np.random.default_rng([seed, n, i])
            names = [others[int(k)] for k in rng.choice(len(others), size=n - 1, replace=False)]
            pos = i % n
            names.insert(pos, prior[int(rng.integers(len(prior)))])
            rows.append({"query_id": f"p{n}-{i:06d}", "n_objects": n, "text": caption(names, template),
                         "objects": tuple(index[c] for c in names), "prior_position": pos + 1})
    return pd.DataFrame(rows)


def _groups(class_ids: pd.Series, prior_ids: set[int]) -> np.ndarray:
    return np.where(class_ids.isin(prior_ids), PRIOR, OTHER)


def text_probe(enc, captions: pd.DataFrame, classes: Sequence[str], prior: Sequence[str],
               template: str = "and") -> pd.DataFrame:
    """TOR of the mixed captions against one single-object caption per class, each row tagged with its
    object's ``group`` (prior-large class or other) as ``role``, plus the caption's ``prior_position``."""
    refs = inputs.single_captions(list(classes), template)
    frame = retrieval.object_retrieval(measure.texts(enc, captions.text.tolist()), captions.objects.tolist(),
                                       measure.texts(enc, refs.text.tolist()), refs.class_id.tolist(),
                                       query_ids=captions.query_id.tolist())
    prior_ids = {i for i, c in enumerate(classes) if c in set(prior)}
    where = captions.set_index("query_id").prior_position
    return frame.assign(role=_groups(frame.class_id, prior_ids), prior_position=where.loc[frame.query_id].to_numpy(),
                        model=enc.name, probe="TOR")


def image_probe(enc, scenes, prior: Sequence[str]) -> pd.DataFrame:
    """IOR on (prior-free) scenes, each object tagged with its drawn size and class group as ``role``,
    e.g. "small · prior-large class": the case where a learned class preference and the size cue disagree."""
    frame = measure.ior(enc, scenes)
    prior_ids = {i for i, c in enumerate(scenes.classes) if c in set(prior)}
    size = np.where(frame.position == 1, "large", "small")
    return frame.assign(role=[f"{s} · {g}" for s, g in zip(size, _groups(frame.class_id, prior_ids))])


# -- runs and probing ----------------------------------------------------------------------------------
def condition_label(size_prior: float) -> str:
    return "no prior" if not size_prior else f"size prior {size_prior:g}"


def jobs(prior_runs, control_runs) -> list[tuple[dict, str]]:
    """(tags, model name) of every model the analysis probes: per seed the untrained start, the final
    checkpoint of the prior-free (control) run and of the prior run. Both runs of a seed must agree in
    every knob but ``size_prior`` (checked here, before any probing)."""
    controls = {r.config.seed: r for r in control_runs}
    out, seen = [], set()
    for run in prior_runs:
        cfg = run.config
        if not cfg.size_prior:
            raise ValueError(f"prior run of seed {cfg.seed} has size_prior 0")
        ctrl = controls.get(cfg.seed)
        if ctrl is None:
            raise ValueError(f"no prior-free control run for seed {cfg.seed}; controls: {sorted(controls)}")
        if ctrl.config.replace(size_prior=cfg.size_prior) != cfg:
            raise ValueError(f"seed {cfg.seed}: the control run differs from the prior run in more than size_prior")
        if cfg.seed not in seen:
            seen.add(cfg.seed)
            out.append((dict(condition="untrained", seed=cfg.seed), f"random:{cfg.model}:{cfg.seed}"))
        out.append((dict(condition=condition_label(0), seed=cfg.seed), ctrl.model_name()))
        out.append((dict(condition=condition_label(cfg.size_prior), seed=cfg.seed), run.model_name()))
    if not out:
        raise ValueError("no prior runs given")
    return out


def probe(jobs_: list[tuple[dict, str]], scenes, captions: pd.DataFrame, prior: Sequence[str],
          template: str = "and", device: str = "auto", progress: bool = False,
          zoo: ModelZoo | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The text (mixed captions) and image (prior-free scenes) frames of every job, tagged with its tags."""
    zoo = zoo or ModelZoo()
    texts, images = [], []
    for tags, name in tqdm(jobs_, desc="size-prior probes", disable=not progress):
        enc = zoo.load(name, device=device)
        texts.append(text_probe(enc, captions, scenes.classes, prior, template).assign(**tags))
        images.append(image_probe(enc, scenes, prior).assign(**tags))
    return pd.concat(texts, ignore_index=True), pd.concat(images, ignore_index=True)


# -- tables, figure, commentary ------------------------------------------------------------------------
def _per_query(frame: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Mean hit per (seed, query, role) and grouping: objects of one query are not independent draws,
    so every interval resamples queries, never objects."""
    keys = list(dict.fromkeys(["seed", "query_id", *by, "role"]))
    missing = [c for c in keys + ["hit"] if c not in frame]
    if missing:
        raise ValueError(f"frame lacks columns {missing}; pass the output of size_prior.probe")
    return frame.groupby(keys, sort=False, observed=True).hit.mean().reset_index()


def role_rates(frame: pd.DataFrame, by: Sequence[str] = ("condition",), n_boot: int = 1000,
               seed: int = 0) -> pd.DataFrame:
    """Retrieval rate of one object of each role (queries × seeds pooled), with n queries and a 95 % interval.

    A rate is per object: with no preference every object of an ``n``-object query scores ``1/n``
    (less the share retrieved outside the query), whatever its role.
    """
    return rate_table(_per_query(frame, by), [*by, "role"], "hit", n_boot=n_boot, seed=seed)


def position_rates(text_frame: pd.DataFrame, by: Sequence[str] = ("condition",), n_boot: int = 1000,
                   seed: int = 0) -> pd.DataFrame:
    """TOR rate of the prior-large object by its caption position, per object count (``label``: first ...)."""
    prior = text_frame[text_frame.role == PRIOR]
    t = rate_table(prior, [*by, "n_objects", "position"], "hit", n_boot=n_boot, seed=seed)
    return t.assign(label=[retrieval.caption_labels(int(p)) for p in t.position])


def prior_effect(frame: pd.DataFrame, treated: str, control: str = condition_label(0),
                 by: Sequence[str] = (), n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Paired effect of the prior per role: rate after prior training minus rate after prior-free training,
    on the same queries (and seed), with a bootstrap 95 % interval over queries. ``by`` adds groupings
    (e.g. ``("seed",)`` for one row per training seed)."""
    conds = set(frame.condition)
    for c in (treated, control):
        if c not in conds:
            raise ValueError(f"condition {c!r} not in the frame; conditions: {sorted(conds)}")
    per = _per_query(frame, ["condition", *by])
    keys = list(dict.fromkeys(["seed", "query_id", *by, "role"]))
    wide = per[per.condition == treated].merge(per[per.condition == control], on=keys, suffixes=("_t", "_c"))
    rows = []
    for key, g in wide.groupby([*by, "role"], sort=True):
        key = key if isinstance(key, tuple) else (key,)
        d = (g.hit_t - g.hit_c).to_numpy()
        lo, hi = bootstrap_ci(d, n_boot=n_boot, seed=seed)
        rows.append({**dict(zip([*by, "role"], key)), "n": len(d), "treated": float(g.hit_t.mean()),
                     "control": float(g.hit_c.mean()), "effect": float(d.mean()), "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=[*by, "role", "n", "treated", "control", "effect", "ci_low", "ci_high"])


def figure(rates: pd.DataFrame, title: str = "Claim 1, causally: retrieval rate of one object, by role",
           chance: float | dict | None = None):
    """Bars of per-object rates by role and condition (one panel per probe), with the tables' own intervals.

    ``chance``: the rate of one object under no preference (mean 1/n over the queries, :func:`chance_levels`),
    one number or one per probe; dotted where given."""
    short = {PRIOR: "prior-large", OTHER: "other"}  # two short lines per tick: four IOR roles share a panel
    t = rates.assign(role=[" · ".join(short.get(w, w) for w in r.split(" · ")).replace(" · ", "\n")
                           for r in rates.role])
    if isinstance(chance, dict) and "probe" in t:
        t = t.assign(chance=t.probe.map(chance))
        chance = "auto"
    return report.rate_bars(t, x="role", hue="condition", col="probe" if "probe" in t else None, col_wrap=2,
                            title=title, height=2.8, chance=chance, ylabel="retrieval rate per object")


def chance_levels(text: pd.DataFrame, image: pd.DataFrame) -> dict[str, float]:
    """Per probe: the per-object rate under no preference, mean 1/n over the queries (each retrieval landing on
    one of the query's own objects; retrievals of absent classes lower every role alike)."""
    def level(frame: pd.DataFrame) -> float:
        return float((1 / frame.drop_duplicates(["seed", "query_id"]).n_objects).mean())
    return {"TOR": level(text), "IOR": level(image)}


def _verdict(row) -> str:
    if row.ci_low > 0:
        return "**the prior raised it**"
    if row.ci_high < 0:
        return "**the prior lowered it**"
    return "no effect detected at this sample size"


def found_share(frame: pd.DataFrame, by: Sequence[str] = ("condition",)) -> pd.Series:
    """Share of queries whose nearest reference is one of their own objects (1 − ``miss``), per group:
    the scale of the per-object rates, which are small when most retrievals land on absent classes."""
    first = frame[frame.position == 1]
    return (1 - first.miss).groupby([first[c] for c in by], sort=False).mean()


def summary(text_effect: pd.DataFrame, image_effect: pd.DataFrame, treated: str,
            text: pd.DataFrame | None = None, image: pd.DataFrame | None = None) -> str:
    """The commentary of the section, generated from the paired-effect tables (pooled over seeds); with the
    per-query frames ``text`` / ``image`` it also states how often the models find any object at all."""
    def line(row, what: str) -> str:
        return (f"- {what}: {row.treated:.2f} with the prior vs {row.control:.2f} without, "
                f"effect {fmt(row.effect, row.ci_low, row.ci_high)} (n = {int(row.n)} query–seed pairs): {_verdict(row)}.")

    out = [f"**Claim 1, causally — {treated} vs no prior, measured here:**", ""]
    t = text_effect.set_index("role")
    if PRIOR in t.index:
        out.append(line(t.loc[PRIOR], "Text (TOR): a mixed caption retrieves its prior-large object"))
    if OTHER in t.index:
        out.append(line(t.loc[OTHER], "Text (TOR): ... one of its other objects"))
    i = image_effect.set_index("role")
    for role, what in ((f"small · {PRIOR}", "Image (IOR): a prior-large class drawn *small* is retrieved"),
                       (f"large · {OTHER}", "Image (IOR): a large object of another class is retrieved"),
                       (f"large · {PRIOR}", "Image (IOR): a prior-large class drawn large is retrieved")):
        if role in i.index:
            out.append(line(i.loc[role], what))
    sides = {"the text side": text_effect[text_effect.role == PRIOR],
             "the image side (prior-large class drawn small)": image_effect[image_effect.role == f"small · {PRIOR}"]}
    seen = [k for k, t in sides.items() if len(t) and t.ci_low.iloc[0] > 0]
    missing = [k for k in sides if k not in seen]
    verdict = ("**It did not appear here**: no interval for the prior-large class lies above zero." if not seen else
               f"It appeared on {' and '.join(seen)}" + (f"; **not on {' or '.join(missing)}**." if missing else "."))
    out += ["", "Claim 1's mechanism predicts a rise for the prior-large class on both sides. " + verdict]
    if text is not None and image is not None:
        t, i = found_share(text), found_share(image)
        scale = "; ".join(f"{c}: {t.get(c, np.nan):.0%} of captions, {i.get(c, np.nan):.0%} of images"
                          for c in ("untrained", condition_label(0), treated))
        out += ["", f"For scale, the share of queries whose nearest reference is one of their own objects ({scale}); "
                    "the rest goes to classes the query does not contain, which is why per-object rates are small."]
    return "\n".join(out)


# -- the whole experiment, as the origin chapter runs it ---------------------------------------------
def prior_configs(controls, size_prior: float) -> list:
    """The prior runs: each control config with ``size_prior`` set (validated now, before any training)."""
    if not 0 < size_prior <= 1:
        raise ValueError(f"size_prior must be in (0, 1] for a prior run, got {size_prior!r}")
    return [c.replace(size_prior=float(size_prior)) for c in controls]


@dataclass
class PriorExperiment:
    """Everything the chapter shows: per-query frames, rate and effect tables and the commentary."""

    treated: str
    prior: tuple[str, ...]
    text: pd.DataFrame
    image: pd.DataFrame
    rates: pd.DataFrame
    positions: pd.DataFrame
    effects: pd.DataFrame
    effects_by_seed: pd.DataFrame
    summary: str

    def rate_tables(self) -> list[tuple[str, pd.DataFrame]]:
        """Per probe: a title and the reader's table of per-object rates by condition and role."""
        return [(f"**{probe}: retrieval rate of one object, by role** (rate [95 % CI], n query–seed pairs)",
                 report.wide(rates, ["condition"], "role", paper_column=None))
                for probe, rates in self.rates.groupby("probe", sort=False)]

    def effect_tables(self) -> list[tuple[str, pd.DataFrame]]:
        """The paired effects of the prior (seeds pooled, then per seed) and the text side by caption position."""
        return [(f"**Paired effect of the prior** ({self.treated} − no prior, same queries and seed)",
                 self.effects.round(3)),
                ("**Per training seed**", self.effects_by_seed.round(3)),
                ("**Text: the prior-large object by its caption position** (does the class cue beat the position "
                 "cue?)", report.wide(self.positions, ["condition", "n_objects"], "label", paper_column=None))]


def run(controls, priors, scenes, per_count: int, template: str = "and", workers: int = 2,
        device: str = "auto", n_boot: int = 1000, seed: int = 0, progress: bool = False) -> PriorExperiment:
    """Train the prior runs (and their controls, usually cached), probe both sides, tabulate.

    ``scenes`` are prior-free evaluation scenes (``scene_spec(cfg, "eval")``); the mixed captions take
    ``per_count`` captions per multi-object count of ``scenes``.
    """
    if len(controls) != len(priors) or not priors:
        raise ValueError("give one prior config per control config")
    prior = priors[0].prior_classes()
    counts = sorted(int(n) for n in scenes.multi().images.n_objects.unique())
    captions = mixed_captions(scenes.classes, prior, counts, per_count, template, seed)  # checked before training
    trained = train_many(list(controls) + list(priors), workers=workers, progress=progress)
    job_list = jobs(trained[len(controls):], trained[:len(controls)])
    treated = condition_label(priors[0].size_prior)
    text, image = probe(job_list, scenes, captions, prior, template, device, progress)
    both = pd.concat([text, image], ignore_index=True)
    effects = pd.concat([prior_effect(f, treated, n_boot=n_boot, seed=seed).assign(probe=p)
                         for p, f in (("TOR", text), ("IOR", image))], ignore_index=True)
    by_seed = pd.concat([prior_effect(f, treated, by=("seed",), n_boot=n_boot, seed=seed).assign(probe=p)
                         for p, f in (("TOR", text), ("IOR", image))], ignore_index=True)
    rank = {"TOR": 0, "IOR": 1, "untrained": 0, condition_label(0): 1, treated: 2}  # reading order of the tables

    def ordered(t: pd.DataFrame) -> pd.DataFrame:
        cols = [c for c in ("probe", "condition") if c in t]
        t = t.sort_values(cols, key=lambda s: s.map(rank), kind="stable").reset_index(drop=True)
        return t[cols + [c for c in t.columns if c not in cols]]

    return PriorExperiment(
        treated=treated, prior=prior, text=text, image=image,
        rates=ordered(role_rates(both, ("probe", "condition"), n_boot=n_boot, seed=seed)),
        positions=ordered(position_rates(text, n_boot=n_boot, seed=seed)),
        effects=ordered(effects), effects_by_seed=ordered(by_seed),
        summary=summary(effects[effects.probe == "TOR"], effects[effects.probe == "IOR"], treated, text, image),
    )
