"""Bad input and faults a new user meets: each refused before any work, naming the parameter or file and what to
do; nothing half-written left behind. (Runner faults are in test_runner.py, training faults in test_training.py.)"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clipscope_utils.book.profiles import ParameterError, load_profile, parse_override
from clipscope_utils.book.runner import toc_notebooks
from clipscope_utils.datasets import DatasetError, SceneSpec, generate
from clipscope_utils.datasets import scenes as scene_module
from clipscope_utils.datasets.coco import load_coco
from clipscope_utils.datasets.tables import atomic_folder
from clipscope_utils.training import TrainConfig, TrainingError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = toc_notebooks(ROOT)


def smoke(*overrides: str):
    return load_profile(ROOT / "profiles", "smoke", NOTEBOOKS, list(overrides)).params


@pytest.mark.parametrize("override, message", [
    ("dataset.objects=[2, 2]", r"parameter 'objects': 2 given more than once"),
    ("dataset.templates=[and, and]", r"parameter 'templates': 'and' given more than once"),
    ("pretraining.seeds=[0, 0]", r"parameter 'seeds': 0 given more than once"),
    ("dataset.seed=99999999999", r"parameter 'seed': 99999999999 is above the maximum; allowed: an integer in "
                                 r"\[0, 4294967295\]"),
    ("dataset.seed=-1", r"parameter 'seed': -1 is below the minimum"),
    ("pretraining.workers=0", r"parameter 'workers': 0 is below the minimum"),
])
def test_absurd_or_repeated_values_are_refused(override: str, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        smoke(override)


def test_printed_bounds_are_accepted_and_colours_survive_yaml() -> None:
    with pytest.raises(ParameterError, match=r"allowed: a number in \[1e-06, 1\] \(bounds included\)") as e:
        smoke("pretraining.lr=0")
    bound = str(e.value).split("[")[1].split(",")[0]
    assert smoke(f"pretraining.lr={bound}")["pretraining"]["lr"] == 1e-06  # the printed bound itself passes
    assert parse_override("dataset.background=#ff0000") == ("dataset", "background", "#ff0000")
    assert smoke("dataset.background=#ff0000")["dataset"]["background"] == "#ff0000"


def test_a_batch_larger_than_the_training_set_is_refused() -> None:
    with pytest.raises(TrainingError, match=r"batch_size 65536 is larger than the 160 training scenes"):
        TrainConfig(scenes=40, samples=65536, batch_size=65536)


def test_a_dataset_that_cannot_fit_on_the_disk_is_refused_before_writing(tmp_path: Path, monkeypatch) -> None:
    usage = scene_module.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(scene_module.shutil, "disk_usage", lambda p: usage._replace(free=100 * 10**9))
    huge = SceneSpec(objects=(1, 2, 3, 4), images=1_000_000, image_size=1024)
    with pytest.raises(DatasetError, match=r"4,000,126 images of 1024 px need about 2516.\d GB but .* has 100.0 GB "
                                           r"free \(the limit is 90 % of it\)"):
        generate(huge, tmp_path / "huge", progress=False)
    assert not any(tmp_path.iterdir())
    monkeypatch.setattr(scene_module.shutil, "disk_usage", lambda p: usage._replace(free=1000))
    with pytest.raises(DatasetError, match="lower the number of images or the image size"):
        generate(SceneSpec(objects=(2,), images=3), tmp_path / "small", progress=False)


def test_repeated_counts_bad_seeds_and_workers_are_refused_by_the_generator(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"objects \[2, 2\] repeats a value"):
        SceneSpec(objects=(2, 2)).validate()
    with pytest.raises(DatasetError, match="seed must be an integer"):
        SceneSpec(seed=-1).validate()
    with pytest.raises(DatasetError, match="workers must be at least 1"):
        generate(SceneSpec(objects=(2,), images=2), tmp_path / "w", workers=0, progress=False)
    cli = subprocess.run([sys.executable, "-m", "clipscope_utils.datasets", "generate", "--seed", "-1", "--out",
                          str(tmp_path / "cli")], capture_output=True, text=True)
    assert cli.returncode == 2 and cli.stderr.startswith("error: seed must be") and "Traceback" not in cli.stderr


def test_killed_writers_leave_nothing_forever_and_folders_get_normal_modes(tmp_path: Path) -> None:
    out = tmp_path / "data"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = tmp_path / f".data.tmp-{dead.stdout.strip()}-abc"
    orphan.mkdir()
    (orphan / "half.png").write_bytes(b"x")
    alive = tmp_path / f".data.tmp-{os.getpid()}-def"  # a writer still running (this process): kept
    alive.mkdir()
    with atomic_folder(out) as tmp:
        (tmp / "a.txt").write_text("done")
    assert not orphan.exists() and alive.exists() and (out / "a.txt").read_text() == "done"
    umask = os.umask(0)
    os.umask(umask)
    assert (out.stat().st_mode & 0o777) == (0o777 & ~umask)


def test_coco_boxes_must_be_finite_and_orphans_are_reported(tmp_path: Path) -> None:
    from test_coco import write_coco

    root = write_coco(tmp_path / "coco")
    path = root / "annotations" / "instances_val2017.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["bbox"][2] = -5.0
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"non-finite or negative box size, e.g. annotation id \d+ \(image \d+\)"):
        load_coco(root)
    data["annotations"][0]["bbox"][2] = float("nan")
    path.write_text(json.dumps(data))  # Python writes NaN, as a careless export would
    with pytest.raises(DatasetError, match="non-finite or negative box size"):
        load_coco(root)
    data["annotations"][0]["bbox"][2] = 10.0
    data["images"] = data["images"][1:]  # the first image's annotations become orphans
    path.write_text(json.dumps(data))
    with pytest.warns(UserWarning, match=r"annotated image id\(s\) are not in 'images' and are left out"):
        ds = load_coco(root)
    assert ds.meta["orphan_annotated_images"] == 1


def test_an_orphan_check_is_quick(tmp_path: Path) -> None:
    """Clean-up of orphans costs a directory listing, not a walk of the cache."""
    for i in range(200):
        (tmp_path / f"other-{i}").mkdir()
    start = time.perf_counter()
    with atomic_folder(tmp_path / "x") as tmp:
        (tmp / "f").write_text("1")
    assert time.perf_counter() - start < 5


def test_a_run_whose_data_cannot_fit_in_memory_is_refused_before_work(tmp_path: Path, monkeypatch) -> None:
    from clipscope_utils.training import loop, train

    monkeypatch.setenv("CLIPSCOPE_CACHE", str(tmp_path))
    monkeypatch.setattr(loop, "available_memory", lambda: 10**9)
    cfg = TrainConfig(scenes=200_000, samples=65_536, batch_size=65_536)
    with pytest.raises(TrainingError, match=r"needs at least 13\.1 GB of memory .* but 1\.0 GB are available"):
        train(cfg, progress=False)
    assert not any(tmp_path.rglob("state.pt"))
