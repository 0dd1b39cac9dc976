"""Profiles: loading, inheritance, overrides and validation of every value before anything runs."""

from pathlib import Path

import pytest
import yaml

from clipscope_utils.book.profiles import ParameterError, available_profiles, load_profile, parse_override

ROOT = Path(__file__).resolve().parents[1]


def write(folder: Path, name: str, data: dict) -> None:
    (folder / f"{name}.yml").write_text(yaml.safe_dump(data))


@pytest.fixture
def profiles(tmp_path: Path) -> Path:
    write(tmp_path, "parameters", {
        "nb": {
            "n": {"type": "int", "min": 1, "max": 5},
            "mode": {"type": "str", "choices": ["a", "b"]},
            "rate": {"type": "float", "min": 0.0, "max": 1.0},
            "counts": {"type": "list", "items": {"type": "int", "min": 1, "max": 5}, "min_len": 1},
            "flag": {"type": "bool"},
        }
    })
    write(tmp_path, "small", {"description": "s", "notebooks": {"nb": {"n": 1, "mode": "a", "rate": 0.5, "counts": [1, 2], "flag": False}}})
    write(tmp_path, "big", {"extends": "small", "notebooks": {"nb": {"n": 5}}})
    return tmp_path


def test_extends_overrides_only_what_it_names(profiles: Path) -> None:
    p = load_profile(profiles, "big", ["nb"])
    assert p.params["nb"] == {"n": 5, "mode": "a", "rate": 0.5, "counts": [1, 2], "flag": False}
    assert p.description == "s"


def test_available_profiles_excludes_the_schema(profiles: Path) -> None:
    assert available_profiles(profiles) == ["big", "small"]


def test_override_is_read_as_yaml_and_validated(profiles: Path) -> None:
    p = load_profile(profiles, "small", ["nb"], ["nb.counts=[3, 4]", "nb.rate=1"])
    assert p.params["nb"]["counts"] == [3, 4]
    assert p.params["nb"]["rate"] == 1.0 and isinstance(p.params["nb"]["rate"], float)


@pytest.mark.parametrize(
    "override, message",
    [
        ("nb.n=9", r"notebook 'nb', parameter 'n': 9 is above the maximum; allowed: an integer in \[1, 5\]"),
        ("nb.n=2.5", r"parameter 'n': 2.5 is not an integer"),
        ("nb.n=true", r"parameter 'n': True is not an integer"),
        ("nb.mode=c", r"parameter 'mode': 'c' is not allowed; allowed: one of \['a', 'b'\]"),
        ("nb.counts=[]", r"parameter 'counts': 0 items is fewer than 1"),
        ("nb.counts=[1, 7]", r"parameter 'counts'\[1\]: 7 is above the maximum"),
        ("nb.flag=1", r"parameter 'flag': 1 is not a boolean"),
        ("nb.speed=3", r"notebook 'nb': unknown parameter\(s\) \['speed'\].*parameters of 'nb': \['counts', 'flag', 'mode', 'n', 'rate'\]"),
        ("other.n=3", r"unknown notebook 'other'; notebooks of the book: \['nb'\]"),
        ("nb.n", r"not of the form NOTEBOOK.PARAMETER=VALUE"),
    ],
)
def test_bad_values_name_notebook_parameter_and_allowed_values(profiles: Path, override: str, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        load_profile(profiles, "small", ["nb"], [override])


def test_unknown_profile_lists_the_available_ones(profiles: Path) -> None:
    with pytest.raises(ParameterError, match=r"unknown profile 'huge'; available: \['big', 'small'\]"):
        load_profile(profiles, "huge", ["nb"])


def test_profile_must_give_every_parameter(profiles: Path) -> None:
    write(profiles, "partial", {"notebooks": {"nb": {"n": 1}}})
    with pytest.raises(ParameterError, match=r"profile 'partial' gives no value for \['counts', 'flag', 'mode', 'rate'\]"):
        load_profile(profiles, "partial", ["nb"])


def test_notebook_without_schema_is_refused(profiles: Path) -> None:
    with pytest.raises(ParameterError, match=r"notebooks \['new'\] have no entry"):
        load_profile(profiles, "small", ["nb", "new"])


def test_extends_cycle_is_refused(profiles: Path) -> None:
    write(profiles, "x", {"extends": "y"})
    write(profiles, "y", {"extends": "x"})
    with pytest.raises(ParameterError, match="extends itself"):
        load_profile(profiles, "x", ["nb"])


def test_parse_override() -> None:
    assert parse_override("dataset.families=[comco]") == ("dataset", "families", ["comco"])
    assert parse_override("a.b=''") == ("a", "b", "")


@pytest.mark.parametrize("name", available_profiles(ROOT / "profiles"))
def test_the_books_profiles_are_valid(name: str) -> None:
    from clipscope_utils.book.runner import toc_notebooks

    profile = load_profile(ROOT / "profiles", name, toc_notebooks(ROOT))
    assert set(profile.params) == set(toc_notebooks(ROOT))


def test_notice_standins_and_environment_are_inherited_and_checked(profiles: Path) -> None:
    write(profiles, "rehearse", {"extends": "big", "notice": "stand-ins", "standins": ".cache/x",
                                 "environment": {"HF_HUB_OFFLINE": 1}})
    write(profiles, "child", {"extends": "rehearse", "notebooks": {"nb": {"n": 2}}})
    p = load_profile(profiles, "child", ["nb"])
    assert (p.notice, p.standins, p.environment) == ("stand-ins", ".cache/x", {"HF_HUB_OFFLINE": "1"})
    assert load_profile(profiles, "big", ["nb"]).notice == ""
    write(profiles, "bad", {"extends": "small", "environment": ["HF_HOME"]})
    with pytest.raises(ParameterError, match="'environment' must map"):
        load_profile(profiles, "bad", ["nb"])


def test_the_rehearsal_says_its_numbers_mean_nothing() -> None:
    from clipscope_utils.book.runner import toc_notebooks

    p = load_profile(ROOT / "profiles", "rehearsal", toc_notebooks(ROOT))
    assert "mean nothing" in p.notice and p.standins
    sources = [s for nb in ("text_probes", "image_probes", "matching", "attention") for s in p.params[nb]["sources"]]
    assert {s.split(":")[0] for s in sources} == {"release", "coco"}  # every real-data branch runs
