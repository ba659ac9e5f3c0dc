"""The CI gate: suites, check runners, the baseline, results, the counterexample corpus,
replay."""
