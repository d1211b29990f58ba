// The pacer dashboard. It reads only the admin JSON API, with the admin key
// the operator typed (kept in sessionStorage: this tab only), every 2 s:
//   GET /v1/accounts?limit=&cursor=   accounts with limits and usage
//   GET /v1/upstreams                 pool upstreams and their state
//   GET /v1/stats                     10 s buckets and recent refusals
// and switches policies with GET/PATCH /v2/session/rate-limit.
// Everything is built with DOM calls and textContent: no markup from data.

const KEY_STORAGE = "pacer.adminKey";
const REFRESH_MS = 2000;
const PAGE_SIZE = 50;
const RECENT_SHOWN = 50;
const SVG_NS = "http://www.w3.org/2000/svg";
// Colours of the refusal types in the chart, in order of first sight.
const PALETTE = ["#c2410c", "#7c3aed", "#0369a1", "#be123c", "#4d7c0f", "#a16207", "#475569"];

const $ = (id) => document.getElementById(id);

const state = {
  key: sessionStorage.getItem(KEY_STORAGE),
  // Cursors of the pages seen, so "Previous page" can go back.
  cursors: [null],
  nextCursor: null,
  timer: null,
  running: false,
  // Bumped by every read, so only the latest one draws and schedules.
  generation: 0,
  lastSuccess: null,
  typeColours: new Map(),
  dialogAccount: null,
  dialogOpener: null,
};

class AuthError extends Error {}

class ApiError extends Error {
  constructor(status, envelope) {
    super(envelope && envelope.detail ? envelope.detail : `HTTP ${status}`);
    this.status = status;
    this.type = envelope && envelope.type;
  }
}

// One admin API call with the key; 401 is an AuthError, any other
// failure an ApiError carrying the envelope's detail.
async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${state.key}`, Accept: "application/json" };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method: options.method || "GET",
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch (err) {
    throw new ApiError(0, { detail: `pacer did not answer (${err.message})` });
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (response.status === 401) throw new AuthError(body && body.detail ? body.detail : "refused");
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

// ---- small DOM helpers ----------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "className") node.className = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child);
  }
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function placeholderRow(columns, text, className = "placeholder") {
  return el("tr", { className }, el("td", { colspan: columns, text }));
}

// Replaces a table body, keeping keyboard focus on the control that had it.
function replaceBody(tbody, rows) {
  const focused = document.activeElement;
  const focusKey = focused && tbody.contains(focused) ? focused.dataset.focusKey : null;
  tbody.replaceChildren(...rows);
  tbody.setAttribute("aria-busy", "false");
  if (focusKey) {
    const again = tbody.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`);
    if (again) again.focus();
  }
}

const timeFormat = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit", minute: "2-digit", second: "2-digit",
});

// Tells assistive technology about a change worth hearing (the refreshes
// themselves are not announced).
function announce(message) {
  $("announce").textContent = message;
}

function clock(date) {
  return timeFormat.format(date);
}

function count(n, noun) {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

function formatRate(perSecond) {
  if (perSecond === 0) return "0";
  if (perSecond < 0.1) return perSecond.toFixed(2);
  if (perSecond < 10) return perSecond.toFixed(1);
  return Math.round(perSecond).toString();
}

// ---- signing in and out ---------------------------------------------------

function showSignIn(message) {
  stopRefresh();
  state.key = null;
  sessionStorage.removeItem(KEY_STORAGE);
  $("dashboard").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("live").textContent = "Not signed in";
  $("live").className = "live idle";
  $("key-error").textContent = message || "";
  $("key").setAttribute("aria-invalid", message ? "true" : "false");
  $("key").focus();
}

function showDashboard() {
  $("sign-in").hidden = true;
  $("dashboard").hidden = false;
  $("sign-out").hidden = false;
  $("key-error").textContent = "";
}

async function signIn(event) {
  event.preventDefault();
  const key = $("key").value.trim();
  if (!key) {
    $("key-error").textContent = "Enter the admin key.";
    $("key").setAttribute("aria-invalid", "true");
    $("key").focus();
    return;
  }
  state.key = key;
  $("key-submit").disabled = true;
  $("key-error").textContent = "";
  $("live").textContent = "Checking the key…";
  try {
    // Any authenticated read proves the key.
    await api("/v1/stats?recent=0");
    sessionStorage.setItem(KEY_STORAGE, key);
    $("key").value = "";
    showDashboard();
    announce(`Signed in. The dashboard refreshes every ${REFRESH_MS / 1000} s.`);
    startRefresh();
  } catch (err) {
    if (err instanceof AuthError) {
      showSignIn("That admin key was refused. Check [admin] api_keys and try again.");
    } else {
      state.key = null;
      $("key-error").textContent = `Cannot check the key: ${err.message}`;
      $("live").textContent = "Not signed in";
    }
  } finally {
    $("key-submit").disabled = false;
  }
}

// ---- the refresh loop -----------------------------------------------------

function startRefresh() {
  state.running = true;
  refresh();
}

function stopRefresh() {
  state.running = false;
  clearTimeout(state.timer);
  state.timer = null;
}

// Reads everything once, draws it, and schedules the next read so that one
// starts every REFRESH_MS (at once if this one took longer).
async function refresh() {
  if (!state.running) return;
  clearTimeout(state.timer);
  const generation = ++state.generation;
  const started = Date.now();
  const cursor = state.cursors[state.cursors.length - 1];
  const accountsPath = `/v1/accounts?limit=${PAGE_SIZE}` +
    (cursor ? `&cursor=${encodeURIComponent(cursor)}` : "");
  const [accounts, upstreams, stats] = await Promise.allSettled([
    api(accountsPath),
    api("/v1/upstreams"),
    api(`/v1/stats?recent=${RECENT_SHOWN}`),
  ]);
  if (!state.running || generation !== state.generation) return;
  const results = [accounts, upstreams, stats];
  if (results.some((r) => r.status === "rejected" && r.reason instanceof AuthError)) {
    showSignIn("The admin key is no longer accepted. Enter a valid key.");
    return;
  }
  const byAccount = stats.status === "fulfilled" ? stats.value.refusals_by_account : null;
  renderSection(accounts, (v) => renderAccounts(v, byAccount), "accounts-body", 8, "accounts");
  renderSection(upstreams, renderUpstreams, "upstreams-body", 6, "upstreams");
  renderSection(stats, renderStats, "refusals-body", 7, "traffic and refusals");
  const failures = results.filter((r) => r.status === "rejected").map((r) => r.reason.message);
  renderHealth(failures);
  state.timer = setTimeout(refresh, Math.max(0, REFRESH_MS - (Date.now() - started)));
}

function renderSection(result, render, bodyId, columns, what) {
  if (result.status === "fulfilled") {
    render(result.value);
    return;
  }
  const body = $(bodyId);
  // Keep the rows last shown, marked stale; without any, say why.
  if (body.querySelector("tr.placeholder") || !body.children.length) {
    replaceBody(body, [placeholderRow(columns, `Could not load ${what}: ${result.reason.message}`, "placeholder failed")]);
  }
  body.closest("section").classList.add("stale");
}

function renderHealth(failures) {
  const banner = $("banner");
  const wasDown = $("live").classList.contains("down");
  if (failures.length === 0) {
    if (wasDown) announce("pacer answers again.");
    state.lastSuccess = new Date();
    banner.hidden = true;
    banner.textContent = "";
    $("live").textContent = `Live · updated ${clock(state.lastSuccess)}`;
    $("live").className = "live";
    for (const section of document.querySelectorAll("section.stale")) section.classList.remove("stale");
    return;
  }
  const since = state.lastSuccess ? ` Showing data from ${clock(state.lastSuccess)}.` : "";
  const text = `Some data could not be read: ${[...new Set(failures)].join("; ")}.${since} Retrying every ${REFRESH_MS / 1000} s.`;
  // Unchanged text is not written again, so it is not announced again.
  if (banner.textContent !== text) banner.textContent = text;
  banner.hidden = false;
  if (!wasDown) announce("Some data could not be read; retrying.");
  $("live").textContent = "Reconnecting…";
  $("live").className = "live down";
}

// ---- accounts ---------------------------------------------------------------

// Sorts an account's limits into daily caps, rolling windows, the batch,
// and settings without a counter.
function sortLimits(limits) {
  const caps = [];
  const windows = [];
  let batch = null;
  for (const [key, entry] of Object.entries(limits || {})) {
    if (key === "batch") batch = entry;
    else if ("value" in entry) caps.push([key, entry]);
    else if ("current" in entry) windows.push([key, entry]);
  }
  return { caps, windows, batch };
}

function meter(label, used, limit, title) {
  const share = limit > 0 ? Math.min(1, used / limit) : 1;
  const level = share >= 0.9 ? "full" : share >= 0.7 ? "high" : "ok";
  const bar = el("span", {
    className: `meter ${level}`,
    role: "meter",
    "aria-valuemin": 0,
    "aria-valuemax": limit,
    "aria-valuenow": Math.min(used, limit),
    "aria-label": `${label}: ${used} of ${limit}`,
    title,
  }, el("span", { className: "fill" }));
  // CSSOM, which the page's Content-Security-Policy allows (no inline style).
  bar.firstChild.style.width = `${(share * 100).toFixed(1)}%`;
  return el("div", { className: "limit" },
    el("span", { className: "limit-key", text: label }),
    el("span", { className: "limit-count", text: `${used} / ${limit}` }),
    bar);
}

function routeText(route) {
  if (!route) return "–";
  if (route.kind === "direct") return "direct";
  if (route.kind === "country") return `pool ${route.country}`;
  if (route.kind === "upstream") return route.upstream;
  return route.kind;
}

function accountCell(account) {
  const cell = el("th", { scope: "row" }, el("span", { className: "account-id", text: account.account_id }));
  const badges = el("span", { className: "badges" });
  if (account.type) badges.append(el("span", { className: "badge", text: account.type }));
  if (account.source) badges.append(el("span", { className: `badge ${account.source}`, text: account.source }));
  for (const pause of account.backoff || []) {
    const until = pause.until ? ` until ${clock(new Date(pause.until))}` : "";
    badges.append(el("span", {
      className: "badge paused",
      text: `paused ${pause.action}${until}`,
      title: `The origin answered ${pause.origin_status}`,
    }));
  }
  cell.append(badges);
  return cell;
}

function policyCell(account) {
  const button = el("button", {
    type: "button",
    className: "link",
    "data-focus-key": `policy:${account.account_id}`,
    "aria-label": `Change the policy of ${account.account_id} (now ${account.policy})`,
    text: account.policy,
  });
  button.addEventListener("click", () => openPolicyDialog(account.account_id, button));
  return el("td", {}, button);
}

function limitsCell(entries, counter, empty) {
  if (entries.length === 0) return el("td", { className: "muted", text: empty });
  return el("td", {}, ...entries.map(([key, entry]) => {
    const title = entry.timestamp
      ? `resets at ${new Date(entry.timestamp * 1000).toLocaleString()}`
      : undefined;
    return meter(key, entry[counter], entry.limit, title);
  }));
}

function batchCell(batch) {
  if (!batch) return el("td", { className: "muted", text: "no batch" });
  const last = batch.last_batch_at ? `last filled ${new Date(batch.last_batch_at).toLocaleString()}` : "never filled";
  return el("td", {}, meter("batch", batch.current, batch.limit, last));
}

function refusalsCell(counts) {
  const entries = Object.entries(counts || {}).sort((a, b) => b[1] - a[1]);
  if (entries.length === 0) return el("td", { className: "muted", text: "none" });
  return el("td", {}, el("ul", { className: "plain" },
    ...entries.map(([key, n]) => el("li", {}, el("span", { className: "limit-key", text: key }), ` ×${n}`))));
}

function renderAccounts(page, byAccount) {
  const accounts = page.accounts || [];
  state.nextCursor = page.next_cursor || null;
  $("next-page").disabled = !state.nextCursor;
  $("prev-page").disabled = state.cursors.length <= 1;
  $("page-label").textContent = `Page ${state.cursors.length}`;
  $("tile-accounts").textContent = String(accounts.length) + (state.nextCursor ? "+" : "");
  if (accounts.length === 0) {
    replaceBody($("accounts-body"), [placeholderRow(8,
      state.cursors.length > 1
        ? "No more accounts."
        : "No accounts yet. Add one under [[accounts]] in pacer.toml, or PUT /v1/accounts/{id}.",
      "placeholder empty")]);
    return;
  }
  const rows = accounts.map((account) => {
    const { caps, windows, batch } = sortLimits(account.limits);
    return el("tr", { "data-account": account.account_id },
      accountCell(account),
      policyCell(account),
      el("td", { text: account.plan }),
      el("td", { className: "route", text: routeText(account.route) }),
      limitsCell(caps, "value", "no daily cap"),
      limitsCell(windows, "current", "no rolling window"),
      batchCell(batch),
      refusalsCell(byAccount && byAccount[account.account_id]));
  });
  replaceBody($("accounts-body"), rows);
}

function changePage(step) {
  if (step > 0 && state.nextCursor) state.cursors.push(state.nextCursor);
  if (step < 0 && state.cursors.length > 1) state.cursors.pop();
  $("accounts-body").setAttribute("aria-busy", "true");
  refresh();
}

// ---- upstreams --------------------------------------------------------------

function renderUpstreams(body) {
  const upstreams = body.upstreams || [];
  const cooling = upstreams.filter((u) => u.state !== "ok").length;
  $("tile-cooling").textContent = upstreams.length ? `${cooling} of ${upstreams.length}` : "none";
  if (upstreams.length === 0) {
    replaceBody($("upstreams-body"), [placeholderRow(6,
      "No pool upstreams are configured: accounts go direct or through their own proxy.",
      "placeholder empty")]);
    return;
  }
  const rows = upstreams.map((u) => {
    const stateText = u.state === "ok"
      ? "ok"
      : `cooling down${u.until ? ` until ${clock(new Date(u.until))}` : ""}`;
    return el("tr", {},
      el("th", { scope: "row", className: "route", text: u.url }),
      el("td", { text: u.country || "–" }),
      el("td", {}, el("span", { className: `state ${u.state === "ok" ? "ok" : "cooling"}`, text: stateText })),
      el("td", { className: "num", text: String(u.attempts) }),
      el("td", { className: "num", text: String(u.failures) }),
      el("td", { className: "num", text: String(u.accounts) }));
  });
  replaceBody($("upstreams-body"), rows);
}

// ---- traffic and refusals ---------------------------------------------------

function colourOf(type) {
  if (!state.typeColours.has(type)) {
    state.typeColours.set(type, PALETTE[state.typeColours.size % PALETTE.length]);
  }
  return state.typeColours.get(type);
}

// A round step (1, 2 or 5 times a power of ten) of at least `value`.
function niceStep(value) {
  if (value <= 0) return 0.25;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5]) {
    if (value <= step * power) return step * power;
  }
  return 10 * power;
}

// Draws per-bucket stacked bars: `stacks[i]` is a list of [series, rate].
function drawBars(chart, buckets, stacks, bucketSeconds, emptyText) {
  const width = 600, height = 180, left = 44, right = 8, top = 10, bottom = 24;
  const plotW = width - left - right, plotH = height - top - bottom;
  const totals = stacks.map((s) => s.reduce((sum, [, v]) => sum + v, 0));
  const step = niceStep(Math.max(...totals, 0) / 4);
  const max = step * 4;
  const nodes = [];
  for (let i = 0; i <= 4; i++) {
    const value = step * i;
    const y = top + plotH - (plotH * i) / 4;
    nodes.push(svg("line", { x1: left, x2: width - right, y1: y, y2: y, class: "grid-line" }));
    nodes.push(svg("text", { x: left - 6, y: y + 4, class: "axis", "text-anchor": "end" }, String(+value.toFixed(2))));
  }
  const slot = plotW / buckets.length;
  buckets.forEach((bucket, i) => {
    let y = top + plotH;
    const x = left + i * slot + 0.5;
    const at = clock(new Date(bucket.start * 1000));
    for (const [series, rate] of stacks[i]) {
      if (rate <= 0) continue;
      const h = (plotH * rate) / max;
      y -= h;
      const rect = svg("rect", {
        x, y, width: Math.max(1, slot - 1), height: h, fill: series.colour, class: "bar",
      });
      rect.append(svg("title", {}, `${at}: ${formatRate(rate)}/s ${series.name}`));
      nodes.push(rect);
    }
  });
  const minutes = (buckets.length * bucketSeconds) / 60;
  for (const back of [minutes, (minutes * 2) / 3, minutes / 3, 0]) {
    const x = left + plotW - (plotW * back) / minutes;
    const anchor = back === minutes ? "start" : back === 0 ? "end" : "middle";
    nodes.push(svg("text", { x, y: height - 6, class: "axis", "text-anchor": anchor },
      back === 0 ? "now" : `−${Math.round(back)} min`));
  }
  if (totals.every((t) => t === 0)) {
    nodes.push(svg("text", { x: left + plotW / 2, y: top + plotH / 2, class: "empty-note", "text-anchor": "middle" }, emptyText));
  }
  chart.replaceChildren(...nodes);
}

function renderStats(stats) {
  const buckets = stats.buckets || [];
  const seconds = stats.bucket_seconds || 10;
  const requestSeries = { name: "requests", colour: "#2563eb" };
  drawBars($("requests-chart"), buckets,
    buckets.map((b) => [[requestSeries, b.requests / seconds]]), seconds, "No requests in the last 15 minutes");
  const types = new Map();
  const refusalStacks = buckets.map((b) => Object.entries(b.by_type || {}).map(([type, n]) => {
    const name = type.replace(/^errors\//, "");
    if (!types.has(name)) types.set(name, { name, colour: colourOf(name) });
    return [types.get(name), n / seconds];
  }));
  drawBars($("refusals-chart"), buckets, refusalStacks, seconds, "No refusals in the last 15 minutes");
  $("refusals-legend").replaceChildren(...[...types.values()].map((t) => {
    const swatch = el("span", { className: "swatch", "aria-hidden": "true" });
    swatch.style.background = t.colour;
    return el("li", {}, swatch, t.name);
  }));

  const lastMinute = buckets.slice(-Math.ceil(60 / seconds));
  const sum = (list, field) => list.reduce((total, b) => total + b[field], 0);
  $("tile-requests").textContent = String(sum(lastMinute, "requests"));
  $("tile-refusals").textContent = String(sum(lastMinute, "refusals"));
  $("tiles").setAttribute("aria-busy", "false");
  const latest = buckets.length ? buckets[buckets.length - 1] : { requests: 0, refusals: 0 };
  const peak = Math.max(0, ...buckets.map((b) => b.requests / seconds));
  $("requests-summary").textContent =
    `${count(sum(buckets, "requests"), "request")} in 15 minutes; now ${formatRate(latest.requests / seconds)}/s, peak ${formatRate(peak)}/s.`;
  $("refusals-summary").textContent =
    `${count(sum(buckets, "refusals"), "refusal")} in 15 minutes; now ${formatRate(latest.refusals / seconds)}/s.`;

  renderByLimit(buckets);
  renderRecent(stats.recent_refusals || []);
}

function renderByLimit(buckets) {
  const totals = new Map();
  for (const bucket of buckets) {
    for (const [key, n] of Object.entries(bucket.by_limit || {})) totals.set(key, (totals.get(key) || 0) + n);
  }
  const target = $("by-limit");
  if (totals.size === 0) {
    target.textContent = "No limit refused a request in the last 15 minutes.";
    return;
  }
  const sorted = [...totals.entries()].sort((a, b) => b[1] - a[1]);
  target.replaceChildren("By limit, 15 min: ", ...sorted.flatMap(([key, n], i) => [
    i ? ", " : "", el("span", { className: "limit-key", text: key }), ` ×${n}`,
  ]));
}

function renderRecent(refusals) {
  if (refusals.length === 0) {
    replaceBody($("refusals-body"), [placeholderRow(7, "No refusals in the last 15 minutes.", "placeholder empty")]);
    return;
  }
  const rows = refusals.map((r) => el("tr", {},
    el("td", {}, el("time", { datetime: r.at, text: clock(new Date(r.at)) })),
    el("td", { text: r.account || "–" }),
    el("td", { text: (r.actions || []).join(", ") || "–" }),
    el("td", { className: "route", text: r.target || "–" }),
    el("td", { text: r.limit || "–" }),
    el("td", { text: r.type }),
    el("td", {
      className: "num",
      text: r.listener === "socks5" ? `SOCKS ${r.status}` : String(r.status),
    })));
  replaceBody($("refusals-body"), rows);
}

// ---- policy switching -------------------------------------------------------

function limitSummary(limits) {
  return Object.entries(limits || {})
    .filter(([, v]) => typeof v === "number")
    .map(([k, v]) => `${k} ${v}`)
    .join(" · ");
}

async function openPolicyDialog(accountId, opener) {
  const dialog = $("policy-dialog");
  state.dialogAccount = accountId;
  state.dialogOpener = opener;
  $("policy-title").textContent = `Policy of ${accountId}`;
  $("policy-error").textContent = "";
  $("policy-apply").disabled = true;
  const choices = $("policy-choices");
  choices.replaceChildren(choices.querySelector("legend"), el("p", { className: "placeholder", text: "Loading policies…" }));
  dialog.showModal();
  try {
    const view = await api(`/v2/session/rate-limit?account=${encodeURIComponent(accountId)}`);
    if (state.dialogAccount !== accountId) return;
    renderPolicyChoices(view);
  } catch (err) {
    if (err instanceof AuthError) {
      dialog.close();
      showSignIn("The admin key is no longer accepted. Enter a valid key.");
      return;
    }
    $("policy-error").textContent = `Cannot load the policies: ${err.message}`;
  }
}

function renderPolicyChoices(view) {
  const choices = $("policy-choices");
  const options = (view.policies || []).map((policy) => {
    const id = `policy-${policy.slug}`;
    const input = el("input", {
      type: "radio",
      name: "policy",
      id,
      value: policy.slug,
      checked: policy.slug === view.current_policy,
      disabled: !policy.available,
      "aria-describedby": `${id}-about`,
    });
    const about = [policy.description, limitSummary(policy.limits)].filter(Boolean).join(" — ");
    return el("div", { className: `choice${policy.available ? "" : " unavailable"}` },
      input,
      el("label", { for: id },
        el("strong", { text: policy.name }), " ",
        el("code", { text: policy.slug }),
        policy.slug === view.current_policy ? el("span", { className: "badge", text: "current" }) : null,
        policy.available ? null : el("span", { className: "badge", text: "paid plan only" })),
      el("p", { id: `${id}-about`, className: "about", text: about }));
  });
  choices.replaceChildren(choices.querySelector("legend"), ...options);
  $("policy-apply").disabled = false;
  const checked = choices.querySelector("input:checked") || choices.querySelector("input:not(:disabled)");
  if (checked) checked.focus();
}

async function applyPolicy(event) {
  event.preventDefault();
  const chosen = $("policy-choices").querySelector("input:checked");
  if (!chosen) {
    $("policy-error").textContent = "Choose a policy.";
    return;
  }
  const account = state.dialogAccount;
  $("policy-apply").disabled = true;
  $("policy-error").textContent = "";
  try {
    const view = await api("/v2/session/rate-limit", {
      method: "PATCH",
      body: { account, policy_slug: chosen.value },
    });
    closePolicyDialog();
    announce(`${account} now runs under ${view.current_policy}.`);
    refresh();
  } catch (err) {
    if (err instanceof AuthError) {
      closePolicyDialog();
      showSignIn("The admin key is no longer accepted. Enter a valid key.");
      return;
    }
    $("policy-error").textContent = `The policy was not changed: ${err.message}`;
    $("policy-apply").disabled = false;
  }
}

function closePolicyDialog() {
  const dialog = $("policy-dialog");
  if (dialog.open) dialog.close();
}

function policyDialogClosed() {
  state.dialogAccount = null;
  const opener = state.dialogOpener;
  state.dialogOpener = null;
  // The row may have been redrawn: focus its button again by key.
  const key = opener && opener.dataset.focusKey;
  const again = key && document.querySelector(`[data-focus-key="${CSS.escape(key)}"]`);
  if (again) again.focus();
}

// ---- start ------------------------------------------------------------------

function start() {
  $("key-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => showSignIn(""));
  $("prev-page").addEventListener("click", () => changePage(-1));
  $("next-page").addEventListener("click", () => changePage(1));
  $("policy-form").addEventListener("submit", applyPolicy);
  $("policy-cancel").addEventListener("click", closePolicyDialog);
  $("policy-dialog").addEventListener("close", policyDialogClosed);
  if (state.key) {
    showDashboard();
    startRefresh();
  } else {
    showSignIn("");
  }
}

start();
