"""Tests for reading COCO 2017 captions + instances (tiny files with the real key structure)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas.testing as pdt
import pytest
from PIL import Image

from clipscope_utils.datasets.coco import (
    COCO_CATEGORY_IDS, MentionFinder, load_coco, load_synonyms, mention_terms, plurals,
)
from clipscope_utils.datasets.tables import CAPTION_COLUMNS, IMAGE_COLUMNS, OBJECT_COLUMNS, DatasetError, SceneSet

# The 80 COCO 2017 categories with their official ids.
COCO_CATEGORIES = dict(enumerate([
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", None, "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", None, "backpack", "umbrella", None, None, "handbag", "tie",
    "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove",
    "skateboard", "surfboard", "tennis racket", "bottle", None, "wine glass", "cup", "fork", "knife", "spoon",
    "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake",
    "chair", "couch", "potted plant", "bed", None, "dining table", None, None, "toilet", None, "tv", "laptop",
    "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", None,
    "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
], start=1))
COCO_CATEGORIES = {k: v for k, v in COCO_CATEGORIES.items() if v}
CAT = {name: cid for cid, name in COCO_CATEGORIES.items()}


def ann(aid: int, image_id: int, name: str, bbox: list[float], area: float | None = None, crowd: int = 0) -> dict:
    """An instance annotation exactly as in instances_*.json."""
    return {"id": aid, "image_id": image_id, "category_id": CAT[name], "bbox": bbox, "iscrowd": crowd,
            "area": area if area is not None else bbox[2] * bbox[3], "segmentation": [[0, 0, 1, 0, 1, 1]]}


IMAGES = [  # (id, annotated instances, captions)
    (101, [("car", [0, 0, 10, 10]), ("carrot", [5.5, 6.2, 20.1, 6.3]), ("person", [1, 1, 30, 30]),
           ("person", [40, 40, 2, 2])],
     ["A man eats a carrot next to a cart.", "A scar on a carrot and a car", "Two cars parked."]),
    (102, [("dog", [0, 0, 50, 50]), ("hot dog", [10, 10, 5, 5])],
     ["A hot dog on a plate.", "A dog sniffing a hot-dog"]),
    (103, [("dog", [0, 0, 50, 50]), ("cat", [0, 0, 5, 5])],
     ["A hot dog and a catch."]),
    (104, [("bus", [0, 0, 60, 40]), ("traffic light", [50, 0, 3, 9]), ("bench", [0, 30, 20, 5]),
           ("person", [0, 0, 4, 9], 36.0, 0), ("person", [0, 0, 50, 50], 900.0, 1)],
     ["Women waiting on benches as buses pass traffic lights."]),
    (105, [("couch", [0, 0, 30, 30]), ("tv", [0, 0, 10, 10])],
     ["A television in front of a SOFA."]),
    (106, [("cat", [0, 0, 10, 10]), ("dog", [0, 0, 10, 10])],
     ["A dog and a cat.", "a cat next to a dog"]),
    (107, [], ["An empty room."]),
]


def write_coco(root: Path, split: str = "val2017", images=IMAGES) -> Path:
    (root / "annotations").mkdir(parents=True)
    (root / split).mkdir()
    files = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 64, "height": 48, "license": 1} for i, *_ in images]
    for f in files:
        Image.new("RGB", (f["width"], f["height"])).save(root / split / f["file_name"])
    instances, captions = [], []
    for image_id, objects, texts in images:
        for obj in objects:
            instances.append(ann(len(instances) + 1, image_id, *obj))
        for text in texts:
            captions.append({"id": 1000 + len(captions), "image_id": image_id, "caption": text})
    info = {"description": "test", "version": "1.0"}
    cats = [{"id": cid, "name": n, "supercategory": "x"} for cid, n in COCO_CATEGORIES.items()]
    dump(root / "annotations" / f"instances_{split}.json",
         {"info": info, "licenses": [], "images": files, "annotations": instances, "categories": cats})
    dump(root / "annotations" / f"captions_{split}.json",
         {"info": info, "licenses": [], "images": files, "annotations": captions})
    return root


def dump(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data))


@pytest.fixture
def coco(tmp_path: Path) -> Path:
    return write_coco(tmp_path / "coco")


def objects_of(ds, image_id: int):
    objs = ds.objects[ds.objects.image_id == str(image_id)].sort_values("object_index")
    return objs.set_index("class_name")


def refs_of(ds, image_id: int) -> list[str]:
    return ds.captions[ds.captions.image_id == str(image_id)].order.tolist()


def test_tables_have_exactly_the_documented_columns(coco: Path) -> None:
    ds = load_coco(coco)
    assert list(ds.images.columns) == IMAGE_COLUMNS
    assert list(ds.objects.columns) == OBJECT_COLUMNS
    assert list(ds.captions.columns) == CAPTION_COLUMNS
    assert ds.root == coco / "val2017"
    assert all((ds.root / p).is_file() for p in ds.images.path)
    assert ds.classes == list(COCO_CATEGORIES.values())


def test_tables_survive_save_and_load(coco: Path, tmp_path: Path) -> None:
    ds = load_coco(coco)
    (tmp_path / "saved").mkdir()
    ds.save_tables(tmp_path / "saved")
    back = SceneSet.load(tmp_path / "saved")
    for name in ("images", "objects", "captions"):
        pdt.assert_frame_equal(getattr(ds, name), getattr(back, name), check_dtype=False)


def test_substrings_never_match() -> None:
    find = MentionFinder(mention_terms({3: "car", 57: "carrot", 17: "cat", 18: "dog", 58: "hot dog"}, {}))
    assert find("A scar in a cart full of carrots, a catch") == [57]
    assert find("Cars, and a CAR") == [3]
    assert find("a hot dog beside a hot-dog") == [58]
    assert find("a hot dog and a dog") == [58, 18]


def test_plurals_and_synonyms() -> None:
    assert plurals("bus") == ["buss", "buses"]
    assert plurals("traffic light") == ["traffic lights"]
    assert plurals("puppy") == ["puppys", "puppies"]
    assert plurals("boy") == ["boys"]
    find = MentionFinder(mention_terms({1: "person", 6: "bus", 15: "bench", 90: "puppy"}, load_synonyms()))
    assert find("Women on benches, buses and puppies; a man") == [1, 15, 6, 90]
    assert find("the people") == [1]


def test_default_synonym_table_is_unambiguous_over_coco() -> None:
    table = load_synonyms()
    assert set(table) <= set(COCO_CATEGORIES.values())
    terms = mention_terms(COCO_CATEGORIES, table)
    assert terms["woman"] == CAT["person"] and terms["sofa"] == CAT["couch"] and terms["hot dogs"] == CAT["hot dog"]


def test_kept_images_and_order_of_mention(coco: Path) -> None:
    ds = load_coco(coco)
    # 103 is dropped: "hot dog" is not a dog and "catch" is not a cat, so no caption mentions two
    assert ds.images.image_id.tolist() == ["101", "102", "104", "105", "106"]
    # 101: first caption mentions person ("man") then carrot; "cart" / "scar" are not cars
    objs = objects_of(ds, 101)
    assert objs.caption_position.to_dict() == {"person": 1, "carrot": 2, "car": 0}
    assert refs_of(ds, 101) == ["person|carrot", "carrot|car", "car"]
    # 102: first caption mentions only "hot dog" (not "dog"); the second gives the reference order
    assert refs_of(ds, 102) == ["dog|hot dog", "hot dog"]
    assert ds.captions[ds.captions.image_id == "102"].text.iloc[0] == "A dog sniffing a hot-dog"
    assert objects_of(ds, 102).caption_position.to_dict() == {"dog": 1, "hot dog": 2}
    # 104: plurals and synonyms; order by first occurrence
    assert objects_of(ds, 104).caption_position.to_dict() == {"bus": 3, "person": 1, "bench": 2, "traffic light": 4}
    assert objects_of(ds, 105).caption_position.to_dict() == {"couch": 2, "tv": 1}
    # 106: the first caption with >= 2 mentions is the reference, its order wins
    assert refs_of(ds, 106) == ["dog|cat", "cat|dog"]
    assert set(ds.captions.template) == {"coco"}


def test_area_bbox_and_size_rank_from_annotations(coco: Path) -> None:
    ds = load_coco(coco)
    objs = objects_of(ds, 101)
    assert objs.index.tolist() == ["person", "carrot", "car"]  # object_index follows size
    person = objs.loc["person"]  # the larger of the two person instances
    assert (person.x0, person.y0, person.x1, person.y1, person.area_px) == (1, 1, 31, 31, 900.0)
    carrot = objs.loc["carrot"]  # floats: floor the start, ceil the end
    assert (carrot.x0, carrot.y0, carrot.x1, carrot.y1) == (5, 6, 26, 13)
    assert math.isclose(carrot.area_px, 20.1 * 6.3)
    assert objs.size_rank.to_dict() == {"person": 1, "carrot": 2, "car": 3}
    assert objs.is_large.to_dict() == {"person": True, "carrot": False, "car": False}
    assert set(objs.slot) == {""}
    # a crowd region, even if larger, does not stand for the category's largest object
    assert objects_of(ds, 104).loc["person"].area_px == 36.0
    # ties share the rank (both large)
    assert objects_of(ds, 106).size_rank.tolist() == [1, 1]
    img = ds.images.set_index("image_id").loc["104"]
    assert (img.kind, img.n_objects, img.width, img.height, img.large_slot) == ("multi", 4, 64, 48, "")


def test_min_mentions_and_max_images(coco: Path) -> None:
    everything = load_coco(coco, min_mentions=0)
    assert len(everything.images) == len(IMAGES)
    empty = everything.images.set_index("image_id").loc["107"]
    assert (empty.n_objects, empty.kind) == (0, "single")
    assert objects_of(everything, 103).caption_position.tolist() == [0, 0]
    assert load_coco(coco, min_mentions=1).images.image_id.tolist() == ["101", "102", "104", "105", "106"]
    assert load_coco(coco, min_mentions=3).images.image_id.tolist() == ["104"]
    assert load_coco(coco, max_images=2).images.image_id.tolist() == ["101", "102"]
    with pytest.raises(DatasetError, match="min_mentions"):
        load_coco(coco, min_mentions=-1)


def test_explicit_paths_and_synonym_choices(coco: Path, tmp_path: Path) -> None:
    ds = load_coco(captions_file=coco / "annotations" / "captions_val2017.json",
                   instances_file=coco / "annotations" / "instances_val2017.json",
                   images_dir=coco / "val2017", synonyms={})
    # without synonyms "man", "women", "television", "sofa" are not mentions
    assert "105" not in set(ds.images.image_id)
    assert objects_of(ds, 101).caption_position.to_dict() == {"person": 0, "carrot": 1, "car": 2}
    table = tmp_path / "syn.json"
    table.write_text(json.dumps({"_comment": "x", "couch": ["sofa"], "tv": ["television"]}))
    assert "105" in set(load_coco(coco, synonyms=table).images.image_id)
    with pytest.raises(DatasetError, match="'cat' names both 'cat' and 'dog'"):
        load_coco(coco, synonyms={"dog": ["cat"]})


def test_other_split_name(tmp_path: Path) -> None:
    root = write_coco(tmp_path / "c", split="train2017", images=IMAGES[:1])
    assert load_coco(root, split="train2017").images.image_id.tolist() == ["101"]


# -- errors (all raised before any matching) ------------------------------------------------------
def test_missing_files(coco: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="captions_val2017.json is missing.*COCO 2017 layout"):
        load_coco(tmp_path)
    (coco / "annotations" / "instances_val2017.json").unlink()
    with pytest.raises(DatasetError, match="instances_val2017.json is missing"):
        load_coco(coco)
    with pytest.raises(DatasetError, match="pass root"):
        load_coco(captions_file=coco / "annotations" / "captions_val2017.json")


def test_missing_image_folder(coco: Path) -> None:
    shutil.rmtree(coco / "val2017")
    with pytest.raises(DatasetError, match="image folder .*val2017 is missing"):
        load_coco(coco)


def test_missing_image_files_are_named_before_any_table_is_built(coco: Path, tmp_path: Path) -> None:
    kept = load_coco(coco, min_mentions=0).images.path.tolist()
    (coco / "val2017" / "000000000107.jpg").unlink()  # "An empty room.": not kept with min_mentions=2
    assert len(load_coco(coco).images) == len(load_coco(coco, min_mentions=1).images)
    with pytest.raises(DatasetError, match=r"1 of the 7 COCO images .*\['000000000107.jpg'\].*val2017.*"
                                           r"val2017\.zip.*images_dir"):
        load_coco(coco, min_mentions=0)
    for name in kept[:6]:
        (coco / "val2017" / name).unlink()
    with pytest.raises(DatasetError, match=r"7 of the 7 .*'000000000101.jpg', .*'000000000105.jpg'\]"):
        load_coco(coco, min_mentions=0)
    # images_dir pointing at another folder holding them
    elsewhere = tmp_path / "images"
    write_coco(tmp_path / "copy")
    shutil.copytree(tmp_path / "copy" / "val2017", elsewhere)
    assert len(load_coco(coco, min_mentions=0, images_dir=elsewhere).images) == 7


def test_category_id_table_is_coco_2017() -> None:
    assert COCO_CATEGORY_IDS == COCO_CATEGORIES


@pytest.mark.parametrize("kind, section", [("instances", "categories"), ("instances", "images"),
                                           ("instances", "annotations"), ("captions", "annotations")])
def test_missing_top_level_key(coco: Path, kind: str, section: str) -> None:
    path = coco / "annotations" / f"{kind}_val2017.json"
    data = json.loads(path.read_text())
    del data[section]
    dump(path, data)
    with pytest.raises(DatasetError, match=rf"{kind}_val2017.json lacks the key '{section}'"):
        load_coco(coco)


@pytest.mark.parametrize("kind, section, key", [
    ("captions", "annotations", "caption"), ("captions", "annotations", "image_id"),
    ("instances", "annotations", "area"), ("instances", "annotations", "bbox"),
    ("instances", "annotations", "category_id"), ("instances", "images", "file_name"),
    ("instances", "categories", "name"),
])
def test_missing_record_key(coco: Path, kind: str, section: str, key: str) -> None:
    path = coco / "annotations" / f"{kind}_val2017.json"
    data = json.loads(path.read_text())
    del data[section][1][key]
    dump(path, data)
    with pytest.raises(DatasetError, match=rf"{kind}_val2017.json: {section}\[1\] lacks the key '{key}'"):
        load_coco(coco)


def test_broken_json_and_bad_values(coco: Path) -> None:
    path = coco / "annotations" / "instances_val2017.json"
    good = path.read_text()
    path.write_text(good[:50])
    with pytest.raises(DatasetError, match="instances_val2017.json is not valid JSON"):
        load_coco(coco)
    data = json.loads(good)
    data["annotations"][0]["category_id"] = 999
    dump(path, data)
    with pytest.raises(DatasetError, match=r"category ids \[999\]"):
        load_coco(coco)
    data["annotations"][0]["category_id"] = 1
    data["annotations"][0]["bbox"] = [1, 2]
    dump(path, data)
    with pytest.raises(DatasetError, match="bbox"):
        load_coco(coco)
    data["annotations"][0]["bbox"] = [1, 2, 3, 4]
    data["annotations"][0]["area"] = "big"
    dump(path, data)
    with pytest.raises(DatasetError, match="'area' must be a number"):
        load_coco(coco)
