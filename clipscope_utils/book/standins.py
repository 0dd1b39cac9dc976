"""The rehearsal's stand-ins: what the ``paper`` profile reads, made here from generated scenes and random weights.

The real path (open_clip pretrained tags, NegCLIP/SugarCrepe checkpoints, the authors' release, COCO 2017,
DomainNet, LAION checkpoints, a rephrased-captions file) cannot be downloaded on a machine without internet.
The rehearsal profile runs every chapter through exactly that path on stand-ins laid out like the real thing:

* weights: random weights of the real architectures in the Hugging Face hub cache layout and as local
  checkpoint files (:mod:`clipscope_utils.models.standins`);
* data: one small generated ComCO set exported as the authors' release, as COCO 2017 and as DomainNet
  (:mod:`clipscope_utils.datasets.export`), plus a rule-based rephrasing of the matching chapter's COCO captions.

Everything is built once into the profile's ``standins`` folder and rebuilt only when what made it changes.
The numbers computed on stand-ins mean nothing; their purpose is that every line of the real path runs.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..datasets.export import rephrasings, to_coco, to_domainnet, to_release, to_rephrase_file
from ..datasets.scenes import SceneSpec, generate_cached
from ..datasets.sources import load_source
from ..models.standins import build_standins
from ..paths import atomic_write, content_id
from ..studies.probes import matching_captions

#: classes of the stand-in data: multi-word names, a COCO/DomainNet name pair and "car"/"carrot" on purpose
CLASSES = ("person", "bicycle", "car", "carrot", "motorcycle", "dog", "cat", "wine glass", "hot dog")
SPEC = SceneSpec(family="comco", objects=(2, 3, 4), images=8, image_size=224, templates=("and", "scene"),
                 class_names=CLASSES, seed=0)
DATA_MANIFEST = "data-manifest.json"


def _code_key() -> dict:
    """What decides the stand-in data besides the spec: the exporters' and loaders' code."""
    here = Path(__file__).resolve().parents[1] / "datasets"
    return {f: content_id(here / f) for f in ("export.py", "scenes.py", "coco.py", "official.py", "domainnet.py")}


def _rephrase_file(data: Path, matching: dict | None) -> None:
    """Rephrasings of every caption the matching chapter builds on the COCO stand-in (a rule, not an LLM)."""
    texts: list[str] = []
    coco = next((s for s in (matching or {}).get("sources", []) if s.startswith("coco:")), None)
    if coco:
        spec = SceneSpec(family="comco", objects=tuple(matching["objects"]), templates=(matching["template"],))
        scenes = load_source(coco, spec, n_images=matching["n_images"], seed=matching["seed"])
        texts = matching_captions(scenes, matching["template"], matching["replace"], matching["seed"])
    to_rephrase_file(rephrasings(texts, seed=0), data / "rephrased_captions.json")


def prepare_standins(folder: Path, params: dict | None = None) -> dict[str, str]:
    """Build (or reuse) every stand-in under ``folder``; returns the environment a run needs (HF cache, offline,
    weights folder). ``params`` are the profile's notebook parameters (the matching chapter's decide which
    captions get a stand-in rephrasing)."""
    folder = Path(folder)
    env = build_standins(folder / "models", epochs=(1, 2))
    data = folder / "data"
    matching = (params or {}).get("matching")
    key = {"spec": SPEC.key(), "code": _code_key(),
           "matching": {k: matching.get(k) for k in ("sources", "objects", "n_images", "template", "replace", "seed")}
           if matching else None}
    manifest = data / DATA_MANIFEST
    if manifest.is_file() and json.loads(manifest.read_text()) == key:
        return env
    scenes = generate_cached(SPEC, progress=False)
    to_release(scenes, data / "release", family="comco", image_size=512, overwrite=True)
    to_coco(scenes, data / "coco", split="val2017", overwrite=True)
    to_domainnet(scenes, data / "domainnet", overwrite=True)
    (data / "README.md").write_text("Stand-in data made from generated scenes (clipscope rehearsal): the layouts of "
                                    "the authors' release, COCO 2017 and DomainNet, not their contents.\n")
    _rephrase_file(data, matching)
    atomic_write(manifest, lambda f: f.write(json.dumps(key, indent=1, sort_keys=True).encode()))
    return env
