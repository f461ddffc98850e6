"""The plan of a grid: :class:`Settings` (what every cell shares), :class:`Cell` (a framework
at a worker count) and the isolated run of each cell (:func:`cell_spec`)."""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from feedbench.pipelines import registry
from feedbench.pipelines.core.errors import ConfigError, DatasetError
from feedbench.pipelines.loop.isolation import RunSpec, available_cpus
from feedbench.pipelines.workloads import MODEL_WORKLOADS, parse_workload

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
        from feedbench.pipelines.loop.measure import (
            resolve_device,  # imports torch: only for a CUDA request
        )

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
