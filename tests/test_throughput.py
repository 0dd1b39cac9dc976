"""Training speed knobs that must not change what a run learns: bf16 with fp32 attention, the fitted context."""

import pytest
import torch
import torch.nn.functional as F

from clipscope_utils.training import TrainConfig, TrainingError, train
from clipscope_utils.training.throughput import FittedContext, autocast, caption_length

TINY = dict(model="clipscope-tiny", scenes=6, objects=(1, 2, 3), samples=8 * 4, batch_size=8, checkpoints=2,
            warmup=1, seed=0)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPSCOPE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    from clipscope_utils.datasets import generate
    from clipscope_utils.training.data import scene_spec

    return generate(scene_spec(TrainConfig(**TINY)), tmp_path_factory.mktemp("ds") / "d", workers=1, progress=False)


def test_cpu_bf16_runs_matmuls_in_bf16_and_attention_in_fp32() -> None:
    q = torch.randn(2, 2, 5, 8)
    seen = {}
    original = F.scaled_dot_product_attention
    with autocast("cpu", "bf16"):
        assert torch.nn.functional.linear(q, torch.randn(4, 8)).dtype == torch.bfloat16
        out = F.scaled_dot_product_attention(q.bfloat16(), q.bfloat16(), q.bfloat16())
        seen["patched"] = F.scaled_dot_product_attention is not original
    assert seen["patched"] and F.scaled_dot_product_attention is original  # restored on the way out
    assert out.dtype == torch.bfloat16
    reference = original(q.bfloat16().float(), q.bfloat16().float(), q.bfloat16().float())
    assert torch.allclose(out.float(), reference, atol=1e-2)  # fp32 kernel, rounded once at the end
    with autocast("cpu", "fp32"):
        assert torch.nn.functional.linear(q, torch.randn(4, 8)).dtype == torch.float32
    with pytest.raises(ValueError, match="precision must be one of"):
        with autocast("cpu", "fp8"):
            pass


def test_fitted_context_trains_the_used_positions_and_saves_the_full_table() -> None:
    import open_clip

    from clipscope_utils.models import registry  # noqa: F401  (registers the project configs)

    torch.manual_seed(0)
    model = open_clip.create_model("clipscope-tiny", pretrained=None)
    init = model.positional_embedding.detach().clone()
    tokenizer = open_clip.get_tokenizer("clipscope-tiny")
    tokens = tokenizer(["a cat and a dog"])
    full_features = model.encode_text(tokens).detach()
    length = caption_length(tokenizer, ["a cat and a dog", "a cat"])
    assert length == int((tokens != 0).sum())
    fitted = FittedContext(model, length)
    assert model.positional_embedding.shape[0] == length == model.attn_mask.shape[0]
    # causal text tower, pooled at the end token: the narrowed model computes the same features
    assert torch.allclose(model.encode_text(tokenizer(["a cat and a dog"], context_length=length)), full_features,
                          atol=1e-5)
    with torch.no_grad():
        model.positional_embedding.add_(1.0)
    state = fitted.state_dict()
    assert state["positional_embedding"].shape == init.shape
    assert torch.equal(state["positional_embedding"][length:], init[length:])
    assert torch.equal(state["positional_embedding"][:length], init[:length] + 1.0)
    fitted.load_state_dict(state)  # what a resume does
    assert torch.equal(model.positional_embedding, init[:length] + 1.0)


def test_bf16_training_matches_fp32_within_tolerance(scenes, cache) -> None:
    cfg = TrainConfig(**{**TINY, "samples": 8 * 12, "checkpoints": 1})
    fp32 = train(cfg.replace(precision="fp32"), progress=False, scenes=scenes).log.loss
    bf16 = train(cfg, progress=False, scenes=scenes).log.loss
    assert cfg.precision == "bf16" and cfg.key() != cfg.replace(precision="fp32").key()
    assert abs(bf16.iloc[0] - fp32.iloc[0]) < 0.02  # same start, bf16 rounding only
    assert abs(bf16.iloc[-4:].mean() - fp32.iloc[-4:].mean()) < 0.1 * fp32.iloc[-4:].mean()


def test_a_caption_longer_than_the_context_fails_before_training(scenes, cache, monkeypatch) -> None:
    from clipscope_utils.training import data as data_module

    monkeypatch.setattr(data_module.TrainingData, "scene_captions", lambda self: ["a cat " * 40])
    with pytest.raises(TrainingError, match="longest training caption has 77 tokens but clipscope-tiny reads 32"):
        train(TrainConfig(**TINY), progress=False, scenes=scenes)


def test_a_fine_tune_starts_from_its_checkpoint_and_is_keyed_by_its_content(scenes, cache, tmp_path) -> None:
    base = train(TrainConfig(**TINY), progress=False, scenes=scenes)
    tune = TrainConfig(**{**TINY, "order": "shuffled", "init": str(base.final), "samples": 16})
    run = train(tune, progress=False, scenes=scenes)
    assert run.checkpoint_names()[0] == (0, f"clipscope-tiny@{base.final}")
    assert "finetune" in run.folder.name and run.config.init == str(base.final)
    # the same weights under another file name: same key; changed weights: another key
    copy = tmp_path / "copy.pt"
    copy.write_bytes(base.final.read_bytes())
    assert TrainConfig(**{**TINY, "init": str(copy)}).key() == TrainConfig(**{**TINY, "init": str(base.final)}).key()
    state = torch.load(copy)
    state["logit_scale"] = state["logit_scale"] + 1
    torch.save(state, copy)
    assert TrainConfig(**{**TINY, "init": str(copy)}).key() != TrainConfig(**{**TINY, "init": str(base.final)}).key()
    assert TrainConfig(**TINY).key() == TrainConfig(**TINY, init="").key()
    with pytest.raises(TrainingError, match="init: the starting checkpoint /no/such.pt does not exist"):
        TrainConfig(**TINY, init="/no/such.pt")
