"""Image preprocessing, one module per framework, same semantics.

:func:`torch_loader` (PyTorch DataLoader, torchvision transforms v2) and :func:`tf_dataset`
(tf.data) take the same keywords and give the same batches. Each is imported on first
use, so asking for one never imports the other framework.
"""

from typing import Any

from feedbench.vision._common import ImageConfig

_LAZY = {
    "torch_loader": "feedbench.vision.torch_pipeline",
    "build_torch_loader": "feedbench.vision.torch_pipeline",
    "tf_dataset": "feedbench.vision.tf_pipeline",
    "build_tf_dataset": "feedbench.vision.tf_pipeline",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'feedbench.vision' has no attribute {name!r}")


__all__ = ["ImageConfig", "build_tf_dataset", "build_torch_loader", "tf_dataset", "torch_loader"]
