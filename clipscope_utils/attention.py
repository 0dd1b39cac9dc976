"""Where the CLS token of a ViT image encoder looks: paper A section 4.1 and Figure 3.

Paper A ("CLIP Under the Microscope", Abbasi et al. 2025) sums the attention the CLS token pays to the
patches of each object of a 3-object ComCO scene and finds that the large object receives more of it than
the small ones. This module measures exactly that for any open_clip :class:`~open_clip.transformer.VisionTransformer`:

:func:`capture_attention`
    one forward pass of the *unchanged* model with forward hooks on every block's ``nn.MultiheadAttention``;
    each hook recomputes that block's attention weights from the very inputs the block received (the
    model's own output is never touched, so the embedding is bit-identical to ``encode_image``) and the
    hooks are removed afterwards. Gives :class:`AttentionMaps`.
:func:`cls_attention`
    the simple form: CLS-to-patch attention per layer, averaged over heads, ``(B, layers, P)``.
:func:`attention_rollout`
    Abnar & Zuidema (2020): the product over layers of ``0.5 * A + 0.5 * I`` (rows renormalised), which
    follows attention through the residual stream down to the input patches.
:func:`patch_masks` / :func:`box_masks`
    the share of every patch of the model's input grid covered by each object, after mapping the dataset
    image through the model's resize (+ centre crop).
:func:`object_attention`
    attention summed inside each object's mask (weighted by the covered share of each patch), and the
    same per unit area.
:func:`attention_table`
    the tidy per-object frame of a dataset; :func:`role_table` / :func:`paired_difference` tabulate it with
    bootstrap 95 % intervals, :func:`plot_overlays` / :func:`plot_shares` draw Figure 3 a) and b), :func:`plot_layers`
    the share per block.

Two layer aggregations are reported and must not be confused:

``last``
    the attention of the CLS query in the **last block** (head average). This is the attention that
    directly mixes patch tokens into the CLS token that becomes the embedding, but the patch tokens it
    reads have themselves mixed earlier, so it is not "which input pixels" the embedding depends on.
``rollout``
    attention rollout over **all blocks** (above): an estimate of how much each *input* patch flows into
    the final CLS token.

Shares: both are reported as the share of the CLS token's attention **to patch tokens** (the CLS row
without its CLS-to-CLS entry, renormalised to sum to 1), so that an encoder whose attention were uniform
over patches would give each object exactly its *area share* (the share of the image it covers) — the
baseline every attention number stands beside. ``attention_per_area`` = share / area share: 1 means "as
much attention as its area", above 1 means the object draws attention beyond its size. A large object
covers more patches, so it collects more attention even from a blind, uniform encoder; only the per-area
number (or the comparison with the area share) separates "more attention because bigger" from "more
attention per pixel".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.colors import Normalize
from matplotlib.patches import Patch
from open_clip.transformer import VisionTransformer
from torch import nn
from tqdm import tqdm

from . import figures
from .stats import bootstrap_ci

VARIANTS = ("last", "rollout")
REGIONS = ("mask", "box")
RESIZE_MODES = ("shortest", "squash", "longest")


class AttentionError(ValueError):
    """A model whose CLS attention cannot be read, or inputs that do not fit it (sizes, grids, masks)."""


# --------------------------------------------------------------------------------------------------
# finding the ViT and checking it has a CLS token
# --------------------------------------------------------------------------------------------------


def vision_transformer(model_or_encoder: Any):
    """The open_clip ``VisionTransformer`` inside an :class:`Encoder`, a CLIP model or the tower itself.

    Refuses (with :class:`AttentionError`) what has no CLS-token attention to read: text-only models,
    convolutional towers (``ModifiedResNet``), timm towers (e.g. SigLIP, pooled by an attention head),
    ViTs whose embedding is not the CLS token (``attentional_pool``, ``pool_type='avg'`` / ``'none'``) and
    ViTs built from custom blocks (``qk_norm``, scaled-cosine attention...) that do not use
    ``nn.MultiheadAttention``.
    """
    obj = model_or_encoder
    name = getattr(obj, "name", type(obj).__name__)
    if getattr(obj, "has_images", True) is False:
        raise AttentionError(f"model {name!r} is text-only: it has no image encoder, so no CLS attention")
    if hasattr(obj, "model") and not isinstance(obj, nn.Module):  # an Encoder
        obj = obj.model
    visual = obj.visual if hasattr(obj, "visual") else obj
    if not isinstance(visual, VisionTransformer):
        kind = type(visual).__name__
        why = {"ModifiedResNet": "a convolutional ResNet tower has no patch tokens and no CLS token",
               "TimmModel": "a timm tower (e.g. SigLIP, whose embedding is an attention-pooled map) is not "
                            "open_clip's own VisionTransformer"}.get(kind, "it is not an open_clip VisionTransformer")
        raise AttentionError(f"model {name!r}: cannot read CLS attention from its image tower {kind}: {why}.")
    if getattr(visual, "attn_pool", None) is not None:
        raise AttentionError(
            f"model {name!r}: its ViT pools with an attentional pooler (attentional_pool), so the embedding is "
            "not read from a CLS token; CLS-token attention would not measure what the embedding attends to.")
    if getattr(visual, "pool_type", "tok") != "tok":
        raise AttentionError(
            f"model {name!r}: its ViT uses pool_type={visual.pool_type!r} (global average pool or none), so the "
            "embedding is not the CLS token; CLS-token attention would not measure what the embedding attends to.")
    blocks = list(visual.transformer.resblocks)
    odd = [type(b).__name__ for b in blocks if not isinstance(getattr(b, "attn", None), nn.MultiheadAttention)]
    if odd:
        raise AttentionError(
            f"model {name!r}: its ViT blocks ({odd[0]}) do not use nn.MultiheadAttention (custom attention such "
            "as qk_norm or scaled-cosine attention); capturing their weights is not supported.")
    return visual


def grid_of(model_or_encoder: Any) -> tuple[int, int]:
    """The patch grid (rows, columns) of the model's ViT."""
    return tuple(int(g) for g in vision_transformer(model_or_encoder).grid_size)  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------------
# capture
# --------------------------------------------------------------------------------------------------


@dataclass
class AttentionMaps:
    """Attention of one batch, from one forward pass of the unchanged model.

    ``layers``    (B, L, T, T) attention of every block averaged over heads; row ``i`` is where token ``i``
                  attends, rows sum to 1. Token 0 is the CLS token, tokens 1..P the patches in row-major
                  order of the ``grid`` (the ViT's own token order), T = 1 + P.
    ``cls_heads`` (B, L, H, T) the CLS token's row for every head.
    ``embedding`` (B, D) the image embedding of the same forward pass (float32, CPU), equal to
                  ``encode_image`` of the model.
    """

    layers: torch.Tensor
    cls_heads: torch.Tensor
    embedding: torch.Tensor
    grid: tuple[int, int]

    @property
    def n_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    def cls_row(self, variant: str | int = "last") -> torch.Tensor:
        """(B, T) the CLS token's full row: ``"last"``, ``"rollout"`` or a 0-based layer index."""
        if variant == "rollout":
            return attention_rollout(self.layers)[:, 0, :]
        if variant == "last":
            variant = -1
        if isinstance(variant, (int, np.integer)):
            return self.layers[:, int(variant), 0, :]
        raise AttentionError(f"unknown attention variant {variant!r}; allowed: 'last', 'rollout' or a layer index")

    def cls_patches(self, variant: str | int = "last", normalise: bool = True) -> torch.Tensor:
        """(B, P) the CLS token's attention to the patches; by default renormalised to sum to 1 over patches."""
        patches = self.cls_row(variant)[:, 1:]
        return patches / patches.sum(-1, keepdim=True) if normalise else patches


def capture_attention(model_or_encoder: Any, images: torch.Tensor) -> AttentionMaps:
    """Run the image tower once on preprocessed ``images`` (B, 3, H, W) and keep every block's attention.

    A forward hook on each block's ``nn.MultiheadAttention`` calls that module's ``forward`` a second time on
    the same query/key/value with ``need_weights=True, average_attn_weights=False`` and stores the weights;
    the block's own output is returned unchanged, and the hooks are always removed again. Works for
    ``batch_first`` True or False (the weights of ``nn.MultiheadAttention`` are (B, heads, T, T) either way).
    """
    visual = vision_transformer(model_or_encoder)
    model = model_or_encoder.model if hasattr(model_or_encoder, "model") and not isinstance(
        model_or_encoder, nn.Module) else model_or_encoder
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        raise AttentionError(f"images must be a preprocessed (B, 3, H, W) tensor, got "
                             f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    expected = tuple(int(s) for s in visual.image_size)
    if tuple(images.shape[-2:]) != expected:
        raise AttentionError(f"images are {tuple(images.shape[-2:])} px but the model's input is {expected} px; "
                             "pass them through the model's preprocess first")
    param = next(visual.parameters())
    captured: list[torch.Tensor] = []

    def hook(module: nn.MultiheadAttention, args: tuple, kwargs: dict, output: Any) -> None:
        names = ("query", "key", "value")
        q, k, v = (args[i] if len(args) > i else kwargs[n] for i, n in enumerate(names))
        _, weights = module.forward(q, k, v, need_weights=True, average_attn_weights=False,
                                    attn_mask=kwargs.get("attn_mask"), key_padding_mask=kwargs.get("key_padding_mask"))
        captured.append(weights.detach().float())

    handles = [blk.attn.register_forward_hook(hook, with_kwargs=True) for blk in visual.transformer.resblocks]
    try:
        with torch.inference_mode():
            x = images.to(param.device, dtype=param.dtype)
            out = model.encode_image(x) if hasattr(model, "encode_image") else model(x)
            out = out[0] if isinstance(out, tuple) else out
    finally:
        for h in handles:
            h.remove()
    if len(captured) != len(visual.transformer.resblocks):
        raise AttentionError(f"captured {len(captured)} attention maps for {len(visual.transformer.resblocks)} "
                             "blocks (is gradient checkpointing or a fused path bypassing the modules?)")
    full = torch.stack(captured, dim=1).cpu()  # (B, L, H, T, T)
    grid = tuple(int(g) for g in visual.grid_size)
    if full.shape[-1] != 1 + grid[0] * grid[1]:
        raise AttentionError(f"attention over {full.shape[-1]} tokens, expected 1 CLS + {grid[0]}x{grid[1]} patches")
    return AttentionMaps(layers=full.mean(dim=2), cls_heads=full[:, :, :, 0, :].clone(),
                         embedding=out.detach().float().cpu(), grid=grid)  # type: ignore[arg-type]


def cls_attention(model_or_encoder: Any, images: torch.Tensor) -> torch.Tensor:
    """(B, L, P): the CLS token's attention to every patch, per layer, averaged over heads.

    Raw weights (not renormalised): together with the CLS token's attention to itself each row sums to 1,
    so ``1 - cls_attention(...).sum(-1)`` is the CLS-to-CLS weight. :func:`capture_attention` gives more.
    """
    return capture_attention(model_or_encoder, images).layers[:, :, 0, 1:]


def attention_rollout(layers: torch.Tensor, residual: float = 0.5) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema 2020) of (..., L, T, T) head-averaged attention -> (..., T, T).

    Each layer becomes ``(1 - residual) * A + residual * I`` (the residual connection), rows renormalised;
    the rollout is the product ``Â_L ⋯ Â_2 Â_1``, so row 0 is how much each input token flows into the CLS
    token after the last block.
    """
    if layers.ndim < 3 or layers.shape[-1] != layers.shape[-2]:
        raise AttentionError(f"expected (..., L, T, T) attention, got shape {tuple(layers.shape)}")
    if not 0 <= residual <= 1:
        raise AttentionError(f"residual must be in [0, 1], got {residual}")
    eye = torch.eye(layers.shape[-1], dtype=layers.dtype, device=layers.device)
    out = None
    for i in range(layers.shape[-3]):
        a = (1 - residual) * layers[..., i, :, :] + residual * eye
        a = a / a.sum(-1, keepdim=True)
        out = a if out is None else a @ out
    return out


# --------------------------------------------------------------------------------------------------
# from dataset masks to the model's patch grid
# --------------------------------------------------------------------------------------------------


def resize_mode(preprocess: Any) -> str:
    """How an open_clip eval transform maps an image to the model's input: shortest / squash / longest.

    ``shortest`` = resize the short side + centre crop (open_clip's default), ``squash`` = resize both
    sides, ``longest`` = resize the long side + pad. Square images are a plain resize under all three.
    """
    steps = getattr(preprocess, "transforms", [preprocess])
    for t in steps:
        kind = type(t).__name__
        if kind == "ResizeKeepRatio":
            return "longest"
        if kind == "Resize":
            size = t.size
            return "shortest" if isinstance(size, int) or len(size) == 1 else "squash"
    raise AttentionError(f"cannot tell how the transform resizes images: {preprocess!r}")


def _axis_weights(n_in: int, image_size: int, grid: int, n_resized: int, offset: int) -> np.ndarray:
    """(grid, n_in): share of each patch (along one axis) that falls on each input pixel."""
    patch = image_size / grid
    scale = n_in / n_resized  # input pixels per resized pixel
    lo = (np.arange(grid) * patch + offset) * scale
    hi = lo + patch * scale
    px = np.arange(n_in)
    overlap = np.clip(np.minimum(hi[:, None], px[None, :] + 1) - np.maximum(lo[:, None], px[None, :]), 0, None)
    return overlap / (patch * scale)


def _resized(h: int, w: int, image_size: int, mode: str) -> tuple[int, int, int, int]:
    """(resized h, resized w, crop top, crop left) of torchvision's Resize + CenterCrop."""
    if h == w or mode == "squash":
        return image_size, image_size, 0, 0
    if mode != "shortest":
        raise AttentionError(f"non-square images under resize mode {mode!r} are not supported (pads the image); "
                             "use square images")
    if h < w:
        rh, rw = image_size, int(image_size * w / h)
    else:
        rh, rw = int(image_size * h / w), image_size
    return rh, rw, round((rh - image_size) / 2.0), round((rw - image_size) / 2.0)


def _check_grid(grid: int, image_size: int) -> None:
    if grid < 1 or image_size < grid or image_size % grid:
        raise AttentionError(f"image_size {image_size} is not a whole number of patches of a {grid}x{grid} grid")


def patch_masks(mask: np.ndarray, grid: int, image_size: int, image_hw: tuple[int, int] | None = None,
                n_objects: int | None = None, resize_mode: str = "shortest") -> np.ndarray:
    """(n_objects, grid * grid): the share of each patch covered by object k (label ``k + 1``), in [0, 1].

    ``mask`` is the dataset's label map (H, W) (0 = background, ``k + 1`` = object ``k``); it is mapped to
    the model's ``image_size`` x ``image_size`` input as the model's preprocess maps the image (resize of the
    short side and centre crop for ``shortest``, a plain resize for square images), by exact area weighting,
    then split into the ``grid`` x ``grid`` patches in the ViT's row-major token order. ``image_hw`` (the
    dataset image's height, width) is checked against the mask when given.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise AttentionError(f"mask must be a 2-D label map, got shape {mask.shape}")
    if image_hw is not None and tuple(mask.shape) != tuple(image_hw):
        raise AttentionError(f"mask is {mask.shape[0]}x{mask.shape[1]} (HxW) but its image is "
                             f"{image_hw[0]}x{image_hw[1]}: they must have the same size")
    _check_grid(grid, image_size)
    h, w = mask.shape
    rh, rw, top, left = _resized(h, w, image_size, resize_mode)
    wy = _axis_weights(h, image_size, grid, rh, top)
    wx = _axis_weights(w, image_size, grid, rw, left)
    n = int(mask.max()) if n_objects is None else int(n_objects)
    out = np.zeros((n, grid * grid))
    for k in range(n):
        out[k] = (wy @ (mask == k + 1).astype(float) @ wx.T).ravel()
    return out


def box_masks(boxes: Sequence[Sequence[float]], image_hw: tuple[int, int], grid: int, image_size: int,
              resize_mode: str = "shortest") -> np.ndarray:
    """Like :func:`patch_masks`, for boxes ``(x0, y0, x1, y1)`` (pixels, x1/y1 exclusive) instead of masks."""
    h, w = image_hw
    label = np.zeros((h, w), dtype=np.int32)
    out = []
    for x0, y0, x1, y1 in boxes:
        label[:] = 0
        label[int(y0):int(y1), int(x0):int(x1)] = 1
        out.append(patch_masks(label, grid, image_size, n_objects=1, resize_mode=resize_mode)[0])
    return np.stack(out) if out else np.zeros((0, grid * grid))


def object_attention(attn_patches: np.ndarray | torch.Tensor, coverage: np.ndarray) -> dict[str, np.ndarray]:
    """Attention summed inside each object: ``attention[k] = Σ_p attn[p] · coverage[k, p]``.

    ``attn_patches`` (P,) or (V, P) (V variants at once); ``coverage`` (n_objects, P) from :func:`patch_masks`.
    Returns ``attention`` (n,) or (V, n), ``area_share`` (n,) = covered patches / P (the share of the image
    the object covers, i.e. what a uniform attention over patches would give it), and
    ``attention_per_area`` = attention / area_share (NaN for an object that covers nothing).
    """
    a = attn_patches.detach().cpu().numpy() if isinstance(attn_patches, torch.Tensor) else np.asarray(attn_patches)
    cov = np.asarray(coverage, dtype=float)
    if cov.ndim != 2:
        raise AttentionError(f"coverage must be (n_objects, P), got shape {cov.shape}")
    if a.shape[-1] != cov.shape[1]:
        raise AttentionError(f"attention has {a.shape[-1]} patches but the coverage has {cov.shape[1]}: the mask "
                             "was mapped to a different grid than the model's")
    att = a.astype(float) @ cov.T
    area = cov.sum(1) / cov.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        per_area = np.where(area > 0, att / np.where(area > 0, area, 1), np.nan)
    return {"attention": att, "area_share": area, "attention_per_area": per_area}


# --------------------------------------------------------------------------------------------------
# a dataset -> one tidy frame
# --------------------------------------------------------------------------------------------------

TABLE_COLUMNS = ["model", "image_id", "n_objects", "object_index", "class_name", "is_large", "role", "variant",
                 "layer", "area_share", "attention", "attention_per_area", "to_patches"]


def choose_images(scenes, n_images: int | None, seed: int = 0, n_objects: int | None = None) -> list[str]:
    """A seeded choice of ``n_images`` multi-object images (all when None), in dataset order."""
    ids = list(scenes.multi(n_objects).images.image_id)
    if not ids:
        raise AttentionError(f"no multi-object images{'' if n_objects is None else f' with {n_objects} objects'}")
    if n_images is None or n_images == len(ids):
        return ids
    if not 1 <= n_images <= len(ids):
        raise AttentionError(f"n_images={n_images} but the dataset has {len(ids)} such images")
    pick = set(np.random.default_rng(seed).choice(len(ids), size=n_images, replace=False).tolist())
    return [i for k, i in enumerate(ids) if k in pick]


def _roles(objects: pd.DataFrame) -> list[str]:
    """'large', then 'small 1', 'small 2'... in object-index order (the IOR size labels)."""
    roles, k = [], 0
    for is_large in objects.is_large:
        if bool(is_large):
            roles.append("large")
        else:
            k += 1
            roles.append(f"small {k}")
    return roles


def attention_table(encoder: Any, scenes, n_images: int | None = None, seed: int = 0, batch_size: int = 32,
                    n_objects: int | None = None, region: str = "mask", per_layer: bool = True,
                    progress: bool = True) -> pd.DataFrame:
    """One row per (image, object, variant): the object's share of the CLS token's attention to patches.

    ``variant``: ``last`` (last block), ``rollout`` (all blocks), and with ``per_layer`` also ``layer`` rows
    (``layer`` = 1..L). ``region``: ``mask`` (the object's pixels, the default) or ``box`` (its bounding box).
    ``to_patches`` is the raw mass of the CLS row on patch tokens before renormalisation (the rest is the
    CLS token's attention to itself). See the module docstring for ``area_share`` and ``attention_per_area``.
    """
    if region not in REGIONS:
        raise AttentionError(f"unknown region {region!r}; allowed: {list(REGIONS)}")
    visual = vision_transformer(encoder)
    grid = int(visual.grid_size[0])
    if visual.grid_size[0] != visual.grid_size[1]:
        raise AttentionError(f"non-square patch grid {tuple(visual.grid_size)} is not supported")
    size = int(visual.image_size[0])
    mode = resize_mode(encoder.preprocess)
    name = getattr(encoder, "name", type(encoder).__name__)
    ids = choose_images(scenes, n_images, seed=seed, n_objects=n_objects)
    images = scenes.images.set_index("image_id")
    objects = scenes.objects.sort_values(["image_id", "object_index"])
    by_image = {k: g for k, g in objects[objects.image_id.isin(ids)].groupby("image_id", sort=False)}
    rows: list[dict] = []
    bar = tqdm(total=len(ids), desc=f"attention {name}", unit="image", disable=not progress)
    try:
        for start in range(0, len(ids), batch_size):
            batch = ids[start:start + batch_size]
            x = torch.stack([encoder.preprocess(scenes.image(i)) for i in batch])
            maps = capture_attention(encoder, x)
            n_layers = maps.layers.shape[1]
            variants: list[tuple[str, float, torch.Tensor]] = [
                ("last", float(n_layers), maps.cls_row("last")), ("rollout", np.nan, maps.cls_row("rollout"))]
            if per_layer:
                variants += [("layer", float(l + 1), maps.cls_row(l)) for l in range(n_layers)]
            for b, image_id in enumerate(batch):
                objs = by_image[image_id]
                hw = (int(images.at[image_id, "height"]), int(images.at[image_id, "width"]))
                if region == "mask":
                    cov = patch_masks(scenes.mask(image_id), grid, size, image_hw=hw, n_objects=len(objs),
                                      resize_mode=mode)
                else:
                    cov = box_masks(objs[["x0", "y0", "x1", "y1"]].to_numpy(), hw, grid, size, resize_mode=mode)
                base = [{"model": name, "image_id": image_id, "n_objects": len(objs), "object_index": int(k),
                         "class_name": c, "is_large": bool(big), "role": role}
                        for k, c, big, role in zip(objs.object_index, objs.class_name, objs.is_large, _roles(objs))]
                for variant, layer, row in variants:
                    patches = row[b, 1:]
                    to_patches = float(patches.sum())
                    res = object_attention(patches / to_patches, cov)
                    for j, obj in enumerate(base):
                        rows.append({**obj, "variant": variant, "layer": layer,
                                     "area_share": float(res["area_share"][j]), "attention": float(res["attention"][j]),
                                     "attention_per_area": float(res["attention_per_area"][j]),
                                     "to_patches": to_patches})
            bar.update(len(batch))
    finally:
        bar.close()
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


# --------------------------------------------------------------------------------------------------
# tables with intervals
# --------------------------------------------------------------------------------------------------

MEASURES = ("attention", "attention_per_area", "area_share")


def per_image(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, variant, layer, image, role) plus a ``small (mean)`` role averaging the small
    objects of each image (the unit of the paired comparison: one value per image)."""
    keys = ["model", "variant", "layer", "image_id"]
    small = (frame[~frame.is_large].groupby(keys, dropna=False, sort=False)[list(MEASURES)].mean().reset_index()
             .assign(role="small (mean)"))
    return pd.concat([frame[keys + ["role", *MEASURES]], small], ignore_index=True)


def role_table(frame: pd.DataFrame, variants: Sequence[str] = VARIANTS, n_boot: int = 1000,
               seed: int = 0) -> pd.DataFrame:
    """Mean of each measure per (model, variant, role) with n images and a bootstrap 95 % interval."""
    t = per_image(frame[frame.variant.isin(variants)])
    rows = []
    for (model, variant, role), g in t.groupby(["model", "variant", "role"], sort=False):
        for measure in MEASURES:
            v = g[measure].dropna().to_numpy()
            lo, hi = bootstrap_ci(v, n_boot=n_boot, seed=seed)
            rows.append({"model": model, "variant": variant, "role": role, "measure": measure, "n": len(v),
                         "rate": float(v.mean()) if len(v) else np.nan, "ci_low": lo, "ci_high": hi})
    out = pd.DataFrame(rows, columns=["model", "variant", "role", "measure", "n", "rate", "ci_low", "ci_high"])
    models = {m: i for i, m in enumerate(dict.fromkeys(frame.model))}
    keys = pd.DataFrame({"m": out.model.map(models), "v": out.variant.map({v: i for i, v in enumerate(variants)}),
                         "r": out.role.map(_role_key), "s": out.measure.map({m: i for i, m in enumerate(MEASURES)})})
    return out.loc[keys.sort_values(["m", "v", "r", "s"]).index].reset_index(drop=True)


def _role_key(role: str) -> int:
    """large, small 1, small 2, ..., small (mean), anything else."""
    if role == "large":
        return 0
    if role == "small (mean)":
        return 1000
    tail = role.split()[-1]
    return int(tail) if role.startswith("small ") and tail.isdigit() else 2000


def paired_difference(frame: pd.DataFrame, variants: Sequence[str] = VARIANTS, n_boot: int = 1000,
                      seed: int = 0) -> pd.DataFrame:
    """Per image: large − mean of the small objects, for each measure; mean with a bootstrap 95 % interval."""
    t = per_image(frame[frame.variant.isin(variants)])
    rows = []
    for (model, variant), g in t.groupby(["model", "variant"], sort=False):
        w = g.pivot_table(index="image_id", columns="role", values=list(MEASURES), aggfunc="first")
        for measure in MEASURES:
            if (measure, "large") not in w or (measure, "small (mean)") not in w:
                continue
            d = (w[(measure, "large")] - w[(measure, "small (mean)")]).dropna().to_numpy()
            lo, hi = bootstrap_ci(d, n_boot=n_boot, seed=seed)
            rows.append({"model": model, "variant": variant, "measure": measure, "n": len(d),
                         "rate": float(d.mean()) if len(d) else np.nan, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=["model", "variant", "measure", "n", "rate", "ci_low", "ci_high"])


def layer_table(frame: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Mean attention share of the large object and of the mean small object per layer, with intervals."""
    t = per_image(frame[frame.variant == "layer"])
    t = t[t.role.isin(["large", "small (mean)"])]
    rows = []
    for (model, layer, role), g in t.groupby(["model", "layer", "role"], sort=True):
        v = g.attention.to_numpy()
        lo, hi = bootstrap_ci(v, n_boot=n_boot, seed=seed)
        rows.append({"model": model, "layer": int(layer), "role": role, "n": len(v), "rate": float(v.mean()),
                     "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=["model", "layer", "role", "n", "rate", "ci_low", "ci_high"])


SHARES = ("attention", "area_share")


def as_percent(table: pd.DataFrame) -> pd.DataFrame:
    """The share measures (attention, area share) of a role or paired table in percent; ratios unchanged."""
    t = table.copy()
    share = t.measure.isin(SHARES) if "measure" in t else pd.Series(True, index=t.index)
    for c in ("rate", "ci_low", "ci_high"):
        t.loc[share, c] = t.loc[share, c] * 100
    return t


def summary_table(roles: pd.DataFrame, diffs: pd.DataFrame, controls: Sequence[str] = ()) -> pd.DataFrame:
    """The chapter's verdicts as a table: one row per model and variant with n images, the paired large − small
    differences with their 95 % intervals (attention and area share in points, attention per unit area as a
    ratio) and the verdicts read off those intervals in a few words. ``controls`` (random-init models) are marked
    in the ``control`` column. ``roles`` (:func:`role_table`) only checks that both tables hold the same models."""
    def cell(d: pd.DataFrame, scale: float, digits: int) -> str:
        if d.empty or not np.isfinite(d.rate.iloc[0]):
            return "–"
        r = d.iloc[0]
        return f"{r.rate * scale:+.{digits}f} [{r.ci_low * scale:+.{digits}f}, {r.ci_high * scale:+.{digits}f}]"

    def verdict(d: pd.DataFrame, more: str, less: str, same: str) -> str:
        if d.empty:
            return "–"
        r = d.iloc[0]
        return more if r.ci_low > 0 else less if r.ci_high < 0 else same

    missing = set(diffs.model) - set(roles.model)
    if missing:
        raise AttentionError(f"models {sorted(missing)} have paired differences but no role table")
    columns = ["model", "variant", "control", "n", "attention: large − small (points)",
               "area share: large − small (points)", "per area: large − small", "attention verdict",
               "per-area verdict"]
    rows = []
    for (model, variant), d in diffs.groupby(["model", "variant"], sort=False):
        a, pa, area = (d[d.measure == m] for m in ("attention", "attention_per_area", "area_share"))
        rows.append(dict(zip(columns, [
            model, variant, "random init" if model in set(controls) else "", int(d.n.max()),
            cell(a, 100, 1), cell(area, 100, 1), cell(pa, 1, 2),
            verdict(a, "large gets more", "small get more", "no difference"),
            verdict(pa, "large more per area", "large less per area", "as area predicts")])))
    return pd.DataFrame(rows, columns=columns)


def summary_line(table: pd.DataFrame) -> str:
    """One line over :func:`summary_table`: in how many trained (and control) rows the large object gets more CLS
    attention, and more per unit area."""
    def count(t: pd.DataFrame) -> str:
        return (f"large object gets more CLS attention in {int((t['attention verdict'] == 'large gets more').sum())} "
                f"of {len(t)} model × variant rows, more per unit area in "
                f"{int((t['per-area verdict'] == 'large more per area').sum())}")
    if table.empty:
        return "**Measured here:** no model to summarise."
    ctrl = table[table.control != ""]
    rest = table[table.control == ""]
    parts = ([f"models: {count(rest)}"] if len(rest) else []) + ([f"random-init controls: {count(ctrl)}"]
                                                                 if len(ctrl) else [])
    return "**Measured here** (verdicts from the 95 % intervals): " + "; ".join(parts) + "."


# --------------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------------


def plot_overlays(encoder: Any, scenes, image_ids: Sequence[str], variants: Sequence[str] = VARIANTS,
                  region: str = "mask"):
    """Figure 3 a): each image as the model sees it, then its CLS attention map per variant over it, on one
    colour scale for the whole figure in multiples of uniform attention (1 = 1/P per patch), with the objects'
    outlines and each object's share of the attention (%) in the title. Returns the matplotlib figure."""
    visual = vision_transformer(encoder)
    g, size = int(visual.grid_size[0]), int(visual.image_size[0])
    mode = resize_mode(encoder.preprocess)
    ids = list(image_ids)
    if not ids:
        raise AttentionError("no images to draw")
    x = torch.stack([encoder.preprocess(scenes.image(i)) for i in ids])
    maps = capture_attention(encoder, x)
    shares = {v: maps.cls_patches(v).numpy() * g * g for v in variants}  # multiples of uniform
    norm = Normalize(0, max(2.0, max(float(s.max()) for s in shares.values())))
    figures.style()  # one row per image: the image, then its map per variant (at most three panels a row)
    cols = 1 + len(variants)
    fig, axes = plt.subplots(len(ids), cols, figsize=(min(figures.FULL_WIDTH_IN, 2.1 * cols + 0.9),
                                                      2.2 * len(ids) + 0.6), squeeze=False, layout="constrained")
    objects = scenes.objects.sort_values(["image_id", "object_index"])
    for r, image_id in enumerate(ids):
        image = scenes.image(image_id).convert("RGB")
        img = np.asarray(_to_input(image, size, mode, nearest=False))
        objs = objects[objects.image_id == image_id]
        # real datasets (COCO) store boxes, not masks: the outlines are then the boxes'
        mask = scenes.mask(image_id) if region == "mask" else _box_labels(objs, (image.height, image.width))
        roles = _roles(objs)
        if region == "mask":
            cov = patch_masks(mask, g, size, image_hw=mask.shape, n_objects=len(objs), resize_mode=mode)
        else:
            cov = box_masks(objs[["x0", "y0", "x1", "y1"]].to_numpy(), mask.shape, g, size, resize_mode=mode)
        labels = np.asarray(_to_input(mask, size, mode, nearest=True))
        axes[r, 0].imshow(img)
        axes[r, 0].set_ylabel(image_id, fontsize=figures.FONT_PT)
        for c, variant in enumerate(variants, start=1):
            res = object_attention(shares[variant][r] / (g * g), cov)
            ax = axes[r, c]
            ax.imshow(img)
            im = ax.imshow(shares[variant][r].reshape(g, g), cmap="inferno", norm=norm, alpha=0.65,
                           extent=(0, size, size, 0), interpolation="nearest")
            ax.contour(labels, levels=np.arange(1, len(objs) + 1) - 0.5, colors="cyan", linewidths=0.7)
            order = sorted(range(len(roles)), key=lambda j: _role_key(roles[j]))
            text = " · ".join(f"{'L' if roles[j] == 'large' else 's'} {100 * res['attention'][j]:.0f}%" for j in order)
            ax.set_title(f"{variant}\n{text}" if r == 0 else text, fontsize=figures.FONT_PT)
    axes[0, 0].set_title("image", fontsize=figures.FONT_PT)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    figures.title(fig, "CLS attention to patches; titles: % of it per object (L = large, s = small)")
    fig.colorbar(im, ax=axes[:, 1:].ravel().tolist(), shrink=0.8, label="× uniform (1 = 1/P)")
    return figures.finish(fig)


def _box_labels(objects: pd.DataFrame, hw: tuple[int, int]) -> np.ndarray:
    """A label map drawn from boxes (``k + 1`` inside the box of the k-th row, later rows on top) for outlines."""
    labels = np.zeros(hw, dtype=np.uint8)
    for k, (x0, y0, x1, y1) in enumerate(objects[["x0", "y0", "x1", "y1"]].to_numpy()):
        labels[max(int(y0), 0):max(int(y1), 0), max(int(x0), 0):max(int(x1), 0)] = k + 1
    return labels


def _to_input(image, size: int, mode: str, nearest: bool):
    """A PIL image or label map mapped to the model's input geometry (resize + centre crop, as the preprocess)."""
    from PIL import Image

    im = Image.fromarray(np.asarray(image).astype(np.uint8)) if isinstance(image, np.ndarray) else image
    rh, rw, top, left = _resized(im.height, im.width, size, mode)
    im = im.resize((rw, rh), Image.NEAREST if nearest else Image.BICUBIC)
    return im.crop((left, top, left + size, top + size))


def plot_shares(roles: pd.DataFrame, measure: str = "attention", baseline: str | None = "area_share",
                title: str = ""):
    """Figure 3 b): bars of ``measure`` per role (large, small 1, ...; the book's size colours), one panel per
    (model, variant), at most three a row, with the table's own 95 % intervals; the ``baseline`` measure (area
    share, what uniform attention gives) as hatched bars beside them; for the per-area ratio, 1 dotted. Shares
    in %."""
    t = roles[~roles.role.eq("small (mean)")]
    panels = list(dict.fromkeys(zip(t.model, t.variant)))
    fig, axes = figures.facets(len(panels), height=2.4, sharey=True, width=figures.FULL_WIDTH_IN)
    series = [(measure, "CLS attention" if measure == "attention" else measure.replace("_", " "), None)]
    if baseline:
        series.append((baseline, "area share (baseline)", "//"))
    for ax, (model, variant) in zip(axes, panels):
        p = t[(t.model == model) & (t.variant == variant)]
        labels = list(dict.fromkeys(p.role))
        colours = figures.palette(labels)
        xs = np.arange(len(labels))
        width = 0.8 / len(series)
        for s, (m, label, hatch) in enumerate(series):
            q = p[p.measure == m].set_index("role").reindex(labels)
            if m in SHARES:
                q = q.assign(rate=q.rate * 100, ci_low=q.ci_low * 100, ci_high=q.ci_high * 100)
            pos = xs + (s - (len(series) - 1) / 2) * width
            ax.bar(pos, q.rate, width, hatch=hatch, color=[colours[r] for r in labels],
                   alpha=0.9 if hatch is None else 0.35, edgecolor="white" if hatch is None else "#333333", lw=0.5)
            figures.error_bars(ax, pos, q)
        if measure == "attention_per_area":
            figures.chance_line(ax, 1, label="1 = what area predicts")
        figures.ticks(ax, labels)
        ax.set_title(figures.wrap(f"{model}, {variant}", fig.get_figwidth() / min(3, len(panels)), figures.FONT_PT),
                     fontsize=figures.FONT_PT)
    axes[0].set_ylabel({"attention": "% of CLS attention to patches",
                        "attention_per_area": "attention share / area share"}.get(measure, measure))
    handles = [Patch(facecolor="#777777", alpha=0.9 if hatch is None else 0.35, hatch=hatch, edgecolor="#333333",
                     label=label) for _, label, hatch in series]
    handles += [h for h in axes[0].get_legend_handles_labels()[0]]
    figures.title(fig, title)
    figures.legend(fig, handles=handles, labels=[h.get_label() for h in handles])
    return figures.finish(fig)


def plot_layers(layers: pd.DataFrame, roles: pd.DataFrame | None = None, title: str = ""):
    """Attention share of the large object and of the mean small object per block (the book's size colours),
    with 95 % intervals, one panel per model (at most three a row); with ``roles`` (:func:`role_table`), their
    mean area shares as dashed lines (the uniform-attention baseline)."""
    models = list(dict.fromkeys(layers.model))
    fig, axes = figures.facets(len(models), height=2.4, sharey=True, width=figures.FULL_WIDTH_IN)
    for ax, model in zip(axes, models):
        for role in ["large", "small (mean)"]:
            c = figures.color(role)
            t = layers[(layers.model == model) & (layers.role == role)].sort_values("layer")
            ax.errorbar(t.layer, 100 * t.rate, yerr=100 * figures.yerr(t), marker="o", ms=4, capsize=2, color=c,
                        label=role)
            if roles is not None:
                area = roles[(roles.model == model) & (roles.role == role) & (roles.measure == "area_share")]
                if len(area):
                    ax.axhline(100 * area.rate.iloc[0], ls="--", lw=1, color=c, label=f"{role}: area share")
        ax.set_xticks(sorted(layers.layer.unique()))
        ax.set_ylim(bottom=0)
        ax.set_xlabel("block")
        ax.set_title(figures.wrap(model, fig.get_figwidth() / min(3, len(models)), figures.FONT_PT),
                     fontsize=figures.FONT_PT)
    axes[0].set_ylabel("% of CLS attention to patches")
    figures.title(fig, title)
    figures.legend(fig, axes)
    return figures.finish(fig)
