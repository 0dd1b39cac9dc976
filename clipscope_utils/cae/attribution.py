"""The four text attribution methods of paper B (sections 3.1-3.4, appendix I), for open_clip CLIP models.

Each method gives one score per token position of a caption, ``[N, L]`` for ``N`` captions of context ``L``,
saying how much that token contributes to the similarity ``S(I_n, T_n)`` of the matching image-text pair
(image ``n`` with caption ``n``). CAE (:mod:`clipscope_utils.cae.loss`) averages them over object tokens and over
attribute/relation tokens and fine-tunes the model so that the two averages meet, so every method here is
differentiable w.r.t. the model parameters where the loss needs it.

``S(I, T)`` is paper B eq. 1: the cosine of the image and text features divided by the temperature, i.e. times
``model.logit_scale.exp()`` (``scaled=True``, the default); ``scaled=False`` gives the bare cosine. The image
side is passed as image features: the caller decides whether they are detached (eq. 9 detaches them).

:data:`METHODS`
    ``attention``     (3.1) the head-averaged attention row of the pooled token, averaged over layers.
    ``gradcam``       (3.2) Chefer et al. (2021): ``E_i = mean_heads((dS/dA_i * A_i)^+)``, ``R <- R + E_i R``.
    ``perturbation``  (3.3) mean drop of ``S`` when a concept is replaced by another concept of its role.
    ``gradient``      (3.4) ``sum_j |dS/dx_ij|`` over the input token embedding, softmaxed over the caption.
:func:`explicit_attention`
    the context manager that makes the text tower's attention probabilities visible (and differentiable).
:func:`perturbations`
    builds the perturbed captions of eq. 9 from character spans and candidate words. Paper B drew them from
    Visual Genome (150 objects, 200 attributes and 36 relations, appendix I); the caller passes its own sets.

The pooled token is the one open_clip's CLIP pools the text at: the end-of-text token (``argmax`` of the token
ids for the OpenAI tokenizer, or the first ``eos`` id); paper B calls it ``[CLS]``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock
from torch import nn

from . import CAEError

METHODS = ("attention", "gradcam", "perturbation", "gradient")

#: text pooling types whose pooled token is the end-of-text token (the others have no "caption end")
_POOLS = ("argmax", "eos")


# --------------------------------------------------------------------------------------------------
# the text tower, its pooled token and the similarity
# --------------------------------------------------------------------------------------------------


def text_model(model: Any) -> nn.Module:
    """The open_clip ``CLIP`` inside ``model`` (an :class:`Encoder` or the model), checked to be patchable.

    Refused with :class:`CAEError`: towers without ``transformer.resblocks`` of plain open_clip
    ``ResidualAttentionBlock`` s over ``nn.MultiheadAttention`` (Hugging Face text towers of ``CustomTextCLIP``,
    custom attention blocks), poolings other than the end-of-text token, and gradient checkpointing (its
    recomputed forward would record the attention twice).
    """
    if not isinstance(model, nn.Module) and isinstance(getattr(model, "model", None), nn.Module):
        model = model.model
    if not isinstance(model, nn.Module):
        raise CAEError(f"expected an open_clip CLIP model or an Encoder holding one, got {type(model).__name__}")
    name = type(model).__name__
    needed = ("transformer", "token_embedding", "positional_embedding", "attn_mask", "ln_final")
    missing = [a for a in needed if not hasattr(model, a)]
    if missing or not hasattr(model.transformer, "resblocks"):
        raise CAEError(
            f"{name} has no open_clip CLIP text tower (missing {', '.join(missing) or 'transformer.resblocks'}): "
            "the attributions need model.transformer.resblocks, as in open_clip's CLIP; CustomTextCLIP with a "
            "Hugging Face text tower (e.g. 'CLIP Roberta') is not supported")
    if getattr(model.transformer, "grad_checkpointing", False):
        raise CAEError("gradient checkpointing is on (model.set_grad_checkpointing): turn it off for attributions")
    pool = getattr(model, "text_pool_type", "argmax")
    if pool not in _POOLS:
        raise CAEError(f"text pooling {pool!r} does not pool at the end-of-text token; supported: {_POOLS}")
    for i, block in enumerate(model.transformer.resblocks):
        attn = getattr(block, "attn", None)
        if type(block) is not ResidualAttentionBlock or not isinstance(attn, nn.MultiheadAttention):
            raise CAEError(f"text block {i} is a {type(block).__name__} with {type(attn).__name__} attention; only "
                           "open_clip's ResidualAttentionBlock over nn.MultiheadAttention can be patched")
        if (not attn._qkv_same_embed_dim or attn.in_proj_weight is None or attn.bias_k is not None
                or attn.add_zero_attn):
            raise CAEError(f"text block {i}: nn.MultiheadAttention with separate q/k/v projections, bias_k/bias_v "
                           "or add_zero_attn is not supported")
    return model


def _check_tokens(model: nn.Module, tokens: Any) -> None:
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 or tokens.dtype not in (torch.long, torch.int):
        raise CAEError(f"tokens must be an integer tensor [N, L], got {getattr(tokens, 'shape', type(tokens))}")
    length = model.positional_embedding.shape[0]
    if tokens.shape[0] == 0 or tokens.shape[1] != length:
        raise CAEError(f"tokens must be [N >= 1, {length}] (the model's context length), got {tuple(tokens.shape)}")


def _check_images(model: nn.Module, image_features: Any, n: int) -> None:
    if not isinstance(image_features, torch.Tensor) or image_features.dim() != 2 or image_features.shape[0] != n:
        raise CAEError(f"image_features must be a float tensor [{n}, D] (one image per caption), got "
                       f"{getattr(image_features, 'shape', type(image_features))}")
    proj = getattr(model, "text_projection", None)
    dim = proj.out_features if isinstance(proj, nn.Linear) else proj.shape[1] if proj is not None else None
    if dim is not None and image_features.shape[1] != dim:
        raise CAEError(f"image_features have {image_features.shape[1]} dims, the text features {dim}")


def pooled_positions(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """The position each caption is pooled at (its end-of-text token), ``[N]``; as open_clip's text pooling."""
    model = text_model(model)
    if getattr(model, "text_pool_type", "argmax") == "eos":
        return (tokens == model.text_eos_id).int().argmax(dim=-1)
    return tokens.argmax(dim=-1)


def similarity(model: Any, image_features: torch.Tensor, text_features: torch.Tensor,
               scaled: bool = True) -> torch.Tensor:
    """``S(I_n, T_n)`` of paired rows, ``[N]``: cosine times ``logit_scale.exp()`` (paper B eq. 1) if ``scaled``.

    A SigLIP-style ``logit_bias`` is left out: it is the same for every pair, so no attribution depends on it.
    """
    model = model.model if not isinstance(model, nn.Module) and hasattr(model, "model") else model
    img = F.normalize(image_features.to(text_features.dtype), dim=-1)
    s = (img * F.normalize(text_features, dim=-1)).sum(-1)
    return s * model.logit_scale.exp().to(s.dtype).reshape(()) if scaled else s


# --------------------------------------------------------------------------------------------------
# explicit attention
# --------------------------------------------------------------------------------------------------


def _explicit_forward(mha: nn.MultiheadAttention, record: list[torch.Tensor]) -> Callable:
    """A forward for ``mha`` that computes self-attention from its own weights and keeps the probabilities."""

    def forward(query, key=None, value=None, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        if (key is not None and key is not query) or (value is not None and value is not query):
            raise CAEError("explicit_attention handles self-attention only (query, key and value the same tensor)")
        if key_padding_mask is not None:
            raise CAEError("explicit_attention does not handle key_padding_mask (open_clip's CLIP passes none)")
        if mha.training and mha.dropout > 0:
            raise CAEError("explicit_attention computes attention without dropout: call model.eval() or use "
                           "attention dropout 0")
        x = query if mha.batch_first else query.transpose(0, 1)  # [N, L, D]
        n, length, width = x.shape
        heads = mha.num_heads
        qkv = F.linear(x, mha.in_proj_weight, mha.in_proj_bias).view(n, length, 3, heads, width // heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [N, H, L, d]
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(width // heads)
        if attn_mask is not None:
            mask = attn_mask.view(n, heads, length, length) if attn_mask.dim() == 3 else attn_mask
            scores = scores.masked_fill(mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
        if is_causal and attn_mask is None:
            causal = torch.ones(length, length, dtype=torch.bool, device=x.device).triu(1)
            scores = scores.masked_fill(causal, float("-inf"))
        probs = scores.softmax(dim=-1)
        record.append(probs)
        out = mha.out_proj((probs @ v).transpose(1, 2).reshape(n, length, width))
        out = out if mha.batch_first else out.transpose(0, 1)
        weights = (probs.mean(1) if average_attn_weights else probs) if need_weights else None
        return out, weights

    return forward


@contextlib.contextmanager
def explicit_attention(model: Any) -> Iterator[list[torch.Tensor]]:
    """Within the block, the text tower's attention is computed explicitly and its probabilities recorded.

    PyTorch's fused ``nn.MultiheadAttention`` never materialises the attention probabilities, but GradCAM needs
    ``dS/dA`` of the very ``A`` the forward used. So every ``nn.MultiheadAttention`` of
    ``model.transformer.resblocks`` gets, for the duration of the block, a forward that computes the same math
    from its own weights (q/k/v from ``in_proj_weight``/``in_proj_bias``, scaled dot product, the causal
    ``attn_mask`` the model passes, softmax, no dropout, ``out_proj``): the same model, not a second one, and
    ``encode_text`` gives the same features (to float rounding). Yields a list that receives each block's
    probabilities ``[N, heads, L, L]`` in order, as part of the autograd graph (one entry per block per
    forward). The original forwards are restored on exit, also on error.
    """
    clip = text_model(model)
    blocks = list(clip.transformer.resblocks)
    if any("forward" in vars(b.attn) for b in blocks):
        raise CAEError("the text attention is already patched (nested explicit_attention?)")
    record: list[torch.Tensor] = []
    try:
        for block in blocks:
            block.attn.forward = _explicit_forward(block.attn, record)
        yield record
    finally:
        for block in blocks:
            vars(block.attn).pop("forward", None)


@contextlib.contextmanager
def _input_embeddings(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Records the output of ``model.token_embedding`` (made a grad-requiring leaf when the model is frozen)."""
    record: list[torch.Tensor] = []

    def hook(module, inputs, output):
        if not output.requires_grad:
            output = output.detach().requires_grad_(True)
        record.append(output)
        return output

    handle = model.token_embedding.register_forward_hook(hook)
    try:
        yield record
    finally:
        handle.remove()


# --------------------------------------------------------------------------------------------------
# the four methods
# --------------------------------------------------------------------------------------------------


def attention_attribution(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """Paper B 3.1: the pooled token's attention row, averaged over heads and then over layers, ``[N, L]``.

    Each row sums to 1 (a mean of softmax rows) and is 0 after the end-of-text token (causal mask). It is
    differentiable w.r.t. the parameters whenever autograd is on.
    """
    clip = text_model(model)
    _check_tokens(clip, tokens)
    eot = pooled_positions(clip, tokens)
    with explicit_attention(clip) as record:
        clip.encode_text(tokens)
    rows = torch.arange(tokens.shape[0], device=tokens.device)
    per_layer = torch.stack([a[rows, :, eot].mean(1) for a in record])  # [layers, N, L]
    return per_layer.mean(0)


def gradcam_attribution(model: Any, image_features: torch.Tensor, tokens: torch.Tensor,
                        create_graph: bool = False, scaled: bool = True) -> torch.Tensor:
    """Paper B 3.2 (eq. 7-8), Chefer et al. 2021: the end-of-text row of the relevance map ``R``, ``[N, L]``.

    Per layer ``E_i = mean_heads(clamp(dS/dA_i * A_i, min=0))`` (the product is clamped, then heads averaged, as
    in Chefer's code); ``R = I`` and ``R <- R + E_i R`` for the layers in order. Only the end-of-text row is
    needed, so it is propagated as a row vector from the last layer down (the same product, ``L`` times fewer
    flops). ``S`` is summed over the matching pairs; each caption's ``S`` depends on its own tokens only, so
    every row gets its own gradient. ``create_graph=True`` keeps the result differentiable w.r.t. the parameters
    (second-order through ``dS/dA``), as the CAE loss needs; otherwise the result is detached.
    """
    clip = text_model(model)
    _check_tokens(clip, tokens)
    _check_images(clip, image_features, tokens.shape[0])
    eot = pooled_positions(clip, tokens)
    with torch.enable_grad():
        with explicit_attention(clip) as record, _input_embeddings(clip):
            text = clip.encode_text(tokens)
        score = similarity(clip, image_features, text, scaled).sum()
        grads = torch.autograd.grad(score, record, create_graph=create_graph)
        n, length = tokens.shape
        row = F.one_hot(eot, length).to(text.dtype)  # e_eot^T, then e_eot^T (I + E_last) ... (I + E_1)
        for probs, grad in zip(reversed(record), reversed(grads)):
            if not create_graph:
                probs = probs.detach()
            e = (grad * probs).clamp(min=0).mean(1)  # [N, L, L]
            row = row + (row.unsqueeze(1) @ e).squeeze(1)
    return row if create_graph else row.detach()


def gradient_attribution(model: Any, image_features: torch.Tensor, tokens: torch.Tensor,
                         create_graph: bool = False, scaled: bool = True, temperature: float = 1.0) -> torch.Tensor:
    """Paper B 3.4 (eq. 10): ``a_i = sum_j |dS/dx_ij|``, softmaxed over the caption's tokens, ``[N, L]``.

    ``x`` is the output of ``model.token_embedding`` (before the positional embedding is added; the sum is
    linear, so the gradient is the same after it). The softmax runs over the real tokens, start to end-of-text;
    padding is masked with ``-inf`` and gets exactly 0. ``create_graph=True`` keeps the result differentiable
    w.r.t. the parameters (the forward then runs under :func:`explicit_attention`, because PyTorch's fused
    attention kernels cannot be differentiated twice); otherwise it is detached.

    Paper B's softmax has temperature 1. The raw sums are not small (hundreds on a random-init clipscope-tiny,
    whose token embeddings are tiny before ``ln_1``), so it can saturate to one token; ``temperature > 1``
    (``softmax(a / temperature)``) softens it, a departure from the paper to be reported where used.
    """
    if not temperature > 0:
        raise CAEError(f"temperature must be positive, got {temperature!r}")
    clip = text_model(model)
    _check_tokens(clip, tokens)
    _check_images(clip, image_features, tokens.shape[0])
    eot = pooled_positions(clip, tokens)
    # the fused attention kernels have no double backward: with create_graph, use the same math made explicit
    patch = explicit_attention(clip) if create_graph else contextlib.nullcontext()
    with torch.enable_grad():
        with patch, _input_embeddings(clip) as record:
            text = clip.encode_text(tokens)
        score = similarity(clip, image_features, text, scaled).sum()
        (grad,) = torch.autograd.grad(score, record[0], create_graph=create_graph)
        raw = grad.abs().sum(-1)  # [N, L]
        padding = torch.arange(tokens.shape[1], device=tokens.device) > eot.unsqueeze(1)
        out = (raw / temperature).masked_fill(padding, float("-inf")).softmax(dim=-1)
    return out if create_graph else out.detach()


def _flatten_concepts(tokens: torch.Tensor, replacements: Any, positions: Any):
    """Checks the concept lists and flattens them: variant tokens, owner caption, concept id, position ids."""
    n, length = tokens.shape
    if not isinstance(replacements, Sequence) or not isinstance(positions, Sequence):
        raise CAEError("replacements and positions must be lists (one per caption) of lists (one per concept)")
    if len(replacements) != n or len(positions) != n:
        raise CAEError(f"replacements ({len(replacements)}) and positions ({len(positions)}) need one entry per "
                       f"caption ({n})")
    variants, owner, concept_of_variant, flat_pos, concept_of_pos = [], [], [], [], []
    concept = 0
    for i, (reps, poss) in enumerate(zip(replacements, positions)):
        if len(reps) != len(poss):
            raise CAEError(f"caption {i}: {len(reps)} replacement sets but {len(poss)} position lists")
        for c, (rep, pos) in enumerate(zip(reps, poss)):
            if not isinstance(rep, torch.Tensor) or rep.dim() != 2 or rep.shape[0] == 0 or rep.shape[1] != length:
                raise CAEError(f"caption {i}, concept {c}: replacements must be an integer tensor [P >= 1, {length}]"
                               f", got {getattr(rep, 'shape', type(rep))}")
            pos = sorted({int(p) for p in pos})
            if any(p < 0 or p >= length for p in pos):
                raise CAEError(f"caption {i}, concept {c}: positions {pos} must be token positions in [0, {length})")
            if not pos:  # a concept lost to truncation: it has no token to score, so its variants are not run
                continue
            variants.append(rep.to(tokens.device, tokens.dtype))
            owner += [i] * rep.shape[0]
            concept_of_variant += [concept] * rep.shape[0]
            flat_pos += [i * length + p for p in pos]
            concept_of_pos += [concept] * len(pos)
            concept += 1
    return variants, owner, concept_of_variant, flat_pos, concept_of_pos, concept


def perturbation_attribution(model: Any, image_features: torch.Tensor, tokens: torch.Tensor,
                             replacements: Sequence[Sequence[torch.Tensor]],
                             positions: Sequence[Sequence[Sequence[int]]],
                             scaled: bool = True) -> torch.Tensor:
    """Paper B 3.3 (eq. 9): the mean drop ``S(I_n, T_n) - S(I_n, T_perturbed)`` per concept, ``[N, L]``.

    For caption ``n`` and concept ``c``: ``replacements[n][c]`` holds the ``P`` re-tokenised captions with that
    concept replaced (see :func:`perturbations`) and ``positions[n][c]`` the concept's token positions in the
    original caption; every one of them gets the concept's mean drop, other positions 0 (a position two concepts
    share gets the mean of their drops; a concept with no positions, e.g. truncated away, is skipped). All
    captions and all variants go through the text tower in one forward pass. Differentiable through both ``S``
    terms (pass detached image features for eq. 9's stop-gradient).
    """
    clip = text_model(model)
    _check_tokens(clip, tokens)
    _check_images(clip, image_features, tokens.shape[0])
    variants, owner, cov, flat_pos, cop, n_concepts = _flatten_concepts(tokens, replacements, positions)
    n, length = tokens.shape
    if not n_concepts:
        return tokens.new_zeros((n, length), dtype=image_features.dtype)
    device = tokens.device
    owner_t = torch.tensor(owner, device=device)
    text = clip.encode_text(torch.cat([tokens, *variants]))
    original = similarity(clip, image_features, text[:n], scaled)
    perturbed = similarity(clip, image_features[owner_t], text[n:], scaled)
    drop = original[owner_t] - perturbed
    cov_t = torch.tensor(cov, device=device)
    sums = drop.new_zeros(n_concepts).index_add(0, cov_t, drop)
    mean = sums / torch.bincount(cov_t, minlength=n_concepts).to(drop.dtype)
    flat = torch.tensor(flat_pos, device=device)
    total = drop.new_zeros(n * length).index_add(0, flat, mean[torch.tensor(cop, device=device)])
    shared = drop.new_zeros(n * length).index_add(0, flat, torch.ones_like(flat, dtype=drop.dtype))
    return (total / shared.clamp(min=1)).view(n, length)


# --------------------------------------------------------------------------------------------------
# building the perturbed captions (appendix I)
# --------------------------------------------------------------------------------------------------


def perturbations(texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int, str]]],
                  candidates: Mapping[str, Sequence[str]], tokenizer: Callable,
                  span_positions: Callable, n_perturb: int = 4, seed: int = 0):
    """The perturbed captions of eq. 9: each concept span replaced by ``n_perturb`` other words of its role.

    ``spans[n]`` lists ``(start, end, role)`` character spans of ``texts[n]``; ``candidates[role]`` the words a
    span of that role may become (paper B: Visual Genome's 150 objects, 200 attributes, 36 relations; pass
    your own). A replacement never equals the span's own text (case-insensitive), so each variant really
    changes the caption. Words for caption ``n``, concept ``c`` are drawn without replacement (with replacement
    only if the role has fewer than ``n_perturb`` alternatives) by ``np.random.default_rng([seed, n, c])``, so a
    caption's variants do not depend on the rest of the batch. Paper B does not say how many variants it drew.
    ``span_positions(texts, spans)`` gives each span's token positions in the original caption (the roles
    module provides it). Returns ``(replacements, positions)`` for :func:`perturbation_attribution`:
    ``replacements[n][c]`` a ``[n_perturb, L]`` token tensor and ``positions[n][c]`` a list of ints.
    """
    if isinstance(texts, str) or len(spans) != len(texts):
        raise CAEError(f"need a list of texts and one span list per text, got {len(texts)} texts and "
                       f"{len(spans)} span lists")
    if not isinstance(n_perturb, (int, np.integer)) or n_perturb < 1:
        raise CAEError(f"n_perturb must be a positive integer, got {n_perturb!r}")
    pools: list[list[list[str]]] = []
    for n, (text, caption_spans) in enumerate(zip(texts, spans)):
        pools.append([])
        for c, span in enumerate(caption_spans):
            if len(span) != 3:
                raise CAEError(f"text {n}, span {c}: expected (start, end, role), got {span!r}")
            start, end, role = span
            if not 0 <= start < end <= len(text):
                raise CAEError(f"text {n}, span {c}: ({start}, {end}) is not a non-empty span of {text!r}")
            if role not in candidates:
                raise CAEError(f"text {n}, span {c}: no candidate words for role {role!r} "
                               f"(candidates has {sorted(candidates)})")
            own = text[start:end].strip().casefold()
            pool = [w for w in candidates[role] if w.strip().casefold() != own]
            if not pool:
                raise CAEError(f"text {n}, span {c}: no candidate {role!r} differs from {text[start:end]!r}")
            pools[n].append(pool)
    positions = span_positions(texts, spans)
    if len(positions) != len(texts) or any(len(p) != len(s) for p, s in zip(positions, spans)):
        raise CAEError("span_positions must give one position list per span of every text")
    variant_texts: list[str] = []
    for n, (text, caption_spans) in enumerate(zip(texts, spans)):
        for c, ((start, end, _), pool) in enumerate(zip(caption_spans, pools[n])):
            rng = np.random.default_rng([seed, n, c])
            picks = rng.choice(len(pool), size=n_perturb, replace=len(pool) < n_perturb)
            variant_texts += [text[:start] + pool[k] + text[end:] for k in picks]
    tokens = tokenizer(variant_texts) if variant_texts else None
    replacements, row = [], 0
    for caption_spans in spans:
        replacements.append([tokens[row + k * n_perturb: row + (k + 1) * n_perturb] for k in range(len(caption_spans))])
        row += len(caption_spans) * n_perturb
    return replacements, [[list(map(int, p)) for p in caption] for caption in positions]


# --------------------------------------------------------------------------------------------------
# dispatcher
# --------------------------------------------------------------------------------------------------


def attribution(method: str, model: Any, image_features: torch.Tensor | None, tokens: torch.Tensor, *,
                replacements: Sequence[Sequence[torch.Tensor]] | None = None,
                positions: Sequence[Sequence[Sequence[int]]] | None = None,
                create_graph: bool = False, scaled: bool = True, temperature: float = 1.0) -> torch.Tensor:
    """The attribution ``[N, L]`` of one of :data:`METHODS`, so that the CAE loop can take the method as data.

    ``temperature`` divides the gradient method's summed gradients before its softmax (1 = paper B).

    ``attention`` ignores ``image_features``; ``perturbation`` needs ``replacements`` and ``positions`` and is
    differentiable whenever autograd is on (``create_graph`` only matters for ``gradcam`` and ``gradient``).
    """
    if method not in METHODS:
        raise CAEError(f"unknown attribution method {method!r}; choose one of {METHODS}")
    if method == "perturbation" and (replacements is None or positions is None):
        raise CAEError("the perturbation method needs replacements and positions (see perturbations())")
    if method != "attention" and image_features is None:
        raise CAEError(f"the {method} method needs image_features")
    if method == "attention":
        return attention_attribution(model, tokens)
    if method == "gradcam":
        return gradcam_attribution(model, image_features, tokens, create_graph=create_graph, scaled=scaled)
    if method == "gradient":
        return gradient_attribution(model, image_features, tokens, create_graph=create_graph, scaled=scaled,
                                    temperature=temperature)
    return perturbation_attribution(model, image_features, tokens, replacements, positions, scaled=scaled)
