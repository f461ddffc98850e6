"""The image pipeline in NVIDIA DALI (the ``dali`` backend, an optional extra: ``pip install
'feedbench[dali]'``).

An ImageFolder is read by DALI's file reader (``fn.readers.file``, its own threads); Parquet
shards by an external source that reads the rows of each batch in the pipeline's feeding
thread (DALI has no Parquet reader). Train: ``fn.decoders.image_random_crop`` on the "mixed"
device (nvJPEG: the crop is chosen before decoding, from RandomResizedCrop's area 0.08-1 and
ratio 3/4-4/3, ten tries), an antialiased resize to the output side, and
``fn.crop_mirror_normalize`` with a coin-flip mirror; eval: ``fn.decoders.image``, the shorter
side resized to ``image_size x 256/224`` (antialiased), and the center crop in
``crop_mirror_normalize``. Batches (images [B, 3, S, S] float normalized or uint8, labels int64
[B]) come out on the GPU through ``DALIGenericIterator``.

What the keywords mean for it: `workers` is the pipeline's CPU threads (``num_threads``; 0 is
taken as 1: DALI cannot run without one), `prefetch` its queue depth
(``prefetch_queue_depth``, at least 1), `seed` its seed. What cannot be the same: DALI draws its
own crops, flips and, for a folder, its own shuffle (``shuffle_after_epoch``; Parquet rows are
shuffled per epoch from (seed, epoch) in the feeding thread); a GIF is not decoded (an error,
or a skip and count); every file's header is checked when the loader is built (DALI stops on a
bad file without naming it, so bad files are found first: named, or dropped and counted). On a
machine where torch sees no GPU the backend says so in one line; the same pipeline runs on the
CPU (``device="cpu"``, :func:`build_dali_loader_on`), which is how it is tested there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from feedbench.pipelines.core.batch_format import IMAGENET_MEAN, IMAGENET_STD
from feedbench.pipelines.core.checks import AUTOTUNE
from feedbench.pipelines.core.errors import ConfigError, DatasetError, MissingDependencyError
from feedbench.pipelines.core.machine import usable_cpus
from feedbench.pipelines.core.stats import LoaderStats
from feedbench.vision._common import (
    RATIO,
    SCALE,
    ImageConfig,
    Source,
    decode_problem,
    looks_like_image,
    resolve_source,
    shard_positions,
)

_GIF = (b"GIF87a", b"GIF89a")


def _dali() -> Any:
    try:
        import nvidia.dali as dali
    except ImportError:
        raise MissingDependencyError("the dali backend needs NVIDIA DALI: pip install 'feedbench[dali]' "
                                     "(nvidia-dali-cuda120)") from None
    return dali


def dali_device() -> str:
    """"gpu" where DALI is installed and torch sees a GPU; one line (an error) otherwise."""
    _dali()
    import torch

    if not torch.cuda.is_available():
        raise ConfigError("dali decodes on a CUDA GPU (nvJPEG), and torch sees none on this machine "
                          "(torch.cuda.is_available() is False); use torch or torch-threads here")
    return "gpu"


class DaliImageLoader:
    """Batches (images [B, 3, S, S], labels int64 [B]) of a DALI pipeline (see the module).

    Each ``iter()`` is one epoch, as the other loaders' are.
    """

    def __init__(self, source: str | os.PathLike[str] | Source, cfg: ImageConfig, device: str) -> None:
        _dali()
        self.config, self.device = cfg, device
        self.source = resolve_source(source)
        self.threads = max(1, len(usable_cpus()) if cfg.workers == AUTOTUNE else int(cfg.workers))
        self.depth = 2 if cfg.prefetch == AUTOTUNE else max(1, int(cfg.prefetch))
        positions = shard_positions(self.source, cfg)
        order = np.asarray(positions)
        self._problems: list[str] = []
        self.keys, self.labels = self._checked(order)
        if not self.keys:
            raise DatasetError(f"{self.source.root}: no image of the shard could be read")
        self._pipe: Any = None
        self._iterator: Any = None

    def _checked(self, order: np.ndarray) -> tuple[list[Any], list[int]]:
        """The readable samples in `order`: (files or row indices, labels); the bad ones named
        ("raise") or dropped and counted ("skip")."""
        keys, labels = [], []
        shards = self.source.shards() if self.source.kind == "parquet" else None
        for index in order.tolist():
            if shards is None:
                path, label = self.source.samples[index]
                try:
                    with open(path, "rb") as handle:
                        data = handle.read()
                except OSError as exc:
                    self._bad(f"{path}: unreadable ({exc.strerror})")
                    continue
                name, key = path, path
            else:
                row = shards.row(index)
                data, label, name, key = row["image"], int(row["label"]), f"{self.source.root} row {index}", index
            problem = looks_like_image(data) or decode_problem(data)
            if not problem and data[:6] in _GIF:
                problem = "a GIF, which DALI does not decode"
            if problem:
                self._bad(f"{name}: {problem}")
                continue
            keys.append(key)
            labels.append(int(label))
        return keys, labels

    def _bad(self, problem: str) -> None:
        if self.config.on_error == "raise":
            raise DatasetError(problem)
        self._problems.append(problem)

    @property
    def skipped(self) -> int:
        return len(self._problems)

    def loader_stats(self) -> LoaderStats:
        classes = len(self.source.classes) if self.source.classes else None
        return LoaderStats(skipped=self.skipped, num_classes=classes, batches_ahead=self.depth,
                           threads=(("DALI CPU threads", self.threads), (f"decode on {self.device}", 1)))

    def _build(self) -> Any:
        dali = _dali()
        from nvidia.dali import fn, types

        cfg, size = self.config, self.config.image_size
        decode_on = "mixed" if self.device == "gpu" else "cpu"

        @dali.pipeline_def(batch_size=cfg.batch_size, num_threads=self.threads, prefetch_queue_depth=self.depth,
                           device_id=0 if self.device == "gpu" else None, seed=cfg.seed)
        def pipeline() -> Any:
            if self.source.kind == "folder":
                encoded, labels = fn.readers.file(files=self.keys, labels=self.labels, name="reader",
                                                  shuffle_after_epoch=cfg.shuffle, seed=cfg.seed,
                                                  pad_last_batch=False)
            else:
                rows = _ParquetBatches(self.source, self.keys, self.labels, cfg)
                encoded, labels = fn.external_source(source=rows, num_outputs=2, batch=True,
                                                     dtype=[types.UINT8, types.INT32])
            if cfg.train:
                images = fn.decoders.image_random_crop(encoded, device=decode_on, output_type=types.RGB,
                                                       random_area=list(SCALE), random_aspect_ratio=list(RATIO),
                                                       num_attempts=10, seed=cfg.seed)
                images = fn.resize(images, resize_x=size, resize_y=size, antialias=True)
                mirror = fn.random.coin_flip(probability=0.5, seed=cfg.seed + 1)
                where = {}
            else:
                images = fn.decoders.image(encoded, device=decode_on, output_type=types.RGB)
                (new_h, new_w), where = _eval_window(fn.peek_image_shape(encoded, dtype=types.INT64), cfg, fn, types)
                images = fn.resize(images, resize_x=new_w, resize_y=new_h, antialias=True)
                mirror = 0
            as_uint8 = cfg.output == "uint8"
            images = fn.crop_mirror_normalize(
                images, crop=(size, size), mirror=mirror, output_layout="CHW", **where,
                dtype=types.UINT8 if as_uint8 else types.FLOAT,
                mean=[0.0] * 3 if as_uint8 else [m * 255 for m in IMAGENET_MEAN],
                std=[1.0] * 3 if as_uint8 else [s * 255 for s in IMAGENET_STD])
            return images, labels

        pipe = pipeline()
        pipe.build()
        return pipe

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        import torch
        from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

        if self._iterator is None:
            self._pipe = self._build()
            policy = LastBatchPolicy.DROP if self.config.drop_last else LastBatchPolicy.PARTIAL
            named = {"reader_name": "reader"} if self.source.kind == "folder" else {}
            self._iterator = DALIGenericIterator(self._pipe, ["images", "labels"], last_batch_policy=policy,
                                                 auto_reset=True, **named)
        for (batch,) in self._iterator:
            yield batch["images"], batch["labels"].reshape(-1).to(torch.int64)


def _eval_window(shape: Any, cfg: ImageConfig, fn: Any, types: Any) -> tuple[tuple[Any, Any], dict[str, Any]]:
    """In the DALI graph, from each image's (H, W, C): torchvision's size after resizing the
    shorter side (the longer one truncated, as ``_common.resized_shorter_side``) and the center
    crop's position, rounded half to even as torchvision rounds it (DALI's own center rounds
    half up: a one-pixel shift on half the images). ((height, width), crop_pos arguments)."""
    height, width, short, size = shape[0], shape[1], cfg.resize_size, cfg.image_size
    wide = fn.cast(height <= width, dtype=types.INT64)
    new_h = wide * short + (1 - wide) * ((short * height) // width)
    new_w = wide * ((short * width) // height) + (1 - wide) * short

    def position(new: Any) -> Any:
        spare = new - size
        anchor = spare // 2 + (spare % 2) * ((spare // 2) % 2)  # round(spare / 2), half to even
        return fn.cast(anchor, dtype=types.FLOAT) / fn.cast(spare + (spare == 0), dtype=types.FLOAT)

    as_float = {"dtype": types.FLOAT}
    sizes = (fn.cast(new_h, **as_float), fn.cast(new_w, **as_float))
    return sizes, {"crop_pos_y": position(new_h), "crop_pos_x": position(new_w)}


class _ParquetBatches:
    """DALI's batch source for Parquet shards: each pass is one epoch of the kept rows, in their
    order or (shuffle) in a permutation drawn from (seed, epoch), in batches of `batch_size` (the
    last one shorter, unless `drop_last`): (encoded bytes, labels) per batch."""

    def __init__(self, source: Source, rows: list[int], labels: list[int], cfg: ImageConfig) -> None:
        self.shards, self.rows, self.labels = source.shards(), rows, labels
        self.batch_size, self.drop_last, self.shuffle, self.seed = cfg.batch_size, cfg.drop_last, cfg.shuffle, cfg.seed
        self.epoch = 0

    def __iter__(self) -> Iterator[tuple[list[np.ndarray], list[np.ndarray]]]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        order = np.arange(len(self.rows))
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.rows))
        for start in range(0, len(order), self.batch_size):
            chosen = order[start:start + self.batch_size].tolist()
            if self.drop_last and len(chosen) < self.batch_size:
                return
            encoded = [np.frombuffer(self.shards.row(self.rows[k])["image"], dtype=np.uint8) for k in chosen]
            yield encoded, [np.asarray([self.labels[k]], dtype=np.int32) for k in chosen]


def build_dali_loader(source: str | os.PathLike[str] | Source, cfg: ImageConfig) -> DaliImageLoader:
    """The dali loader on the GPU (see :func:`dali_loader`)."""
    return DaliImageLoader(source, cfg, dali_device())


def build_dali_prefix(source: str | os.PathLike[str] | Source, cfg: ImageConfig, through: str) -> DaliImageLoader:
    """DALI's stages run fused in its own graph (the crop is chosen inside the decoder), so a
    prefix cannot be cut out of it: ``feedbench explain`` reports its stages as not measured."""
    raise ConfigError(f"dali has no prefix pipeline through {through!r}: its decoder crops as it decodes, so its "
                      "stages cannot be measured apart")


def build_dali_loader_on(source: str | os.PathLike[str] | Source, cfg: ImageConfig, device: str) -> DaliImageLoader:
    """The same loader on "gpu" or "cpu" (how it is tested without a GPU)."""
    if device not in ("gpu", "cpu"):
        raise ConfigError(f"device must be 'gpu' or 'cpu', got {device!r}")
    return DaliImageLoader(source, cfg, device)


def dali_loader(
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
) -> DaliImageLoader:
    """:func:`feedbench.vision.torch_loader`'s preprocessing in NVIDIA DALI, decoding on the GPU:
    the same keywords (meanings in the module's docstring); batches on the GPU.

    Raises:
        MissingDependencyError: DALI is not installed.
        ConfigError: A keyword out of range; no CUDA GPU visible to torch.
        DatasetError: The source is missing or empty; a bad image ("raise"), found when built.
    """
    cfg = ImageConfig(
        train=train, batch_size=batch_size, workers=workers, prefetch=prefetch, shuffle=shuffle, seed=seed,
        image_size=image_size, output=output, drop_last=drop_last, on_error=on_error, num_shards=num_shards,
        shard_index=shard_index,
    )
    return build_dali_loader(source, cfg)
