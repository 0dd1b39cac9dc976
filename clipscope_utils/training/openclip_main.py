"""``open_clip_train``'s own training script with the book's model configs known, the entry point of
:func:`clipscope_utils.training.openclip.train`::

    torchrun --standalone --nproc_per_node=N -m clipscope_utils.training.openclip_main <args.json>
    python -m clipscope_utils.training.openclip_main <open_clip_train args>       (one process, no torchrun)

Why it exists: ``python -m open_clip_train.main`` knows only open_clip's built-in architectures, and every
torchrun process imports afresh, so the project's configs (``clipscope-tiny``, ``clipscope-small``) must be
registered inside each process before ``open_clip_train`` builds the model. Importing the model registry does
that; the arguments go to ``open_clip_train.main.main`` unchanged, so a run is open_clip_train's own but for
three adaptations to the pinned libraries (:func:`adapt`), each changing nothing but the failure it names:

* webdataset >= 0.2.96 (the project pins 1.0.2) ends every shard's stream of files with an end-of-file marker
  ``{}`` that ``open_clip_train``'s own grouping of files into samples reads as a file and fails on
  (``KeyError: 'fname'``, open_clip issue #935, webdataset issue #384); the fix its maintainers give is to ask
  for no marker (``eof_value=None``), which is what webdataset did before 0.2.96.
* ``open_clip_train`` (3.3) wraps the model as ``DistributedDataParallel(model, device_ids=[device])`` whatever
  the device, and torch refuses ``device_ids`` for a CPU module (it must be None there), so a gloo run on the
  CPU would fail before its first step. :class:`CpuReadyDDP` drops CPU ``device_ids``; GPU runs pass untouched.
* ``open_clip_train`` shuffles the shards with its ``--seed`` but the samples of a shard with webdataset's
  ``shuffle`` unseeded, which seeds itself from the clock: two runs of one config would differ. The sample
  shuffle is given a seed from ``--seed`` and the process's rank (:func:`seeded_shuffle`), so a run is a pure
  function of its config and shards, as every run of the book is.

Why a JSON file of arguments under torchrun: torchrun's own parser reads every ``--option`` of the command line,
the script's included, and refuses one that abbreviates two of its own (``--logs`` is a prefix of its
``--logs-specs`` and ``--logs_specs``), so ``open_clip_train``'s ``--logs`` cannot travel on its command line.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path

import open_clip_train.data
import torch
import webdataset
from open_clip_train.main import main as open_clip_train_main
from torch.nn.parallel import DistributedDataParallel
from webdataset.tariterators import tar_file_expander

from ..models import registry  # noqa: F401  (registers the project's model configs with open_clip)


class CpuReadyDDP(DistributedDataParallel):
    """``DistributedDataParallel`` that accepts ``device_ids=[cpu]`` as torch's "no device ids" (a CPU module)."""

    def __init__(self, module, device_ids=None, *args, **kwargs):
        if device_ids and all(torch.device(d).type == "cpu" for d in device_ids):
            device_ids = None
        super().__init__(module, device_ids, *args, **kwargs)


_SHUFFLE = webdataset.shuffle  # webdataset's own, before :func:`seeded_shuffle` replaces the module's name


def seeded_shuffle(seed: int) -> None:
    """webdataset's sample shuffle with a seed of this run and rank (one stream of choices per process, the same
    in every run of the config); ``open_clip_train`` builds its pipeline with ``wds.shuffle`` at call time."""
    rank = int(os.environ.get("RANK", "0"))
    webdataset.shuffle = functools.partial(_SHUFFLE, seed=seed * 100_003 + rank)


def run_seed(args: list[str]) -> int:
    """``--seed`` of ``open_clip_train`` arguments (its default, 0, when absent)."""
    for i, a in enumerate(args):
        if a == "--seed" and i + 1 < len(args):
            return int(args[i + 1])
        if a.startswith("--seed="):
            return int(a.split("=", 1)[1])
    return 0


def adapt(seed: int = 0) -> None:
    """Apply the three adaptations above in this process (``open_clip_train`` looks these names up at call time;
    dataloader workers are forked from it and inherit them)."""
    open_clip_train.data.tar_file_expander = functools.partial(tar_file_expander, eof_value=None)
    torch.nn.parallel.DistributedDataParallel = CpuReadyDDP
    seeded_shuffle(seed)


def arguments(argv: list[str]) -> list[str]:
    """``open_clip_train`` arguments: ``argv`` itself, or the JSON list in the one file ``argv`` names."""
    if len(argv) == 1 and argv[0].endswith(".json"):
        args = json.loads(Path(argv[0]).read_text())
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise SystemExit(f"{argv[0]}: expected a JSON list of open_clip_train arguments (strings)")
        return args
    return list(argv)


def main(argv: list[str] | None = None) -> int:
    """Run ``open_clip_train.main.main``; its refusals (it *returns* -1, e.g. when the experiment's log already
    exists) become a non-zero exit status."""
    args = arguments(sys.argv[1:] if argv is None else argv)
    adapt(run_seed(args))
    status = open_clip_train_main(args)
    return 1 if isinstance(status, int) and status < 0 else 0


if __name__ == "__main__":
    sys.exit(main())
