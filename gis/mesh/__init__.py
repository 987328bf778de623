"""Mesh builders: footprints -> LOD1 prisms, roof types -> LOD2 roofs, CityGML surfaces ->
triangles, road/rail lines -> draped ribbons, pipes -> tubes. All return :class:`Mesh`."""

from gis.mesh.base import SURFACE_CODES, Mesh

__all__ = ["Mesh", "SURFACE_CODES"]
