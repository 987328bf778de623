"""Stock pygeoapi for bench/server.py: pygeoapi's own Starlette app under uvicorn, untouched,
with its SQLiteGPKG provider. That provider loads mod_spatialite, which needs an sqlite3 module
built with extension loading; this Python's is not, so pysqlite3 (same DB-API, same SQLite
family) stands in for ``sqlite3`` in this process and its workers.

    PYGEOAPI_CONFIG=... PYGEOAPI_OPENAPI=... python -m bench._stock_server PORT WORKERS
"""

import os
import sys

import pysqlite3

sys.modules["sqlite3"] = pysqlite3  # module level: uvicorn's spawned workers re-import this


def main() -> None:
    import uvicorn
    from pygeoapi.openapi import generate_openapi_document

    port, workers = int(sys.argv[1]), int(sys.argv[2])
    with open(os.environ["PYGEOAPI_OPENAPI"], "w") as fh:
        fh.write(generate_openapi_document(open(os.environ["PYGEOAPI_CONFIG"]), "json"))
    uvicorn.run("pygeoapi.starlette_app:APP", host="127.0.0.1", port=port,
                workers=workers if workers > 1 else None, loop="uvloop", http="httptools",
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
