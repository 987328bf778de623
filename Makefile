# NGIS 3D. Two commands matter (see README): `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell sh scripts/find-python312)
VENV ?= .venv
PY := $(VENV)/bin/python
NGIS := $(VENV)/bin/ngis
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp
DEMO_DIR ?= build/demo
DEMO_SIZE ?= small
SEED ?= 42
PYTEST_ARGS ?=

.PHONY: demo demo-real test install clean docs bench

install: $(STAMP) $(NODE_STAMP)

# Re-run only when the dependency declarations change: fast when already done.
$(STAMP): pyproject.toml constraints.txt
	@if [ ! -x "$(PY)" ]; then \
	  py="$(PYTHON)"; [ -n "$$py" ] || exit 1; \
	  echo "creating $(VENV) with $$py"; "$$py" -m venv "$(VENV)"; fi
	$(PY) -m pip install -q --disable-pip-version-check --upgrade "pip>=24"
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt --config-settings editable_mode=compat -e '.[test]'
	@touch $@

# Node tools (glTF validator, 3d-tiles-tools, CesiumJS), pinned by package-lock.json.
$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "error: npm is needed (apt-get install nodejs npm)"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

DEMO_SERVE ?= 1
DEMO_PORT ?= 5000
SERVER_CONFIG ?= server_config.yml
# The main job: generate (or, with demo-real, read) the source data, check and load it into the
# embedded store, build the 3D Tiles, write the server config, and serve it all.
demo: $(STAMP) $(NODE_STAMP)
	$(NGIS) demo-data --out $(DEMO_DIR)/source --size $(DEMO_SIZE) --seed $(SEED)
	$(NGIS) ingest --store $(DEMO_DIR)/basemap.gpkg --manifest $(DEMO_DIR)/source/manifest.json
	$(NGIS) catalog list --store $(DEMO_DIR)/basemap.gpkg
	$(NGIS) preview --store $(DEMO_DIR)/basemap.gpkg --out $(DEMO_DIR)/preview.png
	$(NGIS) tiles build --store $(DEMO_DIR)/basemap.gpkg --layer buildings --lod 2 --out $(DEMO_DIR)/tiles/buildings
	$(NGIS) tiles build --store $(DEMO_DIR)/basemap.gpkg --layer buildings --lod 1 --out $(DEMO_DIR)/tiles/buildings-lod1
	$(NGIS) tiles build --store $(DEMO_DIR)/basemap.gpkg --layer roads --out $(DEMO_DIR)/tiles/roads
	$(NGIS) tiles build --store $(DEMO_DIR)/basemap.gpkg --layer rail --out $(DEMO_DIR)/tiles/rail
	$(NGIS) tiles build --store $(DEMO_DIR)/basemap.gpkg --layer pipelines --out $(DEMO_DIR)/tiles/pipelines
	$(NGIS) terrain build --dem $(DEMO_DIR)/source/dem.tif --out $(DEMO_DIR)/tiles/dem-terrain
	$(NGIS) config --store $(DEMO_DIR)/basemap.gpkg --tiles $(DEMO_DIR)/tiles --out $(SERVER_CONFIG)
	@echo
	@echo "Base map store: $(DEMO_DIR)/basemap.gpkg (open it in QGIS, or: $(NGIS) catalog show --store $(DEMO_DIR)/basemap.gpkg buildings)"
	@echo "Picture:        $(DEMO_DIR)/preview.png"
	@echo "3D Tiles:       $(DEMO_DIR)/tiles/{buildings,buildings-lod1,roads,rail,pipelines}/tileset.json"
	@echo "Terrain:        $(DEMO_DIR)/tiles/dem-terrain/layer.json (quantized-mesh, from the DEM)"
	@echo "Server config:  $(SERVER_CONFIG)"
	@if [ "$(DEMO_SERVE)" = "1" ]; then \
	  $(NGIS) serve --config $(SERVER_CONFIG) --port $(DEMO_PORT); \
	else echo "Serve it:       $(NGIS) serve --config $(SERVER_CONFIG)"; fi

test: $(STAMP) $(NODE_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

docs: $(STAMP)
	$(NGIS) standards docs --out docs/standards

clean:
	rm -rf build .pytest_cache

REAL_DIR ?= build/real
demo-real: $(STAMP) $(NODE_STAMP)
	@test -d ../shared/data || { echo "../shared/data is absent: use make demo"; exit 1; }
	$(NGIS) ingest --store $(REAL_DIR)/basemap.gpkg --manifest examples/shared-data.yml
	$(NGIS) catalog list --store $(REAL_DIR)/basemap.gpkg
	$(NGIS) preview --store $(REAL_DIR)/basemap.gpkg --out $(REAL_DIR)/preview.png
	$(NGIS) tiles build --store $(REAL_DIR)/basemap.gpkg --layer buildings --lod 2 --dem ../shared/data/tw-island-relief15s/tw_relief_15s.nc --out $(REAL_DIR)/tiles/buildings
	$(NGIS) tiles build --store $(REAL_DIR)/basemap.gpkg --layer buildings --lod 1 --dem ../shared/data/tw-island-relief15s/tw_relief_15s.nc --out $(REAL_DIR)/tiles/buildings-lod1
	$(NGIS) tiles build --store $(REAL_DIR)/basemap.gpkg --layer roads --out $(REAL_DIR)/tiles/roads
	$(NGIS) tiles build --store $(REAL_DIR)/basemap.gpkg --layer rail --out $(REAL_DIR)/tiles/rail
	$(NGIS) tiles build --store $(REAL_DIR)/basemap.gpkg --layer plateau_buildings --lod 2 --out $(REAL_DIR)/tiles/plateau_buildings
	$(NGIS) terrain build --dem ../shared/data/tw-island-relief15s/tw_relief_15s.nc --out $(REAL_DIR)/tiles/dem-terrain
	$(NGIS) tiles build --store $(REAL_DIR)/basemap.gpkg --layer plateau_pipelines --out $(REAL_DIR)/tiles/plateau_pipelines
	$(NGIS) config --store $(REAL_DIR)/basemap.gpkg --tiles $(REAL_DIR)/tiles --out $(REAL_DIR)/server_config.yml
	@if [ "$(DEMO_SERVE)" = "1" ]; then $(NGIS) serve --config $(REAL_DIR)/server_config.yml --port $(DEMO_PORT); \
	else echo "Serve it: $(NGIS) serve --config $(REAL_DIR)/server_config.yml"; fi

# Benchmarks print ratios against a peer run in the same process (see bench/*.py).
# bench/server.py also needs wrk and mod_spatialite (Debian) and pysqlite3 for its stock peer.
bench: $(STAMP)
	@for p in wrk libsqlite3-mod-spatialite; do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then apt-get install -y -qq $$missing >/dev/null; fi
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test,bench]'
	@for b in validate ingest tiles server hydro flood2d landslide hotspots terrain bim chunked scale; do echo "== bench/$$b.py"; $(PY) -m bench.$$b || exit 1; done
