"""The one registry of pipelines: one :class:`Backend` entry per (task, backend), holding
everything the harness, the CLI and the report need to know about it.

Adding a backend is one entry here plus its pipeline file; ``tests/pipelines/test_registry.py``
fails when an entry is incomplete (an empty field, a path that does not import, a factory
whose keywords are not its config's). Code is named by import path ("module:name") and
imported on first use, so that asking for a torch pipeline never imports TensorFlow and
vice versa.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from feedbench.pipelines.core.errors import ConfigError


@dataclass(frozen=True)
class Backend:
    """One (task, backend) pair.

    Attributes:
        task: "image" or "text".
        name: The backend's name on the command line and in results ("torch", "tf", ...).
        config: "module:Class" of the task's frozen configuration.
        builder: "module:function" building the loader from (source, config).
        factory: "module:function" of the public keyword factory (``torch_loader``, ...).
        source_check: "module:function" that checks a source path without a framework,
            raising DatasetError; run before any cell starts.
        prefix: "module:function" building the pipeline stopped after one of `stages`, from
            (source, config, stage): one number a sample, batched as the loader batches
            (``feedbench explain`` costs a stage as the difference between two prefixes).
        stages: The stages inside one sample, in order (read, decode, transform; ...).
        label: How reports name it ("torch DataLoader", "tf.data").
        workers: What `workers` counts for it, a phrase ("DataLoader worker processes").
        prefetch: What `prefetch` counts for it, a phrase.
        zero_workers: What it does at workers=0, a phrase.
        autotune: What "autotune" workers means for it, a phrase.
        tunes_itself: Whether "autotune" is a tuning of its own (tf.data's AUTOTUNE) and so
            a contender in a sweep, rather than a fixed count (one worker per CPU).
        machine_check: "module:function" (no arguments) that raises ConfigError, in one line,
            where this machine cannot run the backend (torch-gpu without a GPU); "" for none.
            Every command runs it before anything is measured.
        contender: One of the loaders measured against the two defaults (torch's DataLoader
            and tf.data): run when named (``--frameworks torch,tf,torch-threads``), not in a
            command's default set (:func:`defaults`).
        remote_workers: What its workers are called where they may run on other machines
            (tf-service, ray: the sweep's answer in remote workers names them); "" for the
            backends whose workers live in the consuming process or its children.
    """

    task: str
    name: str
    config: str
    builder: str
    factory: str
    source_check: str
    prefix: str
    stages: tuple[str, ...]
    label: str
    workers: str
    prefetch: str
    zero_workers: str
    autotune: str
    tunes_itself: bool
    contender: bool = False
    machine_check: str = ""
    remote_workers: str = ""

    def make_config(self, options: Mapping[str, Any]) -> Any:
        """The task's frozen configuration from keyword options (ConfigError on a bad one).

        An option that only other backends of the task take (``service``: tf-service's) is
        left out, so that one set of options serves every backend of a comparison."""
        fields = option_names(self)
        unknown = set(options) - fields - {name for entry in backends(self.task) for name in option_names(entry)}
        if unknown:
            raise ConfigError(f"unknown option(s) for the {self.task} pipeline: {', '.join(sorted(unknown))}")
        return load(self.config)(**{name: value for name, value in options.items() if name in fields})

    def build(self, source: Any, config: Any) -> Iterable[Any]:
        """The loader over `source` with `config`."""
        return load(self.builder)(source, config)

    def build_prefix(self, source: Any, config: Any, through: str) -> Iterable[Any]:
        """The loader over `source` with `config`, stopped after the sample stage `through`."""
        return load(self.prefix)(source, config, through)


_TORCH = dict(label="torch DataLoader", workers="DataLoader worker processes",
              prefetch="batches made ahead per worker (prefetch_factor)",
              zero_workers="makes each batch in the main process, in turn with the consumer",
              autotune="one worker process per CPU", tunes_itself=False)
_TF = dict(label="tf.data", workers="threads of the map's num_parallel_calls",
           prefetch="batches in the prefetch buffer", zero_workers="maps sequentially but still prefetches on a "
           "background thread", autotune="tf.data's own tuning of parallel calls and buffers", tunes_itself=True)

_THREADS = dict(label="torch threads (torchdata.nodes)", workers="threads of the process (torchdata.nodes "
                "ParallelMapper)", prefetch="batches made ahead per thread", zero_workers="makes each batch in the "
                "calling thread, in turn with the consumer", autotune="one thread per CPU", tunes_itself=False,
                contender=True)

_GPU = dict(label="torch, decode and transforms on the GPU", workers="DataLoader worker processes reading and "
            "batching the encoded images", prefetch="batches made ahead per worker (prefetch_factor)",
            zero_workers="reads each batch in the main process, in turn with the consumer",
            autotune="one worker process per CPU", tunes_itself=False, contender=True,
            machine_check="feedbench.vision.torch_gpu:gpu_device")

_DALI = dict(label="NVIDIA DALI", workers="CPU threads of the DALI pipeline (num_threads)",
             prefetch="batches in the pipeline's queue (prefetch_queue_depth)",
             zero_workers="runs one CPU thread (DALI cannot run without one)", autotune="one thread per CPU",
             tunes_itself=False, contender=True, machine_check="feedbench.vision.dali_pipeline:dali_device")

_SERVICE = dict(label="tf.data service", workers="tf.data service worker processes (local: started within the "
                "CPU budget; remote: those the dispatcher has)", prefetch="batches in the client's prefetch buffer",
                zero_workers="runs one service worker (a service cannot run without one)",
                autotune="one service worker per CPU", tunes_itself=False, contender=True,
                remote_workers="tf.data service worker processes")

_RAY = dict(label="Ray Data", workers="Ray tasks running the map_batches stage at once, one CPU each",
            prefetch="batches iter_torch_batches fetches ahead (prefetch_batches)",
            zero_workers="runs one task at a time (a Ray Data stage cannot run without one)",
            autotune="one task per CPU", tunes_itself=False, contender=True,
            machine_check="feedbench.pipelines.core.ray_cluster:ray_installed",
            remote_workers="Ray workers (one CPU each)")

_IMAGE_STAGES = ("read", "decode", "transform")  # vision._common.SAMPLE_STAGES (the test holds them equal)
_TEXT_STAGES = ("read", "tokenize", "encode")  # text._common.SAMPLE_STAGES

BACKENDS: tuple[Backend, ...] = (
    Backend("image", "torch", "feedbench.vision._common:ImageConfig",
            "feedbench.vision.torch_pipeline:build_torch_loader", "feedbench.vision.torch_pipeline:torch_loader",
            "feedbench.vision._common:resolve_source", "feedbench.vision.torch_pipeline:build_torch_prefix",
            _IMAGE_STAGES, **_TORCH),
    Backend("image", "tf", "feedbench.vision._common:ImageConfig", "feedbench.vision.tf_pipeline:build_tf_dataset",
            "feedbench.vision.tf_pipeline:tf_dataset", "feedbench.vision._common:resolve_source",
            "feedbench.vision.tf_pipeline:build_tf_prefix", _IMAGE_STAGES, **_TF),
    Backend("text", "torch", "feedbench.text._config:TextConfig", "feedbench.text.torch_pipeline:build_torch_loader",
            "feedbench.text.torch_pipeline:torch_loader", "feedbench.text._records:resolve",
            "feedbench.text.torch_pipeline:build_torch_prefix", _TEXT_STAGES, **_TORCH),
    Backend("text", "tf", "feedbench.text._config:TextConfig", "feedbench.text.tf_pipeline:build_tf_dataset",
            "feedbench.text.tf_pipeline:tf_dataset", "feedbench.text._records:resolve",
            "feedbench.text.tf_pipeline:build_tf_prefix", _TEXT_STAGES, **_TF),
    Backend("image", "torch-threads", "feedbench.vision._common:ImageConfig",
            "feedbench.vision.torch_threads:build_threads_loader", "feedbench.vision.torch_threads:threads_loader",
            "feedbench.vision._common:resolve_source", "feedbench.vision.torch_threads:build_threads_prefix",
            _IMAGE_STAGES, **_THREADS),
    Backend("image", "torch-gpu", "feedbench.vision._common:ImageConfig", "feedbench.vision.torch_gpu:build_gpu_loader",
            "feedbench.vision.torch_gpu:gpu_loader", "feedbench.vision._common:resolve_source",
            "feedbench.vision.torch_gpu:build_gpu_prefix", _IMAGE_STAGES, **_GPU),
    Backend("image", "dali", "feedbench.vision._common:ImageConfig", "feedbench.vision.dali_pipeline:build_dali_loader",
            "feedbench.vision.dali_pipeline:dali_loader", "feedbench.vision._common:resolve_source",
            "feedbench.vision.dali_pipeline:build_dali_prefix", _IMAGE_STAGES, **_DALI),
    Backend("text", "torch-threads", "feedbench.text._config:TextConfig",
            "feedbench.text.torch_threads:build_threads_loader", "feedbench.text.torch_threads:threads_loader",
            "feedbench.text._records:resolve", "feedbench.text.torch_threads:build_threads_prefix", _TEXT_STAGES,
            **_THREADS),
    Backend("image", "tf-service", "feedbench.vision._common:ServiceImageConfig",
            "feedbench.vision.tf_service:build_service_dataset", "feedbench.vision.tf_service:service_dataset",
            "feedbench.vision._common:resolve_source", "feedbench.vision.tf_service:build_service_prefix",
            _IMAGE_STAGES, **_SERVICE),
    Backend("text", "tf-service", "feedbench.text._config:ServiceTextConfig",
            "feedbench.text.tf_service:build_service_dataset", "feedbench.text.tf_service:service_dataset",
            "feedbench.text._records:resolve", "feedbench.text.tf_service:build_service_prefix", _TEXT_STAGES,
            **_SERVICE),
    Backend("image", "ray", "feedbench.vision._common:RayImageConfig", "feedbench.vision.ray_pipeline:build_ray_loader",
            "feedbench.vision.ray_pipeline:ray_loader", "feedbench.vision._common:resolve_source",
            "feedbench.vision.ray_pipeline:build_ray_prefix", _IMAGE_STAGES, **_RAY),
    Backend("text", "ray", "feedbench.text._config:RayTextConfig", "feedbench.text.ray_pipeline:build_ray_loader",
            "feedbench.text.ray_pipeline:ray_loader", "feedbench.text._records:resolve",
            "feedbench.text.ray_pipeline:build_ray_prefix", _TEXT_STAGES, **_RAY),
)


def option_names(entry: Backend) -> frozenset[str]:
    """The keyword options `entry`'s configuration takes."""
    return frozenset(f.name for f in dataclasses.fields(load(entry.config)))


def takers(task: str, option: str) -> list[str]:
    """The backends of `task` that take `option` (``service``: ["tf-service"])."""
    return [entry.name for entry in backends(task) if option in option_names(entry)]


def tasks() -> list[str]:
    """The tasks that have at least one backend."""
    return sorted({entry.task for entry in BACKENDS})


def frameworks(task: str) -> list[str]:
    """The names of the backends of `task` (the "framework" of a results row)."""
    return sorted(entry.name for entry in BACKENDS if entry.task == task)


def defaults(task: str) -> list[str]:
    """The backends a command measures when none are named: the two defaults of the field
    (torch's DataLoader, tf.data), not the contenders."""
    return sorted(entry.name for entry in BACKENDS if entry.task == task and not entry.contender)


def all_frameworks() -> list[str]:
    """The names of every backend of any task."""
    return sorted({entry.name for entry in BACKENDS})


def backend(task: str, name: str) -> Backend:
    """The entry of (`task`, `name`).

    Raises:
        ConfigError: An unknown task, or a backend the task does not have (naming those it has).
    """
    for entry in BACKENDS:
        if (entry.task, entry.name) == (task, name):
            return entry
    if task not in tasks():
        raise ConfigError(f"unknown task {task!r}; choose {', '.join(tasks())}")
    raise ConfigError(f"unknown framework {name!r} for task {task!r}; choose {', '.join(frameworks(task))}")


def backends(task: str) -> list[Backend]:
    """The entries of `task`, by name."""
    return [backend(task, name) for name in frameworks(task)]


def load(path: str) -> Any:
    """The object a "module:name" path names (imported on first use)."""
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def make_config(task: str, framework: str, options: Mapping[str, Any]) -> Any:
    """The frozen configuration of (`task`, `framework`) from keyword options (ConfigError on a bad one)."""
    return backend(task, framework).make_config(options)


def build(task: str, framework: str, source: Any, config: Any) -> Iterable[Any]:
    """The loader of `task` in `framework` over `source` with `config`."""
    return backend(task, framework).build(source, config)


def loader_factory(task: str, framework: str, source: Any, config: Any) -> Callable[[], Iterable[Any]]:
    """A picklable zero-argument factory of the loader, for ``RunSpec(loader=...)``."""
    backend(task, framework)
    return functools.partial(build, task, framework, str(source), config)


def build_prefix(task: str, framework: str, source: Any, config: Any, through: str) -> Iterable[Any]:
    """The loader of `task` in `framework`, stopped after the sample stage `through`."""
    return backend(task, framework).build_prefix(source, config, through)


def prefix_factory(task: str, framework: str, source: Any, config: Any, through: str) -> Callable[[], Iterable[Any]]:
    """A picklable zero-argument factory of the prefix loader through `through`."""
    entry = backend(task, framework)
    if through not in entry.stages:
        raise ConfigError(f"unknown {task} stage {through!r}; choose {', '.join(entry.stages)}")
    return functools.partial(build_prefix, task, framework, str(source), config, through)


def check_machine(task: str, framework: str) -> None:
    """Raises ConfigError where this machine cannot run (`task`, `framework`) (its machine check)."""
    entry = backend(task, framework)
    if entry.machine_check:
        load(entry.machine_check)()


def check_source(task: str, source: Any) -> None:
    """Runs the source check of every backend of `task` (each distinct check once)."""
    for check in dict.fromkeys(entry.source_check for entry in backends(task)):
        load(check)(source)
