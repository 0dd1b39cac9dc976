"""Embedding engine: normalisation, order, batching, the on-disk cache and its keys, corruption handling."""

from __future__ import annotations

import copy
import json

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from clipscope_utils import embeddings
from clipscope_utils.embeddings import cache_key, embed_images, embed_texts, key_material, texts_sha256
from clipscope_utils.models import ModelError, load_model

TEXTS = [f"a photo of {n} {c} cubes" for n in ("two", "three", "four") for c in ("red", "blue", "green")]


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPSCOPE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "embeddings"


@pytest.fixture(scope="module")
def tiny(offline_module_env):
    return load_model("random:clipscope-tiny:0", device="cpu")


@pytest.fixture(scope="module")
def tiny1(offline_module_env):
    return load_model("random:clipscope-tiny:1", device="cpu")


@pytest.fixture(scope="module")
def pngs(offline_module_env):
    folder = offline_module_env / "pngs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    paths = []
    for i in range(7):
        size = (64, 64) if i % 2 else (90, 70)  # some need resizing and cropping
        path = folder / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(folder / "gray.png")  # L mode
    return paths + [folder / "gray.png"]


class Counting:
    """Wrap an encoder to count model calls (a served cache hit makes none)."""

    def __init__(self, encoder):
        self.calls = 0
        self.encoder = encoder

    def __enter__(self):
        enc = self.encoder
        self.text, self.image = enc.encode_texts, enc.encode_images

        def text(batch):
            self.calls += 1
            return self.text(batch)

        def image(batch):
            self.calls += 1
            return self.image(batch)

        enc.encode_texts, enc.encode_images = text, image
        return self

    def __exit__(self, *exc):
        del self.encoder.encode_texts, self.encoder.encode_images


def test_rows_are_normalised_in_input_order_whatever_the_batch(tiny):
    out = embed_texts(tiny, TEXTS, batch_size=4, cache=False, progress=False)
    assert out.shape == (9, 64) and out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    raw = tiny.encode_texts(TEXTS).numpy()
    assert np.allclose(out, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-5)
    rev = embed_texts(tiny, TEXTS[::-1], batch_size=256, cache=False, progress=False)
    assert np.allclose(rev[::-1], out, atol=1e-5)


def test_cached_result_equals_fresh_and_skips_the_model(tiny, fresh_cache):
    fresh = embed_texts(tiny, TEXTS, cache=False, progress=False)
    first = embed_texts(tiny, TEXTS, progress=False)
    key = cache_key(tiny, TEXTS)
    assert (fresh_cache / f"{key}.npy").is_file() and (fresh_cache / f"{key}.json").is_file()
    with Counting(tiny) as count:
        hit = embed_texts(tiny, TEXTS, progress=True)
    assert count.calls == 0
    assert np.array_equal(hit, first) and np.allclose(hit, fresh, atol=1e-6)
    side = json.loads((fresh_cache / f"{key}.json").read_text())
    assert side["shape"] == [9, 64] and side["key_material"]["inputs"]["sha256"] == texts_sha256(TEXTS)
    assert not list(fresh_cache.glob(".*tmp"))  # no temporary files left behind


def test_cache_keys_separate_models_inputs_and_order(tiny, tiny1, tmp_path):
    base = cache_key(tiny, TEXTS)
    assert cache_key(tiny, list(TEXTS)) == base  # deterministic
    assert cache_key(tiny1, TEXTS) != base  # other seed
    assert cache_key(tiny, TEXTS[:-1] + ["a photo of five cubes"]) != base  # other texts
    assert cache_key(tiny, TEXTS[::-1]) != base  # other order
    assert cache_key(tiny, TEXTS[:-1]) != base
    # other weights file of the same architecture
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    torch.save(tiny.model.state_dict(), a)
    torch.save(tiny1.model.state_dict(), b)
    enc_a, enc_b = load_model(f"clipscope-tiny@{a}", device="cpu"), load_model(f"clipscope-tiny@{b}", device="cpu")
    assert cache_key(enc_a, TEXTS) != cache_key(enc_b, TEXTS)
    # a different model never gets another model's cached result
    out0 = embed_texts(tiny, TEXTS, progress=False)
    out1 = embed_texts(tiny1, TEXTS, progress=False)
    assert not np.allclose(out0, out1)


def test_image_keys_follow_content_and_preprocessing(tiny, pngs, tmp_path):
    base = cache_key(tiny, pngs, modality="image")
    assert cache_key(tiny, pngs, modality="text") != base
    assert cache_key(tiny, pngs[::-1], modality="image") != base
    # same bytes elsewhere: same key (content, not path); changed bytes: other key
    moved = []
    for p in pngs:
        q = tmp_path / p.name
        q.write_bytes(p.read_bytes())
        moved.append(q)
    assert cache_key(tiny, moved, modality="image") == base
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(moved[0])
    assert cache_key(tiny, moved, modality="image") != base
    # other preprocessing (e.g. another normalisation) -> other key
    other = copy.copy(tiny)
    other.preprocess = open_clip.image_transform(64, is_train=False, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert other.describe_preprocess() != tiny.describe_preprocess()
    assert cache_key(other, pngs, modality="image") != base
    mat_a = key_material(tiny, "image", "x", 1)
    mat_b = key_material(other, "image", "x", 1)
    assert mat_a["transform"] != mat_b["transform"]


def test_embed_images_cache_and_workers(tiny, pngs):
    out = embed_images(tiny, pngs, batch_size=3, progress=False)
    assert out.shape == (8, 64) and np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    batch = torch.stack([tiny.preprocess(Image.open(p).convert("RGB")) for p in pngs])
    raw = tiny.encode_images(batch).numpy()
    assert np.allclose(out, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-5)
    with Counting(tiny) as count:
        hit = embed_images(tiny, pngs, progress=False)
    assert count.calls == 0 and np.array_equal(hit, out)
    parallel = embed_images(tiny, pngs, batch_size=3, cache=False, progress=False, workers=2)
    assert np.allclose(parallel, out, atol=1e-6)


def test_corrupt_cache_file_is_recomputed(tiny, fresh_cache):
    good = embed_texts(tiny, TEXTS, progress=False)
    npy = fresh_cache / f"{cache_key(tiny, TEXTS)}.npy"
    npy.write_bytes(npy.read_bytes()[:100])  # truncated
    with Counting(tiny) as count:
        again = embed_texts(tiny, TEXTS, progress=False)
    assert count.calls > 0 and np.allclose(again, good, atol=1e-6)
    npy.write_bytes(b"garbage")
    assert np.allclose(embed_texts(tiny, TEXTS, progress=False), good, atol=1e-6)
    # repaired: the next call is a hit again
    with Counting(tiny) as count:
        embed_texts(tiny, TEXTS, progress=False)
    assert count.calls == 0


def test_wrong_array_or_sidecar_is_never_served(tiny, fresh_cache):
    good = embed_texts(tiny, TEXTS, progress=False)
    key = cache_key(tiny, TEXTS)
    npy, side = fresh_cache / f"{key}.npy", fresh_cache / f"{key}.json"
    # a well-formed array of the right shape that is not the one the sidecar describes
    np.save(npy, np.ones_like(good))
    assert np.allclose(embed_texts(tiny, TEXTS, progress=False), good, atol=1e-6)
    # a sidecar whose key material belongs to another request
    meta = json.loads(side.read_text())
    meta["key_material"]["identity"]["seed"] = 99
    side.write_text(json.dumps(meta))
    with Counting(tiny) as count:
        again = embed_texts(tiny, TEXTS, progress=False)
    assert count.calls > 0 and np.allclose(again, good, atol=1e-6)
    # a missing sidecar: recompute too
    side.unlink()
    with Counting(tiny) as count:
        embed_texts(tiny, TEXTS, progress=False)
    assert count.calls > 0


def test_unwritable_cache_still_returns_results(tiny, monkeypatch, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder should be")
    out = embed_texts(tiny, TEXTS, cache=blocker / "embeddings", progress=False)
    assert out.shape == (9, 64)


def test_input_validation(tiny):
    with pytest.raises(TypeError, match="list of texts"):
        embed_texts(tiny, "a single caption")
    with pytest.raises(TypeError, match="must be a str"):
        embed_texts(tiny, ["ok", 3])
    assert embed_texts(tiny, [], progress=False).shape == (0, 64)
    with pytest.raises(ValueError, match="batch_size"):
        embed_texts(tiny, TEXTS, batch_size=0)


def test_missing_image_file_is_named(tiny, tmp_path):
    from clipscope_utils.datasets.tables import DatasetError

    with pytest.raises(DatasetError, match="nope.png"):
        embed_images(tiny, [tmp_path / "nope.png"], progress=False)


def test_text_only_models_go_through_the_same_engine(offline_module_env):
    glove = load_model("glove")
    out = embed_texts(glove, ["a red cube and a blue sphere", "a blue sphere and a red cube"], progress=False)
    assert out.shape == (2, 50) and np.allclose(out[0], out[1])
    assert np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    with pytest.raises(ModelError, match="text-only"):
        embed_images(glove, ["x.png"])
    assert embeddings.precision(glove) == "fp32"
