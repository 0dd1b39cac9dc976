"""Training pairs for the self-trained CLIPs: generated scenes and captions whose object order is the factor.

Images are decoded once into one uint8 tensor (64 px scenes are small), so a training step costs no
file I/O. Every batch is a pure function of ``(seed, step)``: which scenes (one seeded permutation per
epoch) and the order of each caption's objects (a seeded draw per sample seen). That is what makes a
resumed run end exactly where an uninterrupted one does.
"""

from __future__ import annotations

import numpy as np
import torch

from ..datasets import SceneSpec, generate_cached
from ..datasets.captions import caption
from ..datasets.scenes import SLOT_LAYOUTS
from ..datasets.tables import SceneSet, open_image
from .config import TrainConfig


def scene_spec(cfg: TrainConfig, split: str = "train", images: int | None = None) -> SceneSpec:
    """The generated scenes of a config. The ``eval`` split draws unseen scenes (another seed) of the
    multi-object counts only, ``images`` per count, for the probes and sanity checks, with single-object
    references centred and at every slot of its layouts.

    Only the ``train`` split carries the config's class-size prior. The ``eval`` split never does: there
    every class is large or small equally often, which is what lets the Claim 1 probes tell a learned
    class preference from a size preference (and lets prior and prior-free runs share one eval set).
    """
    if split not in ("train", "eval"):
        raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
    objects = cfg.objects if split == "train" else tuple(n for n in cfg.objects if n > 1) or (2,)
    prior = dict(size_prior=cfg.size_prior, prior_classes=cfg.prior_classes()) if split == "train" else {}
    # eval: references at every slot of the eval layouts too, for IOR's position control
    slots = {} if split == "train" else dict(single_slots=tuple(sorted({s for n in objects for s in SLOT_LAYOUTS[n]})))
    return SceneSpec(family=cfg.family, objects=objects, images=images or cfg.scenes, image_size=cfg.image_size,
                     large_size=cfg.large_size, small_size=cfg.small_size, templates=(cfg.template,),
                     order="random", seed=cfg.seed if split == "train" else 10_000 + cfg.seed, **prior, **slots)


class TrainingData:
    """The scenes of a config as tensors, and a deterministic batch for every optimiser step."""

    def __init__(self, cfg: TrainConfig, scenes: SceneSet | None = None, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)):
        self.cfg = cfg
        scenes = scenes if scenes is not None else generate_cached(scene_spec(cfg), progress=False)
        multi = scenes.multi()
        self.image_ids = multi.images.image_id.tolist()
        # decode each file once, by its path (a per-id lookup would rescan the image table per scene)
        self.images = torch.from_numpy(np.stack([np.asarray(open_image(scenes.root / p)) for p in multi.images.path]))
        self.images = self.images.permute(0, 3, 1, 2).contiguous()  # (N, 3, H, W) uint8
        objs = multi.objects.sort_values(["image_id", "size_rank", "object_index"], kind="stable")
        by_image = objs.groupby("image_id", sort=False).class_name.apply(list)
        self.names = [by_image[i] for i in self.image_ids]  # largest first, then slot order
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)

    def __len__(self) -> int:
        return len(self.image_ids)

    def indices(self, step: int) -> np.ndarray:
        """Scene indices of the batch of optimiser step ``step`` (epoch-wise seeded permutations)."""
        b, n = self.cfg.batch_size, len(self)
        samples = np.arange(step * b, (step + 1) * b)
        out = np.empty(b, dtype=np.int64)
        for epoch in np.unique(samples // n):
            sel = samples // n == epoch
            perm = np.random.default_rng([self.cfg.seed, 0, int(epoch)]).permutation(n)
            out[sel] = perm[samples[sel] % n]
        return out

    def caption_of(self, scene: int, sample: int) -> str:
        """The caption of ``scene`` when it is the ``sample``-th sample seen, in the config's order."""
        names = self.names[scene]
        rng = np.random.default_rng([self.cfg.seed, 1, sample])
        rest = [names[i] for i in 1 + rng.permutation(len(names) - 1)]
        order = self.cfg.order
        if order == "largest_first" and rng.random() >= self.cfg.p_first:
            order = "shuffled"
        if order == "largest_first":
            ordered = [names[0], *rest]
        elif order == "largest_last":
            ordered = [*rest, names[0]]
        else:
            ordered = [names[i] for i in rng.permutation(len(names))]
        return caption(ordered, self.cfg.template)

    def scene_captions(self) -> list[str]:
        """One caption per scene (every order of a scene's objects has the same words): what sets the context."""
        return [caption(names, self.cfg.template) for names in self.names]

    def batch(self, step: int) -> tuple[torch.Tensor, list[str]]:
        """Normalised images and captions of optimiser step ``step``."""
        idx = self.indices(step)
        first = step * self.cfg.batch_size
        texts = [self.caption_of(int(s), first + j) for j, s in enumerate(idx)]
        images = (self.images[torch.from_numpy(idx)].float() / 255.0 - self.mean) / self.std
        return images, texts
