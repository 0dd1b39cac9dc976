"""Train a small open_clip model from scratch: open_clip's model, tokenizer, loss and LR schedule.

Why a loop of our own rather than ``open_clip_train.main``: its checkpoints fall on epoch ends and its
data order after a resume depends on the global RNG, while the book needs checkpoints at fixed numbers
of samples seen and a resumed run that ends bit-identical to an uninterrupted one. Everything else is
open_clip's: ``create_model``, the tokenizer, ``ClipLoss``, ``open_clip_train.scheduler.cosine_lr``,
its no-weight-decay rule for gains and biases and its logit-scale clamp. What is the loop's own is speed
(``throughput``: bf16 matmuls with fp32 attention and loss, the text context cut to the captions, fused
AdamW); ``benchmarks/training.py`` measures it against ``open_clip_train`` on the same models and data.

A run lives in ``<cache>/models/<config key>/``: ``config.json``, ``log.csv`` (loss per step),
``ckpt-<samples>.pt`` (open_clip state dicts, loadable as ``clipscope-tiny@<file>``), ``state.pt``
(the latest resumable state) and ``done.json`` once finished.
"""

from __future__ import annotations

import json
import math
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import open_clip
import pandas as pd
import torch
from open_clip_train.scheduler import cosine_lr
from tqdm import tqdm

from ..models import registry
from ..parallel import in_parallel
from ..optim import optimizer
from ..paths import atomic_write, cache_dir, cached_folder, is_complete
from .config import TrainConfig, TrainingError
from ..datasets import generate_cached
from .data import TrainingData, scene_spec
from .throughput import FittedContext, autocast, caption_length

DONE = "done.json"  # written last: the run is complete


@dataclass
class TrainedModel:
    """A finished run: its folder, config, loss log and checkpoints (samples seen -> file)."""

    folder: Path
    config: TrainConfig
    log: pd.DataFrame
    checkpoints: dict[int, Path]

    @property
    def final(self) -> Path:
        return self.checkpoints[max(self.checkpoints)]

    def model_name(self, samples: int | None = None) -> str:
        """The registry name of a checkpoint (the final one by default)."""
        path = self.final if samples is None else self.checkpoints[samples]
        return f"{self.config.model}@{path}"

    def checkpoint_names(self, which: str = "all") -> list[tuple[int, str]]:
        """(samples seen, registry name) of the run's states: its start (the random init of the same seed, or
        the checkpoint a fine-tune starts from), then all its checkpoints or only the final one (``which``: "all" or "final")."""
        if which not in ("all", "final"):
            raise ValueError(f"which must be 'all' or 'final', got {which!r}")
        init = self.config.init
        start = [(0, f"{self.config.model}@{init}" if init else f"random:{self.config.model}:{self.config.seed}")]
        if which == "final":
            return start + [(max(self.checkpoints), self.model_name())]
        return start + [(s, self.model_name(s)) for s in sorted(self.checkpoints)]


def run_folder(cfg: TrainConfig) -> Path:
    prior = f"-prior{cfg.size_prior:g}" if cfg.size_prior else ""  # tells prior runs apart at a glance
    tuned = "-finetune" if cfg.init else ""
    return cache_dir() / "models" / f"{cfg.model}-{cfg.order}{prior}{tuned}-s{cfg.seed}-{cfg.key()}"


def _atomic_save(obj, path: Path) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


def _build(cfg: TrainConfig):
    registry.resolve(f"random:{cfg.model}")  # a clear error for an unknown config, before any work
    model_cfg = open_clip.get_model_config(cfg.model)
    if model_cfg["vision_cfg"]["image_size"] != cfg.image_size:
        raise TrainingError(f"{cfg.model} takes {model_cfg['vision_cfg']['image_size']} px images; "
                            f"the config asks for {cfg.image_size} px scenes")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        with registry.quiet_open_clip():  # no pretrained weights, on purpose: trained from scratch
            model = open_clip.create_model(cfg.model, pretrained=None, output_dict=True)
    if cfg.init:  # a fine-tune of an earlier run (the cure test): its weights, a fresh optimiser
        model.load_state_dict(torch.load(cfg.init, map_location="cpu", weights_only=True))
    tokenizer = open_clip.get_tokenizer(cfg.model)
    return model, tokenizer


def train(cfg: TrainConfig, progress: bool = True, stop_after_step: int | None = None,
          scenes=None) -> TrainedModel:
    """Train ``cfg`` (or return the cached run), resuming from its last saved state if interrupted.

    ``stop_after_step`` ends the process early after saving state (used to test resuming).
    """
    folder = run_folder(cfg)
    if is_complete(folder, DONE) and final_checkpoint_problem(folder):
        (folder / DONE).unlink()  # marked finished, final checkpoint gone: train it again (runs are deterministic)
    return cached_folder(folder, DONE, load_run, lambda out: _train(cfg, out, progress, stop_after_step, scenes))


def available_memory() -> int:
    """Bytes of memory this machine can still give (MemAvailable), or 0 when unknown."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def check_memory(cfg: TrainConfig) -> None:
    """Refuse before any work a run whose data alone cannot fit: the decoded training scenes (uint8) and one float
    batch of images. A lower bound: activations come on top."""
    side = cfg.image_size
    need = cfg.scenes * len(cfg.objects) * 3 * side * side + cfg.batch_size * 3 * side * side * 4
    free = available_memory()
    if free and need > 0.8 * free:
        raise TrainingError(f"this run needs at least {need / 1e9:.1f} GB of memory for its scenes and one batch "
                            f"(activations come on top) but {free / 1e9:.1f} GB are available (the limit is 80 % "
                            "of it); lower n_scenes or batch_size")


def _train(cfg: TrainConfig, folder: Path, progress: bool, stop_after_step: int | None, scenes) -> None:
    check_memory(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"config": cfg.to_dict(), "key": cfg.key()}, indent=1))

    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        device = torch.device(cfg.device)
        model, tokenizer = _build(cfg)
        model.to(device).train()
        pre = open_clip.get_model_preprocess_cfg(model)
        data = TrainingData(cfg, scenes, mean=pre["mean"], std=pre["std"])
        length = caption_length(tokenizer, data.scene_captions())
        if length > model.context_length:
            raise TrainingError(f"the longest training caption has {length} tokens but {cfg.model} reads "
                                f"{model.context_length}; use fewer objects or a model with a longer context")
        fitted = FittedContext(model, length)  # before the optimiser: it owns the narrowed table
        opt = optimizer(model, cfg)
        schedule = cosine_lr(opt, cfg.lr, cfg.warmup, cfg.steps)
        loss_fn = open_clip.ClipLoss()
        start, log = 0, []
        if (folder / "state.pt").is_file():
            try:
                state = torch.load(folder / "state.pt", map_location=device, weights_only=False)
            except Exception as e:  # noqa: BLE001 - a truncated or foreign file: say which, and what to do
                raise TrainingError(f"the saved training state {folder / 'state.pt'} cannot be read ({type(e).__name__}); "
                                    "delete it to start this run over (the run is deterministic)") from None
            fitted.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            start, log = state["step"], state["log"]
        saves = set(cfg.checkpoint_steps())
        bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not progress,
                   desc=f"{cfg.model} {cfg.order} seed {cfg.seed}", unit="step")
        t0 = time.perf_counter()
        for step in bar:
            schedule(step)
            images, texts = data.batch(step)
            images, tokens = images.to(device), tokenizer(texts, context_length=fitted.length or None).to(device)
            with autocast(device, cfg.precision):
                out = model(images, tokens)
            loss = loss_fn(out["image_features"].float(), out["text_features"].float(), out["logit_scale"].float())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            done = step + 1
            log.append({"step": done, "samples": done * cfg.batch_size, "loss": float(loss.detach()),
                        "lr": opt.param_groups[0]["lr"], "seconds": time.perf_counter() - t0})
            if done in saves:
                _atomic_save(fitted.state_dict(), folder / f"ckpt-{done * cfg.batch_size:08d}.pt")
            if done in saves or done == stop_after_step:
                _atomic_save({"model": fitted.state_dict(), "optimizer": opt.state_dict(), "step": done,
                              "log": log}, folder / "state.pt")
            if done == stop_after_step:
                bar.close()
                raise InterruptedError(f"stopped after step {done} as asked (state saved)")
    finally:
        torch.set_num_threads(threads)
    pd.DataFrame(log).to_csv(folder / "log.csv", index=False)
    (folder / DONE).write_text(json.dumps({"steps": cfg.steps, "samples": cfg.steps * cfg.batch_size}))
    (folder / "state.pt").unlink(missing_ok=True)


def final_checkpoint_problem(folder: Path) -> str:
    """Why a finished run's final checkpoint cannot be served ('' when it can): missing, or not a torch file.
    An earlier checkpoint must never stand in for the final model."""
    try:
        samples = int(json.loads((Path(folder) / DONE).read_text())["samples"])
    except (OSError, ValueError, KeyError, TypeError):
        return f"{Path(folder) / DONE} is unreadable"
    final = Path(folder) / f"ckpt-{samples:08d}.pt"
    if not final.is_file():
        return f"its final checkpoint {final} is missing"
    if not zipfile.is_zipfile(final):
        return f"its final checkpoint {final} is not a readable torch file (truncated?)"
    return ""


def load_run(folder: Path) -> TrainedModel:
    """A finished run from its folder; its final checkpoint must be there (``final`` is always the last step)."""
    folder = Path(folder)
    if not is_complete(folder, DONE):
        raise TrainingError(f"{folder} holds no finished training run")
    problem = final_checkpoint_problem(folder)
    if problem:
        raise TrainingError(f"the training run in {folder} is marked finished but {problem}; train it again "
                            "(train() does so) or delete the folder")
    cfg = TrainConfig(**{k: tuple(v) if isinstance(v, list) else v
                         for k, v in json.loads((folder / "config.json").read_text())["config"].items()})
    ckpts = {int(p.stem.split("-")[1]): p for p in sorted(folder.glob("ckpt-*.pt"))}
    return TrainedModel(folder, cfg, pd.read_csv(folder / "log.csv"), ckpts)


def _train_quiet(cfg: TrainConfig) -> str:
    return str(train(cfg, progress=False).folder)


def train_many(configs: list[TrainConfig], workers: int = 2, progress: bool = True) -> list[TrainedModel]:
    """Train several configs as parallel single-process jobs; cached runs return at once."""
    todo = [c for c in configs if not is_complete(run_folder(c), DONE) or final_checkpoint_problem(run_folder(c))]
    # the scenes first, here: parallel runs that share a dataset would each generate it and replace each other's
    # folder under the other's reads
    for spec in {scene_spec(c).key(): scene_spec(c) for c in todo}.values():
        generate_cached(spec, progress=False)
    in_parallel(_train_quiet, todo, workers, desc="training runs", progress=progress)
    return [load_run(run_folder(c)) for c in configs]
