"""Paper B's objective: the contrastive loss plus a hinge that pulls composition attributions level with objects.

``L_attr = mean_n max(a_obj[n] - a_comp[n] + eps, 0)`` (eq. 5), where ``a_obj[n]`` is the mean attribution of
caption ``n``'s object tokens and ``a_comp[n]`` that of its attribute and relation tokens; ``L = L_ITC +
lambda * L_attr`` (eq. 6). Captions without an object token or without a composition token cannot say which
of the two the model favours, so they are left out of the mean rather than counted as zero.

``itc_loss`` is CLIP's symmetric InfoNCE (eq. 2-4), extended NegCLIP-style: hard-negative captions join the
image-to-text softmax as extra wrong answers; the text-to-image direction stays over the true captions.
Without negatives it equals ``open_clip.ClipLoss`` (a test checks).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import CAEError


def role_means(scores: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean score over the masked positions of each row, and whether the row has any such position."""
    if scores.shape != mask.shape:
        raise CAEError(f"attribution scores {tuple(scores.shape)} and role mask {tuple(mask.shape)} differ in shape")
    m = mask.to(scores.dtype)
    count = m.sum(dim=1)
    return (scores * m).sum(dim=1) / count.clamp_min(1.0), count > 0


def scored_captions(objects: torch.Tensor, composition: torch.Tensor) -> torch.Tensor:
    """How many captions the hinge averages over: those with an object token and a composition token."""
    return (objects.bool().any(dim=1) & composition.bool().any(dim=1)).sum()


def attribution_loss(scores: torch.Tensor, objects: torch.Tensor, composition: torch.Tensor,
                     margin: float = 0.0, total: torch.Tensor | int | None = None) -> torch.Tensor:
    """Eq. 5 averaged over the captions that have both object and composition tokens (0 if none has).

    ``total``: divide the hinges' sum by this count instead of taking their mean. A data-parallel process
    passes the :func:`scored_captions` of the whole global batch, so the processes' shares add up to the
    global batch's mean even when their slices hold different numbers of scored captions.
    """
    a_obj, has_obj = role_means(scores, objects)
    a_comp, has_comp = role_means(scores, composition)
    keep = has_obj & has_comp
    if not bool(keep.any()):
        return scores.sum() * 0.0  # keeps the graph (and the device) without contributing
    hinge = torch.clamp(a_obj[keep] - a_comp[keep] + margin, min=0.0)
    return hinge.mean() if total is None else hinge.sum() / total


def itc_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
             negative_features: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric contrastive loss of normalised features; ``negative_features`` are hard-negative captions."""
    n = image_features.shape[0]
    if text_features.shape[0] != n:
        raise CAEError(f"{n} images but {text_features.shape[0]} captions: the contrastive loss pairs them by row")
    scale = logit_scale if logit_scale.ndim == 0 else logit_scale.squeeze()
    per_text = scale * text_features @ image_features.T
    texts = text_features if negative_features is None else torch.cat([text_features, negative_features])
    per_image = scale * image_features @ texts.T
    labels = torch.arange(n, device=image_features.device)
    return (F.cross_entropy(per_image, labels) + F.cross_entropy(per_text, labels)) / 2


def total_loss(itc: torch.Tensor, attr: torch.Tensor, lam: float) -> torch.Tensor:
    """Eq. 6: ``L_ITC + lambda * L_attr`` (``lambda = 0`` is CLIP-FT)."""
    return itc + lam * attr
