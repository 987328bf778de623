"""CityGML 2.0/3.0 building reader and PLATEAU UtilityNetwork pipe reader.

Expected values come from hand-written fixtures (computed by hand) or from plain lxml XPath reads
of the real files, never from the reader itself.
"""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from lxml import etree

from gis.errors import CRSError, DataError, MalformedFileError
from gis.io.citygml import read_citygml_buildings, read_plateau_pipes, sniff_citygml

GML2 = "http://www.opengis.net/gml"
GML3 = "http://www.opengis.net/gml/3.2"
BLDG2 = "http://www.opengis.net/citygml/building/2.0"
NS2 = {"gml": GML2, "bldg": BLDG2, "uro": "https://www.geospatial.jp/iur/uro/3.0"}

# A 10 m x 20 m box, ground at z=100, flat roof at z=106 (EPSG:25832, x east, y north).
X0, Y0, Z0, ZR = 500000.0, 5400000.0, 100.0, 106.0
CORNERS = [(X0, Y0), (X0 + 10, Y0), (X0 + 10, Y0 + 20), (X0, Y0 + 20)]


def _ring(points) -> str:
    points = [*points, points[0]]
    return " ".join(f"{x} {y} {z}" for x, y, z in points)


def _box_rings() -> dict[str, list[str]]:
    ground = [(x, y, Z0) for x, y in reversed(CORNERS)]
    roof = [(x, y, ZR) for x, y in CORNERS]
    walls = []
    for (xa, ya), (xb, yb) in zip(CORNERS, CORNERS[1:] + CORNERS[:1], strict=True):
        walls.append(_ring([(xa, ya, Z0), (xb, yb, Z0), (xb, yb, ZR), (xa, ya, ZR)]))
    return {"GroundSurface": [_ring(ground)], "RoofSurface": [_ring(roof)], "WallSurface": walls}


def _polygon(gid: str, ring: str) -> str:
    return (f'<gml:surfaceMember><gml:Polygon gml:id="{gid}"><gml:exterior><gml:LinearRing>'
            f'<gml:posList srsDimension="3">{ring}</gml:posList></gml:LinearRing></gml:exterior>'
            f"</gml:Polygon></gml:surfaceMember>")


def _surfaces(wrapper: str, prefix: str, lod_prefix: str) -> tuple[str, list[str]]:
    """Boundary surfaces XML and the ids of their polygons."""
    out, ids = [], []
    for stype, rings in _box_rings().items():
        for i, ring in enumerate(rings):
            pid = f"P-{stype}-{i}"
            ids.append(pid)
            out.append(f'<{wrapper}><{prefix}:{stype} gml:id="S-{stype}-{i}">'
                       f"<{lod_prefix}lod2MultiSurface><gml:MultiSurface>{_polygon(pid, ring)}"
                       f"</gml:MultiSurface></{lod_prefix}lod2MultiSurface>"
                       f"</{prefix}:{stype}></{wrapper}>")
    return "".join(out), ids


def _solid(ids: list[str], lod_prefix: str, shell: str) -> str:
    members = "".join(f'<gml:surfaceMember xlink:href="#{i}"/>' for i in ids)
    return (f"<{lod_prefix}lod2Solid><gml:Solid><gml:exterior><gml:{shell}>{members}"
            f"</gml:{shell}></gml:exterior></gml:Solid></{lod_prefix}lod2Solid>")


def citygml2(srs: str = 'srsName="EPSG:25832"') -> str:
    """The box building in CityGML 2.0 (attributes, thematic surfaces, xlink'd lod2Solid)."""
    surfaces, ids = _surfaces("bldg:boundedBy", "bldg", "bldg:")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<core:CityModel xmlns:core="http://www.opengis.net/citygml/2.0" xmlns:gml="{GML2}"
    xmlns:bldg="{BLDG2}" xmlns:gen="http://www.opengis.net/citygml/generics/2.0"
    xmlns:xlink="http://www.w3.org/1999/xlink">
  <gml:boundedBy><gml:Envelope {srs} srsDimension="3">
    <gml:lowerCorner>{X0} {Y0} {Z0}</gml:lowerCorner>
    <gml:upperCorner>{X0 + 10} {Y0 + 20} {ZR}</gml:upperCorner></gml:Envelope></gml:boundedBy>
  <core:cityObjectMember>
    <bldg:Building gml:id="B1">
      <gml:name>Box</gml:name>
      <gen:stringAttribute name="note"><gen:value>hand made</gen:value></gen:stringAttribute>
      <bldg:roofType codeSpace="roof.xml">1000</bldg:roofType>
      <bldg:yearOfConstruction>1990</bldg:yearOfConstruction>
      <bldg:usage codeSpace="usage.xml">1010</bldg:usage>
      <bldg:measuredHeight uom="m">6</bldg:measuredHeight>
      <bldg:storeysAboveGround>2</bldg:storeysAboveGround>
      {_solid(ids, "bldg:", "CompositeSurface")}
      {surfaces}
    </bldg:Building>
  </core:cityObjectMember>
</core:CityModel>
"""


def citygml3() -> str:
    """The same box building in CityGML 3.0 encoding."""
    surfaces, ids = _surfaces("core:boundary", "con", "core:")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<core:CityModel xmlns:core="http://www.opengis.net/citygml/3.0" xmlns:gml="{GML3}"
    xmlns:bldg="http://www.opengis.net/citygml/building/3.0"
    xmlns:con="http://www.opengis.net/citygml/construction/3.0"
    xmlns:gen="http://www.opengis.net/citygml/generics/3.0"
    xmlns:xlink="http://www.w3.org/1999/xlink">
  <gml:boundedBy><gml:Envelope srsName="EPSG:25832" srsDimension="3">
    <gml:lowerCorner>{X0} {Y0} {Z0}</gml:lowerCorner>
    <gml:upperCorner>{X0 + 10} {Y0 + 20} {ZR}</gml:upperCorner></gml:Envelope></gml:boundedBy>
  <core:cityObjectMember>
    <bldg:Building gml:id="B1">
      <gml:name>Box</gml:name>
      <core:genericAttribute><gen:StringAttribute><gen:name>note</gen:name>
        <gen:value>hand made</gen:value></gen:StringAttribute></core:genericAttribute>
      {surfaces}
      {_solid(ids, "core:", "Shell")}
      <con:dateOfConstruction>1990-05-01</con:dateOfConstruction>
      <con:height><con:Height><con:highReference>highestRoofEdge</con:highReference>
        <con:lowReference>lowestGroundPoint</con:lowReference><con:status>measured</con:status>
        <con:value uom="m">6</con:value></con:Height></con:height>
      <bldg:roofType codeSpace="roof.xml">1000</bldg:roofType>
      <bldg:usage codeSpace="usage.xml">1010</bldg:usage>
      <bldg:storeysAboveGround>2</bldg:storeysAboveGround>
    </bldg:Building>
  </core:cityObjectMember>
</core:CityModel>
"""


def _write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _building2(body: str, srs: str = "http://www.opengis.net/def/crs/EPSG/0/6697") -> str:
    """A CityGML 2.0 file with one building whose children are ``body``."""
    return f"""<core:CityModel xmlns:core="http://www.opengis.net/citygml/2.0" xmlns:gml="{GML2}"
    xmlns:bldg="{BLDG2}"><gml:boundedBy><gml:Envelope srsName="{srs}" srsDimension="3"/>
  </gml:boundedBy><core:cityObjectMember><bldg:Building gml:id="B">{body}</bldg:Building>
  </core:cityObjectMember></core:CityModel>"""


def _footprint(tag: str, ring: str) -> str:
    return (f"<bldg:{tag}><gml:MultiSurface>{_polygon(tag, ring)}</gml:MultiSurface>"
            f"</bldg:{tag}>")


# --------------------------------------------------------------------------- inline fixtures


def test_box_building_citygml2(tmp_path):
    layer = read_citygml_buildings(_write(tmp_path, "box2.gml", citygml2()))
    assert (layer.name, layer.standard, len(layer)) == ("Building", "building", 1)
    row = layer.frame.iloc[0]
    assert row["id"] == "B1" and row["name"] == "Box"
    assert row["height"] == 6.0 and row["storeys"] == 2 and row["year_built"] == 1990
    assert (row["roof_type"], row["roof_type_code"], row["usage"]) == ("flat", "1000", "1010")
    assert row["ground_elevation"] == Z0 and row["lod"] == 2
    assert row["source"] == "CityGML 2.0: box2.gml"
    assert json.loads(row["attributes"])["note"] == "hand made"
    assert layer.crs.to_epsg() == 25832
    assert row.geometry.area == pytest.approx(200.0)
    assert row.geometry.bounds == (X0, Y0, X0 + 10, Y0 + 20)
    assert not row.geometry.has_z
    assert layer.field_sources["height"] == "bldg:measuredHeight"
    assert layer.skipped == []


def test_box_surfaces(tmp_path):
    surfaces = read_citygml_buildings(_write(tmp_path, "box2.gml", citygml2())).extras["surfaces"]
    counts = surfaces["surface_type"].value_counts().to_dict()
    assert counts == {"WallSurface": 4, "GroundSurface": 1, "RoofSurface": 1}  # no lod2Solid row
    assert set(surfaces["lod"]) == {2} and surfaces["part_id"].isna().all()
    assert set(surfaces["building_id"]) == {"B1"}
    assert "S-RoofSurface-0" in set(surfaces["surface_id"])
    roof = surfaces.loc[surfaces["surface_type"] == "RoofSurface", "geometry"].iloc[0]
    assert roof.geom_type == "MultiPolygon" and roof.has_z
    assert set(shapely.get_coordinates(roof, include_z=True)[:, 2]) == {ZR}
    walls = surfaces.loc[surfaces["surface_type"] == "WallSurface", "geometry"]
    assert shapely.area(walls.to_numpy()).sum() == 0.0  # vertical in plan


def test_citygml3_gives_the_same_frame(tmp_path):
    two = read_citygml_buildings(_write(tmp_path, "box2.gml", citygml2()))
    three = read_citygml_buildings(_write(tmp_path, "box3.gml", citygml3()))
    assert three.frame.iloc[0]["source"] == "CityGML 3.0: box3.gml"
    assert three.field_sources["height"] == "con:height/con:Height/con:value"
    cols = ["source", "lineage"]
    pd.testing.assert_frame_equal(two.frame.drop(columns=cols), three.frame.drop(columns=cols))
    s2, s3 = (layer.extras["surfaces"].sort_values("surface_id").reset_index(drop=True)
              for layer in (two, three))
    pd.testing.assert_frame_equal(s2, s3)


def test_sniff(tmp_path):
    assert sniff_citygml(_write(tmp_path, "a.gml", citygml2())) == "2.0"
    assert sniff_citygml(_write(tmp_path, "b.gml", citygml3())) == "3.0"
    assert sniff_citygml(_write(tmp_path, "c.xml", "<a xmlns='urn:x'/>")) is None
    assert sniff_citygml(tmp_path / "missing.gml") is None


def test_geographic_crs_axes_are_swapped(tmp_path):
    # EPSG:6697 is lat, lon, h: a 0.001 x 0.001 degree square at 35.26 N, 139.74 E.
    ring = _ring([(35.26, 139.74, 5.0), (35.26, 139.741, 5.0), (35.261, 139.741, 5.0),
                  (35.261, 139.74, 5.0)])
    layer = read_citygml_buildings(
        _write(tmp_path, "geo.gml", _building2(_footprint("lod0FootPrint", ring))))
    assert layer.crs.to_epsg() == 6697
    minx, miny, maxx, maxy = layer.frame.total_bounds
    assert (minx, miny, maxx, maxy) == pytest.approx((139.74, 35.26, 139.741, 35.261))
    assert layer.frame.iloc[0]["lod"] == 0 and layer.frame.iloc[0]["ground_elevation"] == 5.0
    metric = layer.frame.to_crs(6677).geometry.iloc[0].area
    assert metric == pytest.approx(90.9 * 111.0, rel=0.01)  # ~90.9 m x ~111 m


def test_building_parts_are_merged(tmp_path):
    def part(pid, x0, width, height):
        ring = _ring([(x0, Y0, Z0), (x0 + width, Y0, Z0), (x0 + width, Y0 + 10, Z0),
                      (x0, Y0 + 10, Z0)])
        return (f'<bldg:consistsOfBuildingPart><bldg:BuildingPart gml:id="{pid}">'
                f'<bldg:measuredHeight uom="m">{height}</bldg:measuredHeight>'
                f'<bldg:boundedBy><bldg:GroundSurface gml:id="G-{pid}"><bldg:lod2MultiSurface>'
                f"<gml:MultiSurface>{_polygon('poly-' + pid, ring)}</gml:MultiSurface>"
                f"</bldg:lod2MultiSurface></bldg:GroundSurface></bldg:boundedBy>"
                f"</bldg:BuildingPart></bldg:consistsOfBuildingPart>")

    body = part("A", X0, 10, 6) + part("C", X0 + 10, 5, 3)
    layer = read_citygml_buildings(_write(tmp_path, "parts.gml", _building2(body, "EPSG:25832")))
    row = layer.frame.iloc[0]
    assert len(layer) == 1 and row["id"] == "B"
    assert row.geometry.area == pytest.approx(150.0) and row.geometry.geom_type == "Polygon"
    assert row["height"] == 6.0 and "height from BuildingParts" in row["lineage"]
    assert json.loads(row["attributes"])["BuildingPart[C]/height"] == 3.0
    surfaces = layer.extras["surfaces"]
    assert sorted(surfaces["part_id"]) == ["A", "C"] and set(surfaces["building_id"]) == {"B"}


def test_footprint_with_hole_pos_and_coordinates(tmp_path):
    outer = (f"<gml:pos>{X0} {Y0} 1</gml:pos><gml:pos>{X0 + 10} {Y0} 1</gml:pos>"
             f"<gml:pos>{X0 + 10} {Y0 + 20} 1</gml:pos><gml:pos>{X0} {Y0 + 20} 1</gml:pos>"
             f"<gml:pos>{X0} {Y0} 1</gml:pos>")
    square = [(4, 4), (4, 6), (6, 6), (6, 4), (4, 4)]  # a 2 m x 2 m courtyard
    hole = " ".join(f"{X0 + dx},{Y0 + dy},1" for dx, dy in square)
    body = ("<bldg:lod0FootPrint><gml:MultiSurface><gml:surfaceMember><gml:Polygon>"
            f"<gml:exterior><gml:LinearRing>{outer}</gml:LinearRing></gml:exterior>"
            f"<gml:interior><gml:LinearRing><gml:coordinates>{hole}</gml:coordinates>"
            "</gml:LinearRing></gml:interior></gml:Polygon></gml:surfaceMember>"
            "</gml:MultiSurface></bldg:lod0FootPrint>")
    layer = read_citygml_buildings(_write(tmp_path, "hole.gml", _building2(body, "EPSG:25832")))
    geom = layer.frame.geometry.iloc[0]
    assert geom.area == pytest.approx(196.0) and len(geom.interiors) == 1


def test_bad_height_is_left_empty_and_noted(tmp_path):
    ring = _ring([(X0, Y0, 0), (X0 + 1, Y0, 0), (X0 + 1, Y0 + 1, 0)])
    body = '<bldg:measuredHeight uom="m">2.8 (test)</bldg:measuredHeight>' + _footprint(
        "lod0FootPrint", ring)
    layer = read_citygml_buildings(_write(tmp_path, "bad.gml", _building2(body, "EPSG:25832")))
    row = layer.frame.iloc[0]
    assert np.isnan(row["height"])
    assert json.loads(row["attributes"])["bldg:measuredHeight"] == "2.8 (test)"
    assert any("bldg:measuredHeight" in note for note in layer.skipped)


def test_solid_only_building_gets_solid_rows(tmp_path):
    # No thematic surfaces: the LOD2 solid itself becomes the surface row.
    rings = _box_rings()
    faces = "".join(_polygon(f"F{i}", r) for i, r in enumerate(
        rings["GroundSurface"] + rings["RoofSurface"] + rings["WallSurface"]))
    body = (f"<bldg:lod2Solid><gml:Solid><gml:exterior><gml:CompositeSurface>{faces}"
            "</gml:CompositeSurface></gml:exterior></gml:Solid></bldg:lod2Solid>")
    layer = read_citygml_buildings(_write(tmp_path, "solid.gml", _building2(body, "EPSG:25832")))
    surfaces = layer.extras["surfaces"]
    assert surfaces["surface_type"].tolist() == ["lod2Solid"]
    assert len(surfaces.geometry.iloc[0].geoms) == 6
    row = layer.frame.iloc[0]
    assert row.geometry.area == pytest.approx(200.0) and row["ground_elevation"] == Z0


def test_unresolved_href_is_noted(tmp_path):
    ring = _ring([(X0, Y0, 0), (X0 + 1, Y0, 0), (X0 + 1, Y0 + 1, 0)])
    body = _footprint("lod0FootPrint", ring) + (
        '<bldg:lod1Solid><gml:Solid><gml:exterior><gml:CompositeSurface>'
        '<gml:surfaceMember xlink:href="#nowhere" xmlns:xlink="http://www.w3.org/1999/xlink"/>'
        "</gml:CompositeSurface></gml:exterior></gml:Solid></bldg:lod1Solid>")
    layer = read_citygml_buildings(_write(tmp_path, "href.gml", _building2(body, "EPSG:25832")))
    assert len(layer) == 1
    assert layer.skipped == ["1 xlink:href references not found in their feature"]


def test_bad_coordinates_name_the_record(tmp_path):
    body = _footprint("lod0FootPrint", "1 2 3 4 5 x 7 8 9")
    with pytest.raises(DataError, match="coordinate") as err:
        read_citygml_buildings(_write(tmp_path, "coords.gml", _building2(body, "EPSG:25832")))
    assert err.value.record == "B" and "coords.gml" in str(err.value)


def test_a_second_crs_is_an_error(tmp_path):
    ring = _ring([(X0, Y0, 0), (X0 + 1, Y0, 0), (X0 + 1, Y0 + 1, 0)])
    body = _footprint("lod0FootPrint", ring).replace(
        "<gml:MultiSurface>", '<gml:MultiSurface srsName="EPSG:3826">')
    with pytest.raises(CRSError, match="EPSG:3826") as err:
        read_citygml_buildings(_write(tmp_path, "mixed.gml", _building2(body, "EPSG:25832")))
    assert err.value.record == "B"


def test_building_without_geometry_is_skipped(tmp_path):
    text = _building2('<bldg:measuredHeight uom="m">3</bldg:measuredHeight>', "EPSG:25832")
    layer = read_citygml_buildings(_write(tmp_path, "empty.gml", text))
    assert len(layer) == 0 and list(layer.frame.columns)[:3] == ["id", "name", "height"]
    assert layer.skipped == ["1 bldg:Building without any polygon geometry"]


def test_no_srs_name_is_a_crs_error(tmp_path):
    text = citygml2(srs="")
    with pytest.raises(CRSError, match="srsName") as err:
        read_citygml_buildings(_write(tmp_path, "nosrs.gml", text))
    assert "nosrs.gml" in str(err.value)


def test_truncated_file_is_malformed(tmp_path):
    text = citygml2()
    path = _write(tmp_path, "cut.gml", text[: len(text) // 2])
    with pytest.raises(MalformedFileError) as err:
        read_citygml_buildings(path)
    assert "cut.gml" in str(err.value) and "line" in str(err.value)


def test_bad_token_is_malformed(tmp_path):
    path = _write(tmp_path, "token.gml", citygml2().replace("<gml:name>", "<gml:name><<", 1))
    with pytest.raises(MalformedFileError, match="line"):
        read_citygml_buildings(path)


def test_non_citygml_xml_is_a_data_error(tmp_path):
    path = _write(tmp_path, "other.xml", '<?xml version="1.0"?><kml xmlns="urn:kml"><a/></kml>')
    with pytest.raises(DataError, match="not a CityGML file") as err:
        read_citygml_buildings(path)
    assert not isinstance(err.value, MalformedFileError)
    with pytest.raises(DataError, match="not a CityGML file"):
        read_plateau_pipes(path)


PIPES = f"""<core:CityModel xmlns:core="http://www.opengis.net/citygml/2.0" xmlns:gml="{GML2}"
    xmlns:uro="https://www.geospatial.jp/iur/uro/3.0">
  <gml:boundedBy><gml:Envelope srsName="http://www.opengis.net/def/crs/EPSG/0/6697"
    srsDimension="3"/></gml:boundedBy>
  <core:cityObjectMember><uro:WaterPipe gml:id="W1">
    <uro:frnDmAttribute><uro:DmGeometricAttribute><uro:lod0Geometry><gml:LineString>
      <gml:posList>35.6 140.1 -1.5 35.601 140.1 -1.6</gml:posList>
    </gml:LineString></uro:lod0Geometry></uro:DmGeometricAttribute></uro:frnDmAttribute>
    <uro:occupierType codeSpace="o.xml">500</uro:occupierType>
    <uro:year>1986</uro:year><uro:depth uom="m">1.2</uro:depth>
    <uro:outerDiameter uom="m">0.3</uro:outerDiameter>
  </uro:WaterPipe></core:cityObjectMember>
  <core:cityObjectMember><uro:SewerPipe gml:id="S1">
    <uro:frnDmAttribute><uro:DmGeometricAttribute><uro:lod0Geometry><gml:LineString>
      <gml:posList>35.6 140.1 0 35.6 140.101 0</gml:posList>
    </gml:LineString></uro:lod0Geometry></uro:DmGeometricAttribute></uro:frnDmAttribute>
    <uro:maxDepth uom="m">2.5</uro:maxDepth><uro:minDepth uom="m">2</uro:minDepth>
    <uro:innerDiamiter uom="cm">25</uro:innerDiamiter>
  </uro:SewerPipe></core:cityObjectMember>
  <core:cityObjectMember><uro:Handhole gml:id="H1"/></core:cityObjectMember>
  <core:cityObjectMember><uro:ThermalPipe gml:id="T1"/></core:cityObjectMember>
</core:CityModel>"""


def test_pipes_inline(tmp_path):
    layer = read_plateau_pipes(_write(tmp_path, "pipes.gml", PIPES))
    assert (layer.name, layer.standard, len(layer)) == ("UtilityNetwork", "pipeline", 2)
    water, sewer = (layer.frame.set_index("id").loc[i] for i in ("W1", "S1"))
    assert water["utility"] == "water" and water["diameter"] == pytest.approx(300.0)
    assert water["depth"] == 1.2 and water["install_year"] == 1986
    assert json.loads(water["attributes"])["uro:occupierType"] == "500"
    assert sewer["utility"] == "sewer" and sewer["depth"] == 2.0
    assert sewer["inner_diameter"] == pytest.approx(250.0)
    assert sewer["diameter"] == pytest.approx(250.0) and "inner diameter" in sewer["lineage"]
    assert json.loads(sewer["attributes"])["uro:maxDepth"] == "2.5"
    line = water.geometry
    assert line.has_z and list(line.coords) == [(140.1, 35.6, -1.5), (140.1, 35.601, -1.6)]
    assert layer.skipped == [
        "1 uro:Handhole (not pipes)",
        "1 uro:ThermalPipe (district heating/cooling: no utility in the pipeline standard)"]


# --------------------------------------------------------------------------- real data

PLATEAU = "plateau-citygml-lod2"
YOKOSUKA = (PLATEAU, "yokosuka", "udx", "bldg", "52397519_bldg_6697_op.gml")
TOKYO = (PLATEAU, "tokyo23ku", "udx", "bldg", "53392642_bldg_6697_op2.gml")
PAIR = (PLATEAU, "citygml3-encoding", "53394517_bldg_6697_2_op_CityGML{}.gml")
SIG3D = ("citygml-sig3d-examples", "{}-EPSG25832_CityGML{}.gml")
UNF = ("plateau-utility-network", "{}_53403039_unf_6697.gml")


def _type_counts(layer) -> dict[str, int]:
    return layer.extras["surfaces"]["surface_type"].value_counts().to_dict()


@pytest.mark.shared_data
def test_yokosuka(shared_data):
    path = shared_data(*YOKOSUKA)
    layer = read_citygml_buildings(path)
    frame = layer.frame.set_index("id")
    tree = etree.parse(str(path))
    buildings = tree.findall(".//bldg:Building", NS2)
    assert len(frame) == len(buildings) == 13
    for b in buildings:  # own measuredHeight, else the highest of its BuildingParts
        own = b.xpath("bldg:measuredHeight/text()", namespaces=NS2)
        parts = b.xpath("bldg:consistsOfBuildingPart/bldg:BuildingPart/bldg:measuredHeight/text()",
                        namespaces=NS2)
        expected = float(own[0]) if own else max(map(float, parts))
        assert frame.loc[b.get(f"{{{GML2}}}id"), "height"] == expected
    # SOURCE.md's "3 have LOD2" counts the 2 BuildingParts of one building separately.
    roofs = layer.extras["surfaces"].query("surface_type == 'RoofSurface'")
    assert len(roofs) == 3 and roofs["building_id"].nunique() == 2
    assert (frame["lod"] == 2).sum() == 2 and frame["lod"].min() == 1
    minx, miny, maxx, maxy = layer.frame.total_bounds  # SOURCE.md extent, lon/lat order
    assert 139.737 < minx < maxx < 139.741 and 35.258 < miny < maxy < 35.262


@pytest.mark.shared_data
def test_yokosuka_footprint_matches_raw_coordinates(shared_data):
    path = shared_data(*YOKOSUKA)
    layer = read_citygml_buildings(path)
    b = etree.parse(str(path)).find(".//bldg:Building", NS2)  # has a lod0FootPrint of its own
    values = b.xpath("bldg:lod0FootPrint//gml:posList/text()", namespaces=NS2)[0].split()
    lat_lon = np.asarray(values, float).reshape(-1, 3)
    raw = gpd.GeoSeries([shapely.Polygon(lat_lon[:, [1, 0]])], crs=6668).to_crs(6677)
    row = layer.frame[layer.frame["id"] == b.get(f"{{{GML2}}}id")].to_crs(6677).iloc[0]
    assert row.geometry.area == pytest.approx(raw.area.iloc[0], rel=1e-9)
    ground = b.xpath(".//bldg:GroundSurface//gml:posList/text()", namespaces=NS2)
    ground_z = np.concatenate([np.asarray(t.split(), float)[2::3] for t in ground])
    assert row["ground_elevation"] == ground_z.min()  # GroundSurface before the LOD0 footprint


@pytest.mark.shared_data
def test_citygml2_and_3_encodings_agree(shared_data):
    two = read_citygml_buildings(shared_data(*PAIR[:-1], PAIR[-1].format(2)))
    three = read_citygml_buildings(shared_data(*PAIR[:-1], PAIR[-1].format(3)))
    assert len(two) == len(three) == 1
    a2, a3 = (layer.frame.to_crs(6677).geometry.iloc[0].area for layer in (two, three))
    assert a2 == pytest.approx(a3, rel=1e-6)
    for layer in (two, three):
        counts = _type_counts(layer)
        assert (counts["RoofSurface"], counts["WallSurface"]) == (279, 370)
        assert layer.frame["height"].iloc[0] == 31.7
    assert two.frame["ground_elevation"].iloc[0] == three.frame["ground_elevation"].iloc[0]
    assert json.loads(two.frame["attributes"].iloc[0])[
        "uro:buildingDetails/uro:BuildingDetails/uro:surveyYear"] == "2016"
    assert json.loads(three.frame["attributes"].iloc[0])[
        "uro:buildingDetails/uro:BuildingDetails/uro:surveyYear"] == "2016"


@pytest.mark.shared_data
def test_tokyo(shared_data):
    layer = read_citygml_buildings(shared_data(*TOKYO))
    assert len(layer) == 8
    counts = _type_counts(layer)
    assert (counts["RoofSurface"], counts["WallSurface"], counts["GroundSurface"]) == (139, 380, 13)
    # One building's measuredHeight is "2.8（テスト）" in this libplateau test file: its height
    # comes from its geometry instead, highest point minus lowest ground point (read by XPath).
    assert layer.frame["height"].notna().all()
    assert any("measuredHeight" in note for note in layer.skipped)
    tree = etree.parse(str(shared_data(*TOKYO)))
    bad = [b for b in tree.iter("{*}Building")
           if "テスト" in (b.findtext("{*}measuredHeight") or "")]
    assert len(bad) == 1
    gid = bad[0].get("{http://www.opengis.net/gml}id")

    def zs(node):
        return [float(v) for p in node.iter("{*}posList") for v in p.text.split()[2::3]]

    ground = min(z for g in bad[0].iter("{*}GroundSurface") for z in zs(g))
    row = layer.frame.set_index("id").loc[gid]
    solids = [n for tag in ("boundedBy", "lod1Solid", "lod2Solid") for n in bad[0].iter(f"{{*}}{tag}")]
    assert row["height"] == pytest.approx(max(z for n in solids for z in zs(n)) - ground, abs=1e-3)
    assert "no measuredHeight" in row["lineage"]
    minx, miny, maxx, maxy = layer.frame.total_bounds
    assert 139.774 < minx < maxx < 139.780 and 35.538 < miny < maxy < 35.542


@pytest.mark.shared_data
@pytest.mark.parametrize("name,area", [("Building_LOD2", 50.0), ("Building_and_garage_LOD2", 60.0)])
def test_sig3d_pairs(shared_data, name, area):
    two, three = (read_citygml_buildings(shared_data(SIG3D[0], SIG3D[1].format(name, v)))
                  for v in (2, 3))
    for layer in (two, three):  # 10 m x 5 m house (+ 2.5 m x 4 m garage)
        assert len(layer) == 1 and layer.crs.to_epsg() == 5555  # ETRS89 UTM 32N + DHHN92
        assert layer.frame.geometry.iloc[0].area == pytest.approx(area)
        assert layer.frame["ground_elevation"].iloc[0] == 112.0
        assert layer.frame["roof_type"].iloc[0] == "gable"
        assert layer.skipped == ["1 dem:ReliefFeature (not a building)"]
    assert _type_counts(two) == _type_counts(three)
    cols = ["height", "storeys", "year_built", "lod", "roof_type_code"]
    pd.testing.assert_frame_equal(two.frame[cols], three.frame[cols])
    if name == "Building_and_garage_LOD2":
        parts = two.extras["surfaces"]["part_id"].dropna()
        assert set(parts) == {"GMLID_BUI379228_1244_301"} and len(parts) == 6


@pytest.mark.shared_data
@pytest.mark.parametrize("utility,tag,count,skipped", [
    ("water", "WaterPipe", 3, ["2 uro:Appurtenance (not pipes)", "2 uro:Handhole (not pipes)"]),
    ("sewer", "SewerPipe", 3, ["3 uro:Manhole (not pipes)"]),
    ("gas", "OilGasChemicalsPipe", 3,
     ["2 uro:Appurtenance (not pipes)", "2 uro:Handhole (not pipes)"]),
])
def test_plateau_pipes(shared_data, utility, tag, count, skipped):
    path = shared_data(UNF[0], UNF[1].format(utility))
    layer = read_plateau_pipes(path)
    frame = layer.frame.set_index("id")
    assert len(frame) == count and set(frame["utility"]) == {utility}
    assert layer.skipped == skipped
    tree = etree.parse(str(path))
    for pipe in tree.findall(f".//uro:{tag}", NS2):
        row = frame.loc[pipe.get(f"{{{GML2}}}id")]
        depth = pipe.xpath("uro:depth/text() | uro:minDepth/text()", namespaces=NS2)
        assert (row["depth"] == float(depth[0])) if depth else np.isnan(row["depth"])
        outer = pipe.find("uro:outerDiamiter", NS2)
        if outer is not None:
            assert outer.get("uom") == "mm" and row["diameter"] == float(outer.text)
            assert 50 < row["diameter"] < 2000
    minx, miny, maxx, maxy = layer.frame.total_bounds
    assert 140.119 < minx < maxx < 140.120 and 35.609 < miny < maxy < 35.610
    assert all(g.has_z and g.geom_type == "LineString" for g in layer.frame.geometry)


@pytest.mark.shared_data
def test_plateau_cable_and_duct(shared_data):
    layer = read_plateau_pipes(shared_data(UNF[0], UNF[1].format("elec")))
    frame = layer.frame.set_index("id").to_crs(6677)
    assert len(frame) == 2 and set(frame["utility"]) == {"power"}
    duct = frame.loc["unf_99224461-cfa2-46a0-93b0-604138e53b35"]  # empty lod0Geometry
    cable = frame.loc["unf_d3986a0c-18c9-425d-a270-552645a24a25"]
    assert "LOD1 solid" in duct["lineage"] or "lod1Geometry" in duct["lineage"]
    assert duct.geometry.hausdorff_distance(cable.geometry) < 0.5  # cable runs in the duct
    assert duct.geometry.length == pytest.approx(cable.geometry.length, abs=0.5)
