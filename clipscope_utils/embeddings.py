"""Batched, cached embeddings of texts and image files for any model of :mod:`clipscope_utils.models`.

``embed_texts(encoder, texts)`` and ``embed_images(encoder, paths)`` return ``(N, D)`` float32 arrays whose
rows are L2-normalised, in input order. Batches run under ``torch.inference_mode()``; on CUDA under
autocast (bf16 where the GPU supports it, else fp16), on CPU in fp32.

Cache: ``<cache>/embeddings/<key>.npy`` plus a sidecar ``<key>.json``. The key is the sha256 of a canonical
JSON of the *key material*: the encoder's identity (weights hash, seed, configs, library versions), the
modality, the tokenizer (texts) or image transform (images) description, the device type and precision, and
a content hash of the inputs (the exact texts in order; the sha256 of each image file's bytes in order).
A cached array is served only if its sidecar holds the same key material and the array's shape and sha256
match the sidecar; anything else (a corrupt or foreign file) is recomputed and overwritten. Files are
written atomically (temporary file + ``os.replace``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .datasets.tables import DatasetError, open_image
from .models.base import Encoder, ModelError
from .paths import atomic_write, cache_dir, file_sha256

CACHE_FORMAT = 1
log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------ keys


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def texts_sha256(texts: Sequence[str]) -> str:
    """sha256 of the exact list of texts, in order."""
    return hashlib.sha256(_canonical(list(texts)).encode("utf-8")).hexdigest()


def files_sha256(paths: Sequence[str | os.PathLike]) -> str:
    """sha256 over the sha256 of each file's bytes, in order (paths themselves do not count)."""
    outer = hashlib.sha256()
    for path in paths:
        try:
            outer.update(bytes.fromhex(file_sha256(path)))
        except FileNotFoundError:
            raise DatasetError(f"image file {path} is missing") from None
    return outer.hexdigest()


def precision(encoder: Encoder, amp: bool = True) -> str:
    """The compute precision used for ``encoder``: "bf16"/"fp16" autocast on CUDA (if ``amp``), else "fp32"."""
    if amp and encoder.device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def _autocast(encoder: Encoder, prec: str):
    if prec == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16 if prec == "bf16" else torch.float16)


def key_material(encoder: Encoder, modality: str, inputs_sha256: str, count: int, amp: bool = True) -> dict:
    """Everything an embedding array depends on, as a JSON-normalised dict."""
    if modality not in ("text", "image"):
        raise ValueError(f"modality must be 'text' or 'image', got {modality!r}")
    material = {
        "format": CACHE_FORMAT,
        "identity": encoder.identity,
        "modality": modality,
        "transform": encoder.describe_tokenizer() if modality == "text" else encoder.describe_preprocess(),
        "device_type": encoder.device.type,
        "precision": precision(encoder, amp),
        "normalised": "l2",
        "inputs": {"count": int(count), "sha256": inputs_sha256},
    }
    return json.loads(_canonical(material))


def _key(material: dict) -> str:
    return hashlib.sha256(_canonical(material).encode("utf-8")).hexdigest()


def cache_key(encoder: Encoder, inputs: Sequence[str | os.PathLike], modality: str = "text",
              amp: bool = True) -> str:
    """The cache key of embedding ``inputs`` (texts, or image file paths for ``modality="image"``)."""
    inputs = list(inputs)
    digest = texts_sha256(inputs) if modality == "text" else files_sha256(inputs)
    return _key(key_material(encoder, modality, digest, len(inputs), amp))


def embeddings_dir() -> Path:
    """The embedding cache folder, ``<cache>/embeddings``."""
    return cache_dir() / "embeddings"


# ------------------------------------------------------------------------------------------ cache files


def _array_sha256(arr: np.ndarray) -> str:
    return hashlib.sha256(memoryview(np.ascontiguousarray(arr)).cast("B")).hexdigest()


def _read_cache(folder: Path, key: str, material: dict) -> np.ndarray | None:
    npy, side = folder / f"{key}.npy", folder / f"{key}.json"
    if not (npy.is_file() and side.is_file()):
        return None
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
        if meta.get("key_material") != material:
            log.warning("embedding cache %s: sidecar key material differs from the request; recomputing", side)
            return None
        arr = np.load(npy, allow_pickle=False)
        count = material["inputs"]["count"]
        if (arr.dtype != np.float32 or arr.ndim != 2 or list(arr.shape) != meta.get("shape")
                or arr.shape[0] != count or _array_sha256(arr) != meta.get("array_sha256")):
            log.warning("embedding cache %s: array does not match its sidecar; recomputing", npy)
            return None
        return arr
    except Exception as e:  # noqa: BLE001 - a corrupt cache file must never crash a run
        log.warning("embedding cache %s unreadable (%s: %s); recomputing", npy, type(e).__name__, e)
        return None


def _write_cache(folder: Path, key: str, material: dict, arr: np.ndarray) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"key_material": material, "shape": list(arr.shape), "dtype": "float32",
                "array_sha256": _array_sha256(arr)}
        atomic_write(folder / f"{key}.npy", lambda f: np.save(f, arr, allow_pickle=False))
        atomic_write(folder / f"{key}.json", lambda f: f.write(json.dumps(meta, indent=1).encode("utf-8")))
    except OSError as e:  # a full or read-only disk costs the cache, not the result
        log.warning("could not write embedding cache %s (%s); results are not cached", folder / key, e)


def _cache_folder(cache: bool | str | os.PathLike) -> Path | None:
    if cache is False or cache is None:
        return None
    return embeddings_dir() if cache is True else Path(cache)


# ------------------------------------------------------------------------------------------ engine


def _normalise(out: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.maximum(norms, 1e-12, out=norms)
    out /= norms
    return out


def _run(encoder: Encoder, batches: Iterable[tuple[int, Any]], count: int, encode, prec: str,
         progress: bool, desc: str) -> np.ndarray:
    out: np.ndarray | None = None
    with torch.inference_mode(), _autocast(encoder, prec), \
            tqdm(total=count, disable=not progress, desc=desc, unit="item") as bar:
        for start, batch in batches:
            feats = encode(batch)
            if out is None:
                out = np.empty((count, feats.shape[1]), dtype=np.float32)
            n = feats.shape[0]
            out[start:start + n] = feats.numpy()
            bar.update(n)
    assert out is not None
    return _normalise(out)


def _cached(encoder: Encoder, modality: str, digest: str, count: int, cache, amp: bool,
            compute) -> np.ndarray:
    material = key_material(encoder, modality, digest, count, amp)
    folder = _cache_folder(cache)
    key = _key(material)
    if folder is not None:
        hit = _read_cache(folder, key, material)
        if hit is not None:
            return hit
    out = compute(material["precision"])
    if folder is not None:
        _write_cache(folder, key, material, out)
    return out


def embed_texts(encoder: Encoder, texts: Sequence[str], batch_size: int = 256, cache: bool | str | os.PathLike = True,
                progress: bool = True, amp: bool = True) -> np.ndarray:
    """Embed ``texts`` with ``encoder``: an (N, D) float32 array of L2-normalised rows, in input order.

    ``cache``: True (the project cache), False, or a folder. ``amp``: autocast on CUDA (ignored on CPU).
    """
    if isinstance(texts, str):
        raise TypeError("embed_texts takes a list of texts, not one string")
    texts = list(texts)
    bad = next((t for t in texts if not isinstance(t, str)), None)
    if bad is not None:
        raise TypeError(f"every text must be a str, got {type(bad).__name__}: {bad!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not texts:
        return np.zeros((0, encoder.embed_dim), dtype=np.float32)

    def compute(prec: str) -> np.ndarray:
        batches = ((i, texts[i:i + batch_size]) for i in range(0, len(texts), batch_size))
        return _run(encoder, batches, len(texts), encoder.encode_texts, prec, progress,
                    f"texts ({encoder.name})")

    return _cached(encoder, "text", texts_sha256(texts), len(texts), cache, amp, compute)


class _ImageFiles(torch.utils.data.Dataset):
    def __init__(self, paths: Sequence[Path], preprocess):
        self.paths, self.preprocess = paths, preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.preprocess(open_image(self.paths[i]))


def _image_batches(encoder: Encoder, paths: Sequence[Path], batch_size: int, workers: int
                   ) -> Iterator[tuple[int, torch.Tensor]]:
    data = _ImageFiles(paths, encoder.preprocess)
    if workers <= 0:
        for start in range(0, len(paths), batch_size):
            yield start, torch.stack([data[i] for i in range(start, min(start + batch_size, len(paths)))])
        return
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=workers,
                                         pin_memory=encoder.device.type == "cuda")
    start = 0
    for batch in loader:
        yield start, batch
        start += batch.shape[0]


def embed_images(encoder: Encoder, paths: Sequence[str | os.PathLike], batch_size: int = 64,
                 cache: bool | str | os.PathLike = True, progress: bool = True, workers: int = 0,
                 amp: bool = True) -> np.ndarray:
    """Embed image files (read as RGB, then ``encoder.preprocess``): (N, D) float32, L2-normalised rows.

    ``workers`` > 0 decodes images in that many DataLoader worker processes.
    """
    if not encoder.has_images:
        raise ModelError(f"model {encoder.name!r} is text-only: it cannot embed images")
    if isinstance(paths, (str, os.PathLike)):
        raise TypeError("embed_images takes a list of image paths, not one path")
    paths = [Path(p) for p in paths]
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not paths:
        return np.zeros((0, encoder.embed_dim), dtype=np.float32)

    def compute(prec: str) -> np.ndarray:
        return _run(encoder, _image_batches(encoder, paths, batch_size, workers), len(paths),
                    encoder.encode_images, prec, progress, f"images ({encoder.name})")

    return _cached(encoder, "image", files_sha256(paths), len(paths), cache, amp, compute)
