"""The runner's post-processing of an executed notebook (clipscope_utils.book.outputs), on notebooks built with
nbformat: stderr to the log, warnings and tracebacks and machine paths fail, nbval markers become tags, code is
folded, the injected parameters are formatted. One test runs nbval on a converted notebook."""

import os
import site
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from clipscope_utils.book import outputs
from clipscope_utils.book.outputs import OutputError, tidy

ROOT = Path(__file__).resolve().parents[1]
BAR = ("\rscenes:   0%|          | 0/4 [00:00<?, ?img/s]"
       "\rscenes: 100%|██████████| 4/4 [00:00<00:00, 9.1img/s]\n")
RANDOM_INIT = "WARNING:root:No pretrained weights loaded for model 'clipscope-tiny'. Model initialized randomly.\n"


def stderr(text: str):
    return new_output("stream", name="stderr", text=text)


def stdout(text: str):
    return new_output("stream", name="stdout", text=text)


def make(*cells) -> nbformat.NotebookNode:
    """A title cell, then code cells given as (source, outputs) or source, or markdown cells given as md(...)."""
    nb = new_notebook(cells=[new_markdown_cell("# Title")])
    for c in cells:
        if isinstance(c, nbformat.NotebookNode):
            nb.cells.append(c)
        else:
            source, outs = (c, []) if isinstance(c, str) else c
            nb.cells.append(new_code_cell(source, outputs=list(outs), execution_count=1))
    return nb


def run(nb, tmp_path: Path, params: dict | None = None) -> int:
    return tidy(nb, params or {}, tmp_path, tmp_path / "_build" / "logs" / "nb.log")


# -- stderr ---------------------------------------------------------------------------------------------------
def test_stderr_goes_to_the_log_and_nowhere_else(tmp_path: Path) -> None:
    nb = make(("x = 1", [stdout("kept\n"), stderr(BAR), stderr(RANDOM_INIT)]), ("y = 2", [stderr("plain chatter\n")]))
    assert run(nb, tmp_path) == 3  # the bar (redrawn with \r: its last state), the expected warning, the chatter
    kept = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert kept == [stdout("kept\n")]
    log = (tmp_path / "_build" / "logs" / "nb.log").read_text()
    assert "[cell 1] scenes: 100%|" in log and " 0%|" not in log
    assert "[cell 1] WARNING:root:No pretrained weights loaded" in log and "[cell 2] plain chatter" in log
    run(make(("z = 3", [stderr("second run\n")])), tmp_path)  # appended, each run under its own header
    log = (tmp_path / "_build" / "logs" / "nb.log").read_text()
    assert log.count("=== nb, ") == 2 and log.index("plain chatter") < log.index("second run")


def test_no_stderr_writes_no_log(tmp_path: Path) -> None:
    assert run(make(("x = 1", [stdout("1\n")])), tmp_path) == 0
    assert not (tmp_path / "_build" / "logs").exists()


def test_tqdm_widget_bars_go_but_other_widgets_stay(tmp_path: Path) -> None:
    view = {"model_id": "abc", "version_major": 2, "version_minor": 0}
    bar = new_output("display_data",
                     data={outputs.WIDGET_VIEW: view, "text/plain": "models: 100%|██████████| 3/3 [00:01<00:00]"})
    explorer = new_output("display_data",
                          data={outputs.WIDGET_VIEW: view, "text/plain": "VBox(children=(Dropdown(...),))"})
    nb = make(("x = 1", [bar, explorer]))
    assert run(nb, tmp_path) == 1
    assert nb.cells[1].outputs == [explorer]


@pytest.mark.parametrize("line", [
    "/somewhere/lib/python3.11/site-packages/sklearn/base.py:12: UserWarning: something odd\n  warnings.warn(\n",
    "/x.py:3: FutureWarning: `foo` is deprecated\n",
    "WARNING:root:a logging warning\n",
    "WARNING: absl-style warning\n",
    "ERROR:clipscope:a logged error\n",
    "scenes:  50%|█████     | 2/4 [00:00<00:00]\r/x.py:9: RuntimeWarning: overflow encountered\n",
])
def test_an_unexpected_warning_fails_naming_the_cell_and_the_line(tmp_path: Path, line: str) -> None:
    nb = make("a = 1", ("fit(model)", [stdout("ok\n"), stderr(line)]))
    expected = r"cell 2 \(`fit\(model\)`…\): unexpected warning on stderr: `.*(Warning|WARNING|ERROR)"
    with pytest.raises(OutputError, match=expected):
        run(nb, tmp_path)
    assert line.split("\n")[0].split("\r")[-1] in (tmp_path / "_build" / "logs" / "nb.log").read_text()  # logged first


def test_expected_warnings_are_few_and_each_says_why() -> None:
    assert 1 <= len(outputs.EXPECTED_WARNINGS) <= 5
    for pattern, reason in outputs.EXPECTED_WARNINGS:
        assert pattern and len(reason) > 20
    assert not outputs.unexpected_warning(RANDOM_INIT.strip())
    assert outputs.unexpected_warning("WARNING:root:No pretrained weights found; downloading")


# -- tracebacks ----------------------------------------------------------------------------------------------
TB = "Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\nValueError: boom\n"


@pytest.mark.parametrize("out", [
    stdout(TB),
    stderr(TB),
    new_output("display_data", data={"text/plain": TB}),
    new_output("execute_result", data={"text/html": f"<pre>{TB}</pre>", "text/plain": "<obj>"}, execution_count=1),
    new_output("error", ename="ValueError", evalue="boom",
               traceback=["\x1b[0;31mValueError\x1b[0m    Traceback (most recent call last)", "ValueError: boom"]),
], ids=["stdout", "stderr", "text/plain", "text/html", "error"])
def test_a_traceback_in_any_output_fails(tmp_path: Path, out) -> None:
    with pytest.raises(OutputError, match=r"cell 1 \(`risky\(\)`…\): a traceback .*ValueError: boom"):
        run(make(("risky()", [out])), tmp_path)


def test_a_cell_that_raises_on_purpose_may_show_its_error(tmp_path: Path) -> None:
    error = new_output("error", ename="ValueError", evalue="boom",
                       traceback=["ValueError  Traceback (most recent call last)"])
    nb = make(("# NBVAL_RAISES_EXCEPTION\nraise ValueError('boom')", [error]))
    run(nb, tmp_path)
    assert nb.cells[1].outputs == [error] and "nbval-raises-exception" in nb.cells[1].metadata.tags
    with pytest.raises(OutputError, match="a traceback"):  # but not a traceback printed elsewhere
        run(make(("# NBVAL_RAISES_EXCEPTION\nx", [stdout(TB)])), tmp_path)


# -- machine paths -------------------------------------------------------------------------------------------
def test_the_checkouts_absolute_path_in_an_output_fails(tmp_path: Path) -> None:
    nb = make(("print(p)", [stdout(f"cached in {tmp_path}/.cache/datasets/comco-1\n")]))
    expected = r"cell 1 .*shows the checkout's absolute path .*`cached in .*/\.cache/datasets/comco-1`"
    with pytest.raises(OutputError, match=expected):
        run(nb, tmp_path)


def test_site_packages_in_an_output_fails(tmp_path: Path) -> None:
    sp = site.getsitepackages()[0]
    shown = new_output("execute_result", data={"text/plain": f"<module 'x' from '{sp}/x.py'>"}, execution_count=1)
    nb = make(("m", [shown]))
    with pytest.raises(OutputError, match="site-packages"):
        run(nb, tmp_path)


def test_relative_paths_lookalikes_and_paths_the_parameters_name_pass(tmp_path: Path) -> None:
    weights = f"ViT-B-32@{tmp_path}/real/epoch_10.pt"
    nb = make(("print(p)", [stdout(".cache/standins/data/coco\n"), stdout(f"{tmp_path}-other/file\n"),
                            stdout(f"model {weights}\n")]))
    run(nb, tmp_path, {"models": [weights]})
    # the stderr of a warning names files in site-packages: it goes to the log, not the page, so it is fine
    run(make(("x", [stderr(f"{site.getsitepackages()[0]}/a.py:1: some note\n")])), tmp_path)


# -- nbval markers, folding ----------------------------------------------------------------------------------
def test_nbval_markers_become_tags(tmp_path: Path) -> None:
    nb = make("# NBVAL_CHECK_OUTPUT\nprint(1)", "x = 1  # NBVAL_SKIP stays: not a marker line\n#  NBVAL_SKIP\ny = 2",
              "# NBVAL_IGNORE_OUTPUT", "# an ordinary comment\nz = 3")
    run(nb, tmp_path)
    code = nb.cells[1:]
    assert [c.source for c in code] == ["print(1)", "x = 1  # NBVAL_SKIP stays: not a marker line\ny = 2", "",
                                        "# an ordinary comment\nz = 3"]
    assert code[0].metadata.tags == ["nbval-check-output", "hide-input"]
    assert code[1].metadata.tags == ["nbval-skip", "hide-input"]
    assert code[2].metadata.tags == ["nbval-ignore-output"]  # empty now: nothing to fold
    assert code[3].metadata.tags == ["hide-input"]


def test_nbval_tags_are_what_nbval_reads() -> None:
    from nbval.plugin import metadata_tags

    assert set(outputs.NBVAL_TAGS.values()) <= set(metadata_tags)


def test_code_is_folded_unless_shown_or_empty(tmp_path: Path) -> None:
    nb = make("x = 1", "   \n", new_code_cell("y = 2", metadata={"tags": ["show-input"]}),
              new_code_cell("z = 3", metadata={"tags": ["remove-input"]}), new_markdown_cell("text"))
    run(nb, tmp_path)
    assert [c.metadata.get("tags") for c in nb.cells] == [
        None, ["hide-input"], None, ["show-input"], ["remove-input"], None]
    run(nb, tmp_path)  # idempotent
    assert nb.cells[1].metadata.tags == ["hide-input"]


# -- injected parameters -------------------------------------------------------------------------------------
def injected(params: dict) -> nbformat.NotebookNode:
    from papermill.translators import translate_parameters

    source = translate_parameters("clipscope", "python", params, "Parameters")
    return make(new_code_cell(source, metadata={"tags": ["injected-parameters"]}))


def assigned(source: str) -> dict:
    scope: dict = {}
    exec(source, {}, scope)  # noqa: S102 - the test's own parameters
    return scope


@pytest.mark.parametrize("profile", ["smoke", "rehearsal", "paper"])
def test_injected_parameters_are_formatted_and_keep_their_values(tmp_path: Path, profile: str) -> None:
    from clipscope_utils.book.profiles import load_profile
    from clipscope_utils.book.runner import toc_notebooks

    names, widest = toc_notebooks(ROOT), 0
    for name, params in load_profile(ROOT / "profiles", profile, names).params.items():
        nb = injected(params)
        before = nb.cells[1].source
        run(nb, tmp_path, params)
        after = nb.cells[1].source
        assert assigned(after) == assigned(before) == params, name
        assert list(assigned(after)) == list(params)  # in the profile's order
        assert max(map(len, after.splitlines())) <= 100, name
        assert after.startswith("# Parameters\n")
        widest = max(widest, *map(len, before.splitlines()))
    assert widest > 100  # papermill's own cells were too wide


def test_parameters_with_odd_values_round_trip_or_stay(tmp_path: Path) -> None:
    params = {"a": 1e-05, "b": None, "c": "a long caption, " * 12, "d": {"nested": [True, -2, 0.1, "it's"]},
              "e": float("inf")}
    nb = injected(params)
    before = nb.cells[1].source
    run(nb, tmp_path, params)
    if nb.cells[1].source != before:  # inf has no literal: papermill's cell stays rather than change a value
        assert assigned(nb.cells[1].source) == params
    params.pop("e")
    nb = injected(params)
    run(nb, tmp_path, params)
    assert assigned(nb.cells[1].source) == params and max(map(len, nb.cells[1].source.splitlines())) <= 100


# -- kernels' environment ------------------------------------------------------------------------------------
def test_quiet_kernels_sets_then_restores_the_environment(monkeypatch) -> None:
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")
    with outputs.quiet_kernels():
        assert os.environ["TQDM_DISABLE"] == "1" and os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    assert "TQDM_DISABLE" not in os.environ and os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "0"


# -- nbval on a converted notebook ---------------------------------------------------------------------------
def test_nbval_lax_still_checks_a_converted_marker(tmp_path: Path) -> None:
    """A checked cell whose stored output differs must fail under --nbval-lax after the marker became a tag; the
    same notebook without the tag passes (lax mode checks nothing unmarked), so it is the tag that does it."""
    pytest.importorskip("nbval")

    def notebook(stored: str, check: bool) -> Path:
        nb = make(("# NBVAL_CHECK_OUTPUT\nprint(6 * 7)" if check else "print(6 * 7)", [stdout(stored)]))
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        tidy(nb, {}, tmp_path, tmp_path / "log")
        assert "NBVAL" not in nb.cells[1].source
        path = tmp_path / f"{'checked' if check else 'plain'}-{stored.strip()}.ipynb"
        nbformat.write(nb, path)
        return path

    def nbval(path: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                               "--nbval-current-env", str(path)], cwd=tmp_path, capture_output=True, text=True)

    right, wrong, unchecked = notebook("42\n", True), notebook("41\n", True), notebook("41\n", False)
    done = nbval(right)
    assert done.returncode == 0, done.stdout + done.stderr
    done = nbval(wrong)
    assert done.returncode == 1 and "41" in done.stdout, done.stdout + done.stderr
    done = nbval(unchecked)
    assert done.returncode == 0, done.stdout + done.stderr
