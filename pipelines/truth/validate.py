"""Ground truth for the consumer loop: producers of known cost against emulated workloads.

Each case has an analytic steady state (metrics.steady_state); the loop's figures must land
within 5% (throughput) and 0.03 (starvation, AU) of it. The tests run these cases on the
CPU in CI; on a GPU machine run them on CUDA, where the workload is a calibrated device
kernel and starvation is read from CUDA events:

    python -m feedbench.pipelines.truth.validate --device cuda --json validation.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from feedbench.pipelines.loop import metrics
from feedbench.pipelines.loop.measure import measure
from feedbench.pipelines.loop.result import RunResult
from feedbench.pipelines.truth.synthetic import SleepProducer, cpu_bound_loader

THROUGHPUT_TOLERANCE = 0.05  # relative
FRACTION_TOLERANCE = 0.03  # absolute, for starvation and AU


@dataclass(frozen=True)
class Case:
    """A producer of cost `producer_s` per batch against an emulated step of `step_s`.

    Attributes:
        name: What the case shows.
        producer: "sync" (made in next()), "prefetch" (a background thread) or "workers"
            (CPU-bound DataLoader workers).
        producer_s: d, seconds per batch (per worker for "workers").
        step_s: c, seconds per step.
        workers: DataLoader workers ("workers" cases).
    """

    name: str
    producer: str
    producer_s: float
    step_s: float
    workers: int = 1

    def truth(self, device: str = "cpu") -> metrics.SteadyState:
        """The analytic steady state; on CUDA the emulated step is an asynchronous kernel."""
        return metrics.steady_state(
            self.producer_s, self.step_s, prefetch=self.producer != "sync", parallel=self.workers,
            async_step=device == "cuda",
        )

    def loader(self) -> Iterable[Any]:
        if self.producer == "workers":
            return cpu_bound_loader(self.producer_s, workers=self.workers)
        return SleepProducer(self.producer_s, prefetch=4 if self.producer == "prefetch" else 0)


CASES = (
    Case("sync, producer-bound", "sync", 0.030, 0.010),
    Case("sync, consumer-bound", "sync", 0.010, 0.030),
    Case("prefetch, producer-bound", "prefetch", 0.030, 0.010),
    Case("prefetch, consumer-bound", "prefetch", 0.010, 0.030),
    Case("prefetch, balanced", "prefetch", 0.020, 0.020),
    Case("2 CPU workers, producer-bound", "workers", 0.060, 0.015, workers=2),
    Case("2 CPU workers, consumer-bound", "workers", 0.020, 0.030, workers=2),
)


@dataclass(frozen=True)
class Check:
    """A case's measurement beside its truth."""

    case: Case
    result: RunResult
    truth: metrics.SteadyState

    @property
    def throughput_error(self) -> float:
        return self.result.batches_per_s / self.truth.batches_per_s - 1.0

    @property
    def starvation_error(self) -> float:
        return self.result.starvation - self.truth.starvation

    @property
    def utilization_error(self) -> float:
        return self.result.accelerator_utilization - self.truth.accelerator_utilization

    @property
    def passed(self) -> bool:
        return (
            abs(self.throughput_error) <= THROUGHPUT_TOLERANCE
            and abs(self.starvation_error) <= FRACTION_TOLERANCE
            and abs(self.utilization_error) <= FRACTION_TOLERANCE
        )


def run_case(case: Case, *, device: str = "cpu", steps: int = 60, warmup: int = 8) -> Check:
    """Measures one case; the warm-up outlasts the producer's prefetch depth."""
    result = measure(case.loader(), workload=f"emulated:{case.step_s * 1e3:g}ms", device=device, steps=steps,
                     warmup=warmup)
    return Check(case, result, case.truth(result.device.split(":")[0]))


def _row(check: Check) -> str:
    r, t = check.result, check.truth
    return (
        f"{check.case.name:32} {r.batches_per_s:8.2f} {t.batches_per_s:8.2f} {check.throughput_error:+7.1%}  "
        f"{r.starvation:6.3f} {t.starvation:6.3f}  {r.accelerator_utilization:6.3f} {t.accelerator_utilization:6.3f}  "
        f"{'ok' if check.passed else 'OFF'}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m feedbench.pipelines.truth.validate",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--steps", type=int, default=60, help="measured steps per case (default 60)")
    parser.add_argument("--json", help="write every case's result and truth to this file")
    args = parser.parse_args(argv)
    print(f"{'case':32} {'batch/s':>8} {'truth':>8} {'error':>7}  {'starv':>6} {'truth':>6}  {'AU':>6} {'truth':>6}")
    checks = []
    for case in CASES:
        checks.append(run_case(case, device=args.device, steps=args.steps))
        print(_row(checks[-1]), flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump([{"case": asdict(c.case), "truth": asdict(c.truth), "result": c.result.to_dict(),
                        "passed": c.passed}
                       for c in checks], handle, indent=1)
    failed = [c.case.name for c in checks if not c.passed]
    print(f"{len(checks) - len(failed)} passed, {len(failed)} failed" + (f": {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
