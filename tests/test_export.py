"""Generated scenes exported in the real layouts and read back by the real loaders (the stand-ins' proof)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clipscope_utils.datasets.__main__ import main
from clipscope_utils.datasets.captions import TEMPLATES, caption
from clipscope_utils.datasets.coco import COCO_CATEGORY_IDS, load_coco
from clipscope_utils.datasets.domainnet import load_domainnet, merge_references
from clipscope_utils.datasets.export import (
    REPHRASE_PATTERNS, REPORT_FILE, caption_variants, export_report, noun_phrases, release_folder, rephrasings,
    to_coco, to_domainnet, to_release, to_rephrase_file,
)
from clipscope_utils.datasets.official import load_official
from clipscope_utils.datasets.scenes import SceneSpec, generate_cached
from clipscope_utils.datasets.tables import DatasetError, SceneSet

# multi-word names, COCO names DomainNet spells differently, "car"/"carrot", a plural-only noun
CLASSES = ("person", "car", "carrot", "motorcycle", "tv", "wine glass", "hot dog", "teddy bear", "scissors")
SPEC = SceneSpec(family="comco", objects=(2, 3, 4, 5), images=6, image_size=64, templates=("and", "scene"),
                 class_names=CLASSES, seed=3)


@pytest.fixture(scope="module")
def scenes(module_cache) -> SceneSet:
    return generate_cached(SPEC, progress=False)


def ordered(objects: pd.DataFrame, image_id: str) -> pd.DataFrame:
    return objects[objects.image_id == image_id].sort_values("object_index")


# -- release --------------------------------------------------------------------------------------
def test_release_round_trip_gives_classes_per_position_and_the_large_object(scenes, tmp_path: Path) -> None:
    out = to_release(scenes, tmp_path / "release", image_size=64)
    report = export_report(out)
    ds = load_official(out)
    multi = scenes.multi()
    assert report["written"]["multi"] + sum(report["skipped"].values()) == len(multi.images)
    assert report["written"]["multi"] >= len(multi.images) - 3  # only repeated names can be skipped here
    assert set(report["skipped"]) <= {"file name taken by an earlier scene (same classes, order and large slot)"}
    assert ds.classes == sorted(CLASSES) and ds.meta["family"] == "comco"
    by_path = ds.images.set_index("path")
    for path, scene_id in report["files"].items():
        loaded = by_path.loc[path]
        got, want = ordered(ds.objects, loaded.image_id), ordered(scenes.objects, scene_id)
        assert got.class_name.tolist() == want.class_name.tolist(), path
        if loaded.kind == "multi":
            assert got.is_large.tolist() == want.is_large.tolist(), path
            slot = scenes.images.set_index("image_id").large_slot[scene_id]
            assert loaded.large_slot == {"M": "Middle"}.get(slot, slot)
            assert (got.size_rank == 1).tolist() == want.is_large.tolist()
    assert sorted(ds.singles().objects.class_name) == sorted(CLASSES)


def test_release_default_size_is_512_and_folder_names(scenes, tmp_path: Path) -> None:
    few = scenes.subset(list(scenes.singles().images.image_id) + list(scenes.multi(3).images.image_id[:3]))
    out = to_release(few, tmp_path / "release", family="comco")
    ds = load_official(out, verify_images=True)
    assert set(zip(ds.images.width, ds.images.height)) == {(512, 512)}
    assert {p.split("/")[0] for p in ds.images.path} == {"ComCo"}
    assert release_folder("comco", 4, "M") == "CoCo-FourObject-Middle-Big"
    assert release_folder("simco", 3, "BR") == "SimCo-ThreeObject-BRBig"
    assert release_folder("comco", 1) == "CoCo-OneObject"


def test_release_of_simco_scenes(module_cache, tmp_path: Path) -> None:
    spec = SceneSpec(family="simco", objects=(3,), images=4, image_size=64)
    out = to_release(generate_cached(spec, progress=False), tmp_path / "simco", image_size=32)
    ds = load_official(out)
    assert ds.meta["family"] == "simco" and len(ds.multi().images) == 4
    assert all(p.startswith("SimCo/SimCo-") for p in ds.images.path)


def test_release_skips_and_counts_what_its_names_cannot_express(module_cache, tmp_path: Path) -> None:
    spec = SceneSpec(family="comco", objects=(2, 3), images=3, image_size=64, layout="free", class_names=CLASSES[:5])
    free = generate_cached(spec, progress=False)
    with pytest.warns(UserWarning, match="skipped 6"):
        out = to_release(free, tmp_path / "free", image_size=64)
    report = export_report(out)
    assert report["skipped"] == {"no large slot (layout 'free')": 6}
    assert sorted(report["skipped_images"]["no large slot (layout 'free')"]) == sorted(free.multi().images.image_id)
    assert load_official(out).multi().images.empty


def test_release_skips_one_object_scenes(module_cache, tmp_path: Path) -> None:
    spec = SceneSpec(family="comco", objects=(1, 2), images=2, image_size=64, class_names=CLASSES[:4])
    with pytest.warns(UserWarning, match="skipped 2"):
        out = to_release(generate_cached(spec, progress=False), tmp_path / "one", image_size=32)
    assert list(export_report(out)["skipped"].values()) == [2]
    assert len(load_official(out).multi(2).images) == 2


def test_release_skips_a_repeated_file_name(scenes, tmp_path: Path) -> None:
    first = scenes.multi(3).images.image_id.iloc[0]
    copy = scenes.subset([first])
    copy = SceneSet(scenes.root, scenes.classes, copy.images.assign(image_id="copy"),
                    copy.objects.assign(image_id="copy"), copy.captions.assign(image_id="copy"), scenes.meta)
    both = scenes.subset([first, *scenes.singles().images.image_id])
    both = SceneSet(scenes.root, scenes.classes, pd.concat([both.images, copy.images]),
                    pd.concat([both.objects, copy.objects]), pd.concat([both.captions, copy.captions]), scenes.meta)
    with pytest.warns(UserWarning, match="skipped 1"):
        out = to_release(both, tmp_path / "dup", image_size=32)
    assert export_report(out)["skipped_images"] == {
        "file name taken by an earlier scene (same classes, order and large slot)": ["copy"]}


def test_release_skips_scenes_of_a_class_without_reference(scenes, tmp_path: Path) -> None:
    lonely = scenes.objects.class_name[scenes.objects.image_id == scenes.multi(2).images.image_id.iloc[0]].iloc[0]
    keep = [i for i in scenes.images.image_id
            if not (i.startswith("s") and lonely in set(scenes.objects.class_name[scenes.objects.image_id == i]))]
    with pytest.warns(UserWarning, match="without a single-object image"):
        out = to_release(scenes.subset(keep), tmp_path / "partial", image_size=32)
    ds = load_official(out)
    assert lonely not in ds.classes


def test_overwrite_replaces_only_an_earlier_export(scenes, tmp_path: Path) -> None:
    few = scenes.subset(scenes.singles().images.image_id[:2])
    out = to_release(few, tmp_path / "r", image_size=32)
    with pytest.raises(DatasetError, match="already exists"):
        to_release(few, out, image_size=32)
    to_release(few, out, image_size=32, overwrite=True)
    real = tmp_path / "my_real_coco"
    real.mkdir()
    (real / "keep.txt").write_text("precious")
    with pytest.raises(DatasetError, match="not written by an exporter"):
        to_coco(few, real, overwrite=True)
    assert (real / "keep.txt").read_text() == "precious"
    assert not list(tmp_path.glob(".*tmp-*"))


# -- COCO -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def coco_export(scenes, tmp_path_factory) -> Path:
    return to_coco(scenes, tmp_path_factory.mktemp("coco") / "coco")


def test_coco_round_trip_gives_objects_sizes_and_caption_positions(scenes, coco_export: Path) -> None:
    ds = load_coco(coco_export, min_mentions=0)
    files = export_report(coco_export)["files"]
    assert len(ds.images) == len(scenes.images)
    scene_of = {str(i): files[p] for i, p in zip(ds.images.image_id, ds.images.path)}
    for image_id, scene_id in scene_of.items():
        got = ds.objects[ds.objects.image_id == image_id].set_index("class_name")
        want = ordered(scenes.objects, scene_id).set_index("class_name")
        assert set(got.index) == set(want.index), scene_id
        want = want.loc[got.index]
        # same pixels: the loader's area is the mask's pixel count, the box the object's box
        assert np.array_equal(got.area_px.to_numpy(float), want.area_px.to_numpy(float))
        assert np.array_equal(got[["x0", "y0", "x1", "y1"]].to_numpy(float), want[["x0", "y0", "x1", "y1"]].to_numpy(float))
        # the largest object and the size ranks (the loader ranks by area; ties share a rank)
        expected_rank = want.area_px.rank(ascending=False, method="min").astype(int)
        assert got.size_rank.tolist() == expected_rank.tolist()
        if len(want) > 1:
            assert got.index[got.is_large].tolist() == want.index[want.is_large].tolist()
        assert got.caption_position.tolist() == want.caption_position.tolist(), scene_id
        caps = ds.captions[ds.captions.image_id == image_id]
        own = scenes.captions[scenes.captions.image_id == scene_id]
        assert len(caps) == 5 and caps.text.iloc[0] == own.text.iloc[0]
        assert caps.order.iloc[0] == own.order.iloc[0]


def test_coco_default_loader_keeps_the_multi_object_scenes(scenes, coco_export: Path) -> None:
    ds = load_coco(coco_export)
    assert len(ds.images) == len(scenes.multi().images)
    assert (ds.images.kind == "multi").all()
    assert ds.images.n_objects.value_counts().sort_index().to_dict() == {2: 6, 3: 6, 4: 6, 5: 6}


def test_coco_files_look_like_coco(scenes, coco_export: Path) -> None:
    inst = json.loads((coco_export / "annotations" / "instances_val2017.json").read_text())
    caps = json.loads((coco_export / "annotations" / "captions_val2017.json").read_text())
    coco_ids = {n: i for i, n in COCO_CATEGORY_IDS.items()}
    assert {c["name"]: c["id"] for c in inst["categories"]} == {c: coco_ids[c] for c in CLASSES}
    ann = inst["annotations"][0]
    assert set(ann) >= {"id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation"}
    assert ann["iscrowd"] == 0 and len(ann["bbox"]) == 4
    seg = ann["segmentation"]
    assert sum(seg["counts"]) == seg["size"][0] * seg["size"][1]
    assert sum(seg["counts"][1::2]) == ann["area"]  # foreground runs = the mask's pixels
    assert all(im["file_name"] == f"{im['id']:012d}.jpg" for im in inst["images"])
    assert all((coco_export / "val2017" / im["file_name"]).is_file() for im in inst["images"])
    assert len(caps["annotations"]) == 5 * len(inst["images"])


def test_coco_resized_keeps_the_largest_object_and_scales_areas(scenes, tmp_path: Path) -> None:
    few = scenes.subset(list(scenes.multi(3).images.image_id[:3]) + list(scenes.multi(5).images.image_id[:3]))
    out = to_coco(few, tmp_path / "coco224", image_size=224, captions_per_image=2)
    ds = load_coco(out)
    files = export_report(out)["files"]
    assert set(zip(ds.images.width, ds.images.height)) == {(224, 224)}
    for image_id, path in zip(ds.images.image_id, ds.images.path):
        got = ds.objects[ds.objects.image_id == image_id].set_index("class_name")
        want = ordered(few.objects, files[path]).set_index("class_name").loc[got.index]
        assert got.index[got.is_large].tolist() == want.index[want.is_large].tolist()
        ratio = got.area_px / (want.area_px * (224 / 64) ** 2)
        assert ratio.between(0.85, 1.15).all(), ratio
        assert got.caption_position.tolist() == want.caption_position.tolist()


def test_coco_missing_image_is_named(scenes, tmp_path: Path) -> None:
    few = scenes.subset(scenes.multi(2).images.image_id[:3])
    out = to_coco(few, tmp_path / "coco", captions_per_image=1)
    (out / "val2017" / "000000000002.jpg").unlink()
    with pytest.raises(DatasetError, match=r"1 of the 3 .*000000000002\.jpg.*val2017"):
        load_coco(out)
    assert len(load_coco(out, max_images=1).images) == 1  # only the kept images must exist


def test_caption_variants_name_every_object() -> None:
    names = ["hot dog", "car", "scissors"]
    texts = caption_variants(names, [caption(names, "and")], 12)
    assert texts[0] == "a hot dog and a car and a pair of scissors"
    assert len(set(texts)) == 12
    assert caption_variants(["car"], [], 40)[:2] == caption_variants(["car"], [], 2)  # repeats once exhausted


# -- DomainNet ------------------------------------------------------------------------------------
def test_domainnet_round_trip_maps_every_class(scenes, tmp_path: Path) -> None:
    out = to_domainnet(scenes, tmp_path / "domainnet", per_class=3)
    assert (out / "real" / "motorbike" / "motorbike_001.jpg").is_file()
    assert (out / "sketch" / "teddy-bear" / "teddy-bear_003.jpg").is_file()
    refs = load_domainnet(out, classes=list(CLASSES), verify_images=True)
    assert refs.classes == list(CLASSES)
    assert refs.meta["missing_classes"] == [] and refs.meta["unmapped"] == []
    assert refs.meta["rules"]["motorbike"] == "table" and refs.meta["rules"]["television"] == "table"
    counts = refs.objects.groupby("class_name").size()
    assert counts.to_dict() == {c: 6 for c in CLASSES}  # 3 per domain, 2 domains
    assert (refs.objects.class_id == [CLASSES.index(c) for c in refs.objects.class_name]).all()
    assert sorted(refs.meta["domains"]) == ["real", "sketch"]


def test_domainnet_every_domain_and_skipped_classes(scenes, tmp_path: Path) -> None:
    keep = [i for i in scenes.singles().images.image_id
            if scenes.objects.class_name[scenes.objects.image_id == i].iloc[0] != "carrot"]
    all_domains = ("real", "sketch", "clipart", "painting", "quickdraw", "infograph")
    with pytest.warns(UserWarning, match="skipped 1"):
        out = to_domainnet(scenes.subset(keep), tmp_path / "dn", domains=all_domains, per_class=1, image_size=32)
    refs = load_domainnet(out, classes=list(CLASSES), verify_images=True)
    assert refs.meta["missing_classes"] == ["carrot"]
    assert sorted(refs.meta["domains"]) == sorted(all_domains)
    with pytest.raises(DatasetError, match="domains must be"):
        to_domainnet(scenes, tmp_path / "bad", domains=("photos",))


def test_merge_coco_scenes_with_domainnet_references(scenes, coco_export: Path, tmp_path: Path) -> None:
    coco = load_coco(coco_export)
    refs = load_domainnet(to_domainnet(scenes, tmp_path / "dn", per_class=2), classes=coco.classes)
    merged = merge_references(coco, refs)
    assert merged.classes == coco.classes
    assert len(merged.multi().images) == len(coco.multi().images)
    assert len(merged.singles().images) == len(refs.images)
    assert all(Path(p).is_absolute() and (merged.root / p).is_file() for p in merged.images.path)
    singles = merged.singles().objects
    assert (singles.class_id == [coco.classes.index(c) for c in singles.class_name]).all()
    merged.image(merged.singles().images.image_id.iloc[0])


# -- rephrasings ----------------------------------------------------------------------------------
def test_rephrasings_are_deterministic_and_keep_the_objects_in_order(tmp_path: Path) -> None:
    names = ["scissors", "apple", "hot dog"]
    texts = [caption(names[:k], t) for t in TEMPLATES for k in (1, 2, 3)]
    mapping = rephrasings(texts, seed=7)
    assert mapping == rephrasings(texts, seed=7) and set(mapping) == set(texts)
    for text, new in mapping.items():
        k = len(noun_phrases(text))
        listing = {1: "a pair of scissors", 2: "a pair of scissors and an apple",
                   3: "a pair of scissors, an apple and a hot dog"}[k]
        assert new in {p.format(listing) for p in REPHRASE_PATTERNS}, (text, new)
    assert rephrasings(["a cat and a dog"], seed=0) == {"a cat and a dog": "This picture shows a cat and a dog."}
    assert len({rephrasings(["a cat and a dog"], seed=s)["a cat and a dog"] for s in range(20)}) > 1
    with pytest.raises(DatasetError, match="not a caption"):
        rephrasings(["Two dogs play on the beach."], seed=0)
    path = to_rephrase_file(mapping, tmp_path / "sub" / "rephrased.json")
    assert json.loads(path.read_text(encoding="utf-8")) == mapping
    with pytest.raises(DatasetError):
        to_rephrase_file({"a": 1}, tmp_path / "bad.json")


# -- command line ---------------------------------------------------------------------------------
def test_command_line_export(module_cache, tmp_path: Path, capsys) -> None:
    common = ["--objects", "2", "3", "--images", "2", "--classes", "car", "tv", "hot dog", "wine glass"]
    assert main(["export", "--layout", "release", "--out", str(tmp_path / "r"), "--export-size", "64", *common]) == 0
    assert len(load_official(tmp_path / "r").multi().images) == 4
    assert main(["export", "--layout", "coco", "--out", str(tmp_path / "c"), "--captions-per-image", "3", *common]) == 0
    assert len(load_coco(tmp_path / "c").images) == 4
    assert main(["export", "--layout", "domainnet", "--out", str(tmp_path / "d"), "--per-class", "1", *common]) == 0
    assert load_domainnet(tmp_path / "d", classes=["car", "tv", "hot dog", "wine glass"]).meta["missing_classes"] == []
    assert "wrote the domainnet layout" in capsys.readouterr().out
    assert main(["export", "--layout", "release", "--out", str(tmp_path / "r"), *common]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["export", "--layout", "release", "--out", str(tmp_path / "f"), "--scene-layout", "free", *common]) == 0
    assert "skipped" in capsys.readouterr().out
    assert (tmp_path / "f" / REPORT_FILE).is_file()
