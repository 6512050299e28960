// The planner: H3 coverage hexagons coloured by time to an AED, an hour-of-week slider, the
// weekly profile against "every AED 24/7", districts against their targets, and a placement
// run with its proposed sites. Live cell changes arrive over /ws/coverage.
import { $, h, textEl, t, tt, api, header, requireLogin, makeMap, live, onLang, fmtPct } from "./common.js";

header("planner");
await requireLogin(["planner", "admin"]);
const { map } = await makeMap($("#map"));
// Hexagons in their own pane above the district background (which would otherwise wash them out).
map.createPane("hexes").style.zIndex = 420;
const hexRenderer = L.canvas({ padding: 0.3, pane: "hexes" });
let hexLayer = null;
const byCell = new Map();   // cell → Leaflet polygon layer
let sitesLayer = L.layerGroup().addTo(map);
// The AEDs themselves, small and dark, above the hexagons.
map.createPane("aeds").style.zIndex = 430;
api("/api/v1/aeds?format=geojson&limit=1000", { auth: false }).then(fc => {
  const r = L.svg({ pane: "aeds" });
  for (const f of fc.features) {
    const [lon, lat] = f.geometry.coordinates;
    L.circleMarker([lat, lon], { renderer: r, pane: "aeds", radius: 3, weight: 1, color: "#fff", fillColor: "#1b1b1b", fillOpacity: .9, interactive: false }).addTo(map);
  }
}).catch(() => {});
let summary = null, weekly = null, districts = [], lastPlan = null;
let atNow = true;           // the slider follows "now": live updates apply

// Time to AED → colour; the budget (4 min by default) is the edge between yellow and orange.
const SCALE = [[60, "#006d2c"], [120, "#31a354"], [180, "#a1d99b"], [240, "#fed976"], [360, "#fd8d3c"], [Infinity, "#e31a1c"]];
function colour(time_s) {
  if (time_s == null) return "#9e9e9e";
  const budget = Number($("#budget").value) || 240;
  const x = time_s * 240 / budget; // scale bands to the chosen budget
  return SCALE.find(([lim]) => x <= lim)[1];
}
// Reached cells stand out; out-of-reach cells are a light wash so the district shows through.
function hexStyle(p) {
  return p.time_s == null ? { stroke: false, fillOpacity: 0.22, fillColor: colour(null) }
    : { stroke: false, fillOpacity: 0.8, fillColor: colour(p.time_s) };
}
function legend() {
  const b = Number($("#budget").value) || 240, f = s => Math.round(s * b / 240 / 60 * 10) / 10;
  $("#legend").replaceChildren(h("strong", {}, t("legend")),
    ...SCALE.map(([lim, c], i) => h("span", {}, h("span", { class: "sq", style: `background:${c}` }),
      lim === Infinity ? `> ${f(SCALE[i - 1][0])} min` : `≤ ${f(lim)} min`)),
    h("span", {}, h("span", { class: "sq", style: "background:#9e9e9e" }), t("uncovered")),
    h("span", {}, h("span", { class: "dot", style: "background:#1b1b1b" }), t("aedsLegend")),
    h("span", {}, h("span", { class: "site-icon", style: "font-size:16px" }, "★"), t("siteLegend")));
}

// Controls.
const summaryItems = await api("/api/v1/districts/summary").then(r => r.items).catch(() => []);
districts = summaryItems;
function fillSelects() {
  const dv = $("#district").value, mv = $("#mode").value;
  $("#district").replaceChildren(...districts.map(d => h("option", { value: d.id }, d.name)));
  $("#mode").replaceChildren(...["round_trip", "one_way", "radius"].map(m => h("option", { value: m }, tt("modes", m))));
  if (dv) $("#district").value = dv;
  $("#mode").value = mv || "round_trip";
}
fillSelects();

/** The instant of hour-of-week `hour` (Mon 00:00 = 0) in this week, in zone `tz`. */
function instantOf(hour, tz) {
  const now = new Date();
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-US", { timeZone: tz, weekday: "short", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", hourCycle: "h23" })
    .formatToParts(now).map(p => [p.type, p.value]));
  const dow = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].indexOf(parts.weekday);
  const nowHour = dow * 24 + Number(parts.hour);
  // Same zone offset arithmetic as wall-clock hours: fine away from DST edges (China has none).
  return new Date(Math.floor(now.getTime() / 3600000) * 3600000 + (hour - nowHour) * 3600000);
}
function hourNow(tz) {
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-US", { timeZone: tz, weekday: "short", hour: "2-digit", hourCycle: "h23" })
    .formatToParts(new Date()).map(p => [p.type, p.value]));
  return ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].indexOf(parts.weekday) * 24 + Number(parts.hour);
}
const zone = () => (weekly && weekly.timezone) || "Asia/Shanghai";

async function loadCoverage(fit) {
  const q = new URLSearchParams({ district_id: $("#district").value, res: "9", mode: $("#mode").value, budget_s: $("#budget").value || "240" });
  if (!atNow) q.set("at", instantOf(Number($("#hour").value), zone()).toISOString());
  const fc = await api(`/api/v1/coverage?${q}`);
  summary = fc.summary;
  if (hexLayer) hexLayer.remove();
  byCell.clear();
  hexLayer = L.geoJSON(fc, {
    renderer: hexRenderer, pane: "hexes",
    style: f => hexStyle(f.properties),
    onEachFeature: (f, layer) => {
      byCell.set(f.properties.cell, layer);
      layer.bindTooltip(() => textEl(`${f.properties.time_s == null ? t("uncovered") : t("min", f.properties.time_s)} · ${f.properties.population ?? 0}` +
        (f.properties.aed_id ? ` · AED #${f.properties.aed_id}` : "")), { sticky: true });
    },
  }).addTo(map);
  document.body.dataset.hexes = String(fc.features.length);
  renderGaps();
  if (fit && fc.features.length) map.fitBounds(hexLayer.getBounds(), { padding: [10, 10], animate: false });
  renderShare();
}

// The largest gaps: the most populous cells nobody reaches within the budget.
let gapLayer = L.layerGroup().addTo(map);
function renderGaps() {
  gapLayer.clearLayers();
  const gaps = [...byCell.values()].filter(l => !l.feature.properties.covered && (l.feature.properties.population || 0) > 0)
    .sort((a, b) => b.feature.properties.population - a.feature.properties.population)
    // At least 2 km apart, so five gaps are five places.
    .reduce((out, l) => {
      const c = l.getBounds().getCenter();
      if (out.length < 5 && out.every(o => o.getBounds().getCenter().distanceTo(c) > 2000)) out.push(l);
      return out;
    }, []);
  $("#gaps").replaceChildren(...gaps.map((l, i) => {
    const c = l.getBounds().getCenter(), q = l.feature.properties;
    L.polygon(l.getLatLngs(), { color: "#c8102e", weight: 3, fill: false, interactive: false }).addTo(gapLayer);
    return h("li", {}, h("button", { type: "button", class: "ghost", onclick: () => map.setView(c, 15, { animate: false }) },
      t("gap", Math.round(q.population), q.time_s == null ? t("uncovered") : t("min", q.time_s))));
  }));
}

function renderShare() {
  $("#share").textContent = summary ? t("covered", Math.round(summary.covered_population ?? 0), summary.share ?? 0) : "";
}

async function loadWeekly() {
  const q = new URLSearchParams({ district_id: $("#district").value, mode: $("#mode").value, budget_s: $("#budget").value || "240" });
  weekly = await api(`/api/v1/coverage/weekly?${q}`);
  renderWeekly();
}
function renderWeekly() {
  const svg = $("#weekly");
  svg.replaceChildren();
  if (!weekly) return;
  const ns = "http://www.w3.org/2000/svg";
  const mk = (tag, attrs) => { const e = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); return e; };
  for (let d = 1; d < 7; d++) svg.append(mk("line", { x1: d * 24, x2: d * 24, y1: 0, y2: 100, stroke: "#ccd", "stroke-width": 0.4 }));
  // Scaled to the week's best share (coverage is often a few per cent), labelled.
  const top = Math.max(0.001, ...weekly.hours.map(p => Math.max(p.share, p.share_all_24_7))) * 1.1;
  let always = "";
  for (const p of weekly.hours) {
    svg.append(mk("rect", { x: p.hour, y: 100 - p.share / top * 100, width: 1, height: p.share / top * 100, fill: "#31a354" }));
    always += `${always ? "L" : "M"}${p.hour + 0.5},${100 - p.share_all_24_7 / top * 100}`;
  }
  $("#weekly-max").textContent = t("weeklyMax", fmtPct(top / 1.1));
  svg.append(mk("path", { d: always, fill: "none", stroke: "#005fcc", "stroke-width": 1, "vector-effect": "non-scaling-stroke" }));
  const hr = Number($("#hour").value);
  svg.append(mk("rect", { x: hr, y: 0, width: 1, height: 100, fill: "rgba(200,16,46,.35)" }));
  svg.setAttribute("aria-label", t("weekly"));
  $("#weekly-legend").replaceChildren(
    h("span", {}, h("span", { class: "sq", style: "background:#31a354" }), t("onlyOpen")),
    h("span", {}, h("span", { class: "sq", style: "background:#005fcc" }), t("always")),
    ...t("days").map(d => h("span", { class: "muted" }, d)));
}
$("#weekly").addEventListener("click", e => {
  const r = e.currentTarget.getBoundingClientRect();
  setHour(Math.max(0, Math.min(167, Math.floor((e.clientX - r.left) / r.width * 168))));
});

function setHour(hr) {
  $("#hour").value = String(hr);
  atNow = false;
  $("#hour-label").textContent = t("hourLabel", hr);
  renderWeekly();
  loadCoverage(false).catch(showErr);
}
let slide = null;
$("#hour").addEventListener("input", () => {
  $("#hour-label").textContent = t("hourLabel", Number($("#hour").value));
  clearTimeout(slide); slide = setTimeout(() => setHour(Number($("#hour").value)), 200);
});
$("#now").addEventListener("click", () => {
  atNow = true; $("#hour").value = String(hourNow(zone()));
  $("#hour-label").textContent = `${t("hourLabel", Number($("#hour").value))} (${t("now")})`;
  renderWeekly(); loadCoverage(false).catch(showErr);
});
for (const id of ["#mode", "#budget"]) $(id).addEventListener("change", () => { legend(); clearPlan(); Promise.all([loadCoverage(false), loadWeekly()]).catch(showErr); });
$("#district").addEventListener("change", () => { clearPlan(); Promise.all([loadCoverage(true), loadWeekly()]).catch(showErr); });

function showErr(e) { $("#plan-error").textContent = t("error", e.message); }

// Districts against targets.
function renderTable() {
  const cols = [["colDistrict", d => d.name], ["colPop", d => d.population?.toLocaleString()], ["colAeds", d => `${d.aeds_total} (${d.aeds_ready})`],
    ["colPer10k", d => d.aeds_per_10k?.toFixed(2)], ["colTarget", d => d.target_per_10k ?? t("none")],
    ["colShortfall", d => d.shortfall ?? 0, d => d.shortfall > 0], ["colRescuers", d => `${d.rescuers_certified} / ${d.rescuers_target ?? t("none")}`, d => d.rescuers_target && d.rescuers_certified < d.rescuers_target],
    ["colNow", d => fmtPct(d.coverage_share_now)], ["colNight", d => fmtPct(d.coverage_share_night)]];
  $("#districts").replaceChildren(h("thead", {}, h("tr", {}, cols.map(([k]) => h("th", { scope: "col" }, t(k))))),
    h("tbody", {}, districts.map(d => h("tr", { dataset: { id: d.id } }, cols.map(([, f, bad]) => h("td", { class: bad && bad(d) ? "bad" : undefined }, f(d)))))));
}

// Placement.
function clearPlan() { sitesLayer.clearLayers(); $("#plan-result").replaceChildren(); lastPlan = null; }
$("#plan").addEventListener("submit", async e => {
  e.preventDefault();
  $("#plan-error").textContent = ""; $("#run").disabled = true;
  $("#plan-result").replaceChildren(h("p", { class: "muted" }, t("planning")));
  try {
    const body = { add: Number($("#add").value), district_id: Number($("#district").value), suggest_24_7: $("#suggest").checked };
    if (!atNow) body.at = instantOf(Number($("#hour").value), zone()).toISOString();
    lastPlan = await api("/api/v1/plan", { method: "POST", body });
    renderPlan();
    $("#plan-result").scrollIntoView({ block: "nearest" });
    // Show where the proposed sites are, with the coverage around them.
    if (lastPlan.sites.length) map.fitBounds(L.latLngBounds(lastPlan.sites.map(s => [s.lat, s.lon])), { padding: [80, 80], maxZoom: 14, animate: false });
  } catch (err) {
    $("#plan-result").replaceChildren();
    showErr(err);
  } finally { $("#run").disabled = false; }
});
// The inverse question: the fewest AEDs (and the rescuers on duty) for a share of the people.
$("#target").addEventListener("submit", async e => {
  e.preventDefault();
  $("#plan-error").textContent = ""; $("#run-target").disabled = true;
  $("#plan-result").replaceChildren(h("p", { class: "muted" }, t("planning")));
  try {
    const body = { target_share: Number($("#target-share").value) / 100, district_id: Number($("#district").value) };
    if (!atNow) body.at = instantOf(Number($("#hour").value), zone()).toISOString();
    lastPlan = await api("/api/v1/plan", { method: "POST", body });
    renderPlan();
    if (lastPlan.sites.length) map.fitBounds(L.latLngBounds(lastPlan.sites.map(s => [s.lat, s.lon])), { padding: [80, 80], maxZoom: 14, animate: false });
  } catch (err) {
    $("#plan-result").replaceChildren();
    showErr(err);
  } finally { $("#run-target").disabled = false; }
});
function renderPlan() {
  sitesLayer.clearLayers();
  if (!lastPlan) return;
  const p = lastPlan;
  p.sites.forEach((s, i) => {
    L.marker([s.lat, s.lon], { icon: L.divIcon({ className: "", html: `<div class="site-icon">★</div>`, iconSize: [26, 26], iconAnchor: [13, 15] }), title: t("site", i + 1, s.gain_population) })
      .addTo(sitesLayer).bindTooltip(textEl(`${t("site", i + 1, s.gain_population)}${s.name ? " · " + s.name : ""}`));
  });
  $("#plan-result").replaceChildren(...[
    h("p", { class: "big", id: "plan-share" }, t("planResult", p.before.share, p.after.share)),
    p.target_share != null ? h("p", { id: "target-result" }, t("targetResult", p.aeds_to_add, p.after.share, p.reached)) : null,
    p.rescuers ? h("p", { id: "rescuers-needed" }, t("rescuersNeeded", p.rescuers.on_duty, p.rescuers.registered, p.rescuers.registered_per_1000)) : null,
    h("ol", { id: "sites" }, p.sites.map((s, i) => h("li", {}, t("site", i + 1, Math.round(s.gain_population)), s.name ? ` · ${s.name}` : "", h("span", { class: "muted" }, ` (${s.lat.toFixed(4)}, ${s.lon.toFixed(4)})`)))),
    (p.conversions_24_7 || []).length ? [h("h3", {}, t("conversions")), h("ul", { id: "conversions" }, p.conversions_24_7.slice(0, 10).map(c =>
      h("li", {}, t("conversion", c.aed_id, c.name || "", Math.round(c.gain), Math.round(c.night_gain)))))] : null,
    (p.relocations || []).length ? [h("h3", {}, t("relocations")), h("ul", {}, p.relocations.map(r =>
      h("li", {}, t("relocation", r.aed_id, `${r.to.lat.toFixed(4)}, ${r.to.lon.toFixed(4)}`, Math.round(r.gain_population)))))] : null,
  ].flat().filter(Boolean));
}

// Live: changed cells of the current ("now") map.
live("/ws/coverage", {
  onState: on => { const el = $("#live"); el.classList.toggle("on", on); el.dataset.i18n = on ? "live" : "offline"; el.textContent = t(on ? "live" : "offline"); },
  onMessage: m => {
    // A rebuilt map or a socket that fell behind: fetch the picture again.
    if ((m.type === "reload" || m.type === "resync") && atNow) { loadCoverage(false).catch(showErr); return; }
    if (m.type !== "cells" || !atNow) return;
    for (const c of m.cells || []) {
      const layer = byCell.get(c.cell);
      if (layer) { layer.feature.properties.time_s = c.time_s; layer.feature.properties.covered = c.covered; layer.setStyle(hexStyle(layer.feature.properties)); }
    }
    // The pushed summary covers the whole map; the district's share is recounted from its cells.
    let pop = 0, cov = 0;
    for (const l of byCell.values()) { const q = l.feature.properties; pop += q.population || 0; if (q.covered) cov += q.population || 0; }
    if (summary && pop > 0) { summary = { ...summary, covered_population: cov, share: cov / pop }; renderShare(); }
  },
});

if (districts.length) {
  await Promise.all([loadWeekly().catch(showErr)]);
  $("#hour").value = String(hourNow(zone()));
  $("#hour-label").textContent = `${t("hourLabel", Number($("#hour").value))} (${t("now")})`;
  renderWeekly();
  await loadCoverage(true).catch(showErr);
}
legend(); renderTable();
onLang(() => {
  fillSelects(); legend(); renderTable(); renderShare(); renderWeekly(); renderPlan(); renderGaps();
  $("#hour-label").textContent = t("hourLabel", Number($("#hour").value)) + (atNow ? ` (${t("now")})` : "");
});
document.body.dataset.ready = "1";
