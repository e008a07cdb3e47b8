// Checks k6/contest.js's score() against figures worked out by hand from the contest's
// rules (docs/contest.md), so the score the harness prints can be trusted. Needs no
// server: `k6 run k6/score_check.js` exits non-zero when a figure is off (make check runs it).
import { check } from "k6";
import { score } from "./contest.js";

export const options = {
  vus: 1,
  iterations: 1,
  thresholds: { checks: ["rate==1"] },
};

// The handleSummary data of a contest run, reduced to what score() reads.
function data({ sent, def, fb = 0, p99, inconsistencies = 0, feeDefault = 0.05, feeFallback = 0.15 }) {
  const count = (n) => ({ values: { count: n } });
  return {
    metrics: {
      payments_sent: count(sent),
      payments_failed: count(0),
      payments_inconsistency: count(inconsistencies),
      audits: count(6),
      recorded_default_requests: count(def),
      recorded_default_amount: count(Math.round(def * 1990) / 100),
      recorded_fallback_requests: count(fb),
      recorded_fallback_amount: count(Math.round(fb * 1990) / 100),
      fee_default: count(feeDefault),
      fee_fallback: count(feeFallback),
      processor_default_requests: count(def),
      processor_fallback_requests: count(fb),
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
}
