"""Checkpoint files in a Hugging Face model repo, named ``<ARCH>@hf://<org>/<repo>/<path in repo>`` (how the paper
profile names LAION's scaling-laws epochs for Fig. 4c): found in the hub cache offline, loaded as a local checkpoint,
and a clear error when absent. No test here uses the network: downloading is replaced by a function that fails.

The environment is set after huggingface_hub was imported (as the book runner does).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from types import SimpleNamespace

import pytest
import torch

from clipscope_utils.book.checks import check_notebook
from clipscope_utils.book.outputs import PARAMETERS_WIDTH, parameters_source
from clipscope_utils.models import ModelError, load_model, resolve
from clipscope_utils.models import registry, standins
from clipscope_utils.zoo import parse_external

REPO, RUN = "org/repo", "dir"
NAME = f"clipscope-tiny@hf://{REPO}/{RUN}/epoch_3.pt"


def _no_network(*args, **kwargs):
    raise AssertionError(f"the network was asked for {args}")


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A private, offline Hugging Face cache holding the tiny stand-in's epochs 3 and 5 of ``org/repo``."""
    root = tmp_path_factory.mktemp("hub-checkpoints")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HOME", str(root / "hf"))
        mp.setenv("HF_HUB_CACHE", str(root / "hf" / "hub"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("CLIPSCOPE_CACHE", str(root / "cache"))
        mp.setenv("CLIPSCOPE_WEIGHTS", str(root / "weights"))
        mp.setattr(registry, "hf_hub_download", _no_network)
        files = standins.write_hub_checkpoints(root / "hf" / "hub", [3, 5], arch="clipscope-tiny", repo=REPO,
                                               run=RUN, seed=7)
        yield SimpleNamespace(root=root, files=files)


def test_the_stand_in_lies_in_the_hub_cache_layout_one_state_for_all_epochs(hub):
    epoch3, epoch5 = hub.files
    snapshot = epoch3.parents[1]
    assert snapshot.parent.name == "snapshots" and snapshot.parents[1].name == "models--org--repo"
    assert (snapshot.parents[1] / "refs" / "main").read_text() == snapshot.name
    assert (epoch3.name, epoch5.name, epoch3.parent.name) == ("epoch_3.pt", "epoch_5.pt", RUN)
    assert os.path.samefile(epoch3, epoch5)  # a hard link: the disk of one checkpoint
    saved = torch.load(epoch3, map_location="cpu", weights_only=True)
    assert saved["epoch"] == 3 and all(k.startswith("module.") for k in saved["state_dict"])


def test_a_hub_name_resolves_offline_to_the_cached_file_and_loads(hub):
    spec = resolve(NAME)
    assert spec.name == NAME and spec.source == "checkpoint" and spec.arch == "clipscope-tiny"
    assert spec.path == str(hub.files[0]) and os.path.isfile(spec.path)
    assert resolve(spec.name) == spec  # the name is stable: resolving it again gives the same spec
    encoder = load_model(NAME, device="cpu")
    assert encoder.name == NAME and encoder.identity["path"] == spec.path
    state = encoder.model.state_dict()
    written = torch.load(spec.path, map_location="cpu", weights_only=True)["state_dict"]
    for key, value in written.items():
        assert torch.equal(state[key.removeprefix("module.")].to(value.dtype), value), key
    feats = encoder.encode_texts(["a red cube and a blue sphere"])
    assert feats.shape == (1, encoder.embed_dim) and torch.isfinite(feats).all()
    other = load_model(f"clipscope-tiny@hf://{REPO}/{RUN}/epoch_5.pt", device="cpu")
    assert torch.equal(other.encode_texts(["a red cube and a blue sphere"]), feats)  # the shared state


def test_an_external_entry_keeps_the_hub_name(hub):
    assert parse_external([f"2000={NAME}"]) == [(2000, NAME)]


def test_a_paper_name_works_as_the_left_part(hub):
    spec = resolve(f"negclip@hf://{REPO}/{RUN}/epoch_3.pt")
    assert spec.name == f"NegCLIP@hf://{REPO}/{RUN}/epoch_3.pt" and spec.path == str(hub.files[0])
    assert (spec.source, spec.arch, spec.quick_gelu, spec.paper_name) == ("checkpoint", "ViT-B-32-quickgelu", True,
                                                                          "NegCLIP")


def test_a_file_missing_offline_is_one_clear_error(hub):
    missing = f"clipscope-tiny@hf://{REPO}/{RUN}/epoch_99.pt"
    with pytest.raises(ModelError) as err:
        resolve(missing)
    msg = str(err.value)
    for phrase in (repr(missing), "'dir/epoch_99.pt'", "model repo 'org/repo'", "not in the Hugging Face cache",
                   "HF_HUB_OFFLINE=1", str(hub.root / "hf" / "hub"), "hf download org/repo dir/epoch_99.pt",
                   "huggingface-cli download org/repo dir/epoch_99.pt", "'<ARCH>@/path/to/epoch_99.pt'"):
        assert phrase in msg, (phrase, msg)
    assert err.value.__cause__ is None  # no traceback of huggingface_hub behind it


def test_a_failed_download_online_is_the_same_clear_error(hub, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")

    def unreachable(repo_id, filename, **kwargs):
        assert (repo_id, filename) == (REPO, f"{RUN}/epoch_99.pt")
        assert kwargs["cache_dir"] == str(hub.root / "hf" / "hub")
        raise OSError("network unreachable")

    monkeypatch.setattr(registry, "hf_hub_download", unreachable)
    with pytest.raises(ModelError, match=re.escape("downloading it failed (OSError: network unreachable)")) as err:
        resolve(f"clipscope-tiny@hf://{REPO}/{RUN}/epoch_99.pt")
    assert "hf download org/repo dir/epoch_99.pt" in str(err.value)
    assert resolve(NAME).path == str(hub.files[0])  # a cached file needs no download, online too


@pytest.mark.parametrize("name, message", [
    ("clipscope-tiny@hf://org/repo", "expected '<ARCH>@hf://<org>/<repo>/<path of the file in the repo>'"),
    ("clipscope-tiny@hf://org/repo/", "expected '<ARCH>@hf://"),
    ("clipscope-tiny@hf://org//epoch_3.pt", "expected '<ARCH>@hf://"),
    ("clipscope-tiny@hf://", "expected '<ARCH>@hf://"),
    ("clipscope-tinny@hf://org/repo/dir/epoch_3.pt", "not an open_clip architecture"),
    ("sbert@hf://org/repo/dir/epoch_3.pt", "names one checkpoint file"),
])
def test_a_malformed_hub_name_is_refused_clearly(hub, name, message):
    with pytest.raises(ModelError, match=re.escape(message)):
        resolve(name)


def test_the_up_front_check_names_a_missing_hub_file(hub):
    schema = {"external": SimpleNamespace(meaning="external")}
    ok = check_notebook("hub_epochs", {"external": [f"2000={NAME}"]}, schema)
    assert ok.problems == [] and ok.models == [("external", f"2000 samples: {NAME}")]
    assert list(ok.files) == [str(hub.files[0])]
    bad = check_notebook("hub_epochs", {"external": [f"2000={NAME}", "4000=clipscope-tiny@hf://org/repo/dir/x.pt"]},
                         schema)
    assert len(bad.problems) == 1 and "not in the Hugging Face cache" in bad.problems[0], bad.problems
    assert "hf download org/repo dir/x.pt" in bad.problems[0]


def test_hub_names_in_a_parameters_cell_stay_readable():
    """A hub name has no space for pprint to break at: the injected parameters cell breaks it after a '/'."""
    run = f"hf://{standins.SCALING_REPO}/{standins.SCALING_RUN}"
    params = {"external": [f"{k * 200_000_000}=ViT-B-32@{run}/epoch_{k}.pt" for k in (10, 50)], "name": NAME,
              "nested": {"model": f"ViT-B-32@{run}/epoch_30.pt"}}
    source = parameters_source(params)
    assert max(map(len, source.splitlines())) <= PARAMETERS_WIDTH, source
    scope: dict = {}
    exec(source, {}, scope)  # noqa: S102 - literals written above
    assert scope == params


def test_the_rehearsal_build_writes_the_scaling_laws_files(tmp_path, monkeypatch):
    """build_standins(scaling_epochs=...) writes the real run's hub files (ViT-B-32, one shared fp16 state) and
    lists them in the manifest's external names, which resolve offline with the stand-in environment."""
    out = tmp_path / "standins"
    try:
        env = standins.build_standins(out, models=[], epochs=0, scaling_epochs=(10, 20))
        manifest = json.loads((out / "manifest.json").read_text())
        run = f"hf://{standins.SCALING_REPO}/{standins.SCALING_RUN}"
        assert manifest["external"] == [f"2000000000=ViT-B-32@{run}/epoch_10.pt",
                                        f"4000000000=ViT-B-32@{run}/epoch_20.pt"]
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setattr(registry, "hf_hub_download", _no_network)
        specs = [resolve(entry.split("=", 1)[1]) for entry in manifest["external"]]
        assert os.path.samefile(specs[0].path, specs[1].path)
        assert manifest["bytes"] < 1.1 * os.path.getsize(specs[0].path)  # the hard link counted once
        assert os.path.getsize(specs[0].path) < 400e6  # float16 ViT-B-32, not float32
    finally:
        shutil.rmtree(out, ignore_errors=True)
