"""Real-world size classes of the object families: paper A's DomainNet size lists matched to the class names.

Paper A (section 4, Fig. 4a, appendix 7.10) groups objects by their size in the world (large = bigger than a
car, small = smaller than a school bag). The self-trained CLIPs' class-size prior (Claim 1, causally) and the
text probes' Claim 1 sentences both read the groups from here, the one place that decides them.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pandas as pd

from ..paths import data_file
from . import families
from .tables import DatasetError

SIZE_FILE = data_file("size_categories.json")
SIZE_GROUPS = ("large", "medium", "small")
# ComCO (COCO) names whose DomainNet name differs; only true synonyms, nothing guessed
# ("boat" could be a canoe or a cruise ship, so it stays unmatched).
DOMAINNET_NAMES = {"motorcycle": "motorbike", "tv": "television", "handbag": "purse"}


def size_categories(path: str | Path = SIZE_FILE) -> dict[str, tuple[str, ...]]:
    """Paper A's DomainNet names per real-world size group (``data/size_categories.json``)."""
    return _categories(str(path))


@lru_cache(maxsize=4)
def _categories(path: str) -> dict[str, tuple[str, ...]]:
    raw = json.loads(Path(path).read_text())
    missing = [g for g in SIZE_GROUPS if g not in raw]
    if missing:
        raise DatasetError(f"{path}: size groups {missing} missing; expected {list(SIZE_GROUPS)}")
    return {g: tuple(raw[g]) for g in SIZE_GROUPS}


def real_world_sizes(family: str = "comco", path: str | Path = SIZE_FILE) -> pd.DataFrame:
    """Real-world size group of every class of ``family``.

    Matched by exact name or a synonym of :data:`DOMAINNET_NAMES`. For ``comco`` (63 classes): 7 large (car,
    airplane, bus, train, truck, elephant, giraffe), 11 medium, 25 small and 20 with no group ("unknown", e.g.
    person, boat, kite). ``simco``'s shapes have no real-world size: every class is "unknown".
    Columns: ``class_id``, ``class_name``, ``domainnet_name``, ``group``.
    """
    if family not in families.FAMILIES:
        raise DatasetError(f"unknown object family {family!r}; allowed: {list(families.FAMILIES)}")
    cats = size_categories(path)
    rows = []
    for i, name in enumerate(families.classes(family)):
        dn = DOMAINNET_NAMES.get(name, name) if family == "comco" else ""
        group = next((g for g in SIZE_GROUPS if dn in cats[g]), "unknown")
        rows.append({"class_id": i, "class_name": name, "domainnet_name": dn if group != "unknown" else "",
                     "group": group})
    return pd.DataFrame(rows)


def prior_classes(family: str = "comco") -> tuple[str, ...]:
    """The classes a size prior draws large: ``family``'s real-world-large classes, in class order.

    Raises DatasetError for a family without any (SimCO's shapes): a prior there would have no meaning.
    """
    t = real_world_sizes(family)
    large = tuple(t.class_name[t.group == "large"])
    if not large:
        raise DatasetError(f"family {family!r} has no real-world-large classes, so no class-size prior")
    return large


def group_table(family: str = "comco") -> pd.DataFrame:
    """Classes per real-world size group (``group``, ``n``, ``classes``): what the prior treats as large."""
    t = real_world_sizes(family)
    out = t.groupby("group", sort=False).class_name.agg(n="size", classes=lambda s: ", ".join(s)).reset_index()
    rank = {g: i for i, g in enumerate((*SIZE_GROUPS, "unknown"))}
    return out.sort_values("group", key=lambda s: s.map(rank)).reset_index(drop=True)
