"""3D Tiles writing: tiling scheme, glb encoding, metadata, tileset.json, validation helpers."""
