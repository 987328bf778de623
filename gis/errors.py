"""Errors raised by the gis package.

Every error a user can cause carries where it happened (file, layer, record, field) so the CLI can
print one line and exit 1, without a traceback.
"""

from __future__ import annotations


class NgisError(Exception):
    """Base class of all NGIS errors that the CLI reports as one line (exit code 1)."""

    def __init__(self, message: str, *, path: str | None = None, layer: str | None = None,
                 record: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.path = path
        self.layer = layer
        self.record = record
        self.field = field

    def location(self) -> str:
        """``file:layer:record: field`` with the parts that are known."""
        parts = [p for p in (self.path, self.layer, self.record) if p]
        loc = ":".join(str(p) for p in parts)
        if self.field:
            loc = f"{loc}: {self.field}" if loc else self.field
        return loc

    def __str__(self) -> str:
        loc = self.location()
        return f"{loc}: {self.message}" if loc else self.message


class DataError(NgisError):
    """The input data is wrong: malformed, unreadable or against the standard."""


class UnknownFormatError(DataError):
    """No reader knows this file."""


class MalformedFileError(DataError):
    """A file of a known format could not be parsed (truncated XML, corrupt GeoTIFF...)."""


class CRSError(DataError):
    """A missing, unknown or unsuitable coordinate reference system."""


class StandardError(NgisError):
    """A data standard document is missing or invalid (a programming or packaging error)."""


class StoreError(NgisError):
    """The base-map store cannot be opened, read or written."""


class LayerNotFoundError(StoreError):
    """The store has no such layer."""
