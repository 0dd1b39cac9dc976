"""The rehearsal's stand-ins: what the ``paper`` profile reads, made here from generated scenes and random weights.

The real path (open_clip pretrained tags, NegCLIP/SugarCrepe checkpoints, the authors' release, COCO 2017,
DomainNet, LAION checkpoints, a rephrased-captions file) cannot be downloaded on a machine without internet.
The rehearsal profile runs every chapter through exactly that path on stand-ins laid out like the real thing:

* weights: random weights of the real architectures in the Hugging Face hub cache layout and as local
  checkpoint files (:mod:`clipscope_utils.models.standins`);
* data: one small generated ComCO set exported as the authors' release, as COCO 2017 and as DomainNet
  (:mod:`clipscope_utils.datasets.export`), plus a rule-based rephrasing of the matching chapter's COCO captions;
  for paper B, a COCO ``train2017`` split of generated two-object scenes whose captions name relations (what the
  CAE chapter fine-tunes on), Karpathy test splits (COCO and Flickr30k, Table 3), a Visual Genome vocabulary file
  and the seven benchmarks of Tables 1–2 in their own layouts (:mod:`clipscope_utils.compositional.export`).

Everything is built once into the profile's ``standins`` folder and rebuilt only when what made it changes.
The numbers computed on stand-ins mean nothing; their purpose is that every line of the real path runs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..compositional.export import (to_aro, to_comvg, to_sugarcrepe, to_svo_probes, to_valse, to_vl_checklist,
                                    to_winoground)
from ..compositional.scenes import CompositionSpec, concept_candidates, generate_compositions, synthetic_benchmark
from ..datasets.export import rephrasings, to_coco, to_domainnet, to_release, to_rephrase_file
from ..datasets.karpathy import to_karpathy
from ..datasets.visual_genome import to_vg_dicts
from ..datasets.scenes import SceneSpec, generate_cached
from ..datasets.shards import export_scene_shards
from ..datasets.sources import load_source
from ..models.standins import build_standins
from ..paths import atomic_write, content_id
from ..studies.probes import matching_captions

#: classes of the stand-in data: multi-word names, a COCO/DomainNet name pair and "car"/"carrot" on purpose
CLASSES = ("person", "bicycle", "car", "carrot", "motorcycle", "dog", "cat", "wine glass", "hot dog")
SPEC = SceneSpec(family="comco", objects=(2, 3, 4), images=8, image_size=224, templates=("and", "scene"),
                 class_names=CLASSES, seed=0)
DATA_MANIFEST = "data-manifest.json"
#: paper B's stand-ins: two-object scenes with relation captions (COCO train2017 for fine-tuning, benchmark items)
CAE_SPEC = CompositionSpec(family="comco", images=8, image_size=64, attributes=("size",),
                           class_names=("cat", "dog", "car", "person"), seed=0)
CAE_BENCH_ITEMS = 4
LAION_SHARD_SIZE = 16  # SPEC's 48 captions in three shards: two torchrun processes each get one or more
BENCHMARK_WRITERS = {"aro": to_aro, "sugarcrepe": to_sugarcrepe, "winoground": to_winoground, "valse": to_valse,
                     "vl_checklist": to_vl_checklist, "svo_probes": to_svo_probes, "comvg": to_comvg}


def _code_key() -> dict:
    """What decides the stand-in data besides the spec: the exporters' and loaders' code."""
    here = Path(__file__).resolve().parents[1]
    files = [f"datasets/{f}" for f in ("export.py", "scenes.py", "coco.py", "official.py", "domainnet.py",
                                       "karpathy.py", "visual_genome.py", "shards.py")]
    files += [f"compositional/{f}" for f in ("export.py", "scenes.py")]
    return {f: content_id(here / f) for f in files}


def _rephrase_file(data: Path, matching: dict | None) -> None:
    """Rephrasings of every caption the matching chapter builds on the COCO stand-in (a rule, not an LLM)."""
    texts: list[str] = []
    coco = next((s for s in (matching or {}).get("sources", []) if s.startswith("coco:")), None)
    if coco:
        spec = SceneSpec(family="comco", objects=tuple(matching["objects"]), templates=(matching["template"],))
        scenes = load_source(coco, spec, n_images=matching["n_images"], seed=matching["seed"])
        texts = matching_captions(scenes, matching["template"], matching["replace"], matching["seed"])
    to_rephrase_file(rephrasings(texts, seed=0), data / "rephrased_captions.json")


def _coco_train_split(data: Path, split: str = "train2017") -> None:
    """A COCO captions split of generated two-object scenes with relation captions, added beside the exported
    val2017 (COCO's own layout: annotations/captions_<split>.json, instances_<split>.json, <split>/*.png)."""
    comp = generate_compositions(CAE_SPEC, progress=False)
    coco = data / "coco"
    (coco / split).mkdir(parents=True, exist_ok=True)
    images, captions = [], []
    for i, (path, text) in enumerate(zip(comp.paths, comp.captions), start=1):
        name = f"{i:012d}.png"
        shutil.copyfile(path, coco / split / name)
        images.append({"id": i, "file_name": name, "width": CAE_SPEC.image_size, "height": CAE_SPEC.image_size})
        captions.append({"id": i, "image_id": i, "caption": text})
    for kind, doc in (("captions", {"images": images, "annotations": captions}),
                      ("instances", {"images": images, "annotations": [], "categories": []})):
        payload = json.dumps(doc).encode()
        atomic_write(coco / "annotations" / f"{kind}_{split}.json", lambda f, b=payload: f.write(b))


def _paper_b(data: Path, scenes) -> None:
    """Paper B's stand-ins: the COCO training split, the seven benchmarks, the retrieval splits, a vocabulary."""
    _coco_train_split(data)
    bench = synthetic_benchmark(CAE_SPEC, CAE_BENCH_ITEMS, progress=False)
    for name, write in BENCHMARK_WRITERS.items():
        write(bench, data / name, overwrite=True)
    to_karpathy(scenes, data / "karpathy_coco", dataset="coco", overwrite=True)
    to_karpathy(scenes, data / "karpathy_flickr", dataset="flickr30k", overwrite=True)
    to_vg_dicts(concept_candidates(CAE_SPEC), data / "VG-SGG-dicts-with-attri.json")


def _laion(data: Path, scenes) -> None:
    """LAION as people have it, from generated scenes: img2dataset webdataset shards (``.tar`` with image, caption
    and JSON, a companion parquet each) with their objects' true boxes and areas in sidecars, as a segmenter
    would write them."""
    out = data / "laion" / "shards"
    shutil.rmtree(out, ignore_errors=True)  # a stand-in folder of ours, rebuilt with the rest of the data
    export_scene_shards(scenes, out, shard_size=LAION_SHARD_SIZE)


def prepare_standins(folder: Path, params: dict | None = None) -> dict[str, str]:
    """Build (or reuse) every stand-in under ``folder``; returns the environment a run needs (HF cache, offline,
    weights folder). ``params`` are the profile's notebook parameters (the matching chapter's decide which
    captions get a stand-in rephrasing)."""
    folder = Path(folder)
    # LAION's scaling-laws epochs 10 and 20 as the run's hub files (hf://laion/scaling-laws-openclip/..., one shared
    # random state), the paper profile's form
    env = build_standins(folder / "models", epochs=(), scaling_epochs=(10, 20))
    data = folder / "data"
    matching = (params or {}).get("matching")
    key = {"spec": SPEC.key(), "cae_spec": CAE_SPEC.key(), "code": _code_key(),
           "matching": {k: matching.get(k) for k in ("sources", "objects", "n_images", "template", "replace", "seed")}
           if matching else None}
    manifest = data / DATA_MANIFEST
    if manifest.is_file() and json.loads(manifest.read_text()) == key:
        return env
    scenes = generate_cached(SPEC, progress=False)
    to_release(scenes, data / "release", family="comco", image_size=512, overwrite=True)
    to_coco(scenes, data / "coco", split="val2017", overwrite=True)
    to_domainnet(scenes, data / "domainnet", overwrite=True)
    _paper_b(data, scenes)
    _laion(data, scenes)
    (data / "README.md").write_text("Stand-in data made from generated scenes (clipscope rehearsal): the layouts of "
                                    "the authors' release, COCO 2017 and DomainNet, not their contents.\n")
    _rephrase_file(data, matching)
    atomic_write(manifest, lambda f: f.write(json.dumps(key, indent=1, sort_keys=True).encode()))
    return env
