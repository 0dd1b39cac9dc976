"""Claim 2 over shards (``studies/claim2_ray``): the same records on one core and on Ray, against the known truth of
generated scenes, resumable shard by shard, checked before any work.

Ray starts once for the module (a few seconds) and runs two pipelines; everything else runs the plain loop, or Ray's
stages and its driver's writer in this process.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from clipscope_utils.datasets import SceneSpec, generate
from clipscope_utils.datasets.shards import (
    SEGMENT_COLUMNS,
    ShardSample,
    export_scene_shards,
    read_shard,
    segments_path,
    write_shard,
)
from clipscope_utils.datasets.tables import DatasetError
from clipscope_utils.studies import claim2_ray as c2
from clipscope_utils.studies.caption_order import Mention, SceneGraphExtractor
from clipscope_utils.studies.reorder import reorder_shards

TIMING = ["seconds"]  # the one column two runs may differ in


@pytest.fixture(scope="module")
def scenes(tmp_path_factory, module_cache):
    spec = SceneSpec(family="comco", objects=(2, 3, 4, 5), images=4, templates=("and", "photo"), order="random",
                     seed=11)
    return generate(spec, tmp_path_factory.mktemp("scenes") / "comco", workers=1, progress=False)


@pytest.fixture(scope="module")
def shards(scenes, tmp_path_factory):
    """3 shards (11 + 11 + 10 captions) with sidecars of the true areas."""
    paths = export_scene_shards(scenes, tmp_path_factory.mktemp("web") / "shards", shard_size=11)
    assert len(paths) == 3
    return paths


@pytest.fixture(scope="module")
def clean(shards, tmp_path_factory):
    """A clean local run: the reference records."""
    return c2.run_local(c2.Claim2Job(shards[0].parent, out=str(tmp_path_factory.mktemp("clean"))))


@pytest.fixture(scope="module")
def ray_cluster(module_cache):
    """One quiet local Ray for the module (2 CPUs), shut down after it."""
    with c2.ray_session(num_cpus=2) as started:
        assert started
        yield


def same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.drop(columns=TIMING), b.drop(columns=TIMING))


def shard_texts(path) -> set[str]:
    return {s.caption for s in read_shard(path)}


class Counting:
    """SceneGraphExtractor that counts the captions it sees (one process: the plain loop)."""

    seen = 0

    def __init__(self):
        self.inner = SceneGraphExtractor()

    def mentions(self, text: str) -> list[Mention]:
        type(self).seen += 1
        return self.inner.mentions(text)


def failing_on(texts: set[str]):
    """An extractor factory that raises on the given captions (a worker dying in the middle of a shard)."""

    class Failing:  # defined here so that Ray pickles it by value
        def __init__(self):
            self.inner = SceneGraphExtractor()

        def mentions(self, text):
            if text in texts:
                raise RuntimeError("injected fault")
            return self.inner.mentions(text)

    return Failing


def files(folder) -> dict[str, float]:
    return {p.name: p.stat().st_mtime_ns for p in (folder / "records").glob("*.parquet")}


# -- the records ----------------------------------------------------------------------------------
def test_records_follow_the_known_order_and_areas(scenes, shards, clean) -> None:
    assert list(clean.columns) == c2.RECORD_COLUMNS
    assert len(clean) == 32 and list(clean.shard.unique()) == ["00000", "00001", "00002"]
    assert clean.equals(clean.sort_values(["shard", "image_id"]).reset_index(drop=True))
    # the truth: each caption's classes in caption order, and the true areas (largest instance per class)
    meta = {s.key: s.meta["image_id"] for p in shards for s in read_shard(p)}
    text_order = dict(zip(zip(scenes.captions.image_id, scenes.captions.text), scenes.captions.order))
    area = scenes.objects.groupby(["image_id", "class_name"]).area_px.max()
    matched = 0
    for key, text, classes, areas, pos in zip(clean.image_id, clean.text, clean.classes, clean.areas, clean.position):
        image = meta[key]
        truth = text_order[(image, text)].split("|")
        true_areas = [float(area[(image, k)]) for k in truth]
        if classes != truth:
            continue
        matched += 1
        assert areas == true_areas
        top = np.flatnonzero(np.array(true_areas) == max(true_areas))
        assert pos == top[0] + 1
    assert matched >= 0.9 * len(clean)
    # the table's largest-first shares are the truth's over the captions extraction matched (ties left out)
    ok = clean[[c == text_order[(meta[k], t)].split("|") for k, t, c in zip(clean.image_id, clean.text, clean.classes)]]
    truth = []
    for key, text in zip(ok.image_id, ok.text):
        areas = [float(area[(meta[key], k)]) for k in text_order[(meta[key], text)].split("|")]
        if areas.count(max(areas)) == 1:
            truth.append((len(areas), float(areas.index(max(areas)) == 0)))
    truth_first = pd.DataFrame(truth, columns=["n", "first"]).groupby("n")["first"].mean()
    first = c2.table(ok, n_boot=50).first.set_index("n_mentioned").share_first
    np.testing.assert_allclose(first.to_numpy(), truth_first.to_numpy())
    assert first.index.tolist() == truth_first.index.tolist() == [2, 3, 4, 5]


def test_stages_run_without_ray(shards, clean) -> None:
    rows = c2.read_stage(shards[1])
    assert list(rows.columns) == c2.READ_COLUMNS and set(rows.template) == {"and", "photo"}
    out = c2.RecordStage(c2.area_factory_of(c2.Claim2Job(shards[1])))(c2.ExtractStage()(rows))
    same(out.reset_index(drop=True), clean[clean.shard == "00001"].reset_index(drop=True))


# -- resuming -------------------------------------------------------------------------------------
def test_a_failed_run_keeps_finished_shards_and_reruns_only_the_rest(shards, clean, tmp_path) -> None:
    job = c2.Claim2Job(shards[0].parent, out=str(tmp_path / "out"))
    poison = shard_texts(shards[1]) - shard_texts(shards[0])
    with pytest.raises(RuntimeError, match="injected fault"):
        c2.run_local(job, extractor_factory=failing_on(poison))
    done = files(tmp_path / "out")
    assert [n[:5] for n in done] == ["00000"]  # the first shard is kept, the failed one left no file
    assert not list((tmp_path / "out" / "records").glob(".*"))  # and no temporary either
    Counting.seen = 0
    rerun = c2.run_local(job, extractor_factory=Counting)
    assert Counting.seen == 21  # shards 00001 and 00002 only
    assert files(tmp_path / "out").items() >= done.items()  # the first shard's file untouched
    same(rerun, clean)
    Counting.seen = 0
    same(c2.run_local(job, extractor_factory=Counting), clean)
    assert Counting.seen == 0  # nothing left to do


def test_a_changed_shard_is_recomputed(scenes, tmp_path) -> None:
    paths = export_scene_shards(scenes, tmp_path / "shards", shard_size=11)
    job = c2.Claim2Job(tmp_path / "shards", out=str(tmp_path / "out"))
    before = c2.run_local(job)
    samples = list(read_shard(paths[2]))
    changed = [ShardSample(s.key, "a zebra and " + s.caption if i == 0 else s.caption, s.image, s.image_ext, s.meta)
               for i, s in enumerate(samples)]
    old = files(tmp_path / "out")
    write_shard(paths[2], changed, pd.read_parquet(segments_path(paths[2])))
    Counting.seen = 0
    after = c2.run_local(job, extractor_factory=Counting)
    assert Counting.seen == len(samples)
    new = files(tmp_path / "out")
    assert len(new) == 3 and {n for n in new if n.startswith("00002")}.isdisjoint(old)  # the stale file is gone
    def others(f):
        return {n: t for n, t in f.items() if not n.startswith("00002")}

    assert others(new) == others(old)
    assert after.text.tolist() != before.text.tolist()
    assert after[after.shard == "00002"].text.iloc[0].startswith("a zebra and")


def test_the_results_folder_is_keyed_by_the_stages_not_the_shards(shards, module_cache) -> None:
    a = c2.job_folder(c2.Claim2Job(shards[0].parent))
    assert a == c2.job_folder(c2.Claim2Job([str(shards[0])]))
    assert a != c2.job_folder(c2.Claim2Job(shards[0].parent, classes=("dog", "cat")))
    assert a != c2.job_folder(c2.Claim2Job(shards[0].parent, extractor="classnames", classes=("dog", "cat")))
    assert a.parent.name == "claim2"


def test_an_out_folder_of_another_configuration_is_refused(shards, tmp_path) -> None:
    c2.run_local(c2.Claim2Job([shards[2]], out=str(tmp_path)))
    with pytest.raises(DatasetError, match="another configuration"):
        c2.run_local(c2.Claim2Job([shards[2]], out=str(tmp_path), classes=("dog", "cat")))


# -- Ray ------------------------------------------------------------------------------------------
def test_ray_stops_at_a_failed_shard_keeps_the_written_ones_resumes_and_prints_nothing(shards, clean, tmp_path,
                                                                                     ray_cluster, capfd) -> None:
    job = c2.Claim2Job(shards[0].parent, out=str(tmp_path / "out"))
    poison = shard_texts(shards[1]) - shard_texts(shards[0]) - shard_texts(shards[2])
    assert poison
    with pytest.raises(Exception, match="injected fault") as e:  # Ray's error around it; one extraction actor: most
        c2.run_ray(job, extractor_factory=failing_on(poison), extract_workers=1)  # of the time here is its start-up
    assert any("run again to resume" in n for n in e.value.__notes__)
    done = files(tmp_path / "out")
    assert "00001" not in {n[:5] for n in done}  # the failed shard left no file
    assert not list((tmp_path / "out" / "records").glob(".*"))  # and no temporary either
    for name in done:  # every file written is its shard's complete records
        part = c2.tidy(pq.read_table(tmp_path / "out" / "records" / name))
        same(part, clean[clean.shard == name[:5]].reset_index(drop=True))
    capfd.readouterr()
    got = c2.run_ray(job, extract_workers=1)
    assert capfd.readouterr() == ("", "")
    same(got, clean)
    now = files(tmp_path / "out")
    assert len(now) == 3 and now.items() >= done.items()  # the finished shards were not redone


def test_ray_resumes_a_local_run_with_the_same_records(shards, clean, tmp_path, ray_cluster) -> None:
    job = c2.Claim2Job(shards[0].parent, out=str(tmp_path / "out"))
    with pytest.raises(RuntimeError):
        c2.run_local(job, extractor_factory=failing_on(shard_texts(shards[1]) - shard_texts(shards[0])))
    done = files(tmp_path / "out")
    same(c2.run_ray(job, extract_workers=1), clean)
    now = files(tmp_path / "out")
    assert len(now) == 3 and now.items() >= done.items()  # the finished shard was not redone


def ray_blocks(shards, job: c2.Claim2Job, plan: c2.RayPlan) -> list[pa.Table]:
    """What Ray's actor stages of ``plan`` give for the shards, run in this process: one block per shard."""
    stages = [c2.ArrowStage(build, columns) for build, columns in c2.ray_stages(job, plan)]
    out = []
    for path in shards:
        block = pa.table({"path": [str(path)]})
        for stage in stages:
            block = stage(block.to_pandas())
        out.append(block)
    return out


@pytest.mark.parametrize("area_workers", [0, 1])  # sidecar areas in the extraction actors; a detector's own pool
def test_ray_stages_carry_each_shards_row_count_to_the_writer(shards, clean, tmp_path, area_workers) -> None:
    job = c2.Claim2Job(shards[0].parent, out=str(tmp_path / "out"))
    blocks = ray_blocks(shards, job, c2.RayPlan(2, 0.0, area_workers, 0.0, 0.0))
    assert [b.column_names for b in blocks] == [c2.RECORD_COLUMNS + [c2.SHARD_ROWS]] * 3
    assert [set(b.column(c2.SHARD_ROWS).to_pylist()) for b in blocks] == [{11}, {11}, {10}]
    folder, todo = c2.pending(job)
    writer = c2.ShardWriter(folder, job, todo)
    for b in blocks:
        writer.add(b)
    writer.finish()
    same(c2.records(job), clean)


def test_the_writer_writes_each_shard_when_its_last_row_arrives_and_nothing_partial(shards, clean,
                                                                                      tmp_path) -> None:
    job = c2.Claim2Job(shards[0].parent, out=str(tmp_path / "out"))
    blocks = ray_blocks(shards, job, c2.RayPlan(2, 0.0, 0, 0.0, 0.0))
    # Ray's order: pieces of any shards, mixed in one block, rows of a shard in any order
    arrivals = [blocks[1].slice(0, 4), pa.concat_tables([blocks[0].slice(6), blocks[1].slice(8)]),
                blocks[0].slice(0, 6).take([5, 3, 1, 0, 2, 4]), blocks[1].slice(4, 4)]
    folder, todo = c2.pending(job)
    writer = c2.ShardWriter(folder, job, todo)
    written = []
    for batch in arrivals:
        writer.add(batch)
        written.append(sorted(n[:5] for n in files(tmp_path / "out")))
    assert written == [[], [], ["00000"], ["00000", "00001"]]
    assert not writer.parts and writer.written == {"00000", "00001"}
    with pytest.raises(RuntimeError, match="after its file was written"):
        writer.add(blocks[0].slice(0, 1))  # a row twice
    writer.add(blocks[2].slice(0, 5))  # a run killed here leaves shard 00002 without a file
    assert [p.stem for p in c2.pending(job)[1]] == ["00002"]
    same(c2.records(job), clean[clean.shard != "00002"].reset_index(drop=True))
    with pytest.raises(RuntimeError, match="incomplete"):
        writer.finish()
    # rows counted twice within a shard are caught before its file is written
    job2 = c2.Claim2Job([shards[2]], out=str(tmp_path / "twice"))
    folder, todo = c2.pending(job2)
    writer = c2.ShardWriter(folder, job2, todo)
    with pytest.raises(RuntimeError, match="once each"):
        writer.add(pa.concat_tables([blocks[2].slice(0, 5), blocks[2].slice(0, 5)]))
    assert not files(tmp_path / "twice")


def test_a_shard_without_samples_gets_an_empty_file(tmp_path) -> None:
    seg = pd.DataFrame(columns=SEGMENT_COLUMNS)
    write_shard(tmp_path / "shards" / "00000.tar", [], seg)
    job = c2.Claim2Job(tmp_path / "shards", out=str(tmp_path / "out"))
    assert ray_blocks([tmp_path / "shards" / "00000.tar"], job, c2.RayPlan(1, 0.0, 0, 0.0, 0.0))[0].num_rows == 0
    folder, todo = c2.pending(job)
    writer = c2.ShardWriter(folder, job, todo)
    writer.finish()  # no rows came: the shard is done
    assert list(files(tmp_path / "out"))[0].startswith("00000-") and c2.pending(job)[1] == []
    assert c2.records(job).empty and list(c2.records(job).columns) == c2.RECORD_COLUMNS
    local = c2.Claim2Job(tmp_path / "shards", out=str(tmp_path / "local"))
    assert c2.run_local(local).empty and c2.pending(local)[1] == []


# -- parquet shards, sidecars, detectors, checks -----------------------------------------------------
def test_parquet_shards_use_a_sidecar_beside_them_or_say_they_need_one(shards, clean, tmp_path) -> None:
    rows = [(s.key, s.caption, s.meta["template"]) for s in read_shard(shards[0])]
    meta = pd.DataFrame(rows, columns=["key", "caption", "template"])
    meta.to_parquet(tmp_path / "00000.parquet", index=False)
    pd.read_parquet(segments_path(shards[0])).to_parquet(segments_path(tmp_path / "00000.parquet"), index=False)
    got = c2.run_local(c2.Claim2Job(tmp_path / "00000.parquet", out=str(tmp_path / "a")))
    same(got, clean[clean.shard == "00000"].reset_index(drop=True))
    segments_path(tmp_path / "00000.parquet").unlink()
    with pytest.raises(DatasetError, match=r"00000\.parquet.*sidecar|sidecar.*00000\.parquet"):
        c2.run_local(c2.Claim2Job(tmp_path / "00000.parquet", out=str(tmp_path / "b")))
    assert not (tmp_path / "b").exists()  # checked before any work


def test_jobs_are_checked_before_any_work(shards, tmp_path) -> None:
    folder = str(shards[0].parent)
    with pytest.raises(DatasetError, match="detector folder .*nowhere.* does not exist"):
        c2.run_local(c2.Claim2Job(folder, area_source=f"detector:{tmp_path / 'nowhere'}", out=str(tmp_path / "o")))
    with pytest.raises(ValueError, match="unknown area_source 'segmenter'"):
        c2.run_local(c2.Claim2Job(folder, area_source="segmenter", out=str(tmp_path / "o")))
    with pytest.raises(DatasetError, match="does not exist"):
        c2.run_local(c2.Claim2Job([str(shards[0]), str(tmp_path / "00009.tar")], out=str(tmp_path / "o")))
    with pytest.raises(ValueError, match="extractor_factory"):
        c2.run_local(c2.Claim2Job(folder, extractor="llm:llama3", out=str(tmp_path / "o")))
    (tmp_path / "owl").mkdir()
    pd.DataFrame({"key": ["a"], "caption": ["a dog"]}).to_parquet(tmp_path / "00000.parquet")
    with pytest.raises(DatasetError, match="without images"):
        c2.run_local(c2.Claim2Job(tmp_path / "00000.parquet", area_source=f"detector:{tmp_path / 'owl'}",
                                  out=str(tmp_path / "o")))
    assert not (tmp_path / "o").exists()


def test_ray_plans_resources_per_stage(shards, tmp_path) -> None:
    sidecar = c2.Claim2Job(shards[0].parent)
    (tmp_path / "owl").mkdir()
    detector = c2.Claim2Job(shards[0].parent, area_source=f"detector:{tmp_path / 'owl'}")
    assert c2.ray_plan(sidecar, cpus=8, gpus=0) == c2.RayPlan(8, 0.0, 0, 0.0, 0.0)  # sidecars: in the extractors
    assert c2.ray_plan(detector, cpus=8, gpus=0) == c2.RayPlan(7, 0.0, 1, 1.0, 0.0)  # detector on one CPU
    assert c2.ray_plan(detector, cpus=8, gpus=2, num_gpus=2) == c2.RayPlan(8, 0.0, 2, 0.0, 1.0)  # one per GPU
    assert c2.ray_plan(detector, cpus=8, gpus=1, num_gpus=0.5).area_gpus == 0.5
    with pytest.raises(ValueError, match="num_gpus=1 but the Ray cluster has 0 GPU"):
        c2.ray_plan(detector, cpus=8, gpus=0, num_gpus=1)
    with pytest.raises(ValueError, match="lower extract_workers"):
        c2.ray_plan(sidecar, cpus=2, gpus=0, extract_workers=3)
    with pytest.raises(ValueError, match="extract_gpus"):
        c2.ray_plan(sidecar, cpus=8, gpus=1, extract_workers=2, extract_gpus=1)


def test_largest_box_areas() -> None:
    dets = [(0, 0.9, (0, 0, 10, 10)), (0, 0.5, (0, 0, 20, 20)), (0, 0.05, (0, 0, 50, 50)),  # below threshold
            (1, 0.3, (5, 5, 5, 9)),  # degenerate
            (2, 0.2, (-10, -10, 10, 10)), (7, 0.9, (0, 0, 1, 1))]  # clipped; unknown query
    assert c2.largest_box_areas(dets, 3, 0.1) == [400.0, 0.0, 400.0]
    assert c2.largest_box_areas(dets, 3, 0.1, size=(30, 30)) == [400.0, 0.0, 100.0]
    assert c2.largest_box_areas(dets, 3, 0.6) == [100.0, 0.0, 0.0]


def test_detector_labels_name_their_queries() -> None:
    queries = ["dog", "red car", "car seat"]
    assert [c2.label_query(i, queries) for i in (0, 2, 3, -1)] == [0, 2, None, None]  # OWL: indices
    # Grounding DINO: the matched words of the prompt
    assert c2.label_query("red car", queries) == 1
    assert c2.label_query("dog red car", queries) == 1  # two phrases run together: the longest inside
    assert c2.label_query("car", queries) == 1  # part of a phrase: the first it is part of
    assert c2.label_query("cat", queries) is None and c2.label_query("", queries) is None


def test_detector_areas_with_a_fake_detector(shards) -> None:
    sample = next(iter(read_shard(shards[0])))
    calls = []

    def fake(image, queries, threshold):
        calls.append((image.size, list(queries), threshold))
        boxes = {"dog": [(0, 0, 4, 4), (0, 0, 8, 8)], "big red car": [(10, 10, 40, 30)]}
        return [(i, 0.5, box) for i, q in enumerate(queries) for box in boxes.get(q, [])]

    mentions = [Mention("big red car"), Mention("dog"), Mention("Dog"), Mention("unicorn")]
    areas = c2.DetectorAreas("unused", threshold=0.25, detector=fake)
    got = areas("x.tar", sample.key, sample.image, mentions)
    assert calls == [((64, 64), ["big red car", "dog", "unicorn"], 0.25)]
    assert got == c2.Matched(["big red car", "dog"], [600.0, 64.0], 0, 1, 0)
    # with a vocabulary the matched classes are queried; no image: every query has no area
    vocab = c2.DetectorAreas("unused", threshold=0.25, classes=("dog", "car"), detector=fake)
    assert vocab.queries(mentions) == (["car", "dog"], 1)
    assert vocab("x.tar", "k", None, mentions) == c2.Matched([], [], 1, 0, 2)
    # through the area stage and the position stage, as the plain loop and Ray call them
    batch = pd.DataFrame({"path": ["x.tar"], "image_id": [sample.key], "image": [sample.image],
                          "extracted": [["big red car", "dog"]], "lemmas": [["", ""]], "shard": ["x"], "index": [0],
                          "template": ["web"], "text": ["big red car and dog"], "seconds": [0.0]})
    rec = c2.position_stage(c2.AreaStage(lambda: areas)(batch))
    assert rec[["n_mentioned", "position", "n_tied"]].iloc[0].tolist() == [2, 1, 1]


def tiny_owl(folder, kind: str):
    """A randomly initialised OWL-ViT / OWLv2 of a few kB with a 54-token tokenizer, saved as a Hugging Face folder:
    the real loading, prompting and post-processing path without downloaded weights (its boxes mean nothing)."""
    import transformers as tf

    vocab = {}
    for ch in "abcdefghijklmnopqrstuvwxyz":
        vocab[ch], vocab[ch + "</w>"] = len(vocab), len(vocab) + 1
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1  # OWL pools at the highest id
    n = len(vocab)
    tokenizer = tf.CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16)
    text = dict(vocab_size=n, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                max_position_embeddings=16, bos_token_id=n - 2, eos_token_id=n - 1, pad_token_id=n - 1)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32,
                  patch_size=16)
    size = {"height": 32, "width": 32}
    if kind == "owlv2":
        model = tf.Owlv2ForObjectDetection(tf.Owlv2Config(text_config=text, vision_config=vision, projection_dim=32))
        processor = tf.Owlv2Processor(image_processor=tf.Owlv2ImageProcessor(size=size), tokenizer=tokenizer)
    else:
        model = tf.OwlViTForObjectDetection(tf.OwlViTConfig(text_config=text, vision_config=vision, projection_dim=32))
        processor = tf.OwlViTProcessor(image_processor=tf.OwlViTImageProcessor(size=size, crop_size=size),
                                       tokenizer=tokenizer)
    tf.utils.logging.disable_progress_bar()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    tf.utils.logging.enable_progress_bar()
    return folder


@pytest.mark.parametrize("kind", ["owlvit", "owlv2"])
def test_a_local_hugging_face_detector_runs_in_the_pipeline(kind, shards, tmp_path, capfd) -> None:
    folder = tiny_owl(tmp_path / kind, kind)
    detector = c2.HFDetector(folder, "cpu")
    sample = next(iter(read_shard(shards[0])))
    with Image.open(io.BytesIO(sample.image)) as im:
        found = detector(im.convert("RGB"), ["dog", "red car"], 0.0)
    assert found and {q for q, _, _ in found} <= {0, 1} and all(0 <= s <= 1 for _, s, _ in found)
    capfd.readouterr()
    job = c2.Claim2Job([shards[0]], area_source=f"detector:{folder}", detector_threshold=0.05, out=str(tmp_path / "o"))
    got = c2.run_local(job)
    assert capfd.readouterr() == ("", "")  # loading the detector printed nothing
    assert len(got) == 11 and (got.n_unknown == 0).all() and (got.n_no_area == 0).all()
    assert (got.n_mentioned + got.n_absent == got.n_extracted).all()  # every phrase is queried
    assert all(0 < a <= 64 * 64 for areas in got.areas for a in areas)
    assert all(set(c) <= set(e) for c, e in zip(got.classes, got.extracted))


def test_sidecar_areas_count_absent_unknown_and_missing_areas(tmp_path) -> None:
    seg = pd.DataFrame([("k1", "dog", 50.0, 0, 0, 1, 1), ("k1", "dog", 80.0, 0, 0, 1, 1),
                        ("k1", "cat", np.nan, 0, 0, 1, 1),
                        ("k2", "car", 10.0, 0, 0, 1, 1)], columns=SEGMENT_COLUMNS)
    path = write_shard(tmp_path / "00000.tar", [ShardSample("k1", "x"), ShardSample("k2", "y")], seg)
    mentions = [Mention("two dogs"), Mention("a cat"), Mention("car"), Mention("unicorn")]
    assert c2.SidecarAreas()(str(path), "k1", None, mentions) == c2.Matched(["dog"], [80.0], 1, 1, 1)
    # a vocabulary beyond the shard's classes: "zebra" is known (absent), not unknown
    assert c2.SidecarAreas(("dog", "zebra"))(str(path), "k2", None, [Mention("zebra")]) == c2.Matched([], [], 0, 1, 0)


def test_caption_rewriting_on_ray_writes_what_the_local_engine_writes(shards, ray_cluster, tmp_path) -> None:
    """The reordering step of the causal experiment at scale as one Ray task per shard (the running session is
    reused): byte for byte the local engine's shards, and the same counts."""
    local = reorder_shards(shards, tmp_path / "local", "largest_last", seed=3)
    on_ray = reorder_shards(shards, tmp_path / "ray", "largest_last", seed=3, engine="ray")
    assert (on_ray.captions, on_ray.rewritten, on_ray.unchanged_fewer_than_2) == \
        (local.captions, local.rewritten, local.unchanged_fewer_than_2)
    assert local.rewritten > 0
    for a, b in zip(local.shards, on_ray.shards):
        assert a.name == b.name and a.read_bytes() == b.read_bytes()
