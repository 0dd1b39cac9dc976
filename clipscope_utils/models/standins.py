"""Random-weight stand-ins for paper A's models, written where the real loading path looks for the real ones.

No pretrained weights can be downloaded on some machines. A *rehearsal* still runs every line of the real
loading path of the book's ``paper`` profile: :func:`build_standins` writes random weights of the real
architectures (seeded, real shapes) where open_clip and :func:`~clipscope_utils.models.load_model` find them
offline, plus the tokenizer and text-tower files some towers take from the Hugging Face hub. Results computed
with stand-ins are meaningless; what a rehearsal shows is that loading, tokenising, embedding and everything
after run end to end, and how long they take.

What is written under ``<out>`` (``HF_HOME=<out>/hf``):

``hf/hub/models--<org>--<name>/snapshots/<rev>/open_clip_model.safetensors``
    one per pretrained tag (the repo of ``open_clip.get_pretrained_cfg(arch, tag)["hf_hub"]``), in the Hugging
    Face hub cache layout with ``refs/main`` holding ``<rev>``, a fixed fake revision;
``hf/hub/models--timm--ViT-B-16-SigLIP/snapshots/<rev>/tokenizer.json`` (+ ``tokenizer_config.json``,
``config.json``)
    SigLIP's tokenizer, read by ``transformers.AutoTokenizer`` through open_clip's ``HFTokenizer``;
``hf/hub/models--xlm-roberta-base/snapshots/<rev>/``
    CLIP Roberta's text tower: ``config.json`` (a real-shaped ``XLMRobertaConfig``, read by ``AutoConfig``) and
    a tokenizer with XLM-R's special tokens (``<pad>`` = 1 = the config's ``pad_token_id``);
``weights/negclip.pth``, ``weights/sugarcrepe.pt``
    local checkpoints as ``open_clip_train`` writes them (``{"epoch", "name", "state_dict"}`` with
    ``module.`` prefixes), found through ``$CLIPSCOPE_WEIGHTS``;
``laion/epoch_<k>.pt``
    stand-ins for LAION's scaling-laws epochs as local files (``SAMPLES=ViT-B-32@<out>/laion/epoch_<k>.pt``);
``hf/hub/models--laion--scaling-laws-openclip/snapshots/<rev>/full_checkpoints/<run>/epoch_<K>.pt``
    the same epochs where the real ones are on the hub (``scaling_epochs``; loaded as
    ``SAMPLES=ViT-B-32@hf://laion/scaling-laws-openclip/full_checkpoints/<run>/epoch_<K>.pt``), one random state
    for all of them (hard links: the disk of one ViT-B-32 checkpoint);
``STANDINS.md``, ``manifest.json``
    what this is, and the cache key (models, seed, dtype, corpus, package versions) written last.

The tokenizers are small (a BPE model trained with the ``tokenizers`` library on a fixed corpus of scene
captions and class names plus any ``texts`` given); their ids stay below the vocabulary of the embedding tables.
SimCSE is never stood in: the book handles its absence.

``python -m clipscope_utils.models.standins --out DIR [--check]`` builds them (cached) and prints the
environment a run needs; ``--check`` then loads every model in a child process with that environment and
embeds 16 images and 16 texts, with timings.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from open_clip.constants import HF_SAFE_WEIGHTS_NAME
from PIL import Image
from safetensors.torch import save as safetensors_bytes

from ..datasets.tables import atomic_folder
from ..paths import atomic_write, data_file
from ..versions import package_versions
from .base import WEIGHTS_ENV, ModelError
from .registry import PAPER_MODELS, load_model, quiet_open_clip

#: bump when what is written changes, so cached stand-ins are rebuilt
FORMAT = 1
DEFAULT_SEED = 0
#: the seven CLIPs of paper A's tables (CLIP-CAE, paper B's, can be asked for by name)
PAPER_CLIPS = ("CLIP openAI", "CLIP LAION", "CLIP Datacomp", "CLIP Roberta", "SIGLIP", "NegCLIP", "SugarCrepe")
#: LAION scaling-laws stand-ins: architecture, epochs, nominal samples seen per epoch (for SAMPLES=... names)
LAION_ARCH = "ViT-B-32"
LAION_EPOCHS = (1, 2, 3)
LAION_SAMPLES_PER_EPOCH = 1_000_000_000
#: LAION's scaling-laws OpenCLIP release on the Hugging Face hub, which paper A's Fig. 4c most likely used: run
#: Model-B-32_Data-2B_Samples-13B, one checkpoint per 200M samples (epochs 10/20/30/40/50 = 2/4/6/8/10 B samples).
#: Paper A does not say which run of it; lr-5e-4_bs-32k is assumed (a sibling run ..._lr-1e-3_bs-86k may exist).
SCALING_REPO = "laion/scaling-laws-openclip"
SCALING_RUN = "full_checkpoints/Model-B-32_Data-2B_Samples-13B_lr-5e-4_bs-32k"
SCALING_SAMPLES_PER_EPOCH = 200_000_000
MANIFEST = "manifest.json"
VERSIONED = ("open_clip_torch", "torch", "transformers", "tokenizers", "safetensors", "timm", "huggingface_hub")
STANDIN_NOTE = "clipscope random-weight stand-in: not pretrained, results are meaningless"

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}

#: the Hugging Face repos whose tokenizer (and text-tower config) open_clip reads, and how to stand them in
_XLMR_CONFIG = {
    "architectures": ["XLMRobertaForMaskedLM"], "model_type": "xlm-roberta", "vocab_size": 250002,
    "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
    "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 514, "type_vocab_size": 1, "initializer_range": 0.02, "layer_norm_eps": 1e-05,
    "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "position_embedding_type": "absolute",
}
_HF_TEXT = {
    # SigLIP (T5-style sentencepiece as timm ships it: pad = eos = "</s>", each text ends with "</s>"); the
    # config.json is timm's, without a model_type, as in the real repo
    "timm/ViT-B-16-SigLIP": dict(
        specials=("<pad>", "</s>", "<unk>"), template="$A </s>", unk="<unk>", pad="</s>", bos=None, eos="</s>",
        mask=None, max_length=64,
        config={"architecture": "vit_base_patch16_siglip_224", "num_classes": 0, "num_features": 768,
                "global_pool": "map", "note": STANDIN_NOTE}),
    # XLM-RoBERTa base: <s> = 0, <pad> = 1, </s> = 2, <unk> = 3 as in the real sentencepiece vocabulary
    "xlm-roberta-base": dict(
        specials=("<s>", "<pad>", "</s>", "<unk>", "<mask>"), template="<s> $A </s>", unk="<unk>", pad="<pad>",
        bos="<s>", eos="</s>", mask="<mask>", max_length=512, config=_XLMR_CONFIG),
}
TOKENIZER_VOCAB = 4000

_COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "black", "white", "gray", "brown", "pink")
_SHAPES = ("cube", "sphere", "cone", "cylinder", "square", "circle", "triangle", "star", "heart", "ring")
_RELATIONS = ("to the left of", "to the right of", "above", "below", "next to", "behind", "in front of", "on",
              "under", "near")
_SIZES = ("small", "large", "big", "tiny", "medium")


# --------------------------------------------------------------------------------------------------
# hub cache layout
# --------------------------------------------------------------------------------------------------


def fake_revision(repo: str, seed: int) -> str:
    """A fixed 40-hex revision for a stand-in repo (derived from the repo, the seed and :data:`FORMAT`)."""
    return hashlib.sha1(f"clipscope-standin|{repo}|seed={seed}|format={FORMAT}".encode()).hexdigest()


def hub_snapshot(hub_cache: str | os.PathLike, repo: str, seed: int = DEFAULT_SEED) -> Path:
    """The snapshot folder of ``repo`` in a hub cache, made if needed: ``models--<org>--<name>/snapshots/<rev>``
    with ``refs/main`` holding ``<rev>`` (the revision already there if the repo has one)."""
    repo_dir = Path(hub_cache) / ("models--" + repo.replace("/", "--"))
    ref = repo_dir / "refs" / "main"
    rev = ref.read_text().strip() if ref.is_file() else ""
    if not rev:
        rev = fake_revision(repo, seed)
        atomic_write(ref, lambda f: f.write(rev.encode()))
    snapshot = repo_dir / "snapshots" / rev
    snapshot.mkdir(parents=True, exist_ok=True)
    return snapshot


def hub_weights_location(arch: str, tag: str) -> tuple[str, str]:
    """The hub repo and the weights file name the registry (and open_clip) look for first for a pretrained tag."""
    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not cfg or not cfg.get("hf_hub"):
        raise ModelError(f"no stand-in for ({arch!r}, {tag!r}): it is not a pretrained tag of open_clip "
                         f"{open_clip.__version__} with a Hugging Face hub repo (see open_clip.list_pretrained()).")
    repo, filename = os.path.split(cfg["hf_hub"])
    if not filename:
        return repo, HF_SAFE_WEIGHTS_NAME
    if filename.endswith((".bin", ".pth")):
        return repo, filename[:-4] + ".safetensors"
    return repo, filename


# --------------------------------------------------------------------------------------------------
# weights
# --------------------------------------------------------------------------------------------------


def _dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return _DTYPES[dtype]
    except KeyError:
        raise ModelError(f"stand-in dtype {dtype!r}: expected one of {', '.join(_DTYPES)}") from None


def derived_seed(seed: int, *labels: Any) -> int:
    """A seed for one stand-in of a build (models of one architecture get different weights)."""
    digest = hashlib.sha256(json.dumps([int(seed), *map(str, labels)]).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def random_model(arch: str, seed: int = DEFAULT_SEED) -> torch.nn.Module:
    """The open_clip model ``arch`` with seeded random weights (no pretrained tower is loaded; a Hugging Face
    text tower is built from the stand-in config of its repo, never read from the hub)."""
    if arch not in open_clip.list_models():
        raise ModelError(f"no stand-in for {arch!r}: not an open_clip architecture.")
    text_cfg = dict((open_clip.get_model_config(arch) or {}).get("text_cfg", {}))
    with tempfile.TemporaryDirectory(prefix="clipscope-standin-") as tmp:
        kwargs: dict[str, Any] = dict(pretrained=None, pretrained_image=False, pretrained_text=False)
        if text_cfg.get("hf_model_name"):
            recipe = _hf_recipe(text_cfg["hf_model_name"])
            (Path(tmp) / "config.json").write_text(json.dumps(recipe["config"]))
            kwargs["text_cfg"] = {**text_cfg, "hf_model_name": tmp, "hf_model_pretrained": False}
        with quiet_open_clip(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = open_clip.create_model(arch, **kwargs)
    return model.eval()


def standin_state_dict(arch: str, seed: int = DEFAULT_SEED, dtype: str | torch.dtype = "float16"
                       ) -> dict[str, torch.Tensor]:
    """The state dict of :func:`random_model`, floating tensors cast to ``dtype`` (each its own storage)."""
    target = _dtype(dtype)
    return {k: (v.to(target) if v.is_floating_point() else v).detach().clone().contiguous()
            for k, v in random_model(arch, seed).state_dict().items()}


def write_hub_weights(hub_cache: str | os.PathLike, arch: str, tag: str, seed: int = DEFAULT_SEED,
                      dtype: str | torch.dtype = "float16") -> Path:
    """Random weights of ``arch`` saved as the hub file of pretrained tag ``tag`` in ``hub_cache`` (what
    ``try_to_load_from_cache`` finds with ``HF_HUB_OFFLINE=1``); returns the file. open_clip loads float16
    tensors into its float32 model (``load_state_dict`` casts)."""
    repo, filename = hub_weights_location(arch, tag)
    state = standin_state_dict(arch, seed, dtype)
    blob = safetensors_bytes(state, metadata={"format": "pt", "clipscope": STANDIN_NOTE, "arch": arch,
                                               "tag": tag, "seed": str(seed)})
    target = hub_snapshot(hub_cache, repo, seed) / filename
    atomic_write(target, lambda f: f.write(blob))
    return target


def _save_training_checkpoint(path: Path, state: dict[str, torch.Tensor], epoch: int, name: str) -> Path:
    """``{"epoch", "name", "state_dict"}`` with DDP's ``module.`` prefixes, as ``open_clip_train`` saves (its
    optimizer state is left out: open_clip's ``load_checkpoint`` never reads it)."""
    payload = {"epoch": int(epoch), "name": name,
               "state_dict": {f"module.{k}": v for k, v in state.items()}}
    atomic_write(Path(path), lambda f: torch.save(payload, f))
    return Path(path)


def write_checkpoint(path: str | os.PathLike, arch: str, seed: int = DEFAULT_SEED,
                     dtype: str | torch.dtype = "float16", epoch: int = 1) -> Path:
    """A local checkpoint file as the paper's fine-tunes ship (NegCLIP's ``negclip.pth``, SugarCrepe's
    ``sugarcrepe.pt``), in ``open_clip_train``'s form; returns the path."""
    return _save_training_checkpoint(Path(path), standin_state_dict(arch, seed, dtype), epoch,
                                     f"clipscope-standin-{arch}-seed{seed}")


def _epoch_numbers(epochs: int | Sequence[int]) -> list[int]:
    """A count (1..n) or the epoch numbers, checked: distinct numbers >= 1."""
    numbers = list(range(1, int(epochs) + 1)) if isinstance(epochs, int) else [int(e) for e in epochs]
    if any(e < 1 for e in numbers) or len(set(numbers)) != len(numbers):
        raise ModelError(f"epoch stand-ins: epochs must be distinct numbers >= 1, got {numbers}")
    return numbers


def write_epoch_checkpoints(folder: str | os.PathLike, arch: str = LAION_ARCH,
                            epochs: int | Sequence[int] = LAION_EPOCHS, seed: int = DEFAULT_SEED,
                            dtype: str | torch.dtype = "float16") -> list[Path]:
    """``epoch_<k>.pt`` files in ``open_clip_train``'s form (stand-ins for LAION's scaling-laws checkpoints,
    loaded as ``<ARCH>@<folder>/epoch_<k>.pt``); ``epochs``: a count (1..n) or the epoch numbers."""
    numbers = _epoch_numbers(epochs)
    out = []
    for k in numbers:
        state = standin_state_dict(arch, derived_seed(seed, "epoch", arch, k), dtype)
        out.append(_save_training_checkpoint(Path(folder) / f"epoch_{k}.pt", state, k,
                                             f"clipscope-standin-{arch}-seed{seed}"))
    return out


def hub_checkpoint_name(arch: str, repo: str, run: str, epoch: int) -> str:
    """The model name of one hub epoch file: ``<ARCH>@hf://<repo>/<run>/epoch_<K>.pt``."""
    return f"{arch}@hf://{repo}/{run.strip('/')}/epoch_{int(epoch)}.pt"


def write_hub_checkpoints(hub_cache: str | os.PathLike, epochs: int | Sequence[int], arch: str = LAION_ARCH,
                          repo: str = SCALING_REPO, run: str = SCALING_RUN, seed: int = DEFAULT_SEED,
                          dtype: str | torch.dtype = "float16") -> list[Path]:
    """``<run>/epoch_<K>.pt`` files in ``open_clip_train``'s form inside the hub snapshot of model repo ``repo``
    (by default stand-ins for LAION's scaling-laws checkpoints, loaded as :func:`hub_checkpoint_name`).

    One random state for every epoch: the first file is written, the others are hard links to it (copies where
    the file system has no hard links), so any number of epochs costs the disk and time of one checkpoint. Its
    ``"epoch"`` field is the first epoch's (open_clip's ``load_checkpoint`` never reads it).
    """
    numbers = _epoch_numbers(epochs)
    if not numbers:
        return []
    folder = hub_snapshot(hub_cache, repo, seed) / run.strip("/")
    state = standin_state_dict(arch, derived_seed(seed, "hub", repo, run, arch), dtype)
    first = _save_training_checkpoint(folder / f"epoch_{numbers[0]}.pt", state, numbers[0],
                                      f"clipscope-standin-{arch}-seed{seed}")
    del state
    out = [first]
    for k in numbers[1:]:
        target = folder / f"epoch_{k}.pt"
        tmp = folder / f".{target.name}.link"
        tmp.unlink(missing_ok=True)
        try:
            os.link(first, tmp)
        except OSError:  # no hard links here: a copy
            shutil.copyfile(first, tmp)
        os.replace(tmp, target)
        out.append(target)
    return out


# --------------------------------------------------------------------------------------------------
# tokenizers and text-tower configs
# --------------------------------------------------------------------------------------------------


def default_corpus() -> list[str]:
    """The fixed corpus the stand-in tokenizers learn from: ComCO class names and scene captions."""
    with open(data_file("comco_classes.csv"), newline="") as f:
        classes = [row["class_name"] for row in csv.DictReader(f)]
    words = list(classes) + list(_SHAPES)
    texts = [f"a photo of a {c}." for c in words]
    for i, c in enumerate(words):
        other = words[(i * 7 + 3) % len(words)]
        colour, colour2 = _COLOURS[i % len(_COLOURS)], _COLOURS[(i + 4) % len(_COLOURS)]
        relation, size = _RELATIONS[i % len(_RELATIONS)], _SIZES[i % len(_SIZES)]
        texts += [f"A {colour} {c} and a {colour2} {other}", f"a {size} {c} {relation} a {other}",
                  f"There are {i % 5 + 2} objects: a {c}, a {other}."]
    return texts


def _hf_recipe(repo: str) -> dict:
    try:
        return _HF_TEXT[repo]
    except KeyError:
        raise ModelError(f"no stand-in for the Hugging Face tokenizer/text tower {repo!r}; stand-ins exist for "
                         f"{', '.join(_HF_TEXT)}.") from None


def hf_text_repos(arch: str) -> list[str]:
    """The Hugging Face repos an open_clip architecture reads its tokenizer or text-tower config from."""
    text_cfg = (open_clip.get_model_config(arch) or {}).get("text_cfg", {})
    return sorted({text_cfg[k] for k in ("hf_tokenizer_name", "hf_model_name") if text_cfg.get(k)})


def _vocab_limit(repo: str) -> int:
    """The size of the embedding table the tokenizer's ids index (the open_clip or Hugging Face config's)."""
    limits = [int(_HF_TEXT[repo]["config"].get("vocab_size") or 0)]
    for arch in open_clip.list_models():
        text_cfg = (open_clip.get_model_config(arch) or {}).get("text_cfg", {})
        if text_cfg.get("hf_tokenizer_name") == repo and not text_cfg.get("hf_model_name"):
            limits.append(int(text_cfg.get("vocab_size") or 0))
    return min(v for v in limits if v > 0)


def build_tokenizer(repo: str, texts: Iterable[str] | None = None, vocab_size: int = TOKENIZER_VOCAB):
    """A small ``PreTrainedTokenizerFast`` with the special tokens of ``repo``'s tokenizer, trained with the
    ``tokenizers`` library (BPE over sentencepiece-style ``▁`` words) on :func:`default_corpus` plus ``texts``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    recipe = _hf_recipe(repo)
    corpus = default_corpus() + [str(t) for t in (texts or ())]
    tok = Tokenizer(models.BPE(unk_token=recipe["unk"]))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    alphabet = sorted(set(string.ascii_letters + string.digits + string.punctuation))
    trainer = trainers.BpeTrainer(vocab_size=min(vocab_size, _vocab_limit(repo)),
                                  special_tokens=list(recipe["specials"]), initial_alphabet=alphabet,
                                  show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    ids = {t: tok.token_to_id(t) for t in recipe["specials"]}
    tok.post_processor = processors.TemplateProcessing(
        single=recipe["template"], special_tokens=[(t, i) for t, i in ids.items() if t in recipe["template"]])
    if tok.get_vocab_size() > _vocab_limit(repo):
        raise ModelError(f"stand-in tokenizer for {repo!r}: {tok.get_vocab_size()} tokens exceed the embedding "
                         f"table ({_vocab_limit(repo)})")
    specials = {k: recipe[k] for k in ("unk", "pad", "bos", "eos", "mask") if recipe[k]}
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=recipe["max_length"],
                                   **{f"{k}_token": v for k, v in specials.items()})


def write_hf_text_files(hub_cache: str | os.PathLike, repo: str, texts: Iterable[str] | None = None,
                        seed: int = DEFAULT_SEED) -> Path:
    """The tokenizer (``PreTrainedTokenizerFast.save_pretrained``) and ``config.json`` of a Hugging Face repo
    open_clip reads (``timm/ViT-B-16-SigLIP``, ``xlm-roberta-base``), in its hub snapshot; returns the folder."""
    recipe = _hf_recipe(repo)
    tokenizer = build_tokenizer(repo, texts)
    snapshot = hub_snapshot(hub_cache, repo, seed)
    with tempfile.TemporaryDirectory(dir=snapshot, prefix=".tokenizer-") as tmp:
        tokenizer.save_pretrained(tmp)
        for written in Path(tmp).iterdir():
            os.replace(written, snapshot / written.name)
    config = json.dumps(recipe["config"], indent=2).encode()
    atomic_write(snapshot / "config.json", lambda f: f.write(config))
    return snapshot


# --------------------------------------------------------------------------------------------------
# a whole build
# --------------------------------------------------------------------------------------------------


def _paper_rows(models: Sequence[str]) -> list[dict[str, str]]:
    """The PAPER_MODELS rows of ``models`` (paper names; case, spaces and hyphens do not matter), checked."""
    by_key = {"".join(r["name"].lower().replace("-", " ").replace("_", " ").split()): r for r in PAPER_MODELS}
    rows = []
    for name in models:
        row = by_key.get("".join(str(name).lower().replace("-", " ").replace("_", " ").split()))
        if row is None:
            raise ModelError(f"no stand-in for {name!r}: stand-ins exist for the paper's CLIP models "
                             f"({', '.join(PAPER_CLIPS)}, CLIP-CAE).")
        if row["source"] == "text":
            raise ModelError(f"no stand-in for {row['name']!r}: text baselines are not stood in (SBERT and GloVe "
                             "ship as packages; the book runs without SimCSE when it is absent).")
        if row not in rows:
            rows.append(row)
    return rows


def standin_env(out: str | os.PathLike) -> dict[str, str]:
    """The environment a run needs to load the stand-ins under ``out`` (set it before Python starts: the Hugging
    Face libraries read ``HF_HOME``/``HF_HUB_CACHE``/``HF_HUB_OFFLINE`` when imported)."""
    out = Path(out).resolve()
    return {"HF_HOME": str(out / "hf"), "HF_HUB_CACHE": str(out / "hf" / "hub"), "HF_HUB_OFFLINE": "1",
            WEIGHTS_ENV: str(out / "weights")}


def _key(rows, seed, dtype, epochs, texts, scaling_epochs) -> dict[str, Any]:
    corpus = default_corpus() + [str(t) for t in (texts or ())]
    return {"format": FORMAT, "models": [r["name"] for r in rows], "seed": int(seed), "dtype": str(dtype),
            "laion_epochs": list(epochs), "laion_arch": LAION_ARCH,
            "scaling_epochs": list(scaling_epochs), "scaling_run": f"{SCALING_REPO}/{SCALING_RUN}",
            "corpus_sha256": hashlib.sha256(json.dumps(corpus).encode()).hexdigest(),
            "versions": package_versions(VERSIONED)}


def read_manifest(out: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest of a finished build under ``out`` (None when there is none)."""
    try:
        return json.loads((Path(out) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def _readme(manifest: dict[str, Any]) -> str:
    lines = ["# Random-weight stand-ins (clipscope)", "",
             "Every file here holds **random weights** of the real architectures, written by",
             "`python -m clipscope_utils.models.standins`. They are not pretrained and any result computed with",
             "them is meaningless. They exist so that a rehearsal runs every line of the real loading path",
             "(open_clip's pretrained tags from the Hugging Face hub cache, local checkpoints, hub tokenizers)",
             "on a machine that cannot download the real weights.", "",
             "Environment a run needs (set before Python starts):", "", "```"]
    lines += [f"export {k}={v}" for k, v in manifest["env"].items()]
    lines += ["```", "", "| model | stand-in | file |", "|---|---|---|"]
    lines += [f"| {m['name']} | {m['what']} | `{m['file']}` |" for m in manifest["models"]]
    if manifest["external"]:
        lines += ["", "LAION scaling-laws epoch stand-ins (progression chapter, `external:`; the local files' sample "
                  "counts are nominal, the `hf://` ones' are the real run's; the `hf://` epochs share one random "
                  "state, hard-linked):", ""] + [f"- `{e}`" for e in manifest["external"]]
    lines += ["", "SimCSE is not stood in (the book runs without it when it is absent).", ""]
    return "\n".join(lines)


def _write_all(tmp: Path, out: Path, rows, seed, dtype, epochs, texts, scaling_epochs) -> dict[str, Any]:
    hub = tmp / "hf" / "hub"
    entries, repos_done = [], set()
    for row in rows:
        arch, seed_i = row["architecture"], derived_seed(seed, row["name"])
        if row["source"] == "open_clip":
            path = write_hub_weights(hub, arch, row["pretrained"], seed_i, dtype)
            what = f"open_clip ('{arch}', '{row['pretrained']}') hub weights, seed {seed_i}, {dtype}"
            for repo in hf_text_repos(arch):
                if repo not in repos_done:
                    write_hf_text_files(hub, repo, texts, seed)
                    repos_done.add(repo)
                    what += f"; {repo} tokenizer" + (" + config" if "model_type" in _HF_TEXT[repo]["config"] else "")
        else:
            path = write_checkpoint(tmp / "weights" / row["pretrained"], arch, seed_i, dtype)
            what = f"local checkpoint of '{arch}' (open_clip_train form), seed {seed_i}, {dtype}"
        entries.append({"name": row["name"], "arch": arch, "pretrained": row["pretrained"], "seed": seed_i,
                        "what": what, "file": str(out / path.relative_to(tmp)), "bytes": path.stat().st_size})
    external = []
    for path in write_epoch_checkpoints(tmp / "laion", LAION_ARCH, epochs, seed, dtype) if epochs else []:
        k = int(path.stem.split("_")[1])
        external.append(f"{k * LAION_SAMPLES_PER_EPOCH}={LAION_ARCH}@{out / path.relative_to(tmp)}")
    if scaling_epochs:
        write_hub_checkpoints(hub, scaling_epochs, LAION_ARCH, SCALING_REPO, SCALING_RUN, seed, dtype)
        external += [f"{k * SCALING_SAMPLES_PER_EPOCH}={hub_checkpoint_name(LAION_ARCH, SCALING_REPO, SCALING_RUN, k)}"
                     for k in scaling_epochs]
    return {"models": entries, "external": external}


def build_standins(out: str | os.PathLike, models: Sequence[str] = PAPER_CLIPS, seed: int = DEFAULT_SEED,
                   texts: Iterable[str] | None = None, dtype: str = "float16",
                   epochs: Sequence[int] | int = LAION_EPOCHS,
                   scaling_epochs: Sequence[int] = ()) -> dict[str, str]:
    """Write random-weight stand-ins of the paper's CLIPs ``models`` under ``out`` and return the environment a
    run needs (``HF_HOME``, ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE=1``, ``CLIPSCOPE_WEIGHTS``).

    ``epochs``: LAION epoch stand-ins as local files (``laion/epoch_<k>.pt``); ``scaling_epochs``: the same as the
    hub files of LAION's scaling-laws run (:func:`write_hub_checkpoints`, one shared random state), listed with
    the others in the manifest's ``external`` as ``SAMPLES=ViT-B-32@hf://...`` names.

    Cached: when ``out/manifest.json`` holds the same key (models, seed, dtype, epochs, tokenizer corpus,
    package versions) nothing is written. Atomic: everything is written into a temporary sibling folder that
    replaces ``out`` at the end, manifest last, so an interrupted build leaves no half folder behind.
    """
    out = Path(out).expanduser().resolve()
    rows = _paper_rows(models)  # every name checked before any work
    epochs = tuple(range(1, int(epochs) + 1)) if isinstance(epochs, int) else tuple(int(e) for e in epochs)
    scaling_epochs = tuple(_epoch_numbers(list(scaling_epochs))) if scaling_epochs else ()
    texts = [str(t) for t in (texts or ())]
    _dtype(dtype)
    key = _key(rows, seed, dtype, epochs, texts, scaling_epochs)
    env = standin_env(out)
    manifest = read_manifest(out)
    if manifest and manifest.get("key") == key:
        return env
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not manifest)):
        raise ModelError(f"stand-ins: {str(out)!r} exists and is not a stand-in folder (no {MANIFEST}); it would "
                         "be replaced. Name a new or empty folder, or a folder of earlier stand-ins.")
    with atomic_folder(out, overwrite=True) as tmp:
        start = time.perf_counter()
        written = _write_all(tmp, out, rows, seed, dtype, epochs, texts, scaling_epochs)
        files = {(st.st_dev, st.st_ino): st.st_size for st in (f.stat() for f in tmp.rglob("*") if f.is_file())}
        manifest = {"key": key, "env": env, "note": STANDIN_NOTE, **written,
                    "bytes": sum(files.values()),  # a hard-linked file once
                    "build_seconds": round(time.perf_counter() - start, 1)}
        (tmp / "STANDINS.md").write_text(_readme(manifest))
        payload = json.dumps(manifest, indent=2).encode()
        atomic_write(tmp / MANIFEST, lambda f: f.write(payload))
    return env


# --------------------------------------------------------------------------------------------------
# rehearsal check and command line
# --------------------------------------------------------------------------------------------------


def embed_check(names: Sequence[str], n: int = 16, device: str = "cpu") -> list[dict[str, Any]]:
    """Load each model (in this process, with the environment as it is) and embed ``n`` random 224-px images
    through its preprocessing and ``n`` captions; timings and whether the embeddings are finite."""
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)) for _ in range(n)]
    captions = default_corpus()[:n]
    rows = []
    for name in names:
        start = time.perf_counter()
        enc = load_model(name, device=device)
        loaded = time.perf_counter()
        feats_i = enc.encode_images(torch.stack([enc.preprocess(im) for im in images]))
        imaged = time.perf_counter()
        feats_t = enc.encode_texts(captions)
        texted = time.perf_counter()
        rows.append({"name": name, "load_s": round(loaded - start, 2), "images_s": round(imaged - loaded, 2),
                     "texts_s": round(texted - imaged, 2), "dim": int(feats_t.shape[1]),
                     "finite": bool(torch.isfinite(feats_i).all() and torch.isfinite(feats_t).all())})
        del enc
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clipscope_utils.models.standins",
                                     description="Write random-weight stand-ins of paper A's CLIPs where the real "
                                                 "loading path looks for them (results are meaningless).")
    parser.add_argument("--out", required=True, help="folder to write (HF_HOME = <out>/hf)")
    parser.add_argument("--models", nargs="*", default=list(PAPER_CLIPS), help="paper model names")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--dtype", default="float16", choices=sorted(_DTYPES))
    parser.add_argument("--epochs", type=int, default=len(LAION_EPOCHS), help="LAION epoch stand-ins (0: none)")
    parser.add_argument("--scaling-epochs", type=int, nargs="*", default=[], metavar="K",
                        help=f"epochs of LAION's scaling-laws run to stand in as hub files of {SCALING_REPO} "
                             "(e.g. 10 20 30 40 50; one shared random state)")
    parser.add_argument("--texts", help="a text file of extra captions for the tokenizers, one a line")
    parser.add_argument("--check", action="store_true",
                        help="then load every model with the environment set and embed 16 images and 16 texts")
    parser.add_argument("--embed-check", nargs="*", metavar="NAME", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.embed_check is not None:  # the child of --check, started with the environment set
        print(json.dumps(embed_check(args.embed_check)))
        return 0
    texts = Path(args.texts).read_text().splitlines() if args.texts else None
    start = time.perf_counter()
    try:
        env = build_standins(args.out, args.models, args.seed, texts, args.dtype, args.epochs, args.scaling_epochs)
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    manifest = read_manifest(args.out) or {}
    print(f"stand-ins in {args.out} ({manifest.get('bytes', 0) / 2**30:.2f} GiB; "
          f"{time.perf_counter() - start:.1f} s now, {manifest.get('build_seconds', '?')} s when built)")
    print(STANDIN_NOTE)
    for k, v in env.items():
        print(f"export {k}={v}")
    for entry in manifest.get("external", []):
        print(f"external: {entry}")
    if args.check:
        names = [m["name"] for m in manifest.get("models", [])]
        child = [sys.executable, "-m", "clipscope_utils.models.standins", "--out", args.out, "--embed-check", *names]
        result = subprocess.run(child, env={**os.environ, **env}, capture_output=True, text=True)
        if result.returncode:
            print(result.stdout + result.stderr, file=sys.stderr)
            return result.returncode
        for row in json.loads(result.stdout.strip().splitlines()[-1]):
            print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
