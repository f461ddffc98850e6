"""What both image pipelines share without a framework: the configuration, ImageNet
constants, crop geometry, sources and file checks.

``torch_pipeline`` and ``tf_pipeline`` import this module; neither framework is imported here.
"""

from __future__ import annotations

import math
import os
import zlib
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from feedbench.datasets.folders import scan_image_folder
from feedbench.pipelines.core import checks, sharding
from feedbench.pipelines.core.checks import ON_ERROR
from feedbench.pipelines.core.errors import DatasetError
from feedbench.pipelines.core.machine import default_workers
from feedbench.pipelines.core.remote import RayOptions, ServiceOptions

if TYPE_CHECKING:
    from feedbench.datasets.parquet import ParquetShards

SCALE = (0.08, 1.0)  # RandomResizedCrop's area range
RATIO = (3 / 4, 4 / 3)  # and aspect ratio range
EVAL_RESIZE = 256 / 224  # eval: resize the shorter side to image_size x this, then center crop
OUTPUTS = ("float", "uint8")
# The stages inside one sample, in order; a prefix pipeline (``build_*_prefix``) stops after
# one of them and gives one number a sample, so that `feedbench explain` can cost each stage
# as the difference between consecutive prefixes (docs/explain.md). Batching, delivery, the
# copy and the step follow them.
SAMPLE_STAGES = ("read", "decode", "transform")


@dataclass(frozen=True)
class ImageConfig:
    """The settings of an image pipeline; the same object drives both frameworks.

    Attributes:
        train: Train transform (random resized crop, flip) or eval (resize, center crop).
        batch_size: Images per batch.
        workers: Parallel decoders: DataLoader worker processes, or tf.data's
            ``num_parallel_calls`` ("autotune" for AUTOTUNE; torch takes it as the default).
        prefetch: Batches made ahead: DataLoader ``prefetch_factor`` (per worker), tf.data
            ``prefetch`` buffer ("autotune" allowed; torch takes it as 2).
        shuffle: Shuffle the file order every epoch.
        seed: Seed of the shuffle and of every random crop and flip.
        image_size: Side of the square output.
        output: "float" (float32, ImageNet-normalized) or "uint8" (normalize on the device).
        drop_last: Drop a last short batch; None means "when training".
        on_error: "raise" (an unreadable image is an error naming its file) or "skip"
            (dropped and counted).
        num_shards: Shards the source's images are dealt into (1: the whole source).
        shard_index: The shard this pipeline reads, 0 to num_shards - 1.

    Sharding (:mod:`feedbench.pipelines.core.sharding`) is static and the same in both
    frameworks: the images of the source in its listing order (a folder's files in
    torchvision's order, Parquet rows in file and row order, TFDS examples in TFDS's order),
    before any shuffle, are dealt round-robin, image i to shard ``i % num_shards``; the
    pipeline reads only its shard, shuffles within it each epoch, and an epoch is one pass
    over it. These are ``tf.data.Dataset.shard(num_shards, shard_index)`` semantics, applied
    before the shuffle on both sides (torch takes the subset of indices), so that both
    frameworks' shard k hold the same images; unlike torch's ``DistributedSampler``, nothing
    is re-dealt each epoch or padded. More shards than images is a ConfigError. A bad image
    is its shard's: checked, raised or skipped and counted only there.
    """

    train: bool = True
    batch_size: int = 64
    workers: int | str | None = None
    prefetch: int | str = 2
    shuffle: bool = True
    seed: int = 0
    image_size: int = 224
    output: str = "float"
    drop_last: bool | None = None
    on_error: str = "raise"
    num_shards: int = 1
    shard_index: int = 0

    def __post_init__(self) -> None:
        if self.workers is None:
            object.__setattr__(self, "workers", default_workers())
        if self.drop_last is None:
            object.__setattr__(self, "drop_last", self.train)
        checks.boolean("train", self.train)
        checks.boolean("shuffle", self.shuffle)
        checks.boolean("drop_last", self.drop_last, none_allowed=True)
        checks.positive_int("batch_size", self.batch_size)
        checks.positive_int("image_size", self.image_size)
        checks.count_or_autotune("workers", self.workers)
        checks.count_or_autotune("prefetch", self.prefetch)
        checks.choice("output", self.output, OUTPUTS)
        checks.choice("on_error", self.on_error, ON_ERROR)
        checks.seed(self.seed)
        sharding.check(self.num_shards, self.shard_index)

    @property
    def resize_size(self) -> int:
        """The shorter side before the eval center crop."""
        return int(self.image_size * EVAL_RESIZE)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}



@dataclass(frozen=True)
class ServiceImageConfig(ServiceOptions, ImageConfig):
    """The ``tf-service`` backend's settings: an ImageConfig and where its service runs
    (:class:`~feedbench.pipelines.core.remote.ServiceOptions`)."""


@dataclass(frozen=True)
class RayImageConfig(RayOptions, ImageConfig):
    """The ``ray`` backend's settings: an ImageConfig and where its Ray cluster runs
    (:class:`~feedbench.pipelines.core.remote.RayOptions`)."""

@dataclass(frozen=True)
class Crop:
    """A crop window: top row, left column, height, width."""

    top: int
    left: int
    height: int
    width: int


def random_resized_crop(u: tuple[float, ...], height: int, width: int) -> Crop:
    """torchvision's RandomResizedCrop window, drawn from uniform numbers in [0, 1).

    Ten tries at an area in SCALE and a log-uniform aspect ratio in RATIO that fit the
    image, else a center crop of the nearest allowed ratio. `u` holds 4 numbers per try
    (area, ratio, top, left): 40 in all.
    """
    area = height * width
    log_lo, log_hi = math.log(RATIO[0]), math.log(RATIO[1])
    for attempt in range(10):
        a, r, y, x = u[4 * attempt : 4 * attempt + 4]
        target = area * (SCALE[0] + (SCALE[1] - SCALE[0]) * a)
        aspect = math.exp(log_lo + (log_hi - log_lo) * r)
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return Crop(int(y * (height - h + 1)), int(x * (width - w + 1)), h, w)
    ratio = width / height
    if ratio < RATIO[0]:
        w, h = width, int(round(width / RATIO[0]))
    elif ratio > RATIO[1]:
        h, w = height, int(round(height * RATIO[1]))
    else:
        h, w = height, width
    return Crop((height - h) // 2, (width - w) // 2, h, w)


def resized_shorter_side(height: int, width: int, size: int) -> tuple[int, int]:
    """(height, width) after resizing the shorter side to `size`, as torchvision computes it."""
    if height <= width:
        return size, int(size * width / height)
    return int(size * height / width), size


class Samples(Sequence):
    """(path, label) pairs of an image folder, held compactly: the paths relative to the root in
    one byte string and the labels in one array. Pickled (to each DataLoader worker) compressed:
    the 2,048 paths of the demo's set are 140 KB as tuples of strings, under 10 KB here, so
    that a worker starts without the parent writing more than a pipe holds.

    Args:
        root: The folder.
        samples: (path, label) pairs, the paths under `root`.
    """

    def __init__(self, root: str | os.PathLike[str], samples: Iterable[tuple[str | os.PathLike[str], int]]) -> None:
        self.root = os.fspath(root)
        pairs = [(os.path.relpath(path, self.root), int(label)) for path, label in samples]
        self._names = "\0".join(name for name, _ in pairs).encode("utf-8", "surrogateescape")
        self._labels = array("q", (label for _, label in pairs))
        self._starts = self._index()

    def _index(self) -> np.ndarray:
        """Where each name starts in the byte string (one pass in NumPy: 1.3 million paths too)."""
        if not self._labels:
            return np.zeros(0, dtype=np.int64)
        separators = np.flatnonzero(np.frombuffer(self._names, dtype=np.uint8) == 0)
        return np.concatenate(([0], separators + 1))

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, index: int) -> tuple[str, int]:  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]  # type: ignore[return-value]
        if index < 0:
            index += len(self)
        start = int(self._starts[index])
        end = int(self._starts[index + 1]) - 1 if index + 1 < len(self._starts) else len(self._names)
        name = self._names[start:end].decode("utf-8", "surrogateescape")
        return os.path.join(self.root, name), self._labels[index]

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, Sequence) else NotImplemented

    def __getstate__(self) -> tuple[str, bytes, bytes]:
        return self.root, zlib.compress(self._names, 6), self._labels.tobytes()

    def __setstate__(self, state: tuple[str, bytes, bytes]) -> None:
        self.root, names, labels = state
        self._names = zlib.decompress(names)
        self._labels = array("q")
        self._labels.frombytes(labels)
        self._starts = self._index()


@dataclass(frozen=True)
class Source:
    """Where images come from: files of an ImageFolder, or rows of Parquet shards.

    Attributes:
        kind: "folder" or "parquet".
        root: The folder or the shards' folder.
        samples: For "folder": (path, label) per image, in torchvision's order.
        classes: Class names, label i is classes[i] (folders); None for shards.
    """

    kind: str
    root: Path
    samples: Sequence[tuple[str, int]] = ()
    classes: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.samples) if self.kind == "folder" else len(self.shards())

    def shards(self) -> ParquetShards:
        from feedbench.datasets.parquet import ParquetShards  # pyarrow: only for shards

        return ParquetShards(self.root)


def shard_positions(source: Source, cfg: ImageConfig) -> range:
    """The positions in `source`'s listing order (a folder's files, or Parquet rows) of the
    images of `cfg`'s shard (see ImageConfig: image i is shard ``i % num_shards``'s).

    Raises:
        ConfigError: More shards than images.
    """
    return sharding.positions(len(source), cfg.num_shards, cfg.shard_index, str(source.root))


def resolve_source(source: str | os.PathLike[str] | Source) -> Source:
    """An ImageFolder root or a folder of Parquet image shards, as a Source.

    Raises:
        DatasetError: Missing, empty, a class folder without images, or neither layout.
    """
    if isinstance(source, Source):
        return source
    root = Path(source)
    if not root.exists():
        raise DatasetError(f"{root}: no such image folder or Parquet shards")
    if root.is_file() and root.suffix == ".parquet" or root.is_dir() and any(root.glob("*.parquet")):
        from feedbench.datasets.parquet import ParquetShards

        shards = ParquetShards(root)
        missing = {"image", "label"} - set(shards.schema.names)
        if missing:
            raise DatasetError(f"{root}: Parquet shards without the column(s) {', '.join(sorted(missing))}")
        return Source("parquet", root)
    classes, samples = scan_image_folder(root)
    return Source("folder", root, Samples(root, samples), tuple(classes))


# Pillow's default decompression-bomb limit (Image.MAX_IMAGE_PIXELS): both frameworks refuse
# an image whose header claims more pixels, before decoding it. A 1.6 KB JPEG claiming
# 65000x65000 made torchvision allocate 21 GB; TensorFlow refused it with an unnamed error.
MAX_PIXELS = 1024 * 1024 * 1024 // 4 // 3
# The header that looks_like_image reads an image's size from: a JPEG's frame header comes
# after its APPn segments (EXIF at most 64 KiB, ICC profiles), so up to this many bytes.
HEAD_BYTES = 128 * 1024
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header, walking its segments; None if it is not in
    the first HEAD_BYTES bytes of `data`."""
    end = min(len(data), HEAD_BYTES)
    i = 2
    while i + 9 < end:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _SOF:
            return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
        if marker == 0x01 or 0xD0 <= marker <= 0xD9:  # no length
            i += 2
            continue
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) that an image's header claims, read from its first HEAD_BYTES bytes
    (JPEG, PNG, GIF, BMP, WebP); None where the header does not say (or is not in them)."""
    if data[:3] == b"\xff\xd8\xff":
        return _jpeg_size(data)
    head = data[:32]  # every other format says its size in its first 30 bytes
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if head[:4] == b"GIF8" and len(head) >= 10:
        return int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little")
    if head[:2] == b"BM" and len(head) >= 26:
        return (abs(int.from_bytes(head[18:22], "little", signed=True)),
                abs(int.from_bytes(head[22:26], "little", signed=True)))
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and len(head) >= 30:
        chunk = head[12:16]
        if chunk == b"VP8X":
            return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
        if chunk == b"VP8L":
            bits = int.from_bytes(head[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b"VP8 ":
            return int.from_bytes(head[26:28], "little") & 0x3FFF, int.from_bytes(head[28:30], "little") & 0x3FFF
    return None


def looks_like_image(data: bytes) -> str | None:
    """Why `data` cannot be a whole image, or None if its header and end look right.

    Cheap checks that catch empty, non-image, truncated and oversized files before a decoder
    does (a truncated JPEG lacks its end-of-image marker, and libjpeg would decode it with
    gray filling and a warning; a header claiming more than MAX_PIXELS is a decompression
    bomb). JPEG and PNG are checked at both ends; GIF, WebP and BMP by their header only.
    Bytes after a JPEG's end marker (some cameras add them) are allowed.
    """
    if not data:
        return "empty file"
    size = header_size(data)
    if size and size[0] * size[1] > MAX_PIXELS:
        return (f"{size[0]}x{size[1]} pixels, more than the limit of {MAX_PIXELS:,} "
                "(a decompression bomb?)")
    if data[:3] == b"\xff\xd8\xff":
        return None if b"\xff\xd9" in data[-4096:] else "truncated JPEG (no end-of-image marker)"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return None if b"IEND" in data[-64:] else "truncated PNG (no IEND chunk)"
    if data[:4] == b"GIF8" or data[:4] == b"RIFF" and data[8:12] == b"WEBP" or data[:2] == b"BM":
        return None
    return "not a JPEG or PNG file (nor GIF, WebP or BMP)"


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Bit depths allowed for each PNG colour type, and the samples a pixel has.
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_PNG_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
# Adam7's passes: (first row, first column, row step, column step).
_ADAM7 = ((0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1))


def _png_problem(data: bytes) -> str | None:
    """Why libpng would fail on a PNG: a critical chunk with a wrong CRC, a header libpng
    refuses, image data that does not inflate or is short, a row filter it does not know.

    torchvision's decode_png crashes the process on some libpng errors (a segmentation
    fault on a damaged IDAT stream, torchvision 0.29), so the torch pipeline runs this
    check before decoding a PNG; TensorFlow's decoder fails cleanly and names it the same way.
    Ancillary chunks are not checked: libpng ignores a damaged one, as both decoders do.
    """
    chunks, i = {}, 8
    idat = []
    while i + 12 <= len(data):
        length = int.from_bytes(data[i : i + 4], "big")
        kind = data[i + 4 : i + 8]
        body = data[i + 8 : i + 8 + length]
        if len(body) < length or i + 12 + length > len(data):
            return f"damaged PNG ({kind.decode('latin-1')} chunk cut short)"
        critical = kind[:1].isupper()
        if critical and zlib.crc32(kind + body) != int.from_bytes(data[i + 8 + length : i + 12 + length], "big"):
            return f"damaged PNG ({kind.decode('latin-1')} chunk fails its CRC)"
        if kind == b"IDAT":
            idat.append(body)
        else:
            chunks.setdefault(kind, body)
        i += 12 + length
        if kind == b"IEND":
            break
    header = chunks.get(b"IHDR", b"")
    if len(header) != 13:
        return "damaged PNG (no IHDR header)"
    width, height = int.from_bytes(header[:4], "big"), int.from_bytes(header[4:8], "big")
    depth, colour, interlace = header[8], header[9], header[12]
    if not width or not height or depth not in _PNG_DEPTHS.get(colour, ()) or interlace > 1 or any(header[10:12]):
        return f"damaged PNG (a header libpng refuses: depth {depth}, colour type {colour})"
    if colour == 3 and b"PLTE" not in chunks:
        return "damaged PNG (a palette image without a palette)"
    bits = depth * _PNG_SAMPLES[colour]
    if interlace:
        passes = [((height - r + rs - 1) // rs, (width - c + cs - 1) // cs) for r, c, rs, cs in _ADAM7]
    else:
        passes = [(height, width)]
    rows = [(h, (w * bits + 7) // 8) for h, w in passes if h and w]
    expected = sum(h * (1 + row) for h, row in rows)
    try:
        pixels = zlib.decompressobj().decompress(b"".join(idat), expected)
    except zlib.error as exc:
        return f"damaged PNG (image data does not inflate: {exc})"
    if len(pixels) < expected:
        return "damaged PNG (image data cut short)"
    if not interlace and max(pixels[:: 1 + rows[0][1]]) > 4:
        return "damaged PNG (an unknown row filter)"
    return None


def decode_problem(data: bytes) -> str | None:
    """Why a decoder would fail on `data` where looks_like_image (which reads only its ends)
    cannot tell: today a PNG's chunks and image data (see _png_problem). None otherwise."""
    if data[:8] == _PNG_SIGNATURE:
        return _png_problem(data)
    return None
