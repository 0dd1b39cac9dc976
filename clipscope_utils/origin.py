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
    """(samples seen, registry name) of a run: its untrained start, then all its checkpoints or the final one."""
    if which not in ("all", "final"):
        raise ValueError(f"which must be 'all' or 'final', got {which!r}")
    cfg = run.config
    start = [(0, f"random:{cfg.model}:{cfg.seed}")]
    if which == "final":
        return start + [(max(run.checkpoints), run.model_name())]
    return start + [(s, run.model_name(s)) for s in sorted(run.checkpoints)]


def parse_external(entries: Iterable[str]) -> list[tuple[int, str]]:
    """``"SAMPLES=MODEL"`` entries (e.g. ``"2000000000=ViT-B-32@/ckpt/epoch_10.pt"``), checked before any work.

    For checkpoints trained elsewhere, such as LAION's scaling-laws run paper A used for Fig. 4c.
    """
    from .models.registry import resolve

    out = []
    for entry in entries:
        samples, sep, name = entry.partition("=")
        if not sep or not samples.strip().isdigit():
            raise ValueError(f"external checkpoint {entry!r}: expected 'SAMPLES=MODEL', e.g. "
                             "'2000000000=ViT-B-32@/path/epoch_10.pt'")
        out.append((int(samples), resolve(name.strip()).name))
    return out


def probe_checkpoints(jobs: list[tuple[dict, str]], scenes: SceneSet, template: str = "and",
                      probes: tuple[str, ...] = ("TOR", "IOR"), device: str = "auto",
                      progress: bool = True) -> pd.DataFrame:
    """Run the probes on each ``(tags, model name)`` job; every row carries its job's tags."""
    frames = []
    for tags, name in tqdm(jobs, desc="checkpoints", disable=not progress):
        enc = load_model(name, device=device)
        if "TOR" in probes:
            frames.append(ex.tor(enc, scenes, template).assign(**tags))
        if "cross-modal TOR" in probes:
            frames.append(ex.cross_modal_tor(enc, scenes, template).assign(**tags))
        if "IOR" in probes:
            frames.append(ex.ior(enc, scenes).assign(**tags))
    return pd.concat(frames, ignore_index=True)


def probe_runs(runs: Iterable[TrainedModel], scenes: SceneSet, template: str = "and", which: str = "all",
               probes: tuple[str, ...] = ("TOR", "IOR"), device: str = "auto", progress: bool = True) -> pd.DataFrame:
    """TOR / IOR / cross-modal TOR frames of every run and checkpoint, tagged ``order``, ``seed``, ``samples``."""
    jobs = [(dict(order=run.config.order, seed=run.config.seed, samples=s), name)
            for run in runs for s, name in checkpoints(run, which)]
    return probe_checkpoints(jobs, scenes, template, probes, device, progress)
