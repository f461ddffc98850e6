"""The plan of a grid: :class:`Settings` (what every cell shares), :class:`Cell` (a framework
at a worker count) and the isolated run of each cell (:func:`cell_spec`)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from feedbench.pipelines import registry
from feedbench.pipelines.core import checks
from feedbench.pipelines.core.errors import ConfigError, DatasetError
from feedbench.pipelines.core.remote import check_addresses
from feedbench.pipelines.core.stats import batches_ahead
from feedbench.pipelines.loop.config import MeasureConfig
from feedbench.pipelines.loop.config import auto_warmup as measure_auto_warmup
from feedbench.pipelines.loop.isolation import RunSpec


@dataclass(frozen=True)
class Settings:
    """What every cell of a grid shares; one folder of results holds one Settings.

    Attributes:
        task: "image" or "text" (any task in the registry).
        data: The dataset's path (made absolute).
        measure: How every run is measured. Its workload must be a name (the identity of a
            results folder), and its `cpus` is made a number: every cell is pinned to the same
            CPUs (None: all this process may use).
        options: The pipeline's options other than `workers` (batch_size, tokenizer, ...).
    """

    task: str
    data: str
    measure: MeasureConfig = MeasureConfig()
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in registry.tasks():
            raise ConfigError(f"unknown task {self.task!r}; choose {', '.join(registry.tasks())}")
        if not isinstance(self.measure, MeasureConfig):
            raise ConfigError(f"Settings.measure must be a MeasureConfig, got {type(self.measure).__name__}")
        if not isinstance(self.measure.workload, str):
            raise ConfigError("a grid's workload must be a name (emulated:<time>, resnet50, ...), "
                              "not a Workload object")
        object.__setattr__(self, "data", str(Path(self.data).expanduser().resolve()))
        object.__setattr__(self, "measure", self.measure.with_cpus())
        object.__setattr__(self, "options", dict(self.options))
        if "workers" in self.options:
            raise ConfigError("workers is set per cell (--workers), not as a pipeline option")
        _check_source(self.task, Path(self.data))

    @property
    def cpus(self) -> int:
        """CPUs every run of the grid is pinned to."""
        return self.measure.cpus

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready data (the identity of a results folder): the task, the
        data, the pipeline options and every measurement setting, flat."""
        data = {"task": self.task, "data": self.data, "options": self.options, **self.measure.to_dict()}
        return json.loads(json.dumps(data, sort_keys=True, default=str))

    def check_frameworks(self, frameworks: Iterable[str]) -> None:
        """Raises ConfigError when a framework, or an option for it, is unknown, or this machine
        cannot run the framework (torch-gpu without a GPU)."""
        frameworks = list(frameworks)
        for framework in frameworks:
            registry.make_config(self.task, framework, {**self.options, "workers": 0})
            registry.check_machine(self.task, framework)
        # An existing service that does not answer is one line now, not a failed row per cell.
        check_addresses({name: value for name, value in self.options.items()
                         if set(registry.takers(self.task, name)) & set(frameworks)})


def _check_source(task: str, path: Path) -> None:
    """The data is there, and every backend of the task can read it (the registry's framework-free checks)."""
    if not path.exists():
        raise DatasetError(f"{path}: no such dataset (file or folder)")
    registry.check_source(task, path)


@dataclass(frozen=True)
class Cell:
    """One run of a grid: a framework at a worker count (an integer >= 0, or "autotune")."""

    framework: str
    workers: int | str

    def __post_init__(self) -> None:
        checks.count_or_autotune("workers", self.workers)

    @property
    def label(self) -> str:
        return f"{self.framework} workers={self.workers}"

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Cell:
        return cls(row["framework"], row["workers"])


def cells(frameworks: Sequence[str], workers: Sequence[int | str]) -> list[Cell]:
    """The grid's cells, worker count by worker count (so a partial grid still compares)."""
    return [Cell(framework, count) for count in workers for framework in frameworks]


def auto_warmup(workers: int | str, prefetch: Any) -> int:
    """The "auto" warm-up of a cell of `workers` and `prefetch`: what its loader will report
    it makes ahead (core.stats.batches_ahead), drained twice, plus 4 (MeasureConfig)."""
    return measure_auto_warmup(batches_ahead(workers, prefetch))


def cell_spec(settings: Settings, cell: Cell) -> RunSpec:
    """The isolated run of one cell."""
    config = registry.make_config(settings.task, cell.framework, {**settings.options, "workers": cell.workers})
    recorded = {"task": settings.task, "framework": cell.framework, "data": settings.data,
                **{name: getattr(config, name) for name in config.__dataclass_fields__}}
    return RunSpec(registry.loader_factory(settings.task, cell.framework, settings.data, config), settings.measure,
                   recorded)


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
