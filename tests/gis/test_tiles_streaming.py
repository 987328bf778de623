"""`ngis tiles build` streaming from the store: the same tileset as building from the layer in
memory, never more rows read at once than the largest tile, and dask workers that read their
own rows (given only fids and the store URI) produce the same bytes as the inline build."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

import gis.etl.tiles_job as job
from gis.etl.tiles_job import StoreLayer, TilesOptions, build_tiles, split_pieces
from gis.store import VectorLayer, open_store
from gis.store.geopackage import GeoPackageStore
from tiles.info import load_tiles
from tiles.read import Glb

STANDARD = {"buildings": "building", "roads": "road", "rail": "rail", "pipelines": "pipeline"}


def _files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture
def store_copy(demo_store, tmp_path):
    """The demo store copied (tests here change rows); a third of the buildings lose their ground
    elevation, so the plan samples the DEM under them."""
    path = tmp_path / "basemap.gpkg"
    shutil.copyfile(demo_store, path)
    _change(path, lambda b: b.assign(ground_elevation=np.where(
        np.arange(len(b)) % 3 == 0, np.nan, b["ground_elevation"])))
    return path


def _change(path: Path, edit) -> None:
    """Rewrite the store's buildings layer with ``edit(frame)``."""
    store = open_store(str(path))
    frame = edit(store.read("buildings"))
    store.write([VectorLayer("buildings", frame, "building")], [], [store.record("buildings")])


@pytest.mark.parametrize("layer, options", [
    ("buildings", {}), ("buildings", {"lod": 2}), ("buildings", {"version": "1.0"}),
    ("buildings", {"compress": "meshopt", "gzip": True, "implicit": True}),
    ("roads", {}), ("rail", {"max_features": 3}), ("pipelines", {})])
def test_streaming_build_equals_in_memory_build(store_copy, tmp_path, layer, options,
                                                monkeypatch):
    monkeypatch.setattr(job, "ENVELOPE_CHUNK", 700)  # the light pass in several slices
    store = open_store(str(store_copy))
    dem = store.read_raster("dem")
    opts = TilesOptions(**{"max_features": 250, **options})
    a = build_tiles(store.read(layer), STANDARD[layer], tmp_path / "memory", dem=dem,
                    options=opts)
    b = build_tiles(StoreLayer(str(store_copy), layer), STANDARD[layer], tmp_path / "stream",
                    dem=lambda: store.read_raster("dem"), options=opts)
    assert (a.features, a.tiles, a.contents, a.notes) == (b.features, b.tiles, b.contents,
                                                          b.notes)
    assert a.contents > 1
    # every file (contents, tileset.json, subtrees, the manifest's fingerprints) byte for byte
    assert _files(tmp_path / "memory") == _files(tmp_path / "stream")


def test_streaming_reads_no_more_rows_at_once_than_the_largest_tile(store_copy, tmp_path,
                                                                    monkeypatch):
    reads: list[tuple[str, int]] = []
    read_fids = GeoPackageStore.read_fid_columns  # read_fids reads through it too

    def counting(self, name, fids):
        reads.append((name, len(fids)))
        return read_fids(self, name, fids)

    def whole(self, name, bbox=None):
        raise AssertionError(f"the job read the whole layer {name!r}")

    monkeypatch.setattr(GeoPackageStore, "read_fid_columns", counting)
    monkeypatch.setattr(GeoPackageStore, "read", whole)
    dem = open_store(str(store_copy)).read_raster("dem")
    for layer in ("buildings", "roads"):
        reads.clear()
        s = build_tiles(StoreLayer(str(store_copy), layer), STANDARD[layer], tmp_path / layer,
                        dem=dem, options=TilesOptions(max_features=200))
        rows = [n for name, n in reads if name == layer]
        assert s.contents > 5 and s.largest_tile <= 200
        # the plan's batches (ground under buildings without an elevation; lines cut and
        # draped) and every tile's read are at most the largest tile
        assert max(rows) <= s.largest_tile, (layer, max(rows), s.largest_tile)
        if layer == "buildings":  # a third lack a ground elevation: the plan read their rows
            assert sum(rows) > s.features
        # each feature is read once per tile that holds it (+ once by the plan at most)
        assert sum(rows) <= 2 * s.features + s.contents


def test_rebuild_from_the_store_rewrites_only_changed_tiles(store_copy, tmp_path):
    layer = StoreLayer(str(store_copy), "buildings")
    dem = open_store(str(store_copy)).read_raster("dem")
    opts = TilesOptions(max_features=300)
    first = build_tiles(layer, "building", tmp_path / "b", dem=dem, options=opts)
    assert first.written == first.contents > 3

    def renamed(b):  # an attribute that moves nothing: one tile changes
        b = b.copy()
        b.iloc[7, b.columns.get_loc("name")] = "Renamed Hall"
        return b

    _change(store_copy, renamed)
    second = build_tiles(layer, "building", tmp_path / "b", dem=dem, options=opts)
    assert (second.written, second.reused) == (1, first.contents - 1)


def test_split_pieces_numbers_the_pieces_of_each_row(demo_store):
    roads = open_store(str(demo_store)).read("roads")
    pieces, fid, piece = split_pieces(roads, 300.0)
    assert len(pieces) > len(roads)
    assert np.array_equal(np.unique(fid), np.sort(np.asarray(roads.index)))
    for f in np.unique(fid)[:50]:
        assert list(piece[fid == f]) == list(range(int((fid == f).sum())))
    assert np.all(np.diff(fid) >= 0)


#: What the workers were given (module level: dask pickles the spy by reference, so the
#: in-process workers append here).
SEEN: list[tuple[str, bool, int]] = []
_TILE_CONTENT = job.tile_content


def _spy(reader, spec, tile_job, known=frozenset()):
    SEEN.append((type(reader).__name__, spec.rows is None, len(spec.fids)))
    return _TILE_CONTENT(reader, spec, tile_job, known)


@pytest.fixture(scope="module")
def threads_cluster():
    """Two single-threaded workers in this process (dask's inproc transport)."""
    from dask.distributed import LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                           dashboard_address=None, silence_logs=logging.ERROR)
    yield cluster
    cluster.close()


def test_dask_workers_read_their_own_rows_and_give_the_same_bytes(store_copy, tmp_path,
                                                                  threads_cluster, monkeypatch):
    layer = StoreLayer(str(store_copy), "buildings")
    dem = open_store(str(store_copy)).read_raster("dem")
    inline = build_tiles(layer, "building", tmp_path / "inline", dem=dem,
                         options=TilesOptions(max_features=200, gzip=True))
    SEEN.clear()
    monkeypatch.setattr(job, "tile_content", _spy)
    dask = build_tiles(layer, "building", tmp_path / "dask", dem=dem,
                       options=TilesOptions(max_features=200, gzip=True,
                                            scheduler=threads_cluster.scheduler_address))
    assert dask.contents == inline.contents > 5
    assert _files(tmp_path / "inline") == _files(tmp_path / "dask")
    # the workers got the store layer and fids, no frames
    assert len(SEEN) == dask.contents
    assert all(kind == "StoreLayer" and no_rows for kind, no_rows, _ in SEEN)
    # and the tileset decodes: every building once
    _, tiles = load_tiles(tmp_path / "dask")
    ids = []
    for t in tiles:
        if t.content:
            import gzip

            ids += Glb.parse(gzip.decompress((tmp_path / "dask" / t.content).read_bytes())
                             ).property_table()["id"]
    assert len(ids) == len(set(ids)) == dask.features


def test_streaming_from_postgis_equals_the_geopackage_build(demo_store, postgis_store_url,
                                                            tmp_path, monkeypatch):
    from gis.etl.ingest import ingest, load_manifest

    monkeypatch.setattr(job, "ENVELOPE_CHUNK", 700)

    specs = [s for s in load_manifest(Path(demo_store).parent / "source" / "manifest.json")
             if s.layer in ("buildings", "roads", "dem")]
    ingest(postgis_store_url, specs)
    gpkg = open_store(str(demo_store))
    dem = gpkg.read_raster("dem")
    for layer in ("buildings", "roads"):
        opts = TilesOptions(max_features=250)
        a = build_tiles(StoreLayer(str(demo_store), layer), STANDARD[layer], tmp_path / "g" / layer,
                        dem=dem, options=opts)
        b = build_tiles(StoreLayer(postgis_store_url, layer), STANDARD[layer],
                        tmp_path / "p" / layer, dem=dem, options=opts)
        assert a.contents == b.contents > 1
        assert _files(tmp_path / "g" / layer) == _files(tmp_path / "p" / layer)


def test_workers_that_outlive_a_build_read_the_store_as_it_is_now(store_copy, tmp_path,
                                                                  threads_cluster):
    layer = StoreLayer(str(store_copy), "buildings")
    opts = TilesOptions(max_features=300, scheduler=threads_cluster.scheduler_address)
    dem = open_store(str(store_copy)).read_raster("dem")
    first = build_tiles(layer, "building", tmp_path / "b", dem=dem, options=opts)

    def renamed(b):
        b = b.copy()
        b.iloc[7, b.columns.get_loc("name")] = "Renamed Hall"
        return b

    _change(store_copy, renamed)  # the store file is replaced (a new inode)
    second = build_tiles(layer, "building", tmp_path / "b", dem=dem, options=opts)
    assert (second.written, second.reused) == (1, first.contents - 1)
    names = []
    _, tiles = load_tiles(tmp_path / "b")
    for t in tiles:
        if t.content:
            names += Glb.parse((tmp_path / "b" / t.content).read_bytes()).property_table()["name"]
    assert "Renamed Hall" in names
