"""Model registry: every name form, helpful errors, offline behaviour, random init, checkpoints, baselines.

No test touches the network: HF_HUB_OFFLINE=1 and an empty Hugging Face cache are set for every test, and
the models used are ones the project makes (random inits of ``clipscope-tiny``, checkpoints saved here).
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from clipscope_utils.models import ModelError, load_model, paper_models, registry, resolve
from clipscope_utils.models.registry import PAPER_MODELS, list_names
from clipscope_utils.paths import file_sha256

CAPTIONS = ["a red cube and a blue sphere", "a blue sphere and a red cube", "a photo of a green cone"]


@pytest.fixture(autouse=True)
def offline_env(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-hub"))
    monkeypatch.setenv("CLIPSCOPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CLIPSCOPE_WEIGHTS", str(tmp_path / "weights"))


def _never_called(*args, **kwargs):
    raise AssertionError("open_clip must not be asked to build the model")


def _images(n: int = 3, size: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------ names


@pytest.mark.parametrize("name, source, arch", [
    ("CLIP openAI", "pretrained", "ViT-B-32-quickgelu"),
    ("clip  laion", "pretrained", "ViT-B-32"),
    ("CLIP_Datacomp", "pretrained", "ViT-B-32"),
    ("CLIP Roberta", "pretrained", "xlm-roberta-base-ViT-B-32"),
    ("SIGLIP", "pretrained", "ViT-B-16-SigLIP"),
    ("NegCLIP", "checkpoint", "ViT-B-32-quickgelu"),
    ("SugarCrepe", "checkpoint", "ViT-B-32-quickgelu"),
    ("clip-cae", "checkpoint", "ViT-B-32-quickgelu"),
    ("open_clip:ViT-B-32/laion2b_s34b_b79k", "pretrained", "ViT-B-32"),
    ("open_clip:ViT-B-16/openai", "pretrained", "ViT-B-16"),
    ("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "hf-hub", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"),
    ("random:ViT-B-32", "random", "ViT-B-32"),
    ("random:clipscope-tiny:7", "random", "clipscope-tiny"),
    ("sbert", "sbert", "sentence-transformers/all-MiniLM-L6-v2"),
    ("SimCSE", "simcse", "princeton-nlp/sup-simcse-bert-base-uncased"),
    ("glove", "glove", "glove.6B.50d"),
])
def test_every_name_form_resolves(name, source, arch):
    spec = resolve(name)
    assert (spec.source, spec.arch) == (source, arch)
    assert spec.kind == ("text" if source in ("sbert", "simcse", "glove") else "clip")
    assert resolve(spec) is spec


def test_checkpoint_names_resolve_to_files(tmp_path):
    ckpt = tmp_path / "ckpt.pt"
    ckpt.write_bytes(b"x")
    spec = resolve(f"clipscope-tiny@{ckpt}")
    assert (spec.source, spec.arch, spec.path) == ("checkpoint", "clipscope-tiny", str(ckpt.resolve()))
    assert resolve(f"ViT-B-32-quickgelu@{ckpt}").quick_gelu
    assert not resolve(f"ViT-B-32@{ckpt}").quick_gelu
    named = resolve(f"NegCLIP@{ckpt}")  # a paper name on the left keeps its (quickgelu) architecture
    assert (named.arch, named.path, named.paper_name) == ("ViT-B-32-quickgelu", str(ckpt.resolve()), "NegCLIP")
    # a paper fine-tune found in $CLIPSCOPE_WEIGHTS under its documented file name
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "sugarcrepe.pt").write_bytes(b"x")
    assert resolve("SugarCrepe").path == str((weights / "sugarcrepe.pt").resolve())
    assert resolve("NegCLIP").path == ""  # not there: resolve still works, loading explains


def test_random_names_carry_the_seed():
    assert resolve("random:clipscope-tiny").seed == 0
    assert resolve("random:clipscope-tiny:3").seed == 3
    assert resolve("random:clipscope-tiny:3").name == "random:clipscope-tiny:3"
    with pytest.raises(ModelError, match="not an integer"):
        resolve("random:clipscope-tiny:abc")


def test_paper_table_uses_quickgelu_for_openai_derived_weights():
    table = paper_models()
    assert list(table.columns) == ["name", "architecture", "pretrained", "source", "note"]
    openai_derived = {"CLIP openAI", "NegCLIP", "SugarCrepe", "CLIP-CAE"}
    assert openai_derived <= set(table["name"])
    for row in table.itertuples():
        if row.name in openai_derived:
            assert row.architecture == "ViT-B-32-quickgelu", row.name
            assert resolve(row.name).quick_gelu
    # open_clip marks the OpenAI tag as QuickGELU: the table agrees with the library
    assert open_clip.get_pretrained_cfg("ViT-B-32-quickgelu", "openai").get("quick_gelu") is True
    # the plain-arch spelling of the OpenAI tag is forced to QuickGELU too
    assert resolve("open_clip:ViT-B-32/openai").quick_gelu


def test_every_paper_pair_is_a_pretrained_open_clip_model():
    pairs = set(open_clip.list_pretrained())
    models = set(open_clip.list_models())
    for row in PAPER_MODELS:
        if row["source"] == "open_clip":
            assert (row["architecture"], row["pretrained"]) in pairs, row
        elif row["source"] == "checkpoint":
            assert row["architecture"] in models and row["pretrained"].endswith((".pt", ".pth")), row


def test_list_names_mentions_every_form():
    names = list_names()
    assert "CLIP openAI" in names and "sbert" in names and "random:clipscope-tiny" in names
    assert {"open_clip:<ARCH>/<TAG>", "hf-hub:<org>/<repo>", "<ARCH>@<path>"} <= set(names)


# ------------------------------------------------------------------------------------------ errors


def test_unknown_name_lists_forms_and_close_matches():
    with pytest.raises(ModelError) as err:
        resolve("CLIP LAOIN")
    msg = str(err.value)
    assert "unknown model name 'CLIP LAOIN'" in msg
    assert "open_clip:<ARCH>/<TAG>" in msg and "random:<ARCH>" in msg and "'NegCLIP'" in msg
    assert "Close matches: 'CLIP LAION'" in msg
    assert isinstance(err.value, ValueError)


def test_bare_architecture_asks_for_weights():
    with pytest.raises(ModelError, match=r"is an architecture.*open_clip:ViT-B-32/.*random:ViT-B-32"):
        resolve("ViT-B-32")


@pytest.mark.parametrize("name, phrases", [
    ("open_clip:ViT-B-33/openai", ["'ViT-B-33' is not an open_clip architecture", "'ViT-B-32'"]),
    ("random:ViT-B-33", ["'ViT-B-33' is not an open_clip architecture", "'ViT-B-32'"]),
    ("ViT-B-33@/tmp/x.pt", ["'ViT-B-33' is not an open_clip architecture"]),
    ("open_clip:ViT-B-32/opnai", ["not in open_clip.list_pretrained()", "Tags for 'ViT-B-32'", "'openai'"]),
    ("open_clip:ViT-B-32", ["expected 'open_clip:<ARCH>/<TAG>'"]),
    ("hf-hub:justone", ["expected 'hf-hub:<org>/<repo>'"]),
    ("", ["non-empty string"]),
])
def test_bad_names_explain(name, phrases):
    with pytest.raises(ModelError) as err:
        resolve(name)
    for phrase in phrases:
        assert phrase in str(err.value)


def test_missing_checkpoint_file(tmp_path):
    with pytest.raises(ModelError, match="checkpoint file .*missing.pt' does not exist"):
        resolve(f"clipscope-tiny@{tmp_path / 'missing.pt'}")


def test_missing_paper_fine_tune_says_where_it_looked(monkeypatch, tmp_path):
    monkeypatch.setattr(open_clip, "create_model_and_transforms", _never_called)
    with pytest.raises(ModelError) as err:
        load_model("NegCLIP", device="cpu")
    msg = str(err.value)
    assert "'NegCLIP'" in msg and "ViT-B-32-quickgelu" in msg
    assert str(tmp_path / "weights" / "negclip.pth") in msg
    assert "CLIPSCOPE_WEIGHTS" in msg and "NegCLIP@/path/to/file" in msg


def test_missing_pretrained_weights_fail_fast_offline(monkeypatch, tmp_path):
    monkeypatch.setattr(open_clip, "create_model_and_transforms", _never_called)
    with pytest.raises(ModelError) as err:
        load_model("CLIP LAION", device="cpu")
    msg = str(err.value)
    for phrase in ("'CLIP LAION'", "('ViT-B-32', 'laion2b_s34b_b79k')", "HF_HUB_OFFLINE=1",
                   str(tmp_path / "hf-hub"), "laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "internet",
                   "CLIPSCOPE_WEIGHTS", "ViT-B-32@/path/to/file"):
        assert phrase in msg, phrase
    with pytest.raises(ModelError, match=r"'CLIP openAI'.*ViT-B-32-quickgelu.*openai"):
        load_model("CLIP openAI", device="cpu")
    with pytest.raises(ModelError, match="hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K.*HF_HUB_OFFLINE"):
        load_model("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", device="cpu")


def test_corrupt_checkpoint_becomes_model_error(tmp_path):
    bad = tmp_path / "weights" / "clip_cae.pt"
    bad.parent.mkdir()
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ModelError, match=r"cannot load model 'CLIP-CAE'.*open_clip failed"):
        load_model("CLIP-CAE", device="cpu")


# ------------------------------------------------------------------------------------------ CLIP models


@pytest.fixture(scope="module")
def tiny(offline_module_env):
    return load_model("random:clipscope-tiny", device="cpu")


def test_tiny_config_tokenises_offline_with_its_context_length(tiny):
    tok = open_clip.get_tokenizer("clipscope-tiny")
    assert type(tok).__name__ == "SimpleTokenizer" and tok.context_length == 32
    assert tuple(tiny.tokenize(CAPTIONS).shape) == (3, 32)
    assert tiny.identity["tokenizer"]["context_length"] == 32
    assert tiny.identity["model_config"]["vision_cfg"]["image_size"] == 64


def test_tiny_encodes_texts_and_images(tiny):
    assert tiny.kind == "clip" and tiny.has_images and tiny.embed_dim == 64
    assert tiny.device == torch.device("cpu") and not tiny.model.training
    texts = tiny.encode_texts(CAPTIONS)
    assert texts.shape == (3, 64) and texts.dtype == torch.float32 and texts.device.type == "cpu"
    assert not torch.allclose(texts[0], texts[1])  # a transformer sees word order
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (80, 100, 3), dtype=np.uint8))
    batch = torch.stack([tiny.preprocess(img)] * 2)
    assert batch.shape == (2, 3, 64, 64)
    feats = tiny.encode_images(batch)
    assert feats.shape == (2, 64) and torch.isfinite(feats).all()
    assert "Resize(size=64" in tiny.describe_preprocess() and "0x" not in tiny.describe_preprocess()


def test_random_init_is_deterministic_per_seed_and_leaves_global_rng_alone(tiny):
    state = torch.get_rng_state()
    again = load_model("random:clipscope-tiny:0", device="cpu")
    other = load_model("random:clipscope-tiny:1", device="cpu")
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(again.encode_texts(CAPTIONS), tiny.encode_texts(CAPTIONS))
    assert torch.equal(again.encode_images(_images()), tiny.encode_images(_images()))
    assert not torch.allclose(other.encode_texts(CAPTIONS), tiny.encode_texts(CAPTIONS))
    assert again.identity == tiny.identity
    assert other.identity["seed"] == 1 and tiny.identity["seed"] == 0
    assert tiny.identity["arch"] == "clipscope-tiny"
    assert tiny.identity["versions"]["torch"] == torch.__version__


def test_checkpoint_round_trip_and_identity_hash(tmp_path):
    source = load_model("random:clipscope-tiny:5", device="cpu")
    ckpt = tmp_path / "tiny.pt"
    torch.save(source.model.state_dict(), ckpt)
    loaded = load_model(f"clipscope-tiny@{ckpt}", device="cpu")
    assert torch.allclose(loaded.encode_texts(CAPTIONS), source.encode_texts(CAPTIONS), atol=1e-6)
    assert torch.allclose(loaded.encode_images(_images()), source.encode_images(_images()), atol=1e-6)
    sha = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert loaded.identity["weights_sha256"] == sha
    assert loaded.identity["path"] == str(ckpt.resolve()) and loaded.identity["source"] == "checkpoint"
    # an open_clip training checkpoint ({"state_dict": {"module.…": …}}) loads too
    wrapped = tmp_path / "epoch_1.pt"
    torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in source.model.state_dict().items()}},
               wrapped)
    again = load_model(f"clipscope-tiny@{wrapped}", device="cpu")
    assert torch.allclose(again.encode_texts(CAPTIONS), source.encode_texts(CAPTIONS), atol=1e-6)
    assert again.identity["weights_sha256"] != sha


def test_file_hash_cache_follows_size_and_mtime(tmp_path):
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    assert file_sha256(f) == hashlib.sha256(b"abc").hexdigest()
    f.write_bytes(b"abcd")
    os.utime(f, ns=(1, 1))
    assert file_sha256(f) == hashlib.sha256(b"abcd").hexdigest()


def test_pretrained_tag_loads_from_the_local_hf_cache(monkeypatch, tmp_path, tiny):
    """A pretrained tag whose weights are in the HF cache loads offline, with the tag's preprocessing."""
    from open_clip import pretrained as oc_pretrained

    tag_cfg = dict(url="", hf_hub="clipscope-test/tiny/", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                   interpolation="bilinear", resize_mode="squash")
    monkeypatch.setitem(oc_pretrained._PRETRAINED, "clipscope-tiny", {"unit": tag_cfg})
    snapshot = tmp_path / "hf-hub" / "models--clipscope-test--tiny" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    torch.save(tiny.model.state_dict(), snapshot / "open_clip_pytorch_model.bin")

    enc = load_model("open_clip:clipscope-tiny/unit", device="cpu")
    assert torch.allclose(enc.encode_texts(CAPTIONS), tiny.encode_texts(CAPTIONS), atol=1e-6)
    assert enc.identity["preprocess"]["mean"] == [0.5, 0.5, 0.5]
    assert enc.identity["preprocess"]["resize_mode"] == "squash"
    assert enc.identity["weights_sha256"] == file_sha256(snapshot / "open_clip_pytorch_model.bin")
    assert enc.describe_preprocess() != tiny.describe_preprocess()


# ------------------------------------------------------------------------------------------ text baselines


@pytest.fixture(scope="module")
def sbert(offline_module_env):
    return load_model("sbert", device="cpu")


@pytest.fixture(scope="module")
def glove(offline_module_env):
    return load_model("glove")


def test_glove_is_order_free(glove):
    v = glove.encode_texts(CAPTIONS)
    assert v.shape == (3, 50) and glove.kind == "text" and not glove.has_images
    assert torch.equal(v[0], v[1])  # same words, other order: the same vector
    assert not torch.allclose(v[0], v[2])
    assert glove.tokenize(["A red CUBE, qwzxv!"]) == [["a", "red", "cube"]]  # unknown word skipped
    expected = glove.vectors[[glove.vocab["a"], glove.vocab["red"], glove.vocab["cube"]]].mean(axis=0)
    assert np.allclose(glove.encode_texts(["a red cube"])[0].numpy(), expected)
    assert len(glove.identity["weights_sha256"]) == 64


def test_glove_caption_without_known_word_is_named(glove):
    with pytest.raises(ModelError, match="'qwzxv 123'"):
        glove.encode_texts(["a cube", "qwzxv 123"])


def test_sbert_loads_offline_and_sees_word_order(sbert):
    v = sbert.encode_texts(CAPTIONS)
    assert v.shape == (3, 384) and sbert.embed_dim == 384 and not sbert.has_images
    assert not torch.allclose(v[0], v[1], atol=1e-4)
    assert torch.allclose(sbert.encode_texts(CAPTIONS[:1]), v[:1], atol=1e-5)
    assert len(sbert.identity["weights_sha256"]) == 64
    with pytest.raises(ModelError, match="text-only"):
        sbert.encode_images(_images())


def test_simcse_absent_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError) as err:
        load_model("simcse", device="cpu")
    msg = str(err.value)
    assert "princeton-nlp/sup-simcse-bert-base-uncased" in msg
    assert str(tmp_path / "weights" / "sup-simcse-bert-base-uncased") in msg and "simcse@/path" in msg


def test_simcse_uses_cls_pooler_output(tmp_path):
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path / "weights" / "sup-simcse-bert-base-uncased"
    folder.mkdir(parents=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "red", "cube", "and", "blue", "sphere"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64)).save_pretrained(folder)
    enc = load_model("simcse", device="cpu")
    out = enc.encode_texts(CAPTIONS[:2])
    assert out.shape == (2, 32) and enc.embed_dim == 32
    batch = enc.tokenize(CAPTIONS[:2])
    with torch.no_grad():
        expected = enc.model(**batch).pooler_output
    assert torch.allclose(out, expected, atol=1e-6)
    assert not torch.allclose(out[0], out[1])
    assert resolve(f"simcse@{folder}").path == str(folder.resolve())


def test_load_by_spec_and_repr(tiny):
    spec = registry.resolve("random:clipscope-tiny:0")
    assert spec == tiny.spec and "random init (seed 0)" in repr(tiny)


