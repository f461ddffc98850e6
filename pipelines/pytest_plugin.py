"""pytest plugin: benchmark your own loader with the ``loader_benchmark`` fixture.

Installed with feedbench (a ``pytest11`` entry point), so it loads in every pytest session:
importing it loads neither torch nor TensorFlow, and it prints nothing unless a feedbench
benchmark ran. It adds

- the fixture ``loader_benchmark``: runs a loader through :func:`~feedbench.pipelines.measure`
  under pytest-benchmark's timing, stores the RunResult in the benchmark's ``extra_info``
  (so ``--benchmark-json`` holds it), returns it, and fails the test when a budget is missed;
- :func:`record_result`, the one way a RunResult goes into ``extra_info`` (under
  :data:`RESULT_KEY`), for suites that call ``measure`` or ``run_isolated`` themselves;
- a table after pytest-benchmark's own: one row per benchmark carrying a RunResult, with
  samples/s, starvation, AU, input-bound verdict and peak RSS (``--feedbench-no-summary``
  turns it off).

Example::

    def test_my_loader(loader_benchmark):
        result = loader_benchmark(lambda: make_my_loader(workers=4), workload="emulated:20ms",
                                  steps=100, max_starvation=0.05)
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from feedbench.pipelines.core.errors import ConfigError
from feedbench.pipelines.loop.config import MeasureConfig, add_options, from_options
from feedbench.pipelines.loop.result import RunResult

RESULT_KEY = "run_result"
"""The key of ``extra_info`` that holds a benchmark's RunResult (as :meth:`RunResult.to_dict`)."""

_ROWS = pytest.StashKey[dict]()  # nodeid -> _Row, in the order the benchmarks ran


def record_result(benchmark: Any, result: RunResult, **extra: Any) -> RunResult:
    """Stores `result` in the benchmark's ``extra_info`` under :data:`RESULT_KEY`.

    The RunResult goes in as plain JSON values (``RunResult.from_dict`` reads it back), so
    ``--benchmark-json`` holds it and the summary table finds it.

    Args:
        benchmark: pytest-benchmark's ``benchmark`` fixture of the running test.
        result: The run to record.
        **extra: Further ``extra_info`` entries (e.g. a scaling efficiency).

    Returns:
        `result`, unchanged.
    """
    benchmark.extra_info[RESULT_KEY] = json.loads(result.to_json())
    benchmark.extra_info.update(extra)
    return result


@dataclass(frozen=True)
class Budget:
    """What a loader must reach; None leaves a figure unchecked.

    Attributes:
        max_starvation: The largest fraction of the window the accelerator may starve (0..1).
        min_samples_per_s: The smallest throughput allowed.
    """

    max_starvation: float | None = None
    min_samples_per_s: float | None = None

    def __post_init__(self) -> None:
        limit = self.max_starvation
        if limit is not None and (not _is_number(limit) or not 0 <= limit <= 1):
            raise ConfigError(f"loader_benchmark: max_starvation must be a fraction in [0, 1], got {limit!r}")
        floor = self.min_samples_per_s
        if floor is not None and (not _is_number(floor) or not floor > 0 or math.isinf(floor)):
            raise ConfigError(f"loader_benchmark: min_samples_per_s must be a positive number, got {floor!r}")

    def missed(self, result: RunResult) -> list[str]:
        """One line per budget that `result` misses (NaN misses every budget)."""
        lines = []
        if self.max_starvation is not None and not result.starvation <= self.max_starvation:
            lines.append(f"starvation {result.starvation:.3f} above the allowed maximum {self.max_starvation:.3f}")
        if self.min_samples_per_s is not None and not result.samples_per_s >= self.min_samples_per_s:
            lines.append(f"samples/s {result.samples_per_s:.1f} below the allowed minimum {self.min_samples_per_s:.1f}")
        return lines


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def _loader_maker(loader: Any, rounds: int) -> Callable[[], Iterable[Any]]:
    """A function giving the loader for one round: `loader` itself, or what the factory builds."""
    if hasattr(loader, "__iter__"):
        if hasattr(loader, "__next__") and rounds > 1:
            raise ConfigError(f"loader_benchmark: a one-shot iterator ({type(loader).__name__}) cannot run "
                              f"{rounds} rounds; pass a re-iterable loader or a zero-argument callable that builds one")
        return lambda: loader
    if not callable(loader):
        raise ConfigError(f"loader_benchmark: loader must be an iterable of batches or a zero-argument callable "
                          f"that builds one, got {type(loader).__name__}")

    def build() -> Iterable[Any]:
        built = loader()
        if not hasattr(built, "__iter__"):
            raise ConfigError(f"loader_benchmark: the loader factory {getattr(loader, '__qualname__', loader)!r} "
                              f"returned {type(built).__name__}, not an iterable of batches")
        return built

    return build


class LoaderBenchmark:
    """The ``loader_benchmark`` fixture's value: call it once per test (pytest-benchmark's rule).

    Args:
        benchmark: pytest-benchmark's fixture.
        defaults: The measurement settings given on pytest's command line (``--feedbench-steps``
            and the others of :data:`~feedbench.pipelines.loop.config.OPTIONS`), as option
            destinations; a keyword of the call overrides them.
    """

    def __init__(self, benchmark: Any, defaults: Mapping[str, Any] | None = None) -> None:
        self._benchmark = benchmark
        self._defaults = dict(defaults or {})

    def __call__(
        self,
        loader: Any,
        *,
        workload: Any = None,
        device: Any = None,
        steps: int | None = None,
        max_starvation: float | None = None,
        min_samples_per_s: float | None = None,
        rounds: int = 1,
        **measure_options: Any,
    ) -> RunResult:
        """Measures `loader` with :func:`~feedbench.pipelines.measure` and records the result.

        A zero-argument callable is called in pytest-benchmark's ``setup``, once per round,
        so that building the loader (starting workers, opening files) stays out of the timed
        region; the time of ``measure`` itself (first batch, warm-up and window) is what
        pytest-benchmark's table shows. The throughput figures are the RunResult's.

        Args:
            loader: Anything re-iterable that yields batches (a DataLoader, a tf.data.Dataset,
                your own class), or a zero-argument callable that builds one.
            workload: A workload name or a :class:`~feedbench.pipelines.Workload`
                (``--feedbench-workload``, else ``measure``'s default, when None).
            device: "auto", "cpu", "cuda" or "cuda:N" (``--feedbench-device``, else "auto").
            steps: Measured steps (``--feedbench-steps``, else ``measure``'s default, when None).
            max_starvation: Fail the test when starvation is above this fraction.
            min_samples_per_s: Fail the test when throughput is below this.
            rounds: Measured runs; with more than one, the median run (by samples/s) is
                recorded and checked, and every round's samples/s is kept in ``extra_info``.
            **measure_options: Other keywords of ``measure`` (``warmup``, ``seconds``,
                ``timeout``, ``cycle``, ``config``).

        Returns:
            The RunResult (the median one when ``rounds > 1``).

        Raises:
            ConfigError: A bad budget, round count, loader or option (before anything runs),
                or a bad workload, device or step count (from ``measure``).
        """
        budget = Budget(max_starvation, min_samples_per_s)
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
            raise ConfigError(f"loader_benchmark: rounds must be a whole number >= 1, got {rounds!r}")
        make = _loader_maker(loader, rounds)
        settings = _settings(self._defaults, workload=workload, device=device, steps=steps, **measure_options)
        from feedbench.pipelines.loop.measure import measure_with  # imports torch: only when a test asks

        config = measure_options.get("config")
        results: list[RunResult] = []

        def run(batches: Iterable[Any]) -> None:
            results.append(measure_with(batches, settings, config))

        self._benchmark.pedantic(run, setup=lambda: ((make(),), {}), rounds=rounds, iterations=1)
        # The median run; of an even number, the lower of the middle two, so that a budget
        # is held to the slower half rather than flattered by the faster.
        result = sorted(results, key=lambda r: r.samples_per_s)[(len(results) - 1) // 2]
        extra = {"samples_per_s_rounds": [r.samples_per_s for r in results]} if len(results) > 1 else {}
        record_result(self._benchmark, result, **extra)
        missed = budget.missed(result)
        if missed:
            pytest.fail(f"loader_benchmark: {'; '.join(missed)} (workload {result.workload}, device {result.device}, "
                        f"{result.steps} steps)", pytrace=False)
        return result


# measure()'s keywords that a test may pass besides workload, device and steps.
_MEASURE_OPTIONS = ("warmup", "seconds", "timeout", "cycle", "config")


def _settings(defaults: Mapping[str, Any], **given: Any) -> MeasureConfig:
    """The run's MeasureConfig: the call's keywords over pytest's --feedbench-* options over
    MeasureConfig's defaults."""
    unknown = sorted(set(given) - {"workload", "device", "steps", *_MEASURE_OPTIONS})
    if unknown:
        raise ConfigError(f"loader_benchmark: unknown option(s) {', '.join(unknown)}; "
                          f"measure() also takes {', '.join(sorted(_MEASURE_OPTIONS))}")
    chosen = {k: v for k, v in given.items() if v is not None and k != "config"}
    return from_options(defaults, prefix=OPTION_PREFIX, **chosen)


@pytest.fixture
def loader_benchmark(benchmark: Any, request: pytest.FixtureRequest) -> LoaderBenchmark:
    """Benchmarks a loader: ``loader_benchmark(loader, workload=..., max_starvation=...)``.

    See :class:`LoaderBenchmark`; returns the RunResult, which also goes into ``extra_info``.
    """
    return LoaderBenchmark(benchmark, vars(request.config.option))


# pytest's options for the measurement: --feedbench-workload, --feedbench-steps, ... (the CLI's
# --workload, --steps, ... from the same declarations). cpus and limit_s concern isolated runs.
OPTION_PREFIX = "feedbench-"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("feedbench", "feedbench loader benchmarks")
    group.addoption("--feedbench-no-summary", action="store_true", default=False,
                    help="do not print feedbench's table of loader figures after pytest-benchmark's")
    add_options(group.addoption, prefix=OPTION_PREFIX, skip=("cpus", "limit_s", "cycle"))


@dataclass(frozen=True)
class _Row:
    name: str
    group: str
    result: RunResult


@pytest.hookimpl(hookwrapper=True)  # the old-style wrapper: works with every pluggy a user may have
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """Notes each test whose benchmark carries a RunResult, for the summary."""
    yield
    fixture = getattr(item, "funcargs", {}).get("benchmark")
    info = getattr(fixture, "extra_info", None)
    if call.when == "call" and isinstance(info, dict) and isinstance(info.get(RESULT_KEY), dict):
        rows = item.config.stash.setdefault(_ROWS, {})
        rows[item.nodeid] = _Row(getattr(fixture, "name", item.name), getattr(fixture, "group", None) or "",
                                 RunResult.from_dict(info[RESULT_KEY]))


# The units of `feedbench compare`'s table and of the budgets: fractions, and MB of 10**6 bytes.
_COLUMNS = ("samples/s", "starvation", "AU", "input-bound", "peak RSS MB", "skipped", "contention")


def _cells(result: RunResult) -> tuple[str, ...]:
    if not result.ok:
        return ("failed: " + (result.error or "?"),)
    return (f"{result.samples_per_s:,.1f}", f"{result.starvation:.3f}", f"{result.accelerator_utilization:.3f}",
            result.input_bound, f"{result.peak_rss_bytes / 1e6:,.0f}", str(result.skipped), f"{result.contention:.3f}")


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's own table
def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    rows = config.stash.get(_ROWS, {})
    if not rows or config.getoption("feedbench_no_summary"):
        return
    ordered = sorted(rows.values(), key=lambda row: row.group)  # stable: run order within a group
    table = [("Name", *_COLUMNS)] + [(row.name, *_cells(row.result)) for row in ordered]
    full = [line for line in table if len(line) == len(table[0])]  # a failed run's one cell spans the row
    widths = [max(len(line[0]) for line in table)] + [max(len(line[i]) for line in full)
                                                     for i in range(1, len(table[0]))]
    tr = terminalreporter
    tr.ensure_newline()
    tr.write_sep("-", f"feedbench: loader figures ({len(rows)} benchmark{'s' if len(rows) > 1 else ''})", yellow=True)
    for index, line in enumerate(table):
        cells = [line[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(line[1:], widths[1:])] if line in full else list(line[1:])
        tr.write_line("  ".join(cells).rstrip(), bold=index == 0)
    tr.write_line("starvation, AU: fractions of the measured window; peak RSS: the process tree, workers included; "
                  "contention: the CPU time other processes took (above 0.05 a run shared its CPUs)")
