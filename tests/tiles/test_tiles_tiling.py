"""The tiling rules: split, largest features up, geometric errors, regions."""

from __future__ import annotations

import numpy as np
import pytest
from tiles_testdata import ORIGIN, ecef_to_geodetic, in_region, random_boxes

from tiles.placement import to_ecef
from tiles.tiling import MIN_INNER_ERROR, TIE_FACTOR, build_tileset, check_tree, \
    feature_regions

CRS = "EPSG:3826"


def sizes(bounds: np.ndarray) -> np.ndarray:
    return np.sqrt((bounds[:, 2] - bounds[:, 0]) ** 2 + (bounds[:, 3] - bounds[:, 1]) ** 2
                   + (bounds[:, 5] - bounds[:, 4]) ** 2)


@pytest.fixture(scope="module")
def data():
    return random_boxes(3000, seed=4)


def descendants(t):
    return [f for ch in t.children for d in ch.walk() for f in d.features]


def test_quadtree_rules(data):
    mesh, frame, cent, bounds = data
    tree = build_tileset(cent, bounds, CRS, max_features_per_tile=200)
    assert check_tree(tree) == []
    size = sizes(bounds)
    placed = np.concatenate([t.features for t in tree.tiles()])
    assert sorted(placed.tolist()) == list(range(3000))  # every feature exactly once
    for t in tree.tiles():
        assert len(t.features) <= 200
        below = descendants(t)
        if not t.children:
            assert t.geometric_error == 0.0
            continue
        # ADD, largest features up: no descendant is bigger than what the tile keeps.
        assert size[t.features].min() >= size[below].max()
        # Error = the largest omitted feature (capped below the parent's on ties).
        raw = max(size[below].max(), MIN_INNER_ERROR)
        parent = [p for p in tree.tiles() if t in p.children]
        expect = raw if not parent else min(raw, TIE_FACTOR * parent[0].geometric_error)
        assert t.geometric_error == pytest.approx(expect)
        for ch in t.children:
            assert ch.geometric_error < t.geometric_error
    assert tree.root.geometric_error > 0
    assert tree.geometric_error >= tree.root.geometric_error


def test_single_tile_root_error_positive(data):
    _, _, cent, bounds = data
    tree = build_tileset(cent[:50], bounds[:50], CRS, max_features_per_tile=100)
    assert len(tree.tiles()) == 1
    assert tree.root.geometric_error == pytest.approx(sizes(bounds[:50]).max())


def test_big_cells_hold_no_content(data):
    _, _, cent, bounds = data
    tree = build_tileset(cent, bounds, CRS, max_features_per_tile=200, max_content_size=600.0)
    assert check_tree(tree) == []
    side = np.ptp(cent, axis=0).max()
    for t in tree.tiles():
        if t.has_content and t.children:
            assert side / 2**t.level <= 600.0 * 1.0001
    assert not tree.root.has_content


def test_weight_budget_and_co_located_features():
    n = 60
    cent = np.tile([[ORIGIN[0] + 5, ORIGIN[1] + 5]], (n, 1))
    cent[0] += 100  # so the root cell has a size
    bounds = np.stack([cent[:, 0] - 5, cent[:, 1] - 5, cent[:, 0] + 5, cent[:, 1] + 5,
                       np.zeros(n), np.full(n, 9.0)], 1)
    tree = build_tileset(cent, bounds, CRS, max_features_per_tile=100, weights=np.full(n, 10.0),
                         max_weight_per_tile=100.0, max_depth=6)
    assert check_tree(tree) == []
    assert tree.depth <= 6
    placed = np.concatenate([t.features for t in tree.tiles()])
    assert sorted(placed.tolist()) == list(range(n))
    inner = [t for t in tree.tiles() if t.children]
    assert all(len(t.features) * 10.0 <= 100.0 for t in inner)


def test_feature_regions_hold_their_vertices(data):
    mesh, _, _, bounds = data
    regions = feature_regions(bounds, CRS)
    p = mesh.positions
    geo = ecef_to_geodetic(np.stack(to_ecef(p[:, 0], p[:, 1], p[:, 2], CRS), 1))
    fid = mesh.feature_ids
    for f in range(0, 3000, 97):
        assert in_region(geo[fid == f], regions[f])
    # Tight: within the margins of the sampled extremes.
    f0 = geo[fid == 0]
    assert regions[0][0] == pytest.approx(f0[:, 0].min(), abs=2e-8)
    assert regions[0][5] == pytest.approx(f0[:, 2].max(), abs=0.06)


def test_check_tree_reports_problems(data):
    _, _, cent, bounds = data
    tree = build_tileset(cent, bounds, CRS, max_features_per_tile=500)
    child = tree.root.children[0]
    child.region = child.region + np.array([0, 0, 1.0, 0, 0, 0])
    child.geometric_error = tree.root.geometric_error
    problems = check_tree(tree)
    assert any("outside parent" in p for p in problems)
    assert any("not below" in p for p in problems)


def test_bad_input():
    with pytest.raises(ValueError):
        build_tileset(np.zeros((0, 2)), np.zeros((0, 6)), CRS)
    with pytest.raises(ValueError):
        build_tileset(np.zeros((2, 2)), np.zeros((3, 6)), CRS)
