// Beyond the contest: a steady load while the processors flap between healthy, failing and
// slow every few seconds, then a check that nothing was lost or counted twice: once both are
// healthy again, every accepted payment must be in our summary and in exactly one processor.
//
//   k6 run -e RATE=300 k6/faults.js
//
// Variables (-e): RATE (payments/s, 300), DURATION_SECS (60), FLAP_SECS (3), DRAIN_SECS
// (30), RESULT_FILE, and the addresses of lib.js (BACKEND_URL, PROCESSOR_*_URL, TOKEN).
import { sleep } from "k6";
import exec from "k6/execution";
import { Counter } from "k6/metrics";
import {
  drainAndRecord, endCounters, freshRun, openLoad, openReport, paymentSender, setProcessorState,
} from "./lib.js";

const RATE = parseInt(__ENV.RATE || "300", 10);
const DURATION_SECS = parseInt(__ENV.DURATION_SECS || "60", 10);
const FLAP_SECS = parseFloat(__ENV.FLAP_SECS || "3");

// The states the processors cycle through: [delay ms, failing] for default and fallback.
const PATTERN = [
  { default: [0, true], fallback: [0, false] },
  { default: [0, false], fallback: [0, false] },
  { default: [0, true], fallback: [0, true] },
  { default: [300, false], fallback: [0, true] },
  { default: [0, false], fallback: [0, true] },
  { default: [1200, true], fallback: [50, false] },
];

const { report, load } = openLoad(RATE, DURATION_SECS, 300, 1000);
export const options = {
  ...report,
  scenarios: {
    load,
    flapper: {
      exec: "flap",
      executor: "per-vu-iterations",
      vus: 1,
      iterations: 1,
      maxDuration: `${DURATION_SECS + 10}s`,
    },
  },
};

const flaps = new Counter("flaps");
const counters = endCounters(Counter);

export const setup = freshRun;

export const payments = paymentSender(Counter);

export function flap(data) {
  const end = Date.now() + DURATION_SECS * 1000;
  for (let i = 0; Date.now() < end; i++) {
    const p = PATTERN[i % PATTERN.length];
    try {
      setProcessorState("default", data.token, ...p.default);
      setProcessorState("fallback", data.token, ...p.fallback);
    } catch (e) {
      exec.test.abort(`flapping the processors: ${e.message}`);
    }
    flaps.add(1);
    sleep(Math.min(FLAP_SECS, Math.max(0, (end - Date.now()) / 1000)));
  }
}

export async function teardown(data) {
  await drainAndRecord(data, counters);
}

export function handleSummary(data) {
  return openReport(data, "faults", {
    rate: RATE, duration_secs: DURATION_SECS, flap_secs: FLAP_SECS,
    flaps: data.metrics.flaps ? data.metrics.flaps.values.count : 0,
  });
}
