"""The base-map store: one table per layer, a spatial index on each, and a catalogue of map-asset
records. GeoPackage is the embedded default; PostGIS is the scale path. Both take a whole batch of
layers in one atomic write: a failed ingest leaves the previous store as it was."""

from __future__ import annotations

from gis.store.base import CATALOG_TABLE, RasterLayer, Store, VectorLayer


def open_store(uri: str) -> Store:
    """Open (or prepare to create) the store at ``uri``: a GeoPackage path or a postgresql:// URL."""
    if uri.startswith(("postgresql://", "postgres://", "postgresql+psycopg2://")):
        from gis.store.postgis import PostGISStore

        return PostGISStore(uri)
    from gis.store.geopackage import GeoPackageStore

    return GeoPackageStore(uri)


__all__ = ["open_store", "Store", "VectorLayer", "RasterLayer", "CATALOG_TABLE"]
