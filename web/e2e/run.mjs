// The four consoles in a real browser (Debian's chromium, headless, driven by playwright-core)
// against the real aednet binary serving the demo city — one server for the whole run:
//   public map   finds the nearest AED for a tapped point (first result = the API's first);
//   geocode      the dispatcher types part of an address, picks it with the keyboard, creates
//                the incident there;
//   dispatcher   signs in, creates an incident by clicking the map, a simulated rescuer (HTTP:
//                duty, location, accept) accepts, and the timeline shows it live;
//   maintenance  a simulated device (WebSocket, /ws/device) sends heartbeats then goes silent,
//                and the board shows it offline live; a work order and a guardian check;
//   planner      coverage hexagons and a placement result;
//   every console switches language;
//   hostile text  an AED, a district, an incident's address and notes and a plan's site named
//                `<img src=x onerror=alert(1)><b>x</b>` show as that literal text in every
//                console (lists, tooltips, popups): no dialog, no <b>, no <img>.
// Screenshots (desktop and 360 px) go to web/e2e/screenshots/ for a human to look at.
import { chromium } from "playwright-core";
import WebSocket from "ws";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";

const here = dirname(fileURLToPath(import.meta.url));
const bin = resolve(process.env.AEDNET_BIN || join(here, "../../target/debug/aednet"));
const browserPath = process.env.CHROMIUM || "/usr/bin/chromium";
const shots = join(here, "screenshots");
mkdirSync(shots, { recursive: true });
const only = process.argv.slice(2); // e.g. `node run.mjs dispatch` runs one console

// ---- the server: demo city, devices offline after 2 s of silence
const dir = mkdtempSync(join(tmpdir(), "aednet-e2e-"));
const env = { ...process.env, AEDNET_GATEWAY__HEARTBEAT_INTERVAL_S: "1", AEDNET_GATEWAY__OFFLINE_AFTER_INTERVALS: "2",
  AEDNET_PUBLIC__PER_MINUTE: "0", AEDNET_LOG_LEVEL: "warn" };
delete env.AEDNET_DATABASE_URL; // the demo's own SQLite file in the temporary directory
const server = spawn(bin, ["demo", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"], {
  cwd: dir, stdio: ["ignore", "pipe", "inherit"], env,
});
const tokens = {};
const base = await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error("aednet did not start in 120 s")), 120_000);
  let buf = "";
  server.stdout.on("data", d => {
    buf += d;
    for (const m of buf.matchAll(/^(admin|dispatcher|maintenance|planner)\t(aed_\S+)$/gm)) tokens[m[1]] = m[2];
    const m = buf.match(/aednet listening on (http:\/\/\S+)/);
    if (m) { clearTimeout(timer); resolve(m[1]); }
  });
  server.on("exit", code => reject(new Error(`aednet exited with ${code}`)));
  server.on("error", e => reject(new Error(`cannot start ${bin}: ${e.message}`)));
});
for (const r of ["admin", "dispatcher", "maintenance", "planner"]) assert.ok(tokens[r], `the demo printed a ${r} token`);

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
async function newPage(locale, width = 1280, height = 800, extra = {}) {
  const ctx = await browser.newContext({ locale, viewport: { width, height }, ...extra });
  const page = await ctx.newPage();
  page.on("pageerror", e => errors.push(`${page.url()}: ${e.message}`));
  // Expected refusals (a bad latitude, a wrong token) log 4xx "Failed to load resource"; real
  // script errors and 5xx do not pass.
  page.on("console", m => {
    if (m.type() === "error" && !/status of 4\d\d/.test(m.text())) errors.push(`${page.url()}: ${m.text()}`);
  });
  return page;
}
// The planner is ready once its first coverage answer is in: on a machine still busy with other
// work (a build beside the tests) that took longer than the default 30 s once.
async function signIn(page, path, token, timeout = 60_000) {
  await page.goto(base + path);
  await page.waitForSelector("dialog#login[open]");
  await page.fill("#token", token);
  await page.click("#login-submit");
  await page.waitForSelector("body[data-ready]", { timeout });
}
async function switchLanguage(page, heading) {
  const before = await page.locator(heading).textContent();
  const buttonBefore = await page.locator("#lang").textContent();
  await page.click("#lang");
  const after = await page.locator(heading).textContent();
  assert.notEqual(after, before, "the language switch changes the heading");
  assert.notEqual(await page.locator("#lang").textContent(), buttonBefore);
  await page.click("#lang");
  assert.equal(await page.locator(heading).textContent(), before);
}
/** Readable at 360 px: nothing wider than the screen. */
async function noSideways(page) {
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `no sideways scrolling (${overflow} px too wide)`);
}
/** Clicks the bare map (no marker under the pointer) near a fraction of its box. */
async function clickMap(page, fx, fy) {
  const box = await page.locator("#map").boundingBox();
  const spot = await page.evaluate(({ x0, y0, w, hgt }) => {
    for (let r = 0; r < 200; r += 6) for (let a = 0; a < 360; a += 30) {
      const x = x0 + r * Math.cos(a * Math.PI / 180), y = y0 + r * Math.sin(a * Math.PI / 180);
      const el = document.elementFromPoint(x, y);
      if (el && el.closest("#map") && !el.closest(".leaflet-marker-icon, .leaflet-interactive, .leaflet-control, .leaflet-popup")) return { x, y };
    }
    return null;
  }, { x0: box.x + box.width * fx, y0: box.y + box.height * fy, w: box.width, hgt: box.height });
  assert.ok(spot, "a bare spot on the map");
  await page.mouse.click(spot.x, spot.y);
}

const results = [];
async function step(name, f) {
  if (only.length && !only.includes(name)) return;
  const t0 = Date.now();
  try { await f(); results.push([name, "ok", Date.now() - t0]); }
  catch (e) {
    results.push([name, "FAILED", Date.now() - t0]); console.error(`web e2e ${name} FAILED:`, e);
    // What the page looked like when it failed.
    for (const ctx of browser.contexts()) for (const p of ctx.pages()) await p.screenshot({ path: join(shots, `FAILED-${name}.png`) }).catch(() => {});
  }
}

try {
  await step("strings", async () => {
    // Every string in both languages: the same keys (recursively, and the same arity for
    // functions), and every key the pages use exists.
    const { STRINGS } = await import("../assets/i18n.js");
    const shape = (o, p = "") => Object.entries(o).flatMap(([k, v]) =>
      v && typeof v === "object" && !Array.isArray(v) ? shape(v, `${p}${k}.`) : [`${p}${k}:${typeof v}${typeof v === "function" ? v.length : ""}${Array.isArray(v) ? v.length : ""}`]).sort();
    assert.deepEqual(shape(STRINGS.zh), shape(STRINGS.en), "zh and en tables have the same keys");
    const { readdirSync, readFileSync } = await import("node:fs");
    const assets = join(here, "../assets");
    for (const f of readdirSync(assets).filter(f => /\.(js|html)$/.test(f) && f !== "i18n.js")) {
      const text = readFileSync(join(assets, f), "utf8");
      const used = [...text.matchAll(/\bt\("(\w+)"/g), ...text.matchAll(/data-i18n="(\w+)"/g), ...text.matchAll(/i18n-attr="\w+:(\w+)"/g)].map(m => m[1]);
      for (const k of used) assert.ok(k in STRINGS.en, `${f} uses the missing string "${k}"`);
      // Text never goes in as HTML: no innerHTML and friends; Leaflet tooltips and popups get
      // DOM nodes (textEl, h), never strings (which Leaflet inserts as HTML).
      assert.doesNotMatch(text, /innerHTML|outerHTML|insertAdjacentHTML|document\.write/, `${f} inserts HTML`);
      for (const m of text.matchAll(/\.bind(?:Tooltip|Popup)\(([^\n]*)/g)) {
        assert.match(m[1], /^(textEl\(|\(\) => (textEl|h)\()/, `${f}: ${m[0].slice(0, 80)} must pass a DOM node`);
      }
    }
  });

  await step("public", async () => {
    for (const [locale, name, texts] of [
      ["zh-CN", "zh", { title: "最近的可用 AED", found: n => `找到 ${n} 台，最快的在前` }],
      ["en-US", "en", { title: "Nearest usable AED", found: n => `${n} AEDs, fastest first` }],
    ]) {
      for (const [w, hgt] of [[360, 780], [1280, 800]]) {
        const page = await newPage(locale, w, hgt);
        await page.goto(base + "/");
        await page.waitForSelector("body[data-ready]");
        assert.equal(await page.locator("#find-title").textContent(), texts.title, "default language follows the browser");
        // The coordinate form starts at the data's centre (where the map was fitted), not at a
        // fixed city.
        const centre = await page.evaluate(() => { const c = document.querySelector("#map").leafletMap.getCenter(); return [c.lat.toFixed(4), c.lng.toFixed(4)]; });
        assert.deepEqual([await page.inputValue("#lat"), await page.inputValue("#lon")], centre, "form starts at the map's centre");
        // Tap the map near the demo city's centre: the page looks up that point.
        await clickMap(page, 0.5, 0.5);
        await page.waitForSelector("#best .card");
        const lat = await page.inputValue("#lat"), lon = await page.inputValue("#lon");
        // How many are open and usable there depends on the hour the test runs (the demo's
        // opening hours): the page must show what the API answers for the same point.
        const api = await http(`/api/v1/aeds/nearest?lat=${lat}&lon=${lon}&k=5`);
        const n = api.results.length;
        assert.ok(n >= 2, `the demo city's centre has at least two usable AEDs at any hour (${n})`);
        // …and says how walks were timed when not on the street network (the page's centre
        // may lie between the towns, away from any street).
        const { STRINGS } = await import("../assets/i18n.js");
        const note = api.walk === "network" ? "" : " · " + STRINGS[name][api.walk_note === "off_network" ? "walkOffNetwork" : "walkStraight"];
        assert.equal(await page.locator("#status").textContent(), texts.found(n) + note);
        const first = await page.locator("#best .card .name").textContent();
        assert.ok(first.includes(api.results[0].name), `the first shown is the API's first (${api.results[0].name}): ${first}`);
        assert.equal(await page.locator("#results li").count(), n - 1, "the others as alternatives");
        assert.equal(await page.locator(".num-icon").count(), n, "every AED found numbered on the map");
        assert.equal(await page.locator("path.leaflet-interactive[stroke='#c8102e']").count(), 1, "a line to the best AED");
        assert.ok(await page.locator(".station-icon").count() > 5, "stations by kind");
        assert.ok(await page.locator(".leaflet-control-scale").isVisible(), "a scale bar");
        assert.ok(!(await page.content()).includes("cabinet_code"));
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
        assert.ok(overflow <= 0, `no sideways scrolling at ${w} px (${overflow} px too wide)`);
        // "Use my location": the browser's position (granted here) is looked up.
        await page.context().grantPermissions(["geolocation"]);
        await page.context().setGeolocation({ latitude: 28.9555, longitude: 118.8601 });
        const here = await http("/api/v1/aeds/nearest?lat=28.95550&lon=118.86010&k=5");
        await page.click("#locate");
        await page.waitForFunction(n => (document.querySelector("#best .name") || {}).textContent?.includes(n), here.results[0].name);
        assert.equal(await page.inputValue("#lat"), "28.95550");
        // Typed coordinates: the demo city's railway station area.
        const station = await http("/api/v1/aeds/nearest?lat=28.9700&lon=118.8700&k=5");
        await page.fill("#lat", "28.9700");
        await page.fill("#lon", "118.8700");
        await page.click("#find");
        await page.waitForFunction(n => (document.querySelector("#best .name") || {}).textContent?.includes(n), station.results[0].name);
        await page.screenshot({ path: join(shots, `public-${name}-${w}.png`), fullPage: w === 360 });
        if (w === 360) {
          // A bad latitude is named in the page's language, and nothing stale stays on screen.
          await page.fill("#lat", "95");
          await page.click("#find");
          await page.waitForFunction(t => document.querySelector("#status").textContent === t,
            name === "zh" ? "纬度必须是 -90 到 90 之间的数字。" : "Latitude must be a number between -90 and 90.");
          assert.equal(await page.locator("#best .card").count(), 0);
          // The server's own check stays (a caller of the API gets the field named).
          const r = await fetch(`${base}/api/v1/aeds/nearest?lat=95&lon=118.87`);
          assert.equal(r.status, 422);
          assert.equal((await r.json()).field, "lat");
          await switchLanguage(page, "#find-title");
        }
        await page.context().close();
      }
    }
  });

  await step("dispatch", async () => {
    const page = await newPage("zh-CN");
    await signIn(page, "/dispatch", tokens.dispatcher);
    // A rescuer of the demo with a valid certificate signs in on the phone API.
    const rescuers = await http("/api/v1/rescuers?limit=200", { token: tokens.admin });
    const today = new Date().toISOString().slice(0, 10);
    const r = rescuers.items.find(x => x.cert_expires > today);
    const rt = (await http("/api/v1/tokens", { method: "POST", token: tokens.admin, body: { name: "e2e rescuer", role: "rescuer", subject_id: r.id } })).token;
    await http("/api/v1/me/duty", { method: "PUT", token: rt, body: { on_duty: true, location_consent: true } });
    // The dispatcher zooms to the city centre and clicks the map: the coordinates fill the form.
    await page.evaluate(() => document.querySelector("#map").leafletMap.setView([28.962, 118.872], 15, { animate: false }));
    await clickMap(page, 0.45, 0.5);
    const lat = Number(await page.inputValue("#lat")), lon = Number(await page.inputValue("#lon"));
    assert.ok(lat > 20 && lon > 100, `clicked coordinates ${lat}, ${lon}`);
    // The rescuer is 150 m away.
    await http("/api/v1/me/location", { method: "POST", token: rt, body: { lat: lat + 0.00135, lon, accuracy_m: 10 } });
    await page.fill("#address", "衢州市柯城区 测试路 1 号");
    await page.click("#create-btn");
    await page.waitForSelector("#timeline li[data-kind=offered]");
    const offers = await http("/api/v1/me/offers", { token: rt });
    assert.equal(offers.items.length, 1, "the rescuer got one offer");
    const o = offers.items[0];
    await http(`/api/v1/me/offers/${o.incident_id}/${o.offer_id}/accept`, { method: "POST", token: rt });
    // Live: the acceptance appears without reloading, the responder with distance and ETA.
    await page.waitForSelector("#timeline li[data-kind=accepted]", { timeout: 5000 });
    await page.waitForSelector(`#responders li:has-text("#${r.id}")`, { timeout: 5000 });
    assert.match(await page.locator("#responders").textContent(), /距离 1\d\d 米/);
    // The responder moves closer: the console follows (pushed by the server, no reload).
    await http("/api/v1/me/location", { method: "POST", token: rt, body: { lat: lat + 0.00045, lon, accuracy_m: 10 } });
    await page.waitForFunction(() => /距离 (4|5)\d 米/.test(document.querySelector("#responders").textContent), null, { timeout: 8000 });
    assert.match(await page.locator("#incidents").textContent(), /事件 #\d+/);
    assert.equal(await page.locator(".leaflet-marker-icon .responder-icon").count(), 1, "the responder on the map");
    await page.screenshot({ path: join(shots, "dispatch-zh-1280.png") });
    await page.setViewportSize({ width: 360, height: 780 });
    await noSideways(page);
    await page.screenshot({ path: join(shots, "dispatch-zh-360.png"), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 800 });
    await switchLanguage(page, "h1 [data-i18n=dispatchTitle]");
    // Close with an outcome: everyone is stood down, the state changes live.
    await page.check("#aed_applied");
    await page.click("#close-btn");
    await page.waitForFunction(() => document.querySelector("#detail-state").textContent === "已结案");
    await page.waitForSelector("#timeline li[data-kind=closed]");
    const closed = await http(`/api/v1/incidents/${o.incident_id}`, { token: tokens.dispatcher });
    assert.equal(closed.state, "closed");
    assert.equal(closed.outcome.aed_applied, true);
    await page.context().close();
  });

  await step("geocode", async () => {
    // The dispatcher types an address heard on the call — part of it, without the city — picks
    // the answer with the keyboard, and creates the incident there.
    const page = await newPage("zh-CN");
    await signIn(page, "/dispatch", tokens.dispatcher);
    // The address index loads in the background after start-up.
    let probe;
    for (const deadline = Date.now() + 60_000; Date.now() < deadline; await new Promise(r => setTimeout(r, 500))) {
      probe = await http(`/api/v1/geocode?q=${encodeURIComponent("大道 12号")}&limit=1`, { token: tokens.dispatcher });
      if (probe.indexed > 0) break;
    }
    const target = probe.results[0];
    assert.ok(target && target.kind === "address" && target.label.endsWith("大道12号"), `a demo house number: ${JSON.stringify(probe)}`);
    // "…大道 12号": the label without the town's first two characters and with a space before
    // the number, as typed while the caller speaks.
    const typed = `${target.label.slice(2, -3)} 12号`;
    await page.evaluate(([lat, lon]) => document.querySelector("#map").leafletMap.setView([lat, lon], 14, { animate: false }), [target.lat, target.lon]);
    await page.click("#address");
    // Nonsense finds nothing rather than something wrong, and says so.
    await page.keyboard.type("qqqq zzzz");
    await page.waitForFunction(() => document.querySelector("#geo-status").textContent.includes("没有匹配结果"));
    assert.equal(await page.locator("#geo-results li").count(), 0);
    await page.fill("#address", "");
    await page.keyboard.type(typed, { delay: 20 });
    await page.waitForSelector("#geo-results li[role=option]");
    const labels = await page.locator("#geo-results li[role=option] > span:first-child").allTextContents();
    const i = labels.indexOf(target.label);
    assert.ok(i >= 0, `${typed} lists ${target.label}: ${labels}`);
    assert.equal(await page.getAttribute("#address", "aria-expanded"), "true");
    for (let k = 0; k < i; k++) await page.keyboard.press("ArrowDown");
    assert.equal(await page.getAttribute(`#geo-${i}`, "aria-selected"), "true");
    await page.keyboard.press("Enter");
    // The marker and the coordinates are the answer's; focus moved on to the notes.
    assert.equal(await page.inputValue("#address"), target.label);
    assert.equal(await page.inputValue("#lat"), target.lat.toFixed(5));
    assert.equal(await page.inputValue("#lon"), target.lon.toFixed(5));
    assert.equal(await page.evaluate(() => document.activeElement.id), "notes");
    assert.equal(await page.locator(".leaflet-marker-icon .patient-icon").count(), 1);
    await page.keyboard.type("e2e geocode");
    await page.keyboard.press("Enter");
    await page.waitForSelector("#detail-state");
    assert.doesNotMatch(await page.locator("#detail").textContent(), /null|undefined/);
    const open = await http("/api/v1/incidents", { token: tokens.dispatcher });
    const inc = open.items.find(x => x.address === target.label);
    assert.ok(inc, `an incident at ${target.label}: ${JSON.stringify(open.items.map(x => x.address))}`);
    assert.ok(Math.abs(inc.lat - target.lat) < 1e-5 && Math.abs(inc.lon - target.lon) < 1e-5);
    await page.screenshot({ path: join(shots, "dispatch-geocode-zh-1280.png") });
    await http(`/api/v1/incidents/${inc.id}/cancel`, { method: "POST", token: tokens.dispatcher, body: {} });
    await page.context().close();
  });

  await step("maintenance", async () => {
    const page = await newPage("en-US");
    await signIn(page, "/maintenance", tokens.maintenance);
    // A monitored cabinet: a device token for one AED, heartbeats over /ws/device.
    const aed = (await http("/api/v1/aeds?limit=5")).items[2];
    const dt = (await http("/api/v1/tokens", { method: "POST", token: tokens.admin, body: { name: "e2e device", role: "device", subject_id: aed.id } })).token;
    const ws = new WebSocket(base.replace("http", "ws") + "/ws/device", { headers: { Authorization: `Bearer ${dt}` } });
    await new Promise((res, rej) => { ws.once("open", res); ws.once("error", rej); });
    const acks = [];
    ws.on("message", m => acks.push(JSON.parse(m)));
    let seq = 0;
    const send = body => ws.send(JSON.stringify({ v: 1, seq: ++seq, ts: new Date().toISOString(), ...body }));
    send({ type: "self_test", ok: true });
    for (let i = 0; i < 3; i++) { send({ type: "heartbeat", battery_pct: 90 }); await new Promise(r => setTimeout(r, 400)); }
    assert.ok(acks.filter(a => a.type === "ack").length >= 4, `acks: ${JSON.stringify(acks)}`);
    assert.equal(await page.locator(`#devices li[data-aed-id="${aed.id}"]`).count(), 0, "a ready device is not on the board");
    // Silence: the watchdog marks it offline after 2 s and the board shows it without a reload.
    ws.close();
    await page.waitForSelector(`#devices li[data-aed-id="${aed.id}"][data-status=offline]`, { timeout: 10_000 });
    assert.match(await page.locator("#summary").textContent(), new RegExp(`AED #${aed.id} is now offline`));
    await page.click(`#devices li[data-aed-id="${aed.id}"] button`);
    await page.waitForSelector("#history li");
    assert.match(await page.locator("#history").textContent(), /offline/);
    // A work order and a guardian check from the board.
    await page.fill("#order-title", "Check the modem");
    await page.click("#order-form button");
    await page.waitForSelector("#orders li:has-text('Check the modem')");
    await page.screenshot({ path: join(shots, "maintenance-en-1280.png") });
    await page.setViewportSize({ width: 360, height: 780 });
    await noSideways(page);
    await page.screenshot({ path: join(shots, "maintenance-en-360.png"), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 800 });
    await switchLanguage(page, "h1 [data-i18n=maintTitle]");
    await page.click("#check-ok");
    await page.waitForSelector(`#devices li[data-aed-id="${aed.id}"]`, { state: "detached", timeout: 5000 });
    await page.context().close();
  });

  await step("planner", async () => {
    const page = await newPage("zh-CN");
    await signIn(page, "/planner", tokens.planner);
    await page.waitForFunction(() => Number(document.body.dataset.hexes || 0) > 0, null, { timeout: 30_000 });
    const hexes = Number(await page.evaluate(() => document.body.dataset.hexes));
    assert.ok(hexes > 10, `coverage hexagons drawn: ${hexes}`);
    assert.match(await page.locator("#share").textContent(), /%/);
    assert.ok(await page.locator("#districts tbody tr").count() >= 1, "the district table");
    assert.ok(await page.locator("#weekly rect").count() >= 168, "the weekly profile");
    // Zoomed into the city centre now: coloured cells around the AEDs.
    await page.evaluate(() => document.querySelector("#map").leafletMap.setView([28.962, 118.872], 15, { animate: false }));
    await page.screenshot({ path: join(shots, "planner-zh-1280-centre.png") });
    // Night-time coverage through the slider (Wednesday 03:00).
    await page.locator("#hour").fill("51");
    await page.waitForFunction(() => document.querySelector("#hour-label").textContent.startsWith("周三 03:00"));
    await page.fill("#add", "3");
    await page.click("#run");
    await page.waitForSelector("#plan-share", { timeout: 60_000 });
    assert.match(await page.locator("#plan-share").textContent(), /覆盖率 [\d.]+% → [\d.]+%/);
    assert.equal(await page.locator(".leaflet-marker-icon .site-icon").count(), 3, "three proposed sites on the map");
    await page.screenshot({ path: join(shots, "planner-zh-1280.png") });
    // The inverse question: the fewest AEDs and the rescuers on duty for 30 % of the people.
    await page.fill("#target-share", "30");
    await page.click("#run-target");
    await page.waitForSelector("#target-result", { timeout: 60_000 });
    assert.match(await page.locator("#target-result").textContent(), /新增 \d+ 台 AED → [\d.]+%/);
    assert.match(await page.locator("#rescuers-needed").textContent(), /任一时刻需 \d+ 人在岗/);
    await page.setViewportSize({ width: 360, height: 780 });
    await noSideways(page);
    await page.screenshot({ path: join(shots, "planner-zh-360.png"), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 800 });
    await switchLanguage(page, "h1 [data-i18n=plannerTitle]");
    await page.context().close();
  });

  await step("hostile-text", async () => {
    const XSS = "<img src=x onerror=alert(1)><b>x</b>";
    const at = [118.8731, 28.9622]; // lon, lat: the demo city's centre
    const fc = { type: "FeatureCollection", features: [
      { type: "Feature", geometry: { type: "Point", coordinates: at },
        properties: { name: XSS, opening_hours: "24/7", access: "yes", location_description: XSS, note: XSS } },
      { type: "Feature", geometry: { type: "Polygon", coordinates: [[[118.90, 29.10], [118.91, 29.10], [118.91, 29.11], [118.90, 29.11], [118.90, 29.10]]] },
        properties: { name: XSS, population: 1000 } },
    ] };
    const imported = await fetch(`${base}/api/v1/import/geojson?name=hostile.geojson`, { method: "POST",
      headers: { Authorization: `Bearer ${tokens.admin}` }, body: JSON.stringify(fc) });
    assert.equal(imported.status, 200, await imported.text());
    // The index reloads after an import: poll until the caller's query finds it.
    let aed;
    for (const until = Date.now() + 20_000; !aed && Date.now() < until;) {
      aed = (await http(`/api/v1/aeds/nearest?lat=${at[1]}&lon=${at[0]}&k=5`)).results.find(r => r.name === XSS);
      if (!aed) await new Promise(r => setTimeout(r, 100));
    }
    assert.ok(aed, "the hostile AED is found near its own spot");

    const dialogs = [];
    /** Opens every tooltip (hexagons aside) and checks the page: the literal text, nothing parsed. */
    async function literalOnly(page, where) {
      const tips = await page.evaluate(() => {
        const map = document.querySelector("#map").leafletMap;
        const out = [];
        map.eachLayer(l => {
          if (!l.getTooltip || !l.getTooltip() || (l.feature && l.feature.properties && "cell" in l.feature.properties)) return;
          l.openTooltip(l.getLatLng ? l.getLatLng() : undefined);
          const el = l.getTooltip().getElement();
          if (el) out.push(el.textContent);
        });
        return out;
      });
      const seen = await page.evaluate(x => ({ b: document.querySelectorAll("b").length,
        img: document.querySelectorAll("img[src='x'], img[onerror]").length, text: document.body.innerText.includes(x) }), XSS);
      assert.deepEqual(dialogs, [], `${where}: no script ran`);
      assert.equal(seen.b, 0, `${where}: no <b> element`);
      assert.equal(seen.img, 0, `${where}: no <img> element`);
      assert.ok(seen.text, `${where}: the name shown as text`);
      return tips;
    }
    const open = async (locale) => {
      const page = await newPage(locale);
      page.on("dialog", d => { dialogs.push(`${page.url()}: ${d.message()}`); d.dismiss().catch(() => {}); });
      return page;
    };

    // Public map: the result card, its popup.
    let page = await open("en-US");
    await page.goto(base + "/");
    await page.waitForSelector("body[data-ready]");
    await page.fill("#lat", String(at[1]));
    await page.fill("#lon", String(at[0]));
    await page.click("#find");
    await page.waitForSelector("#best .card");
    assert.ok((await page.locator("#find-results, #best, #results").allTextContents()).join(" ").includes(XSS), "listed as text");
    await page.evaluate(x => {
      const map = document.querySelector("#map").leafletMap;
      map.eachLayer(l => { if (l.getPopup && l.getPopup() && l.options.title === x) l.openPopup(); });
    }, XSS);
    await page.waitForSelector(".leaflet-popup-content");
    assert.ok((await page.locator(".leaflet-popup-content").textContent()).includes(XSS), "the popup shows the literal name");
    await literalOnly(page, "public map");
    await page.context().close();

    // Dispatch: an incident at the AED with a hostile address and notes; its nearby AEDs.
    const inc = await http("/api/v1/incidents", { method: "POST", token: tokens.dispatcher,
      body: { lat: at[1] + 0.0003, lon: at[0], address: XSS, notes: XSS } });
    page = await open("zh-CN");
    await signIn(page, "/dispatch", tokens.dispatcher);
    await page.click(`#incidents button[data-id="${inc.id}"]`);
    // The detail: the address and notes, and the hostile AED among those nearby.
    await page.waitForFunction(x => document.querySelector("#detail-state") && document.body.innerText.split(x).length > 3, XSS);
    let tips = await literalOnly(page, "dispatch");
    assert.ok(tips.some(t => t.includes(XSS)), `an AED tooltip names it literally: ${JSON.stringify(tips.slice(0, 5))}`);
    await http(`/api/v1/incidents/${inc.id}/cancel`, { method: "POST", token: tokens.dispatcher, body: {} });
    await page.context().close();

    // Maintenance: the AED at fault on the board.
    await http(`/api/v1/aeds/${aed.id}/readiness`, { method: "PUT", token: tokens.maintenance, body: { status: "fault", reason: XSS } });
    page = await open("en-US");
    await signIn(page, "/maintenance", tokens.maintenance);
    await page.waitForSelector(`#devices li[data-aed-id="${aed.id}"]`);
    await page.click(`#devices li[data-aed-id="${aed.id}"] button`);
    await page.waitForSelector("#detail-title");
    assert.equal(await page.locator("#detail-title").textContent(), XSS);
    tips = await literalOnly(page, "maintenance");
    assert.ok(tips.some(t => t.includes(XSS)), "the board's marker tooltip names it literally");
    await page.context().close();

    // Planner: the hostile district in the selector and the table; a plan's site named like it
    // (the API's answer, with the name a candidate file could carry).
    page = await open("zh-CN");
    await page.route("**/api/v1/plan", async route => {
      const resp = await route.fetch();
      const json = await resp.json();
      for (const s of json.sites || []) s.name = XSS;
      await route.fulfill({ response: resp, json });
    });
    // (The planner draws the city's hexagons first: allow it the time the planner step does.)
    await page.goto(base + "/planner");
    await page.waitForSelector("dialog#login[open]");
    await page.fill("#token", tokens.planner);
    await page.click("#login-submit");
    await page.waitForSelector("body[data-ready]", { state: "attached", timeout: 90_000 });
    assert.ok((await page.locator("#districts").textContent()).includes(XSS), "the district table");
    assert.ok((await page.locator("#district").textContent()).includes(XSS), "the district selector");
    await page.fill("#add", "1");
    await page.click("#run");
    await page.waitForSelector("#plan-share", { timeout: 60_000 });
    tips = await literalOnly(page, "planner");
    assert.ok(tips.some(t => t.includes(XSS)), "the site's tooltip names it literally");
    await page.context().close();
  });

  await step("login", async () => {
    // A wrong role is refused with the reason; the right one gets in.
    const page = await newPage("en-US");
    await page.goto(base + "/maintenance");
    await page.waitForSelector("dialog#login[open]");
    await page.fill("#token", tokens.planner);
    await page.click("#login-submit");
    await page.waitForSelector("dialog#login[open] .error:has-text('planner')");
    await page.fill("#token", "aed_not-a-token");
    await page.click("#login-submit");
    await page.waitForSelector("dialog#login[open] .error:has-text('Unknown or revoked')");
    await page.screenshot({ path: join(shots, "login-en-1280.png") });
    await page.context().close();
  });
} finally {
  await browser.close();
  server.kill("SIGTERM");
  rmSync(dir, { recursive: true, force: true });
}
const failed = results.some(r => r[1] !== "ok") || errors.length > 0;
for (const e of errors) console.error("browser error:", e);
for (const [n, s, ms] of results) console.log(`web e2e ${n}: ${s} (${(ms / 1000).toFixed(1)} s)`);
console.log(`web e2e against ${base}; screenshots in ${shots}`);
process.exit(failed ? 1 : 0);
