// The public AED map (no sign-in, mobile first): the nearest open, ready AED from the browser's
// location or a tapped point, with a line to it, the walk, the round trip, an open/closing badge,
// the floor and where it is inside; alternatives; aid stations by kind.
import { $, h, textEl, t, tt, api, header, makeMap, markOsm, onLang, STATUS_COLOURS } from "./common.js";

const KIND_STYLE = {
  scenic_aid_station: ["#2e7d32", "景"], boai_station: ["#c8102e", "博"], school_station: ["#1565c0", "校"],
  community_station: ["#6a1b9a", "社"], bus_kit: ["#ef6c00", "车"], first_aid_post: ["#455a64", "+"],
};

header("public");
const { map, districtCount } = await makeMap($("#map"), { onClick: ll => pick(ll.lat, ll.lng) });
const resultLayer = L.layerGroup().addTo(map);
let last = null;
let badField = null; // a coordinate the page itself refused, re-said after a language switch
let stations = [];
// The coordinate form starts at the imported data's centre (the districts the map was fitted
// to, else the AEDs), never at a fixed city: a Liechtenstein import must not ask about Quzhou.
let formTouched = false;
for (const id of ["#lat", "#lon"]) $(id).addEventListener("input", () => { formTouched = true; });
function centreForm(c) {
  if (formTouched || last) return;
  $("#lat").value = c.lat.toFixed(4); $("#lon").value = c.lng.toFixed(4);
}
if (districtCount) centreForm(map.getCenter());

// Context: every AED as a small dot coloured by readiness, stations by kind.
api("/api/v1/aeds?format=geojson&limit=1000", { auth: false }).then(fc => {
  const layer = L.layerGroup();
  for (const f of fc.features) {
    const [lon, lat] = f.geometry.coordinates;
    const st = (f.properties.readiness || {}).status || "unknown";
    L.circleMarker([lat, lon], { radius: 3, weight: 0, fillOpacity: .55, fillColor: STATUS_COLOURS[st] || "#888", interactive: false }).addTo(layer);
  }
  layer.addTo(map); layer.bringToBack && layer.eachLayer(l => l.bringToBack());
  if (!districtCount && fc.features.length) {
    const b = L.latLngBounds(fc.features.map(f => [f.geometry.coordinates[1], f.geometry.coordinates[0]]));
    map.fitBounds(b, { padding: [8, 8], animate: false });
    centreForm(b.getCenter());
  }
  markOsm(map, fc.features);
  stats(fc.features.length);
}).catch(() => {});

api("/api/v1/stations?format=geojson&limit=1000", { auth: false }).then(fc => {
  stations = fc.features;
  const layer = L.layerGroup().addTo(map);
  for (const f of fc.features) {
    const [lon, lat] = f.geometry.coordinates;
    const [colour, glyph] = KIND_STYLE[f.properties.kind] || KIND_STYLE.first_aid_post;
    const m = L.marker([lat, lon], {
      icon: L.divIcon({ className: "", html: `<div class="station-icon" style="background:${colour}">${glyph}</div>`, iconSize: [24, 24] }),
      keyboard: false, title: f.properties.name,
    }).addTo(layer);
    m.bindPopup(() => h("div", {}, h("strong", {}, f.properties.name), h("br"), tt("kinds", f.properties.kind),
      f.properties.staffed_hours ? h("div", { class: "muted" }, f.properties.staffed_hours) : null));
  }
  markOsm(map, fc.features);
  legend();
}).catch(() => {});

function legend() {
  const kinds = [...new Set(stations.map(f => f.properties.kind))];
  $("#legend").replaceChildren(
    h("span", {}, h("span", { class: "dot", style: `background:${STATUS_COLOURS.ready}` }), t("aedsLegend")),
    ...kinds.map(k => h("span", {}, h("span", { class: "station-icon", style: `background:${KIND_STYLE[k][0]};width:18px;height:18px;font-size:10px` }, KIND_STYLE[k][1]), tt("kinds", k))));
}

let count = null;
function stats(n) { count = n; $("#stats").textContent = t("stats", n, districtCount); }

function pick(lat, lon) {
  $("#lat").value = lat.toFixed(5); $("#lon").value = lon.toFixed(5);
  find($("#lat").value, $("#lon").value);
}

async function find(lat, lon) {
  // Checked here first so the caller reads the problem in their language.
  const bad = !(Math.abs(Number(lat)) <= 90) || lat === "" ? "lat" : !(Math.abs(Number(lon)) <= 180) || lon === "" ? "lon" : null;
  badField = bad;
  if (bad) {
    last = null; show(false);
    $("#status").textContent = t(bad === "lat" ? "badLat" : "badLon");
    $(bad === "lat" ? "#lat" : "#lon").focus();
    return;
  }
  $("#status").textContent = t("searching");
  const r = await fetch(`/api/v1/aeds/nearest?lat=${encodeURIComponent(lat)}&lon=${encodeURIComponent(lon)}&k=5&include=route`);
  last = { body: await r.json(), lat: Number(lat), lon: Number(lon) };
  show(true);
}

function badge(r) {
  if (r.hours === "open") {
    const mins = r.next_change ? Math.round((Date.parse(r.next_change) - Date.now()) / 60000) : null;
    return mins !== null && mins < 90
      ? h("span", { class: "badge closing" }, t("openClosesIn", mins))
      : h("span", { class: "badge open" }, t("open"));
  }
  return h("span", { class: "badge unknown" }, t("unknownHours"));
}

function where(r) {
  const lvl = r.level != null && r.level !== "" && !isNaN(Number(r.level)) ? t("floor", Number(r.level)) : r.level;
  return [r.indoor ? t("indoor") : null, lvl, r.location_description, r.address,
    r.cabinet_locked ? t("locked") : null, r.closes_before_return ? t("closesBefore") : null,
    r.status === "unknown" ? t("unverified") : null].filter(Boolean).join(" · ");
}

function show(fit) {
  resultLayer.clearLayers();
  $("#best").replaceChildren(); $("#results").replaceChildren(); $("#alt-title").hidden = true;
  if (!last) return;
  const { body, lat, lon } = last;
  if (body.error) { $("#status").textContent = t("badInput", body.field || "", body.message); return; }
  const rs = body.results || [];
  if (fit && matchMedia("(min-width: 900px)").matches) $(".panel").scrollTop = 0;
  $("#status").textContent = rs.length ? t("result", rs.length) : t("noneFound");
  if (rs.length && body.walk !== "network") $("#status").textContent += " · " + t(body.walk_note === "off_network" ? "walkOffNetwork" : "walkStraight");
  else if (rs.length && rs[0].walk !== "network") $("#status").textContent += " · " + t("walkStraightOne");
  const patient = L.marker([lat, lon], { icon: L.divIcon({ className: "", html: '<div class="patient-icon"></div>', iconSize: [22, 22] }), title: t("you") }).addTo(resultLayer);
  patient.bindTooltip(textEl(t("you")));
  rs.forEach((r, i) => {
    // The walk along the ways when the server measured it on the walking network; a dashed
    // straight line when it could not (no network, or off it), as the answer says.
    if (i === 0) {
      const onNet = r.walk === "network" && r.route && r.route.coordinates.length > 1;
      const path = onNet ? r.route.coordinates.map(([x, y]) => [y, x]) : [[lat, lon], [r.lat, r.lon]];
      L.polyline(path, onNet ? { color: "#c8102e", weight: 5, opacity: .85 } : { color: "#c8102e", weight: 5, dashArray: "8 8" }).addTo(resultLayer);
    }
    L.marker([r.lat, r.lon], {
      icon: L.divIcon({ className: "", html: `<div class="num-icon${i === 0 ? " best" : ""}">${i + 1}</div>`, iconSize: i === 0 ? [34, 34] : [28, 28] }),
      title: r.name || `AED ${r.id}`, zIndexOffset: 1000 - i,
    }).addTo(resultLayer).bindPopup(() => h("div", {}, h("strong", {}, r.name || `AED ${r.id}`), h("br"), where(r)));
  });
  if (fit && rs.length) map.fitBounds(L.latLngBounds([[lat, lon], ...rs.map(r => [r.lat, r.lon])]), { padding: [40, 40], maxZoom: 17, animate: false });
  rs.forEach((r, i) => {
    const dir = t("dirs")[Math.round(r.bearing_deg / 45) % 8];
    const card = h("div", { class: i === 0 ? "card best" : "card", dataset: { aedId: r.id } },
      h("div", { style: "display:flex;gap:.5rem;align-items:center" },
        h("span", { class: "arrow", style: `transform:rotate(${Math.round(r.bearing_deg)}deg)`, title: `${Math.round(r.bearing_deg)}°`, "aria-hidden": "true" }, "↑"),
        h("div", {}, i === 0 ? h("div", { class: "muted" }, t("best")) : null,
          h("div", { class: i === 0 ? "big name" : "name" }, `${i + 1}. `, r.name || r.location_description || `AED ${r.id}`))),
      h("div", {}, badge(r), " ", h("strong", {}, t("walk", r.one_way_s)), " · ", t("roundTrip", r.round_trip_s), " · ",
        r.walk === "network" ? t("walkMeters", r.walk_m, r.distance_m) : t("meters", r.distance_m), " · ", t("direction", dir)),
      h("div", { class: "muted" }, where(r)));
    if (i === 0) $("#best").append(card);
    else { $("#alt-title").hidden = false; $("#results").append(h("li", {}, card)); }
  });
}

$("#form").addEventListener("submit", e => { e.preventDefault(); find($("#lat").value.trim(), $("#lon").value.trim()); });
$("#locate").addEventListener("click", () => {
  if (!navigator.geolocation) { $("#status").textContent = t("noGeo"); return; }
  navigator.geolocation.getCurrentPosition(p => pick(p.coords.latitude, p.coords.longitude),
    () => { $("#status").textContent = t("noGeo"); }, { enableHighAccuracy: true, timeout: 10000 });
});
onLang(() => {
  show(false); legend(); if (count !== null) stats(count);
  if (badField) $("#status").textContent = t(badField === "lat" ? "badLat" : "badLon");
  else if (!last) $("#status").textContent = "";
});
document.body.dataset.ready = "1";
