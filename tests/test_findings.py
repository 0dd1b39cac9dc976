"""Findings: each claim's verdict is read off its interval, travels through the notebook's metadata, and the
introduction's table covers every claim of both papers — with a reason where nothing measured it."""

from __future__ import annotations

import math

import nbformat
import pandas as pd
import pytest

from clipscope_utils import claims
from clipscope_utils.book import summary
from clipscope_utils.studies import cae as cx
from clipscope_utils.studies import findings


def _finding(claim="A-TOR", value=0.6, low=0.5, high=0.7, verdict="reproduced", primary=True, model="m"):
    return claims.Finding(claim, "0.50 first", "TOR", value, low, high, 100, model, "generated", verdict,
                          primary=primary)


def test_finding_refuses_an_unknown_claim_or_verdict() -> None:
    with pytest.raises(ValueError, match="unknown claim"):
        _finding(claim="A-NOPE")
    with pytest.raises(ValueError, match="verdict"):
        _finding(verdict="sort of")


@pytest.mark.parametrize("low, high, verdict", [(0.3, 0.4, "reproduced"), (0.1, 0.2, "reversed"),
                                                (0.2, 0.3, "not shown"), (float("nan"), 0.3, "not shown")])
def test_verdict_is_read_off_the_interval(low, high, verdict) -> None:
    assert claims.verdict_above(low, high, 0.25) == verdict


def test_metadata_round_trip_keeps_nan_as_nan() -> None:
    f = _finding(value=float("nan"), low=float("nan"), high=float("nan"), verdict="not shown")
    meta = claims.to_metadata(f)
    assert meta["value"] is None  # NaN is not JSON
    back = claims.from_metadata([meta])[0]
    assert math.isnan(back.value) and back.claim == "A-TOR" and back.verdict == "not shown"


def _rates(rows):
    return pd.DataFrame(rows, columns=["model", "n_objects", "position", "label", "n", "rate", "ci_low", "ci_high"])


def test_position_finding_verdicts_follow_the_preferred_position() -> None:
    first = _rates([("m", 2, 1, "first", 100, 0.8, 0.7, 0.9), ("m", 2, 2, "second", 100, 0.2, 0.1, 0.3)])
    last = _rates([("m", 2, 1, "first", 100, 0.2, 0.1, 0.3), ("m", 2, 2, "second", 100, 0.8, 0.7, 0.9)])
    even = _rates([("m", 2, 1, "first", 100, 0.5, 0.4, 0.6), ("m", 2, 2, "second", 100, 0.5, 0.4, 0.6)])
    verdict = lambda t: findings._position_finding("A-TOR", t, "m", 1, "first", "", "", "", True).verdict  # noqa: E731
    assert (verdict(first), verdict(last), verdict(even)) == ("reproduced", "reversed", "not shown")


def test_primary_model_prefers_the_papers_row_then_the_largest_first_clip() -> None:
    t = pd.DataFrame({"model": ["SBERT", "random:x:0", "trained:largest_first:0"], "paper_model": ["SBERT", "", ""]})
    assert findings.primary_model(t) == "trained:largest_first:0"
    t.loc[1, "paper_model"] = "CLIP openAI"
    assert findings.primary_model(t) == "random:x:0"
    assert findings.primary_model(t[t.model == "SBERT"]) is None


def test_causal_finding_compares_largest_first_with_shuffled() -> None:
    t = pd.DataFrame({"state": "trained", "position": 1, "n_objects": [2, 2], "order": ["largest_first", "shuffled"],
                      "n": 50, "rate": [0.8, 0.3], "ci_low": [0.7, 0.2], "ci_high": [0.9, 0.4]})
    (f,) = findings.causal(t, "scenes")
    assert f.verdict == "reproduced" and f.value == 0.8 and f.primary


def test_progression_finding_names_a_peak_that_faded() -> None:
    prog = pd.DataFrame({"probe": "TOR", "order": "largest_first", "n_objects": 2, "samples": [0, 10, 20],
                         "n": 100, "rate": [0.3, 0.9, 0.5], "ci_low": [0.2, 0.85, 0.45], "ci_high": [0.4, 0.95, 0.6]})
    (f,) = findings.progression(prog, "scenes")
    assert f.verdict == "reproduced" and "faded" in f.note


def test_claim2_tests_against_uniform() -> None:
    first = pd.DataFrame({"n_mentioned": [2, 3], "n": 80, "share_first": [0.7, 0.3], "ci_low": [0.6, 0.2],
                          "ci_high": [0.8, 0.4], "uniform": [0.5, 1 / 3]})
    out = findings.claim2(first, "COCO")
    assert [f.verdict for f in out] == ["reproduced", "not shown"] and [f.primary for f in out] == [True, False]


def test_cae_findings_carry_paper_b_values() -> None:
    gains = pd.DataFrame({"variant": ["CLIP-CAE (attention)"], "benchmark": ["relation"], "score": ["correct"],
                          "n": [40], "gain": [-0.05], "ci_low": [-0.09], "ci_high": [-0.01]})
    (f,) = findings.cae_gain(gains, "synthetic")
    assert f.verdict == "reversed" and f.paper_value.startswith("+0.051")
    attr = pd.DataFrame({"model": "pretrained", "method": ["attention", "gradcam"], "n": 30,
                         "share_comp_below_obj": [0.8, 0.4], "ci_low": [0.7, 0.3], "ci_high": [0.9, 0.55]})
    out = findings.cae_premise(attr, "pretrained", "captions")
    assert [f.verdict for f in out] == ["reproduced", "not shown"] and out[0].primary and not out[1].primary


def test_claim1_note_counts_names_outside_the_training_classes() -> None:
    assert "not among the 1 classes" in findings.claim1_vocabulary_note(["cat"])


def _executed(path, rows, profile="default"):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("claims.show(...)")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/html": "<div/>"},
                                           metadata={claims.METADATA_KEY: [claims.to_metadata(f) for f in rows]})]
    nb.cells = [cell]
    nb.metadata["clipscope"] = {"profile": profile}
    nbformat.write(nb, path)


def test_summary_covers_every_claim_with_a_verdict_or_a_reason(tmp_path) -> None:
    _executed(tmp_path / "text_probes.ipynb", [_finding(), _finding(model="other", primary=False)])
    found, profiles = summary.collect(tmp_path, ["text_probes", "cae"])
    md = summary.markdown(found, profiles)
    rows = [line for line in md.splitlines() if line.startswith(("| **A-", "| **B-"))]
    assert [r.split("**")[1] for r in rows] == [c.id for c in claims.CLAIMS]  # one row each, non-primary left out
    tor = next(r for r in rows if r.startswith("| **A-TOR"))
    assert "0.60 [0.50, 0.70]" in tor and "**reproduced**" in tor
    cae = next(r for r in rows if r.startswith("| **B-CAE"))
    assert "not run here" in cae and "cae chapter is not built yet" in cae
    sd = next(r for r in rows if r.startswith("| **A-SD"))
    assert "Stable Diffusion" in sd and "not run here" in sd


def test_summary_labels_a_stand_in_build(tmp_path) -> None:
    _executed(tmp_path / "text_probes.ipynb", [_finding()], profile="rehearsal")
    md = summary.markdown(*summary.collect(tmp_path, ["text_probes"]))
    assert "meaningless" in md


def test_collapsed_runs_are_flagged_and_below_chance_winoground_explained() -> None:
    class Cfg:
        batch_size, variant, seed = 64, "CLIP-CAE (gradcam)", 0

    class Run:
        config = Cfg()
        log = pd.DataFrame({"itc": [4.2] * 10})

    class Learned(Run):
        log = pd.DataFrame({"itc": [1.0] * 10})

    t = cx.collapsed_runs([Run(), Learned()])
    assert list(t.collapsed) == [True, False] and "1 run(s) collapsed" in cx.collapse_note(t)
    assert "Every run ended at chance" in cx.collapse_note(cx.collapsed_runs([Run()]))
    results = pd.DataFrame({"benchmark": "winoground", "score": ["text", "group"], "variant": "CLIP-FT",
                            "accuracy": [0.05, 0.2], "ci_low": [0.03, 0.15], "ci_high": [0.08, 0.25]})
    note = cx.below_chance_note(results)
    assert "CLIP-FT text 0.05" in note and "group" not in note.split("Winoground's")[0]



def test_retrieval_rows_add_the_own_measure_without_a_paper_value() -> None:
    from clipscope_utils.probes.report import MeasureTables

    def rates(n_first: int, first: tuple) -> pd.DataFrame:
        return pd.DataFrame([("trained:largest_first:0", 2, 1, "first", n_first, *first),
                             ("trained:largest_first:0", 2, 2, "second", n_first, 0.2, 0.1, 0.3)],
                            columns=["model", "n_objects", "position", "label", "n", "rate", "ci_low", "ci_high"])

    t = MeasureTables(own=rates(100, (0.8, 0.7, 0.9)), top1=rates(100, (0.5, 0.4, 0.6)),
                      conditional=rates(3, (1.0, 1.0, 1.0)), paper_measure="conditional")
    cond, own = findings._retrieval("A-TOR", t, "TOR", "first-position rate", 2, "0.50 first", "scenes")
    assert (cond.verdict, cond.paper_value) == ("not shown", "0.50 first") and "n < 10" in cond.note
    assert own.verdict == "reproduced" and own.paper_value.startswith("–") and "(own)" in own.measure
    assert cond.primary and own.primary


def test_timing_table_counts_steps_per_run_not_summed_over_seeds() -> None:
    class Run:
        def __init__(self, seed):
            self.config = type("C", (), {"variant": "CLIP-FT", "seed": seed})()
            self.log = pd.DataFrame({"step": [1, 2], "seconds": [1.0, 2.0], "samples": [32, 64]})

    t = cx.timing_table([Run(0), Run(1)]).iloc[0]
    assert (t.runs, t["steps per run"], t.samples, t.samples_per_s) == (2, 2, 128, 32.0)


def test_a_cae_run_without_baseline_or_attributions_gives_no_rows() -> None:
    assert findings.cae_gain(pd.DataFrame(), "synthetic") == []
    assert findings.cae_premise(pd.DataFrame(), "pretrained", "captions") == []
