"""Building footprints and attributes of one town (vectorised over all lots of a district).

Each kept block is shrunk by half the width of each bounding street plus a sidewalk and split
into two rows of lots fronting the two long streets. Lot widths are drawn (wider in the centre)
and stretched to fill the row. A footprint stands in its lot with side, front and back margins,
so footprints never touch. Shapes: rectangles, L-shapes (a corner notch) and, on large lots,
courtyard buildings (a polygon with a hole). Footprints that meet a road, a railway or the river
corridor are dropped. Heights fall from the centre outwards; roofs are mostly flat in the centre
and pitched at the edge.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely
from rasterio.transform import Affine

from gis.demo.spec import sub_rng
from gis.demo.terrain import sample_dem
from gis.demo.town import SIDEWALK, District, Town

BUILDING_COLUMNS = ["id", "name", "height", "storeys", "storey_height", "ground_elevation",
                    "roof_type", "roof_height", "ridge_direction", "usage", "year_built",
                    "structure", "lod", "source", "lineage"]
ROOFS = np.array(["flat", "gable", "hip", "pyramid", "shed", "mansard", "dome"])
PITCHED_P = np.array([0.0, 0.34, 0.28, 0.1, 0.14, 0.1, 0.04])


def _rows(town: Town) -> dict[str, np.ndarray]:
    """Two lot rows per block: u start, length, front v, direction, depth, r."""
    k, m = town.blocks[:, 0], town.blocks[:, 1]
    off = town.off
    u0 = k * town.a + town.v_width[k + off] / 2.0 + SIDEWALK
    u1 = (k + 1) * town.a - town.v_width[k + 1 + off] / 2.0 - SIDEWALK
    v0 = m * town.b + town.u_width[m + off] / 2.0 + SIDEWALK
    v1 = (m + 1) * town.b - town.u_width[m + 1 + off] / 2.0 - SIDEWALK
    bx, by = town.to_world((u0 + u1) / 2.0, (v0 + v1) / 2.0)
    r = np.hypot(bx - town.centre[0], by - town.centre[1]) / max(town.radius, 1.0)
    ok = (u1 - u0 >= 10.0) & (v1 - v0 >= 16.0)
    u0, u1, v0, v1, r = u0[ok], u1[ok], v0[ok], v1[ok], r[ok]
    return {"u0": np.concatenate([u0, u0]), "length": np.concatenate([u1 - u0, u1 - u0]),
            "front": np.concatenate([v0, v1]), "dir": np.repeat([1.0, -1.0], len(u0)),
            "depth": np.concatenate([(v1 - v0) / 2.0] * 2), "r": np.concatenate([r, r])}


def _lots(rows: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Cut every row into lots; returns per-lot row index, u start and width."""
    centre = rows["r"] < 0.35
    wmin = np.where(centre, 14.0, np.where(rows["r"] < 0.7, 11.0, 9.0))
    wmax = np.where(centre, 34.0, np.where(rows["r"] < 0.7, 24.0, 17.0))
    n = len(rows["r"])
    cols = int(np.ceil(rows["length"].max() / 9.0)) + 1 if n else 1
    widths = rng.uniform(wmin[:, None], wmax[:, None], (n, cols))
    keep = np.cumsum(widths, axis=1) <= rows["length"][:, None]
    keep[:, 0] = True
    widths = widths * keep
    widths *= (rows["length"] / widths.sum(axis=1))[:, None]
    starts = np.cumsum(widths, axis=1) - widths
    row_idx, col_idx = np.nonzero(keep)
    return {"row": row_idx, "start": rows["u0"][row_idx] + starts[row_idx, col_idx],
            "width": widths[row_idx, col_idx]}


def _footprints(town: Town, rows: dict, lots: dict,
                rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Polygons (map coordinates) and shape facts of the built lots."""
    row = lots["row"]
    r = rows["r"][row]
    n = len(row)
    centre = r < 0.35
    side_l = np.where(centre, rng.uniform(0.5, 1.0, n), rng.uniform(0.8, 2.5, n))
    side_r = np.where(centre, rng.uniform(0.5, 1.0, n), rng.uniform(0.8, 2.5, n))
    front = np.where(centre, rng.uniform(0.5, 1.5, n), rng.uniform(1.0, 4.0, n))
    back = np.where(centre, rng.uniform(1.0, 3.0, n), rng.uniform(2.0, 8.0, n))
    fw = lots["width"] - side_l - side_r
    fd = np.minimum(rows["depth"][row] - front - back, 45.0)
    built = (fw >= 6.0) & (fd >= 6.0) & (rng.random(n) > 0.06)
    xa = lots["start"] + side_l
    xb = xa + fw
    ya, yb = front, front + fd
    pick = rng.random(n)
    court = built & (fw >= 22.0) & (fd >= 22.0) & (pick < 0.35)
    ell = built & ~court & (fw >= 9.0) & (fd >= 9.0) & (rng.random(n) < 0.22)
    rect = built & ~court & ~ell
    nw = fw * rng.uniform(0.35, 0.6, n)
    nd = fd * rng.uniform(0.35, 0.6, n)
    mirror = rng.random(n) < 0.5
    t = np.minimum(rng.uniform(6.0, 9.0, n), (np.minimum(fw, fd) - 5.0) / 2.0)

    def world(u: np.ndarray, y: np.ndarray, idx: np.ndarray) -> np.ndarray:
        v = rows["front"][row[idx]][:, None] + rows["dir"][row[idx]][:, None] * y
        x, yy = town.to_world(u, v)
        return np.stack([x, yy], axis=2)

    def box(idx: np.ndarray, x0, x1, y0, y1) -> np.ndarray:
        u = np.stack([x0, x1, x1, x0, x0], axis=1)
        y = np.stack([y0, y0, y1, y1, y0], axis=1)
        return world(u, y, idx)

    polys = np.empty(n, dtype=object)
    i = np.flatnonzero(rect)
    polys[i] = shapely.polygons(box(i, xa[i], xb[i], ya[i], yb[i]))
    i = np.flatnonzero(ell)
    u = np.stack([xa[i], xb[i], xb[i], xb[i] - nw[i], xb[i] - nw[i], xa[i], xa[i]], axis=1)
    u = np.where(mirror[i][:, None], (xa[i] + xb[i])[:, None] - u, u)
    y = np.stack([ya[i], ya[i], yb[i] - nd[i], yb[i] - nd[i], yb[i], yb[i], ya[i]], axis=1)
    polys[i] = shapely.polygons(world(u, y, i))
    i = np.flatnonzero(court)
    shells = shapely.linearrings(box(i, xa[i], xb[i], ya[i], yb[i]))
    holes = shapely.linearrings(box(i, xa[i] + t[i], xb[i] - t[i], ya[i] + t[i], yb[i] - t[i]))
    polys[i] = shapely.polygons(shells, holes=holes[:, None])
    kind = np.where(court, "court", np.where(ell, "L", "rect"))
    short = np.where(court, t, np.minimum(fw, fd))
    long_along_u = fw >= fd
    facts = {"kind": kind[built], "short": short[built], "long_along_u": long_along_u[built]}
    return polys[built], facts


def town_buildings(district: District, town: Town, exclusion: np.ndarray, dem: np.ndarray,
                   transform: Affine, seed: int, source: str) -> pd.DataFrame:
    """Footprints and attributes of all buildings of a district's town.

    Args:
        district: The district (for ids and the random stream).
        town: Its town.
        exclusion: Polygons no building may touch (roads, railways, river).
        dem: Conditioned DEM (for ground elevations).
        transform: DEM transform.
        seed: Region seed.
        source: ``source`` value.

    Returns:
        DataFrame with the standard's columns and a ``geometry`` column (Polygons).
    """
    rng = sub_rng(seed, 102, district.i, district.j)
    if len(town.blocks) == 0:
        return pd.DataFrame(columns=[*BUILDING_COLUMNS, "geometry"])
    rows = _rows(town)
    lots = _lots(rows, rng)
    polys, facts = _footprints(town, rows, lots, rng)
    keep = np.ones(len(polys), dtype=bool)
    if len(exclusion) and len(polys):
        hits = shapely.STRtree(polys).query(exclusion, predicate="intersects")[1]
        keep[hits] = False
    area = shapely.area(polys)
    keep &= (area >= 20.0) & (area <= 5000.0)
    polys = polys[keep]
    facts = {k: v[keep] for k, v in facts.items()}
    frame = _attributes(town, polys, facts, rng)
    cent = shapely.centroid(polys)
    frame["ground_elevation"] = np.round(sample_dem(dem, transform, shapely.get_x(cent),
                                                    shapely.get_y(cent)), 2)
    frame["id"] = [f"bldg-{district.tag}-{n:06d}" for n in range(len(frame))]
    frame["source"] = source
    frame["lineage"] = ("Synthetic: footprint drawn in a lot of a rotated street grid; heights and "
                        "roofs drawn by distance to the town centre; ground sampled from the DEM.")
    frame["geometry"] = polys
    return frame[[*BUILDING_COLUMNS, "geometry"]]


def _attributes(town: Town, polys: np.ndarray, facts: dict,
                rng: np.random.Generator) -> pd.DataFrame:
    n = len(polys)
    cent = shapely.centroid(polys)
    cx, cy = shapely.get_x(cent), shapely.get_y(cent)
    r = np.hypot(cx - town.centre[0], cy - town.centre[1]) / max(town.radius, 1.0)
    area = shapely.area(polys)
    centre_w = np.clip(1.0 - r, 0.0, 1.0) ** 2.2
    storeys = np.round((1.0 + 13.0 * centre_w * (town.radius / 800.0)) * rng.uniform(0.6, 1.4, n)
                       + rng.uniform(0, 1.2, n))
    storeys = np.clip(storeys, 1, 45).astype(int)
    storeys = np.where(area < 60.0, np.minimum(storeys, 3), storeys)
    usage = _usage(r, rng)
    # Roofs: flat dominates the centre and tall buildings; pitched shapes at the periphery.
    p_flat = np.clip(0.95 - 0.6 * r, 0.3, 0.95)
    pitched = ROOFS[rng.choice(len(ROOFS), n, p=PITCHED_P / PITCHED_P.sum())]
    roof = np.where((rng.random(n) < p_flat) | (storeys >= 6), "flat", pitched)
    frame = pd.DataFrame({"name": np.full(n, None, dtype=object), "storeys": storeys,
                          "roof_type": roof,
                          "usage": usage, "r": r, "area": area, "short": facts["short"],
                          "x": cx, "y": cy})
    _specials(frame, town, rng)
    return _heights(frame, town, facts, rng)


def _usage(r: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(r)
    central = rng.choice(["commercial", "mixed", "residential"], n, p=[0.45, 0.35, 0.2])
    outer = rng.choice(["residential", "mixed", "commercial", "industrial", "agricultural",
                        "religious"], n, p=[0.75, 0.08, 0.07, 0.05, 0.03, 0.02])
    return np.where(r < 0.35, central, outer).astype(object)


def _pick(frame: pd.DataFrame, mask: np.ndarray, count: int, spacing: float) -> list[int]:
    """Largest buildings under ``mask``, at least ``spacing`` metres apart."""
    order = np.flatnonzero(mask & frame["name"].isna().to_numpy())
    order = order[np.argsort(-frame["area"].to_numpy()[order], kind="stable")][:400]
    chosen: list[int] = []
    xy = frame[["x", "y"]].to_numpy()
    for idx in order:
        if len(chosen) >= count:
            break
        if all(np.hypot(*(xy[idx] - xy[c])) >= spacing for c in chosen):
            chosen.append(int(idx))
    return chosen


def _specials(frame: pd.DataFrame, town: Town, rng: np.random.Generator) -> None:
    """Name the public buildings: hospital, township office, schools, temples, shelters."""
    r = frame["r"].to_numpy()
    big = frame["area"].to_numpy() >= 150.0
    name, usage, storeys, roof = "name", "usage", "storeys", "roof_type"
    for idx in _pick(frame, big & (r < 0.45), 1 if town.radius >= 350 else 0, 0.0):
        frame.loc[idx, [name, usage, roof]] = [f"{town.name} General Hospital", "health", "flat"]
        frame.loc[idx, storeys] = max(int(frame.at[idx, storeys]), 7)
    for idx in _pick(frame, big & (r < 0.3), 1, 0.0):
        frame.loc[idx, [name, usage]] = [f"{town.name} Township Office", "public"]
    levels = ("Elementary School", "Junior High School", "Senior High School")
    n_schools = max(1, int(round(town.radius / 400.0)))
    schools = _pick(frame, big & (r > 0.2) & (r < 0.95), n_schools, 350.0)
    for n, idx in enumerate(schools):
        number = f" No. {n // 3 + 1}" if n >= 3 else ""
        frame.loc[idx, [name, usage, roof]] = [f"{town.name} {levels[n % 3]}{number}",
                                               "education", "flat"]
        frame.loc[idx, storeys] = int(rng.integers(3, 6))
    for n, idx in enumerate(_pick(frame, (r > 0.15), int(rng.integers(1, 3)), 300.0)):
        frame.loc[idx, [name, usage, roof]] = [f"{town.name} {('Matsu', 'Tudigong')[n % 2]} Temple",
                                               "religious", "hip"]
        frame.loc[idx, storeys] = int(rng.integers(1, 3))
    shelters = _pick(frame, big, 2 + int(round(town.radius / 500.0)), 250.0)
    for n, idx in enumerate(shelters):
        frame.loc[idx, [name, usage]] = [f"{town.name} Community Shelter {n + 1}", "public"]


def _heights(frame: pd.DataFrame, town: Town, facts: dict,
             rng: np.random.Generator) -> pd.DataFrame:
    n = len(frame)
    roof = frame["roof_type"].to_numpy()
    short = frame["short"].to_numpy()
    factor = pd.Series(roof).map({"flat": 0.0, "gable": 0.28, "hip": 0.25, "pyramid": 0.35,
                                  "shed": 0.15, "mansard": 0.2, "dome": 0.3}).to_numpy()
    pitched = np.clip(factor * short * rng.uniform(0.7, 1.1, n), 1.0, 8.0)
    roof_height = np.where(roof == "flat", 0.0, pitched)
    storeys = frame["storeys"].to_numpy()
    tall_storeys = frame["usage"].isin(["commercial", "public", "health", "education"])
    storey_height = np.round(np.where(tall_storeys, rng.uniform(3.3, 4.0, n),
                                      rng.uniform(2.9, 3.4, n)), 1)
    height = np.round(storeys * storey_height + roof_height, 1)
    mode = rng.choice(3, n, p=[0.15, 0.55, 0.30])  # storeys only / both / height only
    pitched_ridge = np.isin(roof, ["gable", "hip", "shed", "mansard"]) & (rng.random(n) < 0.6)
    angle = np.degrees(town.theta) + np.where(facts["long_along_u"], 0.0, 90.0)
    ridge = np.round((90.0 - angle) % 180.0, 1) % 180.0
    year = np.round(1955 + 69 * rng.beta(1.5 + 2.0 * frame["r"].to_numpy(), 1.5))
    year = np.clip(year, 1955, 2024)
    structure = np.where(storeys >= 15, rng.choice(["SRC", "steel"], n, p=[0.7, 0.3]),
                         np.where(storeys >= 5, rng.choice(["RC", "SRC"], n, p=[0.8, 0.2]),
                                  rng.choice(["RC", "brick", "wood", "steel"], n,
                                             p=[0.62, 0.25, 0.05, 0.08])))
    structure = np.where(frame["usage"].to_numpy() == "industrial", "steel", structure)
    return pd.DataFrame({
        "name": frame["name"].to_numpy(),
        "height": np.where(mode == 0, np.nan, height),
        "storeys": pd.Series(storeys, dtype="Int64").mask(mode == 2),
        "storey_height": np.where(mode == 2, np.nan, storey_height),
        "roof_type": roof.astype(object),
        "roof_height": np.round(roof_height, 1),
        "ridge_direction": np.where(pitched_ridge, ridge, np.nan),
        "usage": frame["usage"].to_numpy(),
        "year_built": year.astype(np.int64),
        "structure": structure.astype(object),
        "lod": np.ones(n, dtype=np.int64),
    })
