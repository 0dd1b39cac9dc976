"""Benchmark: overhead of the embedding engine over a raw batched open_clip forward, and cache-hit time.

For each model (random-init controls, so no weights are needed) the *raw* loop is what a user would write
by hand: per batch, tokenise + ``model.encode_text`` (texts), or open + RGB-convert + ``preprocess`` +
stack + ``model.encode_image`` (images), under ``torch.inference_mode()``, same batch size. The *engine* is
``embed_texts`` / ``embed_images`` with ``cache=False, progress=False`` (it also hashes the inputs, copies
into one array and L2-normalises). Each is timed as the median of ``--repeats`` runs (raw and engine take
turns going first) after one warm-up run of each; the cache hit is the median time of a call whose result
is already cached (hashing inputs + reading and verifying the array). Writes ``benchmarks/EMBEDDINGS.md``.

    python benchmarks/embeddings.py [--quick] [--out PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from clipscope_utils.device import describe_device
from clipscope_utils.embeddings import embed_images, embed_texts
from clipscope_utils.models import load_model

#: (texts, images, timed repeats) per model: a ViT-B/32 forward costs ~6 GFLOP per caption and ~9 GFLOP
#: per 224-px image, so the base model gets fewer items and repeats to keep a CPU run to minutes; the tiny
#: model runs in about a second, so more repeats steady its medians.
DEFAULT_ITEMS = {"random:clipscope-tiny": (2048, 512, 7), "random:ViT-B-32": (256, 128, 3)}

COLORS = ["red", "green", "blue", "yellow", "purple", "orange", "black", "white"]
SHAPES = ["cube", "sphere", "cylinder", "cone", "torus", "pyramid", "star", "heart"]


def captions(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(1, 5))
        objs = [f"a {COLORS[rng.integers(len(COLORS))]} {SHAPES[rng.integers(len(SHAPES))]}" for _ in range(k)]
        out.append("a photo of " + " and ".join(objs))
    return out


def write_pngs(folder: Path, n: int, size: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"{size}px_{i:05d}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def raw_texts(encoder, texts: list[str], batch_size: int) -> list[torch.Tensor]:
    model, tokenizer, dev = encoder.model, encoder.tokenizer, encoder.device
    outs = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            tokens = tokenizer(texts[i:i + batch_size]).to(dev)
            outs.append(model.encode_text(tokens).float().cpu())
    return outs


def raw_images(encoder, paths: list[Path], batch_size: int) -> list[torch.Tensor]:
    model, preprocess, dev = encoder.model, encoder.preprocess, encoder.device
    outs = []
    with torch.inference_mode():
        for i in range(0, len(paths), batch_size):
            batch = []
            for p in paths[i:i + batch_size]:
                with Image.open(p) as im:
                    batch.append(preprocess(im.convert("RGB")))
            outs.append(model.encode_image(torch.stack(batch).to(dev)).float().cpu())
    return outs


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def compare(raw, engine, repeats: int) -> tuple[float, float]:
    raw(), engine()  # warm-up
    raw_t, eng_t = [], []
    for i in range(repeats):  # alternate which goes first, so drift favours neither
        if i % 2:
            eng_t.append(timed(engine))
            raw_t.append(timed(raw))
        else:
            raw_t.append(timed(raw))
            eng_t.append(timed(engine))
    return statistics.median(raw_t), statistics.median(eng_t)


def bench(model: str, n_texts: int, n_images: int, repeats: int, cache: Path, tmp: Path) -> list[dict]:
    enc = load_model(model, device="auto")
    size = enc.identity["preprocess"]["size"][0]
    texts = captions(n_texts)
    paths = write_pngs(tmp, n_images, size)
    rows = []
    for modality, n, bs, raw, engine in (
        ("text", n_texts, 256, lambda: raw_texts(enc, texts, 256),
         lambda: embed_texts(enc, texts, batch_size=256, cache=False, progress=False)),
        ("image", n_images, 64, lambda: raw_images(enc, paths, 64),
         lambda: embed_images(enc, paths, batch_size=64, cache=False, progress=False)),
    ):
        raw_s, eng_s = compare(raw, engine, repeats)
        # a cache hit: fill once, then time calls that only hash the inputs and read + verify the array
        embed, inputs = (embed_texts, texts) if modality == "text" else (embed_images, paths)
        embed(enc, inputs, batch_size=bs, cache=cache, progress=False)
        hit_s = statistics.median(
            timed(lambda: embed(enc, inputs, batch_size=bs, cache=cache, progress=False))  # noqa: B023
            for _ in range(max(repeats, 3))
        )
        row = {"model": model, "device": enc.device.type, "threads": torch.get_num_threads(),
               "modality": modality, "items": n, "batch": bs, "repeats": repeats,
               "input": f"{size}px PNG" if modality == "image" else "captions",
               "raw_s": raw_s, "engine_s": eng_s, "hit_s": hit_s}
        print(row, flush=True)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer items and repeats (a rough check)")
    parser.add_argument("--models", nargs="+", default=["random:clipscope-tiny", "random:ViT-B-32"])
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (default: per model, 3-7)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("EMBEDDINGS.md"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CLIPSCOPE_CACHE"] = str(Path(tmp) / "cache")  # never touch the project's cache
        for model in args.models:
            n_texts, n_images, repeats = DEFAULT_ITEMS.get(model, (256, 128, 3))
            repeats = args.repeats or (3 if args.quick else repeats)
            if args.quick:
                n_texts, n_images = max(n_texts // 4, 16), max(n_images // 4, 16)
            folder = Path(tmp) / model.replace(":", "_")
            folder.mkdir()
            rows += bench(model, n_texts, n_images, repeats, Path(tmp) / "cache" / "embeddings", folder)

    lines = [
        (f"Embedding engine vs a raw batched open_clip loop, measured {time.strftime('%Y-%m-%d')} on "
        f"{describe_device()}, torch {torch.__version__} with {torch.get_num_threads()} threads, by "
        "`benchmarks/embeddings.py` (median of *runs* timed runs after a warm-up; random-init models, so "
        "the numbers are about the engine, not the weights). *Raw*: tokenise + `encode_text`, or decode + "
        "preprocess + `encode_image`, per batch under `inference_mode`. *Engine*: `embed_texts` / "
        "`embed_images` with `cache=False` (adds input hashing, one output array, L2 normalisation). "
        "*Overhead* = engine time / raw time. *Cache hit*: a call whose result is cached (hash the inputs, "
        "read the array, verify it against its sidecar)."),
        "",
        ("| model | device | threads | inputs | items | batch | runs | raw items/s | engine items/s | overhead "
        "| cache hit (s) |"),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['model']}` | {r['device']} | {r['threads']} | {r['input']} | {r['items']} | {r['batch']} | "
            f"{r['repeats']} | "
            f"{r['items'] / r['raw_s']:.0f} | "
            f"{r['items'] / r['engine_s']:.0f} | {r['engine_s'] / r['raw_s']:.3f} | {r['hit_s']:.4f} |"
        )
    text = "\n".join(lines) + "\n"
    args.out.write_text(text)
    print(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
