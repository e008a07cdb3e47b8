// Our reproduction of the Rinha de Backend 2025 FINAL load test, the one that ranked the
// entries (docs/contest.md), written from its public description and sharing k6/lib.js
// with the preview (k6/contest.js): VUs ramp from 1 to 603 over 300 s, each posting one
// payment of 20.05 then sleeping 1 s (about 90,600 payments); an audit every ~10 s reads
// our summary and both processors' for [now − 15 s, now − 2 s], all three at once; ten
// stages of 30 s drive the processors; the teardown reads the PROCESSORS' admin summaries
// for the last 360 s and scores them (their feePerTransaction × their totalAmount; lag =
// accepted POSTs − their totalRequests). Run it with `make test SCENARIO=final` or:
//
//   k6 run -e MAX_REQUESTS=603 -e TOKEN=$(uuidgen) -e RESULT_FILE=out.json k6/final.js
//
// Variables (-e): those of k6/contest.js (MAX_REQUESTS defaults to 603 here), and
// FINAL_LATE (unset; 1: in the last 30 s the default also fails, at its 2,000 ms delay).
import { contestScenario } from "./lib.js";

const late = __ENV.FINAL_LATE || "0";
if (late !== "0" && late !== "1") throw new Error(`FINAL_LATE=${JSON.stringify(late)}: expected 0 or 1`);

export const STAGES = [
  { at: 1, default: [0, false], fallback: [0, false] },
  { at: 30, default: [1000, false], fallback: [0, false] },
  { at: 60, default: [500, false], fallback: [0, false] },
  { at: 90, default: [2000, true], fallback: [1000, false] },
  { at: 120, default: [5000, true], fallback: [5, false] },
  { at: 150, default: [0, false], fallback: [5, true] },
  { at: 180, default: [100, false], fallback: [5, false] },
  { at: 210, default: [50, false], fallback: [0, false] },
  { at: 240, default: [103, false], fallback: [10, false] },
  { at: 270, default: [2000, late === "1"], fallback: [0, false] },
];

const scenario = contestScenario({
  name: late === "1" ? "final-late" : "final",
  maxRequests: 603,
  runSecs: 300,
  amount: 20.05,
  stages: STAGES,
  auditToMs: 2000,
  teardownWindowSecs: 360,
  scoreFrom: "processors",
  fees: { default: 0.07, fallback: 0.1 },
});

export const { options, setup, payments, audit, defineStage, teardown, handleSummary } = scenario;
