"""The model zoo: every model name of a chapter resolved and loaded, the book's self-trained CLIPs included.

``models`` knows every model that exists elsewhere (open_clip tags, checkpoints, random inits, text baselines)
and never imports ``training``; ``trained:<order>[:<seed>]`` names a CLIP the book trains itself, so what it
means depends on the profile being built. A :class:`ModelZoo` carries that meaning: the training settings of
the profile's pretraining chapter. Every chapter builds its zoo from the same block, so ``--profile gpu``
probes the 400k-sample models its pretraining chapter trains, and a missing run is trained (cached) on first use.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from .device import pick_device
from .models import registry
from .models.base import Encoder, ModelError, ModelSpec
from .training import ORDERS, TrainConfig, TrainingError, logs_checkpoints, train, train_many

TRAINED = "trained:"
OPTIONAL = "?"  # a name ending in "?" is optional: a chapter skips it, with a note, when its weights are absent
DEFAULT_SEED = 0
LOGS = "logs"  # an external entry "logs=<folder>": every epoch checkpoint of an open_clip_train run
#: pretraining-chapter parameter -> TrainConfig field: the knobs that decide what a ``trained:`` model is
TRAINING_KNOBS = {"model": "model", "family": "family", "objects": "objects", "n_scenes": "scenes",
                  "p_first": "p_first", "samples": "samples", "batch_size": "batch_size", "lr": "lr",
                  "checkpoints": "checkpoints"}


def training_template(pretraining: Mapping | None = None) -> TrainConfig:
    """The TrainConfig every ``trained:`` name starts from: the pretraining chapter's parameters (a profile's
    ``pretraining`` block), or the code defaults (= the default profile, which a test keeps equal) without one."""
    if not pretraining:
        return TrainConfig(device=pick_device("auto"))
    knobs = {f: pretraining[p] for p, f in TRAINING_KNOBS.items() if p in pretraining}
    if "objects" in knobs:
        knobs["objects"] = tuple(knobs["objects"])
    return TrainConfig(device=pick_device(pretraining.get("device", "auto")), **knobs)


def parse_external(entries: Iterable[str]) -> list[tuple[int, str]]:
    """``"SAMPLES=MODEL"`` entries (e.g. ``"2000000000=ViT-B-32@/ckpt/epoch_10.pt"``) and ``"logs=<folder>"`` entries
    (every epoch checkpoint of an ``open_clip_train`` run, :func:`~clipscope_utils.training.logs_checkpoints`),
    checked before any work.

    For checkpoints trained elsewhere, such as LAION's scaling-laws run paper A used for Fig. 4c, or a user's own
    open_clip_train run of the caption-order experiment.
    """
    out = []
    for entry in entries:
        samples, sep, name = entry.partition("=")
        if sep and samples.strip() == LOGS:
            out.extend(logs_checkpoints(name.strip()))
            continue
        if not sep or not samples.strip().isdigit():
            raise ValueError(f"external checkpoint {entry!r}: expected 'SAMPLES=MODEL', e.g. "
                             "'2000000000=ViT-B-32@/path/epoch_10.pt', or 'logs=<folder>' for every epoch checkpoint "
                             "of an open_clip_train run (its --logs folder, with params.txt)")
        out.append((int(samples), registry.resolve(name.strip()).name))
    return out


def is_optional(name) -> bool:
    """Whether a model name is marked optional (``"simcse?"``): skipped with a note when absent, never an error."""
    return isinstance(name, str) and name.strip().endswith(OPTIONAL)


def describe_training(cfg: TrainConfig) -> str:
    """One line naming what a self-trained CLIP was trained on, for model tables, checks and provenance."""
    return (f"{cfg.model} trained from scratch on {cfg.family} scenes ({cfg.scenes} per object count, objects "
            f"{list(cfg.objects)}), {cfg.order} captions, {cfg.samples} samples, batch {cfg.batch_size}, lr {cfg.lr:g}, "
            f"seed {cfg.seed}, {cfg.device}; config key {cfg.key()}")


@dataclass(frozen=True)
class ModelZoo:
    """Resolves and loads every model name of the book; ``training`` is the template of ``trained:`` names."""

    training: TrainConfig = field(default_factory=training_template)
    skipped: list[str] = field(default_factory=list, compare=False)  # notes on optional models not on this machine
    #: the (order, seed) grid of the pretraining chapter: trained together when any of it is first needed
    grid: tuple[tuple[str, int], ...] = ()

    @classmethod
    def from_pretraining(cls, pretraining: Mapping | None) -> "ModelZoo":
        """The zoo of a profile, from its pretraining chapter's parameters."""
        grid = tuple((o, int(s)) for o in pretraining.get("orders", ()) for s in pretraining.get("seeds", ())) \
            if pretraining else ()
        return cls(training_template(pretraining), grid=grid)

    # -- names -------------------------------------------------------------------------------------------
    def trained_config(self, order: str, seed: int) -> TrainConfig:
        """The config of the self-trained CLIP with caption ``order`` and ``seed``."""
        return dataclasses.replace(self.training, order=order, seed=int(seed))

    def config_of(self, name: str | ModelSpec) -> TrainConfig | None:
        """The training config behind a ``trained:`` name (None for any other model)."""
        spec = self.resolve(name)
        return self.trained_config(spec.pretrained, spec.seed) if spec.source == "trained" else None

    def resolve(self, name: str | ModelSpec) -> ModelSpec:
        """A name's spec (cheap: nothing is loaded or trained); ``trained:`` names carry their config key."""
        if isinstance(name, str):
            name = name.strip().removesuffix(OPTIONAL).strip()
        if isinstance(name, ModelSpec) or not name.startswith(TRAINED):
            return registry.resolve(name)
        parts = name[len(TRAINED):].split(":")
        if len(parts) > 2 or parts[0] not in ORDERS:
            raise ModelError(f"model {name!r}: expected 'trained:<order>[:<seed>]' with order one of {list(ORDERS)}.")
        try:
            seed = int(parts[1]) if len(parts) == 2 else DEFAULT_SEED
        except ValueError:
            raise ModelError(f"model {name!r}: the seed {parts[1]!r} is not an integer.") from None
        try:
            cfg = self.trained_config(parts[0], seed)
        except TrainingError as e:
            raise ModelError(f"model {name!r}: {e}") from None
        return ModelSpec(name=f"{TRAINED}{parts[0]}:{seed}", source="trained", arch=cfg.model, pretrained=parts[0],
                         seed=seed, note=f"self-trained, config key {cfg.key()}")

    def with_controls(self, names: Iterable[str], controls: bool = True, need_images: bool = False) -> list[str]:
        """Canonical ``names`` (all resolved before any work) plus a random-init control per CLIP architecture.

        The control separates a learned bias from what the architecture alone produces: with a causal text
        encoder, "a cat and a dog" shares the exact token prefix of "a cat", so position 1 wins even untrained;
        a large object covers more pixels, whatever the weights.
        """
        out: list[str] = []
        for name in names:
            spec = self.resolve(name)
            if need_images and spec.kind != "clip":
                raise ModelError(f"model {name!r} is text-only; this chapter needs an image encoder")
            out.append(spec.name + (OPTIONAL if is_optional(name) else ""))
            # an hf-hub model's architecture is only known once its config is downloaded: no control then
            if controls and spec.kind == "clip" and spec.source not in ("random", "hf-hub"):
                out.append(registry.resolve(f"random:{spec.arch}").name)
        return list(dict.fromkeys(out))

    def describe(self, names: Iterable[str]) -> pd.DataFrame:
        """What each model name of a run resolved to (open_clip identifiers, text baseline) and, for a self-trained
        CLIP, its budget and config key (the page's provenance block has the whole config)."""
        rows = []
        for name in names:
            spec = self.resolve(name)
            cfg = self.config_of(spec)
            rows.append({"model": spec.name + (" (optional)" if is_optional(name) else ""), "kind": spec.kind,
                         # a page names a local file by its name, never by this machine's path
                         "resolves to": spec.describe().replace(spec.path, Path(spec.path).name) if spec.path
                                        else spec.describe(),
                         "paper row": spec.paper_name or "–",
                         "role": "random-init control" if spec.source == "random" else
                                 "text-only baseline" if spec.kind == "text" else "CLIP",
                         "trained here": f"{cfg.samples:,} samples, batch {cfg.batch_size}, key {cfg.key()[:8]}"
                                         if cfg else "–"})
        return pd.DataFrame(rows)

    # -- loading -----------------------------------------------------------------------------------------
    def load(self, name: str | ModelSpec, device: str = "auto") -> Encoder:
        """Load a model; a ``trained:`` one is trained first if its run is not cached (its final checkpoint)."""
        spec = self.resolve(name)
        if spec.source != "trained":
            return registry.load_model(spec, device=device)
        run = train(self.trained_config(spec.pretrained, spec.seed))
        enc = registry.load_model(dataclasses.replace(spec, source="checkpoint", path=str(run.final)), device=device)
        enc.spec = spec
        return enc

    def train_missing(self, names: Iterable[str], workers: int = 2, progress: bool = True) -> None:
        """Train the not-yet-cached ``trained:`` models among ``names``, and the rest of the pretraining grid,
        ``workers`` at a time, so a chapter that needs several waits for the slowest lane rather than for their sum
        (and the grid's odd run out does not leave a core idle in a later chapter)."""
        configs = [c for c in (self.config_of(n) for n in dict.fromkeys(names)) if c is not None]
        if configs:  # with the rest of the grid: one batch keeps every worker busy (train_many skips cached runs)
            grid = [self.trained_config(o, s) for o, s in self.grid]
            train_many(list(dict.fromkeys(configs + grid)), workers=workers, progress=progress)

    def encoders(self, names: Iterable[str], device: str = "auto",
                 progress: bool = True) -> Iterator[tuple[str, Encoder]]:
        """Load one model at a time (memory of one model at most), in the order given.

        An optional name (``"simcse?"``) whose weights are not on this machine is skipped: the reason goes to
        :attr:`skipped`, which the chapter shows, and the rest of the chapter runs.
        """
        names = list(names)
        self.train_missing(names, progress=progress)
        for name in tqdm(names, desc="models", unit="model", disable=not progress):
            try:
                enc = self.load(name, device=device)
            except ModelError as e:
                if not is_optional(name):
                    raise
                why = str(e).split(": ", 1)[-1].split(". ")[0]  # the reason, without paths (pages show it)
                note = f"{self.resolve(name).name} (optional) was skipped: {why}"
                if note not in self.skipped:
                    self.skipped.append(note)
                continue
            yield name.removesuffix(OPTIONAL), enc
            del enc
            gc.collect()
