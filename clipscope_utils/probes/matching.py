"""Image–text matching under the encoders' biases (paper A, section 5.1, Table 6).

Each multi-object image gets a correct and an incorrect caption; the model is right when the image
is more similar to the correct one. The two scenarios put the biases on the model's side or
against it: ``"first"`` (biases help) names the largest object FIRST and hides the error where both
biases (first-mentioned, largest) look; ``"second"`` (biases hurt) names it LAST and hides the error
where neither looks. How the captions are built is ``replace`` (:data:`REPLACE`):

* ``"authors"`` (default; the authors' ``Image_Text_Matching.py``, per the reference README): the small
  objects keep the dataset's object order (``object_index``). Scenario first: correct ``[L, s1..sm]``,
  incorrect ``[A, s1..sm]`` (an absent class in the large object's place). Scenario second: correct
  ``[s1..sm, L]``, incorrect ``[L, s1..s(m-1), A]`` (the large object moved FIRST, the last small one
  replaced). One pair per image and *every* absent class A, and a tie counts as a failure (strict ``>``).
  Pairs of one image are not independent: :func:`matching_table` bootstraps over images.
* ``"large"`` (an earlier reading of the prose): the object at the scenario's position, the large one,
  is swapped for one seeded absent class: first ``[A, s...]``, second ``[s..., A]``.
* ``"small"`` (the other reading): a seeded small object is dropped and the absent class is placed at
  the scenario's position: first ``[A, L, s...]``, second ``[s..., L, A]``.

The two readings score an exact tie 0.5 (a coin flip on average). Their randomness is per image, from
``numpy.random.default_rng([seed, crc32(image_id)])``: the order of the small objects, the absent class
(uniform among classes not in the image) and the small object to drop, drawn in that fixed sequence
whatever ``scenario`` and ``replace`` are. So the result is independent of row order and of which other
images are present, and both scenarios of one image share the small-object order and the absent class.

Images whose largest object is not unique (COCO areas can tie) or that hold every class are skipped,
and a note says how many.
"""

from __future__ import annotations

import zlib
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from clipscope_utils.datasets.captions import TEMPLATES, caption
from clipscope_utils.probes import ProbeError
from clipscope_utils.stats import bootstrap_ci

SCENARIOS = ("first", "second")
REPLACE = ("authors", "large", "small")
TIE_CREDIT = {"authors": 0.0, "large": 0.5, "small": 0.5}  # the authors counted a tie as a failure
PAIR_COLUMNS = ["image_id", "scenario", "pairing", "n_objects", "correct_text", "incorrect_text", "correct_order",
                "incorrect_order", "absent_class_id", "replaced_class_id"]
OBJECT_COLUMNS = ["image_id", "object_index", "class_name", "class_id", "size_rank"]
Rephrase = Mapping[str, str] | Callable[[list[str]], list[str]]


def _examples(ids) -> str:
    ids = list(ids)
    return ", ".join(repr(i) for i in ids[:3]) + (", ..." if len(ids) > 3 else "")


def _usable_objects(objects: pd.DataFrame, classes: Sequence[str], notes: list[str] | None) -> pd.DataFrame:
    """The objects of images that can be paired; images with a tied (or unknown) largest object or with
    every class are skipped, counted in ``notes``."""
    missing = [c for c in OBJECT_COLUMNS if c not in objects.columns]
    if missing:
        raise ProbeError(f"objects frame lacks columns {missing}")
    if len(classes) < 2:
        raise ProbeError(f"need the full class list to draw absent classes from, got {len(classes)} classes")
    obj = objects[OBJECT_COLUMNS]
    ids = pd.to_numeric(obj.class_id, errors="coerce")
    bad = obj[ids.isna() | (ids < 0) | (ids >= len(classes))]
    if not bad.empty:
        raise ProbeError(f"class_id outside 0..{len(classes) - 1}: image {bad.image_id.iloc[0]!r}")
    named = [classes[int(c)] for c in obj.class_id]
    wrong = obj[obj.class_name.to_numpy() != np.array(named, dtype=object)]
    if not wrong.empty:
        r = wrong.iloc[0]
        raise ProbeError(f"class_name {r.class_name!r} != classes[{r.class_id}] = {classes[int(r.class_id)]!r}"
                         f" (image {r.image_id!r}); pass the dataset's own class list")
    counts = obj.groupby("image_id").size()
    obj = obj[obj.image_id.isin(counts[counts >= 2].index)]
    if obj.empty:
        raise ProbeError("no image with >= 2 objects")
    n_images = obj.image_id.nunique()
    n_large = obj.assign(large=pd.to_numeric(obj.size_rank, errors="coerce") == 1).groupby("image_id").large.sum()
    tied = n_large[n_large != 1].index
    full = obj.groupby("image_id").class_id.nunique()
    every = full[(full >= len(classes)) & ~full.index.isin(tied)].index
    lines = []
    if len(tied):
        lines.append(f"matching: {len(tied)} of {n_images} images skipped: not exactly one object of size_rank 1 "
                     f"(largest area tied or unknown), e.g. {_examples(tied)}")
    if len(every):
        lines.append(f"matching: {len(every)} of {n_images} images skipped: they contain every class, so no class "
                     f"is absent, e.g. {_examples(every)}")
    obj = obj[~obj.image_id.isin(tied.union(every))]
    if obj.empty:
        raise ProbeError("no image can be paired: " + "; ".join(lines))
    if notes is not None:
        notes.extend(lines)
    return obj.sort_values(["image_id", "object_index"], kind="stable")


def _image_rng(seed: int, image_id) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(str(image_id).encode())])


def _authors(large: int, small: list[int], absent: np.ndarray, scenario: str):
    """(correct, [(incorrect, absent, replaced), ...]) of the authors' pairs: one per absent class."""
    if scenario == "first":
        return [large, *small], [([a, *small], a, large) for a in absent]
    return [*small, large], [([large, *small[:-1], a], a, small[-1]) for a in absent]


def _reading(large: int, small: list[int], rng: np.random.Generator, classes: int, present: list[int],
             scenario: str, replace: str):
    """(correct, [(incorrect, absent, replaced)]) of the "large" / "small" readings: one seeded pair."""
    small = [small[int(j)] for j in rng.permutation(len(small))]
    absent = int(rng.choice(np.setdiff1d(np.arange(classes), present)))
    drop = int(rng.integers(len(small)))
    rest = small[:drop] + small[drop + 1:]
    if scenario == "first":
        correct = [large, *small]
        incorrect = [absent, *small] if replace == "large" else [absent, large, *rest]
    else:
        correct = [*small, large]
        incorrect = [*small, absent] if replace == "large" else [*rest, large, absent]
    return correct, [(incorrect, absent, large if replace == "large" else small[drop])]


def matching_pairs(
    objects: pd.DataFrame, classes: Sequence[str], scenario: str, template: str = "and",
    replace: str = "authors", seed: int = 0, notes: list[str] | None = None,
) -> pd.DataFrame:
    """Correct / incorrect captions per image with >= 2 objects (single-object images are skipped).

    ``objects``: a SceneSet objects frame; ``classes``: all class names, index = class_id. Orders are
    tuples of class ids in caption order; ``replaced_class_id`` is the class the absent one stands in
    for. ``replace="authors"`` gives one row per (image, absent class), the readings one row per image.
    ``pairing`` records ``replace``. Lines about skipped images are appended to ``notes`` when given. Rows
    sorted by ``image_id``.
    """
    if scenario not in SCENARIOS:
        raise ProbeError(f"scenario must be one of {SCENARIOS}, got {scenario!r}")
    if replace not in REPLACE:
        raise ProbeError(f"replace must be one of {REPLACE}, got {replace!r}")
    if template not in TEMPLATES:
        raise ProbeError(f"unknown caption template {template!r}; allowed: {sorted(TEMPLATES)}")
    obj = _usable_objects(objects, classes, notes)

    rows = []
    for image_id, group in obj.groupby("image_id", sort=True):
        cls = group.class_id.astype(int).tolist()
        large_at = int(np.flatnonzero(pd.to_numeric(group.size_rank).to_numpy() == 1)[0])
        small = [cls[i] for i in range(len(cls)) if i != large_at]
        if replace == "authors":
            absent = np.setdiff1d(np.arange(len(classes)), cls)
            correct, wrong = _authors(cls[large_at], small, absent, scenario)
        else:
            correct, wrong = _reading(cls[large_at], small, _image_rng(seed, image_id), len(classes), cls,
                                      scenario, replace)
        correct_text = caption([classes[c] for c in correct], template)
        for incorrect, a, replaced in wrong:
            rows.append({
                "image_id": image_id, "scenario": scenario, "pairing": replace, "n_objects": len(cls),
                "correct_text": correct_text, "incorrect_text": caption([classes[c] for c in incorrect], template),
                "correct_order": tuple(correct), "incorrect_order": tuple(incorrect),
                "absent_class_id": int(a), "replaced_class_id": int(replaced),
            })
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def _ask(rephrase: Callable[[list[str]], list[str]], texts: list[str]) -> list[str]:
    answers = list(rephrase(list(texts)))
    if len(answers) != len(texts):
        raise ProbeError(f"rephrase returned {len(answers)} captions for {len(texts)}; it must return one per caption")
    return answers


def remembered(rephrase: Callable[[list[str]], list[str]]) -> Callable[[list[str]], list[str]]:
    """A plug-in rephraser that is asked about each caption once, however many models score it."""
    seen: dict[str, str] = {}

    def ask(texts: list[str]) -> list[str]:
        new = [t for t in dict.fromkeys(texts) if t not in seen]
        if new:
            seen.update(zip(new, _ask(rephrase, new)))
        return [seen[t] for t in texts]

    return ask


def rephrased(pairs: pd.DataFrame, rephrase: Rephrase | None, notes: list[str] | None = None) -> pd.DataFrame:
    """``pairs`` with every correct / incorrect caption replaced by its rephrasing (paper A's COCO half of
    Table 6 used GPT-4o rephrasings); the template text stays in ``correct_source_text`` /
    ``incorrect_source_text``.

    ``rephrase``: a mapping (captions it lacks keep their template text, counted in ``notes``) or a
    callable taking the list of distinct captions and returning one rephrasing each; None keeps the text.
    """
    out = pairs.assign(correct_source_text=pairs.correct_text, incorrect_source_text=pairs.incorrect_text)
    if rephrase is None:
        return out
    texts = list(dict.fromkeys([*pairs.correct_text, *pairs.incorrect_text]))
    if isinstance(rephrase, Mapping):
        lacking = sum(t not in rephrase for t in texts)
        new = {t: rephrase.get(t, t) for t in texts}
        if lacking and notes is not None:
            where = f" ({', '.join(dict.fromkeys(pairs.scenario))} scenario)" if "scenario" in pairs else ""
            notes.append(f"rephrase{where}: {lacking} of {len(texts)} captions have no rephrasing and keep their "
                         f"template text")
    elif callable(rephrase):
        new = dict(zip(texts, _ask(rephrase, texts)))
    else:
        raise ProbeError(f"rephrase must be a mapping caption -> rephrasing, a callable on a list of captions, "
                         f"or None; got {type(rephrase).__name__}")
    bad = [t for t, r in new.items() if not isinstance(r, str) or not r.strip()]
    if bad:
        raise ProbeError(f"rephrase gave an empty or non-text rephrasing for {len(bad)} captions, e.g. {bad[0]!r}")
    return out.assign(correct_text=out.correct_source_text.map(new), incorrect_text=out.incorrect_source_text.map(new))


def matching_hits(image_emb: np.ndarray, correct_emb: np.ndarray, incorrect_emb: np.ndarray,
                  tie: float = 0.5) -> np.ndarray:
    """Per row: 1.0 if cos(image, correct) > cos(image, incorrect), 0.0 if lower, ``tie`` on an exact tie.

    Embeddings are (N, D) and L2-normalised here (float64); an exact tie means equal computed cosines
    (e.g. identical caption embeddings). ``tie``: 0.5 scores it as a coin flip would on average, 0.0 as
    a failure (the authors' strict ``>``, :data:`TIE_CREDIT`).
    """
    if tie not in (0.0, 0.5):
        raise ProbeError(f"tie must be 0.5 (coin flip) or 0.0 (a tie fails, the authors' strict >), got {tie!r}")
    arrays = [np.asarray(a, dtype=np.float64) for a in (image_emb, correct_emb, incorrect_emb)]
    shapes = [a.shape for a in arrays]
    if arrays[0].ndim != 2 or arrays[0].size == 0 or len(set(shapes)) != 1:
        raise ProbeError(f"image, correct and incorrect embeddings must be non-empty (N, D) of one shape, got {shapes}")
    for name, a in zip(("image", "correct", "incorrect"), arrays):
        if not np.isfinite(a).all():
            raise ProbeError(f"{name} embeddings contain NaN or infinite values")
        zero = np.flatnonzero(np.linalg.norm(a, axis=1) == 0)
        if zero.size:
            raise ProbeError(f"{name} embedding row {int(zero[0])} is a zero vector; cosine undefined")
    img, pos, neg = (a / np.linalg.norm(a, axis=1, keepdims=True) for a in arrays)
    s_pos, s_neg = (img * pos).sum(axis=1), (img * neg).sum(axis=1)
    return np.where(s_pos > s_neg, 1.0, np.where(s_pos < s_neg, 0.0, float(tie)))


def matching_table(frame: pd.DataFrame, by: Sequence[str] = ("scenario",), n_boot: int = 1000,
                   seed: int = 0) -> pd.DataFrame:
    """Matching accuracy per group, bootstrapped over *images*: ``n`` (= ``n_images``), ``n_pairs``, ``rate``,
    ``ci_low``, ``ci_high``.

    ``rate`` is the share of pairs won (the authors' accuracy); its 95 % interval resamples whole images,
    because the pairs of one image (one per absent class under ``replace="authors"``) are not independent.
    With one pair per image this is the ordinary bootstrap. Groups: ``model`` and ``paper_model`` when
    present, always ``pairing`` (how the pairs were built: variants never pool), then ``by`` (e.g. ``("scenario", "n_objects")``).
    """
    keys = list(dict.fromkeys([*[c for c in ("model", "paper_model") if c in frame], "pairing", *by]))
    missing = [c for c in (*keys, "image_id", "hit") if c not in frame.columns]
    if missing:
        raise ProbeError(f"frame lacks columns {missing}; pass matching pairs with their hit column")
    if frame.empty:
        raise ProbeError("frame is empty: no pairs to rate")
    rows = []
    for key, group in frame.groupby(keys, sort=True):
        per_image = group.groupby("image_id", sort=False).hit.agg(["sum", "size"])
        won, pairs = per_image["sum"].to_numpy(dtype=float), per_image["size"].to_numpy(dtype=float)
        lo, hi = bootstrap_ci(np.arange(len(won)), stat=lambda rows_: _ratio(won, pairs, rows_),
                              n_boot=n_boot, seed=seed)
        rows.append({**dict(zip(keys, key)), "n": len(won), "n_images": len(won), "n_pairs": int(pairs.sum()),
                     "rate": float(won.sum() / pairs.sum()), "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=[*keys, "n", "n_images", "n_pairs", "rate", "ci_low", "ci_high"])


def _ratio(won: np.ndarray, pairs: np.ndarray, rows: np.ndarray) -> float:
    """Pairs won over pairs scored, in one bootstrap resample of images (``rows`` indexes them)."""
    i = rows.astype(np.int64)
    return float(won[i].sum() / pairs[i].sum())
