// The public start page in a real browser (Debian's chromium, headless) against the real
// binary serving the demo city: find the nearest AED for a point, see a bad coordinate named,
// switch languages. Screenshots go to web/e2e/screenshots/ for a human to look at.
import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";

const here = dirname(fileURLToPath(import.meta.url));
// Absolute: the server runs in a temporary directory.
const bin = resolve(process.env.AEDNET_BIN || join(here, "../../target/debug/aednet"));
const browserPath = process.env.CHROMIUM || "/usr/bin/chromium";
const shots = join(here, "screenshots");
mkdirSync(shots, { recursive: true });

const dir = mkdtempSync(join(tmpdir(), "aednet-e2e-"));
const env = { ...process.env };
delete env.AEDNET_DATABASE_URL; // the demo's own SQLite file in the temporary directory
const server = spawn(bin, ["demo", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"], {
  cwd: dir, stdio: ["ignore", "pipe", "inherit"], env,
});
const base = await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error("aednet did not start in 120 s")), 120_000);
  let buf = "";
  server.stdout.on("data", d => {
    buf += d;
    const m = buf.match(/aednet listening on (http:\/\/\S+)/);
    if (m) { clearTimeout(timer); resolve(m[1]); }
  });
  server.on("exit", code => reject(new Error(`aednet exited with ${code}`)));
  server.on("error", e => reject(new Error(`cannot start ${bin}: ${e.message}`)));
});

let failed = false;
const browser = await chromium.launch({ executablePath: browserPath, args: ["--headless", "--no-sandbox"] });
try {
  for (const [locale, name, texts] of [
    ["zh-CN", "zh", { title: "最近的可用 AED", found: /找到 5 台/, other: "English" }],
    ["en-US", "en", { title: "Nearest usable AED", found: /5 AEDs, fastest first/, other: "中文" }],
  ]) {
    const page = await browser.newPage({ locale, viewport: { width: 360, height: 900 } });
    await page.goto(base + "/");
    assert.equal(await page.locator("#find-title").textContent(), texts.title, "default language follows the browser");
    // The demo city's railway station area: five usable AEDs, fastest round trip first.
    await page.fill("#lat", "28.9700");
    await page.fill("#lon", "118.8700");
    await page.click("button.primary");
    await page.waitForSelector("ol#results li");
    assert.match(await page.locator("#status").textContent(), texts.found);
    assert.equal(await page.locator("ol#results li").count(), 5);
    assert.equal(await page.locator("#plot circle").count(), 1 + 5 + 1, "ring, five AEDs, the patient");
    const api = await (await fetch(`${base}/api/v1/aeds/nearest?lat=28.9700&lon=118.8700&k=5`)).json();
    const first = await page.locator("ol#results li").first().textContent();
    assert.ok(first.includes(api.results[0].name), `the first listed is the API's first: ${first}`);
    assert.ok(!(await page.content()).includes("cabinet_code"));
    await page.screenshot({ path: join(shots, `public-map-${name}.png`) });
    // A bad latitude is reported with the field named, nothing else breaks.
    await page.fill("#lat", "95");
    await page.click("button.primary");
    await page.waitForFunction(() => document.querySelector("#status").textContent.startsWith("lat"));
    assert.equal(await page.locator("ol#results li").count(), 0);
    // The language switch changes every string.
    await page.click("#lang");
    assert.notEqual(await page.locator("#find-title").textContent(), texts.title);
    assert.equal(await page.locator("#lang").textContent(), name === "zh" ? "中文" : "English");
    await page.close();
  }
  console.log(`web e2e: public map OK against ${base}; screenshots in ${shots}`);
} catch (e) {
  failed = true;
  console.error("web e2e FAILED:", e);
} finally {
  await browser.close();
  server.kill("SIGTERM");
  rmSync(dir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
