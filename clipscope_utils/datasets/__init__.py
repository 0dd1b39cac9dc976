"""Multi-object datasets: generated ComCO-/SimCO-like scenes, the authors' released folders, COCO.

All of them load into one tidy :class:`SceneSet` (see ``tables.py``).
"""

from .tables import DatasetError, SceneSet
from .scenes import SceneSpec, generate, generate_cached

__all__ = ["DatasetError", "SceneSet", "SceneSpec", "generate", "generate_cached"]
