"""RunResult: what one measured run found, frozen, and convertible to JSON and Arrow."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from feedbench.pipelines.loop.metrics import input_bound


@dataclass(frozen=True)
class RunResult:
    """One measured run. Steady-state figures cover the measured window only; the time to
    the first batch is kept apart from it (it holds worker start-up, not throughput).

    Attributes:
        ok: False when the run failed; `error` says why and the figures are NaN or 0.
        error: One line: what failed, at which step.
        samples_per_s: Samples per second over the measured window.
        batches_per_s: Batches per second over the measured window.
        starvation: Fraction of the window the accelerator had no work for want of a batch.
        accelerator_utilization: Fraction of the window spent in the workload (AU).
        input_bound: "not", "moderately" or "highly" (TF Profiler's reading of starvation).
        ttfb_s: Seconds from asking for the first batch to receiving it.
        wait_p50_s: Median host wait in ``next()`` per measured step.
        wait_p95_s: 95th percentile of the wait.
        wait_p99_s: 99th percentile of the wait.
        wait_mean_s: Mean wait.
        h2d_mean_s: Mean host-to-device copy time per step.
        compute_mean_s: Mean workload time per step.
        window_s: Seconds of the measured window.
        steps: Measured steps.
        warmup_steps: Steps run before the window (excluded).
        samples: Samples in the measured window.
        epochs: Passes started over the loader (a re-iterable loader is cycled).
        stop_reason: "steps", "seconds" or "exhausted" (the loader ended early).
        device: "cpu" or "cuda:0", ...
        workload: The workload's name.
        peak_rss_bytes: Peak resident memory of the process tree (loader workers included).
        peak_pss_bytes: Peak proportional set size of the tree (shared pages counted once).
        peak_device_bytes: Peak memory allocated on the device by torch (None on the CPU).
        cpu_util: CPU seconds the tree used per second of the window (2.0: two cores busy).
        contention: The CPU time other processes took on the run's CPUs during the window, as
            a fraction of the window x those CPUs (NaN where it cannot be read). Above
            ``metrics.CONTENDED`` (0.05) the run shared its CPUs: no verdict is drawn from it.
        skipped: Samples the pipeline dropped and counted.
        truncated: Documents cut to ``max_len`` (text pipelines), each counted once.
        config: The configuration of the run (loader and measurement settings).
    """

    ok: bool = True
    error: str | None = None
    samples_per_s: float = math.nan
    batches_per_s: float = math.nan
    starvation: float = math.nan
    accelerator_utilization: float = math.nan
    input_bound: str = ""
    ttfb_s: float = math.nan
    wait_p50_s: float = math.nan
    wait_p95_s: float = math.nan
    wait_p99_s: float = math.nan
    wait_mean_s: float = math.nan
    h2d_mean_s: float = math.nan
    compute_mean_s: float = math.nan
    window_s: float = 0.0
    steps: int = 0
    warmup_steps: int = 0
    samples: int = 0
    epochs: int = 0
    stop_reason: str = ""
    device: str = ""
    workload: str = ""
    peak_rss_bytes: int = 0
    peak_pss_bytes: int = 0
    peak_device_bytes: int | None = None
    cpu_util: float = math.nan
    contention: float = math.nan
    skipped: int = 0
    truncated: int = 0
    config: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ok and not self.input_bound and not math.isnan(self.starvation):
            object.__setattr__(self, "input_bound", input_bound(self.starvation))

    @classmethod
    def failed(cls, reason: str, *, config: Mapping[str, Any] | None = None, **known: Any) -> RunResult:
        """A result for a run that did not finish: `reason` in one line."""
        return cls(ok=False, error=reason, config=dict(config or {}), **known)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (JSON-ready: NaN becomes None)."""
        data = dataclasses.asdict(self)
        data["config"] = dict(self.config)
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in data.items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, default=str)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunResult:
        """The inverse of :meth:`to_dict` (unknown keys are ignored, None floats become NaN)."""
        names = {f.name: f for f in dataclasses.fields(cls)}
        values = {}
        for key, value in data.items():
            if key not in names:
                continue
            if value is None and names[key].type == "float":
                value = math.nan
            values[key] = value
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> RunResult:
        return cls.from_dict(json.loads(text))

    def to_arrow_row(self) -> dict[str, Any]:
        """A flat row for a pyarrow table: the fields, with `config` as JSON text."""
        row = self.to_dict()
        row["config"] = json.dumps(row["config"], sort_keys=True, default=str)
        return row

    @staticmethod
    def arrow_schema():
        """The pyarrow schema of :meth:`to_arrow_row` rows."""
        import pyarrow as pa

        types = {"bool": pa.bool_(), "float": pa.float64(), "int": pa.int64(), "int | None": pa.int64()}
        return pa.schema(
            [(f.name, types.get(f.type, pa.string())) for f in dataclasses.fields(RunResult)]
        )

    @staticmethod
    def to_table(results: list[RunResult]):
        """A pyarrow Table with one row per result."""
        import pyarrow as pa

        return pa.Table.from_pylist([r.to_arrow_row() for r in results], schema=RunResult.arrow_schema())
