"""Tests for the SimCO shape renderer: contract, determinism, colour fidelity, distinctness."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from clipscope_utils.datasets.shapes import SHAPES, render_shape

SIZES = (4, 16, 24, 48, 128)
# Colours far apart in RGB, incl. black, white and grey, where shading can only go one way.
COLORS = ((220, 40, 40), (40, 200, 60), (40, 70, 230), (240, 220, 30), (0, 0, 0),
          (255, 255, 255), (128, 128, 128))
RED = COLORS[0]


def test_shape_list_matches_the_paper() -> None:
    assert SHAPES == ("cube", "sphere", "cylinder", "mug", "pentagon", "heart", "cone",
                      "pyramid", "diamond", "moon", "cross", "snowflake", "leaf", "arrow",
                      "star", "torus", "pot", "cap")


@pytest.mark.parametrize("name", SHAPES)
@pytest.mark.parametrize("size", SIZES)
def test_array_contract(name: str, size: int) -> None:
    image = render_shape(name, size, RED)
    assert image.shape == (size, size, 4)
    assert image.dtype == np.uint8
    if size >= 16:  # at 4 px thin shapes may have no fully covered pixel, which is fine
        assert image[..., 3].max() == 255, "the shape should have fully opaque pixels"
        assert image[0, 0, 3] == 0, "the top-left corner is background for every shape"


@pytest.mark.parametrize("name", SHAPES)
def test_deterministic(name: str) -> None:
    first = render_shape(name, 40, (10, 120, 200))
    assert first.tobytes() == render_shape(name, 40, (10, 120, 200)).tobytes()


@pytest.mark.parametrize("name", SHAPES)
@pytest.mark.parametrize("size", (16, 24, 48, 128))
def test_fills_the_square(name: str, size: int) -> None:
    ys, xs = np.nonzero(render_shape(name, size, RED)[..., 3])
    span = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    assert span >= 0.8 * size
    transparent = (render_shape(name, size, RED)[..., 3] == 0).mean()
    assert transparent > 0.05, "background must stay transparent"


@pytest.mark.parametrize("name", SHAPES)
@pytest.mark.parametrize("color", COLORS)
def test_colour_is_the_requested_one(name: str, color: tuple[int, int, int]) -> None:
    """Shading may lighten or darken, but the mean colour must stay nearest the request."""
    image = render_shape(name, 32, color).astype(float)
    opaque = image[image[..., 3] == 255][:, :3]
    mean = opaque.mean(axis=0)
    distances = {other: np.linalg.norm(mean - np.array(other)) for other in COLORS}
    assert min(distances, key=distances.get) == color


@pytest.mark.parametrize("name", SHAPES)
def test_only_tones_of_one_hue(name: str) -> None:
    """No foreign colours: every opaque pixel keeps the request's channel order R > G > B."""
    image = render_shape(name, 48, (200, 120, 40))
    r, g, b = (image[image[..., 3] == 255][:, c].astype(int) for c in range(3))
    assert np.all(r >= g) and np.all(g >= b)


def test_shapes_have_distinct_silhouettes() -> None:
    masks = {name: render_shape(name, 32, RED)[..., 3] > 127 for name in SHAPES}
    for a, b in itertools.combinations(SHAPES, 2):
        iou = (masks[a] & masks[b]).sum() / (masks[a] | masks[b]).sum()
        assert iou < 0.9, f"{a} and {b} have nearly the same silhouette (IoU {iou:.2f})"


def test_unknown_shape_names_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="unknown shape 'hexagon'.*allowed shapes: cube, sphere"):
        render_shape("hexagon", 32, RED)


@pytest.mark.parametrize("size", (3, 0, -5, 2.5))
def test_too_small_size_is_rejected(size) -> None:
    with pytest.raises(ValueError, match=r"size must be an integer >= 4.*allowed shapes: cube"):
        render_shape("cube", size, RED)


@pytest.mark.parametrize("color", ((255, 0), (0, 0, 256), (1.5, 0, 0)))
def test_bad_colour_is_rejected(color) -> None:
    with pytest.raises(ValueError, match="color must be three integers"):
        render_shape("cube", 32, color)
