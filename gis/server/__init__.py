"""The OGC API server: pygeoapi with our providers, the 3D Tiles, the viewer."""
