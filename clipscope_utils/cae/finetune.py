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

The schedule is known before any work: :func:`planned_steps` counts the pairs from the config alone (and the
COCO captions file, scanned, not parsed), and :func:`check_schedule` refuses a warm-up that is not shorter
than training. ``itc=False`` trains on ``lambda * L_attr`` alone (paper B Table 5's ablation). With several
GPUs a run is split over data-parallel processes (:func:`launch`, :mod:`clipscope_utils.cae.world`); one
process is the world-of-one case of the same loop (:func:`train`).

A run lives in ``<cache>/finetuned/<key>/``: ``config.json``, ``log.csv`` (losses per step), ``model.pt`` (an
open_clip state dict, loadable by the registry as ``<arch>@<file>``) and ``done.json``; every file is written
atomically and the key hashes the config, the base model's identity (weights hash) and the library versions.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import math
import re
import tempfile
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

from ..compositional.items import BenchmarkError
from ..compositional.scenes import CompositionSpec
from ..datasets.coco import DatasetError, coco_files
from ..datasets.visual_genome import load_vocabularies
from ..models.base import Encoder
from ..models.registry import load_model
from ..optim import optimizer
from ..parallel import gpu_shortfall, log_summary, torchrun
from ..paths import atomic_write, cache_dir, cached_folder, file_sha256, is_complete
from . import CAEError
from .attribution import attribution, perturbations
from .loss import attribution_loss, itc_loss, scored_captions, total_loss
from .pairs import coco_pairs, generated_pairs
from .roles import RoledCaption, span_positions, token_roles
from .world import World

#: how a run gets its base model from ``FinetuneConfig.base``: the registry by default; the model zoo passes
#: its own loader so that ``trained:`` names mean the profile's self-trained CLIPs
Loader = Callable[..., Encoder]

METHODS = ("none", "attention", "gradcam", "perturbation", "gradient")  # "none" = CLIP-FT
NEGATIVE_KINDS = ("relation_swap", "relation_replace", "attribute_swap")
FINETUNER_VERSION = 1  # bump when the loop changes what a config produces
DONE = "done.json"  # written last: the run is complete
#: fields added after runs were cached: left out of a config's dict (and so of its cache key) while at these
#: defaults, so the runs cached before them keep their keys
LATER_FIELDS = {"classes": (), "itc": True, "vocabulary": ""}
#: the torchrun entry point of a data-parallel run (named, not imported: it imports this module)
DISTRIBUTED_MODULE = "clipscope_utils.cae.distributed"
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
    classes: tuple[str, ...] = ()  # the generated scenes' object classes (() = the whole family): with few classes
    # many captions of a batch name the same two objects, so only their attributes and relations tell them apart
    data_seed: int = 0
    coco_root: str = ""  # fine-tune on COCO captions (tagged by the scene-graph parser) instead of generated scenes
    coco_split: str = "train2017"
    coco_images: int = 0  # the first N captioned images by id (0 = all)
    epochs: int = 2
    batch_size: int = 64  # the global batch (split evenly over data-parallel processes)
    lr: float = 1e-3
    weight_decay: float = 0.2
    warmup: float = 10  # warm-up steps (a whole number), or 0 < warmup < 1: that fraction of the steps
    seed: int = 0
    threads: int = 1  # CPU threads per process
    device: str = "cpu"
    itc: bool = True  # False: train on lam * L_attr alone (paper B Table 5's ablation)
    vocabulary: str = ""  # perturbation candidates from this Visual Genome vocabulary file ('' = the data's words)

    def __post_init__(self) -> None:
        for name in ("negative_kinds", "relations", "attributes", "classes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if isinstance(self.warmup, float) and self.warmup >= 1 and self.warmup.is_integer():
            object.__setattr__(self, "warmup", int(self.warmup))  # 50.0 and 50 are one run (one cache key)
        if self.method == "none":
            object.__setattr__(self, "lam", 0.0)
        if self.method != "gradient":  # knobs a method ignores must not split its cache
            object.__setattr__(self, "temperature", 1.0)
        if self.method != "perturbation":
            object.__setattr__(self, "n_perturb", 4)
        self.validate()
        if not self.coco_root:  # the generator's canonical class order: one set of classes, one cache key
            object.__setattr__(self, "classes", self.composition_spec().class_names)

    def validate(self) -> None:
        if not self.coco_root:
            try:
                self.composition_spec()
            except BenchmarkError as e:
                raise CAEError(f"generated fine-tuning scenes: {e}") from None
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
        if self.warmup >= 1 and float(self.warmup) != int(self.warmup):
            raise CAEError(f"warmup={self.warmup}: give whole warm-up steps, or a fraction of the steps below 1 "
                           f"(e.g. 0.1)")
        if not self.itc:
            if self.method == "none":
                raise CAEError("itc=False trains on the attribution loss alone: it needs a method other than "
                               "'none' (with lam > 0)")
            if self.hard_negatives:
                raise CAEError("itc=False: hard negatives enter only the contrastive loss; set "
                               "hard_negatives=False")

    @property
    def steps(self) -> int:
        """Optimiser steps of the run (:func:`planned_steps`; a COCO run scans its captions file once)."""
        return planned_steps(self)

    @property
    def variant(self) -> str:
        """The paper's name of the variant: CLIP-FT, CLIP-CAE (<method>), with '+ HN' for hard negatives;
        'CAE attribution loss only (<method>)' without the contrastive loss (paper B Table 5)."""
        if not self.itc:
            return f"CAE attribution loss only ({self.method})"
        name = "CLIP-FT" if self.method == "none" else f"CLIP-CAE ({self.method})"
        return f"{name} + HN" if self.hard_negatives else name

    def composition_spec(self):
        """The generated compositional scenes of this run (its synthetic benchmark draws unseen ones)."""
        return CompositionSpec(family=self.family, images=self.scenes, image_size=self.image_size,
                               relations=self.relations, attributes=self.attributes, class_names=self.classes,
                               seed=self.data_seed)

    def to_dict(self) -> dict:
        """The knobs as JSON (the cache key's material), :data:`LATER_FIELDS` at their defaults left out."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
                if not (k in LATER_FIELDS and v == LATER_FIELDS[k])}

    @classmethod
    def from_dict(cls, d: dict) -> "FinetuneConfig":
        """The config of :meth:`to_dict`'s output (a run's ``config.json``, a distributed job)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def replace(self, **changes) -> "FinetuneConfig":
        return dataclasses.replace(self, **changes)


_CAPTIONED: dict[tuple[str, int, int], int] = {}


def captioned_images(captions_file: str | Path) -> int:
    """How many distinct images a COCO captions file captions: its ``"image_id"`` values, found by a byte scan
    (no JSON parse, no image opened; remembered per file size and mtime), so a schedule is known at once."""
    p = Path(captions_file).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key not in _CAPTIONED:
        _CAPTIONED[key] = len(set(re.findall(rb'"image_id"\s*:\s*(\d+)', p.read_bytes())))
    return _CAPTIONED[key]


def planned_pairs(cfg: FinetuneConfig) -> int:
    """How many image-caption pairs the run trains on, without building them: ``scenes`` generated scenes, or
    the COCO split's captioned images (the first ``coco_images`` of them when that is set)."""
    if not cfg.coco_root:
        return cfg.scenes
    try:
        files = coco_files(cfg.coco_root, cfg.coco_split)
    except DatasetError as e:
        raise CAEError(f"COCO fine-tuning data: {e}") from None
    n = captioned_images(files.captions)
    return min(n, cfg.coco_images) if cfg.coco_images else n


def planned_steps(cfg: FinetuneConfig) -> int:
    """Optimiser steps of the run: ``epochs * (pairs // batch_size)`` (a last partial batch is dropped)."""
    return cfg.epochs * (planned_pairs(cfg) // cfg.batch_size)


def warmup_steps(cfg: FinetuneConfig, steps: int | None = None) -> int:
    """The warm-up in steps: ``warmup`` itself, or for ``0 < warmup < 1`` that fraction of the steps (floor)."""
    if cfg.warmup >= 1 or cfg.warmup == 0:
        return int(cfg.warmup)
    steps = planned_steps(cfg) if steps is None else steps
    return math.floor(cfg.warmup * steps + 1e-9)


def check_schedule(cfg: FinetuneConfig) -> int:
    """The run's planned steps, or :class:`CAEError` if it has no step or its warm-up is not shorter than its
    training (the cosine schedule would never leave warm-up: not the schedule the config describes)."""
    pairs = planned_pairs(cfg)
    steps = cfg.epochs * (pairs // cfg.batch_size)
    source = (f"{pairs} captioned COCO images" if cfg.coco_root else f"scenes={cfg.scenes}")
    if steps == 0:
        raise CAEError(f"no training step: {source} make no full batch of batch_size={cfg.batch_size}; give more "
                       f"pairs or a smaller batch_size")
    warm = warmup_steps(cfg, steps)
    if warm >= steps:
        raise CAEError(
            f"the warm-up (warmup={cfg.warmup}: {warm} steps) is not shorter than training: {steps} steps = "
            f"epochs={cfg.epochs} x ({source} // batch_size={cfg.batch_size}), so the cosine schedule would never "
            f"leave warm-up. Lower warmup, give it as a fraction of the steps (e.g. warmup=0.1), or raise "
            f"{'coco_images' if cfg.coco_root else 'scenes'} or epochs.")
    return steps


def data_identity(cfg: FinetuneConfig) -> dict:
    """What the training pairs are made of beyond the config: the COCO captions file's and the vocabulary file's
    content hashes."""
    out = {"vocabulary_sha256": file_sha256(cfg.vocabulary)} if cfg.vocabulary else {}
    if not cfg.coco_root:
        return out
    try:
        files = coco_files(cfg.coco_root, cfg.coco_split)
    except DatasetError as e:
        raise CAEError(f"COCO fine-tuning data: {e}") from None
    return {**out, "captions_sha256": file_sha256(files.captions)}


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
    cfg = FinetuneConfig.from_dict(meta["config"])
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
        self.texts, self.spans = pairs.texts, pairs.spans
        # perturbation candidates: Visual Genome's vocabularies when given (paper B appendix I), else the data's own
        self.candidates = load_vocabularies(cfg.vocabulary) if cfg.vocabulary else pairs.candidates
        if len(self.texts) < cfg.batch_size:
            raise CAEError(f"{len(self.texts)} training pairs are fewer than one batch ({cfg.batch_size})")
        self.tokenizer = encoder.tokenizer
        self.roles = token_roles([RoledCaption(t, s) for t, s in zip(self.texts, self.spans)], self.tokenizer)
        self.paths, self.preprocess = list(pairs.paths), encoder.preprocess
        # small generated scenes are decoded once; COCO (118k photos) is decoded per batch
        self.images = None if cfg.coco_root else torch.stack([self._load(p) for p in self.paths])
        self.negatives = {k: self.tokenizer(v) for k, v in pairs.negatives.items()}
        planned = planned_pairs(cfg)
        if len(self.texts) != planned:  # the schedule was fixed from the planned count: they must agree
            raise CAEError(f"the training data has {len(self.texts)} pairs but {planned} were planned from "
                           + ("the COCO captions file (captioned images it does not list?)" if cfg.coco_root
                              else "scenes"))
        self.steps = planned_steps(cfg)

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
        """One hard-negative caption per sample of the global batch ``idx``, its kind drawn per sample (seeded)."""
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


def _step_losses(model, data: FinetuneData, batch: np.ndarray, step: int, world: World):
    """This process's share of the global batch's loss (the shares sum to ``L_ITC + lam * L_attr``, so the
    summed gradients are the global loss's), and the global batch's ITC and attribution hinge for the log.

    Each process encodes its slice; the ITC sees every process's features (gathered with gradient); the hinge
    is per caption, summed over the slice and divided by the global batch's count of scored captions. Seeded
    per-sample choices (hard-negative kinds, perturbations) are drawn for the global batch and then sliced, so
    they do not depend on the number of processes.
    """
    cfg, device = data.cfg, torch.device(world.device)
    mine = world.part(len(batch))
    idx = batch[mine]
    t = torch.from_numpy(idx)
    tokens = data.roles.tokens[t].to(device)
    neg_tokens = data.negative_tokens(batch, step)
    with contextlib.nullcontext() if cfg.itc else torch.no_grad():  # without ITC it is only logged
        img = model.encode_image(data.pixels(idx).to(device), normalize=True)
        feats = [img, model.encode_text(tokens, normalize=True)]
        if neg_tokens is not None:
            feats.append(model.encode_text(neg_tokens[mine].to(device), normalize=True))
        img_all, txt_all, *neg_all = world.gather(*feats)
        itc = itc_loss(img_all, txt_all, model.logit_scale.exp(), neg_all[0] if neg_all else None)
    zero = torch.zeros((), device=device)
    attr = zero
    if cfg.method != "none":
        extra = {"temperature": cfg.temperature}
        if cfg.method == "perturbation":
            replacements, positions = perturbation_inputs([data.texts[i] for i in batch],
                                                          [data.spans[i] for i in batch], data.candidates,
                                                          data.tokenizer, cfg.n_perturb,
                                                          seed=cfg.seed * 1_000_000 + step)
            extra.update(replacements=[[r.to(device) for r in row] for row in replacements[mine]],
                         positions=positions[mine])
        scores = attribution(cfg.method, model, img.detach(), tokens, create_graph=True, **extra)
        objects, composition = data.roles.objects[t].to(device), data.roles.composition[t].to(device)
        total = world.total(scored_captions(objects, composition)) if world.size > 1 else None
        attr = attribution_loss(scores, objects, composition, cfg.margin, total)
    share = total_loss(itc / world.size if cfg.itc else zero, attr, cfg.lam)
    return share, itc.detach(), world.total(attr)


def train(cfg: FinetuneConfig, base: Encoder, world: World | None = None,
          progress: bool = False) -> tuple[torch.nn.Module, pd.DataFrame]:
    """The one training loop: fine-tune a copy of ``base.model`` as ``cfg`` says; returns it and the loss log.

    ``world``: this process's place among data-parallel processes (default: a world of one on ``cfg.device``);
    every process of a world runs this with the same arguments and ends with the same weights.
    """
    world = world or World(device=cfg.device)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        device = torch.device(world.device)
        with world.main_first():  # rank 0 fills the scene and caption caches, the others read them
            data = FinetuneData(cfg, base, progress=False)
        model = copy.deepcopy(base.model).to(device).requires_grad_(True).train()
        torch.manual_seed(cfg.seed)
        opt = optimizer(model, cfg)
        schedule = cosine_lr(opt, cfg.lr, warmup_steps(cfg, data.steps), data.steps)
        log, t0 = [], time.perf_counter()
        for step in tqdm(range(data.steps), disable=not (progress and world.main), desc=cfg.variant, unit="step"):
            schedule(step)
            share, itc, attr = _step_losses(model, data, data.indices(step), step, world)
            opt.zero_grad(set_to_none=True)
            share.backward()
            world.sum_gradients(model)
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            loss = total_loss(itc if cfg.itc else torch.zeros_like(itc), attr, cfg.lam)
            log.append({"step": step + 1, "samples": (step + 1) * cfg.batch_size, "itc": float(itc),
                        "attr": float(attr), "loss": float(loss), "seconds": time.perf_counter() - t0})
    finally:
        torch.set_num_threads(threads)
    return model, pd.DataFrame(log)


def save_run(folder: Path, cfg: FinetuneConfig, base: Encoder, model: torch.nn.Module, log: pd.DataFrame) -> None:
    """Write a finished run into its folder, ``done.json`` last."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "model.pt", lambda f: torch.save(model.state_dict(), f))
    atomic_write(folder / "log.csv", lambda f: f.write(log.to_csv(index=False).encode()))
    arch = base.identity.get("arch") or base.spec.arch
    meta = {"config": cfg.to_dict(), "arch": arch, "base_identity": base.identity}
    atomic_write(folder / "config.json", lambda f: f.write(json.dumps(meta, indent=1).encode()))
    atomic_write(folder / DONE, lambda f: f.write(json.dumps({"steps": len(log)}).encode()))


def default_processes(cfg: FinetuneConfig) -> int:
    """One process per GPU when ``cfg.device`` is "cuda" (no index) and there are several, as many as split the
    batch evenly; one otherwise."""
    if cfg.device != "cuda" or not torch.cuda.is_available():
        return 1
    n = torch.cuda.device_count()
    while cfg.batch_size % n:
        n -= 1
    return n


def launch(cfg: FinetuneConfig, base: Encoder, folder: Path, processes: int) -> None:
    """Run ``cfg`` as ``processes`` data-parallel processes under torchrun (gloo on the CPU, NCCL on GPUs),
    which write ``folder``; waits, and raises :class:`CAEError` with the end of their log if they fail.

    The base goes over as a pickled :class:`Encoder` (weights, preprocessing and tokenizer exactly as loaded
    here, by whatever loader), in a temporary folder beside the run folder.
    """
    if processes < 1 or cfg.batch_size % processes:
        raise CAEError(f"batch_size={cfg.batch_size} does not split evenly over {processes} processes")
    if gpu_shortfall(processes, cfg.device):
        raise CAEError(gpu_shortfall(processes, cfg.device))
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".launch-") as tmp:
        tmp = Path(tmp)
        torch.save(base, tmp / "base.pt")
        job = {"config": cfg.to_dict(), "base_file": str(tmp / "base.pt"), "folder": str(folder), "progress": False}
        (tmp / "job.json").write_text(json.dumps(job))
        rc = torchrun(DISTRIBUTED_MODULE, [str(tmp / "job.json")], processes, tmp / "log.txt", cfg.threads)
        if rc != 0 or not is_complete(folder, DONE):
            raise CAEError(f"data-parallel fine-tuning ({processes} processes) failed with exit code {rc}; "
                           f"{log_summary(tmp / 'log.txt')}")


def finetune(cfg: FinetuneConfig, progress: bool = True, loader: Loader = load_model,
             processes: int | None = None) -> FinetunedModel:
    """Fine-tune ``cfg.base`` (loaded by ``loader``) as ``cfg`` says, or return the cached run.

    The schedule is checked first (:func:`check_schedule`). ``processes``: data-parallel processes (None:
    :func:`default_processes`, one per GPU); more than one runs the same loop under torchrun (:func:`launch`)
    and gives the same weights up to float rounding, so it is no part of the cache key.
    """
    check_schedule(cfg)
    processes = processes or default_processes(cfg)
    base = loader(cfg.base, device=cfg.device)
    if not base.has_images or not hasattr(base, "model"):
        raise CAEError(f"base model {cfg.base!r} is not an open_clip CLIP; CAE fine-tunes image-text models")

    def make(folder: Path) -> None:
        if processes > 1:
            launch(cfg, base, folder, processes)
        else:
            save_run(folder, cfg, base, *train(cfg, base, progress=progress))

    return cached_folder(run_folder(cfg, base.identity), DONE, load_finetuned, make)
