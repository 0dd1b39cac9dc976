"""Installed versions of the libraries a result depends on: the one reader for cache keys and provenance."""

from __future__ import annotations

from importlib import metadata

import torch

ABSENT = "not installed"


def package_versions(names) -> dict[str, str]:
    """``{distribution: version}``; ``torch`` with its build tag (+cpu, +cu130 matter for numerics), and
    :data:`ABSENT` for a distribution that is not installed."""
    out = {}
    for name in names:
        if name == "torch":
            out[name] = torch.__version__
            continue
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = ABSENT
    return out
