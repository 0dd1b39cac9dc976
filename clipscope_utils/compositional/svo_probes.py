"""SVO-Probes (Hendricks & Nematzadeh 2021): one sentence, a positive and a negative image, as
:class:`ImageChoiceItem` s; the model is right when the sentence scores higher with the positive image.

Format, read (not copied) from github:deepmind/svo_probes @206219e (``README.md``,
``probing_image_text_models.ipynb``; the CSV itself is not in the snapshot we could read):

* ``<root>/svo_probes.csv``: a header line, one probe a row, with ``sentence``, ``pos_triplet``,
  ``neg_triplet``, ``pos_url``, ``neg_url``, ``pos_image_id``, ``neg_image_id`` (integers) and the negative's
  type ``subj_neg``, ``verb_neg``, ``obj_neg`` (True / False as pandas writes them). Only the sentence, the
  two image ids and the three types are needed. A column ``index`` (as third-party readers of the file
  use) gives ``item_id``; without it ``item_id`` is the row's position (0-based, header excluded).
* images: the release ships URLs only (``image_urls.txt``); save each as ``<images>/<image_id>.jpg``
  (``.jpeg`` or ``.png`` are accepted too; the file is found by its id, as in ComCLIP's SVO-Probes code).
  Many URLs are dead, so ``skip_missing=True`` drops the rows whose images are missing and counts them in
  the result's ``dropped`` (else the first missing files are named in an error).

Subsets follow the authors' notebook, which keeps rows whose negative differs in exactly one of subject,
verb, object: ``svo-subject``, ``svo-verb``, ``svo-object``; rows of none or several types are in no subset
(counted in ``dropped``). Paper B's "SVO-Probes Relation" column is ``svo-verb``. The score is pairwise
(positive above negative, as ComCLIP scores SVO-Probes), not the notebook's per-pair match classifier.
"""

from __future__ import annotations

from .items import ImageChoiceItem, ItemList
from .readers import (ImageIds, flag, folder, image_dirs, keep_present, names, need_file, read_csv, text,
                      unique_ids)

SVO_PROBES_CSV = "svo_probes.csv"
SVO_PROBES_COLUMNS = ("sentence", "pos_triplet", "neg_triplet", "pos_url", "neg_url", "pos_image_id",
                      "neg_image_id", "subj_neg", "verb_neg", "obj_neg")
SVO_PROBES_NEEDED = ("sentence", "pos_image_id", "neg_image_id", "subj_neg", "verb_neg", "obj_neg")
#: subset -> the CSV column marking its negative type
SVO_PROBES_TYPES = {"svo-subject": "subj_neg", "svo-verb": "verb_neg", "svo-object": "obj_neg"}
SVO_PROBES_SUBSETS = tuple(SVO_PROBES_TYPES)
NO_SINGLE_TYPE = "negative of no single type"


def check_svo_probes(root, images) -> None:
    """The CSV and the image folder exist (nothing is read)."""
    need_file(folder(root, "SVO-Probes") / SVO_PROBES_CSV, "SVO-Probes")
    image_dirs(images, "SVO-Probes")


def load_svo_probes(root, images, subsets=SVO_PROBES_SUBSETS, skip_missing: bool = False) -> ItemList:
    """SVO-Probes rows of the requested negative types as :class:`ImageChoiceItem` s (see the module doc).

    ``images``: the folder (or several) where the images were saved as ``<image_id>.jpg``.
    """
    chosen = names(subsets, SVO_PROBES_SUBSETS, "SVO-Probes subset")
    path = folder(root, "SVO-Probes") / SVO_PROBES_CSV
    rows = read_csv(path, "SVO-Probes", SVO_PROBES_NEEDED)
    files = ImageIds(images, "SVO-Probes")
    ids = [r["index"].strip() if "index" in r else str(n) for n, r in enumerate(rows)]
    unique_ids(ids, f"SVO-Probes {path} column index")
    items, untyped = [], 0
    for n, (item_id, row) in enumerate(zip(ids, rows)):
        where = f"SVO-Probes {path} row {n}"
        types = [s for s, col in SVO_PROBES_TYPES.items() if flag(row[col], f"{where} {col}")]
        sentence = text(row["sentence"], f"{where} sentence")
        pos, neg = (text(row[k], f"{where} {k}").strip() for k in ("pos_image_id", "neg_image_id"))
        if len(types) != 1:
            untyped += 1
            continue
        if types[0] in chosen:
            items.append(ImageChoiceItem(item_id=item_id, subset=types[0], text=sentence,
                                         true_image=files.path(pos), false_images=(files.path(neg),)))
    kept = keep_present(items, lambda it: (it.true_image, *it.false_images), skip_missing, "SVO-Probes")
    kept.dropped[NO_SINGLE_TYPE] = untyped
    kept.dropped = {k: v for k, v in kept.dropped.items() if v}
    return kept
