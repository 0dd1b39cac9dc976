"""Captions of multi-object scenes: templates (the words) and order policies (which object first).

Paper A's captions have the form "a X and a Y and a Z"; its appendix 7.6/7.7 repeats the probes
with longer templates, and the authors' TOR scripts use bare names ("person and bicycle and car").
The *order* of the objects is the experimental factor of the book (the text encoder's first-object
bias), so it is chosen by an explicit, seeded policy and recorded.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

ORDER_POLICIES = ("largest_first", "largest_last", "random", "position")


# COCO class names that are plural-only nouns take a counter instead of a bare article.
PLURAL_ONLY = {"scissors": "a pair of scissors", "skis": "a pair of skis"}


def noun_phrase(name: str) -> str:
    """``"apple"`` -> ``"an apple"`` (article by the first letter); plural-only nouns get "a pair of";
    proper names with their own article ("The Eiffel Tower", in paper A's size lists) keep it."""
    if name in PLURAL_ONLY:
        return PLURAL_ONLY[name]
    if name[:4].lower() == "the ":
        return "the " + name[4:]
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _listing(nps: Sequence[str], last_sep: str = " and ") -> str:
    if len(nps) == 1:
        return nps[0]
    return ", ".join(nps[:-1]) + last_sep + nps[-1]


def bare_name(name: str) -> str:
    """The class name as the authors' TOR code writes it: no article, ``_`` read as a space."""
    return name.replace("_", " ")


TEMPLATES: dict[str, Callable[[Sequence[str]], str]] = {
    # paper A, section 2: "a X and a Y and a Z"
    "and": lambda nps: " and ".join(nps),
    # a CLIP-style prompt with a comma list
    "photo": lambda nps: "a photo of " + _listing(nps),
    # a longer sentence, in the spirit of paper A's appendix 7.6/7.7
    "scene": lambda nps: "in this picture we can see " + _listing(nps, ", and also ") + " placed on a plain background",
    # the authors' TOR code: bare names, "person and bicycle and car", single references "person"
    "bare": lambda names: " and ".join(names),
}

# How a template writes one class name before joining; templates not listed take noun phrases.
PHRASES: dict[str, Callable[[str], str]] = {"bare": bare_name}


def caption(class_names: Sequence[str], template: str = "and") -> str:
    """The caption naming ``class_names`` in the given order with ``template``."""
    if template not in TEMPLATES:
        raise ValueError(f"unknown caption template {template!r}; allowed: {sorted(TEMPLATES)}")
    if not class_names:
        raise ValueError("a caption needs at least one object")
    phrase = PHRASES.get(template, noun_phrase)
    return TEMPLATES[template]([phrase(n) for n in class_names])


def caption_order(
    size_rank: Sequence[int], centers: Sequence[tuple[float, float]], policy: str, rng: np.random.Generator
) -> list[int]:
    """Object indices in caption order under ``policy``.

    ``size_rank``: 1 = largest. ``largest_first`` / ``largest_last`` put the largest object at the
    start / end and shuffle the others; ``random`` shuffles all; ``position`` reads the scene like
    text (top to bottom, then left to right, by object centre ``(x, y)``).
    """
    n = len(size_rank)
    if policy not in ORDER_POLICIES:
        raise ValueError(f"unknown order policy {policy!r}; allowed: {list(ORDER_POLICIES)}")
    if policy == "position":
        return sorted(range(n), key=lambda i: (round(centers[i][1], 6), round(centers[i][0], 6)))
    if policy == "random":
        return [int(i) for i in rng.permutation(n)]
    largest = int(np.argmin(size_rank))
    rest = [i for i in range(n) if i != largest]
    rest = [rest[int(j)] for j in rng.permutation(len(rest))]
    return [largest, *rest] if policy == "largest_first" else [*rest, largest]
