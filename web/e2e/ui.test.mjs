// End-to-end tests of the portal and the dashboard: Debian's Chromium,
// headless, against the real ipintel binary on loopback with the real
// datasets. They also write the screenshots that README links to.
//
//   node --test web/e2e/   (scripts/test.sh runs them after `cargo test`)

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  DESKTOP,
  PHONE,
  launchBrowser,
  newKey,
  openPage,
  screenshot,
  startServer,
  torExit,
} from "./support.mjs";

const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

/** Portal lookups each client may make at once in these tests. */
const PORTAL_BURST = 8;

let server;
let browser;
const pages = [];

before(async () => {
  server = await startServer({
    IPINTEL_TRUSTED_PROXIES: "127.0.0.1",
    IPINTEL_PORTAL_PER_MINUTE: String(PORTAL_BURST),
    IPINTEL_PORTAL_PER_DAY: "1000",
  });
  browser = await launchBrowser();
});

after(async () => {
  // Whatever happened: no request left loopback, no policy was broken.
  for (const { outside, problems } of pages) {
    assert.deepEqual(outside, [], "requests to other hosts");
    assert.deepEqual(problems, [], "CSP reports or page errors");
  }
  await browser?.close();
  await server?.stop();
});

async function open(options) {
  const opened = await openPage(browser, server, options);
  pages.push(opened);
  return opened;
}

/** Types `ip` in the lookup box and presses Enter. */
async function lookUp(page, ip) {
  const box = page.getByLabel("IP address", { exact: true });
  await box.fill(ip);
  await box.press("Enter");
}

const report = (page, ip) => page.locator(`article.report[data-ip="${ip}"]`);

/** No focus ring in the screenshots, and the top of the page in view. */
async function blur(page) {
  await page.evaluate(() => {
    if (document.activeElement instanceof HTMLElement) document.activeElement.blur();
    window.scrollTo(0, 0);
  });
}

describe("portal", () => {
  test("serves the page with a strict policy and only its own files", async () => {
    const response = await fetch(`${server.base}/`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-security-policy"), CSP);
    assert.equal(response.headers.get("x-content-type-options"), "nosniff");
    assert.equal(response.headers.get("referrer-policy"), "no-referrer");
    const html = await response.text();
    assert.match(html, /<script type="module" crossorigin src="\/assets\//);
    assert.doesNotMatch(html, /<script>|style=/);
  });

  test("shows my address by default, explained in words when reserved", async () => {
    // 198.51.100.0/24 is TEST-NET-2: a documentation range.
    const { page } = await open({ client: "198.51.100.10" });
    await page.goto(`${server.base}/`);
    const explained = page.locator(".reserved");
    await explained.waitFor();
    assert.match(await page.locator(".mine").innerText(), /your requests come from/);
    assert.match(await explained.innerText(), /Documentation \(TEST-NET-2\)/);
    assert.match(await explained.innerText(), /not a public internet address/);
  });

  test("looks up 8.8.8.8: threat, location, map, network, flags and reasons", async () => {
    const { page, context } = await open({ client: "198.51.100.11" });
    // What the reader types and submits wins over the "my address" lookup
    // still under way when the page opens (here held back 1.5 s).
    await context.route("**/v1/portal/me", async (route) => {
      await new Promise((wait) => setTimeout(wait, 1500));
      await route.continue();
    });
    await page.goto(`${server.base}/`);
    await lookUp(page, "8.8.8.8");
    const article = report(page, "8.8.8.8");
    await article.waitFor();
    assert.match(page.url(), /\?ip=8\.8\.8\.8$/);

    const badge = article.locator(".report-head .badge");
    const label = await badge.getAttribute("aria-label");
    assert.match(label, /^Threat level: (Clean|Low risk|Medium risk|High risk|Critical), score \d+ out of 100$/);
    assert.match(await badge.innerText(), /\d+\s*\/100/);
    assert.equal(await badge.locator("svg.level-icon").count(), 1, "a shape, not colour alone");

    const location = article.locator("section", { has: page.getByRole("heading", { name: "Location" }) });
    assert.match(await location.innerText(), /United States/);
    assert.match(await location.innerText(), /Time zone\s+America\//);
    assert.match(await location.innerText(), /\d+\.\d{4}° N, \d+\.\d{4}° W/);
    const flag = location.locator("img.flag");
    assert.equal(await flag.getAttribute("alt"), "Flag of United States");
    assert.ok(await flag.evaluate((img) => img.complete && img.naturalWidth > 0), "the flag loaded");
    assert.equal(await location.locator("svg[data-marker]").getAttribute("data-marker"), "yes");
    assert.ok((await location.locator("path.map-country").count()) > 100, "the world is drawn");
    assert.equal(await location.locator("path.map-here").count(), 1, "the country is marked");

    const network = article.locator("section", { has: page.getByRole("heading", { name: "Network" }) });
    assert.match(await network.innerText(), /AS15169/);
    assert.match(await network.innerText(), /Google/);

    const flags = article.locator("ul.flags li");
    assert.equal(await flags.count(), 5);
    assert.equal(await article.locator('li[data-flag="datacenter"]').getAttribute("data-raised"), "yes");
    assert.match(await article.locator('li[data-flag="datacenter"]').innerText(), /Yes · \d+ % confidence/);

    const reasons = article.locator("table.reasons tbody tr");
    assert.ok((await reasons.count()) >= 1);
    assert.match(await reasons.first().innerText(), /\d{4}-\d{2}-\d{2}/, "each reason has its data date");
  });

  test("flags a Tor exit from the data", async () => {
    const tor = torExit();
    const { page } = await open({ client: "198.51.100.12" });
    await page.goto(`${server.base}/?ip=${tor}`);
    const article = report(page, tor);
    await article.waitFor();
    assert.equal(await article.locator('li[data-flag="tor"]').getAttribute("data-raised"), "yes");
    assert.match(await article.locator('li[data-flag="tor"]').innerText(), /Tor\s*Yes/);
    assert.notEqual(await article.locator(".report-head .badge").getAttribute("data-level"), "clean");
    assert.match(await article.locator("table.reasons").innerText(), /Tor exit or relay/);
  });

  test("explains a private address in words", async () => {
    const { page } = await open({ client: "198.51.100.13" });
    await page.goto(`${server.base}/`);
    await lookUp(page, "10.1.2.3");
    const article = report(page, "10.1.2.3");
    await article.waitFor();
    const words = await article.locator(".reserved").innerText();
    assert.match(words, /Private-Use/);
    assert.match(words, /private address/);
    assert.match(words, /10\.0\.0\.0\/8, defined in RFC 1918/);
    assert.equal(await article.locator(".panels").count(), 0, "no empty panels");
    assert.equal(
      await article.locator(".report-head .badge").count(),
      0,
      "a reserved address has no threat score, so no badge",
    );
  });

  test("says in words that an invalid address is invalid", async () => {
    const { page } = await open({ client: "198.51.100.14" });
    await page.goto(`${server.base}/`);
    await page.locator(".result .report, .result [role=alert]").first().waitFor();
    await lookUp(page, "999.1.1.1");
    const alert = page.locator(".result [role=alert]");
    await alert.waitFor();
    assert.match(await alert.innerText(), /No answer for 999\.1\.1\.1/);
    assert.match(await alert.innerText(), /not a valid IP address/);
  });

  test("says in words that the service cannot be reached", async () => {
    const { page, context } = await open({ client: "198.51.100.15" });
    await page.goto(`${server.base}/`);
    await page.locator(".result .report").waitFor();
    await context.route("**/v1/portal/ip/**", (route) => route.abort("connectionrefused"));
    await lookUp(page, "1.1.1.1");
    const alert = page.locator(".result [role=alert]");
    await alert.waitFor();
    assert.match(await alert.innerText(), /cannot be reached/);
  });

  test("says in words when this address has used up its lookups", async () => {
    const { page } = await open({ client: "203.0.113.77" });
    let status = 0;
    for (let i = 0; i <= PORTAL_BURST && status !== 429; i += 1) {
      const response = await fetch(`${server.base}/v1/portal/ip/8.8.4.4`, {
        headers: { "X-Forwarded-For": "203.0.113.77" },
        signal: AbortSignal.timeout(10_000),
      });
      status = response.status;
      await response.arrayBuffer();
    }
    assert.equal(status, 429, "the allowance ran out");
    await page.goto(`${server.base}/?ip=1.1.1.1`);
    const alert = page.locator(".result [role=alert]");
    await alert.waitFor();
    assert.match(await alert.innerText(), /Too many lookups without a key/);
    assert.match(await alert.innerText(), /Try again in about \d+ seconds/);
  });

  test("is keyboard reachable with a visible focus", async () => {
    const { page } = await open({ client: "198.51.100.16" });
    await page.goto(`${server.base}/`);
    await page.locator(".result .report").waitFor();
    await page.keyboard.press("Tab");
    const skip = await page.evaluate(() => {
      const el = document.activeElement;
      return { text: el?.textContent, outline: el ? getComputedStyle(el).outlineStyle : "none" };
    });
    assert.equal(skip.text, "Skip to the content");
    assert.notEqual(skip.outline, "none", "focus is visible");
    let reached = false;
    for (let i = 0; i < 12 && !reached; i += 1) {
      await page.keyboard.press("Tab");
      reached = await page.evaluate(() => document.activeElement?.id === "lookup-ip");
    }
    assert.ok(reached, "the lookup box is reached with Tab");
    await page.keyboard.press("Control+A");
    await page.keyboard.type("1.1.1.1");
    await page.keyboard.press("Enter");
    await report(page, "1.1.1.1").waitFor();
  });

});

describe("dashboard", () => {
  let key;
  let tor;

  before(async () => {
    key = await newKey(server);
    tor = torExit();
  });

  async function signIn(page, text) {
    await page.goto(`${server.base}/dashboard`);
    await page.getByLabel("API key").fill(text);
    await page.getByRole("button", { name: "Sign in" }).click();
  }

  test("refuses a wrong key in words", async () => {
    const { page } = await open({ client: "198.51.100.30" });
    await signIn(page, "ipintel_nonsense");
    const alert = page.locator("[role=alert]");
    await alert.waitFor();
    assert.match(await alert.innerText(), /not valid/);
  });

  test("signs in, moves usage with a lookup, files a report and finds it everywhere", async () => {
    const { page } = await open({ client: "198.51.100.31" });
    await signIn(page, key);
    const today = page.getByTestId("usage-today");
    await today.waitFor();
    assert.equal(await today.innerText(), "0");
    assert.equal(await page.getByTestId("usage-limit").innerText(), "100");
    assert.equal(await page.locator(".chart rect.chart-bar").count(), 30, "30 days charted");
    assert.equal(await page.evaluate(() => sessionStorage.getItem("ipintel.key")), key);

    // Usage moves after a lookup.
    await lookUp(page, "8.8.8.8");
    await report(page, "8.8.8.8").waitFor();
    await page.waitForFunction(() => document.querySelector('[data-testid="usage-today"]')?.textContent === "1");
    assert.match(await page.locator(".chart rect.chart-today title").textContent(), /: 1 lookup$/);
    assert.equal(await page.getByTestId("usage-month").innerText(), "1");

    // The report view links to the intel pages.
    assert.equal(await report(page, "8.8.8.8").getByRole("link", { name: "AS15169" }).count(), 1);

    // A portal page, open before the report is filed.
    const portal = await open({ client: "198.51.100.32" });
    await portal.page.goto(`${server.base}/`);
    await portal.page.locator(".live .empty, .live-list").first().waitFor();
    assert.equal(await portal.page.locator(`.live-item[data-ip="${tor}"]`).count(), 0);

    // File a report.
    const form = page.locator("form.report-form");
    await form.getByLabel("Address").fill(tor);
    await form.getByLabel("Port scan").check();
    await form.getByLabel("SSH bruteforce").check();
    await form.getByLabel("Severity").selectOption("high");
    await form.getByLabel(/Comment/).fill("seen in the e2e test");
    await form.getByRole("button", { name: "File the report" }).click();
    const stored = page.locator("p.notice-ok");
    await stored.waitFor();
    assert.match(await stored.innerText(), new RegExp(`Report #\\d+ on ${tor.replace(/\./g, "\\.")} was stored`));

    // In the key's reports, and in the dashboard's live feed at once.
    const row = page.locator("table.my-reports tbody tr").filter({ hasText: tor });
    await row.waitFor();
    assert.match(await row.innerText(), /Port scan, SSH bruteforce/);
    await page.locator(`.live-item[data-ip="${tor}"]`).waitFor();
    // The portal's feed refreshes itself: the report shows without a reload.
    await portal.page.locator(`.live-item[data-ip="${tor}"]`).waitFor({ timeout: 30_000 });

    await blur(page);
    await screenshot(page, "dashboard-desktop");

    // Country and AS pages, from the report's links.
    const countryLink = row.locator("td").nth(2).locator("a");
    const countryName = (await countryLink.innerText()).trim();
    await countryLink.click();
    await page.waitForURL(/\/dashboard\/country\/[A-Z]{2}$/);
    const heading = page.getByRole("heading", { level: 1 });
    await heading.waitFor();
    assert.match(await heading.innerText(), new RegExp(countryName.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
    await page.getByRole("heading", { name: "Abuse reports" }).waitFor();
    assert.match(await page.locator(".intel").innerText(), /Last 24 hours\s+[1-9]/);
    await page.getByRole("link", { name: /Back to the dashboard/ }).click();

    const asnLink = page.locator("table.my-reports tbody tr").filter({ hasText: tor }).locator("td").nth(3).locator("a");
    const asn = (await asnLink.innerText()).match(/AS\d+/)[0];
    await asnLink.click();
    await page.waitForURL(new RegExp(`/dashboard/asn/${asn.slice(2)}$`));
    await page.getByRole("heading", { level: 1, name: new RegExp(asn) }).waitFor();
    await page.getByRole("heading", { name: "Prefixes" }).waitFor();
  });

  test("fits a phone screen", async () => {
    const { page } = await open({ client: "198.51.100.33", viewport: PHONE, phone: true });
    await signIn(page, key);
    await page.getByTestId("usage-today").waitFor();
    await page.locator("table.my-reports").waitFor();
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= PHONE.width, `no sideways scrolling (${width}px)`);
    await blur(page);
    await screenshot(page, "dashboard-phone");
  });

  test("says in words when the key's quota is used up", async () => {
    const made = JSON.parse(server.cli(["keys", "create", "--label", "e2e-small", "--daily-limit", "1", "--json"]));
    const { page } = await open({ client: "198.51.100.34" });
    await signIn(page, made.key);
    await page.getByTestId("usage-today").waitFor();
    await lookUp(page, "8.8.8.8");
    await report(page, "8.8.8.8").waitFor();
    await lookUp(page, "1.1.1.1");
    const alert = page.locator("[role=alert]").filter({ hasText: "1.1.1.1" });
    await alert.waitFor();
    assert.match(await alert.innerText(), /daily lookup quota is used up/);
    await page.waitForFunction(() => document.querySelector('[data-testid="usage-today"]')?.textContent === "1");
  });

  test("signs out and forgets the key", async () => {
    const { page } = await open({ client: "198.51.100.35" });
    await signIn(page, key);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("API key").waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem("ipintel.key")), null);
  });
});

describe("portal, after a report", () => {
  test("shows the reported address in the live feed beside a lookup", async () => {
    const tor = torExit();
    const { page } = await open({ client: "198.51.100.40", viewport: DESKTOP });
    await page.goto(`${server.base}/?ip=8.8.8.8`);
    await report(page, "8.8.8.8").waitFor();
    const item = page.locator(`.live-item[data-ip="${tor}"]`);
    await item.waitFor({ timeout: 30_000 });
    assert.match(await item.innerText(), /Port scan, SSH bruteforce/);
    assert.match(await item.locator(".badge").getAttribute("aria-label"), /^Threat level: /);
    await blur(page);
    await screenshot(page, "portal-desktop");
  });

  test("fits a phone screen", async () => {
    const { page } = await open({ client: "198.51.100.41", viewport: PHONE, phone: true });
    await page.goto(`${server.base}/?ip=8.8.8.8`);
    await report(page, "8.8.8.8").waitFor();
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= PHONE.width, `no sideways scrolling (${width}px)`);
    await blur(page);
    await screenshot(page, "portal-phone");
  });
});

test("pages and assets are all served by ipintel itself", { timeout: 10_000 }, () => {
  // Checked for every page in `after`; this names the guarantee in the output.
  assert.ok(pages.length > 0);
});
