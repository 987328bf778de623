"""The tiling scheme: an adaptive quadtree over the store-CRS bounds, refined by ADD.

Rules (see :func:`build_tileset`):

* **Split**: a node holding more than ``max_features_per_tile`` features (or more than
  ``max_weight_per_tile`` weight, e.g. vertices) splits into four; features go to the child that
  holds their centroid (store CRS). Empty children are dropped. ``max_depth`` stops runaway
  splits of co-located features.
* **Largest features go up** (``refine: ADD``): an inner node keeps as its own content the
  ``max_features_per_tile`` largest features (3D diagonal of their bounds) of its subtree, so a
  client far away draws the big buildings first and adds smaller ones as it refines, with no
  popping or holes (nothing is ever replaced). Nodes wider than ``max_content_size`` keep no
  content, which bounds every content's extent (float32 and 16-bit quantization precision, see
  :mod:`tiles.placement`).
* **Geometric error**: what drawing a node without its descendants omits: the diagonal of the
  largest feature *not* in the node's content (the largest in its descendants); leaves 0. Ties
  (equal-sized features) are broken by capping a child at 0.99 x its parent's error, so errors
  strictly decrease downwards; inner errors are at least 1 cm. A single-tile tree's root gets
  the diagonal of its largest feature (a root error must be > 0).
* **Bounding volumes**: ``region`` (EPSG:4979 radians, ellipsoidal metres) from each feature's
  store bounds converted through :mod:`tiles.placement` (footprint sampled on a 3 x 3 grid, plus
  1e-8 rad / 5 cm margins for the curvature of projected edges and the geoid between samples);
  a node's region is the union of its content's and its children's, so children lie inside
  parents by construction (checked by :func:`check_tree`). No antimeridian handling (not needed
  for Taiwan / Japan).
* **Refinement per tile**: :func:`build_tileset` leaves every :attr:`Tile.refine` None (inherit:
  the whole tree refines by ADD, which :mod:`tiles.tileset` writes on the root). A caller may set
  ``REPLACE`` on a tile whose content gives way to its children, and hang below it a *variant*
  tile (:attr:`Tile.variant`): the same place (level, x, y) and features drawn another way, e.g.
  the BIM detail of :mod:`gis.etl.tiles_job`, which then says ``ADD`` again for its subtree.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from tiles.placement import geodetic

ANGLE_MARGIN = 1e-8
HEIGHT_MARGIN = 0.05
MIN_INNER_ERROR = 0.01
TIE_FACTOR = 0.99
#: Features whose regions are computed at once (memory: about 1 kB of temporaries each).
REGION_CHUNK = 65536


@dataclass
class Tile:
    """One node of the tile tree.

    Attributes:
        level, x, y: Quadtree coordinates (x grows east, y north; children of (l, x, y) are
            (l + 1, 2x + i, 2y + j)).
        features: Feature indices (sorted) of the tile's own content; empty for empty tiles.
        region: Bounding region of the content and all descendants.
        content_region: Bounding region of the content alone (None without content).
        geometric_error: Metres.
        children: Child tiles.
        refine: ``ADD`` or ``REPLACE`` for this tile and (unless they say otherwise) its
            descendants; None inherits the parent's (the root's default is ``ADD``).
        variant: ``""`` for a quadtree tile. A name (e.g. ``"detail"``) marks a tile at its
            parent's (level, x, y) whose content is another rendering of the same features:
            its content is ``content/L/X/Y.{variant}.{ext}``, and the content writer is asked
            for it with ``variant=`` (:func:`tiles.tileset.write_tileset`).
    """

    level: int
    x: int
    y: int
    features: np.ndarray
    region: np.ndarray = field(default_factory=lambda: np.zeros(6))
    content_region: np.ndarray | None = None
    geometric_error: float = 0.0
    children: list[Tile] = field(default_factory=list)
    refine: Literal["ADD", "REPLACE"] | None = None
    variant: str = ""

    @property
    def key(self) -> tuple[int, int, int]:
        """(level, x, y)."""
        return self.level, self.x, self.y

    @property
    def has_content(self) -> bool:
        """Whether the tile has its own content."""
        return len(self.features) > 0

    def walk(self) -> Iterator[Tile]:
        """This tile and its descendants, pre-order."""
        yield self
        for c in self.children:
            yield from c.walk()


@dataclass
class TileTree:
    """A built tile tree.

    Attributes:
        root: Root tile.
        crs: Store CRS of the input.
        geometric_error: Tileset-level geometric error (error when nothing is drawn).
        n_features: Number of input features.
    """

    root: Tile
    crs: str
    geometric_error: float
    n_features: int

    def tiles(self) -> list[Tile]:
        """All tiles, pre-order."""
        return list(self.root.walk())

    @property
    def depth(self) -> int:
        """Deepest level."""
        return max(t.level for t in self.root.walk())

    def tile_of_feature(self) -> dict[int, tuple[int, int, int]]:
        """Feature index -> key of the tile holding it."""
        return {int(f): t.key for t in self.root.walk() for f in t.features}


def union(regions: np.ndarray) -> np.ndarray:
    """Smallest region containing all (k, 6) regions."""
    regions = np.asarray(regions, np.float64).reshape(-1, 6)
    return np.array([regions[:, 0].min(), regions[:, 1].min(), regions[:, 2].max(),
                     regions[:, 3].max(), regions[:, 4].min(), regions[:, 5].max()])


def contains(outer: np.ndarray, inner: np.ndarray, tol: float = 0.0) -> bool:
    """Whether region ``inner`` lies in ``outer`` (``tol`` in radians and metres)."""
    return bool(outer[0] <= inner[0] + tol and outer[1] <= inner[1] + tol
                and outer[2] >= inner[2] - tol and outer[3] >= inner[3] - tol
                and outer[4] <= inner[4] + tol and outer[5] >= inner[5] - tol)


def feature_regions(bounds: np.ndarray, crs: str) -> np.ndarray:
    """Bounding regions of features from their store-CRS bounds.

    Args:
        bounds: (n, 6) minx, miny, maxx, maxy, minz, maxz (store CRS, orthometric z).
        crs: Store CRS.

    Returns:
        (n, 6) west, south, east, north (radians), minimum and maximum ellipsoidal height (m).
    """
    b = np.asarray(bounds, np.float64).reshape(-1, 6)
    if len(b) > REGION_CHUNK:  # bounded temporaries (9 points and their geoid per feature)
        return np.concatenate([feature_regions(b[i:i + REGION_CHUNK], crs)
                               for i in range(0, len(b), REGION_CHUNK)])
    f = np.array([0.0, 0.5, 1.0])
    fx, fy = np.meshgrid(f, f)
    xs = b[:, [0]] + (b[:, [2]] - b[:, [0]]) * fx.reshape(1, -1)
    ys = b[:, [1]] + (b[:, [3]] - b[:, [1]]) * fy.reshape(1, -1)
    lon, lat, n = geodetic(xs, ys, np.zeros_like(xs), crs)
    lon, lat = np.radians(lon), np.radians(lat)
    return np.stack([lon.min(1) - ANGLE_MARGIN, lat.min(1) - ANGLE_MARGIN,
                     lon.max(1) + ANGLE_MARGIN, lat.max(1) + ANGLE_MARGIN,
                     b[:, 4] + n.min(1) - HEIGHT_MARGIN, b[:, 5] + n.max(1) + HEIGHT_MARGIN],
                    axis=1)


def build_tileset(centroids: np.ndarray, bounds: np.ndarray, crs: str, *,
                  max_features_per_tile: int = 1000, weights: np.ndarray | None = None,
                  max_weight_per_tile: float | None = None, max_depth: int = 16,
                  max_content_size: float = 8192.0, regions: bool = True) -> TileTree:
    """Build the adaptive quadtree of tiles.

    Args:
        centroids: (n, 2) feature centroids in the store CRS.
        bounds: (n, 6) minx, miny, maxx, maxy, minz, maxz per feature (store CRS, orthometric z).
        crs: Store CRS.
        max_features_per_tile: Split nodes holding more; inner nodes keep this many largest.
        weights: Optional per-feature weight (e.g. vertex or byte counts).
        max_weight_per_tile: Optional weight budget per tile (with ``weights``).
        max_depth: Deepest level.
        max_content_size: Nodes wider than this (m) hold no content of their own and always
            split, so every content stays small enough for float32 local coordinates.
        regions: Compute the bounding regions now; False leaves them to
            :func:`place_regions` (the tree's shape and errors do not depend on them, so a job
            can start building contents meanwhile).

    Returns:
        The tile tree.

    Raises:
        ValueError: No features, or inconsistent shapes.
    """
    c = np.asarray(centroids, np.float64).reshape(-1, 2)
    b = np.asarray(bounds, np.float64).reshape(-1, 6)
    if len(c) == 0 or len(c) != len(b):
        raise ValueError("need one centroid and one bounds row per feature, and at least one")
    if max_features_per_tile < 1:
        raise ValueError("max_features_per_tile must be >= 1")
    w = np.ones(len(c)) if weights is None else np.asarray(weights, np.float64)
    wmax = np.inf if max_weight_per_tile is None else float(max_weight_per_tile)
    size = np.sqrt((b[:, 2] - b[:, 0]) ** 2 + (b[:, 3] - b[:, 1]) ** 2 + (b[:, 5] - b[:, 4]) ** 2)
    lo, hi = c.min(axis=0), c.max(axis=0)
    side = float(max(hi - lo)) * (1 + 1e-9) + 1e-6
    origin = (lo + hi) / 2 - side / 2

    def build(level: int, x: int, y: int, idx: np.ndarray) -> Tile:
        cell = side / 2**level
        small = len(idx) <= max_features_per_tile and w[idx].sum() <= wmax
        if (small and cell <= max_content_size) or level >= max_depth:
            return Tile(level, x, y, np.sort(idx))
        keep = np.zeros(0, np.int64)
        if cell <= max_content_size:
            order = idx[np.argsort(-size[idx], kind="stable")][:max_features_per_tile]
            fits = np.cumsum(w[order]) <= wmax
            keep = order[:max(int(fits.sum()), 1)]
        rest = np.setdiff1d(idx, keep, assume_unique=True)
        half = cell / 2
        ix = (c[rest, 0] >= origin[0] + (x * cell) + half).astype(np.int64)
        iy = (c[rest, 1] >= origin[1] + (y * cell) + half).astype(np.int64)
        tile = Tile(level, x, y, np.sort(keep))
        for j in (0, 1):
            for i in (0, 1):
                sub = rest[(ix == i) & (iy == j)]
                if len(sub):
                    tile.children.append(build(level + 1, 2 * x + i, 2 * y + j, sub))
        return tile

    root = build(0, 0, 0, np.arange(len(c)))
    _finish(root, size)
    tree = TileTree(root, crs, max(2.0 * root.geometric_error, float(size.max())), len(c))
    if regions:
        place_regions(tree, b)
    return tree


def place_regions(tree: TileTree, bounds: np.ndarray) -> None:
    """Bounding regions of a tree built with ``regions=False``, bottom-up from its features'
    bounds (the ``bounds`` it was built from), then the tree's invariants checked.

    Raises:
        AssertionError: The tree is unsound (a bug of the construction).
    """
    regions = feature_regions(np.asarray(bounds, np.float64).reshape(-1, 6), tree.crs)

    def regions_up(t: Tile) -> np.ndarray:
        parts = [regions_up(ch) for ch in t.children]
        if t.has_content:
            t.content_region = union(regions[t.features])
            parts.append(t.content_region)
        t.region = union(np.array(parts))
        return t.region

    regions_up(tree.root)
    problems = check_tree(tree)
    if problems:  # invariants of the construction; a failure here is a bug
        raise AssertionError("; ".join(problems[:5]))


def _finish(root: Tile, size: np.ndarray) -> None:
    """Geometric errors, top-down."""
    def largest_below(t: Tile) -> float:
        m = 0.0
        for ch in t.children:
            m = max(m, float(size[ch.features].max(initial=0.0)), largest_below(ch))
        t._largest_below = m  # type: ignore[attr-defined]
        return m

    largest_below(root)

    def errors_down(t: Tile, parent: float | None) -> None:
        if not t.children:
            t.geometric_error = 0.0
        else:
            e = max(t._largest_below, MIN_INNER_ERROR)  # type: ignore[attr-defined]
            t.geometric_error = e if parent is None else min(e, TIE_FACTOR * parent)
        for ch in t.children:
            errors_down(ch, t.geometric_error)

    errors_down(root, None)
    if not root.children:
        root.geometric_error = max(float(size[root.features].max()), MIN_INNER_ERROR)
    for t in root.walk():
        t.__dict__.pop("_largest_below", None)


def check_tree(tree: TileTree, tol: float = 1e-12) -> list[str]:
    """Problems with a tree: children outside parents, content outside its tile, errors not
    strictly decreasing, coordinates not following the quadtree rule (a variant child sits at
    its parent's coordinates instead), unknown refinement.

    Returns:
        Human-readable problems (empty when the tree is sound).
    """
    problems: list[str] = []
    for t in tree.root.walk():
        if t.content_region is not None and not contains(t.region, t.content_region, tol):
            problems.append(f"tile {t.key}: content region outside the tile region")
        if t.refine not in (None, "ADD", "REPLACE"):
            problems.append(f"tile {t.key}: refine {t.refine!r} is neither ADD nor REPLACE")
        for ch in t.children:
            if not contains(t.region, ch.region, tol):
                problems.append(f"tile {ch.key}: region outside parent {t.key}")
            if not ch.geometric_error < t.geometric_error:
                problems.append(f"tile {ch.key}: geometric error {ch.geometric_error} not below "
                                f"parent's {t.geometric_error}")
            if ch.variant:
                if ch.key != t.key:
                    problems.append(f"tile {ch.key}: {ch.variant} variant not at its parent's "
                                    f"place {t.key}")
            elif (ch.level, ch.x // 2, ch.y // 2) != (t.level + 1, t.x, t.y):
                problems.append(f"tile {ch.key}: not a quadtree child of {t.key}")
    return problems
