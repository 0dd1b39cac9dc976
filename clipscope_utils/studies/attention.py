"""The CLS-attention chapter (paper A Figure 3): every model with a CLS-token ViT through the attention
measure, overlays of a seeded choice of scenes, and the models that cannot be read, with the reason."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import pandas as pd

from .. import attention as att
from ..datasets import SceneSet
from ..zoo import ModelZoo


@dataclass
class AttentionRun:
    """Per-image attention rows of every readable model, their overlay figures and the skipped models."""

    frame: pd.DataFrame
    figures: dict = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    controls: list[str] = field(default_factory=list)

    def describe(self, what: str) -> str:
        """One line on what was measured (``what``: the scenes, e.g. "3 objects (comco, 64 px), region: mask"),
        and a line per skipped model."""
        text = (f"{self.frame.image_id.nunique()} images with {what}; models: {', '.join(self.frame.model.unique())}"
                + (f"; random-init controls: {', '.join(self.controls)}" if self.controls else ""))
        return "\n".join([text] + [f"skipped {name}: {why}" for name, why in self.skipped.items()])


def attention_run(zoo: ModelZoo, names: Sequence[str], scenes: SceneSet, n_images: int, region: str = "mask",
                  overlays: int = 4, device: str = "auto", seed: int = 0) -> AttentionRun:
    """The attention table of every model that has a CLS token (others skipped with the reason)."""
    frames, figures, skipped = [], {}, {}
    for name, enc in zoo.encoders(names, device, progress=False):
        try:
            att.vision_transformer(enc)
        except att.AttentionError as e:  # e.g. SigLIP (timm tower, attention-pooled): no CLS token to read
            skipped[name] = str(e)
            continue
        frames.append(att.attention_table(enc, scenes, n_images=n_images, seed=seed, region=region, progress=False))
        if overlays:
            shown = att.choose_images(scenes, min(overlays, n_images), seed=seed)
            figures[name] = att.plot_overlays(enc, scenes, shown, region=region)
            plt.close(figures[name])
    if not frames:
        raise att.AttentionError(f"no model of {list(names)} has a CLS-token ViT: {skipped}")
    frame = pd.concat(frames, ignore_index=True)
    controls = [n for n in frame.model.unique() if zoo.resolve(n).source == "random"]
    return AttentionRun(frame, figures, skipped, controls)


def attention_runs(zoo: ModelZoo, names: Sequence[str], sources: dict[str, SceneSet], n_images: int,
                   region: str = "mask", overlays: int = 4, device: str = "auto", seed: int = 0) -> AttentionRun:
    """:func:`attention_run` on every source (label -> scenes). Real datasets store boxes, not masks, so their
    region is the box whatever ``region`` says. With several sources each row's ``model`` reads
    ``"<model> · <dataset>"`` so every table and figure keeps them apart."""
    runs = []
    for label, scenes in sources.items():
        kind = region if scenes.meta.get("source", "generated") == "generated" else "box"
        n = min(n_images, len(scenes.multi().images))
        run = attention_run(zoo, names, scenes, n, region=kind, overlays=overlays, device=device, seed=seed)
        runs.append((label, kind, run))
    if len(runs) == 1:
        return runs[0][2]
    def tag(name: str, label: str) -> str:
        return f"{name} · {label}"
    frame = pd.concat([r.frame.assign(model=r.frame.model.map(lambda m, l=label: tag(m, l)))
                       for label, _, r in runs], ignore_index=True)
    figures = {tag(n, label): f for label, _, r in runs for n, f in r.figures.items()}
    skipped = {tag(n, label): why for label, _, r in runs for n, why in r.skipped.items()}
    controls = [tag(n, label) for label, _, r in runs for n in r.controls]
    return AttentionRun(frame, figures, skipped, controls)
