"""Workloads by name: ``emulated:<time>``, ``emulated-sync:<time>``, ``resnet18``, ``resnet50``, ``textcls``."""

from __future__ import annotations

import re

from feedbench.pipelines.core.errors import ConfigError
from feedbench.pipelines.workloads.base import Workload
from feedbench.pipelines.workloads.emulated import Emulated

_TIME = re.compile(r"^\s*(?P<value>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>us|ms|s)?\s*$")


_UNIT_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, None: 1e-3}


def parse_workload(spec: str | Workload) -> Workload:
    """The workload `spec` names, or `spec` itself when it is already a Workload.

    Raises:
        ConfigError: A name that does not parse, naming it and what is accepted.
    """
    if isinstance(spec, Workload):
        return spec
    if not isinstance(spec, str):
        raise ConfigError(f"workload must be a name or a Workload object, got {type(spec).__name__}")
    name = spec.strip().lower()
    kind, sep, value = name.partition(":")
    if sep and kind in ("emulated", "emulated-sync"):
        match = _TIME.match(value)
        if match is None:
            raise ConfigError(f"workload {spec!r}: expected {kind}:<time>, e.g. {kind}:20ms, {kind}:500us")
        return Emulated(float(match["value"]) * _UNIT_S[match["unit"]], synchronous=kind == "emulated-sync")
    if name in MODEL_WORKLOADS:
        from feedbench.pipelines.workloads import models as _models

        return getattr(_models, MODEL_WORKLOADS[name])()
    raise ConfigError(
        f"unknown workload {spec!r}; choose emulated:<time> (e.g. emulated:20ms), emulated-sync:<time>, "
        f"{', '.join(MODEL_WORKLOADS)}, or pass a Workload object"
    )


# Name -> class in feedbench.pipelines.workloads.models (imported only when asked for: torchvision).
MODEL_WORKLOADS = {"resnet18": "ResNet18", "resnet50": "ResNet50", "textcls": "TextClassifier"}


def check_workload(spec: str) -> str:
    """The canonical name of a workload `spec`, checked without building it (a model workload
    imports torch and torchvision: it is built where the run happens).

    Raises:
        ConfigError: Not a name, or a name that does not parse.
    """
    if not isinstance(spec, str):
        raise ConfigError(f"workload must be a name or a Workload object, got {type(spec).__name__}")
    name = spec.strip().lower()
    if name in MODEL_WORKLOADS:
        return name
    return parse_workload(name).describe()
