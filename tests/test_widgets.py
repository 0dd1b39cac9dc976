"""Offline widgets and maths: the book's config points at local JS files, which the runner fetches when missing."""

from pathlib import Path

import pytest
import yaml

from clipscope_utils.book import widgets

ROOT = Path(__file__).resolve().parents[1]


def test_config_loads_widget_js_from_the_book_only() -> None:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    assert sorted(config["nb_ipywidgets_js"]) == sorted(widgets.REQUIRED)
    assert not any(path.startswith("http") for path in config["nb_ipywidgets_js"])
    assert "book/_static" in config["html_static_path"]


def test_config_loads_mathjax_from_the_book_only() -> None:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    assert config["mathjax_path"] == widgets.MATHJAX


def test_present_files_are_not_fetched_again(tmp_path: Path, monkeypatch) -> None:
    for rel in widgets.VENDORED:
        (tmp_path / "book" / "_static" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "book" / "_static" / rel).write_text("// js")
    monkeypatch.setattr(widgets.shutil, "which", lambda _: pytest.fail("npm must not be called"))
    assert widgets.ensure_widget_js(tmp_path) is False


def test_missing_npm_gives_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(widgets.shutil, "which", lambda _: None)
    with pytest.raises(widgets.WidgetJsError, match="npm is not installed"):
        widgets.ensure_widget_js(tmp_path)
