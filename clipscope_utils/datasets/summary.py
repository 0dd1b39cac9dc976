"""What a dataset contains: counts, object sizes and positions, caption order — tables and figures.

Used by the ``dataset`` chapter for generated scenes and, unchanged, for the authors' released
folders and COCO (paper A, appendix 7.9: where does the largest object come in a caption?).
"""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from PIL import Image

from .. import figures
from ..stats import rate_table
from .tables import SceneSet


def counts(ds: SceneSet) -> pd.DataFrame:
    """Images and objects per kind and object count."""
    objs = ds.objects.groupby("image_id").size().rename("objects")
    frame = ds.images.join(objs, on="image_id")
    out = frame.groupby(["kind", "n_objects"], sort=True).agg(images=("image_id", "size"), objects=("objects", "sum"))
    return out.reset_index()


def object_sizes(ds: SceneSet) -> pd.DataFrame:
    """Per multi-object scene object: its role (large / small), area in px and share of the image."""
    multi = ds.multi()
    obj = multi.objects.merge(multi.images[["image_id", "n_objects", "width", "height"]], on="image_id")
    obj = obj.assign(
        role=np.where(obj.is_large.astype(bool), "large", "small"),
        area_share=obj.area_px / (obj.width * obj.height),
        cx=(obj.x0 + obj.x1) / 2 / obj.width,
        cy=(obj.y0 + obj.y1) / 2 / obj.height,
    )
    return obj[["image_id", "n_objects", "class_name", "role", "area_px", "area_share", "cx", "cy", "caption_position"]]


def largest_position(ds: SceneSet, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Share of captions that mention the largest object at each position, per object count.

    The analysis of paper A's Fig. 4b / appendix 7.9 (there on LAION and COCO captions), with n and a
    bootstrap 95 % interval per cell. Only scenes of two or more objects whose largest object is
    mentioned count (with one object, "first" says nothing).
    """
    multi = ds.multi()
    big = multi.objects[(multi.objects.size_rank == 1) & (multi.objects.caption_position > 0)]
    big = big.drop_duplicates("image_id").merge(multi.images[["image_id", "n_objects"]], on="image_id")
    big = big[big.n_objects >= 2]
    # one row per (caption, possible position): hit = the largest object is mentioned there
    rows = big.loc[big.index.repeat(big.n_objects), ["image_id", "n_objects", "caption_position"]]
    rows["position"] = rows.groupby("image_id").cumcount() + 1
    rows["hit"] = rows.caption_position == rows.position
    table = rate_table(rows, ["n_objects", "position"], "hit", n_boot=n_boot, seed=seed)
    return table.rename(columns={"rate": "share"})


def sample_grid(ds: SceneSet, image_ids, columns: int = 6, caption_template: str | None = None) -> Image.Image:
    """Images side by side in a grid (one row per ``columns`` images), for figures and widgets."""
    ids = list(image_ids)
    if not ids:
        raise ValueError("no images to show")
    first = ds.image(ids[0])
    w, h = first.size
    rows = -(-len(ids) // columns)
    pad = 4
    grid = Image.new("RGB", (columns * (w + pad) + pad, rows * (h + pad) + pad), (40, 40, 40))
    for k, image_id in enumerate(ids):
        r, c = divmod(k, columns)
        grid.paste(ds.image(image_id), (pad + c * (w + pad), pad + r * (h + pad)))
    return grid


def png_bytes(im: Image.Image, scale: int = 1) -> bytes:
    if scale != 1:
        im = im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def pick(ds: SceneSet, n_objects: int, k: int, seed: int = 0) -> list[str]:
    """``k`` image ids with ``n_objects`` objects, chosen reproducibly."""
    ids = ds.images.image_id[(ds.images.kind == "multi") & (ds.images.n_objects == n_objects)].to_numpy()
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(ids, size=min(k, len(ids)), replace=False).tolist())


def plot_sizes_positions(sizes: pd.DataFrame, title: str = "") -> plt.Figure:
    """Area share by role and object count (left) and where objects sit (right), the book's size colours."""
    fig, axes = figures.facets(2, height=3.0, width=figures.FULL_WIDTH_IN)
    colours = figures.palette(sorted(set(sizes.role), key=lambda r: (r != "large", r)))
    sns.boxplot(data=sizes, x="n_objects", y="area_share", hue="role", hue_order=list(colours), palette=colours,
                fliersize=1, saturation=1, linewidth=0.8, ax=axes[0])
    axes[0].set(xlabel="objects in the scene", ylabel="object area / image area", title="object sizes")
    sns.scatterplot(data=sizes, x="cx", y="cy", hue="role", hue_order=list(colours), palette=colours, alpha=0.3,
                    s=12, ax=axes[1], legend=False)
    axes[1].set(xlim=(0, 1), ylim=(1, 0), xlabel="centre x (fraction)", ylabel="centre y (fraction)",
                title="object positions")
    axes[1].set_aspect("equal")
    figures.title(fig, title)
    figures.legend(fig, [axes[0]], title_="object")
    return figures.finish(fig)


def plot_largest_position(table: pd.DataFrame, title: str = "") -> plt.Figure:
    """Where the largest object is mentioned, per object count (its colour), with 95 % intervals and 1/n dotted
    (the share under a caption order that ignores size)."""
    fig, (ax,) = figures.facets(1, height=2.8, width=5.6)
    counts = sorted(table.n_objects.unique())
    for k, (n, g) in enumerate(table.groupby("n_objects")):
        c = figures.color(int(n))
        x = g.position + (k - (len(counts) - 1) / 2) * 0.06
        ax.errorbar(x, g.share, yerr=figures.yerr(g, rate="share"), marker="o", ms=4, capsize=3, color=c,
                    label=f"{n} objects")
        figures.chance_line(ax, 1 / n, color_=c, label="chance (1/n), per count", alpha=0.8)
    ax.set(xlabel="position in the caption", ylabel="share of captions", ylim=(-0.02, 1.02))
    ax.set_xticks(sorted(table.position.unique()))
    figures.title(fig, title or "position of the largest object")
    figures.legend(fig, [ax])
    return figures.finish(fig)
