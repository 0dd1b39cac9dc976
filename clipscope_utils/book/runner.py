"""Execute the book's notebooks with papermill under a profile, then build the HTML offline.

Source notebooks live in ``notebooks/<name>.ipynb``; ``_toc.yml`` names their executed copies as
``book/executed/<name>``, which is where the runner writes them and where Jupyter Book reads them
(Jupyter Book itself never executes anything). A notebook is re-executed only when its fingerprint —
source, parameters, package code, ``data/`` and key package versions — changed since its last
successful run. A failure stops the build, names the notebook, cell and error, and leaves the last
good executed copy and the last good HTML in place.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import nbformat
import yaml

from ..datasets.tables import remove_dead_temporaries
from ..paths import cache_dir, file_sha256
from ..versions import package_versions
from . import outputs
from .checks import check_profile, problems
from .profiles import Profile, load_profile
from .provenance import record, stamp
from . import summary
from .standins import prepare_standins
from .widgets import ensure_widget_js

KERNEL_NAME = "clipscope"
EXECUTED = Path("book") / "executed"
SOURCES = Path("notebooks")
STATE = EXECUTED / ".state"
FAILED = Path("_build") / "failed"
LOGS = Path("_build") / "logs"  # what the kernels printed on stderr, per notebook (outputs.tidy)
STAGING = Path(".cache") / "book-build"
LOCK = Path(".cache") / "book-build.lock"
PROFILES = Path("profiles")
FINGERPRINT_PACKAGES = ("torch", "open_clip_torch", "numpy", "pandas", "pillow", "papermill")


class BuildError(RuntimeError):
    """The build stopped; the message says where and why."""


@dataclass
class NotebookResult:
    name: str
    status: str  # "executed" | "skipped"
    wall_s: float


def toc_notebooks(root: Path) -> list[str]:
    """Names of the notebooks the book shows, in ``_toc.yml`` order (entries under book/executed/)."""
    toc_path = root / "_toc.yml"
    if not toc_path.is_file():
        raise BuildError(f"{toc_path} is missing")
    toc = yaml.safe_load(toc_path.read_text()) or {}
    files: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            if "file" in node:
                files.append(str(node["file"]))
            for value in node.values():
                if isinstance(value, (list, dict)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    prefix = EXECUTED.as_posix() + "/"
    names = [Path(f[len(prefix):]).with_suffix("").as_posix() for f in files if f.startswith(prefix)]
    missing = [n for n in names if not (root / SOURCES / f"{n}.ipynb").is_file()]
    if missing:
        raise BuildError(f"_toc.yml lists {missing} but notebooks/{{name}}.ipynb does not exist for them")
    return names


def _hash_files(paths: list[Path], root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(bytes.fromhex(file_sha256(p)))
    return h.hexdigest()


def fingerprint(root: Path, name: str, profile: str, params: dict, inputs: dict[str, str] | None = None) -> str:
    """Hash of everything a notebook's output depends on: its code, parameters, ``data/``, versions, and the
    contents of every file or folder its parameters name (``inputs``: path -> content hash, from the check), so a
    replaced weights file or a changed data folder re-executes the notebook."""
    code = [p for p in (root / "clipscope_utils").rglob("*") if p.is_file() and p.suffix in {".py", ".json", ".csv", ".yml"}]
    data = [p for p in (root / "data").rglob("*") if p.is_file()] if (root / "data").is_dir() else []
    payload = {
        "notebook": file_sha256(root / SOURCES / f"{name}.ipynb"),
        "profile": profile,
        "params": params,
        "code": _hash_files(code, root),
        "data": _hash_files(data, root),
        "versions": package_versions(FINGERPRINT_PACKAGES),
        **({"inputs": inputs} if inputs else {}),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _state_path(root: Path, name: str) -> Path:
    return root / STATE / f"{name}.json"


def is_complete_notebook(path: Path) -> bool:
    """An executed copy the book can trust: it parses, carries its provenance, and every code cell ran."""
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:  # noqa: BLE001 - truncated or foreign file: any parse failure means "not trusted"
        return False
    code = [c for c in nb.cells if c.cell_type == "code"]
    return "clipscope" in nb.metadata and all(c.get("execution_count") is not None for c in code if c.source.strip())


def is_current(root: Path, name: str, fp: str) -> bool:
    """True when the executed copy came from exactly this fingerprint and is complete."""
    state = _state_path(root, name)
    executed = root / EXECUTED / f"{name}.ipynb"
    if not executed.is_file() or not state.is_file():
        return False
    try:
        same = json.loads(state.read_text()).get("fingerprint") == fp
    except json.JSONDecodeError:
        return False
    return same and is_complete_notebook(executed)


def move(src: Path, dst: Path) -> None:
    """``os.replace``, or copy and delete when the two paths are on different filesystems."""
    try:
        os.replace(src, dst)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
        shutil.copy2(src, tmp)
        os.replace(tmp, dst)
        os.unlink(src)


@contextlib.contextmanager
def build_lock(root: Path):
    """One build per checkout at a time: a second one stops at once, before touching anything."""
    path = root / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise BuildError(f"another build of this checkout is running ({holder}); wait for it to finish, "
                             "or build from another clone") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}")
        f.flush()
        try:
            yield
        finally:
            f.truncate(0)
            fcntl.flock(f, fcntl.LOCK_UN)


def clean_leftovers(root: Path) -> list[Path]:
    """What an earlier build left behind: the HTML staging folder, the partial notebooks of failures (each new
    failure saves its own), half-written executed notebooks, half-swapped HTML folders and temporary folders of
    killed generations in the cache. Removed at the start of every build (under the lock); returns what went."""
    found = [p for p in (root / STAGING, root / FAILED) if p.exists()]
    found += sorted((root / EXECUTED).glob(".*.running.ipynb")) if (root / EXECUTED).is_dir() else []
    found += [p for p in (root / "_build" / "html.new", root / "_build" / "html.old") if p.exists()]
    for path in found:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    for kind in ("datasets", "compositional"):  # generations killed mid-way, in any earlier run
        found += remove_dead_temporaries(cache_dir() / kind)
    return found


def kernel_available(name: str = KERNEL_NAME) -> bool:
    from jupyter_client.kernelspec import KernelSpecManager  # the book's extra; slow to import, so only here

    return name in KernelSpecManager().find_kernel_specs()


def _describe_failure(name: str, err: Exception) -> str:
    """``notebook 'x', cell N: ErrorName: message`` from papermill's execution error."""
    from papermill.exceptions import PapermillExecutionError  # the book's extra; slow to import, so only here

    if isinstance(err, PapermillExecutionError):
        first = (err.source or "").strip().splitlines()
        code = f" (`{first[0][:80]}`…)" if first else ""
        return f"notebook {name!r} failed in cell {err.cell_index}{code}: {err.ename}: {err.evalue}"
    return f"notebook {name!r} failed: {type(err).__name__}: {err}"


def execute_notebook(root: Path, name: str, profile: Profile, trained: dict[str, str] | None = None,
                     log: Callable[[str], None] = print) -> float:
    """Run one notebook with papermill; on success atomically replace its executed copy.

    Returns the wall time. On failure the partial output goes to ``_build/failed/<name>.ipynb`` and a
    BuildError names the notebook, the cell and the error; the previous executed copy stays. The same happens when
    the executed notebook shows a traceback, an unexpected warning or a machine path (:func:`outputs.tidy`, which
    also moves its stderr to ``_build/logs/<name>.log``, folds its code and formats its parameters).
    """
    import papermill as pm  # the book's extra; slow to import (`book check` never needs it)

    src = root / SOURCES / f"{name}.ipynb"
    out = root / EXECUTED / f"{name}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{name}.running.ipynb")
    params = profile.params[name]
    start = time.perf_counter()
    failed = root / FAILED / f"{name}.ipynb"
    try:
        with outputs.quiet_kernels():  # no progress bars in the runner's kernels; a live session keeps them
            pm.execute_notebook(
                str(src), str(tmp), parameters=params, kernel_name=KERNEL_NAME, cwd=str(root),
                progress_bar=False, log_output=False, request_save_on_cell_execute=False,
            )
    except Exception as err:  # papermill raises for a failing cell; anything else is also a failure
        failed.parent.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            move(tmp, failed)
        raise BuildError(f"{_describe_failure(name, err)}\n  (partial output saved in {failed.relative_to(root)})") from None
    wall = time.perf_counter() - start
    nb = nbformat.read(tmp, as_version=4)
    logfile = root / LOGS / f"{name}.log"
    try:
        moved = outputs.tidy(nb, params, root, logfile, title=f"{name}, profile {profile.name}")
    except outputs.OutputError as err:  # the notebook ran, but its page would show what a reader must not see
        failed.parent.mkdir(parents=True, exist_ok=True)
        move(tmp, failed)
        raise BuildError(f"notebook {name!r}, {err}\n  (partial output saved in {failed.relative_to(root)}; "
                         f"its stderr in {logfile.relative_to(root)})") from None
    if moved:
        log(f"{name}: {moved} stderr lines moved to {logfile.relative_to(root)}")
    stamp(nb, record(root, profile.name, params, wall, trained or {}), notice=profile.notice)
    nbformat.write(nb, tmp)
    os.replace(tmp, out)
    (root / FAILED / f"{name}.ipynb").unlink(missing_ok=True)  # an old failure of this notebook is history now
    return wall


def prepare_environment(root: Path, profile: Profile, log: Callable[[str], None] = print) -> dict[str, str]:
    """Build the profile's stand-ins (if it names a folder) and set its environment for the checks and the kernels.

    Kernels inherit this process's environment, so a profile that points ``HF_HOME`` at stand-in weights and sets
    ``HF_HUB_OFFLINE=1`` loads them through open_clip's own pretrained path in every chapter.
    """
    env: dict[str, str] = {}
    if profile.standins:
        start = time.perf_counter()
        try:
            env.update(prepare_standins(root / profile.standins, profile.params))
        except (ValueError, OSError) as e:  # a stand-in that cannot be built is a clear error, not a traceback
            raise BuildError(f"building the stand-ins of profile {profile.name!r} in {profile.standins} failed: "
                             f"{type(e).__name__}: {e}") from None
        log(f"stand-ins ready in {time.perf_counter() - start:.1f} s: {profile.standins}")
    env.update({k: v.replace("{root}", str(root)) for k, v in profile.environment.items()})
    os.environ.update(env)
    return env


def build_html(root: Path, names: list[str]) -> Path:
    """``jupyter-book build`` into a staging folder; swap it into ``_build/html`` only on success."""
    unexecuted = [n for n in names if not (root / EXECUTED / f"{n}.ipynb").is_file()]
    if unexecuted:
        raise BuildError(f"notebooks {unexecuted} have no executed copy yet: build without --only (or use --no-html)")
    summary.write(root, names)  # the introduction's findings table, from the executed chapters
    staging = root / STAGING
    shutil.rmtree(staging, ignore_errors=True)  # never serve a page an earlier build left in staging
    jb = shutil.which("jupyter-book", path=str(Path(sys.executable).parent)) or shutil.which("jupyter-book")
    if jb is None:
        raise BuildError("the jupyter-book command is not installed in this environment; run `make setup`")
    cmd = [jb, "build", str(root), "--path-output", str(staging), "--warningiserror", "--keep-going"]
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        raise BuildError(f"jupyter-book build failed (exit {done.returncode}); the previous HTML is kept.\n{tail}")
    built = staging / "_build" / "html"
    final = root / "_build" / "html"
    final.parent.mkdir(parents=True, exist_ok=True)
    fresh = final.with_name("html.new")
    shutil.rmtree(fresh, ignore_errors=True)
    shutil.copytree(built, fresh)
    old = final.with_name("html.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(fresh, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def build(
    root: Path,
    profile_name: str,
    overrides: list[str] | tuple[str, ...] = (),
    only: list[str] | None = None,
    html: bool = True,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> list[NotebookResult]:
    """Validate everything, execute stale notebooks in toc order, then build the HTML.

    All checks (profile, parameters, models, devices, data folders, kernel, widget JS) happen before the
    first notebook runs.
    """
    root = Path(root).resolve()
    names = toc_notebooks(root)
    profile = load_profile(root / PROFILES, profile_name, names, overrides)
    if only:
        unknown = [n for n in only if n not in names]
        if unknown:
            raise BuildError(f"--only names unknown notebooks {unknown}; notebooks of the book: {names}")
    selected = [n for n in names if not only or n in only]
    prepare_environment(root, profile, log)
    checks = {c.notebook: c for c in check_profile(profile, selected)}
    wrong = problems(list(checks.values()))
    if wrong:
        raise BuildError("nothing was executed: the profile names what this machine cannot give\n  "
                         + "\n  ".join(wrong))
    if not kernel_available():
        raise BuildError(
            f"Jupyter kernel {KERNEL_NAME!r} is not registered; run `make setup` "
            f"(or `python -m ipykernel install --sys-prefix --name {KERNEL_NAME}`)"
        )
    if html and ensure_widget_js(root):
        log("fetched the widget JavaScript and MathJax into book/_static/vendor")

    with build_lock(root):
        for path in clean_leftovers(root):
            shown = path.relative_to(root) if path.is_relative_to(root) else path.name
            log(f"removed what an interrupted build left: {shown}")
        results = []
        log(f"profile {profile.name!r}: {len(selected)} notebook(s)")
        for i, name in enumerate(selected, 1):
            fp = fingerprint(root, name, profile.name, profile.params[name], checks[name].files)
            if not force and is_current(root, name, fp):
                log(f"[{i}/{len(selected)}] {name}: unchanged, skipped")
                results.append(NotebookResult(name, "skipped", 0.0))
                continue
            log(f"[{i}/{len(selected)}] {name}: executing ...")
            wall = execute_notebook(root, name, profile, checks[name].trained, log=log)
            state = _state_path(root, name)
            state.parent.mkdir(parents=True, exist_ok=True)
            tmp = state.with_suffix(".tmp")
            tmp.write_text(json.dumps({"fingerprint": fp, "profile": profile.name, "wall_s": round(wall, 1)}))
            os.replace(tmp, state)
            log(f"[{i}/{len(selected)}] {name}: done in {wall:.1f} s")
            results.append(NotebookResult(name, "executed", wall))
        if html:
            start = time.perf_counter()
            out = build_html(root, names)
            log(f"HTML built in {time.perf_counter() - start:.1f} s: {out / 'index.html'}")
    return results
