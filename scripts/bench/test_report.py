"""Per-stage process figures of scripts/bench/report.py: CPU, run-queue delay and
throttling come out as the difference of the sampler's cumulative readings over a stage."""
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report  # noqa: E402


def samples(started_at_ms=1_000):
    # [t, cpu s, rss kB, run-queue wait s, [periods, seconds] throttled or None]
    return {
        "started_at_ms": started_at_ms,
        "series": {
            "lb": [[0.0, 0.0, 100, 0.0, [0, 0.0]], [5.0, 1.0, 100, 0.010, [2, 0.004]],
                   [10.0, 3.0, 100, 0.050, [7, 0.030]]],
            "api1": [[0.0, 0.0, 100, 0.0, None], [10.0, 2.0, 100, 0.020, None]],
            "k6": [[0.0, 0.0, 100, 0.0, None], [10.0, 9.0, 100, 1.0, None]],
            "old": [[0.0, 0.0, 100], [10.0, 1.0, 100]],
        },
    }


class ProcessFigures(unittest.TestCase):
    def test_a_stage_gets_the_difference_of_its_readings(self):
        figures = report.process_figures(samples(), 0, 5, 10)
        self.assertEqual(figures["lb"], {"cpu_ms": 2000.0, "wait_ms": 40.0, "throttled_ms": 26.0,
                                         "throttled_periods": 5})

    def test_without_a_cpu_limit_throttling_is_unknown_not_zero(self):
        figures = report.process_figures(samples(), 0, 0, 10)
        self.assertIsNone(figures["api1"]["throttled_ms"])
        self.assertEqual(figures["api1"]["wait_ms"], 20.0)

    def test_the_load_generator_and_old_series_are_left_out(self):
        figures = report.process_figures(samples(), 0, 0, 10)
        self.assertEqual(set(figures), {"lb", "api1"})

    def test_the_samplers_start_is_aligned_on_the_runs(self):
        # The sampler started 5 s after the run: its reading at 5 s is the run's at 10 s.
        figures = report.process_figures(samples(started_at_ms=6_000), 5, 0, 10)
        self.assertEqual(figures["lb"]["cpu_ms"], 1000.0)

    def test_the_k6_run_counts_the_lb_and_the_workers_up_to_the_last_stage(self):
        result = {"started_at_ms": 1_000, "stages": [{"end_ms": 5_000}, {"end_ms": 10_000}]}
        run = report.k6_run_cpu(result, samples(), 1000)
        self.assertEqual(run["processes_cpu_seconds"], {"api1": 2.0, "lb": 3.0})
        self.assertEqual(run["cpu_seconds"], 5.0)
        self.assertEqual(run["us_per_payment"], 5000.0)
        self.assertEqual(run["lb_run_queue_wait_ms"], 50.0)


class AnswerP99(unittest.TestCase):
    def buckets(self, counts):
        bounds = ["5e-05", "0.0001", "0.00025", "+Inf"]
        return {f'lb_payment_answer_seconds_bucket{{le="{le}"}}': [[0.0, 0], [5.0, a], [10.0, b]]
                for le, (a, b) in zip(bounds, counts)}

    def test_the_stage_s_p99_is_the_bound_of_the_bucket_that_reaches_99_percent(self):
        # In the second stage: 50 answers under 50 us, 48 more under 100 us, 2 more under 250 us.
        metrics = self.buckets([(10, 60), (10, 108), (10, 110), (10, 110)])
        self.assertEqual(report.answer_p99_ms(metrics, 0, 5, 10), 0.25)
        self.assertEqual(report.answer_p99_ms(metrics, 0, 0, 5), 0.05)

    def test_an_answer_past_the_last_bound_or_none_at_all_gives_no_figure(self):
        self.assertIsNone(report.answer_p99_ms(self.buckets([(0, 0), (0, 0), (0, 0), (0, 10)]), 0, 0, 10))
        self.assertIsNone(report.answer_p99_ms(self.buckets([(0, 0)] * 4), 0, 0, 10))
        self.assertIsNone(report.answer_p99_ms({}, 0, 0, 10))


if __name__ == "__main__":
    unittest.main()
