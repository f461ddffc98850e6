"""run_isolated: a fresh spawned process per run, pinned on request, failures as results."""

import functools
import os
import time

import psutil
import pytest

from feedbench.pipelines import ConfigError, RunSpec, run_isolated
from feedbench.pipelines.loop.config import MeasureConfig
from feedbench.pipelines.truth.synthetic import SleepProducer, cpu_bound_loader, misbehaving


def test_a_run_comes_back_as_its_result_with_its_configuration():
    spec = RunSpec(functools.partial(SleepProducer, 0.01),
                   MeasureConfig(workload="emulated-sync:10ms", device="cpu", steps=10, warmup=2),
                   config={"framework": "fake"})
    result = run_isolated(spec)
    assert result.ok, result.error
    assert result.steps == 10 and result.batches_per_s == pytest.approx(50, rel=0.1)
    assert result.config["isolated"] is True and result.config["framework"] == "fake"
    assert result.config["loader"] == "feedbench.pipelines.truth.synthetic.SleepProducer"
    assert result.peak_rss_bytes > 0


def test_cpus_pins_the_run_and_its_workers():
    # Two CPU-bound workers at 40 ms a batch: 50 batches/s on two cores, 25 on one.
    spec = RunSpec(functools.partial(cpu_bound_loader, 0.04, workers=2),
                   MeasureConfig(workload="emulated:5ms", device="cpu", steps=30, warmup=8, cpus=1))
    result = run_isolated(spec)
    assert result.ok, result.error
    assert result.config["cpu_ids"] == sorted(os.sched_getaffinity(0))[:1]
    assert result.cpu_util < 1.1
    assert result.batches_per_s == pytest.approx(25, rel=0.1)


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("sigkill", "killed by SIGKILL (out of memory?) before it reported"),
        ("segfault", "killed by SIGSEGV before it reported"),
        ("raise", "RuntimeError: the loader could not be built"),
    ],
)
def test_a_crash_becomes_a_failed_result(how, reason):
    result = run_isolated(RunSpec(functools.partial(misbehaving, how), MeasureConfig(device="cpu", steps=2)))
    assert not result.ok
    assert reason in result.error
    assert result.config["isolated"] is True


def test_the_figure_is_sent_before_the_loader_is_let_go():
    """What ends with a loader (a Ray instance, whose late callers end the process) cannot lose
    the measured figure: the run reports first."""
    result = run_isolated(RunSpec(functools.partial(misbehaving, "exit-when-let-go"),
                                  MeasureConfig(workload="emulated:1ms", device="cpu", steps=4, warmup=1)))
    assert result.ok, result.error
    assert result.steps == 4 and result.samples == 8


def test_a_hung_run_is_killed_with_its_tree_at_the_limit():
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    started = time.perf_counter()
    result = run_isolated(RunSpec(functools.partial(misbehaving, "hang"),
                                  MeasureConfig(device="cpu", steps=2, limit_s=3)))
    assert time.perf_counter() - started < 20
    assert not result.ok and "timed out: no result within 3 s" in result.error
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before


def test_a_bad_loader_error_in_the_child_names_the_step():
    result = run_isolated(RunSpec(functools.partial(SleepProducer, 0.0, batches=0),
                                  MeasureConfig(device="cpu", steps=2)))
    assert not result.ok and "LoaderError: the loader yielded no batch" in result.error


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"loader": 3}, "zero-argument callable"), ({"measure": {"steps": 2}}, "RunSpec.measure must be a MeasureConfig")],
)
def test_bad_specs_are_refused_before_anything_starts(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        RunSpec(**{"loader": SleepProducer, **kwargs})


def test_the_result_records_what_auto_resolved_to():
    """The device "auto" and the warm-up "auto" are recorded as what they became in the run
    (an isolated run recorded "auto" for both: the asked-for settings were laid over them)."""
    spec = RunSpec(functools.partial(SleepProducer, 0.0), MeasureConfig(workload="emulated:1ms", steps=3))
    result = run_isolated(spec)
    assert result.ok, result.error
    assert result.device == result.config["device"] == "cpu"  # this machine has no GPU
    assert result.config["warmup"] == result.warmup_steps == 5 and result.config["isolated"] is True
