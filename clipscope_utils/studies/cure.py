"""A cure test (neither paper has it): does a first-object bias learned from largest-first captions go away
when the same model is fine-tuned on shuffled captions, and what does that cost?

Each largest-first run is fine-tuned from its final checkpoint in two arms equal in every knob but the caption
order: shuffled captions (the cure) and largest-first captions (the control: the same extra training without
the change). TOR's first-position rate and zero-shot accuracy are measured at every checkpoint of both arms,
samples = 0 being the starting checkpoint itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from .. import figures, measure
from ..datasets import SceneSet
from ..models.registry import load_model
from ..probes import report
from ..training import TrainConfig, TrainedModel, train_many
from ..training import sanity
from . import origin

CURE, CONTROL = "shuffled", "largest_first"  # the fine-tuning arms, by caption order


def check(block_configs: Sequence[TrainConfig], samples: int, lr: float) -> None:
    """Refuse impossible cure settings before any training (the arms' configs need the finished runs)."""
    if not any(c.order == "largest_first" for c in block_configs):
        raise ValueError("the cure test fine-tunes largest-first runs: add largest_first to the pretraining "
                         "orders, or set cure_samples = 0")
    block_configs[0].replace(order=CURE, samples=samples, lr=lr)  # TrainConfig's own checks, e.g. samples >= batch


def configs(base: Sequence[TrainedModel], samples: int, lr: float, checkpoints: int = 4) -> list[TrainConfig]:
    """The two arms for every largest-first run of ``base`` (checked before any work)."""
    check([r.config for r in base], samples, lr)
    starts = [r for r in base if r.config.order == "largest_first"]
    warmup = max(1, min(base[0].config.warmup, samples // base[0].config.batch_size // 10))
    return [r.config.replace(order=arm, init=str(r.final), samples=samples, lr=lr, warmup=warmup,
                             checkpoints=checkpoints)
            for r in starts for arm in (CURE, CONTROL)]


@dataclass
class CureTest:
    tor: pd.DataFrame        # TOR rate per arm, checkpoint, object count and position (seeds pooled)
    zero_shot: pd.DataFrame  # zero-shot accuracy per arm and checkpoint (seeds pooled)
    summary: str

    def first_position(self) -> pd.DataFrame:
        """The reader's table: first-position rate per arm and object count, one column per checkpoint."""
        t = self.tor[self.tor.position == 1]
        return report.wide(t.rename(columns={"samples": "fine-tuning samples"}), ["arm", "n_objects"],
                           "fine-tuning samples", paper_column=None)

    def plot(self):
        """TOR's first-position rate per checkpoint, one panel per object count (at most three a row), one colour
        per arm (the caption order's), 95 % intervals as bands, 1/n dotted."""
        t = self.tor[self.tor.position == 1].sort_values("samples")
        counts = sorted(t.n_objects.unique())
        fig, axes = figures.facets(len(counts), height=2.2, sharey=True)
        colours = figures.palette(t.arm)
        for n, ax in zip(counts, axes):
            figures.rate_lines(ax, t[t.n_objects == n], "samples", "arm", colours, chance=1 / n)
            ax.set_title(f"{n} objects", fontsize=figures.FONT_PT)
            ax.set_xlabel("fine-tuning samples")
        axes[0].set_ylabel("TOR first-position rate")
        figures.title(fig, "Fine-tuning a largest-first CLIP (bands: 95 % intervals)")
        figures.legend(fig, axes, title_="fine-tuning captions")
        return figures.finish(fig)


def run(base: Sequence[TrainedModel], scenes: SceneSet, samples: int, lr: float, checkpoints: int = 4,
        workers: int = 2, device: str = "auto", n_boot: int = 1000, seed: int = 0) -> CureTest:
    """Train both arms (cached), probe every checkpoint, tabulate with n and intervals."""
    arms = train_many(configs(base, samples, lr, checkpoints), workers=workers, progress=False)
    tor, zs = [], []
    for r in arms:
        for s, name in r.checkpoint_names("all"):
            enc = load_model(name, device=device)
            tags = dict(arm=f"{r.config.order} captions", seed=r.config.seed, samples=s)
            tor.append(measure.tor(enc, scenes).assign(**tags))
            zs.append(sanity.zero_shot(enc, scenes).assign(**tags))
    tor_table = report.retrieval_table(pd.concat(tor, ignore_index=True), by=("arm", "samples"),
                                       labels=origin.PROBE_LABELS["TOR"], n_boot=n_boot, seed=seed)
    zs_table = report.hit_table(pd.concat(zs, ignore_index=True), ["arm", "samples"], n_boot=n_boot, seed=seed)
    return CureTest(tor_table, zs_table, summary(tor_table, zs_table))


def summary(tor: pd.DataFrame, zero_shot: pd.DataFrame) -> str:
    """Per arm and object count: the first-position rate before and after fine-tuning, and the zero-shot cost."""
    lines = []
    first = tor[tor.position == 1]
    for (arm, n), t in first.groupby(["arm", "n_objects"], sort=False):
        t = t.sort_values("samples")
        a, b = t.iloc[0], t.iloc[-1]
        change = report.change(a, b)
        chance = " (now within chance)" if b.ci_low <= 1 / n <= b.ci_high else ""
        lines.append(f"- {arm}, {n} objects: {report.fmt(a.rate, a.ci_low, a.ci_high)} → "
                     f"{report.fmt(b.rate, b.ci_low, b.ci_high)} after {b.samples} samples, n = {int(b.n)}: "
                     f"{change}{chance}.")
    for arm, t in zero_shot.groupby("arm", sort=False):
        t = t.sort_values("samples")
        a, b = t.iloc[0], t.iloc[-1]
        lines.append(f"- zero-shot accuracy, {arm}: {report.fmt(a.rate, a.ci_low, a.ci_high)} → "
                     f"{report.fmt(b.rate, b.ci_low, b.ci_high)} (n = {int(b.n)}).")
    return "**Cure test, measured here:**\n\n" + "\n".join(lines)
