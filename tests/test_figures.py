"""Every plot function of the package on small constructed inputs: legible on a book page.

The book's column is 7.2 in wide and an inline figure wider than that is scaled down, fonts included. So each
figure must be at most 7.2 in wide, every visible text at least 9 pt once shown (font size × min(1, 7.2 / shown
width), the shown width being the tight bounding box that Jupyter's inline backend saves, plus its padding), at
most three panels a row, and a condition must have the same colour in every figure.
"""

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["figure.max_open_warning"] = 0

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from PIL import Image  # noqa: E402

from clipscope_utils import attention as A  # noqa: E402
from clipscope_utils import figures  # noqa: E402
from clipscope_utils.compositional.items import ChoiceItem, PairItem  # noqa: E402
from clipscope_utils.datasets import SceneSpec, generate  # noqa: E402
from clipscope_utils.datasets import summary as ds_summary  # noqa: E402
from clipscope_utils.models.registry import load_model  # noqa: E402
from clipscope_utils.probes import report  # noqa: E402
from clipscope_utils.studies import cae, caption_order, cure, dataset, origin  # noqa: E402
from clipscope_utils.studies import pretraining as pt  # noqa: E402
from clipscope_utils.studies import size_prior as sp  # noqa: E402
from clipscope_utils.studies import probes as study_probes  # noqa: E402

ORDERS = ["largest_first", "shuffled", "largest_last"]
VARIANTS = ["CLIP-FT", "CLIP-CAE (attention)", "CLIP-CAE (gradcam)", "CLIP-CAE (gradient)",
            "CLIP-CAE (perturbation)", "CLIP-FT + HN"]


# -- the checks ------------------------------------------------------------------------------------------
def shown_width(fig) -> float:
    """Inches the inline backend saves: the tight bounding box plus its 0.1 in padding on each side."""
    fig.canvas.draw()
    return fig.get_tightbbox(fig.canvas.get_renderer()).width + 0.2


def legibility_problems(fig) -> list[str]:
    problems = []
    if fig.get_figwidth() > figures.PAGE_WIDTH_IN + 1e-9:
        problems.append(f"figure {fig.get_figwidth():.2f} in wide")
    shown = shown_width(fig)
    if shown > figures.PAGE_WIDTH_IN + 0.01:
        problems.append(f"shown {shown:.2f} in wide")
    scale = min(1.0, figures.PAGE_WIDTH_IN / shown)
    for t in fig.findobj(Text):
        if t.get_visible() and t.get_text().strip() and t.get_fontsize() * scale < figures.MIN_FONT_PT - 1e-9:
            problems.append(f"{t.get_text()[:30]!r} at {t.get_fontsize() * scale:.1f} pt")
    rows = {}
    for ax in fig.axes:
        spec = ax.get_subplotspec()
        if spec is None or not ax.get_visible():  # colorbars sit beside the grid
            continue
        key = (id(spec.get_gridspec()), spec.rowspan.start)
        rows[key] = rows.get(key, 0) + 1
    problems += [f"{n} panels in one row" for n in rows.values() if n > figures.MAX_COLUMNS]
    return problems


def legend_colours(fig) -> dict[str, str]:
    """Label -> colour of the figure's legend entries (bars, patches and lines)."""
    out = {}
    for leg in fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]:
        for handle, text in zip(leg.legend_handles, leg.get_texts()):
            if isinstance(handle, LineCollection):  # an error bar's entry
                out[text.get_text()] = to_hex(handle.get_color()[0], keep_alpha=False)
            elif isinstance(handle, Line2D):
                out[text.get_text()] = to_hex(handle.get_color())
            elif isinstance(handle, (Rectangle, Patch)):
                out[text.get_text()] = to_hex(handle.get_facecolor(), keep_alpha=False)
    return out


def figure_of(obj):
    return obj if isinstance(obj, matplotlib.figure.Figure) else obj.figure


# -- constructed inputs ----------------------------------------------------------------------------------
def rates(rng, **levels) -> pd.DataFrame:
    keys = list(levels)
    index = pd.MultiIndex.from_product([levels[k] for k in keys], names=keys).to_frame(index=False)
    r = rng.uniform(0.1, 0.9, len(index))
    return index.assign(n=50, rate=r, ci_low=r - 0.08, ci_high=np.minimum(1, r + 0.08))


def position_table(rng, hue: str, levels, counts=(2, 3, 4, 5)) -> pd.DataFrame:
    rows = []
    for level in levels:
        for n in counts:
            for p in range(1, n + 1):
                r = rng.uniform(0.1, 0.9)
                rows.append({hue: level, "n_objects": n, "position": p, "label": ["first", "second", "third",
                             "fourth", "fifth"][p - 1], "n": 40, "rate": r, "ci_low": r - 0.1, "ci_high": r + 0.1})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    spec = SceneSpec(family="comco", objects=(2, 3), images=4, image_size=32, seed=2)
    return generate(spec, tmp_path_factory.mktemp("ds") / "d", workers=1, progress=False)


@pytest.fixture(scope="module")
def tiny(module_cache):
    torch.manual_seed(0)
    return load_model("random:clipscope-tiny", device="cpu")


@pytest.fixture(scope="module")
def attention_frames():
    rows = []
    for model in ("random:clipscope-tiny", "trained:largest_first · generated"):
        for variant in ("last", "rollout", "layer"):
            for layer in ((1.0, 2.0) if variant == "layer" else (2.0,)):
                for i in range(5):
                    for k, (large, area) in enumerate([(True, 0.25), (False, 0.05), (False, 0.05)]):
                        att = 0.2 + 0.1 * large + 0.01 * i
                        rows.append({"model": model, "image_id": f"i{i}", "object_index": k, "is_large": large,
                                     "role": "large" if large else f"small {k}", "variant": variant, "layer": layer,
                                     "area_share": area, "attention": att, "attention_per_area": att / area})
    frame = pd.DataFrame(rows)
    return A.role_table(frame, n_boot=50), A.layer_table(frame, n_boot=50), A.paired_difference(frame, n_boot=50)


# -- every plot function -----------------------------------------------------------------------------------
def section(rng):
    t = pd.concat([position_table(rng, "order", ORDERS, (2, 3, 4)).assign(state="trained"),
                   position_table(rng, "order", ORDERS, (2, 3, 4)).assign(state="untrained")], ignore_index=True)
    return origin.ProbeSection("TOR", t, pd.DataFrame(), "")


def progression(rng):
    rows = []
    for probe in ("TOR", "IOR"):
        for order in ORDERS:
            for n in (2, 3):
                for s in (0, 256, 512):
                    r = rng.uniform(0.2, 0.8)
                    rows.append({"probe": probe, "order": order, "samples": s, "n_objects": n, "position": 1,
                                 "n": 30, "rate": r, "ci_low": r - 0.1, "ci_high": r + 0.1})
    return pd.DataFrame(rows)


def cure_test(rng):
    tor = position_table(rng, "arm", ["shuffled captions", "largest_first captions"], (2, 3, 4))
    tor = pd.concat([tor.assign(samples=s) for s in (0, 64, 128)], ignore_index=True)
    return cure.CureTest(tor, pd.DataFrame(), "")


def prior_rates(rng):
    t = pd.concat([rates(rng, condition=["untrained", "no prior", "size prior 0.9"],
                         role=[sp.PRIOR, sp.OTHER]).assign(probe="TOR"),
                   rates(rng, condition=["untrained", "no prior", "size prior 0.9"],
                         role=[f"{s} · {g}" for s in ("large", "small") for g in (sp.PRIOR, sp.OTHER)]).assign(
                       probe="IOR")], ignore_index=True)
    return t


def largest_distribution(rng):
    t = position_table(rng, "kind", ["x"], (2, 3, 4, 5)).drop(columns=["kind", "label"]).rename(
        columns={"rate": "share"})
    return t


def loss_logs(rng):
    rows = [{"order": o, "seed": s, "samples": k * 64, "loss (smoothed)": 4 - k * 0.01 + rng.normal(0, 0.05)}
            for o in ORDERS for s in (0, 1) for k in range(40)]
    return pd.DataFrame(rows)


def sanity(rng):
    return pd.concat([rates(rng, order=ORDERS, seed=[0, 1]).assign(samples=s) for s in (0, 256, 512)],
                     ignore_index=True)


def cae_runs(rng):
    runs = []
    for v in VARIANTS:
        for seed in (0, 1):
            log = pd.DataFrame({"step": range(20), "itc": 3 - 0.05 * np.arange(20) + rng.normal(0, 0.05, 20),
                                "attr": rng.uniform(0, 0.2, 20)})
            runs.append(SimpleNamespace(log=log, config=SimpleNamespace(variant=v, seed=seed, batch_size=16)))
    return runs


def cae_results(rng):
    rows = []
    for v in ["pretrained", *VARIANTS]:
        for bench, score in [("relation", "correct"), ("relation_replace", "correct"), ("attribute", "correct"),
                             ("winoground", "text"), ("winoground", "image"), ("winoground", "group")]:
            a = rng.uniform(0.1, 0.9)
            rows.append({"variant": v, "benchmark": bench, "score": score, "n": 40, "seeds": 2, "accuracy": a,
                         "ci_low": a - 0.1, "ci_high": a + 0.1, "seed_sd": 0.01})
    return pd.DataFrame(rows)


def attributions(rng):
    rows = [{"caption": c, "method": m, "role": r, "score": rng.normal(), "model": model}
            for model in ["pretrained", "CLIP-FT", "CLIP-CAE (attention)"]
            for m in ("attention", "gradcam", "perturbation", "gradient") for r in ("object", "composition")
            for c in range(8)]
    return pd.DataFrame(rows)


def examples(tmp_path):
    paths = []
    for k in range(2):
        p = tmp_path / f"im{k}.png"
        Image.new("RGB", (32, 32), (40 * k, 100, 200)).save(p)
        paths.append(p)
    return {"relation": [ChoiceItem("r0", "relation", paths[0], "a cat to the left of a dog",
                                    ("a dog to the left of a cat",))],
            "attribute": [ChoiceItem("a0", "attribute", paths[1], "a large cat and a small dog",
                                     ("a small cat and a large dog",))],
            "winoground": [PairItem("w0", "winoground", (paths[0], paths[1]),
                                    ("a cat to the left of a dog", "a dog to the left of a cat"))]}


def matching_pairs(scenes) -> pd.DataFrame:
    ids = list(scenes.multi().images.image_id[:2])
    return pd.DataFrame({"model": "m", "image_id": ids, "scenario": ["first", "second"], "hit": [1.0, 0.0],
                         "correct_text": "a cat and a dog and a very long third object name",
                         "incorrect_text": "a dog and a cat and a very long third object name"})


@pytest.fixture(scope="module")
def plots(rng, scenes, tiny, attention_frames, tmp_path_factory):
    """name -> figure of every plot function of the package."""
    roles, layers, _ = attention_frames
    sizes = ds_summary.object_sizes(scenes)
    tmp = tmp_path_factory.mktemp("examples")
    makers = {
        "report.rate_bars": lambda: report.rate_bars(position_table(rng, "model", ["sbert", "glove",
                                                                               "random:clipscope-tiny"]),
                                                     x="label", hue="model", col="n_objects", title="TOR"),
        "report.rate_bars (matching, chance 0.5)": lambda: report.rate_bars(
            rates(rng, model=["hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "b", "c", "d"], n_objects=[2, 3, 4],
                  scenario=["first", "second"]).assign(
                label=lambda d: d.scenario), x="n_objects", hue="scenario", col="model", chance=0.5),
        "origin.ProbeSection.plot": lambda: section(rng).plot(),
        "origin.plot_progression": lambda: origin.plot_progression(progression(rng)),
        "cure.CureTest.plot": lambda: cure_test(rng).plot(),
        "size_prior.figure": lambda: sp.figure(prior_rates(rng), chance={"TOR": 0.3, "IOR": 0.3}),
        "caption_order.LargestPosition.plot": lambda: caption_order.LargestPosition(
            pd.DataFrame(), largest_distribution(rng).rename(columns={"n_objects": "n_mentioned"}),
            pd.DataFrame()).plot(title="COCO captions: position of the largest object"),
        "datasets.summary.plot_sizes_positions": lambda: ds_summary.plot_sizes_positions(sizes, "comco-like"),
        "datasets.summary.plot_largest_position": lambda: ds_summary.plot_largest_position(
            largest_distribution(rng), "comco-like, order policy 'largest_first'"),
        "dataset.example_grid": lambda: dataset.example_grid(scenes, "comco", [2, 3], 6, 32),
        "dataset.class_grid": lambda: dataset.class_grid(scenes, "comco"),
        "pretraining.plot_losses": lambda: pt.plot_losses(loss_logs(rng), 64),
        "pretraining.plot_sanity_curve": lambda: pt.plot_sanity_curve(sanity(rng), 1 / 30),
        "cae.plot_curves": lambda: cae.plot_curves(cae_runs(rng)),
        "cae.plot_results": lambda: cae.plot_results(cae_results(rng)),
        "cae.plot_attributions": lambda: cae.plot_attributions(attributions(rng)),
        "cae.plot_examples": lambda: cae.plot_examples(examples(tmp)),
        "probes.plot_matching_examples": lambda: study_probes.plot_matching_examples(scenes, matching_pairs(scenes),
                                                                                     "m"),
        "attention.plot_overlays": lambda: A.plot_overlays(tiny, scenes, A.choose_images(scenes, 3, n_objects=3)),
        "attention.plot_shares": lambda: A.plot_shares(roles, "attention", "area_share", title="Figure 3 b)"),
        "attention.plot_shares (per area)": lambda: A.plot_shares(roles, "attention_per_area", baseline=None),
        "attention.plot_layers": lambda: A.plot_layers(layers, roles, title="CLS attention share per block"),
    }
    out = {name: figure_of(make()) for name, make in makers.items()}
    yield out
    plt.close("all")


PLOTS = ["report.rate_bars", "report.rate_bars (matching, chance 0.5)", "origin.ProbeSection.plot",
         "origin.plot_progression", "cure.CureTest.plot", "size_prior.figure", "caption_order.LargestPosition.plot",
         "datasets.summary.plot_sizes_positions", "datasets.summary.plot_largest_position", "dataset.example_grid",
         "dataset.class_grid", "pretraining.plot_losses", "pretraining.plot_sanity_curve", "cae.plot_curves",
         "cae.plot_results", "cae.plot_attributions", "cae.plot_examples", "probes.plot_matching_examples", "attention.plot_overlays",
         "attention.plot_shares", "attention.plot_shares (per area)", "attention.plot_layers"]


@pytest.mark.parametrize("name", PLOTS)
def test_every_figure_is_legible_on_the_page(plots, name: str) -> None:
    assert legibility_problems(plots[name]) == []


def test_the_list_covers_every_plot() -> None:
    import ast
    from pathlib import Path

    package = Path(figures.__file__).parent
    defined = {node.name for path in package.rglob("*.py") if path.stem != "figures"
               for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.FunctionDef) and node.name.startswith("plot")}
    covered = {name.split(" (")[0].split(".")[-1] for name in PLOTS}
    assert defined - covered == set()  # methods named ``plot`` are covered by their class's entry


def test_the_check_catches_an_illegible_figure() -> None:
    fig, axes = plt.subplots(1, 4, figsize=(12, 3))
    axes[0].set_title("tiny", fontsize=7)
    problems = legibility_problems(fig)
    assert any("wide" in p for p in problems) and any("tiny" in p for p in problems)
    assert any("4 panels" in p for p in problems)
    plt.close(fig)


def test_a_condition_has_one_colour_in_every_figure(plots) -> None:
    bars, lines = legend_colours(plots["origin.ProbeSection.plot"]), legend_colours(plots["origin.plot_progression"])
    for order in ORDERS:
        assert bars[order] == lines[order] == to_hex(figures.color(order))
    cure_arms = legend_colours(plots["cure.CureTest.plot"])
    assert cure_arms["largest_first captions"] == bars["largest_first"]
    curves, results = legend_colours(plots["cae.plot_curves"]), legend_colours(plots["cae.plot_results"])
    for v in VARIANTS:
        assert curves[v] == results[v]
    assert results["CLIP-FT + HN"] != results["CLIP-FT"]
    sizes = legend_colours(plots["datasets.summary.plot_sizes_positions"])
    assert sizes["large"] == to_hex(figures.color("large")) == legend_colours(plots["attention.plot_layers"])["large"]


def test_every_plotted_rate_has_a_chance_line_and_intervals(plots) -> None:
    for name in ["report.rate_bars", "report.rate_bars (matching, chance 0.5)", "origin.ProbeSection.plot",
                 "origin.plot_progression", "cure.CureTest.plot", "size_prior.figure", "cae.plot_results",
                 "datasets.summary.plot_largest_position", "pretraining.plot_sanity_curve"]:
        fig = plots[name]
        assert any(label.startswith("chance") for label in legend_colours(fig)), name
        dotted = [line for ax in fig.axes for line in ax.get_lines() if line.get_linestyle() == ":"]
        dotted += [c for ax in fig.axes for c in ax.collections if getattr(c, "get_linestyle", None)
                   and c.get_linestyle() and c.get_linestyle()[0][1] is not None and c.get_label() == "chance"]
        assert dotted, name
        intervals = [c for ax in fig.axes for c in ax.containers if type(c).__name__ == "ErrorbarContainer"]
        bands = [c for ax in fig.axes for c in ax.collections if type(c).__name__ in ("PolyCollection",
                                                                                          "FillBetweenPolyCollection")]
        assert intervals or bands, name


def test_palette_keeps_names_and_tells_clashes_apart() -> None:
    assert figures.color("trained:largest_first:0") == figures.color("largest_first")
    assert figures.color("untrained (seed 0)") == figures.color("random:clipscope-tiny") == figures.UNTRAINED
    assert figures.color("size prior 0.9") == figures.CONDITIONS["size prior"]
    assert figures.color("some model") == figures.color("some model")  # stable by name
    p = figures.palette(["random:a", "random:b", "x · coco", "x · generated"])
    assert len(set(p.values())) == 4 and p["random:a"] == figures.UNTRAINED


def test_facets_wrap_at_three_and_fit_the_page() -> None:
    fig, axes = figures.facets(7)
    assert len(axes) == 7 and fig.get_figwidth() <= figures.PAGE_WIDTH_IN
    assert legibility_problems(fig) == []
    plt.close(fig)


def test_the_untrained_rows_show_once_in_the_origin_tables(rng) -> None:
    t = section(rng).table
    once = origin.untrained_once(t)
    assert set(once[once.state == "untrained"].order) == {"any"}
    assert len(once[once.state == "untrained"]) == len(t[(t.state == "untrained") & (t.order == ORDERS[0])])
    assert len(once[once.state == "trained"]) == len(t[t.state == "trained"])
    wide = report.wide(once, ["state", "order", "n_objects"], "label", paper_column=None)
    assert len(wide.loc["untrained"]) == t.n_objects.nunique()


def test_attention_verdicts_as_a_table(attention_frames) -> None:
    roles, _, diffs = attention_frames
    table = A.summary_table(roles, diffs, controls=["random:clipscope-tiny"])
    assert len(table) == len(diffs[["model", "variant"]].drop_duplicates())
    assert set(table["attention verdict"]) == {"large gets more"}
    assert (table.control == "random init").sum() == 2
    line = A.summary_line(table)
    assert "\n" not in line and "2 of 2" in line



def test_size_prior_chance_is_the_mean_of_one_over_n_per_query() -> None:
    text = pd.DataFrame({"seed": 0, "query_id": ["a", "a", "b", "b", "b"], "n_objects": [2, 2, 3, 3, 3]})
    image = text.assign(n_objects=4)
    assert sp.chance_levels(text, image) == pytest.approx({"TOR": (1 / 2 + 1 / 3) / 2, "IOR": 0.25})
