"""What the runner does to an executed notebook before it becomes a page: readers get results, not machinery.

A live Jupyter session shows progress bars and warnings as usual; a page of the book does not. After papermill
succeeded and before the notebook is stamped, :func:`tidy`

* moves every stderr output (tqdm bars, warnings, logging) out of the notebook into ``_build/logs/<name>.log``,
  after checking it: a line formatted like a warning must match :data:`EXPECTED_WARNINGS`, which says why it is
  expected; any other warning fails the build, as does a traceback in any output or an output that shows this
  machine's paths (the checkout's absolute path, the environment's site-packages);
* turns nbval's comment markers (``# NBVAL_CHECK_OUTPUT``, ...) into the equivalent cell tags, so the page does
  not show test plumbing and ``pytest --nbval-lax`` still checks the same cells;
* folds every code cell (Jupyter Book's ``hide-input``: the reader gets a toggle) unless it is tagged
  ``show-input``;
* rewrites papermill's injected parameters cell, one line per parameter however long, as readable Python.

:func:`quiet_kernels` gives the runner's kernels environment variables that switch progress bars off at the source.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import pprint
import re
import site
import sysconfig
from pathlib import Path
from typing import Iterator

import nbformat

# Set for the kernels the runner starts only (a live session keeps its bars). tqdm >= 4.66 reads TQDM_<ARG> as the
# default of each argument, so a bar whose caller passes `disable=` explicitly still prints: the stderr rule below
# catches those. Warnings are deliberately not silenced here: the build has to see them to check them.
QUIET_KERNEL_ENV = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}

# Warnings a page may print (to the log, never to the reader), as (regex searched in the warning line, why).
EXPECTED_WARNINGS: tuple[tuple[str, str], ...] = (
    (r"No pretrained weights loaded for model '[^']*'\. Model initialized randomly\.",
     "open_clip logs it for every deliberately random-initialised model: the `random:` controls, the CLIPs the "
     "pretraining chapter trains from scratch and the rehearsal's stand-ins"),
)

# nbval 0.11 reads both forms (plugin.find_comment_markers, find_metadata_tags); the tags in --nbval-lax mode too
NBVAL_TAGS = {
    "NBVAL_CHECK_OUTPUT": "nbval-check-output",
    "NBVAL_IGNORE_OUTPUT": "nbval-ignore-output",
    "NBVAL_SKIP": "nbval-skip",
    "NBVAL_RAISES_EXCEPTION": "nbval-raises-exception",
}
HIDE_TAG, SHOW_TAG = "hide-input", "show-input"
NOT_FOLDED = {SHOW_TAG, HIDE_TAG, "hide-cell", "remove-input", "remove-cell"}  # already decided how the input shows
RAISES_TAGS = {"raises-exception", "nbval-raises-exception"}  # papermill's and nbval's "this cell raises on purpose"
PARAMETERS_TAG = "injected-parameters"
PARAMETERS_WIDTH = 100

TRACEBACK = "Traceback (most recent call last)"
# Python's warning format (`file.py:12: UserWarning: message`), and logging's (`WARNING:root:message`, `ERROR: ...`)
WARNING_LINE = re.compile(r"\b[A-Z]\w*Warning: |^\s*(?:WARNING|ERROR|CRITICAL)(?::[\w.]+)?:|^\s*Warning: ")
# a tqdm bar: `desc:  40%|████      | 4/10 [00:01<00:02, 2.1it/s]`, or without a total `12it [00:03, 3.9it/s]`
PROGRESS_LINE = re.compile(r"\d+%\|.*\||\[\d+:\d{2}(?::\d{2})?(?:<|,|\])")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
BINARY = ("image/png", "image/jpeg", "image/gif")


class OutputError(ValueError):
    """An executed notebook shows the reader something it must not; the message names the cell and the line."""


@contextlib.contextmanager
def quiet_kernels(env: dict[str, str] = QUIET_KERNEL_ENV) -> Iterator[None]:
    """``os.environ`` plus ``env`` while the block runs (papermill's kernels inherit it), then as it was."""
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _lines(text: str) -> list[str]:
    """The lines a terminal would end up showing: ``\\r`` overwrites (tqdm redraws its bar that way)."""
    out = []
    for line in text.split("\n"):
        parts = [p for p in line.split("\r") if p.strip()]
        if parts:
            out.append(parts[-1])
    return out


def _where(nb: nbformat.NotebookNode, index: int) -> str:
    first = nb.cells[index].source.strip().splitlines()
    return f"cell {index}" + (f" (`{first[0][:80]}`…)" if first else "")


def is_progress_widget(output: dict) -> bool:
    """tqdm.auto's notebook bar: an ipywidget whose text form is the bar."""
    data = output.get("data", {})
    return WIDGET_VIEW in data and bool(PROGRESS_LINE.search(str(data.get("text/plain", ""))))


def move_stderr(nb: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """Remove every stderr stream (and tqdm's widget bars) from the notebook; returns ``(cell index, text)`` of
    each, in order, for the log and the checks."""
    moved = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        keep = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                moved.append((i, out.get("text", "")))
            elif out.get("output_type") in ("display_data", "execute_result") and is_progress_widget(out):
                moved.append((i, str(out["data"].get("text/plain", ""))))
            else:
                keep.append(out)
        cell.outputs = keep
    return moved


def write_log(path: Path, moved: list[tuple[int, str]], title: str) -> int:
    """Append the moved stderr to ``path`` under a dated header; returns the number of lines written."""
    body = [f"[cell {i}] {line}" for i, text in moved for line in _lines(text)]
    if body:
        path.parent.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"=== {title}, {stamp} ===\n" + "\n".join(body) + "\n")
    return len(body)


def unexpected_warning(line: str) -> bool:
    """True for a line formatted like a warning that :data:`EXPECTED_WARNINGS` does not list."""
    return bool(WARNING_LINE.search(line)) and not any(re.search(p, line) for p, _ in EXPECTED_WARNINGS)


def check_stderr(nb: nbformat.NotebookNode, moved: list[tuple[int, str]]) -> None:
    """Progress bars and other chatter may go to the log; a traceback or an unlisted warning fails the build."""
    for i, text in moved:
        if TRACEBACK in text:
            raise OutputError(f"{_where(nb, i)}: a traceback on stderr: {_traceback_summary(text)}")
        for part in (p for line in text.split("\n") for p in line.split("\r")):
            if unexpected_warning(part):
                raise OutputError(f"{_where(nb, i)}: unexpected warning on stderr: `{part.strip()}` — remove its "
                                  "cause, or list it with the reason in EXPECTED_WARNINGS "
                                  "(clipscope_utils/book/outputs.py)")


def _traceback_summary(text: str) -> str:
    plain = re.sub(r"<[^>]*>", "", re.sub(r"\x1b\[[0-9;]*m", "", text))  # colours and HTML tags off: the last line
    lines = [ln.strip() for ln in plain.splitlines() if ln.strip()]
    return f"`{lines[-1][:200]}`" if lines else "(empty)"


def output_texts(output: dict) -> Iterator[tuple[str, str]]:
    """``(kind, text)`` of everything an output shows as text (base64 images left out)."""
    kind = output.get("output_type")
    if kind == "stream":
        yield output.get("name", "stream"), output.get("text", "")
    elif kind == "error":
        yield "error", "\n".join([f"{output.get('ename')}: {output.get('evalue')}", *output.get("traceback", [])])
    for mime, value in output.get("data", {}).items():
        if mime not in BINARY:
            yield mime, value if isinstance(value, str) else json.dumps(value)


def machine_paths(root: Path) -> dict[str, str]:
    """Absolute paths of this machine a page must not show: the checkout and the environment's site-packages."""
    paths = {str(root): "the checkout's absolute path", str(Path(root).resolve()): "the checkout's absolute path"}
    for sp in {*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
        paths.setdefault(str(sp), "the Python environment's site-packages")
    return {p: why for p, why in paths.items() if len(p) > 1}


def _strings(value) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def check_outputs(nb: nbformat.NotebookNode, root: Path, params: dict | None = None) -> None:
    """Fail on a traceback in any output (but the error of a cell tagged ``raises-exception``) and on a machine
    path. A path the parameters name themselves (``model=ARCH@/abs/weights.pt``) is shown as the profile gave it."""
    patterns = {p: (re.compile(re.escape(p) + r"(?![\w.-])"), why)  # the most specific path first
                for p, why in sorted(machine_paths(root).items(), key=lambda kv: -len(kv[0]))}
    given = sorted((s for s in _strings(params or {}) if any(p in s for p in patterns)), key=len, reverse=True)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        raises = RAISES_TAGS & set(cell.get("metadata", {}).get("tags", [])) or "NBVAL_RAISES_EXCEPTION" in cell.source
        for out in cell.get("outputs", []):
            for kind, text in output_texts(out):
                if TRACEBACK in text and not (raises and kind == "error"):
                    raise OutputError(f"{_where(nb, i)}: a traceback in its output ({kind}): "
                                      f"{_traceback_summary(text)}")
                for s in given:
                    text = text.replace(s, "")
                for path, (pattern, why) in patterns.items():
                    m = pattern.search(text)
                    if m:
                        line = text[text.rfind("\n", 0, m.start()) + 1:].split("\n", 1)[0].strip()
                        raise OutputError(f"{_where(nb, i)}: its output ({kind}) shows {why} {path}: "
                                          f"`{line[:200]}` — print paths relative to the checkout")


def convert_nbval_markers(nb: nbformat.NotebookNode) -> None:
    """``# NBVAL_...`` comment lines become nbval's equivalent cell tags: same check, no plumbing on the page."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept, tags = [], list(cell.get("metadata", {}).get("tags", []))
        for line in cell.source.split("\n"):
            marker = line.strip().lstrip("#").strip() if line.strip().startswith("#") else ""
            if marker in NBVAL_TAGS:
                tags += [NBVAL_TAGS[marker]] if NBVAL_TAGS[marker] not in tags else []
            else:
                kept.append(line)
        if len(kept) != len(cell.source.split("\n")):
            cell.source = "\n".join(kept).strip("\n")
            cell.metadata["tags"] = tags


def fold_code(nb: nbformat.NotebookNode) -> None:
    """Tag every non-empty code cell ``hide-input`` (a "show" toggle on the page), unless its tags already say how
    its input shows (``show-input`` keeps it open)."""
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type == "code" and cell.source.strip() and not NOT_FOLDED & set(tags):
            cell.metadata["tags"] = [*tags, HIDE_TAG]


class _PathPrinter(pprint.PrettyPrinter):
    """pprint, but a string too long for its line is also broken after a '/' into adjacent literals (pprint breaks
    strings only at spaces; paths and hub names such as ``ViT-B-32@hf://laion/...`` have none)."""

    def _pprint_path_str(self, obj, stream, indent, allowance, context, level):
        room = self._width - indent - allowance - (1 if level == 1 else 0)
        if len(repr(obj)) <= room or "/" not in obj or "\n" in obj:
            return pprint.PrettyPrinter._pprint_str(self, obj, stream, indent, allowance, context, level)
        chunks = [""]
        for part in re.findall(r"[^/]*/?", obj)[:-1]:  # pieces ending just after a '/'
            if chunks[-1] and len(repr(chunks[-1] + part)) > room:
                chunks.append(part)
            else:
                chunks[-1] += part
        join = "\n" + " " * (indent + (1 if level == 1 else 0))
        text = join.join(map(repr, chunks))
        stream.write(f"({text})" if level == 1 and len(chunks) > 1 else text)

    _dispatch = {**pprint.PrettyPrinter._dispatch, str.__repr__: _pprint_path_str}


def parameters_source(params: dict, width: int = PARAMETERS_WIDTH) -> str:
    """``name = value`` per parameter, in order, wrapped by pprint at ``width`` (continuations aligned; a long path
    without spaces broken after a '/')."""
    lines = ["# Parameters"]
    for name, value in params.items():
        head = f"{name} = "
        text = _PathPrinter(width=max(width - len(head), 40), sort_dicts=False).pformat(value)
        lines.append(head + text.replace("\n", "\n" + " " * len(head)))
    return "\n".join(lines) + "\n"


def _assigned(source: str) -> dict | None:
    scope: dict = {}
    try:
        exec(compile(source, "<parameters>", "exec"), {"__builtins__": {}}, scope)  # noqa: S102 - literals we wrote
    except Exception:  # noqa: BLE001 - not plain literals: leave papermill's cell alone
        return None
    return scope


def format_parameters(nb: nbformat.NotebookNode, params: dict) -> None:
    """Papermill writes each parameter on one line (a chapter's shared dict: hundreds of characters); rewrite the
    injected cell readably, only when it assigns exactly the same values."""
    for cell in nb.cells:
        if cell.cell_type == "code" and PARAMETERS_TAG in cell.get("metadata", {}).get("tags", []):
            new = parameters_source(params)
            before = _assigned(cell.source)
            if before is not None and before == _assigned(new):
                cell.source = new


def tidy(nb: nbformat.NotebookNode, params: dict, root: Path, log: Path, title: str = "") -> int:
    """All of the above, in order; returns how many stderr lines went to ``log``. Raises :class:`OutputError`
    (the log is written first, so it holds what the failing cell printed)."""
    moved = move_stderr(nb)
    n = write_log(log, moved, title or log.stem)
    check_stderr(nb, moved)
    check_outputs(nb, root, params)
    convert_nbval_markers(nb)
    fold_code(nb)
    format_parameters(nb, params)
    return n
