"""ComVG, Compositional Visual Genome (Jiang et al. 2022, ComCLIP): one sentence, a positive and a negative
Visual Genome image, as :class:`ImageChoiceItem` s; right when the sentence scores higher with the positive.

Format, read (not copied) from github:eric-ai-lab/ComCLIP @75ef16e (``datasets/ComVG.csv``,
``ComVG/clip_baseline.py``, ``README.md``):

* ``<root>/ComVG.csv``: a header line and 5,400 rows with ``id`` (1..5400, unique), ``sentence``,
  ``pos_triplet`` ("man,sit,table"), ``neg_triplet`` ("('dog', 'sit', 'table')"), ``pos_image_id``,
  ``neg_image_id`` (Visual Genome image ids), ``neg_value`` (what the negative changes: ``subject``,
  ``verb`` or ``object``; 1536 / 1280 / 2584 rows) and ``sentence_id``. ``item_id`` is ``id``.
* images: Visual Genome's ``<image_id>.jpg`` (ComCLIP reads ``<image folder>/<id>.jpg``), in one folder or
  several (``VG_100K``, ``VG_100K_2``); ``.jpeg`` / ``.png`` are accepted too.

The score is ComCLIP's: right when the positive image scores strictly above the negative. Subsets are the
negative's type, ``comvg-subject``, ``comvg-verb``, ``comvg-object``. Paper B lists ComVG under "Relation"
and says it assesses verb (relation) understanding, so its column is ``comvg-verb`` (a decision: paper B
does not name the rows it used).
"""

from __future__ import annotations

from .items import BenchmarkError, ImageChoiceItem, ItemList
from .readers import ImageIds, folder, image_dirs, keep_present, names, need_file, read_csv, text, unique_ids

COMVG_CSV = "ComVG.csv"
COMVG_COLUMNS = ("id", "sentence", "pos_triplet", "neg_triplet", "pos_image_id", "neg_image_id", "neg_value",
                 "sentence_id")
COMVG_NEEDED = ("id", "sentence", "pos_image_id", "neg_image_id", "neg_value")
#: subset -> the ``neg_value`` of its rows
COMVG_TYPES = {"comvg-subject": "subject", "comvg-verb": "verb", "comvg-object": "object"}
COMVG_SUBSETS = tuple(COMVG_TYPES)


def check_comvg(root, images) -> None:
    """The CSV and the image folder(s) exist (nothing is read)."""
    need_file(folder(root, "ComVG") / COMVG_CSV, "ComVG")
    image_dirs(images, "ComVG")


def load_comvg(root, images, subsets=COMVG_SUBSETS, skip_missing: bool = False) -> ItemList:
    """ComVG rows of the requested negative types as :class:`ImageChoiceItem` s (see the module doc).

    ``images``: the Visual Genome image folder, or several. ``skip_missing`` drops rows whose images are
    missing (counted in the result's ``dropped``); by default the first missing files are named in an error.
    """
    chosen = names(subsets, COMVG_SUBSETS, "ComVG subset")
    path = folder(root, "ComVG") / COMVG_CSV
    rows = read_csv(path, "ComVG", COMVG_NEEDED)
    files = ImageIds(images, "ComVG")
    unique_ids([r["id"].strip() for r in rows], f"ComVG {path} column id")
    subset_of = {v: s for s, v in COMVG_TYPES.items()}
    items = []
    for n, row in enumerate(rows):
        where = f"ComVG {path} row {n} (id {row['id']!r})"
        value = row["neg_value"].strip()
        if value not in subset_of:
            raise BenchmarkError(f"{where}: neg_value must be one of {sorted(subset_of)}, got {value!r}")
        item_id = text(row["id"], f"{where} id").strip()
        sentence = text(row["sentence"], f"{where} sentence")
        pos, neg = (text(row[k], f"{where} {k}").strip() for k in ("pos_image_id", "neg_image_id"))
        if subset_of[value] in chosen:
            items.append(ImageChoiceItem(item_id=item_id, subset=subset_of[value], text=sentence,
                                         true_image=files.path(pos), false_images=(files.path(neg),)))
    return keep_present(items, lambda it: (it.true_image, *it.false_images), skip_missing, "ComVG")
