"""Training speed on CPU without changing what a run learns: bf16 matmuls, fp32 attention, a fitted context.

Measured on the book's 2-core Zen 4 machine (``benchmarks/training.py``): bf16 autocast alone is *slower*
than fp32, because CPU scaled-dot-product attention in bf16 is several times slower than in fp32; with the
attention kernel kept in fp32 the rest of the step (the matmuls) runs on the cores' AVX-512 BF16 units.
The loss is always computed in fp32 from fp32 features. On CUDA, bf16 autocast is used as is.

Text positions past the longest training caption never get a gradient (the text tower is causal and pools
at the end-of-text token), so a run trains with the positional table cut to the captions' length and saves
checkpoints at the architecture's full context; the untouched rows keep their initial values.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F

PRECISIONS = ("fp32", "bf16")
_sdpa = F.scaled_dot_product_attention


def _sdpa_fp32(query, key, value, *args, **kwargs):
    with torch.autocast("cpu", enabled=False):
        out = _sdpa(query.float(), key.float(), value.float(), *args, **kwargs)
    return out.to(query.dtype)


@contextlib.contextmanager
def autocast(device: torch.device | str, precision: str) -> Iterator[None]:
    """The forward pass's precision: fp32, or bf16 autocast (on CPU with the attention kernel in fp32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    device_type = torch.device(device).type
    if precision == "fp32":
        yield
        return
    with torch.autocast(device_type, dtype=torch.bfloat16):
        if device_type != "cpu":
            yield
            return
        # torch.nn.functional.multi_head_attention_forward looks the kernel up at call time
        F.scaled_dot_product_attention = _sdpa_fp32
        try:
            yield
        finally:
            F.scaled_dot_product_attention = _sdpa


class FittedContext:
    """A CLIP's text tower narrowed to ``length`` positions for training, and its full-size state for saving."""

    def __init__(self, model: torch.nn.Module, length: int):
        self.model = model
        full = getattr(model, "positional_embedding", None)
        if full is None:  # not a plain open_clip CLIP text tower: train it as it is
            self.length, self.rest = 0, None
            return
        self.length = min(int(length), full.shape[0])
        self.rest = full.detach()[self.length:].clone()  # never trained: kept at their initial values
        if self.length < full.shape[0]:
            model.positional_embedding = torch.nn.Parameter(full.detach()[:self.length].clone())
            model.attn_mask = model.attn_mask[:self.length, :self.length]

    def state_dict(self) -> dict:
        """The model's weights at the architecture's full context (a checkpoint any loader reads)."""
        state = self.model.state_dict()
        if self.rest is None:
            return state
        state["positional_embedding"] = torch.cat([state["positional_embedding"], self.rest.to(
            state["positional_embedding"])])
        return state

    def load_state_dict(self, state: dict) -> None:
        state = dict(state)
        if self.rest is not None:
            state["positional_embedding"] = state["positional_embedding"][:self.length]
        self.model.load_state_dict(state)


def caption_length(tokenizer, texts, limit: int = 77) -> int:
    """Tokens of the longest caption, start and end tokens included (counted up to ``limit``)."""
    tokens = tokenizer(sorted(set(texts)), context_length=limit)
    return int((tokens != 0).sum(dim=1).max())
