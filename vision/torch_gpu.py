"""The image pipeline with decode and transforms on the GPU (the ``torch-gpu`` backend).

Reading and batching stay on the CPU: DataLoader workers (`workers` processes, `prefetch`
batches each) read each sample's bytes, check its header as the torch pipeline does, and draw
its 41 uniform numbers from (seed, epoch, index), the torch pipeline's own stream; a batch is
the list of encoded JPEGs (files of other kinds, PNG, GIF, BMP, are decoded on the CPU there:
the GPU decoder takes JPEG only). On the device, in the consuming process, one batched call
decodes the batch's JPEGs (``torchvision.io.decode_jpeg(list, device="cuda")``, nvJPEG), and
two batched matrix products crop and resize every image: torchvision's antialiased bilinear
resize is separable, so each image's crop-and-resize is ``rows @ image @ columns.T``, with
the rows and columns of torchvision's own filter weights over the torch pipeline's window
(RandomResizedCrop's, drawn from the same numbers; for eval, resize-then-center-crop's), over
the batch padded to its largest image. The flips are one indexed flip, the normalization one
broadcast. No Python loop of per-image crops or resizes: the per-image work is copying each
decoded image into the padded batch and computing its weights on the CPU (S x (h + w) numbers).

What cannot be the same: the weights are float32 and the pixels are not rounded between the
two passes (torchvision's uint8 path rounds), and nvJPEG's decoder is not libjpeg's
(tests/vision/test_torch_gpu.py holds the difference to the framework pair's tolerance, on the
CPU). Batches come out on the device, float normalized or uint8.

The device: CUDA. Built on a machine where torch sees no GPU, the loader says so in one line
(ConfigError). The same code runs with ``device="cpu"`` (:func:`build_gpu_loader_on`), which is
how its CPU-side parts and its arithmetic are tested on machines without a GPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from feedbench.pipelines.core.batch_format import IMAGENET_MEAN, IMAGENET_STD
from feedbench.pipelines.core.dataloader import DeviceAwareLoader, dataloader_options
from feedbench.pipelines.core.errors import ConfigError
from feedbench.vision._common import (
    SAMPLE_STAGES,
    ImageConfig,
    Source,
    decode_problem,
    looks_like_image,
    random_resized_crop,
    resized_shorter_side,
)
from feedbench.vision.torch_pipeline import _UNIFORMS, BadImages, _Images, decode, image_dataset

WORKER_MODULES = ("torch", "numpy", "PIL.Image", "torchvision.io", __name__)
_JPEG = b"\xff\xd8"


class _Encoded(_Images):
    """Map-style: (epoch, index) -> (payload, label, name, uniforms, problem). The payload is
    the JPEG's bytes as uint8 [n], or another kind's image decoded on the CPU, uint8 [3, H, W]."""

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor | None, int, str, np.ndarray | None,
                                                         str | None]:
        epoch, index = key
        data, label, name, problem = self._read(index)
        problem = problem or looks_like_image(data)
        if not problem and self.through != "read":
            problem = decode_problem(data)
        if problem:
            return None, label, name, None, f"{name}: {problem}"
        uniforms = np.random.default_rng([self.cfg.seed, epoch, index]).random(_UNIFORMS)
        if data[:2] == _JPEG or self.through == "read":
            return torch.frombuffer(bytearray(data), dtype=torch.uint8), label, name, uniforms, None
        try:
            image = decode(data)
        except (RuntimeError, OSError) as exc:
            return None, label, name, None, f"{name}: cannot decode ({exc})"
        return (image[0] if image.ndim == 4 else image), label, name, uniforms, None


def _gather(samples: list[tuple[Any, ...]]) -> tuple[tuple[list[torch.Tensor], list[str], np.ndarray],
                                                     torch.Tensor, list[str]]:
    """((payloads, names, uniforms [B, 41]) of the good samples, labels int64 [B], problems)."""
    good = [s for s in samples if s[4] is None]
    payloads, names = [s[0] for s in good], [s[2] for s in good]
    uniforms = np.stack([s[3] for s in good]) if good else np.zeros((0, _UNIFORMS))
    labels = torch.tensor([s[1] for s in good], dtype=torch.int64)
    return (payloads, names, uniforms), labels, [s[4] for s in samples if s[4] is not None]


def aa_weights(length: int, size: int) -> np.ndarray:
    """[size, length]: torchvision's antialiased bilinear resize of `length` pixels to `size`, as
    a matrix (PIL's: a triangle filter as wide as the scale when shrinking, bilinear when
    growing; its taps clipped to the input and renormalized)."""
    scale = length / size
    support = scale if scale >= 1.0 else 1.0
    inverse = 1.0 / scale if scale >= 1.0 else 1.0
    weights = np.zeros((size, length), dtype=np.float64)
    for out in range(size):
        center = scale * (out + 0.5)
        low = max(int(center - support + 0.5), 0)
        high = min(int(center + support + 0.5), length)
        taps = np.arange(low, high)
        tent = np.clip(1.0 - np.abs((taps - center + 0.5) * inverse), 0.0, None)
        weights[out, low:high] = tent / tent.sum() if tent.sum() > 0 else 0.0
    return weights


def resize_matrices(sizes: list[tuple[int, int]], uniforms: np.ndarray, cfg: ImageConfig, height: int,
                    width: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows [B, S, height], columns [B, S, width]): for each image (its size in `sizes`), the
    matrices that take its crop window to S x S by ``rows @ image @ columns.T``, as the torch
    pipeline's transforms do: train, RandomResizedCrop's window drawn from the same numbers then
    an antialiased resize of that window; eval, an antialiased resize of the shorter side to
    ``cfg.resize_size``, then the center S x S. `height` and `width` are the padded batch's."""
    size = cfg.image_size
    rows = np.zeros((len(sizes), size, height), dtype=np.float32)
    columns = np.zeros((len(sizes), size, width), dtype=np.float32)
    for image, (h, w) in enumerate(sizes):
        if cfg.train:
            crop = random_resized_crop(tuple(uniforms[image, :40]), h, w)
            rows[image, :, crop.top:crop.top + crop.height] = aa_weights(crop.height, size)
            columns[image, :, crop.left:crop.left + crop.width] = aa_weights(crop.width, size)
            continue
        new_h, new_w = resized_shorter_side(h, w, cfg.resize_size)
        top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
        rows[image, :, :h] = aa_weights(h, new_h)[top:top + size]
        columns[image, :, :w] = aa_weights(w, new_w)[left:left + size]
    return rows, columns


def crop_resize(images: list[torch.Tensor], uniforms: np.ndarray, cfg: ImageConfig) -> torch.Tensor:
    """The transform's crops and resizes of `images` (uint8 [3, h, w] each, on one device) as two
    batched matrix products over the batch padded to its largest image: float [B, 3, S, S] on
    that device, in 0-255."""
    device = images[0].device
    sizes = [(int(image.shape[-2]), int(image.shape[-1])) for image in images]
    height, width = max(h for h, _ in sizes), max(w for _, w in sizes)
    padded = torch.zeros((len(images), 3, height, width), dtype=torch.float32, device=device)
    for row, image in enumerate(images):
        padded[row, :, : image.shape[-2], : image.shape[-1]] = image
    rows, columns = resize_matrices(sizes, uniforms, cfg, height, width)
    rows_t = torch.from_numpy(rows).to(device)[:, None]  # [B, 1, S, H]
    columns_t = torch.from_numpy(columns).to(device)[:, None]  # [B, 1, S, W]
    return rows_t @ padded @ columns_t.transpose(-1, -2)


def finish(batch: torch.Tensor, uniforms: np.ndarray, cfg: ImageConfig) -> torch.Tensor:
    """Flips (train: where the 41st number is below 0.5, as the torch pipeline flips), then uint8
    or float normalized: [B, 3, S, S] in 0-255 in, the pipeline's output out."""
    if cfg.train:
        flip = torch.from_numpy(uniforms[:, 40] < 0.5).to(batch.device)
        batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
    if cfg.output == "uint8":
        return batch.round().clamp_(0, 255).to(torch.uint8)
    mean = torch.tensor(IMAGENET_MEAN, device=batch.device).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD, device=batch.device).view(1, 3, 1, 1) * 255
    return (batch - mean) / std


class GpuImageLoader(BadImages, DeviceAwareLoader, torch.utils.data.DataLoader):
    """A DataLoader reading and batching encoded images on the CPU, whose iterator decodes and
    transforms each batch on `device` (see the module). Bad images are handled as the torch
    pipeline's are; one that passed the header checks and that no decoder takes is found when
    its batch is decoded, and named or skipped then."""

    def __init__(self, source: str | os.PathLike[str] | Source, cfg: ImageConfig, through: str | None,
                 device: str) -> None:
        dataset, sampler = image_dataset(source, cfg, through)
        super().__init__(_Encoded(dataset.source, cfg, through), batch_sampler=sampler, collate_fn=_gather,
                         **dataloader_options(cfg.workers, cfg.prefetch, preload=WORKER_MODULES))
        self.config, self.through, self.device = cfg, through, torch.device(device)
        self._problems: set[str] = set()
        self._stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None

    def use_device(self, device_type: str) -> None:
        if device_type != self.device.type:
            raise ConfigError(f"torch-gpu makes its batches on {self.device.type}, and the run's device is "
                              f"{device_type}: run it with --device {self.device.type}")
        self.pin_memory = False  # the batches are made on the device

    def thread_roles(self) -> tuple[tuple[str, int], ...]:
        roles = dict(super().thread_roles())
        return (*roles.items(), (f"decode and transforms on {self.device.type}", 1))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for (payloads, names, uniforms), labels in self.checked(super().__iter__()):
            if self._stream is None:
                made = self._on_device(payloads, names, uniforms, labels)
            else:
                with torch.cuda.stream(self._stream):
                    made = self._on_device(payloads, names, uniforms, labels)
                self._stream.synchronize()  # the consumer's stream reads them next
                for tensor in made:
                    tensor.record_stream(torch.cuda.current_stream(self.device))
            if made is not None and len(made[1]):
                yield made

    def _on_device(self, payloads: list[torch.Tensor], names: list[str], uniforms: np.ndarray,
                   labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        labels = labels.to(self.device)
        if self.through == "read":
            return torch.tensor([float(p.numel()) for p in payloads], device=self.device), labels
        images = self._decoded(payloads, names)
        kept = [row for row, image in enumerate(images) if image is not None]
        if len(kept) < len(images):  # skipped: the batch goes on without them
            images, uniforms, labels = [images[row] for row in kept], uniforms[kept], labels[kept]
        if not images:
            return torch.empty(0, device=self.device), labels
        if self.through == "decode":
            return torch.stack([image[0, 0, 0].float() for image in images]), labels
        batch = finish(crop_resize(images, uniforms, self.config), uniforms, self.config)
        return (batch[:, 0, 0, 0].float() if self.through == "transform" else batch), labels

    def _decoded(self, payloads: list[torch.Tensor], names: list[str]) -> list[torch.Tensor | None]:
        """Each payload as uint8 [3, H, W] on the device: the JPEGs in one batched call; where that
        call fails, each on its own, then on the CPU; None for one no decoder takes (counted)."""
        from torchvision.io import ImageReadMode, decode_jpeg

        out: list[torch.Tensor | None] = [p.to(self.device) if p.dim() == 3 else None for p in payloads]
        jpegs = [row for row, p in enumerate(payloads) if p.dim() == 1]
        if not jpegs:
            return out
        try:
            decoded = decode_jpeg([payloads[row] for row in jpegs], mode=ImageReadMode.RGB, device=self.device)
        except RuntimeError:
            decoded = [self._one(payloads[row], names[row]) for row in jpegs]
        for row, image in zip(jpegs, decoded):
            out[row] = image
        return out

    def _one(self, payload: torch.Tensor, name: str) -> torch.Tensor | None:
        from torchvision.io import ImageReadMode, decode_jpeg

        try:
            return decode_jpeg(payload, mode=ImageReadMode.RGB, device=self.device)
        except RuntimeError:
            pass
        try:  # a JPEG the device's decoder does not take (CMYK, for one): the CPU's decoder
            image = decode(payload.numpy().tobytes())
            return image.to(self.device)
        except (RuntimeError, OSError) as exc:
            self.bad(f"{name}: cannot decode ({exc})")
            return None


def gpu_device() -> str:
    """"cuda", or ConfigError in one line where torch sees no GPU."""
    if not torch.cuda.is_available():
        raise ConfigError("torch-gpu decodes and transforms on a CUDA GPU, and torch sees none on this machine "
                          "(torch.cuda.is_available() is False); use torch or torch-threads here")
    return "cuda"


def build_gpu_loader(source: str | os.PathLike[str] | Source, cfg: ImageConfig) -> GpuImageLoader:
    """The torch-gpu loader on CUDA (see :func:`gpu_loader`)."""
    return GpuImageLoader(source, cfg, None, gpu_device())


def build_gpu_prefix(source: str | os.PathLike[str] | Source, cfg: ImageConfig, through: str) -> GpuImageLoader:
    """The torch-gpu loader stopped after the sample stage `through` (read on the CPU; decode
    and transform on the device), one number a sample, for ``feedbench explain``."""
    return GpuImageLoader(source, cfg, through, gpu_device())


def build_gpu_loader_on(source: str | os.PathLike[str] | Source, cfg: ImageConfig, device: str,
                        through: str | None = None) -> GpuImageLoader:
    """The same loader on any device ("cpu" included): how it is tested without a GPU."""
    if through is not None and through not in SAMPLE_STAGES:
        raise ConfigError(f"through must be one of {', '.join(SAMPLE_STAGES)}, got {through!r}")
    return GpuImageLoader(source, cfg, through, device)


def gpu_loader(
    source: str | os.PathLike[str] | Source,
    *,
    train: bool = True,
    batch_size: int = 64,
    workers: int | str | None = None,
    prefetch: int | str = 2,
    shuffle: bool = True,
    seed: int = 0,
    image_size: int = 224,
    output: str = "float",
    drop_last: bool | None = None,
    on_error: str = "raise",
    num_shards: int = 1,
    shard_index: int = 0,
) -> GpuImageLoader:
    """:func:`feedbench.vision.torch_loader`'s pipeline with decode and transforms on the GPU:
    the same keywords and meanings; batches (images [B, 3, S, S], labels int64 [B]) on the
    device. `workers` are the DataLoader processes that read and batch the encoded images.

    Raises:
        ConfigError: A keyword out of range; no CUDA GPU visible to torch.
        DatasetError: The source is missing or empty; in iteration, a bad image ("raise").
    """
    cfg = ImageConfig(
        train=train, batch_size=batch_size, workers=workers, prefetch=prefetch, shuffle=shuffle, seed=seed,
        image_size=image_size, output=output, drop_last=drop_last, on_error=on_error, num_shards=num_shards,
        shard_index=shard_index,
    )
    return build_gpu_loader(source, cfg)

