"""Tests for reading DomainNet-layout folders as single-object references (tiny copies with DomainNet's names)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pandas.testing as pdt
import pytest
from PIL import Image

from clipscope_utils.datasets.coco import COCO_CATEGORY_IDS
from clipscope_utils.datasets.domainnet import (
    DOMAINNET_FOLDERS, folder_key, folder_name, load_domainnet, map_folders, merge_references,
)
from clipscope_utils.datasets.sizes import DOMAINNET_NAMES
from clipscope_utils.datasets.tables import CAPTION_COLUMNS, IMAGE_COLUMNS, OBJECT_COLUMNS, DatasetError, SceneSet

COCO = list(COCO_CATEGORY_IDS.values())
# real DomainNet folder names: exact, spelled differently, synonyms, shadowed, and ones COCO lacks
REAL = ["airplane", "motorbike", "television", "wine_glass", "hot_dog", "teddy-bear", "cup", "mug", "bat",
        "The_Eiffel_Tower", "zebra", "purse"]
SKETCH = ["airplane", "motorbike", "wine_glass", "zebra"]


def image(path: Path, size: tuple[int, int] = (24, 16)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (10, 200, 30)).save(path)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "domainnet"
    for domain, folders in (("real", REAL), ("sketch", SKETCH)):
        for f in folders:
            for k in (3, 1, 2):  # written out of order: the loader sorts
                image(root / domain / f / f"{domain}_{k:03d}.jpg")
    image(root / "real" / "zebra" / "real_004.PNG", (30, 20))
    (root / "real" / "zebra" / "notes.txt").write_text("not an image")
    (root / "real" / "zebra" / ".hidden.jpg").write_bytes(b"\0")
    (root / "real_train.txt").write_text("real/zebra/real_001.jpg 344\n")  # DomainNet's split files: ignored
    (root / ".cache").mkdir()
    return root


def test_tables_and_target_mapping(root: Path) -> None:
    ds = load_domainnet(root, classes=COCO)
    assert list(ds.images.columns) == IMAGE_COLUMNS
    assert list(ds.objects.columns) == OBJECT_COLUMNS
    assert list(ds.captions.columns) == CAPTION_COLUMNS
    assert ds.classes == COCO and ds.meta["source"] == "domainnet"
    assert ds.meta["mapping"] == {
        "airplane": "airplane", "motorbike": "motorcycle", "television": "tv", "wine_glass": "wine glass",
        "hot_dog": "hot dog", "teddy-bear": "teddy bear", "cup": "cup", "zebra": "zebra", "purse": "handbag"}
    assert ds.meta["rules"]["motorbike"] == "table" and ds.meta["rules"]["hot_dog"] == "name"
    assert ds.meta["shadowed"] == {"mug": "cup"}  # the same-name folder wins over the synonym
    assert ds.meta["unmapped"] == ["The_Eiffel_Tower", "bat"]  # bat is the animal, not a baseball bat
    assert "person" in ds.meta["missing_classes"] and "zebra" not in ds.meta["missing_classes"]
    assert (ds.images.kind == "single").all() and (ds.images.n_objects == 1).all()
    assert (ds.objects.class_id == [COCO.index(c) for c in ds.objects.class_name]).all()
    assert all((root / p).is_file() for p in ds.images.path)
    row = ds.images.set_index("image_id").loc["real/wine_glass/real_001"]
    assert (row.path, row.width, row.height) == ("real/wine_glass/real_001.jpg", 24, 16)
    assert ds.captions.set_index("image_id").text["real/wine_glass/real_001"] == "a wine glass"
    assert (ds.objects.caption_position == 1).all() and (ds.objects.size_rank == 1).all()
    assert len(ds.images[ds.images.image_id.str.startswith("real/zebra/")]) == 4


def test_synonym_used_when_no_same_name_folder(root: Path) -> None:
    for f in (root / "real" / "cup").iterdir():
        f.unlink()
    (root / "real" / "cup").rmdir()
    ds = load_domainnet(root, classes=COCO, domains=["real"])
    assert ds.meta["mapping"]["mug"] == "cup" and ds.meta["rules"]["mug"] == "synonym"
    assert load_domainnet(root, classes=COCO, domains=["real"], synonyms={}).meta["unmapped"] == [
        "The_Eiffel_Tower", "bat", "mug"]


def test_without_classes_every_folder_is_a_class(root: Path) -> None:
    ds = load_domainnet(root)
    assert ds.classes == sorted(folder_key(f) for f in REAL)
    assert "the eiffel tower" in ds.classes and "teddy bear" in ds.classes
    assert ds.captions.text[ds.objects.class_name == "the eiffel tower"].iloc[0] == "the eiffel tower"
    assert ds.meta["unmapped"] == [] and ds.meta["missing_classes"] == []


def test_per_class_domains_and_determinism(root: Path) -> None:
    ds = load_domainnet(root, classes=["zebra", "airplane"], per_class=2)
    ids = ds.images.image_id.tolist()
    assert ids == ["real/zebra/real_001", "real/zebra/real_002", "real/airplane/real_001", "real/airplane/real_002",
                   "sketch/zebra/sketch_001", "sketch/zebra/sketch_002", "sketch/airplane/sketch_001",
                   "sketch/airplane/sketch_002"]
    assert load_domainnet(root, classes=["zebra", "airplane"], per_class=2).images.equals(ds.images)
    sketch = load_domainnet(root, classes=["zebra"], domains=["sketch"])
    assert sketch.meta["domains"] == ["sketch"] and len(sketch.images) == 3


def test_tables_survive_save_and_load(root: Path, tmp_path: Path) -> None:
    ds = load_domainnet(root, classes=COCO, per_class=1)
    ds.save_tables(tmp_path)
    back = SceneSet.load(tmp_path)
    pdt.assert_frame_equal(back.images, ds.images, check_dtype=False)
    pdt.assert_frame_equal(back.objects, ds.objects, check_dtype=False)


def test_errors(root: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_domainnet(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="no domain folders"):
        load_domainnet(empty)
    with pytest.raises(DatasetError, match="looks like one domain folder; pass its parent"):
        load_domainnet(root / "real")
    (empty / "real.zip").write_bytes(b"PK")
    with pytest.raises(DatasetError, match=r"\['real.zip'\].*unzip"):
        load_domainnet(empty)
    with pytest.raises(DatasetError, match=r"\['painting'\] not in .*present: \['real', 'sketch'\]"):
        load_domainnet(root, domains=["real", "painting"])
    with pytest.raises(DatasetError, match="maps to the 2 target classes"):
        load_domainnet(root, classes=["person", "kite"])
    bare = tmp_path / "bare" / "real" / "cat"
    bare.mkdir(parents=True)
    with pytest.raises(DatasetError, match="no image"):
        load_domainnet(tmp_path / "bare")
    with pytest.raises(DatasetError, match="per_class"):
        load_domainnet(root, per_class=0)
    with pytest.raises(DatasetError, match="distinct"):
        load_domainnet(root, classes=["cat", "Cat"])


def test_unreadable_files(root: Path) -> None:
    (root / "real" / "zebra" / "real_000.jpg").write_text("not a jpeg")
    with pytest.raises(DatasetError, match="real_000.jpg is not an image"):
        load_domainnet(root, classes=["zebra"])
    (root / "real" / "zebra" / "real_000.jpg").unlink()
    Image.new("RGB", (200, 200)).save(root / "real" / "zebra" / "real_001.jpg", quality=95)
    data = (root / "real" / "zebra" / "real_001.jpg").read_bytes()
    (root / "real" / "zebra" / "real_001.jpg").write_bytes(data[: len(data) // 2])  # header intact, body cut
    assert len(load_domainnet(root, classes=["zebra"]).images) == 7  # the header alone reads
    with pytest.raises(DatasetError, match="real_001.jpg"):
        load_domainnet(root, classes=["zebra"], verify_images=True)


def test_folder_names_round_trip_and_agree_with_the_size_table() -> None:
    for coco, dn in DOMAINNET_FOLDERS.items():
        assert folder_name(coco) == dn
        assert map_folders([dn], COCO)[0] == {dn: coco}
    assert folder_name("wine glass") == "wine_glass" and folder_name("hot dog") == "hot_dog"
    for coco, dn in DOMAINNET_NAMES.items():  # sizes.py's table says the same
        assert folder_name(coco) == dn


def test_merge_references(root: Path, tmp_path: Path) -> None:
    refs = load_domainnet(root, classes=["dog", "zebra", "airplane"], per_class=1)
    scene_root = tmp_path / "scenes"
    image(scene_root / "m1.jpg")
    scenes = SceneSet(
        root=scene_root, classes=["dog", "zebra", "airplane"],
        images=pd.DataFrame([("m1", "m1.jpg", "multi", 2, 24, 16, ""), ("s1", "m1.jpg", "single", 1, 24, 16, "")],
                            columns=IMAGE_COLUMNS),
        objects=pd.DataFrame([("m1", 0, "dog", 0, True, 1, "", 0, 0, 5, 5, 25.0, "", 1),
                              ("m1", 1, "zebra", 1, False, 2, "", 0, 0, 2, 2, 4.0, "", 2),
                              ("s1", 0, "dog", 0, False, 1, "", 0, 0, 5, 5, 25.0, "", 1)], columns=OBJECT_COLUMNS),
        captions=pd.DataFrame([("m1", "coco", "a dog and a zebra", "dog|zebra"), ("s1", "coco", "a dog", "dog")],
                              columns=CAPTION_COLUMNS),
        meta={"source": "coco"})
    merged = merge_references(scenes, refs)
    assert merged.images.image_id.tolist() == ["m1", "real/zebra/real_001", "real/airplane/real_001",
                                               "sketch/zebra/sketch_001", "sketch/airplane/sketch_001"]
    assert all((merged.root / p).is_file() for p in merged.images.path)
    assert merged.meta["source"] == "coco" and merged.meta["references"]["source"] == "domainnet"
    other = load_domainnet(root, classes=["airplane", "zebra"], per_class=1)  # another order: remapped by name
    remapped = merge_references(scenes, other).singles().objects
    assert (remapped.class_id == [["dog", "zebra", "airplane"].index(c) for c in remapped.class_name]).all()
    with pytest.raises(DatasetError, match="not classes of the scenes"):
        merge_references(scenes, load_domainnet(root, classes=["cup"], per_class=1))
    with pytest.raises(DatasetError, match="no multi-object image"):
        merge_references(scenes.singles(), refs)
