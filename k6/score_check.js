// Checks the score of the contest scenarios (k6/lib.js's contestScore: the preview scores
// our summary, the final the processors') against figures worked out by hand from the
// contest's rules (docs/contest.md), so the score the harness prints can be trusted. Needs
// no server: `k6 run k6/score_check.js` exits non-zero when a figure is off (make check runs it).
import { check } from "k6";
import { contestScore } from "./lib.js";

const score = (data) => contestScore(data, "backend");
const finalScore = (data) => contestScore(data, "processors");

export const options = {
  vus: 1,
  iterations: 1,
  thresholds: { checks: ["rate==1"] },
};

// The handleSummary data of a contest run, reduced to what contestScore reads. The
// processors hold `theirs` = [default, fallback] payments (by default what we recorded).
function data({ sent, def, fb = 0, p99, inconsistencies = 0, feeDefault = 0.05, feeFallback = 0.15, amount = 19.9,
  theirs = [def, fb] }) {
  const count = (n) => ({ values: { count: n } });
  return {
    metrics: {
      payments_sent: count(sent),
      payments_failed: count(0),
      payments_inconsistency: count(inconsistencies),
      audits: count(6),
      recorded_default_requests: count(def),
      recorded_default_amount: count(Math.round(def * amount * 100) / 100),
      recorded_fallback_requests: count(fb),
      recorded_fallback_amount: count(Math.round(fb * amount * 100) / 100),
      fee_default: count(feeDefault),
      fee_fallback: count(feeFallback),
      processor_default_requests: count(theirs[0]),
      processor_default_amount: count(Math.round(theirs[0] * amount * 100) / 100),
      processor_fallback_requests: count(theirs[1]),
      processor_fallback_amount: count(Math.round(theirs[1] * amount * 100) / 100),
      http_reqs: count(sent + 30),
      "http_req_duration{expected_response:true}": { values: { "p(99)": p99 } },
    },
  };
}

const near = (a, b) => Math.abs(a - b) < 0.005;

export default function () {
  // 16,750 payments all through default at p99 1 ms: 333,325.00 - 5 % = 316,658.75, +20 %.
  const best = score(data({ sent: 16750, def: 16750, p99: 1.0 }));
  check(best, {
    "profit is amounts minus the 5 % fee": (r) => near(r.profit, 316658.75),
    "p99 1 ms gives +20 %": (r) => near(r.p99_bonus, 0.2) && near(r.score, 379990.5),
    "no lag, not over-recorded": (r) => r.lag === 0 && !r.over_recorded,
  });
  // The fallback's 15 %: 1,000 of them cost 2,985.00 in fees.
  check(score(data({ sent: 2000, def: 1000, fb: 1000, p99: 11 })), {
    "fees are 5 % of default plus 15 % of fallback": (r) => near(r.fees, 995 + 2985),
    "p99 at 11 ms or more gives no bonus": (r) => r.p99_bonus === 0 && near(r.score, r.profit),
  });
  check(score(data({ sent: 100, def: 100, p99: 0.5 })), {
    "p99 0.5 ms gives +21 % (no cap)": (r) => near(r.p99_bonus, 0.21),
  });
  // The official script rounds p99, then the bonus, to two places: 1.255 -> 1.26 -> 0.1948 -> 0.19.
  check(score(data({ sent: 100, def: 100, p99: 1.255 })), {
    "p99 and bonus are rounded to two places": (r) => r.p99_ms === 1.26 && near(r.p99_bonus, 0.19),
  });
  check(score(data({ sent: 100, def: 100, p99: 20, inconsistencies: 1 })), {
    "one inconsistency costs 35 %": (r) => r.fine === 0.35 && near(r.score, r.profit * 0.65),
  });
  check(score(data({ sent: 100, def: 90, p99: 20 })), {
    "lag is payments sent minus payments recorded": (r) => r.lag === 10 && !r.over_recorded,
  });
  check(score(data({ sent: 100, def: 101, p99: 20 })), {
    "recording more than was sent is flagged": (r) => r.lag === -1 && r.over_recorded,
  });

  // The final scores the processors' summaries at 7 % / 10 %: the winner's 52,945 default
  // and 37,646 fallback payments of 20.05 are 1,061,547.25 and 754,802.30 gross, fees
  // 74,308.31 and 75,480.23, profit 1,666,561.01, and with p99 2.55 ms (+17 %) 1,949,876.38.
  check(finalScore(data({ sent: 90591, def: 0, theirs: [52945, 37646], p99: 2.55, amount: 20.05,
    feeDefault: 0.07, feeFallback: 0.1 })), {
    "final: gross and fees from the processors' summaries": (r) => near(r.gross, 1816349.55)
      && near(r.fees, 149788.54),
    "final: the winner's published score": (r) => Math.abs(r.score - 1949876) < 1 && r.p99_bonus === 0.17,
    "final: lag counts the processors' payments, not ours": (r) => r.lag === 0,
  });
  check(finalScore(data({ sent: 90606, def: 90606, theirs: [80930, 0], p99: 20, amount: 20.05, feeDefault: 0.07 })), {
    "final: payments the processors do not hold are lag": (r) => r.lag === 9676 && !r.over_recorded,
  });
}
