"""The caption-order experiment at scale: ``open_clip_train`` itself under torchrun on webdataset shards
(:mod:`clipscope_utils.training.openclip`), its epoch checkpoints read back as registry names, any run's logs
folder as the progression chapter's ``external: logs=<folder>``, and every bad input refused before a process starts.

``test_slow_...`` is the slow one (two gloo processes under torchrun, 15-25 s on 2 cores); it stays in the
default run: nothing else proves that open_clip_train runs data-parallel here.
"""

import io
import re
import time

import numpy as np
import pytest
import torch
from PIL import Image

from clipscope_utils.datasets.shards import ShardSample, write_shard
from clipscope_utils.models.registry import load_model
from clipscope_utils.parallel import log_summary
from clipscope_utils.training import OpenClipRun, TrainingError, logs_checkpoints, train_openclip
from clipscope_utils.training import openclip
from clipscope_utils.zoo import parse_external

WORDS = ("cat", "dog", "car", "tree", "house", "bird", "boat", "lamp")
# two processes with a global batch of 32 (16 each), 4 steps an epoch, two epochs
RUN = dict(processes=2, model="clipscope-tiny", samples=128, epochs=2, batch_size=32, warmup=2, label="first")


def noise_shard(path, n: int, seed: int, image_ext: str | None = "png") -> str:
    """An img2dataset shard (``datasets.shards.write_shard``: ``<key>.png``, ``.txt``, ``.json``) of ``n`` 64 px noise
    images with two-object captions; ``image_ext=None``: captions only (a metadata shard, no pair to train on)."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, format="PNG")
        caption = f"a {WORDS[i % 8]} and a {WORDS[(i + seed + 1) % 8]}"
        samples.append(ShardSample(key=f"{seed:03d}{i:05d}", caption=caption,
                                   image=buf.getvalue() if image_ext else None, image_ext=image_ext or "png"))
    return str(write_shard(path, samples))


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    return tuple(noise_shard(folder / f"{s:05d}.tar", 40, s) for s in range(4))


@pytest.fixture(scope="module")
def trained(shards, module_cache):
    """The one torchrun run of the module: (result, wall seconds of train())."""
    t0 = time.perf_counter()
    result = train_openclip(OpenClipRun(shards, **RUN))
    return result, time.perf_counter() - t0


@pytest.fixture
def no_process(monkeypatch):
    """Fail the test if any training process would start."""
    def refuse(*args, **kwargs):
        raise AssertionError("a training process was started")
    monkeypatch.setattr(openclip, "torchrun", refuse)


def test_slow_two_processes_of_open_clip_train_give_loadable_epoch_checkpoints(trained) -> None:
    result, seconds = trained
    assert [s for s, _ in result.checkpoints] == [128, 256]
    assert result.folder.name.startswith("first-") and result.folder.parent.name == "openclip"
    states = []
    for (_, name), k in zip(result.checkpoints, (1, 2)):
        assert name.startswith("clipscope-tiny@") and name.endswith(f"checkpoints/epoch_{k}.pt")
        enc = load_model(name, device="cpu")
        image = enc.encode_images(torch.rand(1, 3, 64, 64))
        text = enc.encode_texts(["a cat and a dog"])
        assert image.shape == text.shape == (1, 64)
        assert torch.isfinite(image).all() and torch.isfinite(text).all()
        states.append({k: v.clone() for k, v in enc.model.state_dict().items()})
    assert any(not torch.equal(states[0][k], states[1][k]) for k in states[0])  # the second epoch trained

    log = result.log()
    assert log.step.tolist() == list(range(1, 9)) and log.samples.tolist() == list(range(32, 257, 32))
    assert log.epoch.tolist() == [0] * 4 + [1] * 4
    assert np.isfinite(log.loss).all() and np.isfinite(log.contrastive_loss).all()
    assert log.loss.iloc[-1] < log.loss.iloc[0]  # noise images: down to chance (log 32), from a random start above it
    rate = log.samples_per_second.iloc[1:].mean()
    print(f"\n2-process open_clip_train run: train() {seconds:.1f} s (job {result.seconds:.1f} s), "
          f"{rate:.0f} samples/s (steps 2-8, from its log)")


def test_slow_the_same_config_gives_the_same_weights(trained, shards, tmp_path, monkeypatch) -> None:
    """Seeded end to end (shard order and the sample shuffle of every process): a run in a fresh cache equals the
    module's run bit for bit."""
    result, _ = trained
    monkeypatch.setenv("CLIPSCOPE_CACHE", str(tmp_path))
    again = train_openclip(OpenClipRun(shards, **RUN))
    assert again.folder != result.folder
    for (_, a), (_, b) in zip(result.checkpoints, again.checkpoints):
        sa, sb = (torch.load(n.split("@", 1)[1], map_location="cpu", weights_only=False)["state_dict"] for n in (a, b))
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_second_call_returns_the_cached_run_without_a_process(trained, shards, no_process) -> None:
    result, _ = trained
    again = train_openclip(OpenClipRun(shards, **RUN))
    assert again.checkpoints == result.checkpoints and again.folder == result.folder
    # the label names the folder only; the key is the config and the shards' contents
    assert openclip.run_folder(OpenClipRun(shards, **{**RUN, "label": "other"})).name.split("-")[-1] \
        == result.folder.name.split("-")[-1]
    assert OpenClipRun(shards, **{**RUN, "seed": 1}).key() != OpenClipRun(shards, **RUN).key()


def test_any_runs_logs_folder_gives_its_checkpoints_and_the_external_list_takes_it(trained) -> None:
    result, _ = trained
    logs = result.folder / "logs"
    for folder in (logs, logs / "run", logs / "run" / "checkpoints"):
        assert logs_checkpoints(folder) == result.checkpoints
    assert parse_external([f"logs={logs}"]) == result.checkpoints
    first = result.checkpoints[0][1].split("@", 1)[1]
    assert parse_external([f"64=clipscope-tiny@{first}", f"logs = {logs / 'run'}"]) == \
        [(64, result.checkpoints[0][1])] + result.checkpoints


def test_logs_folders_without_checkpoints_or_samples_are_named(tmp_path) -> None:
    with pytest.raises(TrainingError, match=f"no open_clip_train run in {re.escape(str(tmp_path))}"):
        logs_checkpoints(tmp_path)
    with pytest.raises(TrainingError, match="does not exist"):
        logs_checkpoints(tmp_path / "missing")
    run = tmp_path / "logs" / "mine"
    (run / "checkpoints").mkdir(parents=True)
    with pytest.raises(TrainingError, match="no open_clip_train epoch checkpoints"):
        logs_checkpoints(tmp_path / "logs")
    (run / "checkpoints" / "epoch_3.pt").write_bytes(b"x")
    with pytest.raises(TrainingError, match=r"has no params.txt.*'<SAMPLES>=<ARCH>@"):
        logs_checkpoints(run)
    (run / "params.txt").write_text("model: clipscope-tiny\ntrain_num_samples: None\n")
    with pytest.raises(ValueError, match="gives no train_num_samples"):
        parse_external([f"logs={tmp_path / 'logs'}"])
    (run / "params.txt").write_text("force_quick_gelu: False\nmodel: clipscope-tiny\ntrain_num_samples: 1000\n")
    assert logs_checkpoints(tmp_path / "logs") == [(3000, f"clipscope-tiny@{run / 'checkpoints' / 'epoch_3.pt'}")]
    (tmp_path / "logs" / "yours" / "checkpoints").mkdir(parents=True)
    with pytest.raises(TrainingError, match=r"several open_clip_train runs \(mine, yours\)"):
        logs_checkpoints(tmp_path / "logs")
    with pytest.raises(ValueError, match="SAMPLES=MODEL.*logs=<folder>"):
        parse_external(["clipscope-tiny@x.pt"])


def test_bad_inputs_are_refused_before_any_process_starts(shards, tmp_path, cache, no_process) -> None:
    with pytest.raises(TrainingError, match="does not exist"):
        train_openclip(OpenClipRun((*shards, str(tmp_path / "gone.tar")), **RUN))
    with pytest.raises(TrainingError, match="batch_size=30 .* does not split evenly over 4 processes"):
        OpenClipRun(shards, **{**RUN, "batch_size": 30, "processes": 4})
    with pytest.raises(TrainingError, match="not a whole number of batches.*e.g. 160"):
        OpenClipRun(shards, **{**RUN, "samples": 130})
    with pytest.raises(TrainingError, match="warm-up .8 steps. is not shorter than training: 8 steps"):
        OpenClipRun(shards, **{**RUN, "warmup": 8})
    with pytest.raises(TrainingError, match="no open_clip architecture"):
        OpenClipRun(shards, **{**RUN, "model": "clipscope-huge"})
    with pytest.raises(TrainingError, match="'::' or a brace"):
        OpenClipRun((str(tmp_path / "a::b.tar"),), **RUN)
    with pytest.raises(TrainingError, match="1 shards for 2 readers"):
        train_openclip(OpenClipRun(shards[:1], **RUN))
    with pytest.raises(TrainingError, match="1 shard.s. with 40 pairs, less than one batch of its process .64."):
        train_openclip(OpenClipRun(shards[:2], **{**RUN, "batch_size": 128, "warmup": 1}))
    bare = noise_shard(tmp_path / "00009.tar", 4, 9, image_ext=None)
    with pytest.raises(TrainingError, match="00009.tar holds no image-caption pair"):
        train_openclip(OpenClipRun((*shards, bare), **RUN))
    not_tar = tmp_path / "text.tar"
    not_tar.write_text("not a tar")
    with pytest.raises(TrainingError, match="not a readable tar file"):
        train_openclip(OpenClipRun((*shards, str(not_tar)), **RUN))
    assert not (cache / "openclip").exists() or not any((cache / "openclip").rglob("done.json"))


def test_shard_pairs_count_what_open_clip_train_reads(tmp_path) -> None:
    assert openclip.shard_pairs(noise_shard(tmp_path / "00001.tar", 5, 1, image_ext="jpg")) == 5
    assert openclip.shard_pairs(noise_shard(tmp_path / "00002.tar", 5, 1, image_ext=None)) == 0  # no image


def test_the_open_clip_train_arguments_split_the_global_batch(shards) -> None:
    run = OpenClipRun(shards, **RUN)
    args = openclip.openclip_args(run, openclip.Path("/x/logs"))
    value = dict(zip(args[::2], args[1::2]))
    assert value["--batch-size"] == "16" and value["--train-num-samples"] == "128" and value["--epochs"] == "2"
    assert value["--train-data"] == "::".join(shards) and value["--dataset-type"] == "webdataset"
    assert value["--dist-backend"] == "gloo" and value["--report-to"] == "" and value["--logs"] == "/x/logs"
    assert "--dataset-resampled" not in args
    assert "--dist-backend" not in openclip.openclip_args(run.replace(device="cuda"), openclip.Path("/x"))


def test_a_failed_jobs_summary_names_the_first_error_not_torchruns_report(tmp_path) -> None:
    log = tmp_path / "train.log"
    log.write_text("[rank0]:I1201 04:57:32.869000 8703 utils.py:925] compile metrics\n"
                   "[rank1]: Traceback (most recent call last):\n"
                   "[rank1]: KeyError: 'fname'\n"
                   "[rank0]: RuntimeError: Connection closed by peer\n"
                   "E1201 04:57:37.738000 8598 api.py:1002] failed (exitcode: 1) local_rank: 0\n"
                   "Traceback (most recent call last):\n"
                   '  File "torch/distributed/run.py", line 1142, in <module>\n'
                   "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \n"
                   "clipscope_utils.training.openclip_main FAILED\n")
    summary = log_summary(log)
    assert summary.startswith("the first error: KeyError: 'fname'\n")
    assert summary.endswith("[rank0]: RuntimeError: Connection closed by peer")
    log.write_text("usage: main.py [-h]\nmain.py: error: argument --image-mean: invalid float value: 'x'\n")
    assert log_summary(log).startswith("the first error: main.py: error: argument --image-mean")
