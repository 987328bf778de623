"""Local raster models on chunked (dask-backed) xarray DataArrays, identical to the in-memory code.

Method
------
A *local* raster operation computes each cell from a window of ``k`` cells around it (``k = 1``
for the 3 x 3 slope windows, ``k = 0`` for per-cell models such as SINMAP). Such an operation can
run chunk by chunk if every chunk is first extended by a *halo* of ``k`` cells copied from its
neighbours (``dask.array.overlap.overlap``), the unchanged in-memory kernel is applied to the
extended block, and the halo is cut off again. Where a chunk touches the edge of the DEM, the
halo is filled with NaN (nodata): every in-memory kernel used here treats a cell off the grid
exactly like a NaN cell (its window is incomplete, so the result is NaN, or the facet is
skipped), so each cell sees the same inputs and goes through the same arithmetic as in memory,
and the results are bit-identical (the tests check ``np.array_equal`` with equal NaN positions).
Chunks smaller than the halo are merged first (``ensure_minimum_chunksize``) and the result is
rechunked back to the input's chunks.

The kernels are those of the in-memory models, called per block:

* :func:`zevenbergen_thorne`: slope (tan), aspect, profile and plan curvature of
  :func:`models.landslide.terrain.zevenbergen_thorne` (Zevenbergen & Thorne 1987), halo 1;
* :func:`dinf_slope`: the D-infinity slope (Tarboton 1997) of a depression-filled DEM with the
  undefined cells of :func:`models.landslide.terrain.dinf_slope_sca` (grid border, next to
  nodata), halo 1 (the ring test is a 3 x 3 dilation). The in-memory function also marks cells
  whose D-infinity angle is undefined, which inside the grid happens only on a flat that has no
  outlet; a depression-filled DEM has none, so the two agree (checked on real DEMs in the tests).
  Filling and the specific catchment area are not local (see :mod:`models.hydro`'s tiled path);
  they come in as chunked arrays;
* :func:`stability_index` (SINMAP, Pack, Tarboton & Goodwin 1998), :func:`factor_of_safety`
  (infinite slope), :func:`critical_rainfall` (SHALSTAB, Montgomery & Dietrich 1994) and
  :func:`wetness_index` (Beven & Kirkby 1979): per cell from slope, specific catchment area and
  the calibration region raster (all chunked alike), halo 0.

Everything is lazy: the functions return dask-backed DataArrays with the input's coordinates,
CRS and transform; :func:`compute` evaluates them on a ``dask.distributed`` Client when one is
given, else on the threaded scheduler. Inside a dask task the numba kernels run on one thread
(dask supplies the parallelism; nested thread pools would oversubscribe the cores).

Not local, so not here: the Monte Carlo probability of failure
(:func:`models.landslide.fs.probability_of_failure`) is per cell but seeds each cell's random
stream with its global index ``i * cols + j``; a chunk would need its offset and the full width
passed to the kernel (a two-argument change to ``fs._mc_kernel``).

The explicit 2D flood model (:mod:`models.flood.swe`) and halos
----------------------------------------------------------------
Its step has a stencil of one cell, but (1) the time step is adaptive and global, ``dt = alpha dx /
sqrt(g h_max)`` over the whole grid, so every step needs a global reduction (a barrier) before any
tile can advance; (2) a step is three passes (fluxes, positivity limiter, continuity), each needing
the neighbours' newest values, so a tile's result depends on cells up to three away per step; (3)
the state restarts from face discharges, which :func:`models.flood.swe.simulate` does not take as
input (``uv0`` are cell velocities), and it carries about six arrays (depth, two face discharges,
maximum depth, speed, arrival time). Measured with ``bench.chunked`` (4,000 x 4,000 cells in 1,000 x
1,000 chunks, 2 shared cores): one 1-cell exchange of a single float32 array through dask costs
about 145 ms on the threaded scheduler and 730 ms on a 2-process LocalCluster (dask's overlap
rebuilds every block by concatenation, i.e. copies the grid), and 176 ms / 1,070 ms with the global
maximum brought back to the client each step. The in-memory step costs about 24 ns per *wet*
cell-step (swe's docstring) and nothing on dry land (active row spans), so a fully wet 16 M-cell
grid steps in ~0.2-0.4 s while six arrays exchanged per step would add ~0.9 s (threads) to ~4 s
(cluster), for every cell wet or dry. On one node the in-memory model with numba threads over rows
is the right tool. A distributed run would keep each tile's state resident on its worker (actors or
MPI, not a task graph per step), extend tiles by a *wide halo* of ``H`` cells and exchange only
every ``H / 3`` steps, recomputing the halo cells redundantly (``(1 + 2H/c)^2 - 1`` extra work for
tiles of side ``c``: 12 % for H = 30, c = 1,000), with a fixed ``dt`` per block of steps (the global
``h_max`` taken at the exchange plus a bound on what rain and inflows can add within the block); the
result then equals an in-memory run with the same step sequence exactly. Measured on the same grid,
one 10-cell exchange for 10 steps costs 0.8 s against 2.1 s for ten 1-cell exchanges (both including
the Zarr read and write).
:func:`iterate_wide_halo` is a tested prototype of that schedule for any explicit stencil step.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import dask
import dask.array as dsa
import numba
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine
from dask.array.overlap import ensure_minimum_chunksize, overlap

from models.hydro.xr import cell_size
from models.landslide import fs as _fs
from models.landslide import shalstab as _shalstab
from models.landslide import sinmap as _sinmap
from models.landslide import terrain as _terrain
from models.landslide.calibration import DEFAULT_RECHARGE, RHO_WATER, Region

ZT_LAYERS = ("slope", "aspect", "profile_curvature", "plan_curvature")


# --- helpers ----------------------------------------------------------------------------------

@contextlib.contextmanager
def _numba_threads(n: int) -> Iterator[None]:
    """Run numba's parallel kernels on ``n`` threads in this thread (numba's setting is
    per thread), restoring the previous count."""
    before = numba.get_num_threads()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(before)


def as_float(da: xr.DataArray) -> xr.DataArray:
    """The DataArray as float32 (float64 stays) with its ``rio.nodata`` value turned into NaN,
    lazily (as :mod:`models.hydro.xr` does in memory)."""
    if da.ndim != 2:
        raise ValueError(f"expected a 2-D DataArray, got dims {da.dims}")
    dtype = np.float64 if da.dtype == np.float64 else np.float32
    nodata = da.rio.nodata if hasattr(da, "rio") else None
    out = da.astype(dtype)
    if nodata is not None and not np.isnan(nodata):
        out = out.where(da != nodata)
        out = out.astype(dtype)
    return out


def transform_of(da: xr.DataArray) -> Affine:
    """``da.rio.transform()`` (rioxarray composes it with ``*``, which warns on affine >= 3.1)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return da.rio.transform()


def _dask(da: xr.DataArray, chunks: Any = None) -> dsa.Array:
    """The DataArray's dask array (numpy-backed arrays are wrapped as one chunk, or ``chunks``)."""
    data = da.data
    if isinstance(data, dsa.Array):
        return data if chunks is None else data.rechunk(chunks)
    return dsa.from_array(np.asarray(data), chunks=chunks if chunks is not None else -1)


def like(template: xr.DataArray, data: dsa.Array | np.ndarray, name: str,
         nodata: float | None = np.nan, attrs: dict | None = None) -> xr.DataArray:
    """A DataArray of ``data`` on the template's grid: same dims, coordinates, CRS, transform."""
    out = xr.DataArray(data, coords=template.coords, dims=template.dims, name=name)
    out.attrs = {k: v for k, v in template.attrs.items()
                 if k not in ("_FillValue", "units", "scale_factor", "add_offset",
                              "long_name")}
    out.attrs.update(attrs or {})
    if template.rio.crs is not None:
        out = out.rio.write_crs(template.rio.crs)
    out = out.rio.write_transform(transform_of(template))
    if nodata is not None:
        out = out.rio.write_nodata(nodata, encoded=False)
    return out


def map_halo(kernel: Callable[..., np.ndarray | Sequence[np.ndarray]], *arrays: dsa.Array,
             depth: int, n_out: int = 1, dtype: Any = np.float32,
             boundary: Any = np.nan, threads: int | None = 1) -> list[dsa.Array]:
    """Apply ``kernel`` to each chunk extended by a halo of ``depth`` cells; cut the halo off.

    Args:
        kernel: Called with one numpy block per input array (each extended by ``depth`` cells on
            every side), returns an array of the extended block's shape, or a sequence of
            ``n_out`` such arrays.
        arrays: 2-D dask arrays of the same shape; they are rechunked like the first.
        depth: Halo width in cells (0 = per-cell operation, no exchange).
        n_out: Number of outputs of ``kernel``.
        dtype: dtype of the outputs.
        boundary: Value of the halo beyond the grid's edge (one value for all inputs, or one per
            input); NaN reproduces kernels that treat off-grid cells as nodata.
        threads: numba threads inside a task (None: leave numba's setting).

    Returns:
        ``n_out`` dask arrays with the first input's chunks.
    """
    if depth < 0:
        raise ValueError("depth must be >= 0")
    first = arrays[0]
    if first.ndim != 2:
        raise ValueError("map_halo works on 2-D arrays")
    for a in arrays[1:]:
        if a.shape != first.shape:
            raise ValueError(f"arrays differ in shape: {a.shape} and {first.shape}")
    chunks = first.chunks
    bounds = boundary if isinstance(boundary, (list, tuple)) else [boundary] * len(arrays)
    small = depth > min(first.shape)    # the halo is wider than the grid: one padded block
    if small:
        work = tuple((n,) for n in first.shape)
    elif depth > 0:   # every chunk must be at least the halo wide (else merge neighbours)
        work = tuple(ensure_minimum_chunksize(depth, c) for c in chunks)
    else:
        work = chunks
    ext = []
    for a, b in zip(arrays, bounds):
        a = a.rechunk(work)
        if small:
            a = a.map_blocks(lambda x, v=b: np.pad(x, depth, constant_values=v),
                             chunks=tuple((n + 2 * depth,) for n in first.shape),
                             dtype=a.dtype)
        elif depth > 0:
            a = overlap(a, depth={0: depth, 1: depth}, boundary={0: b, 1: b},
                        allow_rechunk=False)
        ext.append(a)

    def block(*blocks):
        ctx = _numba_threads(threads) if threads else contextlib.nullcontext()
        with ctx:
            res = kernel(*blocks)
        res = [res] if n_out == 1 and isinstance(res, np.ndarray) else list(res)
        if len(res) != n_out:
            raise ValueError(f"kernel returned {len(res)} arrays, expected {n_out}")
        d = depth
        cut = [np.asarray(r)[d:r.shape[0] - d, d:r.shape[1] - d] if d else np.asarray(r)
               for r in res]
        return np.stack(cut).astype(dtype, copy=False)

    out_chunks = ((n_out,), *work)
    stacked = dsa.map_blocks(block, *ext, dtype=dtype, chunks=out_chunks, new_axis=[0],
                             meta=np.empty((0, 0, 0), dtype=dtype))
    outs = [stacked[k] for k in range(n_out)]
    if work != chunks:
        outs = [o.rechunk(chunks) for o in outs]
    return outs


def _aligned(template: xr.DataArray, *others: xr.DataArray | None) -> list[dsa.Array | None]:
    """Dask arrays of ``others`` chunked like ``template`` (None stays None); shapes checked."""
    from gis.errors import DataError

    base = _dask(template)
    out = []
    for o in others:
        if o is None:
            out.append(None)
            continue
        if o.shape != template.shape:
            raise DataError(f"a raster is {o.shape[1]}x{o.shape[0]} cells, the grid "
                            f"{template.shape[1]}x{template.shape[0]}: they must share the grid",
                            field=str(o.name) if o.name is not None else None)
        out.append(_dask(o, base.chunks))
    return out


def from_array(data: np.ndarray | dsa.Array, transform: Affine, crs: Any = None, *,
               chunks: int | tuple[int, int] | None = None, name: str = "data") -> xr.DataArray:
    """A georeferenced 2-D DataArray (cell-centre coordinates from ``transform``, ``crs``) of a
    numpy or dask array, chunked ``chunks`` x ``chunks`` cells (or (rows, cols)) when given."""
    rows, cols = data.shape
    xs = (transform @ (np.arange(cols) + 0.5, np.full(cols, 0.5)))[0]
    ys = (transform @ (np.full(rows, 0.5), np.arange(rows) + 0.5))[1]
    da = xr.DataArray(data, dims=("y", "x"), coords={"y": ys, "x": xs}, name=name)
    if crs is not None:
        da = da.rio.write_crs(crs)
    da = da.rio.write_transform(transform)
    if chunks is not None:
        r, c = (chunks, chunks) if isinstance(chunks, int) else chunks
        da = da.chunk({"y": r, "x": c})
    return da


def local_model(method: str, slope: np.ndarray, sca: np.ndarray, regions: list[Region], *,
                transform: Affine, crs: Any = None, chunk: int = 1024, client: Any = None,
                region_raster: np.ndarray | None = None,
                recharge: tuple[float, float] = DEFAULT_RECHARGE, n_draws: int = 1000,
                seed: int = 0) -> tuple[np.ndarray, ...]:
    """The per-cell stability model of :func:`models.landslide.run.run_landslide` computed in
    ``chunk`` x ``chunk`` chunks (on ``client``, else threads), numpy in and out, equal to the
    in-memory call: ``sinmap`` -> (si, sat) as ``sinmap.stability_index``, ``shalstab`` ->
    (q, wc) as ``shalstab.critical_rainfall``, ``fs`` -> (fs,) as ``fs.factor_of_safety`` at
    the mean recharge with mid values, ``pof`` -> (pof,) as ``fs.probability_of_failure``
    (``n_draws``, ``seed``)."""
    s = from_array(np.asarray(slope), transform, crs, chunks=chunk, name="slope")
    a = from_array(np.asarray(sca), transform, crs, chunks=chunk, name="sca")
    r = None if region_raster is None else from_array(np.asarray(region_raster), transform,
                                                      crs, chunks=chunk, name="regions")
    if method == "sinmap":
        outs = stability_index(s, a, regions, region_raster=r, recharge=recharge)
    elif method == "shalstab":
        outs = critical_rainfall(s, a, regions, region_raster=r)
    elif method == "fs":
        outs = (factor_of_safety(s, a, regions, recharge=float(np.mean(recharge)),
                                 region_raster=r),)
    elif method == "pof":
        outs = (probability_of_failure(s, a, regions, recharge=recharge, region_raster=r,
                                       n=n_draws, seed=seed),)
    else:
        raise ValueError(f"no chunked path for method {method!r}")
    res = compute(*outs, client=client)
    res = res if isinstance(res, tuple) else (res,)
    return tuple(np.asarray(x.values) for x in res)


def compute(*objs: Any, client: Any = None) -> Any:
    """Evaluate lazy DataArrays/Datasets: on ``client`` (a ``dask.distributed.Client``) when
    given, else on the threaded scheduler. Returns one object or a tuple, like dask.compute."""
    scheduler = client if client is not None else "threads"
    res = dask.compute(*objs, scheduler=scheduler)
    return res[0] if len(objs) == 1 else res


@contextlib.contextmanager
def dask_client(workers: int | None = None, address: str | None = None, *,
                threads_per_worker: int = 1, processes: bool = True,
                memory_limit: str | int = "auto") -> Iterator[Any]:
    """A ``dask.distributed`` Client: connected to ``address`` (a running scheduler), or on a
    LocalCluster of ``workers`` workers; yields None when neither is given (threaded path)."""
    if address is None and not workers:
        yield None
        return
    from dask.distributed import Client, LocalCluster

    if address is not None:
        with Client(address) as client:
            yield client
        return
    with LocalCluster(n_workers=int(workers), threads_per_worker=threads_per_worker,
                      processes=processes, memory_limit=memory_limit, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0",  # loopback only
                      ) as cluster, Client(cluster) as client:
        yield client


# --- terrain ----------------------------------------------------------------------------------

def zevenbergen_thorne(dem: xr.DataArray) -> xr.Dataset:
    """Slope (tan), aspect (deg), profile and plan curvature (1/m) of a chunked DEM, bit-identical
    to :func:`models.landslide.terrain.zevenbergen_thorne` (halo 1; NaN on the grid border and
    next to nodata)."""
    dx, dy = cell_size(dem)
    z = _dask(as_float(dem))

    def kernel(block):
        out = _terrain._zt_kernel(np.asarray(block, dtype=np.float64), dx, dy)
        return [out[k].astype(np.float32) for k in range(4)]

    layers = map_halo(kernel, z, depth=1, n_out=4, dtype=np.float32)
    units = ("tan", "degrees clockwise from north", "1/m", "1/m")
    return xr.Dataset({name: like(dem, arr, name, attrs={"units": u})
                       for name, arr, u in zip(ZT_LAYERS, layers, units)})


def slope_degrees(slope_tan: xr.DataArray) -> xr.DataArray:
    """Slope angle in degrees from its tangent (per cell)."""
    (out,) = map_halo(_terrain.slope_degrees, _dask(slope_tan), depth=0)
    return like(slope_tan, out, "slope_degrees", attrs={"units": "degrees"})


def dinf_slope(filled: xr.DataArray) -> xr.DataArray:
    """D-infinity slope (tan) of a depression-filled DEM, NaN where
    :func:`models.landslide.terrain.dinf_slope_sca` leaves it undefined (grid border, nodata and
    its neighbours); equal to that function's slope for the same filled DEM (halo 1)."""
    from models import hydro

    dx, dy = cell_size(filled)
    z = _dask(as_float(filled))

    def kernel(block):
        b = np.asarray(block, dtype=np.float32)
        _, slope = hydro.dinf_directions(b, dx, dy)
        ring = _terrain._ring(np.isfinite(b))
        return np.where(ring | np.isnan(slope), np.nan, slope).astype(np.float32)

    (out,) = map_halo(kernel, z, depth=1)
    return like(filled, out, "slope", attrs={"units": "tan", "method": "D-infinity"})


# --- per-cell stability models -----------------------------------------------------------------

def _percell(func: Callable, slope: xr.DataArray, sca: xr.DataArray,
             region_raster: xr.DataArray | None, n_out: int, dtype: Any = np.float32
             ) -> list[dsa.Array]:
    s, a, r = _aligned(slope, slope, sca, region_raster)
    arrays = [s, a] if r is None else [s, a, r]

    def kernel(sb, ab, rb=None):
        return func(sb, ab, rb)

    return map_halo(kernel, *arrays, depth=0, n_out=n_out, dtype=dtype)


def stability_index(slope: xr.DataArray, sca: xr.DataArray, regions: list[Region], *,
                    region_raster: xr.DataArray | None = None,
                    recharge: tuple[float, float] = DEFAULT_RECHARGE,
                    rho_w: float = RHO_WATER) -> tuple[xr.DataArray, xr.DataArray]:
    """SINMAP stability index and saturation per chunk
    (:func:`models.landslide.sinmap.stability_index`); ``sca`` and ``region_raster`` on the
    slope's grid (rechunked like it)."""
    si, sat = _percell(lambda s, a, r: _sinmap.stability_index(
        s, a, regions, region_raster=r, recharge=recharge, rho_w=rho_w),
        slope, sca, region_raster, 2)
    return (like(slope, si, "si", attrs={"model": "SINMAP (Pack et al. 1998)"}),
            like(slope, sat, "sat", attrs={"model": "SINMAP saturation"}))


def factor_of_safety(slope: xr.DataArray, sca: xr.DataArray, regions: list[Region], *,
                     recharge: float, region_raster: xr.DataArray | None = None,
                     bound: str = "mid", rho_w: float = RHO_WATER) -> xr.DataArray:
    """Infinite-slope factor of safety per chunk (:func:`models.landslide.fs.factor_of_safety`)."""
    (out,) = _percell(lambda s, a, r: _fs.factor_of_safety(
        s, a, regions, recharge=recharge, region_raster=r, bound=bound, rho_w=rho_w),
        slope, sca, region_raster, 1)
    return like(slope, out, "fs", attrs={"model": "infinite slope (SINMAP form)"})


def probability_of_failure(slope: xr.DataArray, sca: xr.DataArray, regions: list[Region], *,
                           recharge: tuple[float, float],
                           region_raster: xr.DataArray | None = None, n: int = 1000,
                           seed: int = 0, rho_w: float = RHO_WATER) -> xr.DataArray:
    """Monte Carlo P(FS < 1) per chunk (:func:`models.landslide.fs.probability_of_failure`): each
    chunk seeds its cells' random streams by their index in the whole grid, so the result equals
    the in-memory one."""
    s, a, r = _aligned(slope, slope, sca, region_raster)
    width = slope.shape[1]

    def kernel(sb, ab, rb=None, block_info=None):
        (r0, _), (c0, _) = block_info[0]["array-location"]
        with _numba_threads(1):  # dask supplies the parallelism
            return _fs.probability_of_failure(sb, ab, regions, recharge=recharge,
                                              region_raster=rb, n=n, seed=seed, rho_w=rho_w,
                                              offset=(r0, c0), width=width)

    arrays = [s, a] if r is None else [s, a, r]
    out = dsa.map_blocks(kernel, *arrays, dtype=np.float32)
    return like(slope, out, "pof", attrs={"model": "Monte Carlo P(FS<1)", "draws": str(n),
                                          "seed": str(seed)})


def critical_rainfall(slope: xr.DataArray, sca: xr.DataArray, regions: list[Region], *,
                      region_raster: xr.DataArray | None = None, bound: str = "mid",
                      rho_w: float = RHO_WATER) -> tuple[xr.DataArray, xr.DataArray]:
    """SHALSTAB critical rainfall and critical wetness per chunk
    (:func:`models.landslide.shalstab.critical_rainfall`)."""
    q, wc = _percell(lambda s, a, r: _shalstab.critical_rainfall(
        s, a, regions, region_raster=r, bound=bound, rho_w=rho_w),
        slope, sca, region_raster, 2)
    return like(slope, q, "qcrit"), like(slope, wc, "wc")


def wetness_index(sca: xr.DataArray, slope: xr.DataArray, min_slope: float = 1e-3
                  ) -> xr.DataArray:
    """Topographic wetness index per chunk (:func:`models.landslide.terrain.wetness_index`)."""
    (out,) = _percell(lambda s, a, r: _terrain.wetness_index(a, s, min_slope), slope, sca,
                      None, 1)
    return like(slope, out, "twi", attrs={"units": "ln(m)"})


# --- wide-halo schedule for explicit time stepping (prototype) ----------------------------------

def iterate_wide_halo(step: Callable[[np.ndarray, int], np.ndarray], state: xr.DataArray,
                      n_steps: int, *, reach: int = 1, every: int = 4,
                      boundary: Any = np.nan) -> xr.DataArray:
    """Advance ``state`` by ``n_steps`` of an explicit stencil scheme, chunk by chunk, exchanging
    halos only every ``every`` steps: each round extends the chunks by ``H = reach * every``
    cells, runs ``every`` steps on the extended block (the outer ring of the block goes stale by
    ``reach`` cells per step, which the halo absorbs) and keeps the interior.

    ``step(block, t)`` advances one block by one step (``t`` = global step number) and must
    treat the cells beyond the grid's edge (filled with ``boundary``) exactly as the in-memory
    run does (e.g. NaN = outside). With a fixed step size the result equals ``n_steps`` in-memory
    steps exactly; one exchange serves ``every`` steps, at the cost of recomputing
    ``(1 + 2H/c)^2 - 1`` of the work for chunks of side ``c``.
    """
    if reach < 1 or every < 1:
        raise ValueError("reach and every must be >= 1")
    data = _dask(state)
    dtype = data.dtype
    t = 0
    while t < n_steps:
        k = min(every, n_steps - t)

        def kernel(block, t0=t, k=k):
            b = np.array(block, copy=True)
            for s in range(k):
                b = step(b, t0 + s)
            return b

        (data,) = map_halo(kernel, data, depth=reach * k, dtype=dtype, boundary=boundary,
                           threads=None)
        t += k
    return like(state, data, state.name or "state", nodata=None)
