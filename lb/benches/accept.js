// p99 of `POST /payments` through the lb next to the bare `floor` responder (a hyper
// server answering 202 with no work), under the same load in one k6 run: scenario
// `floor` first, then scenario `lb`, each a constant arrival rate of RATE requests/s for
// SECONDS s with a fresh uuid per payment. Run by lb/benches/lb-vs-floor.sh, which starts
// the stack and writes the figures to RESULT_FILE.
import http from "k6/http";
import { uuidv4, TIMEOUT } from "../../k6/lib.js";

const RATE = Number(__ENV.RATE || 500);
const SECONDS = Number(__ENV.SECONDS || 20);
// Seconds between the two scenarios, so the first one's stragglers do not overlap.
const GAP = 3;
const TARGETS = {
  floor: __ENV.FLOOR_URL || "http://127.0.0.1:9998",
  lb: __ENV.LB_URL || "http://127.0.0.1:9999",
};
const ORDER = ["floor", "lb"];
const STATS = ["avg", "med", "p(90)", "p(99)", "max"];

function scenario(name, index) {
  return {
    executor: "constant-arrival-rate",
    rate: RATE,
    timeUnit: "1s",
    duration: `${SECONDS}s`,
    startTime: `${index * (SECONDS + GAP)}s`,
    preAllocatedVUs: 50,
    maxVUs: 500,
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
  scenarios: Object.fromEntries(ORDER.map((name, i) => [name, scenario(name, i)])),
  summaryTrendStats: STATS,
  thresholds,
};

export function pay() {
  const body = JSON.stringify({ correlationId: uuidv4(), amount: 19.9 });
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
  return `${name.padEnd(6)} ${count} ${failed} ${ms.join(" ")}`;
}

export function handleSummary(data) {
  const header = `target requests  failed ${STATS.map((s) => s.padStart(8)).join(" ")}   (ms)`;
  const lines = [
    `POST /payments, constant arrival ${RATE}/s for ${SECONDS} s per target, fresh uuid each, k6 ${__ENV.K6_VERSION || ""}`.trim(),
    header,
    ...ORDER.map((name) => row(data, name)),
  ];
  const text = lines.join("\n") + "\n";
  const out = { stdout: text };
  if (__ENV.RESULT_FILE) out[__ENV.RESULT_FILE] = text;
  return out;
}
