"""The bottom layer's shared helpers: the keyed cache folder, the file hash, the data accessor, the version reader."""

import hashlib
from pathlib import Path

import pytest
import torch

from clipscope_utils.paths import cached_folder, data_file, file_sha256, is_complete
from clipscope_utils.versions import ABSENT, package_versions


def test_cached_folder_makes_once_and_trusts_only_the_marker(tmp_path: Path) -> None:
    made = []

    def make(folder: Path) -> None:
        made.append(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "payload.txt").write_text("x")
        (folder / "done.json").write_text("{}")  # the marker last

    load = lambda folder: (folder / "payload.txt").read_text()  # noqa: E731
    assert cached_folder(tmp_path / "k1", "done.json", load, make) == "x"
    assert cached_folder(tmp_path / "k1", "done.json", load, make) == "x"
    assert made == [tmp_path / "k1"] and is_complete(tmp_path / "k1")
    # a folder without its marker (an interrupted run) is made again, not loaded
    (tmp_path / "k2").mkdir()
    (tmp_path / "k2" / "payload.txt").write_text("half")
    assert cached_folder(tmp_path / "k2", "done.json", load, make) == "x" and len(made) == 2


def test_a_failing_make_leaves_no_marker_and_raises(tmp_path: Path) -> None:
    def make(folder: Path) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        cached_folder(tmp_path / "k", "done.json", lambda f: f, make)
    assert not is_complete(tmp_path / "k")


def test_file_hash_follows_the_contents(tmp_path: Path) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    assert file_sha256(f) == hashlib.sha256(b"abc").hexdigest()
    f.write_bytes(b"abcd")
    assert file_sha256(f) == hashlib.sha256(b"abcd").hexdigest()


def test_data_files_and_versions() -> None:
    assert data_file("size_categories.json").is_file()
    versions = package_versions(["torch", "pandas", "no-such-distribution-here"])
    assert versions["no-such-distribution-here"] == ABSENT
    assert versions["torch"] == torch.__version__  # with its build tag: numerics differ between builds
    assert versions["pandas"][0].isdigit()
