"""Traffic-crash hot spots on the road network: lixels, network weights, Getis-Ord Gi*, local
Moran's I, false discovery rate, network kernel density and emerging hot spots
(see :mod:`models.hotspots.model` for the whole run)."""
