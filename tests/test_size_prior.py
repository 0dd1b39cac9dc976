"""The class-size prior experiment (Claim 1, causally): size groups, probe inputs, and the analysis on
constructed embeddings whose answers are known."""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from clipscope_utils import measure as ex
from clipscope_utils.datasets import sizes
from clipscope_utils.studies import size_prior as sp
from clipscope_utils.datasets import DatasetError
from clipscope_utils.datasets.captions import caption
from clipscope_utils.probes import retrieval
from clipscope_utils.training import TrainConfig

CLASSES = ["cat", "dog", "car", "bus", "apple", "book"]
PRIOR = ["car", "bus"]
TREATED = sp.condition_label(0.9)
CONTROL = sp.condition_label(0)


def test_real_world_groups_of_comco_match_the_docstring() -> None:
    t = sizes.real_world_sizes("comco")
    assert len(t) == 63 and t.class_id.tolist() == list(range(63))
    assert t.group.value_counts().to_dict() == {"small": 25, "unknown": 20, "medium": 11, "large": 7}
    assert sizes.prior_classes("comco") == ("car", "airplane", "bus", "train", "truck", "elephant", "giraffe")
    by_name = t.set_index("class_name")
    # synonyms only where the names differ; never a substring ("car" is not "carrot")
    assert by_name.loc["motorcycle", ["domainnet_name", "group"]].tolist() == ["motorbike", "medium"]
    assert by_name.loc["tv", "group"] == "medium" and by_name.loc["handbag", "group"] == "small"
    assert by_name.loc["carrot", "group"] == "small" and by_name.loc["boat", "group"] == "unknown"
    groups = sizes.group_table("comco")
    assert groups.group.tolist() == ["large", "medium", "small", "unknown"] and groups.n.sum() == 63


def test_families_without_real_world_sizes_have_no_prior(tmp_path) -> None:
    assert set(sizes.real_world_sizes("simco").group) == {"unknown"}
    with pytest.raises(DatasetError, match="family 'simco' has no real-world-large classes"):
        sizes.prior_classes("simco")
    with pytest.raises(DatasetError, match="unknown object family 'lego'"):
        sizes.real_world_sizes("lego")
    bad = tmp_path / "sizes.json"
    bad.write_text(json.dumps({"large": ["car"], "small": ["cat"]}))
    with pytest.raises(DatasetError, match=r"size groups \['medium'\] missing"):
        sizes.real_world_sizes("comco", bad)
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps({"large": ["cat"], "medium": [], "small": ["car"]}))
    t = sizes.real_world_sizes("comco", mine).set_index("class_name").group
    assert t["cat"] == "large" and t["car"] == "small"


def test_mixed_captions_hold_one_prior_class_at_every_position_equally_often() -> None:
    caps = sp.mixed_captions(CLASSES, PRIOR, objects=(2, 3), per_count=6, seed=4)
    assert len(caps) == 12 and caps.query_id.is_unique
    prior_ids = {CLASSES.index(c) for c in PRIOR}
    for row in caps.itertuples():
        assert len(row.objects) == row.n_objects == len(set(row.objects))
        inside = [k for k, c in enumerate(row.objects) if c in prior_ids]
        assert inside == [row.prior_position - 1]  # exactly one prior class, where recorded
        assert row.text == caption([CLASSES[c] for c in row.objects])
    counts = caps.groupby(["n_objects", "prior_position"]).size()
    assert counts.to_dict() == {(2, 1): 3, (2, 2): 3, (3, 1): 2, (3, 2): 2, (3, 3): 2}
    same = sp.mixed_captions(CLASSES, PRIOR, objects=(2, 3), per_count=6, seed=4)
    pd.testing.assert_frame_equal(caps, same)
    assert sp.mixed_captions(CLASSES, PRIOR, objects=(2, 3), per_count=6, seed=5).text.tolist() != caps.text.tolist()


@pytest.mark.parametrize("kwargs, message", [
    (dict(prior=["unicorn"]), "prior must be distinct names among the classes"),
    (dict(prior=[]), "prior must be distinct names"),
    (dict(objects=(1, 2)), r"objects must be counts in 2..5"),
    (dict(objects=(5,), prior=["car", "bus", "cat"]), "5 objects need 4 non-prior classes, only 3"),
    (dict(per_count=0), "per_count must be a positive integer"),
    (dict(template="haiku"), "unknown caption template 'haiku'"),
])
def test_mixed_captions_refuse_bad_requests(kwargs, message) -> None:
    args = dict(classes=CLASSES, prior=PRIOR, objects=(2, 3), per_count=4) | kwargs
    with pytest.raises(DatasetError, match=message):
        sp.mixed_captions(**args)


# -- constructed encoders: one-hot embeddings with a known winner ------------------------------------
def onehot(i: int) -> np.ndarray:
    v = np.zeros(len(CLASSES) + 1)
    v[i] = 1.0
    return v


class FakeEncoder:
    """Single-object captions embed as their class; a multi-object caption as the class ``pick`` chooses."""

    def __init__(self, name: str, captions: pd.DataFrame, pick):
        self.name = name
        self.table = {caption([c]): onehot(i) for i, c in enumerate(CLASSES)}
        self.table.update({t: onehot(pick(objs)) for t, objs in zip(captions.text, captions.objects)})


@pytest.fixture
def fake_texts(monkeypatch):
    monkeypatch.setattr(ex, "texts", lambda enc, texts, **kw: np.stack([enc.table[t] for t in texts]))


def text_frames(caps: pd.DataFrame) -> pd.DataFrame:
    prior_ids = {CLASSES.index(c) for c in PRIOR}
    picks = {TREATED: lambda objs: next(c for c in objs if c in prior_ids),  # always the prior-large class
             CONTROL: lambda objs: objs[0],                                   # always the first-named object
             "untrained": lambda objs: len(CLASSES)}   # orthogonal to every class: all tie, 1/6 each
    return pd.concat([sp.text_probe(FakeEncoder(cond, caps, pick), caps, CLASSES, PRIOR).assign(condition=cond, seed=0)
                      for cond, pick in picks.items()], ignore_index=True)


def test_text_side_roles_rates_and_paired_effect_on_known_answers(fake_texts) -> None:
    caps = sp.mixed_captions(CLASSES, PRIOR, objects=(2, 3), per_count=6, seed=1)
    frame = text_frames(caps)
    rates = sp.role_rates(frame, n_boot=50).set_index(["condition", "role"])
    assert rates.loc[(TREATED, sp.PRIOR), "rate"] == 1.0 and rates.loc[(TREATED, sp.OTHER), "rate"] == 0.0
    assert rates.loc[("untrained", sp.PRIOR), "rate"] == pytest.approx(1 / 6) and (rates.n == 12).all()  # n = queries
    # first-named control: the prior object wins when it is named first, i.e. in 3 of 6 (n=2) + 2 of 6 (n=3)
    assert rates.loc[(CONTROL, sp.PRIOR), "rate"] == pytest.approx(5 / 12)
    # ... and an other object otherwise: per query, the mean over its other objects is 1 / (n - 1)
    assert rates.loc[(CONTROL, sp.OTHER), "rate"] == pytest.approx((3 * 1 + 4 * 0.5) / 12)
    found = sp.found_share(frame)  # the treated and control models always retrieve one of the caption's objects
    assert found[TREATED] == found[CONTROL] == 1.0 and found["untrained"] == pytest.approx(np.mean([2 / 6] * 6 + [3 / 6] * 6))
    effect = sp.prior_effect(frame, TREATED, n_boot=200).set_index("role")
    assert effect.loc[sp.PRIOR, "effect"] == pytest.approx(7 / 12) and effect.loc[sp.PRIOR, "n"] == 12
    assert effect.loc[sp.PRIOR, "ci_low"] > 0 and effect.loc[sp.OTHER, "ci_high"] < 0
    assert effect.loc[sp.OTHER, "effect"] == pytest.approx(-5 / 12)
    pos = sp.position_rates(frame, n_boot=50)
    control = pos[pos.condition == CONTROL].set_index(["n_objects", "position"]).rate
    assert control.to_dict() == {(2, 1): 1.0, (2, 2): 0.0, (3, 1): 1.0, (3, 2): 0.0, (3, 3): 0.0}
    assert (pos[pos.condition == TREATED].rate == 1.0).all() and set(pos.label) == {"first", "second", "third"}


def test_image_side_tags_size_and_class_group(monkeypatch) -> None:
    """IOR objects come large first: a prior-large class in a later position is one drawn small."""
    objects = [(CLASSES.index("cat"), CLASSES.index("car")), (CLASSES.index("bus"), CLASSES.index("dog")),
               (CLASSES.index("apple"), CLASSES.index("book"), CLASSES.index("car"))]
    prior_ids = {CLASSES.index(c) for c in PRIOR}
    query = np.stack([onehot(next((c for c in o if c in prior_ids), o[0])) for o in objects])

    def fake_ior(enc, scenes):
        return retrieval.object_retrieval(query, objects, np.stack([onehot(i) for i in range(len(CLASSES))]),
                                          list(range(len(CLASSES))), query_ids=["a", "b", "c"])

    monkeypatch.setattr(ex, "ior", fake_ior)
    frame = sp.image_probe(SimpleNamespace(name="m"), SimpleNamespace(classes=CLASSES), PRIOR)
    got = dict(zip(zip(frame.query_id, frame.position), zip(frame.role, frame.hit)))
    assert got[("a", 1)] == (f"large · {sp.OTHER}", 0.0) and got[("a", 2)] == (f"small · {sp.PRIOR}", 1.0)
    assert got[("b", 1)] == (f"large · {sp.PRIOR}", 1.0) and got[("b", 2)] == (f"small · {sp.OTHER}", 0.0)
    assert got[("c", 3)] == (f"small · {sp.PRIOR}", 1.0) and got[("c", 2)] == (f"small · {sp.OTHER}", 0.0)


def run(seed: int, size_prior: float, **changes):
    cfg = TrainConfig(model="clipscope-tiny", scenes=6, samples=32, batch_size=8, seed=seed, size_prior=size_prior, **changes)
    return SimpleNamespace(config=cfg, model_name=lambda: f"clipscope-tiny@/runs/{seed}-{size_prior}.pt")


def test_jobs_pair_each_prior_run_with_its_control_and_the_untrained_start() -> None:
    jobs = sp.jobs([run(0, 0.9), run(1, 0.9)], [run(1, 0), run(0, 0)])
    assert [(t["condition"], t["seed"], name) for t, name in jobs] == [
        ("untrained", 0, "random:clipscope-tiny:0"), (CONTROL, 0, "clipscope-tiny@/runs/0-0.pt"),
        (TREATED, 0, "clipscope-tiny@/runs/0-0.9.pt"),
        ("untrained", 1, "random:clipscope-tiny:1"), (CONTROL, 1, "clipscope-tiny@/runs/1-0.pt"),
        (TREATED, 1, "clipscope-tiny@/runs/1-0.9.pt")]
    with pytest.raises(ValueError, match="no prior-free control run for seed 1"):
        sp.jobs([run(1, 0.9)], [run(0, 0)])
    with pytest.raises(ValueError, match="differs from the prior run in more than size_prior"):
        sp.jobs([run(0, 0.9)], [run(0, 0, lr=2e-3)])
    with pytest.raises(ValueError, match="has size_prior 0"):
        sp.jobs([run(0, 0)], [run(0, 0)])
    with pytest.raises(ValueError, match=r"size_prior must be in \(0, 1\]"):
        sp.prior_configs([run(0, 0).config], 0)
    assert [c.size_prior for c in sp.prior_configs([run(0, 0).config], 0.5)] == [0.5]


def effect_row(role: str, lo: float, hi: float) -> dict:
    return dict(role=role, n=40, treated=0.5, control=0.4, effect=(lo + hi) / 2, ci_low=lo, ci_high=hi)


def test_summary_says_plainly_when_no_effect_appears() -> None:
    text = pd.DataFrame([effect_row(sp.PRIOR, -0.05, 0.1), effect_row(sp.OTHER, -0.1, 0.05)])
    image = pd.DataFrame([effect_row(f"small · {sp.PRIOR}", -0.02, 0.08)])
    s = sp.summary(text, image, TREATED)
    assert "**It did not appear here**" in s and s.count("no effect detected at this sample size") == 3
    text.loc[0, ["ci_low", "ci_high"]] = (0.02, 0.2)
    s = sp.summary(text, image, TREATED)
    assert "**the prior raised it**" in s and "n = 40" in s
    assert "It appeared on the text side; **not on the image side (prior-large class drawn small)**." in s


def test_tables_refuse_frames_they_cannot_read() -> None:
    with pytest.raises(ValueError, match=r"frame lacks columns \['seed', 'role'\]"):
        sp.role_rates(pd.DataFrame({"query_id": [1], "hit": [1.0], "condition": ["x"]}))
    frame = pd.DataFrame({"seed": [0], "query_id": [1], "role": [sp.PRIOR], "hit": [1.0], "condition": [CONTROL]})
    with pytest.raises(ValueError, match=r"condition 'size prior 0.9' not in the frame"):
        sp.prior_effect(frame, TREATED)


def test_run_trains_probes_and_tabulates_end_to_end(tmp_path, monkeypatch) -> None:
    """The chapter's call on tiny runs: every condition and role is tabulated with its n (no effect asserted:
    32 training samples teach nothing)."""
    from clipscope_utils.datasets import generate
    from clipscope_utils.training import conditions
    from clipscope_utils.training.data import scene_spec

    monkeypatch.setenv("CLIPSCOPE_CACHE", str(tmp_path / "cache"))
    controls = conditions(["shuffled"], [0], device="cpu", scenes=6, objects=(1, 2, 3), samples=32, batch_size=8,
                          checkpoints=1, warmup=1)
    priors = sp.prior_configs(controls, 0.9)
    scenes = generate(scene_spec(controls[0], "eval", images=4), tmp_path / "eval", workers=1, progress=False)
    res = sp.run(controls, priors, scenes, per_count=4, workers=1, device="cpu", n_boot=50, progress=False)
    assert res.prior == priors[0].prior_classes() and res.treated == TREATED
    assert set(res.rates.condition) == {"untrained", CONTROL, TREATED} and set(res.rates.probe) == {"TOR", "IOR"}
    tor = res.rates[res.rates.probe == "TOR"]
    assert set(tor.role) == {sp.PRIOR, sp.OTHER} and (tor.n == 8).all()  # 4 captions × counts 2 and 3
    ior = res.effects[res.effects.probe == "IOR"]
    assert ior.n.sum() > 0 and set(ior.role) <= {f"{s} · {g}" for s in ("large", "small") for g in (sp.PRIOR, sp.OTHER)}
    assert (res.effects_by_seed.seed == 0).all() and "measured here" in res.summary and "For scale" in res.summary
