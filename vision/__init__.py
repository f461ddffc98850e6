"""Image preprocessing, one module per framework, same semantics.

:func:`torch_loader` (PyTorch DataLoader, torchvision transforms v2) and :func:`tf_dataset`
(tf.data) take the same keywords and give the same batches; each imports its framework
only when called.
"""

from typing import Any

from feedbench.vision._common import ImageConfig


def torch_loader(source: Any, **keywords: Any):
    """See :func:`feedbench.vision.torch_pipeline.torch_loader`."""
    from feedbench.vision.torch_pipeline import torch_loader as build

    return build(source, **keywords)


def tf_dataset(source: Any, **keywords: Any):
    """See :func:`feedbench.vision.tf_pipeline.tf_dataset`."""
    from feedbench.vision.tf_pipeline import tf_dataset as build

    return build(source, **keywords)


__all__ = ["ImageConfig", "tf_dataset", "torch_loader"]
