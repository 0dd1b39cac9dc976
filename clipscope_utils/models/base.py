"""What every model of the book is, before and after loading: its spec (a name resolved, nothing loaded) and
its :class:`Encoder` (a loaded model that embeds batches). Both the CLIP loader and the text baselines build
on these, so neither imports the other's internals.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import constants

from ..paths import cache_dir

WEIGHTS_ENV = "CLIPSCOPE_WEIGHTS"
CLIP_SOURCES = ("pretrained", "hf-hub", "checkpoint", "random", "trained")
TEXT_SOURCES = ("sbert", "glove", "simcse")


class ModelError(ValueError):
    """A model name that cannot be resolved, or a model whose weights cannot be found or loaded."""



@dataclass(frozen=True)
class ModelSpec:
    """What a model name means, without loading anything.

    ``source``: "pretrained" (open_clip tag), "hf-hub", "checkpoint" (local file), "random" (seeded random
    init), or a text baseline ("sbert", "glove", "simcse"). ``path`` is the checkpoint file (or model folder)
    when known; ``weights_file`` the file name looked up in the weights folder for the paper's fine-tunes.
    """

    name: str
    source: str
    arch: str = ""
    pretrained: str = ""
    path: str = ""
    seed: int | None = None
    quick_gelu: bool = False
    paper_name: str = ""
    weights_file: str = ""
    note: str = field(default="", compare=False)

    @property
    def kind(self) -> str:
        return "text" if self.source in TEXT_SOURCES else "clip"

    def describe(self) -> str:
        """A one-line description naming the open_clip identifiers, for messages and tables."""
        if self.source == "pretrained":
            return f"open_clip ('{self.arch}', '{self.pretrained}')"
        if self.source == "hf-hub":
            return f"open_clip 'hf-hub:{self.arch}'"
        if self.source == "checkpoint":
            where = self.path or f"<weights folder>/{self.weights_file}"
            return f"open_clip arch '{self.arch}' with checkpoint {where}"
        if self.source == "random":
            return f"open_clip arch '{self.arch}', random init (seed {self.seed})"
        if self.source == "trained":
            return (f"open_clip arch '{self.arch}' trained here on {self.pretrained} captions (seed {self.seed}; "
                    f"{self.note})")
        return f"text baseline {self.source} ({self.arch})"



def weights_dir() -> Path:
    """The folder of local checkpoint files: ``$CLIPSCOPE_WEIGHTS``, else ``<cache>/weights``."""
    env = os.environ.get(WEIGHTS_ENV)
    return Path(env).expanduser() if env else cache_dir() / "weights"



class Encoder:
    """A loaded model: encodes one batch of texts (and images, for CLIP models) to unnormalised vectors.

    ``identity`` is a JSON-able dict of everything that determines the outputs (weights hash, seed,
    configs, tokenizer, library versions); the embedding cache keys on it. Batching, normalisation and
    caching live in :mod:`clipscope_utils.embeddings`.
    """

    kind = "clip"
    has_images = True

    def __init__(self, spec: ModelSpec, device: torch.device, identity: dict[str, Any], embed_dim: int,
                 preprocess: Any = None):
        self.spec = spec
        self.device = device
        self.identity = identity
        self.embed_dim = embed_dim
        self.preprocess = preprocess

    @property
    def name(self) -> str:
        return self.spec.name

    def describe_preprocess(self) -> str:
        """The image transform as a stable string (memory addresses removed), for cache keys."""
        if self.preprocess is None:
            return ""
        return re.sub(r" at 0x[0-9a-fA-F]+", "", re.sub(r"\s+", " ", repr(self.preprocess))).strip()

    def describe_tokenizer(self) -> str:
        return json.dumps(self.identity.get("tokenizer", {}), sort_keys=True)

    def tokenize(self, texts: Sequence[str]) -> Any:
        raise NotImplementedError

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        raise NotImplementedError

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        raise ModelError(f"model {self.name!r} is text-only: it has no image encoder.")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.spec.describe()}, device={self.device})"



def offline() -> bool:
    """Whether the environment forbids downloads (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``)."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    return False


def hf_cache() -> str | None:
    """The Hugging Face hub cache folder as the environment says now (None: huggingface_hub's default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def hf_cache_label() -> str:
    if hf_cache():
        return hf_cache()
    return constants.HF_HUB_CACHE


