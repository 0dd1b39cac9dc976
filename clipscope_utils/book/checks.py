"""Everything a profile names, checked before the first notebook runs: models, devices, data folders.

A profile's values pass their schema in :mod:`profiles` (types and ranges); here each value that means more
than its type is resolved: every model name through the chapter's :class:`~clipscope_utils.zoo.ModelZoo`
(``trained:`` names against the profile's pretraining block), every device against the machine, every data
folder against the files it must hold. Nothing is loaded, trained or executed, so a typo in the last chapter
fails in seconds, not after the chapters before it ran. ``python -m clipscope_utils.book check`` prints the
same report alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..compositional.benchmarks import check_files
from ..datasets.coco import coco_files
from ..datasets.karpathy import load_karpathy
from ..datasets.official import locate
from ..datasets.shards import list_shards
from ..datasets.visual_genome import load_vocabularies
from ..datasets.sources import HOW_TO_GET, check_domainnet, check_source, parse_source
from ..device import pick_device
from ..models.base import ModelError
from ..models.registry import resolve
from ..paths import content_id
from ..cae.finetune import check_schedule
from ..studies import cae, cure, laion
from ..studies import pretraining as pt
from ..studies.probes import rephrasings_from
from ..training import TrainingError
from ..zoo import ModelZoo, describe_training, parse_external
from .profiles import Profile

SHARED_TRAINING = "pretraining"
#: chapters that train (or load, cached) every run of the pretraining block: orders x seeds
TRAINS_THE_BLOCK = ("pretraining", "progression", "origin")


@dataclass
class ChapterCheck:
    """What one chapter will use (models as resolved, inputs) and what is wrong with its parameters."""

    notebook: str
    models: list[tuple[str, str]] = field(default_factory=list)  # (parameter, "name: what it resolves to")
    trained: dict[str, str] = field(default_factory=dict)  # trained: name -> its training config
    inputs: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # every file or folder named -> its content id

    def report(self) -> str:
        lines = [f"{self.notebook}:"]
        lines += [f"  {p}: {m}" for p, m in self.models]
        lines += [f"  {i}" for i in self.inputs]
        lines += [f"  PROBLEM {p}" for p in self.problems]
        if len(lines) == 1:
            lines.append("  no model, device or data folder to resolve")
        return "\n".join(lines)


def _folder(kind: str, value: str, params: dict) -> str:
    """Check one data folder parameter; returns a line for the report. A missing dataset says how to get it."""
    try:
        return _check_folder(kind, value, params)
    except (ValueError, OSError) as e:
        how = {"official": "release", "coco_val": "coco", "coco_train": "coco", "domainnet": "domainnet"}.get(kind)
        if how is None or HOW_TO_GET[how] in str(e):
            raise
        raise ValueError(f"{e}. To get it: {HOW_TO_GET[how]}") from None


def _check_folder(kind: str, value: str, params: dict) -> str:
    if kind == "official":
        locate(Path(value), None)
    elif kind in ("coco_val", "coco_train"):
        coco_files(value, "val2017" if kind == "coco_val" else params.get("coco_split", "train2017"))
    elif kind == "domainnet":
        return check_domainnet(value)
    elif kind.endswith("images"):
        if not Path(value).is_dir():
            raise ValueError(f"folder {value!r} does not exist")
    else:
        images = {"sugarcrepe": params.get("coco_images"), "valse": params.get("valse_images"),
                  "vl_checklist": params.get("vl_checklist_images"), "svo_probes": params.get("svo_probes_images"),
                  "comvg": params.get("comvg_images")}.get(kind)
        check_files(kind, value, images)
    return f"{kind} data: {value}"


def _zoo(notebook: str, params: dict, check: ChapterCheck) -> ModelZoo | None:
    block = params if notebook == SHARED_TRAINING else params.get(SHARED_TRAINING)
    try:
        zoo = ModelZoo.from_pretraining(block)
        resolve(f"random:{zoo.training.model}")  # the architecture the self-trained CLIPs are built on
        return zoo
    except (TrainingError, ModelError, ValueError) as e:
        where = "its parameters" if notebook == SHARED_TRAINING else f"the shared {SHARED_TRAINING} parameters"
        check.problems.append(f"notebook {notebook!r}, {where}: {e}")
        return None


def _models(zoo: ModelZoo, names: list[str], controls: bool, need_images: bool, param: str,
            check: ChapterCheck) -> None:
    for name in zoo.with_controls(names, controls, need_images=need_images):
        spec = zoo.resolve(name)
        check.models.append((param, f"{spec.name} = {spec.describe()}"))
        if spec.path:  # a local checkpoint or model folder: its contents decide the results
            check.files[spec.path] = content_id(spec.path)
        cfg = zoo.config_of(spec)
        if cfg is not None:
            check.trained[spec.name] = describe_training(cfg)


def check_notebook(notebook: str, params: dict[str, Any], schema: dict) -> ChapterCheck:
    """Resolve every checked parameter of one notebook; problems are collected, not raised."""
    out = ChapterCheck(notebook)
    needs_zoo = notebook == SHARED_TRAINING or SHARED_TRAINING in params
    zoo = _zoo(notebook, params, out) if needs_zoo else ModelZoo()
    if zoo is not None and notebook in TRAINS_THE_BLOCK:
        block = params if notebook == SHARED_TRAINING else params[SHARED_TRAINING]
        runs = [f"trained:{o}:{s}" for o in block["orders"] for s in block["seeds"]]
        _models(zoo, runs, False, True, "trains", out)
    for param, spec in schema.items():
        kind, value = spec.meaning, params.get(param)
        if kind is None:
            continue
        try:
            if kind in ("models", "image_models") and zoo is not None:
                _models(zoo, value, bool(params.get("controls", False)), kind == "image_models", param, out)
            elif kind == "model" and zoo is not None:
                if zoo.resolve(value).kind != "clip":
                    raise ModelError(f"model {value!r} is text-only; an open_clip CLIP is needed here")
                _models(zoo, [value], False, True, param, out)
            elif kind == "device":
                out.inputs.append(f"{param}: {value} -> {pick_device(value)}")
            elif kind == "external":
                try:
                    external = parse_external(value)
                except ValueError as e:
                    raise ValueError(f"{e} (paper A's Fig. 4c used LAION's scaling-laws OpenCLIP checkpoints: Hugging "
                                     "Face laion/scaling-laws-openclip, run Model-B-32_Data-2B_Samples-13B, epochs "
                                     "10..50; download them and name each file)") from None
                out.models += [(param, f"{s} samples: {n}") for s, n in external]
                out.files.update({spec.path: content_id(spec.path) for spec in map(resolve, (n for _, n in external))
                                  if spec.path})
            elif kind in ("sources", "sources_with_regions"):
                for item in value:  # each source on its own, so every missing dataset is named at once
                    try:
                        out.inputs.append(f"{param}: " + check_source(item, params.get("family", "comco"),
                                                                      need_regions=kind == "sources_with_regions"))
                    except (ValueError, OSError) as e:
                        out.problems.append(f"notebook {notebook!r}, parameter {param!r} = {item!r}: {e}")
                        continue
                    path = parse_source(item).path
                    if path:
                        out.files[str(Path(path).resolve())] = content_id(path)
            elif kind == "rephrase_file" and value:
                out.inputs.append(f"{param}: {len(rephrasings_from(value))} rephrased captions in {value}")
                out.files[str(Path(value).resolve())] = content_id(value)
            elif kind == "long_run" and value:  # runs longer than the pretraining block's, known before any training
                pt.long_configs(params[SHARED_TRAINING], params["long_orders"], value, params["long_checkpoints"])
            elif kind == "cure" and value:
                cure.check(pt.configs(params[SHARED_TRAINING]), value, params["cure_lr"])
            elif kind == "karpathy" and value:  # a split file; its images folder is the parameter <name>_images
                split = load_karpathy(value, params.get(f"{param}_images") or None, "test")
                out.inputs.append(f"{param}: {split.n_images} test images, {split.n_captions} captions in {value}")
                out.files[str(Path(value).resolve())] = content_id(value)
            elif kind == "finetune_schedule":  # every CAE run's knobs and schedule, from the data size
                configs, ablation, sweep = cae.chapter_configs(params)
                out.inputs.append(f"{param}: {len(configs) + len(ablation) + len(sweep)} fine-tuning runs of "
                                  f"{sorted({check_schedule(c) for c in configs})} steps")
            elif kind == "claim2_shards" and value:  # LAION-style shards of Claim 2 at scale, and their areas
                job = laion.claim2_job(value, params["laion_areas"])
                shards = list_shards(job.source)
                out.inputs.append(f"{param}: {len(shards)} shard(s), areas from {job.area_source}")
                out.files.update({str(p): content_id(p) for p in shards})
            elif kind == "at_scale":  # the open_clip_train runs: policies and the run's knobs, then the shards
                at_scale = laion.CausalAtScale.from_params(params, device=params[SHARED_TRAINING]["device"])
                if at_scale.orders and at_scale.source:
                    shards = list_shards(at_scale.source)
                    out.files.update({str(p): content_id(p) for p in shards})
                if at_scale.orders:
                    out.inputs.append(f"{param}: {len(at_scale.orders)} open_clip_train run(s) of "
                                      f"{at_scale.run(('placeholder.tar',), at_scale.orders[0]).steps} steps on "
                                      f"{at_scale.processes} process(es)")
            elif kind == "vocabulary" and value:
                vocab = load_vocabularies(value)
                out.inputs.append(f"{param}: " + ", ".join(f"{len(v)} {r}s" for r, v in vocab.items()) + f" in {value}")
                out.files[str(Path(value).resolve())] = content_id(value)
            elif kind.startswith("folder:") and value:
                out.inputs.append(f"{param}: " + _folder(kind.split(":", 1)[1], value, params))
                out.files[str(Path(value).resolve())] = content_id(value)
        except (ValueError, OSError) as e:  # ModelError, DatasetError, BenchmarkError, ParameterError are ValueErrors
            out.problems.append(f"notebook {notebook!r}, parameter {param!r} = {value!r}: {e}")
    return out


def check_profile(profile: Profile, notebooks: list[str] | None = None) -> list[ChapterCheck]:
    """The check of every notebook of ``profile`` (or of ``notebooks``), in book order."""
    names = notebooks or list(profile.params)
    return [check_notebook(nb, profile.params[nb], profile.schema.get(nb, {})) for nb in names]


def problems(checks: list[ChapterCheck]) -> list[str]:
    return [p for c in checks for p in c.problems]
