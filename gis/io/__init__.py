"""Readers: one per source format, all yielding :class:`gis.io.model.SourceLayer`."""
