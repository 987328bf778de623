"""Terrain tiles (tiles.terrain, ``ngis terrain build``) against independent references.

- Decoding: quantized-mesh-tile's reader (a third-party decoder; it does not skip the 4-byte
  alignment the spec puts before 32-bit indices, so tiles with more than 65,536 vertices are read
  by ``spec_decode`` below, written from the quantized-mesh-1.0 spec and checked against
  quantized-mesh-tile on the tiles both can read).
- DEM values: scipy's RegularGridInterpolator (bilinear between cell centres) on the whole DEM
  array read with rasterio, lon/lat taken to the DEM CRS with a fresh pyproj Transformer.
- Mesh surface: matplotlib's LinearTriInterpolator on the decoded triangles.
- Geoid: ``tiles.geoid.undulation``, the model our 3D Tiles use.
"""

from __future__ import annotations

import functools
import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from matplotlib.tri import LinearTriInterpolator, Triangulation
from pyproj import CRS, Transformer
from quantized_mesh_tile import decode as qmt_decode
from scipy.interpolate import RegularGridInterpolator

from tiles.geoid import undulation
from tiles.terrain import TerrainOptions, build_terrain
from tiles.terrain.tiling import SIZE, tile_bounds

QMAX = 32767
SW_DEM = ("tw-sw-dem40m", "tw_sw40_moi40m_wgs84.tif")


# ---------------------------------------------------------------- reference decoder (spec)

def _unzigzag(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.int64)
    return np.cumsum((a >> 1) ^ -(a & 1))


def spec_decode(data: bytes) -> dict:
    """quantized-mesh-1.0 from the spec: header, vertices, indices (with 4-byte alignment for
    32-bit ones), edges, extensions."""
    pos = 88
    header = struct.unpack_from("<3d2f4d3d", data, 0)
    (n,) = struct.unpack_from("<I", data, pos)
    pos += 4
    uvh = np.frombuffer(data, "<u2", 3 * n, pos).reshape(3, n)
    pos += 6 * n
    u, v, h = (_unzigzag(a) for a in uvh)
    wide = n > 65536
    itype, isize = ("<u4", 4) if wide else ("<u2", 2)
    if pos % isize:
        pos += isize - pos % isize
    (ntri,) = struct.unpack_from("<I", data, pos)
    pos += 4
    codes = np.frombuffer(data, itype, 3 * ntri, pos).astype(np.int64)
    pos += 3 * ntri * isize
    zero = codes == 0
    indices = np.cumsum(zero) - zero - codes  # highest-so-far (codes of 0 seen before) - code
    edges = {}
    for name in ("west", "south", "east", "north"):
        (k,) = struct.unpack_from("<I", data, pos)
        pos += 4
        edges[name] = np.frombuffer(data, itype, k, pos).astype(np.int64)
        pos += k * isize
    ext = {}
    while pos < len(data):
        eid, length = struct.unpack_from("<BI", data, pos)
        pos += 5
        ext[eid] = data[pos:pos + length]
        pos += length
    return {"header": header, "u": u, "v": v, "h": h, "indices": indices, "edges": edges,
            "ext": ext}


#: Tiles up to this many vertices are decoded with quantized-mesh-tile (pure Python, ~1 s per
#: 60,000 vertices); larger ones with the spec decoder (the two agree, see below).
QMT_MAX_VERTICES = 20000


def _oct_decode(e: np.ndarray) -> np.ndarray:
    """Oct-encoded normals (spec: Cigolle et al. 2014) to unit vectors."""
    x, y = e[:, 0] / 255.0 * 2 - 1, e[:, 1] / 255.0 * 2 - 1
    z = 1 - np.abs(x) - np.abs(y)
    fold = z < 0
    x, y = (np.where(fold, (1 - np.abs(y)) * np.where(x >= 0, 1, -1), x),
            np.where(fold, (1 - np.abs(x)) * np.where(y >= 0, 1, -1), y))
    v = np.stack([x, y, z], 1)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@functools.lru_cache(maxsize=64)
def read_tile(root: Path, z: int, x: int, y: int, force_qmt: bool = False) -> dict:
    """Decode a tile: quantized-mesh-tile where it can, else the spec decoder. Returns grid
    columns/rows (from the south), heights, triangles, edge lists, header and extensions."""
    path = root / str(z) / str(x) / f"{y}.terrain"
    raw = gzip.decompress(path.read_bytes())
    ref = spec_decode(raw)
    hmin, hmax = ref["header"][3], ref["header"][4]
    if len(ref["u"]) <= (65536 if force_qmt else QMT_MAX_VERTICES):
        t = qmt_decode(str(path), list(tile_bounds(z, x, y)), hasLighting=True,
                       hasWatermask=True, gzipped=True)
        u, v, hq = np.array(t.u), np.array(t.v), np.array(t.h)
        tri = np.array(t.indices).reshape(-1, 3)
        edges = {"west": np.array(t.westI), "south": np.array(t.southI),
                 "east": np.array(t.eastI), "north": np.array(t.northI)}
        normals = np.array(t.vLight)
        hmin, hmax = t.header["minimumHeight"], t.header["maximumHeight"]
        decoder = "quantized-mesh-tile"
    else:
        u, v, hq = ref["u"], ref["v"], ref["h"]
        tri = ref["indices"].reshape(-1, 3)
        edges = ref["edges"]
        normals = _oct_decode(np.frombuffer(ref["ext"][1], np.uint8).reshape(-1, 2)) \
            if 1 in ref["ext"] else None
        decoder = "spec"
    colf, rowf = u * SIZE / QMAX, v * SIZE / QMAX
    col, row = np.rint(colf).astype(int), np.rint(rowf).astype(int)
    assert np.abs(colf - col).max() < 0.01 and np.abs(rowf - row).max() < 0.01
    h = hmin + hq / QMAX * (hmax - hmin)
    return {"col": col, "row": row, "h": h, "tri": tri, "edges": edges, "normals": normals,
            "q": (hmax - hmin) / QMAX, "spec": ref, "decoder": decoder}


# ---------------------------------------------------------------- references

class DemReference:
    """Bilinear DEM heights at lon/lat (NaN outside the cell-centre hull or next to no data)."""

    def __init__(self, path):
        with rasterio.open(path) as src:
            arr = src.read(1, masked=True).astype(np.float64).filled(np.nan)
            t, crs = src.transform, CRS.from_user_input(src.crs)
        xs = t.c + (np.arange(arr.shape[1]) + 0.5) * t.a
        ys = t.f + (np.arange(arr.shape[0]) + 0.5) * t.e
        self.interp = RegularGridInterpolator((ys[::-1], xs), arr[::-1], bounds_error=False,
                                              fill_value=np.nan)
        self.to_crs = Transformer.from_crs("EPSG:4326", crs, always_xy=True)

    def __call__(self, lon, lat):
        x, y = self.to_crs.transform(np.asarray(lon, float), np.asarray(lat, float))
        return self.interp(np.stack([np.ravel(y), np.ravel(x)], axis=1)).reshape(np.shape(lon))


def rasterize_mesh(col, row, h, tri, size: int = SIZE) -> np.ndarray:
    """The mesh's linear surface at every integer grid point, (size + 1)² with row index from the
    south: barycentric interpolation in each triangle's bounding box, triangles grouped by box
    size (NaN where no triangle covers a point). matplotlib's LinearTriInterpolator gives the same
    (checked on small tiles below) but takes seconds on 60,000-vertex meshes."""
    out = np.full((size + 1, size + 1), np.nan)
    a, b, c = (np.stack([col[tri[:, k]], row[tri[:, k]]], 1).astype(np.int64) for k in range(3))
    lo = np.minimum(np.minimum(a, b), c)
    dims = np.maximum(np.maximum(a, b), c) - lo
    det = (b[:, 1] - c[:, 1]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (a[:, 1] - c[:, 1])
    for w, hh in {tuple(d) for d in dims}:
        sel = np.flatnonzero((dims[:, 0] == w) & (dims[:, 1] == hh))
        ox, oy = np.meshgrid(np.arange(w + 1), np.arange(hh + 1))
        px = lo[sel, 0, None] + ox.ravel()[None]
        py = lo[sel, 1, None] + oy.ravel()[None]
        A, B, C, D = a[sel], b[sel], c[sel], det[sel, None].astype(float)
        wa = ((B[:, 1, None] - C[:, 1, None]) * (px - C[:, 0, None])
              + (C[:, 0, None] - B[:, 0, None]) * (py - C[:, 1, None])) / D
        wb = ((C[:, 1, None] - A[:, 1, None]) * (px - C[:, 0, None])
              + (A[:, 0, None] - C[:, 0, None]) * (py - C[:, 1, None])) / D
        wc = 1 - wa - wb
        inside = (wa >= -1e-9) & (wb >= -1e-9) & (wc >= -1e-9)
        ia, ib, ic = (h[tri[sel, k]][:, None] for k in range(3))
        val = wa * ia + wb * ib + wc * ic
        out[py[inside], px[inside]] = val[inside]
    return out


def tiles_on_disk(root: Path) -> set[tuple[int, int, int]]:
    return {(int(p.parts[-3]), int(p.parts[-2]), int(p.stem))
            for p in root.glob("*/*/*.terrain")}


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def demo_dem(tmp_path_factory):
    from gis.demo import generate_region

    d = tmp_path_factory.mktemp("terrain_demo")
    generate_region(d / "src", seed=42, size="small")
    return d / "src" / "dem.tif"


@pytest.fixture(scope="module")
def demo_terrain(demo_dem, tmp_path_factory):
    out = tmp_path_factory.mktemp("terrain_out") / "terrain"
    summary = build_terrain([demo_dem], out, TerrainOptions(max_error=0.5))
    return demo_dem, out, summary


@pytest.fixture(scope="module")
def sw_terrain(tmp_path_factory, shared_data):
    dem = shared_data(*SW_DEM)
    out = tmp_path_factory.mktemp("terrain_sw") / "terrain"
    summary = build_terrain([dem], out, TerrainOptions(max_zoom=9, max_error=0.5))
    return dem, out, summary


# ---------------------------------------------------------------- tests

def _check_reproduces_dem(dem, out):
    layer = json.loads((out / "layer.json").read_text())
    errors = {int(z): e for z, e in layer["ngis"]["maxError"].items()}
    ref = DemReference(dem)
    checked = 0
    worst = {}
    for z, x, y in sorted(tiles_on_disk(out)):
        t = read_tile(out, z, x, y)
        west, south, east, north = tile_bounds(z, x, y)
        k = np.arange(SIZE + 1)
        lon = west + (east - west) * k / SIZE
        lat = south + (north - south) * k / SIZE  # rows from the south, like t["row"]
        LON, LAT = np.meshgrid(lon, lat)
        H = ref(LON, LAT)
        valid = np.isfinite(H)
        if not valid.any():
            continue
        expected = H[valid] + undulation(LAT[valid], LON[valid])
        got = rasterize_mesh(t["col"], t["row"], t["h"], t["tri"])
        assert np.isfinite(got).all(), "mesh must cover the whole tile"
        dev = np.abs(got[valid] - expected).max()
        tol = errors[z] + 1e-3  # the stated bound includes the height quantization
        assert dev <= tol, (z, x, y, dev, tol)
        worst[z] = max(worst.get(z, 0.0), dev)
        checked += 1
    assert checked >= 5
    return worst


def test_demo_tiles_reproduce_dem_within_level_error(demo_terrain):
    dem, out, summary = demo_terrain
    worst = _check_reproduces_dem(dem, out)
    assert summary.max_zoom == 13  # 10 m cells: 180 / 2**13 / 256 deg = 9.5 m spacing
    assert worst[13] <= 0.5 + 1e-3


@pytest.mark.shared_data
def test_sw_taiwan_tiles_reproduce_dem_within_level_error(sw_terrain):
    dem, out, _ = sw_terrain
    worst = _check_reproduces_dem(dem, out)
    assert worst[9] > 0.1  # the mesh is simplified, not the full grid


def _finest_vertices(dem, out, zoom):
    """Per tile of the finest level: (x, y, decoded tile, DEM height under each vertex, where
    the DEM has data, geoid undulation there)."""
    ref = DemReference(dem)
    for tz, x, y in tiles_on_disk(out):
        if tz != zoom:
            continue
        t = read_tile(out, zoom, x, y)
        west, south, east, north = tile_bounds(zoom, x, y)
        lon = west + (east - west) * t["col"] / SIZE
        lat = south + (north - south) * t["row"] / SIZE
        H = ref(lon, lat)
        ok = np.isfinite(H)
        yield x, y, t, H, ok, undulation(lat[ok], lon[ok])


def test_heights_are_ellipsoidal_with_our_geoid(demo_terrain):
    dem, out, summary = demo_terrain
    diffs, n_geoid = [], []
    for x, y, t, H, ok, N in _finest_vertices(dem, out, summary.max_zoom):
        d = t["h"][ok] - H[ok] - N
        assert np.abs(d).max() <= 0.01 + t["q"] / 2, (x, y, np.abs(d).max())
        diffs.append(d)
        n_geoid.append(N)
    n_geoid = np.concatenate(n_geoid)
    assert len(n_geoid) > 100
    assert 15 < n_geoid.min() and n_geoid.max() < 30  # Taiwan: ignoring N would be ~20 m off
    assert np.abs(np.concatenate(diffs)).max() <= 0.01


def _adjacent_pairs(tiles):
    for z, x, y in tiles:
        if (z, x + 1, y) in tiles:
            yield (z, x, y), (z, x + 1, y), "east", "west"
        if (z, x, y + 1) in tiles:
            yield (z, x, y), (z, x, y + 1), "north", "south"


def _check_no_cracks(out):
    layer = json.loads((out / "layer.json").read_text())
    errors = {int(z): e for z, e in layer["ngis"]["maxError"].items()}
    tiles = tiles_on_disk(out)
    pairs = 0
    for a, b, side_a, side_b in _adjacent_pairs(tiles):
        ta, tb = read_tile(out, *a), read_tile(out, *b)
        ia, ib = ta["edges"][side_a], tb["edges"][side_b]
        along = "row" if side_a == "east" else "col"
        pa, ha = ta[along][ia], ta["h"][ia]
        pb, hb = tb[along][ib], tb["h"][ib]
        assert np.all(np.diff(pa) > 0) and np.all(np.diff(pb) > 0)
        assert pa[0] == pb[0] == 0 and pa[-1] == pb[-1] == SIZE
        common, ka, kb = np.intersect1d(pa, pb, return_indices=True)
        assert len(common) >= 2
        q = ta["q"] / 2 + tb["q"] / 2 + 1e-4
        assert np.abs(ha[ka] - hb[kb]).max() <= q, (a, b)  # shared vertices: same height
        gap = max(np.abs(np.interp(pb, pa, ha) - hb).max(),
                  np.abs(np.interp(pa, pb, hb) - ha).max())
        assert gap <= 2 * errors[a[0]] + q, (a, b, gap)  # what the skirts must hide
        pairs += 1
    assert pairs >= 2


def _check_edge_lists(out):
    for z, x, y in tiles_on_disk(out):
        t = read_tile(out, z, x, y)
        col, row = t["col"], t["row"]
        for name, on in (("west", col == 0), ("south", row == 0), ("east", col == SIZE),
                         ("north", row == SIZE)):
            assert sorted(t["edges"][name]) == sorted(np.flatnonzero(on)), (z, x, y, name)
        # every triangle counter-clockwise seen from above (east, north)
        a, b, c = t["tri"].T
        cross = (col[b] - col[a]) * (row[c] - row[a]) - (row[b] - row[a]) * (col[c] - col[a])
        assert (cross > 0).all()


def test_demo_no_cracks_and_edge_lists(demo_terrain):
    _, out, _ = demo_terrain
    _check_no_cracks(out)
    _check_edge_lists(out)


@pytest.mark.shared_data
def test_sw_taiwan_no_cracks_and_edge_lists(sw_terrain):
    _, out, _ = sw_terrain
    _check_no_cracks(out)
    _check_edge_lists(out)


@pytest.mark.parametrize("which", ["demo", "sw"])
def test_layer_available_matches_files(which, request):
    if which == "sw":
        request.applymarker(pytest.mark.shared_data)
    _, out, summary = request.getfixturevalue(f"{which}_terrain")
    layer = json.loads((out / "layer.json").read_text())
    assert layer["format"] == "quantized-mesh-1.0" and layer["scheme"] == "tms"
    assert layer["projection"] == "EPSG:4326"
    assert set(layer["extensions"]) == {"octvertexnormals", "watermask"}
    assert layer["maxzoom"] == len(layer["available"]) - 1 == summary.max_zoom
    listed = set()
    for z, ranges in enumerate(layer["available"]):
        for r in ranges:
            listed |= {(z, x, y) for x in range(r["startX"], r["endX"] + 1)
                       for y in range(r["startY"], r["endY"] + 1)}
    assert listed == tiles_on_disk(out)
    assert {(0, 0, 0), (0, 1, 0)} <= listed
    assert summary.tiles == len(listed)
    stored = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert summary.bytes == stored
    # every tile with a parent on disk (CesiumJS walks down from the roots)
    assert all((z - 1, x // 2, y // 2) in listed for z, x, y in listed if z > 0)
    # the data bounds are covered at every level
    west, south, east, north = layer["ngis"]["dataBounds"]
    for z in range(layer["maxzoom"] + 1):
        tz = [tile_bounds(*t) for t in listed if t[0] == z]
        assert min(b[0] for b in tz) <= west and max(b[2] for b in tz) >= east
        assert min(b[1] for b in tz) <= south and max(b[3] for b in tz) >= north


@pytest.mark.parametrize("which", ["demo", "sw"])
def test_spec_decoder_agrees_with_quantized_mesh_tile(which, request):
    if which == "sw":
        request.applymarker(pytest.mark.shared_data)
    _, out, _ = request.getfixturevalue(f"{which}_terrain")
    tiles = sorted(tiles_on_disk(out))
    for z, x, y in (tiles[-4:] if which == "demo" else tiles[-1:]):
        t = read_tile(out, z, x, y, force_qmt=True)
        assert t["decoder"] == "quantized-mesh-tile"
        ref = t["spec"]
        normals = _oct_decode(np.frombuffer(ref["ext"][1], np.uint8).reshape(-1, 2))
        assert np.abs(normals - t["normals"]).max() < 1e-6
        if which == "demo":  # our test rasterizer against matplotlib's interpolator
            k = np.arange(SIZE + 1)
            K, R = np.meshgrid(k, k)
            surface = LinearTriInterpolator(Triangulation(t["col"], t["row"], t["tri"]), t["h"])
            expected = np.asarray(surface(K.astype(float), R.astype(float)).filled(np.nan))
            got = rasterize_mesh(t["col"], t["row"], t["h"], t["tri"])
            assert np.allclose(got, expected, atol=1e-6, equal_nan=False)
        assert np.array_equal(ref["indices"].reshape(-1, 3), t["tri"])
        assert np.array_equal(np.rint(ref["u"] * SIZE / QMAX), t["col"])
        for name in ("west", "south", "east", "north"):
            assert np.array_equal(ref["edges"][name], t["edges"][name])


def _border_sea_reference(path, shore_max=10.0):
    """Reference sea of a DEM, at full resolution with scipy: the 8-connected no-data regions
    that touch the raster's border and whose shore (valid cells next to them) has a median
    height <= ``shore_max``. Returns (sea mask, transform, shore medians of the border regions)."""
    from scipy import ndimage

    with rasterio.open(path) as src:
        arr = src.read(1, masked=True)
        t = src.transform
    nodata = np.ma.getmaskarray(arr)
    eight = np.ones((3, 3), bool)
    labels, _ = ndimage.label(nodata, structure=eight)
    border = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0],
                                           labels[:, -1]]))) - {0}
    sea, medians = np.zeros_like(nodata), {}
    for r in border:
        region = labels == r
        shore = ndimage.binary_dilation(region, structure=eight) & ~nodata
        medians[r] = float(np.median(arr.data[shore])) if shore.any() else np.inf
        if medians[r] <= shore_max:
            sea |= region
    return sea, t, medians


def _reference_water(sea, t, lon, lat):
    """Water at lon/lat: inside the raster, on a cell of the reference sea."""
    col = np.floor((lon - t.c) / t.a).astype(int)
    row = np.floor((lat - t.f) / t.e).astype(int)
    inside = (col >= 0) & (col < sea.shape[1]) & (row >= 0) & (row < sea.shape[0])
    out = np.zeros(lon.shape, bool)
    out[inside] = sea[row[inside], col[inside]]
    return out


@pytest.mark.shared_data
def test_watermask_and_normals(sw_terrain):
    """The sea west of the coast (no data reaching the DEM's border along a 0 m shore) is water,
    and only inside the DEM: beyond its edge there is no data, not sea. Normals point up and
    follow the slope."""
    dem, out, summary = sw_terrain
    sea, dem_t, medians = _border_sea_reference(dem)
    assert sea.mean() > 0.05 and min(medians.values()) <= 1.0  # the Taiwan Strait
    z = summary.max_zoom
    seen_mixed = seen_outside = False
    checked_normals = 0
    to_ecef = Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)
    for tz, x, y in tiles_on_disk(out):
        if tz != z:
            continue
        t = read_tile(out, z, x, y)
        mask = t["spec"]["ext"][2]
        west, south, east, north = tile_bounds(z, x, y)
        c = (np.arange(256) + 0.5) / 256
        LON, LAT = np.meshgrid(west + (east - west) * c, north - (north - south) * c)
        water_ref = _reference_water(sea, dem_t, LON, LAT)
        d = (east - west) / 256  # a watermask cell takes its corner samples: one cell of slack
        outside = ((LON < dem_t.c - d) | (LON > dem_t.c + dem_t.a * sea.shape[1] + d)
                   | (LAT > dem_t.f + d) | (LAT < dem_t.f + dem_t.e * sea.shape[0] - d))
        if len(mask) == 1:
            water = np.full((256, 256), mask[0] == 255)
            assert mask[0] == (255 if water_ref.all() else 0) or water_ref.mean() < 0.01
        else:
            seen_mixed = True
            water = np.frombuffer(mask, np.uint8).reshape(256, 256) == 255
            assert (water == water_ref).mean() > 0.97  # rows north to south
        if outside.any():
            seen_outside = True
            assert not water[outside].any()  # beyond the DEM: no data, not sea
        if t["normals"] is not None:
            checked_normals += 1
            nrm = t["normals"]
            lon = west + (east - west) * t["col"] / SIZE
            lat = south + (north - south) * t["row"] / SIZE
            X, Y, Z = to_ecef.transform(lon, lat, t["h"])
            p = np.stack([X, Y, Z], 1)
            a, b, c = t["tri"].T
            face = np.cross(p[b] - p[a], p[c] - p[a])  # counter-clockwise: outward
            acc = np.zeros_like(p)
            for k in (a, b, c):
                np.add.at(acc, k, face)
            expected = acc / np.linalg.norm(acc, axis=1, keepdims=True)
            assert np.allclose(np.linalg.norm(nrm, axis=1), 1, atol=0.02)
            assert np.abs(nrm - expected).max() < 0.02  # oct-encoded in 8 bits per axis
            lam, phi = np.radians(lon), np.radians(lat)
            up = np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], 1)
            assert np.median(np.einsum("ij,ij->i", nrm, up)) > 0.9
    assert seen_mixed and seen_outside and checked_normals >= 2


@pytest.mark.slow
def test_two_workers_write_the_same_files(demo_dem, demo_terrain, tmp_path):
    _, out1, _ = demo_terrain
    out2 = tmp_path / "t2"
    build_terrain([demo_dem], out2, TerrainOptions(max_error=0.5, workers=2))
    files = sorted(p.relative_to(out1) for p in out1.rglob("*.terrain"))
    assert files == sorted(p.relative_to(out2) for p in out2.rglob("*.terrain"))
    for f in files:
        assert (out1 / f).read_bytes() == (out2 / f).read_bytes()


def test_cli_builds_and_reports(demo_dem, tmp_path):
    from gis.cli.main import cli

    out = tmp_path / "terrain"
    result = CliRunner().invoke(cli, ["terrain", "build", "--dem", str(demo_dem), "--out",
                                      str(out), "--max-zoom", "12", "--max-error", "1"])
    assert result.exit_code == 0, result.output
    assert "tiles" in result.output and "MB" in result.output and " s (" in result.output
    layer = json.loads((out / "layer.json").read_text())
    assert layer["maxzoom"] == 12 and layer["ngis"]["maxError"]["12"] == 1.0


@pytest.mark.parametrize("content", [b"not a raster at all\n", b"II*\x00garbage"])
def test_cli_bad_dem_one_line_exit_1_nothing_written(content, tmp_path):
    from gis.cli.main import cli

    bad = tmp_path / "bad.tif"
    bad.write_bytes(content)
    out = tmp_path / "out" / "terrain"
    result = CliRunner().invoke(cli, ["terrain", "build", "--dem", str(bad), "--out", str(out)])
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "error" in result.stderr
    assert not out.exists()
    assert not any(out.parent.iterdir()) if out.parent.exists() else True


def test_failed_build_keeps_previous_terrain(demo_terrain, tmp_path, monkeypatch):
    """A build that fails halfway leaves the old tileset as it was and no temporary folder."""
    import tiles.terrain.build as tb

    dem, _, _ = demo_terrain
    out = tmp_path / "terrain"
    build_terrain([dem], out, TerrainOptions(max_zoom=10))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    calls = {"n": 0}
    real = tb._write_tile

    def failing(*args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real(*args)

    monkeypatch.setattr(tb, "_write_tile", failing)
    with pytest.raises(OSError):
        build_terrain([dem], out, TerrainOptions(max_zoom=12))
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["terrain"]


def test_dem_outside_east_asia_uses_the_worldwide_geoid(tmp_path):
    """A DEM in the Alps (outside the East Asia 5' grid) builds, its heights lifted by the
    worldwide grid's undulation (about 47-50 m there, :func:`tiles.geoid.undulation`)."""
    from affine import Affine

    from gis.io.outputs import write_cog

    dem = tmp_path / "alps.tif"
    write_cog(dem, np.full((20, 20), 500.0, np.float32), Affine(0.01, 0, 7.0, 0, -0.01, 46.0),
              "EPSG:4326")
    out = tmp_path / "t"
    summary = build_terrain([dem], out, TerrainOptions(max_error=0.5))
    seen = 0
    for _, _, t, H, ok, N in _finest_vertices(dem, out, summary.max_zoom):
        assert 40 < N.min() and N.max() < 60
        assert np.abs(t["h"][ok] - H[ok] - N).max() <= 0.5 + t["q"]
        seen += int(ok.sum())
    assert seen >= 4


def test_wide_indices_tile_decodes_per_spec():
    """A full 257 x 257 mesh has > 65,536 vertices: 32-bit indices after 4-byte alignment."""
    from tiles.terrain.mesh import triangulate
    from tiles.terrain.qmesh import encode_tile

    rng = np.random.default_rng(3)
    grid = 100 + rng.normal(0, 5, (SIZE + 1, SIZE + 1))
    mesh = triangulate(grid, 0.0)  # every sample a vertex
    bounds = tile_bounds(11, 3418, 1158)
    t = spec_decode(encode_tile(mesh, bounds))
    n = len(t["u"])
    assert n == (SIZE + 1) ** 2 and len(t["indices"]) == 3 * 2 * SIZE**2
    hmin, hmax = t["header"][3], t["header"][4]
    col = np.rint(t["u"] * SIZE / QMAX).astype(int)
    row = np.rint(t["v"] * SIZE / QMAX).astype(int)
    h = hmin + t["h"] / QMAX * (hmax - hmin)
    assert np.abs(h - grid[SIZE - row, col]).max() <= (hmax - hmin) / QMAX / 2 + 1e-4
    assert len(t["ext"][1]) == 2 * n
    for name in ("west", "south", "east", "north"):
        assert len(t["edges"][name]) == SIZE + 1


def test_delatin_mesh_also_within_bound(demo_dem, tmp_path):
    out = tmp_path / "t"
    build_terrain([demo_dem], out, TerrainOptions(max_zoom=11, max_error=0.3, mesh="delatin"))
    worst = _check_reproduces_dem(demo_dem, out)
    assert 0.05 < worst[11] <= 0.3 + 1e-3


@pytest.mark.shared_data
def test_netcdf_without_crs_gives_the_same_tiles_as_geotiff(shared_data, tmp_path):
    """The original GMT netCDF (no CRS tag: EPSG:4326 assumed) and its GeoTIFF copy."""
    tif = shared_data(*SW_DEM)
    nc = shared_data("tw-sw-dem40m", "tw_sw40_moi40m_wgs84.nc")
    a, b = tmp_path / "a", tmp_path / "b"
    build_terrain([tif], a, TerrainOptions(max_zoom=7))
    build_terrain([nc], b, TerrainOptions(max_zoom=7))
    files = sorted(p.relative_to(a) for p in a.rglob("*.terrain"))
    assert files == sorted(p.relative_to(b) for p in b.rglob("*.terrain")) and len(files) > 8
    for f in files:
        ta, tb = (spec_decode(gzip.decompress((d / f).read_bytes())) for d in (a, b))
        assert np.array_equal(ta["h"], tb["h"]) and np.array_equal(ta["indices"], tb["indices"])


def test_encoder_agrees_with_quantized_mesh_encoder():
    """The same mesh through quantized-mesh-encoder (an independent encoder): the decoded vertex
    positions and heights agree within one quantum; the triangles are the same set."""
    import io

    from quantized_mesh_encoder import encode as qme_encode

    from tiles.terrain.mesh import triangulate
    from tiles.terrain.qmesh import encode_tile

    k = np.arange(SIZE + 1)
    K, R = np.meshgrid(k, k)
    grid = 40 + 30 * np.sin(K / 23.0) * np.cos(R / 31.0) + 0.02 * K  # row 0 north
    mesh = triangulate(grid, 0.25)
    bounds = tile_bounds(12, 6838, 2590)
    west, south, east, north = bounds
    ours = spec_decode(encode_tile(mesh, bounds, normals=False))
    pos = np.stack([west + (east - west) * mesh.col / SIZE,
                    south + (north - south) * mesh.row / SIZE, mesh.height], axis=1)
    buf = io.BytesIO()
    qme_encode(buf, pos, mesh.triangles.astype(np.uint32), bounds=list(bounds))
    theirs = spec_decode(buf.getvalue())

    def points(t):
        hmin, hmax = t["header"][3], t["header"][4]
        p = np.stack([t["u"] / QMAX, t["v"] / QMAX, hmin + t["h"] / QMAX * (hmax - hmin)], 1)
        tri = t["indices"].reshape(-1, 3)
        return p, tri

    (po, to), (pt, tt) = points(ours), points(theirs)
    assert len(po) == len(pt) == len(mesh.col)
    oo = np.lexsort((po[:, 1], po[:, 0]))
    ot = np.lexsort((pt[:, 1], pt[:, 0]))
    assert np.abs(po[oo, :2] - pt[ot, :2]).max() <= 1.0 / QMAX
    span = grid.max() - grid.min()
    assert np.abs(po[oo, 2] - pt[ot, 2]).max() <= span / QMAX + 1e-4

    def tri_set(p, tri):
        key = np.rint(p[:, :2] * SIZE).astype(int)  # grid column and row
        return {tuple(sorted(map(tuple, key[t]))) for t in tri}

    assert tri_set(po, to) == tri_set(pt, tt)


def _occluded(points, camera):
    """CesiumJS EllipsoidalOccluder.isScaledSpacePointVisible, negated (scaled space)."""
    vh2 = camera @ camera - 1.0
    vt = points - camera
    vt_dot_vc = -(vt @ camera)
    return (vt_dot_vc > vh2) & (vt_dot_vc**2 / np.einsum("ij,ij->i", vt, vt) > vh2)


@pytest.mark.shared_data
def test_bounding_sphere_and_horizon_occlusion_point(sw_terrain):
    """Every vertex lies in the header's bounding sphere, and from random viewpoints whenever
    the horizon occlusion point is hidden behind the ellipsoid, so is every vertex."""
    _, out, _ = sw_terrain
    radii = np.array([6378137.0, 6378137.0, 6356752.314245179])
    to_ecef = Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)
    rng = np.random.default_rng(11)
    hidden_cases = 0
    for z, x, y in sorted(tiles_on_disk(out))[-6:]:
        t = read_tile(out, z, x, y)
        west, south, east, north = tile_bounds(z, x, y)
        p = np.stack(to_ecef.transform(west + (east - west) * t["col"] / SIZE,
                                       south + (north - south) * t["row"] / SIZE, t["h"]), 1)
        hdr = t["spec"]["header"]
        centre, radius = np.array(hdr[5:8]), hdr[8]
        assert np.linalg.norm(p - centre, axis=1).max() <= radius * (1 + 1e-6) + 0.01
        horizon = np.array(hdr[9:12])
        scaled = p / radii
        for _ in range(300):
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            cam = (centre + direction * rng.uniform(1e4, 2e7)) / radii
            if np.linalg.norm(cam) <= 1.0:
                continue
            if _occluded(horizon[None], cam)[0]:
                hidden_cases += 1
                assert _occluded(scaled, cam).all()
    assert hidden_cases > 20


def test_mosaic_of_overlapping_pieces_equals_the_whole(demo_dem, demo_terrain, tmp_path):
    """Two overlapping pieces of the demo DEM, given as two --dem, build the same tiles."""
    from rasterio.windows import Window, transform as window_transform

    from gis.io.outputs import write_cog

    _, whole, _ = demo_terrain
    pieces = []
    with rasterio.open(demo_dem) as src:
        for name, window in (("west", Window(0, 0, 230, src.height)),
                             ("east", Window(170, 0, src.width - 170, src.height))):
            path = tmp_path / f"{name}.tif"
            write_cog(path, src.read(1, window=window), window_transform(window, src.transform),
                      src.crs, nodata=src.nodata)
            pieces.append(path)
    out = tmp_path / "mosaic"
    summary = build_terrain(pieces, out, TerrainOptions(max_error=0.5))
    files = sorted(p.relative_to(whole) for p in whole.rglob("*.terrain"))
    assert files == sorted(p.relative_to(out) for p in out.rglob("*.terrain"))
    # the samples agree to rounding (origins differ, so bytes may differ in the last bit)
    from tiles.terrain.build import _close_all, inspect_dems, sample_tile

    request_close = _close_all  # datasets opened by sample_tile outside a build

    from tiles.terrain.tiling import sample_lonlat

    one, two = inspect_dems([demo_dem]), inspect_dems(pieces)
    ref = DemReference(demo_dem)
    z = summary.max_zoom
    seen = 0
    for x, y in {(int(f.parts[1]), int(f.stem)) for f in files if f.parts[0] == str(z)}:
        a, b = sample_tile(one, z, x, y), sample_tile(two, z, x, y)
        assert np.array_equal(np.isnan(a), np.isnan(b))
        # between the outermost cell centres (the half-cell rim is clamped per file)
        inner = np.isfinite(ref(*np.meshgrid(*sample_lonlat(z, x, y))))
        assert np.abs(a - b)[inner].max() < 1e-6
        seen += inner.sum()
    request_close()
    assert seen > 100_000
    for f in files:
        ta, tb = (spec_decode(gzip.decompress((d / f).read_bytes())) for d in (whole, out))
        assert abs(ta["header"][3] - tb["header"][3]) < 1e-3


# ---------------------------------------------------------------- sea and no data

SEA, COLLAR, VOID, LAND, OUTSIDE = range(5)


@pytest.fixture(scope="module")
def coast_dem(tmp_path_factory):
    """A 240 x 240 DEM at 0.001 deg off SW Taiwan: land rising east from a 1-2 m shore, the sea
    west of it as no data (reaching the west border), a no-data collar in the hilly north-east
    corner (reaching the border along a 500 m+ shore) and a no-data void inside."""
    from affine import Affine

    from gis.io.outputs import write_cog

    n = 240
    r, c = np.mgrid[0:n, 0:n]
    height = (1.0 + 4.0 * (c - 60) + 0.5 * np.sin(r / 7.0)).astype(np.float32)
    label = np.full((n, n), LAND)
    label[c < 60] = SEA
    label[(r < 40) & (c > 200)] = COLLAR
    label[(r >= 110) & (r < 130) & (c >= 140) & (c < 160)] = VOID
    height[label != LAND] = -9999.0
    t = Affine(0.001, 0, 120.3, 0, -0.001, 23.1)
    path = tmp_path_factory.mktemp("coast") / "coast.tif"
    write_cog(path, height, t, "EPSG:4326", nodata=-9999.0)
    return path, label, t


def _labels_at(label, t, lon, lat):
    """The construction label of the DEM cell under each point, and whether its 5 x 5 cell
    neighbourhood holds one label only (away from the boundaries, where sampling decides)."""
    from scipy import ndimage

    padded = np.pad(label, 3, constant_values=OUTSIDE)
    same = (ndimage.maximum_filter(padded, 5) == ndimage.minimum_filter(padded, 5))
    col = np.floor((lon - t.c) / t.a).astype(int) + 3
    row = np.floor((lat - t.f) / t.e).astype(int) + 3
    inside = (col >= 0) & (col < padded.shape[1]) & (row >= 0) & (row < padded.shape[0])
    lab = np.full(lon.shape, OUTSIDE)
    clear = inside.copy()
    lab[inside] = padded[row[inside], col[inside]]
    clear[inside] = same[row[inside], col[inside]]
    return lab, clear


@pytest.mark.parametrize("sea, water_labels", [("auto", {SEA}), ("nodata", {SEA, COLLAR, VOID}),
                                               ("none", set())])
def test_water_only_where_the_dem_says_sea(coast_dem, tmp_path, sea, water_labels):
    """Default ("auto"): water only on the no-data region reaching the border along a low
    shore; never on the collar in the hills, the inland void, or outside the DEM. All no data
    sits at mean sea level (ellipsoidal height = geoid undulation)."""
    dem, label, t = coast_dem
    out = tmp_path / sea
    summary = build_terrain([dem], out, TerrainOptions(max_zoom=10, sea=sea))
    z = summary.max_zoom
    checked = {k: 0 for k in range(5)}
    for tz, x, y in sorted(tiles_on_disk(out)):
        if tz != z:
            continue
        t_ = read_tile(out, z, x, y)
        mask = t_["spec"]["ext"][2]
        water = (np.full((256, 256), mask[0] == 255) if len(mask) == 1
                 else np.frombuffer(mask, np.uint8).reshape(256, 256) == 255)
        west, south, east, north = tile_bounds(z, x, y)
        cc = (np.arange(256) + 0.5) / 256
        LON, LAT = np.meshgrid(west + (east - west) * cc, north - (north - south) * cc)
        lab, clear = _labels_at(label, t, LON, LAT)
        for k in range(5):
            sel = clear & (lab == k)
            assert (water[sel] == (k in water_labels)).all(), (sea, k, x, y)
            checked[k] += int(sel.sum())
        # no data at mean sea level: h = N there
        lon = west + (east - west) * t_["col"] / SIZE
        lat = south + (north - south) * t_["row"] / SIZE
        vlab, vclear = _labels_at(label, t, lon, lat)
        low = vclear & (vlab != LAND)
        assert np.abs(t_["h"][low] - undulation(lat[low], lon[low])).max() <= 0.5 + t_["q"]
    assert all(v > 500 for v in checked.values()), checked


def test_sea_found_on_a_decimated_dem(coast_dem, monkeypatch):
    """With the DEM decimated 4 times for the sea search, the same regions qualify."""
    import tiles.terrain.build as tb

    dem, label, _ = coast_dem
    monkeypatch.setattr(tb, "SEA_GRID", 60)
    (info,) = tb.inspect_dems([dem])
    try:
        mask, f = tb.sea_mask(info)
    finally:
        tb._close_all()
    assert f == 4
    up = np.kron(mask, np.ones((f, f), bool))[:label.shape[0], :label.shape[1]]
    assert up[label == SEA].mean() > 0.99
    assert not up[(label == COLLAR) | (label == VOID)].any()


def test_gzip_at_rest_libdeflate_and_zlib_agree():
    """Both compressors (libdeflate when the system has it, zlib otherwise) write gzip that
    Python's gzip module reads back to the same tile."""
    import tiles.terrain.build as tb
    from tiles.terrain.mesh import triangulate
    from tiles.terrain.qmesh import encode_array

    k = np.arange(SIZE + 1)
    grid = 100 + 20 * np.sin(k[:, None] / 9.0) * np.cos(k[None, :] / 13.0)
    data = encode_array(triangulate(grid, 0.2), tile_bounds(12, 6838, 2590))
    fallback = tb._Gzip()
    fallback.lib = None
    for compress in (tb._gzip, fallback):
        packed = compress(data)
        assert packed[:2] == b"\x1f\x8b" and gzip.decompress(packed) == data.tobytes()
        assert len(packed) < data.nbytes / 2
