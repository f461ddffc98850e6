"""Model workloads: real training steps of torchvision's ResNets and a small text classifier.

This module is imported only when a model workload is asked for
(:func:`feedbench.pipelines.workloads.base.parse_workload`), so it imports torch at the top;
torchvision is imported where a ResNet is built, so that a text run does not need it.

On CUDA a step runs under bf16 autocast (the ResNets also in channels_last) and never waits
for the device: the consumer loop times it with CUDA events, and a host sync per step would
serialize the host with the device. Input checks that must read the values of a tensor
(label range, token ids) therefore run once, on the first batch in :meth:`warmup`, on CUDA,
and on every step elsewhere, where reading a tensor costs nothing of note (a textcls
workload whose sizes were guessed from a batch also checks later batches on CUDA, without
waiting: see :class:`TextClassifier`). Checks of
structure, shape and dtype read only metadata and run on every step everywhere.
"""

from __future__ import annotations

import contextlib
import importlib
from types import ModuleType
from typing import Any

import torch
from torch import nn

from feedbench.pipelines.core import checks
from feedbench.pipelines.core.batch_format import IMAGENET_MEAN, IMAGENET_STD  # uint8 images: normalized here
from feedbench.pipelines.core.errors import BatchError, ConfigError, MissingDependencyError
from feedbench.pipelines.core.stats import LoaderStats
from feedbench.pipelines.workloads.base import Workload

# The smallest vocabulary sized from a first batch: room for ids that the batch did not show.
MIN_VOCAB_SIZE = 32768
# Likewise the fewest classes sized from a first batch (the head is 64 x this: cheap).
MIN_CLASSES = 256
# The most a loader or a first batch may ask for (an embedding or head of 64 x this).
MAX_VOCAB_SIZE = 1 << 26
MAX_CLASSES = 1 << 20
EMBEDDING_DIM = 64


class _TrainingStep(Workload):
    """What the model workloads share: the device flags, the loss, the optimizer step.

    Attributes:
        num_classes: Classes the model predicts; labels must lie in ``[0, num_classes)``.
        model: The ``nn.Module`` being trained (None until built).
        optimizer: Its optimizer (None until built).
        last_loss: The loss of the latest step, a detached scalar tensor on the device
            (reading it waits for the step on CUDA).
    """

    def __init__(self, *, num_classes: int) -> None:
        checks.positive_int("num_classes", num_classes)
        self.num_classes = num_classes
        self.model: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.last_loss: torch.Tensor | None = None
        self.device: torch.device | None = None

    channels_last_on_cuda = False  # the ResNets run in channels_last on CUDA

    def setup(self, device: Any) -> None:
        super().setup(torch.device(device))
        self._cuda = self.device.type == "cuda"
        self.loss_fn = nn.CrossEntropyLoss()

    def describe(self) -> str:
        """The name, and once set up the precision it runs in: "resnet50 (bf16 autocast,
        channels_last)" on CUDA, "resnet50 (fp32)" elsewhere, so that no figure is called fp32
        that was bf16."""
        if self.device is None:
            return self.name
        return f"{self.name} ({precision(self.device.type, channels_last=self.channels_last_on_cuda)})"

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self._cuda:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _optimize(self, loss: torch.Tensor) -> None:
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.last_loss = loss.detach()

    def _check_labels(self, labels: torch.Tensor) -> None:
        bad = _out_of_range(labels, self.num_classes)
        if bad is not None:
            raise BatchError(
                f"{self.name}: label {bad} is out of range for num_classes={self.num_classes} "
                f"(labels must be 0 to {self.num_classes - 1})"
            )

    def _check_device(self, expected: str, tensors: tuple[torch.Tensor, ...]) -> None:
        for tensor in tensors:
            if tensor.device.type != self.device.type:
                raise BatchError(
                    f"{expected}; got a batch on {tensor.device.type}, not on the workload's device {self.device}"
                )


def precision(device_type: str, *, channels_last: bool = False) -> str:
    """The arithmetic a model workload's step uses on a device of `device_type`: bf16 autocast
    on CUDA (channels_last too for the ResNets), plain fp32 elsewhere."""
    if device_type == "cuda":
        return "bf16 autocast, channels_last" if channels_last else "bf16 autocast"
    return "fp32"


class _ResNet(_TrainingStep):
    """A training step of a torchvision ResNet on ``(images [B,3,H,W], labels [B])``.

    Images are float (already normalized) or uint8 in [0, 255], which the step normalizes
    with the ImageNet statistics on the device. NCHW with channels_last strides (an NHWC
    tensor permuted) is accepted as is. SGD (lr 0.1, momentum 0.9) and cross-entropy; on
    CUDA, channels_last and bf16 autocast; elsewhere float32. Never downloads weights.

    Args:
        num_classes: Classes of the final layer.
    """

    arch = ""
    channels_last_on_cuda = True

    def __init__(self, *, num_classes: int = 1000) -> None:
        super().__init__(num_classes=num_classes)

    def setup(self, device: Any) -> None:
        super().setup(device)
        builder = getattr(_import_torchvision().models, self.arch)
        model = builder(weights=None, num_classes=self.num_classes).to(self.device)
        if self._cuda:
            # Tensor cores run convolutions in NHWC; NCHW would add a transpose per layer.
            model = model.to(memory_format=torch.channels_last)
        self.model = model.train()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9)
        # Scaled by 255 so that a uint8 batch is normalized in one subtract and one divide.
        self._mean_255 = torch.tensor(IMAGENET_MEAN, device=self.device).mul(255).view(1, 3, 1, 1)
        self._std_255 = torch.tensor(IMAGENET_STD, device=self.device).mul(255).view(1, 3, 1, 1)

    def warmup(self, batch: Any) -> None:
        _, labels = self._unpack(batch)
        self._check_labels(labels)
        super().warmup(batch)

    def step(self, batch: Any) -> None:
        images, labels = self._unpack(batch)
        if not self._cuda:
            self._check_labels(labels)
        images = self._prepare(images)
        with self._autocast():
            loss = self.loss_fn(self.model(images), labels)
        self._optimize(loss)

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Float32 images, normalized if they came as uint8; channels_last on CUDA."""
        if images.dtype == torch.uint8:
            # Shipping uint8 and normalizing here moves a quarter of the bytes (DESIGN.md).
            images = (images.float() - self._mean_255) / self._std_255
        elif images.dtype != torch.float32:
            images = images.float()
        if self._cuda:
            # A no-op for the channels_last views the tf adapter hands over.
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def _unpack(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``(images, labels)`` from `batch`, checked by structure, shape and dtype only."""
        expected = f"{self.name} expects (images [B,3,H,W], labels [B])"
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise BatchError(f"{expected}; got {_describe(batch)}")
        images, labels = batch
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
            raise BatchError(f"{expected}; got images as {_describe(images)}")
        if not (images.dtype == torch.uint8 or images.is_floating_point()):
            raise BatchError(f"{expected} with uint8 or float images; got images as {_describe(images)}")
        if (
            not isinstance(labels, torch.Tensor)
            or labels.dtype != torch.int64
            or labels.shape != images.shape[:1]
        ):
            raise BatchError(
                f"{expected} with int64 labels; got labels as {_describe(labels)} for {images.shape[0]} images"
            )
        if images.shape[0] == 0:
            raise BatchError(f"{expected}; got an empty batch")
        self._check_device(expected, (images, labels))
        return images, labels


class ResNet18(_ResNet):
    """ResNet-18 training step (see :class:`_ResNet`)."""

    name = "resnet18"
    arch = "resnet18"


class ResNet50(_ResNet):
    """ResNet-50 training step (see :class:`_ResNet`)."""

    name = "resnet50"
    arch = "resnet50"


class MeanPoolClassifier(nn.Module):
    """Token embedding, mean over each sequence's valid tokens, then a linear layer.

    Args:
        vocab_size: Rows of the embedding.
        num_classes: Outputs of the linear layer.
        dim: Embedding width.
    """

    def __init__(self, vocab_size: int, num_classes: int, dim: int = EMBEDDING_DIM) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]`` for `token_ids` ``[B, T]`` of which `lengths` ``[B]`` are valid."""
        positions = torch.arange(token_ids.shape[1], device=token_ids.device)
        valid = positions.unsqueeze(0) < lengths.unsqueeze(1)  # [B, T]
        # masked_fill, not a multiply: padded positions contribute exact zeros, whatever their ids.
        embedded = self.embedding(token_ids).masked_fill(~valid.unsqueeze(2), 0.0)
        # A zero length pools to the zero vector instead of 0 / 0.
        counts = valid.sum(dim=1, keepdim=True).clamp_min(1)
        return self.head(embedded.sum(dim=1) / counts)


class TextClassifier(_TrainingStep):
    """A training step of :class:`MeanPoolClassifier` on ``(token_ids, lengths, labels)``.

    Token ids are int64 ``[B, T]`` padded with 0 beyond each length; positions at or beyond a
    sequence's length are ignored. Adam (lr 1e-3) and cross-entropy; bf16 autocast on CUDA.

    Sizes not given are taken from what the loader reports by :meth:`bind` (``vocab_size``
    and ``num_classes`` of its LoaderStats, as the feedbench text loaders report them), else guessed from the
    first batch at :meth:`warmup`: the next power of two above its largest id (label), at
    least ``MIN_VOCAB_SIZE`` (``MIN_CLASSES``). Guessed sizes are checked against every
    batch, so that a later batch beyond them is a one-line ConfigError naming the id or
    label and the size, never a device-side assert: on the CPU before the step; on CUDA
    without waiting for the device (out-of-range values are clamped for the step and
    reported within the next few steps; one among a run's last steps may go unreported).

    Args:
        num_classes: Classes of the final layer; None: from the loader or the first batch.
        vocab_size: Rows of the embedding; None: from the loader or the first batch.
    """

    name = "textcls"

    def __init__(self, *, num_classes: int | None = None, vocab_size: int | None = None) -> None:
        super().__init__(num_classes=num_classes or 1)
        for what, value in (("num_classes", num_classes), ("vocab_size", vocab_size)):
            if value is not None:
                checks.positive_int(what, value)
        self.num_classes: int | None = num_classes
        self.vocab_size = vocab_size
        self._guessed = False  # sizes were guessed from a batch: check every batch
        self._pending: list[tuple[torch.cuda.Event, torch.Tensor]] = []

    def bind(self, stats: LoaderStats) -> None:
        """Takes the sizes not given from what the loader reports, where it reports them."""
        if self.model is not None:
            return
        if self.vocab_size is None and stats.vocab_size is not None:
            self.vocab_size = _bound_size("vocab_size", stats.vocab_size, MAX_VOCAB_SIZE)
        if self.num_classes is None and stats.num_classes is not None:
            self.num_classes = _bound_size("num_classes", stats.num_classes, MAX_CLASSES)

    def setup(self, device: Any) -> None:
        super().setup(device)
        self._pending.clear()
        if self.vocab_size is not None and self.num_classes is not None:
            self._build()

    def warmup(self, batch: Any) -> None:
        token_ids, lengths, labels = self._unpack(batch)
        self._check_values(token_ids, lengths, labels)
        super().warmup(batch)

    def step(self, batch: Any) -> None:
        token_ids, lengths, labels = self._unpack(batch)
        if self.model is None or not self._cuda:
            # Without warm-up the first step sizes the model itself (one sync on CUDA).
            self._check_values(token_ids, lengths, labels)
        elif self._guessed:
            token_ids, labels = self._guard(token_ids, labels)
        with self._autocast():
            loss = self.loss_fn(self.model(token_ids, lengths), labels)
        self._optimize(loss)

    def _build(self) -> None:
        self.model = MeanPoolClassifier(self.vocab_size, self.num_classes).to(self.device).train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)

    def _size_from(self, token_ids: torch.Tensor, labels: torch.Tensor) -> None:
        """Guesses the sizes not known yet from a first batch, and builds the model."""
        low, high = _min_max(token_ids)
        if low < 0:
            raise BatchError(f"{self.name}: token id {low} is negative (ids must be 0 or more)")
        if self.vocab_size is None:
            self.vocab_size = _bound_size("vocab_size", max(MIN_VOCAB_SIZE, 1 << high.bit_length()), MAX_VOCAB_SIZE)
            self._guessed = True
        if self.num_classes is None:
            low, high = _min_max(labels)
            if low < 0:
                raise BatchError(f"{self.name}: label {low} is negative (labels must be 0 or more)")
            self.num_classes = _bound_size("num_classes", max(MIN_CLASSES, 1 << high.bit_length()), MAX_CLASSES)
            self._guessed = True
        self._build()

    def _check_values(self, token_ids: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor) -> None:
        """Checks labels, lengths and ids by value; builds the model first if it is unsized."""
        seq_len = token_ids.shape[1]
        bad = _out_of_range(lengths, seq_len + 1)
        if bad is not None:
            raise BatchError(
                f"{self.name}: length {bad} is out of range for token_ids of length {seq_len} "
                f"(lengths must be 0 to {seq_len})"
            )
        if self.model is None:
            self._size_from(token_ids, labels)
        self._check_labels(labels)
        self._check_ids(_out_of_range(token_ids, self.vocab_size))

    def _check_ids(self, bad: int | None) -> None:
        if bad is not None:
            sized = " (sized from the first batch)" if self._guessed else ""
            raise BatchError(
                f"{self.name}: token id {bad} is out of range for vocab_size={self.vocab_size}{sized}; "
                f"ids must be 0 to {self.vocab_size - 1}, pass a larger vocab_size"
            )

    def _guard(self, token_ids: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """On CUDA with guessed sizes: the batch clamped into range, its extremes copied to
        the host without waiting; the copies of earlier steps that have landed are checked."""
        while self._pending and self._pending[0][0].query():
            low_id, high_id, low_label, high_label = self._pending.pop(0)[1].tolist()
            self._check_ids(high_id if high_id >= self.vocab_size else (low_id if low_id < 0 else None))
            if high_label >= self.num_classes or low_label < 0:
                self._check_labels(torch.tensor([low_label, high_label]))
        extremes = torch.stack([*torch.aminmax(token_ids), *torch.aminmax(labels)])
        host = torch.empty(4, dtype=torch.int64, pin_memory=True)
        host.copy_(extremes, non_blocking=True)
        landed = torch.cuda.Event()
        landed.record()
        self._pending.append((landed, host))
        return token_ids.clamp(0, self.vocab_size - 1), labels.clamp(0, self.num_classes - 1)

    def _unpack(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(token_ids, lengths, labels)`` from `batch`, checked by structure, shape and dtype only."""
        expected = f"{self.name} expects (token_ids [B,T], lengths [B], labels [B]) of int64"
        if not isinstance(batch, (tuple, list)) or len(batch) != 3:
            raise BatchError(f"{expected}; got {_describe(batch)}")
        token_ids, lengths, labels = batch
        if not isinstance(token_ids, torch.Tensor) or token_ids.dim() != 2 or token_ids.dtype != torch.int64:
            raise BatchError(f"{expected}; got token_ids as {_describe(token_ids)}")
        for what, tensor in (("lengths", lengths), ("labels", labels)):
            shape_ok = isinstance(tensor, torch.Tensor) and tensor.shape == token_ids.shape[:1]
            if not shape_ok or tensor.dtype != torch.int64:
                raise BatchError(
                    f"{expected}; got {what} as {_describe(tensor)} for {token_ids.shape[0]} sequences"
                )
        if token_ids.shape[0] == 0:
            raise BatchError(f"{expected}; got an empty batch")
        self._check_device(expected, (token_ids, lengths, labels))
        return token_ids, lengths, labels


def _out_of_range(values: torch.Tensor, limit: int) -> int | None:
    """The value of `values` farthest outside ``[0, limit)``, or None if all lie inside.

    Reads the tensor: on CUDA this waits for the device.
    """
    if values.numel() == 0:
        return None
    low, high = _min_max(values)
    if high >= limit:
        return high
    if low < 0:
        return low
    return None


def _min_max(values: torch.Tensor) -> tuple[int, int]:
    """The smallest and largest of the non-empty integer tensor `values`, read in one transfer."""
    low, high = torch.stack(torch.aminmax(values)).tolist()
    return low, high


def _describe(value: Any) -> str:
    """A few words on what `value` is, for messages about a batch of the wrong form."""
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {list(value.shape)}"
    if isinstance(value, dict):
        return f"a dict with keys {sorted(map(str, value))}"
    if isinstance(value, (tuple, list)):
        if all(isinstance(item, torch.Tensor) for item in value):
            return f"a batch of {len(value)} tensors"
        kinds = ", ".join(type(item).__name__ for item in value)
        return f"a {type(value).__name__} of {len(value)} items ({kinds})"
    return f"a {type(value).__name__}"


def _bound_size(name: str, value: Any, limit: int) -> int:
    """`value` as a size for `name`, a one-line ConfigError when it is not one or above `limit`."""
    checks.positive_int(name, value)
    if value > limit:
        raise ConfigError(f"textcls: {name}={value} (from the data) is more than the {limit} this workload allows")
    return value


def _import_torchvision() -> ModuleType:
    try:
        return importlib.import_module("torchvision")
    except ImportError as exc:
        raise MissingDependencyError(
            f"the ResNet workloads need torchvision, which cannot be imported ({exc}); "
            "install it with `pip install torchvision`"
        ) from exc
