"""What a self-trained CLIP is: every knob of its data, model and optimisation, hashed into its cache key.

The experimental factor of the book's causal experiment is ``order``: the same scenes, the same seed,
only the order of the objects in the training captions changes. ``size_prior`` is the factor of the
Claim 1 experiment: the real-world-large classes (``datasets.sizes.prior_classes``) are usually the large
object of a training scene.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import open_clip
import torch

from ..datasets import sizes
from ..datasets.tables import DatasetError
from ..device import pick_device
from ..paths import file_sha256
from .throughput import PRECISIONS

ORDERS = ("largest_first", "shuffled", "largest_last")
TRAINER_VERSION = 2  # bump when the loop changes what a config produces (2: fused AdamW, fitted context)
# Knobs added after runs were cached: at their default value they are left out of the key material, so
# every earlier config keeps its key (and ``trained:<order>[:seed]`` its cached run).
KEYLESS_DEFAULTS = {"size_prior": 0.0, "init": ""}


class TrainingError(ValueError):
    """An impossible training request (bad parameter, unknown model config)."""


@dataclass(frozen=True)
class TrainConfig:
    """A small open_clip model trained from scratch on generated scenes.

    The defaults are the default profile's pretraining chapter (a test keeps them equal), so the
    registry name ``trained:<order>:<seed>`` names the same cached run the book trains.

    ``order``: where the largest object goes in each training caption; with ``largest_first`` the
    largest object leads with probability ``p_first`` and the caption is shuffled otherwise (paper A's
    web captions mention large objects early, not always first).

    ``size_prior``: probability that a training scene's large object is drawn from the family's
    real-world-large classes (its small ones then from the others); 0 = no prior. Evaluation scenes
    never carry it (see ``data.scene_spec``).
    """

    model: str = "clipscope-small"
    family: str = "comco"
    objects: tuple[int, ...] = (1, 2, 3, 4)
    scenes: int = 2000  # generated scenes per object count
    image_size: int = 64
    large_size: float = 0.38
    small_size: float = 0.18
    template: str = "and"
    order: str = "largest_first"
    p_first: float = 1.0
    samples: int = 48000  # training samples seen in total
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup: int = 50  # optimiser steps
    checkpoints: int = 8  # evenly spaced checkpoints (in samples seen), the last at ``samples``
    seed: int = 0
    threads: int = 1
    device: str = "cpu"
    size_prior: float = 0.0
    precision: str = "bf16"  # "bf16": bf16 autocast, attention and loss in fp32 (see ``throughput``); or "fp32"
    init: str = ""  # an open_clip checkpoint of ``model`` to start from ('' = from scratch): the cure test

    def __post_init__(self) -> None:
        object.__setattr__(self, "objects", tuple(int(n) for n in self.objects))
        self.validate()

    def validate(self) -> None:
        if self.order not in ORDERS:
            raise TrainingError(f"order must be one of {list(ORDERS)}, got {self.order!r}")
        if not 0.0 <= self.p_first <= 1.0:
            raise TrainingError(f"p_first must be in [0, 1], got {self.p_first}")
        if not self.model.startswith("clipscope-"):
            raise TrainingError(f"train a project config (clipscope-*), got {self.model!r}")
        if not self.objects or min(self.objects) < 1 or max(self.objects) > 5:
            raise TrainingError(f"objects must be counts in 1..5, got {self.objects}")
        for name in ("scenes", "samples", "batch_size", "checkpoints", "threads"):
            if getattr(self, name) < 1:
                raise TrainingError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.samples < self.batch_size:
            raise TrainingError(f"samples ({self.samples}) must be at least one batch ({self.batch_size})")
        n_train = self.scenes * len(self.objects)
        if self.batch_size > n_train:
            raise TrainingError(f"batch_size {self.batch_size} is larger than the {n_train} training scenes "
                                f"({self.scenes} per object count x {len(self.objects)} counts): a contrastive batch "
                                "needs distinct pairs; lower batch_size or raise n_scenes")
        if self.init and not Path(self.init).is_file():
            raise TrainingError(f"init: the starting checkpoint {self.init} does not exist; give a finished run's "
                                "checkpoint file (TrainedModel.final) or '' to train from scratch")
        if self.precision not in PRECISIONS:
            raise TrainingError(f"precision must be one of {list(PRECISIONS)}, got {self.precision!r}")
        if self.lr <= 0 or self.weight_decay < 0 or self.warmup < 0:
            raise TrainingError("lr must be > 0, weight_decay and warmup >= 0")
        p = self.size_prior
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise TrainingError(f"size_prior must be a probability in [0, 1], got {p!r}")
        if p:
            self.prior_classes()  # a family without real-world-large classes fails here, before any work

    def prior_classes(self) -> tuple[str, ...]:
        """The classes the size prior draws large (empty without a prior)."""
        if not self.size_prior:
            return ()
        try:
            return sizes.prior_classes(self.family)
        except DatasetError as e:
            raise TrainingError(f"size_prior {self.size_prior}: {e}") from None

    @property
    def steps(self) -> int:
        return self.samples // self.batch_size

    def checkpoint_steps(self) -> list[int]:
        """Optimiser steps after which a checkpoint is saved (evenly spaced, the last one = all steps)."""
        k = min(self.checkpoints, self.steps)
        return sorted({round(self.steps * (i + 1) / k) for i in range(k)})

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def key(self) -> str:
        """Hash of every knob plus the trainer and library versions: a changed knob never reads a stale model."""
        config = {k: v for k, v in self.to_dict().items() if not (k in KEYLESS_DEFAULTS and v == KEYLESS_DEFAULTS[k])}
        material = {"config": config, "trainer": TRAINER_VERSION, "torch": torch.__version__,
                    "open_clip": open_clip.__version__}
        if self.size_prior:  # the class list is derived data: a changed size table must not reuse a run
            material["prior_classes"] = list(self.prior_classes())
        if self.init:  # the starting weights by content, not by path: a retrained start never reads a stale run
            config["init"] = file_sha256(self.init)
        return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


def conditions(orders, seeds, device: str = "auto", **knobs) -> list[TrainConfig]:
    """One config per (caption order, seed), equal in every other knob: the causal experiment's grid."""
    dev = pick_device(device)
    return [TrainConfig(order=o, seed=int(s), device=dev, **knobs) for o in orders for s in seeds]
