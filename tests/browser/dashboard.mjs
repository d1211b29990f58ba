// The dashboard in headless Chromium, driven by Playwright, against a real
// pacer (started by tests/dashboard.rs, which passes its addresses):
// a bad key is refused on the page; the right key shows the demo account;
// its usage rises after requests through the proxy; its policy is switched
// from the page with the keyboard and GET /v2/session/rate-limit shows it;
// a refusal by a limit appears in the refusals; accounts are paged; the
// empty and error states are drawn; the page loads nothing from elsewhere
// and logs no error.
//
// Env: PACER_ADMIN (http://127.0.0.1:P), PACER_ADMIN_KEY, PACER_HTTP
// (127.0.0.1:P of the HTTP listener), ORIGIN (http://127.0.0.1:P),
// SCREENSHOTS (a folder for PNGs). Exits non-zero with a message on the
// first failed check.

import { chromium } from "playwright-core";
import { strict as assert } from "node:assert";
import http from "node:http";
import path from "node:path";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const ADMIN = env("PACER_ADMIN");
const KEY = env("PACER_ADMIN_KEY");
const PROXY = env("PACER_HTTP");
const ORIGIN = env("ORIGIN");
const SCREENSHOTS = env("SCREENSHOTS");
const DEADLINE_MS = 20000;

// Retries `check` (which throws until it holds) for at most DEADLINE_MS.
async function eventually(what, check) {
  const until = Date.now() + DEADLINE_MS;
  let last;
  while (Date.now() < until) {
    try {
      return await check();
    } catch (err) {
      last = err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(`${what}: not within ${DEADLINE_MS} ms: ${last && last.message}`);
}

// One request through pacer's HTTP listener as demo:demo; resolves with
// the status.
function throughProxy(method, urlPath) {
  const [host, port] = PROXY.split(":");
  return new Promise((resolve, reject) => {
    const request = http.request({
      host,
      port: Number(port),
      method,
      path: `${ORIGIN}${urlPath}`,
      headers: {
        "Proxy-Authorization": `Basic ${Buffer.from("demo:demo").toString("base64")}`,
        "Content-Length": "0",
      },
    }, (response) => {
      response.resume();
      response.on("end", () => resolve(response.statusCode));
    });
    request.on("error", reject);
    request.end();
  });
}

async function adminGet(urlPath) {
  const response = await fetch(`${ADMIN}${urlPath}`, { headers: { Authorization: `Bearer ${KEY}` } });
  assert.equal(response.status, 200, `GET ${urlPath}`);
  return response.json();
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const problems = [];
try {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, colorScheme: "light" });
  const page = await context.newPage();
  const adminOrigin = new URL(ADMIN).origin;
  // Chromium logs every failed fetch; only the bad key's 401 and the
  // injected 500 are expected.
  const expectedFailure = /^Failed to load resource: the server responded with a status of (401|500) /;
  page.on("console", (message) => {
    if (message.type() === "error" && !expectedFailure.test(message.text())) {
      problems.push(`console error: ${message.text()}`);
    }
  });
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("request", (request) => {
    if (new URL(request.url()).origin !== adminOrigin) problems.push(`request to ${request.url()}`);
  });

  // The page needs no key and answers with its policy.
  const answer = await page.goto(`${ADMIN}/ui`);
  assert.equal(answer.status(), 200);
  assert.match(answer.headers()["content-security-policy"], /default-src 'none'/);
  const keyInput = page.getByLabel("Admin key");
  await keyInput.waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), "key", "the key field has focus");

  // A bad key: refused on the page, the dashboard stays hidden.
  await keyInput.fill("not-the-key");
  await page.keyboard.press("Enter");
  await eventually("the bad key is refused", async () => {
    assert.match(await page.locator("#key-error").textContent(), /refused/);
  });
  assert.equal(await page.locator("#dashboard").isVisible(), false);
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  await page.screenshot({ path: path.join(SCREENSHOTS, "dashboard-bad-key.png") });

  // The right key: the demo account appears.
  await keyInput.fill(KEY);
  await page.getByRole("button", { name: "Open dashboard" }).click();
  const demo = page.locator('tr[data-account="demo"]');
  await demo.waitFor({ timeout: DEADLINE_MS });
  assert.equal(await page.evaluate(() => sessionStorage.getItem("pacer.adminKey")), KEY);
  const capMeter = demo.getByRole("meter", { name: /^send_message_daily_cap/ });
  assert.match(await capMeter.getAttribute("aria-label"), /: 0 of 100000$/);

  // Usage rises after requests through the proxy.
  const sent = 3;
  for (let i = 0; i < sent; i++) assert.equal(await throughProxy("POST", "/v1/messages"), 200);
  await eventually("the page shows the messages sent", async () => {
    assert.match(await capMeter.getAttribute("aria-label"), new RegExp(`: ${sent} of 100000$`));
    const window = demo.getByRole("meter", { name: /^send_message_per_minute/ });
    assert.match(await window.getAttribute("aria-label"), new RegExp(`: ${sent} of 600$`));
    assert.ok(Number(await page.locator("#tile-requests").textContent()) >= sent);
  });

  // Switch the policy with the keyboard: focus the policy button, Enter
  // opens the dialog on the current policy, ArrowDown picks the next one
  // (strict), Tab Tab reaches "Apply policy", Enter applies.
  const policyButton = demo.getByRole("button", { name: /^Change the policy of demo/ });
  assert.equal(await policyButton.textContent(), "standard_policy");
  await policyButton.focus();
  await page.keyboard.press("Enter");
  const dialog = page.getByRole("dialog", { name: "Policy of demo" });
  await dialog.waitFor();
  await eventually("the dialog lists the policies", async () => {
    assert.equal(await page.evaluate(() => document.activeElement.value), "standard_policy");
  });
  await page.keyboard.press("ArrowDown");
  assert.equal(await page.evaluate(() => document.activeElement.value), "strict");
  await page.keyboard.press("Tab");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "Apply policy");
  await page.keyboard.press("Enter");
  await dialog.waitFor({ state: "hidden" });
  const switched = await adminGet("/v2/session/rate-limit?account=demo");
  assert.equal(switched.current_policy, "strict");
  await eventually("the row shows the new policy and keeps focus", async () => {
    assert.equal(await policyButton.textContent(), "strict");
    assert.equal(await page.evaluate(() => document.activeElement.dataset.focusKey), "policy:demo");
  });

  // Under strict, login_per_5m = 2: the third login is refused, and the
  // refusal shows by limit, in the account's row and in the recent list.
  const logins = [];
  for (let i = 0; i < 3; i++) logins.push(await throughProxy("POST", "/login"));
  assert.deepEqual(logins, [200, 200, 429]);
  await eventually("the refusal is shown", async () => {
    assert.match(await demo.locator("td").last().textContent(), /login_per_5m ×1/);
    const recent = page.locator("#refusals-body tr").first();
    assert.match(await recent.textContent(), /demo.*login.*login_per_5m.*errors\/rate_limited.*429/);
    assert.match(await page.locator("#by-limit").textContent(), /login_per_5m ×1/);
  });
  await page.screenshot({ path: path.join(SCREENSHOTS, "dashboard.png"), fullPage: true });

  // Every account, page by page: 49 runtime accounts make 51 with
  // browser-1 and demo, so the 50 of page 1 end before fleet-48.
  for (let n = 0; n < 49; n++) {
    const id = `fleet-${String(n).padStart(2, "0")}`;
    const put = await fetch(`${ADMIN}/v1/accounts/${id}`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${KEY}`, "Content-Type": "application/json" },
      body: JSON.stringify({ secret: `secret-${n}` }),
    });
    assert.equal(put.status, 201, `PUT ${id}`);
  }
  const rows = page.locator("#accounts-body tr[data-account]");
  await eventually("page 1 holds 50 accounts", async () => {
    assert.equal(await rows.count(), 50);
    assert.equal(await page.locator("#tile-accounts").textContent(), "50+");
  });
  assert.equal(await page.locator('tr[data-account="fleet-48"]').count(), 0);
  await page.getByRole("button", { name: "Next page" }).click();
  await eventually("page 2 holds the last account", async () => {
    assert.equal(await page.locator("#page-label").textContent(), "Page 2");
    assert.deepEqual(await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.account)), ["fleet-48"]);
    assert.match(await rows.first().textContent(), /runtime/);
  });
  assert.equal(await page.getByRole("button", { name: "Next page" }).isDisabled(), true);
  await page.getByRole("button", { name: "Previous page" }).click();
  await demo.waitFor({ timeout: DEADLINE_MS });

  // The key stays for the tab: a reload shows the dashboard at once.
  await page.reload();
  await demo.waitFor({ timeout: DEADLINE_MS });

  // Designed states: an API error keeps the last data and says so; an
  // empty account list says how to add one.
  await page.route("**/v1/upstreams", (route) => route.fulfill({
    status: 500,
    contentType: "application/problem+json",
    body: JSON.stringify({ type: "errors/internal", title: "Internal Server Error", status: 500, detail: "injected failure" }),
  }));
  await eventually("the error banner shows", async () => {
    assert.match(await page.getByRole("alert").filter({ hasText: "injected failure" }).textContent(), /Retrying every 2 s/);
    assert.equal(await page.locator("#live").textContent(), "Reconnecting…");
  });
  await page.unroute("**/v1/upstreams");
  await eventually("the banner clears", async () => {
    assert.equal(await page.locator("#banner").isVisible(), false);
  });
  await page.route("**/v1/accounts?*", (route) => route.fulfill({
    status: 200, contentType: "application/json", body: JSON.stringify({ accounts: [], next_cursor: null }),
  }));
  await eventually("the empty state shows", async () => {
    assert.match(await page.locator("#accounts-body").textContent(), /No accounts yet/);
  });
  await page.unroute("**/v1/accounts?*");

  // Signing out forgets the key.
  await page.getByRole("button", { name: "Sign out" }).click();
  await keyInput.waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  await context.close();
} finally {
  await browser.close();
}
assert.deepEqual(problems, [], "the page loaded nothing from elsewhere and logged no error");
console.log("dashboard: all checks passed");
