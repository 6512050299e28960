// The responder app (/responder) in a real browser (Debian's chromium via playwright-core)
// against the real aednet binary serving the demo city, with Web Push end to end:
//   - the admin's rescuer list shows the phone's token as a QR code of the enrolment link
//     (zh-CN and en, with the warning that it is a secret shown once);
//   - the app signs in from that link (#enrol=…), goes on duty
//     with the consent ticked, and shares the browser's (emulated) position over its socket;
//   - its service worker registers and the app shell works offline;
//   - the phone goes in the pocket (page closed): the dispatcher's incident makes aednet send
//     a real Web Push (VAPID, aes128gcm) to a push service in this script, which decrypts it
//     with the subscription's private key (node:crypto, not aednet's code) and hands the
//     plaintext to the service worker through the DevTools protocol
//     (ServiceWorker.deliverPushMessage): the worker shows the notification and confirms
//     receipt, and the dispatcher's board shows the push as delivered to the phone;
//   - the app opens on the full-screen alert with its countdown; accept → the way with the map,
//     "arrived" → the board shows it; the dispatcher closes → the stand-down screen, and the
//     history card shows the server's record (GET /api/v1/me/incidents);
//   - 360 px screenshots in zh-CN and en go to web/e2e/screenshots/responder-*.png.
import { chromium } from "playwright-core";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import crypto from "node:crypto";
import assert from "node:assert/strict";

const here = dirname(fileURLToPath(import.meta.url));
const bin = resolve(process.env.AEDNET_BIN || join(here, "../../target/debug/aednet"));
const browserPath = process.env.CHROMIUM || "/usr/bin/chromium";
const shots = join(here, "screenshots");
mkdirSync(shots, { recursive: true });

// ---- a push service: receives aednet's Web Push and decrypts it as the browser would
const b64u = b => Buffer.from(b).toString("base64url");
const ua = crypto.createECDH("prime256v1");
ua.generateKeys();
const auth = crypto.randomBytes(16);
const pushed = [];
let waiting = [];
function decrypt(body) {
  // RFC 8188 header: salt(16) rs(4) idlen(1) keyid(idlen); then one record.
  const salt = body.subarray(0, 16), idlen = body[20], keyid = body.subarray(21, 21 + idlen), rec = body.subarray(21 + idlen);
  const shared = ua.computeSecret(keyid);
  const info = Buffer.concat([Buffer.from("WebPush: info\0"), ua.getPublicKey(), keyid]);
  const ikm = Buffer.from(crypto.hkdfSync("sha256", shared, auth, info, 32));
  const cek = Buffer.from(crypto.hkdfSync("sha256", ikm, salt, Buffer.from("Content-Encoding: aes128gcm\0"), 16));
  const nonce = Buffer.from(crypto.hkdfSync("sha256", ikm, salt, Buffer.from("Content-Encoding: nonce\0"), 12));
  const d = crypto.createDecipheriv("aes-128-gcm", cek, nonce);
  d.setAuthTag(rec.subarray(rec.length - 16));
  let plain = Buffer.concat([d.update(rec.subarray(0, rec.length - 16)), d.final()]);
  let end = plain.length; while (end > 0 && plain[end - 1] === 0) end--;
  assert.equal(plain[end - 1], 2, "last-record delimiter");
  return plain.subarray(0, end - 1).toString("utf8");
}
const pushService = createServer((req, res) => {
  const chunks = [];
  req.on("data", c => chunks.push(c));
  req.on("end", () => {
    try {
      assert.match(req.headers.authorization || "", /^vapid t=[\w-]+\.[\w-]+\.[\w-]+, k=[\w-]+$/);
      assert.equal(req.headers["content-encoding"], "aes128gcm");
      assert.equal(req.headers.urgency, "high");
      const text = decrypt(Buffer.concat(chunks));
      pushed.push(JSON.parse(text));
      for (const w of waiting) w();
      waiting = [];
      res.writeHead(201).end();
    } catch (e) { console.error("push service:", e); res.writeHead(400).end(); }
  });
});
await new Promise(r => pushService.listen(0, "127.0.0.1", r));
const pushUrl = `http://127.0.0.1:${pushService.address().port}/push/e2e`;
const nextPush = pred => new Promise((res, rej) => {
  const t = setTimeout(() => rej(new Error("no push within 15 s")), 15000);
  const check = () => { const m = pushed.find(pred); if (m) { clearTimeout(t); res(m); } else waiting.push(check); };
  check();
});

// ---- the server: demo city with Web Push on (keys from `aednet push keys`)
const keys = execFileSync(bin, ["push", "keys", "--subject", "mailto:e2e@example.org"], { encoding: "utf8" });
const vapid = keys.match(/vapid_private_key = "([\w-]+)"/)[1];
const dir = mkdtempSync(join(tmpdir(), "aednet-e2e-responder-"));
const env = { ...process.env, AEDNET_PUBLIC__PER_MINUTE: "0", AEDNET_LOG_LEVEL: "warn",
  AEDNET_NOTIFY__ACK_TIMEOUT_S: "0.5", AEDNET_NOTIFY__WEB_PUSH__VAPID_PRIVATE_KEY: vapid,
  AEDNET_NOTIFY__WEB_PUSH__SUBJECT: "mailto:e2e@example.org", AEDNET_NOTIFY__WEB_PUSH__ALLOW_HTTP_ENDPOINTS: "true" };
delete env.AEDNET_DATABASE_URL;
const server = spawn(bin, ["demo", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"], {
  cwd: dir, stdio: ["ignore", "pipe", "inherit"], env,
});
const tokens = {};
const base = await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error("aednet did not start in 120 s")), 120_000);
  let buf = "";
  server.stdout.on("data", d => {
    buf += d;
    for (const m of buf.matchAll(/^(admin|dispatcher)\t(aed_\S+)$/gm)) tokens[m[1]] = m[2];
    const m = buf.match(/aednet listening on (http:\/\/\S+)/);
    if (m) { clearTimeout(timer); resolve(m[1]); }
  });
  server.on("exit", code => reject(new Error(`aednet exited with ${code}`)));
});
const origin = new URL(base).origin;

async function http(path, { method = "GET", token, body } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const json = await r.json().catch(() => null);
  if (!r.ok) throw new Error(`${method} ${path} → ${r.status} ${JSON.stringify(json)}`);
  return json;
}

const browser = await chromium.launch({
  executablePath: browserPath,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const errors = [];
const watch = page => {
  page.on("pageerror", e => errors.push(`${page.url()}: ${e.message}`));
  // Refusals (4xx) are expected, and so are failed loads while the test holds the phone offline.
  page.on("console", m => {
    if (m.type() === "error" && !/status of 4\d\d|ERR_INTERNET_DISCONNECTED|WebSocket connection to/.test(m.text())) errors.push(`${page.url()}: ${m.text()}`);
  });
  return page;
};
const noSideways = async page => {
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `no sideways scrolling (${overflow} px too wide)`);
};

let ok = false;
try {
  // A demo rescuer with a valid certificate, and the place of the arrest 150 m from them.
  const rescuers = await http("/api/v1/rescuers?limit=100", { token: tokens.admin });
  const today = new Date().toISOString().slice(0, 10);
  const r = rescuers.items.find(x => x.cert_expires > today && x.cert_issued <= today);

  // Enrolment by QR code: the admin's rescuer list issues the phone's token as a QR code of
  // the enrolment link (shown once, with the warning), in both languages.
  const adminCtx = await browser.newContext({ locale: "zh-CN", viewport: { width: 1024, height: 900 } });
  const admin = watch(await adminCtx.newPage());
  await admin.goto(base + "/rescuers");
  await admin.waitForSelector("dialog#login[open]");
  await admin.fill("#token", tokens.admin);
  await admin.click("#login-submit");
  await admin.click(`li[data-rescuer="${r.id}"] button.enrol`);
  await admin.waitForSelector("dialog#enrol[open] img#enrol-qr");
  await admin.waitForFunction(() => document.querySelector("#enrol-qr").naturalWidth > 100, null, { timeout: 5000 });
  assert.match(await admin.locator("#enrol .call").textContent(), /密钥.*只显示这一次/);
  const enrolUrl = await admin.locator("#enrol-qr").getAttribute("data-url");
  assert.ok(enrolUrl.startsWith(`${base}/responder#enrol=aed_`), enrolUrl);
  await admin.locator("dialog#enrol").screenshot({ path: join(shots, "rescuers-enrol-zh.png") });
  await admin.click("#enrol-done");
  await admin.waitForSelector("dialog#enrol", { state: "detached" });
  await admin.click("#lang");
  await admin.click(`li[data-rescuer="${r.id}"] button.enrol`);
  await admin.waitForSelector("dialog#enrol[open] img#enrol-qr");
  assert.match(await admin.locator("#enrol .call").textContent(), /secret.*shown only once/);
  await admin.locator("dialog#enrol").screenshot({ path: join(shots, "rescuers-enrol-en.png") });
  const spare = await admin.locator("#enrol-qr").getAttribute("data-url");
  assert.notEqual(spare, enrolUrl, "a new token each time");
  await admin.click("#enrol-done");
  await adminCtx.close();
  const rt = new URL(enrolUrl).hash.slice("#enrol=".length);
  await http("/api/v1/me/duty", { method: "PUT", token: rt, body: { on_duty: false, location_consent: false } });
  const spot = { lat: 28.962, lon: 118.872 };
  const ctx = await browser.newContext({ locale: "zh-CN", viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true,
    permissions: ["geolocation", "notifications"], geolocation: { latitude: spot.lat + 0.00135, longitude: spot.lon, accuracy: 12 } });
  let page = watch(await ctx.newPage());

  // The phone opens the link in the QR code → signed in; the token leaves the address bar.
  await page.goto(enrolUrl);
  await page.waitForSelector("#duty-btn");
  assert.equal(new URL(page.url()).hash, "", "the token is not left in the URL");
  assert.match(await page.locator("#me h1").textContent(), new RegExp(r.name));
  assert.match(await page.locator("#cert").textContent(), /证书有效期/);
  // On duty needs the consent: refused without it, then ticked.
  await page.click("#duty-btn");
  await page.waitForSelector("#duty-error:has-text('同意')");
  await page.check("#consent");
  await page.click("#duty-btn");
  await page.waitForSelector("#duty-state.on");
  await page.waitForSelector("#loc-state:has-text('精度')");
  await page.screenshot({ path: join(shots, "responder-home-zh-360.png"), fullPage: true });
  await noSideways(page);
  // The service worker controls the app; the shell works offline.
  await page.waitForFunction(async () => !!(await navigator.serviceWorker.getRegistration("/responder"))?.active, null, { timeout: 15000 });
  await ctx.setOffline(true);
  await page.reload();
  await page.waitForSelector("body[data-ready]");
  await ctx.setOffline(false);
  await page.reload();
  await page.waitForSelector("#duty-state.on");
  // The position reached the server (its own read: the rescuer is in the live index only
  // through the socket frames of the page).
  const mf = await (await fetch(`${base}/api/v1/me/rescuer`, { headers: { Authorization: `Bearer ${rt}` } })).json();
  assert.equal(mf.on_duty, true);
  assert.equal(mf.location_consent, true);

  // This browser's push subscription. Headless chromium has no push service of its own, so
  // the subscription names this script's (with keys it holds); the worker gets what arrives.
  await http("/api/v1/me/push-subscriptions", { method: "POST", token: rt,
    body: { endpoint: pushUrl, keys: { p256dh: b64u(ua.getPublicKey()), auth: b64u(auth) } } });

  // The phone goes in the pocket: the app is closed (no socket). A page of the same origin
  // stays for the DevTools session that plays the push service's part.
  const holder = watch(await ctx.newPage());
  await holder.goto(`${base}/responder.webmanifest`);
  const cdp = await ctx.newCDPSession(holder);
  const regs = [];
  cdp.on("ServiceWorker.workerRegistrationUpdated", e => regs.push(...e.registrations));
  await cdp.send("ServiceWorker.enable");
  await page.close();
  await new Promise(r => setTimeout(r, 300));

  const inc = await http("/api/v1/incidents", { method: "POST", token: tokens.dispatcher,
    body: { lat: spot.lat, lon: spot.lon, address: "衢州市柯城区 测试路 1 号", notes: "E2E-NOTE 不应出现在推送中" } });
  const mine = inc.offers.find(o => o.rescuer_id === r.id);
  assert.ok(mine, `the rescuer is in the first wave: ${JSON.stringify(inc.offers)}`);
  const msg = await nextPush(m => m.type === "offer" && m.incident_id === inc.id);
  assert.equal(msg.offer_id, mine.id);
  assert.ok(!JSON.stringify(msg).includes("E2E-NOTE"), "the dispatcher's notes are not pushed");
  const reg = regs.find(x => x.scopeURL === `${base}/responder` && !x.isDeleted);
  assert.ok(reg, `a registration for /responder: ${JSON.stringify(regs)}`);
  await cdp.send("ServiceWorker.deliverPushMessage", { origin, registrationId: reg.registrationId, data: JSON.stringify(msg) });
  // The worker showed the notification and confirmed receipt.
  await holder.waitForFunction(async () => {
    const g = await navigator.serviceWorker.getRegistration("/responder");
    return g && (await g.getNotifications()).some(n => n.tag.startsWith("incident-"));
  }, null, { timeout: 10000 });
  const title = await holder.evaluate(async () => (await (await navigator.serviceWorker.getRegistration("/responder")).getNotifications())[0].title);
  assert.equal(title, "AED 急救呼叫");
  for (let i = 0; ; i++) {
    const d = await http(`/api/v1/incidents/${inc.id}`, { token: tokens.dispatcher });
    const rec = d.deliveries.find(x => x.rescuer_id === r.id && x.channel === "web_push" && x.offer_id === mine.id);
    if (rec && rec.state === "delivered") break;
    assert.ok(i < 100, `push recorded as delivered: ${JSON.stringify(d.deliveries)}`);
    await new Promise(r => setTimeout(r, 100));
  }

  // The dispatcher's board shows it next to the offer.
  const board = watch(await (await browser.newContext({ locale: "zh-CN", viewport: { width: 1280, height: 800 } })).newPage());
  await board.goto(base + "/dispatch");
  await board.waitForSelector("dialog#login[open]");
  await board.fill("#token", tokens.dispatcher);
  await board.click("#login-submit");
  await board.waitForSelector(`#incidents button[data-id="${inc.id}"]`);
  await board.click(`#incidents button[data-id="${inc.id}"]`);
  await board.waitForSelector(`#offers li[data-rescuer="${r.id}"] .delivery[data-channel=web_push][data-state=delivered]`, { state: "attached" });
  await board.evaluate(() => { const d = document.querySelector("#offers").closest("details"); if (d) d.open = true; });
  assert.match(await board.locator(`#offers li[data-rescuer="${r.id}"]`).textContent(), /推送: 已送达手机/);
  await board.locator(`#offers li[data-rescuer="${r.id}"]`).screenshot({ path: join(shots, "responder-board-offer-zh.png") });

  // The phone is picked up: the app opens on the full-screen alert.
  page = watch(await ctx.newPage());
  await page.goto(`${base}/responder`);
  await page.waitForSelector("#alert:not([hidden]) #accept-btn");
  assert.match(await page.locator("#alert-role").textContent(), mine.fetch_aed ? /取 AED/ : /心肺复苏/);
  assert.match(await page.locator("#countdown").textContent(), /请在 \d+ 秒内回应/);
  await noSideways(page);
  await page.screenshot({ path: join(shots, "responder-alert-zh-360.png") });
  await page.click("#alert-lang");
  await page.waitForSelector("#countdown:has-text('Answer within')");
  await page.screenshot({ path: join(shots, "responder-alert-en-360.png") });
  await page.click("#alert-lang");
  assert.ok(!(await page.locator("#alert").textContent()).includes("null"), "no absent part printed");
  // Accept → the way, with the map; then "arrived".
  await page.click("#accept-btn");
  await page.waitForSelector("#way #arrived-btn");
  await page.waitForSelector("#way-map .leaflet-interactive", { state: "attached" });
  if (mine.fetch_aed) await page.waitForSelector("#way-aed");
  await noSideways(page);
  await page.screenshot({ path: join(shots, "responder-way-zh-360.png") });
  // A reload resumes the way (state kept on the phone and on the server).
  await page.reload();
  await page.waitForSelector("#way #arrived-btn");
  await page.click("#lang");
  await page.waitForSelector("#arrived-btn:has-text('I have arrived')");
  await page.screenshot({ path: join(shots, "responder-way-en-360.png") });
  await page.click("#arrived-btn");
  await page.waitForSelector("#way h1:has-text('At the scene')");
  await board.waitForSelector("#timeline li[data-kind=arrived]", { timeout: 10000 });
  const after = await http(`/api/v1/incidents/${inc.id}`, { token: tokens.dispatcher });
  assert.equal(after.offers.find(o => o.rescuer_id === r.id).state, "arrived");

  // The dispatcher closes the incident (no frame to a responder at the scene): the app finds
  // it closed when it next loads, then home with the history.
  await http(`/api/v1/incidents/${inc.id}/close`, { method: "POST", token: tokens.dispatcher,
    body: { aed_applied: true, shock_delivered: false, handed_to_ems: true } });
  await page.reload();
  await page.waitForSelector("#ended[data-type=closed]", { timeout: 10000 });
  await page.screenshot({ path: join(shots, "responder-ended-en-360.png") });
  await page.click("#back-btn");
  // The history card is the server's record of this rescuer's own call-outs.
  await page.waitForSelector(`#history[data-source=server] li[data-incident="${inc.id}"]`);
  const mineOnServer = await http("/api/v1/me/incidents", { token: rt });
  assert.ok(mineOnServer.items.every(i => i.offers.length >= 1 && !("rescuer_id" in i.offers[0])), JSON.stringify(mineOnServer));
  assert.equal(mineOnServer.items[0].incident_id, inc.id);
  await page.screenshot({ path: join(shots, "responder-home-en-360.png"), fullPage: true });

  // A second incident while the app is open: the offer comes over the socket (confirmed, so
  // not pushed); accepted, then the dispatcher cancels: the cancel screen.
  const before = pushed.length;
  const inc2 = await http("/api/v1/incidents", { method: "POST", token: tokens.dispatcher,
    body: { lat: spot.lat, lon: spot.lon, address: "衢州市柯城区 测试路 2 号" } });
  assert.ok(inc2.offers.some(o => o.rescuer_id === r.id), "offered again");
  await page.waitForSelector("#alert:not([hidden]) #accept-btn", { timeout: 10000 });
  await page.click("#accept-btn");
  await page.waitForSelector("#way #arrived-btn");
  if (mine.fetch_aed) await page.waitForSelector("#cabinet-code, #way-aed");
  await http(`/api/v1/incidents/${inc2.id}/cancel`, { method: "POST", token: tokens.dispatcher, body: {} });
  await page.waitForSelector("#ended[data-type=cancel]", { timeout: 10000 });
  await page.click("#lang");
  await page.screenshot({ path: join(shots, "responder-cancelled-zh-360.png") });
  await new Promise(r => setTimeout(r, 1200)); // past the ack time-out: nothing may be pushed
  assert.equal(pushed.filter(m => m.incident_id === inc2.id).length, 0, `the socket confirmed: ${JSON.stringify(pushed.slice(before))}`);
  const d2 = await http(`/api/v1/incidents/${inc2.id}`, { token: tokens.dispatcher });
  assert.ok(d2.deliveries.some(x => x.rescuer_id === r.id && x.channel === "ws" && x.state === "delivered"), JSON.stringify(d2.deliveries));
  ok = true;
} catch (e) {
  console.error("responder e2e FAILED:", e);
  for (const c of browser.contexts()) for (const p of c.pages()) await p.screenshot({ path: join(shots, `FAILED-responder-${c.pages().indexOf(p)}.png`) }).catch(() => {});
} finally {
  await browser.close();
  server.kill("SIGTERM");
  pushService.close();
  rmSync(dir, { recursive: true, force: true });
}
for (const e of errors) console.error("browser error:", e);
console.log(`responder e2e: ${ok && !errors.length ? "ok" : "FAILED"}; screenshots in ${shots}`);
process.exit(ok && !errors.length ? 0 : 1);
