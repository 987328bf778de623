"""Town layout of one district: where the town sits, its rotated street grid and its blocks.

A district is a 4 km square. Its town is centred on the lowest, flattest ground near the middle
of the district (on the valley floor when a river crosses it, a few hundred metres off the
channel), with a radius that shrinks with elevation (hill villages are small). The street grid
is rotated by a random angle; block (k, m) covers ``u in [k a, (k+1) a]``, ``v in [m b, (m+1) b]``
in the town frame, whose origin is the main crossing. A block is kept when it lies within the
(ragged) town radius, on gentle slopes, inside the district and away from the river.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from gis.demo.spec import DISTRICT, RegionSpec, sub_rng
from gis.demo.terrain import TerrainModel

TOWN_NAMES = ("Zhushan", "Lugu", "Jiji", "Shuili", "Mingjian", "Caotun", "Puli", "Yuchi",
              "Guoxing", "Zhongliao", "Ershui", "Tianzhong", "Beidou", "Tianwei", "Xizhou",
              "Zhutang", "Fangyuan", "Pitou", "Xihu", "Yuanlin", "Shetou", "Yongjing", "Puxin",
              "Dacun", "Huatan", "Fenyuan", "Wufeng", "Wuri", "Dali", "Taiping", "Dongshi",
              "Xinshe", "Shigang", "Heping", "Waipu", "Dajia", "Qingshui", "Wuqi", "Longjing")
STREET_NAMES = ("Zhongshan", "Zhongzheng", "Minsheng", "Minquan", "Minzu", "Zhonghua", "Heping",
                "Guangfu", "Jianguo", "Fuxing", "Chenggong", "Ziyou", "Xinyi", "Renai",
                "Boai", "Sanmin", "Wenhua", "Zhongxing", "Datong", "Changchun")
SIDEWALK = 1.5  # metres between the carriageway edge and the lots

# class: (lanes choices, width per lane, extra width range)
STREET_CLASSES = ("primary", "secondary", "tertiary", "local")


@dataclass
class District:
    """One 4 km district: the unit of layout and of streaming.

    Attributes:
        i: Column index (west to east).
        j: Row index (south to north).
        box: (minx, miny, maxx, maxy).
    """

    i: int
    j: int
    box: tuple[float, float, float, float]

    @property
    def tag(self) -> str:
        """Identifier fragment, unique in the region."""
        return f"{self.i:03d}{self.j:03d}"

    @property
    def centre(self) -> tuple[float, float]:
        """Centre of the district box."""
        return ((self.box[0] + self.box[2]) / 2.0, (self.box[1] + self.box[3]) / 2.0)


def districts(spec: RegionSpec) -> list[District]:
    """The districts of a region, row by row from the south-west."""
    minx, miny, _, _ = spec.bbox
    n = spec.districts
    return [District(i, j, (minx + i * DISTRICT, miny + j * DISTRICT,
                            minx + (i + 1) * DISTRICT, miny + (j + 1) * DISTRICT))
            for j in range(n) for i in range(n)]


@dataclass
class Town:
    """A town's frame and its blocks.

    Attributes:
        name: Town name.
        centre: Main crossing (x, y).
        radius: Nominal radius (metres).
        theta: Grid rotation (radians, counter-clockwise from east).
        a: Block length along u (metres).
        b: Block depth along v (metres).
        blocks: Kept blocks, (n, 2) integer (k, m).
        u_width: Carriageway width of the u-line (constant v) m, indexed ``m + off``.
        v_width: Width of the v-line (constant u) k, indexed ``k + off``.
        u_lanes: Lanes of the u-lines.
        v_lanes: Lanes of the v-lines.
        off: Index offset of the line arrays.
    """

    name: str
    centre: tuple[float, float]
    radius: float
    theta: float
    a: float
    b: float
    blocks: np.ndarray
    u_width: np.ndarray
    v_width: np.ndarray
    u_lanes: np.ndarray
    v_lanes: np.ndarray
    off: int

    def to_world(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Town-frame (u, v) to map (x, y)."""
        c, s = np.cos(self.theta), np.sin(self.theta)
        return self.centre[0] + u * c - v * s, self.centre[1] + u * s + v * c

    def line_class(self, along_u: bool, index: np.ndarray) -> np.ndarray:
        """Road class of grid lines: u-line 0 is primary, v-line 0 secondary, every 4th tertiary."""
        index = np.asarray(index)
        main = "primary" if along_u else "secondary"
        return np.where(index == 0, main, np.where(index % 4 == 0, "tertiary", "local"))

    def block_corners(self, blocks: np.ndarray) -> np.ndarray:
        """Map corners (n, 4, 2) of blocks, counter-clockwise from the (k a, m b) corner."""
        k = blocks[:, 0].astype(float)
        m = blocks[:, 1].astype(float)
        us = np.stack([k, k + 1, k + 1, k], axis=1) * self.a
        vs = np.stack([m, m, m + 1, m + 1], axis=1) * self.b
        x, y = self.to_world(us, vs)
        return np.stack([x, y], axis=2)


def _line_widths(rng: np.random.Generator, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = classes.size
    lanes = np.where(classes == "primary", 4,
                     np.where(classes == "secondary", rng.choice([2, 4], n),
                              np.where(classes == "tertiary", 2,
                                       rng.choice([1, 2], n, p=[0.3, 0.7]))))
    extra = np.where(classes == "local", rng.uniform(1.0, 2.0, n), rng.uniform(2.0, 4.0, n))
    width = np.round(lanes * 3.1 + extra, 1)
    return width, lanes


def _site(model: TerrainModel, district: District, rng: np.random.Generator) -> tuple[float, float]:
    x0, y0, x1, y1 = district.box
    g = np.linspace(0.25, 0.75, 9)
    cx = x0 + (x1 - x0) * g[None, :] + np.zeros((9, 1))
    cy = y0 + (y1 - y0) * g[:, None] + np.zeros((1, 9))
    cx, cy = cx.ravel(), cy.ravel()
    dist = np.hypot(cx - district.centre[0], cy - district.centre[1])
    score = (model.points(cx, cy) + 300.0 * model.slope(cx, cy) + 0.01 * dist
             + rng.uniform(0, 5, cx.size))
    best = int(np.argmin(score))
    x, y = float(cx[best]), float(cy[best])
    d, k = model.river_distance(np.asarray(x), np.asarray(y))
    keep_off = 320.0
    if float(d) < keep_off:
        river = model.rivers[int(k)]
        yc = float(river.centre_y(np.asarray(x)))
        side = 1.0 if y >= yc else -1.0
        y = yc + side * (keep_off + river.a2)
        y = float(np.clip(y, y0 + 0.2 * (y1 - y0), y1 - 0.2 * (y1 - y0)))
    return x, y


def plan_town(model: TerrainModel, spec: RegionSpec, district: District, seed: int,
              river_zone: shapely.Geometry | None, boost: float = 1.0) -> Town:
    """Lay out the town of a district.

    Args:
        model: Terrain model.
        spec: Region spec (nominal town radius).
        district: The district.
        seed: Region seed.
        river_zone: River corridor polygon of the district (blocks stay out of it), or None.
        boost: Radius factor (the main town of a region is bigger).

    Returns:
        The town with its kept blocks.
    """
    rng = sub_rng(seed, 100, district.i, district.j)
    name = TOWN_NAMES[int(rng.integers(len(TOWN_NAMES)))]
    cx, cy = _site(model, district, rng)
    zc = float(model.points(np.asarray(cx), np.asarray(cy)))
    capacity = float(np.clip(1.25 - zc / (0.3 * model.relief), 0.15, 1.0))
    jitter = 1.0 if spec.size == "small" else rng.uniform(0.8, 1.2)
    radius = min(spec.town_radius * capacity * jitter * boost, 0.5 * DISTRICT - 100.0)
    theta = float(rng.uniform(-0.45, 0.45))
    a, b = float(rng.uniform(100.0, 130.0)), float(rng.uniform(70.0, 90.0))
    kmax = int(np.ceil(1.3 * radius / a)) + 1
    mmax = int(np.ceil(1.3 * radius / b)) + 1
    off = max(kmax, mmax) + 2
    idx = np.arange(-off, off + 1)
    u_width, u_lanes = _line_widths(rng, np.where(idx == 0, "primary",
                                                  np.where(idx % 4 == 0, "tertiary", "local")))
    v_width, v_lanes = _line_widths(rng, np.where(idx == 0, "secondary",
                                                  np.where(idx % 4 == 0, "tertiary", "local")))
    town = Town(name, (cx, cy), radius, theta, a, b, np.zeros((0, 2), dtype=np.int64),
                u_width, v_width, u_lanes, v_lanes, off)
    kk, mm = np.meshgrid(np.arange(-kmax, kmax), np.arange(-mmax, mmax))
    cand = np.column_stack([kk.ravel(), mm.ravel()])
    town.blocks = cand[_keep_blocks(model, district, town, cand, river_zone, rng)]
    return town


def _keep_blocks(model: TerrainModel, district: District, town: Town, cand: np.ndarray,
                 river_zone: shapely.Geometry | None, rng: np.random.Generator) -> np.ndarray:
    bx, by = town.to_world((cand[:, 0] + 0.5) * town.a, (cand[:, 1] + 0.5) * town.b)
    ang = np.arctan2(by - town.centre[1], bx - town.centre[0])
    phases = rng.uniform(0, 2 * np.pi, 3)
    ragged = 1.0 + 0.18 * (np.sin(2 * ang + phases[0]) + 0.6 * np.sin(3 * ang + phases[1])
                           + 0.4 * np.sin(5 * ang + phases[2])) / 2.0
    keep = np.hypot(bx - town.centre[0], by - town.centre[1]) < town.radius * ragged
    corners = town.block_corners(cand)
    x0, y0, x1, y1 = district.box
    margin = 25.0
    keep &= ((corners[:, :, 0] > x0 + margin).all(1) & (corners[:, :, 0] < x1 - margin).all(1)
             & (corners[:, :, 1] > y0 + margin).all(1) & (corners[:, :, 1] < y1 - margin).all(1))
    idx = np.flatnonzero(keep)
    if idx.size:
        steep = model.slope(bx[idx], by[idx], h=30.0) > 0.12
        keep[idx[steep]] = False
    if river_zone is not None and keep.any():
        idx = np.flatnonzero(keep)
        polys = shapely.polygons(np.concatenate([corners[idx], corners[idx, :1]], axis=1))
        keep[idx[shapely.intersects(polys, river_zone)]] = False
    return keep
