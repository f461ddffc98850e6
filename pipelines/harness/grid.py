"""A grid of measured runs: cells (framework x workers) at one setting, each in a fresh
subprocess at the same CPU budget, results kept row by row so that nothing is lost.

:class:`Settings` is what every cell of a grid shares (task, data, workload, device, CPU
budget, window, pipeline options); a :class:`Cell` adds the framework and the worker count.
:func:`run_cell` measures one cell through :func:`~feedbench.pipelines.loop.isolation.run_isolated`
and returns its row: every RunResult field, the cell, the settings and the machine's facts. :func:`run_grid` and :class:`Measurer` run the
cells a :class:`~feedbench.pipelines.harness.store.ResultStore` lacks and save each row as it comes.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from feedbench.pipelines import registry
from feedbench.pipelines.core.machine import machine_facts
from feedbench.pipelines.core.errors import ConfigError, DatasetError
from feedbench.pipelines.loop.isolation import RunSpec, available_cpus, run_isolated
from feedbench.pipelines.loop.result import RunResult
from feedbench.pipelines.workloads.base import MODEL_WORKLOADS, parse_workload

if TYPE_CHECKING:
    from feedbench.pipelines.harness.store import ResultStore

log = logging.getLogger(__name__)

DEFAULT_STEPS = 50
AUTOTUNE = "autotune"
# Framework-free checks that a task's source is there and readable, run before any cell starts.
SOURCE_CHECKS = {"image": "feedbench.vision._common:resolve_source", "text": "feedbench.text._records:resolve"}


@dataclass(frozen=True)
class Settings:
    """What every cell of a grid shares; one folder of results holds one Settings.

    Attributes:
        task: "image" or "text" (any task in the registry).
        data: The dataset's path (made absolute).
        workload: What the consumer runs per step (``emulated:20ms``, ``resnet50``, ...).
        device: "auto", "cpu", "cuda" or "cuda:N".
        cpus: CPUs every run is pinned to, the same for every cell (None: all this process may use).
        steps: Measured steps per run (default 50 when `seconds` is not given either).
        seconds: Measured seconds per run.
        warmup: Loader steps before the window, or "auto": what the workers can make ahead
            (2 x workers x prefetch) plus 4, so that a prefetch buffer cannot pass for throughput.
        limit_s: Seconds one run may take, start-up included, before it is killed.
        options: The pipeline's options other than `workers` (batch_size, tokenizer, ...).
    """

    task: str
    data: str
    workload: str = "emulated:20ms"
    device: str = "auto"
    cpus: int | None = None
    steps: int | None = None
    seconds: float | None = None
    warmup: int | str = "auto"
    limit_s: float = 600.0
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in registry.tasks():
            raise ConfigError(f"unknown task {self.task!r}; choose {', '.join(registry.tasks())}")
        object.__setattr__(self, "data", str(Path(self.data).expanduser().resolve()))
        object.__setattr__(self, "workload", _check_workload(self.workload))
        object.__setattr__(self, "device", _check_device(self.device))
        object.__setattr__(self, "cpus", _check_cpus(self.cpus))
        object.__setattr__(self, "options", dict(self.options))
        if "workers" in self.options:
            raise ConfigError("workers is set per cell (--workers), not as a pipeline option")
        _check_window(self.steps, self.seconds, self.warmup, self.limit_s)
        if self.steps is None and self.seconds is None:
            object.__setattr__(self, "steps", DEFAULT_STEPS)
        _check_source(self.task, Path(self.data))

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready data (the identity of a results folder)."""
        data = dataclasses.asdict(self)
        return json.loads(json.dumps(data, sort_keys=True, default=str))

    def check_frameworks(self, frameworks: Iterable[str]) -> None:
        """Raises ConfigError when a framework, or an option for it, is unknown."""
        for framework in frameworks:
            registry.make_config(self.task, framework, {**self.options, "workers": 0})


def _check_workload(workload: str) -> str:
    name = str(workload).strip().lower()
    if name in MODEL_WORKLOADS:
        return name  # built in the run (it imports torch and torchvision): the name is enough here
    return parse_workload(name).describe()


def _check_device(device: str) -> str:
    name = str(device).strip().lower()
    if name in ("auto", "cpu"):
        return name
    if name.startswith("cuda"):
        from feedbench.pipelines.loop.measure import resolve_device  # imports torch: only for a CUDA request

        resolve_device(name)
        return name
    raise ConfigError(f"device {device!r}: choose auto, cpu, cuda or cuda:N")


def _check_cpus(cpus: int | None) -> int:
    have = len(available_cpus())
    if cpus is None:
        return have
    if isinstance(cpus, bool) or not isinstance(cpus, int) or not 1 <= cpus <= have:
        raise ConfigError(f"cpus must be 1..{have} (the CPUs this process may use), got {cpus!r}")
    return cpus


def _check_window(steps: int | None, seconds: float | None, warmup: int | str, limit_s: float) -> None:
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ConfigError(f"steps must be a whole number >= 1, got {steps!r}")
    if seconds is not None and not seconds > 0:
        raise ConfigError(f"seconds must be positive, got {seconds!r}")
    if warmup != "auto" and (isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 1):
        raise ConfigError(f"warmup must be a whole number >= 1 or 'auto', got {warmup!r}")
    if not limit_s > 0:
        raise ConfigError(f"the time limit of a run must be positive seconds, got {limit_s!r}")


def _check_source(task: str, path: Path) -> None:
    if not path.exists():
        raise DatasetError(f"{path}: no such dataset (file or folder)")
    check = SOURCE_CHECKS.get(task)
    if check is not None:
        module, name = check.split(":")
        getattr(importlib.import_module(module), name)(path)


@dataclass(frozen=True)
class Cell:
    """One run of a grid: a framework at a worker count (an integer >= 0, or "autotune")."""

    framework: str
    workers: int | str

    def __post_init__(self) -> None:
        if self.workers != AUTOTUNE and (isinstance(self.workers, bool) or not isinstance(self.workers, int)
                                         or self.workers < 0):
            raise ConfigError(f"workers must be an integer >= 0 or 'autotune', got {self.workers!r}")

    @property
    def label(self) -> str:
        return f"{self.framework} workers={self.workers}"

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Cell:
        return cls(row["framework"], row["workers"])


def cells(frameworks: Sequence[str], workers: Sequence[int | str]) -> list[Cell]:
    """The grid's cells, worker count by worker count (so a partial grid still compares)."""
    return [Cell(framework, count) for count in workers for framework in frameworks]


def auto_warmup(workers: int | str, prefetch: Any, cpus: int) -> int:
    """Warm-up steps that drain what the loader made ahead: 2 x workers x depth + 4.

    The depth is the batches each worker makes ahead: `prefetch`, at least 1 (torch keeps one
    batch in flight per worker even at prefetch 0), and 2 for "autotune" or no whole number.
    """
    count = cpus if workers == AUTOTUNE else workers
    depth = max(1, prefetch) if isinstance(prefetch, int) and not isinstance(prefetch, bool) else 2
    return 2 * count * depth + 4


def cell_spec(settings: Settings, cell: Cell) -> RunSpec:
    """The isolated run of one cell."""
    config = registry.make_config(settings.task, cell.framework, {**settings.options, "workers": cell.workers})
    warmup = settings.warmup
    if warmup == "auto":
        warmup = auto_warmup(cell.workers, getattr(config, "prefetch", 2), settings.cpus)
    recorded = {"task": settings.task, "framework": cell.framework, "data": settings.data,
                **{name: getattr(config, name) for name in config.__dataclass_fields__}}
    return RunSpec(
        registry.loader_factory(settings.task, cell.framework, settings.data, config),
        workload=settings.workload, device=settings.device, steps=settings.steps, seconds=settings.seconds,
        warmup=warmup, cpus=settings.cpus, limit_s=settings.limit_s, config=recorded,
    )


def run_cell(settings: Settings, cell: Cell, *, command: str) -> dict[str, Any]:
    """Measures one cell in a fresh subprocess; returns its row (a failed run included).

    On KeyboardInterrupt the run in flight and its workers are ended before it propagates.
    """
    spec = cell_spec(settings, cell)
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    started = time.perf_counter()
    try:
        result = run_isolated(spec)
    except KeyboardInterrupt:
        end_runs()
        raise
    return make_row(settings, cell, result, command=command, started_at=started_at,
                    wall_s=time.perf_counter() - started)


def make_row(settings: Settings, cell: Cell, result: RunResult, *, command: str, started_at: str,
             wall_s: float) -> dict[str, Any]:
    """A results row: the cell, every RunResult field, the settings and the machine's facts."""
    row = {"task": settings.task, "framework": cell.framework, "workers": cell.workers, "command": command,
           "started_at": started_at, "wall_s": wall_s}
    row.update(result.to_dict())
    row["settings"] = settings.to_dict()
    row.update(machine_facts())
    row["data_fingerprint"] = data_fingerprint(settings.data)
    return json.loads(json.dumps(row, default=str))


def end_runs() -> None:
    """Kills the isolated runs this process started, with their workers (an interrupt came)."""
    for child in multiprocessing.active_children():
        try:
            tree = [*psutil.Process(child.pid).children(recursive=True), psutil.Process(child.pid)]
        except psutil.NoSuchProcess:
            tree = []
        for process in tree:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                continue
        psutil.wait_procs(tree, timeout=10)
        child.join(10)


def data_fingerprint(data: str | os.PathLike[str]) -> str:
    """The dataset's identity, cheaply: its manifest's size and mtime where it has one, else
    the file's size and mtime, else the folder's file count, total size and latest mtime."""
    path = Path(data)
    manifest = path / "manifest.json"
    target = manifest if manifest.is_file() else path
    try:
        if target.is_file():
            stat = target.stat()
            return f"{target.name}: {stat.st_size} bytes, mtime {stat.st_mtime_ns}"
        count = size = latest = 0
        for folder, _, names in os.walk(target):
            for name in names:
                stat = Path(folder, name).stat()
                count, size, latest = count + 1, size + stat.st_size, max(latest, stat.st_mtime_ns)
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    return f"{count} files, {size} bytes, latest mtime {latest}"


OnStart = Callable[[Cell, int, "int | None"], None]
OnDone = Callable[[Cell, dict], None]


def _nothing(*_: Any) -> None:
    return None


def run_grid(settings: Settings, grid: Sequence[Cell], store: ResultStore, *, command: str,
             on_start: OnStart = _nothing, on_done: OnDone = _nothing) -> tuple[int, int]:
    """Measures the cells of `grid` that `store` has not measured, one after another, each row saved as
    it comes (a failed cell too, with its reason). Returns (cells run, cells already there).

    `on_start(cell, index, total)` and `on_done(cell, row)` report progress.
    """
    todo = [cell for cell in grid if store.measured(cell) is None]
    for index, cell in enumerate(todo, 1):
        on_start(cell, index, len(todo))
        row = run_cell(settings, cell, command=command)
        store.add(row)
        on_done(cell, row)
    return len(todo), len(grid) - len(todo)


class Measurer:
    """``measure(workers) -> RunResult`` of one framework over a store, for the sweep: a cell
    the store holds is read back, not run again; a new one is run and saved at once.

    Attributes:
        ran: Cells measured by this object.
        reused: Cells read back from the store.
    """

    def __init__(self, settings: Settings, framework: str, store: ResultStore, *, command: str = "sweep",
                 on_start: OnStart = _nothing, on_done: OnDone = _nothing) -> None:
        self.settings, self.framework, self.store, self.command = settings, framework, store, command
        self.on_start, self.on_done = on_start, on_done
        self.ran = 0
        self.reused = 0

    def __call__(self, workers: int | str) -> RunResult:
        cell = Cell(self.framework, workers)
        row = self.store.measured(cell)
        if row is None:
            self.on_start(cell, self.ran + 1, None)
            row = run_cell(self.settings, cell, command=self.command)
            self.store.add(row)
            self.ran += 1
            self.on_done(cell, row)
        else:
            self.reused += 1
        return RunResult.from_dict(row)
