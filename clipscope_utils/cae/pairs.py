"""Where CAE's training pairs come from: the book's generated compositional scenes, or COCO captions.

Either way the fine-tuning loop gets the same :class:`TrainingPairs`: image paths, captions, their role spans
(objects, attributes, relations), NegCLIP-style hard negatives per kind and the candidate concepts per role
(paper B appendix I). Generated captions carry their roles by construction; COCO captions are tagged by the
scene-graph parser paper B uses (:class:`~clipscope_utils.cae.roles.SceneGraphRoles`), cached on disk by the
captions' content and the parser's model.

Hard negatives of COCO captions are made from the parsed spans: ``relation_swap`` exchanges the first two
object spans (NegCLIP swaps nouns), ``attribute_swap`` the first two attribute spans, ``relation_replace``
replaces the first relation span by another relation seen in the data. A caption that offers no such edit
gets, for that kind, the caption of another image (an ordinary negative), so every sample has one.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..compositional.scenes import concept_candidates, generate_compositions
from ..datasets.coco import DatasetError, coco_files, read_annotations
from ..paths import atomic_write, cache_dir, cached_folder
from . import CAEError
from .roles import SceneGraphRoles

PARSE_VERSION = 1  # bump when the parsed-role cache format or mapping changes
KIND_STREAMS = {"relation_swap": 0, "relation_replace": 1, "attribute_swap": 2}  # one seeded stream per kind
CANDIDATES_PER_ROLE = 200  # the most frequent concepts per role (paper B: 150 objects, 200 attributes, 36 relations)


@dataclass
class TrainingPairs:
    paths: list[Path]
    texts: list[str]
    spans: list[tuple[tuple[int, int, str], ...]]
    negatives: dict[str, list[str]]  # kind -> one hard-negative caption per pair
    candidates: dict[str, list[str]]  # role -> concepts for perturbation


def generated_pairs(spec, kinds, progress: bool = False) -> TrainingPairs:
    """The generated compositional scenes of ``spec`` (roles and negatives by construction)."""
    comp = generate_compositions(spec, progress=progress)
    return TrainingPairs(list(comp.paths), list(comp.captions), [tuple(map(tuple, s)) for s in comp.spans],
                         {k: comp.hard_negatives(k) for k in kinds}, concept_candidates(spec))


def _swap(text: str, spans, role: str) -> str | None:
    sel = [s for s in spans if s[2] == role]
    if len(sel) < 2:
        return None
    (a0, a1, _), (b0, b1, _) = sel[0], sel[1]
    swapped = text[:a0] + text[b0:b1] + text[a1:b0] + text[a0:a1] + text[b1:]
    return swapped if swapped.lower() != text.lower() else None


def _replace(text: str, spans, role: str, candidates: list[str], rng: np.random.Generator) -> str | None:
    sel = [s for s in spans if s[2] == role]
    if not sel:
        return None
    start, end, _ = sel[0]
    options = [c for c in candidates if c.lower() != text[start:end].lower()]
    if not options:
        return None
    return text[:start] + options[int(rng.integers(len(options)))] + text[end:]


def negatives_from_spans(texts, spans, kinds, candidates, seed: int = 0) -> dict[str, list[str]]:
    """One hard negative per caption and kind, edited from its role spans (see the module docstring)."""
    out = {}
    for kind in kinds:
        rows = []
        for i, (text, sp) in enumerate(zip(texts, spans)):
            rng = np.random.default_rng([seed, i, KIND_STREAMS[kind]])
            if kind == "relation_swap":
                neg = _swap(text, sp, "object")
            elif kind == "attribute_swap":
                neg = _swap(text, sp, "attribute")
            else:
                neg = _replace(text, sp, "relation", candidates.get("relation", []), rng)
            if neg is None:  # no edit possible: another image's caption
                j = int(rng.integers(len(texts) - 1)) if len(texts) > 1 else 0
                neg = texts[j + (j >= i)] if len(texts) > 1 else text
            rows.append(neg)
        out[kind] = rows
    return out


def _candidates(texts, spans) -> dict[str, list[str]]:
    counts = {role: Counter() for role in ("object", "attribute", "relation")}
    for text, sp in zip(texts, spans):
        for start, end, role in sp:
            counts[role][text[start:end].lower()] += 1
    return {role: [w for w, _ in c.most_common(CANDIDATES_PER_ROLE)] for role, c in counts.items()}


def parsed_roles(texts: list[str], parser=None, progress: bool = False) -> list[tuple]:
    """Role spans of real captions from the scene-graph parser, cached by the captions and the parser model."""
    parser = parser or SceneGraphRoles()
    digest = hashlib.sha256(json.dumps([texts, getattr(parser, "model", ""), PARSE_VERSION]).encode()).hexdigest()
    name = f"{digest[:24]}.json"

    def parse(folder: Path) -> None:
        spans = []
        for start in tqdm(range(0, len(texts), 512), disable=not progress, desc="parsing captions"):
            spans += [tuple(rc.spans) for rc in parser(texts[start:start + 512])]
        atomic_write(folder / name, lambda f: f.write(json.dumps([list(map(list, s)) for s in spans]).encode()))

    return cached_folder(cache_dir() / "roles", name,
                         lambda folder: [tuple(map(tuple, s)) for s in json.loads((folder / name).read_text())], parse)


def coco_pairs(root: str | Path, split: str = "train2017", images: int = 0, kinds=(), seed: int = 0,
               parser=None, progress: bool = False) -> TrainingPairs:
    """COCO image-caption pairs (one seeded caption per image, the first ``images`` images by id, 0 = all),
    tagged by the scene-graph parser."""
    try:
        files = coco_files(root, split)
        caps = read_annotations(files.captions, "captions")
    except DatasetError as e:
        raise CAEError(f"COCO fine-tuning data: {e}") from None
    names = {im["id"]: im["file_name"] for im in caps.get("images", [])}
    if not names:
        inst = read_annotations(files.instances, "instances")
        names = {im["id"]: im["file_name"] for im in inst["images"]}
    by_image: dict[int, list[str]] = {}
    for a in caps["annotations"]:
        by_image.setdefault(a["image_id"], []).append(" ".join(str(a["caption"]).split()))
    ids = sorted(i for i in by_image if i in names)
    if images:
        ids = ids[:images]
    missing = [names[i] for i in ids if not (files.images / names[i]).is_file()]
    if missing:
        raise CAEError(f"{len(missing)} COCO images are missing from {files.images}, e.g. {missing[:3]}")
    if len(ids) < 2:
        raise CAEError(f"COCO split {split!r} under {root} has {len(ids)} captioned images; need at least 2")
    texts = [by_image[i][int(np.random.default_rng([seed, i]).integers(len(by_image[i])))] for i in ids]
    spans = parsed_roles(texts, parser, progress)
    candidates = _candidates(texts, spans)
    return TrainingPairs([files.images / names[i] for i in ids], texts, spans,
                         negatives_from_spans(texts, spans, kinds, candidates, seed), candidates)
