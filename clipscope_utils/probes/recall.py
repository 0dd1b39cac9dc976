"""Zero-shot image–text retrieval recall@k (paper B, Table 3), as pure functions of a similarity matrix.

Conventions of CLIP-like papers (as LAION-AI/CLIP_benchmark ``metrics/zeroshot_retrieval.py`` computes them):
every caption is a text query whose one right answer is its image (text->image); every image is a query that
is right at k when *any* of its captions is among its k nearest texts (image->text). Recall@k is the share of
queries right at k, so each query gives one 0/1 hit per k and the rate gets a bootstrap 95 % interval over
queries like every rate of the book.

Ties: a wrong item scoring exactly as high as the best right one counts as ranked before it, so a model
that scores everything alike gets recall 0 below k = gallery size, never 1.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..stats import rate_table
from . import ProbeError

DIRECTIONS = ("image->text", "text->image")
HIT_COLUMNS = ["direction", "query", "rank", "k", "hit"]
TABLE_COLUMNS = ["direction", "k", "n", "recall", "ci_low", "ci_high"]
CHUNK_CELLS = 2**24  # similarity cells compared at once (bounds the boolean temporaries)


def _inputs(similarity, text_to_image_index, ks) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    sim = np.asarray(similarity)
    if sim.ndim != 2 or 0 in sim.shape:
        raise ProbeError(f"similarity must be a non-empty 2-D array [n_texts, n_images], got shape {sim.shape}")
    if sim.dtype.kind not in "fiu":
        raise ProbeError(f"similarity must be numeric, got dtype {sim.dtype}")
    if not np.isfinite(sim).all():
        raise ProbeError("similarity contains NaN or infinite values")
    owner = np.asarray(text_to_image_index)
    if owner.ndim != 1 or len(owner) != sim.shape[0]:
        raise ProbeError(f"text_to_image_index needs one image index per text ({sim.shape[0]}), got shape {owner.shape}")
    if owner.dtype.kind not in "iu":
        raise ProbeError(f"text_to_image_index must be integers, got dtype {owner.dtype}")
    if owner.min() < 0 or owner.max() >= sim.shape[1]:
        raise ProbeError(f"text_to_image_index must lie in 0..{sim.shape[1] - 1}, got {owner.min()}..{owner.max()}")
    lonely = np.setdiff1d(np.arange(sim.shape[1]), owner)
    if lonely.size:
        raise ProbeError(f"images {lonely[:10].tolist()} have no caption: image->text recall is undefined for them")
    if isinstance(ks, (int, np.integer)) or not len(ks):
        raise ProbeError(f"ks must be a non-empty sequence of positive integers, got {ks!r}")
    if any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in ks) or len(set(ks)) != len(ks):
        raise ProbeError(f"ks must be distinct positive integers, got {list(ks)}")
    return sim, owner.astype(np.int64), tuple(sorted(int(k) for k in ks))


def retrieval_ranks(similarity, text_to_image_index) -> dict[str, np.ndarray]:
    """1-based rank of the best right answer per query: ``{"image->text": [n_images], "text->image": [n_texts]}``.

    ``similarity[t, i]`` scores text ``t`` against image ``i``; ``text_to_image_index[t]`` is text ``t``'s image.
    A rank is 1 + the number of wrong items scoring at least as high as the best right one.
    """
    sim, owner, _ = _inputs(similarity, text_to_image_index, (1,))
    return _ranks(sim, owner)


def _ranks(sim: np.ndarray, owner: np.ndarray) -> dict[str, np.ndarray]:
    n_texts, n_images = sim.shape
    own = sim[np.arange(n_texts), owner]
    text_rank = np.empty(n_texts, dtype=np.int64)
    step = max(1, CHUNK_CELLS // n_images)
    for a in range(0, n_texts, step):  # wrong images at least as high as the text's own (minus itself)
        text_rank[a:a + step] = (sim[a:a + step] >= own[a:a + step, None]).sum(axis=1)
    best = np.full(n_images, -np.inf)
    np.maximum.at(best, owner, own)
    ties = np.zeros(n_images, dtype=np.int64)
    np.add.at(ties, owner, own == best[owner])  # right captions at the best score: not counted against it
    image_rank = np.empty(n_images, dtype=np.int64)
    step = max(1, CHUNK_CELLS // n_texts)
    for a in range(0, n_images, step):
        image_rank[a:a + step] = (sim[:, a:a + step] >= best[None, a:a + step]).sum(axis=0)
    return {"image->text": image_rank - ties + 1, "text->image": text_rank}


def recall_at_k(similarity, text_to_image_index, ks: Sequence[int] = (1, 5, 10)) -> pd.DataFrame:
    """Per-query hits of image->text and text->image retrieval: one row per (direction, query, k) with the
    query's ``rank`` and ``hit`` (rank <= k), ready for :func:`recall_table` (see :func:`retrieval_ranks`)."""
    sim, owner, ks = _inputs(similarity, text_to_image_index, ks)
    frames = []
    for direction, rank in _ranks(sim, owner).items():
        for k in ks:
            frames.append(pd.DataFrame({"direction": direction, "query": np.arange(len(rank)), "rank": rank,
                                        "k": k, "hit": rank <= k}))
    return pd.concat(frames, ignore_index=True)[HIT_COLUMNS]


def recall_table(hits: pd.DataFrame, by: Sequence[str] = (), n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Recall per direction and k (and any ``by`` columns, e.g. model) with n and a bootstrap 95 % interval."""
    missing = [c for c in [*by, "direction", "k", "hit"] if c not in hits.columns]
    if missing:
        raise ProbeError(f"hits lack the columns {missing} (make them with recall_at_k)")
    if hits.empty:
        raise ProbeError("no hits to tabulate")
    table = rate_table(hits, [*by, "direction", "k"], "hit", n_boot=n_boot, seed=seed).rename(columns={"rate": "recall"})
    return table[[*by, *TABLE_COLUMNS]]
