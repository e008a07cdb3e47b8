// What every scenario in k6/ shares: where the backend and the processors are, how to
// call them (the public API and the processors' admin API), and how to compare our
// summary with the processors'. Local module only: k6 runs offline here, so nothing is
// imported from the network.
import http from "k6/http";

export const BACKEND_URL = __ENV.BACKEND_URL || "http://127.0.0.1:9999";
export const PROCESSOR_URL = {
  default: __ENV.PROCESSOR_DEFAULT_URL || "http://127.0.0.1:8001",
  fallback: __ENV.PROCESSOR_FALLBACK_URL || "http://127.0.0.1:8002",
};
// The processors' admin token when the test starts (the contest's processors boot with 123).
export const INITIAL_TOKEN = __ENV.TOKEN || "123";
// The contest's HTTP timeout for every request.
export const TIMEOUT = "1500ms";
// The fees the contest charges when a processor does not report its own.
export const FEE = { default: 0.05, fallback: 0.15 };

const JSON_HEADERS = { "Content-Type": "application/json" };

/** A random RFC 4122 version-4 uuid (Math.random is enough for unique test ids). */
export function uuidv4() {
  return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, (c) => {
    const r = (Math.random() * 16) | 0;
    return (c === "x" ? r : (r & 0x3) | 0x8).toString(16);
  });
}

/** A fresh admin token, as the contest sets one at the start of every run. */
export function randomToken() {
  return `k6-${uuidv4()}`;
}

// responseType "text": the open-model scenarios discard response bodies by default, and
// these answers are read.
function adminParams(token, name) {
  return { headers: { ...JSON_HEADERS, "X-Rinha-Token": token }, timeout: TIMEOUT, tags: { name }, responseType: "text" };
}

function fail(what, res) {
  throw new Error(`${what}: HTTP ${res.status} ${res.error || ""} ${String(res.body || "").slice(0, 200)}`);
}

/** PUT /admin/configurations/token on one processor; throws unless 204. */
export function setProcessorToken(which, fromToken, toToken) {
  const res = http.put(`${PROCESSOR_URL[which]}/admin/configurations/token`, JSON.stringify({ token: toToken }),
    adminParams(fromToken, "admin_token"));
  if (res.status !== 204) {
    fail(`setting the ${which} processor's token (is its token really ${fromToken}? pass -e TOKEN=...)`, res);
  }
}

/** PUT /admin/configurations/delay on one processor; throws unless 200. */
export function setProcessorDelay(which, token, delayMs) {
  const res = http.put(`${PROCESSOR_URL[which]}/admin/configurations/delay`, JSON.stringify({ delay: delayMs }),
    adminParams(token, "admin_delay"));
  if (res.status !== 200) fail(`setting the ${which} processor's delay`, res);
}

/** PUT /admin/configurations/failure on one processor; throws unless 200. */
export function setProcessorFailure(which, token, failure) {
  const res = http.put(`${PROCESSOR_URL[which]}/admin/configurations/failure`, JSON.stringify({ failure }),
    adminParams(token, "admin_failure"));
  if (res.status !== 200) fail(`setting the ${which} processor's failure`, res);
}

/** Sets one processor's delay (ms) and failure flag. */
export function setProcessorState(which, token, delayMs, failure) {
  setProcessorDelay(which, token, delayMs);
  setProcessorFailure(which, token, failure);
}

/** POST /admin/purge-payments on one processor; throws unless 200. */
export function purgeProcessor(which, token) {
  const res = http.post(`${PROCESSOR_URL[which]}/admin/purge-payments`, null, adminParams(token, "admin_purge"));
  if (res.status !== 200) fail(`purging the ${which} processor`, res);
}

/** POST /purge-payments on the backend; like the contest, tolerates its absence. */
export function purgeBackend() {
  const res = http.post(`${BACKEND_URL}/purge-payments`, null, { timeout: TIMEOUT, tags: { name: "purge" } });
  if (res.status < 200 || res.status > 299) {
    console.warn(`backend POST /purge-payments answered ${res.status} ${res.error || ""}; going on`);
  }
}

const EMPTY_PROCESSOR = { totalRequests: 0, totalAmount: 0, totalFee: 0, feePerTransaction: 0, ok: false };
const EMPTY_BACKEND = {
  default: { totalRequests: 0, totalAmount: 0 },
  fallback: { totalRequests: 0, totalAmount: 0 },
  ok: false,
};

function windowQuery(from, to) {
  return `from=${from.toISOString()}&to=${to.toISOString()}`;
}

function processorSummaryRequest(which, token, from, to) {
  return ["GET", `${PROCESSOR_URL[which]}/admin/payments-summary?${windowQuery(from, to)}`, null,
    adminParams(token, "admin_summary")];
}

function backendSummaryRequest(from, to) {
  return ["GET", `${BACKEND_URL}/payments-summary?${windowQuery(from, to)}`, null,
    { timeout: TIMEOUT, tags: { name: "summary" }, responseType: "text" }];
}

// An unreadable summary counts as zeros, as in the contest (so it shows as inconsistency).
function parseOr(res, empty, what) {
  if (res.status === 200) {
    try {
      return { ...JSON.parse(res.body), ok: true };
    } catch (e) {
      console.error(`${what}: body is not JSON: ${String(res.body).slice(0, 200)}`);
      return empty;
    }
  }
  console.error(`${what}: HTTP ${res.status} ${res.error || ""}`);
  return empty;
}

/**
 * Reads our summary and both processors' admin summaries for [from, to], all three at
 * once (as the contest's audit does), and returns them with the difference in
 * totalRequests, which is what the contest counts as inconsistencies.
 */
export async function readSummaries(token, from, to) {
  const [ours, def, fb] = await Promise.all([
    http.asyncRequest(...backendSummaryRequest(from, to)),
    http.asyncRequest(...processorSummaryRequest("default", token, from, to)),
    http.asyncRequest(...processorSummaryRequest("fallback", token, from, to)),
  ]);
  const backend = parseOr(ours, EMPTY_BACKEND, "backend GET /payments-summary");
  const processors = {
    default: parseOr(def, EMPTY_PROCESSOR, "default processor summary"),
    fallback: parseOr(fb, EMPTY_PROCESSOR, "fallback processor summary"),
  };
  const diff = Math.abs(backend.default.totalRequests - processors.default.totalRequests)
    + Math.abs(backend.fallback.totalRequests - processors.fallback.totalRequests);
  return { backend, processors, diff };
}

const PAYMENT_PARAMS = { headers: JSON_HEADERS, timeout: TIMEOUT, tags: { name: "payments" } };

/**
 * POST /payments of one fresh payment; returns the k6 response. The default id is the
 * contest's own uuid (jslib's, in JavaScript); the open-model scenarios pass k6's native
 * `crypto.randomUUID()` instead, which costs k6 far less CPU per request.
 */
export function postPayment(amount, correlationId = uuidv4()) {
  const body = JSON.stringify({ correlationId, amount });
  return http.post(`${BACKEND_URL}/payments`, body, PAYMENT_PARAMS);
}

/** The contest's notion of a successful POST /payments. */
export function accepted(res) {
  return [200, 201, 202, 204].includes(res.status);
}

/**
 * Waits (bounded by maxMs) until our summary for [from, now] agrees with the processors'
 * and has stopped moving for `quietMs`: the end of a run's queue. Returns the last reading.
 */
export async function drain(token, from, maxMs, quietMs) {
  const deadline = Date.now() + maxMs;
  let last = null;
  let stableSince = Date.now();
  for (;;) {
    const now = new Date();
    const s = await readSummaries(token, from, now);
    const total = s.backend.default.totalRequests + s.backend.fallback.totalRequests;
    if (last === null || total !== last.total || s.diff !== 0) stableSince = Date.now();
    last = { ...s, total, to: now };
    if ((s.diff === 0 && Date.now() - stableSince >= quietMs) || Date.now() >= deadline) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Fixed-width figure for the tables the scenarios print. */
export function fmt(x, digits = 2) {
  if (x === undefined || x === null || Number.isNaN(x)) return "-";
  return typeof x === "number" ? x.toFixed(digits) : String(x);
}

/** A metric's value from handleSummary data, or `dflt` when the metric never got a sample. */
export function metric(data, name, stat, dflt = 0) {
  const m = data.metrics[name];
  return m && m.values && m.values[stat] !== undefined ? m.values[stat] : dflt;
}

// ---- shared by the open-model scenarios (stress.js, faults.js) ----

/** Setup of a run beyond the contest: our own token, everything purged, processors healthy. */
export function freshRun() {
  const token = randomToken();
  for (const which of ["default", "fallback"]) {
    setProcessorToken(which, INITIAL_TOKEN, token);
    purgeProcessor(which, token);
    setProcessorState(which, token, 0, false);
  }
  purgeBackend();
  return { token, startedAt: Date.now() };
}

/**
 * Teardown of such a run: processors healthy again, wait for the queue to drain (bounded
 * by DRAIN_SECS), add the end counts to `counters` for handleSummary, give the token back.
 */
export async function drainAndRecord(data, counters) {
  for (const which of ["default", "fallback"]) setProcessorState(which, data.token, 0, false);
  const maxMs = parseInt(__ENV.DRAIN_SECS || "30", 10) * 1000;
  const s = await drain(data.token, new Date(data.startedAt - 1000), maxMs, 2000);
  counters.recorded.add(s.backend.default.totalRequests + s.backend.fallback.totalRequests);
  counters.recordedDefault.add(s.backend.default.totalRequests);
  counters.processors.add(s.processors.default.totalRequests + s.processors.fallback.totalRequests);
  counters.inconsistency.add(s.diff);
  for (const which of ["default", "fallback"]) setProcessorToken(which, data.token, INITIAL_TOKEN);
}

/** The counters drainAndRecord fills; create them in the init context of the scenario. */
export function endCounters(Counter) {
  return {
    recorded: new Counter("recorded_total"),
    recordedDefault: new Counter("recorded_default"),
    processors: new Counter("processors_total"),
    inconsistency: new Counter("end_inconsistency"),
  };
}

/**
 * The open-model load of stress.js and faults.js: `rate` payments/s for `durationSecs`
 * (it runs the script's exported `payments`), and the report settings both use.
 *
 * k6 shares the machine with the stack, so every microsecond it spends per request is
 * taken from what it measures: response bodies are discarded (the 202 has none; the
 * summaries ask for theirs), and only the tags the report reads are kept. With these and
 * the native uuid, k6 needs about 130 µs of CPU per payment instead of about 200 (with
 * GOGC=800 in its environment, as scripts/stress_sweep.py runs it).
 */
export function openLoad(rate, durationSecs, preAllocatedCap, maxVUs) {
  return {
    report: {
      summaryTrendStats: ["avg", "p(50)", "p(90)", "p(99)", "p(99.9)", "max", "count"],
      thresholds: { "http_req_duration{name:payments}": ["p(99)>=0"] },
      discardResponseBodies: true,
      systemTags: ["status", "name"],
    },
    load: {
      exec: "payments",
      executor: "constant-arrival-rate",
      rate,
      timeUnit: "1s",
      duration: `${durationSecs}s`,
      preAllocatedVUs: Math.min(rate, preAllocatedCap),
      maxVUs,
    },
  };
}

/**
 * One payment of 19.90 per call, counted in `payments_sent` / `payments_failed` (which
 * openReport reads); call it in the init context.
 */
export function paymentSender(Counter) {
  const sent = new Counter("payments_sent");
  const failed = new Counter("payments_failed");
  return () => {
    if (accepted(postPayment(19.9, crypto.randomUUID()))) sent.add(1);
    else failed.add(1);
  };
}

/** handleSummary of an open-model run: latency percentiles, errors, lag, consistency. */
export function openReport(data, scenario, extra) {
  const c = (name) => metric(data, name, "count");
  const lat = (stat) => metric(data, "http_req_duration{name:payments}", stat, NaN);
  const sent = c("payments_sent");
  const r = {
    scenario, ...extra,
    payments_sent: sent,
    payments_failed: c("payments_failed"),
    dropped_iterations: c("dropped_iterations"),
    achieved_rate: sent / extra.duration_secs,
    p50_ms: lat("p(50)"), p99_ms: lat("p(99)"), p999_ms: lat("p(99.9)"), max_ms: lat("max"),
    recorded: c("recorded_total"), recorded_default: c("recorded_default"),
    processors: c("processors_total"),
    end_inconsistency: c("end_inconsistency"),
    lag: sent - c("recorded_total"),
  };
  r.consistent = r.end_inconsistency === 0 && r.lag === 0;
  const rows = [
    ["payments sent (2xx)", `${sent}  (${fmt(r.achieved_rate, 0)}/s; ${r.payments_failed} not 2xx, ${r.dropped_iterations} dropped)`],
    ["POST /payments p50/p99/p99.9", `${fmt(r.p50_ms, 3)} / ${fmt(r.p99_ms, 3)} / ${fmt(r.p999_ms, 3)} ms (max ${fmt(r.max_ms, 1)})`],
    ["recorded (default) / processors", `${r.recorded} (${r.recorded_default}) / ${r.processors}`],
    ["lag, end inconsistency", `${r.lag}, ${r.end_inconsistency}  -> ${r.consistent ? "consistent" : "NOT CONSISTENT"}`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  const out = { stdout: `\n${rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join("\n")}\n\n` };
  if (__ENV.RESULT_FILE) out[__ENV.RESULT_FILE] = JSON.stringify(r, null, 2);
  return out;
}
