"""Caption sets for paper A's Claim 1 (section 4.3, Fig. 4a): does a large first object pull harder?

Paper A builds sentences of four objects: a large (or small) real-world object first, then three
medium ones, and compares the TOR accuracy of the first object between the two sets. Here the two
sets are *paired*: with the same seed, sentence i of the "large" set and of the "small" set share the
same fillers in the same positions, so the only difference between them is the first object.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from clipscope_utils.datasets.captions import TEMPLATES, caption
from clipscope_utils.probes import ProbeError


def _pool(categories: Mapping[str, Sequence[str]], key: str) -> list[str]:
    allowed = sorted(k for k in categories if not k.startswith("_"))
    if key.startswith("_") or key not in categories:
        raise ProbeError(f"unknown size category {key!r}; allowed: {allowed}")
    names = categories[key]
    if isinstance(names, str) or not all(isinstance(n, str) and n for n in names):
        raise ProbeError(f"category {key!r} must be a list of non-empty object names")
    return sorted(set(names))  # sorted: the draw depends on the set of names, not on list order


def vocabulary(categories: Mapping[str, Sequence[str]], keys: Sequence[str] = ("small", "medium", "large")) -> list[str]:
    """Sorted unique object names of ``keys``: index them to get class ids for references."""
    return sorted({n for k in keys for n in _pool(categories, k)})


def size_category_sentences(
    categories: Mapping[str, Sequence[str]],
    first: str,
    n_sentences: int,
    n_objects: int = 4,
    filler: str = "medium",
    template: str = "and",
    seed: int = 0,
) -> pd.DataFrame:
    """``n_sentences`` captions: one ``first``-category object, then ``n_objects - 1`` distinct fillers.

    Fillers and first objects come from two independent streams of ``seed``, so changing ``first``
    (e.g. "large" vs "small") changes only the first object: the fillers, their order and positions
    stay the same (a paired design). Names are distinct within a sentence; sentences are drawn
    independently, so with many sentences some may repeat.
    Columns: ``sentence_id``, ``first_category``, ``text``, ``objects`` (tuple, caption order).
    """
    if int(n_sentences) != n_sentences or n_sentences < 1:
        raise ProbeError(f"n_sentences must be a positive integer, got {n_sentences!r}")
    if int(n_objects) != n_objects or n_objects < 2:
        raise ProbeError(f"n_objects must be an integer >= 2 (a first object plus fillers), got {n_objects!r}")
    if template not in TEMPLATES:
        raise ProbeError(f"unknown caption template {template!r}; allowed: {sorted(TEMPLATES)}")
    firsts, fillers = _pool(categories, first), _pool(categories, filler)
    n_fill = int(n_objects) - 1
    if len(fillers) < n_fill:
        raise ProbeError(f"category {filler!r} has {len(fillers)} distinct names; {n_fill} fillers per sentence needed")
    # A first object must stay available whatever fillers are drawn (matters only if the lists overlap).
    if set(firsts) <= set(fillers) and len(firsts) <= n_fill:
        raise ProbeError(f"not enough distinct names: {n_fill} {filler!r} fillers can use up every {first!r} name")

    fill_rng, first_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    rows = []
    for i in range(int(n_sentences)):
        fill = [fillers[j] for j in fill_rng.choice(len(fillers), size=n_fill, replace=False)]
        options = [n for n in firsts if n not in fill]  # only differs from firsts if the categories overlap
        u = first_rng.random()  # one draw per sentence whatever the options, so the streams stay aligned
        objects = (options[int(u * len(options))], *fill)
        rows.append({"sentence_id": i, "first_category": first, "text": caption(objects, template), "objects": objects})
    return pd.DataFrame(rows, columns=["sentence_id", "first_category", "text", "objects"])
