// Shared by the four consoles: the header (nav, language switch, sign-in state), sign-in with a
// role token, JSON API calls, live WebSockets and the tile-less Leaflet map.
import { t, tt, lang, setLang, applyI18n, onLang } from "./i18n.js";
import { prepareBasemap, attachBasemap } from "./basemap.js";

export { t, tt, lang, onLang };

const TOKEN_KEY = "aednet.token";
export const $ = (sel, root = document) => root.querySelector(sel);

/**
 * Plain text as a DOM node, for Leaflet tooltips and popups: given a string, Leaflet inserts it
 * as HTML, so names from OSM or any user (AEDs, districts, notes) must go in as nodes.
 */
export function textEl(s) { return h("span", {}, s); }

/** Creates an element: h("li", {class: "x", onclick: f}, "text", child, …). */
export function h(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export function token() { return sessionStorage.getItem(TOKEN_KEY); }

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.status = status; this.body = body || {};
  }
}

/** A JSON API call with the session's token; throws ApiError with the server's message. */
export async function api(path, { method = "GET", body, auth = true } = {}) {
  const headers = { Accept: "application/json" };
  if (auth && token()) headers.Authorization = `Bearer ${token()}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (!r.ok) throw new ApiError(r.status, json);
  return json;
}

/** Every page of a keyset-paginated list. */
export async function listAll(path, opts) {
  const sep = path.includes("?") ? "&" : "?";
  let items = [], cursor = null;
  do {
    const page = await api(`${path}${sep}limit=1000${cursor ? "&cursor=" + encodeURIComponent(cursor) : ""}`, opts);
    items = items.concat(page.items || []); cursor = page.next_cursor;
  } while (cursor);
  return items;
}

/**
 * A live WebSocket to this origin. The token travels as the `bearer.<token>` subprotocol
 * (browsers cannot set headers on WebSockets); the server answers with `aednet.v1`.
 * Reconnects with back-off; `onOpen` runs on every (re)connect so the page can reload its
 * snapshot and never miss a change made while it was away.
 */
export function live(path, { onMessage, onOpen, onState }) {
  let delay = 500, ws = null, stopped = false;
  const connect = () => {
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
    const protocols = ["aednet.v1"];
    if (token()) protocols.push(`bearer.${token()}`);
    ws = new WebSocket(url, protocols);
    ws.onopen = () => { delay = 500; onState && onState(true); onOpen && onOpen(); };
    ws.onmessage = ev => { try { onMessage(JSON.parse(ev.data)); } catch (e) { console.error(e); } };
    ws.onclose = () => {
      onState && onState(false);
      if (!stopped) { setTimeout(connect, delay); delay = Math.min(delay * 2, 15000); }
    };
  };
  connect();
  return { close() { stopped = true; ws && ws.close(); } };
}

/** The shared header: brand, console links, language switch, sign-in state. */
export function header(active) {
  const links = [["/", "navPublic", "public"], ["/dispatch", "navDispatch", "dispatch"],
    ["/maintenance", "navMaintenance", "maintenance"], ["/planner", "navPlanner", "planner"], ["/rescuers", "navRescuers", "rescuers"]];
  const nav = h("nav", { "aria-label": "aednet" },
    links.map(([href, key, id]) => h("a", { href, "data-i18n": key, "aria-current": id === active ? "page" : undefined }, t(key))));
  const langBtn = h("button", { type: "button", id: "lang", class: "ghost", "data-i18n": "otherLang", "data-i18n-attr": "aria-label:otherLangLabel",
    onclick: () => setLang(lang() === "zh" ? "en" : "zh") }, t("otherLang"));
  const who = h("span", { id: "who", class: "who" });
  const bar = h("header", { class: "top" },
    h("a", { href: "/", class: "brand" }, h("span", { class: "logo", "aria-hidden": "true" }, "♥"), "aednet"),
    nav, h("div", { class: "right" }, who, langBtn));
  document.body.prepend(bar);
  applyI18n();
  return bar;
}

/**
 * Asks for a staff token until one with one of `roles` is given; resolves with `/api/v1/me`.
 * The token lives in sessionStorage (this tab only, gone when it closes).
 */
export async function requireLogin(roles) {
  const check = async () => {
    if (!token()) return null;
    try {
      const me = await api("/api/v1/me");
      if (!roles.includes(me.role)) return { wrong: me.role };
      return me;
    } catch (e) {
      if (e.status === 401) return { bad: true };
      throw e;
    }
  };
  let me = await check();
  while (!me || me.wrong || me.bad) {
    const msg = !me ? "" : me.bad ? t("loginBad") : t("loginWrongRole", tt("roles", me.wrong), roles.map(r => tt("roles", r)).join(" / "));
    const secret = await loginDialog(msg);
    sessionStorage.setItem(TOKEN_KEY, secret);
    me = await check();
  }
  const who = $("#who");
  const render = () => {
    who.replaceChildren(h("span", { class: "muted" }, t("loginAs", me.name || "", tt("roles", me.role))), " ",
      h("button", { type: "button", class: "ghost", id: "logout", onclick: () => { sessionStorage.removeItem(TOKEN_KEY); location.reload(); } }, t("logout")));
  };
  render(); onLang(render);
  return me;
}

function loginDialog(message) {
  return new Promise(resolve => {
    const input = h("input", { id: "token", type: "password", autocomplete: "off", required: true, spellcheck: "false" });
    const err = h("p", { class: "error", role: "alert" }, message);
    const form = h("form", { method: "dialog", class: "login" },
      h("h2", { "data-i18n": "loginTitle" }, t("loginTitle")),
      h("p", { class: "muted", "data-i18n": "loginHelp" }, t("loginHelp")),
      h("label", {}, h("span", { "data-i18n": "token" }, t("token")), input), err,
      h("button", { type: "submit", class: "primary", id: "login-submit", "data-i18n": "login" }, t("login")));
    const dlg = h("dialog", { id: "login" }, form);
    document.body.append(dlg);
    form.addEventListener("submit", e => {
      e.preventDefault();
      const v = input.value.trim();
      if (!v) return;
      dlg.close(); dlg.remove(); resolve(v);
    });
    dlg.addEventListener("cancel", e => e.preventDefault());
    dlg.showModal();
    input.focus();
  });
}

// ---- map

/** Readable times in the user's language and the browser's zone. */
export function clock(iso) {
  if (!iso) return t("none");
  return new Date(iso).toLocaleString(lang() === "zh" ? "zh-CN" : "en-GB",
    { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/**
 * A Leaflet map over the street basemap this server built from its imported map data (no
 * third-party tile server: closed networks work), or a plain background when there is none or
 * WebGL is missing; the districts on top, a scale bar, and the OSM attribution only when
 * OSM-derived data is drawn. Resolves once the districts are drawn and the map fitted.
 */
export async function makeMap(el, { onClick } = {}) {
  const map = L.map(el, { zoomSnap: 0.25, attributionControl: true, keyboard: true, preferCanvas: false });
  map.attributionControl.setPrefix(false);
  L.control.scale({ metric: true, imperial: false }).addTo(map);
  map.setView([28.97, 118.87], 11);
  const [districts, prep] = await Promise.all([
    api("/api/v1/districts?format=geojson&limit=1000", { auth: false }).catch(() => null),
    prepareBasemap().catch(e => { console.warn("basemap", e); return null; }),
  ]);
  const base = { drawn: !!(prep && prep.webgl) };
  let layer = null;
  if (districts && districts.features && districts.features.length) {
    layer = L.geoJSON(districts, {
      // Over streets the districts are outlines with a tint; on the plain background, areas.
      style: base.drawn ? { color: "#5f6f82", weight: 1.4, dashArray: "5 4", fillColor: "#8fa3b8", fillOpacity: 0.06 }
        : { color: "#7d8a99", weight: 1.2, fillColor: "#e8edf2", fillOpacity: 0.6 },
      interactive: false,
    }).addTo(map);
    for (const f of districts.features) {
      const p = f.properties || {};
      if (f.geometry && p.name) {
        // The server's label point lies inside the largest part (exclaves would pull a
        // centroid or bounding-box centre into a neighbouring town).
        const c = Array.isArray(p.label) ? L.latLng(p.label[1], p.label[0]) : L.geoJSON(f).getBounds().getCenter();
        L.marker(c, { interactive: false, keyboard: false,
          icon: L.divIcon({ className: "district-label", html: "", iconSize: null }) })
          .addTo(map).getElement().textContent = p.name;
      }
    }
    map.fitBounds(layer.getBounds(), { padding: [8, 8], animate: false });
    markOsm(map, districts.features);
  } else if (prep) {
    const [w, s, e, n] = prep.tj.bounds;
    map.fitBounds([[s, w], [n, e]], { padding: [8, 8], animate: false });
  }
  Object.assign(base, attachBasemap(map, el, prep));
  if (onClick) map.on("click", e => onClick(e.latlng));
  el.leafletMap = map; // for the browser tests and the console

  return { map, basemap: base, districtLayer: layer, districtCount: districts && districts.features ? districts.features.length : 0 };
}

/** Adds "© OpenStreetMap contributors" when any of `features` came from an OSM import. */
export function markOsm(map, features) {
  const fromOsm = features.some(f => String((f.properties || f).source || "").startsWith("osm"));
  if (fromOsm) map.attributionControl.addAttribution(t("osm"));
}

export const STATUS_COLOURS = {
  ready: "#1b7f3b", degraded: "#c77700", unknown: "#6b7785", fault: "#c8102e", offline: "#5b2a86",
  in_use: "#005fcc", cabinet_open: "#d4590a", retired: "#999", pads_expiring: "#b08900", battery_expiring: "#b08900",
};

export function fmtPct(x) { return x == null ? t("none") : `${(x * 100).toFixed(1)}%`; }
