"""Fixtures shared by several test modules."""

import pytest


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
