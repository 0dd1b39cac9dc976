"""Pick the compute device (CUDA when present, CPU otherwise) and describe it for provenance."""

from __future__ import annotations

import os
import platform
from functools import lru_cache

import torch


def pick_device(requested: str = "auto") -> str:
    """``"auto"`` gives ``"cuda"`` when a GPU is visible, else ``"cpu"``; explicit names are checked."""
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {requested!r} was requested but no CUDA GPU is visible; use 'auto' or 'cpu'")
    if requested != "cpu" and not requested.startswith("cuda"):
        raise ValueError(f"unknown device {requested!r}; allowed: 'auto', 'cpu', 'cuda', 'cuda:N'")
    return requested


@lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_device() -> str:
    """One line naming the device the code runs on, e.g. ``CPU: AMD EPYC 7B13 (2 cores)``."""
    if torch.cuda.is_available():
        names = sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())})
        return f"GPU: {', '.join(names)} x{torch.cuda.device_count()} (+ CPU {cpu_model()})"
    return f"CPU: {cpu_model()} ({os.cpu_count()} cores)"
