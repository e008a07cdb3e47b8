// Our reproduction of the Rinha de Backend 2025 load test (docs/contest.md): the same
// load, audit, processor stages, teardown and score, with local addresses and no remote
// imports. Run it with `make test WORKERS=N` (scripts/contest.sh) or:
//
//   k6 run -e MAX_REQUESTS=550 -e RESULT_FILE=out.json k6/contest.js
//
// Variables (-e): MAX_REQUESTS (550), BACKEND_URL, PROCESSOR_DEFAULT_URL,
// PROCESSOR_FALLBACK_URL, TOKEN (the processors' token at start, 123), RESULT_FILE (JSON
// result), TIME_SCALE (1; 0.25 squeezes the 60 s timeline into 15 s for smoke runs),
// DRAIN_MS (0: wait this long before the teardown reads the summaries; the contest waits 0).
import { sleep } from "k6";
import exec from "k6/execution";
import { Counter } from "k6/metrics";
import {
  INITIAL_TOKEN, FEE, accepted, fmt, metric, postPayment, purgeBackend, purgeProcessor,
  randomToken, readSummaries, setProcessorDelay, setProcessorFailure, setProcessorState, setProcessorToken,
} from "./lib.js";

const MAX_REQUESTS = parseInt(__ENV.MAX_REQUESTS || "550", 10);
const TIME_SCALE = parseFloat(__ENV.TIME_SCALE || "1");
const DRAIN_MS = parseInt(__ENV.DRAIN_MS || "0", 10);
const AMOUNT = 19.9;
const RUN_SECS = 60;
const AUDIT_EVERY_SECS = 10;
// The audit window, [now-15 s, now-1.5 s], and the teardown window, the last 70 s, are
// tolerances of the contest, not parts of its timeline: TIME_SCALE leaves them alone
// (except that the teardown window always covers the whole run).
const AUDIT_FROM_MS = 15000;
const AUDIT_TO_MS = 1500;
const TEARDOWN_WINDOW_MS = Math.max(70, 70 * TIME_SCALE) * 1000;

// The processor stages: from second `at`, [delay ms, failing] for default and fallback.
export const STAGES = [
  { at: 1, default: [0, false], fallback: [0, false] },
  { at: 10, default: [100, false], fallback: [0, false] },
  { at: 20, default: [100, true], fallback: [0, false] },
  { at: 30, default: [2000, true], fallback: [1000, true] },
  { at: 40, default: [20, false], fallback: [20, false] },
  { at: 50, default: [0, false], fallback: [5000, false] },
];

const scaled = (secs) => `${Math.max(1, Math.round(secs * TIME_SCALE * 1000))}ms`;

function stageScenarios() {
  const out = {};
  STAGES.forEach((s, i) => {
    out[`stage_${String(i).padStart(2, "0")}`] = {
      exec: "defineStage",
      executor: "per-vu-iterations",
      vus: 1,
      iterations: 1,
      startTime: scaled(s.at),
      env: { STAGE: String(i) },
    };
  });
  return out;
}

export const options = {
  summaryTrendStats: ["avg", "p(50)", "p(90)", "p(99)", "p(99.9)", "max", "count"],
  // Declared so that handleSummary gets these sub-metrics; they cannot fail.
  thresholds: {
    "http_req_duration{expected_response:true}": ["p(99)>=0"],
    "http_req_duration{name:payments}": ["p(99)>=0"],
  },
  scenarios: {
    payments: {
      exec: "payments",
      executor: "ramping-vus",
      startVUs: 1,
      gracefulRampDown: "0s",
      stages: [{ target: MAX_REQUESTS, duration: scaled(RUN_SECS) }],
    },
    payments_consistency: {
      exec: "audit",
      executor: "constant-vus",
      vus: 1,
      duration: scaled(RUN_SECS),
    },
    ...stageScenarios(),
  },
};

const paymentsSent = new Counter("payments_sent");
const paymentsFailed = new Counter("payments_failed");
const inconsistencies = new Counter("payments_inconsistency");
const audits = new Counter("audits");
// Filled once by teardown, read by handleSummary (the only way data flows between them).
const recorded = {
  defaultRequests: new Counter("recorded_default_requests"),
  defaultAmount: new Counter("recorded_default_amount"),
  fallbackRequests: new Counter("recorded_fallback_requests"),
  fallbackAmount: new Counter("recorded_fallback_amount"),
  defaultFee: new Counter("fee_default"),
  fallbackFee: new Counter("fee_fallback"),
  processorDefault: new Counter("processor_default_requests"),
  processorFallback: new Counter("processor_fallback_requests"),
};

export function setup() {
  const token = randomToken();
  for (const which of ["default", "fallback"]) {
    setProcessorToken(which, INITIAL_TOKEN, token);
    purgeProcessor(which, token);
  }
  purgeBackend();
  return { token, startedAt: Date.now() };
}

export function payments() {
  const res = postPayment(AMOUNT);
  if (accepted(res)) paymentsSent.add(1);
  else paymentsFailed.add(1);
  sleep(1);
}

export async function audit(data) {
  const now = Date.now();
  const s = await readSummaries(data.token, new Date(now - AUDIT_FROM_MS), new Date(now - AUDIT_TO_MS));
  audits.add(1);
  inconsistencies.add(s.diff);
  if (s.diff > 0) {
    console.warn(`inconsistency at +${((now - data.startedAt) / 1000).toFixed(1)} s: ours default/fallback `
      + `${s.backend.default.totalRequests}/${s.backend.fallback.totalRequests}, processors `
      + `${s.processors.default.totalRequests}/${s.processors.fallback.totalRequests}`);
  }
  sleep(AUDIT_EVERY_SECS * TIME_SCALE);
}

export function defineStage(data) {
  const stage = STAGES[parseInt(__ENV.STAGE, 10)];
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

export async function teardown(data) {
  if (DRAIN_MS > 0) sleep(DRAIN_MS / 1000);
  const to = new Date();
  const s = await readSummaries(data.token, new Date(to.getTime() - TEARDOWN_WINDOW_MS), to);
  recorded.defaultRequests.add(s.backend.default.totalRequests);
  recorded.defaultAmount.add(s.backend.default.totalAmount);
  recorded.fallbackRequests.add(s.backend.fallback.totalRequests);
  recorded.fallbackAmount.add(s.backend.fallback.totalAmount);
  recorded.defaultFee.add(s.processors.default.feePerTransaction || FEE.default);
  recorded.fallbackFee.add(s.processors.fallback.feePerTransaction || FEE.fallback);
  recorded.processorDefault.add(s.processors.default.totalRequests);
  recorded.processorFallback.add(s.processors.fallback.totalRequests);
  // Leave the processors as a next run expects them: initial token, no delay, no failure.
  // (The contest does not do this; these few fast admin calls join the p99's samples.)
  for (const which of ["default", "fallback"]) {
    setProcessorState(which, data.token, 0, false);
    setProcessorToken(which, data.token, INITIAL_TOKEN);
  }
}

// Rounds half away from zero at two decimal places of the number's shortest decimal
// form, as big.js's round(2) in the official script does (1.255 -> 1.26, where
// Math.round(1.255 * 100) would give 1.25).
const round2 = (x) => {
  const shifted = Number(`${Math.abs(x)}e2`); // NaN when the number prints with an exponent (< 1e-6)
  return Number.isNaN(shifted) ? Math.round(x * 100) / 100 : Math.sign(x) * Number(`${Math.round(shifted)}e-2`);
};

/** The contest's score from the end-of-test data (the official script rounds p99 and bonus to 2 places). */
export function score(data) {
  const c = (name) => metric(data, name, "count");
  const sent = c("payments_sent");
  const def = { requests: c("recorded_default_requests"), amount: c("recorded_default_amount") };
  const fb = { requests: c("recorded_fallback_requests"), amount: c("recorded_fallback_amount") };
  const gross = def.amount + fb.amount;
  const fees = def.amount * c("fee_default") + fb.amount * c("fee_fallback");
  const profit = gross - fees;
  const p99Raw = metric(data, "http_req_duration{expected_response:true}", "p(99)", NaN);
  const p99 = round2(p99Raw);
  const bonus = Math.max(round2((11 - p99) * 0.02), 0);
  const inconsistent = c("payments_inconsistency");
  const fine = inconsistent > 0 ? 0.35 : 0;
  const lag = sent - (def.requests + fb.requests);
  return {
    score: profit + profit * bonus - profit * fine,
    profit, gross, fees,
    p99_ms: p99, p99_raw_ms: p99Raw, p99_bonus: bonus,
    p99_payments_ms: metric(data, "http_req_duration{name:payments}", "p(99)", NaN),
    p50_payments_ms: metric(data, "http_req_duration{name:payments}", "p(50)", NaN),
    inconsistencies: inconsistent, audits: c("audits"), fine,
    payments_sent: sent, payments_failed: c("payments_failed"),
    default: def, fallback: fb,
    processors: { default: c("processor_default_requests"), fallback: c("processor_fallback_requests") },
    lag, over_recorded: lag < 0,
    http_requests: metric(data, "http_reqs", "count"),
  };
}

function table(r) {
  const rows = [
    ["score", fmt(r.score)],
    ["  profit (gross - fees)", `${fmt(r.profit)} (${fmt(r.gross)} - ${fmt(r.fees)})`],
    ["  p99 bonus", `${fmt(r.p99_bonus * 100, 0)} %  (p99 ${fmt(r.p99_raw_ms, 3)} ms over ${r.http_requests} requests)`],
    ["  inconsistency fine", `${fmt(r.fine * 100, 0)} %  (${r.inconsistencies} in ${r.audits} audits)`],
    ["payments sent (2xx)", `${r.payments_sent}  (+${r.payments_failed} not 2xx)`],
    ["recorded default/fallback", `${r.default.requests} / ${r.fallback.requests}`],
    ["processors default/fallback", `${r.processors.default} / ${r.processors.fallback}`],
    ["lag", `${r.lag}${r.over_recorded ? "  OVER-RECORDED: disqualified" : ""}`],
    ["POST /payments p50 / p99", `${fmt(r.p50_payments_ms, 3)} / ${fmt(r.p99_payments_ms, 3)} ms`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return `\n${rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join("\n")}\n\n`;
}

export function handleSummary(data) {
  const setup = data.setup_data || {};
  const result = {
    scenario: "contest",
    max_requests: MAX_REQUESTS,
    time_scale: TIME_SCALE,
    started_at_ms: setup.startedAt,
    stages: STAGES.map((s) => ({ ...s, at_ms: s.at * TIME_SCALE * 1000 })),
    ...score(data),
  };
  const out = { stdout: table(result) };
  if (__ENV.RESULT_FILE) out[__ENV.RESULT_FILE] = JSON.stringify(result, null, 2);
  return out;
}
