"""The origin chapter's controls: references at every slot, matched-quality checkpoints, verdicts, the cure arms,
the long runs and the quality bars."""

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from clipscope_utils.datasets import SceneSpec, generate
from clipscope_utils.datasets.tables import DatasetError
from clipscope_utils.probes import ProbeError, inputs
from clipscope_utils.studies import cure, origin
from clipscope_utils.studies import pretraining as pt
from clipscope_utils.training import TrainConfig


@pytest.fixture(scope="module")
def slotted(tmp_path_factory):
    spec = SceneSpec(family="simco", objects=(3,), images=4, single_slots=("UL", "M", "BR"), seed=3)
    return generate(spec, tmp_path_factory.mktemp("slots") / "d", workers=1, progress=False)


def test_slot_references_sit_at_the_slot_of_the_scenes_and_keep_the_class_colour(slotted) -> None:
    singles = slotted.singles()
    n_classes = len(slotted.classes)
    assert len(singles.images) == 2 * 3 * n_classes  # two sizes x three slots
    objs = singles.objects.set_index("image_id")
    assert objs.at["s0-000-UL", "slot"] == "UL" and objs.at["s0-000", "slot"] == "M"
    assert objs.at["s0-000-UL", "color"] == objs.at["s0-000", "color"] == objs.at["s0-000-BR", "color"]
    assert objs.at["s0-000-UL", "x0"] < objs.at["s0-000", "x0"] < objs.at["s0-000-BR", "x0"]


def test_reference_positions_select_centred_or_every_slot(slotted) -> None:
    centred = inputs.reference_images(slotted, "large")
    every = inputs.reference_images(slotted, "large", "slots")
    assert len(centred) == len(slotted.classes) and not centred.image_id.str.contains("-[A-Z]+$").any()
    assert len(every) == 3 * len(slotted.classes)
    with pytest.raises(ProbeError, match="reference position must be one of"):
        inputs.reference_images(slotted, "large", "corner")


def test_slot_references_are_refused_where_a_set_has_none(tmp_path) -> None:
    plain = generate(SceneSpec(family="simco", objects=(2,), images=2), tmp_path / "p", workers=1, progress=False)
    with pytest.raises(ProbeError, match="needs scenes generated with single_slots"):
        inputs.reference_images(plain, "large", "slots")


def test_slot_knob_keeps_old_keys_and_is_checked() -> None:
    assert SceneSpec(single_slots=()).key() == SceneSpec().key()
    assert SceneSpec(single_slots=("M", "UL")).key() != SceneSpec().key()
    with pytest.raises(DatasetError, match=r"single_slots \['XX'\] are not slots"):
        SceneSpec(single_slots=("XX",))
    with pytest.raises(DatasetError, match="repeats a value"):
        SceneSpec(single_slots=("M", "M"))


def test_the_eval_split_has_references_at_every_slot_of_its_layouts() -> None:
    from clipscope_utils.training.data import scene_spec

    spec = scene_spec(TrainConfig(objects=(1, 2, 3)), "eval")
    assert set(spec.single_slots) == {"UL", "M", "BR"} and scene_spec(TrainConfig()).single_slots == ()


def curve(rows):
    return pd.DataFrame([dict(order=o, seed=s, samples=n, rate=r, n=63, ci_low=r - 0.05, ci_high=r + 0.05)
                         for o, s, n, r in rows])


def test_matched_checkpoints_pick_the_closest_accuracy_earliest_on_ties() -> None:
    c = curve([("a", 0, 0, 0.01), ("a", 0, 10, 0.5), ("a", 0, 20, 0.88), ("a", 0, 30, 1.0),
               ("b", 0, 0, 0.01), ("b", 0, 10, 0.92), ("b", 0, 20, 0.88), ("b", 0, 30, 0.95)])
    picked = origin.matched_checkpoints(c, 0.9)
    assert picked.set_index("order").samples.to_dict() == {"a": 20, "b": 10}
    with pytest.raises(ValueError, match="matched_accuracy"):
        origin.matched_checkpoints(c, 0)


def table(comparison, order, rates):
    return pd.DataFrame([dict(probe="TOR", comparison=comparison, order=order, n_objects=2, position=p, label=lab,
                              rate=r, ci_low=lo, ci_high=hi, n=50) for p, lab, (r, lo, hi) in
                         zip((1, 2), ("first", "second"), rates)])


def test_verdicts_agree_only_when_the_preferred_position_is_the_same() -> None:
    t = pd.concat([table("fixed budget", "largest_first", [(0.8, 0.7, 0.9), (0.2, 0.1, 0.3)]),
                   table("matched quality", "largest_first", [(0.6, 0.5, 0.7), (0.4, 0.3, 0.45)]),
                   table("fixed budget", "shuffled", [(0.8, 0.7, 0.9), (0.2, 0.1, 0.3)]),
                   table("matched quality", "shuffled", [(0.5, 0.4, 0.6), (0.5, 0.4, 0.6)])])
    v = origin.verdicts(t).set_index("order")
    assert v.at["largest_first", "fixed budget"] == "first" and bool(v.at["largest_first", "agree"])
    assert v.at["shuffled", "matched quality"] == "no dominant position" and not v.at["shuffled", "agree"]
    picked = pd.DataFrame([dict(order="shuffled", seed=0, samples=10, rate=0.9, ci_low=0.8, ci_high=0.95, n=63)])
    text = origin.verdict_summary(v.reset_index(), picked)
    assert "agree in 1 of 2 cells" in text and "shuffled: first → no dominant position" in text
    assert "shuffled seed 0: 0.90 [0.80, 0.95] (n = 63) at 10" in text


def test_slot_summary_flags_a_centre_that_stands_out_only_with_centred_references() -> None:
    rows = []
    for reference, rates in (("centred", {"UL": 0.1, "M": 0.9, "BR": 0.1}), ("at every slot", {"UL": 0.8, "M": 0.8,
                                                                                               "BR": 0.8})):
        for slot, r in rates.items():
            rows.append(dict(state="trained", reference=reference, n_objects=3, large_slot=slot, rate=r,
                             ci_low=r - 0.05, ci_high=r + 0.05, n=30, position=1))
    text = origin.slot_summary(pd.DataFrame(rows))
    assert "centred references: centre 0.90 [0.85, 0.95] vs corners 0.10–0.10 (**centre stands out**)" in text
    assert "at every slot references: centre 0.80 [0.75, 0.85] vs corners 0.80–0.80." in text


def run(order, seed, final="/runs/x.pt", **changes):
    cfg = TrainConfig(model="clipscope-tiny", scenes=6, samples=32, batch_size=8, order=order, seed=seed, **changes)
    return SimpleNamespace(config=cfg, final=Path(final))


def test_cure_arms_fine_tune_each_largest_first_run_on_shuffled_and_its_own_captions(tmp_path) -> None:
    final = tmp_path / "final.pt"
    final.write_bytes(b"weights")
    runs = [run("largest_first", 0, final), run("shuffled", 0, final), run("largest_first", 1, final)]
    arms = cure.configs(runs, samples=16, lr=5e-4)
    assert [(c.order, c.seed, c.samples, c.init) for c in arms] == [
        ("shuffled", 0, 16, str(final)), ("largest_first", 0, 16, str(final)),
        ("shuffled", 1, 16, str(final)), ("largest_first", 1, 16, str(final))]
    assert all(c.lr == 5e-4 and c.warmup >= 1 for c in arms)
    with pytest.raises(ValueError, match="fine-tunes largest-first runs"):
        cure.check([run("shuffled", 0).config], 16, 5e-4)
    with pytest.raises(Exception, match="at least one batch"):
        cure.check([run("largest_first", 0).config], 4, 5e-4)


def test_long_runs_take_the_first_seed_of_each_order_and_must_be_longer() -> None:
    block = dict(model="clipscope-tiny", family="comco", objects=[1, 2], n_scenes=6, orders=["largest_first"],
                 p_first=1.0, seeds=[3, 4], samples=32, batch_size=8, lr=1e-3, checkpoints=2, device="cpu")
    (long,) = pt.long_configs(block, ["largest_first"], 64, 4)
    assert (long.seed, long.samples, long.checkpoints, long.order) == (3, 64, 4, "largest_first")
    with pytest.raises(ValueError, match="long_samples .32. must exceed"):
        pt.long_configs(block, ["largest_first"], 32, 4)


def test_quality_flags_every_run_below_a_bar() -> None:
    rows = []
    for order, zs, rc in (("largest_first", 0.95, 0.4), ("shuffled", 0.95, 0.2)):
        for metric, r in (("zero-shot accuracy", zs), ("recall@1 image→text", rc), ("recall@1 text→image", rc)):
            rows.append(dict(metric=metric, state="trained", order=order, seed=0, rate=r))
    q = pt.quality(pd.DataFrame(rows))
    assert q["meets the bars"].tolist() == [True, False]
    note = pt.quality_note(q)
    assert "1 of 2 runs miss a quality bar" in note and "shuffled seed 0 (recall@1 image→text, recall@1 text→image)" in note
    assert pt.quality_note(q.iloc[:1]).startswith("All 1 runs reach the quality bars")


def test_cure_summary_reports_the_change_of_the_first_position_and_the_zero_shot_cost() -> None:
    tor = pd.DataFrame([dict(arm=arm, samples=s, n_objects=2, position=1, label="first", rate=r, ci_low=r - 0.05,
                             ci_high=r + 0.05, n=100)
                        for arm, rates in (("shuffled captions", (0.8, 0.5)), ("largest_first captions", (0.8, 0.78)))
                        for s, r in zip((0, 4000), rates)])
    zs = pd.DataFrame([dict(arm="shuffled captions", samples=s, rate=r, ci_low=r - 0.02, ci_high=r, n=63)
                       for s, r in ((0, 1.0), (4000, 0.97))])
    text = cure.summary(tor, zs)
    assert ("shuffled captions, 2 objects: 0.80 [0.75, 0.85] → 0.50 [0.45, 0.55] after 4000 samples, n = 100: "
            "**fell** (now within chance).") in text
    assert "largest_first captions, 2 objects: 0.80 [0.75, 0.85] → 0.78 [0.73, 0.83] after 4000 samples, n = 100: " \
           "no change detected." in text
    assert "zero-shot accuracy, shuffled captions: 1.00 [0.98, 1.00] → 0.97 [0.95, 0.97] (n = 63)." in text


def test_ior_commentary_says_when_the_image_side_follows_the_caption_order() -> None:
    def section(rates):
        rows = [dict(state="trained", order=o, n_objects=2, position=1, rate=r, ci_low=r - 0.05, ci_high=r + 0.05,
                     n=400) for o, r in rates.items()]
        return origin.ProbeSection("IOR", pd.DataFrame(rows), pd.DataFrame(), "")

    apart = origin.caption_order_effect_on_ior(section({"largest_first": 0.6, "shuffled": 0.3}))
    assert "largest_first 0.60 [0.55, 0.65] vs shuffled 0.30 [0.25, 0.35]: **apart**." in apart
    assert "depends on the caption order here" in apart
    close = origin.caption_order_effect_on_ior(section({"largest_first": 0.6, "shuffled": 0.55}))
    assert "not apart." in close and "does not detectably depend" in close


def test_pooled_orders_count_the_untrained_start_once() -> None:
    rows = [{"state": state, "order": order, "seed": 0, "query_id": q, "hit": 1}
            for state in ("untrained", "trained") for order in ("largest_first", "shuffled") for q in ("a", "b")]
    out = origin.untrained_counted_once(pd.DataFrame(rows))
    assert (out.state == "untrained").sum() == 2 and (out.state == "trained").sum() == 4
