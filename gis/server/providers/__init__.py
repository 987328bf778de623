"""pygeoapi providers over the base-map store: features, vector tiles, coverages, records."""
