// The responder app's service worker (scope /responder): keeps the app shell for offline
// starts, and turns a Web Push message (an offer, stand-down or cancel, encrypted by the server
// for this browser) into a notification that wakes the phone, tells open pages, and confirms
// receipt to the server so it is not pushed again. The API is never cached.
const SHELL = "aednet-responder-v1";
const FILES = ["/responder", "/assets/responder.js", "/assets/responder.css", "/assets/app.css",
  "/assets/i18n.js", "/assets/favicon.svg", "/assets/responder-192.png",
  "/assets/vendor/leaflet/leaflet.js", "/assets/vendor/leaflet/leaflet.css", "/responder.webmanifest"];
// The page keeps its token here (a service worker has no localStorage).
const KEYS = "aednet-responder-keys";

self.addEventListener("install", e => {
  e.waitUntil(caches.open(SHELL).then(c => c.addAll(FILES)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", e => {
  e.waitUntil((async () => {
    for (const k of await caches.keys()) if (k !== SHELL && k !== KEYS) await caches.delete(k);
    await self.clients.claim();
  })());
});

// Network first (a new version shows at once), the shell when offline.
self.addEventListener("fetch", e => {
  const url = new URL(e.request.url);
  if (e.request.method !== "GET" || url.origin !== location.origin) return;
  if (url.pathname.startsWith("/api/") || url.pathname.startsWith("/ws/")) return;
  e.respondWith(fetch(e.request).then(r => {
    if (r.ok && FILES.includes(url.pathname)) {
      const copy = r.clone();
      caches.open(SHELL).then(c => c.put(e.request, copy));
    }
    return r;
  }).catch(async () => (await caches.match(e.request)) || (await caches.match("/responder"))));
});

async function savedToken() {
  const r = await (await caches.open(KEYS)).match("/responder/token");
  return r ? r.text() : null;
}

async function lang() {
  const r = await (await caches.open(KEYS)).match("/responder/lang");
  return r ? r.text() : "zh";
}

const TEXT = {
  zh: { cpr: "附近有人心脏骤停：请前往实施心肺复苏", fetch: a => `附近有人心脏骤停：请取 AED（${a}）送往现场`,
    stand_down: "已有足够救护员前往，您无需前往", cancel: "调度员已取消此次呼叫", title: "AED 急救呼叫" },
  en: { cpr: "Cardiac arrest nearby: go and start CPR", fetch: a => `Cardiac arrest nearby: fetch the AED (${a}) and bring it`,
    stand_down: "Enough responders are on the way: stand down", cancel: "The dispatcher cancelled this alert", title: "AED alert" },
};

self.addEventListener("push", e => {
  let msg = null;
  try { msg = e.data ? e.data.json() : null; } catch { msg = null; }
  if (!msg || !msg.type) return;
  e.waitUntil((async () => {
    const s = TEXT[await lang()] || TEXT.en;
    const pages = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    for (const p of pages) p.postMessage({ kind: "push", msg });
    const body = msg.type === "offer"
      ? `${msg.role === "fetch_aed" ? s.fetch((msg.aed && msg.aed.name) || "AED") : s.cpr} · ${msg.address || ""}`
      : s[msg.type] || msg.type;
    await self.registration.showNotification(s.title, {
      body, tag: `incident-${msg.incident_id}`, renotify: true, requireInteraction: msg.type === "offer",
      vibrate: msg.type === "offer" ? [600, 200, 600, 200, 600] : [200], data: msg,
      icon: "/assets/responder-192.png", badge: "/assets/responder-192.png",
    });
    const token = await savedToken();
    if (token) {
      await fetch("/api/v1/me/received", {
        method: "POST", headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
        body: JSON.stringify({ incident_id: msg.incident_id, offer_id: msg.type === "offer" ? msg.offer_id : undefined,
          message: msg.type, via: "web_push" }),
      }).catch(() => {});
    }
  })());
});

self.addEventListener("notificationclick", e => {
  e.notification.close();
  e.waitUntil((async () => {
    const pages = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    for (const p of pages) {
      if (new URL(p.url).pathname === "/responder") { p.postMessage({ kind: "push", msg: e.notification.data }); return p.focus(); }
    }
    return self.clients.openWindow("/responder");
  })());
});
