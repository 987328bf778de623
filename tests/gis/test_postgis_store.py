"""The PostGIS store against a real PostgreSQL + PostGIS: same schema as the GeoPackage, atomic
batches, rasters checked with PostGIS's own raster functions."""

from __future__ import annotations

import numpy as np
import psycopg2
import pytest
import rasterio
import shapely

from gis.errors import StoreError
from gis.etl.ingest import SourceSpec, ingest
from gis.store import open_store
from tests_helpers import buildings_frame


def test_vector_round_trip_matches_geopackage(tmp_path, postgis_store_url):
    buildings_frame().to_file(tmp_path / "b.gpkg")
    spec = [SourceSpec(str(tmp_path / "b.gpkg"), metadata={"access_grade": "agency"})]
    ingest(str(tmp_path / "s.gpkg"), spec)
    ingest(postgis_store_url, spec)
    gpkg, pg = open_store(str(tmp_path / "s.gpkg")), open_store(postgis_store_url)
    assert pg.layers() == gpkg.layers() == ["buildings"]
    a, b = gpkg.read("buildings").reset_index(drop=True), pg.read("buildings").reset_index(drop=True)
    assert list(a.columns) == list(b.columns)
    for col in a.columns:
        if col == "geometry":
            assert shapely.equals_exact(a.geometry.values, b.geometry.values, tolerance=0).all()
        else:
            left = a[col].astype(object).where(a[col].notna(), None).tolist()
            right = b[col].astype(object).where(b[col].notna(), None).tolist()
            assert left == right, col
    assert b.crs.to_epsg() == 3826
    ra, rb = gpkg.record("buildings"), pg.record("buildings")
    assert {k: v for k, v in ra.items() if k not in ("created", "updated")} == \
           {k: v for k, v in rb.items() if k not in ("created", "updated")}
    # bbox reads go through the GiST index
    x0, y0 = a.geometry.iloc[0].centroid.coords[0]
    assert list(pg.read("buildings", bbox=(x0 - 1, y0 - 1, x0 + 1, y0 + 1))["id"]) == ["b0"]


def test_copy_in_batches_matches_geopackage(tmp_path, postgis_store_url, monkeypatch):
    """A layer written in many COPY batches (streamed, never one buffer) reads back as the
    GeoPackage does; the table has statistics (ANALYZE) and its GiST index is used."""
    import gis.store.postgis as pgmod

    monkeypatch.setattr(pgmod, "COPY_BATCH", 3)  # many batches in one streamed COPY
    frame = buildings_frame()
    frame.loc[frame.index[0], "name"] = "tab\there\\back\nslash"  # COPY escapes
    frame.to_file(tmp_path / "b.gpkg")
    spec = [SourceSpec(str(tmp_path / "b.gpkg"))]
    ingest(str(tmp_path / "s.gpkg"), spec)
    ingest(postgis_store_url, spec)
    a = open_store(str(tmp_path / "s.gpkg")).read("buildings").reset_index(drop=True)
    b = open_store(postgis_store_url).read("buildings").reset_index(drop=True)
    assert len(a) == len(b) > 3
    for col in a.columns:
        if col != "geometry":
            left = a[col].astype(object).where(a[col].notna(), None).tolist()
            right = b[col].astype(object).where(b[col].notna(), None).tolist()
            assert left == right, col
    assert shapely.equals_exact(a.geometry.values, b.geometry.values, tolerance=0).all()
    url, schema = pgmod._split_url(postgis_store_url)
    with psycopg2.connect(url) as con, con.cursor() as cur:
        cur.execute("SELECT reltuples FROM pg_class c JOIN pg_namespace n ON "
                    "n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = 'buildings'",
                    (schema,))
        assert cur.fetchone()[0] == len(a)  # ANALYZE ran: the planner knows the row count
        cur.execute(f'SET search_path TO "{schema}", public; SET enable_seqscan = off; '
                    "EXPLAIN SELECT fid FROM buildings WHERE geom && "
                    "ST_MakeEnvelope(0, 0, 1, 1, 3826)")
        assert "buildings_geom_gist" in " ".join(r[0] for r in cur.fetchall())


def test_copy_fields_match_the_per_value_encoder():
    import pandas as pd

    from gis.store.postgis import _copy_column, _copy_text

    cases = [pd.Series([1.5, np.nan, 0.1, 1e300, -0.0, np.inf]),
             pd.Series(np.array([0.1, 2.5], np.float32)), pd.Series([1, 2, 3]),
             pd.Series([1, None, 3], dtype="Int64"), pd.Series([True, False]),
             pd.Series([True, None], dtype="boolean"),
             pd.Series(["a", None, "t\tab\\x", "line\nnew\r"]),
             pd.Series([pd.Timestamp("2020-01-01"), pd.NaT]), pd.Series([1, "x", None]),
             pd.Series([1.0, None], dtype="Float64"), pd.Series([], dtype=object),
             pd.Series(["a", None, "t\tx\\y", "n\nr\r"], dtype="str")]  # pandas' Arrow strings
    for series in cases:
        assert list(_copy_column(series)) == [_copy_text(v) for v in series], series.tolist()
    assert _copy_text(pd.NaT) == _copy_text(None) == _copy_text(np.nan) == r"\N"


def test_failed_batch_rolls_back(tmp_path, postgis_store_url, monkeypatch):
    buildings_frame().to_file(tmp_path / "b.gpkg")
    ingest(postgis_store_url, [SourceSpec(str(tmp_path / "b.gpkg"))])
    from gis.store import postgis

    def broken(self, cur, raster):
        raise psycopg2.DataError("disk full (simulated)")

    monkeypatch.setattr(postgis.PostGISStore, "_write_raster", broken)
    dem = tmp_path / "d.tif"
    with rasterio.open(dem, "w", driver="GTiff", width=10, height=10, count=1, dtype="float32",
                       crs="EPSG:3826",
                       transform=rasterio.transform.from_origin(250000, 2742000, 10, 10)) as dst:
        dst.write(np.ones((10, 10), "float32"), 1)
    buildings_frame(2).to_file(tmp_path / "c.gpkg")
    with pytest.raises(StoreError, match="nothing changed"):
        ingest(postgis_store_url, [SourceSpec(str(tmp_path / "c.gpkg")), SourceSpec(str(dem))])
    assert len(open_store(postgis_store_url).read("buildings")) == 5


def test_raster_tiles_agree_with_postgis(tmp_path, postgis_store_url):
    rng = np.random.default_rng(3)
    data = rng.normal(100, 30, (300, 530)).astype("float32")
    data[5:9, 7:30] = np.nan
    transform = rasterio.transform.from_origin(250000, 2742000, 20, 20)
    dem = tmp_path / "d.tif"
    with rasterio.open(dem, "w", driver="GTiff", width=530, height=300, count=1, dtype="float32",
                       crs="EPSG:3826", transform=transform, nodata=np.nan) as dst:
        dst.write(data, 1)
    ingest(postgis_store_url, [SourceSpec(str(dem), layer="dem")])
    store = open_store(postgis_store_url)
    back = store.read_raster("dem")
    np.testing.assert_array_equal(back.data, data)
    assert back.transform == transform
    # PostGIS itself reads the same values at the same places.
    con = psycopg2.connect(store.dsn)
    with con, con.cursor() as cur:
        for row, col in [(0, 0), (150, 300), (299, 529), (6, 10)]:
            x, y = transform @ (col + 0.5, row + 0.5)
            cur.execute(f'SELECT ST_Value(rast, ST_SetSRID(ST_Point(%s, %s), 3826)) FROM '
                        f'"{store.schema}".dem WHERE ST_Intersects(rast, ST_SetSRID(ST_Point(%s, %s), 3826))',
                        (x, y, x, y))
            value = cur.fetchone()[0]
            if np.isnan(data[row, col]):
                assert value is None
            else:
                assert value == pytest.approx(float(data[row, col]), rel=1e-6)
        cur.execute(f'SELECT count(*), sum(ST_Width(rast) * ST_Height(rast)) FROM "{store.schema}".dem')
        tiles, cells = cur.fetchone()
    con.close()
    assert tiles == 2 * 3 and cells == 300 * 530


def test_unreachable_server_is_one_line():
    with pytest.raises(StoreError, match="cannot connect to PostGIS") as info:
        open_store("postgresql://nobody:secret@127.0.0.1:1/none").layers()
    assert "secret" not in str(info.value)
