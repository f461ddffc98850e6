"""Image pipelines: images/s per core of each framework's train pipeline on the generated
photo-like data (500x375 JPEGs), and scaling from one worker to all cores.

Targets (issue: image preprocessing): torch at N workers reaches at least 85% of N x its
one-worker rate up to the core count; tf.data at workers=N likewise; tf AUTOTUNE within 10%
of the best fixed setting. Each run is isolated (a fresh spawned process) and measured
with a near-free consumer (emulated:0.1ms), so the figure is the pipeline's own rate.

A run with N workers is pinned to N cores (`cpus=N`), its consumer included: "per core"
means per core the run may use. Unpinned, tf.data at `workers=1` is not one core: a single
map call spreads its ops over TF's inter-op threads (1.35 cores measured on 2 cores), so an
unpinned one-worker rate is not a one-core rate and the scaling ratio loses its meaning.

The default set runs 1, 2 and all cores; ``--feedbench-full`` every count in between too.
"""

import os

import pytest

from feedbench.datasets.defaults import default_images
from feedbench.pipelines import RunSpec, registry, run_isolated
from feedbench.pipelines.loop.config import MeasureConfig
from feedbench.pipelines.pytest_plugin import record_result

CORES = len(os.sched_getaffinity(0))
STEPS, WARMUP, BATCH = 30, 6, 64
# The window must not cross an epoch: both frameworks stop producing at the end of an epoch
# until the next iter(), which on the 512-image default (8 batches) cost tf.data at two
# threads a quarter of its rate. 4,096 images are 64 batches, more than warm-up + window.
IMAGES = 4096
assert IMAGES // BATCH > STEPS + WARMUP + 2
# The 2 shared cores of the development machines vary by up to 25% from run to run (tf.data
# at two threads: 486 to 669 images/s at the same 1.74 cores); each point is the median of 3.
ROUNDS = 3
DEFAULT_WORKERS = {1, 2, CORES}
WORKERS = [n if n in DEFAULT_WORKERS else pytest.param(n, marks=pytest.mark.full) for n in range(1, CORES + 1)]
_rates: dict[tuple[str, object], float] = {}


def _run(framework, workers, cpus):
    data = default_images(n=IMAGES)
    config = registry.make_config("image", framework, {"batch_size": BATCH, "workers": workers, "seed": 0})
    spec = RunSpec(registry.loader_factory("image", framework, data.root, config),
                   MeasureConfig(workload="emulated:0.1ms", device="cpu", steps=STEPS, warmup=WARMUP, cpus=cpus),
                   config={"framework": framework, "workers": workers})
    return run_isolated(spec)


def _median_run(benchmark, framework, workers, cpus):
    results = []
    benchmark.pedantic(lambda: results.append(_run(framework, workers, cpus)), rounds=ROUNDS, iterations=1)
    failed = [r for r in results if not r.ok]
    assert not failed, failed[0].error
    ranked = sorted(results, key=lambda r: r.samples_per_s)
    return ranked[len(ranked) // 2], [r.samples_per_s for r in results]


@pytest.mark.benchmark(group="image")
@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("framework", ["torch", "tf"])
def test_train_pipeline_scaling(benchmark, framework, workers):
    result, rounds = _median_run(benchmark, framework, workers, workers)
    _rates[(framework, workers)] = result.samples_per_s
    one = _rates.get((framework, 1))
    efficiency = result.samples_per_s / (workers * one) if one else None
    record_result(benchmark, result, samples_per_s_rounds=rounds,
                  images_per_s_per_worker=result.samples_per_s / workers, scaling_efficiency=efficiency, cores=CORES)
    if efficiency is not None:
        assert efficiency >= 0.85, f"{framework} at {workers} workers: {efficiency:.0%} of {workers} x one worker"


@pytest.mark.benchmark(group="image")
def test_tf_autotune_against_the_best_fixed_setting(benchmark):
    result, rounds = _median_run(benchmark, "tf", "autotune", CORES)
    fixed = [rate for (framework, _), rate in _rates.items() if framework == "tf"]  # the best is at all cores
    best = max(fixed) if fixed else None
    record_result(benchmark, result, samples_per_s_rounds=rounds, best_fixed_images_per_s=best, cores=CORES)
    if best:
        assert result.samples_per_s >= 0.9 * best, (f"AUTOTUNE {result.samples_per_s:.0f} images/s, "
                                                     f"best fixed {best:.0f}")


@pytest.mark.benchmark(group="image-contenders")
def test_threads_against_processes_at_equal_cpus(benchmark):
    """torch-threads against torch's worker processes, each with one worker per core on all the
    cores (docs/contenders.md). Targets: threads start in less time and peak in less memory (no
    process to start, no second copy of torch); throughput is recorded, its ratio in extra_info."""
    threads, thread_rounds = _median_run(benchmark, "torch-threads", CORES, CORES)
    processes = sorted((_run("torch", CORES, CORES) for _ in range(ROUNDS)), key=lambda r: r.samples_per_s)
    assert all(r.ok for r in processes), [r.error for r in processes if not r.ok]
    middle = processes[len(processes) // 2]
    record_result(benchmark, threads, samples_per_s_rounds=thread_rounds, cores=CORES,
                  processes_samples_per_s=[r.samples_per_s for r in processes],
                  throughput_ratio=threads.samples_per_s / middle.samples_per_s,
                  ttfb_s=threads.ttfb_s, processes_ttfb_s=middle.ttfb_s,
                  peak_pss_bytes=threads.peak_pss_bytes, processes_peak_pss_bytes=middle.peak_pss_bytes)
    assert threads.ttfb_s < middle.ttfb_s, f"first batch: threads {threads.ttfb_s:.2f} s, processes {middle.ttfb_s:.2f}"
    assert threads.peak_pss_bytes < middle.peak_pss_bytes
