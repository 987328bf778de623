"""Lixels, noding, snapping and network-distance weights, against scipy's Dijkstra on the node
graph and against esda on the Taiwan freeway network with the NPA crashes."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pytest
import shapely
from scipy.sparse import csgraph, csr_matrix

from models.hotspots.lixels import build_lixels, snap_points, to_metric
from models.hotspots.stats import getis_ord, local_moran
from models.hotspots.weights import network_distances, network_weights, to_libpysal


def _roads(lines):
    return gpd.GeoDataFrame(geometry=[shapely.LineString(c) for c in lines], crs="EPSG:3826")


def _town():
    """A cross drawn as four arms from a shared centre, a street ending on the middle of the
    east-west arm without a vertex there (T junction), a loop, and a road 40 m away from the
    north arm that never meets the rest."""
    return _roads([
        [(0, 0), (-1000, 0)], [(0, 0), (1000, 0)], [(0, 0), (0, 1000)], [(0, 0), (0, -1000)],
        [(500, 0), (500, -730)],  # T junction on the inside of the east arm
        [(0, 1000), (300, 1000), (300, 1300), (0, 1300), (0, 1000)],  # closed loop
        [(40, 100), (40, 900)],  # isolated parallel road
    ])


def test_lixels_cover_the_roads():
    roads = _town()
    net = build_lixels(roads, 100.0)
    total = shapely.length(roads.geometry.values).sum()
    assert net.lengths.sum() == pytest.approx(total, rel=1e-12)
    assert net.lengths.min() > 66 and net.lengths.max() < 134
    # lixel geometry lengths equal their recorded lengths; lixels are in segment order
    np.testing.assert_allclose(shapely.length(net.lixels.geometry.values), net.lengths)
    # every node id names one place: lixel ends that share a node id coincide
    ends = np.r_[shapely.get_coordinates(shapely.get_point(net.lixels.geometry.values, 0)),
                 shapely.get_coordinates(shapely.get_point(net.lixels.geometry.values, -1))]
    nodes = np.r_[net.lix_from, net.lix_to]
    first = {}
    for node, xy in zip(nodes.tolist(), ends):
        assert np.hypot(*(xy - first.setdefault(node, xy))) < 0.5
    assert len(first) == net.n_nodes
    # the T junction split the east arm: a node of degree 3 at (500, 0)
    deg = np.bincount(np.r_[net.seg_from, net.seg_to])
    assert sorted(deg[deg != 2].tolist()) == [1, 1, 1, 1, 1, 1, 3, 3, 4]


def _node_graph_distances(net, limit):
    """Midpoint-to-midpoint distances from scipy's Dijkstra on the node graph (independent)."""
    n_nodes = net.n_nodes
    g = csr_matrix((np.r_[net.lengths, net.lengths], (np.r_[net.lix_from, net.lix_to],
                                                      np.r_[net.lix_to, net.lix_from])),
                   shape=(n_nodes, n_nodes))
    d = csgraph.dijkstra(g, directed=False)
    half = net.lengths / 2
    ends = [net.lix_from, net.lix_to]
    best = np.full((net.n, net.n), np.inf)
    for a in ends:
        for b in ends:
            best = np.minimum(best, half[:, None] + d[np.ix_(a, b)] + half[None, :])
    np.fill_diagonal(best, np.inf)
    best[best > limit] = np.inf
    return best


def test_network_distances_match_dijkstra_on_nodes():
    net = build_lixels(_town(), 100.0)
    limit = 450.0
    ours = network_distances(net.adjacency(), limit).toarray()
    ours[ours == 0] = np.inf
    ref = _node_graph_distances(net, limit)
    np.testing.assert_allclose(ours, ref, rtol=1e-12)
    # the isolated road is 40 m from the north arm but no network neighbour of it
    iso = net.lixels.index[net.lixels["road"] == 6].to_numpy()
    north = net.lixels.index[net.lixels["road"] == 2].to_numpy()
    w = network_weights(net, 1000.0)
    assert w[iso][:, north].nnz == 0
    assert w[iso][:, iso].nnz > 0


def test_snapping_counts_unsnapped():
    net = build_lixels(_town(), 100.0)
    pts = shapely.points([(250, 3), (-620, -20), (5000, 5000), (40, 500), (0, 1150)])
    s = snap_points(net, pts, tolerance=25.0)
    assert s.unsnapped_count == 1 and s.lixel[2] == -1
    lix = net.lixels.iloc[s.lixel[0]]
    assert lix["road"] == 1 and lix["start_m"] <= 250 <= lix["end_m"]
    assert s.position[0] == pytest.approx(250.0) and s.distance[0] == pytest.approx(3.0)
    assert net.lixels["road"].iloc[s.lixel[3]] == 6  # on the isolated road, at 0 m
    assert net.lixels["road"].iloc[s.lixel[4]] == 5


@pytest.mark.shared_data
@pytest.mark.slow
def test_taiwan_freeway_crashes_match_esda(shared_data):
    """Gi*, Gi and local Moran of the 2018-2020 A1 crash counts on the national freeway lixels,
    network weights (1 km), against esda on the same weights, to 1e-9."""
    esda = pytest.importorskip("esda")
    from gis.io.crashes import read_crashes
    from models.hotspots.fdr import q_values

    roads = gpd.read_file(shared_data("tw-transport-network", "Freeway_Nat.gmt"))
    files = [shared_data("tw-a1-accidents", f"A1_{y}.csv")
             for y in ("2018_roc107", "2019_roc108", "2020_roc109")]
    crashes = read_crashes(files)
    net = build_lixels(to_metric(roads), 200.0)
    snapped = snap_points(net, crashes.frame.to_crs(net.crs).geometry.values, 50.0)
    assert 200 < snapped.snapped.sum() < 400
    y = np.bincount(snapped.lixel[snapped.snapped], minlength=net.n).astype(float)
    w = network_weights(net, 1000.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eg = esda.G_Local(y, to_libpysal(w), star=True, transform="B", permutations=0)
        eg0 = esda.G_Local(y, to_libpysal(w), star=False, transform="B", permutations=0)
        em = esda.Moran_Local(y, to_libpysal(w), transformation="r", permutations=0)
    g = getis_ord(y, w)
    np.testing.assert_allclose(g.z, eg.Zs, rtol=0, atol=1e-9)
    np.testing.assert_allclose(getis_ord(y, w, star=False).z, eg0.Zs, rtol=0, atol=1e-9)
    m = local_moran(y, w)
    np.testing.assert_allclose(m.stat, em.Is, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(m.quadrant, em.q)
    for alpha in (0.1, 0.05):
        p = 2 * eg.p_norm  # esda's p_norm is one-sided
        np.testing.assert_allclose(g.p_norm, p, atol=1e-12)
        assert np.array_equal(q_values(g.p_norm, "bh") <= alpha, p < esda.fdr(p, alpha))
