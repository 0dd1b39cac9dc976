"""Random-weight stand-ins load through the real loading path (open_clip's pretrained tags from the Hugging Face
hub cache, offline; local checkpoints in $CLIPSCOPE_WEIGHTS; hub tokenizers and text-tower configs).

The environment is set after huggingface_hub was imported (as the book runner does), so these tests also hold
the registry to reading it at call time. ``python -m clipscope_utils.models.standins --out DIR --check`` runs
the same loads for every paper model in a fresh process.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import open_clip
import pytest
import torch
from huggingface_hub import constants as hf_constants
from huggingface_hub import try_to_load_from_cache
from PIL import Image
from safetensors.torch import load_file

from clipscope_utils.models import ModelError, load_model, resolve
from clipscope_utils.models import standins
from clipscope_utils.models.base import hf_cache
from clipscope_utils.models.registry import hub_follows_environment
from clipscope_utils.paths import file_sha256

CAPTION = "A red cube to the left of a blue sphere."


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A private, offline HF_HOME and weights folder, set after huggingface_hub was imported."""
    root = tmp_path_factory.mktemp("standins")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("HF_HUB_CACHE", raising=False)
        mp.setenv("HF_HOME", str(root / "hf"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("CLIPSCOPE_WEIGHTS", str(root / "weights"))
        mp.setenv("CLIPSCOPE_CACHE", str(root / "cache"))
        yield root
    shutil.rmtree(root, ignore_errors=True)  # ~2 GB of weights: not kept in pytest's last three temp folders


@pytest.fixture(scope="module")
def openai_file(env):
    return standins.write_hub_weights(env / "hf" / "hub", "ViT-B-32-quickgelu", "openai", seed=3)


@pytest.fixture(scope="module")
def negclip_file(env):
    return standins.write_checkpoint(env / "weights" / "negclip.pth", "ViT-B-32-quickgelu", seed=4)


def _images(n: int = 2):
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)) for _ in range(n)]


def _assert_state_equals(model: torch.nn.Module, written: dict[str, torch.Tensor]) -> None:
    state = model.state_dict()
    assert set(state) == set(written)
    for key, value in written.items():
        assert torch.equal(state[key].to(value.dtype), value), key


def test_openai_standin_loads_through_the_pretrained_path(env, openai_file):
    repo, filename = standins.hub_weights_location("ViT-B-32-quickgelu", "openai")
    assert (repo, filename) == ("timm/vit_base_patch32_clip_224.openai", "open_clip_model.safetensors")
    assert hf_cache() == str(env / "hf" / "hub")
    assert try_to_load_from_cache(repo, filename, cache_dir=hf_cache()) == str(openai_file)
    assert openai_file.parent.name == (openai_file.parents[2] / "refs" / "main").read_text()

    enc = load_model("CLIP openAI", device="cpu")
    assert (enc.spec.source, enc.identity["pretrained"], enc.identity["quick_gelu"]) == ("pretrained", "openai", True)
    assert enc.identity["weights_sha256"] == file_sha256(openai_file)
    written = load_file(openai_file)
    assert {v.dtype for v in written.values() if v.is_floating_point()} == {torch.float16}
    _assert_state_equals(enc.model, written)
    images = enc.encode_images(torch.stack([enc.preprocess(im) for im in _images()]))
    texts = enc.encode_texts([CAPTION, "a photo of a dog"])
    assert images.shape == texts.shape == (2, 512)
    assert torch.isfinite(images).all() and torch.isfinite(texts).all()


def test_checkpoint_standin_loads_as_negclip(env, negclip_file):
    saved = torch.load(negclip_file, map_location="cpu", weights_only=True)
    assert set(saved) == {"epoch", "name", "state_dict"}  # open_clip_train's form, DDP prefixes
    assert all(k.startswith("module.") for k in saved["state_dict"])
    enc = load_model("NegCLIP", device="cpu")
    assert (enc.spec.source, enc.spec.path) == ("checkpoint", str(negclip_file.resolve()))
    _assert_state_equals(enc.model, {k[len("module."):]: v for k, v in saved["state_dict"].items()})
    assert torch.isfinite(enc.encode_texts([CAPTION])).all()


def test_absent_tag_offline_is_the_clear_error(env, openai_file, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("open_clip must not be asked to build the model")

    monkeypatch.setattr(open_clip, "create_model_and_transforms", never)
    with pytest.raises(ModelError) as err:
        load_model("CLIP LAION", device="cpu")
    for phrase in ("'CLIP LAION'", "HF_HUB_OFFLINE=1", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
                   str(env / "hf" / "hub")):
        assert phrase in str(err.value), phrase


def test_tokenizer_and_text_tower_standins(env):
    hub = env / "hf" / "hub"
    siglip = standins.write_hf_text_files(hub, "timm/ViT-B-16-SigLIP", texts=["a zebra"])
    xlmr = standins.write_hf_text_files(hub, "xlm-roberta-base")
    assert {"tokenizer.json", "tokenizer_config.json", "config.json"} <= {p.name for p in siglip.iterdir()}
    assert standins.hf_text_repos("xlm-roberta-base-ViT-B-32") == ["xlm-roberta-base"]

    # transformers' offline switch is read when huggingface_hub is imported: without the registry's context
    # it would retry the network for minutes before reading the cache
    with hub_follows_environment():
        tok = open_clip.get_tokenizer("ViT-B-16-SigLIP", cache_dir=hf_cache())
    ids = tok([CAPTION, "a zebra"])
    assert ids.shape == (2, 64) and int(ids.max()) < 32000
    pieces = tok.tokenizer.convert_ids_to_tokens(ids[1].tolist())
    assert pieces[:3] == ["▁a", "▁zebra", "</s>"] and set(pieces[3:]) == {"</s>"}  # canonicalized, eos = pad

    with hub_follows_environment():
        tok = open_clip.get_tokenizer("xlm-roberta-base-ViT-B-32", cache_dir=hf_cache())
    ids = tok([CAPTION])
    assert ids.shape == (1, 77) and ids[0, 0] == 0 and ids[0, -1] == 1  # <s> first, padded with <pad> = 1
    assert 2 in ids[0].tolist()  # </s>

    from transformers import AutoConfig

    with hub_follows_environment():  # open_clip's HFTextEncoder reads it without a cache_dir
        config = AutoConfig.from_pretrained("xlm-roberta-base")
    assert (config.model_type, config.vocab_size, config.hidden_size, config.num_hidden_layers) == (
        "xlm-roberta", 250002, 768, 12)
    assert config.pad_token_id == tok.tokenizer.pad_token_id == 1
    assert (xlmr / "config.json").is_file()


@pytest.mark.parametrize("name", ["SIGLIP", "CLIP Roberta"])
def test_hub_tokenizer_models_load_from_standins(env, name):
    """Weights, tokenizer (and XLM-R's text-tower config) from the hub cache, the environment set after import."""
    row = next(r for r in standins.PAPER_MODELS if r["name"] == name)
    hub = env / "hf" / "hub"
    weights = standins.write_hub_weights(hub, row["architecture"], row["pretrained"], seed=5)
    for repo in standins.hf_text_repos(row["architecture"]):
        standins.write_hf_text_files(hub, repo)
    enc = load_model(name, device="cpu")
    assert enc.identity["weights_sha256"] == file_sha256(weights)
    assert enc.identity["tokenizer"]["class"] == "open_clip.tokenizer.HFTokenizer"
    _assert_state_equals(enc.model, load_file(weights))
    images = enc.encode_images(torch.stack([enc.preprocess(im) for im in _images(1)]))
    texts = enc.encode_texts([CAPTION])
    assert images.shape == texts.shape == (1, enc.embed_dim)
    assert torch.isfinite(images).all() and torch.isfinite(texts).all()


def test_registry_points_the_hub_at_the_environment_now(env):
    before = (hf_constants.HF_HUB_CACHE, hf_constants.HF_HUB_OFFLINE)
    with hub_follows_environment():
        assert hf_constants.HF_HUB_CACHE == str(env / "hf" / "hub") and hf_constants.HF_HUB_OFFLINE
    assert (hf_constants.HF_HUB_CACHE, hf_constants.HF_HUB_OFFLINE) == before


@pytest.fixture
def build_dir(tmp_path):
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_build_is_cached_atomic_and_checked_before_work(build_dir):
    tmp_path = build_dir
    out = tmp_path / "standins"
    env = standins.build_standins(out, models=["negclip"], seed=1, epochs=1)
    assert env == {"HF_HOME": str(out / "hf"), "HF_HUB_CACHE": str(out / "hf" / "hub"), "HF_HUB_OFFLINE": "1",
                   "CLIPSCOPE_WEIGHTS": str(out / "weights")}
    manifest = json.loads((out / "manifest.json").read_text())
    assert [m["name"] for m in manifest["models"]] == ["NegCLIP"]
    assert (out / "weights" / "negclip.pth").is_file() and "random weights" in (out / "STANDINS.md").read_text()
    assert manifest["external"] == [f"1000000000=ViT-B-32@{out / 'laion' / 'epoch_1.pt'}"]
    assert resolve(manifest["external"][0].split("=", 1)[1]).source == "checkpoint"
    assert oct(out.stat().st_mode & 0o777) != oct(0o700)
    assert [p.name for p in tmp_path.iterdir()] == ["standins"]  # no temporary left

    stamp = os.stat(out / "manifest.json").st_mtime_ns
    assert standins.build_standins(out, models=["NegCLIP"], seed=1, epochs=1) == env
    assert os.stat(out / "manifest.json").st_mtime_ns == stamp  # same key: nothing written

    for bad in (["SimCSE"], ["CLIP Nonsense"]):
        with pytest.raises(ModelError, match="no stand-in"):
            standins.build_standins(tmp_path / "other", models=bad)
    with pytest.raises(ModelError, match="dtype"):
        standins.build_standins(tmp_path / "other", models=["NegCLIP"], dtype="int8")
    assert not (tmp_path / "other").exists()
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(ModelError, match="not a stand-in folder"):
        standins.build_standins(precious, models=["NegCLIP"], epochs=0)
    assert (precious / "notes.txt").read_text() == "keep me"
