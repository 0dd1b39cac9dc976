"""The causal test of paper A's origin hypothesis (section 4.3), on CLIPs trained here.

Paper A shows correlations: web captions mention large objects first, and CLIP's text encoder favours
the first object. With self-trained models the order of objects in the training captions becomes a
controlled factor (same scenes, same seed): if the text-side first-object bias is inherited from the
image side through captions that name the large object first, it should follow the caption order.
Each probe runs at every checkpoint, with the untrained model of the same seed as samples = 0 (part
of an image-side size preference needs no training: a large object simply covers more pixels).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd
from tqdm import tqdm

from .. import attention as att
from .. import figures
from .. import measure
from ..datasets import SceneSet
from ..datasets.coco import coco_files
from ..models.registry import load_model
from ..probes import report, retrieval
from ..training import TrainedModel
from . import pretraining as pt

#: per probe: how its positions are labelled
PROBE_LABELS = {"TOR": retrieval.caption_labels, "cross-modal TOR": retrieval.caption_labels,
                "IOR": retrieval.size_labels}


def probe_checkpoints(jobs: list[tuple[dict, str]], scenes: SceneSet, template: str = "and",
                      probes: tuple[str, ...] = ("TOR", "IOR"), device: str = "auto",
                      progress: bool = False) -> pd.DataFrame:
    """Run the probes on each ``(tags, model name)`` job; every row carries its job's tags."""
    frames = []
    for tags, name in tqdm(jobs, desc="checkpoints", disable=not progress):
        enc = load_model(name, device=device)
        if "TOR" in probes:
            frames.append(measure.tor(enc, scenes, template).assign(**tags))
        if "cross-modal TOR" in probes:
            frames.append(measure.cross_modal_tor(enc, scenes, template).assign(**tags))
        if "IOR" in probes:
            frames.append(measure.ior(enc, scenes).assign(**tags))
    return pd.concat(frames, ignore_index=True)


def probe_runs(runs: Iterable[TrainedModel], scenes: SceneSet, template: str = "and", which: str = "all",
               probes: tuple[str, ...] = ("TOR", "IOR"), device: str = "auto", progress: bool = False) -> pd.DataFrame:
    """TOR / IOR / cross-modal TOR frames of every run and checkpoint, tagged ``order``, ``seed``, ``samples``."""
    jobs = [(dict(order=run.config.order, seed=run.config.seed, samples=s), name)
            for run in runs for s, name in run.checkpoint_names(which)]
    return probe_checkpoints(jobs, scenes, template, probes, device, progress)


# -- the origin chapter: final checkpoints by training-caption order ---------------------------------------
def check_inputs(coco_root: str) -> None:
    """A missing COCO folder fails now, before any training."""
    if coco_root:
        coco_files(coco_root, "val2017")


def untrained_and_final(frames: pd.DataFrame, probe: str) -> pd.DataFrame:
    """One probe's rows of the untrained start and the final checkpoint, tagged ``state``."""
    last = frames.samples.max()
    f = frames[(frames.probe == probe) & frames.samples.isin([0, last])]
    return f.assign(state=f.samples.map({0: "untrained", last: "trained"}))


@dataclass
class ProbeSection:
    """One probe of the origin chapter: its rates by state and order, the reader's table and the commentary."""

    probe: str
    table: pd.DataFrame
    wide: pd.DataFrame
    summary: str

    def plot(self):
        """Rates per position after training, one colour per caption order, 1/n dotted."""
        trained = self.table[(self.table.position > 0) & (self.table.state == "trained")]
        return report.rate_bars(trained, x="label", hue="order", col="n_objects",
                                title=f"{self.probe} after training, by caption order")


def untrained_once(table: pd.DataFrame, column: str = "order", label: str = "any") -> pd.DataFrame:
    """A state × ``column`` table with the untrained rows once, ``column`` = ``label``: the untrained start of a
    seed is the same model whatever the caption order it is then trained on, so its rows repeat per order."""
    untrained = table[table.state == "untrained"]
    if untrained.empty:
        return table
    first = untrained[column].iloc[0]
    return pd.concat([untrained[untrained[column] == first].assign(**{column: label}),
                      table[table.state != "untrained"]], ignore_index=True)


def probe_section(frames: pd.DataFrame, probe: str, title: str, n_boot: int = 1000, seed: int = 0) -> ProbeSection:
    """Rates per position of the untrained and final models (seeds pooled) and the bias commentary."""
    table = report.retrieval_table(untrained_and_final(frames, probe), by=("state", "order"),
                                   labels=PROBE_LABELS[probe], n_boot=n_boot, seed=seed)
    wide = report.wide(untrained_once(table[table.position > 0]), ["state", "order", "n_objects"], "label",
                       paper_column=None)
    summary = report.position_bias_summary(table[table.state == "trained"].assign(model=lambda d: d.order), title)
    return ProbeSection(probe, table, wide, summary)


@dataclass
class AttentionOfRuns:
    """CLS attention of every run, untrained and final: per-role shares and paired differences."""

    roles: pd.DataFrame
    diffs: pd.DataFrame

    def table(self) -> pd.DataFrame:
        """The paired large − small differences and their verdicts, one row per model and variant."""
        controls = [m for m in self.roles.model.unique() if str(m).startswith("untrained")]
        return att.summary_table(self.roles, self.diffs, controls=controls)

    def line(self) -> str:
        return att.summary_line(self.table())

    def attention_wide(self) -> pd.DataFrame:
        r = self.roles
        return report.wide(att.as_percent(r[(r.measure == "attention") & (r.variant == "last")]), ["model"], "role",
                           paper_column=None)


def attention_of_runs(runs: Sequence[TrainedModel], scenes: SceneSet, device: str = "auto", n_boot: int = 1000,
                      seed: int = 0) -> AttentionOfRuns:
    """Figure 3's measure on every run's untrained start and final checkpoint (3-object scenes when there)."""
    n_att = 3 if 3 in scenes.images.n_objects.values else int(scenes.multi().images.n_objects.max())
    frames, seen = [], set()
    for r in runs:
        for state, (samples, name) in zip(("untrained", "trained"), r.checkpoint_names("final")):
            if state == "untrained" and name in seen:  # one untrained start per seed, whatever the order
                continue
            seen.add(name)
            f = att.attention_table(load_model(name, device=device), scenes, n_objects=n_att, seed=seed,
                                    per_layer=False, progress=False)
            label = (f"untrained (seed {r.config.seed})" if state == "untrained" else
                     f"trained: {r.config.order} (seed {r.config.seed})")
            frames.append(f.assign(model=label))
    frame = pd.concat(frames, ignore_index=True)
    roles = att.role_table(frame, n_boot=n_boot, seed=seed)
    diffs = att.paired_difference(frame, n_boot=n_boot, seed=seed)
    return AttentionOfRuns(roles, diffs)


# -- the progression chapter ----------------------------------------------------------------------------
def progression(runs: Sequence[TrainedModel], scenes: SceneSet, external: Sequence[tuple[int, str]] = (),
                device: str = "auto", n_boot: int = 1000, seed: int = 0,
                checkpoints: Sequence[tuple[dict, str]] = ()) -> pd.DataFrame:
    """First-position rate (TOR: first caption object; IOR: the large object) at every checkpoint of every run,
    of any external checkpoints (``order`` "external") and of tagged ``checkpoints`` (``(tags, model name)``,
    e.g. the open_clip_train runs of :func:`laion.causal_jobs`), seeds pooled, with n and intervals."""
    parts = [probe_runs(runs, scenes, which="all", probes=("TOR", "IOR"), device=device)] if runs else []
    jobs = [(dict(order="external", seed=0, samples=s), name) for s, name in external] + list(checkpoints)
    if jobs:
        parts.append(probe_checkpoints(jobs, scenes, probes=("TOR", "IOR"), device=device))
    frames = pd.concat(parts, ignore_index=True)
    prog = report.retrieval_table(frames[frames.probe.isin(["TOR", "IOR"])], by=("probe", "order", "samples"),
                                  n_boot=n_boot, seed=seed)
    return prog[prog.position == 1]


def plot_progression(prog: pd.DataFrame):
    """One panel per probe and object count (at most three a row): rate per checkpoint, one colour per caption
    order, 95 % intervals as bands, 1/n dotted."""
    panels = list(prog[["probe", "n_objects"]].drop_duplicates().sort_values(["probe", "n_objects"],
                                                                              ascending=[False, True]).itertuples(
        index=False, name=None))
    per_probe = max(1, prog.groupby("probe").n_objects.nunique().max())  # a row per probe when it fits
    fig, axes = figures.facets(len(panels), height=2.2, max_columns=min(figures.MAX_COLUMNS, per_probe))
    colours = figures.palette(prog.order)
    for (probe, n), ax in zip(panels, axes):
        figures.rate_lines(ax, prog[(prog.probe == probe) & (prog.n_objects == n)], "samples", "order", colours,
                           chance=1 / n)
        ax.set_title(f"{probe}, {n} objects", fontsize=figures.FONT_PT)
        ax.set_xlabel("samples seen")
    axes[0].set_ylabel("first-position rate")
    figures.title(fig, "First-position rate while training (bands: 95 % intervals)")
    figures.legend(fig, axes, title_="caption order")
    return figures.finish(fig)


def progression_wide(prog: pd.DataFrame) -> pd.DataFrame:
    """The same rates as a table: one column per checkpoint."""
    return prog.pivot_table(index=["probe", "n_objects", "order"], columns="samples", values="rate").round(2)


# -- the quality confound: fixed budget against matched quality ------------------------------------------
def matched_checkpoints(curve: pd.DataFrame, target: float) -> pd.DataFrame:
    """Per run (``order``, ``seed``): the trained checkpoint whose zero-shot accuracy is closest to ``target``
    (ties: the earlier one). ``curve`` is :func:`pretraining.sanity_curve`'s table."""
    if not 0 < target <= 1:
        raise ValueError(f"matched_accuracy must be in (0, 1], got {target}")
    trained = curve[curve.samples > 0].assign(gap=lambda d: (d.rate - target).abs())
    picked = trained.sort_values(["gap", "samples"]).groupby(["order", "seed"], sort=False).head(1)
    return picked.sort_values(["order", "seed"])[["order", "seed", "samples", "n", "rate", "ci_low", "ci_high"]]


def matched_frames(runs: Sequence[TrainedModel], picked: pd.DataFrame, scenes: SceneSet, template: str = "and",
                   device: str = "auto") -> pd.DataFrame:
    """TOR and IOR frames of every run at its matched checkpoint."""
    at = {(r.order, r.seed): int(r.samples) for r in picked.itertuples()}
    jobs = []
    for run in runs:
        samples = at[(run.config.order, run.config.seed)]
        jobs.append((dict(order=run.config.order, seed=run.config.seed, samples=samples), run.model_name(samples)))
    return probe_checkpoints(jobs, scenes, template, ("TOR", "IOR"), device)


def budget_comparison(fixed: pd.DataFrame, matched: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """TOR and IOR per position at the fixed budget (final checkpoints) and at matched quality, seeds pooled."""
    last = fixed.samples.max()
    frames = pd.concat([fixed[(fixed.samples == last) & fixed.probe.isin(["TOR", "IOR"])].assign(
                            comparison="fixed budget"), matched.assign(comparison="matched quality")],
                       ignore_index=True)
    parts = [report.retrieval_table(f, by=("comparison", "order"), labels=PROBE_LABELS[probe], n_boot=n_boot,
                                    seed=seed).assign(probe=probe) for probe, f in frames.groupby("probe", sort=False)]
    return pd.concat(parts, ignore_index=True)


def verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """Which position each condition prefers (first or last, its interval above every other's), per
    comparison, and whether the fixed-budget and matched-quality verdicts agree."""
    rows = []
    for (probe, order, n, comparison), t in table.groupby(["probe", "order", "n_objects", "comparison"], sort=False):
        rows.append({"probe": probe, "order": order, "n_objects": n, "comparison": comparison,
                     "verdict": report.preferred_position(t) or "no dominant position"})
    wide = pd.DataFrame(rows).pivot_table(index=["probe", "n_objects", "order"], columns="comparison",
                                          values="verdict", aggfunc="first", sort=False)
    wide["agree"] = wide["fixed budget"] == wide["matched quality"]
    wide.columns.name = None
    return wide.reset_index()


def verdict_summary(v: pd.DataFrame, picked: pd.DataFrame) -> str:
    """The commentary: how far apart the conditions' quality was, and whether the verdicts survive matching."""
    acc = ", ".join(f"{r.order} seed {r.seed}: {report.fmt(r.rate, r.ci_low, r.ci_high)} (n = {r.n}) at {r.samples}"
                    for r in picked.itertuples())
    differ = v[~v.agree]
    text = (f"**Measured here:** the matched checkpoints (zero-shot accuracy, samples seen): {acc}. "
            f"The verdicts agree in {int(v.agree.sum())} of {len(v)} cells (probe × object count × condition)")
    if differ.empty:
        return text + ": at matched quality the conclusions are the same as at the fixed budget."
    cells = "; ".join(f"{r['probe']} {r['n_objects']} objects, {r['order']}: {r['fixed budget']} → "
                      f"{r['matched quality']}" for _, r in differ.iterrows())
    return text + f". They differ in: {cells}. Those conclusions depend on how far the runs had learned."


# -- the position artefact: centred references against references at the object's own slot -------------------
def untrained_counted_once(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows pooled over caption orders, with the untrained start kept once: it is one random init per seed whatever
    the order, so its per-order copies are the same queries, and pooling them would multiply n and narrow the
    interval."""
    start = frame.state == "untrained"
    once = frame[start].drop_duplicates(subset=[c for c in frame.columns if c != "order"])
    return pd.concat([once, frame[~start]], ignore_index=True)


def slot_control(runs: Sequence[TrainedModel], scenes: SceneSet, frames: pd.DataFrame, device: str = "auto",
                 n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """IOR's large-object rate by the large object's slot, with centred references (the paper's setup: the IOR
    rows of ``frames``, :func:`probe_runs`'s untrained and final states) and with references at every slot (a
    class scores its best), orders and seeds pooled. Where the two agree, IOR reads size; where only the centre
    slot stands out with centred references, it reads position."""
    parts = [untrained_counted_once(untrained_and_final(frames, "IOR")).assign(reference="centred")]
    seen: set[str] = set()
    for r in runs:
        for state, (_, name) in zip(("untrained", "trained"), r.checkpoint_names("final")):
            if name in seen:
                continue
            seen.add(name)
            parts.append(measure.ior(load_model(name, device=device), scenes, reference_position="slots").assign(
                state=state, reference="at every slot"))
    frame = pd.concat(parts, ignore_index=True)
    frame["large_slot"] = frame.query_id.map(scenes.images.set_index("image_id").large_slot)
    table = report.retrieval_table(frame, by=("state", "reference", "large_slot"), labels=retrieval.size_labels,
                                   n_boot=n_boot, seed=seed)
    return table[table.position == 1]


def slot_summary(table: pd.DataFrame) -> str:
    """Per state and object count: does the centre slot stand out with centred references, and without them?"""
    lines = []
    for (state, n), t in table.groupby(["state", "n_objects"], sort=False):
        parts = []
        for reference, u in t.groupby("reference", sort=False):
            centre = u[u.large_slot == "M"]
            others = u[u.large_slot != "M"]
            if centre.empty or others.empty:
                parts.append(f"{reference} references: " + ", ".join(
                    f"{s} {report.fmt(r, lo, hi)}" for s, r, lo, hi in
                    zip(u.large_slot, u.rate, u.ci_low, u.ci_high)))
                continue
            c = centre.iloc[0]
            stands = c.ci_low > others.ci_high.max()
            parts.append(f"{reference} references: centre {report.fmt(c.rate, c.ci_low, c.ci_high)} vs corners "
                         f"{others.rate.min():.2f}–{others.rate.max():.2f}"
                         + (" (**centre stands out**)" if stands else ""))
        lines.append(f"- {state}, {n} objects: " + "; ".join(parts) + ".")
    return "**Large-object rate by its slot, measured here:**\n\n" + "\n".join(lines)


def caption_order_effect_on_ior(section: ProbeSection) -> str:
    """Whether IOR's large-object rate after training differs between caption orders (it should not, if the
    image side learns size regardless of the captions): the conditions with the highest and lowest rate per
    object count, and whether their intervals are apart."""
    t = section.table
    large = t[(t.state == "trained") & (t.position == 1)]
    lines = []
    for n, g in large.groupby("n_objects", sort=True):
        hi, lo = g.loc[g.rate.idxmax()], g.loc[g.rate.idxmin()]
        apart = hi.ci_low > lo.ci_high
        lines.append(f"- {n} objects: {hi.order} {report.fmt(hi.rate, hi.ci_low, hi.ci_high)} vs {lo.order} "
                     f"{report.fmt(lo.rate, lo.ci_low, lo.ci_high)}" + (": **apart**." if apart else ": not apart."))
    differs = any(line.endswith("**apart**.") for line in lines)
    verdict = ("**The image side depends on the caption order here**, contrary to the expectation stated at the top "
               "of this chapter: the captions shape what the image encoder learns to retrieve, so IOR is not a "
               "caption-free measure of size preference in these models." if differs else
               "The image side's large-object rate does not detectably depend on the caption order, as expected.")
    return "**IOR by caption order (trained, seeds pooled):**\n\n" + "\n".join(lines) + "\n\n" + verdict
