"""The one registry of pipelines: (task, framework) -> the function that builds the loader.

Builders are named by import path and imported on first use, so that asking for a torch
pipeline never imports TensorFlow and vice versa. Each builder takes ``(source, config)``,
the config being the task's frozen configuration object.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from feedbench.pipelines.core.errors import ConfigError

# (task, framework) -> ("module:builder", "module:ConfigClass")
PIPELINES: dict[tuple[str, str], tuple[str, str]] = {
    ("image", "torch"): ("feedbench.vision.torch_pipeline:build_torch_loader", "feedbench.vision._common:ImageConfig"),
    ("image", "tf"): ("feedbench.vision.tf_pipeline:build_tf_dataset", "feedbench.vision._common:ImageConfig"),
    ("text", "torch"): ("feedbench.text.torch_pipeline:build_torch_loader", "feedbench.text._config:TextConfig"),
    ("text", "tf"): ("feedbench.text.tf_pipeline:build_tf_dataset", "feedbench.text._config:TextConfig"),
}


def _load(path: str) -> Any:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def tasks() -> list[str]:
    return sorted({task for task, _ in PIPELINES})


def frameworks(task: str) -> list[str]:
    return sorted(framework for t, framework in PIPELINES if t == task)


def _entry(task: str, framework: str) -> tuple[str, str]:
    if (task, framework) not in PIPELINES:
        if task not in tasks():
            raise ConfigError(f"unknown task {task!r}; choose {', '.join(tasks())}")
        raise ConfigError(f"unknown framework {framework!r} for task {task!r}; choose {', '.join(frameworks(task))}")
    return PIPELINES[(task, framework)]


def make_config(task: str, framework: str, options: Mapping[str, Any]) -> Any:
    """The task's frozen configuration from keyword options (ConfigError on a bad one)."""
    config_class = _load(_entry(task, framework)[1])
    unknown = set(options) - set(config_class.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"unknown option(s) for the {task} pipeline: {', '.join(sorted(unknown))}")
    return config_class(**options)


def build(task: str, framework: str, source: Any, config: Any) -> Iterable[Any]:
    """The loader of `task` in `framework` over `source` with `config`."""
    return _load(_entry(task, framework)[0])(source, config)


def loader_factory(task: str, framework: str, source: Any, config: Any) -> Callable[[], Iterable[Any]]:
    """A picklable zero-argument factory of the loader, for ``RunSpec(loader=...)``."""
    _entry(task, framework)
    return functools.partial(build, task, framework, str(source), config)
