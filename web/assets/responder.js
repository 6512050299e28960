// The responder app (/responder): a certified volunteer's phone. Sign-in with a rescuer token
// (typed, or from an enrolment link /responder#enrol=<token> that the admin console shows as a
// QR code), duty with location consent, offers as a full-screen alert with a countdown,
// accept → the way to the AED and the patient, the cabinet code for an accepted fetcher,
// "arrived", stand-down and cancel screens. Offers come over /ws/rescuer while the app is open
// and by Web Push (responder-sw.js) while it is not. The current offer and the user's own
// history stay in localStorage, so a reload or a reconnect resumes where it was.
import { lang, setLang } from "./i18n.js";

const S = {
  zh: {
    connecting: "连接中…", live: "在线", offline: "重新连接中…", loading: "加载中…", otherLang: "EN",
    signInTitle: "救护员登录", signInHelp: "输入管理员发给您的救护员令牌，或用手机相机扫描管理控制台显示的登记二维码。",
    token: "救护员令牌", signIn: "登录", signOut: "退出登录", badToken: "令牌无效或已撤销。", notRescuer: "这不是救护员令牌。",
    cert: (a, b) => `证书有效期 ${a} 至 ${b}`, certInvalid: "证书今天无效：请先续证。",
    onDuty: "值班中", offDuty: "未值班", goOn: "开始值班", goOff: "结束值班",
    consent: "我同意在值班期间向调度系统共享我的实时位置（仅保存在内存中，下班即删除，绝不公开）。",
    consentNeeded: "开始值班前请先勾选位置共享同意。", locating: "正在获取位置…", located: a => `位置已共享（精度 ${Math.round(a)} 米）`,
    noLocation: "无法获取位置：请在浏览器设置中允许定位。",
    pushOn: "锁屏提醒：已开启", pushOff: "锁屏提醒：未开启", enablePush: "开启锁屏提醒", pushUnavailable: "此浏览器无法接收推送，请保持应用打开。",
    pushServerOff: "服务器未配置推送，请保持应用打开。",
    alertTitle: "AED 急救呼叫", roleCpr: "请立即前往现场实施心肺复苏", roleFetch: "请取 AED 后送往现场",
    aedWhere: (n, f, d) => [n, f, d].filter(Boolean).join(" · "), floor: l => `${l} 层`, indoor: "室内",
    distance: (m, s) => `步行约 ${Math.max(1, Math.round(s / 60))} 分钟${m == null ? "" : `（${m >= 1000 ? (m / 1000).toFixed(1) + " 公里" : Math.round(m) + " 米"}）`}`,
    expiresIn: s => `请在 ${s} 秒内回应`, expired: "已超时", accept: "接受", decline: "拒绝",
    onTheWay: "正在前往", toAed: "先去取 AED", toPatient: "前往患者", cabinetCode: "机柜密码", arrived: "我已到达", arrivedDone: "已到达现场，请实施急救",
    standDown: "无需前往", standDownText: "已有足够的救护员前往。谢谢您！", cancelled: "呼叫已取消", cancelledText: "调度员已取消此次呼叫。谢谢您！",
    back: "返回", history: "我的出勤记录", noHistory: "暂无记录。", accepted: "已接受", declined: "已拒绝", timedOut: "超时", arrivedH: "已到达",
    standDownH: "已撤回", cancelledH: "已取消", offered: "已呼叫", cpr: "心肺复苏", fetch: "取 AED", error: m => `出错：${m}`,
    historyOffline: "离线：显示本机保存的记录。", address: "地点", retry: "网络中断，正在重试…", closed: "事件已结案", closedText: "调度员已结案。感谢您的救助！", closedH: "已结案", done: "完成",
  },
  en: {
    connecting: "Connecting…", live: "Online", offline: "Reconnecting…", loading: "Loading…", otherLang: "中文",
    signInTitle: "Responder sign-in", signInHelp: "Enter the responder token your administrator gave you, or scan the enrolment QR code from the admin console with the phone's camera.",
    token: "Responder token", signIn: "Sign in", signOut: "Sign out", badToken: "Unknown or revoked token.", notRescuer: "This is not a responder token.",
    cert: (a, b) => `Certificate valid ${a} to ${b}`, certInvalid: "Your certificate is not valid today: renew it first.",
    onDuty: "On duty", offDuty: "Off duty", goOn: "Go on duty", goOff: "Go off duty",
    consent: "I agree to share my live location with dispatch while on duty (kept in memory only, deleted when I go off duty, never public).",
    consentNeeded: "Tick the location consent before going on duty.", locating: "Getting your location…", located: a => `Location shared (±${Math.round(a)} m)`,
    noLocation: "No location: allow location access for this site in the browser settings.",
    pushOn: "Lock-screen alerts: on", pushOff: "Lock-screen alerts: off", enablePush: "Turn on lock-screen alerts", pushUnavailable: "This browser cannot receive push: keep the app open.",
    pushServerOff: "The server has no push configured: keep the app open.",
    alertTitle: "AED alert", roleCpr: "Go to the patient now and start CPR", roleFetch: "Fetch the AED, then bring it to the patient",
    aedWhere: (n, f, d) => [n, f, d].filter(Boolean).join(" · "), floor: l => `floor ${l}`, indoor: "indoors",
    distance: (m, s) => `about ${Math.max(1, Math.round(s / 60))} min on foot${m == null ? "" : ` (${m >= 1000 ? (m / 1000).toFixed(1) + " km" : Math.round(m) + " m"})`}`,
    expiresIn: s => `Answer within ${s} s`, expired: "Timed out", accept: "Accept", decline: "Decline",
    onTheWay: "On the way", toAed: "First fetch the AED", toPatient: "To the patient", cabinetCode: "Cabinet code", arrived: "I have arrived", arrivedDone: "At the scene: start helping",
    standDown: "Stand down", standDownText: "Enough responders are on the way. Thank you!", cancelled: "Alert cancelled", cancelledText: "The dispatcher cancelled this alert. Thank you!",
    back: "Back", history: "My call-outs", noHistory: "Nothing yet.", accepted: "accepted", declined: "declined", timedOut: "timed out", arrivedH: "arrived",
    standDownH: "stood down", cancelledH: "cancelled", offered: "alerted", cpr: "CPR", fetch: "fetch AED", error: m => `Error: ${m}`,
    historyOffline: "Offline: showing this phone's own record.", address: "Place", retry: "Connection lost, retrying…", closed: "Incident closed", closedText: "The dispatcher closed the incident. Thank you for helping!", closedH: "closed", done: "Done",
  },
};
const T = (k, ...a) => { const v = (S[lang()] || S.en)[k] ?? S.en[k] ?? k; return typeof v === "function" ? v(...a) : v; };

const TOKEN = "aednet.responder.token", CURRENT = "aednet.responder.current", HISTORY = "aednet.responder.history";
const KEYS = "aednet-responder-keys";
const $ = s => document.querySelector(s);
function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of kids.flat()) if (c != null && c !== false) e.append(c instanceof Node ? c : String(c));
  return e;
}

/** Text as a DOM node for Leaflet tooltips (a string would go in as HTML). */
const textEl = s => h("span", {}, s);

let token = localStorage.getItem(TOKEN);
let historySource = null; // "server" once it answered, "local" when it could not
let me = null, ws = null, watchId = null, lastSent = 0, lastFix = null, pushState = "off", map = null, timer = null;
let current = JSON.parse(localStorage.getItem(CURRENT) || "null");
const save = () => localStorage.setItem(CURRENT, JSON.stringify(current));
const myHistory = () => JSON.parse(localStorage.getItem(HISTORY) || "[]");
function remember(entry) {
  const list = myHistory().filter(x => !(x.incident_id === entry.incident_id && x.offer_id === entry.offer_id));
  list.unshift(entry);
  localStorage.setItem(HISTORY, JSON.stringify(list.slice(0, 50)));
}

async function api(path, { method = "GET", body } = {}) {
  const r = await fetch(path, { method, headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined });
  const text = await r.text();
  const json = text ? JSON.parse(text) : null;
  if (!r.ok) { const e = new Error((json && json.message) || `HTTP ${r.status}`); e.status = r.status; e.body = json; throw e; }
  return json;
}

/** The token and language for the service worker, which has no localStorage. */
async function shareWithWorker() {
  if (!("caches" in self)) return;
  const c = await caches.open(KEYS);
  if (token) await c.put("/responder/token", new Response(token)); else await c.delete("/responder/token");
  await c.put("/responder/lang", new Response(lang()));
}

// ---- sign-in

function signInView(message) {
  const input = h("input", { id: "token", type: "password", autocomplete: "off", spellcheck: "false", required: true });
  const form = h("form", { id: "signin", class: "card" },
    h("h1", {}, T("signInTitle")), h("p", { class: "muted" }, T("signInHelp")),
    h("label", {}, h("span", {}, T("token")), input), h("p", { class: "error", role: "alert" }, message || ""),
    h("button", { type: "submit", class: "primary big", id: "signin-btn" }, T("signIn")));
  form.addEventListener("submit", e => { e.preventDefault(); token = input.value.trim(); if (token) start(); });
  $("#app").replaceChildren(form);
}

// ---- home: duty, consent, push, history

function homeView() {
  if (!me) return;
  const certOk = me.certified_today;
  const consent = h("input", { type: "checkbox", id: "consent", checked: me.location_consent });
  const dutyBtn = h("button", { type: "button", id: "duty-btn", class: me.on_duty ? "big" : "primary big", disabled: !certOk && !me.on_duty },
    me.on_duty ? T("goOff") : T("goOn"));
  const err = h("p", { class: "error", role: "alert", id: "duty-error" });
  dutyBtn.addEventListener("click", async () => {
    err.textContent = "";
    if (!me.on_duty && !consent.checked) { err.textContent = T("consentNeeded"); return; }
    try {
      const r = await api("/api/v1/me/duty", { method: "PUT", body: { on_duty: !me.on_duty, location_consent: consent.checked } });
      Object.assign(me, r);
      me.on_duty ? startLocation() : stopLocation();
      render();
    } catch (e) { err.textContent = T("error", e.message); }
  });
  consent.addEventListener("change", async () => {
    if (me.on_duty && !consent.checked) {
      // Withdrawing consent stops sharing at once (the server forgets the position).
      const r = await api("/api/v1/me/duty", { method: "PUT", body: { on_duty: me.on_duty, location_consent: false } }).catch(() => null);
      if (r) Object.assign(me, r);
      stopLocation(); render();
    }
  });
  const pushLine = h("p", { id: "push-state", class: "muted" },
    pushState === "on" ? T("pushOn") : pushState === "unavailable" ? T("pushUnavailable") : pushState === "server-off" ? T("pushServerOff") : T("pushOff"));
  const pushBtn = pushState === "off" ? h("button", { type: "button", id: "push-btn", onclick: enablePush }, T("enablePush")) : null;
  $("#app").replaceChildren(
    h("section", { class: "card", id: "me" },
      h("h1", {}, me.name),
      h("p", { class: certOk ? "muted" : "error", id: "cert" }, certOk ? T("cert", me.cert_issued, me.cert_expires) : T("certInvalid")),
      h("p", { id: "duty-state", class: `duty ${me.on_duty ? "on" : "off"}` }, me.on_duty ? T("onDuty") : T("offDuty")),
      h("label", { class: "check consent" }, consent, h("span", {}, T("consent"))),
      dutyBtn, err,
      h("p", { id: "loc-state", class: "muted" }, me.on_duty && me.location_consent ? (lastFix ? T("located", lastFix.accuracy) : T("locating")) : ""),
      pushLine, pushBtn),
    historyCard(),
    h("p", {}, h("button", { type: "button", class: "ghost", id: "signout", onclick: signOut }, T("signOut"))));
}

/** The call-outs: the server's record when it answered, this phone's own copy offline. */
function historyCard() {
  const hist = myHistory();
  return h("section", { class: "card", id: "history", "data-source": historySource }, h("h2", {}, T("history")),
    hist.length ? h("ul", { class: "plain" }, hist.map(x => h("li", { "data-incident": x.incident_id },
      h("strong", {}, `#${x.incident_id}`), " ", x.role === "fetch_aed" ? T("fetch") : T("cpr"), " · ", T(x.outcome), " · ",
      new Date(x.at).toLocaleString(lang() === "zh" ? "zh-CN" : "en-GB", { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }),
      x.address ? h("div", { class: "muted" }, x.address) : null)))
      : h("p", { class: "muted" }, T("noHistory")),
    historySource === "local" ? h("p", { class: "muted", id: "history-offline" }, T("historyOffline")) : null);
}

/** What became of one of my offers, as the history shows it. */
function outcomeOf(o, inc) {
  switch (o.state) {
    case "offered": return "offered";
    case "declined": return "declined";
    case "timed_out": return "timedOut";
    case "stood_down": return inc.state === "cancelled" ? "cancelledH" : "standDownH";
    case "arrived": return "arrivedH";
    default: return inc.state === "closed" ? "closedH" : inc.state === "cancelled" ? "cancelledH" : "accepted";
  }
}

/**
 * My call-outs from the server (GET /api/v1/me/incidents: only my own offers), kept in
 * localStorage as the offline copy; without the server the phone's own record stays.
 */
async function loadHistory() {
  try {
    const r = await api("/api/v1/me/incidents?limit=50");
    const list = r.items.flatMap(i => i.offers.map(o => ({ incident_id: i.incident_id, offer_id: o.offer_id, role: o.role,
      address: i.address, at: o.offered_at, outcome: outcomeOf(o, i) })));
    localStorage.setItem(HISTORY, JSON.stringify(list.slice(0, 50)));
    historySource = "server";
  } catch (e) {
    if (e.status === 401) return;
    historySource = "local";
  }
  const card = $("#history");
  if (card) card.replaceWith(historyCard());
}

async function signOut() {
  stopLocation();
  if (ws) { ws.onclose = null; ws.close(); }
  const reg = await navigator.serviceWorker?.getRegistration("/responder").catch(() => null);
  const sub = reg && await reg.pushManager.getSubscription().catch(() => null);
  if (sub) { await api("/api/v1/me/push-subscriptions", { method: "DELETE", body: { endpoint: sub.endpoint } }).catch(() => {}); await sub.unsubscribe().catch(() => {}); }
  token = null; localStorage.removeItem(TOKEN); localStorage.removeItem(CURRENT); current = null;
  await shareWithWorker();
  signInView();
}

// ---- location while on duty

function startLocation() {
  if (watchId != null || !me || !me.on_duty || !me.location_consent || !navigator.geolocation) return;
  watchId = navigator.geolocation.watchPosition(async p => {
    lastFix = { lat: p.coords.latitude, lon: p.coords.longitude, accuracy: p.coords.accuracy };
    // Every 3 s while on the way, else every 15 s (60 s on a low battery, not charging).
    let every = current && current.state === "accepted" ? 3000 : 15000;
    if (every > 3000 && navigator.getBattery) {
      const b = await navigator.getBattery().catch(() => null);
      if (b && !b.charging && b.level < 0.2) every = 60000;
    }
    if (Date.now() - lastSent >= every) sendLocation();
    const el = $("#loc-state"); if (el) el.textContent = T("located", lastFix.accuracy);
    if (map) drawRoute();
  }, () => { const el = $("#loc-state"); if (el) el.textContent = T("noLocation"); },
  { enableHighAccuracy: true, maximumAge: 5000, timeout: 20000 });
}

function stopLocation() {
  if (watchId != null) navigator.geolocation.clearWatch(watchId);
  watchId = null; lastFix = null;
}

function sendLocation() {
  if (!lastFix || !ws || ws.readyState !== 1) return;
  lastSent = Date.now();
  ws.send(JSON.stringify({ type: "location", lat: lastFix.lat, lon: lastFix.lon, accuracy_m: Math.min(10000, lastFix.accuracy) }));
}

// ---- push

async function enablePush() {
  try {
    const info = await api("/api/v1/me/push");
    if (!info.vapid_public_key) { pushState = "server-off"; return render(); }
    if (!("serviceWorker" in navigator) || !("PushManager" in self)) { pushState = "unavailable"; return render(); }
    if ((await Notification.requestPermission()) !== "granted") { pushState = "unavailable"; return render(); }
    const reg = await navigator.serviceWorker.ready;
    const key = Uint8Array.from(atob(info.vapid_public_key.replace(/-/g, "+").replace(/_/g, "/")), c => c.charCodeAt(0));
    const sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
    await api("/api/v1/me/push-subscriptions", { method: "POST", body: sub.toJSON() });
    pushState = "on";
  } catch (e) { console.warn("push", e); pushState = "unavailable"; }
  render();
}

async function checkPush() {
  const reg = await navigator.serviceWorker?.getRegistration("/responder").catch(() => null);
  const sub = reg && await reg.pushManager?.getSubscription().catch(() => null);
  if (sub) { pushState = "on"; api("/api/v1/me/push-subscriptions", { method: "POST", body: sub.toJSON() }).catch(() => {}); }
}

// ---- messages (socket, push, resume)

function onMessage(m, via) {
  if (m.type === "offer") {
    const same = current && current.incident_id === m.incident_id && current.offer_id === m.offer_id;
    if (!same || !current.state) {
      current = { ...m, state: m.state === "accepted" || m.state === "arrived" ? m.state : "offered", received_at: new Date().toISOString() };
      remember({ incident_id: m.incident_id, offer_id: m.offer_id, role: m.role, address: m.address, at: current.received_at, outcome: current.state === "offered" ? "offered" : current.state === "arrived" ? "arrivedH" : "accepted" });
    } else if (m.state && m.state !== current.state && !current.ended) current.state = m.state;
    save();
    if (via === "ws") ack(m);
    if (current.state === "offered") ring();
  } else if ((m.type === "stand_down" || m.type === "cancel") && current && current.incident_id === m.incident_id) {
    current.ended = { type: m.type, reason: m.reason };
    save();
    remember({ ...historyEntry(), outcome: m.type === "cancel" ? "cancelledH" : "standDownH" });
    if (via === "ws") ack(m);
    silence();
    setTimeout(loadHistory, 500);
  } else if (m.type === "update" && current && current.incident_id === m.incident_id) {
    Object.assign(current, { distance_m: m.distance_m, aed_distance_m: m.aed_distance_m, eta_s: m.eta_s, route: m.route });
    save();
    if (map) { drawRoute(); updateWay(); }
    return;
  } else return;
  render();
}

function historyEntry() {
  return { incident_id: current.incident_id, offer_id: current.offer_id, role: current.role, address: current.address, at: current.received_at || new Date().toISOString() };
}

/** Tells the server the app has it, so it is not pushed as well. */
function ack(m) {
  if (ws && ws.readyState === 1) ws.send(JSON.stringify({ type: "received", incident_id: m.incident_id, offer_id: m.type === "offer" ? m.offer_id : undefined, message: m.type }));
}

function connect() {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/rescuer`;
  let delay = 1000;
  const open = () => {
    ws = new WebSocket(url, ["aednet.v1", `bearer.${token}`]);
    ws.onopen = () => { delay = 1000; conn(true); sendLocation(); };
    ws.onmessage = ev => { try { onMessage(JSON.parse(ev.data), "ws"); } catch (e) { console.error(e); } };
    ws.onclose = ev => {
      conn(false);
      // 4401: the token was revoked; never reconnect with it.
      if (ev.code === 4401) { token = null; localStorage.removeItem(TOKEN); shareWithWorker(); signInView(T("badToken")); return; }
      setTimeout(open, delay); delay = Math.min(delay * 2, 20000);
    };
  };
  open();
}

function conn(on) {
  const el = $("#conn"); el.classList.toggle("on", on); el.textContent = T(on ? "live" : "offline");
}

// ---- the alert and the way

let audio = null;
function ring() {
  // Browsers allow vibration and sound only after the user has touched the page (a tap on the
  // notification counts); until then the full screen and the notification carry the alert.
  if (!navigator.userActivation || navigator.userActivation.hasBeenActive) navigator.vibrate?.([600, 200, 600, 200, 600, 200, 600]);
  else return;
  try {
    audio = audio || new AudioContext();
    const o = audio.createOscillator(), g = audio.createGain();
    o.type = "square"; o.frequency.value = 880; g.gain.value = 0.15;
    o.connect(g).connect(audio.destination);
    o.start(); o.stop(audio.currentTime + 1.2);
  } catch { /* no sound before the first tap: the vibration and the screen remain */ }
}
function silence() { if (navigator.userActivation?.hasBeenActive) navigator.vibrate?.(0); }

async function answer(what) {
  const c = current;
  try {
    const r = await api(`/api/v1/me/offers/${c.incident_id}/${c.offer_id}/${what}`, { method: "POST" });
    c.state = r.offer.state;
    if (r.cabinet_code) c.cabinet_code = r.cabinet_code;
    save();
    remember({ ...historyEntry(), outcome: c.state === "declined" ? "declined" : c.state === "arrived" ? "arrivedH" : "accepted" });
    silence();
    loadHistory();
    if (c.state === "declined") { current = null; save(); }
    else if (c.state === "accepted") { lastSent = 0; sendLocation(); }
  } catch (e) {
    if (e.status === 409) { c.ended = c.ended || { type: "expired", reason: e.message }; save(); remember({ ...historyEntry(), outcome: "timedOut" }); }
    const el = $("#answer-error"); if (el) el.textContent = T("error", e.message);
  }
  render();
}

function alertView() {
  const c = current, el = $("#alert");
  const left = Math.max(0, Math.round((new Date(c.expires_at) - Date.now()) / 1000));
  const aed = c.aed;
  el.hidden = false;
  // replaceChildren would print a null as "null": absent parts are filtered out.
  el.replaceChildren(...[
    h("button", { type: "button", id: "alert-lang", class: "alert-lang", onclick: switchLang }, T("otherLang")),
    h("h1", { id: "alert-title" }, T("alertTitle")),
    h("p", { class: "role", id: "alert-role" }, c.role === "fetch_aed" ? T("roleFetch") : T("roleCpr")),
    aed ? h("p", { class: "aed", id: "alert-aed" }, "AED · ", T("aedWhere", aed.name, aed.level != null ? T("floor", aed.level) : aed.indoor ? T("indoor") : null, aed.location_description)) : null,
    h("p", { class: "place" }, c.address || `${c.lat.toFixed(5)}, ${c.lon.toFixed(5)}`),
    h("p", { class: "eta", id: "alert-eta" }, T("distance", null, c.eta_s)),
    h("p", { class: "countdown", id: "countdown", "aria-live": "polite" }, left > 0 ? T("expiresIn", left) : T("expired")),
    h("div", { class: "answers" },
      h("button", { type: "button", class: "accept", id: "accept-btn", onclick: () => answer("accept"), disabled: left <= 0 }, T("accept")),
      h("button", { type: "button", class: "decline", id: "decline-btn", onclick: () => answer("decline") }, T("decline"))),
    h("p", { class: "error", id: "answer-error", role: "alert" })].filter(Boolean));
}

function wayView() {
  const c = current;
  const fetching = c.role === "fetch_aed" && c.aed && c.aed_distance_m !== null && c.state === "accepted";
  $("#app").replaceChildren(
    h("section", { class: "card way", id: "way" },
      h("h1", {}, c.state === "arrived" ? T("arrivedDone") : T("onTheWay")),
      h("p", { class: "place" }, `${T("address")}: ${c.address || `${c.lat.toFixed(5)}, ${c.lon.toFixed(5)}`}`),
      c.aed ? h("p", { id: "way-aed" }, h("strong", {}, fetching ? T("toAed") : T("toPatient")), " · AED: ",
        T("aedWhere", c.aed.name, c.aed.level != null ? T("floor", c.aed.level) : null, c.aed.location_description)) : null,
      c.cabinet_code ? h("p", { class: "code", id: "cabinet-code" }, h("span", {}, T("cabinetCode")), h("strong", {}, c.cabinet_code)) : null,
      h("p", { id: "way-eta", class: "eta" }, T("distance", c.distance_m, c.eta_s)),
      h("div", { id: "way-map", class: "way-map" }),
      c.state === "accepted" ? h("button", { type: "button", class: "primary big", id: "arrived-btn", onclick: () => answer("arrived") }, T("arrived"))
        // At the scene the dispatcher closes the incident without a frame to this phone: the
        // responder says when they are done (and a reload finds the incident closed).
        : h("button", { type: "button", class: "big", id: "done-btn", onclick: () => { current = null; save(); render(); } }, T("done")),
      h("p", { class: "error", id: "answer-error", role: "alert" })));
  map = null;
  if (window.L) {
    map = L.map($("#way-map"), { zoomControl: true, attributionControl: false }).setView([c.lat, c.lon], 16);
    drawRoute();
  }
}

let routeLayer = null;
function drawRoute() {
  const c = current; if (!map || !c) return;
  if (routeLayer) routeLayer.remove();
  routeLayer = L.layerGroup().addTo(map);
  const pts = [];
  if (lastFix) { pts.push([lastFix.lat, lastFix.lon]); L.circleMarker([lastFix.lat, lastFix.lon], { radius: 8, color: "#fff", weight: 2, fillColor: "#005fcc", fillOpacity: 1 }).addTo(routeLayer); }
  if (c.aed) L.circleMarker([c.aed.lat, c.aed.lon], { radius: 9, color: "#fff", weight: 2, fillColor: "#00838f", fillOpacity: 1 }).addTo(routeLayer).bindTooltip(textEl("AED"));
  L.circleMarker([c.lat, c.lon], { radius: 11, color: "#fff", weight: 3, fillColor: "#c8102e", fillOpacity: 1 }).addTo(routeLayer);
  // The walk on the street network when the server has one; straight lines otherwise.
  const line = c.route && c.route.coordinates && c.route.coordinates.length > 1 ? c.route.coordinates.map(([x, y]) => [y, x])
    : [...pts, ...(c.aed && c.aed_distance_m !== null ? [[c.aed.lat, c.aed.lon]] : []), [c.lat, c.lon]];
  if (line.length > 1) {
    L.polyline(line, { color: "#1b7f3b", weight: 5, opacity: .85, dashArray: c.route ? null : "8 8" }).addTo(routeLayer);
    map.fitBounds(L.latLngBounds(line).pad(0.2), { animate: false, maxZoom: 17 });
  }
}
function updateWay() { const el = $("#way-eta"); if (el) el.textContent = T("distance", current.distance_m, current.eta_s); }

function endedView() {
  const c = current, type = c.ended.type;
  const [title, text] = type === "expired" ? [T("expired"), c.ended.reason || ""] : type === "cancel" ? [T("cancelled"), T("cancelledText")]
    : type === "closed" ? [T("closed"), T("closedText")] : [T("standDown"), T("standDownText")];
  $("#app").replaceChildren(h("section", { class: "card ended", id: "ended", "data-type": type },
    h("h1", {}, title), h("p", {}, text),
    h("button", { type: "button", class: "primary big", id: "back-btn", onclick: () => { current = null; save(); render(); } }, T("back"))));
}

function render() {
  $("#alert").hidden = true;
  clearInterval(timer);
  $("#lang").textContent = T("otherLang");
  if (!token) return signInView();
  if (current && current.ended) return endedView();
  if (current && current.state === "offered") {
    if (new Date(current.expires_at) <= Date.now()) { current.ended = { type: "expired" }; save(); remember({ ...historyEntry(), outcome: "timedOut" }); return render(); }
    homeView(); alertView();
    timer = setInterval(() => {
      const left = Math.max(0, Math.round((new Date(current.expires_at) - Date.now()) / 1000));
      const el = $("#countdown"); if (el) el.textContent = left > 0 ? T("expiresIn", left) : T("expired");
      if (left <= 0) { const b = $("#accept-btn"); if (b) b.disabled = true; }
    }, 1000);
    return;
  }
  if (current && (current.state === "accepted" || current.state === "arrived")) return wayView();
  homeView();
}

async function start() {
  try {
    const who = await api("/api/v1/me");
    if (who.role !== "rescuer" || !who.subject_id) { token = null; return signInView(T("notRescuer")); }
    me = await api("/api/v1/me/rescuer");
  } catch (e) {
    if (e.status === 401 || e.status === 403) { token = null; localStorage.removeItem(TOKEN); return signInView(T("badToken")); }
    $("#app").replaceChildren(h("p", { class: "error" }, T("retry")));
    setTimeout(start, 3000);
    return;
  }
  localStorage.setItem(TOKEN, token);
  await shareWithWorker();
  await checkPush();
  // The server's view first: an offer answered on another device, or one that came while closed.
  const mine = await api("/api/v1/me/offers").catch(() => null);
  if (mine) {
    if (current && !current.ended && !mine.items.some(o => o.incident_id === current.incident_id && o.offer_id === current.offer_id)) {
      // Gone while the app was closed: closed at the scene, or stood down / timed out before.
      const closed = current.state === "arrived";
      current.ended = { type: closed ? "closed" : "stand_down" }; save();
      if (closed) remember({ ...historyEntry(), outcome: "closedH" });
    }
    for (const o of mine.items) onMessage({ ...o, type: "offer" }, "resume");
  }
  connect();
  startLocation();
  render();
  loadHistory();
}

// ---- boot

if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/responder-sw.js", { scope: "/responder" }).catch(e => console.warn("service worker", e));
  navigator.serviceWorker.addEventListener("message", ev => { if (ev.data && ev.data.kind === "push") onMessage(ev.data.msg, "push"); });
}
function switchLang() { setLang(lang() === "zh" ? "en" : "zh"); shareWithWorker(); conn(ws && ws.readyState === 1); render(); }
$("#lang").addEventListener("click", switchLang);
// Enrolment: the admin console's QR code opens /responder#enrol=<token>; the token leaves the URL at once.
const enrol = new URLSearchParams(location.hash.slice(1)).get("enrol");
if (enrol) { token = enrol; window.history.replaceState(null, "", "/responder"); }
document.body.dataset.ready = "1";
if (token) start(); else render();
