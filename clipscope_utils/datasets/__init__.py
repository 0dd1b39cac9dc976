"""Multi-object datasets: generated ComCO-/SimCO-like scenes, the authors' released folders, COCO, DomainNet.

All of them load into one tidy :class:`SceneSet` (see ``tables.py``); ``export`` writes generated scenes in
the real layouts (stand-ins that prove the real loaders); ``shards`` reads and writes LAION-style webdataset /
parquet shards (img2dataset's layout) with a segments sidecar of object areas.
"""

from .tables import DatasetError, SceneSet
from .scenes import SceneSpec, generate, generate_cached
from .coco import load_coco
from .domainnet import load_domainnet, merge_references
from .export import rephrasings, to_coco, to_domainnet, to_release, to_rephrase_file
from .official import load_official
from .karpathy import KarpathySplit, load_karpathy, to_karpathy
from .visual_genome import load_vocabularies, to_vg_dicts
from .shards import ShardSample, export_scene_shards, list_shards, read_shard, write_shard

__all__ = [
    "DatasetError", "KarpathySplit", "SceneSet", "SceneSpec", "generate", "generate_cached",
    "load_karpathy", "load_vocabularies", "to_karpathy", "to_vg_dicts",
    "load_coco", "load_domainnet", "load_official", "merge_references",
    "rephrasings", "to_coco", "to_domainnet", "to_release", "to_rephrase_file",
    "ShardSample", "export_scene_shards", "list_shards", "read_shard", "write_shard",
]
