"""LAION-style shards: img2dataset tars and parquet files written, read back, listed, rewritten; generated scenes
exported into them with their true object areas."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from clipscope_utils.datasets.png import encode_png
from clipscope_utils.datasets.scenes import SceneSpec, generate_cached
from clipscope_utils.datasets.shards import (
    COMPANION_COLUMNS, SEGMENT_COLUMNS, SEGMENTS_SUFFIX, ShardSample, export_scene_shards, list_shards, read_segments,
    read_shard, rewrite_captions, segments_path, shard_stem, write_shard,
)
from clipscope_utils.datasets.tables import DatasetError, SceneSet

RNG = np.random.default_rng(0)
PNG = encode_png(RNG.integers(0, 256, (6, 5, 3), dtype=np.uint8))
SAMPLES = [
    ShardSample("000000000", "a dog and a cat", PNG, "png", {"url": "http://x/0.png", "width": 5, "height": 6}),
    ShardSample("000000001", "une tasse de café", b"\xff\xd8 not really a jpeg", "jpg", {"similarity": 0.31}),
    ShardSample("000000002", "no image here"),
]
SEGMENTS = pd.DataFrame([("000000000", "dog", 20, 0, 0, 4, 5), ("000000000", "cat", 6, 3, 3, 5, 6),
                         ("000000001", "cup", 11, 1, 1, 4, 4)], columns=SEGMENT_COLUMNS)


def shard(folder: Path, stem: str = "00000", samples=SAMPLES, segments=SEGMENTS) -> Path:
    return write_shard(folder / f"{stem}.tar", samples, segments)


def members(path: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(path) as tf:
        return [(m, tf.extractfile(m).read()) for m in tf.getmembers()]


# -- tar ------------------------------------------------------------------------------------------
def test_tar_round_trip_gives_captions_images_meta_and_sidecar(tmp_path: Path) -> None:
    path = shard(tmp_path)
    got = list(read_shard(path))
    assert [s.key for s in got] == [s.key for s in SAMPLES]
    assert [s.caption for s in got] == [s.caption for s in SAMPLES]
    assert [s.image for s in got] == [s.image for s in SAMPLES]
    assert [s.image_ext for s in got[:2]] == ["png", "jpg"]
    for want, have in zip(SAMPLES, got):
        assert have.meta == {**want.meta, "key": want.key, "caption": want.caption}
    assert Image.open(io.BytesIO(got[0].image)).size == (5, 6)
    names = [m.name for m, _ in members(path)]
    assert names[:5] == ["000000000.png", "000000000.txt", "000000000.json", "000000001.jpg", "000000001.txt"]
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 and m.uname == "" for m, _ in members(path))
    seg = read_segments(path)
    assert list(seg.columns) == SEGMENT_COLUMNS and seg.key.tolist() == SEGMENTS.key.tolist()
    assert seg.area_px.tolist() == [20.0, 6.0, 11.0]
    companion = pd.read_parquet(tmp_path / "00000.parquet")
    assert list(companion.columns) == COMPANION_COLUMNS
    assert companion.key.tolist() == [s.key for s in SAMPLES]
    assert companion.caption.tolist() == [s.caption for s in SAMPLES]
    assert companion.url.iloc[0] == "http://x/0.png" and companion.width.iloc[0] == 5
    assert (companion.status == "success").all()


def test_the_same_samples_give_a_byte_identical_tar(tmp_path: Path) -> None:
    a = shard(tmp_path / "a")
    b = write_shard(tmp_path / "b" / "00000.tar", iter(SAMPLES), SEGMENTS)  # any iterable
    assert a.read_bytes() == b.read_bytes()
    assert shard(tmp_path / "a").read_bytes() == b.read_bytes()  # written again in place
    assert read_segments(shard(tmp_path / "a", segments=None)) is None  # an old sidecar goes with a new write


def test_write_shard_refuses_bad_keys_and_segments(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="must end in .tar"):
        write_shard(tmp_path / "x.zip", SAMPLES)
    with pytest.raises(DatasetError, match="'a.b'"):
        write_shard(tmp_path / "x.tar", [ShardSample("a.b", "t")])
    with pytest.raises(DatasetError, match="repeats"):
        write_shard(tmp_path / "x.tar", [ShardSample("a", "t"), ShardSample("a", "u")])
    with pytest.raises(DatasetError, match=r"lack columns \['area_px'"):
        write_shard(tmp_path / "x.tar", SAMPLES, SEGMENTS.drop(columns="area_px"))
    with pytest.raises(DatasetError, match="not samples of the shard"):
        write_shard(tmp_path / "x.tar", SAMPLES[:1], SEGMENTS)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_a_tar_from_elsewhere_groups_members_by_key(tmp_path: Path) -> None:
    """Another writer's tar: ./ prefixes, a jpeg, the caption only in the json, a member without extension."""
    path = tmp_path / "00007.tar"
    with tarfile.open(path, "w") as tf:
        for name, data in [("./k1.jpeg", b"JPEG"), ("./k1.json", b'{"caption": "from json", "url": "u"}'),
                           ("./k2.txt", b"from txt"), ("./k2.seg.png", b"mask"), ("./k2.webp", b"WEBP"),
                           ("./README", b"not a member")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    got = list(read_shard(path))
    assert [(s.key, s.caption, s.image, s.image_ext) for s in got] == [
        ("k1", "from json", b"JPEG", "jpeg"), ("k2", "from txt", b"WEBP", "webp")]
    assert got[0].meta["url"] == "u" and shard_stem(path) == "00007"


def write_tar(path: Path, entries: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w") as tf:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_a_sample_without_caption_names_file_and_key(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "00001.tar", [("a.txt", b"fine"), ("b.jpg", b"JPEG"), ("b.json", b'{"url": "u"}')])
    with pytest.raises(DatasetError, match=r"00001\.tar: sample 'b' has no caption"):
        list(read_shard(path))
    split = write_tar(tmp_path / "00002.tar", [("a.txt", b"x"), ("b.txt", b"y"), ("a.jpg", b"z")])
    with pytest.raises(DatasetError, match="'a' are not next to each other"):
        list(read_shard(split))


@pytest.mark.parametrize("cut", [0, 300, 1024, 2560, 5820])  # empty, mid-header, on a member boundary, mid-data
def test_a_truncated_tar_names_the_file(tmp_path: Path, cut: int) -> None:
    truncated = tmp_path / "00003.tar"
    truncated.write_bytes(shard(tmp_path / "ok").read_bytes()[:cut])
    with pytest.raises(DatasetError, match=r"00003\.tar is truncated or corrupt"):
        list(read_shard(truncated))
    with pytest.raises(DatasetError, match=r"00003\.tar is truncated or corrupt"):
        rewrite_captions(truncated, tmp_path / "out.tar", {})
    assert not (tmp_path / "out.tar").exists()


# -- parquet --------------------------------------------------------------------------------------
def test_img2dataset_parquet_keeps_successful_rows(tmp_path: Path) -> None:
    path = tmp_path / "00000.parquet"
    pd.DataFrame({"key": ["000000000", "000000001", "000000002"], "caption": ["a dog", "a cat", "a cup"],
                  "url": ["u0", "u1", "u2"], "width": [10, None, 30], "height": [10, None, 30],
                  "status": ["success", "failed_to_download", "success"]}).to_parquet(path)
    got = list(read_shard(path))
    assert [(s.key, s.caption, s.image) for s in got] == [("000000000", "a dog", None), ("000000002", "a cup", None)]
    assert got[1].meta["url"] == "u2" and got[1].meta["width"] == 30


def test_laion_metadata_parquet_keys_rows_by_index(tmp_path: Path) -> None:
    path = tmp_path / "part-00000.parquet"
    pd.DataFrame({"URL": ["u0", "u1"], "TEXT": ["A dog on a couch", "two cats"], "WIDTH": [640.0, None],
                  "HEIGHT": [480.0, 200.0], "similarity": [0.33, 0.29]}).to_parquet(path)
    got = list(read_shard(path))
    assert [(s.key, s.caption) for s in got] == [("000000000", "A dog on a couch"), ("000000001", "two cats")]
    assert got[1].meta == {"URL": "u1", "TEXT": "two cats", "WIDTH": None, "HEIGHT": 200.0, "similarity": 0.29}
    pd.DataFrame({"URL": ["u0"], "alt": ["x"]}).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(DatasetError, match=r"bad\.parquet has no caption column"):
        read_shard(tmp_path / "bad.parquet")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 nothing")
    with pytest.raises(DatasetError, match=r"broken\.parquet is not a readable parquet"):
        read_shard(tmp_path / "broken.parquet")


# -- listing --------------------------------------------------------------------------------------
def test_list_shards_on_folder_glob_brace_and_list(tmp_path: Path) -> None:
    tars = [shard(tmp_path / "tars", f"{i:05d}") for i in (2, 0, 1)]
    expect = sorted(tars, key=str)
    assert list_shards(tmp_path / "tars") == expect  # companions and sidecars excluded
    assert list_shards(str(tmp_path / "tars" / "*")) == expect
    assert list_shards(str(tmp_path / "tars" / "{00000..00001}.tar")) == expect[:2]
    assert list_shards([expect[2], str(tmp_path / "tars" / "0000[01].tar"), expect[0]]) == expect  # de-duplicated
    assert list_shards(str(tmp_path / "tars" / "*.parquet")) == [t.with_suffix(".parquet") for t in expect]
    meta = tmp_path / "meta"
    meta.mkdir()
    for name in ("b.parquet", "a.parquet", "a" + SEGMENTS_SUFFIX):
        pd.DataFrame({"TEXT": ["x"]}).to_parquet(meta / name)
    assert list_shards(meta) == [meta / "a.parquet", meta / "b.parquet"]
    assert segments_path(meta / "a.parquet") == meta / f"a{SEGMENTS_SUFFIX}"


def test_list_shards_errors_name_the_source(tmp_path: Path) -> None:
    shard(tmp_path, "00000")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty holds no .tar or .parquet"):
        list_shards(tmp_path / "empty")
    with pytest.raises(DatasetError, match=r"no shard .* matches .*\*\.tar"):
        list_shards(str(tmp_path / "empty" / "*.tar"))
    with pytest.raises(DatasetError, match=r"00001\.tar does not exist \(from .*\{00000\.\.00001\}"):
        list_shards(str(tmp_path / "{00000..00001}.tar"))
    with pytest.raises(DatasetError, match="segments sidecar, not a shard"):
        list_shards(segments_path(tmp_path / "00000.tar"))
    with pytest.raises(DatasetError, match="empty list"):
        list_shards([])


# -- rewriting ------------------------------------------------------------------------------------
def test_rewrite_captions_changes_only_those_captions(tmp_path: Path) -> None:
    src = shard(tmp_path / "src")
    new = {"000000001": "a cup of coffee", "000000002": "still no image"}
    dst = rewrite_captions(src, tmp_path / "dst" / "00000.tar", new)
    before, after = members(src), members(dst)
    assert [m.name for m, _ in before] == [m.name for m, _ in after]
    for (m0, d0), (m1, d1) in zip(before, after):
        changed = m0.name.split(".")[0] in new and m0.name.endswith((".txt", ".json"))
        assert (d0 != d1) == changed, m0.name
        assert (m0.mode, m0.mtime, m0.uid, m0.uname) == (m1.mode, m1.mtime, m1.uid, m1.uname)
    assert [s.caption for s in read_shard(dst)] == ["a dog and a cat", "a cup of coffee", "still no image"]
    assert [s.meta["caption"] for s in read_shard(dst)] == ["a dog and a cat", "a cup of coffee", "still no image"]
    # byte for byte what write_shard gives for the new captions; companion updated, sidecar copied
    fresh = write_shard(tmp_path / "fresh" / "00000.tar",
                        [ShardSample(s.key, new.get(s.key, s.caption), s.image, s.image_ext, s.meta) for s in SAMPLES])
    assert dst.read_bytes() == fresh.read_bytes()
    assert pd.read_parquet(tmp_path / "dst" / "00000.parquet").caption.tolist()[1:] == list(new.values())
    assert segments_path(dst).read_bytes() == segments_path(src).read_bytes()
    assert rewrite_captions(src, tmp_path / "same.tar", {}).read_bytes() == src.read_bytes()


def test_rewrite_captions_refuses_unknown_keys_before_writing(tmp_path: Path) -> None:
    src = shard(tmp_path / "src")
    with pytest.raises(DatasetError, match=r"keys \['nope'\] are not in shard"):
        rewrite_captions(src, tmp_path / "dst" / "00000.tar", {"nope": "x"})
    assert not (tmp_path / "dst").exists()
    with pytest.raises(DatasetError, match="must be a .tar"):
        rewrite_captions(src, tmp_path / "dst.parquet", {})


def test_rewrite_captions_of_a_laion_parquet(tmp_path: Path) -> None:
    src = tmp_path / "a" / "00000.parquet"
    src.parent.mkdir()
    pd.DataFrame({"URL": ["u0", "u1"], "TEXT": ["a dog", "a cat"]}).to_parquet(src)
    SEGMENTS.iloc[:1].to_parquet(segments_path(src))
    dst = rewrite_captions(src, tmp_path / "b" / "00000.parquet", {"000000001": "one cat"})
    assert [s.caption for s in read_shard(dst)] == ["a dog", "one cat"]
    assert read_segments(dst).key.tolist() == ["000000000"]


# -- generated scenes -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scenes(module_cache) -> SceneSet:
    return generate_cached(SceneSpec(family="comco", objects=(2, 3), images=2, image_size=32, templates=("and",),
                                     order="random", seed=4), progress=False)


def test_export_scene_shards_keeps_true_areas(scenes: SceneSet, tmp_path: Path) -> None:
    paths = export_scene_shards(scenes, tmp_path / "out", shard_size=3)
    multi = scenes.multi()
    assert [p.name for p in paths] == ["00000.tar", "00001.tar"] and len(multi.captions) == 4
    samples = [s for p in paths for s in read_shard(p)]
    assert [s.key for s in samples] == ["000000000", "000000001", "000000002", "000010000"]
    assert [s.caption for s in samples] == multi.captions.text.tolist()
    for s in samples:
        image_id = s.meta["image_id"]
        assert s.meta["template"] == "and" and s.image_ext == "png"
        decoded = np.asarray(Image.open(io.BytesIO(s.image)).convert("RGB"))
        assert np.array_equal(decoded, np.asarray(scenes.image(image_id)))
    seg = pd.concat([read_segments(p) for p in paths]).set_index(["key", "class_name"]).area_px
    for s in samples:
        objs = scenes.objects[scenes.objects.image_id == s.meta["image_id"]]
        assert seg.loc[s.key].to_dict() == dict(zip(objs.class_name, objs.area_px.astype(float)))
    again = export_scene_shards(scenes, tmp_path / "again", shard_size=3)
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in again]
    with pytest.raises(DatasetError, match="already exists"):
        export_scene_shards(scenes, tmp_path / "out")
    with pytest.raises(DatasetError, match="shard_size"):
        export_scene_shards(scenes, tmp_path / "x", shard_size=0)
