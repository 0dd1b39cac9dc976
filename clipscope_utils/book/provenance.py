"""Provenance of an executed page: profile, parameters, commit, versions, device, wall time, date.

The runner puts this as a collapsible block under each page's title, so every number in the book
can be traced to the code and the machine that produced it.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import nbformat

from ..device import describe_device
from ..versions import package_versions

PACKAGES = (
    "clipscope-utils", "torch", "torchvision", "open_clip_torch", "numpy", "pandas", "pillow",
    "seaborn", "papermill", "jupyter-book",
)
NOTICE_TAG = "clipscope-notice"
CELL_TAG = "clipscope-provenance"


def git_commit(root: Path) -> str:
    """Short commit hash, with ``+dirty`` when tracked files differ from it; ``unknown`` outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def record(root: Path, profile: str, params: dict, wall_s: float, trained: dict[str, str] | None = None) -> dict:
    """Everything the provenance block shows, as a plain dict (also stored in the notebook metadata);
    ``trained``: the training config of every ``trained:`` model the page used."""
    return {
        "profile": profile,
        "parameters": params,
        "trained_models": dict(trained or {}),
        "commit": git_commit(root),
        "versions": package_versions(PACKAGES),
        "device": describe_device(),
        "wall_time_s": round(wall_s, 1),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _markdown(rec: dict) -> str:
    params = "\n".join(f"| `{k}` | the *{k}* chapter's parameters (shared) |" if isinstance(v, dict) else
                       f"| `{k}` | `{v!r}` |" for k, v in rec["parameters"].items())
    versions = ", ".join(f"{k} {v}" for k, v in rec["versions"].items())
    trained = "".join(f"- `{name}`: {cfg}\n" for name, cfg in rec.get("trained_models", {}).items())
    trained = f"Self-trained models of this page:\n\n{trained}\n" if trained else ""
    return (
        ":::{admonition} Provenance of this page\n:class: dropdown note\n\n"
        f"Executed with profile **{rec['profile']}** at commit `{rec['commit']}` on {rec['device']}, "
        f"{rec['date']}, in {rec['wall_time_s']} s.\n\n"
        f"| parameter | value |\n|---|---|\n{params}\n\n"
        f"{trained}"
        f"Versions: {versions}.\n:::\n"
    )


def stamp(nb: nbformat.NotebookNode, rec: dict, notice: str = "") -> None:
    """Insert (or replace) the provenance cell after the title cell and store ``rec`` in metadata; a profile's
    ``notice`` (the rehearsal's "stand-ins, the numbers mean nothing") becomes the page's first line."""
    nb.cells = [c for c in nb.cells if not {CELL_TAG, NOTICE_TAG} & set(c.get("metadata", {}).get("tags", []))]
    cell = nbformat.v4.new_markdown_cell(_markdown(rec), metadata={"tags": [CELL_TAG]})
    nb.cells.insert(1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0, cell)
    if notice.strip():
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(f"```{{warning}}\n{notice.strip()}\n```",
                                                         metadata={"tags": [NOTICE_TAG]}))
    nb.metadata["clipscope"] = rec
    # the page shows the injected (effective) parameters; the notebook's own defaults would only confuse
    for c in nb.cells:
        tags = c.get("metadata", {}).get("tags", [])
        if "parameters" in tags and "remove-cell" not in tags:
            c.metadata["tags"] = [*tags, "remove-cell"]
