"""Run independent jobs (training or fine-tuning runs) side by side on the machine's cores."""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor

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
