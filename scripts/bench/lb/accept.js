// p99 of `POST /payments` through the lb next to the bare `floor` responder (a hyper
// server answering 202 with no work), under the same load in one k6 run (TARGETS, by
// default `floor` and `lb`): a constant
// arrival rate of RATE requests/s with a fresh uuid per payment, SECONDS s per target,
// taken in ROUNDS alternating slices (floor, lb, floor, lb, ...) so that whatever else
// the machine does falls on both alike. Run by scripts/bench/lb/vs_floor.sh, which starts
// the stack and writes the figures to RESULT_FILE, and by scripts/bench/stress_sweep.py (one
// target, SUMMARY_JSON). Like k6/stress.js, it keeps k6's own CPU per request low: the
// native uuid, no response bodies, only the tags it reads.
import http from "k6/http";
import { TIMEOUT } from "../../../k6/lib.js";

const RATE = Number(__ENV.RATE || 500);
const SECONDS = Number(__ENV.SECONDS || 20);
const ROUNDS = Number(__ENV.ROUNDS || 4);
const SLICE = SECONDS / ROUNDS;
// Seconds between slices, so one slice's stragglers do not overlap the next.
const GAP = 1;
// `name=url` pairs, comma-separated, in slice order.
const TARGETS = Object.fromEntries(
  (__ENV.TARGETS || "floor=http://127.0.0.1:9998,lb=http://127.0.0.1:9999")
    .split(",")
    .map((pair) => pair.split("=")),
);
const ORDER = Object.keys(TARGETS);
const STATS = ["avg", "med", "p(90)", "p(99)", "p(99.9)", "max"];

function slice(name, index) {
  return {
    executor: "constant-arrival-rate",
    rate: RATE,
    timeUnit: "1s",
    duration: `${SLICE}s`,
    startTime: `${index * (SLICE + GAP)}s`,
    // PRE_VUS / MAX_VUS: scripts/bench/stress_sweep.py sizes them as k6/stress.js does, so
    // both targets see the same connection count.
    preAllocatedVUs: Number(__ENV.PRE_VUS || 50),
    maxVUs: Number(__ENV.MAX_VUS || 500),
    exec: "pay",
    env: { TARGET: TARGETS[name] },
    tags: { target: name },
  };
}

// A threshold per target makes k6 keep that target's own trend in the summary.
const thresholds = {};
for (const name of ORDER) {
  thresholds[`http_req_duration{target:${name}}`] = ["max>=0"];
  thresholds[`http_req_failed{target:${name}}`] = ["rate>=0"];
  thresholds[`http_reqs{target:${name}}`] = ["count>=0"];
}

export const options = {
  discardResponseBodies: true,
  systemTags: ["status"],
  scenarios: Object.fromEntries(
    Array.from({ length: ROUNDS * ORDER.length }, (_, i) => {
      const name = ORDER[i % ORDER.length];
      return [`${name}_${Math.floor(i / ORDER.length) + 1}`, slice(name, i)];
    }),
  ),
  summaryTrendStats: STATS,
  thresholds,
};

export function pay() {
  const body = JSON.stringify({ correlationId: crypto.randomUUID(), amount: 19.9 });
  http.post(`${__ENV.TARGET}/payments`, body, {
    headers: { "Content-Type": "application/json" },
    timeout: TIMEOUT,
  });
}

function row(data, name) {
  const values = (metric) => (data.metrics[`${metric}{target:${name}}`] || { values: {} }).values;
  const d = values("http_req_duration");
  const ms = STATS.map((s) => (d[s] === undefined ? "-" : d[s].toFixed(3)).padStart(8));
  const count = String(values("http_reqs").count || 0).padStart(8);
  const failed = `${((values("http_req_failed").rate || 0) * 100).toFixed(2)}%`.padStart(7);
  return `${name.padEnd(8)} ${count} ${failed} ${ms.join(" ")}`;
}

export function handleSummary(data) {
  const header = `target   requests  failed ${STATS.map((s) => s.padStart(8)).join(" ")}   (ms)`;
  const lines = [
    `POST /payments, constant arrival ${RATE}/s, ${SECONDS} s per target in ${ROUNDS} alternating slices, fresh uuid each, k6 ${__ENV.K6_VERSION || ""}`.trim(),
    header,
    ...ORDER.map((name) => row(data, name)),
  ];
  const text = lines.join("\n") + "\n";
  const out = { stdout: text };
  if (__ENV.RESULT_FILE) out[__ENV.RESULT_FILE] = text;
  if (__ENV.SUMMARY_JSON) out[__ENV.SUMMARY_JSON] = JSON.stringify(summaryJson(data));
  return out;
}

// {target: {sent, ok, failed, dropped, p50_ms, p99_ms, p999_ms, max_ms}}. k6 counts dropped
// requests for the whole run, not per target: they are reported with a run of one target only.
function summaryJson(data) {
  const dropped = ((data.metrics.dropped_iterations || {}).values || {}).count || 0;
  return Object.fromEntries(ORDER.map((name) => {
    const values = (metric) => (data.metrics[`${metric}{target:${name}}`] || { values: {} }).values;
    const d = values("http_req_duration");
    const sent = values("http_reqs").count || 0;
    const failed = Math.round((values("http_req_failed").rate || 0) * sent);
    return [name, {
      sent, ok: sent - failed, failed, dropped: ORDER.length === 1 ? dropped : null,
      p50_ms: d.med, p99_ms: d["p(99)"], p999_ms: d["p(99.9)"], max_ms: d.max,
    }];
  }));
}
