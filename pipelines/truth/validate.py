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
from feedbench.pipelines.truth.synthetic import SleepProducer, cpu_bound_loader, sleeping_loader

THROUGHPUT_TOLERANCE = 0.05  # relative
FRACTION_TOLERANCE = 0.03  # absolute, for starvation and AU


@dataclass(frozen=True)
class Case:
    """A producer of cost `producer_s` per batch against an emulated step of `step_s`.

    Attributes:
        name: What the case shows.
        producer: "sync" (made in next()), "prefetch" (a background thread), "sleeping-workers"
            (DataLoader worker processes that sleep per sample) or "cpu-workers" (DataLoader
            worker processes that spin: they need a free core each).
        producer_s: d, seconds per batch (per worker for the workers).
        step_s: c, seconds per step.
        workers: DataLoader workers (the workers cases).
        batch_size: Samples per batch.
        synchronous: The step runs in the host's thread (``emulated-sync``), not on the
            emulated device (``emulated``).
    """

    name: str
    producer: str
    producer_s: float
    step_s: float
    workers: int = 1
    batch_size: int = 8
    synchronous: bool = False

    @property
    def workload(self) -> str:
        return f"emulated{'-sync' if self.synchronous else ''}:{self.step_s * 1e3:g}ms"

    @property
    def needs_free_cores(self) -> bool:
        """Whether the producer needs CPUs of its own (its truth assumes nothing else runs)."""
        return self.producer == "cpu-workers"

    def truth(self) -> metrics.SteadyState:
        """The analytic steady state: the emulated step is asynchronous (a kernel on CUDA, the
        emulated device on the CPU) unless `synchronous`."""
        return metrics.steady_state(self.producer_s, self.step_s, prefetch=self.producer != "sync",
                                    parallel=self.workers, async_step=not self.synchronous)

    def loader(self) -> Iterable[Any]:
        if self.producer == "cpu-workers":
            return cpu_bound_loader(self.producer_s, workers=self.workers, batch_size=self.batch_size)
        if self.producer == "sleeping-workers":
            return sleeping_loader(self.producer_s, workers=self.workers, batch_size=self.batch_size)
        return SleepProducer(self.producer_s, prefetch=4 if self.producer == "prefetch" else 0,
                             batch_size=self.batch_size)


CASES = (
    # A synchronous producer starts a batch only when asked, so the loop's own time per step
    # (handing the request to its fetch thread and back, launching the step: about 1 ms here)
    # adds to its period: its times are long enough that this stays under 2%.
    Case("sync, producer-bound", "sync", 0.060, 0.020),
    Case("sync, consumer-bound", "sync", 0.020, 0.060),
    Case("sync, producer-bound, step in the host", "sync", 0.060, 0.020, synchronous=True),
    Case("sync, consumer-bound, step in the host", "sync", 0.020, 0.060, synchronous=True),
    Case("prefetch, producer-bound", "prefetch", 0.030, 0.010),
    Case("prefetch, consumer-bound", "prefetch", 0.010, 0.030),
    Case("prefetch, balanced", "prefetch", 0.020, 0.020),
    Case("2 sleeping workers, producer-bound", "sleeping-workers", 0.060, 0.015, workers=2, batch_size=4),
    # the case: 4 ms per sample, batch 8, 2 workers against 24 ms: 333 samples/s, starvation 0
    Case("2 sleeping workers, consumer-bound", "sleeping-workers", 0.032, 0.024, workers=2),
    # One CPU-bound worker, so that it has a core and the consumer the other on a 2-core machine:
    # the truth assumes nothing else takes the producer's CPU, the consumer's own included.
    Case("1 CPU worker, producer-bound", "cpu-workers", 0.030, 0.015, batch_size=4),
    Case("1 CPU worker, consumer-bound", "cpu-workers", 0.015, 0.030, batch_size=4),
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
    result = measure(case.loader(), workload=case.workload, device=device, steps=steps, warmup=warmup)
    return Check(case, result, case.truth())


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
