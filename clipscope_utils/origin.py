"""The causal test of paper A's origin hypothesis (section 4.3), on CLIPs trained here.

Paper A shows correlations: web captions mention large objects first, and CLIP's text encoder favours
the first object. With self-trained models the order of objects in the training captions becomes a
controlled factor (same scenes, same seed): if the text-side first-object bias is inherited from the
image side through captions that name the large object first, it should follow the caption order.
Each probe runs at every checkpoint, with the untrained model of the same seed as samples = 0 (part
of an image-side size preference needs no training: a large object simply covers more pixels).
"""

from __future__ import annotations

from typing import Iterable

import pandas as pd
from tqdm import tqdm

from .datasets.tables import SceneSet
from .models.registry import load_model
from .probes import experiments as ex
from .training import TrainedModel


def checkpoints(run: TrainedModel, which: str = "all") -> list[tuple[int, str]]:
    """(samples seen, registry name) of a run: its untrained start, its checkpoints ("all") or the final one."""
    cfg = run.config
    start = [(0, f"random:{cfg.model}:{cfg.seed}")]
    if which == "final":
        return [(max(run.checkpoints), run.model_name())]
    return start + [(s, run.model_name(s)) for s in sorted(run.checkpoints)]


def probe_runs(runs: Iterable[TrainedModel], scenes: SceneSet, template: str = "and", which: str = "all",
               probes: tuple[str, ...] = ("TOR", "IOR"), device: str = "auto", progress: bool = True) -> pd.DataFrame:
    """TOR / IOR / cross-modal TOR frames of every run and checkpoint, tagged ``order``, ``seed``, ``samples``."""
    runs = list(runs)
    jobs = [(run, s, name) for run in runs for s, name in checkpoints(run, which)]
    frames = []
    for run, samples, name in tqdm(jobs, desc="checkpoints", disable=not progress):
        enc = load_model(name, device=device)
        tag = dict(order=run.config.order, seed=run.config.seed, samples=samples)
        if "TOR" in probes:
            frames.append(ex.tor(enc, scenes, template).assign(**tag))
        if "cross-modal TOR" in probes:
            frames.append(ex.cross_modal_tor(enc, scenes, template).assign(**tag))
        if "IOR" in probes:
            frames.append(ex.ior(enc, scenes).assign(**tag))
    return pd.concat(frames, ignore_index=True)
