"""Source notebooks: a `parameters` cell declaring exactly the schema's names, smoke values as defaults,
no stored outputs, and the kernel the runner uses."""

import ast
from pathlib import Path

import nbformat
import pytest

from clipscope_utils.book.profiles import load_profile, load_schema
from clipscope_utils.book.runner import KERNEL_NAME, toc_notebooks

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = toc_notebooks(ROOT)


def read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)


def parameters_cell(nb) -> dict:
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, "exactly one cell tagged 'parameters'"
    values = {}
    for node in ast.parse(cells[0].source).body:
        assert isinstance(node, ast.Assign), "the parameters cell only assigns literals"
        values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_defaults_equal_the_smoke_profile(name: str) -> None:
    smoke = load_profile(ROOT / "profiles", "smoke", NOTEBOOKS).params[name]
    defaults = parameters_cell(read(name))
    assert set(defaults) == set(load_schema(ROOT / "profiles")[name])
    assert defaults == smoke


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_source_is_clean_and_uses_the_book_kernel(name: str) -> None:
    nb = read(name)
    assert nb.metadata["kernelspec"]["name"] == KERNEL_NAME
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")


def test_dataset_notebook_reads_the_release_and_coco(tmp_path: Path) -> None:
    """The optional branch of the dataset chapter, on folders written in the official formats."""
    import papermill as pm

    from clipscope_utils.book.runner import kernel_available
    from test_coco import write_coco
    from test_official import write_release

    if not kernel_available():
        pytest.skip("kernel 'clipscope' not registered (make setup)")
    release = write_release(tmp_path / "release", {
        "CoCo-OneObject": ["cat", "dog", "apple"], "CoCo-TwoObject-ULBig": ["cat_dog", "apple_cat"]})
    coco = write_coco(tmp_path / "coco")
    out = tmp_path / "out.ipynb"
    pm.execute_notebook(
        str(ROOT / "notebooks" / "dataset.ipynb"), str(out), kernel_name=KERNEL_NAME, cwd=str(ROOT), progress_bar=False,
        parameters={"families": ["simco"], "objects": [2], "images": 3, "grid_images": 2,
                    "official_root": str(release), "coco_root": str(coco)},
    )
    last = [c for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code"][-1]
    tables = [o["data"]["text/plain"] for o in last.outputs if "text/plain" in o.get("data", {})]
    assert len(tables) == 4  # release counts, COCO counts, COCO largest-object positions, the figure
    assert "single" in tables[0] and "multi" in tables[0]
    assert any("image/png" in o.get("data", {}) for o in last.outputs)
    assert not any("are empty" in o.get("text", "") for o in last.outputs)
