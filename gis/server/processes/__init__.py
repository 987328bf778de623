"""Decision models as OGC API Processes (pygeoapi processors)."""
