// Beyond the contest: an open-model load (a constant arrival rate, whatever the answers'
// speed) with both processors healthy at delay 0, to see where the accept path bends.
// Ends by waiting for the queue to drain and checking our summary against the processors'.
//
//   k6 run -e RATE=5000 -e DURATION_SECS=20 k6/stress.js
//
// Variables (-e): RATE (payments/s, 1000), DURATION_SECS (10), MAX_VUS (2000), DRAIN_SECS (30),
// RESULT_FILE, and the addresses of lib.js (BACKEND_URL, PROCESSOR_*_URL, TOKEN).
import { Counter } from "k6/metrics";
import { drainAndRecord, endCounters, freshRun, openLoad, openReport, paymentSender } from "./lib.js";

const RATE = parseInt(__ENV.RATE || "1000", 10);
const DURATION_SECS = parseInt(__ENV.DURATION_SECS || "10", 10);

const { report, load } = openLoad(RATE, DURATION_SECS, 500, parseInt(__ENV.MAX_VUS || "2000", 10));
export const options = { ...report, scenarios: { load } };

const counters = endCounters(Counter);

export const setup = freshRun;

export const payments = paymentSender(Counter);

export async function teardown(data) {
  await drainAndRecord(data, counters);
}

export function handleSummary(data) {
  return openReport(data, "stress", { rate: RATE, duration_secs: DURATION_SECS });
}
