"""Tests for reading the authors' released ComCO / SimCO folders (tiny copies in the exact layout)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas.testing as pdt
import pytest
from PIL import Image

from clipscope_utils.datasets.official import big_position, load_official, slots_of
from clipscope_utils.datasets.tables import CAPTION_COLUMNS, IMAGE_COLUMNS, OBJECT_COLUMNS, DatasetError, SceneSet

COMCO = {
    "CoCo-OneObject": ["cat", "dog", "cow", "traffic light", "hot_dog", "cell phone"],
    "CoCo-TwoObject-BRBig": ["cat_dog"],
    "CoCo-ThreeObject-BRBig": ["cat_traffic light_dog", "hot_dog_dog_cow"],
    "CoCo-FourObject-ULBig": ["cow_cat_cell phone_dog"],
    "CoCo-FourObject-Middle-Big": ["dog_cow_cat_hot_dog"],
    "CoCo-FiveObject-Middle-Big": ["cat_dog_cow_traffic light_cell phone"],
}
SIMCO = {
    "SimCo-OneObject": ["cube", "sphere", "cone"],
    "SimCo-ThreeObject-ULBig": ["cone_cube_sphere"],
}


def png(path: Path, size: int = 16) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), (200, 30, 30)).save(path)


def write_release(folder: Path, scenes: dict[str, list[str]]) -> Path:
    for scene, stems in scenes.items():
        for stem in stems:
            png(folder / scene / f"{stem}.png")
    return folder


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    """A Hugging Face snapshot root holding both data_dirs."""
    snap = tmp_path / "snap"
    write_release(snap / "ComCo", COMCO)
    write_release(snap / "SimCo", SIMCO)
    # what else a Hugging Face snapshot holds: ignored
    (snap / "README.md").write_text("# simco-comco\n")
    (snap / ".gitattributes").write_text("*.png filter=lfs\n")
    (snap / ".cache" / "huggingface").mkdir(parents=True)
    (snap / "ComCo" / "CoCo-OneObject" / ".DS_Store").write_bytes(b"\0")
    (snap / "ComCo" / "CoCo-OneObject" / "notes.txt").write_text("not an image")
    return snap


def objects_of(ds, image_id: str):
    return ds.objects[ds.objects.image_id == image_id].sort_values("object_index")


def test_tables_have_exactly_the_documented_columns(snapshot: Path) -> None:
    ds = load_official(snapshot, family="comco")
    assert list(ds.images.columns) == IMAGE_COLUMNS
    assert list(ds.objects.columns) == OBJECT_COLUMNS
    assert list(ds.captions.columns) == CAPTION_COLUMNS


def test_round_trip_of_names_order_large_slot_and_counts(snapshot: Path) -> None:
    ds = load_official(snapshot, family="comco")
    assert ds.classes == sorted(COMCO["CoCo-OneObject"])
    assert len(ds.images) == sum(map(len, COMCO.values()))
    assert ds.meta["family"] == "comco" and ds.meta["source"] == "official"
    assert ds.images.image_id.is_unique

    img = ds.images.set_index("image_id").loc["CoCo-ThreeObject-BRBig/cat_traffic light_dog"]
    assert (img.kind, img.n_objects, img.large_slot, img.width, img.height) == ("multi", 3, "BR", 512, 512)
    assert img.path == "ComCo/CoCo-ThreeObject-BRBig/cat_traffic light_dog.png"
    assert (snapshot / img.path).is_file()

    objs = objects_of(ds, "CoCo-ThreeObject-BRBig/cat_traffic light_dog")
    assert objs.class_name.tolist() == ["cat", "traffic light", "dog"]
    assert objs.class_id.tolist() == [ds.classes.index(c) for c in ["cat", "traffic light", "dog"]]
    assert objs.is_large.tolist() == [False, False, True]
    assert objs.size_rank.tolist() == [2, 2, 1]
    assert objs.slot.tolist() == ["0", "1", "BR"]
    assert objs.caption_position.tolist() == [1, 2, 3]
    assert all(math.isnan(v) for v in objs[["x0", "y0", "x1", "y1", "area_px"]].to_numpy().ravel())

    cap = ds.captions.set_index("image_id").loc["CoCo-ThreeObject-BRBig/cat_traffic light_dog"]
    assert (cap.template, cap.order) == ("and", "cat|traffic light|dog")
    assert cap.text == "a cat and a traffic light and a dog"

    assert ds.multi(4).images.large_slot.tolist() == ["Middle", "UL"]
    assert len(ds.multi(5).images) == 1 and len(ds.multi(2).images) == 1


def test_tables_survive_save_and_load(snapshot: Path, tmp_path: Path) -> None:
    ds = load_official(snapshot / "ComCo")
    ds.save_tables(tmp_path)
    back = SceneSet.load(tmp_path)
    for name in ("images", "objects", "captions"):
        pdt.assert_frame_equal(getattr(ds, name), getattr(back, name), check_dtype=False)
    assert back.classes == ds.classes


def test_single_object_images(snapshot: Path) -> None:
    ds = load_official(snapshot, family="comco").singles()
    assert sorted(ds.objects.class_name) == sorted(COMCO["CoCo-OneObject"])
    assert set(ds.images.kind) == {"single"} and set(ds.images.n_objects) == {1}
    assert set(ds.images.large_slot) == {""}
    assert set(ds.objects.size_rank) == {1} and not ds.objects.is_large.any()
    assert "CoCo-OneObject/traffic light" in set(ds.images.image_id)


def test_multi_word_classes_with_spaces_and_underscores(snapshot: Path) -> None:
    ds = load_official(snapshot, family="comco")
    hot = objects_of(ds, "CoCo-ThreeObject-BRBig/hot_dog_dog_cow")
    assert hot.class_name.tolist() == ["hot_dog", "dog", "cow"]
    cap = ds.captions.set_index("image_id").text["CoCo-ThreeObject-BRBig/hot_dog_dog_cow"]
    assert cap == "a hot dog and a dog and a cow"  # underscores read as spaces in the text only
    mid = objects_of(ds, "CoCo-FourObject-Middle-Big/dog_cow_cat_hot_dog")
    assert mid.class_name.tolist() == ["dog", "cow", "cat", "hot_dog"]
    five = objects_of(ds, "CoCo-FiveObject-Middle-Big/cat_dog_cow_traffic light_cell phone")
    assert five.class_name.tolist() == ["cat", "dog", "cow", "traffic light", "cell phone"]


def test_longest_match_backtracks_when_the_rest_cannot_be_read(tmp_path: Path) -> None:
    # "x_y" is the longest first class, but only "x" + "y_z" reads the whole name
    root = write_release(tmp_path / "ComCo", {"CoCo-OneObject": ["x", "x_y", "y_z"], "CoCo-TwoObject-BRBig": ["x_y_z"]})
    ds = load_official(root)
    assert objects_of(ds, "CoCo-TwoObject-BRBig/x_y_z").class_name.tolist() == ["x", "y_z"]


def test_count_word_chooses_among_readings(tmp_path: Path) -> None:
    # "hot_dog_dog" reads as [hot_dog, dog] (2) or [hot, dog, dog] (3): the folder's count decides
    scenes = {"CoCo-OneObject": ["hot", "dog", "hot_dog"], "CoCo-ThreeObject-ULBig": ["hot_dog_dog"],
              "CoCo-TwoObject-ULBig": ["hot_dog_dog"]}
    ds = load_official(write_release(tmp_path / "ComCo", scenes))
    assert objects_of(ds, "CoCo-ThreeObject-ULBig/hot_dog_dog").class_name.tolist() == ["hot", "dog", "dog"]
    assert objects_of(ds, "CoCo-TwoObject-ULBig/hot_dog_dog").class_name.tolist() == ["hot_dog", "dog"]


def test_large_object_position_and_slots() -> None:
    assert [big_position(c, 4) for c in ("UL", "UR", "BL", "BR", "Middle")] == [0, 1, 2, 3, 1]
    assert [big_position(c, 5) for c in ("UL", "UR", "BL", "BR", "M")] == [0, 1, 3, 4, 2]
    assert [big_position(c, 2) for c in ("UL", "BR")] == [0, 1]
    assert slots_of("BR", 4) == ["UL", "UR", "BL", "BR"]  # four objects, large in a corner: the 2x2 grid
    assert slots_of("Middle", 4) == ["0", "Middle", "2", "3"]
    assert slots_of("UL", 3) == ["UL", "1", "2"]
    assert slots_of("", 1) == [""]


def test_four_object_corner_scene_gets_every_slot(snapshot: Path) -> None:
    ds = load_official(snapshot, family="comco")
    objs = objects_of(ds, "CoCo-FourObject-ULBig/cow_cat_cell phone_dog")
    assert objs.slot.tolist() == ["UL", "UR", "BL", "BR"]
    assert objs.is_large.tolist() == [True, False, False, False]
    mid = objects_of(ds, "CoCo-FourObject-Middle-Big/dog_cow_cat_hot_dog")
    assert mid.is_large.tolist() == [False, True, False, False]


@pytest.mark.parametrize("level", ["root", "data_dir", "scene"])
def test_three_accepted_folder_levels(snapshot: Path, level: str) -> None:
    folder = {"root": snapshot, "data_dir": snapshot / "ComCo",
              "scene": snapshot / "ComCo" / "CoCo-ThreeObject-BRBig"}[level]
    ds = load_official(folder, family="comco" if level == "root" else None)
    assert ds.root == folder
    assert all((folder / p).is_file() for p in ds.images.path)
    assert "CoCo-ThreeObject-BRBig/hot_dog_dog_cow" in set(ds.images.image_id)
    # the lone scene folder still parses "hot_dog" with the sibling single-object vocabulary
    assert objects_of(ds, "CoCo-ThreeObject-BRBig/hot_dog_dog_cow").class_name.tolist() == ["hot_dog", "dog", "cow"]
    assert ds.meta["family"] == "comco"
    if level == "scene":
        assert len(ds.images) == 2 and ds.images.path.tolist()[0] == "cat_traffic light_dog.png"


def test_lone_scene_folder_ignores_odd_siblings(snapshot: Path) -> None:
    (snapshot / "ComCo" / "CoCo-SixObject-ULBig").mkdir()  # would fail a data_dir load, not this one
    ds = load_official(snapshot / "ComCo" / "CoCo-TwoObject-BRBig")
    assert objects_of(ds, "CoCo-TwoObject-BRBig/cat_dog").class_name.tolist() == ["cat", "dog"]
    assert "cell phone" in ds.classes  # vocabulary from the CoCo-OneObject sibling


def test_family_selects_the_data_dir(snapshot: Path) -> None:
    ds = load_official(snapshot, family="SimCo")
    assert ds.classes == ["cone", "cube", "sphere"]
    objs = objects_of(ds, "SimCo-ThreeObject-ULBig/cone_cube_sphere")
    assert objs.is_large.tolist() == [True, False, False]
    assert ds.images.path.str.startswith("SimCo/").all()
    only = load_official(snapshot / "SimCo")
    assert only.meta["family"] == "simco" and len(only.images) == len(ds.images)


def test_lone_scene_folder_without_vocabulary_splits_at_underscores(tmp_path: Path) -> None:
    folder = write_release(tmp_path, {"CoCo-TwoObject-BRBig": ["traffic light_cat"]}) / "CoCo-TwoObject-BRBig"
    ds = load_official(folder)
    assert ds.classes == ["cat", "traffic light"]
    assert objects_of(ds, "CoCo-TwoObject-BRBig/traffic light_cat").class_name.tolist() == ["traffic light", "cat"]


def test_verify_images_records_real_sizes(snapshot: Path) -> None:
    ds = load_official(snapshot / "SimCo", verify_images=True)
    assert set(ds.images.width) == {16} and set(ds.images.height) == {16}
    assert ds.meta["sizes_verified"] is True


def test_corrupt_image_is_named_with_verify_images(snapshot: Path) -> None:
    bad = snapshot / "SimCo" / "SimCo-ThreeObject-ULBig" / "cube_cone_sphere.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    load_official(snapshot / "SimCo")  # names only: fine
    with pytest.raises(DatasetError, match="cube_cone_sphere.png"):
        load_official(snapshot / "SimCo", verify_images=True)


# -- errors ---------------------------------------------------------------------------------------
def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist.*expected the layout"):
        load_official(tmp_path / "nope")


def test_folder_without_scene_folders(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    with pytest.raises(DatasetError, match="no recognisable scene folders.*CoCo-ThreeObject-BRBig"):
        load_official(tmp_path)


@pytest.mark.parametrize(
    "scene, stems, message",
    [
        ("CoCo-SixObject-ULBig", ["cat_cat_cat_cat_cat_cat"], "unknown count word 'Six'"),
        ("CoCo-TwoObject-XYBig", ["cat_cat"], "cannot read the large slot from 'XYBig'"),
        ("CoCo-TwoObject", ["cat_cat"], "must name its large slot"),
    ],
)
def test_malformed_scene_folder_names(tmp_path: Path, scene: str, stems: list[str], message: str) -> None:
    write_release(tmp_path, {"CoCo-OneObject": ["cat"], scene: stems})
    with pytest.raises(DatasetError, match=message):
        load_official(tmp_path)


def test_count_word_disagrees_with_file_name(tmp_path: Path) -> None:
    write_release(tmp_path, {"CoCo-OneObject": ["cat", "dog"], "CoCo-ThreeObject-BRBig": ["cat_dog"]})
    with pytest.raises(DatasetError, match=r"cat_dog.png: its folder says 3 objects but the name holds 2"):
        load_official(tmp_path)


def test_unreadable_file_name(tmp_path: Path) -> None:
    write_release(tmp_path, {"CoCo-OneObject": ["cat", "dog"], "CoCo-TwoObject-BRBig": ["cat_zebra"]})
    with pytest.raises(DatasetError, match=r"cannot read file name .*cat_zebra.png"):
        load_official(tmp_path)


def test_both_families_need_a_choice(snapshot: Path) -> None:
    with pytest.raises(DatasetError, match="holds both.*family="):
        load_official(snapshot)
    with pytest.raises(DatasetError, match="unknown family 'coco'"):
        load_official(snapshot, family="coco")
    with pytest.raises(DatasetError, match="is the SimCo data_dir"):
        load_official(snapshot / "SimCo", family="comco")


def test_scene_folders_without_images(tmp_path: Path) -> None:
    (tmp_path / "CoCo-TwoObject-BRBig").mkdir()
    with pytest.raises(DatasetError, match="no .png images"):
        load_official(tmp_path)


def test_arrow_export_gets_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "saved"
    (folder / "train").mkdir(parents=True)
    (folder / "dataset_dict.json").write_text('{"splits": ["train"]}')
    (folder / "train" / "data-00000-of-00001.arrow").write_bytes(b"ARROW1")
    with pytest.raises(DatasetError, match="Arrow files written by Hugging Face `datasets`.*snapshot_download"):
        load_official(folder)
