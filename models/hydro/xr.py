"""Thin xarray/rioxarray wrappers of the hydrology kernels.

Each takes a 2-D DataArray with rioxarray georeferencing (``da.rio.crs``, ``da.rio.transform()``)
in a projected CRS in metres and returns a DataArray on the same grid (same coordinates, CRS and
transform), so results can be written with ``.rio.to_raster`` or stacked with other layers.
Cell sizes come from the transform; nodata is NaN (a float DataArray's ``_FillValue`` or
``rio.nodata`` is turned into NaN first).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from models import hydro


def _values(da: xr.DataArray) -> np.ndarray:
    if da.ndim != 2:
        raise ValueError(f"expected a 2-D DataArray, got dims {da.dims}")
    data = np.asarray(da.values, dtype=np.float32 if da.dtype != np.float64 else np.float64)
    nodata = da.rio.nodata if hasattr(da, "rio") else None
    if nodata is not None and not np.isnan(nodata):
        data = np.where(np.asarray(da.values) == nodata, np.nan, data).astype(data.dtype)
    return data


def cell_size(da: xr.DataArray) -> tuple[float, float]:
    """(dx, dy) in metres from the DataArray's transform; refuses geographic CRSs."""
    crs = da.rio.crs
    if crs is not None and crs.is_geographic:
        raise ValueError("the DataArray is in a geographic CRS; reproject it to metres first")
    rx, ry = da.rio.resolution()
    return abs(float(rx)), abs(float(ry))


def _like(da: xr.DataArray, data: np.ndarray, name: str, nodata=np.nan) -> xr.DataArray:
    out = xr.DataArray(data, coords=da.coords, dims=da.dims, name=name)
    out.attrs = {k: v for k, v in da.attrs.items() if k not in ("_FillValue", "units")}
    if da.rio.crs is not None:
        out = out.rio.write_crs(da.rio.crs)
    out = out.rio.write_transform(da.rio.transform())
    if nodata is not None:
        out = out.rio.write_nodata(nodata, encoded=False)
    return out


def fill(dem: xr.DataArray, **kwargs) -> xr.DataArray:
    """:func:`models.hydro.fill_depressions` on a DataArray (keyword arguments passed on)."""
    return _like(dem, hydro.fill_depressions(_values(dem), **kwargs), "filled")


def d8(filled: xr.DataArray) -> xr.DataArray:
    """ESRI D8 codes (uint8, 0 = no outflow) of a filled DEM."""
    dx, dy = cell_size(filled)
    return _like(filled, hydro.d8_directions(_values(filled), dx, dy), "d8", nodata=None)


def dinf(filled: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """D-infinity angle (radians CCW from east, -1 undefined) and slope (tan) of a filled DEM."""
    dx, dy = cell_size(filled)
    angle, slope = hydro.dinf_directions(_values(filled), dx, dy)
    return _like(filled, angle, "dinf_angle", nodata=-1.0), _like(filled, slope, "slope")


def accumulation(filled: xr.DataArray, method: str = "d8",
                 weights: xr.DataArray | None = None) -> xr.DataArray:
    """Flow accumulation (cells, or the sum of ``weights``) of a filled DEM; NaN on nodata.

    ``method`` is ``"d8"`` or ``"dinf"``; for D-infinity the result is the accumulation, see
    :func:`specific_catchment_area` for TauDEM's ``sca``.
    """
    z = _values(filled)
    dx, dy = cell_size(filled)
    valid = ~np.isnan(z)
    w = valid.astype(np.float64) if weights is None else np.where(
        valid, np.asarray(weights.values, dtype=np.float64), 0.0)
    if method == "d8":
        acc = hydro.accumulate_d8(hydro.d8_directions(z, dx, dy), weights=w)
    elif method == "dinf":
        angle, _ = hydro.dinf_directions(z, dx, dy)
        acc = hydro.accumulate_dinf(angle, weights=w, valid=valid)
    else:
        raise ValueError(f"method must be 'd8' or 'dinf', got {method!r}")
    acc[~valid] = np.nan
    return _like(filled, acc, f"accumulation_{method}")


def specific_catchment_area(filled: xr.DataArray) -> xr.DataArray:
    """D-infinity specific catchment area in metres (TauDEM's ``sca``)."""
    acc = accumulation(filled, "dinf")
    return _like(filled, hydro.specific_catchment_area(acc.values, cell_size(filled)[0]), "sca")


def hand(dem: xr.DataArray, threshold: float, *, filled: xr.DataArray | None = None
         ) -> xr.DataArray:
    """Height above nearest drainage (m) for streams of at least ``threshold`` cells (D8)."""
    z = _values(dem)
    dx, dy = cell_size(dem)
    f = hydro.fill_depressions(z) if filled is None else _values(filled)
    dirs = hydro.d8_directions(f, dx, dy)
    order = hydro.flow_order_d8(dirs)
    acc = hydro.accumulate_d8(dirs, weights=(~np.isnan(z)).astype(np.float64), order=order)
    streams = hydro.extract_streams(acc, threshold)
    return _like(dem, hydro.hand(f, dirs, streams, order=order), "hand")


# --- tiled (larger than memory): chunked DataArrays in, chunked DataArrays out -----------------

def _tiled_out(store, like: xr.DataArray, name: str, nodata) -> xr.DataArray:
    import rioxarray  # noqa: F401  (registers .rio)

    out = store.dataarray(name=name)
    out = out.assign_coords({like.dims[0]: like[like.dims[0]], like.dims[1]: like[like.dims[1]]})
    out = out.rename({"y": like.dims[0], "x": like.dims[1]})
    if like.rio.crs is not None:
        out = out.rio.write_crs(like.rio.crs)
    out = out.rio.write_transform(like.rio.transform())
    if nodata is not None:
        out = out.rio.write_nodata(nodata, encoded=False)
    return out


def fill_tiled(dem: xr.DataArray, work_dir: str, *, tile: int = 2048,
               sea_level: float | None = None, executor=None) -> xr.DataArray:
    """:func:`models.hydro.tiled.fill_tiled` on a DataArray (e.g. ``rioxarray.open_rasterio(path,
    chunks=...)``, read window by window): the filled DEM as a dask-backed DataArray, one chunk
    per tile, whose tiles live in ``work_dir/filled`` (keep the folder while you use it)."""
    from models.hydro import tiled

    src = tiled.DataArraySource(dem)
    store = tiled.TileStore(f"{work_dir}/filled", src.shape, src.dtype, tile)
    tiled.fill_tiled(src, store, sea_level=sea_level, executor=executor)
    return _tiled_out(store, dem, "filled", np.nan)


def d8_tiled(filled: xr.DataArray, work_dir: str, *, tile: int = 2048,
             sea_level: float | None = None, executor=None) -> xr.DataArray:
    """ESRI D8 codes of a filled DataArray, tile by tile (:func:`models.hydro.tiled.d8_tiled`),
    as a dask-backed DataArray in ``work_dir/d8``."""
    from models.hydro import tiled

    dx, dy = cell_size(filled)
    src = tiled.DataArraySource(filled)
    store = tiled.TileStore(f"{work_dir}/d8", src.shape, np.uint8, tile)
    tiled.d8_tiled(src, store, dx, dy, sea_level=sea_level, executor=executor)
    return _tiled_out(store, filled, "d8", None)


def accumulation_tiled(filled: xr.DataArray, d8: xr.DataArray, work_dir: str, *,
                       tile: int = 2048, executor=None) -> xr.DataArray:
    """D8 accumulation (cells; nodata cells weigh 0, as :func:`accumulation`), tile by tile
    (:func:`models.hydro.tiled.accumulate_tiled`), as a dask-backed DataArray in
    ``work_dir/acc`` (float64; NaN is not written into nodata cells here)."""
    from models.hydro import tiled

    src = tiled.DataArraySource(d8)
    store = tiled.TileStore(f"{work_dir}/acc", src.shape, np.float64, tile)
    tiled.accumulate_tiled(src, store, weights=tiled.FiniteWeights(
        tiled.DataArraySource(filled)), executor=executor)
    return _tiled_out(store, d8, "accumulation_d8", None)
