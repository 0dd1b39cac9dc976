"""Where a probe chapter's scenes come from: generated here, the authors' release, or COCO 2017.

A chapter names its data as a list of *sources*, one string each, so the same probes run on every dataset
paper A used and each table says which one it is:

* ``generated`` — scenes drawn by :mod:`~clipscope_utils.datasets.scenes` from the chapter's own parameters;
* ``release:<folder>`` — the authors' released ComCO / SimCO images (:mod:`official`): positions in file-name
  order, sizes only as large (the slot the folder names) or small, captions rebuilt in the chapter's template
  from the file-name order;
* ``coco:<folder>`` — COCO 2017 val (:mod:`coco`): real captions (template ``"coco"``, positions = order of
  mention), objects ranked by annotated area; optional single-object reference images from a
  DomainNet-layout folder (:mod:`domainnet`; its ``real`` domain when present, else every domain), which is
  what paper A used for COCO IOR.

Real sources are sampled to the chapter's object counts and ``n_images`` per count with the chapter's seed, so
a small run on the full release or COCO is quick and the same parameters give the same images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .captions import caption
from .coco import coco_files, load_coco
from .domainnet import load_domainnet, merge_references
from .official import locate, load_official
from .scenes import SceneSpec, generate_cached
from .tables import DatasetError, SceneSet

GENERATED = "generated"
KINDS = ("generated", "release", "coco")
HOW_TO_GET = {
    "release": ("download the authors' release (Hugging Face dataset 'clip-oscope/simco-comco', e.g. "
                "`huggingface-cli download clip-oscope/simco-comco --repo-type dataset --local-dir <folder>`) and "
                "name the snapshot folder, its ComCo/SimCo folder or one scene folder"),
    "coco": ("download COCO 2017 from cocodataset.org (annotations_trainval2017.zip and val2017.zip, or "
             "train2017.zip for fine-tuning) and unpack them into one folder, which then holds annotations/ and "
             "val2017/ (train2017/)"),
    "domainnet": ("download DomainNet (ai.bu.edu/M3SDA, e.g. the 'real' domain) and unpack it so the folder "
                  "holds <domain>/<class>/*.jpg"),
}


@dataclass(frozen=True)
class Source:
    """One parsed source string."""

    kind: str
    path: str = ""

    @property
    def paper_dataset(self) -> str:
        """The dataset of paper A's tables this source stands for (ComCO tables for generated and release)."""
        return "COCO" if self.kind == "coco" else "ComCO"

    def label(self, family: str = "comco") -> str:
        names = {"comco": "ComCO", "simco": "SimCO"}
        if self.kind == "generated":
            return f"generated {names.get(family, family)}"
        if self.kind == "release":
            return f"authors' {names.get(family, family)} release"
        return "COCO val2017"


def parse_source(value: str) -> Source:
    """``"generated"``, ``"release:<folder>"`` or ``"coco:<folder>"`` -> Source, or a DatasetError saying the forms."""
    forms = "'generated', 'release:<folder>' (the authors' ComCO/SimCO release) or 'coco:<folder>' (COCO 2017)"
    if not isinstance(value, str) or not value.strip():
        raise DatasetError(f"a data source must be one of {forms}, got {value!r}")
    value = value.strip()
    if value == GENERATED:
        return Source(GENERATED)
    kind, sep, path = value.partition(":")
    if not sep or kind not in KINDS[1:]:
        raise DatasetError(f"unknown data source {value!r}; allowed: {forms}")
    if not path.strip():
        raise DatasetError(f"data source {value!r} names no folder; write {kind}:<folder>")
    return Source(kind, path.strip())


def check_source(value: str, family: str = "comco", need_regions: bool = False) -> str:
    """Check the files a source needs without reading them all; a DatasetError says what is missing and how to get it."""
    src = parse_source(value)
    if src.kind == GENERATED:
        return "generated scenes"
    if not Path(src.path).exists():
        raise DatasetError(f"{src.kind} folder {src.path!r} does not exist; {HOW_TO_GET[src.kind]}")
    try:
        if src.kind == "release":
            if need_regions:
                raise DatasetError("the authors' release stores no object boxes or masks, which this chapter needs; "
                                   "use 'generated' or 'coco:<folder>' here")
            locate(Path(src.path), family)
        else:
            coco_files(src.path, "val2017")
    except DatasetError as e:
        if "stores no object" in str(e):
            raise
        raise DatasetError(f"{e}. To get it: {HOW_TO_GET[src.kind]}") from None
    return f"{src.label(family)} in {src.path}"


def check_domainnet(folder: str) -> str:
    """A DomainNet-layout folder: at least one <domain>/<class>/ with images."""
    if not Path(folder).is_dir():
        raise DatasetError(f"DomainNet folder {folder!r} does not exist; {HOW_TO_GET['domainnet']}")
    load_domainnet(folder, per_class=1)
    return f"DomainNet references in {folder}"


def _sample(scenes: SceneSet, objects: Sequence[int], n_images: int, seed: int) -> SceneSet:
    """Up to ``n_images`` multi-object images per object count (seeded), plus every single-object image."""
    images = scenes.images
    keep = list(images.image_id[images.kind == "single"])
    rng = np.random.default_rng(seed)
    found = {}
    for n in objects:
        ids = sorted(images.image_id[(images.kind == "multi") & (images.n_objects == n)])
        found[n] = len(ids)
        if len(ids) > n_images:
            ids = sorted(ids[i] for i in rng.choice(len(ids), n_images, replace=False))
        keep += ids
    if not any(found.values()):
        have = sorted(set(images.n_objects[images.kind == "multi"].astype(int)))
        raise DatasetError(f"no multi-object image with {list(objects)} objects in this source; it has {have}")
    out = scenes.subset(keep)
    out.meta = {**scenes.meta, "available_per_count": found, "sampled_per_count": n_images, "sample_seed": seed}
    return out


def recaption(scenes: SceneSet, templates: Sequence[str]) -> SceneSet:
    """Captions in ``templates`` naming each image's objects in their stored order (file-name order in the release)."""
    objs = scenes.objects.sort_values(["image_id", "object_index"], kind="stable")
    names = objs.groupby("image_id", sort=False).class_name.agg(list)
    rows = [(i, t, caption([n.replace("_", " ") for n in names[i]], t), "|".join(names[i]))
            for i in scenes.images.image_id if i in names.index for t in templates]
    caps = pd.DataFrame(rows, columns=["image_id", "template", "text", "order"])
    return SceneSet(scenes.root, scenes.classes, scenes.images, scenes.objects, caps, dict(scenes.meta))


def load_source(value: str, spec: SceneSpec, *, n_images: int, seed: int, domainnet_root: str = "",
                references_per_class: int = 3) -> SceneSet:
    """The scenes of one source for a probe chapter (``spec`` gives the generated scenes and the chapter's choices:
    family, object counts, templates). ``meta`` records ``source``, ``dataset`` (a label for tables) and
    ``paper_dataset`` (which of paper A's tables it compares with)."""
    src = parse_source(value)
    if src.kind == GENERATED:
        scenes = generate_cached(spec, progress=False)
    elif src.kind == "release":
        scenes = recaption(_sample(load_official(src.path, spec.family), spec.objects, n_images, seed), spec.templates)
    else:
        scenes = _sample(load_coco(src.path, "val2017", min_mentions=2), spec.objects, n_images, seed)
        if domainnet_root:
            # photographs, when the folder has DomainNet's "real" domain: COCO's images are photographs too
            domains = ["real"] if (Path(domainnet_root) / "real").is_dir() else None
            refs = load_domainnet(domainnet_root, classes=scenes.classes, domains=domains,
                                  per_class=references_per_class)
            scenes = merge_references(scenes.subset(list(scenes.images.image_id[scenes.images.kind == "multi"])), refs)
    scenes.meta = {**scenes.meta, "source": src.kind, "source_value": value,
                   "dataset": src.label(spec.family), "paper_dataset": src.paper_dataset}
    return scenes


def load_sources(values: Sequence[str], spec: SceneSpec, *, n_images: int, seed: int, domainnet_root: str = "",
                 references_per_class: int = 3) -> dict[str, SceneSet]:
    """Every source of a chapter, by its table label; two sources with one label are an error (name them apart)."""
    out: dict[str, SceneSet] = {}
    for value in values:
        scenes = load_source(value, spec, n_images=n_images, seed=seed, domainnet_root=domainnet_root,
                             references_per_class=references_per_class)
        label = scenes.meta["dataset"]
        if label in out:
            raise DatasetError(f"two sources of this chapter are both {label!r}; list each dataset once")
        out[label] = scenes
    return out
