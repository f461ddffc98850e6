"""The one way feedbench imports TensorFlow.

With torch 2.14 and tensorflow 2.21 in one process, importing tensorflow before
torchvision makes triton's extension (pulled in by ``torchvision.ops``) crash the
interpreter. Every tf code path imports TensorFlow through :func:`import_tensorflow`, which
loads torch, torchvision and triton first, hides the GPU from TensorFlow (torch owns the
device), and says clearly what is missing.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from types import ModuleType

from feedbench.pipelines.errors import MissingDependencyError

log = logging.getLogger(__name__)


def _preload_torch() -> None:
    """Imports torch, torchvision and triton (where installed) before TensorFlow."""
    for name in ("torch", "torchvision", "torchvision.ops", "triton"):
        try:
            importlib.import_module(name)
        except ImportError:
            continue


def import_tensorflow() -> ModuleType:
    """Returns the ``tensorflow`` module, imported in the order that works beside torch.

    Raises:
        MissingDependencyError: TensorFlow is not installed.
    """
    if sys.modules.get("tensorflow") is not None:
        return sys.modules["tensorflow"]
    _preload_torch()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        tf = importlib.import_module("tensorflow")
    except ImportError as exc:
        raise MissingDependencyError(
            f"this needs TensorFlow, which cannot be imported ({exc}); install it with `pip install tensorflow`"
        ) from exc
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError as exc:
        # TensorFlow initialized its devices before this call: too late to hide the GPU.
        log.warning("TensorFlow's devices were already initialized; it may hold the GPU (%s)", exc)
    return tf


def import_tfds() -> ModuleType:
    """Returns ``tensorflow_datasets``, imported after TensorFlow the safe way.

    Raises:
        MissingDependencyError: tensorflow-datasets is not installed.
    """
    import_tensorflow()
    try:
        return importlib.import_module("tensorflow_datasets")
    except ImportError as exc:
        raise MissingDependencyError(
            f"this needs tensorflow-datasets, which cannot be imported ({exc}); "
            "install it with `pip install tensorflow-datasets`"
        ) from exc
