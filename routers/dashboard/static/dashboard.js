// The l8 dashboard: polls GET /v1.0-alpha1/l8/dashboard and draws it. No framework, no build step;
// every value goes into the page as text (never as HTML). The API token, when the sidecar wants one,
// is kept in this tab's sessionStorage and sent as the dapr-api-token header, never in a URL.
"use strict";

const DATA = "/v1.0-alpha1/l8/dashboard";
const TOKEN = "l8.dashboard.token";
const POLL_MS = 2000;
const SVG = "http://www.w3.org/2000/svg";

let timer = null;
let lastApp = null;

function $(id) { return document.getElementById(id); }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "class") node.className = value; else node.setAttribute(name, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

function fill(id, rows, empty, columns) {
  const body = $(id);
  body.replaceChildren();
  if (!rows.length) {
    body.append(el("tr", {}, el("td", { class: "muted", colspan: String(columns) }, empty)));
    return;
  }
  for (const cells of rows) body.append(el("tr", {}, ...cells.map((c) => (c instanceof Node && c.tagName === "TD" ? c : el("td", {}, c)))));
}

function duration(seconds) {
  seconds = Math.floor(seconds);
  const d = Math.floor(seconds / 86400), h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  if (d) return `${d}d ${h}h ${m}m`;
  if (h) return `${h}h ${m}m ${s}s`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

function number(value, digits = 1) {
  if (value === null || value === undefined) return "–";
  if (value >= 1000) return Math.round(value).toLocaleString();
  return value.toFixed(value < 10 ? digits + 1 : digits).replace(/\.?0+$/, "") || "0";
}

function health(status) {
  return el("td", {}, el("span", { class: `dot ${status.toLowerCase()}`, title: status }), status);
}

function chips(names) {
  const span = el("span", { class: "chips" });
  for (const name of names) span.append(el("span", { class: "chip" }, name));
  return span;
}

// One chart: lines (and an area under the first) over the interval's points.
function chart(series, classes, unit) {
  const width = 300, height = 64, pad = 2;
  const values = series.flat().filter((v) => v !== null);
  const top = Math.max(1e-9, ...values) * 1.1;
  const n = Math.max(2, series[0].length);
  const x = (i) => (i / (n - 1)) * width;
  const y = (v) => height - pad - (v / top) * (height - 2 * pad);
  const box = svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", class: "chart", role: "img" });
  series.forEach((points, k) => {
    let d = "";
    points.forEach((v, i) => {
      if (v === null) return;
      d += `${d && points[i - 1] !== null ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
    });
    if (!d) return;
    if (k === 0) {
      const area = svg("path", { d: `M0,${height}L${points.map((v, i) => `${x(i).toFixed(1)},${y(v || 0).toFixed(1)}`).join("L")}L${x(points.length - 1).toFixed(1)},${height}Z`, class: `area ${classes[k]}` });
      box.append(area);
    }
    box.append(svg("path", { d, class: `line ${classes[k]}`, "vector-effect": "non-scaling-stroke" }));
  });
  const wrap = el("div", { class: "chart-wrap" }, box, el("span", { class: "top" }, `${number(values.length ? Math.max(...values) : 0)} ${unit}`));
  return wrap;
}

function last(values) {
  for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null) return values[i];
  return null;
}

function drawTraffic(traffic) {
  const charts = $("charts");
  charts.replaceChildren();
  if (!traffic) {
    $("traffic-note").textContent = "metrics are off (--enable-metrics=false): no traffic to chart";
    return;
  }
  const minutes = Math.round((traffic.times.length * traffic.intervalSeconds) / 60 * 10) / 10;
  $("traffic-note").textContent = `per building block, sampled every ${traffic.intervalSeconds}s, last ${minutes} min`;
  const blocks = Object.entries(traffic.blocks);
  if (!blocks.length) {
    charts.append(el("p", { class: "muted" }, "No requests yet."));
    return;
  }
  for (const [block, series] of blocks) {
    const rps = last(series.rps) ?? 0;
    const peak = Math.max(0, ...series.rps);
    const card = el("div", { class: "block", "data-block": block, "data-peak": String(peak) },
      el("div", { class: "block-head" }, el("b", {}, block),
        el("span", { class: "rps", "data-rps": String(rps) }, `${number(rps)} req/s`)),
      chart([series.rps], ["rps"], "req/s"),
      el("div", { class: "legend" },
        el("span", { class: "p50" }, `p50 ${number(last(series.p50))} ms`),
        el("span", { class: "p99" }, `p99 ${number(last(series.p99))} ms`)),
      chart([series.p99, series.p50], ["p99", "p50"], "ms"));
    charts.append(card);
  }
}

function rateLimit(rule) {
  const per = rule.intervalSeconds === 1 ? "s" : `${rule.intervalSeconds}s`;
  return `${rule.threshold}/${per}${rule.behavior === "queue" ? " (queue)" : ""}`;
}

function clock(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString();
}

function draw(data) {
  lastApp = { ...data.app, seenAt: Date.now() };
  document.title = `${data.app.id} · l8 dashboard`;
  $("app-id").textContent = data.app.id;
  $("app-version").textContent = data.app.version;
  $("app-dapr").textContent = data.app.daprApiVersion;
  const status = $("app-status");
  status.textContent = data.app.status;
  status.className = `badge ${data.app.status.toLowerCase()}`;
  tick();
  drawTraffic(data.traffic);
  $("component-count").textContent = `${data.components.length}`;
  fill("components", data.components.map((c) => [
    health(c.health), el("b", {}, c.name), el("code", {}, `${c.type}/${c.version}`),
    el("td", {}, chips(c.capabilities), c.reason ? el("div", { class: "reason" }, c.reason) : ""),
  ]), "No components.", 4);
  fill("subscriptions", data.subscriptions.map((s) => [
    s.pubsubname, el("b", {}, s.topic),
    el("td", {}, ...s.routes.map((r) => el("div", {}, r.match ? el("code", {}, r.match) : el("span", { class: "muted" }, "default"), " → ", el("code", {}, r.path)))),
  ]), "No subscriptions.", 3);
  fill("rate-limits", data.rateLimits.map((r) => [
    el("b", {}, r.name), rateLimit(r), el("span", { class: "ok" }, String(r.allowed)), el("span", { class: r.refused ? "bad" : "" }, String(r.refused)),
  ]), "No rate-limit rules.", 4);
  fill("wasm", data.wasmFunctions.map((f) => [
    el("b", {}, f.id), String(f.instanceNum), String(f.calls), String(f.errors), String(f.traps),
  ]), "No functions registered.", 5);
  const active = (data.actors.activeActors || []).map((a) => `${a.type}: ${a.count}`).join(", ");
  $("actors").textContent = data.actors.runtimeStatus === "DISABLED"
    ? "No actors hosted (actor runtime disabled)."
    : `Actor runtime: ${data.actors.runtimeStatus}` + (data.actors.placement ? ` (${data.actors.placement})` : "")
      + (active ? `; active actors: ${active}` : "; no active actors");
  fill("errors", data.errors.map((e) => [
    clock(e.time), el("span", { class: "bad" }, String(e.status)), el("code", {}, e.code || "–"),
    el("code", {}, `${e.method} ${e.route}`), e.message,
  ]), "No errors answered.", 5);
}

function tick() {
  if (!lastApp) return;
  $("app-uptime").textContent = duration(lastApp.uptimeSeconds + (Date.now() - lastApp.seenAt) / 1000);
}

function showLogin(message) {
  clearTimeout(timer);
  $("main").hidden = true;
  $("login").hidden = false;
  const error = $("login-error");
  error.hidden = !message;
  error.textContent = message || "";
  $("token").focus();
}

async function poll() {
  clearTimeout(timer);
  const token = sessionStorage.getItem(TOKEN);
  const headers = token ? { "dapr-api-token": token } : {};
  try {
    const answer = await fetch(DATA, { headers, cache: "no-store" });
    if (answer.status === 401) {
      sessionStorage.removeItem(TOKEN);
      $("logout").hidden = true;
      showLogin(token ? "That token was refused." : "");
      return;
    }
    if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
    const data = await answer.json();
    $("login").hidden = true;
    $("main").hidden = false;
    $("logout").hidden = !token;
    $("live").className = "live on";
    draw(data);
  } catch (problem) {
    $("live").className = "live off";
    $("live").title = `not reachable: ${problem.message}`;
  }
  timer = setTimeout(poll, POLL_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN, $("token").value);
    $("token").value = "";
    poll();
  });
  $("logout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN);
    showLogin("");
  });
  setInterval(tick, 1000);
  poll();
});
