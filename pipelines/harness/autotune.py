"""What tf.data's AUTOTUNE chose during a run: the parallelism and buffer size each op ran with.

tf.data records a TraceMe event each time one of its iterators produces an element, named by
the iterator's path (``Iterator::Root::Prefetch::ParallelMapV2``) and carrying the op's
settings of the moment (its ``GetTraceMeMetadata``): ``parallelism`` for the parallel ops
(ParallelMapV2, MapAndBatch, ParallelBatch, ParallelInterleaveV4, ...), ``buffer_limit`` for
Prefetch, and ``autotune`` (``"true"``/``"false"``) for whether AUTOTUNE sets that value. The
TensorFlow profiler keeps those settings as statistics of each event in its XPlane file
(``*.xplane.pb``); older profilers left them in the event's name (``name#parallelism=3,...#``),
which is read too. :func:`autotune_choices` iterates a dataset under the profiler and reads the
values back: per op and parameter, the median, least and greatest value over the events of the
profiled window.

What is reported is the pipeline tf.data ran, after its default graph rewrites: a map followed
by a batch is fused into one MapAndBatch, a plain ``map`` without ``num_parallel_calls`` is made
parallel and autotuned (``map_parallelization``), and an autotuned Prefetch may be added at the
end (``inject_prefetch``). The inputs an interleave opens each have their own iterator
(``ParallelInterleaveV4[3]::ParallelMapV2``); they are counted together, under ``[*]``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import statistics
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from feedbench.pipelines.core.errors import ConfigError, LoaderError, described, one_line
from feedbench.pipelines.core.frameworks import import_tensorflow

log = logging.getLogger(__name__)

# The statistics of a tf.data iterator event that hold a tunable value, by the parameter named in
# the report; and the one that says whether AUTOTUNE sets it.
_PARAMETERS = {"parallelism": "parallelism", "buffer_limit": "buffer_size"}
_AUTOTUNE = "autotune"
_ITERATOR = "Iterator::"
_ELEMENT = re.compile(r"\[\d+\]")  # one input of an interleave: ParallelInterleaveV4[3]


@dataclass(frozen=True)
class OpChoice:
    """The value one tf.data op ran with for one parameter, over the profiled window.

    Attributes:
        op: The iterator path, e.g. ``Root::Prefetch::ParallelMapV2``.
        kind: The op's short name, e.g. ``ParallelMapV2``.
        parameter: ``parallelism`` or ``buffer_size``.
        autotuned: Whether AUTOTUNE set the value (in any event of the window).
        median: The median of the values the events recorded.
        low: The least value recorded.
        high: The greatest value recorded.
        events: How many events recorded a value.
    """

    op: str
    kind: str
    parameter: str
    autotuned: bool
    median: float
    low: float
    high: float
    events: int

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (for JSON)."""
        return asdict(self)


def autotune_choices(dataset: Any, *, batches: int = 30, warmup: int = 5,
                     logdir: str | os.PathLike[str] | None = None) -> tuple[list[OpChoice], str | None]:
    """The parallelism and buffer sizes a dataset's ops ran with, read from a profile of its run.

    Iterates `warmup` batches, then `batches` more under the TensorFlow profiler, and reads the
    profile back.

    Args:
        dataset: A ``tf.data.Dataset``; it is iterated once, from its start.
        batches: Batches to profile.
        warmup: Batches to take before the profiler starts (AUTOTUNE's first choices).
        logdir: Where the profiler writes (kept); by default a temporary folder, removed after.

    Returns:
        The choices sorted by op path and parameter (empty for a pipeline with no parallel op
        or buffer), and None; or no choices and a one-line reason when this TensorFlow recorded
        none (no XPlane protos, no profile, no tf.data events, another profiler running).

    Raises:
        ConfigError: `dataset` is not a dataset, or `batches` or `warmup` cannot be used.
        LoaderError: The dataset raised, or ended before ``warmup + batches`` batches.
    """
    if batches < 1 or warmup < 0:
        raise ConfigError(f"autotune_choices needs batches >= 1 and warmup >= 0, not {batches} and {warmup}")
    tf = import_tensorflow()
    if not isinstance(dataset, tf.data.Dataset):
        raise ConfigError(f"autotune_choices needs a tf.data.Dataset, not {type(dataset).__name__}")
    try:
        from tensorflow.tsl.profiler.protobuf import xplane_pb2
    except ImportError as exc:
        return [], f"this TensorFlow has no XPlane protos to read its profile with ({exc})"
    iterator = iter(dataset)
    _advance(tf, iterator, 0, warmup, warmup + batches)
    folder = Path(tempfile.mkdtemp(prefix="feedbench-autotune-")) if logdir is None else Path(logdir)
    try:
        paths, reason = _profile(tf, iterator, warmup, batches, folder)
        if reason is not None:
            return [], reason
        return _choices(_read(paths, xplane_pb2), paths)
    finally:
        if logdir is None:
            _remove(folder)


def describe(choices: Iterable[OpChoice]) -> list[str]:
    """One line per choice, e.g.
    ``ParallelMapV2 (Root::Prefetch::ParallelMapV2): parallelism 2 (AUTOTUNE; 1-2 over 412 events)``."""
    lines = []
    for c in choices:
        spread = f"{c.low:g}" if c.low == c.high else f"{c.low:g}-{c.high:g}"
        how = "AUTOTUNE" if c.autotuned else "fixed"
        lines.append(f"{c.kind} ({c.op}): {c.parameter} {c.median:g} ({how}; {spread} over {c.events} events)")
    return lines


def _advance(tf: ModuleType, iterator: Iterator[Any], done: int, count: int, total: int) -> None:
    """Takes `count` batches after the `done` already taken, of `total` wanted; errors name the batch."""
    for number in range(done + 1, done + count + 1):
        try:
            next(iterator)
        except StopIteration:
            raise LoaderError(f"the dataset ended after {number - 1} batches; autotune_choices needs {total} "
                              "(warm-up and profiled)") from None
        except tf.errors.OpError as exc:
            raise LoaderError(f"the dataset raised at batch {number} of {total}: {described(exc)}") from exc


def _profile(tf: ModuleType, iterator: Iterator[Any], done: int, batches: int,
             folder: Path) -> tuple[list[Path], str | None]:
    """Takes `batches` batches under the profiler writing to `folder`; (the XPlane files it
    wrote, None), or ([], why there are none)."""
    before = _xplanes(folder)
    options = tf.profiler.experimental.ProfilerOptions(host_tracer_level=2, python_tracer_level=0,
                                                       device_tracer_level=0)
    try:
        tf.profiler.experimental.start(str(folder), options=options)
    except tf.errors.AlreadyExistsError:
        return [], "another TensorFlow profiler is running in this process"
    try:
        _advance(tf, iterator, done, batches, done + batches)
    finally:
        try:
            tf.profiler.experimental.stop()
        except tf.errors.OpError as exc:
            failed: str | None = f"the TensorFlow profiler could not save its profile in {folder}: {one_line(exc)}"
        else:
            failed = None
    if failed is not None:
        return [], failed
    paths = sorted(path for path, stamp in _xplanes(folder).items() if before.get(path) != stamp)
    if not paths:
        return [], f"the TensorFlow profiler wrote no *.xplane.pb under {folder}"
    return paths, None


def _xplanes(folder: Path) -> dict[Path, int]:
    """The XPlane files under `folder`, with their modification times (ns)."""
    return {path: path.stat().st_mtime_ns for path in folder.rglob("*.xplane.pb")} if folder.is_dir() else {}


def _read(paths: Sequence[Path], xplane_pb2: ModuleType) -> tuple[int, dict[tuple[str, str], list[tuple[float, bool]]]]:
    """The number of tf.data iterator events in the files, and (op path, parameter) -> the
    (value, autotuned) each of them recorded."""
    events = 0
    found: dict[tuple[str, str], list[tuple[float, bool]]] = {}
    for path in paths:
        space = xplane_pb2.XSpace()
        space.ParseFromString(path.read_bytes())
        for op, metadata in _iterator_events(space):
            autotuned = str(metadata.get(_AUTOTUNE, "")).lower() in ("true", "1")
            tunable = [(_PARAMETERS[key], value) for key, value in metadata.items() if key in _PARAMETERS]
            events += 1
            for parameter, value in tunable:
                try:
                    number = float(value)
                except ValueError:  # "unavailable": a buffer whose limit AUTOTUNE has not set yet
                    continue
                found.setdefault((op, parameter), []).append((number, autotuned))
    return events, found


def _iterator_events(space: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """(op path, metadata) of each tf.data iterator event in an XSpace, from the event's
    statistics and from metadata left in its name."""
    for plane in space.planes:
        names = {key: meta.name for key, meta in plane.event_metadata.items() if meta.name.startswith(_ITERATOR)}
        if not names:
            continue
        stats = {key: meta.name for key, meta in plane.stat_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                name = names.get(event.metadata_id)
                if name is None:
                    continue
                name, _, packed = name.partition("#")
                metadata = _unpacked(packed)
                metadata.update((stats.get(s.metadata_id, ""), _value(s, stats)) for s in event.stats)
                yield _ELEMENT.sub("[*]", name.removeprefix(_ITERATOR)), metadata


def _unpacked(packed: str) -> dict[str, Any]:
    """``parallelism=3,autotune=true#`` -> {"parallelism": "3", "autotune": "true"}."""
    pairs = (item.partition("=") for item in packed.rstrip("#").split(","))
    return {key: value for key, sep, value in pairs if sep}


def _value(stat: Any, stats: dict[int, str]) -> Any:
    """An XStat's value; a string kept once in the plane (``ref_value``) is looked up."""
    kind = stat.WhichOneof("value")
    if kind == "ref_value":
        return stats.get(stat.ref_value, "")
    return getattr(stat, kind) if kind else None


def _choices(read: tuple[int, dict[tuple[str, str], list[tuple[float, bool]]]],
             paths: Sequence[Path]) -> tuple[list[OpChoice], str | None]:
    """The choices from what :func:`_read` found; no choices and a reason when it found no event."""
    events, found = read
    if not events:
        where = ", ".join(str(path) for path in paths)
        return [], f"TensorFlow recorded no tf.data iterator events in its profile ({where})"
    choices = []
    for (op, parameter), recorded in sorted(found.items()):
        values = [value for value, _ in recorded]
        choices.append(OpChoice(op=op, kind=op.rpartition("::")[2], parameter=parameter,
                                autotuned=any(tuned for _, tuned in recorded), median=statistics.median(values),
                                low=min(values), high=max(values), events=len(values)))
    log.debug("tf.data iterator events in the profile: %d; tunable values: %d", events, len(choices))
    return choices, None


def _remove(folder: Path) -> None:
    """Removes the temporary profile folder; a failure is logged, not raised (nothing is lost)."""
    try:
        shutil.rmtree(folder)
    except OSError as exc:
        log.warning("could not remove the temporary profile folder %s: %s", folder, exc)
