"""Data-parallel CAE fine-tuning, one process per GPU (or gloo processes on the CPU), started by torchrun::

    torchrun --standalone --nproc_per_node=N -m clipscope_utils.cae.distributed <config.json>

``<config.json>`` is a :class:`~clipscope_utils.cae.finetune.FinetuneConfig` as JSON (``to_dict()``), or a
job written by :func:`~clipscope_utils.cae.finetune.launch` (``config``, ``base_file``, ``folder``,
``progress``). Every process runs the same loop on its slice of each global batch; rank 0 writes the run folder
(the same cached folder a one-process run writes), the others only compute.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from ..models.registry import load_model
from ..paths import is_complete
from .finetune import DONE, FinetuneConfig, check_schedule, run_folder, save_run, train
from .world import join_world, leave_world


def read_job(path: str | Path) -> dict:
    """A job from a config file or a launcher's job file: ``config``, ``base_file``, ``folder``, ``progress``."""
    spec = json.loads(Path(path).read_text())
    job = spec if "config" in spec else {"config": spec}
    return {"base_file": "", "folder": "", "progress": True, **job}


def main(argv: list[str] | None = None) -> None:
    """Run one process's part of the job named in ``argv`` (torchrun's ``RANK`` / ``WORLD_SIZE`` say which)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: torchrun --nproc_per_node=N -m clipscope_utils.cae.distributed <config.json>")
    job = read_job(args[0])
    cfg = FinetuneConfig.from_dict(job["config"])
    check_schedule(cfg)
    world = join_world(cfg.device)
    try:
        base = (torch.load(job["base_file"], map_location="cpu", weights_only=False) if job["base_file"]
                else load_model(cfg.base, device="cpu"))  # the loop copies the model onto this rank's device
        folder = Path(job["folder"]) if job["folder"] else run_folder(cfg, base.identity)
        if is_complete(folder, DONE):
            return
        model, log = train(cfg, base, world, progress=job["progress"])
        if world.main:
            save_run(folder, cfg, base, model, log)
    finally:
        leave_world(world)


if __name__ == "__main__":
    main()
