"""Decision models (flood, landslide, accident hotspots) over plain arrays and frames."""
