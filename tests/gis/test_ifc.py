"""IFC reader (issue 11) on the real samples, against independent references: element counts and
placements from IfcOpenShell itself (``by_type``, ``util.placement``), the published counts and
georeferencing values in the samples' SOURCE.md, latitude/longitude converted by hand here and
inverted with pyproj, and the Khronos glTF validator on a tileset built from an ingested model."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from pyproj import Geod, Transformer

from gis.cli.main import cli
from gis.io import read_source
from gis.io.ifc import placement_of, read_ifc

SAMPLES = "ifc-samples"
DUPLEX = "Duplex_A_20110907_georeferenced.ifc"
FZK = "AC20-FZK-Haus.ifc"
ROTTERDAM = "OWL_20230717_Laan-op-Zuid_Rotterdam.ifc"
TOLERANCE_M = 0.05
#: SOURCE.md counts (ifcopenshell ``by_type``, subtypes included).
PUBLISHED = {DUPLEX: {"IfcWall": 57, "IfcSlab": 21, "IfcWindow": 24, "IfcDoor": 14, "IfcBeam": 8},
             FZK: {"IfcWall": 13, "IfcSlab": 4, "IfcWindow": 11, "IfcDoor": 5, "IfcBeam": 4}}

pytestmark = pytest.mark.shared_data


def hand_degrees(dms) -> float:
    d, m, s, *rest = dms
    return d + m / 60 + (s + (rest[0] if rest else 0) / 1e6) / 3600


def site_world_origin(model) -> np.ndarray:
    import ifcopenshell.util.placement as placement
    import ifcopenshell.util.unit as unit

    site = model.by_type("IfcSite")[0]
    m = placement.get_local_placement(site.ObjectPlacement)
    return m[:3, 3] * unit.calculate_unit_scale(model)


@pytest.fixture(scope="module")
def models(shared_data):
    import ifcopenshell

    out = {}
    for name in (DUPLEX, FZK):
        path = shared_data(SAMPLES, name)
        out[name] = (ifcopenshell.open(str(path)), read_ifc(path)[0])
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", [DUPLEX, FZK])
def test_element_counts_equal_ifcopenshell(models, name):
    model, lyr = models[name]
    s = lyr.extras["surfaces"]
    assert len(lyr.frame) == len(model.by_type("IfcBuilding")) == 1
    for cls, published in PUBLISHED[name].items():
        entities = model.by_type(cls)
        assert len(entities) == published
        with_geometry = {e.GlobalId for e in entities if e.Representation is not None}
        assert int(s["part_id"].isin(with_geometry).sum()) == len(with_geometry), cls
    # every element with a representation is there once, with its class, storey and name
    expected = [e for e in model.by_type("IfcElement")
                if not e.is_a("IfcFeatureElement") and e.Representation is not None]
    assert sorted(s["part_id"]) == sorted(e.GlobalId for e in expected)
    by_id = s.set_index("part_id")
    import ifcopenshell.util.element as element

    for e in expected[:20]:
        row = by_id.loc[e.GlobalId]
        assert row["ifc_class"] == e.is_a() and row["name"] == e.Name
        storey = element.get_container(e)
        if storey is not None and storey.is_a("IfcBuildingStorey"):
            assert row["storey"] == storey.Name
    assert lyr.problems == []


def _ifcopenshell_storey(model, e):
    """The storey of an element by IfcOpenShell's own lookup (container, else the container of
    the element's aggregate parent), walking up from a space to the storey that aggregates it."""
    import ifcopenshell.util.element as element

    node = element.get_container(e)
    if node is None and element.get_aggregate(e) is not None:
        node = element.get_container(element.get_aggregate(e))
    while node is not None and not node.is_a("IfcBuildingStorey"):
        node = element.get_aggregate(node)
    return None if node is None else node.Name


@pytest.mark.slow
@pytest.mark.parametrize("name", [DUPLEX, FZK])
def test_every_element_has_the_storey_ifcopenshell_gives(models, name):
    """Duplex: 71 elements sit in IfcSpaces (the storey aggregates the space); FZK: all directly
    in storeys. Every element's storey equals IfcOpenShell's ``get_container`` walk, none empty."""
    model, lyr = models[name]
    s = lyr.extras["surfaces"].set_index("part_id")
    expected = {gid: _ifcopenshell_storey(model, model.by_guid(gid)) for gid in s.index}
    assert all(v is not None for v in expected.values())
    assert s["storey"].to_dict() == expected
    storeys = {st.Name for st in model.by_type("IfcBuildingStorey")}
    assert set(s["storey"]) <= storeys


@pytest.mark.slow
def test_fzk_site_point_lands_at_its_latitude_longitude(models):
    model, lyr = models[FZK]
    site = model.by_type("IfcSite")[0]
    lat, lon = hand_degrees(site.RefLatitude), hand_degrees(site.RefLongitude)
    assert (round(lat, 6), round(lon, 6)) == (49.100435, 8.436539)  # SOURCE.md
    place = placement_of(model)
    assert lyr.crs == place.crs and lyr.crs.to_epsg() == 32632
    e, n, h = place.to_map(site_world_origin(model)[None])[0]
    back_lon, back_lat = Transformer.from_crs(lyr.crs, 4326, always_xy=True).transform(e, n)
    _, _, dist = Geod(ellps="WGS84").inv(lon, lat, back_lon, back_lat)
    assert dist < TOLERANCE_M and abs(h - 110.0) < TOLERANCE_M
    # TrueNorth: 100 m along the model's true-north direction ends up due north of the site
    tn = np.array([0.766044443119, 0.642787609687, 0.0])
    e2, n2, _ = place.to_map((site_world_origin(model) + 100 * tn)[None])[0]
    lon2, lat2 = Transformer.from_crs(lyr.crs, 4326, always_xy=True).transform(e2, n2)
    az, _, d = Geod(ellps="WGS84").inv(back_lon, back_lat, lon2, lat2)
    assert abs(d - 100) < TOLERANCE_M and abs(az) < 0.01
    # the envelope sits at the site: footprint within 30 m, ground at about RefElevation
    assert lyr.frame.geometry.iloc[0].distance(__import__("shapely").Point(e, n)) < 30
    assert abs(lyr.frame["ground_elevation"].iloc[0] - 110.0) < 1.0


@pytest.mark.slow
def test_duplex_site_point_lands_at_its_map_conversion(models):
    """The Duplex has both Chicago lat/lon and a Luxembourg map conversion: the map conversion
    (LoGeoRef 50) wins and the contradiction is noted."""
    import ifcopenshell.util.element as element

    model, lyr = models[DUPLEX]
    site = model.by_type("IfcSite")[0]
    mc = element.get_psets(site)["ePSet_MapConversion"]
    assert lyr.crs.to_epsg() == 9897
    e, n, h = placement_of(model).to_map(site_world_origin(model)[None])[0]
    assert math.hypot(e - mc["Eastings"], n - mc["Northings"]) < TOLERANCE_M
    assert abs(h - mc["OrthogonalHeight"]) < TOLERANCE_M
    assert (mc["Eastings"], mc["Northings"]) == (76670.0, 77179.0)  # SOURCE.md
    assert any("km from the map conversion" in note for note in lyr.skipped)
    # the model x axis follows XAxisAbscissa/XAxisOrdinate: 10 m along x
    e2, n2, _ = placement_of(model).to_map((site_world_origin(model) + [10, 0, 0])[None])[0]
    np.testing.assert_allclose([(e2 - e) / 10, (n2 - n) / 10],
                               [mc["XAxisAbscissa"], mc["XAxisOrdinate"]], atol=1e-4)


def test_rotterdam_exporter_errors_one_line_each(shared_data):
    path = shared_data(SAMPLES, ROTTERDAM)
    r = CliRunner().invoke(cli, ["validate", "--standard", "building", str(path)])
    assert r.exit_code == 1
    lines = [ln for ln in r.output.splitlines() if "exporter error" in ln]
    assert len(lines) == 3, r.output
    assert ["MapUnit" in lines[0], "Eastings" in lines[1], "Scale" in lines[2]] == [True] * 3
    (lyr,) = read_source(path)
    assert lyr.crs.to_epsg() == 28992
    import ifcopenshell

    model = ifcopenshell.open(str(path))
    assert len(lyr.extras["surfaces"]) == len(model.by_type("IfcBuildingElementProxy")) == 3
    # corrected offsets (SOURCE.md: E 93,869.354 m, N 435,604.867 m) for the site point
    e, n, _ = placement_of(model).to_map(site_world_origin(model)[None])[0]
    assert math.hypot(e - 93869.354, n - 435604.867) < TOLERANCE_M


def _rotterdam_without_georeferencing(shared_data, tmp_path) -> Path:
    text = Path(shared_data(SAMPLES, ROTTERDAM)).read_text()
    text = "\n".join(ln for ln in text.splitlines() if "IFCMAPCONVERSION" not in ln)
    text = text.replace("(51,54,23,553132),(4,29,57,51126)", "$,$")
    out = tmp_path / "nogeo.ifc"
    out.write_text(text)
    return out


def test_no_georeferencing_is_one_line_and_an_origin_places_it(shared_data, tmp_path):
    path = _rotterdam_without_georeferencing(shared_data, tmp_path)
    r = CliRunner().invoke(cli, ["validate", "--standard", "building", str(path)])
    assert r.exit_code == 1
    assert len([ln for ln in r.output.splitlines() if "no georeferencing" in ln]) == 1
    (lyr,) = read_ifc(path, origin=(250000.0, 2700000.0, 10.0), rotation=30.0, crs="EPSG:3826")
    assert lyr.crs.to_epsg() == 3826 and lyr.problems == []
    import ifcopenshell

    place = placement_of(ifcopenshell.open(str(path)), origin=(250000.0, 2700000.0, 10.0),
                         rotation=30.0, crs="EPSG:3826")
    np.testing.assert_allclose(place.to_map(np.array([[0.0, 0, 0], [10, 0, 0]])),
                               [[250000, 2700000, 10], [250000 + 10 * math.cos(math.pi / 6),
                                                        2700000 + 5, 10]], atol=1e-9)


@pytest.mark.slow
def test_ingest_and_lod2_tiles_pass_the_gltf_validator(shared_data, tmp_path):
    """FZK-Haus through ``ngis ingest`` and ``ngis tiles build --lod 2``, its IfcSite moved to
    Taiwan first (a latitude/longitude site placed in the default target CRS, EPSG:3826)."""
    from tiles.info import tileset_info

    text = Path(shared_data(SAMPLES, FZK)).read_text()
    text, n = re.subn(r"\(49,6,1,566000\),\(8,26,11,540400\)", "(24,48,0,0),(121,0,0,0)", text)
    assert n == 1
    src = tmp_path / "fzk_taiwan.ifc"
    src.write_text(text)
    store = tmp_path / "s.gpkg"
    r = CliRunner().invoke(cli, ["-q", "ingest", "--store", str(store), str(src)])
    assert r.exit_code == 0, r.output
    stored = read_source(store, layer="buildings_surfaces")[0].frame
    import ifcopenshell

    model = ifcopenshell.open(str(src))
    assert len(stored) == len([e for e in model.by_type("IfcElement")
                               if not e.is_a("IfcFeatureElement") and e.Representation])
    assert {"ifc_class", "storey", "name", "properties"} <= set(stored.columns)
    assert json.loads(stored["properties"].iloc[0])
    out = tmp_path / "tiles"
    r = CliRunner().invoke(cli, ["tiles", "build", "--store", str(store), "--layer", "buildings",
                                 "--lod", "2", "--out", str(out)])
    assert r.exit_code == 0, r.output
    report = tileset_info(out, validate=True)
    assert report["ok"], report.get("problems")
    # the envelope (1 feature) and its detail tile (one feature per element)
    assert report["validator"]["errors"] == 0 and report["features"] == 1 + len(stored)


def _one_wall_ifc(path: Path, vertices, faces) -> Path:
    """A minimal IFC4 model (project, site, building, storey) with one IfcWall whose body is
    one IfcPolygonalFaceSet of ``vertices`` and ``faces``, made with ifcopenshell.api."""
    import ifcopenshell.api as api

    f = api.run("project.create_file", version="IFC4")
    project = api.run("root.create_entity", f, ifc_class="IfcProject", name="p")
    api.run("unit.assign_unit", f)
    model = api.run("context.add_context", f, context_type="Model")
    body = api.run("context.add_context", f, context_type="Model", context_identifier="Body",
                   target_view="MODEL_VIEW", parent=model)
    site = api.run("root.create_entity", f, ifc_class="IfcSite", name="site")
    site.RefLatitude, site.RefLongitude, site.RefElevation = (24, 48, 0), (121, 0, 0), 10.0
    building = api.run("root.create_entity", f, ifc_class="IfcBuilding", name="b")
    storey = api.run("root.create_entity", f, ifc_class="IfcBuildingStorey", name="EG")
    api.run("aggregate.assign_object", f, relating_object=project, products=[site])
    api.run("aggregate.assign_object", f, relating_object=site, products=[building])
    api.run("aggregate.assign_object", f, relating_object=building, products=[storey])
    wall = api.run("root.create_entity", f, ifc_class="IfcWall", name="w")
    api.run("geometry.edit_object_placement", f, product=wall)
    rep = api.run("geometry.add_mesh_representation", f, context=body, vertices=[vertices],
                  faces=[faces])
    api.run("geometry.assign_representation", f, product=wall, representation=rep)
    api.run("spatial.assign_container", f, relating_structure=storey, products=[wall])
    f.write(str(path))
    return path


#: A closed tetrahedron, outward faces: no crossing.
TETRA = ([(0.0, 0, 0), (4, 0, 0), (0, 4, 0), (0, 0, 4)],
         [(0, 2, 1), (0, 1, 3), (1, 2, 3), (0, 3, 2)])


def test_self_intersecting_item_is_one_line(tmp_path):
    """One face set whose two triangles cross (along (1, 1, 0)-(2, 2, 0) in model metres): one
    "self-intersection" line naming the wall at one end of that segment, placed; a closed
    tetrahedron gives none."""
    verts = [(0.0, 0, 0), (4, 0, 0), (0, 4, 0), (1, 1, -1), (1, 1, 1), (3, 3, 0.5)]
    bad = _one_wall_ifc(tmp_path / "bad.ifc", verts, [(0, 1, 2), (3, 4, 5)])
    (lyr,) = read_ifc(bad)
    lines = [p for p in lyr.problems if "self-intersection" in p[2]]
    assert len(lines) == 1 and "IfcWall 'w'" in lines[0][2]
    assert lines[0][0] == lyr.frame["id"].iloc[0]  # against its building
    # the crossing point, placed: model (2, 2, 0) through the site's placement
    import ifcopenshell

    ends = placement_of(ifcopenshell.open(str(bad))).to_map(np.array([[1.0, 1, 0], [2, 2, 0]]))
    assert any(f"({x:.3f}, {y:.3f}, {z:.3f})" in lines[0][2] for x, y, z in ends)
    r = CliRunner().invoke(cli, ["validate", "--standard", "building", str(bad)])
    assert r.exit_code == 1
    assert len([ln for ln in r.output.splitlines() if "self-intersection" in ln]) == 1
    good = _one_wall_ifc(tmp_path / "good.ifc", *TETRA)
    assert read_ifc(good)[0].problems == []


def test_self_intersections_on_small_meshes():
    """gis.mesh.checks.self_intersections: crossing, touching and closed cases by hand."""
    from gis.mesh.base import Mesh
    from gis.mesh.checks import self_intersections

    def mesh(tris, fid=0):
        p = np.asarray(tris, float).reshape(-1, 3)
        return Mesh(p, np.arange(len(p)).reshape(-1, 3), np.full(len(p), fid))

    flat = [(0, 0, 0), (4, 0, 0), (0, 4, 0)]
    crossing = mesh([flat, [(1, 1, -1), (1, 1, 1), (3, 3, 0.5)]])
    found = self_intersections(crossing)
    assert list(found) == [0]
    # the triangles meet along (1, 1, 0)-(2, 2, 0): where the edge (1,1,-1)-(1,1,1) pierces the
    # flat one, and where the flat one's edge x + y = 4 pierces the other; either is reported
    assert min(np.abs(found[0] - q).max() for q in ([1, 1, 0], [2, 2, 0])) < 1e-12
    # touching at a corner or along an edge, or lying on the plane's boundary: no crossing
    assert self_intersections(mesh([flat, [(4, 0, 0), (5, 0, 1), (5, 1, -1)]])) == {}
    assert self_intersections(mesh([flat, [(0, 0, 0), (4, 0, 0), (2, 0, 3)]])) == {}
    # the same crossing triangles in two features: each feature alone is fine
    two = Mesh.concat([mesh([flat], 0), mesh([[(1, 1, -1), (1, 1, 1), (3, 3, 0.5)]], 1)])
    assert self_intersections(two) == {}
    v, f = TETRA
    tetra = mesh([[v[i] for i in face] for face in f])
    assert self_intersections(tetra) == {}


def test_storey_through_aggregates_and_spaces(tmp_path):
    """A slab that is only part of an IfcRoof (the roof is in storey "OG"), and a wall contained
    in an IfcSpace that storey "EG" aggregates: both get their storey, as IfcOpenShell's
    indirect ``get_container`` walk finds it."""
    import ifcopenshell
    import ifcopenshell.api as api

    f = api.run("project.create_file", version="IFC4")
    project = api.run("root.create_entity", f, ifc_class="IfcProject", name="p")
    api.run("unit.assign_unit", f)
    model_ctx = api.run("context.add_context", f, context_type="Model")
    body = api.run("context.add_context", f, context_type="Model", context_identifier="Body",
                   target_view="MODEL_VIEW", parent=model_ctx)
    site = api.run("root.create_entity", f, ifc_class="IfcSite", name="site")
    building = api.run("root.create_entity", f, ifc_class="IfcBuilding", name="b")
    eg = api.run("root.create_entity", f, ifc_class="IfcBuildingStorey", name="EG")
    og = api.run("root.create_entity", f, ifc_class="IfcBuildingStorey", name="OG")
    space = api.run("root.create_entity", f, ifc_class="IfcSpace", name="room")
    api.run("aggregate.assign_object", f, relating_object=project, products=[site])
    api.run("aggregate.assign_object", f, relating_object=site, products=[building])
    api.run("aggregate.assign_object", f, relating_object=building, products=[eg, og])
    api.run("aggregate.assign_object", f, relating_object=eg, products=[space])
    roof = api.run("root.create_entity", f, ifc_class="IfcRoof", name="roof")
    api.run("spatial.assign_container", f, relating_structure=og, products=[roof])
    slab = api.run("root.create_entity", f, ifc_class="IfcSlab", name="roof slab")
    api.run("aggregate.assign_object", f, relating_object=roof, products=[slab])
    wall = api.run("root.create_entity", f, ifc_class="IfcWall", name="room wall")
    api.run("spatial.assign_container", f, relating_structure=space, products=[wall])
    for el, dz in ((slab, 3.0), (wall, 0.0)):
        api.run("geometry.edit_object_placement", f, product=el)
        v, faces = TETRA
        rep = api.run("geometry.add_mesh_representation", f, context=body,
                      vertices=[[(x, y, z + dz) for x, y, z in v]], faces=[faces])
        api.run("geometry.assign_representation", f, product=el, representation=rep)
    path = tmp_path / "parts.ifc"
    f.write(str(path))
    (lyr,) = read_ifc(path, origin=(0.0, 0.0, 0.0), crs="EPSG:3826")
    s = lyr.extras["surfaces"].set_index("name")["storey"].to_dict()
    assert s == {"roof slab": "OG", "room wall": "EG"}
    model = ifcopenshell.open(str(path))
    for e in model.by_type("IfcElement"):
        if e.Representation is not None:
            assert s[e.Name] == _ifcopenshell_storey(model, e)
