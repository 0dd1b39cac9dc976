"""Generated compositional scenes: every caption, hard negative and benchmark item checked against the
scene table and the pixels, spans checked word by word, bad specs refused before any work, byte-identical
regeneration, atomic caching."""

import dataclasses
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from clipscope_utils.compositional import BenchmarkError, ChoiceItem, PairItem
from clipscope_utils.compositional import scenes as cs
from clipscope_utils.compositional.scenes import (
    CompositionSpec, benchmark_scenes, compose, concept_candidates, generate_compositions, synthetic_benchmark,
)
from clipscope_utils.datasets import families

PHRASES = {"to the left of": "left of", "to the right of": "right of", "above": "above", "below": "below"}
COLOURS = list(families.SIMCO_PALETTE)


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- an independent reading of the captions and of the truth ---------------------------------------------------
def parse(text: str, classes: list[str]) -> tuple:
    """``(noun1, attrs1, relation or "and", noun2, attrs2)`` of a generated caption, checking its grammar."""
    noun = "|".join(re.escape(c) for c in sorted(classes, key=len, reverse=True))
    attr = "|".join(["large", "small", *COLOURS])
    np_ = rf"(an?) ((?:(?:{attr}) )*)(pair of )?({noun})"
    rel = "|".join(re.escape(p) for p in PHRASES)
    m = re.fullmatch(rf"{np_} ({rel}|and) {np_}", text)
    assert m, f"not a caption of the generator's grammar: {text!r}"
    art1, attrs1, pair1, n1, relation, art2, attrs2, pair2, n2 = m.groups()
    for art, attrs, pair, n in ((art1, attrs1, pair1, n1), (art2, attrs2, pair2, n2)):
        following = (attrs + (pair or "") + n).split()[0]
        assert (art == "an") == (following[0] in "aeiou"), text
        assert bool(pair) == (n in ("scissors", "skis")), text
    return n1, tuple(attrs1.split()), PHRASES.get(relation, "and"), n2, tuple(attrs2.split())


def box(row, who: str) -> tuple[int, int, int, int]:
    return tuple(int(getattr(row, f"{who}_{c}")) for c in ("x0", "y0", "x1", "y1"))


def relation_true(relation: str, a, b) -> bool:
    return {"left of": a[2] <= b[0], "right of": b[2] <= a[0], "above": a[3] <= b[1], "below": b[3] <= a[1]}[relation]


def true_of(text: str, row, classes: list[str]) -> bool:
    """Whether a caption is true of the scene in ``row`` (objects, their sizes and colours, the boxes)."""
    n1, a1, relation, n2, a2 = parse(text, classes)
    objects = {row.subject: ("subject", row.subject_size, row.subject_colour),
               row.object: ("object", row.object_size, row.object_colour)}
    if n1 not in objects or n2 not in objects or n1 == n2:
        return False
    for n, attrs in ((n1, a1), (n2, a2)):
        _, size, colour = objects[n]
        if any(a != size for a in attrs if a in cs.SIZES) or any(a != colour for a in attrs if a in COLOURS):
            return False
    return relation == "and" or relation_true(relation, box(row, objects[n1][0]), box(row, objects[n2][0]))


def drawn_colour(pixels: np.ndarray) -> str:
    """The palette colour whose shading line (black - colour - white) lies closest to the pixels on average."""
    def dist(a, b):
        d = b - a
        t = np.clip(((pixels - a) @ d) / (d @ d), 0, 1)
        return np.linalg.norm(pixels - (a + t[:, None] * d), axis=1)
    pal = [np.array(families.SIMCO_PALETTE[c], float) for c in COLOURS]
    scores = [np.minimum(dist(np.zeros(3), c), dist(c, np.full(3, 255.0))).mean() for c in pal]
    return COLOURS[int(np.argmin(scores))]


# -- fixtures ---------------------------------------------------------------------------------------------------
COMCO = CompositionSpec(family="comco", images=240, seed=5)
SIMCO = CompositionSpec(family="simco", images=240, attributes=("colour", "size"), seed=2)


@pytest.fixture(scope="module")
def sets(module_cache):
    return {name: generate_compositions(spec, progress=False) for name, spec in (("comco", COMCO), ("simco", SIMCO))}


@pytest.fixture(scope="module")
def benches(module_cache):
    return {name: (spec, benchmark_scenes(spec, 60, progress=False), synthetic_benchmark(spec, 60, progress=False))
            for name, spec in (("comco", COMCO), ("simco", SIMCO))}


# -- the spec ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("knobs, message", [
    ({"relations": ("left of", "behind")}, "unknown relations"),
    ({"relations": ()}, "at least one"),
    ({"relations": "above"}, "not the string"),
    ({"relations": ("above", "above")}, "duplicates"),
    ({"attributes": ("size", "shape")}, "unknown attributes"),
    ({"attributes": ("color",)}, "unknown attributes"),
    ({"attributes": ("colour",)}, "needs family 'simco'"),
    ({"family": "lego"}, "unknown object family"),
    ({"class_names": ("cat", "unicorn")}, "not in family"),
    ({"class_names": ("cat",)}, "at least two"),
    ({"large_size": 0.48}, "do not fit side by side and one above the other"),
    ({"large_size": 0.48, "relations": ("above",)}, "do not fit one above the other"),
    ({"large_size": 1.5}, "fraction"),
    ({"small_size": 0.38}, "must draw smaller"),
    ({"small_size": 0.05}, ">= 4 px"),
    ({"images": -1}, "non-negative integer"),
    ({"seed": True}, "non-negative integer"),
    ({"image_size": 8}, "16..1024"),
])
def test_bad_specs_are_refused_with_a_clear_error(knobs, message, tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPSCOPE_CACHE", str(tmp_path))
    with pytest.raises(BenchmarkError, match=message):
        CompositionSpec(**knobs)
    assert not (tmp_path / "compositional").exists()


def test_bad_requests_fail_before_any_work(tmp_path, monkeypatch, sets):
    monkeypatch.setenv("CLIPSCOPE_CACHE", str(tmp_path))
    with pytest.raises(BenchmarkError, match="positive integer"):
        synthetic_benchmark(COMCO, 0)
    with pytest.raises(BenchmarkError, match="CompositionSpec"):
        generate_compositions({"family": "comco"})
    with pytest.raises(BenchmarkError, match="unknown hard-negative kind"):
        sets["comco"].hard_negatives("object_swap")
    with pytest.raises(BenchmarkError, match="unknown relation"):
        compose("cat", "dog", "behind")
    with pytest.raises(BenchmarkError, match="unknown relation"):
        cs.relation_holds("near", (0, 0, 1, 1), (2, 2, 3, 3))
    assert not (tmp_path / "compositional").exists()


def test_key_covers_every_knob_and_ignores_set_order():
    base = CompositionSpec()
    assert CompositionSpec(relations=("below", "above", "right of", "left of")).key() == base.key()
    assert CompositionSpec(relations=("below", "left of")).relations == ("left of", "below")
    assert CompositionSpec(images=np.int64(2000), large_size=np.float64(0.38)).key() == base.key()
    changed = [dict(family="simco"), dict(images=3), dict(image_size=96), dict(large_size=0.4),
               dict(small_size=0.15), dict(relations=("above",)), dict(attributes=()),
               dict(class_names=("cat", "dog")), dict(seed=1)]
    keys = {CompositionSpec(**c).key() for c in changed}
    assert len(keys) == len(changed) and base.key() not in keys


# -- generation and caching -------------------------------------------------------------------------------------
def test_same_spec_gives_identical_bytes_in_two_caches(tmp_path, monkeypatch):
    spec = CompositionSpec(family="simco", images=40, attributes=("size", "colour"), seed=9)
    out = {}
    for name in ("a", "b"):
        monkeypatch.setenv("CLIPSCOPE_CACHE", str(tmp_path / name))
        generate_compositions(spec, progress=False)
        benchmark_scenes(spec, 10, progress=False)
        out[name] = files(tmp_path / name)
    assert out["a"] == out["b"]
    assert sum(k.endswith(".png") for k in out["a"]) == 40 + 2 * 10
    folders = {k.split("/")[1] for k in out["a"]}
    assert len(folders) == 2 and f"simco-{spec.key()}" in folders
    other = dataclasses.replace(spec, seed=10)
    assert generate_compositions(other, progress=False).frame.caption.tolist() != \
        pd.read_csv(tmp_path / "b" / "compositional" / f"simco-{spec.key()}" / "scenes.csv").caption.tolist()


def test_cache_is_reused_and_written_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPSCOPE_CACHE", str(tmp_path))
    spec = CompositionSpec(images=12, seed=4)
    real = cs._scene
    calls = []

    def failing(spec_, stream, index):
        calls.append(index)
        if index == 7:
            raise KeyboardInterrupt
        return real(spec_, stream, index)

    monkeypatch.setattr(cs, "_scene", failing)
    with pytest.raises(KeyboardInterrupt):
        generate_compositions(spec, progress=False)
    assert list((tmp_path / "compositional").iterdir()) == []  # nothing half-written is left behind
    monkeypatch.setattr(cs, "_scene", real)
    first = generate_compositions(spec, progress=False)
    monkeypatch.setattr(cs, "_scene", failing)
    calls.clear()
    again = generate_compositions(spec, progress=False)
    assert calls == [] and again.captions == first.captions and again.root == first.root
    assert first.root == tmp_path / "compositional" / f"comco-{spec.key()}"


def test_stale_table_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPSCOPE_CACHE", str(tmp_path))
    spec = CompositionSpec(images=3)
    folder = generate_compositions(spec, progress=False).root
    table = pd.read_csv(folder / "scenes.csv", keep_default_na=False)
    table.loc[1, "caption"] = "a cat to the left of a dog"
    table.to_csv(folder / "scenes.csv", index=False)
    with pytest.raises(BenchmarkError, match="does not match its scene"):
        generate_compositions(spec, progress=False)


# -- scenes -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["comco", "simco"])
def test_every_scene_is_what_its_row_says(name, sets):
    comp = sets[name]
    spec, f = comp.spec, comp.frame
    assert len(comp) == len(comp.captions) == len(comp.spans) == len(comp.paths) == spec.images
    assert list(f.columns) == cs.COLUMNS and f.scene_id.is_unique
    assert (f.subject != f.object).all()
    assert set(f.subject) | set(f.object) <= set(spec.classes)
    assert set(f.relation) == set(spec.relations)  # left of and right of both occur
    assert set(zip(f.subject_size, f.object_size)) == {(a, b) for a in cs.SIZES for b in cs.SIZES}
    small = spec.size_px("small")
    for row in f.itertuples():
        s, o = box(row, "subject"), box(row, "object")
        assert [r for r in cs.RELATIONS if relation_true(r, s, o)] == [row.relation]  # only the captioned one
        assert row.axis == ("horizontal" if row.relation in ("left of", "right of") else "vertical")
        for b, size in ((s, row.subject_size), (o, row.object_size)):
            assert 0 <= b[0] < b[2] <= spec.image_size and 0 <= b[1] < b[3] <= spec.image_size
            assert (max(b[2] - b[0], b[3] - b[1]) > small) == (size == "large")
    if name == "simco":
        assert set(f.subject_colour) <= set(COLOURS) and f.subject_colour.nunique() > 4
    else:
        assert (f.subject_colour == "").all()


@pytest.mark.parametrize("name", ["comco", "simco"])
def test_relation_sizes_and_colours_hold_in_the_pixels(name, sets):
    comp = sets[name]
    white = np.array(cs.BACKGROUND)
    for row, path in list(zip(comp.frame.itertuples(), comp.paths))[:25]:
        im = np.asarray(Image.open(path).convert("RGB")).astype(float)
        ink = (np.abs(im - white) > 8).any(axis=2)
        inside = np.zeros_like(ink)
        centroid, extent = {}, {}
        for who in ("subject", "object"):
            x0, y0, x1, y1 = box(row, who)
            inside[y0:y1, x0:x1] = True
            ys, xs = np.nonzero(ink[y0:y1, x0:x1])
            assert len(xs) > 0
            centroid[who] = (x0 + xs.mean(), y0 + ys.mean())
            extent[who] = max(xs.max() - xs.min(), ys.max() - ys.min()) + 1  # drawn extent: emoji fit their box
            if name == "simco":
                pixels = im[y0:y1, x0:x1][ink[y0:y1, x0:x1]]
                assert drawn_colour(pixels) == getattr(row, f"{who}_colour")
        assert not (ink & ~inside).any()  # nothing is drawn outside the two boxes
        (sx, sy), (ox, oy) = centroid["subject"], centroid["object"]
        assert {"left of": sx < ox, "right of": sx > ox, "above": sy < oy, "below": sy > oy}[row.relation]
        if row.subject_size != row.object_size:
            assert (extent["subject"] > extent["object"]) == (row.subject_size == "large")


# -- captions and roles -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["comco", "simco"])
def test_captions_are_true_and_spans_mark_the_intended_words(name, sets):
    comp = sets[name]
    named = set(comp.spec.attributes)
    for row, text, spans in zip(comp.frame.itertuples(), comp.captions, comp.spans):
        assert text == row.caption and true_of(text, row, comp.spec.classes)
        assert [s for s in spans] == sorted(spans) and all(a[1] < b[0] for a, b in zip(spans, spans[1:]))
        words = {role: [text[s:e] for s, e, r in spans if r == role] for role in cs.ROLES}
        assert words["object"] == [row.subject, row.object]
        assert words["relation"] == [cs.RELATION_PHRASES[row.relation]]
        expect = [v for who in ("subject", "object") for a, v in (("size", getattr(row, f"{who}_size")),
                                                                  ("colour", getattr(row, f"{who}_colour")))
                  if a in named]
        assert words["attribute"] == expect
        unroled = "".join(" " if any(s <= k < e for s, e, _ in spans) else ch for k, ch in enumerate(text))
        assert set(unroled.split()) <= {"a", "an", "pair", "of"}  # articles and counters get no role
        for m in re.finditer(r"\ban?\b", text):
            assert not any(s < m.end() and m.start() < e for s, e, _ in spans)


def test_compose_grammar_and_dropped_attributes(tmp_path, monkeypatch):
    text, spans = compose("apple", "scissors", "above", ("small",), ("large",))
    assert text == "a small apple above a large pair of scissors"
    assert [(text[s:e], r) for s, e, r in spans] == [
        ("small", "attribute"), ("apple", "object"), ("above", "relation"), ("large", "attribute"),
        ("scissors", "object")]
    text, spans = compose("apple", "traffic light", "left of")
    assert text == "an apple to the left of a traffic light" and [text[s:e] for s, e, _ in spans][-1] == "traffic light"
    assert compose("cube", "star", None, ("orange",), ("red",))[0] == "an orange cube and a red star"
    monkeypatch.setenv("CLIPSCOPE_CACHE", str(tmp_path))
    for attributes in ((), ("size",)):
        comp = generate_compositions(CompositionSpec(family="simco", images=20, attributes=attributes),
                                     progress=False)
        said = {w for t in comp.captions for w in t.split()}
        assert not said & set(COLOURS)  # drawn in colour but never named
        assert bool(said & set(cs.SIZES)) == ("size" in attributes)
        assert all(r != "attribute" for sp in comp.spans for _, _, r in sp) == (not attributes)


def test_spans_are_valid_roled_captions(sets):
    roles = pytest.importorskip("clipscope_utils.cae.roles")
    for comp in sets.values():
        for text, spans in zip(comp.captions[:50], comp.spans[:50]):
            assert roles.RoledCaption(text, spans).spans == spans


# -- hard negatives ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["comco", "simco"])
def test_hard_negatives_differ_and_are_false_of_their_image(name, sets):
    comp = sets[name]
    classes = comp.spec.classes
    negatives = {k: comp.hard_negatives(k) for k in cs.HARD_NEGATIVE_KINDS}
    swappable = comp.attribute_swappable
    assert 0 < swappable.mean() < 1
    for i, row in enumerate(comp.frame.itertuples()):
        true = parse(comp.captions[i], classes)
        for kind, texts in negatives.items():
            assert texts[i] != comp.captions[i] and not true_of(texts[i], row, classes), (kind, texts[i])
        n1, a1, rel, n2, a2 = parse(negatives["relation_swap"][i], classes)
        assert (n1, n2) == (true[3], true[0]) and (a1, rel, a2) == (true[1], true[2], true[4])
        assert parse(negatives["relation_replace"][i], classes) == (
            true[0], true[1], cs.OPPOSITE[true[2]], true[3], true[4])
        assert swappable[i] == (true[1] != true[4])
        if swappable[i]:
            assert parse(negatives["attribute_swap"][i], classes) == (true[0], true[4], true[2], true[3], true[1])
        else:
            assert negatives["attribute_swap"][i] == negatives["relation_replace"][i]


# -- the synthetic benchmark ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["comco", "simco"])
def test_every_benchmark_item_is_true_and_false_where_it_should_be(name, benches, sets):
    spec, scenes, bench = benches[name]
    classes = spec.classes
    assert set(bench) == set(cs.BENCHMARK_SUBSETS)
    rows = {Path(p): r for p, r in zip(scenes.paths, scenes.frame.itertuples())}
    assert len(bench["relation"]) == len(bench["relation_replace"]) == len(bench["winoground"]) == 60
    originals = scenes.frame[scenes.frame.variant == "original"]
    differ = originals.subject_size != originals.object_size
    if "colour" in spec.attributes:
        differ |= originals.subject_colour != originals.object_colour
    assert 0 < len(bench["attribute"]) == differ.sum() < 60
    assert [i.image for i in bench["attribute"]] == [scenes.root / p for p in originals.path[differ]]
    for subset in ("relation", "attribute", "relation_replace"):
        for item in bench[subset]:
            assert isinstance(item, ChoiceItem) and item.subset == subset and item.image.is_file()
            row = rows[item.image]
            assert row.variant == "original"
            assert true_of(item.true, row, classes)
            assert item.false and all(f != item.true and not true_of(f, row, classes) for f in item.false)
            if subset != "attribute":  # relation captions name no attribute, as ARO's do
                assert parse(item.true, classes)[1] == () and parse(item.false[0], classes)[4] == ()
    for item in bench["winoground"]:
        assert isinstance(item, PairItem) and all(p.is_file() for p in item.images)
        a, b = rows[item.images[0]], rows[item.images[1]]
        assert (a.variant, b.variant) == ("original", "swapped") and a.pair_id == b.pair_id
        assert true_of(item.captions[0], a, classes) and true_of(item.captions[1], b, classes)
        assert not true_of(item.captions[0], b, classes) and not true_of(item.captions[1], a, classes)
        assert sorted(item.captions[0].split()) == sorted(item.captions[1].split())
    # unseen: other draws than the training scenes of the same spec
    train = sets[name].frame
    k = min(len(train), len(originals))
    same = (originals.iloc[:k][["subject", "object", "relation"]].to_numpy()
            == train.iloc[:k][["subject", "object", "relation"]].to_numpy()).all(axis=1)
    assert same.mean() < 0.2


def test_winoground_twin_shows_the_same_sprites_in_exchanged_places(benches):
    for spec, scenes, _ in benches.values():
        f = scenes.frame
        for k in range(0, 20, 2):
            a, b = f.iloc[k], f.iloc[k + 1]
            assert (b.subject, b.object, b.relation) == (a.object, a.subject, a.relation)
            assert (b.subject_size, b.object_size) == (a.object_size, a.subject_size)
            assert (b.subject_colour, b.object_colour) == (a.object_colour, a.subject_colour)
            ia = np.asarray(Image.open(scenes.paths[k]).convert("RGB"))
            ib = np.asarray(Image.open(scenes.paths[k + 1]).convert("RGB"))
            for cls_a, cls_b in (("subject", "object"), ("object", "subject")):
                ba, bb = box(a, cls_a), box(b, cls_b)  # the same class in both images
                assert ba != bb
                assert np.array_equal(ia[ba[1]:ba[3], ba[0]:ba[2]], ib[bb[1]:bb[3], bb[0]:bb[2]])
            assert Counter(map(tuple, ia.reshape(-1, 3))) == Counter(map(tuple, ib.reshape(-1, 3)))


def test_benchmark_depends_on_n_not_on_the_training_size(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPSCOPE_CACHE", str(tmp_path))
    small = synthetic_benchmark(CompositionSpec(images=5), 8, progress=False)
    large = synthetic_benchmark(CompositionSpec(images=5000), 8, progress=False)
    assert small == large
    assert len(list((tmp_path / "compositional").iterdir())) == 1  # one cached folder, no training scenes


# -- candidates -------------------------------------------------------------------------------------------------
def test_concept_candidates_cover_every_span(sets):
    simco = concept_candidates(SIMCO)
    assert list(simco) == list(cs.ROLES)
    assert simco["object"] == families.classes("simco")
    assert simco["attribute"] == ["large", "small", *COLOURS]
    assert simco["relation"] == ["to the left of", "to the right of", "above", "below"]
    restricted = concept_candidates(CompositionSpec(class_names=("dog", "cat"), attributes=()))
    assert restricted["object"] == ["cat", "dog"] and restricted["attribute"] == []
    for name, comp in sets.items():
        cands = concept_candidates(comp.spec)
        for text, spans in zip(comp.captions, comp.spans):
            for s, e, role in spans:
                assert text[s:e] in cands[role]
                assert len(set(cands[role]) - {text[s:e]}) >= 1  # a perturbation always has somewhere to go
    with pytest.raises(BenchmarkError, match="CompositionSpec"):
        concept_candidates("comco")
