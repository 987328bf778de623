"""Model outputs: a directory that appears whole or not at all, Cloud-Optimised GeoTIFFs.

Every decision model writes a directory of results (rasters, GeoPackages, ``summary.json``,
``map.png``). :func:`output_dir` builds it beside the target under a temporary name and renames it
into place only when everything is written, so a failed or interrupted run never leaves a
half-written result where a user (or the server) would read it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.windows
from affine import Affine
from rasterio.shutil import copy as rio_copy


@contextlib.contextmanager
def output_dir(out: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary directory; on success it replaces ``out`` in one rename.

    An existing ``out`` is replaced only after the new results are complete. On any error the
    temporary directory is removed and ``out`` is left as it was.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def write_cog(path: str | os.PathLike, data: np.ndarray, transform: Affine, crs: Any,
              nodata: float | int | None = None, *, tags: dict[str, str] | None = None,
              compress: str = "DEFLATE") -> Path:
    """Write a single-band (rows, cols) or multi-band (bands, rows, cols) array as a
    Cloud-Optimised GeoTIFF (tiled, overviews, GDAL's COG driver), atomically.

    Float rasters default to NaN for no data. ``tags`` go into the dataset metadata (units,
    model, parameters).
    """
    path = Path(path)
    arr = np.asarray(data)
    if arr.ndim == 2:
        arr = arr[None]
    if nodata is None and np.issubdtype(arr.dtype, np.floating):
        nodata = np.nan
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_gtiff = path.with_name(f".{path.stem}.src-{os.getpid()}.tif")
    tmp_cog = path.with_name(f".{path.stem}.tmp-{os.getpid()}.tif")
    try:
        profile = {"driver": "GTiff", "width": arr.shape[2], "height": arr.shape[1],
                   "count": arr.shape[0], "dtype": arr.dtype.name, "transform": transform,
                   "crs": crs, "nodata": nodata, "tiled": True, "blockxsize": 512,
                   "blockysize": 512}
        with rasterio.open(tmp_gtiff, "w", **profile) as dst:
            dst.write(arr)
            if tags:
                dst.update_tags(**{k: str(v) for k, v in tags.items()})
        predictor = "3" if np.issubdtype(arr.dtype, np.floating) else "2"
        rio_copy(tmp_gtiff, tmp_cog, driver="COG", COMPRESS=compress, PREDICTOR=predictor,
                 BLOCKSIZE=512, OVERVIEWS="AUTO", RESAMPLING="NEAREST")
        os.replace(tmp_cog, path)
    finally:
        for p in (tmp_gtiff, tmp_cog):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
    return path


def write_cog_windows(path: str | os.PathLike, read, shape: tuple[int, int], dtype,
                      transform: Affine, crs: Any, nodata: float | int | None = None, *,
                      tags: dict[str, str] | None = None, block: int = 2048,
                      compress: str = "DEFLATE") -> Path:
    """:func:`write_cog` for rasters larger than memory: ``read(r0, r1, c0, c1)`` gives the
    window of the (single-band) raster; rows of ``block`` x ``block`` windows are written into
    a tiled GeoTIFF, which GDAL's COG driver then copies with overviews (through its block
    cache, never whole). Atomic like :func:`write_cog`."""
    path = Path(path)
    dtype = np.dtype(dtype)
    if nodata is None and np.issubdtype(dtype, np.floating):
        nodata = np.nan
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_gtiff = path.with_name(f".{path.stem}.src-{os.getpid()}.tif")
    tmp_cog = path.with_name(f".{path.stem}.tmp-{os.getpid()}.tif")
    nrows, ncols = shape
    try:
        profile = {"driver": "GTiff", "width": ncols, "height": nrows, "count": 1,
                   "dtype": dtype.name, "transform": transform, "crs": crs, "nodata": nodata,
                   "tiled": True, "blockxsize": 512, "blockysize": 512, "BIGTIFF": "IF_SAFER"}
        with rasterio.open(tmp_gtiff, "w", **profile) as dst:
            for r0 in range(0, nrows, block):
                r1 = min(r0 + block, nrows)
                for c0 in range(0, ncols, block):
                    c1 = min(c0 + block, ncols)
                    window = rasterio.windows.Window(c0, r0, c1 - c0, r1 - r0)
                    dst.write(np.asarray(read(r0, r1, c0, c1), dtype=dtype), 1, window=window)
            if tags:
                dst.update_tags(**{k: str(v) for k, v in tags.items()})
        predictor = "3" if np.issubdtype(dtype, np.floating) else "2"
        rio_copy(tmp_gtiff, tmp_cog, driver="COG", COMPRESS=compress, PREDICTOR=predictor,
                 BLOCKSIZE=512, OVERVIEWS="AUTO", RESAMPLING="NEAREST", BIGTIFF="IF_SAFER",
                 NUM_THREADS="ALL_CPUS")
        os.replace(tmp_cog, path)
    finally:
        for p in (tmp_gtiff, tmp_cog):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
    return path


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write JSON (indented, UTF-8, NaN as null) atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(_jsonable(obj), indent=2, ensure_ascii=False) + "\n",
                   encoding="utf-8")
    os.replace(tmp, path)
    return path


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    return obj
