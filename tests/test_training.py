"""Self-trained CLIPs: deterministic data, resume equals uninterrupted, cache keys, config errors, and the speed
knobs that must not change what a run learns (bf16 with fp32 attention, the fitted context)."""

import os

import pytest
import torch
import torch.nn.functional as F

from clipscope_utils.training import TrainConfig, TrainingError, run_folder, train
from clipscope_utils.training.data import TrainingData
from clipscope_utils.training.throughput import FittedContext, autocast, caption_length

TINY = dict(model="clipscope-tiny", scenes=6, objects=(1, 2, 3), samples=8 * 4, batch_size=8, checkpoints=2, warmup=1, seed=0)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPSCOPE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    from clipscope_utils.datasets import generate
    from clipscope_utils.training.data import scene_spec

    return generate(scene_spec(TrainConfig(**TINY)), tmp_path_factory.mktemp("ds") / "d", workers=1, progress=False)


def test_batches_are_a_function_of_seed_and_step(scenes) -> None:
    cfg = TrainConfig(**TINY)
    a, b = TrainingData(cfg, scenes), TrainingData(cfg, scenes)
    for step in (0, 3, 7):
        ia, ta = a.batch(step)
        ib, tb = b.batch(step)
        assert torch.equal(ia, ib) and ta == tb
    # one epoch visits every scene once
    n = len(a)
    seen = [i for step in range(n // cfg.batch_size) for i in a.indices(step)]
    assert len(set(seen)) == len(seen)


@pytest.mark.parametrize("order", ["largest_first", "largest_last"])
def test_caption_order_puts_the_largest_object_where_asked(scenes, order) -> None:
    data = TrainingData(TrainConfig(**TINY, order=order), scenes)
    for scene in range(len(data)):
        names = data.names[scene]
        text = data.caption_of(scene, sample=scene)
        if len(names) > 1:
            from clipscope_utils.datasets.captions import noun_phrase

            large = noun_phrase(names[0])
            assert text.startswith(large) if order == "largest_first" else text.endswith(large)


def test_p_first_mixes_largest_first_and_shuffled_captions(scenes) -> None:
    data = TrainingData(TrainConfig(**TINY, p_first=0.0), scenes)
    three = [s for s in range(len(data)) if len(data.names[s]) == 3]
    from clipscope_utils.datasets.captions import noun_phrase

    firsts = [data.caption_of(three[0], k).startswith(noun_phrase(data.names[three[0]][0])) for k in range(60)]
    assert 0 < sum(firsts) < 60  # shuffled: the largest leads about a third of the time


def test_resumed_run_equals_uninterrupted_run(scenes, cache, monkeypatch, tmp_path) -> None:
    cfg = TrainConfig(**TINY)
    whole = train(cfg, progress=False, scenes=scenes)
    reference = torch.load(whole.final)
    assert sorted(whole.checkpoints) == [16, 32] and len(whole.log) == 4

    monkeypatch.setenv("CLIPSCOPE_CACHE", str(tmp_path / "other"))
    with pytest.raises(InterruptedError):
        train(cfg, progress=False, stop_after_step=3, scenes=scenes)
    assert (run_folder(cfg) / "state.pt").is_file() and not (run_folder(cfg) / "done.json").exists()
    resumed = train(cfg, progress=False, scenes=scenes)
    again = torch.load(resumed.final)
    assert reference.keys() == again.keys()
    assert all(torch.equal(reference[k], again[k]) for k in reference)
    assert resumed.log.loss.tolist() == whole.log.loss.tolist()


def test_finished_runs_are_served_from_cache_and_keys_separate_every_knob(scenes, cache) -> None:
    cfg = TrainConfig(**TINY)
    first = train(cfg, progress=False, scenes=scenes)
    mtime = os.path.getmtime(first.final)
    assert train(cfg, progress=False, scenes=scenes).final == first.final
    assert os.path.getmtime(first.final) == mtime
    keys = {cfg.key(), cfg.replace(order="shuffled").key(), cfg.replace(seed=1).key(),
            cfg.replace(p_first=0.5).key(), cfg.replace(lr=2e-3).key(), cfg.replace(samples=40).key()}
    assert len(keys) == 6


def test_checkpoints_load_through_the_model_registry(scenes, cache) -> None:
    from clipscope_utils.embeddings import embed_texts
    from clipscope_utils.models import load_model

    run = train(TrainConfig(**TINY), progress=False, scenes=scenes)
    enc = load_model(run.model_name(), device="cpu")
    assert enc.identity["weights_sha256"] and embed_texts(enc, ["a cat"], progress=False).shape == (1, 64)


@pytest.mark.parametrize("change, message", [
    (dict(order="sideways"), "order must be"), (dict(p_first=1.5), "p_first"),
    (dict(model="ViT-B-32"), "project config"), (dict(objects=(0, 2)), "objects"),
    (dict(samples=4), "at least one batch"),
])
def test_bad_configs_fail_before_any_work(change, message) -> None:
    with pytest.raises(TrainingError, match=message):
        TrainConfig(**{**TINY, **change})


def test_untrained_start_of_a_run_is_the_registry_random_init() -> None:
    """Samples = 0 of every progression curve is ``random:<config>:<seed>``: the exact weights training starts from."""
    from clipscope_utils.models import load_model
    from clipscope_utils.training.loop import _build

    for seed in (0, 3):
        model, _ = _build(TrainConfig(**{**TINY, "seed": seed}))
        registry = load_model(f"random:clipscope-tiny:{seed}", device="cpu").model.state_dict()
        start = model.state_dict()
        assert all(torch.equal(start[k], registry[k]) for k in start)


def test_probe_runs_tags_every_checkpoint_with_order_seed_and_samples(scenes, cache) -> None:
    from clipscope_utils.studies import origin
    from clipscope_utils.datasets import generate
    from clipscope_utils.training.data import scene_spec

    run = train(TrainConfig(**TINY), progress=False, scenes=scenes)
    evaluation = generate(scene_spec(run.config, "eval", images=3), cache / "eval", workers=1, progress=False)
    frames = origin.probe_runs([run], evaluation, probes=("TOR", "IOR"), device="cpu", progress=False)
    assert sorted(frames.samples.unique()) == [0, 16, 32]
    assert set(frames.order) == {"largest_first"} and set(frames.seed) == {0}
    per_state = frames.groupby(["samples", "probe"]).query_id.nunique()
    assert (per_state == 6).all()  # 3 unseen scenes for each multi-object count (2 and 3)


def test_external_checkpoints_are_parsed_and_checked_before_any_work(tmp_path) -> None:
    from clipscope_utils.zoo import parse_external

    ckpt = tmp_path / "epoch_10.pt"
    ckpt.write_bytes(b"x")
    assert parse_external([f"2000000000=ViT-B-32@{ckpt}"]) == [(2_000_000_000, f"ViT-B-32@{ckpt}")]
    for bad in ("ViT-B-32@x.pt", "2e9=ViT-B-32@x.pt"):
        with pytest.raises(ValueError, match="SAMPLES=MODEL"):
            parse_external([bad])
    with pytest.raises(ValueError, match="no-such"):
        parse_external(["5=ViT-B-32@/no-such/file.pt"])


def test_default_configs_keep_their_recorded_keys(monkeypatch) -> None:
    """``trained:<order>[:seed]`` names cached runs by key: a new knob at its default must not move them.
    Recorded for trainer version 2 (the bf16 loop), with the library versions pinned to fixed strings."""
    import open_clip

    monkeypatch.setattr(torch, "__version__", "T")
    monkeypatch.setattr(open_clip, "__version__", "O")
    assert TrainConfig().key() == "170a549efe38c305"
    assert TrainConfig(order="shuffled", seed=1).key() == "d1344127d5304362"
    assert TrainConfig(size_prior=0).key() == TrainConfig(init="").key() == TrainConfig().key()


def test_size_prior_is_a_keyed_knob_of_the_training_split_only(monkeypatch) -> None:
    from clipscope_utils.datasets import sizes as size_prior
    from clipscope_utils.training.data import scene_spec

    plain, prior = TrainConfig(**TINY), TrainConfig(**TINY, size_prior=0.9)
    assert len({plain.key(), prior.key(), plain.replace(size_prior=0.5).key()}) == 3
    assert prior.prior_classes() == size_prior.prior_classes("comco") and plain.prior_classes() == ()
    train_spec = scene_spec(prior)
    assert train_spec.size_prior == 0.9 and train_spec.prior_classes == prior.prior_classes()
    assert scene_spec(plain).key() != train_spec.key()
    # the eval split carries no prior: prior and prior-free runs are probed on the same scenes
    assert scene_spec(prior, "eval").size_prior == 0
    assert scene_spec(prior, "eval").key() == scene_spec(plain, "eval").key()
    assert TrainConfig(**prior.to_dict()) == prior  # what load_run reads back from config.json
    # the class list is derived data, so it is key material: a changed size table trains anew
    before = prior.key()
    monkeypatch.setattr(size_prior, "prior_classes", lambda family: ("car", "bus"))
    assert prior.key() != before and plain.key() == TrainConfig(**TINY).key()


def test_size_prior_batches_pair_prior_classes_with_the_large_object(tmp_path) -> None:
    from clipscope_utils.datasets import generate
    from clipscope_utils.training.data import scene_spec

    cfg = TrainConfig(**{**TINY, "scenes": 20}, size_prior=1.0)
    data = TrainingData(cfg, generate(scene_spec(cfg), tmp_path / "d", workers=1, progress=False))
    large = set(cfg.prior_classes())
    assert all(names[0] in large and not large & set(names[1:]) for names in data.names)


@pytest.mark.parametrize("change, message", [
    (dict(size_prior=1.5), r"size_prior must be a probability in \[0, 1\], got 1.5"),
    (dict(size_prior=-0.5), "size_prior must be a probability"),
    (dict(size_prior="high"), "size_prior must be a probability"),
    (dict(size_prior=0.5, family="simco"), "family 'simco' has no real-world-large classes"),
])
def test_bad_size_priors_fail_before_any_work(change, message) -> None:
    with pytest.raises(TrainingError, match=message):
        TrainConfig(**{**TINY, **change})


def test_checkpoint_names_start_untrained_and_end_final(scenes, cache) -> None:
    run = train(TrainConfig(**TINY), progress=False, scenes=scenes)
    names = run.checkpoint_names()
    assert names[0] == (0, "random:clipscope-tiny:0") and [s for s, _ in names] == [0, 16, 32]
    assert run.checkpoint_names("final") == [names[0], (32, run.model_name())]
    with pytest.raises(ValueError, match="'all' or 'final'"):
        run.checkpoint_names("best")


def test_pretraining_study_tables_and_verdict(scenes, cache) -> None:
    import pandas as pd

    from clipscope_utils.studies import pretraining as pt

    run = train(TrainConfig(**TINY), progress=False, scenes=scenes)
    table = pt.run_table([run])
    assert table[["order", "seed", "steps", "checkpoints"]].iloc[0].tolist() == ["largest_first", 0, 4, 2]
    logs = pt.loss_curves([run], window=2)
    assert logs["loss (smoothed)"].iloc[1] == pytest.approx(logs.loss.iloc[:2].mean())
    sanity = pd.DataFrame({"metric": "zero-shot accuracy", "state": "trained", "seed": [0, 1],
                           "order": ["largest_first", "shuffled"], "rate": [0.9, 0.2], "ci_low": [0.8, 0.1],
                           "ci_high": [0.95, 0.3], "n": 40})
    text = pt.verdict(sanity, chance_level=0.25)
    assert "only 1 of 2 runs are clearly above chance" in text and "largest_first 0.90, shuffled 0.20" in text
    assert "largest-first condition learned objects best" in text


def test_a_finished_run_without_its_final_checkpoint_is_trained_again(scenes, cache) -> None:
    """An earlier checkpoint must never be served as the final model."""
    from clipscope_utils.training.loop import load_run

    first = train(TrainConfig(**TINY), progress=False, scenes=scenes)
    final = first.final
    weights = final.read_bytes()
    final.unlink()
    with pytest.raises(TrainingError, match="marked finished but its final checkpoint .* is missing"):
        load_run(first.folder)
    again = train(TrainConfig(**TINY), progress=False, scenes=scenes)
    assert again.final == final and final.read_bytes() == weights  # deterministic: the same final weights
    final.write_bytes(weights[: len(weights) // 2])  # truncated
    with pytest.raises(TrainingError, match="not a readable torch file"):
        load_run(first.folder)


def test_a_truncated_training_state_names_its_file(scenes, cache) -> None:
    cfg = TrainConfig(**{**TINY, "seed": 7})
    with pytest.raises(InterruptedError):
        train(cfg, progress=False, stop_after_step=2, scenes=scenes)
    state = run_folder(cfg) / "state.pt"
    state.write_bytes(state.read_bytes()[:100])
    with pytest.raises(TrainingError, match=r"state\.pt cannot be read .* delete it to start this run over"):
        train(cfg, progress=False, scenes=scenes)


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
