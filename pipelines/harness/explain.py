"""``feedbench explain``: the runs that attribute a pipeline's cost to its stages and measure
its ceilings, for each framework at one setting. Every run is isolated (a fresh process pinned
to its CPUs) and goes through the consumer loop; the arithmetic is in
:mod:`~feedbench.pipelines.harness.attribution`, the definitions there and in docs/explain.md.

A framework is measured through a probe: what builds its prefixes and its whole pipeline as
picklable factories. :class:`BackendProbe` does it for a registered backend; the truth tests
give probes of synthetic pipelines whose stages have known costs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from feedbench.pipelines import registry
from feedbench.pipelines.core import checks, pagecache
from feedbench.pipelines.core.checks import AUTOTUNE
from feedbench.pipelines.core.errors import ConfigError, DatasetError, OutputError
from feedbench.pipelines.harness import attribution
from feedbench.pipelines.harness.attribution import FrameworkExplanation, WorkersNeeded
from feedbench.pipelines.harness.plan import Settings
from feedbench.pipelines.harness.replay import Replayed, Resident
from feedbench.pipelines.loop.config import MeasureConfig
from feedbench.pipelines.loop.isolation import call_isolated
from feedbench.pipelines.loop.metrics import contended
from feedbench.pipelines.loop.result import RunResult

log = logging.getLogger(__name__)

NULL_WORKLOAD = "emulated:1us"  # the one-CPU runs: a consumer that takes (next to) no time
CONTENDED_TRIES = 3  # runs of a measurement at most, until one has its CPUs to itself
REPLAY_BATCHES = 8

Factory = Callable[[], Iterable[Any]]


class Probe(Protocol):
    """What explain needs of one framework's pipeline (picklable factories, built in the run)."""

    framework: str
    label: str
    stages: tuple[str, ...]
    tunes_itself: bool
    prefetch: int | str

    def prefix(self, through: str) -> Factory: ...

    def pipeline(self, workers: int | str, prefetch: int | str | None = None) -> Factory: ...

    def files(self) -> list[str]: ...


@dataclass(frozen=True)
class BackendProbe:
    """The probe of a registered backend over the settings' data and pipeline options."""

    settings: Settings
    framework: str

    @property
    def entry(self) -> registry.Backend:
        return registry.backend(self.settings.task, self.framework)

    @property
    def label(self) -> str:
        return self.entry.label

    @property
    def stages(self) -> tuple[str, ...]:
        return self.entry.stages

    @property
    def tunes_itself(self) -> bool:
        return self.entry.tunes_itself

    @property
    def prefetch(self) -> int | str:
        return self._config(0).prefetch

    def _config(self, workers: int | str, prefetch: int | str | None = None) -> Any:
        options = {**self.settings.options, "workers": workers}
        if prefetch is not None:
            options["prefetch"] = prefetch
        return self.entry.make_config(options)

    def prefix(self, through: str) -> Factory:
        config = self._config(0, 0)
        return registry.prefix_factory(self.settings.task, self.framework, self.settings.data, config, through)

    def pipeline(self, workers: int | str, prefetch: int | str | None = None) -> Factory:
        config = self._config(workers, prefetch)
        return registry.loader_factory(self.settings.task, self.framework, self.settings.data, config)

    def files(self) -> list[str]:
        return pagecache.files_under(self.settings.data)


@dataclass(frozen=True)
class ExplainPlan:
    """How explain measures; the same for every framework.

    Attributes:
        measure: The ceilings' measurement: workload, device, CPU budget (`cpus`), window,
            limits. The one-CPU runs take its window and limits with the null workload on the
            CPU.
        workers: Workers of the ceilings' runs (None: one per CPU of the budget less one, at
            least 1).
        target_au: The AU the workers are predicted for.
        repeats: Runs of each one-CPU measurement, each group of them in a fresh process (the
            median is taken over the processes).
        sweep: A sweep's results folder to read its recommendation from (None: none).
        retry_contended: Measure again a run that shared its CPUs with other processes
            (contention above 0.05), up to 3 runs in all, as compare's --retry-contended; a
            measurement left contended is named in the notes either way.
    """

    measure: MeasureConfig
    workers: int | None = None
    target_au: float = 0.9
    repeats: int = 1
    sweep: str | None = None
    retry_contended: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "measure", self.measure.with_cpus())
        if self.workers is None:
            object.__setattr__(self, "workers", max(1, self.measure.cpus - 1))
        checks.whole_number("workers", self.workers, minimum=1)
        checks.fraction("target_au", self.target_au)
        checks.whole_number("repeats", self.repeats, minimum=1, maximum=9)

    @property
    def one_cpu(self) -> MeasureConfig:
        return dataclasses.replace(self.measure, workload=NULL_WORKLOAD, device="cpu", cpus=1)


OnRun = Callable[[str, str], None]
OnResult = Callable[[str, str, RunResult], None]


def _nothing(*_: Any) -> None:
    return None


@dataclass(frozen=True)
class _Planned:
    """One run of a shared process: its role, loader factory and recorded settings; and what
    to do to the dataset's files before it ("evict" their pages, or "read" them in)."""

    role: str
    factory: Factory
    config: Mapping[str, Any]
    files: str | None = None


@dataclass(frozen=True)
class _SharedRuns:
    """In one isolated process (pinned by call_isolated): runs one after another, each run again
    while it shared its CPUs (up to `tries`), with `repeats` of each. One process for a group of
    runs, not one each: a process start (torch or TensorFlow imported) costs more than a short
    window, and explain takes no memory figure from its runs. Each loader is let go, its
    workers with it, before the next run starts.

    Each run is also written to `journal` (JSON lines) as it starts and as it ends, so that the
    runs measured before the process crashed, hung or was killed are kept (:func:`_journaled`)."""

    runs: tuple[_Planned, ...]
    measure: MeasureConfig
    paths: tuple[str, ...] = ()
    repeats: int = 1
    tries: int = 1
    then: _Predicted | None = None
    autotune: _AutotuneRead | None = None
    journal: str | None = None

    def __call__(self) -> dict[str, Any]:
        """{"runs": [(role, RunResult dict), ...], "autotune": (choices, reason) or None}."""
        done: list[tuple[str, dict[str, Any]]] = []
        for run in self.runs:
            self._measure(run, done)
        if self.then is not None:
            predicted = self.then.run(done)
            if predicted is not None:
                self._measure(predicted, done)
        autotune = None
        if self.autotune is not None:
            from feedbench.pipelines.core.errors import FeedbenchError

            try:
                autotune = self.autotune()
            except FeedbenchError as exc:
                autotune = ([], f"not read: {exc}")
        return {"runs": done, "autotune": autotune}

    def _measure(self, run: _Planned, done: list[tuple[str, dict[str, Any]]]) -> None:
        """Runs `run` (`repeats` times, again while contended up to `tries`), each into `done`."""
        import gc

        from feedbench.pipelines.core.errors import described
        from feedbench.pipelines.loop.measure import measure_with

        recorded = {**run.config, "role": run.role, "isolated": True, "process": "shared by its group"}
        calm = attempts = 0
        while calm < self.repeats and attempts < self.repeats + self.tries - 1:
            if run.files == "evict":
                pagecache.evict(self.paths)
                recorded["pages_cached_before"] = pagecache.resident_fraction(self.paths)
            elif run.files == "read":
                pagecache.read_in(self.paths)
            self._write({"role": run.role, "started": True})
            try:
                result = measure_with(run.factory(), self.measure, recorded)
            except Exception as exc:  # a failed run is a figure too: it says why
                log.debug("a run of a shared process failed", exc_info=True)
                result = RunResult.failed(described(exc), config=recorded)
            gc.collect()
            done.append((run.role, result.to_dict()))
            self._write({"role": run.role, "result": done[-1][1]})
            attempts += 1
            calm += not (result.ok and contended(result.contention))

    def _write(self, entry: dict[str, Any]) -> None:
        if self.journal is not None:
            with open(self.journal, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")


def _journaled(journal: str, error: str) -> list[tuple[str, dict[str, Any]]]:
    """The runs a shared process wrote to its journal before it failed with `error`, and the run
    it was in, failed with `error` (a line it was writing when killed is not a run)."""
    runs: list[tuple[str, dict[str, Any]]] = []
    running = None
    try:
        lines = Path(journal).read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "result" in entry:
            runs.append((entry["role"], entry["result"]))
            running = None
        else:
            running = entry["role"]
    if running is not None:
        runs.append((running, RunResult.failed(f"the runs' process failed during this run: {error}").to_dict()))
    return runs


@dataclass(frozen=True)
class _Predicted:
    """In the ceilings' process, after the workload ceiling: the run at the workers predicted for
    the target AU (at most the CPU budget), unless that is the count already measured."""

    one_worker_s: float
    target_au: float
    cpus: int
    measured: int
    pipelines: tuple[Factory, ...]  # the pipeline at 1, 2, ... cpus workers

    def run(self, done: Sequence[tuple[str, Mapping[str, Any]]]) -> _Planned | None:
        workload = next((RunResult.from_dict(r) for role, r in reversed(done) if role == "workload"), None)
        if workload is None or not workload.ok or math.isnan(self.one_worker_s):
            return None
        count = attribution.workers_needed(workload.samples_per_s, self.one_worker_s, target_au=self.target_au,
                                           cpus=self.cpus)
        checked = min(count, self.cpus)
        if checked == self.measured:
            return None
        return _Planned("predicted", self.pipelines[checked - 1], {"workers": checked, "predicted": count})


def _calmness(result: RunResult) -> tuple[bool, float]:
    return (not result.ok, result.contention if not math.isnan(result.contention) else 1.0)


@dataclass
class _Runs:
    """The runs of one framework, by role, each reported through `on_result` as it comes."""

    framework: str
    on_run: OnRun
    on_result: OnResult
    tries: int = 1
    by_role: dict[str, list[RunResult]] = field(default_factory=dict)

    def shared(self, group: str, planned: Sequence[_Planned], measure: MeasureConfig, *, repeats: int = 1,
               paths: Sequence[str] = (), then: _Predicted | None = None,
               autotune: _AutotuneRead | None = None) -> tuple[dict[str, list[RunResult]], Any]:
        """Runs `planned` (then the predicted count, then the AUTOTUNE reading, where given) in
        one isolated process pinned to ``measure.cpus``; keeps, for each role, `repeats` runs
        (those that had their CPUs to themselves where there are enough). Returns the runs by
        role and the AUTOTUNE reading (None where not asked for). When the process fails, the
        runs it finished are kept, and the others fail with its reason."""
        self.on_run(self.framework, group)
        count = len(planned) + (then is not None) + (autotune is not None)
        limit = measure.limit_s * count * (repeats + self.tries - 1)
        handle, journal = tempfile.mkstemp(prefix="feedbench-explain-", suffix=".jsonl")
        os.close(handle)
        try:
            value, error = call_isolated(_SharedRuns(tuple(planned), measure, tuple(paths), repeats, self.tries, then,
                                                     autotune, journal), cpus=measure.cpus, limit_s=limit)
            done = value["runs"] if error is None else _journaled(journal, error)
        finally:
            Path(journal).unlink(missing_ok=True)
        by_role: dict[str, list[RunResult]] = {run.role: [] for run in planned}
        for role, data in done:
            by_role.setdefault(role, [])
            result = RunResult.from_dict(data)
            self.on_result(self.framework, role, result)
            by_role[role].append(result)
        for role, results in by_role.items():
            if not results:  # the process failed before this run: it says why
                results.append(RunResult.failed(f"the runs' process failed before this run: {error}"))
                self.on_result(self.framework, role, results[0])
            calm = [r for r in results if r.ok and not contended(r.contention)]
            self.by_role[role] = calm[:repeats] if len(calm) >= repeats else sorted(results, key=_calmness)[:repeats]
        if autotune is None:
            return self.by_role, None
        autotune_read = value["autotune"] if error is None else ([], f"not read: {error}")
        return self.by_role, autotune_read


def explain_framework(probe: Probe, plan: ExplainPlan, *, on_run: OnRun = _nothing,
                      on_result: OnResult = _nothing) -> FrameworkExplanation:
    """Measures one framework: its stages on one CPU, its ceilings and the workers it needs."""
    runs = _Runs(probe.framework, on_run, on_result, CONTENDED_TRIES if plan.retry_contended else 1)
    prefixes, no_worker, one_worker = _stage_runs(probe, plan, runs)
    pipeline_stages = attribution.stage_costs(probe.framework, probe.stages, prefixes, no_worker, one_worker, None)
    one_worker_s = sum(s.seconds_per_sample for s in pipeline_stages)
    ceilings, warm, notes, read = _ceilings(probe, plan, runs, one_worker_s)
    stages = attribution.stage_costs(probe.framework, probe.stages, prefixes, no_worker, one_worker, warm)
    found = FrameworkExplanation(probe.framework, probe.label, attribution.samples_per_step(warm) if warm else math.nan,
                                 stages, ceilings, None)
    needed = _workers_needed(plan, found, runs)
    autotune, autotune_note = ((), None) if read is None else (tuple(read[0]), read[1])
    notes += attribution.contention_notes(runs.by_role)
    notes += _failures(runs.by_role)
    return dataclasses.replace(found, needed=needed, autotune=autotune, autotune_note=autotune_note,
                               notes=tuple(notes))


def pipeline_stages(probe: Probe, plan: ExplainPlan, *, on_run: OnRun = _nothing,
                    on_result: OnResult = _nothing) -> tuple[attribution.StageCost, ...]:
    """The stages of `probe`'s pipeline alone (the sample stages, batch and deliver), measured on
    one CPU as :func:`explain_framework` measures them, without the ceilings; their sum is the
    one-worker cost."""
    runs = _Runs(probe.framework, on_run, on_result, CONTENDED_TRIES if plan.retry_contended else 1)
    prefixes, no_worker, one_worker = _stage_runs(probe, plan, runs)
    return attribution.stage_costs(probe.framework, probe.stages, prefixes, no_worker, one_worker, None)


def _stage_runs(probe: Probe, plan: ExplainPlan, runs: _Runs,
                ) -> tuple[dict[str, list[RunResult]], list[RunResult], list[RunResult]]:
    """The one-CPU runs: each prefix, the whole pipeline with no worker and through one worker,
    one after another in one process; the group again in a fresh process for each of
    `plan.repeats`. Repeats in one process are not independent: a process runs its windows
    about 10% faster or slower than the next one does (its memory's layout, the machine's
    moment), so the medians are taken over processes, as over `feedbench run`'s. Returns
    (prefixes by stage, no worker, one worker), `plan.repeats` runs each."""
    planned = [_Planned(f"prefix {stage}", probe.prefix(stage), {"workers": 0, "through": stage})
               for stage in probe.stages]
    planned += [_Planned("no worker", probe.pipeline(0, 0), {"workers": 0, "prefetch": 0}),
                _Planned("one worker", probe.pipeline(1), {"workers": 1})]
    staged: dict[str, list[RunResult]] = {run.role: [] for run in planned}
    for repeat in range(plan.repeats):
        group = "the stages on one CPU" + (f" ({repeat + 1} of {plan.repeats})" if plan.repeats > 1 else "")
        found, _ = runs.shared(group, planned, plan.one_cpu)
        for role in staged:
            staged[role] += found[role]
    runs.by_role.update(staged)
    return {stage: staged[f"prefix {stage}"] for stage in probe.stages}, staged["no worker"], staged["one worker"]


def _ceilings(probe: Probe, plan: ExplainPlan, runs: _Runs, one_worker_s: float,
              ) -> tuple[tuple[attribution.Ceiling, ...], RunResult | None, list[str], Any]:
    """The four ceilings (cold, warm, workload, replay), the run at the predicted count and the
    AUTOTUNE reading (for a backend that tunes itself), in one process on the run's CPUs; and the
    warm run. The pipeline's own runs come first, so that torch's fork server is started with the
    pipeline's modules (a shared process keeps the first)."""
    measure, n = plan.measure, plan.workers
    made = probe.pipeline(0, 0)
    prefetch = probe.prefetch if isinstance(probe.prefetch, int) else 2
    files = probe.files()
    planned = []
    if files:
        planned.append(_Planned("cold", probe.pipeline(n), {"workers": n, "pages": "evicted"}, files="evict"))
    planned += [_Planned("warm", probe.pipeline(n), {"workers": n, "pages": "cached"}, files="read" if files else None),
                _Planned("workload", Resident(made, measure.device), {"workers": 0}),
                _Planned("replay", Replayed(made, n, prefetch, REPLAY_BATCHES), {"workers": n})]
    then = _Predicted(one_worker_s, plan.target_au, measure.cpus, n,
                      tuple(probe.pipeline(count) for count in range(1, measure.cpus + 1)))
    autotune = (_AutotuneRead(probe.pipeline(AUTOTUNE, AUTOTUNE), measure.steps or 30)
                if probe.tunes_itself else None)
    found, read = runs.shared(f"the ceilings on {measure.cpus} CPU(s)", planned, measure, paths=files, then=then,
                              autotune=autotune)
    workload, replay, warm = found["workload"][0], found["replay"][0], found["warm"][0]
    cold, notes, cold_note = (found["cold"][0] if files else None), [], "no files to evict"
    if cold is not None:
        left = cold.config.get("pages_cached_before", math.nan)
        cold_note = f"{left:.0%} of the files' pages were cached when it started"
        if not left <= 0.05:
            notes.append(f"cold: {cold_note} (a file system that keeps them, or another process mapping them)")
    device = warm.device or workload.device or measure.device  # "auto" as it resolved
    method = f"through the consumer loop with {measure.workload_name} on {device}, {measure.cpus} CPU(s)"
    ceilings = (
        attribution.ceiling_of(probe.framework, "workload", workload, f"one batch resident on the device, {method}"),
        attribution.ceiling_of(probe.framework, "replay", replay,
                               f"{REPLAY_BATCHES} batches replayed from memory at {n} worker(s), {method}"),
        attribution.ceiling_of(probe.framework, "warm", warm, f"the pipeline at {n} worker(s), files cached, {method}"),
        attribution.ceiling_of(probe.framework, "cold", cold,
                               f"the pipeline at {n} worker(s), files' pages evicted first, {method}", cold_note),
    )
    return ceilings, (warm if warm.ok else None), notes, read


def _workers_needed(plan: ExplainPlan, found: FrameworkExplanation, runs: _Runs) -> WorkersNeeded | None:
    """The prediction from the workload ceiling and the one-worker cost, with the run at that
    count (made in the ceilings' process; the warm run where the count is the ceilings' own)."""
    workload = found.ceiling("workload")
    if workload is None or not workload.ok or math.isnan(found.one_worker_s):
        return None
    cpus = plan.measure.cpus
    count = attribution.workers_needed(workload.samples_per_s, found.one_worker_s, target_au=plan.target_au, cpus=cpus)
    checked_workers = min(count, cpus)
    needed = WorkersNeeded(plan.target_au, workload.samples_per_s, found.one_worker_s, count, cpus, checked_workers)
    role = "warm" if checked_workers == plan.workers else "predicted"
    checked = (runs.by_role.get(role) or [None])[-1]
    return attribution.check_prediction(needed, checked, sweep_workers(plan.sweep, framework=found.framework))


def sweep_workers(folder: str | None, framework: str) -> int | str | None:
    """The workers a sweep recommended for `framework` in `folder` (its recommendation file), or None."""
    if folder is None:
        return None
    path = Path(folder) / f"recommendation-{framework}.json"
    try:
        return json.loads(path.read_text())["recommendation"]["workers"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{path}: not a sweep's recommendation ({exc})") from None


@dataclass(frozen=True)
class _AutotuneRead:
    """In the isolated process: what AUTOTUNE chose while iterating the pipeline."""

    factory: Factory
    batches: int

    def __call__(self) -> tuple[list[dict[str, Any]], str | None]:
        from feedbench.pipelines.harness.autotune import autotune_choices

        choices, reason = autotune_choices(self.factory(), batches=self.batches)
        return [choice.to_dict() for choice in choices], reason


def _failures(by_role: Mapping[str, Sequence[RunResult]]) -> list[str]:
    return [f"{role}: failed: {r.error}" for role, results in by_role.items() for r in results if not r.ok]


def explain_probes(probes: Sequence[Probe], plan: ExplainPlan, *, on_run: OnRun = _nothing,
            on_result: OnResult = _nothing, on_framework: Callable[[FrameworkExplanation], None] = _nothing,
            ) -> list[FrameworkExplanation]:
    """Explains each framework in turn (one after another: no run shares its CPUs with another)."""
    if not probes:
        raise ConfigError("explain needs at least one framework")
    found = []
    for probe in probes:
        one = explain_framework(probe, plan, on_run=on_run, on_result=on_result)
        on_framework(one)
        found.append(one)
    return found


def backend_probes(settings: Settings, frameworks: Sequence[str]) -> list[BackendProbe]:
    """The probes of `frameworks` over `settings` (ConfigError for an unknown one)."""
    settings.check_frameworks(frameworks)
    return [BackendProbe(settings, framework) for framework in frameworks]



def explain_into(out: str | os.PathLike[str], settings: Settings, frameworks: Sequence[str], plan: ExplainPlan, *,
                 command: str, on_run: OnRun = _nothing, on_result: OnResult = _nothing,
                 on_framework: Callable[[FrameworkExplanation], None] = _nothing) -> list[FrameworkExplanation]:
    """Explains `frameworks` over `settings` and writes the files of
    :mod:`~feedbench.pipelines.harness.report.explain` into `out` (made if missing). stages.json
    is written again after every run ("complete": false until the end), so that what was
    measured is kept if a later run, a file or the user stops the rest."""
    from feedbench.pipelines.core.files import check_writable
    from feedbench.pipelines.core.machine import machine_facts
    from feedbench.pipelines.harness.report import explain as files

    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {folder}: is a file; give a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(exc.errno, exc.strerror or str(exc), str(folder)) from None
    check_writable(folder, "--out")
    probes = backend_probes(settings, frameworks)
    header = {"command": command, "settings": {**settings.to_dict(), "frameworks": list(frameworks)},
              "plan": {"workers": plan.workers, "cpus": plan.measure.cpus, "target_au": plan.target_au,
                       "repeats": plan.repeats, "sweep": plan.sweep, "null_workload": NULL_WORKLOAD,
                       "replay_batches": REPLAY_BATCHES},
              "machine": machine_facts()}
    runs: list[dict[str, Any]] = []
    done: list[FrameworkExplanation] = []

    def saved(framework: str, role: str, result: RunResult) -> None:
        runs.append({"framework": framework, "role": role, **result.to_dict()})
        files.write_record(folder, files.record(header, done, runs, complete=False))
        on_result(framework, role, result)

    def finished(one: FrameworkExplanation) -> None:
        done.append(one)
        on_framework(one)

    explain_probes(probes, plan, on_run=on_run, on_result=saved, on_framework=finished)
    files.write_all(folder, header, done, runs, command)
    return done


def explain(task: str, data: str | os.PathLike[str], out: str | os.PathLike[str], *,
            frameworks: Sequence[str] | None = None, measure: MeasureConfig | None = None,
            options: Mapping[str, Any] | None = None, workers: int | None = None, target_au: float = 0.9,
            repeats: int = 1, sweep: str | os.PathLike[str] | None = None,
            retry_contended: bool = False) -> list[FrameworkExplanation]:
    """``feedbench explain`` in Python: attributes each framework's per-sample cost to its stages,
    measures the ceilings and the workers needed, and writes stages.json, stages.parquet,
    stages.png, ceilings.png and explain.md into `out`.

    Args:
        task: "image" or "text".
        data: The dataset (as for ``feedbench run --data``).
        out: Folder for the files (made if missing).
        frameworks: Backends to explain (default: torch and tf, registry.defaults; a contender such
            as torch-threads when named).
        measure: The ceilings' measurement: workload, device, CPU budget, window (default
            MeasureConfig(): emulated:20ms, every usable CPU, 50 steps). The one-CPU stage
            runs take its window with a workload that takes no time.
        options: Pipeline options other than workers (batch_size, image_size, tokenizer, ...).
        workers: Workers of the ceilings' runs (default: one per CPU less one, at least 1).
        target_au: The AU the workers are predicted for.
        repeats: Runs of each one-CPU measurement, each in its own process (the median is taken).
        sweep: A sweep's results folder whose recommendation is shown beside the prediction.
        retry_contended: Measure again a run that shared its CPUs (up to 3 runs in all).

    Returns:
        One FrameworkExplanation per framework (``bottleneck_sentence`` and the files say it in words).
    """
    settings = Settings(task=task, data=str(data), measure=measure or MeasureConfig(), options=dict(options or {}))
    chosen = list(frameworks) if frameworks else registry.defaults(task)
    plan = ExplainPlan(settings.measure, workers=workers, target_au=target_au, repeats=repeats,
                       sweep=None if sweep is None else str(sweep), retry_contended=retry_contended)
    return explain_into(out, settings, chosen, plan, command=command_line(settings, chosen, out))


def command_line(settings: Settings, frameworks: Sequence[str], out: str | os.PathLike[str]) -> str:
    """The ``feedbench explain`` command that measures `settings` into `out` (for the record)."""
    import shlex

    m = settings.measure
    words = ["feedbench", "explain", "--task", settings.task, "--data", settings.data, "--frameworks",
             ",".join(frameworks), "--workload", m.workload_name, "--device", m.device, "--cpus", str(m.cpus)]
    words += ["--steps", str(m.steps)] if m.steps is not None else []
    words += ["--seconds", f"{m.seconds:g}"] if m.seconds is not None else []
    words += ["--warmup", str(m.warmup)]
    for name, value in sorted(settings.options.items()):
        text = value if isinstance(value, str) else json.dumps(value)
        flag = {"batch_size": "--batch-size", "tokenizer": "--tokenizer"}.get(name)  # cli.options.FLAGS
        words += [flag, text] if flag else ["--option", f"{name}={text}"]
    return " ".join(shlex.quote(word) for word in [*words, "--out", str(out)])
