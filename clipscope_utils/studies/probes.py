"""The probe chapters (text encoder, image encoder, image-text matching): every model of a chapter through
every probe of paper A, one model in memory at a time, as per-query frames the notebooks tabulate."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from .. import figures, measure
from ..datasets import SceneSet
from ..datasets.sizes import size_categories
from ..paper import paper_measure
from ..probes import ProbeError, report, retrieval
from ..probes.matching import Rephrase, matching_pairs, matching_table, remembered
from ..zoo import ModelZoo

SCENARIOS = ("first", "second")
# paper A's table of each retrieval probe, per dataset (the measure of its numbers: paper.PAPER_MEASURES)
PAPER_TABLES = {("TOR", "ComCO"): 1, ("IOR", "ComCO"): 2, ("TOR", "COCO"): 3, ("IOR", "COCO"): 4,
                ("I2TOR", "COCO"): 4}


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame | None:
    return pd.concat(frames, ignore_index=True) if frames else None


def _check_dataset(paper_dataset: str) -> None:
    if paper_dataset not in ("ComCO", "COCO"):
        raise ProbeError(f"paper_dataset must be 'ComCO' or 'COCO' (which of paper A's tables to show beside), "
                         f"got {paper_dataset!r}")


def _measures(frame: pd.DataFrame, task: str, labels, paper_dataset: str, n_boot: int, seed: int,
              paper: bool = True) -> report.MeasureTables:
    """Own / top1 / conditional tables; the paper's number beside ``own`` where paper A has this probe."""
    table_no = PAPER_TABLES.get((task, paper_dataset)) if paper else None
    return report.measure_tables(frame, labels, task if table_no else None, table_no, paper_dataset,
                                 n_boot=n_boot, seed=seed)


@dataclass
class TextProbes:
    """Per-query frames of the text chapter: TOR, TOC, Claim 1 sentences, cross-modal TOR (None without images),
    TOR over class combinations (None unless asked), and notes on queries left out."""

    tor: pd.DataFrame
    toc: pd.DataFrame
    claim1: pd.DataFrame
    cross_modal: pd.DataFrame | None
    combinations: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)

    def tables(self, n_boot: int = 1000, seed: int = 0, paper_dataset: str = "ComCO") -> "TextTables":
        """Every rate table of the chapter, with n and intervals, each retrieval probe under every measure and
        paper A's number beside the own measure: Table 1 (``paper_dataset="ComCO"``) or Table 3 ("COCO") for
        TOR, Table 5 for the ComCO TOR of CLIP and the text-only baselines."""
        _check_dataset(paper_dataset)
        labels = retrieval.caption_labels
        tor = _measures(self.tor, "TOR", labels, paper_dataset, n_boot, seed)
        xtor = (None if self.cross_modal is None else
                _measures(self.cross_modal, "TOR", labels, paper_dataset, n_boot, seed, paper=False))
        combos = (None if self.combinations is None else  # the authors' TOR: bare names over class combinations
                  _measures(self.combinations, "TOR", labels, "ComCO", n_boot, seed, paper=paper_dataset == "ComCO"))
        toc = report.hit_table(self.toc.assign(label=self.toc.position.map(retrieval.caption_labels)),
                               ["model", "n_objects", "position", "label"], n_boot=n_boot, seed=seed)
        rows = tor.of(paper_measure("TOR", "ComCO"))
        table5 = (report.with_paper(rows[rows.n_objects == 4], "TOR", table_no=5)
                  if paper_dataset == "ComCO" and (rows.n_objects == 4).any() else None)
        first = self.claim1[self.claim1.position == 1]
        claim1 = report.hit_table(first, ["model", "first_category"], n_boot=n_boot, seed=seed)
        return TextTables(tor, xtor, combos, toc, table5, first, claim1, list(self.notes))


@dataclass
class TextTables:
    """The text chapter's tables: TOR, cross-modal TOR and TOR over class combinations under each measure
    (``.own`` with paper Table 1/3, ``.top1``, ``.conditional``), TOC, Table 5 (own measure, 4 objects; None for
    COCO or without 4-object scenes), Claim 1 (the first-object rows and their rates by real-world size of the
    first object) and the notes on queries left out."""

    tor: report.MeasureTables
    cross_modal: report.MeasureTables | None
    combinations: report.MeasureTables | None
    toc: pd.DataFrame
    table5: pd.DataFrame | None
    claim1_first: pd.DataFrame
    claim1: pd.DataFrame
    notes: list[str]


def _sources(scenes: SceneSet | Mapping[str, SceneSet]) -> tuple[dict[str, SceneSet], bool]:
    """Label -> scenes, and whether one bare SceneSet was given (then the study returns one result, not a dict)."""
    if isinstance(scenes, SceneSet):
        return {scenes.meta.get("dataset", "scenes"): scenes}, True
    if not scenes:
        raise ProbeError("no data source: give a SceneSet or a non-empty mapping of label -> SceneSet")
    return dict(scenes), False


def queries_of(scenes: SceneSet, template: str) -> str:
    """The captions that are TOR queries: COCO's own captions ("coco"), else the chapter's template."""
    return "coco" if scenes.meta.get("source") == "coco" else template


def text_probes(zoo: ModelZoo, names: Sequence[str], scenes: SceneSet | Mapping[str, SceneSet], template: str = "and",
                toc_test_fraction: float = 0.3, claim1_sentences: int = 100, cross_modal: bool = True,
                device: str = "auto", seed: int = 0, query_template: str | None = None,
                combination_objects: Sequence[int] = (), combination_limit: int = 1000,
                combination_template: str = "bare") -> TextProbes | dict[str, TextProbes]:
    """TOR, TOC and Claim 1 for every model; cross-modal TOR for those with an image encoder.

    ``template`` words the single-object references (and Claim 1's sentences); the queries are the dataset's
    captions of ``query_template`` (default: the source's own, see :func:`queries_of`). ``combination_objects``
    (e.g. ``[2, 3, 4, 5]``) adds the authors' TOR over class combinations of the dataset's classes. ``scenes`` may
    be a mapping label -> SceneSet (the chapter's sources): each model is then loaded once for all of them and a
    dict of results comes back.
    """
    sources, single = _sources(scenes)
    categories = size_categories()
    parts = {label: ([], [], [], [], [], []) for label in sources}
    for _, enc in zoo.encoders(names, device, progress=False):
        # Claim 1's sentences come from the size lists, not from a source: measured once, shared by every source
        claim1 = measure.claim1_tor(enc, categories, claim1_sentences, template=template, seed=seed)
        for label, data in sources.items():
            tor, toc, claims, xtor, combos, notes = parts[label]
            queries = queries_of(data, template) if query_template is None else query_template
            tor.append(measure.tor(enc, data, template, queries))
            toc.append(measure.toc(enc, data, queries, toc_test_fraction, seed))
            claims.append(claim1)
            if cross_modal and enc.has_images and not data.singles().images.empty:
                xtor.append(measure.cross_modal_tor(enc, data, queries, notes=notes))
            if combination_objects:
                combos.append(measure.tor_combinations(enc, data.classes, list(combination_objects),
                                                       combination_template, combination_limit, seed))
    for label, data in sources.items():
        if cross_modal and data.singles().images.empty:
            parts[label][5].append("cross-modal TOR: this source has no single-object images (for COCO, give "
                                   "domainnet_root)")
    out = {label: TextProbes(*(_concat(f) for f in p[:5]), p[5]) for label, p in parts.items()}
    return next(iter(out.values())) if single else out


@dataclass
class ImageProbes:
    """Per-query frames of the image chapter: IOR, I2TOR and IOC, and notes on queries left out."""

    ior: pd.DataFrame | None  # None: the source has no single-object reference images
    i2tor: pd.DataFrame
    ioc: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    def tables(self, n_boot: int = 1000, seed: int = 0, paper_dataset: str = "ComCO") -> "ImageTables":
        """IOR and I2TOR under every measure, paper A's number beside the own measure (IOR: Table 2 for
        ``paper_dataset="ComCO"``, Table 4 for "COCO"; I2TOR: Table 4, COCO only), and IOC."""
        _check_dataset(paper_dataset)
        labels = retrieval.size_labels
        ioc = report.hit_table(self.ioc.assign(label=self.ioc.position.map(labels)),
                               ["model", "n_objects", "position", "label"], n_boot=n_boot, seed=seed)
        ior = None if self.ior is None else _measures(self.ior, "IOR", labels, paper_dataset, n_boot, seed)
        return ImageTables(ior,
                           _measures(self.i2tor, "I2TOR", labels, paper_dataset, n_boot, seed), ioc, list(self.notes))


@dataclass
class ImageTables:
    """The image chapter's tables: IOR and I2TOR under each measure (``.own`` with the paper's number, ``.top1``,
    ``.conditional``), IOC, and the notes on queries left out."""

    ior: report.MeasureTables | None
    i2tor: report.MeasureTables
    ioc: pd.DataFrame
    notes: list[str]


def image_probes(zoo: ModelZoo, names: Sequence[str], scenes: SceneSet | Mapping[str, SceneSet],
                 reference_size: str = "large", template: str = "and", ioc_test_fraction: float = 0.3,
                 device: str = "auto", seed: int = 0) -> ImageProbes | dict[str, ImageProbes]:
    """IOR, I2TOR and IOC for every model (all need an image encoder); images whose classes lack a reference
    image are left out of IOR, and ``notes`` says how many (a source without any reference image, such as COCO
    without DomainNet, skips IOR with a note). A mapping of sources gives a dict of results."""
    sources, single = _sources(scenes)
    parts = {label: ([], [], [], []) for label in sources}
    for _, enc in zoo.encoders(names, device, progress=False):
        for label, data in sources.items():
            ior, i2tor, ioc, notes = parts[label]
            if data.singles().images.empty:
                note = "IOR: this source has no single-object reference images (for COCO, give domainnet_root)"
                if note not in notes:
                    notes.append(note)
            else:
                ior.append(measure.ior(enc, data, reference_size, notes=notes))
            i2tor.append(measure.i2tor(enc, data, template))
            ioc.append(measure.ioc(enc, data, ioc_test_fraction, seed))
    out = {label: ImageProbes(_concat(p[0]), _concat(p[1]), _concat(p[2]), p[3]) for label, p in parts.items()}
    return next(iter(out.values())) if single else out


@dataclass
class Matching:
    """One row per (model, image, scenario, pair) with ``hit``, and notes on skipped images and captions."""

    frame: pd.DataFrame
    notes: list[str]

    def tables(self, n_boot: int = 1000, seed: int = 0, paper_dataset: str = "ComCO") -> "MatchingTables":
        """Accuracy per scenario, bootstrapped over images: all object counts pooled (paper A's Table 6 beside
        the authors' pairs, ComCO or COCO half) and per object count."""
        _check_dataset(paper_dataset)
        pooled = matching_table(self.frame, ("scenario",), n_boot=n_boot, seed=seed)
        if (pooled.pairing == "authors").any():
            pooled = report.with_paper(pooled, "image_text_matching", on="scenario", table_no=6,
                                       dataset=paper_dataset)
        per_n = matching_table(self.frame, ("scenario", "n_objects"), n_boot=n_boot, seed=seed)
        notes = list(self.notes)
        if paper_dataset == "COCO" and self.frame.correct_text.equals(self.frame.correct_source_text):
            notes.append("Table 6: paper A's COCO numbers were measured on GPT-4o rephrasings of the captions; "
                         "these are the template's own captions")
        return MatchingTables(pooled, per_n, notes)


@dataclass
class MatchingTables:
    """Matching accuracy pooled over object counts (with the paper's number where it applies) and per count."""

    pooled: pd.DataFrame
    per_n: pd.DataFrame
    notes: list[str]


def matching(zoo: ModelZoo, names: Sequence[str], scenes: SceneSet | Mapping[str, SceneSet], template: str = "and",
             replace: str = "authors", device: str = "auto", seed: int = 0,
             rephrase: Rephrase | None = None) -> Matching | dict[str, Matching]:
    """Both scenarios of paper A section 5.1 for every model: one row per (image, scenario, pair) with ``hit``.

    ``rephrase`` (a mapping caption -> rephrasing, or a callable on a list of captions, asked once per caption
    across models) replaces every caption of a COCO source, as paper A did with GPT-4o. A mapping of sources
    gives a dict of results.
    """
    sources, single = _sources(scenes)
    if callable(rephrase) and not isinstance(rephrase, Mapping):
        rephrase = remembered(rephrase)
    parts: dict[str, tuple[list, list]] = {label: ([], []) for label in sources}
    for _, enc in zoo.encoders(names, device, progress=False):
        for label, data in sources.items():
            frames, notes = parts[label]
            wording = rephrase if single or data.meta.get("source") == "coco" else None
            frames += [measure.image_text_matching(enc, data, scenario, template, replace, seed, wording, notes)
                       for scenario in SCENARIOS]
    out = {label: Matching(pd.concat(p[0], ignore_index=True), p[1]) for label, p in parts.items()}
    return next(iter(out.values())) if single else out


def matching_captions(scenes: SceneSet, template: str = "and", replace: str = "authors", seed: int = 0) -> list[str]:
    """Every caption the matching chapter builds on ``scenes`` (both scenarios), sorted: what a rephraser must
    reword, e.g. an LLM as paper A's GPT-4o, whose answers make the ``rephrased_captions`` file."""
    multi = scenes.multi()
    texts: set[str] = set()
    for scenario in SCENARIOS:
        pairs = matching_pairs(multi.objects, scenes.classes, scenario, template=template, replace=replace, seed=seed)
        texts.update(pairs.correct_text)
        texts.update(pairs.incorrect_text)
    return sorted(texts)


def rephrasings_from(path: str) -> dict[str, str] | None:
    """The rephrased-captions file of the matching chapter (JSON: template caption -> rephrasing); '' = none.
    The book's up-front check reads it through here too, so a bad file fails before any work."""
    if not path:
        return None
    if not Path(path).is_file():
        raise ProbeError(f"rephrased_captions {path!r} does not exist; write a JSON object "
                         "{\"<template caption>\": \"<rephrasing>\", ...} (see matching_captions), or set '' to "
                         "match with the template captions")
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProbeError(f"rephrased_captions {path!r} cannot be read as JSON: {e}") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ProbeError(f"rephrased_captions {path!r} must be one JSON object of caption -> rephrasing strings")
    return data


def explorer(zoo: ModelZoo, names: Sequence[str], classes: Sequence[str], template: str = "and",
             device: str = "auto", caption: str = ""):
    """A widget: pick a model, type a caption, see the nearest single-object captions (one model loaded)."""
    import ipywidgets as widgets  # optional: the book's extra

    loaded = {}

    def ranked(model_name, text):
        if model_name not in loaded:
            loaded.clear()
            loaded[model_name] = zoo.load(model_name, device=device)
        return measure.explore(loaded[model_name], text, list(classes), template)

    pick = widgets.Dropdown(options=list(names), description="model")
    box = widgets.Text(value=caption, description="caption", layout=widgets.Layout(width="60%"))
    out = widgets.HTML()

    def update(*_):
        try:
            out.value = ranked(pick.value, box.value).to_html(index=False)
        except (ProbeError, ValueError) as e:
            out.value = f"<i>{e}</i>"

    pick.observe(update, "value")
    box.observe(update, "value")
    update()
    return widgets.VBox([widgets.HBox([pick, box]), out])


def plot_matching_examples(scenes: SceneSet, frame: pd.DataFrame, model: str, per_scenario: int = 1) -> plt.Figure:
    """A pair of each scenario as the model sees it: the image, its correct caption (✓) and the incorrect one
    (✗), with whether ``model`` got it right."""
    figures.style()
    rows = frame[frame.model == model].groupby("scenario", sort=False).head(per_scenario)
    fig, axes = plt.subplots(1, len(rows), figsize=(figures.FULL_WIDTH_IN, 3.6), squeeze=False, layout="constrained")
    for ax, r in zip(axes.flat, rows.itertuples()):
        ax.imshow(scenes.image(r.image_id))
        ax.axis("off")
        ax.set_title(f"{r.scenario} scenario: {'right' if r.hit >= 1 else 'wrong'}", fontsize=figures.TITLE_PT)
        text = f"✓ {r.correct_text}\n✗ {r.incorrect_text}"
        ax.text(0.5, -0.03, "\n".join(textwrap.fill(t, 40) for t in text.splitlines()), transform=ax.transAxes,
                ha="center", va="top", fontsize=figures.FONT_PT)
    return fig
