"""The arithmetic of ``feedbench explain``: from measured runs to the cost of each stage, the
ceilings, the workers predicted, and the sentences that name the bottleneck. Pure functions of
RunResults (no run happens here), so that each can be checked against known values.

Definitions (DESIGN.md, "Stage attribution and ceilings"; docs/explain.md):

- The cost of a prefix is seconds per sample, 1 / samples_per_s, of the pipeline stopped after
  a sample stage, run on one CPU with no worker (tf.data: a sequential map, no prefetch), through
  the consumer loop with a workload that takes no time. The cost of a sample stage is the
  difference between its prefix and the one before it; the first stage holds the loop's own
  per-batch cost too (the same in every prefix).
- batch: the whole pipeline with no worker, less the last sample prefix (collate or batch, and
  the batch's own size crossing the loop).
- deliver: the whole pipeline through one worker (its prefetch as configured), less the same
  with no worker: for torch, a worker process's batch crossing to the main process; for tf.data,
  the map thread's and the prefetch buffer's hand-offs.
- The one-worker cost is the sum of those stages: the cost of the pipeline through one worker.
- copy, step: the consumer loop's own per-step means (h2d_mean_s, compute_mean_s) of the warm
  run, per sample. They run on the consumer's side, beside the workers, not after them.
- Ceilings, through the same loop, with the workload and device: "workload" (one batch resident
  on the device, given again: the most the accelerator takes), "replay" (batches of the pipeline
  replayed from memory through the framework's delivery at the same workers), "warm" (the
  pipeline, its files in the page cache), "cold" (the same after its files' pages were evicted).
- The workers needed for a target AU: ceil(target x workload ceiling x one-worker cost), the
  workers being assumed to scale linearly; measured beside it at that count.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from feedbench.pipelines.loop.metrics import contended
from feedbench.pipelines.loop.result import RunResult

PIPELINE_STAGES_AFTER = ("batch", "deliver")  # after the sample stages, on the workers' side
CONSUMER_STAGES = ("copy", "step")  # on the consumer's side
CEILINGS = ("workload", "replay", "warm", "cold")
STARVED = 0.05  # starvation above which the workers' throughput is their own rate (the consumer waited)
FETCH_STALL_SEEN = 0.05  # cold slower than warm by more than this fraction of a sample's time: a fetch stall


@dataclass(frozen=True)
class StageCost:
    """One stage of one framework.

    Attributes:
        framework: The backend.
        stage: read, decode, ... (see the module's definitions).
        seconds_per_sample: Its cost; a difference of two measurements, so it may come out
            slightly below 0 for a stage that costs nothing.
        share: Its fraction of the one-worker cost (pipeline stages), or of the step period
            (consumer stages: copy, step).
        side: "pipeline" (on the workers) or "consumer" (the loop and the accelerator).
        method: How it was measured, in words.
        spread_s: Half the range over the repeats of the measurements it is made of (0 with
            one repeat).
    """

    framework: str
    stage: str
    seconds_per_sample: float
    share: float
    side: str
    method: str
    spread_s: float = 0.0


@dataclass(frozen=True)
class Ceiling:
    """One ceiling: samples/s through the consumer loop, and how it was measured."""

    framework: str
    name: str
    samples_per_s: float
    accelerator_utilization: float
    method: str
    ok: bool = True
    note: str = ""


@dataclass(frozen=True)
class WorkersNeeded:
    """The workers predicted for the target AU, and what was measured at a count beside it.

    Attributes:
        target_au: The AU aimed for.
        demand_samples_per_s: The workload ceiling: samples/s the consumer takes at most.
        one_worker_s: Seconds per sample through one worker (the one-worker cost).
        workers: ceil(target x demand x one_worker_s), at least 1.
        cpus: The CPU budget of the runs.
        checked_workers: The count measured beside the prediction (the prediction, or the
            budget where the prediction exceeds it); None when not measured.
        checked_au: The AU measured there.
        checked_samples_per_s: Its throughput.
        scaling: Its throughput over `checked_workers` x one worker's rate (1.0: linear); NaN
            where the consumer did not wait (then the throughput is the consumer's, not theirs).
        sweep_workers: What a sweep recommended for the same settings, where one was given.
        explanation: One sentence: how the measurement agrees with the prediction, and why not.
    """

    target_au: float
    demand_samples_per_s: float
    one_worker_s: float
    workers: int
    cpus: int
    checked_workers: int | None = None
    checked_au: float = math.nan
    checked_samples_per_s: float = math.nan
    scaling: float = math.nan
    sweep_workers: int | str | None = None
    explanation: str = ""


@dataclass(frozen=True)
class FrameworkExplanation:
    """What explain found for one framework."""

    framework: str
    label: str
    samples_per_step: float
    stages: tuple[StageCost, ...]
    ceilings: tuple[Ceiling, ...]
    needed: WorkersNeeded | None
    autotune: tuple[Mapping[str, Any], ...] = ()
    autotune_note: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def stage(self, name: str) -> StageCost | None:
        return next((s for s in self.stages if s.stage == name), None)

    def ceiling(self, name: str) -> Ceiling | None:
        return next((c for c in self.ceilings if c.name == name), None)

    @property
    def one_worker_s(self) -> float:
        """The sum of the pipeline stages: seconds per sample through one worker."""
        return sum(s.seconds_per_sample for s in self.stages if s.side == "pipeline")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return _plain(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FrameworkExplanation:
        """The inverse of :meth:`to_dict` (None numbers become NaN)."""
        needed = data.get("needed")
        return cls(data["framework"], data["label"], _nan(data["samples_per_step"]),
                   tuple(StageCost(**_floats(s)) for s in data["stages"]),
                   tuple(Ceiling(**_floats(c)) for c in data["ceilings"]),
                   WorkersNeeded(**_floats(needed)) if needed else None, tuple(data.get("autotune") or ()),
                   data.get("autotune_note"), tuple(data.get("notes") or ()))


def _nan(value: Any) -> Any:
    return math.nan if value is None else value


_FLOAT_FIELDS = {"seconds_per_sample", "share", "spread_s", "samples_per_s", "accelerator_utilization",
                 "demand_samples_per_s", "one_worker_s", "checked_au", "checked_samples_per_s", "scaling"}


def _floats(data: Mapping[str, Any]) -> dict[str, Any]:
    return {key: (_nan(value) if key in _FLOAT_FIELDS else value) for key, value in data.items()}


def _plain(value: Any) -> Any:
    """JSON-ready: NaN becomes None, tuples lists."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def cost_s(results: Sequence[RunResult]) -> tuple[float, float]:
    """(median seconds per sample, half its range) over repeated runs of one measurement; NaN
    when none of them succeeded."""
    costs = [1.0 / r.samples_per_s for r in results if r.ok and r.samples_per_s > 0]
    if not costs:
        return math.nan, math.nan
    return statistics.median(costs), (max(costs) - min(costs)) / 2


def samples_per_step(result: RunResult) -> float:
    return result.samples / result.steps if result.steps else math.nan


_METHODS = {
    "first": "prefix through {stage}, one CPU, no worker",
    "next": "prefix through {stage} less prefix through {before}, one CPU, no worker",
    "batch": "whole pipeline, one CPU, no worker, less prefix through {before}",
    "deliver": "whole pipeline through one worker less with no worker, one CPU",
    "copy": "consumer loop's mean host-to-device copy per step / samples per step (warm run)",
    "step": "consumer loop's mean workload time per step / samples per step (warm run)",
}


def stage_costs(framework: str, stages: Sequence[str], prefixes: Mapping[str, Sequence[RunResult]],
                no_worker: Sequence[RunResult], one_worker: Sequence[RunResult],
                consumer: RunResult | None) -> tuple[StageCost, ...]:
    """The stages of one framework from its runs (see the module's definitions).

    Args:
        framework: The backend.
        stages: Its sample stages, in order.
        prefixes: Stage -> the repeated runs of the prefix through it.
        no_worker: The repeated runs of the whole pipeline with no worker.
        one_worker: The repeated runs of the whole pipeline through one worker.
        consumer: The run whose per-step copy and workload times are taken (the warm run).
    """
    names = [*stages, *PIPELINE_STAGES_AFTER]
    chain = [cost_s(prefixes[s]) for s in stages] + [cost_s(no_worker), cost_s(one_worker)]
    total = chain[-1][0]
    rows = []
    previous, previous_spread = 0.0, 0.0
    for index, (name, (cost, spread)) in enumerate(zip(names, chain)):
        value = cost - previous
        if name in PIPELINE_STAGES_AFTER:
            method = _METHODS[name].format(before=stages[-1])
        else:
            method = _METHODS["first" if index == 0 else "next"].format(stage=name, before=names[index - 1])
        rows.append(StageCost(framework, name, value, value / total if total > 0 else math.nan, "pipeline", method,
                              spread + previous_spread))
        previous, previous_spread = cost, spread
    if consumer is not None and consumer.ok:
        per_step = samples_per_step(consumer)
        period = 1.0 / consumer.samples_per_s if consumer.samples_per_s > 0 else math.nan
        for name, mean in (("copy", consumer.h2d_mean_s), ("step", consumer.compute_mean_s)):
            value = mean / per_step
            rows.append(StageCost(framework, name, value, value / period, "consumer", _METHODS[name]))
    return tuple(rows)


def workers_needed(demand_samples_per_s: float, one_worker_s: float, *, target_au: float, cpus: int) -> int:
    """ceil(target x demand x one-worker cost), at least 1 (NaN inputs: 1)."""
    need = target_au * demand_samples_per_s * one_worker_s
    if math.isnan(need) or need <= 0:
        return 1
    return max(1, math.ceil(need - 1e-9))


def check_prediction(needed: WorkersNeeded, checked: RunResult | None, sweep_workers: int | str | None,
                     ) -> WorkersNeeded:
    """`needed` with the measurement at its checked count, and a sentence comparing them."""
    if checked is None or not checked.ok or needed.checked_workers is None:
        return WorkersNeeded(**{**asdict(needed), "sweep_workers": sweep_workers,
                                "explanation": "not measured" + (f": {checked.error}" if checked else "")})
    n = needed.checked_workers
    linear = n / needed.one_worker_s if needed.one_worker_s > 0 else math.nan
    # the workers' own rate shows only where they could not keep up (the consumer waited)
    fed = checked.starvation > STARVED
    scaling = checked.samples_per_s / linear if linear > 0 and fed else math.nan
    au = checked.accelerator_utilization
    at = f"at {n} worker{'s' if n != 1 else ''}"
    if n < needed.workers:
        why = (f"the prediction ({needed.workers}) exceeds the budget of {needed.cpus} CPU"
               f"{'s' if needed.cpus != 1 else ''}; {at} AU is {au:.2f}")
    elif au >= needed.target_au - 0.02:
        why = f"{at} AU is {au:.2f}: the prediction holds"
    else:
        reasons = []
        if not math.isnan(scaling) and scaling < 0.9:
            reasons.append(f"the workers gave {scaling:.0%} of {n} x one worker's rate (scaling loss: they share "
                           f"{needed.cpus} CPU{'s' if needed.cpus != 1 else ''} with the consumer and each other)")
        if not reasons:
            reasons.append("the consumer's own CPU and delivery take what the workers would need")
        why = f"{at} AU is {au:.2f}, short of {needed.target_au:.2f}: " + "; ".join(reasons)
    if sweep_workers is not None:
        why += f"; the sweep recommended {sweep_workers}"
    return WorkersNeeded(**{**asdict(needed), "checked_au": au, "checked_samples_per_s": checked.samples_per_s,
                            "scaling": scaling, "sweep_workers": sweep_workers, "explanation": why})


def ceiling_of(framework: str, name: str, result: RunResult | None, method: str, note: str = "") -> Ceiling:
    if result is None:
        return Ceiling(framework, name, math.nan, math.nan, method, ok=False, note=note or "not measured")
    if not result.ok:
        return Ceiling(framework, name, math.nan, math.nan, method, ok=False, note=result.error or "failed")
    return Ceiling(framework, name, result.samples_per_s, result.accelerator_utilization, method, note=note)


def contention_notes(role_results: Mapping[str, Sequence[RunResult]]) -> list[str]:
    """A note for each measurement whose runs shared their CPUs (contention above 0.05)."""
    notes = []
    for role, results in role_results.items():
        worst = max((r.contention for r in results if r.ok and not math.isnan(r.contention)), default=math.nan)
        if contended(worst):
            notes.append(f"{role}: other processes took {worst:.0%} of its CPUs: its figure is not reliable")
    return notes


def bottleneck_sentence(found: FrameworkExplanation) -> str:
    """The bottleneck in a sentence, from the numbers: the costliest stage's share of the
    one-worker cost, and what delivery adds (or that delivery is the costliest)."""
    pipeline = [s for s in found.stages if s.side == "pipeline" and not math.isnan(s.seconds_per_sample)]
    if not pipeline:
        return f"{found.framework}: no stage could be measured."
    total_ms = found.one_worker_s * 1e3
    top = max(pipeline, key=lambda s: s.seconds_per_sample)
    deliver = found.stage("deliver")
    source = {"torch": "the workers", "torch-threads": "the threads", "tf-service": "the service's workers",
              "ray": "the Ray tasks"}.get(found.framework, "the map's threads and prefetch buffer")
    of = f"of {found.framework}'s per-sample cost"
    if top.stage == "deliver":
        return (f"delivery from {source} is the costliest stage: {top.share:.0%} {of} "
                f"({top.seconds_per_sample * 1e3:.2f} of {total_ms:.2f} ms on one CPU).")
    text = f"{top.stage} is {top.share:.0%} {of} ({top.seconds_per_sample * 1e3:.2f} of {total_ms:.2f} ms on one CPU)"
    if deliver is not None and not math.isnan(deliver.seconds_per_sample):
        verb = "adds" if deliver.seconds_per_sample >= 0 else "saves"
        text += (f"; delivery from {source} {verb} {abs(deliver.seconds_per_sample) * 1e3:.2f} ms per sample "
                 f"({abs(deliver.share):.0%})")
    return text + "."


def feeding_sentence(found: FrameworkExplanation) -> str:
    """Whether the pipeline can feed the workload here, from the ceilings and the prediction."""
    needed = found.needed
    workload = found.ceiling("workload")
    if needed is None or workload is None or not workload.ok:
        return ""
    one = 1.0 / found.one_worker_s if found.one_worker_s > 0 else math.nan
    text = (f"The workload takes up to {workload.samples_per_s:,.0f} samples/s; one {found.framework} worker makes "
            f"{one:,.0f}: {needed.workers} worker{'s' if needed.workers != 1 else ''} would hold AU "
            f"{needed.target_au:.2f}")
    text += f" ({needed.explanation})." if needed.explanation else "."
    replay = found.ceiling("replay")
    if replay is not None and replay.ok:
        limit = replay.samples_per_s / workload.samples_per_s
        text += (f" Replayed from memory, the loop takes {replay.samples_per_s:,.0f} samples/s "
                 f"({limit:.0%} of the workload's ceiling): ")
        text += ("delivery and the loop are not the limit." if limit >= 0.95 else
                 "delivery and the loop alone hold it below the workload's ceiling.")
    cold, warm = found.ceiling("cold"), found.ceiling("warm")
    if cold is not None and warm is not None and cold.ok and warm.ok:
        stall = 1.0 / cold.samples_per_s - 1.0 / warm.samples_per_s
        text += (f" With its files' pages evicted it made {cold.samples_per_s:,.0f} samples/s against "
                 f"{warm.samples_per_s:,.0f} warm: ")
        if stall > FETCH_STALL_SEEN * (1.0 / warm.samples_per_s):
            text += f"a fetch stall of {stall * 1e3:.2f} ms per sample."
        else:
            text += f"no fetch stall beyond {FETCH_STALL_SEEN:.0%} of a sample's time (reading is not the limit here)."
    return text
