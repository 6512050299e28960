// The street basemap in every console, in a real browser (Debian's chromium through
// playwright-core) against the real binary serving a real import: Liechtenstein from
// ../shared/data (skipped, saying so, when the file is not there). For each console:
//   the map draws streets  (pixels of the GL canvas: not a flat background, many colours);
//   labels follow the language (the label layers' text-field and the drawn pixels change);
//   no request leaves the machine (every request goes to the server under test);
//   "© OpenStreetMap contributors" is shown (OSM-derived tiles);
//   the first map paint time is printed (goal for the public page: ≤ 2 s);
// then the public page without WebGL: the plain map with a notice, never blank.
// Screenshots at 1280 and 360 px in both languages go to web/e2e/screenshots/basemap-*.png.
import { chromium } from "playwright-core";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";

const here = dirname(fileURLToPath(import.meta.url));
const bin = resolve(process.env.AEDNET_BIN || join(here, "../../target/debug/aednet"));
const browserPath = process.env.CHROMIUM || "/usr/bin/chromium";
const pbf = resolve(process.env.AEDNET_PBF || join(here, "../../../shared/data/liechtenstein.osm.pbf"));
const shots = join(here, "screenshots");
// The public page's first street-map paint: goal ≤ 2 s on the CI machine (issue 17). Printed
// always; asserted only when AEDNET_E2E_PAINT_BUDGET_MS is set (timings on a shared 2-core
// machine are no pass/fail test; the figure goes to the README with the command).
const PAINT_GOAL_MS = 2000;
const PAINT_BUDGET_MS = process.env.AEDNET_E2E_PAINT_BUDGET_MS ? Number(process.env.AEDNET_E2E_PAINT_BUDGET_MS) : null;
mkdirSync(shots, { recursive: true });
if (!existsSync(pbf)) {
  console.log(`web basemap e2e skipped: ${pbf} not found`);
  process.exit(0);
}

const dir = mkdtempSync(join(tmpdir(), "aednet-basemap-"));
const env = { ...process.env, AEDNET_PUBLIC__PER_MINUTE: "0", AEDNET_LOG_LEVEL: "warn",
  AEDNET_DATABASE_URL: `sqlite://${join(dir, "li.db")}` };
const run = args => {
  const r = spawnSync(bin, args, { cwd: dir, env, encoding: "utf8" });
  assert.equal(r.status, 0, `aednet ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
};
const t0 = Date.now();
const report = run(["import", "osm", pbf]);
const line = report.split("\n").find(l => l.startsWith("basemap:"));
assert.ok(line, `the import report has a basemap line:\n${report}`);
console.log(`import of ${pbf.split("/").pop()} in ${((Date.now() - t0) / 1000).toFixed(1)} s; ${line}`);
const token = run(["token", "create", "--role", "admin", "--name", "e2e"]).match(/(aed_\S+)/)[1];

const server = spawn(bin, ["serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"], {
  cwd: dir, stdio: ["ignore", "pipe", "inherit"], env,
});
const base = await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error("aednet did not start in 60 s")), 60_000);
  let buf = "";
  server.stdout.on("data", d => {
    buf += d;
    const m = buf.match(/aednet listening on (http:\/\/\S+)/);
    if (m) { clearTimeout(timer); resolve(m[1]); }
  });
  server.on("error", e => reject(new Error(`cannot start ${bin}: ${e.message}`)));
});
// The server loads the archive in the background: wait until it answers.
for (let i = 0; ; i++) {
  const r = await fetch(`${base}/tiles/basemap.json`);
  if (r.ok) break;
  assert.ok(i < 200, "the basemap is served within 20 s");
  await new Promise(r => setTimeout(r, 100));
}

const consoles = [["public", "/", "#find-title"], ["dispatch", "/dispatch"], ["maintenance", "/maintenance"], ["planner", "/planner"]];
const errors = [];
const results = [];
let failed = 0;

async function open(browser, path, locale, width, height = 800) {
  const ctx = await browser.newContext({ locale, viewport: { width, height } });
  const page = await ctx.newPage();
  const outside = [];
  page.on("request", r => { if (!r.url().startsWith(base) && !r.url().startsWith("data:") && !r.url().startsWith("blob:")) outside.push(r.url()); });
  page.on("pageerror", e => errors.push(`${path}: ${e.message}`));
  page.on("console", m => { if (m.type() === "error") errors.push(`${path}: ${m.text()}`); });
  await page.addInitScript(t => sessionStorage.setItem("aednet.token", t), token);
  await page.goto(base + path);
  return { page, ctx, outside };
}

/** Share of canvas pixels unlike the background, and the number of distinct colours. */
async function pixels(page) {
  return page.evaluate(() => {
    const gl = document.querySelector("#map").basemap;
    const src = gl.getCanvas();
    const c = document.createElement("canvas");
    c.width = src.width; c.height = src.height;
    const g = c.getContext("2d");
    g.drawImage(src, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    const colours = new Map();
    let off = 0, n = 0, hash = 0;
    for (let i = 0; i < d.length; i += 4 * 7) {
      const [r, gg, b] = [d[i], d[i + 1], d[i + 2]];
      const key = (r >> 3) << 10 | (gg >> 3) << 5 | (b >> 3);
      colours.set(key, (colours.get(key) || 0) + 1);
      if (Math.abs(r - 0xf2) + Math.abs(gg - 0xef) + Math.abs(b - 0xe9) > 12) off++;
      hash = (hash * 31 + r + gg * 7 + b * 13) >>> 0;
      n++;
    }
    const common = [...colours.values()].filter(v => v > n / 1000).length;
    return { share: off / n, colours: common, hash };
  });
}

async function idle(page) {
  // A repaint is forced so "idle" fires even when nothing was pending.
  await page.evaluate(() => new Promise(r => {
    const gl = document.querySelector("#map").basemap;
    gl.once("idle", r);
    gl.triggerRepaint();
  }));
}

const browser = await chromium.launch({ executablePath: browserPath,
  args: ["--headless", "--no-sandbox", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-angle=swiftshader", "--enable-unsafe-swiftshader"] });
try {
  // One untimed load first: the browser's GPU process (SwiftShader here) and module compile
  // start once per browser, not per page a user opens.
  {
    const warm = await open(browser, "/", "en-GB", 1280);
    await warm.page.waitForSelector("#map[data-basemap=drawn]", { timeout: 30_000 }).catch(() => {});
    await warm.ctx.close();
  }
  for (const [name, path] of consoles) {
    const t = Date.now();
    try {
      const { page, ctx, outside } = await open(browser, path, "zh-CN", 1280);
      await page.waitForSelector("#map[data-basemap=drawn]", { timeout: 30_000 });
      const ms = Number(await page.getAttribute("#map", "data-basemap-ms"));
      const done = Number(await page.getAttribute("#map", "data-basemap-idle-ms"));
      console.log(`${name}: first street-map paint ${ms} ms after the page started loading, complete at ${done} ms`);
      assert.ok(ms > 0, "first paint recorded");
      if (name === "public") {
        console.log(`public: first paint goal ≤ ${PAINT_GOAL_MS} ms ${ms <= PAINT_GOAL_MS ? "met" : "NOT met"} (${ms} ms)`);
        if (PAINT_BUDGET_MS !== null) assert.ok(ms <= PAINT_BUDGET_MS, `first map paint ${ms} ms ≤ ${PAINT_BUDGET_MS} ms`);
      }
      // Zoom to Vaduz's centre: streets, buildings and labels.
      await page.evaluate(() => { document.querySelector("#map").leafletMap.setView([47.1410, 9.5215], 16, { animate: false }); });
      await idle(page);
      const zh = await pixels(page);
      assert.ok(zh.share > 0.2 && zh.colours >= 6, `streets drawn, not a flat background: ${JSON.stringify(zh)}`);
      const field = () => page.evaluate(() => JSON.stringify(document.querySelector("#map").basemap.getLayoutProperty("place-label", "text-field")));
      assert.match(await field(), /name:zh/);
      assert.match(await page.locator(".leaflet-control-attribution").textContent(), /OpenStreetMap/);
      await page.screenshot({ path: join(shots, `basemap-${name}-zh-1280.png`) });
      await page.click("#lang");
      await idle(page);
      assert.match(await field(), /name:en/, "labels follow the language");
      assert.match(await page.evaluate(() => JSON.stringify(document.querySelector("#map").basemap.getLayoutProperty("road-label", "text-field"))), /name:en/);
      const en = await pixels(page);
      assert.notEqual(en.hash, zh.hash, "the drawn labels changed with the language");
      await page.screenshot({ path: join(shots, `basemap-${name}-en-1280.png`) });
      assert.deepEqual(outside, [], "no request leaves the machine");
      await ctx.close();
      // Phones: both languages at 360 px.
      for (const locale of ["zh-CN", "en-GB"]) {
        const phone = await open(browser, path, locale, 360, 740);
        await phone.page.waitForSelector("#map[data-basemap=drawn]", { timeout: 30_000 });
        await phone.page.evaluate(() => { document.querySelector("#map").leafletMap.setView([47.1410, 9.5215], 15, { animate: false }); });
        await idle(phone.page);
        const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
        assert.ok(overflow <= 0, `fits 360 px (${overflow} px too wide)`);
        await phone.page.screenshot({ path: join(shots, `basemap-${name}-${locale.slice(0, 2)}-360.png`) });
        assert.deepEqual(phone.outside, [], "no request leaves the machine");
        await phone.ctx.close();
      }
      results.push([name, "ok", Date.now() - t]);
    } catch (e) {
      failed++; results.push([name, "FAILED", Date.now() - t]); console.error(`basemap e2e ${name} FAILED:`, e);
    }
  }
} finally {
  await browser.close();
}

// Without WebGL: the plain map with a notice, districts still drawn.
{
  const t = Date.now();
  const plain = await chromium.launch({ executablePath: browserPath,
    args: ["--headless", "--no-sandbox", "--disable-webgl", "--disable-webgl2", "--disable-3d-apis"] });
  try {
    const { page, outside } = await open(plain, "/", "en-GB", 1280);
    await page.waitForSelector("#map[data-basemap=no-webgl]", { timeout: 20_000 });
    await page.waitForSelector(".map-notice");
    assert.match(await page.locator(".map-notice").textContent(), /WebGL/);
    assert.ok(await page.locator("#map path.leaflet-interactive, #map svg path").count() > 0, "districts drawn on the plain map");
    assert.deepEqual(outside, []);
    await page.screenshot({ path: join(shots, "basemap-no-webgl-en-1280.png") });
    results.push(["no-webgl", "ok", Date.now() - t]);
  } catch (e) {
    failed++; results.push(["no-webgl", "FAILED", Date.now() - t]); console.error("basemap e2e no-webgl FAILED:", e);
  } finally {
    await plain.close();
  }
}
server.kill("SIGTERM");
await new Promise(r => server.on("exit", r));
rmSync(dir, { recursive: true, force: true });
const unexpected = errors.filter(e => !/status of 4\d\d/.test(e));
for (const e of unexpected) console.error("page error:", e);
for (const [n, s, ms] of results) console.log(`basemap ${n}: ${s} (${ms} ms)`);
const passed = results.filter(r => r[1] === "ok").length;
console.log(`basemap e2e: ${passed} passed, ${failed + (unexpected.length ? 1 : 0)} failed`);
process.exit(failed || unexpected.length ? 1 : 0);
