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

async function listTilesets() {
  const urls = params.getAll("tileset");
  if (urls.length) return urls.map((url, i) => ({ name: `tileset ${i + 1}`, url }));
  const response = await fetch("tilesets.json");
  return response.ok ? response.json() : [];
}

function addToggle(name, tileset) {
  const label = document.createElement("label");
  const box = document.createElement("input");
  box.type = "checkbox";
  box.checked = true;
  box.addEventListener("change", () => { tileset.show = box.checked; });
  label.append(box, " " + name);
  document.getElementById("layers").append(label);
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
    for (const { name, url } of await listTilesets()) {
      const tileset = await Cesium.Cesium3DTileset.fromUrl(url, { maximumScreenSpaceError: 8 });
      tileset.tileFailed.addEventListener((e) => state.errors.push(`${url}: ${e.message}`));
      viewer.scene.primitives.add(tileset);
      state.tilesets.push(tileset);
      addToggle(name, tileset);
    }
    if (state.tilesets.length) {
      const sphere = state.tilesets[0].boundingSphere;
      viewer.camera.flyToBoundingSphere(sphere, {
        duration: 0, offset: new Cesium.HeadingPitchRange(0.3, -0.6, sphere.radius * 2.2) });
    }
    status.textContent = `${state.tilesets.length} tileset(s)`;
  } catch (err) {
    state.errors.push(String(err));
    status.textContent = `error: ${err}`;
  }
  state.ready = true;
})();
