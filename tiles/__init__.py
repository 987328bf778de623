"""3D Tiles writing: tiling scheme, glb encoding, metadata, tileset.json, validation helpers.

Modules (public entry points):

* :mod:`tiles.placement`: ``to_ecef``, ``geodetic``, ``enu_frame``, ``LocalFrame`` (store CRS +
  orthometric heights -> ECEF via EGM96; tile-local ENU frames in glTF y-up axes).
* :mod:`tiles.glb`: ``write_glb`` (glTF 2.0 + EXT_mesh_features + EXT_structural_metadata,
  optional KHR_mesh_quantization / EXT_meshopt_compression).
* :mod:`tiles.b3dm`: ``write_b3dm`` (3D Tiles 1.0 Batched 3D Model with a batch table).
* :mod:`tiles.metadata`: metadata classes from NGIS standards, property and batch tables.
* :mod:`tiles.tiling` / :mod:`tiles.tileset`: ``build_tileset`` (adaptive quadtree, ADD, largest
  features up) and ``write_tileset`` (explicit or implicit, atomic, incremental, gzip at rest).
* :mod:`tiles.content`: ``MeshContent`` (tile contents cut from a layer mesh, fingerprinted).
* :mod:`tiles.info`: ``tileset_info`` (summary and checks of a tileset directory).
* :mod:`tiles.read`: a small reader of what we write (GLB, b3dm, subtrees).
* :mod:`tiles.schemas`: validation against the 3D Tiles JSON Schemas.
"""
