// The street basemap under every console's Leaflet layers: vector tiles from this server
// (/tiles/basemap.json, built from the imported map data) drawn by MapLibre GL JS through its
// Leaflet binding, so the consoles' markers, hexagons and routes stay Leaflet layers on top.
// Labels follow the console's language (name:zh / name:en, falling back to the local name);
// the glyphs are drawn by the browser from local fonts (no `glyphs` URL), so no request leaves
// the machine. Without WebGL, or without a basemap on the server, the plain background stays.
import { t, lang, onLang } from "./i18n.js";

const CJK_FONTS = "'Noto Sans CJK SC', 'Noto Sans SC', 'Source Han Sans SC', 'PingFang SC', 'Microsoft YaHei', sans-serif";
const FONT = ["Noto Sans", "DejaVu Sans", "Arial", "sans-serif"];

/** Whether this browser can draw WebGL at all (headless without a GPU still has SwiftShader). */
export function hasWebgl() {
  try {
    const c = document.createElement("canvas");
    return !!(c.getContext("webgl2") || c.getContext("webgl"));
  } catch { return false; }
}

const label = l => ["coalesce", ["get", l === "zh" ? "name:zh" : "name:en"], ["get", "name"]];

const ROAD = {
  motorway: ["#e892a2", 2.2], trunk: ["#f9b29c", 2.0], primary: ["#fcd6a4", 1.8],
  secondary: ["#f7fabf", 1.5], tertiary: ["#ffffff", 1.3], minor: ["#ffffff", 1.0],
  pedestrian: ["#f3f0ec", 0.9], service: ["#ffffff", 0.6], track: ["#d8c4a0", 0.5],
};

/** The style: OSM-Carto-like colours, calm enough for the consoles' own layers on top. */
export function style(tj, l = lang()) {
  const src = "basemap";
  // Line widths grow with the zoom; `w` is a number or a per-feature expression (one zoom
  // interpolation per property is all the style language allows).
  const width = w => ["interpolate", ["exponential", 1.6], ["zoom"], 8, ["*", w, 0.4], 12, ["*", w, 1.2], 16, ["*", w, 6], 18, ["*", w, 14]];
  const layers = [
    { id: "background", type: "background", paint: { "background-color": "#f2efe9" } },
    { id: "landuse", type: "fill", source: src, "source-layer": "landuse", paint: {
      "fill-color": ["match", ["get", "class"], "wood", "#cfe3bf", "grass", "#e3edcf", "park", "#c8e6b0",
        "residential", "#e9e5df", "commercial", "#f1dede", "industrial", "#e8dfe9", "cemetery", "#d5e1cb",
        "rock", "#e4e1da", "wetland", "#d8ebe4", "#ece8e1"] } },
    { id: "water", type: "fill", source: src, "source-layer": "water", paint: { "fill-color": "#aad3df" } },
    { id: "waterway", type: "line", source: src, "source-layer": "waterway",
      paint: { "line-color": "#aad3df", "line-width": width(["match", ["get", "class"], "river", 2.2, "canal", 1.5, 0.6]) } },
    { id: "boundary", type: "line", source: src, "source-layer": "boundary",
      paint: { "line-color": "#9e7fa6", "line-dasharray": [3, 2], "line-width": ["case", ["<=", ["get", "admin_level"], 4], 1.6, 0.9] } },
    { id: "building", type: "fill", source: src, "source-layer": "building", minzoom: 14,
      paint: { "fill-color": "#d9d0c9", "fill-outline-color": "#c4b6ab" } },
    { id: "path", type: "line", source: src, "source-layer": "transportation", filter: ["==", ["get", "class"], "path"],
      paint: { "line-color": "#fa8072", "line-width": width(0.35), "line-dasharray": [2, 1.5] } },
    { id: "rail", type: "line", source: src, "source-layer": "transportation", filter: ["in", ["get", "class"], ["literal", ["rail", "transit"]]],
      paint: { "line-color": "#8f8f8f", "line-width": width(0.7), "line-dasharray": [3, 2] } },
  ];
  const cls = Object.keys(ROAD);
  // Casings under fills, minor first, so major roads draw over the streets they cross.
  const cased = cls.filter(c => c !== "track");
  layers.push({ id: "road-casing", type: "line", source: src, "source-layer": "transportation",
    filter: ["in", ["get", "class"], ["literal", cased]], layout: { "line-cap": "round", "line-join": "round" },
    paint: { "line-color": "#b9aea3", "line-width": width(["+", 0.35, ["match", ["get", "class"], ...cased.flatMap(c => [c, ROAD[c][1]]), 1]]) } });
  for (const c of [...cls].reverse()) {
    layers.push({ id: `road-${c}`, type: "line", source: src, "source-layer": "transportation", filter: ["==", ["get", "class"], c],
      layout: { "line-cap": "round", "line-join": "round" }, paint: { "line-color": ROAD[c][0], "line-width": width(ROAD[c][1]) } });
  }
  const halo = { "text-halo-color": "rgba(255,255,255,0.92)", "text-halo-width": 1.6 };
  layers.push(
    { id: "road-label", type: "symbol", source: src, "source-layer": "transportation_name",
      layout: { "symbol-placement": "line", "text-field": label(l), "text-font": FONT, "text-size": ["interpolate", ["linear"], ["zoom"], 13, 10, 17, 14] },
      paint: { "text-color": "#3d3d3d", ...halo } },
    { id: "place-label", type: "symbol", source: src, "source-layer": "place",
      layout: { "text-field": label(l), "text-font": FONT, "symbol-sort-key": ["get", "rank"],
        "text-size": ["match", ["get", "rank"], 1, 18, 2, 16, 3, 14, 4, 13, 12] },
      paint: { "text-color": "#222", ...halo } },
  );
  return {
    version: 8,
    // Absolute (MapLibre fetches from a worker); built by hand, since URL() would escape {z}.
    sources: { [src]: { type: "vector", tiles: tj.tiles.map(u => u.startsWith("/") ? location.origin + u : u),
      minzoom: tj.minzoom, maxzoom: tj.maxzoom, bounds: tj.bounds } },
    layers,
  };
}

/** A small notice on the map (WebGL missing), kept in the console's language. */
function notice(map, key) {
  const Ctl = L.Control.extend({ onAdd() {
    const el = L.DomUtil.create("div", "map-notice leaflet-control");
    el.setAttribute("role", "status"); el.dataset.i18n = key; el.textContent = t(key);
    return el;
  } });
  new Ctl({ position: "bottomleft" }).addTo(map);
}

/**
 * Starts loading what the basemap needs — its metadata and, with WebGL, the renderer — so the
 * page can fit its view meanwhile. Resolves with `null` when the server has no basemap.
 */
export async function prepareBasemap() {
  let tj = null;
  try {
    const r = await fetch("/tiles/basemap.json", { headers: { Accept: "application/json" } });
    if (r.ok) tj = await r.json();
  } catch { tj = null; }
  if (!tj) return null;
  const webgl = hasWebgl();
  if (webgl) {
    // The page preloads both modules; the workers start now, while the districts load.
    const [gl] = await Promise.all([import("./vendor/maplibre-gl/maplibre-gl.mjs"),
      import("./vendor/maplibre-gl-leaflet/leaflet-maplibre-gl.mjs")]);
    gl.prewarm();
  }
  return { tj, webgl };
}

/**
 * Puts the street basemap under `map`'s layers (call once the view is set, so no tile of
 * another place is fetched first). Returns `{ drawn, attribution, origin, bounds }`; `drawn` is
 * false (plain background) without a basemap on the server or without WebGL.
 */
export function attachBasemap(map, el, prep) {
  if (!prep) return { drawn: false };
  const { tj, webgl } = prep;
  if (!webgl) { notice(map, "noWebgl"); el.dataset.basemap = "no-webgl"; return { drawn: false }; }
  // The drawing buffer is kept so the browser tests (and screenshots) can read the pixels;
  // no label fade, so the first paint is the finished one.
  const layer = L.maplibreGL({ style: style(tj), localIdeographFontFamily: CJK_FONTS, fadeDuration: 0,
    canvasContextAttributes: { preserveDrawingBuffer: true, antialias: true } });
  try {
    layer.addTo(map);
  } catch (e) {
    // A WebGL context that exists but cannot be used (blocklisted driver, lost context).
    console.warn("basemap", e);
    notice(map, "noWebgl"); el.dataset.basemap = "no-webgl";
    return { drawn: false };
  }
  // Only tiles built from OSM data carry the attribution (none for the synthetic demo city).
  if (tj.attribution) map.attributionControl.addAttribution(t("osm"));
  const gl = layer.getMaplibreMap();
  el.basemap = gl; // for the browser tests
  el.dataset.basemap = "loading";
  // Times since the page started loading: the first frame with streets in it (first paint),
  // and the map complete (every tile of the view loaded and drawn, labels placed).
  let tileIn = false;
  const onData = e => { if (e.sourceId === "basemap" && e.tile) tileIn = true; };
  const onRender = () => {
    if (!tileIn) return;
    el.dataset.basemapMs = String(Math.round(performance.now()));
    gl.off("sourcedata", onData); gl.off("render", onRender);
  };
  gl.on("sourcedata", onData); gl.on("render", onRender);
  gl.once("idle", () => {
    el.dataset.basemap = "drawn";
    el.dataset.basemapIdleMs = String(Math.round(performance.now()));
  });
  onLang(() => {
    for (const id of ["road-label", "place-label"]) gl.setLayoutProperty(id, "text-field", label(lang()));
  });
  return { drawn: true, attribution: tj.attribution, origin: tj.origin, bounds: tj.bounds };
}
