"""The probe chapters (text encoder, image encoder, image-text matching): every model of a chapter through
every probe of paper A, one model in memory at a time, as per-query frames the notebooks tabulate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from .. import measure
from ..datasets import SceneSet
from ..datasets.sizes import size_categories
from ..probes import ProbeError, report, retrieval
from ..zoo import ModelZoo

SCENARIOS = ("first", "second")


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame | None:
    return pd.concat(frames, ignore_index=True) if frames else None


@dataclass
class TextProbes:
    """Per-query frames of the text chapter: TOR, TOC, Claim 1 sentences, cross-modal TOR (None without images)."""

    tor: pd.DataFrame
    toc: pd.DataFrame
    claim1: pd.DataFrame
    cross_modal: pd.DataFrame | None

    def tables(self, n_boot: int = 1000, seed: int = 0) -> "TextTables":
        """Every rate table of the chapter, with n and intervals, the paper's numbers beside where it has them."""
        tor = report.with_paper(report.retrieval_table(self.tor, labels=retrieval.caption_labels, n_boot=n_boot,
                                                       seed=seed), "TOR", table_no=1)
        cond = report.retrieval_table(self.tor, conditional=True, labels=retrieval.caption_labels, n_boot=n_boot,
                                      seed=seed)
        xtor = (None if self.cross_modal is None else
                report.retrieval_table(self.cross_modal, labels=retrieval.caption_labels, n_boot=n_boot, seed=seed))
        toc = report.hit_table(self.toc.assign(label=self.toc.position.map(retrieval.caption_labels)),
                               ["model", "n_objects", "position", "label"], n_boot=n_boot, seed=seed)
        table5 = report.with_paper(tor[(tor.n_objects == 4) & (tor.position > 0)], "TOR", table_no=5)
        first = self.claim1[self.claim1.position == 1]
        claim1 = report.hit_table(first, ["model", "first_category"], n_boot=n_boot, seed=seed)
        return TextTables(tor, cond[cond.position > 0], xtor, toc, table5, first, claim1)


@dataclass
class TextTables:
    """The text chapter's tables: TOR (with paper Table 1), conditional TOR, cross-modal TOR, TOC, Table 5, and
    Claim 1 (the first-object rows and their rates by real-world size of the first object)."""

    tor: pd.DataFrame
    conditional: pd.DataFrame
    cross_modal: pd.DataFrame | None
    toc: pd.DataFrame
    table5: pd.DataFrame
    claim1_first: pd.DataFrame
    claim1: pd.DataFrame


def text_probes(zoo: ModelZoo, names: Sequence[str], scenes: SceneSet, template: str = "and",
                toc_test_fraction: float = 0.3, claim1_sentences: int = 100, cross_modal: bool = True,
                device: str = "auto", seed: int = 0) -> TextProbes:
    """TOR, TOC and Claim 1 for every model; cross-modal TOR for those with an image encoder."""
    categories = size_categories()
    tor, toc, claim1, xtor = [], [], [], []
    for _, enc in zoo.encoders(names, device, progress=False):
        tor.append(measure.tor(enc, scenes, template))
        toc.append(measure.toc(enc, scenes, template, toc_test_fraction, seed))
        claim1.append(measure.claim1_tor(enc, categories, claim1_sentences, template=template, seed=seed))
        if cross_modal and enc.has_images:
            xtor.append(measure.cross_modal_tor(enc, scenes, template))
    return TextProbes(_concat(tor), _concat(toc), _concat(claim1), _concat(xtor))


@dataclass
class ImageProbes:
    """Per-query frames of the image chapter: IOR, I2TOR and IOC."""

    ior: pd.DataFrame
    i2tor: pd.DataFrame
    ioc: pd.DataFrame


def image_probes(zoo: ModelZoo, names: Sequence[str], scenes: SceneSet, reference_size: str = "large",
                 template: str = "and", ioc_test_fraction: float = 0.3, device: str = "auto",
                 seed: int = 0) -> ImageProbes:
    """IOR, I2TOR and IOC for every model (all need an image encoder)."""
    ior, i2tor, ioc = [], [], []
    for _, enc in zoo.encoders(names, device, progress=False):
        ior.append(measure.ior(enc, scenes, reference_size))
        i2tor.append(measure.i2tor(enc, scenes, template))
        ioc.append(measure.ioc(enc, scenes, ioc_test_fraction, seed))
    return ImageProbes(_concat(ior), _concat(i2tor), _concat(ioc))


def matching(zoo: ModelZoo, names: Sequence[str], scenes: SceneSet, template: str = "and", replace: str = "large",
             device: str = "auto", seed: int = 0) -> pd.DataFrame:
    """Both scenarios of paper A section 5.1 for every model: one row per (image, scenario) with ``hit``."""
    frames = [measure.image_text_matching(enc, scenes, scenario, template, replace, seed)
              for _, enc in zoo.encoders(names, device, progress=False) for scenario in SCENARIOS]
    return pd.concat(frames, ignore_index=True)


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
