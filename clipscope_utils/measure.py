"""Paper A's probes measured on one loaded encoder: embed with the cached engine, score with the pure metrics.

One function per probe; each takes an :class:`~clipscope_utils.models.base.Encoder` and a :class:`SceneSet`
(or a sentence set) and returns the per-query frame of the metric, tagged with the model name, its paper row
and the probe, so the studies only loop over models and tabulate. Which models, and how they are loaded, is
decided above this layer (:mod:`clipscope_utils.zoo`); the metrics themselves live in :mod:`~clipscope_utils.probes`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .datasets.karpathy import KarpathySplit
from .datasets.tables import SceneSet
from .embeddings import embed_images, embed_texts
from .models.base import Encoder
from .probes import ProbeError, classification, inputs, matching, recall, retrieval, sentences


def _tag(frame: pd.DataFrame, enc: Encoder, probe: str) -> pd.DataFrame:
    return frame.assign(model=enc.name, paper_model=enc.spec.paper_name, probe=probe)


def _retrieve(enc: Encoder, probe: str, q: pd.DataFrame, query_emb: np.ndarray, refs: pd.DataFrame,
              ref_emb: np.ndarray) -> pd.DataFrame:
    """Score queries ``q`` (objects in position order) against references ``refs`` (one class per row)."""
    frame = retrieval.object_retrieval(query_emb, q.objects.tolist(), ref_emb, refs.class_id.tolist(),
                                       query_ids=q.query_id.tolist())
    return _tag(frame, enc, probe)


def tor(enc: Encoder, scenes: SceneSet, template: str = "and", query_template: str | None = None) -> pd.DataFrame:
    """TOR: multi-object caption -> nearest single-object caption, per caption position.

    Queries are the dataset's captions of ``query_template`` (default ``template``; COCO's are "coco"),
    references one single-object caption per class in ``template`` (e.g. "and" or the authors' "bare").
    """
    refs = inputs.single_captions(scenes.classes, template)
    q = inputs.caption_queries(scenes, query_template or template)
    return _retrieve(enc, "TOR", q, texts(enc, q.text.tolist()), refs, texts(enc, refs.text.tolist()))


def tor_combinations(enc: Encoder, classes: Sequence[str], objects: Sequence[int], template: str = "bare",
                     limit: int = 1000, seed: int = 0) -> pd.DataFrame:
    """The authors' TOR: captions over class combinations (``limit`` per object count, seeded order) against
    single captions of the same template; no dataset needed."""
    q = pd.concat([inputs.class_combinations(list(classes), n, limit, seed, template) for n in objects],
                  ignore_index=True)
    refs = inputs.single_captions(list(classes), template)
    return _retrieve(enc, "TOR (class combinations)", q, texts(enc, q.text.tolist()), refs,
                     texts(enc, refs.text.tolist()))


def cross_modal_tor(enc: Encoder, scenes: SceneSet, template: str = "and", reference_size: str = "large",
                    notes: list[str] | None = None) -> pd.DataFrame:
    """TOR against single-object *images*: no shared token prefix between query and reference.

    Captions naming a class without a reference image are left out; the line saying so goes to ``notes``.
    """
    need_images(enc, "cross-modal TOR")
    refs = inputs.reference_images(scenes, reference_size)
    q, note = inputs.covered_queries(inputs.caption_queries(scenes, template), refs.class_id, scenes.classes,
                                     "cross-modal TOR", "captions")
    _note(notes, note)
    return _retrieve(enc, "cross-modal TOR", q, texts(enc, q.text.tolist()), refs, images(enc, refs.path.tolist()))


def ior(enc: Encoder, scenes: SceneSet, reference_size: str = "large", notes: list[str] | None = None,
        reference_position: str = "centre") -> pd.DataFrame:
    """IOR: multi-object image -> nearest single-object image, per object (large first).

    Images holding a class without a reference image are left out; the line saying so goes to ``notes``.
    ``reference_position`` "slots" lets each class score its reference nearest in position as well (the
    position control of generated scenes, see ``inputs.reference_images``).
    """
    need_images(enc, "IOR")
    refs = inputs.reference_images(scenes, reference_size, reference_position)
    q, note = inputs.covered_queries(inputs.image_queries(scenes), refs.class_id, scenes.classes, "IOR", "images")
    _note(notes, note)
    return _retrieve(enc, "IOR", q, images(enc, q.path.tolist()), refs, images(enc, refs.path.tolist()))


def _note(notes: list[str] | None, line: str | None) -> None:
    """Append ``line`` once: a study passes one list for all its models, which leave out the same queries."""
    if notes is not None and line and line not in notes:
        notes.append(line)


def i2tor(enc: Encoder, scenes: SceneSet, template: str = "and") -> pd.DataFrame:
    """I2TOR: multi-object image -> nearest single-object caption, per object (large first)."""
    need_images(enc, "I2TOR")
    q = inputs.image_queries(scenes)
    refs = inputs.single_captions(scenes.classes, template)
    return _retrieve(enc, "I2TOR", q, images(enc, q.path.tolist()), refs, texts(enc, refs.text.tolist()))


def toc(enc: Encoder, scenes: SceneSet, template: str = "and", test_fraction: float = 0.3, seed: int = 0):
    """TOC: a linear probe per caption position on frozen multi-object caption embeddings."""
    q = inputs.caption_queries(scenes, template)
    frame = classification.position_probe(texts(enc, q.text.tolist()), q.objects.tolist(),
                                          test_fraction=test_fraction, seed=seed, item_ids=q.query_id.tolist())
    return _tag(frame, enc, "TOC")


def ioc(enc: Encoder, scenes: SceneSet, test_fraction: float = 0.3, seed: int = 0) -> pd.DataFrame:
    """IOC: a linear probe per object (large first) on frozen multi-object image embeddings."""
    need_images(enc, "IOC")
    q = inputs.image_queries(scenes)
    frame = classification.position_probe(images(enc, q.path.tolist()), q.objects.tolist(),
                                          test_fraction=test_fraction, seed=seed, item_ids=q.query_id.tolist())
    return _tag(frame, enc, "IOC")


def image_text_matching(enc: Encoder, scenes: SceneSet, scenario: str, template: str = "and",
                        replace: str = "authors", seed: int = 0, rephrase: matching.Rephrase | None = None,
                        notes: list[str] | None = None) -> pd.DataFrame:
    """Paper A section 5.1: does the image prefer its correct caption over a one-object swap?

    ``replace`` picks how pairs are built and ties scored (:mod:`~clipscope_utils.probes.matching`);
    ``rephrase`` replaces every caption by its rephrasing (a mapping or a callable on the caption list).
    Lines on skipped images and unrephrased captions go to ``notes``.
    """
    need_images(enc, "image-text matching")
    multi = scenes.multi()
    lines: list[str] = []
    pairs = matching.matching_pairs(multi.objects, scenes.classes, scenario, template=template,
                                    replace=replace, seed=seed, notes=lines)
    pairs = matching.rephrased(pairs, rephrase, notes=lines)
    for line in lines:
        _note(notes, line)
    paths = multi.images.set_index("image_id").path
    image_emb = _once(images, enc, [str(scenes.root / p) for p in paths[pairs.image_id]])
    hits = matching.matching_hits(image_emb, _once(texts, enc, pairs.correct_text.tolist()),
                                  _once(texts, enc, pairs.incorrect_text.tolist()), tie=matching.TIE_CREDIT[replace])
    return _tag(pairs.assign(hit=hits), enc, "matching")


def claim1_tor(enc: Encoder, categories: dict, n_sentences: int, n_objects: int = 4,
               template: str = "and", seed: int = 0) -> pd.DataFrame:
    """Claim 1 (Fig. 4a): TOR of the first object when it is a large vs a small real-world object.

    Both groups share the same medium-sized fillers in the same places (paired sentences), and
    retrieve among single-object captions of every name of the size lists.
    """
    vocab = sentences.vocabulary(categories)
    index = {n: i for i, n in enumerate(vocab)}
    refs = inputs.single_captions(vocab, template)
    ref_emb = texts(enc, refs.text.tolist())
    frames = []
    for first in ("large", "small"):
        s = sentences.size_category_sentences(categories, first, n_sentences, n_objects=n_objects,
                                              template=template, seed=seed)
        objects = [tuple(index[n] for n in names) for names in s.objects]
        f = retrieval.object_retrieval(texts(enc, s.text.tolist()), objects, ref_emb,
                                       refs.class_id.tolist(), query_ids=s.sentence_id.tolist())
        frames.append(f.assign(first_category=first))
    return _tag(pd.concat(frames, ignore_index=True), enc, "Claim 1")


def explore(enc: Encoder, text: str, classes: list[str], template: str = "and", top: int = 5) -> pd.DataFrame:
    """The ``top`` single-object captions nearest to a typed caption (the book's explorer widget)."""
    if not text.strip():
        raise ProbeError("type a caption first")
    refs = inputs.single_captions(classes, template)
    ref = texts(enc, refs.text.tolist())
    q = texts(enc, [text], cache=False, progress=False)
    scores = (ref @ q[0]).astype(float)
    order = np.argsort(-scores, kind="stable")[:top]
    return pd.DataFrame({"rank": range(1, len(order) + 1), "object": refs.class_name.to_numpy()[order],
                         "cosine": scores[order].round(4)})


def _once(embed, enc: Encoder, items: list[str]) -> np.ndarray:
    """Embeddings of ``items`` in order, each distinct item embedded once (the authors' pairs repeat an image
    and its correct caption once per absent class)."""
    distinct = list(dict.fromkeys(items))
    at = {item: i for i, item in enumerate(distinct)}
    return embed(enc, distinct)[[at[item] for item in items]]


EMBED_PROGRESS = False  # per-call embedding bars; set True when running one large model interactively


def texts(enc: Encoder, items: list[str], **kw) -> np.ndarray:
    """Cached, normalised text embeddings of one encoder (no per-call progress bar unless EMBED_PROGRESS)."""
    return embed_texts(enc, items, progress=kw.pop("progress", EMBED_PROGRESS), **kw)


def images(enc: Encoder, paths: list[str]) -> np.ndarray:
    """Cached, normalised image embeddings of one encoder."""
    return embed_images(enc, paths, progress=EMBED_PROGRESS)


def need_images(enc: Encoder, probe: str) -> None:
    """A clear error when an image probe meets a text-only encoder."""
    if not enc.has_images:
        raise ProbeError(f"{probe} needs an image encoder; {enc.name!r} is text-only")


def retrieval_hits(enc: Encoder, dataset: KarpathySplit, ks: Sequence[int] = (1, 5, 10)) -> pd.DataFrame:
    """Per-query hits of paper B's Table 3 retrieval (one row per direction, query and k), so that runs of several
    seeds can be pooled before the interval is drawn."""
    need_images(enc, "image-text retrieval")
    sim = texts(enc, dataset.captions) @ images(enc, [str(p) for p in dataset.image_paths]).T
    return recall.recall_at_k(sim, dataset.text_image, ks)


def retrieval_recall(enc: Encoder, dataset: KarpathySplit, ks: Sequence[int] = (1, 5, 10), n_boot: int = 1000,
                     seed: int = 0) -> pd.DataFrame:
    """Paper B's Table 3: zero-shot image->text and text->image recall@k on a Karpathy test split, with n and a
    95 % interval per direction and k (cosine of cached, normalised embeddings; every caption is a query)."""
    table = recall.recall_table(retrieval_hits(enc, dataset, ks), n_boot=n_boot, seed=seed)
    return _tag(table.assign(dataset=dataset.dataset or dataset.json_file.stem, split=dataset.split), enc,
                "retrieval")
