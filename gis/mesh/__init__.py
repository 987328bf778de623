"""Mesh builders: footprints -> LOD1 prisms, roof types -> LOD2 roofs, CityGML surfaces ->
triangles, road/rail lines -> draped ribbons, pipes -> tubes. All return :class:`Mesh`.

Builders that may have to leave a feature out take ``report=`` (a :class:`MeshReport`); without
one they raise :class:`gis.errors.DataError` rather than drop anything silently.
"""

from gis.mesh.base import SURFACE_CODES, Mesh
from gis.mesh.checks import check_closed, feature_volumes
from gis.mesh.lod1 import BuildingHeights, building_heights, extrude
from gis.mesh.report import MeshReport
from gis.mesh.ribbons import ribbons
from gis.mesh.roofs import ROOF_TYPES, lod2_from_attributes
from gis.mesh.skeleton import Skeleton, straight_skeleton
from gis.mesh.surfaces import triangulate_surfaces
from gis.mesh.terrain import sample_dem
from gis.mesh.tubes import tubes, utility_colours

__all__ = ["Mesh", "SURFACE_CODES", "MeshReport", "extrude", "building_heights",
           "BuildingHeights", "sample_dem", "lod2_from_attributes", "ROOF_TYPES",
           "straight_skeleton", "Skeleton", "triangulate_surfaces", "ribbons", "tubes",
           "utility_colours", "check_closed", "feature_volumes"]
