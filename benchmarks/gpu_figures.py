"""The figures that need a GPU machine, in one call (a lent machine's time is short).

Run on a machine with CUDA and many cores (docs/ record what it printed):

    python benchmarks/gpu_figures.py --out DIR [--workers 1,2,4,8,16] [--skip validate,scaling,feed,contenders]

- validate: the consumer loop against producers of known cost on CUDA (CUDA events).
- scaling: the torch image train pipeline at N workers pinned to N cores, near-free consumer.
- feed: the torch image pipeline feeding a real ResNet-50 training step (the resnet50
  workload: bf16 autocast and channels_last on CUDA; each line names it as the run recorded
  it), float32 against uint8 batches.
- contenders: the same ResNet-50 step at batch 256 fed by each backend (torch, torch-threads,
  torch-gpu, dali, tf, and the local tf-service and ray where installed: docs/scale-out.md)
  from all cores but one, uint8 batches (normalized on the device), AU and images/s side by
  side (docs/contenders.md). A backend this machine cannot run (dali without DALI, tf without
  TensorFlow, ray without Ray) prints its one-line reason.

Each run is isolated (`run_isolated`). Results go to DIR/*.json and a table to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from feedbench.datasets.defaults import default_images
from feedbench.pipelines import MeasureConfig, RunSpec, registry, run_isolated
from feedbench.pipelines.core.machine import usable_cpus

IMAGES, BATCH, PREFETCH = 16384, 64, 2


def _window(workers: int) -> tuple[int, int]:
    """(warm-up, measured) steps: the warm-up drains what the workers made ahead while the
    last of them started (workers x prefetch batches), and the window is 8 rounds of all
    workers, so that a prefetch buffer cannot pass for throughput (DESIGN.md, pitfalls)."""
    return 2 * workers * PREFETCH + 6, max(30, 8 * workers)


def _image_run(workers: int, cpus: int, workload: str, device: str, framework: str = "torch", batch: int = BATCH,
               **options) -> dict:
    data = default_images(n=IMAGES)
    config = registry.make_config("image", framework, {"batch_size": batch, "workers": workers, "seed": 0,
                                                        "prefetch": PREFETCH, **options})
    warmup, steps = _window(workers)
    if IMAGES // batch < warmup + steps + 2:  # a large batch: fewer steps, the window still inside one epoch
        warmup, steps = min(warmup, 8), IMAGES // batch - min(warmup, 8) - 2
    assert IMAGES // batch >= warmup + steps + 2, "the window would cross an epoch"
    measure = MeasureConfig(workload=workload, device=device, steps=steps, warmup=warmup, cpus=cpus, limit_s=400,
                            timeout=300.0)
    spec = RunSpec(registry.loader_factory("image", framework, data.root, config), measure,
                   config={"framework": framework, "workers": workers, **options})
    return run_isolated(spec).to_dict()


def _line(row: dict) -> str:
    if not row["ok"]:
        return f"FAILED: {row.get('error')}"
    return (f"{row['samples_per_s']:8.1f} img/s starvation={row['starvation']:.2f} "
            f"AU={row['accelerator_utilization']:.2f} ttfb={row['ttfb_s']:.0f}s window={row['window_s']:.1f}s "
            f"cpu={row['cpu_util']:.1f} peak_rss={row['peak_rss_bytes'] / 2**30:.2f}GiB ok={row['ok']} "
            f"{row.get('error') or ''}")


def scaling(counts: list[int], out: Path) -> None:
    rows = []
    for n in counts:
        row = _image_run(n, n, "emulated:0.1ms", "cpu")
        rows.append(row)
        one = rows[0]["samples_per_s"]
        ratio = f"{row['samples_per_s'] / (n * one):.0%}" if row["ok"] and rows[0]["ok"] else "-"
        print(f"scaling torch workers={n:2d} cpus={n:2d}: {_line(row)} ({ratio} of {n} x the first)", flush=True)
        (out / "scaling.json").write_text(json.dumps(rows, indent=1, default=str))


def feed(workers: int, out: Path) -> None:
    rows = []
    for output in ("float", "uint8"):
        row = _image_run(workers, workers + 1, "resnet50", "cuda", output=output)
        rows.append(row)
        print(f"feed {row.get('workload') or 'resnet50'} output={output:5s} workers={workers}: {_line(row)}",
              flush=True)
        (out / "feed.json").write_text(json.dumps(rows, indent=1, default=str))


def contenders(workers: int, out: Path) -> None:
    from feedbench.pipelines.core.errors import FeedbenchError

    rows = []
    for framework in ("torch", "torch-threads", "torch-gpu", "dali", "tf", "tf-service", "ray"):
        try:
            registry.check_machine("image", framework)
            row = _image_run(workers, workers + 1, "resnet50", "cuda", framework=framework, batch=256, output="uint8")
        except (FeedbenchError, ImportError) as exc:
            row = {"ok": False, "error": str(exc)}
        row["framework"] = framework
        rows.append(row)
        print(f"contenders resnet50 batch=256 uint8 {framework:13s} workers={workers}: {_line(row)}", flush=True)
        (out / "contenders.json").write_text(json.dumps(rows, indent=1, default=str))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--workers", default="1,2,4,8,15")
    parser.add_argument("--skip", default="")
    parser.add_argument("--feed-workers", type=int, default=None, help="workers feeding ResNet-50 (default: cores - 1)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    skip = set(filter(None, args.skip.split(",")))
    cores = len(usable_cpus())
    counts = [n for n in map(int, args.workers.split(",")) if n <= cores]
    started = time.perf_counter()
    if "validate" not in skip:
        from feedbench.pipelines.truth.validate import CASES, run_case

        checks = []
        for case in CASES:
            check = run_case(case, device="cuda", steps=60)
            r, t = check.result, check.truth
            checks.append({"case": case.name, "result": r.to_dict(), "truth": vars(t), "passed": check.passed})
            print(f"validate {case.name:32s} batch/s {r.batches_per_s:6.2f} ({t.batches_per_s:6.2f}) "
                  f"starved {r.starvation:.3f} ({t.starvation:.3f}) AU {r.accelerator_utilization:.3f} "
                  f"({t.accelerator_utilization:.3f}) {'ok' if check.passed else 'MISSED'}", flush=True)
        (args.out / "validate.json").write_text(json.dumps(checks, indent=1, default=str))
    default_images(n=IMAGES)  # generated once, outside any timed run
    print(f"images ready after {time.perf_counter() - started:.0f} s", flush=True)
    if "feed" not in skip:
        feed(args.feed_workers or cores - 1, args.out)
    if "contenders" not in skip:
        contenders(args.feed_workers or cores - 1, args.out)
    if "scaling" not in skip:
        scaling(counts, args.out)
    print(f"done in {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
