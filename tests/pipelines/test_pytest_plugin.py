"""The pytest plugin (loader_benchmark, record_result, the summary), run through pytester.

The inner sessions measure producers of known cost on the CPU: a list of in-memory batches
(free to make, so the workload sets the pace: B / c samples/s) and a synchronous
SleepProducer of d seconds a batch against the CPU's emulated device, which runs apart from
the host as a GPU does (period max(d, c), starvation 1 - c / max(d, c)).

A busy machine does not make a false failure, and the tolerances stay: a session whose
figures miss their truth while other processes took the run's CPUs (contention above 0.05,
recorded in each run's result), or whose windows were too short to have their contention
measured (NaN), runs again, up to three times; it is skipped with the contention if the
machine stayed busy every time, and fails otherwise. One that misses with its CPUs known to
be its own fails at once.
"""

import gc
import json
import math
import re
import subprocess
import sys

import pytest

from feedbench.pipelines import RunResult
from feedbench.pipelines.loop.metrics import contended, steady_state

pytest_plugins = ["pytester"]

BATCH, STEP_S, PRODUCER_S = 8, 0.005, 0.010
# emulated:<t> runs on the CPU's emulated device, apart from the host: a synchronous producer overlaps it
FREE = steady_state(0.0, STEP_S, prefetch=False, async_step=True)  # a list of batches: the workload sets the pace
SLOW = steady_state(PRODUCER_S, STEP_S, prefetch=False, async_step=True)  # 10 ms to make a batch, synchronously
RATE_TOLERANCE, FRACTION_TOLERANCE = 0.12, 0.06

LOADERS = f"""
import time

import pytest
import torch

from feedbench.pipelines import LoaderStats
from feedbench.pipelines.truth.synthetic import SleepProducer

STEP = "emulated:{STEP_S * 1e3:g}ms"


class Batches(list):
    def loader_stats(self):  # the contract measure() reads RunResult.skipped from
        return LoaderStats(skipped=3)


def in_memory():
    return Batches((torch.zeros({BATCH}, 3, 4, 4, dtype=torch.uint8), torch.zeros({BATCH}, dtype=torch.int64))
                   for _ in range(6))


def slow():
    return SleepProducer({PRODUCER_S}, batch_size={BATCH})
"""

SUMMARY_TITLE = "feedbench: loader figures"


def _run(pytester, body, *args):
    """The inner session, in this process. Its window is a fraction of a second: the objects
    that the tests before it left in this process are frozen out of the garbage collector's
    reach meanwhile, so that a full collection of them (tens of ms, late in `make test`) does
    not fall into the window as if the loader had been slow (it did: 701 samples/s against
    800, contention 0.02)."""
    pytester.makepyfile(test_inner=LOADERS + body)
    gc.collect()
    gc.freeze()
    try:
        return pytester.runpytest("-p", "no:cacheprovider", *args)
    finally:
        gc.unfreeze()


def _json(pytester, name="out.json"):
    data = json.loads((pytester.path / name).read_text())
    return {bench["name"]: bench for bench in data["benchmarks"]}


TRIES = 3


def _contention_of(pytester):
    """The largest contention the inner session's runs recorded, and whether every run had it
    measured (a window of a fraction of a second in this process may have none: NaN)."""
    readings = [bench["extra_info"]["run_result"].get("contention") for bench in _json(pytester).values()
                if "run_result" in bench["extra_info"]]
    known = [reading for reading in readings if reading is not None and not math.isnan(reading)]
    return max(known, default=0.0), len(known) == len(readings)


def _against_truth(pytester, body, check, *args):
    """The inner session's result, once `check(result)` passed. A miss with every run's CPUs
    known to be its own fails at once; one with contention, or with contention unmeasured,
    is measured again, up to TRIES sessions: then skipped where every miss came with
    contention, failed otherwise (a bias misses every try)."""
    busy_every_time = True
    for attempt in range(TRIES):
        result = _run(pytester, body, "--benchmark-json=out.json", *args)
        try:
            check(result)
            return result
        except AssertionError:
            busy, measured = _contention_of(pytester)
            if measured and not contended(busy):
                raise
            busy_every_time = busy_every_time and contended(busy)
            if not busy_every_time and attempt == TRIES - 1:
                raise
    pytest.skip(f"the machine was busy: other processes took {busy:.0%} of the run's CPUs in each of {TRIES} tries")


def test_json_holds_the_run_result_at_the_analytic_rate(pytester):
    def check(result):
        result.assert_outcomes(passed=1)
        run = RunResult.from_dict(_json(pytester)["test_free"]["extra_info"]["run_result"])
        assert run.samples_per_s == pytest.approx(BATCH * FREE.batches_per_s, rel=RATE_TOLERANCE)
        assert run.starvation == pytest.approx(FREE.starvation, abs=FRACTION_TOLERANCE)
        assert run.accelerator_utilization == pytest.approx(FREE.accelerator_utilization, abs=FRACTION_TOLERANCE)

    _against_truth(pytester, """
def test_free(loader_benchmark):
    run = loader_benchmark(in_memory(), workload=STEP, device="cpu", steps=30, warmup=2)
    assert run.steps == 30 and run.epochs > 1  # the list was cycled
""", check)
    bench = _json(pytester)["test_free"]
    run = RunResult.from_dict(bench["extra_info"]["run_result"])
    assert run.skipped == 3 and run.device == "cpu" and run.workload == "emulated:5ms"
    assert run.peak_rss_bytes > 0 and run.input_bound == "not"
    assert bench["stats"]["rounds"] == 1  # one measure() run by default


def test_a_budget_that_is_met_passes_and_returns_the_result(pytester):
    def check(result):
        result.assert_outcomes(passed=1)
        rate, starvation = map(float, re.search(r"MEASURED (\S+) (\S+)", result.stdout.str()).groups())
        assert rate == pytest.approx(BATCH * SLOW.batches_per_s, rel=RATE_TOLERANCE)
        assert starvation == pytest.approx(SLOW.starvation, abs=FRACTION_TOLERANCE)

    _against_truth(pytester, """
def test_slow(loader_benchmark, benchmark):
    run = loader_benchmark(slow(), workload=STEP, device="cpu", steps=60, warmup=2,
                           max_starvation=0.9, min_samples_per_s=100)
    assert run.to_dict()["samples_per_s"] == benchmark.extra_info["run_result"]["samples_per_s"]
    print("MEASURED", run.samples_per_s, run.starvation)
""", check, "-s")


def test_a_missed_budget_fails_naming_measured_and_allowed_figures(pytester):
    found = {}

    def check(result):
        result.assert_outcomes(failed=1)
        out = result.stdout.str()
        starvation = re.search(r"starvation (\d\.\d+) above the allowed maximum 0\.200", out)
        rate = re.search(r"samples/s (\d+\.\d) below the allowed minimum 2000\.0", out)
        assert starvation and rate, out
        assert float(starvation.group(1)) == pytest.approx(SLOW.starvation, abs=FRACTION_TOLERANCE)
        assert float(rate.group(1)) == pytest.approx(BATCH * SLOW.batches_per_s, rel=RATE_TOLERANCE)
        found.update(starvation=starvation.group(1), rate=rate.group(1))

    _against_truth(pytester, """
def test_slow(loader_benchmark):
    loader_benchmark(slow(), workload=STEP, device="cpu", steps=60, warmup=2,
                     max_starvation=0.2, min_samples_per_s=2000)
""", check)
    # The failing run is still recorded, with the figures the message names.
    recorded = _json(pytester)["test_slow"]["extra_info"]["run_result"]
    assert f"{recorded['starvation']:.3f}" == found["starvation"]
    assert f"{recorded['samples_per_s']:.1f}" == found["rate"]


SUMMARY_TESTS = """
def test_free(loader_benchmark):
    loader_benchmark(in_memory(), workload=STEP, device="cpu", steps=20, warmup=2)


def test_slow(loader_benchmark):
    loader_benchmark(slow(), workload=STEP, device="cpu", steps=20, warmup=2)


def test_plain(benchmark):
    benchmark(sum, range(100))
"""


def _summary_rows(lines):
    start = next(i for i, line in enumerate(lines) if SUMMARY_TITLE in line)
    rows = {}
    for line in lines[start + 2:]:
        cells = line.split()
        if not cells or not cells[0].startswith("test_"):
            break
        rows[cells[0]] = cells
    return start, rows


def test_summary_follows_pytest_benchmarks_table_with_one_row_per_loader(pytester):
    _against_truth(pytester, SUMMARY_TESTS, lambda result: _check_summary(pytester, result))


def _check_summary(pytester, result):
    """The summary's rows are the recorded results, and its verdicts their truth's (the free
    list not input-bound, the slow producer highly)."""
    result.assert_outcomes(passed=3)
    lines = result.stdout.lines
    table = next(i for i, line in enumerate(lines) if re.search(r"benchmark: 3 tests", line))
    start, rows = _summary_rows(lines)
    assert start > table
    assert lines[start + 1].split() == ["Name", "samples/s", "starvation", "AU", "input-bound", "peak", "RSS", "MB",
                                        "skipped", "contention"]
    assert set(rows) == {"test_free", "test_slow"}  # the plain benchmark has no RunResult
    recorded = {name: bench["extra_info"].get("run_result") for name, bench in _json(pytester).items()}
    for name, verdict, skipped in (("test_free", "not", "3"), ("test_slow", "highly", "0")):
        run = recorded[name]
        assert rows[name][1:] == [f"{run['samples_per_s']:,.1f}", f"{run['starvation']:.3f}",
                                  f"{run['accelerator_utilization']:.3f}", verdict,
                                  f"{run['peak_rss_bytes'] / 1e6:,.0f}", skipped,
                                  f"{math.nan if run['contention'] is None else run['contention']:.3f}"]


def test_the_summary_can_be_turned_off(pytester):
    result = _run(pytester, SUMMARY_TESTS, "--feedbench-no-summary")
    result.assert_outcomes(passed=3)
    out = result.stdout.str()
    assert "benchmark: 3 tests" in out  # pytest-benchmark's own table stays
    assert SUMMARY_TITLE not in out


def test_nothing_is_printed_when_no_loader_was_benchmarked(pytester):
    result = _run(pytester, """
def test_plain(benchmark):
    benchmark(sum, range(100))


def test_not_a_benchmark():
    assert in_memory()
""")
    result.assert_outcomes(passed=2)
    after_header = result.stdout.str().split("collected 2 items", 1)[1]  # the header lists the plugin
    assert "benchmark: 1 tests" in after_header and "feedbench" not in after_header


def test_a_zero_argument_callable_is_built_in_setup_once_per_round(pytester):
    body = """
built = []
BUILD_S = 2.0


def make():
    built.append(1)
    time.sleep(BUILD_S)  # construction: must stay out of the timed region
    return in_memory()


def test_factory(loader_benchmark):
    run = loader_benchmark(make, workload=STEP, device="cpu", steps=10, warmup=2, rounds=2)
    assert len(built) == 2
    assert run.epochs > 1
"""

    def check(result):
        result.assert_outcomes(passed=1)
        for rate in _json(pytester)["test_factory"]["extra_info"]["samples_per_s_rounds"]:
            assert rate == pytest.approx(BATCH * FREE.batches_per_s, rel=RATE_TOLERANCE)

    _against_truth(pytester, body, check)
    bench = _json(pytester)["test_factory"]
    assert bench["stats"]["rounds"] == 2
    assert bench["stats"]["max"] < 2.0  # 12 steps of 5 ms (0.06 s), without the 2 s build: 30x apart
    rounds = bench["extra_info"]["samples_per_s_rounds"]
    assert len(rounds) == 2
    assert bench["extra_info"]["run_result"]["samples_per_s"] == min(rounds)  # the median of two: the lower


BAD_ARGUMENTS = {
    "max_starvation=-0.1": "max_starvation must be a fraction in [0, 1], got -0.1",
    "max_starvation=1.5": "max_starvation must be a fraction in [0, 1], got 1.5",
    "min_samples_per_s=0": "min_samples_per_s must be a positive number, got 0",
    "min_samples_per_s='fast'": "min_samples_per_s must be a positive number, got 'fast'",
    "rounds=0": "rounds must be a whole number >= 1, got 0",
    "warmpu=3": "unknown option(s) warmpu",
}


def test_bad_arguments_give_a_clear_error_before_anything_runs(pytester):
    cases = "\n".join(
        f"""
def test_bad_{i}(loader_benchmark):
    loader_benchmark(in_memory(), device="cpu", steps=5, {argument})
""" for i, argument in enumerate(BAD_ARGUMENTS))
    cases += """
def test_not_a_loader(loader_benchmark):
    loader_benchmark(42)


def test_a_factory_of_no_loader(loader_benchmark):
    loader_benchmark(lambda: 42, device="cpu", steps=5)


def test_one_shot_iterator_for_two_rounds(loader_benchmark):
    loader_benchmark(iter(in_memory()), device="cpu", steps=5, rounds=2)
"""
    result = _run(pytester, cases)
    result.assert_outcomes(failed=len(BAD_ARGUMENTS) + 3)
    out = result.stdout.str()
    for message in BAD_ARGUMENTS.values():
        assert f"ConfigError: loader_benchmark: {message}" in out
    assert "loader must be an iterable of batches or a zero-argument callable that builds one, got int" in out
    assert "returned int, not an iterable of batches" in out
    assert "a one-shot iterator (list_iterator) cannot run 2 rounds" in out
    assert SUMMARY_TITLE not in out  # nothing was measured


def test_with_benchmarks_disabled_the_loader_is_still_measured_and_held_to_its_budget(pytester):
    result = _run(pytester, """
def test_slow(loader_benchmark):
    loader_benchmark(slow(), workload=STEP, device="cpu", steps=10, warmup=2, max_starvation=0.2)
""", "--benchmark-disable")
    result.assert_outcomes(failed=1)
    assert re.search(r"starvation 0\.\d+ above the allowed maximum 0\.200", result.stdout.str())


def test_the_plugin_loads_neither_torch_nor_tensorflow():
    code = ("import sys, feedbench.pipelines.pytest_plugin; "
            "print(sorted(m for m in ('torch', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_plugin_is_registered_by_entry_point():
    from importlib.metadata import entry_points

    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins.get("feedbench") == "feedbench.pipelines.pytest_plugin"
