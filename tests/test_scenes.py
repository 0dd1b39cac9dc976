"""Generated scenes: determinism, invariants of every image and its metadata, bad input, atomic writes."""

import hashlib
import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipscope_utils.datasets import DatasetError, SceneSet, SceneSpec, generate
from clipscope_utils.datasets import scenes
from clipscope_utils.datasets.__main__ import main as cli
from clipscope_utils.datasets.captions import caption
from clipscope_utils.datasets.families import classes


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def digest(folder: Path) -> str:
    """sha256 over every file's relative path and bytes, in path order."""
    h = hashlib.sha256()
    for name, data in files(folder).items():
        h.update(name.encode())
        h.update(data)
    return h.hexdigest()


# The real-world-large classes of ComCO (size_prior.prior_classes("comco")), spelled out so a change
# of the size table shows up here too.
LARGE = ("car", "airplane", "bus", "train", "truck", "elephant", "giraffe")


@pytest.fixture(scope="module")
def comco(tmp_path_factory) -> SceneSet:
    spec = SceneSpec(family="comco", objects=(1, 2, 3, 4, 5), images=12, image_size=64, seed=3)
    return generate(spec, tmp_path_factory.mktemp("ds") / "comco", progress=False)


@pytest.fixture(scope="module")
def comco_prior(tmp_path_factory) -> SceneSet:
    spec = SceneSpec(family="comco", objects=(1, 2, 3, 4), images=150, image_size=64, size_prior=0.6,
                     prior_classes=LARGE, seed=2)
    return generate(spec, tmp_path_factory.mktemp("ds") / "prior", progress=False)


@pytest.fixture(scope="module")
def simco_free(tmp_path_factory) -> SceneSet:
    spec = SceneSpec(family="simco", objects=(2, 5), images=15, image_size=64, layout="free", order="position",
                     background="gray", seed=1)
    return generate(spec, tmp_path_factory.mktemp("ds") / "simco", progress=False)


def test_same_spec_gives_identical_bytes_whatever_the_workers(tmp_path: Path) -> None:
    spec = SceneSpec(family="simco", objects=(3, 4), images=150, image_size=48)
    a = generate(spec, tmp_path / "a", workers=1, progress=False)
    generate(spec, tmp_path / "b", workers=2, progress=False)
    assert len(a.images) > 256  # large enough that the 2-worker run really used the process pool
    assert files(tmp_path / "a") == files(tmp_path / "b")
    other = generate(SceneSpec(**{**spec.__dict__, "seed": 1}), tmp_path / "c", progress=False)
    assert files(tmp_path / "c")["objects.csv"] != files(tmp_path / "a")["objects.csv"]
    assert len(other.images) == len(a.images)


@pytest.mark.parametrize("name", ["comco", "simco_free", "comco_prior"])
def test_scene_invariants(name: str, request) -> None:
    ds: SceneSet = request.getfixturevalue(name)
    spec = SceneSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in ds.meta["spec"].items()})
    background = np.array(scenes._background_rgb(spec.background), np.uint8)
    for image in ds.images.itertuples():
        objs = ds.objects[ds.objects.image_id == image.image_id].sort_values("object_index")
        assert len(objs) == image.n_objects
        assert objs.class_name.is_unique
        assert (objs.class_id == [ds.classes.index(c) for c in objs.class_name]).all()
        if image.kind == "multi" and image.n_objects > 1:
            assert objs.is_large.sum() == 1  # exactly one large object
            # bigger by its longer tight side (the sprite touches its box there); not necessarily by
            # pixels: a slim emoji drawn large (a standing person) can cover fewer than a square small one
            side = np.maximum(objs.x1 - objs.x0, objs.y1 - objs.y0)
            assert (side[objs.is_large].iloc[0] > side[~objs.is_large]).all()
        boxes = objs[["x0", "y0", "x1", "y1"]].to_numpy()
        for a, b in itertools.combinations(boxes, 2):  # no two objects overlap
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= image.width).all()
        pixels = np.asarray(ds.image(image.image_id))
        labels = ds.mask(image.image_id)
        for obj in objs.itertuples():  # areas equal mask pixels, and the mask lies in the box
            inside = labels == obj.object_index + 1
            assert inside.sum() == obj.area_px > 0
            ys, xs = np.nonzero(inside)
            assert xs.min() >= obj.x0 and xs.max() < obj.x1 and ys.min() >= obj.y0 and ys.max() < obj.y1
        outside = np.ones(labels.shape, bool)
        for x0, y0, x1, y1 in boxes:
            outside[y0:y1, x0:x1] = False
        assert (pixels[outside] == background).all()  # nothing drawn outside the objects
        assert labels[outside].max(initial=0) == 0


def test_caption_order_follows_the_policy(comco: SceneSet, simco_free: SceneSet) -> None:
    for ds in (comco, simco_free):
        multi = ds.multi()
        for image in multi.images.itertuples():
            objs = multi.objects[multi.objects.image_id == image.image_id]
            ordered = objs.sort_values("caption_position")
            assert ordered.caption_position.tolist() == list(range(1, image.n_objects + 1))
            caps = multi.captions[multi.captions.image_id == image.image_id]
            assert caps.order.tolist() == ["|".join(ordered.class_name)] * len(caps)
            assert caps.text.iloc[0] == caption(ordered.class_name.tolist(), caps.template.iloc[0])
            if ds is comco and image.n_objects > 1:  # largest_first
                assert objs[objs.is_large].caption_position.iloc[0] == 1
            if ds is simco_free:  # position: reading order of the centres
                cy = (ordered.y0 + ordered.y1) / 2
                cx = (ordered.x0 + ordered.x1) / 2
                keys = list(zip(cy, cx))
                assert keys == sorted(keys)


def test_largest_last_puts_the_large_object_last(tmp_path: Path) -> None:
    ds = generate(SceneSpec(objects=(3,), images=10, order="largest_last", templates=("and", "scene")),
                  tmp_path / "d", progress=False)
    big = ds.multi().objects[ds.multi().objects.is_large]
    assert (big.caption_position == 3).all()
    assert set(ds.captions.template) == {"and", "scene"}


def test_single_object_references_per_class_and_size(comco: SceneSet) -> None:
    singles = comco.singles()
    n_classes = len(classes("comco"))
    assert len(singles.images) == 2 * n_classes
    areas = singles.objects.assign(size=singles.objects.image_id.str[:2]).groupby("size").area_px.mean()
    assert areas["s0"] > areas["s1"]  # s0 = large size, s1 = small size
    assert sorted(singles.objects.class_name) == sorted(classes("comco") * 2)


def test_slot_layout_fixed_large_slot(tmp_path: Path) -> None:
    ds = generate(SceneSpec(objects=(3,), images=8, large_slot="BR"), tmp_path / "d", progress=False)
    big = ds.multi().objects[ds.multi().objects.is_large]
    assert (big.slot == "BR").all()
    assert (ds.multi().images.large_slot == "BR").all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"family": "lego"}, r"unknown object family 'lego'; allowed: \['comco', 'simco'\]"),
        ({"objects": (6,)}, r"each count must be an integer in 1..5"),
        ({"objects": (5,), "large_size": 0.8, "small_size": 0.3}, r"do not fit the slot layout"),
        ({"objects": (5,), "layout": "free", "large_size": 0.7, "small_size": 0.35}, r"needs at most 50%"),
        ({"objects": (3,), "class_names": ("cat", "dog")}, r"3 objects per image but only 2 classes"),
        ({"class_names": ("unicorn",)}, r"classes \['unicorn'\] are not in family 'comco'"),
        ({"small_size": 0.5, "large_size": 0.4}, r"must be below large_size"),
        ({"order": "alphabetical"}, r"unknown order policy"),
        ({"templates": ("haiku",)}, r"unknown caption templates \['haiku'\]"),
        ({"background": "plaid"}, r"unknown background 'plaid'"),
        ({"large_slot": "UR", "objects": (3,)}, r"large_slot 'UR' is not a slot of the \[3\]-object layout"),
        ({"image_size": 8}, r"image_size must be an integer in 16..1024"),
        ({"size_prior": 1.5, "prior_classes": ("car",)}, r"size_prior must be a probability in \[0, 1\], got 1.5"),
        ({"size_prior": -0.1, "prior_classes": ("car",)}, r"size_prior must be a probability"),
        ({"size_prior": "0.5", "prior_classes": ("car",)}, r"size_prior must be a probability in \[0, 1\], got '0.5'"),
        ({"size_prior": True, "prior_classes": ("car",)}, r"size_prior must be a probability"),
        ({"size_prior": 0.5}, r"size_prior 0.5 needs prior_classes"),
        ({"size_prior": 0.5, "prior_classes": ("unicorn",)}, r"prior_classes \['unicorn'\] are not among"),
        ({"prior_classes": ("car", "car")}, r"prior_classes has duplicates"),
        ({"objects": (2,), "class_names": ("cat", "dog", "car"), "prior_classes": ("bus",)}, r"prior_classes \['bus'\] are not among"),
        ({"objects": (3,), "class_names": ("cat", "dog", "car", "bus"), "size_prior": 0.5,
          "prior_classes": ("car", "bus", "cat")}, r"from the 1 classes outside prior_classes, too few for 3 objects"),
    ],
)
def test_impossible_requests_fail_before_writing(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        generate(SceneSpec(**kwargs), tmp_path / "out", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_failure_mid_generation_leaves_nothing_behind(tmp_path: Path, monkeypatch) -> None:
    calls = {"n": 0}
    real = scenes._write_job

    def flaky(args):
        calls["n"] += 1
        if calls["n"] == 20:
            raise RuntimeError("disk full")
        return real(args)

    monkeypatch.setattr(scenes, "_write_job", flaky)
    with pytest.raises(RuntimeError, match="disk full"):
        generate(SceneSpec(objects=(2,), images=30), tmp_path / "out", workers=1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_kept_unless_overwrite(tmp_path: Path) -> None:
    spec = SceneSpec(objects=(2,), images=3)
    generate(spec, tmp_path / "out", progress=False)
    with pytest.raises(DatasetError, match="already exists"):
        generate(spec, tmp_path / "out", progress=False)
    generate(SceneSpec(objects=(2,), images=4), tmp_path / "out", overwrite=True, progress=False)
    assert len(SceneSet.load(tmp_path / "out").multi().images) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_load_rejects_missing_and_corrupt(tmp_path: Path, comco: SceneSet) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        SceneSet.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"not a clipscope dataset: missing \['dataset.json'"):
        SceneSet.load(tmp_path / "empty")
    image_id = comco.images.image_id.iloc[0]
    bad = SceneSet(root=tmp_path, classes=comco.classes, images=comco.images, objects=comco.objects, captions=comco.captions)
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / f"{image_id}.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(DatasetError, match=r"corrupt or not an image"):
        bad.image(image_id)


def test_png_writer_round_trips(tmp_path: Path) -> None:
    from clipscope_utils.datasets.png import encode_png

    rng = np.random.default_rng(0)
    for arr in (rng.integers(0, 256, (7, 5, 3), dtype=np.uint8), rng.integers(0, 256, (4, 9), dtype=np.uint8)):
        path = tmp_path / "x.png"
        path.write_bytes(encode_png(arr))
        assert (np.asarray(Image.open(path)) == arr).all()
    with pytest.raises(ValueError, match="expected uint8"):
        encode_png(np.zeros((2, 2, 4), np.uint8))


def test_cli_generate_and_errors(tmp_path: Path, capsys) -> None:
    assert cli(["generate", "--family", "simco", "--objects", "3", "--images", "5", "--out", str(tmp_path / "d")]) == 0
    assert "wrote" in capsys.readouterr().out
    assert len(SceneSet.load(tmp_path / "d").multi().images) == 5
    assert cli(["generate", "--objects", "5", "--large-size", "0.9", "--out", str(tmp_path / "e")]) == 2
    assert "error:" in capsys.readouterr().err and not (tmp_path / "e").exists()
    with pytest.raises(SystemExit) as e:
        cli(["generate", "--help"])
    assert e.value.code == 0


def test_largest_position_table(comco: SceneSet) -> None:
    from clipscope_utils.datasets.summary import largest_position

    t = largest_position(comco)
    assert t.groupby("n_objects").position.max().to_dict() == {2: 2, 3: 3, 4: 4, 5: 5}
    assert (t.n == 12).all()  # every scene of each count, once per position
    first = t[t.position == 1]
    assert (first.share == 1.0).all() and (t[t.position > 1].share == 0.0).all()  # largest_first
    assert (t.ci_low <= t.share).all() and (t.share <= t.ci_high).all()


def test_size_prior_draws_the_large_object_from_the_prior_classes(comco_prior: SceneSet) -> None:
    """p = 0.6 over 600 scenes: the large object is a prior class with probability p + (1 - p) * 7/63
    (the prior-free draw can pick one too), small objects only in prior-free scenes (about 7/63 of them)."""
    objs = comco_prior.multi().objects
    large = objs[objs.size_rank == 1]  # the largest object of every scene, single-object scenes included
    assert len(large) == 600
    expected = 0.6 + 0.4 * len(LARGE) / 63
    assert abs(large.class_name.isin(LARGE).mean() - expected) < 0.07  # sd ~0.02 at n = 600
    small = objs[objs.size_rank == 2]
    assert len(small) == 900
    assert abs(small.class_name.isin(LARGE).mean() - 0.4 * len(LARGE) / 63) < 0.03  # sd ~0.007
    singles = large[large.image_id.str.startswith("m1-")]  # a lone object is drawn large: the prior applies
    assert singles.class_name.isin(LARGE).mean() > 0.45


@pytest.mark.parametrize("layout", ["slots", "free"])
def test_full_prior_puts_every_prior_class_large_and_never_small(tmp_path: Path, layout: str) -> None:
    ds = generate(SceneSpec(objects=(2, 4), images=25, layout=layout, size_prior=1.0, prior_classes=LARGE),
                  tmp_path / layout, progress=False)
    objs = ds.multi().objects
    assert objs[objs.is_large].class_name.isin(LARGE).all() and len(objs[objs.is_large]) == 50
    assert not objs[~objs.is_large].class_name.isin(LARGE).any()
    # the prior class sits in the large box: its drawn extent exceeds every small object's of its scene
    for _, scene in objs.groupby("image_id"):
        side = np.maximum(scene.x1 - scene.x0, scene.y1 - scene.y0)
        assert (side[scene.is_large].iloc[0] > side[~scene.is_large]).all()


def test_prior_free_specs_keep_the_bytes_and_keys_recorded_before_the_prior_existed(tmp_path: Path) -> None:
    """Recorded with the generator as it was before ``size_prior`` (the same run gave these after the
    change): datasets cached under the old keys stay valid. The file hash also pins Pillow's emoji
    rendering and zlib; if only those changed, it is the environment, not the prior."""
    recorded = {
        "1add9092ea6b2a9e": (SceneSpec(objects=(2, 3, 4), images=6, image_size=64, seed=3),
                             "a4670d41ab4a460e7e64ddafdfa6c2c90e9d9e3bce0d532fdfa3b7e03611cbf5"),
        "77f6df9f0d07cd3d": (SceneSpec(objects=(2, 5), images=5, layout="free", order="random", seed=1),
                             "60582b267041a9d626842963df7408a126207e096504c90d748263ca1ad3958d"),
    }
    assert SceneSpec().key() == "9d4618d5462624cc"
    for key, (spec, sha) in recorded.items():
        assert spec.key() == key
        generate(spec, tmp_path / key, workers=1, progress=False)
        assert digest(tmp_path / key) == sha
        assert "size_prior" not in spec.to_dict() and "prior_classes" not in spec.to_dict()
    # naming prior classes without a prior changes nothing, so it shares the key and the bytes
    spec, sha = recorded["1add9092ea6b2a9e"]
    inert = SceneSpec(**{**spec.__dict__, "prior_classes": LARGE})
    assert inert.key() == spec.key()
    generate(inert, tmp_path / "inert", workers=1, progress=False)
    assert digest(tmp_path / "inert") == sha


def test_prior_specs_have_their_own_key_independent_of_the_order_of_prior_classes() -> None:
    base = SceneSpec(objects=(2,), images=3)
    a = SceneSpec(objects=(2,), images=3, size_prior=0.5, prior_classes=LARGE)
    b = SceneSpec(objects=(2,), images=3, size_prior=0.5, prior_classes=LARGE[::-1])
    assert a.prior_classes == b.prior_classes == LARGE and a.key() == b.key()
    keys = {base.key(), a.key(), a.__class__(**{**a.__dict__, "size_prior": 0.6}).key(),
            a.__class__(**{**a.__dict__, "prior_classes": ("car",)}).key()}
    assert len(keys) == 4
    assert a.to_dict()["size_prior"] == 0.5 and a.to_dict()["prior_classes"] == list(LARGE)
