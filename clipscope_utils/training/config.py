"""What a self-trained CLIP is: every knob of its data, model and optimisation, hashed into its cache key.

The experimental factor of the book's causal experiment is ``order``: the same scenes, the same seed,
only the order of the objects in the training captions changes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

ORDERS = ("largest_first", "shuffled", "largest_last")
TRAINER_VERSION = 1  # bump when the loop changes what a config produces


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
    """

    model: str = "clipscope-tiny"
    family: str = "comco"
    objects: tuple[int, ...] = (1, 2, 3, 4)
    scenes: int = 2000  # generated scenes per object count
    image_size: int = 64
    large_size: float = 0.38
    small_size: float = 0.18
    template: str = "and"
    order: str = "largest_first"
    p_first: float = 1.0
    samples: int = 20000  # training samples seen in total
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup: int = 50  # optimiser steps
    checkpoints: int = 5  # evenly spaced checkpoints (in samples seen), the last at ``samples``
    seed: int = 0
    threads: int = 1
    device: str = "cpu"

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
        if self.lr <= 0 or self.weight_decay < 0 or self.warmup < 0:
            raise TrainingError("lr must be > 0, weight_decay and warmup >= 0")

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
        import open_clip
        import torch

        material = {"config": self.to_dict(), "trainer": TRAINER_VERSION, "torch": torch.__version__,
                    "open_clip": open_clip.__version__}
        return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


def conditions(orders, seeds, device: str = "auto", **knobs) -> list[TrainConfig]:
    """One config per (caption order, seed), equal in every other knob: the causal experiment's grid."""
    from ..device import pick_device

    dev = pick_device(device)
    return [TrainConfig(order=o, seed=int(s), device=dev, **knobs) for o in orders for s in seeds]
