// NGIS 3D viewer: CesiumJS served locally, no Cesium ion, no request beyond this server.
// Tilesets come from ?tileset=URL (repeatable) or from tilesets.json beside this page:
// [{"name": "Buildings", "url": "/tiles/buildings/tileset.json"}, ...].
"use strict";

const params = new URLSearchParams(window.location.search);
const state = (window.ngis = { tilesets: [], errors: [], ready: false, frames: 0 });

Cesium.Ion.defaultAccessToken = "";  // never call Cesium ion

const viewer = new Cesium.Viewer("cesiumContainer", {
  baseLayer: Cesium.ImageryLayer.fromProviderAsync(
    Cesium.TileMapServiceImageryProvider.fromUrl(Cesium.buildModuleUrl("Assets/Textures/NaturalEarthII"))),
  baseLayerPicker: false, geocoder: false, timeline: false, animation: false,
  sceneModePicker: false, navigationHelpButton: false, fullscreenButton: false,
  homeButton: true, infoBox: false, selectionIndicator: false,
  msaaSamples: Number(params.get("msaa") || 4),
});
state.viewer = viewer;
viewer.scene.postRender.addEventListener(() => { state.frames += 1; });
// Underground content (pipelines, tunnels) stays visible through a translucent ground.
viewer.scene.screenSpaceCameraController.enableCollisionDetection = false;

// An API key given to the page (?key=...) goes with every data request: the server strips it
// before anything is logged, and CesiumJS passes a tileset URL's query on to its contents.
const apiKey = params.get("key");
function withKey(url) {
  if (!apiKey) return url;
  const u = new URL(url, window.location.href);
  u.searchParams.set("key", apiKey);
  return u.toString();
}

async function listTilesets() {
  const urls = params.getAll("tileset");
  if (urls.length) return urls.map((url, i) => ({ name: `tileset ${i + 1}`, url }));
  const response = await fetch(withKey("tilesets.json"));
  return response.ok ? response.json() : [];
}

const LABELS = { buildings: "Buildings (LOD2)", "buildings-lod1": "Buildings (LOD1)",
  roads: "Roads", rail: "Rail and metro", pipelines: "Pipelines (underground)" };

function addToggle(name, tileset, onChange) {
  const label = document.createElement("label");
  const box = document.createElement("input");
  box.type = "checkbox";
  box.checked = tileset.show;
  box.dataset.layer = name;
  box.addEventListener("change", () => { tileset.show = box.checked; if (onChange) onChange(); });
  label.append(box, " " + (LABELS[name] || name));
  document.getElementById("layers").append(label);
  return box;
}

// Underground view: a translucent globe lets pipelines, tunnels and metro show through the
// ground; the camera may go below the surface (collision detection is off above).
function setUnderground(on) {
  const globe = viewer.scene.globe;
  globe.translucency.enabled = on;
  globe.translucency.frontFaceAlpha = on ? 0.35 : 1.0;
  globe.translucency.backFaceAlpha = on ? 0.35 : 1.0;
  state.underground = on;
  const box = document.getElementById("underground");
  if (box) box.checked = on;
}

function showAttributes(feature) {
  const table = document.getElementById("attributes");
  table.replaceChildren();
  if (!(feature instanceof Cesium.Cesium3DTileFeature)) { table.hidden = true; return; }
  for (const id of feature.getPropertyIds()) {
    const row = table.insertRow();
    row.insertCell().textContent = id;
    const value = feature.getProperty(id);
    row.insertCell().textContent = value === undefined || value === null ? "—" : String(value);
  }
  table.hidden = false;
  state.picked = Object.fromEntries(feature.getPropertyIds().map((id) => [id, feature.getProperty(id)]));
}

new Cesium.ScreenSpaceEventHandler(viewer.scene.canvas).setInputAction((click) => {
  showAttributes(viewer.scene.pick(click.position));
}, Cesium.ScreenSpaceEventType.LEFT_CLICK);

(async () => {
  const status = document.getElementById("status");
  try {
    const all = await listTilesets();
    // Terrain (quantized-mesh from our own DEM) goes under the globe; without it, or when it
    // fails to load, CesiumJS draws the bare ellipsoid and the page says so in a notice.
    const terrain = all.find((t) => t.kind === "terrain");
    const listed = all.filter((t) => t.kind !== "terrain");
    state.terrain = null;
    if (terrain) {
      try {
        const provider = await Cesium.CesiumTerrainProvider.fromUrl(withKey(terrain.url),
          { requestVertexNormals: true, requestWaterMask: true });
        viewer.terrainProvider = provider;
        viewer.scene.globe.enableLighting = false;
        viewer.scene.globe.depthTestAgainstTerrain = true;
        state.terrain = terrain.name;
      } catch (err) {
        state.errors.push(`terrain ${terrain.url}: ${err}`);
      }
    }
    if (!state.terrain) {
      const notice = document.getElementById("notice");
      notice.textContent = (terrain ? "Terrain failed to load" : "No terrain on this server") +
        ": the ground is the bare ellipsoid, so buildings, roads and pipes float above it " +
        "(hundreds of metres in the mountains).";
      notice.hidden = false;
    }
    const names = new Set(listed.map((t) => t.name));
    for (const { name, url } of listed) {
      const tileset = await Cesium.Cesium3DTileset.fromUrl(withKey(url),
        { maximumScreenSpaceError: 8 });
      tileset.tileFailed.addEventListener((e) => state.errors.push(`${url}: ${e.message}`));
      // LOD1 and LOD2 of the same buildings would overlap: LOD2 shows, LOD1 is one click away.
      tileset.show = !(name.endsWith("-lod1") && names.has(name.replace(/-lod1$/, "")));
      tileset.ngisName = name;
      viewer.scene.primitives.add(tileset);
      state.tilesets.push(tileset);
      addToggle(name, tileset,
        name.includes("pipelines") ? () => { if (tileset.show) setUnderground(true); } : null);
    }
    if ([...names].some((n) => n.includes("pipelines"))) {
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.id = "underground";
      box.addEventListener("change", () => setUnderground(box.checked));
      label.append(box, " Underground view (translucent ground)");
      document.getElementById("layers").append(label);
      setUnderground(params.get("underground") === "1");
    }
    if (state.tilesets.length) {
      const sphere = state.tilesets[0].boundingSphere;
      viewer.camera.flyToBoundingSphere(sphere, {
        duration: 0, offset: new Cesium.HeadingPitchRange(0.3, -0.6, sphere.radius * 2.2) });
    }
    status.textContent = `${state.tilesets.length} tileset(s); ` +
      (state.terrain ? "terrain from the national DEM" : "no terrain: ellipsoid (heights float)");
  } catch (err) {
    state.errors.push(String(err));
    status.textContent = `error: ${err}`;
  }
  state.ready = true;
})();


// Hazard models on the map: each button runs an OGC API Process of this server over the area in
// view (with the page's key, so a grade sees only what it may) and drapes the result on the
// ground with a legend. Buttons appear only for processes this client's grade can run.
const HAZARDS = {
  flood: {
    label: "Flood: river 2 m above its channels (HAND)",
    // Parts under 50 x 50 m are left out: hundreds of tiny ground-clamped polygons cost the
    // browser more than they tell.
    inputs: (r) => ({ area: polygonOf(r), mode: "hand", stage_m: 2, min_area_m2: 2500 }),
    features: (doc) => doc.warning_areas,
    colour: (c) => ["#c6dbef", "#6baed6", "#2171b5", "#08306b", "#54278f"][c] || "#2171b5",
  },
  landslide: {
    label: "Landslide: SINMAP stability",
    inputs: (r) => ({ method: "sinmap", bbox: bboxOf(r) }),
    features: (doc) => doc.warning_areas,
    colour: (c) => ["#fee08b", "#fdae61", "#f46d43", "#d73027", "#a50026"][c] || "#d73027",
  },
  hotspots: {
    label: "Crash hot spots (Gi*, analytic z, FDR)",
    inputs: (r) => ({ method: "gi", bbox: bboxOf(r), permutations: 0, significant_only: true }),
    features: (doc) => doc.hotspots,
    colour: (c) => ({ 3: "#b2182b", 2: "#ef8a62", 1: "#fddbc7", "-1": "#d1e5f0",
      "-2": "#67a9cf", "-3": "#2166ac" })[c] || "#999999",
  },
};
state.hazards = {};

function viewRectangle() {
  const r = viewer.camera.computeViewRectangle() || Cesium.Rectangle.MAX_VALUE;
  return [r.west, r.south, r.east, r.north].map(Cesium.Math.toDegrees);
}
function bboxOf(r) { return r; }
function polygonOf([w, s, e, n]) {
  return { type: "Polygon", coordinates: [[[w, s], [e, s], [e, n], [w, n], [w, s]]] };
}

function showLegend(title, entries) {
  const legend = document.getElementById("legend");
  legend.replaceChildren();
  const head = document.createElement("strong");
  head.textContent = title;
  legend.append(head);
  for (const [name, colour] of entries) {
    const row = document.createElement("div");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colour;
    row.append(swatch, name);
    legend.append(row);
  }
  legend.hidden = entries.length === 0;
}

async function runHazard(id, button) {
  const spec = HAZARDS[id];
  const status = document.getElementById("status");
  button.disabled = true;
  status.textContent = `running ${id}…`;
  try {
    const response = await fetch(withKey(`/processes/${id}/execution`), {
      method: "POST", headers: { "Content-Type": "application/json", Prefer: "wait" },
      body: JSON.stringify({ inputs: spec.inputs(viewRectangle()) }),
    });
    const doc = await response.json();
    if (!response.ok) throw new Error(doc.description || response.statusText);
    const collection = spec.features(doc) || { type: "FeatureCollection", features: [] };
    delete collection.crs;  // RFC 7946: always CRS84 (CesiumJS knows only some crs names)
    if (state.hazards[id]) viewer.dataSources.remove(state.hazards[id], true);
    const source = await Cesium.GeoJsonDataSource.load(collection, { clampToGround: true });
    const legend = new Map();
    for (const entity of source.entities.values) {
      const props = entity.properties;
      const cls = props && props.class ? props.class.getValue() : 0;
      const name = props && props.class_name ? props.class_name.getValue() : String(cls);
      const colour = Cesium.Color.fromCssColorString(spec.colour(cls));
      legend.set(name, spec.colour(cls));
      if (entity.polygon) {
        entity.polygon.material = colour.withAlpha(0.6);
        entity.polygon.outline = false;
      }
      if (entity.polyline) {
        entity.polyline.material = colour;
        entity.polyline.width = 5;
      }
    }
    await viewer.dataSources.add(source);
    state.hazards[id] = source;
    state.hazardFeatures = source.entities.values.length;
    showLegend(spec.label, [...legend.entries()]);
    status.textContent = `${id}: ${source.entities.values.length} area(s) or segment(s) in view`;
  } catch (err) {
    state.errors.push(`${id}: ${err.message || err}`);
    status.textContent = `${id} failed: ${err.message || err}`;
  } finally {
    button.disabled = false;
  }
}

(async () => {
  try {
    const response = await fetch(withKey("/processes?f=json"));
    if (!response.ok) return;
    const listed = new Set(((await response.json()).processes || []).map((p) => p.id));
    const panel = document.getElementById("hazards");
    for (const id of Object.keys(HAZARDS)) {
      if (!listed.has(id)) continue;
      const button = document.createElement("button");
      button.id = `hazard-${id}`;
      button.textContent = HAZARDS[id].label;
      button.addEventListener("click", () => runHazard(id, button));
      panel.append(button);
    }
  } catch (err) {
    state.errors.push(`processes: ${err}`);
  }
})();
