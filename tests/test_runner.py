"""The runner on a tiny project: execution, skip logic, provenance, failure reporting, bad input."""

from pathlib import Path

import nbformat
import pytest
import yaml

from clipscope_utils.book import runner
from clipscope_utils.book.__main__ import main as cli
from clipscope_utils.book.profiles import ParameterError
from clipscope_utils.book.runner import BuildError, build, fingerprint, toc_notebooks

pytestmark = pytest.mark.skipif(not runner.kernel_available(), reason="kernel 'clipscope' not registered (make setup)")


def notebook(*sources: str) -> nbformat.NotebookNode:
    cells = [nbformat.v4.new_markdown_cell("# Title")]
    cells.append(nbformat.v4.new_code_cell(sources[0], metadata={"tags": ["parameters"]}))
    cells += [nbformat.v4.new_code_cell(s) for s in sources[1:]]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "clipscope", "display_name": "clipscope", "language": "python"}
    return nb


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "clipscope_utils").mkdir()
    (tmp_path / "clipscope_utils" / "code.py").write_text("X = 1\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "input.csv").write_text("a\n1\n")
    (tmp_path / "notebooks").mkdir()
    nbformat.write(notebook("n = 1", "print('n squared', n * n)"), tmp_path / "notebooks" / "good.ipynb")
    nbformat.write(notebook("n = 1", "x = n + 1", "raise ValueError(f'boom {x}')"), tmp_path / "notebooks" / "bad.ipynb")
    (tmp_path / "_toc.yml").write_text(yaml.safe_dump({
        "format": "jb-book", "root": "intro",
        "chapters": [{"file": "book/executed/good"}, {"file": "book/executed/bad"}],
    }))
    (tmp_path / "profiles").mkdir()
    spec = {"n": {"type": "int", "min": 1, "max": 10}}
    (tmp_path / "profiles" / "parameters.yml").write_text(yaml.safe_dump({"good": spec, "bad": spec}))
    (tmp_path / "profiles" / "smoke.yml").write_text(yaml.safe_dump({"notebooks": {"good": {"n": 2}, "bad": {"n": 3}}}))
    return tmp_path


def executed(project: Path, name: str) -> nbformat.NotebookNode:
    return nbformat.read(project / "book" / "executed" / f"{name}.ipynb", as_version=4)


def outputs(nb: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def test_toc_order_and_mapping(project: Path) -> None:
    assert toc_notebooks(project) == ["good", "bad"]


def test_executes_then_skips_then_reexecutes_on_change(project: Path) -> None:
    logs: list[str] = []
    first = build(project, "smoke", only=["good"], html=False, log=logs.append)
    assert [(r.name, r.status) for r in first] == [("good", "executed")]
    assert "n squared 4" in outputs(executed(project, "good"))
    assert any(line.startswith("[1/1] good: done in") for line in logs)

    again = build(project, "smoke", only=["good"], html=False, log=logs.append)
    assert [r.status for r in again] == ["skipped"]
    assert logs[-1] == "[1/1] good: unchanged, skipped"

    changed = build(project, "smoke", ["good.n=3"], only=["good"], html=False, log=logs.append)
    assert [r.status for r in changed] == ["executed"]
    assert "n squared 9" in outputs(executed(project, "good"))


def test_provenance_block_under_the_title(project: Path) -> None:
    build(project, "smoke", only=["good"], html=False, log=lambda _: None)
    nb = executed(project, "good")
    assert nb.cells[0].source == "# Title"
    block = nb.cells[1]
    assert "clipscope-provenance" in block.metadata["tags"]
    for text in ("profile **smoke**", "| `n` | `2` |", "Versions:", "CPU", " s."):
        assert text in block.source
    params_cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert "remove-cell" in params_cell.metadata["tags"]  # the page shows the injected values only
    rec = nb.metadata["clipscope"]
    assert rec["parameters"] == {"n": 2} and rec["profile"] == "smoke" and rec["wall_time_s"] > 0


@pytest.mark.parametrize("change", ["code", "data", "source"])
def test_fingerprint_follows_code_data_and_source(project: Path, change: str) -> None:
    before = fingerprint(project, "good", "smoke", {"n": 2})
    assert fingerprint(project, "good", "smoke", {"n": 2}) == before
    target = {"code": "clipscope_utils/code.py", "data": "data/input.csv", "source": "notebooks/good.ipynb"}[change]
    with open(project / target, "a") as f:
        f.write("\n")
    assert fingerprint(project, "good", "smoke", {"n": 2}) != before


def test_failure_names_notebook_cell_and_error_and_keeps_last_good_copy(project: Path) -> None:
    # a good executed copy of "bad" from an earlier version of the notebook
    nbformat.write(notebook("n = 1", "print('fine')"), project / "notebooks" / "bad.ipynb")
    build(project, "smoke", only=["bad"], html=False, log=lambda _: None)
    good_copy = (project / "book" / "executed" / "bad.ipynb").read_bytes()

    nbformat.write(notebook("n = 1", "x = n + 1", "raise ValueError(f'boom {x}')"), project / "notebooks" / "bad.ipynb")
    with pytest.raises(BuildError, match=r"notebook 'bad' failed in cell \d+ \(`raise ValueError.*`…\): ValueError: boom 4"):
        build(project, "smoke", only=["bad"], html=False, log=lambda _: None)
    assert (project / "book" / "executed" / "bad.ipynb").read_bytes() == good_copy
    assert (project / "_build" / "failed" / "bad.ipynb").is_file()
    # the failed run recorded nothing: the next build tries again rather than skipping
    with pytest.raises(BuildError):
        build(project, "smoke", only=["bad"], html=False, log=lambda _: None)


def test_stops_at_first_failure(project: Path) -> None:
    (project / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": "intro", "chapters": [
        {"file": "book/executed/bad"}, {"file": "book/executed/good"}]}))
    with pytest.raises(BuildError, match="notebook 'bad'"):
        build(project, "smoke", html=False, log=lambda _: None)
    assert not (project / "book" / "executed" / "good.ipynb").exists()


def test_bad_parameter_fails_before_any_notebook_runs(project: Path) -> None:
    with pytest.raises(ParameterError, match=r"notebook 'good', parameter 'n': 11 is above the maximum"):
        build(project, "smoke", ["good.n=11"], html=False, log=lambda _: None)
    assert not (project / "book" / "executed").exists()


def test_unknown_only_name(project: Path) -> None:
    with pytest.raises(BuildError, match=r"--only names unknown notebooks \['nope'\]"):
        build(project, "smoke", only=["nope"], html=False, log=lambda _: None)


def test_cli_reports_errors_with_exit_code(project: Path, capsys) -> None:
    assert cli(["build", "--root", str(project), "--profile", "huge", "--no-html"]) == 1
    assert "unknown profile 'huge'; available: ['smoke']" in capsys.readouterr().err
    assert cli(["build", "--root", str(project), "--profile", "smoke", "--only", "good", "--no-html"]) == 0
    assert "build succeeded" in capsys.readouterr().out


def test_html_needs_every_notebook_executed(project: Path, monkeypatch) -> None:
    monkeypatch.setattr("clipscope_utils.book.runner.ensure_widget_js", lambda root: False)
    with pytest.raises(BuildError, match=r"notebooks \['bad'\] have no executed copy yet"):
        build(project, "smoke", only=["good"], html=True, log=lambda _: None)


# -- faults: nothing lost, nothing stale -------------------------------------------------------------------
def test_a_second_build_of_the_checkout_stops_with_a_clear_message(project: Path) -> None:
    """Two real processes: one holds the build lock, the other is refused before touching anything."""
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom pathlib import Path\n"
         "from clipscope_utils.book.runner import build_lock\n"
         f"with build_lock(Path({str(project)!r})):\n    print('locked', flush=True)\n    time.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(BuildError, match=rf"another build of this checkout is running \(pid {holder.pid}\)"):
            build(project, "smoke", only=["good"], html=False, log=lambda _: None)
        assert not (project / "book" / "executed" / "good.ipynb").exists()
    finally:
        holder.kill()
        holder.wait()
    build(project, "smoke", only=["good"], html=False, log=lambda _: None)  # the lock went with the process
    assert (project / "book" / "executed" / "good.ipynb").is_file()


def test_leftovers_of_an_interrupted_build_are_removed_first(project: Path) -> None:
    staging = project / ".cache" / "book-build" / "_build" / "html"
    staging.mkdir(parents=True)
    (staging / "stale.html").write_text("old page")
    (project / "book" / "executed").mkdir(parents=True)
    partial = project / "book" / "executed" / ".good.running.ipynb"
    partial.write_text("{")
    logs: list[str] = []
    build(project, "smoke", only=["good"], html=False, log=logs.append)
    assert not staging.exists() and not partial.exists()
    assert any("interrupted build" in line and "book-build" in line for line in logs)


def test_a_truncated_executed_notebook_is_executed_again(project: Path) -> None:
    build(project, "smoke", only=["good"], html=False, log=lambda _: None)
    executed = project / "book" / "executed" / "good.ipynb"
    executed.write_bytes(executed.read_bytes()[:200])
    logs: list[str] = []
    build(project, "smoke", only=["good"], html=False, log=logs.append)
    assert any("good: executing" in line for line in logs)
    assert "n squared 4" in outputs(nbformat.read(executed, as_version=4))


def test_a_failure_across_filesystems_keeps_the_cause(project: Path, monkeypatch) -> None:
    """book/executed and _build/failed on different filesystems: os.replace raises EXDEV between them."""
    import errno
    import os

    real = os.replace

    def cross_device(src, dst):
        if Path(src).parent != Path(dst).parent:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real(src, dst)

    monkeypatch.setattr(runner.os, "replace", cross_device)
    with pytest.raises(BuildError, match=r"notebook 'bad' failed in cell \d+ .*ValueError: boom 4"):
        build(project, "smoke", only=["bad"], html=False, log=lambda _: None)
    assert (project / "_build" / "failed" / "bad.ipynb").is_file()
    assert not list((project / "book" / "executed").glob(".*running*"))


def test_an_old_failure_is_removed_once_the_notebook_succeeds(project: Path) -> None:
    failed = project / "_build" / "failed" / "good.ipynb"
    failed.parent.mkdir(parents=True)
    failed.write_text("{}")
    build(project, "smoke", only=["good"], html=False, log=lambda _: None)
    assert not failed.exists()


def test_a_replaced_weights_file_reexecutes_its_notebook(project: Path) -> None:
    """A model named as ARCH@path is part of the fingerprint by content, not by name."""
    weights = project / "weights.pt"
    weights.write_bytes(b"first weights")
    spec = {"n": {"type": "int", "min": 1, "max": 10}, "model": {"type": "str", "check": "model"}}
    (project / "profiles" / "parameters.yml").write_text(yaml.safe_dump({"good": spec, "bad": spec}))
    values = {"n": 2, "model": f"clipscope-tiny@{weights}"}
    (project / "profiles" / "smoke.yml").write_text(yaml.safe_dump({"notebooks": {"good": values, "bad": values}}))
    nbformat.write(notebook("n = 1\nmodel = ''", "print('model', model)"), project / "notebooks" / "good.ipynb")
    run = lambda: [r.status for r in build(project, "smoke", only=["good"], html=False, log=lambda _: None)]  # noqa: E731
    assert run() == ["executed"]
    assert run() == ["skipped"]
    weights.write_bytes(b"other weights")  # same name, new contents
    assert run() == ["executed"]


def test_temporaries_of_killed_generations_are_removed_by_the_next_build(project: Path, monkeypatch) -> None:
    import subprocess
    import sys

    monkeypatch.setenv("CLIPSCOPE_CACHE", str(project / "elsewhere"))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = project / "elsewhere" / "datasets" / f".comco-abc.tmp-{dead.stdout.strip()}-x"
    orphan.mkdir(parents=True)
    logs: list[str] = []
    build(project, "smoke", only=["good"], html=False, log=logs.append)
    assert not orphan.exists() and any(orphan.name in line for line in logs)


# -- what a page shows (outputs.tidy): stderr to the log, no warnings or tracebacks or machine paths ------------
def test_stderr_goes_to_the_log_code_is_folded_parameters_formatted(project: Path, monkeypatch) -> None:
    import os

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    nbformat.write(notebook("n = 1", "import os, sys\nprint('bars off:', os.environ.get('TQDM_DISABLE'))\n"
                                     "print('step 1/2', file=sys.stderr)", "# NBVAL_CHECK_OUTPUT\nprint(n)"),
                   project / "notebooks" / "good.ipynb")
    logs: list[str] = []
    build(project, "smoke", only=["good"], html=False, log=logs.append)
    nb = executed(project, "good")
    assert "bars off: 1" in outputs(nb) and "TQDM_DISABLE" not in os.environ  # the kernel's, not this process's
    assert all(o.get("name") != "stderr" for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "good: 1 stderr lines moved to _build/logs/good.log" in logs
    assert "step 1/2" in (project / "_build" / "logs" / "good.log").read_text()
    checked = next(c for c in nb.cells if "nbval-check-output" in c.metadata.get("tags", []))
    assert checked.source == "print(n)" and "hide-input" in checked.metadata.tags
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert injected.source == "# Parameters\nn = 2\n"


@pytest.mark.parametrize("code, problem", [
    ("import warnings\nwarnings.warn('odd things')", r"unexpected warning on stderr: `.*UserWarning: odd things`"),
    ("import traceback\ntry:\n    1 / 0\nexcept ZeroDivisionError:\n    traceback.print_exc()",
     r"a traceback on stderr: `ZeroDivisionError: division by zero`"),
    ("import os\nprint(os.getcwd())", r"its output \(stdout\) shows the checkout's absolute path"),
], ids=["warning", "traceback", "path"])
def test_a_page_that_would_show_a_problem_fails_and_keeps_the_last_good_copy(project: Path, code: str,
                                                                            problem: str) -> None:
    build(project, "smoke", only=["good"], html=False, log=lambda _: None)
    good_copy = (project / "book" / "executed" / "good.ipynb").read_bytes()
    nbformat.write(notebook("n = 1", code), project / "notebooks" / "good.ipynb")
    first = code.splitlines()[0]
    with pytest.raises(BuildError, match=rf"notebook 'good', cell 3 \(`{first}`…\): {problem}(.|\n)*"
                                         r"partial output saved in _build/failed/good\.ipynb"):
        build(project, "smoke", only=["good"], html=False, log=lambda _: None)
    assert (project / "book" / "executed" / "good.ipynb").read_bytes() == good_copy
    assert (project / "_build" / "failed" / "good.ipynb").is_file()
