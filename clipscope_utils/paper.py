"""Paper A's published numbers (Tables 1–6), to print beside what the book measures.

``data/paper_a_tables.csv`` is a transcription of the paper's tables, one row per cell in percent
(see ``../shared/reference/README.md``). The book never copies these into a result: they are only
joined next to measured rates, as the ``paper`` column, so a reader sees both.
"""

from __future__ import annotations

from functools import lru_cache
import pandas as pd

from .paths import data_file

TABLES_CSV = data_file("paper_a_tables.csv")

# table column -> probe position (1-based): caption positions for TOR, size order for IOR/I2TOR
POSITION_COLUMNS = {"first": 1, "second": 2, "third": 3, "fourth": 4,
                    "large": 1, "small_1": 2, "small_2": 3, "small_3": 4}
SCENARIO_COLUMNS = {"first_scenario": "first", "second_scenario": "second"}

# The one measure behind each table's published numbers, as (column of a measured table, its value), by
# (task, dataset). Read from the authors' public scripts (clip-oscope/clip-oscope), not from the paper, which
# does not say:
# * TOR (Tables 1, 3, 5): their TOR scripts print a top-1 rate over all classes and "Word k Accuracy in
#   Correct Top-n", the share of position k among the captions whose top-n classes are their own n objects
#   (our "conditional"). The tables' rows sum to 100 %, which only the second does; Table 1's CLIP openAI
#   row sums to 92.29 because their top-n test matched substrings ("car" in "carrot").
# * IOR on ComCO (Table 2): their IOR script prints the conditional rate and "object k has most similarity
#   between n objects" ("own"); Table 2's rows are exact fractions over small counts (94/110, 15/23), i.e.
#   conditional. IOR and I2TOR on COCO (Table 4) sum to 100 % with no small denominators: read as "own".
# * Matching (Table 6): their own caption pairs, every absent class, ties counted as failures
#   (``replace="authors"``, column ``pairing``).
# A number is never put beside another measure.
PAPER_MEASURES = {
    ("TOR", "ComCO"): ("measure", "conditional"), ("TOR", "COCO"): ("measure", "conditional"),
    ("IOR", "ComCO"): ("measure", "conditional"), ("IOR", "COCO"): ("measure", "own"),
    ("I2TOR", "COCO"): ("measure", "own"), ("I2TOR", "ComCO"): ("measure", "own"),
    ("image_text_matching", "ComCO"): ("pairing", "authors"), ("image_text_matching", "COCO"): ("pairing", "authors"),
}


def paper_measure(task: str, dataset: str = "ComCO") -> str | None:
    """The measure (or pairing) paper A's numbers of ``task`` on ``dataset`` were computed with."""
    return PAPER_MEASURES.get((task, dataset), (None, None))[1]


# Rows whose paper name differs from the model's paper_name elsewhere in the paper. Table 5's "CLIP": the
# paper introduces CLIP as "OpenAI's Contrastive Language-Image Pre-training (CLIP) model [13]" and, right
# before Table 5 (section 4.2.1), speaks of "the CLIP model" that OpenAI introduced with causal attention,
# so the row is read as OpenAI's CLIP. Its numbers (56.28 / 22.71 / 13.17 / 7.48) are not Table 1's "CLIP
# openAI" row (50.31 / ...), so the authors ran it separately (backbone or run unstated): a reading, not a fact.
ROW_MODELS = {(5, "CLIP"): "CLIP openAI"}


@lru_cache(maxsize=1)
def paper_tables() -> pd.DataFrame:
    """All transcribed cells: table, dataset, task, model, column, value_percent."""
    if not TABLES_CSV.is_file():
        raise FileNotFoundError(f"{TABLES_CSV} is missing; it ships with the repository")
    return pd.read_csv(TABLES_CSV)


def published(task: str, dataset: str = "ComCO", table: int | None = None) -> pd.DataFrame:
    """Published rates of one task as fractions: ``paper_model``, ``position`` or ``scenario``, ``paper``.

    ``task`` is TOR, IOR, I2TOR or image_text_matching; ComCO tables use 4-object scenes.
    """
    t = paper_tables()
    rows = t[(t.task == task) & (t.dataset == dataset)]
    if table is not None:
        rows = rows[rows.table == table]
    if rows.empty:
        raise KeyError(f"paper A has no {task} table for {dataset}" + (f" (table {table})" if table else ""))
    models = [ROW_MODELS.get((int(t), m), m) for t, m in zip(rows.table, rows.model)]
    out = pd.DataFrame({"table": rows.table.to_numpy(), "paper_model": models,
                        "paper": rows.value_percent.to_numpy() / 100})
    if task == "image_text_matching":
        out["scenario"] = rows.column.map(SCENARIO_COLUMNS).to_numpy()
    else:
        out["position"] = rows.column.map(POSITION_COLUMNS).astype(int).to_numpy()
    return out.reset_index(drop=True)


def beside(measured: pd.DataFrame, task: str, on: str, model_column: str = "paper_model",
           dataset: str = "ComCO", table: int | None = None, n_objects: int | None = 4) -> pd.DataFrame:
    """``measured`` with a ``paper`` column joined where the paper has the same model, cell and measure.

    ``measured`` needs ``model_column`` (the paper's model name for the row, empty when the paper has
    none), ``on`` (``position`` or ``scenario``) and the task's measure column (:data:`PAPER_MEASURES`:
    ``measure`` for retrieval, ``pairing`` for matching). Rows of another measure keep a NaN ``paper``:
    the published number was computed differently. A table without any row of the paper's measure is a
    mistake and raises. Paper A's tables are for 4-object scenes, so only rows with ``n_objects == 4``
    (when that column exists) get a number.
    """
    column, value = PAPER_MEASURES.get((task, dataset), (None, None))
    if column is not None:
        if column not in measured:
            raise ValueError(f"measured lacks column {column!r}: paper A's {task} numbers are of {column} "
                             f"{value!r}, so the table must say which {column} each row is")
        if not (measured[column] == value).any():
            raise ValueError(f"no row has {column} == {value!r} (got {sorted(set(measured[column]))}): paper A's "
                             f"{task} numbers are never shown beside another {column}; rate {column}={value!r}")
    pub = published(task, dataset, table).drop(columns="table")
    pub = pub.drop_duplicates(["paper_model", on])
    measured = measured.drop(columns=["paper"], errors="ignore")  # re-joining another table replaces it
    out = measured.merge(pub.rename(columns={"paper_model": model_column}), on=[model_column, on], how="left")
    if n_objects is not None and "n_objects" in out:
        out.loc[out.n_objects != n_objects, "paper"] = float("nan")
    if column is not None:
        out.loc[out[column] != value, "paper"] = float("nan")
    return out
