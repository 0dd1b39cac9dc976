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
    out = pd.DataFrame({"table": rows.table.to_numpy(), "paper_model": rows.model.to_numpy(),
                        "paper": rows.value_percent.to_numpy() / 100})
    if task == "image_text_matching":
        out["scenario"] = rows.column.map(SCENARIO_COLUMNS).to_numpy()
    else:
        out["position"] = rows.column.map(POSITION_COLUMNS).astype(int).to_numpy()
    return out.reset_index(drop=True)


def beside(measured: pd.DataFrame, task: str, on: str, model_column: str = "paper_model",
           dataset: str = "ComCO", table: int | None = None, n_objects: int | None = 4) -> pd.DataFrame:
    """``measured`` with a ``paper`` column joined where the paper has the same model and cell.

    ``measured`` needs ``model_column`` (the paper's model name for the row, empty when the paper has
    none) and ``on`` (``position`` or ``scenario``); paper A's ComCO tables are for 4-object scenes,
    so only rows with ``n_objects == 4`` get a number.
    """
    pub = published(task, dataset, table).drop(columns="table")
    pub = pub.drop_duplicates(["paper_model", on])
    measured = measured.drop(columns=["paper"], errors="ignore")  # re-joining another table replaces it
    out = measured.merge(pub.rename(columns={"paper_model": model_column}), on=[model_column, on], how="left")
    if n_objects is not None and "n_objects" in out:
        out.loc[out.n_objects != n_objects, "paper"] = float("nan")
    return out
