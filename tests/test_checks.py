"""`book check` and the build's up-front check: every model, device and data folder of every chapter is resolved
before the first notebook runs, on the book's own profiles."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from clipscope_utils.book import runner
from clipscope_utils.book.checks import check_profile, problems
from clipscope_utils.book.profiles import ParameterError, load_profile

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = runner.toc_notebooks(ROOT)


def checked(profile: str, *overrides: str):
    return check_profile(load_profile(ROOT / "profiles", profile, NOTEBOOKS, list(overrides)))


@pytest.mark.parametrize("profile", ["smoke", "default", "gpu"])
def test_the_offline_profiles_pass(profile: str) -> None:
    assert problems(checked(profile)) == []


def test_paper_profile_names_every_real_input_and_says_how_to_get_it(monkeypatch, tmp_path) -> None:
    """Offline the paper's weights and data are absent: every model name still resolves (nothing is loaded), and
    each missing real input is one problem naming its chapter, parameter and where to get it."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the LAION epochs are hub files: never downloaded here
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))  # an empty cache, whatever this machine holds
    chapters = {c.notebook: c for c in checked("paper")}
    text = "\n".join(m for _, m in chapters["image_probes"].models)
    assert "ViT-B-32-quickgelu', 'openai'" in text and "random:ViT-B-32-quickgelu:0" in text
    found = problems(list(chapters.values()))
    assert found and all("real/" in p or "not in the Hugging Face cache" in p for p in found), found
    wanted = {("text_probes", "sources", "clip-oscope/simco-comco"), ("text_probes", "domainnet_root", "DomainNet"),
              ("image_probes", "sources", "cocodataset.org"), ("matching", "rephrased_captions", "JSON"),
              ("progression", "external", "laion/scaling-laws-openclip"), ("origin", "coco_root", "")}
    for notebook, parameter, hint in wanted:
        assert any(f"'{notebook}', parameter '{parameter}'" in p and hint in p for p in found), (notebook, found)
    optional = [m for _, m in chapters["text_probes"].models if m.startswith("SimCSE")]
    assert optional  # "simcse?" resolves; its absence is a note in the chapter, not a problem here


def test_gpu_probe_chapters_use_the_pretraining_chapters_training() -> None:
    chapters = {c.notebook: c for c in checked("gpu")}
    pretraining = chapters["pretraining"].trained
    assert "400000 samples" in pretraining["trained:largest_first:0"]
    for name in ("text_probes", "image_probes", "matching", "attention", "cae"):
        for model, cfg in chapters[name].trained.items():
            assert cfg == pretraining[model] if model in pretraining else "400000 samples" in cfg
    assert chapters["cae"].trained["trained:largest_first:0"] == pretraining["trained:largest_first:0"]


@pytest.mark.parametrize("override, parameter, message", [
    ("cae.base=trained:largest_frist", "base", "order one of"),
    ("text_probes.models=[glove, 'CLIP Laoin']", "models", "Close matches: 'CLIP LAION'"),
    ("attention.models=[sbert]", "models", "text-only"),
    ("cae.base=glove", "base", "text-only"),
    ("dataset.official_root=/nonexistent", "official_root", "does not exist"),
    ("origin.coco_root=/nonexistent", "coco_root", "is missing"),
    ("cae.winoground_root=/nonexistent", "winoground_root", "does not exist"),
    ("cae.sugarcrepe_root=/tmp", "sugarcrepe_root", "needs its image folder"),
    ("cae.vl_checklist_root=/tmp", "vl_checklist_root", "VL-CheckList"),
    ("cae.comvg_root=/nonexistent", "comvg_root", "ComVG"),
    ("cae.coco_karpathy=/nonexistent/dataset_coco.json", "coco_karpathy", "missing"),
    ("cae.vg_vocabulary=/nonexistent.json", "vg_vocabulary", "missing"),
    ("cae.warmup=5", "epochs", "not shorter than training"),
    ("cae.sweep_lambda=[attention]", "epochs", "sweep_lambda item 'attention'"),
    ("cae.classes=[unicorn]", "epochs", "unicorn"),
    ("progression.external=[5=ViT-B-32@/no/such.pt]", "external", "does not exist"),
    ("pretraining.model=clipscope-huge", "pretraining", "clipscope-huge"),
    ("origin.long_samples=256", "long_samples", "must exceed the pretraining runs' samples (512)"),
    ("origin.cure_samples=8", "cure_samples", "must be at least one batch"),
])
def test_a_bad_value_names_notebook_parameter_and_what_is_allowed(override, parameter, message) -> None:
    found = problems(checked("smoke", override))
    assert len(found) >= 1
    notebook = override.split(".")[0]
    assert all(f"notebook '{notebook}'" in p or "pretraining" in p for p in found)
    assert any(parameter in p and message in p for p in found), found


@pytest.mark.skipif(torch.cuda.is_available(), reason="cuda is available here")
def test_cuda_without_a_gpu_is_refused() -> None:
    found = problems(checked("smoke", "text_probes.device=cuda"))
    assert found and "'text_probes', parameter 'device'" in found[0] and "no CUDA GPU" in found[0]


def test_model_sets_expand_and_unknown_sets_are_named() -> None:
    params = load_profile(ROOT / "profiles", "default", NOTEBOOKS).params
    assert params["matching"]["models"] == ["random:clipscope-small", "trained:largest_first", "trained:shuffled",
                                            "trained:largest_last"]
    with pytest.raises(ParameterError, match="unknown model set '@nope'.*@self_trained"):
        load_profile(ROOT / "profiles", "default", NOTEBOOKS, ["matching.models=['@nope']"])
    with pytest.raises(ParameterError, match="shared by the runner: set pretraining.<parameter>"):
        load_profile(ROOT / "profiles", "smoke", NOTEBOOKS, ["cae.pretraining={samples: 5}"])


def test_build_stops_before_the_first_notebook(monkeypatch) -> None:
    """A typo in the last chapter costs the check, not the chapters before it."""
    ran = []
    monkeypatch.setattr(runner, "execute_notebook", lambda *a, **k: ran.append(a) or 0.0)
    with pytest.raises(runner.BuildError, match=r"(?s)nothing was executed.*'cae', parameter 'base'"):
        runner.build(ROOT, "smoke", ["cae.base=trained:largest_frist"], html=False)
    assert ran == []


def test_check_command_executes_nothing_and_exits_non_zero() -> None:
    start = time.perf_counter()
    bad = subprocess.run([sys.executable, "-m", "clipscope_utils.book", "check", "--profile", "smoke", "--set",
                          "cae.base=trained:largest_frist"], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    assert bad.returncode == 1 and "'cae', parameter 'base'" in bad.stderr
    assert wall < 60  # the check resolves names only: no training, no notebook (7-8 s measured)
    good = subprocess.run([sys.executable, "-m", "clipscope_utils.book", "check", "--profile", "gpu"], cwd=ROOT,
                          capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    assert "trained:largest_first:0: clipscope-small trained from scratch" in good.stdout
    assert "400000 samples" in good.stdout and "nothing was executed" in good.stdout
