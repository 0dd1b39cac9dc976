"""Profiles: named parameter sets for the whole book, kept as data files in ``profiles/``.

``profiles/parameters.yml`` declares, per notebook, every parameter with its type and allowed values;
``profiles/<name>.yml`` gives values (``extends:`` another profile and overrides it). Everything is
checked here, before any notebook runs, so that a typo costs a second, not a half-built book.

Two kinds of parameter are more than a value:

* ``type: shared`` — the whole parameter set of the notebook of the same name, injected by the runner and
  never set by hand. Every chapter that names a ``trained:`` model gets ``pretraining`` this way, so the
  self-trained CLIPs it loads are the ones the profile's pretraining chapter trains.
* ``check: models`` (and ``image_models``, ``model``, ``device``, ``external``, ``sources``, ``folder:<kind>``) — what the
  value means beyond its type; :mod:`clipscope_utils.book.checks` resolves it before the first notebook runs.
  A list of models may name a collection of the profile's ``model_sets`` as ``"@<set>"``.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SCHEMA_FILE = "parameters.yml"
TYPES = {"int", "float", "str", "bool", "list", "shared"}
CHECKS = {"models", "image_models", "model", "device", "external", "sources", "sources_with_regions",
          "rephrase_file", "long_run", "cure", "karpathy", "vocabulary", "finetune_schedule", "claim2_shards",
          "at_scale"}
FOLDER_KINDS = ("official", "coco_val", "coco_train", "aro", "sugarcrepe", "coco_images", "winoground", "valse",
                "valse_images", "domainnet", "vl_checklist", "vl_checklist_images", "svo_probes", "svo_probes_images",
                "comvg", "comvg_images")
MODEL_LISTS = ("models", "image_models")
#: top-level keys of a profile file; ``notice``, ``standins`` and ``environment`` serve the rehearsal profile
PROFILE_KEYS = ("description", "extends", "model_sets", "notebooks", "notice", "standins", "environment")


FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


class ParameterError(ValueError):
    """A profile or override names an unknown notebook/parameter or gives a value out of range."""


@dataclass(frozen=True)
class ParamSpec:
    """How one notebook parameter may be set."""

    name: str
    type: str
    help: str = ""
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    items: "ParamSpec | None" = None  # element spec of a list
    min_len: int | None = None
    max_len: int | None = None
    unique: bool = False  # a list that names a set (object counts, seeds, templates): no repeats
    meaning: str | None = None  # schema key ``check``: what the value means beyond its type (CHECKS, FOLDER_KINDS)

    @classmethod
    def from_dict(cls, name: str, d: dict) -> "ParamSpec":
        d = dict(d)
        typ = d.pop("type", None)
        if typ not in TYPES:
            raise ParameterError(f"schema of {name!r}: type {typ!r} is not one of {sorted(TYPES)}")
        items = d.pop("items", None)
        choices = d.pop("choices", None)
        spec = cls(
            name=name,
            type=typ,
            help=d.pop("help", ""),
            choices=tuple(choices) if choices is not None else None,
            min=d.pop("min", None),
            max=d.pop("max", None),
            items=cls.from_dict(f"{name}[]", items) if items is not None else None,
            min_len=d.pop("min_len", None),
            max_len=d.pop("max_len", None),
            unique=bool(d.pop("unique", False)),
            meaning=d.pop("check", None),
        )
        if d:
            raise ParameterError(f"schema of {name!r}: unknown keys {sorted(d)}")
        if typ == "list" and spec.items is None:
            raise ParameterError(f"schema of {name!r}: a list needs 'items'")
        folder = spec.meaning.split(":", 1)[1] if spec.meaning and spec.meaning.startswith("folder:") else None
        if spec.meaning is not None and spec.meaning not in CHECKS and folder not in FOLDER_KINDS:
            raise ParameterError(f"schema of {name!r}: check {spec.meaning!r} is not one of {sorted(CHECKS)} or "
                                 f"folder:<{'|'.join(FOLDER_KINDS)}>")
        return spec

    def allowed(self) -> str:
        """Human-readable description of the allowed values."""
        if self.type == "shared":
            return "nothing: it is the parameter set of the notebook of the same name, injected by the runner"
        if self.choices is not None:
            text = f"one of {list(self.choices)}"
        elif self.type == "list":
            n = ""
            if self.min_len is not None or self.max_len is not None:
                n = f" with {self.min_len or 0}..{self.max_len if self.max_len is not None else 'any'} items"
            text = f"a list{n} of {'distinct values, each ' if self.unique else ''}{self.items.allowed()}"
        else:
            text = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true/false"}[self.type]
            if self.min is not None or self.max is not None:
                lo = f"{self.min:g}" if self.min is not None else "-inf"
                hi = f"{self.max:g}" if self.max is not None and self.max < 1e15 else "inf"
                hi = f"{self.max}" if self.type == "int" and self.max is not None else hi
                text += f" in [{lo}, {hi}] (bounds included)"
        return text

    def check(self, value: Any, where: str) -> Any:
        """Return ``value`` (ints widened to float where a float is asked) or raise ParameterError."""

        def fail(why: str):
            raise ParameterError(f"{where}: {why}; allowed: {self.allowed()}")

        if self.type == "bool":
            if not isinstance(value, bool):
                fail(f"{value!r} is not a boolean")
        elif self.type == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                fail(f"{value!r} is not an integer")
        elif self.type == "float":
            if isinstance(value, str) and FLOAT.fullmatch(value.strip()):
                value = float(value)  # YAML 1.1 reads 1e-06 (as the bounds print) as text
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                fail(f"{value!r} is not a finite number")
            value = float(value)
        elif self.type == "str":
            if not isinstance(value, str):
                fail(f"{value!r} is not a string")
        elif self.type == "list":
            if not isinstance(value, list):
                fail(f"{value!r} is not a list")
            if self.min_len is not None and len(value) < self.min_len:
                fail(f"{len(value)} items is fewer than {self.min_len}")
            if self.max_len is not None and len(value) > self.max_len:
                fail(f"{len(value)} items is more than {self.max_len}")
            checked = [self.items.check(v, f"{where}[{i}]") for i, v in enumerate(value)]
            repeated = sorted({repr(v) for v in checked if checked.count(v) > 1})
            if self.unique and repeated:
                fail(f"{', '.join(repeated)} given more than once")
            return checked
        if self.choices is not None and value not in self.choices:
            fail(f"{value!r} is not allowed")
        if self.min is not None and value < self.min:
            fail(f"{value!r} is below the minimum")
        if self.max is not None and value > self.max:
            fail(f"{value!r} is above the maximum")
        return value


@dataclass
class Profile:
    """A validated parameter set: ``params[notebook][parameter] = value``."""

    name: str
    description: str
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    schema: dict[str, dict[str, "ParamSpec"]] = field(default_factory=dict, repr=False)
    notice: str = ""  # shown as the first line of every page (the rehearsal says its numbers mean nothing)
    standins: str = ""  # folder of stand-in weights and data the runner builds before the checks (rehearsal)
    environment: dict[str, str] = field(default_factory=dict)  # set for the checks and every notebook's kernel


def load_schema(profiles_dir: Path) -> dict[str, dict[str, ParamSpec]]:
    path = Path(profiles_dir) / SCHEMA_FILE
    if not path.is_file():
        raise ParameterError(f"parameter schema {path} is missing")
    raw = yaml.safe_load(path.read_text()) or {}
    return {nb: {p: ParamSpec.from_dict(f"{nb}.{p}", s) for p, s in (params or {}).items()} for nb, params in raw.items()}


def available_profiles(profiles_dir: Path) -> list[str]:
    return sorted(p.stem for p in Path(profiles_dir).glob("*.yml") if p.name != SCHEMA_FILE)


def _raw_profile(profiles_dir: Path, name: str, seen: tuple[str, ...] = ()) -> dict:
    """Profile values with ``extends`` resolved (parents first, children override per parameter)."""
    path = Path(profiles_dir) / f"{name}.yml"
    if name == Path(SCHEMA_FILE).stem or not path.is_file():
        raise ParameterError(f"unknown profile {name!r}; available: {available_profiles(profiles_dir)}")
    if name in seen:
        raise ParameterError(f"profile {name!r} extends itself via {' -> '.join(seen + (name,))}")
    raw = yaml.safe_load(path.read_text()) or {}
    unknown = set(raw) - set(PROFILE_KEYS)
    if unknown:
        raise ParameterError(f"profile {name!r}: unknown keys {sorted(unknown)}; allowed: {', '.join(PROFILE_KEYS)}")
    merged: dict = {"notebooks": {}, "model_sets": {}, "environment": {}}
    if raw.get("extends"):
        merged = _raw_profile(profiles_dir, raw["extends"], seen + (name,))
    for nb, values in (raw.get("notebooks") or {}).items():
        merged["notebooks"].setdefault(nb, {}).update(values or {})
    for set_name, models in (raw.get("model_sets") or {}).items():
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            raise ParameterError(f"profile {name!r}: model set {set_name!r} must be a list of model names")
        merged["model_sets"][set_name] = models
    env = raw.get("environment") or {}
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, (str, int)) for k, v in env.items()):
        raise ParameterError(f"profile {name!r}: 'environment' must map variable names to strings")
    merged["environment"].update({k: str(v) for k, v in env.items()})
    for key in ("description", "notice", "standins"):
        if not isinstance(raw.get(key, ""), str):
            raise ParameterError(f"profile {name!r}: {key!r} must be a string")
        merged[key] = raw.get(key, merged.get(key, ""))
    return merged


def parse_override(text: str) -> tuple[str, str, Any]:
    """``"dataset.n_images=200"`` -> ``("dataset", "n_images", 200)``; the value is read as YAML."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ParameterError(f"override {text!r} is not of the form NOTEBOOK.PARAMETER=VALUE")
    key, value = text.split("=", 1)
    nb, param = key.strip().split(".", 1)
    if value.strip().startswith("#"):  # a colour such as #ff0000, not a YAML comment
        return nb, param, value.strip()
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as e:
        raise ParameterError(f"override {text!r}: value is not valid YAML ({e})") from None
    return nb, param, parsed


def load_profile(
    profiles_dir: Path,
    name: str,
    notebooks: list[str],
    overrides: list[str] | tuple[str, ...] = (),
) -> Profile:
    """Load profile ``name`` for ``notebooks``, apply ``overrides`` and validate every value.

    Every notebook must have a schema and every schema parameter a value (so each run is fully
    specified by the profile); unknown notebooks or parameters are errors that name the allowed ones.
    """
    schema = load_schema(profiles_dir)
    raw = _raw_profile(profiles_dir, name)
    values = copy.deepcopy(raw["notebooks"])
    for text in overrides:
        nb, param, value = parse_override(text)
        if nb not in notebooks:
            raise ParameterError(f"override {text!r}: unknown notebook {nb!r}; notebooks of the book: {notebooks}")
        values.setdefault(nb, {})[param] = value

    missing_schema = [nb for nb in notebooks if nb not in schema]
    if missing_schema:
        raise ParameterError(f"notebooks {missing_schema} have no entry in {SCHEMA_FILE}")
    extra = sorted(set(values) - set(notebooks))
    if extra:
        raise ParameterError(f"profile {name!r} sets unknown notebooks {extra}; notebooks of the book: {notebooks}")

    params: dict[str, dict[str, Any]] = {}
    for nb in notebooks:
        specs = schema[nb]
        given = values.get(nb, {})
        unknown = sorted(set(given) - set(specs))
        if unknown:
            raise ParameterError(
                f"notebook {nb!r}: unknown parameter(s) {unknown} (profile {name!r}); "
                f"parameters of {nb!r}: {sorted(p for p in specs if specs[p].type != 'shared')}"
            )
        shared = sorted(p for p in given if specs[p].type == "shared")
        if shared:
            raise ParameterError(f"notebook {nb!r}, parameter {shared[0]!r} is the {shared[0]!r} notebook's whole "
                                 f"parameter set, shared by the runner: set {shared[0]}.<parameter> instead")
        missing = sorted(p for p in set(specs) - set(given) if specs[p].type != "shared")
        if missing:
            raise ParameterError(f"notebook {nb!r}: profile {name!r} gives no value for {missing}")
        params[nb] = {p: specs[p].check(_expand_sets(given[p], specs[p], raw["model_sets"], f"notebook {nb!r}, "
                                                     f"parameter {p!r}"), f"notebook {nb!r}, parameter {p!r}")
                      for p in specs if specs[p].type != "shared"}
    for nb in notebooks:
        for p, spec in schema[nb].items():
            if spec.type == "shared":
                if p not in params:
                    raise ParameterError(f"notebook {nb!r} shares the parameters of notebook {p!r}, which is not "
                                         f"in the book ({notebooks})")
                params[nb][p] = copy.deepcopy(params[p])
    return Profile(name=name, description=raw.get("description", ""), params=params, schema=schema,
                   notice=raw.get("notice", ""), standins=raw.get("standins", ""), environment=raw["environment"])


def _expand_sets(value: Any, spec: ParamSpec, sets: dict[str, list[str]], where: str) -> Any:
    """``"@<set>"`` items of a model list replaced by the profile's named collection (in place, in order)."""
    if spec.meaning not in MODEL_LISTS or not isinstance(value, list):
        return value
    out = []
    for item in value:
        if isinstance(item, str) and item.startswith("@"):
            if item[1:] not in sets:
                raise ParameterError(f"{where}: unknown model set {item!r}; the profile's model_sets: "
                                     f"{sorted('@' + k for k in sets) or 'none'}")
            out.extend(sets[item[1:]])
        else:
            out.append(item)
    return out
