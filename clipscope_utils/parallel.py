"""Run independent jobs (training or fine-tuning runs) side by side on the machine's cores, and one job as
data-parallel processes under torchrun (:func:`torchrun`, the one launcher of every such job)."""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from tqdm import tqdm


def in_parallel(func, jobs: list, workers: int = 2, desc: str = "runs", progress: bool = True) -> None:
    """Run ``func(job)`` for every job in ``workers`` spawned single-process lanes (one thread each: measured
    best on 2 CPU cores); a single lane runs in this process, with no start-up cost."""
    if not jobs:
        return
    if workers == 1 or len(jobs) == 1:
        for job in tqdm(jobs, desc=desc, disable=not progress):
            func(job)
        return
    with ProcessPoolExecutor(max_workers=max(1, min(workers, len(jobs))), mp_context=mp.get_context("spawn")) as pool:
        for _ in tqdm(pool.map(func, jobs), total=len(jobs), desc=desc, disable=not progress):
            pass


# what a process says when it fails: an exception line (``[rank1]: ValueError: ...``, ``KeyError: 'fname'``) or an
# argument parser's refusal (``main.py: error: ...``); torchrun's own ChildFailedError is left out
_CAUSE = re.compile(r"^(?:\[rank\d+\]:\s*)?((?:[A-Za-z_][\w.]*\.)?\w*(?:Error|Exception)\b(?::.*)?|\S+: error: .*)$",
                    re.M)
_NOISE = re.compile(r"^(?:\[rank\d+\]:)?[IWE]\d{4} \d\d:\d\d:\d\d.*\n?", re.M)  # torch's own log lines
_AGENT_REPORT = "\nTraceback (most recent call last):"  # torchrun's traceback and report, once its processes failed


def torchrun(module: str, args: Sequence[str], processes: int, log: str | os.PathLike, threads: int = 1) -> int:
    """Run ``python -m torch.distributed.run --standalone --nproc_per_node=<processes> -m <module> <args>`` and wait;
    ``threads`` CPU threads per process (``OMP_NUM_THREADS``), every process's stdout and stderr into ``log``.
    Returns the exit code; :func:`log_summary` says why a run failed. ``--standalone`` gives each job a rendezvous
    on a free port of its own, so jobs side by side never meet."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
           "-m", module, *args]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        return subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env).returncode


def gpu_shortfall(processes: int, device: str) -> str:
    """Why ``processes`` data-parallel processes do not fit this machine on ``device`` ('' when they do): on CUDA
    each needs a GPU of its own (NCCL); on the CPU (gloo) any number fits."""
    if torch.device(device).type != "cuda":
        return ""
    gpus = torch.cuda.device_count()
    return f"{processes} processes need {processes} GPUs (one each); this machine has {gpus}" if processes > gpus \
        else ""


def log_summary(log: str | os.PathLike, chars: int = 3000) -> str:
    """What a failed :func:`torchrun` job's ``log`` tells: the first error a process reported (the cause; the others'
    errors follow from it) and the end of what the processes wrote (torchrun's own report and torch's log lines
    left out: they name no cause)."""
    text = Path(log).read_text(errors="replace") if Path(log).is_file() else ""
    report = text.rfind("ChildFailedError")
    if report >= 0 and text.rfind(_AGENT_REPORT, 0, report) >= 0:
        text = text[:text.rfind(_AGENT_REPORT, 0, report)]
    causes = [c for c in _CAUSE.findall(text) if "ChildFailedError" not in c]
    tail = _NOISE.sub("", text).strip()[-chars:]
    return (f"the first error: {causes[0]}\n" if causes else "") + f"the end of its log:\n{tail}"
