"""Captions rewritten by an order policy: the data of the causal test of Claim 2's origin at scale.

Paper A's origin hypothesis (section 4.3): web captions tend to name the largest object first, and training
on them teaches CLIP's text encoder to favour the first-mentioned object. To test it causally, the same
images and captions are trained on with only the order of the object phrases changed
(:data:`ORDER_POLICIES`):

* ``largest_first`` — the largest object's phrase moves to the first slot (the web's habit, made certain);
* ``largest_last`` — it moves to the last slot (the habit reversed);
* ``shuffled`` — the phrases in a random order (no habit left).

A caption's object phrases come from an extractor (default :class:`caption_order.SceneGraphExtractor`), are
matched to the sample's objects by :class:`caption_order.ClassMatcher`, and take their areas from the
shard's segments sidecar (:mod:`datasets.shards`). Only matched phrases move; every other character stays.
Each phrase's span is widened backwards over a partitive "pair of" and one leading determiner or number
("a pair of skis", "two dogs", "an apple"), so articles and counts move with their nouns; a caption that
started with a capital still does.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..datasets.shards import list_shards, read_segments, read_shard, rewrite_captions, shard_stem
from ..datasets.tables import DatasetError, atomic_folder
from .caption_order import PARTITIVES, ClassMatcher, Mention, SceneGraphExtractor, mentions_of
from .claim2_ray import ray_session

ORDER_POLICIES = ("largest_first", "shuffled", "largest_last")
REPORT_FILE = "reorder.json"
#: words that lead a noun phrase and move with it ("a dog", "the two dogs" keeps "two")
LEAD_WORDS = (
    "a", "an", "the", "this", "that", "these", "those", "another", "some", "several", "many", "few", "each",
    "every", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "his", "her",
    "their", "its", "my", "our", "your",
)
_LEAD = re.compile(r"(?<![\w'-])(?:" + "|".join(LEAD_WORDS) + r"|\d+)\s+$", re.IGNORECASE)
#: partitives that name a place on something ("the top of"), not an amount of it: they never move with a noun
PLACE_PARTITIVES = frozenset({"top", "side", "front", "back", "middle", "edge", "bottom", "half", "part", "end"})
_PARTITIVE_OF = re.compile(r"(?<![\w'-])(?:" + "|".join(sorted(PARTITIVES - PLACE_PARTITIVES)) + r")\s+of\s+$",
                           re.IGNORECASE)
_LEAD_START = re.compile(r"(?:" + "|".join(LEAD_WORDS) + r")\b", re.IGNORECASE)


def _check_policy(policy: str) -> None:
    if policy not in ORDER_POLICIES:
        raise ValueError(f"unknown order policy {policy!r}; choose one of {ORDER_POLICIES}")


# -- one caption ----------------------------------------------------------------------------------
def _check_spans(text: str, spans: Sequence[tuple[int, int]], areas: Sequence[float]) -> None:
    if len(spans) != len(areas):
        raise ValueError(f"{len(spans)} spans but {len(areas)} areas: give one area per span")
    prev = 0
    for start, end in spans:
        if not prev <= start < end <= len(text):
            raise ValueError(f"spans {list(spans)} must be [start, end) character ranges of the text ({len(text)} "
                             "characters), in text order and not overlapping")
        prev = end
    if not all(math.isfinite(a) for a in areas):
        raise ValueError(f"areas must be finite numbers, got {list(areas)}")


def _slot_order(areas: Sequence[float], policy: str, rng: np.random.Generator) -> list[int]:
    """Which span goes into each slot; ties in the largest area: the first of them is the largest."""
    if policy == "shuffled":
        return [int(i) for i in rng.permutation(len(areas))]
    big = int(np.argmax(np.asarray(areas, dtype=float)))
    rest = [i for i in range(len(areas)) if i != big]
    return [big, *rest] if policy == "largest_first" else [*rest, big]


def reorder_caption(text: str, spans: Sequence[tuple[int, int]], areas: Sequence[float], policy: str,
                    rng: np.random.Generator) -> str:
    """``text`` with its object phrases permuted in place by ``policy`` (:data:`ORDER_POLICIES`).

    ``spans``: the ``[start, end)`` character range of each object phrase, in text order, not overlapping;
    ``areas``: each one's object area. ``largest_first`` / ``largest_last`` put the largest phrase in the first /
    last slot, the others keep their relative order (ties: the first of them counts as the largest);
    ``shuffled`` draws a permutation from ``rng``. The text between spans is kept; fewer than 2 spans: unchanged.
    """
    _check_policy(policy)
    _check_spans(text, spans, areas)
    if len(spans) < 2:
        return text
    order = _slot_order(areas, policy, rng)
    pieces, prev = [], 0
    for (start, end), src in zip(spans, order):
        pieces += [text[prev:start], text[spans[src][0]:spans[src][1]]]
        prev = end
    return "".join(pieces) + text[prev:]


# -- from mentions to spans -----------------------------------------------------------------------
def _locate(text: str, mention: Mention, pos: int) -> tuple[int, int] | None:
    """The mention's ``[start, end)``: its offsets when known, else its text searched (whole words, any case)
    from ``pos``, the previous phrase's end; None when not found."""
    if mention.start >= 0 and mention.end > mention.start:
        return mention.start, mention.end
    if mention.start >= 0 and text.startswith(mention.text, mention.start):
        return mention.start, mention.start + len(mention.text)
    if not mention.text.strip():
        return None
    hit = re.compile(r"(?<!\w)" + re.escape(mention.text) + r"(?!\w)", re.IGNORECASE).search(text, pos)
    return None if hit is None else hit.span()


def widen(text: str, start: int, floor: int = 0) -> int:
    """The start of a phrase widened backwards (never before ``floor``) over an amount partitive ("pair of", not
    "front of") and then one determiner or number: "a pair of skis", "two dogs", "an apple" move whole."""
    for pattern in (_PARTITIVE_OF, _LEAD):
        hit = pattern.search(text, floor, start)
        if hit is not None:
            start = hit.start()
    return start


@dataclass
class _Counts:
    captions: int = 0
    rewritten: int = 0
    unchanged_fewer_than_2: int = 0
    unmatched_mentions: int = 0
    unknown_mentions: int = 0


def _object_spans(text: str, mentions: Sequence[Mention], matcher: ClassMatcher, areas: dict[str, float],
                  counts: _Counts) -> tuple[list[tuple[int, int]], list[float]]:
    """Spans and areas of the mentions that are objects of the sample, widened; the rest counted and left."""
    spans, out_areas, pos, floor = [], [], 0, 0
    for m in mentions:
        span = _locate(text, m, pos)
        if span is None or span[0] < pos or span[1] > len(text):
            counts.unmatched_mentions += 1
            continue
        area = areas.get(matcher.match(m) or "")
        if area is None or not math.isfinite(area):
            counts.unknown_mentions += 1
        else:
            spans.append((widen(text, span[0], floor), span[1]))
            out_areas.append(area)
        floor = pos = span[1]
    return spans, out_areas


def _reordered(text: str, spans: list[tuple[int, int]], areas: list[float], policy: str,
               rng: np.random.Generator) -> str:
    """:func:`reorder_caption`, keeping a sentence-initial capital at the start: a capitalised first determiner
    ("A dog") is lowered before it moves and the phrase that lands first is capitalised."""
    s0 = spans[0][0]
    initial = not text[:s0].strip() and text[s0].isupper()
    if initial and _LEAD_START.match(text, s0):
        text = text[:s0] + text[s0].lower() + text[s0 + 1:]
    out = reorder_caption(text, spans, areas, policy, rng)
    return out[:s0] + out[s0].upper() + out[s0 + 1:] if initial else out


def _caption_rng(seed: int, stem: str, key: str) -> np.random.Generator:
    """One generator per caption from (seed, shard stem, key): the same draw whatever the order of work."""
    digest = hashlib.sha256(f"{stem}\0{key}".encode("utf-8")).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


# -- shards ---------------------------------------------------------------------------------------
@dataclass
class ReorderReport:
    """What :func:`reorder_shards` did: output shards and caption counts.

    ``rewritten``: captions whose text changed; ``unchanged_fewer_than_2``: captions with fewer than two phrases
    matched to the sample's objects; ``unmatched_mentions``: phrases without offsets not found in their caption;
    ``unknown_mentions``: phrases matching no object (with an area) of the sample. Both kinds stay in place.
    """

    shards: list[Path]
    captions: int
    rewritten: int
    unchanged_fewer_than_2: int
    unmatched_mentions: int
    unknown_mentions: int = 0
    policy: str = ""
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["shards"] = [str(p) for p in self.shards]
        return out

    def to_frame(self) -> pd.DataFrame:
        """The counts as a two-column table for display."""
        keys = ["captions", "rewritten", "unchanged_fewer_than_2", "unmatched_mentions", "unknown_mentions"]
        values = [len(self.shards), *(getattr(self, k) for k in keys)]
        return pd.DataFrame({"measure": ["shards", *keys], "value": values})


def _areas_by_key(segments: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per sample, per class: the largest instance's area (as Claim 2 measures COCO)."""
    best = segments.groupby(["key", "class_name"], sort=False).area_px.max()
    out: dict[str, dict[str, float]] = {}
    for (key, name), area in best.items():
        out.setdefault(key, {})[name] = float(area)
    return out


def _sidecars(shards: list[Path]) -> dict[Path, pd.DataFrame]:
    names = [p.name for p in shards]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DatasetError(f"shards {twice} come from several folders; the output keeps their names, so each name "
                           "may occur once")
    out = {}
    for path in shards:
        seg = read_segments(path)
        if seg is None:
            raise DatasetError(f"shard {path} has no segments sidecar {shard_stem(path)}.segments.parquet: the "
                               "objects' areas are needed to find the largest (export_scene_shards writes it)")
        out[path] = seg
    return out


def _reorder_shard(src: Path, dst: Path, segments: pd.DataFrame, extractor, matcher: ClassMatcher, policy: str,
                   seed: int, counts: _Counts) -> None:
    stem, areas, new = shard_stem(src), _areas_by_key(segments), {}
    for sample in read_shard(src):
        counts.captions += 1
        mentions = mentions_of(extractor, sample.caption)
        spans, span_areas = _object_spans(sample.caption, mentions, matcher, areas.get(sample.key, {}), counts)
        if len(spans) < 2:
            counts.unchanged_fewer_than_2 += 1
            continue
        text = _reordered(sample.caption, spans, span_areas, policy, _caption_rng(seed, stem, sample.key))
        if text != sample.caption:
            new[sample.key] = text
            counts.rewritten += 1
    rewrite_captions(src, dst, new)


def _reorder_task(src: Path, dst: Path, segments: pd.DataFrame, extractor, classes: Sequence[str], policy: str,
                  seed: int) -> dict:
    """One shard rewritten in a Ray worker; its counts. The default extractor is built once per worker process."""
    if extractor is None:
        extractor = _WORKER_EXTRACTOR.get("default") or _WORKER_EXTRACTOR.setdefault("default", SceneGraphExtractor())
    counts = _Counts()
    _reorder_shard(src, dst, segments, extractor, ClassMatcher(list(classes)), policy, seed, counts)
    return asdict(counts)


_WORKER_EXTRACTOR: dict[str, SceneGraphExtractor] = {}  # per process: spaCy loads once, not once per shard


def reorder_shards(source, out_dir, policy: str, extractor=None, classes: Sequence[str] | None = None,
                   seed: int = 0, engine: str = "local", ray_address: str = "", ray_cpus: int = 0) -> ReorderReport:
    """Every shard of ``source`` (:func:`datasets.shards.list_shards`) with its captions reordered by ``policy``,
    written under the same names into the new folder ``out_dir``.

    Phrases come from ``extractor`` (anything with ``mentions(text)`` giving :class:`caption_order.Mention`, or
    ``extract(text)``; default :class:`caption_order.SceneGraphExtractor`), are matched by
    :class:`caption_order.ClassMatcher` over ``classes`` (default: every class name of the shards' sidecars) and
    sized by the sample's sidecar rows (largest instance per class). A shard without a sidecar is an error. The
    shuffle is seeded per caption from (``seed``, shard stem, key). ``out_dir`` appears complete or not at all,
    with :data:`REPORT_FILE` beside the shards. Every argument is checked before any work.

    ``engine``: "local" (one process, shard after shard) or "ray" (one Ray task per shard, on this machine's
    ``ray_cpus`` cores, 0 = all, or the cluster at ``ray_address``, whose workers must see ``out_dir``; a given
    ``extractor`` must be picklable). Both write the same bytes: every draw is per caption.
    """
    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    _check_policy(policy)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if extractor is not None and not (hasattr(extractor, "mentions") or hasattr(extractor, "extract")):
        raise TypeError(f"extractor {type(extractor).__name__} has neither mentions(text) nor extract(text)")
    shards = list_shards(source)
    sidecars = _sidecars(shards)
    if classes is None:
        classes = sorted({c for seg in sidecars.values() for c in seg.class_name})
    matcher = ClassMatcher(list(classes))
    out_dir, counts = Path(out_dir), _Counts()
    with atomic_folder(out_dir) as tmp:
        if engine == "ray":
            for part in _on_ray(shards, tmp, sidecars, extractor, matcher.classes, policy, seed, ray_address, ray_cpus):
                for name, n in part.items():
                    setattr(counts, name, getattr(counts, name) + n)
        else:
            extractor = extractor if extractor is not None else SceneGraphExtractor()
            for src in shards:
                _reorder_shard(src, tmp / src.name, sidecars[src], extractor, matcher, policy, seed, counts)
        report = ReorderReport([out_dir / p.name for p in shards], **asdict(counts), policy=policy, seed=seed,
                               extra={"source": [str(p) for p in shards], "classes": len(matcher.classes),
                                      "extractor": type(extractor).__name__ if extractor is not None
                                      else SceneGraphExtractor.__name__})
        (tmp / REPORT_FILE).write_text(json.dumps(report.to_dict(), indent=1, sort_keys=True) + "\n")
    return report


def _on_ray(shards: list[Path], tmp: Path, sidecars: dict[Path, pd.DataFrame], extractor, classes: Sequence[str],
            policy: str, seed: int, address: str, cpus: int) -> list[dict]:
    """Every shard as a Ray task of one CPU (``claim2_ray.ray_session``: an existing session, a cluster, or a
    quiet local Ray); the counts of each, in shard order."""
    import ray

    with ray_session(address or None, cpus or None):
        task = ray.remote(num_cpus=1, max_retries=0)(_reorder_task)
        return ray.get([task.remote(src, tmp / src.name, sidecars[src], extractor, list(classes), policy, seed)
                        for src in shards])
