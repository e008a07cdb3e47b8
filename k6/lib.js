// What every scenario in k6/ shares: where the backend and the processors are, how to
// call them (the public API and the processors' admin API), and how to compare our
// summary with the processors'. Local module only: k6 runs offline here, so nothing is
// imported from the network.
import { sleep } from "k6";
import exec from "k6/execution";
import http from "k6/http";
import { Counter } from "k6/metrics";

export const BACKEND_URL = __ENV.BACKEND_URL || "http://127.0.0.1:9999";
export const PROCESSOR_URL = {
  default: __ENV.PROCESSOR_DEFAULT_URL || "http://127.0.0.1:8001",
  fallback: __ENV.PROCESSOR_FALLBACK_URL || "http://127.0.0.1:8002",
};
// The processors' admin token when a test starts: the contest's processors always boot
// with 123, and so do our simulators.
export const START_TOKEN = "123";
// The contest's HTTP timeout for every request.
export const TIMEOUT = "1500ms";

const JSON_HEADERS = { "Content-Type": "application/json" };

/** A random RFC 4122 version-4 uuid (Math.random is enough for unique test ids). */
export function uuidv4() {
  return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, (c) => {
    const r = (Math.random() * 16) | 0;
    return (c === "x" ? r : (r & 0x3) | 0x8).toString(16);
  });
}

/**
 * The admin token a test sets on the processors (from START_TOKEN) for its run: `-e
 * TOKEN=...` as the contest's runner passes it (a new uuid each run), else a random one.
 * Call it in setup(): the init context runs once per VU.
 */
export function runToken() {
  return __ENV.TOKEN || `k6-${uuidv4()}`;
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
    fail(`setting the ${which} processor's token from ${fromToken} (a run stopped half-way leaves its own: `
      + "restart the processors)", res);
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

/** The request parameters of POST /payments, with `tags` added to its `name`. */
export function paymentParams(tags = {}) {
  return { headers: JSON_HEADERS, timeout: TIMEOUT, tags: { name: "payments", ...tags } };
}

const PAYMENT_PARAMS = paymentParams();

/**
 * POST /payments of one fresh payment; returns the k6 response. The default id is the
 * contest's own uuid (jslib's, in JavaScript); the open-model scenarios pass k6's native
 * `crypto.randomUUID()` instead, which costs k6 far less CPU per request.
 */
export function postPayment(amount, correlationId = uuidv4(), params = PAYMENT_PARAMS) {
  const body = JSON.stringify({ correlationId, amount });
  return http.post(`${BACKEND_URL}/payments`, body, params);
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
  const token = runToken();
  for (const which of ["default", "fallback"]) {
    setProcessorToken(which, START_TOKEN, token);
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
  for (const which of ["default", "fallback"]) setProcessorToken(which, data.token, START_TOKEN);
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
 * GOGC=800 in its environment, as scripts/bench/stress_sweep.py runs it).
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

// ---- shared by the contest's scenarios (contest.js: the preview; final.js: the final) ----

const AUDIT_EVERY_SECS = 10;
const pad2 = (i) => String(i).padStart(2, "0");

// Rounds half away from zero at two decimal places of the number's shortest decimal
// form, as big.js's round(2) in the official script does (1.255 -> 1.26, where
// Math.round(1.255 * 100) would give 1.25).
const round2 = (x) => {
  const shifted = Number(`${Math.abs(x)}e2`); // NaN when the number prints with an exponent (< 1e-6)
  return Number.isNaN(shifted) ? Math.round(x * 100) / 100 : Math.sign(x) * Number(`${Math.round(shifted)}e-2`);
};

/**
 * The contest's score from the end-of-test data of a contest scenario. `from` says whose
 * summaries are scored: "backend" (the preview reads ours) or "processors" (the final reads
 * the processors' admin summaries). Fees are each processor's `feePerTransaction` × the
 * scored amount; lag = accepted POSTs − the scored totalRequests; p99 over every
 * successful request, p99 and bonus rounded to two places; 35 % off on any inconsistency.
 */
export function contestScore(data, from) {
  const c = (name) => metric(data, name, "count");
  const sent = c("payments_sent");
  const ours = {
    default: { requests: c("recorded_default_requests"), amount: c("recorded_default_amount") },
    fallback: { requests: c("recorded_fallback_requests"), amount: c("recorded_fallback_amount") },
  };
  const theirs = {
    default: { requests: c("processor_default_requests"), amount: c("processor_default_amount") },
    fallback: { requests: c("processor_fallback_requests"), amount: c("processor_fallback_amount") },
  };
  const scored = from === "processors" ? theirs : ours;
  const gross = scored.default.amount + scored.fallback.amount;
  const fees = scored.default.amount * c("fee_default") + scored.fallback.amount * c("fee_fallback");
  const profit = gross - fees;
  const p99Raw = metric(data, "http_req_duration{expected_response:true}", "p(99)", NaN);
  const p99 = round2(p99Raw);
  const bonus = Math.max(round2((11 - p99) * 0.02), 0);
  const inconsistent = c("payments_inconsistency");
  const fine = inconsistent > 0 ? 0.35 : 0;
  const lag = sent - (scored.default.requests + scored.fallback.requests);
  return {
    score: profit + profit * bonus - profit * fine,
    scored_from: from,
    profit, gross, fees,
    fee_per_transaction: { default: c("fee_default"), fallback: c("fee_fallback") },
    p99_ms: p99, p99_raw_ms: p99Raw, p99_bonus: bonus,
    p99_payments_ms: metric(data, "http_req_duration{name:payments}", "p(99)", NaN),
    p50_payments_ms: metric(data, "http_req_duration{name:payments}", "p(50)", NaN),
    inconsistencies: inconsistent, audits: c("audits"), fine,
    payments_sent: sent, payments_failed: c("payments_failed"),
    default: ours.default, fallback: ours.fallback,
    processors: { default: theirs.default.requests, fallback: theirs.fallback.requests },
    processors_amount: { default: theirs.default.amount, fallback: theirs.fallback.amount },
    lag, over_recorded: lag < 0,
    http_requests: metric(data, "http_reqs", "count"),
  };
}

/**
 * Everything a contest scenario exports, from its description `spec`:
 *   name, maxRequests (MAX_REQUESTS's default), runSecs, amount, stages ([{at, default:
 *   [delay ms, failing], fallback: [...]}], each held until the next), auditToMs (the
 *   audit window is [now − 15 s, now − auditToMs]), teardownWindowSecs, scoreFrom
 *   ("backend" | "processors"), fees ({default, fallback}: used only when a processor
 *   reports no feePerTransaction).
 * Per stage (by the time k6 sent a payment) the result also gives the payments accepted
 * and refused, the p99 of POST /payments, the payments each processor stored with a
 * requestedAt in the stage (read after the scoring read, at teardown), and each audit's
 * difference.
 */
export function contestScenario(spec) {
  const num = (name, dflt, ok) => {
    const raw = __ENV[name];
    const v = raw === undefined || raw === "" ? dflt : Number(raw);
    if (!ok(v)) throw new Error(`${name}=${JSON.stringify(raw)}: not a valid value`);
    return v;
  };
  const MAX_REQUESTS = num("MAX_REQUESTS", spec.maxRequests, (v) => Number.isInteger(v) && v >= 1);
  const TIME_SCALE = num("TIME_SCALE", 1, (v) => v > 0);
  const DRAIN_MS = num("DRAIN_MS", 0, (v) => Number.isInteger(v) && v >= 0);
  // The audit and teardown windows are tolerances of the contest, not parts of its
  // timeline: TIME_SCALE leaves them alone (except that the teardown window always covers
  // the whole run).
  const AUDIT_FROM_MS = 15000;
  const TEARDOWN_WINDOW_MS = Math.max(spec.teardownWindowSecs, spec.runSecs * TIME_SCALE + 10) * 1000;
  const stages = spec.stages;
  const scaledMs = (secs) => Math.max(1, Math.round(secs * TIME_SCALE * 1000));
  const scaled = (secs) => `${scaledMs(secs)}ms`;
  // Stage i holds from its `at` (the first from 0) until the next one's, the last until the end.
  const stageStart = stages.map((s, i) => (i === 0 ? 0 : scaledMs(s.at)));
  const stageEnd = stages.map((s, i) => (i + 1 < stages.length ? stageStart[i + 1] : scaledMs(spec.runSecs)));
  const stageAt = (elapsedMs) => {
    let i = 0;
    while (i + 1 < stages.length && elapsedMs >= stageStart[i + 1]) i += 1;
    return i;
  };
  const maxAudits = Math.ceil(spec.runSecs / AUDIT_EVERY_SECS) + 2;
  const params = stages.map((_, i) => paymentParams({ stage: pad2(i) }));

  // Sub-metrics that handleSummary reads are declared as thresholds that cannot fail.
  const thresholds = {
    "http_req_duration{expected_response:true}": ["p(99)>=0"],
    "http_req_duration{name:payments}": ["p(99)>=0"],
  };
  stages.forEach((_, i) => {
    thresholds[`http_req_duration{name:payments,stage:${pad2(i)}}`] = ["p(99)>=0"];
    for (const m of ["payments_sent", "payments_failed", "stage_stored_default", "stage_stored_fallback"]) {
      thresholds[`${m}{stage:${pad2(i)}}`] = ["count>=0"];
    }
  });
  for (let a = 0; a < maxAudits; a += 1) {
    thresholds[`audit_diff{audit:${pad2(a)}}`] = ["count>=0"];
    thresholds[`audit_at_ms{audit:${pad2(a)}}`] = ["count>=0"];
  }
  const stageScenarios = {};
  stages.forEach((s, i) => {
    stageScenarios[`stage_${pad2(i)}`] = {
      exec: "defineStage", executor: "per-vu-iterations", vus: 1, iterations: 1,
      startTime: scaled(s.at), env: { STAGE: String(i) },
    };
  });
  const options = {
    summaryTrendStats: ["avg", "p(50)", "p(90)", "p(99)", "p(99.9)", "max", "count"],
    thresholds,
    scenarios: {
      payments: {
        exec: "payments", executor: "ramping-vus", startVUs: 1, gracefulRampDown: "0s",
        stages: [{ target: MAX_REQUESTS, duration: scaled(spec.runSecs) }],
      },
      payments_consistency: { exec: "audit", executor: "constant-vus", vus: 1, duration: scaled(spec.runSecs) },
      ...stageScenarios,
    },
  };

  const m = {
    sent: new Counter("payments_sent"),
    failed: new Counter("payments_failed"),
    inconsistency: new Counter("payments_inconsistency"),
    audits: new Counter("audits"),
    auditDiff: new Counter("audit_diff"),
    auditAt: new Counter("audit_at_ms"),
    storedDefault: new Counter("stage_stored_default"),
    storedFallback: new Counter("stage_stored_fallback"),
  };
  // Filled once by teardown, read by handleSummary (the only way data flows between them).
  const end = {};
  for (const name of ["recorded_default_requests", "recorded_default_amount", "recorded_fallback_requests",
    "recorded_fallback_amount", "processor_default_requests", "processor_default_amount",
    "processor_fallback_requests", "processor_fallback_amount", "fee_default", "fee_fallback"]) {
    end[name] = new Counter(name);
  }

  function setup() {
    const token = runToken();
    for (const which of ["default", "fallback"]) {
      setProcessorToken(which, START_TOKEN, token);
      purgeProcessor(which, token);
    }
    purgeBackend();
    return { token, startedAt: Date.now() };
  }

  function payments(data) {
    const stage = stageAt(Date.now() - data.startedAt);
    const res = postPayment(spec.amount, uuidv4(), params[stage]);
    if (accepted(res)) m.sent.add(1, { stage: pad2(stage) });
    else m.failed.add(1, { stage: pad2(stage) });
    sleep(1);
  }

  async function audit(data) {
    const now = Date.now();
    const s = await readSummaries(data.token, new Date(now - AUDIT_FROM_MS), new Date(now - spec.auditToMs));
    const tag = { audit: pad2(exec.scenario.iterationInTest) };
    m.audits.add(1);
    m.inconsistency.add(s.diff);
    m.auditDiff.add(s.diff, tag);
    m.auditAt.add(now - data.startedAt, tag);
    if (s.diff > 0) {
      console.warn(`inconsistency at +${((now - data.startedAt) / 1000).toFixed(1)} s: ours default/fallback `
        + `${s.backend.default.totalRequests}/${s.backend.fallback.totalRequests}, processors `
        + `${s.processors.default.totalRequests}/${s.processors.fallback.totalRequests}`);
    }
    sleep(AUDIT_EVERY_SECS * TIME_SCALE);
  }

  function defineStage(data) {
    const stage = stages[parseInt(__ENV.STAGE, 10)];
    // The official script's order: both delays, then both failure flags.
    try {
      setProcessorDelay("default", data.token, stage.default[0]);
      setProcessorDelay("fallback", data.token, stage.fallback[0]);
      setProcessorFailure("default", data.token, stage.default[1]);
      setProcessorFailure("fallback", data.token, stage.fallback[1]);
    } catch (e) {
      exec.test.abort(`stage at ${stage.at} s: ${e.message}`);
    }
  }

  async function teardown(data) {
    if (DRAIN_MS > 0) sleep(DRAIN_MS / 1000);
    const to = new Date();
    const s = await readSummaries(data.token, new Date(to.getTime() - TEARDOWN_WINDOW_MS), to);
    for (const which of ["default", "fallback"]) {
      end[`recorded_${which}_requests`].add(s.backend[which].totalRequests);
      end[`recorded_${which}_amount`].add(s.backend[which].totalAmount);
      end[`processor_${which}_requests`].add(s.processors[which].totalRequests);
      end[`processor_${which}_amount`].add(s.processors[which].totalAmount);
      end[`fee_${which}`].add(s.processors[which].feePerTransaction || spec.fees[which]);
    }
    // Beyond the contest, after the reading it scores: what each processor stored per
    // stage, by the requestedAt we sent (windows are inclusive, so each ends 1 ms early).
    for (let i = 0; i < stages.length; i += 1) {
      const from = new Date(data.startedAt + stageStart[i]);
      const until = i + 1 < stages.length ? new Date(data.startedAt + stageEnd[i] - 1) : to;
      const r = await readSummaries(data.token, from, until);
      m.storedDefault.add(r.processors.default.totalRequests, { stage: pad2(i) });
      m.storedFallback.add(r.processors.fallback.totalRequests, { stage: pad2(i) });
    }
    // Leave the processors as a next run expects them: the start token, no delay, no
    // failure. (The contest does not do this; these few fast admin calls join the p99's
    // samples, like the per-stage reads above.)
    for (const which of ["default", "fallback"]) {
      setProcessorState(which, data.token, 0, false);
      setProcessorToken(which, data.token, START_TOKEN);
    }
  }

  function stageFigures(data) {
    const c = (name) => metric(data, name, "count");
    const audits = [];
    for (let a = 0; a < maxAudits; a += 1) {
      if (data.metrics[`audit_at_ms{audit:${pad2(a)}}`] && c("audits") > a) {
        audits.push({ n: a, at_ms: c(`audit_at_ms{audit:${pad2(a)}}`), diff: c(`audit_diff{audit:${pad2(a)}}`) });
      }
    }
    const perStage = stages.map((s, i) => {
      const t = pad2(i);
      return {
        ...s, start_ms: stageStart[i], end_ms: stageEnd[i],
        arrivals: c(`payments_sent{stage:${t}}`),
        refused: c(`payments_failed{stage:${t}}`),
        p99_payments_ms: metric(data, `http_req_duration{name:payments,stage:${t}}`, "p(99)", null),
        stored: { default: c(`stage_stored_default{stage:${t}}`), fallback: c(`stage_stored_fallback{stage:${t}}`) },
        audit_diffs: audits.filter((x) => stageAt(x.at_ms) === i).map((x) => x.diff),
      };
    });
    return { perStage, audits };
  }

  function handleSummary(data) {
    const setupData = data.setup_data || {};
    const { perStage, audits } = stageFigures(data);
    const result = {
      scenario: spec.name,
      max_requests: MAX_REQUESTS,
      time_scale: TIME_SCALE,
      run_secs: spec.runSecs,
      amount: spec.amount,
      started_at_ms: setupData.startedAt,
      stages: perStage,
      audit_log: audits,
      ...contestScore(data, spec.scoreFrom),
    };
    const out = { stdout: scoreTable(result) + stageTable(result.stages) };
    if (__ENV.RESULT_FILE) out[__ENV.RESULT_FILE] = JSON.stringify(result, null, 2);
    return out;
  }

  return { options, setup, payments, audit, defineStage, teardown, handleSummary };
}

/** The score block a contest scenario prints. */
export function scoreTable(r) {
  const from = r.scored_from === "processors" ? "the processors' summaries" : "our summary";
  const rows = [
    ["score", `${fmt(r.score)}  (from ${from})`],
    ["  profit (gross - fees)", `${fmt(r.profit)} (${fmt(r.gross)} - ${fmt(r.fees)}; fees ${fmt(r.fee_per_transaction.default * 100, 1)} % / ${fmt(r.fee_per_transaction.fallback * 100, 1)} %)`],
    ["  p99 bonus", `${fmt(r.p99_bonus * 100, 0)} %  (p99 ${fmt(r.p99_raw_ms, 3)} ms over ${r.http_requests} requests)`],
    ["  inconsistency fine", `${fmt(r.fine * 100, 0)} %  (${r.inconsistencies} in ${r.audits} audits)`],
    ["payments sent (2xx)", `${r.payments_sent}  (+${r.payments_failed} not 2xx)`],
    ["recorded default/fallback", `${r.default.requests} / ${r.fallback.requests}`],
    ["processors default/fallback", `${r.processors.default} / ${r.processors.fallback}`],
    ["lag", `${r.lag}${r.over_recorded ? "  OVER-RECORDED: disqualified" : ""}`
      + `${r.payments_sent ? `  (${fmt((100 * r.lag) / r.payments_sent, 1)} % of sent)` : ""}`],
    ["POST /payments p50 / p99", `${fmt(r.p50_payments_ms, 3)} / ${fmt(r.p99_payments_ms, 3)} ms`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return `\n${rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join("\n")}\n\n`;
}

/** The per-stage table a contest scenario prints (stages by the time k6 sent). */
export function stageTable(stages) {
  const state = ([d, f]) => `${d}${f ? "F" : ""}`;
  const head = ["from s", "default", "fallback", "arrivals", "refused", "p99 ms", "stored D", "stored F", "audit diffs"];
  const rows = stages.map((s) => [
    fmt(s.start_ms / 1000, 1), state(s.default), state(s.fallback), String(s.arrivals), String(s.refused),
    fmt(s.p99_payments_ms, 2), String(s.stored.default), String(s.stored.fallback), s.audit_diffs.join(" ") || "-",
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r) => `  ${r.map((x, i) => (i === r.length - 1 ? x : x.padStart(w[i]))).join("  ")}`;
  return `${[line(head), ...rows.map(line)].join("\n")}\n  (delay ms, F = failing; stored = what each `
    + "processor stored with a requestedAt in the stage)\n\n";
}
