"""The speed-up summary of benchmarks/bench_scale.py: rounds are grouped as the benchmark runs
them, and a failed or cut-off run never lends a figure. No exploration runs here."""

from __future__ import annotations

from checkout import benchmark

bench = benchmark("bench_scale")


def row(config: str, mode: str, wall: float, bound_hit=None) -> dict:
    return {"config": config, "mode": mode, "wall": wall, "bound_hit": bound_hit}


def test_each_round_compares_its_own_runs():
    rows = [row("3x3", bench.ALONE, 100.0), row("3x3", bench.COPIES, 125.0),
            row("3x3", bench.SPLIT, 62.5),
            row("3x3", bench.ALONE, 80.0), row("3x3", bench.COPIES, 100.0),
            row("3x3", bench.SPLIT, 50.0)]
    assert bench.speedups(rows) == {"3x3": [(1.6, 1.6), (1.6, 1.6)]}
    text = bench.speedup_text("3x3", bench.speedups(rows)["3x3"])
    assert "two workers 1.60x (rounds: 1.60x, 1.60x)" in text
    assert "the ceiling) 1.60x" in text


def test_the_summary_is_the_median_of_the_rounds():
    walls = ((100.0, 50.0), (100.0, 80.0), (100.0, 40.0))
    rows = [r for alone, split in walls
            for r in (row("2x5", bench.ALONE, alone), row("2x5", bench.SPLIT, split))]
    pairs = bench.speedups(rows)["2x5"]
    assert [a for a, _ in pairs] == [2.0, 1.25, 2.5]
    assert [b for _, b in pairs] == [None, None, None]
    text = bench.speedup_text("2x5", pairs)
    assert "two workers 2.00x" in text and "ceiling" not in text


def test_a_failed_or_bounded_run_lends_no_figure():
    rows = [row("4x4", bench.ALONE, 150.0, bound_hit="time"), row("4x4", bench.SPLIT, 150.0),
            row("3x3", bench.ALONE, 90.0),
            {"config": "3x3", "mode": bench.SPLIT, "error": "MemoryError"}]
    assert bench.speedups(rows) == {"4x4": [], "3x3": [(None, None)]}
    # the next round starts where its first mode comes again, cut off or not
    rows = [row("4x4", bench.ALONE, 150.0, bound_hit="time"), row("4x4", bench.SPLIT, 90.0),
            row("4x4", bench.ALONE, 120.0), row("4x4", bench.SPLIT, 80.0)]
    assert bench.speedups(rows) == {"4x4": [(1.5, None)]}


def test_configurations_are_summed_up_apart():
    rows = [row("3x3", bench.ALONE, 60.0), row("3x3", bench.SPLIT, 40.0),
            row("2x5", bench.ALONE, 90.0), row("2x5", bench.SPLIT, 50.0)]
    assert bench.speedups(rows) == {"3x3": [(1.5, None)], "2x5": [(1.8, None)]}
