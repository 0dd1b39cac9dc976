"""Fixtures shared by several test modules, and file writers they import (``from conftest import ...``)."""

import json

import numpy as np
import pytest
from PIL import Image

from clipscope_utils.models import load_model


def image(path, size=(40, 30), seed=0, fmt=None):
    """A random RGB image of ``size`` (width, height) saved at ``path`` (folders made), returned."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path, format=fmt)
    return path


def write_json(path, obj):
    """``obj`` as JSON at ``path`` (folders made), returned."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory):
    """A private ``CLIPSCOPE_CACHE`` for one test module, so module-scoped models and embeddings never touch
    the project's cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLIPSCOPE_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def offline_module_env(tmp_path_factory):
    """An offline, throw-away environment (no HF downloads, private caches and weights folder) for the
    models a test module loads once."""
    root = tmp_path_factory.mktemp("offline-env")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_HUB_CACHE", str(root / "hf-hub"))
        mp.setenv("CLIPSCOPE_CACHE", str(root / "cache"))
        mp.setenv("CLIPSCOPE_WEIGHTS", str(root / "weights"))
        yield root


@pytest.fixture(scope="module")
def tiny(offline_module_env):
    """The tiny random CLIP (seed 0) in an offline environment, loaded once per module (a module may define
    its own ``tiny``)."""
    return load_model("random:clipscope-tiny:0", device="cpu")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh ``CLIPSCOPE_CACHE`` folder for one test, returned."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("CLIPSCOPE_CACHE", str(folder))
    return folder
