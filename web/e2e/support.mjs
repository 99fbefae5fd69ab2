// Helpers of the end-to-end tests: the real ipintel binary on loopback with
// a throwaway database and the real datasets, and Debian's Chromium driven
// by playwright-core. Every wait is bounded; the server is stopped on every
// path out (normal end, failure, signal).

import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const BIN = process.env.IPINTEL_BIN ?? join(ROOT, "target/ci/ipintel");
export const DATA = process.env.IPINTEL_DATA_DIR ?? join(ROOT, "data");
export const CHROMIUM = process.env.IPINTEL_CHROMIUM ?? "/usr/bin/chromium";
export const SHOTS = join(ROOT, "docs/screenshots");

/** How long the server may take to load the data and listen. */
const START_TIMEOUT_MS = 180_000;
/** How long a graceful stop may take before the process is killed. */
const STOP_TIMEOUT_MS = 30_000;

const live = new Set();
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    for (const child of live) child.kill("SIGKILL");
    process.exit(130);
  });
}
process.on("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

/** The environment of the server: none of the caller's IPINTEL_* settings. */
function serverEnv(extra) {
  const env = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith("IPINTEL_") && name !== "RUST_LOG") env[name] = value;
  }
  return { ...env, IPINTEL_LOG_FORMAT: "json", RUST_LOG: "info", IPINTEL_DATA_REFRESH_SECS: "0", ...extra };
}

/** Starts `ipintel serve` on 127.0.0.1 with a free port; resolves once it
 *  logs `listening` (the data is loaded by then). */
export async function startServer(extraEnv = {}) {
  const work = mkdtempSync(join(tmpdir(), "ipintel-e2e-"));
  const db = join(work, "e2e.db");
  const env = serverEnv(extraEnv);
  const child = spawn(BIN, ["serve", "--bind", "127.0.0.1:0", "--data-dir", DATA, "--db", db], {
    cwd: ROOT,
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  live.add(child);
  const log = [];
  const lines = createInterface({ input: child.stderr });
  const addr = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`no "listening" line in ${START_TIMEOUT_MS} ms:\n${log.join("\n")}`)), START_TIMEOUT_MS);
    child.once("exit", (code) => {
      clearTimeout(timer);
      fail(new Error(`ipintel exited with ${code} before listening:\n${log.join("\n")}`));
    });
    lines.on("line", (line) => {
      log.push(line);
      try {
        const event = JSON.parse(line);
        if (event.message === "listening") {
          clearTimeout(timer);
          ok(event.addr);
        }
      } catch {
        // Not JSON: kept in the log only.
      }
    });
  });
  child.removeAllListeners("exit");
  const base = `http://${addr}`;

  return {
    base,
    db,
    log,
    /** Runs the binary's CLI on the same database. */
    cli(args) {
      return execFileSync(BIN, args, {
        cwd: ROOT,
        env: { ...env, IPINTEL_DB: db },
        encoding: "utf8",
        timeout: 60_000,
        stdio: ["ignore", "pipe", "pipe"],
      });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((ok) => child.once("exit", ok));
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }
      live.delete(child);
      rmSync(work, { recursive: true, force: true });
    },
  };
}

/** Debian's Chromium, headless, with a fresh profile that Playwright makes
 *  in a temporary directory and removes on close. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60_000,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

/**
 * A page in a context of its own (fresh storage), whose requests seem to
 * come from `client` (the server trusts 127.0.0.1 as a proxy, so each
 * context has its own portal allowance). Any request to another host is
 * refused and recorded, so a test can prove nothing left loopback;
 * Content-Security-Policy reports and page errors are recorded too.
 */
export async function openPage(browser, server, { viewport = DESKTOP, client, phone = false } = {}) {
  const context = await browser.newContext({
    viewport,
    deviceScaleFactor: 1,
    isMobile: phone,
    hasTouch: phone,
    extraHTTPHeaders: client ? { "X-Forwarded-For": client } : {},
  });
  context.setDefaultTimeout(20_000);
  const outside = [];
  const problems = [];
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(`${server.base}/`) || url.startsWith("data:")) return route.continue();
    outside.push(url);
    return route.abort("blockedbyclient");
  });
  const page = await context.newPage();
  page.on("console", (message) => {
    if (/Content.Security.Policy/i.test(message.text())) problems.push(`CSP: ${message.text()}`);
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  return { context, page, outside, problems };
}

/** Writes a screenshot of what the page shows now to docs/screenshots. */
export async function screenshot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  await page.evaluate(() => document.fonts.ready);
  await page.screenshot({ path: join(SHOTS, `${name}.png`), animations: "disabled", caret: "hide" });
}

/** A Tor exit from the data, read the way the Rust tests read it: the first
 *  IPv4 range labelled Tor in iporigin's range table. */
export function torExit() {
  const blob = readFileSync(join(DATA, "iporigin/ranges.bin"));
  if (blob.subarray(0, 8).toString("latin1") !== "IPORIGIN") throw new Error("ranges.bin: bad magic");
  const labels = blob.readUInt16LE(18);
  const v4 = blob.readUInt32LE(20);
  let at = 28;
  const tor = new Set();
  for (let i = 0; i < labels; i += 1) {
    const len = blob.readUInt16LE(at);
    const label = blob.subarray(at + 2, at + 2 + len).toString("utf8");
    if (label.split("\t")[0] === "Tor") tor.add(i);
    at += 2 + len;
  }
  for (let i = 0; i < v4; i += 1) {
    const rec = at + i * 10;
    if (tor.has(blob.readUInt16LE(rec + 8))) {
      const n = blob.readUInt32LE(rec);
      return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
    }
  }
  throw new Error("no Tor range in ranges.bin");
}

/** A new free key through the self-service route. */
export async function newKey(server) {
  const response = await fetch(`${server.base}/v1/keys`, { method: "POST", signal: AbortSignal.timeout(10_000) });
  if (response.status !== 201) throw new Error(`POST /v1/keys: ${response.status} ${await response.text()}`);
  return (await response.json()).key;
}
