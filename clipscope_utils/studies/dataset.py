"""The dataset chapter: the generated ComCO/SimCO-like scenes of a profile, shown as a reader sees them
(example grids, an explorer, the classes, sizes and caption order), and the authors' release and COCO
summarised the same way when their folders are given."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import pandas as pd

from .. import figures
from ..datasets import SceneSet, SceneSpec, generate_cached, summary


def generate(families: Sequence[str], seed: int = 0, **knobs) -> dict[str, SceneSet]:
    """One cached dataset per object family, equal in every other knob."""
    return {family: generate_cached(SceneSpec(family=family, seed=seed, **knobs), progress=False)
            for family in families}


def counts(data: dict[str, SceneSet]) -> str:
    """Images and objects per family, kind and object count, as fixed-width text (checked by nbval)."""
    table = pd.concat([summary.counts(ds).assign(family=f) for f, ds in data.items()], ignore_index=True)
    return table[["family", "kind", "n_objects", "images", "objects"]].to_string(index=False)


def example_grid(ds: SceneSet, family: str, objects: Sequence[int], per_row: int, image_size: int,
                 seed: int = 0) -> plt.Figure:
    """One row of seeded example scenes per object count."""
    figures.style()
    fig, axes = plt.subplots(len(objects), 1, figsize=(figures.FULL_WIDTH_IN, 1.55 * len(objects) + 0.4),
                             layout="constrained", squeeze=False)
    for ax, n in zip(axes[:, 0], objects):
        ids = summary.pick(ds, n, min(per_row, 6), seed=seed)
        ax.imshow(summary.sample_grid(ds, ids, columns=len(ids)))
        ax.set_axis_off()
        ax.set_title(f"{n} objects", fontsize=figures.FONT_PT, loc="left")
    figures.title(fig, f"{family}-like scenes ({image_size} px)")
    return figures.finish(fig)


def explorer(data: dict[str, SceneSet], objects: Sequence[int], n_images: int, template: str, seed: int = 0):
    """A tab per family and object count: a larger seeded sample with its captions."""
    import ipywidgets as widgets  # optional: the book's extra

    def tab(ds: SceneSet, n: int):
        ids = summary.pick(ds, n, n_images, seed=seed)
        grid = summary.sample_grid(ds, ids, columns=min(6, len(ids)))
        caps = ds.captions[(ds.captions.image_id.isin(ids)) & (ds.captions.template == template)]
        text = "".join(f"<li><code>{r.image_id}</code>: {r.text}</li>" for r in caps.itertuples())
        scale = max(1, 384 // grid.width + 1)
        return widgets.VBox([widgets.Image(value=summary.png_bytes(grid, scale=min(scale, 4)), format="png"),
                             widgets.HTML(f"<ol style='font-size:small'>{text}</ol>")])

    out = widgets.Tab()
    out.children = [tab(ds, n) for ds in data.values() for n in objects]
    out.titles = [f"{f} · {n} objects" for f in data for n in objects]
    return out


def class_grid(ds: SceneSet, family: str, columns: int = 6) -> plt.Figure:
    """Every class's large single-object reference image with its name beneath: one picture the page's width
    (``columns`` images a row, names at the book's font size)."""
    singles = ds.singles()
    big = singles.images.image_id[singles.images.image_id.str.startswith("s0-")].tolist()
    names = singles.objects.set_index("image_id").loc[big, "class_name"].tolist()
    columns = max(1, min(columns, len(big)))
    rows = -(-len(big) // columns)
    grid = summary.sample_grid(ds, big, columns=columns)
    cell_w, cell_h = grid.width / columns, grid.height / rows
    figures.style()
    cell_in = figures.FULL_WIDTH_IN / columns
    fig, ax = plt.subplots(figsize=(figures.FULL_WIDTH_IN, rows * cell_in * cell_h / cell_w + 0.4),
                           layout="constrained")
    ax.imshow(grid, extent=(0, columns, rows, 0))
    for k, name in enumerate(names):
        r, c = divmod(k, columns)
        ax.text(c + 0.5, r + 1.0, figures.wrap(name, cell_in, figures.FONT_PT), ha="center", va="bottom", fontsize=figures.FONT_PT, color="white",
                bbox=dict(boxstyle="square,pad=0.1", fc="black", alpha=0.55, lw=0))
    ax.set_axis_off()
    figures.title(fig, f"{family}-like classes: {len(big)}")
    return figures.finish(fig)
