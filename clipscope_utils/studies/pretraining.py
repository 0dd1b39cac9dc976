"""The self-trained CLIPs as the pretraining chapter shows them: the runs of the profile's ``pretraining`` block,
their loss curves and the sanity checks that decide whether their biases can mean anything.

The block (the pretraining chapter's parameters) is what every chapter's ``trained:`` names resolve to
(:class:`~clipscope_utils.zoo.ModelZoo`), and what the progression and origin chapters train and probe, so the
whole book reads one set of self-trained CLIPs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

from .. import figures
from ..datasets import SceneSet, generate_cached
from ..training import TrainConfig, TrainedModel, sanity, train_many
from ..probes import report
from ..training.data import scene_spec
from ..models.registry import load_model
from ..zoo import ModelZoo

SMOOTHING_STEPS = 20
#: the pretraining chapter's parameters, which form the block every other chapter receives as ``pretraining``
BLOCK_PARAMETERS = ("model", "family", "objects", "n_scenes", "orders", "p_first", "seeds", "samples", "batch_size",
                    "lr", "checkpoints", "n_eval_scenes", "workers", "device", "n_boot", "seed")


def configs(block: Mapping, orders: Sequence[str] | None = None) -> list[TrainConfig]:
    """One config per (caption order, seed) of the block, equal in every other knob (checked before any work)."""
    zoo = ModelZoo.from_pretraining(block)
    return [zoo.trained_config(o, s) for o in (orders or block["orders"]) for s in block["seeds"]]


def long_configs(block: Mapping, orders: Sequence[str], samples: int, checkpoints: int) -> list[TrainConfig]:
    """The long runs: the first seed of each of ``orders``, trained ``samples`` long with ``checkpoints`` evenly
    spaced (its own cosine schedule over the longer run; every other knob is the block's)."""
    if samples <= block["samples"]:
        raise ValueError(f"long_samples ({samples}) must exceed the pretraining runs' samples ({block['samples']})")
    return [c.replace(samples=samples, checkpoints=checkpoints) for c in configs(block, orders)
            if c.seed == block["seeds"][0]]


def train_runs(block: Mapping) -> list[TrainedModel]:
    """The block's runs, trained ``workers`` at a time (cached by their full configuration)."""
    return train_many(configs(block), workers=block["workers"], progress=False)


def eval_scenes(block: Mapping) -> SceneSet:
    """Unseen evaluation scenes of the block's generator (``n_eval_scenes`` per multi-object count)."""
    return generate_cached(scene_spec(configs(block)[0], "eval", images=block["n_eval_scenes"]), progress=False)


def run_table(runs: Sequence[TrainedModel]) -> pd.DataFrame:
    """One row per run: its knobs, steps, final loss, measured speed, checkpoints and cache key."""
    return pd.DataFrame([{**{k: getattr(r.config, k) for k in ("order", "seed", "samples", "batch_size", "lr")},
                          "steps": r.config.steps, "final loss": round(r.log.loss.iloc[-1], 3),
                          "samples/s": round(r.log.samples.iloc[-1] / r.log.seconds.iloc[-1], 1),
                          "checkpoints": len(r.checkpoints), "key": r.folder.name.rsplit("-", 1)[-1]} for r in runs])


def loss_curves(runs: Sequence[TrainedModel], window: int = SMOOTHING_STEPS) -> pd.DataFrame:
    """The runs' loss logs in one frame with a ``loss (smoothed)`` column (rolling mean over ``window`` steps)."""
    logs = pd.concat([r.log.assign(order=r.config.order, seed=r.config.seed) for r in runs], ignore_index=True)
    logs["loss (smoothed)"] = logs.groupby(["order", "seed"]).loss.transform(
        lambda s: s.rolling(window, min_periods=1).mean())
    return logs


def _runs_panel(ax, table: pd.DataFrame, y: str, colours: dict, marker: str | None = None) -> None:
    """One line per run: the caption order's colour, one dash pattern per seed."""
    dashes = ["-", "--", "-.", ":"]
    seeds = list(dict.fromkeys(sorted(table.seed)))
    for (order, seed), t in table.sort_values("samples").groupby(["order", "seed"], sort=False):
        label = order if len(seeds) == 1 else f"{order}, seed {seed}"
        ax.plot(t.samples, t[y], color=colours[order], ls=dashes[seeds.index(seed) % len(dashes)], lw=1.3,
                marker=marker, ms=4, label=label)


def plot_losses(logs: pd.DataFrame, batch_size: int):
    """Smoothed loss per run (colour: caption order; dashes: seed); dotted: ln(batch), the loss of a model that
    cannot tell the pairs apart."""
    fig, (ax,) = figures.facets(1, height=2.8, width=5.6)
    _runs_panel(ax, logs, "loss (smoothed)", figures.palette(logs.order))
    figures.chance_line(ax, math.log(batch_size), label=f"chance: ln(batch) = {math.log(batch_size):.2f}")
    ax.set(xlabel="samples seen", ylabel="loss (smoothed)")
    figures.title(fig, "Contrastive loss while training")
    figures.legend(fig, [ax])
    return figures.finish(fig)


#: the bar every self-trained run must reach before its biases are read (point estimates on unseen scenes)
QUALITY_BARS = {"zero-shot accuracy": 0.90, "recall@1 image→text": 0.30, "recall@1 text→image": 0.30}


def _checks(enc, scenes: SceneSet, zero_shot_only: bool) -> pd.DataFrame:
    zs = sanity.zero_shot(enc, scenes).assign(metric="zero-shot accuracy")
    if zero_shot_only:
        return zs
    rc = sanity.recall_at_1(enc, scenes)
    rc["metric"] = "recall@1 " + rc.direction
    own = sanity.own_object_share(enc, scenes)
    own["metric"] = "own object nearest (" + own.probe + ")"
    return pd.concat([zs, rc, own], ignore_index=True)


def sanity_table(runs: Sequence[TrainedModel], scenes: SceneSet, device: str = "auto", n_boot: int = 1000,
                 seed: int = 0) -> pd.DataFrame:
    """Zero-shot accuracy and recall@1 of every run, untrained (same seed) and trained, with n and intervals."""
    rows = []
    for r in runs:
        for label, name in (("untrained", f"random:{r.config.model}:{r.config.seed}"), ("trained", r.model_name())):
            rows.append(_checks(load_model(name, device=device), scenes, zero_shot_only=False)
                        .assign(order=r.config.order, seed=r.config.seed, state=label))
    return report.hit_table(pd.concat(rows, ignore_index=True), ["metric", "state", "seed", "order"],
                            n_boot=n_boot, seed=seed)


def quality(table: pd.DataFrame) -> pd.DataFrame:
    """One row per trained run: its rate on each quality bar and whether it reaches every bar."""
    t = table[(table.state == "trained") & table.metric.isin(QUALITY_BARS)]
    bars = {m: b for m, b in QUALITY_BARS.items() if m in set(t.metric)}  # the checks that were run
    wide = t.pivot_table(index=["order", "seed"], columns="metric", values="rate", sort=False)[list(bars)]
    wide.columns.name = None
    misses = [", ".join(m for m, bar in bars.items() if row[m] < bar) for _, row in wide.iterrows()]
    return wide.round(3).assign(**{"meets the bars": [not m for m in misses], "misses": misses}).reset_index()


def quality_note(runs_quality: pd.DataFrame) -> str:
    """The flag every chapter that pools the runs shows: which runs miss a quality bar (or that none does)."""
    bars = ", ".join(f"{m} ≥ {b:.2f}" for m, b in QUALITY_BARS.items())
    low = runs_quality[~runs_quality["meets the bars"]]
    if low.empty:
        return f"All {len(runs_quality)} runs reach the quality bars ({bars}) on unseen scenes."
    names = "; ".join(f"{r.order} seed {r.seed} ({r.misses})" for r in low.itertuples())
    return (f"**Flag:** {len(low)} of {len(runs_quality)} runs miss a quality bar ({bars}): {names}. Their rates "
            "are pooled below with the others; read them with that caveat.")


def sanity_curve(runs: Sequence[TrainedModel], scenes: SceneSet, device: str = "auto", n_boot: int = 1000,
                 seed: int = 0) -> pd.DataFrame:
    """Zero-shot accuracy at every checkpoint of every run (samples = 0: the untrained start)."""
    rows = []
    for r in runs:
        for samples, name in r.checkpoint_names():
            rows.append(_checks(load_model(name, device=device), scenes, zero_shot_only=True)
                        .assign(order=r.config.order, seed=r.config.seed, samples=samples))
    return report.hit_table(pd.concat(rows, ignore_index=True), ["order", "seed", "samples"], n_boot=n_boot, seed=seed)


def add_bands(ax, table: pd.DataFrame, keys: Sequence[str], x: str = "samples", alpha: float = 0.15,
              chance: float | None = None):
    """The tables' own 95 % intervals as a band under each line (one line per ``keys`` group, coloured by its
    first key), chance dotted: the one interval plot of the training chapters."""
    figures.bands(ax, table, x, keys, alpha=alpha)
    figures.chance_line(ax, chance)
    return ax


def plot_sanity_curve(curve: pd.DataFrame, chance_level: float):
    """Zero-shot accuracy per checkpoint, one line per run (colour: caption order; dashes: seed), with 95 %
    intervals as bands and chance dotted."""
    fig, (ax,) = figures.facets(1, height=2.8, width=5.6)
    colours = figures.palette(curve.order)
    _runs_panel(ax, curve, "rate", colours, marker="o")
    figures.bands(ax, curve, "samples", ["order", "seed"], colours)
    figures.chance_line(ax, chance_level, label=f"chance (1/classes = {chance_level:.3f})")
    ax.set(xlabel="samples seen", ylabel="zero-shot accuracy", ylim=(0, 1))
    figures.title(fig, "Zero-shot single-object accuracy while training (bands: 95 % intervals)")
    figures.legend(fig, [ax])
    return figures.finish(fig)


def chance(scenes: SceneSet) -> float:
    """Zero-shot chance level: one class among all."""
    return 1 / len(scenes.classes)


def verdict(table: pd.DataFrame, chance_level: float) -> str:
    """The commentary of the sanity section, generated from the trained runs' zero-shot rates and intervals."""
    zs = table[table.metric == "zero-shot accuracy"]
    trained = zs[zs.state == "trained"]
    above = trained[trained.ci_low > chance_level]
    ok = quality(table)
    means = trained.groupby("order", sort=False).rate.mean()
    text = (f"**Measured here:** zero-shot single-object accuracy of the trained runs ranges "
            f"{trained.rate.min():.2f}–{trained.rate.max():.2f} (chance {chance_level:.3f}); "
            + (f"all {len(trained)} runs are clearly above chance (interval above it)."
               if len(above) == len(trained) else
               f"only {len(above)} of {len(trained)} runs are clearly above chance; the others say little about "
               f"object representations at this budget.")
            + " Per condition (seeds pooled): " + ", ".join(f"{o} {v:.2f}" for o, v in means.items()) + ". "
            + quality_note(ok))
    others = means.drop("largest_first", errors="ignore")
    if "largest_first" in means and len(others) and means["largest_first"] > others.max():
        text += (" The largest-first condition learned objects best at this budget (plausibly because its "
                 "single-object captions are prefixes of its scene captions; this book has not tested that "
                 "explanation).")
    return text
