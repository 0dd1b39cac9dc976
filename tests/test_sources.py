"""A probe chapter's data sources: generated, the authors' release and COCO (+ DomainNet), read back from stand-ins."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipscope_utils.datasets.export import to_coco, to_domainnet, to_release
from clipscope_utils.datasets.scenes import SceneSpec, generate_cached
from clipscope_utils.datasets.sources import (
    check_source, load_source, load_sources, parse_source, recaption,
)
from clipscope_utils.datasets.tables import DatasetError

CLASSES = ("person", "car", "carrot", "dog", "cat", "wine glass", "hot dog")
SPEC = SceneSpec(family="comco", objects=(2, 3, 4), images=5, image_size=64, templates=("and",),
                 class_names=CLASSES, seed=1)


@pytest.fixture(scope="module")
def exported(module_cache, tmp_path_factory) -> dict[str, Path]:
    scenes = generate_cached(SPEC, progress=False)
    root = tmp_path_factory.mktemp("sources")
    return {"release": to_release(scenes, root / "release", image_size=64),
            "coco": to_coco(scenes, root / "coco"), "domainnet": to_domainnet(scenes, root / "domainnet")}


@pytest.mark.parametrize("value, message", [
    ("", "must be one of"), ("coco", "unknown data source"), ("release:", "names no folder"),
    ("imagenet:/x", "unknown data source"),
])
def test_a_bad_source_string_says_the_forms(value, message) -> None:
    with pytest.raises(DatasetError, match=message):
        parse_source(value)


def test_a_missing_folder_says_how_to_get_the_data(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="clip-oscope/simco-comco"):
        check_source(f"release:{tmp_path / 'nope'}")
    with pytest.raises(DatasetError, match="cocodataset.org"):
        check_source(f"coco:{tmp_path}")


def test_the_release_has_no_regions_for_the_attention_chapter(exported) -> None:
    assert "release" in check_source(f"release:{exported['release']}")
    with pytest.raises(DatasetError, match="no object boxes"):
        check_source(f"release:{exported['release']}", need_regions=True)


def test_release_source_is_sampled_per_count_and_recaptioned(exported) -> None:
    spec = SceneSpec(family="comco", objects=(2, 4), templates=("and", "bare"))
    scenes = load_source(f"release:{exported['release']}", spec, n_images=3, seed=0)
    multi = scenes.multi()
    assert sorted(multi.images.n_objects.value_counts().to_dict().items()) == [(2, 3), (4, 3)]
    assert set(scenes.captions.template) == {"and", "bare"}
    first = multi.objects.sort_values(["image_id", "object_index"]).groupby("image_id").class_name.agg(list)
    bare = multi.captions[multi.captions.template == "bare"].set_index("image_id")
    for image_id, names in first.items():  # captions name the objects in file-name order
        assert bare.order[image_id] == "|".join(names)
    assert scenes.meta["paper_dataset"] == "ComCO" and scenes.meta["dataset"] == "authors' ComCO release"
    again = load_source(f"release:{exported['release']}", spec, n_images=3, seed=0)
    assert list(again.images.image_id) == list(scenes.images.image_id)  # seeded


def test_coco_source_merges_domainnet_references(exported) -> None:
    spec = SceneSpec(family="comco", objects=(2, 3, 4))
    scenes = load_source(f"coco:{exported['coco']}", spec, n_images=10, seed=0,
                         domainnet_root=str(exported["domainnet"]))
    assert scenes.meta["paper_dataset"] == "COCO"
    singles = scenes.singles()
    assert len(singles.images) > 0 and all(Path(p).is_absolute() for p in singles.images.path)
    assert set(singles.objects.class_name) <= set(scenes.classes)
    assert (scenes.multi().captions.template == "coco").all()


def test_two_sources_with_one_label_are_refused(exported) -> None:
    value = f"coco:{exported['coco']}"
    with pytest.raises(DatasetError, match="list each dataset once"):
        load_sources([value, value + "/"], SceneSpec(objects=(2,)), n_images=2, seed=0)


def test_recaption_keeps_the_stored_order() -> None:
    scenes = generate_cached(SPEC, progress=False)
    out = recaption(scenes, ["bare"])
    row = out.captions.iloc[0]
    assert row.text == " and ".join(row.order.split("|"))
