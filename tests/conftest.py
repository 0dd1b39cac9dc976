"""Fixtures shared by several test modules."""

import pytest


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory):
    """A private ``CLIPSCOPE_CACHE`` for one test module, so module-scoped models and embeddings never touch
    the project's cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLIPSCOPE_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield
