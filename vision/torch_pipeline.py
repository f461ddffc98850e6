"""The image pipeline in PyTorch: a DataLoader over torchvision.io decoding and transforms v2.

Stages, in the order tf_pipeline.py has them: sample list (files or Parquet rows) ->
shuffle (per epoch, seeded) -> read + decode + transform (in `workers` processes) ->
batch (collate) -> prefetch (`prefetch` batches per worker) -> pinned memory.
"""

from __future__ import annotations

import io
import logging
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import functional as F

from feedbench.pipelines.core import checks
from feedbench.pipelines.core.batch_format import IMAGENET_MEAN, IMAGENET_STD
from feedbench.pipelines.core.dataloader import DeviceAwareLoader, dataloader_options
from feedbench.pipelines.core.errors import DatasetError
from feedbench.pipelines.core.stats import LoaderStats, batches_ahead
from feedbench.vision._common import (
    SAMPLE_STAGES,
    ImageConfig,
    Source,
    decode_problem,
    looks_like_image,
    random_resized_crop,
    resolve_source,
    shard_positions,
)

log = logging.getLogger(__name__)

_UNIFORMS = 41  # 40 for the crop's ten tries, 1 for the flip
# What a worker needs, imported once by the fork server the workers start from.
WORKER_MODULES = ("torch", "numpy", "PIL.Image", "torchvision.io", "torchvision.transforms.v2.functional", __name__)


class _Images(torch.utils.data.Dataset):
    """Map-style dataset of one sample per (epoch, index) key: bytes -> transformed image.

    A sample that cannot be read or decoded comes back as (None, label, reason) rather than
    raising in the worker, so that the loader can raise in the main process naming the file
    ("raise") or drop and count it ("skip").
    """

    def __init__(self, source: Source, cfg: ImageConfig, through: str | None = None) -> None:
        self.source, self.cfg, self.through = source, cfg, through
        self._shards = source.shards() if source.kind == "parquet" else None

    def __len__(self) -> int:
        return len(self.source)

    def _read(self, index: int) -> tuple[bytes | None, int, str, str | None]:
        """(bytes, label, name, problem) of sample `index`."""
        if self._shards is None:
            path, label = self.source.samples[index]
            try:
                with open(path, "rb") as handle:
                    return handle.read(), label, path, None
            except OSError as exc:
                return None, label, path, f"unreadable ({exc.strerror})"
        row = self._shards.row(index)
        name = f"{self.source.root} row {index}" + (f" ({row['path']})" if row.get("path") else "")
        return row["image"], int(row["label"]), name, None

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor | None, int, str | None]:
        epoch, index = key
        data, label, name, problem = self._read(index)
        problem = problem or looks_like_image(data)
        if problem:
            return None, label, f"{name}: {problem}"
        if self.through == "read":  # a prefix pipeline (build_torch_prefix): one number a sample
            return torch.tensor(float(len(data))), label, None
        problem = decode_problem(data)
        if problem:
            return None, label, f"{name}: {problem}"
        try:
            image = decode(data)
        except (RuntimeError, OSError) as exc:
            return None, label, f"{name}: cannot decode ({_decoder_message(exc)})"
        if image.ndim == 4:  # an animated GIF: its first frame, as tf.data's decode_image takes
            image = image[0]
        if self.through == "decode":
            return image[0, 0, 0].float(), label, None
        rng = np.random.default_rng([self.cfg.seed, epoch, index])
        image = transform(image, self.cfg, rng.random(_UNIFORMS))
        return (image[0, 0, 0].float() if self.through == "transform" else image), label, None


def decode(data: bytes) -> torch.Tensor:
    """An image's bytes as uint8 RGB [3, H, W] (an animated GIF: [frames, 3, H, W]).

    torchvision decodes JPEG, PNG, GIF and WebP; a BMP, which tf.data decodes and torchvision
    does not, is decoded with Pillow, so that both pipelines take the same files.
    """
    if data[:2] == b"BM":
        with Image.open(io.BytesIO(data)) as bitmap:
            return torch.from_numpy(np.array(bitmap.convert("RGB"))).permute(2, 0, 1).contiguous()
    return decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)


def _decoder_message(exc: BaseException) -> str:
    """The decoder's reason without torchvision's source location ("decode_jpeg, /path/decode_jpeg.cpp:171, ")."""
    line = (str(exc).splitlines() or [type(exc).__name__])[0]
    return re.sub(r"^\w+, \S+\.cpp:\d+, ", "", line)


def transform(image: torch.Tensor, cfg: ImageConfig, u: np.ndarray) -> torch.Tensor:
    """The train or eval transform of one decoded uint8 RGB image [3, H, W].

    Args:
        image: Decoded image.
        cfg: The pipeline's configuration.
        u: 41 uniform numbers in [0, 1): the crop's ten tries and the flip (train only).
    """
    size = [cfg.image_size, cfg.image_size]
    if cfg.train:
        crop = random_resized_crop(tuple(u[:40]), image.shape[-2], image.shape[-1])
        image = F.resized_crop(image, crop.top, crop.left, crop.height, crop.width, size, antialias=True)
        if u[40] < 0.5:
            image = F.horizontal_flip(image)
    else:
        image = F.center_crop(F.resize(image, [cfg.resize_size], antialias=True), size)
    if cfg.output == "uint8":
        return image.contiguous()
    return F.normalize(F.to_dtype(image, torch.float32, scale=True), IMAGENET_MEAN, IMAGENET_STD)


class _EpochSampler(torch.utils.data.Sampler):
    """Yields (epoch, index) keys of the shard's samples; each pass over it is the next epoch.

    The shard (``num_shards``, ``shard_index``) is a fixed subset of the source's indices,
    every ``num_shards``-th from ``shard_index`` (tf.data's ``Dataset.shard`` before the
    shuffle; not a DistributedSampler, which re-deals each epoch and pads). With `shuffle`,
    the order is a permutation of the shard drawn from (seed, epoch): reproducible for a
    seed whatever the number of workers. Parquet rows are shuffled in blocks (row groups
    in random order, the shard's rows shuffled within each), so a batch reads one or two
    row groups.
    """

    def __init__(self, source: Source, cfg: ImageConfig) -> None:
        self.positions = shard_positions(source, cfg)
        self.shuffle, self.seed = cfg.shuffle, cfg.seed
        self.groups = None
        if source.kind == "parquet":  # each row group's rows of the shard
            n, k = cfg.num_shards, cfg.shard_index
            self.groups = [range(g.start + (k - g.start) % n, g.start + g.rows, n) for g in source.shards().groups]
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.positions)

    def _order(self, rng: np.random.Generator) -> np.ndarray:
        if self.groups is None:
            return _indices(self.positions)[rng.permutation(len(self.positions))]
        blocks = [_indices(rows)[rng.permutation(len(rows))] for rows in self.groups]
        return np.concatenate([blocks[k] for k in rng.permutation(len(blocks))])

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        order = self._order(np.random.default_rng([self.seed, epoch])) if self.shuffle else self.positions
        for index in order:
            yield epoch, int(index)


def _indices(positions: range) -> np.ndarray:
    return np.arange(positions.start, positions.stop, positions.step)


def collate(
    samples: list[tuple[torch.Tensor | None, int, str | None]],
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Stacks the good samples into one images tensor; keeps the reasons for the bad ones.

    The stacking is ``default_collate``'s: in a worker it stacks straight into shared memory,
    where ``torch.stack`` stacked into ordinary memory that was copied again to be sent (the
    pipeline went from 0.79x to 1.02x of the hand-written one on one core: docs/benchmarks.md).
    """
    good = [(image, label) for image, label, _ in samples if image is not None]
    problems = [problem for _, _, problem in samples if problem is not None]
    if good:
        images = torch.utils.data.default_collate([image for image, _ in good])
    else:
        images = torch.empty((0,) + tuple(samples[0][0].shape if samples[0][0] is not None else (3, 0, 0)))
    labels = torch.tensor([label for _, label in good], dtype=torch.int64)
    return images, labels, problems


class BadImages:
    """What both torch image loaders (DataLoader, threads) do with the bad images a batch
    carries, in the consuming thread: "raise" raises DatasetError naming the file; "skip" drops
    and counts it (``skipped``; :meth:`loader_stats` reports it, and the consumer loop records
    it in RunResult.skipped).

    ``skipped`` counts bad samples, not encounters: a bad file met again in a later epoch is
    dropped again but counted (and logged) once, as the tf.data pipeline counts it.
    """

    config: ImageConfig
    dataset: _Images
    _problems: set[str]
    thread_roles: Callable[[], tuple[tuple[str, int], ...]]  # the loader's own

    @property
    def skipped(self) -> int:
        return len(self._problems)

    def loader_stats(self) -> LoaderStats:
        """What the consumer loop records: skips, classes (folders), batches made ahead."""
        classes = len(self.dataset.source.classes) if self.dataset.source.classes else None
        return LoaderStats(skipped=self.skipped, num_classes=classes,
                           batches_ahead=batches_ahead(self.config.workers, self.config.prefetch),
                           threads=self.thread_roles())

    def bad(self, problem: str) -> None:
        """A bad image: raises DatasetError naming it ("raise"), or counts it once ("skip")."""
        if self.config.on_error == "raise":
            raise DatasetError(problem)
        if problem not in self._problems:
            self._problems.add(problem)
            log.warning("skipped %s", problem)

    def checked(self, batches: Iterator[tuple[Any, torch.Tensor, list[str]]]) -> Iterator[tuple[Any, torch.Tensor]]:
        for images, labels, problems in batches:
            for problem in problems:
                self.bad(problem)
            if len(labels):
                yield images, labels


class ImageLoader(BadImages, DeviceAwareLoader, torch.utils.data.DataLoader):
    """A DataLoader of (images [B, 3, S, S], labels int64 [B]) that handles bad images in
    the main process (:class:`BadImages`)."""

    def __init__(self, dataset: _Images, cfg: ImageConfig, **kwargs: Any) -> None:
        super().__init__(dataset, **kwargs)
        self.config = cfg
        self._problems: set[str] = set()

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        try:
            yield from self.checked(super().__iter__())
        except DatasetError:  # a bad image, raised here in the main process
            self.end_workers()
            raise


def image_dataset(source: str | os.PathLike[str] | Source, cfg: ImageConfig, through: str | None,
                  ) -> tuple[_Images, torch.utils.data.BatchSampler]:
    """The dataset and batch sampler of the torch image loaders (`through`: a prefix's last stage)."""
    if through is not None:
        checks.choice("through", through, SAMPLE_STAGES)
    resolved = resolve_source(source)
    return _Images(resolved, cfg, through), torch.utils.data.BatchSampler(_EpochSampler(resolved, cfg),
                                                                          cfg.batch_size, cfg.drop_last)


def build_torch_loader(source: str | os.PathLike[str] | Source, cfg: ImageConfig) -> ImageLoader:
    """The DataLoader for `source` under `cfg` (see :func:`torch_loader`)."""
    return _loader(source, cfg, None)


def build_torch_prefix(source: str | os.PathLike[str] | Source, cfg: ImageConfig, through: str) -> ImageLoader:
    """The pipeline of :func:`build_torch_loader` stopped after the sample stage `through`
    ("read", "decode" or "transform": _common.SAMPLE_STAGES): each sample becomes one number
    (its size in bytes, or its first pixel), batched as the loader batches, so that
    ``feedbench explain`` can cost a stage as the difference between two prefixes."""
    return _loader(source, cfg, through)


def _loader(source: str | os.PathLike[str] | Source, cfg: ImageConfig, through: str | None) -> ImageLoader:
    dataset, sampler = image_dataset(source, cfg, through)
    return ImageLoader(dataset, cfg, batch_sampler=sampler, collate_fn=collate,
                       **dataloader_options(cfg.workers, cfg.prefetch, preload=WORKER_MODULES))


def torch_loader(
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
) -> ImageLoader:
    """An ImageNet-style image DataLoader: the torch half of a mirrored pair.

    Train: decode, RandomResizedCrop to `image_size` (scale 0.08-1, ratio 3/4-4/3), random
    horizontal flip, float conversion and ImageNet normalization. Eval: resize the shorter
    side to `image_size` x 256/224, center crop, normalize. Grayscale, CMYK and PNG images
    come out RGB. Batches are ``(images [B, 3, S, S] NCHW, labels int64 [B])``, float32 or
    uint8 (`output="uint8"`: normalize on the device; the consumer loop's workloads do).

    The keywords mean what they mean for :func:`feedbench.vision.tf_dataset`; differences
    that cannot be avoided: `workers` are processes here (threads in tf.data),
    `prefetch` counts batches per worker (DataLoader ``prefetch_factor``), "autotune" for
    `workers` means one per core and for `prefetch` means 2 (torch has no autotuning); the
    crops drawn for a seed differ from tf's (other random streams) and torchvision's and
    TensorFlow's antialiased resize kernels differ slightly (docs/vision.md measures it).

    Args:
        source: An ImageFolder root (yours, only read) or a folder of Parquet image shards.
        train: Train transform (random) or eval transform (deterministic).
        batch_size: Images per batch.
        workers: DataLoader worker processes; None: one per core less one; 0: in process.
        prefetch: Batches each worker makes ahead.
        shuffle: Reshuffle every epoch (seeded).
        seed: Seed of the shuffle, crops and flips: the same seed gives the same batches.
        image_size: Output side.
        output: "float" or "uint8".
        drop_last: Drop the last short batch; None: when training.
        on_error: "raise" or "skip" for images that cannot be read or decoded.
        num_shards: Shards the source's images are dealt into; 1: the whole source.
        shard_index: The shard read, 0 to num_shards - 1: the images i of the source's
            listing order (files in torchvision's order, Parquet rows in order) with
            ``i % num_shards == shard_index``, the same every epoch; the shuffle shuffles
            within the shard, and an epoch is one pass over it. A subset of indices with
            ``tf.data.Dataset.shard`` semantics (before the shuffle), so that
            :func:`feedbench.vision.tf_dataset`'s shard k holds the same images; not a
            ``DistributedSampler`` (which re-deals every epoch and pads).

    Raises:
        ConfigError: A keyword out of range; more shards than images.
        DatasetError: The source is missing or empty; in iteration, a bad image ("raise").
    """
    cfg = ImageConfig(
        train=train, batch_size=batch_size, workers=workers, prefetch=prefetch, shuffle=shuffle, seed=seed,
        image_size=image_size, output=output, drop_last=drop_last, on_error=on_error, num_shards=num_shards,
        shard_index=shard_index,
    )
    return build_torch_loader(source, cfg)


