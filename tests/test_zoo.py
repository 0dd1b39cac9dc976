"""The model zoo: ``trained:<order>[:seed]`` names mean the profile's pretraining block, in every chapter."""

from pathlib import Path

import pytest

from clipscope_utils import zoo as zoo_module
from clipscope_utils.book.profiles import load_profile
from clipscope_utils.book.runner import toc_notebooks
from clipscope_utils.models import ModelError, registry
from clipscope_utils.training import TrainConfig, run_folder
from clipscope_utils.zoo import TRAINING_KNOBS, ModelZoo, training_template

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = toc_notebooks(ROOT)


def profile(name: str, *overrides: str):
    return load_profile(ROOT / "profiles", name, NOTEBOOKS, list(overrides)).params


def test_trained_names_resolve_to_the_block_runs_and_reject_bad_orders() -> None:
    zoo = ModelZoo()
    spec = zoo.resolve("trained:shuffled:1")
    assert spec.name == "trained:shuffled:1" and spec.kind == "clip" and spec.arch == "clipscope-small"
    assert TrainConfig(order="shuffled", seed=1).key() in spec.note
    assert zoo.resolve("trained:largest_last").name == "trained:largest_last:0"
    assert zoo.config_of("trained:largest_last") == TrainConfig(order="largest_last", seed=0)
    assert zoo.config_of("random:clipscope-tiny") is None
    with pytest.raises(ModelError, match="order one of"):
        zoo.resolve("trained:sideways")
    with pytest.raises(ModelError, match="not an integer"):
        zoo.resolve("trained:shuffled:x")
    assert run_folder(TrainConfig(order="shuffled", seed=1)).name.endswith(TrainConfig(order="shuffled", seed=1).key())


def test_the_model_layer_leaves_trained_names_to_the_zoo() -> None:
    with pytest.raises(ModelError, match="clipscope_utils.zoo"):
        registry.resolve("trained:shuffled")


def test_code_defaults_are_the_default_profiles_pretraining_block() -> None:
    """A zoo without a block (tests, interactive use) means the default book's self-trained CLIPs."""
    block = profile("default")["pretraining"]
    assert training_template(block) == training_template(None) == TrainConfig()
    assert set(TRAINING_KNOBS) <= set(block)


@pytest.mark.parametrize("chapter", ["text_probes", "image_probes", "matching", "attention", "cae", "origin",
                                     "progression"])
def test_every_chapter_gets_the_profiles_own_training_block(chapter: str) -> None:
    """The gpu profile trains 400k-sample CLIPs; every chapter's trained: names must mean those, and a --set on
    the pretraining chapter must reach them too."""
    for params in (profile("gpu"), profile("smoke", "pretraining.samples=1024")):
        assert params[chapter]["pretraining"] == params["pretraining"]
        mine = ModelZoo.from_pretraining(params[chapter]["pretraining"]).config_of("trained:largest_first")
        theirs = ModelZoo.from_pretraining(params["pretraining"]).config_of("trained:largest_first")
        assert mine == theirs and mine.samples == params["pretraining"]["samples"]
    assert ModelZoo.from_pretraining(profile("gpu")["pretraining"]).config_of("trained:shuffled").samples == 400_000


def test_train_missing_hands_only_trained_names_to_parallel_training(monkeypatch) -> None:
    seen = {}
    monkeypatch.setattr(zoo_module, "train_many", lambda configs, workers, progress: seen.update(
        configs=configs, workers=workers))
    zoo = ModelZoo()
    zoo.train_missing(["glove", "trained:shuffled", "random:clipscope-tiny", "trained:shuffled",
                       "trained:largest_last:1"], workers=2, progress=False)
    assert [(c.order, c.seed) for c in seen["configs"]] == [("shuffled", 0), ("largest_last", 1)]
    assert seen["workers"] == 2
    seen.clear()
    zoo.train_missing(["glove", "sbert"], progress=False)
    assert seen == {}


def test_describe_names_the_training_config_of_trained_models() -> None:
    table = ModelZoo().describe(["trained:largest_first", "glove"])
    assert table["trained here"].iloc[0] == f"48,000 samples, batch 128, key {TrainConfig().key()[:8]}"
    assert table["trained here"].iloc[1] == "–"


def test_an_optional_model_is_skipped_with_a_note_when_absent(monkeypatch, tmp_path: Path) -> None:
    """'simcse?' resolves up front like any name; when its files are not on this machine the chapter goes on."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("CLIPSCOPE_WEIGHTS", str(tmp_path))
    zoo = ModelZoo()
    names = zoo.with_controls(["glove", "simcse?"], controls=False)
    assert names == ["GloVe", "SimCSE?"]
    assert "(optional)" in zoo.describe(names).model.iloc[1]
    loaded = [name for name, _ in zoo.encoders(names, device="cpu", progress=False)]
    assert loaded == ["GloVe"]
    assert len(zoo.skipped) == 1 and "SimCSE (optional) was skipped" in zoo.skipped[0]
    with pytest.raises(ModelError):  # the same name without "?" is an error, as before
        list(zoo.encoders(["simcse"], device="cpu", progress=False))


def test_the_first_missing_trained_model_brings_the_whole_grid_into_one_batch(monkeypatch) -> None:
    seen = {}
    monkeypatch.setattr(zoo_module, "train_many", lambda configs, workers, progress: seen.update(configs=configs))
    block = {"orders": ["largest_first", "shuffled"], "seeds": [0, 1], "samples": 512, "batch_size": 64}
    zoo = ModelZoo.from_pretraining(block)
    zoo.train_missing(["trained:shuffled:1", "glove"], progress=False)
    assert [(c.order, c.seed) for c in seen["configs"]] == [
        ("shuffled", 1), ("largest_first", 0), ("largest_first", 1), ("shuffled", 0)]
    assert all(c.samples == 512 for c in seen["configs"])
