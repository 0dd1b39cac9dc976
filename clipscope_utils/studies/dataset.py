"""The dataset chapter: the generated ComCO/SimCO-like scenes of a profile, shown as a reader sees them
(example grids, an explorer, the classes, sizes and caption order), and the authors' release and COCO
summarised the same way when their folders are given."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import pandas as pd

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
    fig, axes = plt.subplots(len(objects), 1, figsize=(12, 2.1 * len(objects)))
    axes = axes if len(objects) > 1 else [axes]
    for ax, n in zip(axes, objects):
        ids = summary.pick(ds, n, min(per_row, 6), seed=seed)
        ax.imshow(summary.sample_grid(ds, ids, columns=len(ids)))
        ax.set_axis_off()
        ax.set_title(f"{n} objects", fontsize=10, loc="left")
    fig.suptitle(f"{family}-like scenes ({image_size} px)")
    fig.tight_layout()
    return fig


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


def class_grid(ds: SceneSet, family: str, columns: int = 12) -> plt.Figure:
    """Every class's large single-object reference image, titled with its name."""
    singles = ds.singles()
    big = singles.images.image_id[singles.images.image_id.str.startswith("s0-")].tolist()
    names = singles.objects.set_index("image_id").loc[big, "class_name"].tolist()
    rows = -(-len(big) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, 1.25 * rows))
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, image_id, name in zip(axes.flat, big, names):
        ax.imshow(ds.image(image_id))
        ax.set_title(name, fontsize=7)
    fig.suptitle(f"{family}-like classes: {len(big)}")
    fig.tight_layout()
    return fig
