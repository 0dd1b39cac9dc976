"""One look for every figure of the book: palettes per concept, page-sized layouts, fonts that stay legible.

The book's content column is about 7.2 inches wide; an inline figure (100 dpi) wider than that is scaled down to
it, fonts included. So every figure is at most :data:`PAGE_WIDTH_IN` wide (at most :data:`MAX_COLUMNS` panels per
row) and its text is at least :data:`FONT_PT` (10 pt, never below :data:`MIN_FONT_PT` once shown). A condition,
a size, a caption position or a model has one colour in every chapter (:func:`color`, :func:`palette`); every
rate is drawn with its table's own 95 % interval (:func:`error_bars`, :func:`bands`) and, where one exists, a
dotted chance line (:func:`chance_line`). Legends go outside the panels (:func:`legend`), never over the data.

Only matplotlib, seaborn and numpy here: the bottom layer of the package.
"""

from __future__ import annotations

import textwrap
import zlib
from collections.abc import Iterable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.colors import to_hex, to_rgb
from matplotlib.text import Text

PAGE_WIDTH_IN = 7.2    #: the book's content column, inches (710 CSS px)
FULL_WIDTH_IN = 7.0    #: a page-wide figure: the column less the 0.1 in the inline backend pads on each side
MIN_FONT_PT = 9        #: the smallest font a reader sees
FONT_PT = 10           #: every text of a figure at least this (stays >= MIN_FONT_PT on the page)
TITLE_PT = 11          #: titles and suptitles
MAX_COLUMNS = 3        #: panels per row
PANEL_HEIGHT_IN = 2.4  #: default height of one panel

UNTRAINED = "#8C8C8C"
CHANCE = "#555555"

#: caption-order conditions of the self-trained CLIPs (and their untrained start), the dataset's order
#: policies, the size-prior conditions and the progression chapter's external checkpoints
CONDITIONS = {
    "largest_first": "#0072B2", "shuffled": "#E69F00", "largest_last": "#009E73",
    "untrained": UNTRAINED, "any": UNTRAINED,
    "random": "#CC79A7", "position": "#882255", "external": "#882255",
    "no prior": "#56B4E9", "size prior": "#D55E00",
}
#: paper B's variants (``+ HN``: a shade of the same colour)
CAE_VARIANTS = {
    "pretrained": "#A6A6A6", "CLIP-FT": "#332288",
    "CLIP-CAE (attention)": "#E69F00", "CLIP-CAE (gradcam)": "#009E73",
    "CLIP-CAE (gradient)": "#CC79A7", "CLIP-CAE (perturbation)": "#D55E00",
}
#: object sizes (IOR's size-order labels, attention roles, Claim 1's real-world categories)
SIZES = {
    "large": "#D55E00", "medium": "#E69F00", "small": "#0072B2", "small (mean)": "#0072B2",
    "small 1": "#0072B2", "small 2": "#56B4E9", "small 3": "#7FB8DA", "small 4": "#A9CCE3", "none": UNTRAINED,
}
#: caption / probe positions (TOR's labels; matching's scenarios "first" / "second")
POSITIONS = {
    "first": "#0072B2", "second": "#E69F00", "third": "#009E73", "fourth": "#CC79A7", "fifth": "#56B4E9",
    "none": UNTRAINED,
}
#: number of objects in a scene (sequential)
OBJECT_COUNTS = {1: "#440154", 2: "#3B528B", 3: "#21918C", 4: "#4DAF4A", 5: "#B59A00"}
#: models without a colour of their own (any other name): a stable pick from these, by name
MODELS = ("#1F77B4", "#FF7F0E", "#2CA02C", "#D62728", "#9467BD", "#8C564B", "#E377C2", "#17BECF", "#BCBD22",
          "#393B79", "#637939", "#843C39")
GREYS = (UNTRAINED, "#BDBDBD", "#5F5F5F", "#A3A3A3")

ORDERS = ("largest_first", "shuffled", "largest_last")
_NAMED = {**POSITIONS, **SIZES, **CAE_VARIANTS, **CONDITIONS}


def darker(c, amount: float = 0.35) -> str:
    """``c`` mixed with black."""
    return to_hex(np.asarray(to_rgb(c)) * (1 - amount))


def shade(c, amount: float = 0.4) -> str:
    """A visibly different shade of ``c``: darker for a light colour, lighter for a dark one."""
    rgb = np.asarray(to_rgb(c))
    if rgb @ np.array([0.299, 0.587, 0.114]) > 0.35:
        return darker(c, amount)
    return to_hex(rgb + (1 - rgb) * (amount + 0.1))


def color(label) -> str:
    """The book's colour of a condition, variant, size, position or model name (the same in every figure).

    Rules, in order: a name of a palette above; ``<variant> + HN`` (a shade of the variant's); ``untrained...`` / ``random:...``
    (the untrained grey); ``size prior ...``; a name holding a caption order (``trained:largest_first:0``,
    ``shuffled captions``: that order's colour); ``small k``; ``<model> · <dataset>`` (the model's); else a
    stable pick from :data:`MODELS` by name.
    """
    if isinstance(label, (int, np.integer)) and int(label) in OBJECT_COUNTS:
        return OBJECT_COUNTS[int(label)]
    s = str(label)
    if s in _NAMED:
        return _NAMED[s]
    if s.endswith(" + HN"):
        return shade(color(s.removesuffix(" + HN")))
    if s.startswith(("untrained", "random:")):
        return UNTRAINED
    if s.startswith("size prior"):
        return CONDITIONS["size prior"]
    for order in ORDERS:
        if order in s:
            return CONDITIONS[order]
    if s.startswith("small "):
        return SIZES["small"]
    if " · " in s:
        return color(s.split(" · ")[0])
    return MODELS[zlib.crc32(s.encode()) % len(MODELS)]


def palette(levels: Iterable) -> dict:
    """``{level: colour}`` by :func:`color`, made distinct within one figure (a clash takes the next free colour
    of its family: greys for untrained models, :data:`MODELS` otherwise)."""
    out, used = {}, set()
    for level in dict.fromkeys(levels):
        c = color(level)
        if c in used:
            family = GREYS if c in GREYS else MODELS
            start = family.index(c) if c in family else zlib.crc32(str(level).encode()) % len(family)
            free = [family[(start + k) % len(family)] for k in range(1, len(family) + 1)]
            c = next((f for f in free if f not in used), darker(c, 0.5))
        out[level] = c
        used.add(c)
    return out


# -- style and layout --------------------------------------------------------------------------------------
RC = {"font.size": FONT_PT, "axes.titlesize": TITLE_PT, "axes.labelsize": FONT_PT, "xtick.labelsize": FONT_PT,
      "ytick.labelsize": FONT_PT, "legend.fontsize": FONT_PT, "legend.title_fontsize": FONT_PT,
      "figure.titlesize": TITLE_PT, "axes.titlepad": 4.0}


def style() -> None:
    """The book's theme (seaborn whitegrid) with fonts >= :data:`FONT_PT`; every plot function calls it first."""
    sns.set_theme(context="notebook", style="whitegrid", rc=RC)


def grid_shape(n: int, max_columns: int = MAX_COLUMNS) -> tuple[int, int]:
    """(rows, columns) of ``n`` panels, at most ``max_columns`` per row."""
    cols = max(1, min(int(n), int(max_columns), MAX_COLUMNS))
    return -(-max(1, int(n)) // cols), cols


def facets(n: int, height: float = PANEL_HEIGHT_IN, width: float | None = None, max_columns: int = MAX_COLUMNS,
           sharex: bool | str = False, sharey: bool | str = False, extra_height: float = 0.9, **kw):
    """A constrained-layout figure of ``n`` panels, at most :data:`MAX_COLUMNS` per row and at most
    :data:`FULL_WIDTH_IN` wide (``width`` defaults to 2.4 in per column); ``extra_height`` leaves room for a
    title and a legend below. Returns (figure, list of the ``n`` axes); unused cells are removed."""
    style()
    rows, cols = grid_shape(n, max_columns)
    w = min(FULL_WIDTH_IN, width if width is not None else 2.4 * cols + 0.4)
    fig, axes = plt.subplots(rows, cols, figsize=(w, rows * height + extra_height), squeeze=False,
                             layout="constrained", sharex=sharex, sharey=sharey, **kw)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        fig.delaxes(ax)
    return fig, flat[:n]


def wrap(text: str, width_in: float = PAGE_WIDTH_IN, size: float = TITLE_PT) -> str:
    """``text`` wrapped to lines that fit ``width_in`` inches at ``size`` points (about 0.55 em per character)."""
    per_line = max(10, int(width_in * 72 / (0.55 * size)))
    return "\n".join(textwrap.fill(line, per_line) for line in str(text).splitlines() or [""])


def title(fig, text: str) -> None:
    """The figure's title, wrapped to the figure's width."""
    if text:
        fig.suptitle(wrap(text, fig.get_figwidth(), TITLE_PT), fontsize=TITLE_PT)


def legend(fig, axes: Sequence | None = None, handles=None, labels=None, title_: str | None = None,
           loc: str = "outside lower center"):
    """One legend for the whole figure, outside the panels (below them by default), its columns chosen so it
    fits the figure's width. Without ``handles`` it gathers every labelled artist of ``axes`` (each label once)."""
    if handles is None:
        seen = {}
        for ax in axes if axes is not None else fig.axes:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab and not lab.startswith("_"):
                    seen.setdefault(lab, h)
        labels, handles = list(seen), list(seen.values())
    if not handles:
        return None
    for ax in fig.axes:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    renderer = fig.canvas.get_renderer()
    for ncol in range(min(len(handles), 5), 0, -1):
        leg = fig.legend(handles, labels, loc=loc, ncol=ncol, frameon=False, title=title_, fontsize=FONT_PT,
                         title_fontsize=FONT_PT, columnspacing=1.0, handlelength=1.6)
        if ncol == 1 or leg.get_window_extent(renderer).width / fig.dpi <= fig.get_figwidth() - 0.2:
            return leg
        leg.remove()
    return None


def chance_line(ax, value: float | None, label: str = "chance", vertical: bool = False, color_: str = CHANCE,
                **kw):
    """A dotted line at chance, labelled (``label`` goes to the legend); None draws nothing."""
    if value is None or not np.isfinite(value):
        return None
    draw = ax.axvline if vertical else ax.axhline
    return draw(value, ls=":", lw=1.4, color=color_, label=label, zorder=1.5, **kw)


def yerr(table, rate: str = "rate", low: str = "ci_low", high: str = "ci_high") -> np.ndarray:
    """``[[below], [above]]`` of a rate table's 95 % interval (never negative; NaN as 0)."""
    r = np.asarray(table[rate], dtype=float)
    err = np.vstack([r - np.asarray(table[low], dtype=float), np.asarray(table[high], dtype=float) - r])
    return np.nan_to_num(np.clip(err, 0, None))


def error_bars(ax, x, table, rate: str = "rate", low: str = "ci_low", high: str = "ci_high",
               horizontal: bool = False, color_: str = "black", capsize: float = 2.5, **kw):
    """The table's own 95 % bootstrap intervals (``ci_low`` / ``ci_high``, as :mod:`clipscope_utils.stats`
    makes them) as error bars at positions ``x``; ``horizontal`` for a rate on the x axis."""
    e = yerr(table, rate, low, high)
    values = np.asarray(table[rate], dtype=float)
    if horizontal:
        return ax.errorbar(values, x, xerr=e, fmt="none", ecolor=color_, elinewidth=1.1, capsize=capsize, **kw)
    return ax.errorbar(x, values, yerr=e, fmt="none", ecolor=color_, elinewidth=1.1, capsize=capsize, **kw)


def rate_lines(ax, table, x: str, hue: str, colors: dict, chance: float | None = None) -> None:
    """One line per ``hue`` level of ``table``'s rate over ``x``, its 95 % band, and the dotted chance line."""
    for level, t in table.sort_values(x).groupby(hue, sort=False):
        ax.plot(t[x], t.rate, marker="o", ms=4, color=colors[level], label=level)
    bands(ax, table, x, [hue], colors)
    chance_line(ax, chance, label="chance (1/n)")


def bands(ax, table, x: str, keys: Sequence[str], colors: dict | None = None, alpha: float = 0.18,
          rate: str = "rate"):
    """The 95 % interval of each line (one per ``keys`` group) as a band; ``colors`` maps the first key's level."""
    for key, t in table.sort_values(x).groupby(list(keys), sort=False):
        level = key[0] if isinstance(key, tuple) else key
        c = (colors or {}).get(level, color(level))
        ax.fill_between(t[x], t.ci_low, t.ci_high, alpha=alpha, color=c, lw=0)
    return ax


def ticks(ax, labels: Sequence, axis: str = "x") -> None:
    """Categorical tick labels at 0..k-1, turned 30° when they would crowd the panel."""
    labels = [str(v) for v in labels]
    if axis == "y":
        ax.set_yticks(range(len(labels)), labels)
        return
    ax.set_xticks(range(len(labels)), labels)
    spec = ax.get_subplotspec()
    columns = spec.get_gridspec().ncols if spec is not None else 1
    width_in = (ax.figure.get_figwidth() - 0.6) / columns
    longest = max((max(len(p) for p in v.split("\n")) for v in labels), default=0)
    if len(labels) * (longest + 1) * 0.5 * FONT_PT / 72 > width_in:
        ax.tick_params(axis="x", labelrotation=30)
        for t in ax.get_xticklabels():
            t.set_ha("right")
            t.set_rotation_mode("anchor")


def finish(fig, min_size: float = FONT_PT):
    """Every text of ``fig`` at least ``min_size`` points (a safety net after seaborn); returns ``fig``."""
    for ax in fig.axes:
        ax.tick_params(labelsize=max(min_size, FONT_PT))
    for t in fig.findobj(Text):
        if t.get_fontsize() < min_size:
            t.set_fontsize(min_size)
    return fig
