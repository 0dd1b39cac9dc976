"""Fine-tune an open_clip CLIP as paper B does: CLIP-FT (contrastive loss only), CLIP-FT with hard negatives,
and CLIP-CAE (contrastive loss + lambda * attribution hinge) with any of the four attribution methods.

One loop serves every variant, so the variants differ only in the knobs of :class:`FinetuneConfig`. Paper B
fine-tunes OpenAI's ViT-B/32 on COCO (5 epochs, batch 256, AdamW with weight decay 0.2, cosine schedule with
50 warm-up steps, lr 5e-7); offline the book fine-tunes one of its own self-trained CLIPs on generated
compositional scenes (:mod:`clipscope_utils.compositional.scenes`), whose captions carry their roles, and
users with COCO set ``coco_root`` to fine-tune on COCO captions tagged by the scene-graph parser
(:mod:`clipscope_utils.cae.pairs`). The
attribution loss regularises the text encoder only (paper B section 4.3): image features enter every
attribution detached.

A run lives in ``<cache>/finetuned/<key>/``: ``config.json``, ``log.csv`` (losses per step), ``model.pt`` (an
open_clip state dict, loadable by the registry as ``<arch>@<file>``) and ``done.json``; every file is written
atomically and the key hashes the config, the base model's identity (weights hash) and the library versions.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

from collections.abc import Callable

import numpy as np
import open_clip
import pandas as pd
import torch
from open_clip_train.scheduler import cosine_lr
from PIL import Image
from tqdm.auto import tqdm

from ..compositional.scenes import CompositionSpec
from ..datasets.coco import DatasetError, coco_files
from ..models.base import Encoder
from ..models.registry import load_model
from ..optim import optimizer
from ..paths import atomic_write, cache_dir, cached_folder, file_sha256, is_complete
from . import CAEError
from .attribution import attribution, perturbations
from .loss import attribution_loss, itc_loss, total_loss
from .pairs import coco_pairs, generated_pairs
from .roles import RoledCaption, span_positions, token_roles

#: how a run gets its base model from ``FinetuneConfig.base``: the registry by default; the model zoo passes
#: its own loader so that ``trained:`` names mean the profile's self-trained CLIPs
Loader = Callable[..., Encoder]

METHODS = ("none", "attention", "gradcam", "perturbation", "gradient")  # "none" = CLIP-FT
NEGATIVE_KINDS = ("relation_swap", "relation_replace", "attribute_swap")
FINETUNER_VERSION = 1  # bump when the loop changes what a config produces
DONE = "done.json"  # written last: the run is complete
# Paper B's best loss weights (appendix E, Table 8) for ViT-B/32; the gradient scales of the methods differ.
PAPER_LAMBDA = {"attention": 30.0, "gradcam": 50.0, "perturbation": 0.2, "gradient": 10.0}


@dataclass(frozen=True)
class FinetuneConfig:
    """Every knob of one fine-tuning run (base model, data, loss, optimisation); hashed into its cache key."""

    base: str = "trained:largest_first"  # any registry name of an open_clip CLIP
    method: str = "none"
    lam: float = 0.0  # weight of the attribution loss (ignored, and stored as 0, for method "none")
    margin: float = 0.0  # epsilon of eq. 5 (paper B: 0)
    hard_negatives: bool = False
    negative_kinds: tuple[str, ...] = NEGATIVE_KINDS
    n_perturb: int = 4  # perturbations per concept (perturbation method)
    temperature: float = 1.0  # gradient method: softmax(a / temperature); 1 = paper B (stored as 1 otherwise)
    family: str = "comco"
    scenes: int = 2000
    image_size: int = 64
    relations: tuple[str, ...] = ("left of", "right of", "above", "below")
    attributes: tuple[str, ...] = ("size",)
    data_seed: int = 0
    coco_root: str = ""  # fine-tune on COCO captions (tagged by the scene-graph parser) instead of generated scenes
    coco_split: str = "train2017"
    coco_images: int = 0  # the first N captioned images by id (0 = all)
    epochs: int = 2
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.2
    warmup: int = 10
    seed: int = 0
    threads: int = 1
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("negative_kinds", "relations", "attributes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.method == "none":
            object.__setattr__(self, "lam", 0.0)
        if self.method != "gradient":  # knobs a method ignores must not split its cache
            object.__setattr__(self, "temperature", 1.0)
        if self.method != "perturbation":
            object.__setattr__(self, "n_perturb", 4)
        self.validate()

    def validate(self) -> None:
        if self.method not in METHODS:
            raise CAEError(f"method must be one of {list(METHODS)} ('none' = CLIP-FT), got {self.method!r}")
        if self.method != "none" and not self.lam > 0:
            raise CAEError(f"method {self.method!r} needs a loss weight lam > 0, got {self.lam}")
        if not self.temperature > 0:
            raise CAEError(f"temperature must be > 0, got {self.temperature}")
        if self.margin < 0:
            raise CAEError(f"margin must be >= 0, got {self.margin}")
        bad = [k for k in self.negative_kinds if k not in NEGATIVE_KINDS]
        if bad or not self.negative_kinds:
            raise CAEError(f"negative_kinds {bad or '()'} not allowed; choose from {list(NEGATIVE_KINDS)}")
        for name in ("n_perturb", "scenes", "epochs", "batch_size", "threads"):
            if int(getattr(self, name)) < 1:
                raise CAEError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise CAEError("batch_size must be >= 2: the contrastive loss needs negatives in the batch")
        if self.scenes < self.batch_size and not self.coco_root:
            raise CAEError(f"scenes ({self.scenes}) must be at least one batch ({self.batch_size})")
        if not self.lr > 0 or self.weight_decay < 0 or self.warmup < 0:
            raise CAEError("lr must be > 0, weight_decay and warmup >= 0")

    @property
    def steps(self) -> int:
        """Optimiser steps on the generated scenes (COCO runs: epochs x pairs // batch)."""
        return self.epochs * (self.scenes // self.batch_size)

    @property
    def variant(self) -> str:
        """The paper's name of the variant: CLIP-FT, CLIP-CAE (<method>), with '+ HN' for hard negatives."""
        name = "CLIP-FT" if self.method == "none" else f"CLIP-CAE ({self.method})"
        return f"{name} + HN" if self.hard_negatives else name

    def composition_spec(self):
        """The generated compositional scenes of this run (its synthetic benchmark draws unseen ones)."""
        return CompositionSpec(family=self.family, images=self.scenes, image_size=self.image_size,
                               relations=self.relations, attributes=self.attributes, seed=self.data_seed)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def replace(self, **changes) -> "FinetuneConfig":
        return dataclasses.replace(self, **changes)


def data_identity(cfg: FinetuneConfig) -> dict:
    """What the training pairs are made of beyond the config: the COCO captions file's content hash."""
    if not cfg.coco_root:
        return {}
    try:
        files = coco_files(cfg.coco_root, cfg.coco_split)
    except DatasetError as e:
        raise CAEError(f"COCO fine-tuning data: {e}") from None
    return {"captions_sha256": file_sha256(files.captions)}


def run_key(cfg: FinetuneConfig, base_identity: dict, data: dict | None = None) -> str:
    """Hash of the config, the base model's identity (weights hash, architecture), the data's identity and the
    library versions."""
    material = {"config": cfg.to_dict(), "base": base_identity, "data": data or {}, "finetuner": FINETUNER_VERSION,
                "torch": torch.__version__, "open_clip": open_clip.__version__}
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_folder(cfg: FinetuneConfig, base_identity: dict) -> Path:
    return cache_dir() / "finetuned" / f"{cfg.method}-s{cfg.seed}-{run_key(cfg, base_identity, data_identity(cfg))}"


@dataclass
class FinetunedModel:
    """A finished fine-tuning run: its folder, config, loss log and open_clip state dict."""

    folder: Path
    config: FinetuneConfig
    arch: str
    log: pd.DataFrame

    @property
    def weights(self) -> Path:
        return self.folder / "model.pt"

    @property
    def model_name(self) -> str:
        """The registry name that loads the fine-tuned weights."""
        return f"{self.arch}@{self.weights}"


def load_finetuned(folder: str | Path) -> FinetunedModel:
    folder = Path(folder)
    if not is_complete(folder, DONE):
        raise CAEError(f"{folder} holds no finished fine-tuning run")
    meta = json.loads((folder / "config.json").read_text())
    cfg = FinetuneConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["config"].items()})
    return FinetunedModel(folder, cfg, meta["arch"], pd.read_csv(folder / "log.csv"))


class FinetuneData:
    """Compositional scenes preprocessed once for the model, with their token roles and hard negatives.

    Every batch is a pure function of ``(seed, step)`` (a seeded permutation per epoch, a seeded choice of
    hard-negative kind per sample), so a run is reproducible.
    """

    def __init__(self, cfg: FinetuneConfig, encoder, progress: bool = False):
        self.cfg = cfg
        kinds = cfg.negative_kinds if cfg.hard_negatives else ()
        pairs = (coco_pairs(cfg.coco_root, cfg.coco_split, cfg.coco_images, kinds, cfg.data_seed, progress=progress)
                 if cfg.coco_root else generated_pairs(cfg.composition_spec(), kinds, progress))
        self.texts, self.spans, self.candidates = pairs.texts, pairs.spans, pairs.candidates
        if len(self.texts) < cfg.batch_size:
            raise CAEError(f"{len(self.texts)} training pairs are fewer than one batch ({cfg.batch_size})")
        self.tokenizer = encoder.tokenizer
        self.roles = token_roles([RoledCaption(t, s) for t, s in zip(self.texts, self.spans)], self.tokenizer)
        self.paths, self.preprocess = list(pairs.paths), encoder.preprocess
        # small generated scenes are decoded once; COCO (118k photos) is decoded per batch
        self.images = None if cfg.coco_root else torch.stack([self._load(p) for p in self.paths])
        self.negatives = {k: self.tokenizer(v) for k, v in pairs.negatives.items()}
        self.steps = cfg.epochs * (len(self.texts) // cfg.batch_size)

    def __len__(self) -> int:
        return len(self.texts)

    def _load(self, path) -> torch.Tensor:
        with Image.open(path) as im:
            return self.preprocess(im.convert("RGB"))

    def pixels(self, idx: np.ndarray) -> torch.Tensor:
        if self.images is not None:
            return self.images[torch.from_numpy(idx)]
        return torch.stack([self._load(self.paths[i]) for i in idx])

    def indices(self, step: int) -> np.ndarray:
        b, n = self.cfg.batch_size, len(self)
        per_epoch = n // b
        epoch, k = divmod(step, per_epoch)
        perm = np.random.default_rng([self.cfg.seed, 0, epoch]).permutation(n)
        return perm[k * b:(k + 1) * b]

    def negative_tokens(self, idx: np.ndarray, step: int) -> torch.Tensor | None:
        """One hard-negative caption per sample, its kind drawn per sample (seeded)."""
        if not self.negatives:
            return None
        kinds = self.cfg.negative_kinds
        pick = np.random.default_rng([self.cfg.seed, 1, step]).integers(len(kinds), size=len(idx))
        return torch.stack([self.negatives[kinds[p]][i] for p, i in zip(pick, idx)])


def perturbation_inputs(texts, spans, candidates, tokenizer, n_perturb: int, seed: int):
    """Perturbed variants and concept token positions of captions with role spans (perturbation method)."""
    def positions(tx, sp):
        return span_positions([RoledCaption(t, s) for t, s in zip(tx, sp)], tokenizer)

    return perturbations(list(texts), list(spans), candidates, tokenizer, positions, n_perturb=n_perturb, seed=seed)


def _step_losses(model, data: FinetuneData, idx: np.ndarray, step: int, device: torch.device):
    """ITC (with hard negatives when asked) and the attribution hinge of one batch."""
    cfg = data.cfg
    t = torch.from_numpy(idx)
    images, tokens = data.pixels(idx).to(device), data.roles.tokens[t].to(device)
    img = model.encode_image(images, normalize=True)
    txt = model.encode_text(tokens, normalize=True)
    neg_tokens = data.negative_tokens(idx, step)
    neg = model.encode_text(neg_tokens.to(device), normalize=True) if neg_tokens is not None else None
    itc = itc_loss(img, txt, model.logit_scale.exp(), neg)
    if cfg.method == "none":
        return itc, torch.zeros((), device=device)
    extra = {"temperature": cfg.temperature}
    if cfg.method == "perturbation":
        replacements, positions = perturbation_inputs([data.texts[i] for i in idx], [data.spans[i] for i in idx],
                                                      data.candidates, data.tokenizer, cfg.n_perturb,
                                                      seed=cfg.seed * 1_000_000 + step)
        extra.update(replacements=[[r.to(device) for r in row] for row in replacements], positions=positions)
    scores = attribution(cfg.method, model, img.detach(), tokens, create_graph=True, **extra)
    attr = attribution_loss(scores, data.roles.objects[t].to(device), data.roles.composition[t].to(device),
                            cfg.margin)
    return itc, attr


def finetune(cfg: FinetuneConfig, progress: bool = True, loader: Loader = load_model) -> FinetunedModel:
    """Fine-tune ``cfg.base`` (loaded by ``loader``) as ``cfg`` says, or return the cached run."""
    base = loader(cfg.base, device=cfg.device)
    if not base.has_images or not hasattr(base, "model"):
        raise CAEError(f"base model {cfg.base!r} is not an open_clip CLIP; CAE fine-tunes image-text models")
    return cached_folder(run_folder(cfg, base.identity), DONE, load_finetuned,
                         lambda folder: _finetune(cfg, base, folder, progress))


def _finetune(cfg: FinetuneConfig, base: Encoder, folder: Path, progress: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        device = torch.device(cfg.device)
        data = FinetuneData(cfg, base, progress=False)
        model = copy.deepcopy(base.model).to(device).requires_grad_(True).train()
        torch.manual_seed(cfg.seed)
        opt = optimizer(model, cfg)
        schedule = cosine_lr(opt, cfg.lr, cfg.warmup, data.steps)
        log, t0 = [], time.perf_counter()
        for step in tqdm(range(data.steps), disable=not progress, desc=cfg.variant, unit="step"):
            schedule(step)
            itc, attr = _step_losses(model, data, data.indices(step), step, device)
            loss = total_loss(itc, attr, cfg.lam)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            log.append({"step": step + 1, "samples": (step + 1) * cfg.batch_size, "itc": float(itc.detach()),
                        "attr": float(attr.detach()), "loss": float(loss.detach()),
                        "seconds": time.perf_counter() - t0})
    finally:
        torch.set_num_threads(threads)
    atomic_write(folder / "model.pt", lambda f: torch.save(model.state_dict(), f))
    pd.DataFrame(log).to_csv(folder / "log.csv", index=False)
    arch = base.identity.get("arch") or base.spec.arch
    meta = {"config": cfg.to_dict(), "arch": arch, "base_identity": base.identity}
    atomic_write(folder / "config.json", lambda f: f.write(json.dumps(meta, indent=1).encode()))
    atomic_write(folder / DONE, lambda f: f.write(json.dumps({"steps": data.steps}).encode()))
