"""Paper B's perturbation vocabularies (appendix I): Visual Genome's objects, attributes and relations.

Paper B replaces a caption's object, attribute or relation words by other words of the same role, drawn from
Visual Genome's 150 objects and 200 attributes "as is", and from its relations after removing "insignificant
prepositions, such as of, for and with" and relations redundant with another ("on" and "above"), keeping 36.

Read from ``VG-SGG-dicts-with-attri.json``, the label file of the common scene-graph split (Xu et al. 2017,
attributes added by KaihuaTang/Scene-Graph-Benchmark.pytorch, ``datasets/vg/``): a JSON object whose
``idx_to_label`` (150 objects), ``idx_to_predicate`` (50 relations) and ``idx_to_attribute`` (200 attributes)
map 1-based index strings to words (``{"1": "airplane", ...}``; 0 is the background, never listed), beside
``label_to_idx`` etc. and counts. Checked against that repository's copy of the file and its readers
(``maskrcnn_benchmark/data/datasets/visual_genome.py`` ``load_info``; ``generate_attribute_labels.py``, which
writes ``idx_to_attribute`` as ``str(i + 1)``). Lists keep index order.

**The relation list is our reading.** Paper B does not publish its 36 relations. We drop the function words
:data:`INSIGNIFICANT_RELATIONS` (its "of", "for", "with" and the like) and each relation of
:data:`MERGED_RELATIONS` whose near-synonym is kept (its "above" ~ "on"); on the 50 predicates of the file
this leaves 36, the paper's count, but not necessarily its words. Both lists are parameters.

A plain JSON ``{"object": [...], "attribute": [...], "relation": [...]}`` is read as given (your own lists:
nothing is dropped). :func:`to_vg_dicts` writes a stand-in in the scene-graph layout.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

from ..paths import atomic_write
from .tables import DatasetError, read_json

ROLES = ("object", "attribute", "relation")
#: the scene-graph file's index table per role
SGG_KEYS = {"object": "idx_to_label", "attribute": "idx_to_attribute", "relation": "idx_to_predicate"}
#: its word -> index tables, written by :func:`to_vg_dicts` beside the index tables (what other readers use)
SGG_INVERSE = {"object": "label_to_idx", "attribute": "attribute_to_idx", "relation": "predicate_to_idx"}
#: relations without a meaning of their own (paper B: "of", "for", "with"); our reading
INSIGNIFICANT_RELATIONS = ("and", "at", "for", "from", "of", "to", "with")
#: relation -> the near-synonym kept instead (paper B: "on" and "above"); dropped only when that one is present
MERGED_RELATIONS = {
    "above": "on", "over": "on", "on back of": "on",
    "wears": "wearing", "laying on": "lying on", "mounted on": "attached to", "belonging to": "part of",
}


def filter_relations(relations: Sequence[str], drop: Sequence[str] = INSIGNIFICANT_RELATIONS,
                     merge: Mapping[str, str] = MERGED_RELATIONS) -> list[str]:
    """``relations`` without the ``drop`` words and without each ``merge`` key whose value is kept (order kept)."""
    drop = {d.casefold() for d in drop}
    kept = [r for r in relations if r.casefold() not in drop]
    present = {r.casefold() for r in kept}
    merge = {k.casefold(): v.casefold() for k, v in merge.items()}
    return [r for r in kept if merge.get(r.casefold()) not in present]


def _words(values, where: str) -> list[str]:
    if not isinstance(values, list) or not values:
        raise DatasetError(f"{where} must be a non-empty list of words")
    bad = [v for v in values if not isinstance(v, str) or not v.strip()]
    if bad:
        raise DatasetError(f"{where} holds non-words, e.g. {bad[0]!r}")
    words = [v.strip() for v in values]
    dupes = sorted({w for w in words if words.count(w) > 1})
    if dupes:
        raise DatasetError(f"{where} repeats {dupes[:5]}")
    return words


def _indexed(table, where: str) -> list[str]:
    """The words of an ``idx_to_*`` table in index order; indices must be 1..N."""
    if not isinstance(table, dict) or not table:
        raise DatasetError(f"{where} must be a non-empty object of index -> word")
    bad = [k for k in table if not (isinstance(k, str) and k.isascii() and k.isdigit())]
    if bad:
        raise DatasetError(f"{where} has a key that is not an integer index: {bad[0]!r}")
    order = sorted(table, key=int)
    if [int(k) for k in order] != list(range(1, len(order) + 1)):
        raise DatasetError(f"{where}: indices must be 1..{len(order)} (0 is the background), got {order[:3]}...")
    return _words([table[k] for k in order], where)


def load_vocabularies(path: str | Path, drop: Sequence[str] = INSIGNIFICANT_RELATIONS,
                      merge: Mapping[str, str] = MERGED_RELATIONS) -> dict[str, list[str]]:
    """``{"object", "attribute", "relation"}`` word lists from ``VG-SGG-dicts-with-attri.json`` (relations
    filtered by :func:`filter_relations` with ``drop`` and ``merge``) or from a plain ``{"object": [...], ...}``
    file (read as given). Everything is checked before a list is returned; errors name the file and key."""
    path = Path(path)
    data = read_json(path, "vocabulary file", " (VG-SGG-dicts-with-attri.json of the scene-graph split, or a JSON "
                     "{\"object\": [...], \"attribute\": [...], \"relation\": [...]})")
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object")
    if SGG_KEYS["object"] in data:
        missing = [k for k in SGG_KEYS.values() if k not in data]
        if missing:
            raise DatasetError(f"{path} lacks {missing}: a scene-graph label file without attributes? use "
                               "VG-SGG-dicts-with-attri.json (it adds idx_to_attribute)")
        vocab = {role: _indexed(data[key], f"{path}: {key!r}") for role, key in SGG_KEYS.items()}
        vocab["relation"] = filter_relations(vocab["relation"], drop, merge)
        if not vocab["relation"]:
            raise DatasetError(f"{path}: no relation is left after dropping {list(drop)} and merging {dict(merge)}")
        return vocab
    missing = [r for r in ROLES if r not in data]
    if missing:
        raise DatasetError(f"{path} lacks {missing}: expected VG-SGG-dicts-with-attri.json (keys "
                           f"{sorted(SGG_KEYS.values())}) or a JSON object with the keys {list(ROLES)}")
    return {role: _words(data[role], f"{path}: {role!r}") for role in ROLES}


def to_vg_dicts(vocab: Mapping[str, Sequence[str]], path: str | Path) -> Path:
    """Write ``vocab`` (word lists per role, unfiltered) as a stand-in ``VG-SGG-dicts-with-attri.json``: 1-based
    ``idx_to_*`` and ``*_to_idx`` tables (written atomically); :func:`load_vocabularies` reads it back."""
    if not isinstance(vocab, Mapping) or set(vocab) != set(ROLES):
        got = sorted(vocab) if isinstance(vocab, Mapping) else repr(vocab)
        raise DatasetError(f"vocab must map exactly {list(ROLES)} to word lists, got {got}")
    data: dict[str, dict] = {}
    for role in ROLES:
        words = _words(list(vocab[role]), f"vocab[{role!r}]")
        data[SGG_KEYS[role]] = {str(i + 1): w for i, w in enumerate(words)}
        data[SGG_INVERSE[role]] = {w: i + 1 for i, w in enumerate(words)}
    payload = (json.dumps(data, indent=1) + "\n").encode("utf-8")
    atomic_write(Path(path), lambda f: f.write(payload))
    return Path(path)
