"""The claims of paper A and paper B, and the book's finding for each: what the paper says, its number with the
measure behind it, what this book measured with the same measure, and a verdict read off the interval.

A chapter ends with :func:`show`, which renders its findings as a box and stores them in the output's metadata;
the runner collects them from the executed notebooks into the introduction's table (``book.summary``), so the
table is never typed by hand and a claim no chapter measured says why. Paper values are looked up in the
transcribed tables (``data/paper_a_tables.csv``, ``data/paper_b_tables.csv``); claims read off a figure say so.
"""

from __future__ import annotations

import html
import math
from dataclasses import asdict, dataclass, field

import pandas as pd


VERDICTS = ("reproduced", "reversed", "not shown", "not run here")
METADATA_KEY = "clipscope_findings"


@dataclass(frozen=True)
class Claim:
    """One claim of a paper: where it is made, what it says, the chapter that tests it, and why it may not run."""

    id: str
    paper: str          # "A" or "B"
    where: str          # section, table or figure
    claim: str
    chapter: str        # the notebook whose findings box carries it
    absent: str         # why the offline book does not measure it (shown when no chapter reports it)


CLAIMS: tuple[Claim, ...] = (
    Claim("A-TOR", "A", "§3.1, Table 1", "The text encoder favours the object mentioned first (TOR).", "text_probes",
          "the text chapter did not run"),
    Claim("A-TOC", "A", "§3.1, Table 5", "The first object is also the most decodable one (TOC, linear probe).",
          "text_probes", "the text chapter did not run"),
    Claim("A-T5", "A", "§4.2.1, Table 5", "Text-only encoders (SBERT) do not favour the first object; SBERT favours "
          "the last.", "text_probes", "no text-only model in the text chapter's model list"),
    Claim("A-C1", "A", "§4.3, Claim 1", "A large first object is retrieved more often than a small first object.",
          "text_probes", "Claim 1 sentences were not requested (claim1_sentences = 0)"),
    Claim("A-IOR", "A", "§3.2, Table 2", "The image encoder favours the largest object (IOR).", "image_probes",
          "the image chapter did not run"),
    Claim("A-IOC", "A", "§3.2, Table 5", "The largest object is the most decodable one from the image (IOC).",
          "image_probes", "the image chapter did not run"),
    Claim("A-COCO", "A", "§3.3, Tables 3–4", "Both biases hold on real images and captions (COCO).", "text_probes",
          "COCO cannot be fetched here; the `paper` profile runs it (coco_root)"),
    Claim("A-MATCH", "A", "§5.1, Table 6", "Image–text matching succeeds when the large object is named first and "
          "fails when it is named last.", "matching", "the matching chapter did not run"),
    Claim("A-ATT", "A", "§4.3, Fig. 3", "The CLS token attends more to the larger object.", "attention",
          "the attention chapter did not run"),
    Claim("A-C2", "A", "§4.3, Claim 2, Fig. 4b", "Web captions (LAION, COCO) mention the largest object first more "
          "often than 1/n.", "origin", "no real captions here (LAION and COCO cannot be fetched); generated captions "
          "are ordered by construction, so they cannot test it"),
    Claim("A-CAUSE", "A", "§4.3", "The text encoder's first-object bias is learned from captions that name the "
          "large object first (argued, not tested, in paper A).", "origin", "the origin chapter did not run"),
    Claim("A-PROG", "A", "§4.3, Fig. 4c", "The first-object bias grows during training (LAION checkpoints).",
          "progression", "the progression chapter did not run"),
    Claim("A-SD", "A", "§5.2, appendix", "Text-to-image models (Stable Diffusion) drop the later objects of a "
          "prompt.", "", "no Stable Diffusion weights and no GPU here; not implemented in this book"),
    Claim("B-PREMISE", "B", "§1, Fig. 1b / 7", "CLIP's text attributions favour object words over attribute and "
          "relation words.", "cae", "the CAE chapter measured no attributions of its base model"),
    Claim("B-CAE", "B", "§5, Tables 1–2", "Fine-tuning with the attribution loss (CAE) beats plain fine-tuning "
          "(CLIP-FT) on relations.", "cae", "the CAE chapter ran no CLIP-FT baseline to compare with (`methods` "
          "without \"none\")"),
    Claim("B-BENCH", "B", "Tables 1–2", "The gains hold on ARO, SugarCrepe, VL-CheckList, VALSE, SVO-Probes, ComVG "
          "and Winoground.", "cae", "the benchmarks' files cannot be fetched here; the `paper` profile reads all seven "
          "from their folders (the rehearsal runs the loaders on stand-ins)"),
    Claim("B-RET", "B", "Table 3", "CAE keeps (text-to-image: improves) zero-shot image–text retrieval on COCO and "
          "Flickr30k.", "cae", "COCO's and Flickr30k's Karpathy test splits cannot be fetched here; offline the chapter "
          "measures retrieval on generated scenes (own measure)"),
    Claim("B-ABL", "B", "§4.4.3 Table 5, appendix E", "The attribution loss alone falls below plain fine-tuning; both "
          "loss terms are needed. Results are stable over λ and the learning rate.", "cae",
          "the loss ablation needs `ablation: true`; the λ/lr sweep needs `sweep_lr` / `sweep_lambda`"),
)
CLAIM_IDS = {c.id: c for c in CLAIMS}


@dataclass
class Finding:
    """What this book measured for one claim, with the same measure as the paper where the paper has a number."""

    claim: str
    paper_value: str            # the paper's number with its measure and source, or how the paper shows it
    measure: str                # the measure of ``value`` (the paper's where it has one)
    value: float
    ci_low: float
    ci_high: float
    n: int
    model: str
    data: str
    verdict: str
    note: str = ""
    primary: bool = True        # the row the introduction's table shows for this claim
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.claim not in CLAIM_IDS:
            raise ValueError(f"unknown claim {self.claim!r}; claims: {sorted(CLAIM_IDS)}")
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


def verdict_above(low: float, high: float, reference: float) -> str:
    """'reproduced' when the interval lies wholly above ``reference``, 'reversed' when wholly below."""
    if any(math.isnan(x) for x in (low, high)):
        return "not shown"
    return "reproduced" if low > reference else "reversed" if high < reference else "not shown"


def fmt_value(f: Finding) -> str:
    if math.isnan(f.value):
        return "–"
    return f"{f.value:.2f} [{f.ci_low:.2f}, {f.ci_high:.2f}]"


def table(findings: list[Finding]) -> pd.DataFrame:
    """The reader's table of findings (one row each), in claim order."""
    order = {c.id: i for i, c in enumerate(CLAIMS)}
    rows = [{"claim": f.claim, "paper says": CLAIM_IDS[f.claim].claim, "paper's value": f.paper_value,
             "measure": f.measure, "this book [95 % CI]": fmt_value(f), "n": f.n if f.n else "–",
             "model · data": f"{f.model} · {f.data}" if f.model else f.data, "verdict": f.verdict, "note": f.note}
            for f in sorted(findings, key=lambda f: (order[f.claim], not f.primary))]
    return pd.DataFrame(rows)


def to_html(findings: list[Finding], title: str = "Findings of this chapter") -> str:
    """A compact boxed table for the end of a chapter."""
    t = table(findings)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in t.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in t.itertuples(index=False))
    return (f'<div class="clipscope-findings" style="border-left:4px solid #4C72B0;padding:0.4em 0.8em;'
            f'background:#f5f7fb;font-size:0.85em"><p><strong>{html.escape(title)}</strong> — verdicts are read off '
            f'the 95 % intervals; a paper\'s value stands only beside the measure that produced it.</p>'
            f'<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>')


def show(findings: list[Finding], title: str = "Findings of this chapter") -> None:
    """Display the chapter's findings box; the findings travel in the output's metadata to the introduction."""
    from IPython.display import HTML, display  # noqa: PLC0415 - optional heavy package, only in a notebook

    display(HTML(to_html(findings, title)), metadata={METADATA_KEY: [to_metadata(f) for f in findings]})


NUMBERS = ("value", "ci_low", "ci_high")


def to_metadata(f: Finding) -> dict:
    """Plain JSON (NaN is not JSON: it travels as null)."""
    d = asdict(f)
    d.update({k: None if math.isnan(d[k]) else float(d[k]) for k in NUMBERS})
    return d


def from_metadata(items: list[dict]) -> list[Finding]:
    return [Finding(**{**item, **{k: float("nan") if item[k] is None else float(item[k]) for k in NUMBERS}})
            for item in items]
