// Our reproduction of the Rinha de Backend 2025 PREVIEW load test (docs/contest.md): the
// same load, audit, processor stages, teardown and score, with local addresses and no
// remote imports. The final, which ranked the entries, is k6/final.js. Run it with
// `make test WORKERS=N` (scripts/bench/load_test.sh) or:
//
//   k6 run -e MAX_REQUESTS=550 -e RESULT_FILE=out.json k6/contest.js
//
// Variables (-e): MAX_REQUESTS (550), BACKEND_URL, PROCESSOR_DEFAULT_URL,
// PROCESSOR_FALLBACK_URL, TOKEN (the admin token the test sets on the processors, from
// their start token 123; random when not given), RESULT_FILE (JSON result), TIME_SCALE
// (1; 0.25 squeezes the 60 s timeline into 15 s for smoke runs), DRAIN_MS (0: wait this
// long before the teardown reads the summaries; the contest waits 0).
import { contestScenario } from "./lib.js";

export const STAGES = [
  { at: 1, default: [0, false], fallback: [0, false] },
  { at: 10, default: [100, false], fallback: [0, false] },
  { at: 20, default: [100, true], fallback: [0, false] },
  { at: 30, default: [2000, true], fallback: [1000, true] },
  { at: 40, default: [20, false], fallback: [20, false] },
  { at: 50, default: [0, false], fallback: [5000, false] },
];

const scenario = contestScenario({
  name: "preview",
  maxRequests: 550,
  runSecs: 60,
  amount: 19.9,
  stages: STAGES,
  auditToMs: 1500,
  // The preview's teardown reads OUR summary for the last 70 s and scores it.
  teardownWindowSecs: 70,
  scoreFrom: "backend",
  fees: { default: 0.05, fallback: 0.15 },
});

export const { options, setup, payments, audit, defineStage, teardown, handleSummary } = scenario;
