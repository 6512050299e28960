// The dispatcher console: create an incident by address/coordinates or a click on the map; the
// live timeline of offers, accepts, declines and time-outs from /ws/dispatch; responders with
// distance and ETA; assigned and nearby AEDs; stand-down (cancel) and close with outcome.
import { $, h, textEl, t, tt, api, header, requireLogin, makeMap, live, clock, onLang, STATUS_COLOURS } from "./common.js";

header("dispatch");
await requireLogin(["dispatcher", "admin"]);
const { map } = await makeMap($("#map"), { onClick: ll => place(ll.lat, ll.lng) });
const incidentLayer = L.layerGroup().addTo(map);
const detailLayer = L.layerGroup().addTo(map);
let draft = null;
let open = [];          // open incidents (summaries from the list endpoint)
let selected = null;    // id
let detail = null;      // the selected incident with audit_log, responders, aeds_nearby
const fresh = new Set(); // audit entries that arrived live, highlighted once

function place(lat, lon, focus = "#address") {
  $("#lat").value = lat.toFixed(5); $("#lon").value = lon.toFixed(5);
  if (draft) draft.remove();
  draft = L.marker([lat, lon], { icon: L.divIcon({ className: "", html: '<div class="patient-icon"></div>', iconSize: [22, 22] }) }).addTo(map);
  $("#new").open = true;
  $(focus).focus();
}

// Address search as you type (GET /api/v1/geocode, ranked near the map view): a combobox the
// keyboard drives — ↑/↓ choose, Enter places the patient and moves on to the notes, Esc closes.
const geo = { results: [], active: -1, seq: 0, timer: null };
const addressBox = $("#address"), geoList = $("#geo-results");

function geoClose() {
  geoList.hidden = true; geoList.replaceChildren();
  addressBox.setAttribute("aria-expanded", "false"); addressBox.removeAttribute("aria-activedescendant");
  geo.results = []; geo.active = -1;
}

function geoRender() {
  geoList.replaceChildren(...geo.results.map((r, i) => h("li", {
    id: `geo-${i}`, role: "option", class: "geo-option", "aria-selected": i === geo.active ? "true" : "false",
    onmousedown: e => { e.preventDefault(); geoChoose(i); },
  }, h("span", {}, r.label), " ", h("span", { class: "muted" }, tt("geoKinds", r.kind),
    r.distance_m != null ? ` · ${r.distance_m < 1000 ? Math.round(r.distance_m) + " m" : (r.distance_m / 1000).toFixed(1) + " km"}` : ""))));
  geoList.hidden = geo.results.length === 0;
  addressBox.setAttribute("aria-expanded", geo.results.length ? "true" : "false");
  if (geo.active >= 0) {
    addressBox.setAttribute("aria-activedescendant", `geo-${geo.active}`);
    $(`#geo-${geo.active}`).scrollIntoView({ block: "nearest" });
  } else addressBox.removeAttribute("aria-activedescendant");
}

function geoChoose(i) {
  const r = geo.results[i];
  if (!r) return;
  addressBox.value = r.label;
  geoClose();
  $("#geo-status").textContent = t("geoPlaced", r.label);
  place(r.lat, r.lon, "#notes");
  map.setView([r.lat, r.lon], Math.max(map.getZoom(), 15), { animate: false });
}

async function geoSearch() {
  const q = addressBox.value.trim();
  const seq = ++geo.seq;
  if (q.length < 2) { geoClose(); $("#geo-status").textContent = ""; return; }
  const c = map.getCenter();
  try {
    const r = await api(`/api/v1/geocode?q=${encodeURIComponent(q)}&near=${c.lat.toFixed(5)},${c.lng.toFixed(5)}&limit=8`);
    if (seq !== geo.seq) return; // an answer to an older keystroke
    geo.results = r.results; geo.active = r.results.length ? 0 : -1;
    geoRender();
    $("#geo-status").textContent = r.results.length ? t("geoCount", r.results.length) : r.indexed ? t("geoNone") : t("geoNoIndex");
  } catch (err) {
    if (seq === geo.seq) $("#geo-status").textContent = t("error", err.message);
  }
}

addressBox.addEventListener("input", () => { clearTimeout(geo.timer); geo.timer = setTimeout(geoSearch, 120); });
addressBox.addEventListener("blur", () => setTimeout(geoClose, 150));
addressBox.addEventListener("keydown", e => {
  if (geoList.hidden) return;
  if (e.key === "ArrowDown" || e.key === "ArrowUp") {
    e.preventDefault();
    const n = geo.results.length;
    geo.active = (geo.active + (e.key === "ArrowDown" ? 1 : n - 1)) % n;
    geoRender();
  } else if (e.key === "Enter") {
    // Enter takes the highlighted answer instead of submitting the form.
    e.preventDefault();
    geoChoose(Math.max(geo.active, 0));
  } else if (e.key === "Escape") {
    e.preventDefault();
    geoClose();
  }
});

$("#create").addEventListener("submit", async e => {
  e.preventDefault();
  $("#create-error").textContent = "";
  const body = { lat: Number($("#lat").value), lon: Number($("#lon").value) };
  if ($("#address").value.trim()) body.address = $("#address").value.trim();
  if ($("#notes").value.trim()) body.notes = $("#notes").value.trim();
  $("#create-btn").disabled = true;
  try {
    const inc = await api("/api/v1/incidents", { method: "POST", body });
    if (draft) { draft.remove(); draft = null; }
    $("#create").reset();
    $("#geo-status").textContent = "";
    await loadList();
    await select(inc.id);
  } catch (err) {
    $("#create-error").textContent = t("error", (err.body && err.body.field ? err.body.field + ": " : "") + err.message);
  } finally { $("#create-btn").disabled = false; }
});

async function loadList() {
  const r = await api("/api/v1/incidents");
  open = r.items;
  renderList();
}

function renderList() {
  incidentLayer.clearLayers();
  const ul = $("#incidents");
  ul.replaceChildren(...open.map(inc => h("li", {}, h("button", {
    type: "button", "aria-pressed": String(inc.id === selected), dataset: { id: inc.id }, onclick: () => select(inc.id),
  }, h("strong", {}, t("incident", inc.id)), " · ", tt("states", inc.state), " · ", inc.address || `${inc.lat.toFixed(4)}, ${inc.lon.toFixed(4)}`,
    h("div", { class: "muted" }, clock(inc.created_at))))));
  if (!open.length) ul.append(h("li", { class: "muted" }, t("noIncidents")));
  for (const inc of open) {
    L.circleMarker([inc.lat, inc.lon], { radius: inc.id === selected ? 11 : 8, color: "#fff", weight: 2, fillColor: "#c8102e", fillOpacity: 1 })
      .addTo(incidentLayer).bindTooltip(textEl(t("incident", inc.id))).on("click", () => select(inc.id));
  }
}

let loading = null;
async function select(id) {
  if (selected !== id) fresh.clear();
  selected = id;
  const p = api(`/api/v1/incidents/${id}`);
  loading = p;
  const d = await p;
  if (loading !== p) return; // a newer selection won
  detail = d;
  $("#new").open = false;
  renderList();
  renderDetail(true);
}

function evText(e) {
  const f = t("ev")[e.kind];
  return f ? f(e) : e.kind;
}

function renderDetail(fit) {
  // Re-rendering must not undo what the dispatcher ticked in the outcome form.
  const ticked = Object.fromEntries(["aed_applied", "shock_delivered", "handed_to_ems"]
    .map(id => [id, document.getElementById(id)?.checked]));
  detailLayer.clearLayers();
  const d = detail;
  if (!d) { $("#detail").replaceChildren(h("p", { class: "muted" }, t("selectIncident"))); return; }
  const openNow = !["closed", "cancelled"].includes(d.state);
  const offers = d.offers || [];
  const accepted = offers.filter(o => o.state === "accepted" || o.state === "arrived");
  const responders = d.responders || [];
  const nearby = d.aeds_nearby || [];
  const assigned = new Set(accepted.filter(o => o.fetch_aed).map(o => o.fetch_aed));

  // Map: the patient, AEDs within 1 km (assigned ones large, with a line to the patient).
  // A handset (AML) or CAD position's uncertainty, in metres on the ground.
  if (d.intake && d.intake.accuracy_m) L.circle([d.lat, d.lon], { radius: d.intake.accuracy_m, color: "#c8102e", weight: 1, dashArray: "4 4", fillOpacity: 0.08, className: "accuracy-circle" }).addTo(detailLayer);
  L.circleMarker([d.lat, d.lon], { radius: 12, color: "#fff", weight: 3, fillColor: "#c8102e", fillOpacity: 1 }).addTo(detailLayer);
  for (const a of nearby) {
    const isAssigned = assigned.has(a.id);
    if (isAssigned) L.polyline([[a.lat, a.lon], [d.lat, d.lon]], { color: "#00838f", weight: 4, dashArray: "6 6" }).addTo(detailLayer);
    L.circleMarker([a.lat, a.lon], { radius: isAssigned ? 9 : 5, color: "#fff", weight: 1.5, fillOpacity: 1,
      fillColor: isAssigned ? "#00838f" : (STATUS_COLOURS[a.status] || "#888") })
      .addTo(detailLayer).bindTooltip(textEl(`AED #${a.id} ${a.name || ""} · ${tt("status", a.status)}`));
  }
  // Responders who accepted, where they last reported, with a line to the AED they fetch or
  // straight to the patient.
  for (const r of responders) {
    if (r.lat == null) continue;
    const a = r.fetch_aed && nearby.find(x => x.id === r.fetch_aed);
    // The way along the walking network when the server has one; else straight lines.
    const path = r.route && r.route.coordinates.length > 1 ? r.route.coordinates.map(([x, y]) => [y, x])
      : a ? [[r.lat, r.lon], [a.lat, a.lon], [d.lat, d.lon]] : [[r.lat, r.lon], [d.lat, d.lon]];
    L.polyline(path, { color: "#1b7f3b", weight: 3, opacity: .8 }).addTo(detailLayer);
    L.marker([r.lat, r.lon], { icon: L.divIcon({ className: "", html: '<div class="responder-icon">✚</div>', iconSize: [26, 26] }), title: t("rescuer", r.rescuer_id) })
      .addTo(detailLayer).bindTooltip(textEl(`${t("rescuer", r.rescuer_id)} · ${r.distance_m == null ? "" : t("eta", t("meters", r.distance_m), t("min", r.eta_s))}`));
  }
  if (fit) map.setView([d.lat, d.lon], Math.max(map.getZoom(), 14), { animate: false });

  const respList = responders.length ? h("ul", { class: "plain", id: "responders" }, responders.map(r => h("li", { class: "card" },
    h("strong", {}, t("rescuer", r.rescuer_id)), " · ", r.fetch_aed ? t("fetching", r.fetch_aed) : t("cpr"), " · ", tt("offerStates", r.state),
    h("div", { class: "muted" }, r.distance_m == null ? t("etaUnknown") : t("eta", t("meters", r.distance_m), t("min", r.eta_s)),
      r.seen_at ? ` · ${clock(r.seen_at)}` : "")))) : h("p", { class: "muted", id: "responders" }, t("noResponders"));

  // How each offer reached the phone: per channel, queued / sent / on the phone / failed (why).
  const deliveries = d.deliveries || [];
  const reach = o => deliveries.filter(x => x.message === "offer" && x.rescuer_id === o.rescuer_id && x.offer_id === o.id)
    .map(x => h("span", { class: `pill delivery ${x.state}`, title: x.reason || undefined, dataset: { channel: x.channel, state: x.state } },
      `${tt("channels", x.channel)}: ${tt("deliveryStates", x.state)}`));
  const offerRows = h("ul", { class: "plain", id: "offers" }, offers.map(o => h("li", { dataset: { state: o.state, rescuer: o.rescuer_id } },
    h("span", { class: "pill" }, tt("offerStates", o.state)), " ", t("rescuer", o.rescuer_id), " · ",
    o.fetch_aed ? t("fetching", o.fetch_aed) : t("cpr"), " · ETA ", t("min", o.eta_s), " ", reach(o))));

  const log = (d.audit_log || []).slice().reverse();
  const timeline = h("ol", { class: "plain timeline", id: "timeline" }, log.map(e => h("li", {
    class: fresh.has(`${e.at}|${e.kind}|${e.offer ?? ""}`) ? "fresh" : undefined, dataset: { kind: e.kind },
  }, h("time", { datetime: e.at }, clock(e.at)), evText(e))));

  const outcome = h("form", { id: "close-form", class: "card" },
    h("div", { class: "chips" },
      h("label", { class: "check" }, h("input", { type: "checkbox", id: "aed_applied", checked: ticked.aed_applied }), t("aedApplied")),
      h("label", { class: "check" }, h("input", { type: "checkbox", id: "shock_delivered", checked: ticked.shock_delivered }), t("shockDelivered")),
      h("label", { class: "check" }, h("input", { type: "checkbox", id: "handed_to_ems", checked: ticked.handed_to_ems ?? true }), t("handedToEms"))),
    h("div", { class: "row" }, h("button", { type: "submit", class: "primary", id: "close-btn" }, t("closeIncident")),
      h("button", { type: "button", class: "danger", id: "cancel-btn", onclick: () => act("cancel") }, t("standDown"))),
    h("p", { class: "error", id: "act-error", role: "alert" }));
  outcome.addEventListener("submit", e => {
    e.preventDefault();
    act("close", { aed_applied: $("#aed_applied").checked, shock_delivered: $("#shock_delivered").checked, handed_to_ems: $("#handed_to_ems").checked });
  });

  $("#detail").replaceChildren(
    h("h2", { id: "detail-title" }, t("incident", d.id), " · ", h("span", { id: "detail-state" }, tt("states", d.state))),
    h("p", { class: "muted" }, d.address || "", " ", `${d.lat.toFixed(5)}, ${d.lon.toFixed(5)}`, d.notes ? ` · ${d.notes}` : ""),
    ...(d.intake ? [h("p", { class: "muted", id: "detail-intake" }, t("cadIntake", d.intake.call_id, d.intake.nature, tt("positionSources", d.intake.position_source), d.intake.accuracy_m))] : []),
    h("h3", {}, t("responders")), respList,
    h("h3", {}, t("aedsAssigned")), h("p", { id: "assigned" }, assigned.size ? [...assigned].map(id => {
      const a = nearby.find(x => x.id === id);
      return `AED #${id}${a && a.name ? " " + a.name : ""}`;
    }).join("; ") : t("none")),
    h("h3", {}, t("timeline")), timeline,
    openNow ? outcome : null,
    h("details", {}, h("summary", {}, t("offersAll", offers.length)), offerRows),
    h("h3", {}, t("aedsNearby")), h("p", { class: "muted" }, nearby.map(a => `#${a.id} ${a.name || ""} (${tt("status", a.status)})`).join("; ") || t("none")));
}

async function act(kind, body) {
  try {
    await api(`/api/v1/incidents/${selected}/${kind}`, { method: "POST", body: body || {} });
  } catch (err) {
    const el = $("#act-error"); if (el) el.textContent = t("error", err.message);
  }
  // The resulting frames on /ws/dispatch refresh the list and the timeline.
}

// Live: every incident change arrives as {"type": "incident", "incident_id", "state", "events"}.
let pending = null;
function refreshSoon(list, id) {
  // Several frames in a burst (a wave of offers) become one reload.
  clearTimeout(pending);
  pending = setTimeout(async () => {
    if (list) await loadList().catch(() => {});
    if (id && id === selected) await select(id).catch(() => {});
  }, 150);
}
live("/ws/dispatch", {
  onOpen: () => { loadList().then(() => selected && select(selected)).catch(() => {}); },
  onState: on => { const el = $("#live"); el.classList.toggle("on", on); el.dataset.i18n = on ? "live" : "offline"; el.textContent = t(on ? "live" : "offline"); },
  onMessage: m => {
    if (m.type === "resync") { refreshSoon(true, selected); return; }
    if (m.type === "responder") {
      // Pushed each time an accepted responder reports a position: move them on the map and
      // update their distance and ETA (via their AED while they fetch one).
      if (m.incident_id === selected && detail) {
        const r = (detail.responders || []).find(x => x.rescuer_id === m.rescuer_id);
        if (r) {
          Object.assign(r, { lat: m.lat, lon: m.lon, distance_m: m.distance_m, eta_s: m.eta_s, route: m.route, seen_at: new Date().toISOString() });
          renderDetail(false);
        } else refreshSoon(false, selected);
      }
      return;
    }
    if (m.type === "delivery") {
      if (m.incident_id === selected && detail) {
        const list = detail.deliveries || (detail.deliveries = []);
        const i = list.findIndex(x => x.rescuer_id === m.rescuer_id && x.message === m.message && x.offer_id === m.offer_id && x.channel === m.channel);
        // A confirmed delivery is final (as in the store).
        if (i < 0) list.push(m); else if (list[i].state !== "delivered") list[i] = m;
        renderDetail(false);
      }
      return;
    }
    if (m.type !== "incident") return;
    if (m.incident_id === selected && detail) {
      // Show the new entries at once, then reload responders and ETAs.
      for (const e of m.events || []) {
        fresh.add(`${e.at}|${e.kind}|${e.offer ?? ""}`);
        detail.audit_log = (detail.audit_log || []).concat([e]);
      }
      detail.state = m.state;
      renderDetail(false);
    }
    const known = open.find(i => i.id === m.incident_id);
    if (known) known.state = m.state;
    refreshSoon(!known || !["alerting", "en_route", "on_scene", "created"].includes(m.state), m.incident_id);
  },
});
function legend() {
  $("#legend").replaceChildren(
    h("span", {}, h("span", { class: "dot", style: "background:#c8102e" }), t("legendIncident")),
    h("span", {}, h("span", { class: "responder-icon", style: "width:18px;height:18px;font-size:11px" }, "✚"), t("legendResponder")),
    h("span", {}, h("span", { class: "dot", style: "background:#00838f" }), t("legendAssigned")),
    h("span", {}, h("span", { class: "dot", style: `background:${STATUS_COLOURS.unknown}` }), t("legendAed")));
}
legend();
onLang(() => { renderList(); renderDetail(false); legend(); });
document.body.dataset.ready = "1";
