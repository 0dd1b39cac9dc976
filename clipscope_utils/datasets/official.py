"""The authors' released ComCO / SimCO folders (Hugging Face ``clip-oscope/simco-comco``) as a ``SceneSet``.

Layout of the release (data_dir ``ComCo`` or ``SimCo``)::

    <snapshot>/ComCo/CoCo-OneObject/<class>.png                  single-object references
    <snapshot>/ComCo/CoCo-ThreeObject-BRBig/<c1>_<c2>_<c3>.png   multi-object scenes
    <snapshot>/ComCo/CoCo-FourObject-Middle-Big/...

The scene folder name gives the object count (count word ``One`` .. ``Five``) and the slot of the
large object (``ULBig``, ``URBig``, ``BLBig``, ``BRBig``, ``Middle-Big``/``MBig``); the file name
lists the classes in spatial slot order. Nothing else is stored (no sizes, no boxes), so boxes and
areas are NaN and ``size_rank`` only says large (1) or small (2).

Rules chosen here (each is also what the functions below implement):

* **Splitting file names.** The class vocabulary is the set of single-object file stems of the
  dataset (``<class>.png``; a class may contain spaces or underscores). A multi-object stem is cut
  at ``_`` into tokens and read left to right, taking at each step the *longest* run of tokens that
  is a known class, backtracking to shorter runs only when the rest cannot be read, and accepting
  only readings with exactly the folder's object count. When no single-object folder is available
  (a lone scene folder without its ``*-OneObject`` sibling) the stem is simply split at ``_``, as
  the authors' own scripts do. A stem with no reading raises :class:`DatasetError` naming the file.
* **Which name position is the large object.** Names are in reading order (top to bottom, left to
  right) of the occupied slots, so ``UL`` is always first and ``BR`` always last. ``UR`` is taken
  as the second and ``BL`` as the second to last: true of the 2x2 grid and the quincunx, and
  whenever ``UL`` (resp. ``BR``) is occupied too, an *assumption* for other layouts (the release
  documents no geometry). ``Middle`` is position ``(n - 1) // 2`` (the authors' scripts probe
  position 2 of 4 for ``FourObject-Middle-Big``).
* **Slots.** ``objects.slot`` holds the raw code (``"BR"``, ``"Middle"``) where the name position
  can be tied to the layout: always for the large object, and for every object of a four-object
  scene whose large object is in a corner (the 2x2 grid ``UL, UR, BL, BR``). Elsewhere the slot is
  the name position as a string (``"0"``, ``"1"``, ...). :data:`SLOT_NAMES` spells the codes out.
  Single-object images have slot ``""``, ``is_large`` False and ``size_rank`` 1, as generated ones.
* **Ids.** ``image_id`` is ``<scene folder>/<file stem>``, the same whichever level was given;
  ``class_id`` indexes the sorted class list.
* **Captions.** One caption per image, template ``"and"``: paper A's form "a X and a Y and a Z" in
  file-name order, built by :func:`captions.caption` like the generated captions (so "an apple");
  ``_`` in a class name is read as a space in the text; ``caption_position`` = name position + 1.
* **Sizes.** Images are 512x512 by the release's description; ``verify_images=True`` opens every
  file, records its real size and turns a corrupt file into a DatasetError naming it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pandas as pd

from .captions import caption
from .tables import CAPTION_COLUMNS, IMAGE_COLUMNS, OBJECT_COLUMNS, DatasetError, SceneSet, open_image

COUNT_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
SLOT_NAMES = {
    "UL": "upper-left", "UR": "upper-right", "BL": "bottom-left", "BR": "bottom-right",
    "Middle": "middle", "M": "middle",
}
FAMILIES = {"comco": "ComCo", "simco": "SimCo"}  # family key -> data_dir name of the release
OFFICIAL_SIZE = 512
GRID_2X2 = ("UL", "UR", "BL", "BR")
LAYOUT_HELP = (
    "expected the layout of Hugging Face clip-oscope/simco-comco: <snapshot>/ComCo|SimCo/<scene folder>/"
    "<class1>_<class2>_..._<classN>.png with scene folders named <Prefix>-<Count>Object[-<Slot>Big], "
    "e.g. CoCo-OneObject, CoCo-ThreeObject-BRBig, CoCo-FourObject-Middle-Big; "
    f"counts {[w.title() for w in COUNT_WORDS]}, "
    f"slots {list(SLOT_NAMES)}"
)

_SCENE_RE = re.compile(r"^(?P<prefix>[A-Za-z]+)-(?P<count>[A-Za-z]+?)Objects?(?:-(?P<big>.+))?$", re.IGNORECASE)
_BIG_RE = re.compile(r"^(?P<code>[A-Za-z]+?)-?Big$", re.IGNORECASE)


@dataclass(frozen=True)
class SceneFolder:
    """One folder of the release: where it is, how many objects its images hold, where the large one is."""

    path: Path
    n_objects: int
    big: str  # raw slot code of the large object; "" for the single-object folder

    @property
    def kind(self) -> str:
        return "single" if self.n_objects == 1 else "multi"


def parse_scene_folder(path: Path) -> SceneFolder | None:
    """The folder's count and large slot, None if its name is not a scene folder name at all.

    A name that looks like a scene folder but has an unknown count word or slot raises, so a
    release with an unexpected variant fails loudly instead of being skipped.
    """
    m = _SCENE_RE.match(path.name)
    if m is None:
        return None
    word = m["count"].lower()
    if word not in COUNT_WORDS:
        raise DatasetError(f"scene folder {path}: unknown count word {m['count']!r}; {LAYOUT_HELP}")
    n = COUNT_WORDS[word]
    big = _slot_code(path, m["big"]) if m["big"] else ""
    if n > 1 and not big:
        raise DatasetError(f"scene folder {path}: a multi-object folder must name its large slot; {LAYOUT_HELP}")
    if n == 1 and big:
        raise DatasetError(f"scene folder {path}: a single-object folder cannot have a large slot; {LAYOUT_HELP}")
    if big:
        big_position(big, n)  # validate now, with the folder in the message
    return SceneFolder(path, n, big)


def _slot_code(path: Path, text: str) -> str:
    """``"BRBig"`` -> ``"BR"``, ``"Middle-Big"`` -> ``"Middle"`` (any case; spelled as in SLOT_NAMES)."""
    m = _BIG_RE.match(text)
    codes = {c.lower(): c for c in SLOT_NAMES}
    if m is None or m["code"].lower() not in codes:
        raise DatasetError(f"scene folder {path}: cannot read the large slot from {text!r}; {LAYOUT_HELP}")
    return codes[m["code"].lower()]


def big_position(code: str, n: int) -> int:
    """Name position (0-based) of the large object in an ``n``-object folder whose large slot is ``code``."""
    position = {"UL": 0, "UR": 1, "BL": n - 2, "BR": n - 1}.get(code, (n - 1) // 2)
    if not 0 <= position < n:
        raise DatasetError(f"slot {code!r} does not exist in a {n}-object layout; {LAYOUT_HELP}")
    return position


def slots_of(big: str, n: int) -> list[str]:
    """Slot per name position: codes where the layout is known, else the position as a string."""
    if not big:
        return [""] * n
    if n == len(GRID_2X2) and big in GRID_2X2:
        return list(GRID_2X2)
    slots = [str(k) for k in range(n)]
    slots[big_position(big, n)] = big
    return slots


# -- locating the folders -------------------------------------------------------------------------
def _family_key(family: str | None) -> str | None:
    if family is None:
        return None
    key = family.lower()
    if key not in FAMILIES:
        raise DatasetError(f"unknown family {family!r}; allowed: {sorted(FAMILIES)}")
    return key


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _scene_folders(folder: Path) -> list[SceneFolder]:
    return [s for s in map(parse_scene_folder, _subdirs(folder)) if s is not None]


def _single_siblings(folder: Path) -> list[SceneFolder]:
    """The single-object folders next to ``folder`` with the same prefix (``CoCo-OneObject``), others ignored."""
    prefix = _SCENE_RE.match(folder.name)["prefix"].lower()
    matches = ((p, _SCENE_RE.match(p.name)) for p in _subdirs(folder.parent))
    return [SceneFolder(p, 1, "") for p, m in matches
            if m and m["prefix"].lower() == prefix and m["count"].lower() == "one" and not m["big"]]


def _family_named(path: Path) -> str | None:
    """The family whose data_dir is called like ``path`` (``ComCo`` -> "comco"), else None."""
    return path.name.lower() if path.name.lower() in FAMILIES else None


def _data_dir(root: Path, family: str | None) -> tuple[Path, str | None]:
    """The data_dir to read below ``root`` and its family; ``root`` itself unless it is a snapshot root."""
    found = {p.name.lower(): p for p in _subdirs(root) if _family_named(p)}
    if not found:
        named = _family_named(root)
        if family and named and family != named:
            raise DatasetError(f"{root} is the {FAMILIES[named]} data_dir but family={family!r} was asked for")
        return root, family or named
    if family is None:
        if len(found) > 1:
            both = sorted(FAMILIES[k] for k in found)
            raise DatasetError(f"{root} holds both {both}; pass family='comco' or 'simco'")
        family = next(iter(found))
    if family not in found:
        raise DatasetError(f"{root} has no {FAMILIES[family]}/ folder (found {sorted(p.name for p in found.values())})")
    return found[family], family


def locate(folder: Path, family: str | None) -> tuple[list[SceneFolder], list[SceneFolder], str | None]:
    """Scene folders to load, the single-object folders giving the vocabulary, and the family.

    ``folder`` may be the snapshot root, a data_dir or one scene folder; for a lone multi-object
    scene folder a ``*-OneObject`` sibling still supplies the class vocabulary (not its images).
    """
    if not folder.is_dir():
        raise DatasetError(f"official dataset folder {folder} does not exist; {LAYOUT_HELP}")
    own = parse_scene_folder(folder)
    if own is not None:
        vocab = [own] if own.n_objects == 1 else _single_siblings(folder)
        return [own], vocab, family or _family_named(folder.parent)
    data_dir, family = _data_dir(folder, family)
    scenes = _scene_folders(data_dir)
    if not scenes:
        raise DatasetError(f"no recognisable scene folders in {data_dir}; {LAYOUT_HELP}")
    return scenes, [s for s in scenes if s.n_objects == 1], family


# -- reading names --------------------------------------------------------------------------------
def _pngs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() == ".png" and not p.name.startswith("."))


def _readings(tokens: list[str], vocab: set[str], start: int = 0) -> Iterator[list[str]]:
    """Every way to cut ``tokens[start:]`` into known classes, longest first run first."""
    if start == len(tokens):
        yield []
        return
    for stop in range(len(tokens), start, -1):
        name = "_".join(tokens[start:stop])
        if name in vocab:
            for rest in _readings(tokens, vocab, stop):
                yield [name, *rest]


def split_name(path: Path, n: int, vocab: set[str]) -> list[str]:
    """Class names of a multi-object file, in name (slot) order; see the module docstring for the rule."""
    tokens = path.stem.split("_")
    first = None
    for names in _readings(tokens, vocab) if vocab else iter([tokens]):
        if len(names) == n:
            return names
        first = first or names
    if first is None:
        raise DatasetError(
            f"cannot read file name {path}: {path.stem!r} is not a '_'-joined list of known classes "
            f"(the {len(vocab)} single-object file names); {LAYOUT_HELP}"
        )
    raise DatasetError(
        f"file {path}: its folder says {n} objects but the name holds {len(first)} ({first}); {LAYOUT_HELP}"
    )


def _display(name: str) -> str:
    return name.replace("_", " ")


def image_rows(scene: SceneFolder, file: Path, root: Path, names: list[str], class_ids: dict[str, int],
               verify: bool) -> tuple[tuple, list[tuple], tuple]:
    """The images row, objects rows and captions row of one image file."""
    image_id = f"{scene.path.name}/{file.stem}"
    width = height = OFFICIAL_SIZE
    if verify:
        width, height = open_image(file).size
    n = len(names)
    big = big_position(scene.big, n) if scene.big else None
    nan = float("nan")
    image = (image_id, file.relative_to(root).as_posix(), scene.kind, n, width, height, scene.big)
    objects = [
        (image_id, k, name, class_ids[name], k == big, 1 if big is None or k == big else 2, slot,
         nan, nan, nan, nan, nan, "", k + 1)
        for k, (name, slot) in enumerate(zip(names, slots_of(scene.big, n)))
    ]
    text = caption([_display(c) for c in names], "and")
    return image, objects, (image_id, "and", text, "|".join(names))


def _vocabulary(folders: list[SceneFolder]) -> set[str]:
    return {p.stem for s in folders for p in _pngs(s.path)}


def _refuse_arrow_export(root: Path) -> None:
    """A ``datasets.save_to_disk`` folder holds Arrow tables, not the release's image folders: say how to get those."""
    markers = ("dataset_dict.json", "state.json", "dataset_info.json")
    if not root.is_dir():
        return
    if any((root / m).is_file() for m in markers) or any(root.glob("*.arrow")) or any(root.glob("*/*.arrow")):
        raise DatasetError(
            f"{root} holds Arrow files written by Hugging Face `datasets` (save_to_disk); clipscope reads the "
            "release's image folders instead: huggingface_hub.snapshot_download(repo_id='clip-oscope/simco-comco', "
            "repo_type='dataset', local_dir=DIR), then pass DIR (or DIR/ComCo)"
        )


def load_official(folder: str | Path, family: str | None = None, verify_images: bool = False) -> SceneSet:
    """Read the released ComCO / SimCO images (snapshot root, data_dir or one scene folder) as a SceneSet.

    ``family`` ("comco" / "simco") picks the data_dir when ``folder`` is a snapshot root holding
    both. ``verify_images`` decodes every file (slow on the full release) so corruption surfaces
    here, naming the file, instead of in the middle of a probe.
    """
    root = Path(folder)
    _refuse_arrow_export(root)
    scenes, vocab_folders, fam = locate(root, _family_key(family))
    vocab = _vocabulary(vocab_folders)
    parsed = [
        (scene, file, [file.stem] if scene.n_objects == 1 else split_name(file, scene.n_objects, vocab))
        for scene in sorted(scenes, key=lambda s: (s.n_objects, s.path.name))
        for file in _pngs(scene.path)
    ]
    if not parsed:
        raise DatasetError(f"no .png images in the scene folders under {root}; {LAYOUT_HELP}")
    classes = sorted(vocab | {c for _, _, names in parsed for c in names})
    class_ids = {c: i for i, c in enumerate(classes)}
    rows = [image_rows(scene, file, root, names, class_ids, verify_images) for scene, file, names in parsed]
    images = pd.DataFrame([r[0] for r in rows], columns=IMAGE_COLUMNS)
    duplicated = images.image_id[images.image_id.duplicated()].tolist()
    if duplicated:
        raise DatasetError(f"{root}: image ids are not unique (file names differing only in case?): {duplicated[:5]}")
    meta = {
        "source": "official",
        "family": fam or "",
        "folders": sorted({s.path.name for s, _, _ in parsed}),
        "sizes_verified": verify_images,
        "slot_names": SLOT_NAMES,
    }
    return SceneSet(
        root=root,
        classes=classes,
        images=images,
        objects=pd.DataFrame([o for r in rows for o in r[1]], columns=OBJECT_COLUMNS),
        captions=pd.DataFrame([r[2] for r in rows], columns=CAPTION_COLUMNS),
        meta=meta,
    )
