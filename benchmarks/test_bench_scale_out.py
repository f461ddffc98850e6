"""The disaggregated backends (docs/scale-out.md): what moving the preprocessing into a tf.data
service or onto Ray Data costs per sample against the local pipeline it runs, at the same CPU
budget; and their throughput by number of workers.

Each pair runs interleaved round by round (local, disaggregated, local, ...), each run isolated
in a fresh process pinned to the same cores (the local service or Ray instance included: they
are started inside the run and inherit its CPUs), with a near-free consumer (emulated:0.1ms), so
that the figure is the pipeline's own. The overhead per sample is 1/rate(disaggregated) -
1/rate(local) over the medians of the rounds, in CPU-budget milliseconds: on one machine the
service's workers compete with the client for the same cores, as the local pipeline's do.

Targets: every run succeeds; the figures are recorded in extra_info (overhead per sample, the
ratio, time to first batch, memory). A service costs something, by design; no bound is asserted
on it.
"""

import os

import pytest

from feedbench.datasets.defaults import default_images
from feedbench.pipelines import RunSpec, registry, run_isolated
from feedbench.pipelines.loop.config import MeasureConfig
from feedbench.pipelines.pytest_plugin import record_result

CORES = len(os.sched_getaffinity(0))
STEPS, WARMUP, BATCH, IMAGES = 30, 6, 64, 4096  # as test_bench_vision.py: the window stays in one epoch
ROUNDS = 3
PAIRS = {"tf-service": "tf", "ray": "torch"}


def _run(framework, workers, cpus=CORES):
    data = default_images(n=IMAGES)
    config = registry.make_config("image", framework, {"batch_size": BATCH, "workers": workers, "seed": 0})
    spec = RunSpec(registry.loader_factory("image", framework, data.root, config),
                   MeasureConfig(workload="emulated:0.1ms", device="cpu", steps=STEPS, warmup=WARMUP, cpus=cpus),
                   config={"framework": framework, "workers": workers})
    result = run_isolated(spec)
    assert result.ok, f"{framework} at {workers} workers: {result.error}"
    return result


def _median(results):
    return sorted(results, key=lambda r: r.samples_per_s)[len(results) // 2]


@pytest.mark.benchmark(group="scale-out")
@pytest.mark.parametrize("framework", sorted(PAIRS))
def test_overhead_per_sample_against_the_local_pipeline(benchmark, framework):
    local, remote = [], []

    def pair():
        local.append(_run(PAIRS[framework], CORES))
        remote.append(_run(framework, CORES))

    benchmark.pedantic(pair, rounds=ROUNDS, iterations=1)
    mine, theirs = _median(remote), _median(local)
    overhead_ms = (1 / mine.samples_per_s - 1 / theirs.samples_per_s) * 1e3
    record_result(benchmark, mine, cores=CORES, workers=CORES,
                  samples_per_s_rounds=[r.samples_per_s for r in remote],
                  local_samples_per_s_rounds=[r.samples_per_s for r in local],
                  throughput_ratio=mine.samples_per_s / theirs.samples_per_s, overhead_ms_per_sample=overhead_ms,
                  ttfb_s=mine.ttfb_s, local_ttfb_s=theirs.ttfb_s, peak_pss_bytes=mine.peak_pss_bytes,
                  local_peak_pss_bytes=theirs.peak_pss_bytes)
    print(f"\n{framework} against {PAIRS[framework]} at {CORES} workers on {CORES} CPUs: "
          f"{mine.samples_per_s:.0f} against {theirs.samples_per_s:.0f} samples/s "
          f"({mine.samples_per_s / theirs.samples_per_s:.2f}x), {overhead_ms:+.2f} ms per sample; first batch "
          f"{mine.ttfb_s:.2f} against {theirs.ttfb_s:.2f} s; peak PSS {mine.peak_pss_bytes / 1e6:.0f} against "
          f"{theirs.peak_pss_bytes / 1e6:.0f} MB")


@pytest.mark.benchmark(group="scale-out")
@pytest.mark.parametrize("framework", sorted(PAIRS))
def test_throughput_by_workers(benchmark, framework):
    """1 to CORES workers, each count on all the cores (the client and its workers share them)."""
    by_workers = {}

    def sweep():
        for workers in range(1, CORES + 1):
            by_workers.setdefault(workers, []).append(_run(framework, workers))

    benchmark.pedantic(sweep, rounds=ROUNDS, iterations=1)
    medians = {w: _median(results) for w, results in by_workers.items()}
    record_result(benchmark, medians[CORES], cores=CORES,
                  samples_per_s_by_workers={w: r.samples_per_s for w, r in medians.items()},
                  rounds_by_workers={w: [r.samples_per_s for r in results] for w, results in by_workers.items()})
    print(f"\n{framework} on {CORES} CPUs: " + ", ".join(f"{w} workers {r.samples_per_s:.0f} samples/s"
                                                        for w, r in medians.items()))
