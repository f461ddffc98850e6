"""Overhead of the consumer loop: measure() over precomputed in-memory batches against a bare
`for` loop doing the same transfer and workload. Target: at least 98% of the bare loop's
steps/s (issue: the shared consumer loop), on the CPU and, where there is one, on CUDA.
The RunResult in extra_info is the last of the 3 measured rounds."""

import statistics
import time

import pytest
import torch

from feedbench.pipelines import measure, parse_workload, resolve_device
from feedbench.pipelines.loop.adapter import to_device, to_torch
from feedbench.pipelines.pytest_plugin import record_result

STEPS = 100
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _batches(n):
    return [(torch.zeros(64, 3, 32, 32, dtype=torch.uint8), torch.zeros(64, dtype=torch.int64)) for _ in range(n)]


def _bare(batches, workload, device):
    work = parse_workload(workload)
    work.setup(device)
    work.warmup(to_device(to_torch(batches[0]), device))
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for batch in batches:
        work.step(to_device(to_torch(batch), device))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(batches) / (time.perf_counter() - started)


@pytest.mark.benchmark(group="consumer-loop")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("workload", ["emulated:20ms", "emulated:5ms"])
def test_loop_against_a_bare_for_loop(benchmark, workload, device):
    batches = _batches(STEPS + 5)
    dev = resolve_device(device)
    bare = statistics.median(_bare(batches[:STEPS], workload, dev) for _ in range(3))
    result = benchmark.pedantic(
        measure, args=(batches,),
        kwargs={"workload": workload, "device": device, "steps": STEPS, "warmup": 5, "cycle": False},
        rounds=3,
    )
    ratio = result.batches_per_s / bare
    record_result(benchmark, result, bare_steps_per_s=bare, loop_steps_per_s=result.batches_per_s, ratio=ratio,
                  wait_mean_s=result.wait_mean_s)
    if workload == "emulated:20ms":
        assert ratio >= 0.98, f"loop at {ratio:.1%} of the bare loop, target 98%"
