"""Tables and figures of the probe chapters: rates with n and 95 % intervals, paper beside them.

Every figure is rebuilt from the per-query frames on each run (cheap); only embeddings are cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .. import figures, paper
from ..stats import bootstrap_ci, rate_table
from . import ProbeError, retrieval


def retrieval_table(frame: pd.DataFrame, by: Sequence[str] = ("model", "paper_model"),
                    measure: str | None = None, labels: Callable[[int], str] | None = None,
                    n_boot: int = 1000, seed: int = 0, *, conditional: bool | None = None) -> pd.DataFrame:
    """:func:`retrieval.position_accuracy` under one ``measure`` per model (and any extra grouping columns)."""
    parts = []
    for key, group in frame.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        acc = retrieval.position_accuracy(group, measure, n_boot=n_boot, seed=seed, labels=labels,
                                          conditional=conditional)
        parts.append(acc.assign(**dict(zip(by, key))))
    out = pd.concat(parts, ignore_index=True)
    return out[[*by, *[c for c in out.columns if c not in by]]]


@dataclass
class MeasureTables:
    """One retrieval probe under each measure: ``own`` (which of the query's own objects is nearest; no "none"),
    ``top1`` over all classes with its "none" row, and ``conditional`` (only queries whose top-n classes are
    their n objects; positions only, its "none" is 0 by definition). Each row carries n, a 95 % interval and its
    ``measure``; paper A's number stands beside the measure it was computed with (``paper_measure``) only."""

    own: pd.DataFrame
    top1: pd.DataFrame
    conditional: pd.DataFrame
    paper_measure: str | None = None

    def all(self) -> pd.DataFrame:
        """The three tables stacked, told apart by ``measure``."""
        return pd.concat([self.own, self.top1, self.conditional], ignore_index=True)

    def of(self, measure: str) -> pd.DataFrame:
        return {"own": self.own, "top1": self.top1, "conditional": self.conditional}[measure]

    @property
    def paper(self) -> pd.DataFrame:
        """The table of the paper's measure (``own`` when the paper has no number for this probe)."""
        return self.of(self.paper_measure or "own")


def measure_tables(frame: pd.DataFrame, labels: Callable[[int], str] | None = None, task: str | None = None,
                   table_no: int | None = None, dataset: str = "ComCO", by: Sequence[str] = ("model", "paper_model"),
                   n_boot: int = 1000, seed: int = 0) -> MeasureTables:
    """:func:`retrieval_table` under every measure; with ``task`` the paper's number goes beside the measure its
    table was computed with (:func:`paper.paper_measure`), and nowhere else."""
    tables = dict(zip(retrieval.MEASURES, (retrieval_table(frame, by, m, labels, n_boot, seed)
                                           for m in retrieval.MEASURES)))
    cond = tables["conditional"]
    tables["conditional"] = cond[cond.position > 0].reset_index(drop=True)
    measure = paper.paper_measure(task, dataset) if task is not None else None
    if measure is not None:
        tables[measure] = with_paper(tables[measure], task, table_no=table_no, dataset=dataset)
    return MeasureTables(**tables, paper_measure=measure)


def hit_table(frame: pd.DataFrame, by: Sequence[str], n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Mean of ``hit`` per group with n and a bootstrap 95 % interval (probe and matching frames)."""
    return rate_table(frame, list(by), "hit", n_boot=n_boot, seed=seed)


def with_paper(table: pd.DataFrame, task: str, on: str = "position", table_no: int | None = None,
               dataset: str = "ComCO") -> pd.DataFrame:
    """``table`` plus the paper's number (``paper``) where paper A reports the same model, cell and measure.

    Each table's numbers are of one measure (:data:`paper.PAPER_MEASURES`: conditional for TOR and ComCO IOR,
    own for COCO IOR/I2TOR, the authors' pairs for matching): rows of any other measure get NaN, and a table
    with no row of the paper's measure raises, so a number never stands beside a rate computed differently.
    """
    try:
        return paper.beside(table, task, on=on, dataset=dataset, table=table_no)
    except ValueError as e:  # the paper helper sits below probes; say it in the probes' own error
        raise ProbeError(f"with_paper({task!r}): {e}") from None


def fmt(rate: float, lo: float, hi: float) -> str:
    """``0.53 [0.47, 0.60]``; ``–`` when there is nothing to rate."""
    if np.isnan(rate):
        return "–"
    return f"{rate:.2f} [{lo:.2f}, {hi:.2f}]"


def wide(table: pd.DataFrame, index: Sequence[str], column: str, with_n: bool = True,
         paper_column: str | None = "paper") -> pd.DataFrame:
    """A reader's view: one row per ``index``, one column per ``column`` value, cells 'rate [CI]'.

    ``n`` (the denominator) is shown per row when it is the same for every cell, per cell otherwise;
    the paper's number follows in parentheses where it exists.
    """
    t = table.copy()
    cell = [fmt(r, lo, hi) for r, lo, hi in zip(t.rate, t.ci_low, t.ci_high)]
    if paper_column and paper_column in t:
        cell = [c + (f" (paper {p:.2f})" if not np.isnan(p) else "") for c, p in zip(cell, t[paper_column])]
    t["cell"] = cell
    same_n = t.groupby(list(index)).n.nunique().max() <= 1 if len(t) else True
    if with_n and not same_n:
        t["cell"] = [f"{c} n={n}" for c, n in zip(t.cell, t.n)]
    out = t.pivot_table(index=list(index), columns=column, values="cell", aggfunc="first", sort=False)
    if "position" in t:  # positions in reading order, the "none" share (position 0) last
        rank = t.groupby(column).position.min()
        out = out[sorted(out.columns, key=lambda c: (rank[c] == 0, rank[c]))]
    out = out.fillna("")
    out.columns.name = None
    if with_n and same_n:
        out.insert(0, "n", t.groupby(list(index), sort=False).n.first())
    return out


def rate_bars(table: pd.DataFrame, x: str, hue: str, col: str | None = None, title: str = "",
              chance: float | str | None = "auto", col_wrap: int = figures.MAX_COLUMNS,
              height: float = figures.PANEL_HEIGHT_IN, ylabel: str = "share of queries"):
    """Bars of ``rate`` with the table's own 95 % intervals, one panel per ``col`` (at most three a row, the
    page's width), colours by :func:`clipscope_utils.figures.color` and a dotted chance line.

    ``chance``: a number; ``"auto"`` (the default) = the table's ``chance`` column if it has one, else 1/n per
    panel when the panels are object counts of a position table (no preference among the n objects); None
    draws none. Returns the figure."""
    t = table[table.rate.notna()].copy()
    t[x] = t[x].astype(str)
    panels = list(dict.fromkeys(t[col])) if col else [None]
    colours = figures.palette(t[hue])
    levels = list(colours)
    bars = max(len(set(t[t[col] == p][x])) if col else t[x].nunique() for p in panels) * len(levels)
    columns = figures.grid_shape(len(panels), col_wrap)[1]
    fig, axes = figures.facets(len(panels), height=height, max_columns=col_wrap, sharey=True,
                               width=columns * min(figures.FULL_WIDTH_IN, max(2.3 if columns > 1 else 3.6, 0.2 * bars + 0.8))
                               + 0.4)
    for panel, ax in zip(panels, axes):
        sub = t if panel is None else t[t[col] == panel]
        xs = list(dict.fromkeys(sub[x]))
        width = 0.8 / max(1, len(levels))
        for k, level in enumerate(levels):
            rows = sub[sub[hue] == level].drop_duplicates(x).set_index(x).reindex(xs).dropna(subset=["rate"])
            if rows.empty:
                continue
            pos = np.array([xs.index(v) for v in rows.index]) + (k - (len(levels) - 1) / 2) * width
            ax.bar(pos, rows.rate, width, color=colours[level], label=str(level))
            figures.error_bars(ax, pos, rows)
        figures.chance_line(ax, _chance(sub, chance, col, panel),
                            label="chance (1/n)" if chance == "auto" and col == "n_objects" else "chance")
        figures.ticks(ax, xs)
        ax.set_ylim(0, 1)
        ax.set_xlabel("objects" if x == "n_objects" else "")
        if panel is not None:
            ax.set_title(f"{panel} objects" if col == "n_objects" else
                         figures.wrap(panel, fig.get_figwidth() / columns, figures.FONT_PT), fontsize=figures.FONT_PT)
    axes[0].set_ylabel(ylabel)
    figures.title(fig, title)
    figures.legend(fig, axes, title_=hue)
    return figures.finish(fig)


def _chance(sub: pd.DataFrame, chance, col: str | None, panel) -> float | None:
    if chance != "auto":
        return chance
    if "chance" in sub and sub.chance.notna().any():
        return float(sub.chance.mean())
    if col == "n_objects" and "position" in sub and panel is not None:
        return 1 / float(panel)
    return None


def close(g) -> None:
    plt.show()
    plt.close("all")


def preferred_position(t: pd.DataFrame) -> str:
    """The label of the first or last position when its interval lies wholly above every other position's
    (one model and object count, positions >= 1), else ''."""
    t = t[t.position > 0]
    first, rest = t[t.position == 1], t[t.position > 1]
    if first.empty or rest.empty or np.isnan(first.rate.iloc[0]):
        return ""
    if first.ci_low.iloc[0] > rest.ci_high.max():
        return str(first.label.iloc[0]) if "label" in t else "position 1"
    last = rest[rest.position == rest.position.max()].iloc[0]
    if last.ci_low > t[t.position < last.position].ci_high.max():
        return str(last.label) if "label" in t else f"position {int(last.position)}"
    return ""


def position_bias_summary(table: pd.DataFrame, probe: str) -> str:
    """One sentence per model and object count: is position 1 retrieved more than any other position?

    'Preferred' needs that position's interval to lie wholly above every other position's;
    otherwise the sentence says no preference was detected at this sample size.
    """
    lines = []
    for (model, n), t in table[table.position > 0].groupby(["model", "n_objects"], sort=False):
        first = t[t.position == 1].iloc[0]
        rest = t[t.position > 1]
        if rest.empty or np.isnan(first.rate):
            continue
        best = rest.loc[rest.rate.idxmax()]
        preferred = preferred_position(t)
        verdict = f"**{preferred} preferred**" if preferred else "no single dominant position detected"
        lines.append(f"- `{model}`, {n} objects: {first.label} {fmt(first.rate, first.ci_low, first.ci_high)} vs best other "
                     f"({best.label}) {fmt(best.rate, best.ci_low, best.ci_high)}, n = {int(first.n)}: {verdict}.")
    return f"**{probe}, measured here:**\n\n" + "\n".join(lines)


def paired_difference(frame: pd.DataFrame, column: str, a: str, b: str, n_boot: int = 1000,
                      seed: int = 0) -> pd.DataFrame:
    """Per model: mean paired difference of ``hit`` between groups ``a`` and ``b`` of ``column`` (same
    ``query_id``) with its bootstrap 95 % interval and the number of pairs."""
    rows = []
    for model, t in frame.groupby("model", sort=False):
        wide_ = t.pivot_table(index="query_id", columns=column, values="hit", aggfunc="first")
        wide_ = wide_.reindex(columns=[a, b]).dropna()
        d = (wide_[a] - wide_[b]).to_numpy(dtype=float)
        lo, hi = bootstrap_ci(d, n_boot=n_boot, seed=seed)
        rows.append({"model": model, "n": len(d), "rate": float(d.mean()) if len(d) else float("nan"),
                     "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=["model", "n", "rate", "ci_low", "ci_high"])


def paired_difference_summary(frame: pd.DataFrame, column: str, a: str, b: str, n_boot: int = 1000,
                              seed: int = 0) -> str:
    """Mean paired difference of ``hit`` between groups ``a`` and ``b`` (same ``query_id``), per model."""
    lines = []
    for r in paired_difference(frame, column, a, b, n_boot, seed).itertuples():
        if not r.n:
            lines.append(f"- `{r.model}`: no pairs to compare.")
            continue
        verdict = (f"{a} higher" if r.ci_low > 0 else f"{b} higher" if r.ci_high < 0 else "no difference detected")
        lines.append(f"- `{r.model}`: {a} − {b} = {r.rate:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}] over {r.n} pairs: "
                     f"{verdict}.")
    return "**Paired difference, measured here:**\n\n" + "\n".join(lines)


def change(before, after) -> str:
    """'**rose**' / '**fell**' when the two 95 % intervals (rows with ``ci_low``, ``ci_high``) do not overlap."""
    return ("**rose**" if after.ci_low > before.ci_high else "**fell**" if after.ci_high < before.ci_low
            else "no change detected")


def trend_summary(table: pd.DataFrame, by: Sequence[str] = ("probe", "n_objects", "order"),
                  x: str = "samples") -> str:
    """Per group: the rate at the first and the last ``x`` and whether it rose, fell or did not detectably change.

    'Rose' / 'fell' need the two 95 % intervals not to overlap; the peak is named when it lies in between,
    so a bias that appears and fades again is reported as such.
    """
    lines = []
    for key, t in table.sort_values(x).groupby(list(by), sort=False):
        first, last = t.iloc[0], t.iloc[-1]
        peak = t.loc[t.rate.idxmax()]
        verdict = change(first, last)
        faded = (peak[x] not in (first[x], last[x]) and peak.ci_low > last.ci_high)
        tail = f"; it peaked at {peak.rate:.2f} ({x} = {peak[x]}) and **faded** after" if faded else ""
        label = ", ".join(f"{b} {k}" for b, k in zip(by, key if isinstance(key, tuple) else (key,)))
        lines.append(f"- {label}: {fmt(first.rate, first.ci_low, first.ci_high)} at {x} = {first[x]} → "
                     f"{fmt(last.rate, last.ci_low, last.ci_high)} at {last[x]}: {verdict}{tail}.")
    return "**Measured here:**\n\n" + "\n".join(lines)
