"""The introduction's *findings at a glance*: gathered from the executed chapters, never typed by hand.

Each chapter's findings box stores its :class:`~clipscope_utils.claims.Finding` rows in the output's metadata
(``claims.show``). Before the HTML is built the runner reads them from ``book/executed/*.ipynb`` and writes
``book/executed/findings.md``, which ``book/intro.md`` includes: one row per claim of both papers, with the
headline (``primary``) measurement, or the reason no chapter measured it.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from ..claims import CLAIMS, METADATA_KEY, Finding, fmt_value, from_metadata
from ..paths import atomic_write

FINDINGS_MD = Path("book") / "executed" / "findings.md"
STAND_IN_PROFILES = ("rehearsal",)


def collect(executed: Path, names: list[str]) -> tuple[dict[str, list[Finding]], dict[str, str]]:
    """Findings per chapter and each executed chapter's profile (chapters without an executed copy are absent)."""
    found: dict[str, list[Finding]] = {}
    profiles: dict[str, str] = {}
    for name in names:
        path = executed / f"{name}.ipynb"
        if not path.is_file():
            continue
        nb = nbformat.read(path, as_version=4)
        profiles[name] = str(nb.metadata.get("clipscope", {}).get("profile", "?"))
        rows: list[Finding] = []
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                rows += from_metadata(out.get("metadata", {}).get(METADATA_KEY, []))
        found[name] = rows
    return found, profiles


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(found: dict[str, list[Finding]], profiles: dict[str, str]) -> str:
    """The table: every claim, its headline finding(s), or why it was not measured."""
    by_claim: dict[str, list[Finding]] = {}
    for rows in found.values():
        for f in rows:
            if f.primary:
                by_claim.setdefault(f.claim, []).append(f)
    lines = ["| claim | paper's value | this book, same measure [95 % CI] | n | model · data | verdict |",
             "|---|---|---|---|---|---|"]
    notes: list[str] = []
    for c in CLAIMS:
        claim = f"**{c.id}** ({c.paper} {c.where}): {_cell(c.claim)}"
        rows = by_claim.get(c.id)
        if rows:
            for f in rows:
                mark = ""
                if f.note:
                    notes.append(f"{c.id}: {f.note}")
                    mark = f" [{len(notes)}]"
                who = " · ".join(x for x in (f.model, f.data) if x)
                lines.append(f"| {claim} | {_cell(f.paper_value)} | {fmt_value(f) if f.n else 'no value'}: {_cell(f.measure)}{mark} | "
                             f"{f.n} | {_cell(who)} | **{f.verdict}** |")
        else:
            why = c.absent if (not c.chapter or c.chapter in found) else f"the {c.chapter} chapter is not built yet"
            lines.append(f"| {claim} | – | – | – | – | **not run here**: {_cell(why)} |")
    if notes:
        lines += ["", "Notes: " + " ".join(f"[{i}] {_cell(n)}" for i, n in enumerate(notes, 1))]
    used = sorted(set(profiles.values()))
    head = (f"Generated from the executed chapters of this build (profile{'s' if len(used) > 1 else ''}: "
            f"{', '.join(used) or 'none'}). Each chapter ends with its own findings box, with every model it ran.")
    if set(used) & set(STAND_IN_PROFILES):
        head += (" **This build ran on stand-ins (random weights, generated data): its numbers are meaningless; "
                 "the table shows that every path runs.**")
    return head + "\n\n:::{container} clipscope-findings\n" + "\n".join(lines) + "\n:::\n"


def write(root: Path, names: list[str]) -> Path:
    """Write ``book/executed/findings.md`` from the executed chapters (atomically)."""
    found, profiles = collect(root / "book" / "executed", names)
    path = root / FINDINGS_MD
    path.parent.mkdir(parents=True, exist_ok=True)
    text = markdown(found, profiles)
    atomic_write(path, lambda f: f.write(text.encode()))
    return path
