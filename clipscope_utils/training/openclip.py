"""The causal caption-order experiment at scale: CLIP pretraining by ``open_clip_train`` itself, under torchrun,
on webdataset shards whose captions carry the controlled object order (paper A section 4.3, Fig. 4c).

The book's own loop (:mod:`.loop`) trains small CLIPs on one machine with checkpoints at fixed numbers of samples
seen; at LAION scale the same experiment is CLIP pretraining on many GPUs, which is what ``open_clip_train``
does. :func:`train` runs it as data-parallel processes (``torchrun --nproc_per_node N``; gloo on the CPU, NCCL
with one GPU each), one ``epoch_K.pt`` checkpoint per epoch, and :func:`logs_checkpoints` reads the checkpoints
of any ``open_clip_train`` run (this one's, or a user's own), so the progression chapter probes them all alike.

How the shards are read (``open_clip_train.data.get_wds_dataset``): without ``--dataset-resampled`` the shard
list is shuffled with ``--seed + epoch`` (the same order in every process), then split by process
(``split_by_node``: process r reads shards r, r+P, ...) and within a process by dataloader worker; every worker
yields a fixed number of whole batches per epoch, going round its shards again when they run out. We use that
mode, not ``--dataset-resampled``:

* which shards each process reads in each epoch is fixed by the seed, disjoint between processes, and every
  shard is read once per pass; resampling draws shards with replacement (two processes can read the same shard
  in one step, putting duplicate pairs into one contrastive batch), and with ``--workers 0`` its draw is seeded
  by the process rank alone, ignoring ``--seed`` and the epoch;
* its one demand, every worker of every process owning shards that hold at least one batch (a worker with no
  data ends its epoch at once while the others wait in an all-reduce), is checked here before any process
  starts (:func:`check_shards`), from the shards' member lists.

The order of samples inside webdataset's shuffle buffer is seeded too (``wds.shuffle`` would seed itself from
the clock; :mod:`.openclip_main` gives it ``--seed`` and the rank), so a run is a pure function of its config and
shards: two runs of one config end with the same weights (tested).

A run lives in ``<cache>/openclip/<label>-<key>/``: ``run.json`` (the config), ``args.json`` (the exact
``open_clip_train`` arguments), ``train.log`` (every process's output), ``logs/run/`` (``open_clip_train``'s own
folder: ``out.log``, ``params.txt``, ``checkpoints/epoch_K.pt``) and ``done.json``, written last.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import re
import shutil
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import open_clip
import pandas as pd
from tqdm.auto import tqdm

from ..models import registry
from ..models.base import ModelError
from ..parallel import gpu_shortfall, log_summary, torchrun
from ..paths import atomic_write, cache_dir, cached_folder, content_id, is_complete
from ..versions import package_versions
from .config import TrainingError

RUNNER_VERSION = 2  # bump when what a config runs changes (arguments, the entry point's adaptations)
DONE = "done.json"  # written last: the run is complete
ENTRY_MODULE = "clipscope_utils.training.openclip_main"  # the torchrun entry point (named: it runs in new processes)
RUN_NAME = "run"  # open_clip_train's --name: its folder under <run folder>/logs
#: open_clip_train's --precision choices
PRECISIONS = ("amp", "amp_bf16", "amp_bfloat16", "bf16", "fp16", "pure_bf16", "pure_fp16", "fp32")
#: the members open_clip_train's pipeline takes as a sample's image and caption (``jpg;png;jpeg;webp``, ``txt``)
IMAGE_SUFFIXES = ("jpg", "png", "jpeg", "webp")
_SAMPLE_MEMBER = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # webdataset's key.suffix split (base_plus_ext)
_EPOCH_FILE = re.compile(r"epoch_(\d+)\.pt")
_TRAIN_LINE = re.compile(r"Train Epoch: (\d+) \[\s*(\d+)/(\d+) \(\d+%\)\].*?Batch \(t\): [^,]+, ([^/]+)/s.*?"
                         r"LR: (\S+) Logit Scale: (\S+) (.*)$")
_LOSS = re.compile(r"(\w+): (\S+) \(")


@dataclass(frozen=True)
class OpenClipRun:
    """One open_clip_train run on webdataset shards: the cache key's material (``label`` is only a name).

    ``shards``: ``.tar`` files in img2dataset's layout (``<key>.jpg|png|jpeg|webp`` beside ``<key>.txt``).
    ``batch_size`` is the global batch, split evenly over ``processes`` (``--batch-size`` is per process);
    ``samples`` is each epoch's ``--train-num-samples``, a whole number of global batches (per dataloader
    worker), so checkpoint K has seen exactly K x ``samples``.
    """

    shards: tuple[str, ...]
    model: str = "clipscope-tiny"  # an open_clip architecture (the project's configs are registered)
    samples: int = 4096  # --train-num-samples per epoch
    epochs: int = 2  # one checkpoint per epoch (epoch_K.pt)
    batch_size: int = 64  # the global batch; split over processes
    lr: float = 1e-3
    warmup: int = 10  # optimiser steps
    weight_decay: float = 0.2
    processes: int = 1  # torchrun --nproc_per_node (gloo on the CPU, NCCL with one GPU each)
    device: str = "cpu"  # "cuda" on GPUs
    precision: str = "fp32"
    workers: int = 0  # dataloader workers per process (0: each process reads its shards itself)
    seed: int = 0
    label: str = ""  # e.g. the caption-order policy, for folder names and tables; not part of the key

    def __post_init__(self) -> None:
        shards = (self.shards,) if isinstance(self.shards, (str, Path)) else self.shards
        object.__setattr__(self, "shards", tuple(str(Path(s).expanduser().resolve()) for s in shards))
        self.validate()

    def validate(self) -> None:
        """Every check the config allows alone (no file is read): :func:`check_shards` checks the data."""
        if not self.shards:
            raise TrainingError("shards: give at least one webdataset .tar file")
        for s in self.shards:  # open_clip_train splits --train-data on '::' and expands braces
            if "::" in s or "{" in s or "}" in s:
                raise TrainingError(f"shard path {s!r} holds '::' or a brace, which open_clip_train's --train-data "
                                    "would read as a list; rename or link the file")
        if self.model not in open_clip.list_models():
            raise TrainingError(f"model {self.model!r} is no open_clip architecture (see open_clip.list_models(); "
                                "the project's are clipscope-tiny and clipscope-small)")
        for name in ("samples", "epochs", "batch_size", "processes"):
            if int(getattr(self, name)) < 1:
                raise TrainingError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.workers < 0:
            raise TrainingError(f"workers must be >= 0, got {self.workers}")
        if self.batch_size % self.processes:
            raise TrainingError(f"batch_size={self.batch_size} (the global batch) does not split evenly over "
                                f"{self.processes} processes")
        if self.batch_size // self.processes < 2:
            raise TrainingError("each process needs a batch of at least 2: the contrastive loss needs negatives")
        unit = self.batch_size * max(self.workers, 1)
        if self.samples % unit:
            raise TrainingError(f"samples={self.samples} per epoch is not a whole number of batches: open_clip_train "
                                f"would round it up to a multiple of batch_size x max(workers, 1) = {unit}; give "
                                f"such a multiple, e.g. {-(-self.samples // unit) * unit}")
        if self.device not in ("cpu", "cuda"):
            raise TrainingError(f"device must be 'cpu' or 'cuda' (one GPU per process), got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise TrainingError(f"precision must be one of {list(PRECISIONS)}, got {self.precision!r}")
        if not self.lr > 0 or self.weight_decay < 0 or self.warmup < 0:
            raise TrainingError("lr must be > 0, weight_decay and warmup >= 0")
        if self.warmup >= self.steps:
            raise TrainingError(f"the warm-up ({self.warmup} steps) is not shorter than training: {self.steps} steps "
                                f"= epochs={self.epochs} x samples={self.samples} // batch_size={self.batch_size}; "
                                "lower warmup or train longer")
        if not re.fullmatch(r"[A-Za-z0-9_.-]*", self.label):
            raise TrainingError(f"label {self.label!r}: use letters, digits, '_', '-' and '.' only (a folder name)")

    @property
    def steps(self) -> int:
        """Optimiser steps of the run (every epoch is ``samples // batch_size`` global batches)."""
        return self.epochs * (self.samples // self.batch_size)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "OpenClipRun":
        return cls(**{k: tuple(v) if k == "shards" else v for k, v in d.items()})

    def key(self) -> str:
        """Hash of every knob but ``label``, the shards' contents (in order: the seeded shard shuffle starts from
        it) rather than their paths, the runner and the library versions."""
        config = {k: v for k, v in self.to_dict().items() if k not in ("label", "shards")}
        material = {"config": config, "shards": [content_id(s) for s in self.shards], "runner": RUNNER_VERSION,
                    "versions": package_versions(("open_clip_torch", "torch", "webdataset"))}
        return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]

    def replace(self, **changes) -> "OpenClipRun":
        return dataclasses.replace(self, **changes)


def run_folder(run: OpenClipRun) -> Path:
    """``<cache>/openclip/<label>-<key>`` (``<key>`` without a label); the shards must exist (they are hashed)."""
    key = run.key()
    return cache_dir() / "openclip" / (f"{run.label}-{key}" if run.label else key)


_PAIRS: dict[tuple[str, int, int], int] = {}


def shard_pairs(path: str | Path) -> int:
    """Image-caption pairs in a webdataset shard as ``open_clip_train`` groups them: consecutive members sharing
    a key, holding a ``txt`` and an image (read from the tar's member list only; remembered per size and mtime)."""
    p = Path(path)
    st = p.stat()
    memo = (str(p), st.st_size, st.st_mtime_ns)
    if memo not in _PAIRS:
        pairs, key, suffixes = 0, None, set()
        try:
            with tarfile.open(p) as tar:
                for member in tar:
                    m = _SAMPLE_MEMBER.match(member.name) if member.isfile() else None
                    if m is None:
                        continue
                    if m.group(1) != key or m.group(2).lower() in suffixes:
                        pairs += "txt" in suffixes and bool(suffixes & set(IMAGE_SUFFIXES))
                        key, suffixes = m.group(1), set()
                    suffixes.add(m.group(2).lower())
        except tarfile.TarError as e:
            raise TrainingError(f"shard {p} is not a readable tar file ({e})") from None
        _PAIRS[memo] = pairs + ("txt" in suffixes and bool(suffixes & set(IMAGE_SUFFIXES)))
    return _PAIRS[memo]


def require_shards(run: OpenClipRun) -> None:
    """:class:`TrainingError` naming the missing shards, if any."""
    missing = [s for s in run.shards if not Path(s).is_file()]
    if missing:
        raise TrainingError(f"shard {missing[0]} does not exist" + (f", nor do {len(missing) - 1} more of the "
                                                                    f"{len(run.shards)}" if len(missing) > 1 else ""))


def check_shards(run: OpenClipRun) -> list[int]:
    """The pairs in each shard, or :class:`TrainingError` before any process starts: a shard missing or without
    pairs, fewer shards than readers (processes x max(workers, 1)), or a reader whose share could hold less than
    one batch of its process (its smallest possible share: the fewest shards it can get, the smallest ones)."""
    require_shards(run)
    pairs = [shard_pairs(s) for s in run.shards]
    empty = [s for s, n in zip(run.shards, pairs) if n == 0]
    if empty:
        raise TrainingError(f"shard {empty[0]} holds no image-caption pair (<key>.{'|'.join(IMAGE_SUFFIXES)} beside "
                            "<key>.txt)" + (f", nor do {len(empty) - 1} more" if len(empty) > 1 else ""))
    readers = run.processes * max(run.workers, 1)
    if len(pairs) < readers:
        raise TrainingError(f"{len(pairs)} shards for {readers} readers ({run.processes} processes x "
                            f"{max(run.workers, 1)} dataloader worker(s)): open_clip_train gives each reader whole "
                            "shards, so one would read nothing; write more, smaller shards or use fewer processes")
    share = sum(sorted(pairs)[:len(pairs) // readers])
    per_process = run.batch_size // run.processes
    if share < per_process:
        raise TrainingError(f"a reader may get only {len(pairs) // readers} shard(s) with {share} pairs, less than one "
                            f"batch of its process ({per_process}); write more pairs per shard or lower batch_size")
    return pairs


def openclip_args(run: OpenClipRun, logs: Path) -> list[str]:
    """The ``open_clip_train`` arguments of a run writing into ``logs`` (``<logs>/run/``)."""
    per_epoch = run.samples // run.batch_size
    args = ["--train-data", "::".join(run.shards), "--dataset-type", "webdataset",
            "--train-num-samples", str(run.samples), "--epochs", str(run.epochs),
            "--batch-size", str(run.batch_size // run.processes), "--model", run.model, "--lr", str(run.lr),
            "--warmup", str(run.warmup), "--wd", str(run.weight_decay), "--precision", run.precision,
            "--device", run.device, "--workers", str(run.workers), "--seed", str(run.seed), "--logs", str(logs),
            "--name", RUN_NAME, "--save-frequency", "1", "--zeroshot-frequency", "0", "--report-to", "",
            "--log-every-n-steps", str(max(1, per_epoch // 100))]  # a loss line per step, at most ~100 an epoch
    return args + (["--dist-backend", "gloo"] if run.device == "cpu" else [])


@dataclass
class OpenClipResult:
    """A finished run: its folder, config, checkpoints (samples seen, registry name) in epoch order, and the wall
    time of its training job in seconds."""

    folder: Path
    run: OpenClipRun
    checkpoints: list[tuple[int, str]]
    seconds: float = float("nan")

    @property
    def logs(self) -> Path:
        """``open_clip_train``'s own folder of the run (``out.log``, ``params.txt``, ``checkpoints/``)."""
        return self.folder / "logs" / RUN_NAME

    def log(self) -> pd.DataFrame:
        """The training losses per logged step (:func:`train_log`)."""
        return train_log(self.logs)


def read_params(path: Path) -> dict[str, str]:
    """``open_clip_train``'s ``params.txt`` (``name: value`` lines) as strings; {} without the file."""
    if not Path(path).is_file():
        return {}
    return dict(line.split(": ", 1) if ": " in line else (line.rstrip(":"), "")
                for line in Path(path).read_text().splitlines() if line.strip())


def train_log(run_logs: str | Path) -> pd.DataFrame:
    """The ``Train Epoch`` lines of an ``open_clip_train`` run's ``out.log``: per logged step its ``epoch``,
    ``step`` (counted over the run, 1-based), ``samples`` seen, ``lr``, ``logit_scale``, ``samples_per_second``
    (that step's, all processes) and every loss it logs (``contrastive_loss``, ``loss``)."""
    run_logs = Path(run_logs)
    params = read_params(run_logs / "params.txt")
    batch = int(params.get("batch_size", 0)) * int(params.get("world_size", 1))
    rows = []
    text = (run_logs / "out.log").read_text(errors="replace") if (run_logs / "out.log").is_file() else ""
    for line in text.splitlines():
        m = _TRAIN_LINE.search(line)
        if m is None:
            continue
        epoch, seen, per_epoch = int(m.group(1)), int(m.group(2)), int(m.group(3))
        samples = epoch * per_epoch + seen
        row = {"epoch": epoch, "step": samples // batch if batch else float("nan"), "samples": samples,
               "lr": float(m.group(5)), "logit_scale": float(m.group(6)), "samples_per_second": float(m.group(4))}
        row.update({name.lower(): float(value) for name, value in _LOSS.findall(m.group(7))})
        rows.append(row)
    return pd.DataFrame(rows)


def _run_logs(folder: Path) -> Path:
    """The ``<logs>/<name>`` folder of one ``open_clip_train`` run named by ``folder``: that folder, its
    ``checkpoints/`` folder, or a ``<logs>`` folder holding one run."""
    if not folder.is_dir():
        raise TrainingError(f"open_clip_train logs folder {folder} does not exist")
    if (folder / "checkpoints").is_dir():
        return folder
    if folder.name == "checkpoints":
        return folder.parent
    runs = sorted(d for d in folder.iterdir() if (d / "checkpoints").is_dir())
    if len(runs) > 1:
        raise TrainingError(f"{folder} holds several open_clip_train runs ({', '.join(d.name for d in runs)}); "
                            "name one of them: 'logs=<folder>/<name>'")
    if not runs:
        raise TrainingError(f"no open_clip_train run in {folder}: expected <logs>/<name>/checkpoints/epoch_K.pt "
                            "beside <logs>/<name>/params.txt")
    return runs[0]


def logs_checkpoints(folder: str | Path) -> list[tuple[int, str]]:
    """(samples seen, registry name ``<arch>@<epoch_K.pt>``) of every epoch checkpoint of an ``open_clip_train``
    run, in epoch order: ``folder`` is its logs folder (``<logs>`` holding one ``<name>``), the ``<name>`` folder
    or its ``checkpoints/``. Samples seen = K x ``train_num_samples`` and the architecture is ``model`` (with
    ``-quickgelu`` when the run forced QuickGELU), both from the run's ``params.txt``."""
    folder = Path(folder).expanduser()
    logs = _run_logs(folder)
    files = sorted((int(m.group(1)), p) for p in (logs / "checkpoints").glob("epoch_*.pt")
                   if (m := _EPOCH_FILE.fullmatch(p.name)))
    if not files:
        raise TrainingError(f"no open_clip_train epoch checkpoints (checkpoints/epoch_K.pt) in {folder}")
    params = read_params(logs / "params.txt")
    example = f"'<SAMPLES>=<ARCH>@{files[-1][1]}'"
    if not params.get("train_num_samples", "").isdigit():
        why = "has no params.txt" if not params else "gives no train_num_samples in its params.txt"
        raise TrainingError(f"the open_clip_train run {logs} {why}, so the samples seen by each checkpoint are "
                            f"unknown; name each checkpoint with its samples instead, e.g. {example}")
    arch = params.get("model", "")
    if params.get("force_quick_gelu") == "True" and not arch.endswith("-quickgelu"):
        arch += "-quickgelu"
    per_epoch = int(params["train_num_samples"])
    try:
        return [(k * per_epoch, registry.resolve(f"{arch}@{path}").name) for k, path in files]
    except ModelError as e:
        raise TrainingError(f"the open_clip_train run {logs}: {e}") from None


def load_result(folder: str | Path) -> OpenClipResult:
    """A finished run from its folder; every epoch's checkpoint must be there."""
    folder = Path(folder)
    if not is_complete(folder, DONE):
        raise TrainingError(f"{folder} holds no finished open_clip_train run")
    run = OpenClipRun.from_dict(json.loads((folder / "run.json").read_text()))
    checkpoints = logs_checkpoints(folder / "logs")
    if len(checkpoints) != run.epochs:
        raise TrainingError(f"the open_clip_train run in {folder} is marked finished but holds {len(checkpoints)} of "
                            f"its {run.epochs} epoch checkpoints; delete the folder to train it again")
    return OpenClipResult(folder, run, checkpoints, json.loads((folder / DONE).read_text())["seconds"])


def _watch(job: concurrent.futures.Future, out_log: Path, total: int) -> None:
    """A progress bar of samples seen, read from ``open_clip_train``'s log until ``job`` ends."""
    with tqdm(total=total, desc="open_clip_train", unit="sample") as bar:
        while not job.done():
            time.sleep(1.0)
            seen = [int(m.group(1)) * int(m.group(3)) + int(m.group(2))
                    for m in _TRAIN_LINE.finditer(out_log.read_text(errors="replace"))] if out_log.is_file() else []
            if seen and seen[-1] > bar.n:
                bar.update(seen[-1] - bar.n)


def _launch(run: OpenClipRun, folder: Path, progress: bool) -> None:
    """Run ``run`` under torchrun into ``folder`` (``done.json`` last), or raise :class:`TrainingError`."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(folder / "logs", ignore_errors=True)  # a failed try's out.log would make open_clip_train refuse
    atomic_write(folder / "run.json", lambda f: f.write(json.dumps(run.to_dict(), indent=1).encode()))
    atomic_write(folder / "args.json", lambda f: f.write(json.dumps(openclip_args(run, folder / "logs")).encode()))
    log = folder / "train.log"
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        job = pool.submit(torchrun, ENTRY_MODULE, [str(folder / "args.json")], run.processes, log, 1)
        if progress:
            _watch(job, folder / "logs" / RUN_NAME / "out.log", run.epochs * run.samples)
        rc = job.result()
    seconds = time.perf_counter() - t0
    saved = sorted((folder / "logs" / RUN_NAME / "checkpoints").glob("epoch_*.pt"))
    if rc != 0 or len(saved) != run.epochs:
        raise TrainingError(f"open_clip_train ({run.processes} processes on {run.device}) failed with exit code {rc}"
                            f"{'' if rc else f' after saving {len(saved)} of {run.epochs} epoch checkpoints'}; "
                            f"{log_summary(log)}\n(the whole log: {log})")
    atomic_write(folder / DONE, lambda f: f.write(json.dumps({"seconds": seconds, "steps": run.steps}).encode()))


def train(run: OpenClipRun, progress: bool = False) -> OpenClipResult:
    """Train ``run`` with ``open_clip_train`` under torchrun, or return the cached run at once.

    Everything is checked before any process starts: the config (:meth:`OpenClipRun.validate`), the shards
    (:func:`check_shards`) and, on CUDA, one GPU per process. Even one process goes through torchrun: one code
    path. ``progress``: a bar of samples seen, read from the run's log.
    """
    require_shards(run)  # before hashing them into the key
    folder = run_folder(run)

    def make(folder: Path) -> None:
        check_shards(run)
        if gpu_shortfall(run.processes, run.device):
            raise TrainingError(gpu_shortfall(run.processes, run.device))
        _launch(run, folder, progress)

    return cached_folder(folder, DONE, load_result, make)
