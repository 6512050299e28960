// The maintenance board: devices needing attention (fault, offline, in use, cabinet open,
// degraded, pads or battery expiring) as a live list and map from /ws/maintenance, filters,
// a device's readiness history, its work orders and guardian checks.
import { $, h, textEl, t, tt, api, listAll, header, requireLogin, makeMap, live, clock, onLang, STATUS_COLOURS } from "./common.js";

const STATUSES = ["fault", "offline", "in_use", "cabinet_open", "degraded"];

header("maintenance");
await requireLogin(["maintenance", "admin"]);
const { map } = await makeMap($("#map"));
const markers = L.layerGroup().addTo(map);
let items = [];
let selected = null;
const fresh = new Set();
let lastChange = null;

// Filters: statuses (all by default), expiry horizon, district.
$("#status-filters").replaceChildren(...STATUSES.map(s => h("label", { class: "check" },
  h("input", { type: "checkbox", value: s, checked: true, onchange: load }),
  h("span", { class: "dot", style: `background:${STATUS_COLOURS[s]}` }), h("span", { dataset: { status: s } }, tt("status", s)))));
$("#expiring").addEventListener("change", load);
$("#district").addEventListener("change", load);
const districts = await listAll("/api/v1/districts", { auth: false }).catch(() => []);
function districtOptions() {
  const v = $("#district").value;
  $("#district").replaceChildren(h("option", { value: "" }, t("allDistricts")), ...districts.map(d => h("option", { value: d.id }, d.name)));
  $("#district").value = v;
}
districtOptions();

async function load() {
  const statuses = [...document.querySelectorAll("#status-filters input:checked")].map(i => i.value);
  const q = new URLSearchParams({ status: statuses.join(","), expiring_days: $("#expiring").value || "30" });
  if ($("#district").value) q.set("district_id", $("#district").value);
  const r = await api(`/api/v1/maintenance/devices?${q}`);
  items = r.items;
  render();
}

function render() {
  markers.clearLayers();
  const counts = {};
  for (const d of items) for (const a of d.attention) counts[a] = (counts[a] || 0) + 1;
  $("#counts").replaceChildren(...Object.entries(counts).map(([k, n]) =>
    h("span", { style: `background:${STATUS_COLOURS[k] || "#777"}`, dataset: { count: k } }, `${tt("status", k)} ${n}`)));
  $("#summary").textContent = (lastChange ? t("changed", lastChange.id, lastChange.status) + " · " : "") +
    (items.length ? t("devices", items.length) : t("noDevices"));
  $("#devices").replaceChildren(...items.map(d => h("li", { class: fresh.has(d.id) ? "fresh" : undefined, dataset: { aedId: d.id, status: d.status } },
    h("button", { type: "button", class: "card", "aria-pressed": String(d.id === selected), onclick: () => select(d.id) },
      h("span", { class: "dot", style: `background:${STATUS_COLOURS[d.attention[0]] || "#777"}` }),
      h("span", { style: "flex:1" }, h("strong", {}, d.name || `AED #${d.id}`), " ",
        // Why it is listed: its state and/or what is expiring.
        d.attention.map(a => h("span", { class: "pill", style: `color:${STATUS_COLOURS[a] || "#555"};margin-right:.25rem` }, tt("status", a))),
        h("div", { class: "muted" }, [d.reason, t("since", clock(d.since)),
          d.attention.includes("pads_expiring") ? t("padsExp", d.pads_expiry) : null,
          d.attention.includes("battery_expiring") ? t("batteryExp", d.battery_expiry) : null].filter(Boolean).join(" · ")))))));
  for (const d of items) {
    L.circleMarker([d.lat, d.lon], { radius: d.id === selected ? 10 : 7, color: "#fff", weight: 1.5, fillOpacity: .95,
      fillColor: STATUS_COLOURS[d.attention[0]] || "#777" })
      .addTo(markers).bindTooltip(textEl(`${d.name || "AED #" + d.id} · ${d.attention.map(a => tt("status", a)).join(", ")}`))
      .on("click", () => select(d.id));
  }
}

async function select(id) {
  selected = id;
  render();
  document.querySelector(`#devices li[data-aed-id="${id}"]`)?.scrollIntoView({ block: "nearest" });
  const [aed, hist, orders] = await Promise.all([
    api(`/api/v1/aeds/${id}`), api(`/api/v1/aeds/${id}/readiness/history?limit=50`),
    api(`/api/v1/work-orders?aed_id=${id}&include_closed=true`)]);
  const r = aed.readiness || {};
  const orderForm = h("form", { id: "order-form", class: "row" },
    h("label", {}, h("span", {}, t("orderTitle")), h("input", { id: "order-title", required: true, maxlength: 200 })),
    h("button", { type: "submit" }, t("newOrder")));
  orderForm.addEventListener("submit", async e => {
    e.preventDefault();
    await run(() => api("/api/v1/work-orders", { method: "POST", body: { aed_id: id, title: $("#order-title").value } }));
  });
  $("#detail").replaceChildren(
    h("h2", { id: "detail-title" }, aed.name || `AED #${id}`),
    h("p", {}, h("span", { class: "pill", style: `color:${STATUS_COLOURS[r.status] || "#555"}` }, tt("status", r.status)), " ", r.reason || "", " · ", t("since", clock(r.since))),
    h("p", { class: "muted" }, [aed.address, aed.location_description, aed.pads_expiry && t("padsExp", aed.pads_expiry), aed.battery_expiry && t("batteryExp", aed.battery_expiry)].filter(Boolean).join(" · ")),
    h("h3", {}, t("guardianCheck")),
    h("div", { class: "row" },
      h("input", { id: "check-note", "aria-label": t("note"), placeholder: t("note"), maxlength: 500, style: "flex:1 1 100%" }),
      h("button", { type: "button", id: "check-ok", onclick: () => check(true) }, t("checkOk")),
      h("button", { type: "button", class: "danger", id: "check-fail", onclick: () => check(false) }, t("checkFail"))),
    h("p", { class: "error", id: "detail-error", role: "alert" }),
    h("h3", {}, t("workOrders")),
    orders.items.length ? h("ul", { class: "plain", id: "orders" }, orders.items.map(o => orderCard(o))) : h("p", { class: "muted" }, t("noOrders")),
    orderForm,
    h("h3", {}, t("history")),
    h("ol", { class: "plain timeline", id: "history" }, hist.items.map(c => h("li", {},
      h("time", {}, clock(c.since)), h("strong", {}, tt("status", c.status)), " ", c.reason || "", " ", t("source", c.source || "")))));
}

function orderCard(o) {
  const input = h("input", { "aria-label": t("orderInput"), placeholder: t("orderInput"), maxlength: 1000, style: "flex:1 1 12rem" });
  const btn = (label, action, key) => h("button", { type: "button", onclick: () => {
    if (!input.value.trim()) { input.focus(); return; }
    run(() => api(`/api/v1/work-orders/${o.id}/${action}`, { method: "POST", body: { [key]: input.value.trim() } }));
  } }, label);
  return h("li", { class: "card" },
    h("strong", {}, `#${o.id} ${o.title}`), " ", h("span", { class: "pill" }, tt("orderStatus", o.status)),
    h("div", { class: "muted" }, [o.assignee && `${t("assignee")}: ${o.assignee}`, `${o.opened_by} ${clock(o.opened_at)}`, o.resolution].filter(Boolean).join(" · ")),
    (o.notes || []).map(n => h("div", { class: "muted" }, `${clock(n.at)} ${n.author}: ${n.note}`)),
    o.status === "closed" ? null : h("div", { class: "row" }, input,
      btn(t("assign"), "assign", "assignee"), btn(t("addNote"), "notes", "note"), btn(t("closeOrder"), "close", "resolution")));
}

async function run(f) {
  try { await f(); await select(selected); }
  catch (err) { const el = $("#detail-error"); if (el) el.textContent = t("error", err.message); }
}

async function check(ok) {
  const note = $("#check-note").value.trim();
  await run(() => api(`/api/v1/aeds/${selected}/checks`, { method: "POST", body: note ? { ok, note } : { ok } }));
}

// Live: {"type": "readiness", "aed_id", "status"} per change; a burst becomes one reload.
let pending = null;
live("/ws/maintenance", {
  onOpen: () => load().catch(() => {}),
  onState: on => { const el = $("#live"); el.classList.toggle("on", on); el.dataset.i18n = on ? "live" : "offline"; el.textContent = t(on ? "live" : "offline"); },
  onMessage: m => {
    if (m.type === "readiness") {
      fresh.add(m.aed_id); lastChange = { id: m.aed_id, status: m.status };
      setTimeout(() => fresh.delete(m.aed_id), 3000);
    }
    clearTimeout(pending);
    pending = setTimeout(() => {
      load().catch(() => {});
      if (selected && (m.type === "resync" || m.aed_id === selected)) select(selected).catch(() => {});
    }, 150);
  },
});
onLang(() => {
  for (const s of document.querySelectorAll("#status-filters [data-status]")) s.textContent = tt("status", s.dataset.status);
  districtOptions(); render(); if (selected) select(selected);
});
document.body.dataset.ready = "1";
