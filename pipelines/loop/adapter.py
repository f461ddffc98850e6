"""The adapter: any batch in the common format becomes torch tensors on the device.

Accepted leaves: torch tensors, TensorFlow tensors (crossing by DLPack: no copy on the CPU;
rank-4 NHWC images become an NCHW view with channels_last strides, also no copy), NumPy
arrays (``torch.from_numpy``, no copy). Containers: tuples, lists and dicts of leaves, nested.
On CUDA, tensors are pinned (unless the loader pinned them: :func:`pinned`, before the step)
and copied with ``non_blocking=True``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from feedbench.pipelines.core.errors import BatchError
from feedbench.pipelines.core.frameworks import import_tensorflow


def _is_tf(value: Any) -> bool:
    return type(value).__module__.startswith("tensorflow")


def _from_tf(value: Any) -> torch.Tensor:
    tf = import_tensorflow()  # already imported, since `value` is a TensorFlow tensor

    if value.dtype == tf.string:
        raise BatchError("a TensorFlow string tensor cannot cross to torch; encode it to numbers in the pipeline")
    tensor = torch.utils.dlpack.from_dlpack(tf.experimental.dlpack.to_dlpack(value))
    if tensor.dim() == 4 and tensor.shape[-1] in (1, 3, 4):
        # tf.data gives images NHWC; the common format is NCHW: a view, no copy.
        tensor = tensor.permute(0, 3, 1, 2)
    return tensor


def to_torch(batch: Any) -> Any:
    """The batch with every leaf a torch tensor on the host (no copies where avoidable).

    Raises:
        BatchError: A leaf of a type the loop does not know.
    """
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, np.ndarray):
        if batch.dtype.kind in "OUS":
            raise BatchError(f"a NumPy array of dtype {batch.dtype} cannot become a tensor; encode it to numbers")
        return torch.from_numpy(batch)
    if _is_tf(batch):
        return _from_tf(batch)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_torch(item) for item in batch)
    if isinstance(batch, Mapping):
        return {key: to_torch(value) for key, value in batch.items()}
    raise BatchError(
        f"a batch element of type {type(batch).__module__}.{type(batch).__qualname__}; expected torch, "
        "TensorFlow or NumPy tensors, or a tuple, list or dict of them"
    )


def pinned(batch: Any) -> Any:
    """The batch with every host tensor in pinned (page-locked) memory, copying those that are
    not; the loop calls it on CUDA before a step's first event, so that the pinning copy of a
    batch that arrives unpinned (tf.data by DLPack, NumPy) is the host's time, not the copy's."""
    if isinstance(batch, torch.Tensor):
        return batch if batch.device.type != "cpu" or batch.is_pinned() else batch.pin_memory()
    if isinstance(batch, (tuple, list)):
        return type(batch)(pinned(item) for item in batch)
    return {key: pinned(value) for key, value in batch.items()}


def to_device(batch: Any, device: torch.device) -> Any:
    """Moves a batch of torch tensors to `device`, non-blocking on CUDA (from pinned memory: see
    :func:`pinned`)."""
    if isinstance(batch, torch.Tensor):
        if device.type != "cuda":
            return batch if batch.device == device else batch.to(device)
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(item, device) for item in batch)
    return {key: to_device(value, device) for key, value in batch.items()}


def batch_size(batch: Any) -> int:
    """Samples in a batch: the first dimension of its labels, or of its first tensor.

    Image ``(images, labels)`` and text ``(ids, lengths, labels)`` batches carry labels last;
    a dict's "labels"/"label" entry counts if present.

    Raises:
        BatchError: No tensor, or a 0-dimensional one.
    """
    tensor = _label_tensor(batch)
    if tensor is None or tensor.dim() == 0:
        raise BatchError("a batch without a batched tensor: cannot count its samples")
    return int(tensor.shape[0])


def _label_tensor(batch: Any) -> torch.Tensor | None:
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (tuple, list)):
        return _label_tensor(batch[-1]) if batch else None
    if isinstance(batch, Mapping):
        for key in ("labels", "label"):
            if key in batch:
                return _label_tensor(batch[key])
        return _label_tensor(next(iter(batch.values()))) if batch else None
    return None
