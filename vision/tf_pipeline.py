"""The image pipeline in tf.data: decoding and transforms as TensorFlow ops in the graph.

Stages, in the order torch_pipeline.py has them: sample list (files, Parquet rows or TFDS
examples) -> shuffle (per epoch, seeded) -> read + decode + transform (``map`` on
`workers` threads) -> batch -> prefetch (`prefetch` batches).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from feedbench.datasets.parquet import ParquetShards
from feedbench.pipelines.core import checks, sharding
from feedbench.pipelines.core.batch_format import IMAGENET_MEAN, IMAGENET_STD
from feedbench.pipelines.core.checks import AUTOTUNE
from feedbench.pipelines.core.errors import ConfigError, DatasetError
from feedbench.pipelines.core.frameworks import import_tensorflow, import_tfds, private_threads
from feedbench.pipelines.core.seeds import epoch_seed, service_order, stream_seed
from feedbench.pipelines.core.stats import LoaderStats, attach, batches_ahead
from feedbench.vision._common import (
    HEAD_BYTES,
    RATIO,
    SAMPLE_STAGES,
    SCALE,
    ImageConfig,
    Source,
    decode_problem,
    header_size,
    looks_like_image,
    resolve_source,
    shard_positions,
)

tf = import_tensorflow()
log = logging.getLogger(__name__)

# The file check reads a file's first and last bytes, as many as _common.looks_like_image
# looks at: its last 4 KiB (a JPEG's end marker may be followed by a camera's trailer) and its
# first 4 KiB, read on up to HEAD_BYTES only where the header's size is not in them.
TAIL_BYTES = 4096
SHUFFLE_BATCHES = 8  # shuffle buffer of Parquet rows and TFDS examples, in batches
_CHECK_THREADS = 16  # opening files is I/O-bound: check a folder's files on threads,
_CHECK_CHUNK = 256  # this many files a task
_TRIES = 10  # RandomResizedCrop's attempts, as _common.random_resized_crop makes them
_UNIFORMS = 4 * _TRIES + 1  # area, ratio, top, left per try; then the flip
_JPEG_MAGIC = b"\xff\xd8\xff"
# libjpeg's accurate integer DCT, as torchvision and Pillow decode; TensorFlow's default
# (the fast DCT) is about 1 grey level off on average and saves only a few percent of the
# decode time.
_DCT = "INTEGER_ACCURATE"
_TFDS_SPLIT = "train"


def _file_problem(path: str) -> str | None:
    """Why the file at `path` cannot be a whole image (looks_like_image), reading only its ends."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size <= HEAD_BYTES + TAIL_BYTES:
                return looks_like_image(handle.read())
            head = handle.read(TAIL_BYTES)
            if header_size(head) is None:  # a JPEG frame header after large APPn segments: read on
                head += handle.read(HEAD_BYTES - TAIL_BYTES)
            handle.seek(size - TAIL_BYTES)
            return looks_like_image(head + handle.read(TAIL_BYTES))
    except OSError as exc:
        return f"unreadable ({exc.strerror})"


def _chunk_problems(paths: list[str]) -> list[str | None]:
    return [_file_problem(path) for path in paths]


def _checked_samples(source: Source, cfg: ImageConfig) -> tuple[list[tuple[str, int]], int]:
    """The (path, label) pairs of the folder's shard (all its files for one shard) whose
    files look like images, and how many did not; only the shard's files are read.

    Raises:
        DatasetError: A bad file under "raise" (the first in file order, named); no good
            file at all under "skip".
    """
    positions = shard_positions(source, cfg)
    samples = source.samples[positions.start : positions.stop : positions.step]
    paths = [path for path, _ in samples]
    chunks = [paths[i : i + _CHECK_CHUNK] for i in range(0, len(paths), _CHECK_CHUNK)]
    with ThreadPoolExecutor(max_workers=min(_CHECK_THREADS, len(chunks))) as pool:
        problems = [problem for chunk in pool.map(_chunk_problems, chunks) for problem in chunk]
    bad = [(path, problem) for path, problem in zip(paths, problems) if problem]
    if bad and cfg.on_error == "raise":
        path, problem = bad[0]
        more = f" (and {len(bad) - 1} more bad file(s))" if len(bad) > 1 else ""
        raise DatasetError(f"{path}: {problem}{more}")
    for path, problem in bad:
        log.warning("skipped %s: %s", path, problem)
    good = [sample for sample, problem in zip(samples, problems) if not problem]
    if not good:
        where = sharding.part(cfg.num_shards, cfg.shard_index)
        raise DatasetError(f"{source.root}: none of its {len(paths)} image files{where} can be read")
    return good, len(bad)


def _files(source: Source, cfg: ImageConfig) -> tuple[tf.data.Dataset, int]:
    """(path, label, name) elements of an ImageFolder's shard, in torchvision's order (the
    name is the path); and the skip count. The shard is taken from the file list, before
    the dataset is made: ``Dataset.shard`` on the whole list gives the same elements, but
    would check every file of the folder."""
    samples, skipped = _checked_samples(source, cfg)
    return _listed(samples), skipped


def _listed(samples: list[tuple[str, int]]) -> tf.data.Dataset:
    """(path, label, name) elements of (path, label) pairs, in their order (the name is the path)."""
    # As bytes: a file name need not be UTF-8 (os.fsencode gives its bytes back).
    paths = tf.constant([os.fsencode(path) for path, _ in samples], tf.string)
    labels = tf.constant([label for _, label in samples], tf.int64)
    return tf.data.Dataset.from_tensor_slices((paths, labels)).map(lambda path, label: (path, label, path))


class _RowReader:
    """Yields (encoded image, label) of Parquet shards row group by row group, checking the
    bytes of each row; counts the rows it skips ("skip") or raises naming them ("raise").

    Only the rows of the pipeline's shard (``num_shards``, ``shard_index``: dataset row i
    where ``i % num_shards == shard_index``) are read, checked and yielded. The shard is
    taken here, by row number, rather than by ``Dataset.shard`` after the reader: the row
    groups come in a shuffled order and bad rows are left out, so an element's position
    there is not its row.
    """

    def __init__(self, source: Source, cfg: ImageConfig) -> None:
        shards = source.shards()
        columns = ["image", "label"] + (["path"] if "path" in shards.schema.names else [])  # names rows
        self.shards = ParquetShards(source.root, columns=columns)
        self.cfg = cfg
        shard_positions(source, cfg)  # more shards than rows: an error now, not an empty epoch
        self._problems: dict[str, int] = {}  # reason -> rows; each bad row counted once in any epoch
        self._shard_start: dict[Any, int] = {}  # the dataset row where each shard begins
        for group in self.shards.groups:
            self._shard_start.setdefault(group.shard, group.start)

    def _name(self, k: int, offset: int, path: str | None) -> str:
        group = self.shards.groups[k]
        row = group.start - self._shard_start[group.shard] + offset
        return f"{group.shard} row {row}" + (f" ({path})" if path else "")

    @property
    def skipped(self) -> int:
        return sum(self._problems.values())

    def _skip(self, count: int, reason: str) -> None:
        if reason not in self._problems:
            self._problems[reason] = count
            log.warning("skipped %s", reason)

    def _offsets(self, k: int) -> range:
        """The offsets in row group `k` of the shard's rows."""
        group, n = self.shards.groups[k], self.cfg.num_shards
        return range((self.cfg.shard_index - group.start) % n, group.rows, n)

    def __call__(self, seed: int) -> Iterator[tuple[bytes, int, str]]:
        """(bytes, label, name) of each good row; under "raise", the first bad row (or row
        group) as (b"", 0, "<NUL>name: problem"), which does not decode and which _Failures names
        with its problem, and nothing after it. (An exception raised here would be taken by
        the ``ignore_errors`` after the map, and end the epoch early.)"""
        groups = len(self.shards.groups)
        order = np.random.default_rng(int(seed) % 2**64).permutation(groups) if self.cfg.shuffle else range(groups)
        for k in order:
            offsets = self._offsets(int(k))
            if not offsets:
                continue
            try:
                table = self.shards.read_group(int(k))
            except DatasetError as exc:
                if self.cfg.on_error == "raise":
                    yield b"", 0, f"\0{exc}"
                    return
                self._skip(len(offsets), str(exc))
                continue
            if len(offsets) < table.num_rows:
                table = table.take(list(offsets))
            table = table.to_pydict()
            paths = table.get("path") or [None] * len(table["label"])
            for offset, data, label, path in zip(offsets, table["image"], table["label"], paths):
                problem = looks_like_image(data or b"")
                if problem is None and label is None:
                    problem = "no label"
                name = self._name(int(k), offset, path)
                if problem:
                    if self.cfg.on_error == "raise":
                        yield b"", 0, f"\0{name}: {problem}"
                        return
                    self._skip(1, f"{name}: {problem}")
                    continue
                yield data, label, name


def _rows(source: Source, cfg: ImageConfig) -> tuple[tf.data.Dataset, Callable[[], int]]:
    """(encoded image, label, name) elements of Parquet shards (the name: shard, row and the
    row's path), row groups in a seeded random order
    each epoch (file order without `shuffle`); and the count of rows skipped so far."""
    reader = _RowReader(source, cfg)
    signature = (tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.string))

    def rows(seed: tf.Tensor) -> tf.data.Dataset:
        return tf.data.Dataset.from_generator(reader, args=(seed,), output_signature=signature)

    # One seed per epoch from TensorFlow's seeded stream: no Python state to carry over.
    seeds = tf.data.Dataset.random(seed=stream_seed(cfg.seed, "row groups"), rerandomize_each_iteration=True)
    return seeds.take(1).flat_map(rows), lambda: reader.skipped


def _examples(builder: Any, cfg: ImageConfig) -> tf.data.Dataset:
    """(encoded image, label, name) elements of the shard of a TFDS builder's "train" split,
    not decoded; the name is the example's ``tfds_id`` where the builder gives one, else the
    dataset's. The shard is ``Dataset.shard`` of the examples in TFDS's order (files not
    shuffled), right after they are listed."""
    tfds = import_tfds()
    features = builder.info.features
    missing = {"image", "label"} - set(features.keys())
    if missing:
        raise DatasetError(f"TFDS dataset {builder.name}: no feature(s) {', '.join(sorted(missing))}")
    count = builder.info.splits[_TFDS_SPLIT].num_examples
    sharding.positions(count, cfg.num_shards, cfg.shard_index, f"TFDS dataset {builder.name}")
    examples = builder.as_dataset(split=_TFDS_SPLIT, shuffle_files=False,
                                  decoders={"image": tfds.decode.SkipDecoding()})
    if cfg.num_shards > 1:
        examples = examples.shard(cfg.num_shards, cfg.shard_index)
    name = f"TFDS dataset {builder.name} example"

    def element(example: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        return example["image"], tf.cast(example["label"], tf.int64), example.get("tfds_id", tf.constant(name))

    return examples.map(element)


def _shuffle(elements: tf.data.Dataset, cfg: ImageConfig, buffer: int) -> tf.data.Dataset:
    """Reshuffled every epoch, the same epochs for the same seed."""
    if not cfg.shuffle:
        return elements
    return elements.shuffle(buffer, seed=stream_seed(cfg.seed, "shuffle"), reshuffle_each_iteration=True)


def _decode(contents: tf.Tensor) -> tf.Tensor:
    """A JPEG, PNG, GIF (first frame), WebP or BMP, gray, CMYK or with alpha, as uint8 RGB
    [H, W, 3]."""
    return tf.cond(
        tf.strings.substr(contents, 0, 3) == _JPEG_MAGIC,
        lambda: tf.io.decode_jpeg(contents, channels=3, dct_method=_DCT),
        lambda: tf.io.decode_image(contents, channels=3, expand_animations=False),
    )


def _crop_window(u: tf.Tensor, height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    """_common.random_resized_crop in the graph: [top, left, height, width] int32.

    The ten tries are drawn at once from `u` (float64 [40]); the first that fits wins,
    else the center crop of the nearest allowed aspect ratio.
    """
    h, w = tf.cast(height, tf.float64), tf.cast(width, tf.float64)
    area, ratio, y, x = tf.unstack(tf.reshape(u[: 4 * _TRIES], [_TRIES, 4]), axis=1)
    log_lo, log_hi = math.log(RATIO[0]), math.log(RATIO[1])
    target = h * w * (SCALE[0] + (SCALE[1] - SCALE[0]) * area)
    aspect = tf.exp(log_lo + (log_hi - log_lo) * ratio)
    crop_w, crop_h = tf.round(tf.sqrt(target * aspect)), tf.round(tf.sqrt(target / aspect))
    fits = (crop_w > 0) & (crop_w <= w) & (crop_h > 0) & (crop_h <= h)
    tries = tf.stack([tf.floor(y * (h - crop_h + 1)), tf.floor(x * (w - crop_w + 1)), crop_h, crop_w], axis=1)
    first = tf.reduce_min(tf.where(fits, tf.range(_TRIES), _TRIES))
    # The fallback: the whole image trimmed to the nearest ratio in RATIO, centered.
    fall_h = tf.where(w / h < RATIO[0], tf.round(w / RATIO[0]), h)
    fall_w = tf.where(w / h > RATIO[1], tf.round(h * RATIO[1]), w)
    fallback = tf.stack([tf.floor((h - fall_h) / 2), tf.floor((w - fall_w) / 2), fall_h, fall_w])
    window = tf.cond(first < _TRIES, lambda: tries[tf.minimum(first, _TRIES - 1)], lambda: fallback)
    return tf.cast(window, tf.int32)


def _resize(image: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """Antialiased bilinear resize of uint8 RGB, to float32 in [0, 255]."""
    return tf.image.resize(image, size, method="bilinear", antialias=True)


def _decode_train(contents: tf.Tensor, seed: tf.Tensor, cfg: ImageConfig) -> tf.Tensor:
    """Random resized crop to image_size and random flip, from the stateless `seed` [2];
    float32 [S, S, 3] in [0, 255].

    The whole image is decoded and then cropped, as torchvision does, not decoded only inside
    its window (``decode_and_crop_jpeg``): libjpeg stops at the window's last row, so a JPEG
    whose damage lies below the window decoded without an error, where torch names it. The
    two pipelines must find the same images bad; whole decoding costs about 0.2 ms an image
    (docs/reliability.md).
    """
    u = tf.random.stateless_uniform([_UNIFORMS], seed=seed, dtype=tf.float64)
    image = _decode(contents)
    top, left, height, width = tf.unstack(_crop_window(u, tf.shape(image)[0], tf.shape(image)[1]))
    image = _resize(image[top : top + height, left : left + width], [cfg.image_size, cfg.image_size])
    return tf.cond(u[4 * _TRIES] < 0.5, lambda: tf.image.flip_left_right(image), lambda: image)


def _decode_eval(contents: tf.Tensor, cfg: ImageConfig) -> tf.Tensor:
    """Shorter side resized to cfg.resize_size, then the center image_size square; float32
    [S, S, 3] in [0, 255]."""
    image = _decode(contents)
    shape = tf.shape(image)
    h, w = tf.cast(shape[0], tf.float64), tf.cast(shape[1], tf.float64)
    short = tf.constant(cfg.resize_size, tf.float64)
    # _common.resized_shorter_side: int() truncation, as torchvision computes it.
    new_h = tf.where(h <= w, short, tf.floor(short * h / w))
    new_w = tf.where(h <= w, tf.floor(short * w / h), short)
    size = cfg.image_size
    # torchvision's center_crop anchor: int(round((h - size) / 2.0)), half to even as tf.round.
    top = tf.cast(tf.round((new_h - size) / 2.0), tf.int32)
    left = tf.cast(tf.round((new_w - size) / 2.0), tf.int32)
    resized = _resize(image, tf.cast(tf.stack([new_h, new_w]), tf.int32))
    return resized[top : top + size, left : left + size]


def _output(image: tf.Tensor, cfg: ImageConfig) -> tf.Tensor:
    """The resized float image rounded to uint8, or scaled to [0, 1] and ImageNet-normalized."""
    image = tf.ensure_shape(image, [cfg.image_size, cfg.image_size, 3])
    if cfg.output == "uint8":
        return tf.saturate_cast(tf.round(image), tf.uint8)
    # (x / 255 - mean) / std as x * scale + offset per channel. TensorFlow broadcasts over a
    # last axis of 3 slowly: a [H*W, 3] x diagonal [3, 3] matmul and bias_add take about half
    # the time of `image * scale + offset` (0.3 instead of 0.6 ms at 224 x 224), same values.
    scale = tf.linalg.diag(tf.constant([1 / (255 * std) for std in IMAGENET_STD], tf.float32))
    offset = tf.constant([-mean / std for mean, std in zip(IMAGENET_MEAN, IMAGENET_STD)], tf.float32)
    pixels = tf.nn.bias_add(tf.reshape(image, [-1, 3]) @ scale, offset)
    return tf.reshape(pixels, [cfg.image_size, cfg.image_size, 3])


class _Failures:
    """Images that passed the checks but did not decode: named, raised or counted.

    A plain ``map`` raised TensorFlow's error naming no file, and ``ignore_errors`` dropped
    the image uncounted. Here the map's errors are ignored, but each element carries its
    position in the epoch and its name is noted before the map (a hash table op, keyed by the
    position modulo NAMES); each batch is checked for a gap in the positions, which names
    every element that did not come out (one check a batch: a check an element cost 4% of
    the eval throughput). Its reason is found by decoding it again in Python, only then.
    "raise" stops the iteration with a DatasetError (TensorFlow carries it in its
    UnknownError, whose first line names the file); "skip" logs it and counts it once, as
    torch counts.
    """

    NAMES = 1 << 16  # far more elements than a map and a batch have in flight
    COUNT = -1  # the key under which the elements of this epoch so far are counted

    def __init__(self, cfg: ImageConfig, read_files: bool) -> None:
        self.cfg, self.read_files = cfg, read_files
        self.problems: set[str] = set()
        self.names = tf.lookup.experimental.MutableHashTable(tf.int64, tf.string, default_value="")

    def note(self, position: tf.Tensor, name: tf.Tensor) -> list[tf.Operation]:
        """The graph ops that note the name of the element at `position` of this epoch."""
        return [self.names.insert(position % self.NAMES, name),
                self.names.insert(tf.constant(self.COUNT, tf.int64), tf.strings.as_string(position + 1))]

    def check(self, expected: tf.Tensor, positions: tf.Tensor) -> tf.Tensor:
        """Reports the elements missing between position `expected` and the batch's last
        position (the end of the epoch for the end marker, positions [-1]); the position
        expected next."""
        end = positions[-1] < 0
        upto = tf.where(end, tf.strings.to_number(self.names.lookup(tf.constant(self.COUNT, tf.int64)), tf.int64),
                        positions[-1] + 1)
        came = tf.where(end, tf.constant(0, tf.int64), tf.size(positions, out_type=tf.int64))

        def report() -> tf.Tensor:
            span = tf.range(expected, upto)
            names = self.names.lookup(span % self.NAMES)
            return tf.numpy_function(self._report, [span, names, positions], tf.bool, stateful=True)

        done = tf.cond(upto - expected > came, report, lambda: tf.constant(True))
        with tf.control_dependencies([done]):
            return tf.identity(upto)

    def _report(self, span: np.ndarray, names: np.ndarray, positions: np.ndarray) -> bool:
        came = set(positions.tolist())
        reasons = [self.reason(name) for position, name in zip(span.tolist(), names) if position not in came]
        if self.cfg.on_error == "raise":
            raise DatasetError(reasons[0] + (f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""))
        for reason in reasons:
            if reason not in self.problems:
                self.problems.add(reason)
                log.warning("skipped %s", reason)
        return True

    def reason(self, name: bytes) -> str:
        """`name: why`; a file is read and decoded again in Python to say why."""
        name = name.decode("utf-8", "surrogateescape")
        if name.startswith("\0"):  # a row found bad as it was read: its reason (_RowReader)
            return name[1:]
        if not self.read_files:  # a row or example: its bytes are not kept
            return f"{name}: cannot decode"
        try:
            data = Path(name).read_bytes()
        except OSError as exc:
            return f"{name}: unreadable ({exc.strerror})"
        problem = looks_like_image(data) or decode_problem(data)
        if problem is None:
            try:
                tf.io.decode_image(data, channels=3, expand_animations=False)
                problem = "failed in the pipeline, though it decodes when read again (a transient error?)"
            except tf.errors.OpError as exc:
                problem = f"cannot decode ({exc.message.splitlines()[0].split('}} ')[-1].split(' [Op:')[0]})"
        return f"{name}: {problem}"

    @property
    def skipped(self) -> int:
        return len(self.problems)


def _transform(elements: tf.data.Dataset, cfg: ImageConfig, *, read_files: bool,
               through: str | None = None) -> tuple[tf.data.Dataset, _Failures]:
    """Read (files), decode and transform on `workers` threads, and batch: (images, labels)
    batches; and what did not decode (see _Failures).

    `elements` are (file path or encoded image, label, name). With `through` (a stage of
    _common.SAMPLE_STAGES), each sample stops after that stage as one float32 number (its
    size in bytes, or its first pixel): the prefix pipeline of build_tf_prefix.
    """
    failures = _Failures(cfg, read_files)
    # Plain graph code (Python branches only on the config): no AutoGraph conversion needed.
    @tf.autograph.experimental.do_not_convert
    def noted(position: tf.Tensor, element: tuple[tf.Tensor, ...]) -> tuple[tf.Tensor, ...]:
        x, label, name = element
        with tf.control_dependencies(failures.note(position, name)):
            return tf.identity(position), x, label

    sample = _sample(cfg, read_files=read_files, through=through)

    @tf.autograph.experimental.do_not_convert
    def made(*element: Any) -> tuple[tf.Tensor, ...]:
        (position, x, label), seed = element if cfg.train else (element, None)
        return position, sample(x, seed), label

    @tf.autograph.experimental.do_not_convert
    def checked(expected: tf.Tensor, batch: tuple[tf.Tensor, ...]) -> tuple[tf.Tensor, tuple[tf.Tensor, ...]]:
        return failures.check(expected, batch[0]), batch

    elements = elements.enumerate().map(noted)
    elements = _with_crop_seeds(elements, cfg)
    if cfg.workers == 0:
        mapped, parallel = elements.map(made), None  # sequential, in this pipeline's own thread
    else:
        # deterministic: the order in is the order out, so that a seed repeats its batches
        # with any number of threads (and eval without shuffle gives the file order).
        parallel = tf.data.AUTOTUNE if cfg.workers == AUTOTUNE else cfg.workers
        mapped = elements.map(made, num_parallel_calls=parallel, deterministic=True)
    # Batched whole (a short last batch too, so that its elements are checked), the images
    # copied into their batch on the map's threads; then the end marker, the check, and the
    # short batch dropped where drop_last asks.
    shape = [] if through else [cfg.image_size, cfg.image_size, 3]
    dtype = tf.uint8 if cfg.output == "uint8" and not through else tf.float32
    end = tf.data.Dataset.from_tensors((tf.constant([-1], tf.int64), tf.zeros([0, *shape], dtype),
                                        tf.zeros([0], tf.int64)))
    batches = mapped.ignore_errors().batch(cfg.batch_size, num_parallel_calls=parallel,
                                           deterministic=True if parallel else None)
    batches = batches.concatenate(end).scan(tf.constant(0, tf.int64), checked)
    batches = batches.filter(lambda positions, images, labels: positions[-1] >= 0)
    if cfg.drop_last:
        batches = batches.filter(lambda positions, images, labels: tf.size(labels) == cfg.batch_size)
        return batches.map(lambda positions, images, labels: (tf.ensure_shape(images, [cfg.batch_size, *shape]),
                                                              tf.ensure_shape(labels, [cfg.batch_size]))), failures
    return batches.map(lambda positions, images, labels: (images, labels)), failures


def _with_crop_seeds(elements: tf.data.Dataset, cfg: ImageConfig) -> tf.data.Dataset:
    """Training: each element zipped with two numbers from a seeded stream that changes every
    epoch, the stateless seed of its crop and flip, whichever thread maps it."""
    if not cfg.train:
        return elements
    seeds = tf.data.Dataset.random(seed=stream_seed(cfg.seed, "crops"), rerandomize_each_iteration=True)
    return tf.data.Dataset.zip(elements, seeds.batch(2))


def _sample(cfg: ImageConfig, *, read_files: bool, through: str | None) -> Callable[[tf.Tensor, Any], tf.Tensor]:
    """(path or encoded image, stateless seed or None) -> the transformed image, or with
    `through` the one float32 number its prefix stops at."""

    def sample(x: tf.Tensor, seed: tf.Tensor | None) -> tf.Tensor:
        contents = tf.io.read_file(x) if read_files else x
        if through == "read":
            return tf.cast(tf.strings.length(contents), tf.float32)
        if through == "decode":
            return tf.cast(_decode(contents)[0, 0, 0], tf.float32)
        image = _decode_train(contents, seed, cfg) if cfg.train else _decode_eval(contents, cfg)
        image = _output(image, cfg)
        return tf.cast(image[0, 0, 0], tf.float32) if through else image

    return sample


def _transform_remote(elements: tf.data.Dataset, cfg: ImageConfig, *, read_files: bool,
                      through: str | None) -> tf.data.Dataset:
    """_transform's batches as tf.data service workers make them: other processes, which cannot
    note names in this process's table nor call back into its Python. Each sample is mapped in
    turn (a worker is one sequential map, as a DataLoader worker is one process), and an image
    that fails to decode there fails the iteration with the worker's error."""
    sample = _sample(cfg, read_files=read_files, through=through)
    elements = _with_crop_seeds(elements.map(lambda x, label, name: (x, label)), cfg)

    @tf.autograph.experimental.do_not_convert
    def made(*element: Any) -> tuple[tf.Tensor, tf.Tensor]:
        (x, label), seed = element if cfg.train else (element, None)
        return sample(x, seed), label

    batches = elements.map(made).batch(cfg.batch_size, drop_remainder=cfg.drop_last)
    if cfg.drop_last:
        shape = [] if through else [cfg.image_size, cfg.image_size, 3]
        batches = batches.map(lambda images, labels: (tf.ensure_shape(images, [cfg.batch_size, *shape]),
                                                      tf.ensure_shape(labels, [cfg.batch_size])))
    return batches


def _finish(batches: tf.data.Dataset, cfg: ImageConfig) -> tf.data.Dataset:
    """Batches made `prefetch` batches ahead."""
    if cfg.prefetch == 0:
        return batches
    return batches.prefetch(tf.data.AUTOTUNE if cfg.prefetch == AUTOTUNE else cfg.prefetch)


def build_tf_dataset(source: str | os.PathLike[str] | Source | Any, cfg: ImageConfig) -> tf.data.Dataset:
    """The tf.data pipeline for `source` under `cfg` (see :func:`tf_dataset`)."""
    return _pipeline(source, cfg, None)


def build_tf_prefix(source: str | os.PathLike[str] | Source | Any, cfg: ImageConfig, through: str) -> tf.data.Dataset:
    """The pipeline of :func:`build_tf_dataset` stopped after the sample stage `through`
    ("read", "decode" or "transform": _common.SAMPLE_STAGES): each sample becomes one number
    (its size in bytes, or its first pixel), batched as the pipeline batches, so that
    ``feedbench explain`` can cost a stage as the difference between two prefixes."""
    checks.choice("through", through, SAMPLE_STAGES)
    return _pipeline(source, cfg, through)


def _pipeline(source: str | os.PathLike[str] | Source | Any, cfg: ImageConfig, through: str | None) -> tf.data.Dataset:
    images, stats = batches(source, cfg, through)
    dataset, threads = private_threads(_finish(images, cfg), cfg.workers, cfg.prefetch)
    return attach(dataset, lambda: dataclasses.replace(stats(), threads=threads))


def batches(source: str | os.PathLike[str] | Source | Any, cfg: ImageConfig,
            through: str | None) -> tuple[tf.data.Dataset, Callable[[], LoaderStats]]:
    """The pipeline's (images, labels) batches before its prefetch; and its stats so far
    (skips, classes, batches ahead)."""
    classes = None
    if hasattr(source, "as_dataset"):  # a TFDS DatasetBuilder
        kind, elements, skipped = "tfds", _examples(source, cfg), 0
    else:
        resolved = resolve_source(source)
        kind, classes = resolved.kind, resolved.classes
        elements, skipped = _files(resolved, cfg) if kind == "folder" else _rows(resolved, cfg)
    # Paths are shuffled whole (they are small: the shard's); encoded images through a buffer of batches.
    buffer = len(shard_positions(resolved, cfg)) if kind == "folder" else SHUFFLE_BATCHES * cfg.batch_size
    images, failures = _transform(_shuffle(elements, cfg, buffer), cfg, read_files=kind == "folder", through=through)
    checked = skipped if callable(skipped) else (lambda: skipped)
    ahead = batches_ahead(cfg.workers, cfg.prefetch)

    def stats() -> LoaderStats:
        return LoaderStats(skipped=checked() + failures.skipped, num_classes=len(classes) if classes else None,
                           batches_ahead=ahead)

    return images, stats


def remote_batches(source: str | os.PathLike[str] | Source | Any, cfg: ImageConfig,
                   through: str | None) -> tuple[Callable[[int], tf.data.Dataset], Callable[[], LoaderStats]]:
    """The batches of :func:`batches` as tf.data service workers make them: (a function of the
    epoch, 0 first, giving that epoch's graph; the stats). The files are listed and checked
    here, once. The workers are other processes: they read files by path (a Parquet source is
    read in this process, by a Python generator: ConfigError) and map each sample in turn
    (_transform_remote).

    A job restarts the graph's seeded streams: each epoch's graph is seeded by
    ``epoch_seed(cfg.seed, epoch)``, so that epochs differ as tf.data's do. A shuffle buffer of
    the whole shard on a worker would be filled one file at a time from the dispatcher (a split
    each, under "distributed_epoch") before each epoch's first batch: the list is permuted in
    this process instead, and shuffled again on the workers through a buffer of batches."""
    classes = None
    if hasattr(source, "as_dataset"):  # a TFDS DatasetBuilder: its examples are the same every epoch
        examples = _examples(source, cfg)

        def elements(epoch_cfg: ImageConfig) -> tf.data.Dataset:
            return examples

        kind, skipped = "tfds", 0
    else:
        resolved = resolve_source(source)
        kind, classes = resolved.kind, resolved.classes
        if kind != "folder":
            raise ConfigError(f"{resolved.root}: tf.data service workers cannot read Parquet shards (tf.data reads "
                              "them with a Python generator, which runs only in the client); give an ImageFolder "
                              "or a TFDS dataset")
        samples, skipped = _checked_samples(resolved, cfg)
        listed = _listed(samples)

        def elements(epoch_cfg: ImageConfig) -> tf.data.Dataset:
            if not epoch_cfg.shuffle:
                return listed
            return _listed([samples[i] for i in service_order(epoch_cfg.seed, len(samples))])

    def epoch_batches(epoch: int) -> tf.data.Dataset:
        epoch_cfg = dataclasses.replace(cfg, seed=epoch_seed(cfg.seed, epoch))
        shuffled = _shuffle(elements(epoch_cfg), epoch_cfg, SHUFFLE_BATCHES * cfg.batch_size)
        return _transform_remote(shuffled, epoch_cfg, read_files=kind == "folder", through=through)

    stats = LoaderStats(skipped=skipped, num_classes=len(classes) if classes else None,
                        batches_ahead=batches_ahead(cfg.workers, cfg.prefetch))
    return epoch_batches, lambda: stats


def tf_dataset(
    source: str | os.PathLike[str] | Source | Any,
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
) -> tf.data.Dataset:
    """An ImageNet-style image tf.data.Dataset: the TensorFlow half of a mirrored pair.

    Train: RandomResizedCrop to `image_size` (scale 0.08-1, ratio 3/4-4/3, the same window
    algorithm as torchvision), random horizontal flip, float conversion and ImageNet
    normalization. Eval: resize the shorter side to `image_size` x 256/224, center crop,
    normalize. Grayscale, CMYK and PNG images come out RGB. Batches are ``(images
    [B, S, S, 3] NHWC, labels int64 [B])``, float32 or uint8 (`output="uint8"`: normalize on
    the device); the consumer loop turns NHWC into an NCHW view without a copy.

    The keywords mean what they mean for :func:`feedbench.vision.torch_loader`. Differences
    that cannot be avoided:

    - `workers` is ``num_parallel_calls``: threads in this process, not worker processes
      ("autotune": tf.data's AUTOTUNE; 0: the map runs sequentially).
    - `prefetch` counts batches for the whole pipeline ("autotune" allowed), not per worker.
    - Train crops and flips are drawn from TensorFlow's seeded random streams: the same seed
      repeats here (with any number of threads, but a global ``tf.random.set_seed`` changes
      the streams too), yet gives other crops and another shuffle than torch's.
    - JPEGs decode with libjpeg's accurate DCT, as torchvision's do, and a training image is
      decoded whole and then cropped, as torchvision does: ``decode_and_crop_jpeg`` (about
      10% faster here) stops at the window's last row and passed damaged JPEGs that torch
      names (docs/reliability.md).
    - TensorFlow's antialiased bilinear resize and torchvision's differ slightly, and tf's
      gives floats: float output is normalized from them, where torchvision rounds to uint8
      first. Eval pixels are within about 0.005 (normalized units, mean absolute; a grey
      level is 0.017) of torchvision's and Pillow's.
    - Parquet rows are shuffled through a buffer of 8 batches over row groups read in a
      random order (torch permutes the rows within each row group instead).

    Bad images: folders are checked before the dataset is built, reading each file's first
    and last bytes (empty, not an image, truncated, unreadable): "raise" raises
    DatasetError naming the first bad file, "skip" drops and counts them. Parquet rows are
    checked as they are read: "raise" stops the iteration with an error whose first line
    names the shard and row; "skip" counts them as the epoch goes. An image that passes
    these checks but does not decode is named the same way: "raise" stops the iteration with
    its file or row and the decoder's reason, "skip" drops, logs and counts it (once, in
    every epoch). TensorFlow carries a DatasetError raised while iterating in its
    UnknownError, whose first line names the file; the consumer loop reports it as the
    DatasetError. ``feedbench.pipelines.stats_of(dataset)`` gives the count (and the classes
    and batches made ahead), also for a dataset derived from this one (``.take()``,
    ``.map()``, ...); the consumer loop records it in RunResult.skipped.
    TFDS examples are not checked before decoding.

    Args:
        source: An ImageFolder root (yours, only read), a folder of Parquet image shards, or
            a TFDS ``DatasetBuilder`` with "image" and "label" features (its "train" split,
            read without decoding, e.g. ``tfds.folder_dataset.ImageFolder``).
        train: Train transform (random) or eval transform (deterministic).
        batch_size: Images per batch.
        workers: ``num_parallel_calls`` of the decode map; None: one per core less one.
        prefetch: Batches made ahead; 0: none.
        shuffle: Reshuffle every epoch (seeded).
        seed: Seed of the shuffle, crops and flips: the same seed gives the same batches.
        image_size: Output side.
        output: "float" or "uint8".
        drop_last: Drop the last short batch; None: when training.
        on_error: "raise" or "skip" for images that cannot be read or decoded.
        num_shards: Shards the source's images are dealt into; 1: the whole source.
        shard_index: The shard read, 0 to num_shards - 1: the images i of the source's
            listing order (files in torchvision's order, Parquet rows in order, TFDS
            examples in TFDS's order) with ``i % num_shards == shard_index``, the same every
            epoch; the shuffle shuffles within the shard, and an epoch is one pass over it.
            ``tf.data.Dataset.shard(num_shards, shard_index)`` semantics, before the
            shuffle, on both sides, so that :func:`feedbench.vision.torch_loader`'s shard k
            holds the same images (torch takes the subset of indices, not a
            ``DistributedSampler``, which re-deals every epoch and pads). Folders and
            Parquet rows are sharded by their position in the source (before the bad ones
            are dropped, so a bad image is its own shard's), TFDS examples by
            ``Dataset.shard`` right after they are listed.

    Returns:
        A re-iterable tf.data.Dataset; each iteration is the next epoch.

    Raises:
        ConfigError: A keyword out of range; more shards than images.
        DatasetError: The source is missing or empty, or holds a bad file ("raise").
    """
    cfg = ImageConfig(
        train=train, batch_size=batch_size, workers=workers, prefetch=prefetch, shuffle=shuffle, seed=seed,
        image_size=image_size, output=output, drop_last=drop_last, on_error=on_error, num_shards=num_shards,
        shard_index=shard_index,
    )
    return build_tf_dataset(source, cfg)
