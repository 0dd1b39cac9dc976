"""The book's runner: profiles, papermill execution, provenance, offline Jupyter Book build."""

from .profiles import ParameterError, Profile, load_profile
from .runner import BuildError, build, toc_notebooks

__all__ = ["BuildError", "ParameterError", "Profile", "build", "load_profile", "toc_notebooks"]
