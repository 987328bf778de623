"""NGIS 3D: readers, ETL, the base-map store, mesh builders, the CLI and the server glue."""

__version__ = "0.1.0"
