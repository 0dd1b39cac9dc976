"""Each probe of paper A run end to end: embed with one encoder, score with the plain metrics.

One function per probe; each takes an :class:`~clipscope_utils.models.registry.Encoder` and a
:class:`SceneSet` (or a sentence set) and returns the per-query frame of the metric, tagged with
the model name, so the notebooks only loop over models and tabulate. Embeddings come from the
cached engine, so rerunning a notebook with one more model only embeds that model.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np
import pandas as pd

from ..datasets.tables import SceneSet
from ..embeddings import embed_images, embed_texts
from ..models.registry import Encoder, load_model, resolve, train_missing
from . import ProbeError, classification, inputs, matching, retrieval, sentences

def paper_row(name: str) -> str:
    """Paper A's row label for a model name ('' when the paper has no row for it)."""
    return resolve(name).paper_name


def with_controls(names: Iterable[str], controls: bool = True, need_images: bool = False) -> list[str]:
    """Canonical ``names`` (all validated before any work) plus a random-init control per CLIP architecture.

    The control separates a learned bias from what the architecture alone produces: with a causal
    text encoder, "a cat and a dog" shares the exact token prefix of "a cat", so position 1 wins
    even untrained; a large object covers more pixels, whatever the weights.
    """
    out: list[str] = []
    for name in names:
        spec = resolve(name)
        if need_images and spec.kind != "clip":
            raise ProbeError(f"model {name!r} is text-only; this chapter needs an image encoder")
        out.append(spec.name)
        # an hf-hub model's architecture is only known once its config is downloaded: no control then
        if controls and spec.kind == "clip" and spec.source not in ("random", "hf-hub"):
            out.append(resolve(f"random:{spec.arch}").name)
    return list(dict.fromkeys(out))


def describe_models(names: Iterable[str]) -> pd.DataFrame:
    """What each model name of a run resolved to: open_clip identifiers or the text baseline."""
    rows = []
    for name in names:
        spec = resolve(name)
        rows.append({"model": spec.name, "kind": spec.kind, "resolves to": spec.describe(),
                     "paper row": spec.paper_name or "–",
                     "role": "random-init control" if spec.source == "random" else
                             "text-only baseline" if spec.kind == "text" else "CLIP"})
    return pd.DataFrame(rows)


def encoders(names: Iterable[str], device: str = "auto", progress: bool = True) -> Iterator[tuple[str, Encoder]]:
    """Load one model at a time (memory of one model at most), in the order given, with a progress bar."""
    import gc

    from tqdm import tqdm

    names = list(names)
    train_missing(names, progress=progress)  # self-trained models: in parallel lanes, before the first is needed
    for name in tqdm(names, desc="models", unit="model", disable=not progress):
        enc = load_model(name, device=device)
        yield name, enc
        del enc
        gc.collect()


def _tag(frame: pd.DataFrame, name: str, probe: str) -> pd.DataFrame:
    return frame.assign(model=name, paper_model=paper_row(name), probe=probe)


def _retrieve(enc: Encoder, probe: str, q: pd.DataFrame, query_emb: np.ndarray, refs: pd.DataFrame,
              ref_emb: np.ndarray) -> pd.DataFrame:
    """Score queries ``q`` (objects in position order) against references ``refs`` (one class per row)."""
    frame = retrieval.object_retrieval(query_emb, q.objects.tolist(), ref_emb, refs.class_id.tolist(),
                                       query_ids=q.query_id.tolist())
    return _tag(frame, enc.name, probe)


def tor(enc: Encoder, scenes: SceneSet, template: str = "and") -> pd.DataFrame:
    """TOR: multi-object caption -> nearest single-object caption, per caption position."""
    q = inputs.caption_queries(scenes, template)
    refs = inputs.single_captions(scenes.classes, template)
    return _retrieve(enc, "TOR", q, _texts(enc, q.text.tolist()), refs, _texts(enc, refs.text.tolist()))


def cross_modal_tor(enc: Encoder, scenes: SceneSet, template: str = "and", reference_size: str = "large"):
    """TOR against single-object *images*: no shared token prefix between query and reference."""
    _need_images(enc, "cross-modal TOR")
    q = inputs.caption_queries(scenes, template)
    refs = inputs.reference_images(scenes, reference_size)
    return _retrieve(enc, "cross-modal TOR", q, _texts(enc, q.text.tolist()), refs, _images(enc, refs.path.tolist()))


def ior(enc: Encoder, scenes: SceneSet, reference_size: str = "large") -> pd.DataFrame:
    """IOR: multi-object image -> nearest single-object image, per object (large first)."""
    _need_images(enc, "IOR")
    q = inputs.image_queries(scenes)
    refs = inputs.reference_images(scenes, reference_size)
    return _retrieve(enc, "IOR", q, _images(enc, q.path.tolist()), refs, _images(enc, refs.path.tolist()))


def i2tor(enc: Encoder, scenes: SceneSet, template: str = "and") -> pd.DataFrame:
    """I2TOR: multi-object image -> nearest single-object caption, per object (large first)."""
    _need_images(enc, "I2TOR")
    q = inputs.image_queries(scenes)
    refs = inputs.single_captions(scenes.classes, template)
    return _retrieve(enc, "I2TOR", q, _images(enc, q.path.tolist()), refs, _texts(enc, refs.text.tolist()))


def toc(enc: Encoder, scenes: SceneSet, template: str = "and", test_fraction: float = 0.3, seed: int = 0):
    """TOC: a linear probe per caption position on frozen multi-object caption embeddings."""
    q = inputs.caption_queries(scenes, template)
    frame = classification.position_probe(_texts(enc, q.text.tolist()), q.objects.tolist(),
                                          test_fraction=test_fraction, seed=seed, item_ids=q.query_id.tolist())
    return _tag(frame, enc.name, "TOC")


def ioc(enc: Encoder, scenes: SceneSet, test_fraction: float = 0.3, seed: int = 0) -> pd.DataFrame:
    """IOC: a linear probe per object (large first) on frozen multi-object image embeddings."""
    _need_images(enc, "IOC")
    q = inputs.image_queries(scenes)
    frame = classification.position_probe(_images(enc, q.path.tolist()), q.objects.tolist(),
                                          test_fraction=test_fraction, seed=seed, item_ids=q.query_id.tolist())
    return _tag(frame, enc.name, "IOC")


def image_text_matching(enc: Encoder, scenes: SceneSet, scenario: str, template: str = "and",
                        replace: str = "large", seed: int = 0) -> pd.DataFrame:
    """Paper A section 5.1: does the image prefer its correct caption over a one-object swap?"""
    _need_images(enc, "image-text matching")
    multi = scenes.multi()
    pairs = matching.matching_pairs(multi.objects, scenes.classes, scenario, template=template,
                                    replace=replace, seed=seed)
    paths = multi.images.set_index("image_id").path
    image_emb = _images(enc, [str(scenes.root / paths[i]) for i in pairs.image_id])
    hits = matching.matching_hits(image_emb, _texts(enc, pairs.correct_text.tolist()),
                                  _texts(enc, pairs.incorrect_text.tolist()))
    return _tag(pairs.assign(hit=hits), enc.name, "matching")


def claim1_tor(enc: Encoder, categories: dict, n_sentences: int, n_objects: int = 4,
               template: str = "and", seed: int = 0) -> pd.DataFrame:
    """Claim 1 (Fig. 4a): TOR of the first object when it is a large vs a small real-world object.

    Both groups share the same medium-sized fillers in the same places (paired sentences), and
    retrieve among single-object captions of every name of the size lists.
    """
    vocab = sentences.vocabulary(categories)
    index = {n: i for i, n in enumerate(vocab)}
    refs = inputs.single_captions(vocab, template)
    ref_emb = _texts(enc, refs.text.tolist())
    frames = []
    for first in ("large", "small"):
        s = sentences.size_category_sentences(categories, first, n_sentences, n_objects=n_objects,
                                              template=template, seed=seed)
        objects = [tuple(index[n] for n in names) for names in s.objects]
        f = retrieval.object_retrieval(_texts(enc, s.text.tolist()), objects, ref_emb,
                                       refs.class_id.tolist(), query_ids=s.sentence_id.tolist())
        frames.append(f.assign(first_category=first))
    return _tag(pd.concat(frames, ignore_index=True), enc.name, "Claim 1")


def explore(enc: Encoder, text: str, classes: list[str], template: str = "and", top: int = 5) -> pd.DataFrame:
    """The ``top`` single-object captions nearest to a typed caption (the book's explorer widget)."""
    if not text.strip():
        raise ProbeError("type a caption first")
    refs = inputs.single_captions(classes, template)
    ref = _texts(enc, refs.text.tolist())
    q = _texts(enc, [text], cache=False, progress=False)
    scores = (ref @ q[0]).astype(float)
    order = np.argsort(-scores, kind="stable")[:top]
    return pd.DataFrame({"rank": range(1, len(order) + 1), "object": refs.class_name.to_numpy()[order],
                         "cosine": scores[order].round(4)})


EMBED_PROGRESS = False  # per-call embedding bars; set True when running one large model interactively


def _texts(enc: Encoder, texts: list[str], **kw) -> np.ndarray:
    return embed_texts(enc, texts, progress=kw.pop("progress", EMBED_PROGRESS), **kw)


def _images(enc: Encoder, paths: list[str]) -> np.ndarray:
    return embed_images(enc, paths, progress=EMBED_PROGRESS)


def _need_images(enc: Encoder, probe: str) -> None:
    if not enc.has_images:
        raise ProbeError(f"{probe} needs an image encoder; {enc.name!r} is text-only")
