"""Pipelines of known per-stage cost: the ground truth that ``feedbench explain`` is held to.

Each sample passes read, decode and transform, each costing a set number of seconds; batching
costs a set number of seconds per sample too. A stage either sleeps (I/O-like: the CPU stays
free, :func:`~feedbench.pipelines.core.clock.sleep_exactly`) or spins (CPU: seconds of the
thread's own CPU time, :func:`~feedbench.pipelines.truth.synthetic.spin`). The pipelines are
built in each framework's own machinery, with the stages in the order the image pipelines have
them (vision/torch_pipeline.py, vision/tf_pipeline.py), and stop after a sample stage as their
prefixes do (one number a sample), so that explain's arithmetic has analytic answers:

- each stage costs what it was given (:meth:`StageCosts.cost_s`), delivery next to nothing
  (batches of a few hundred bytes), the one-worker cost their sum;
- against ``emulated:<t>`` on the CPU, the workload and replay ceilings are batch_size / t,
  the warm ceiling at n workers min(batch_size / t, what n workers make), and the workers
  needed ceil(target x batch_size / t x one-worker cost).

Each stage is spent once a batch, for all its samples (batch_size x its cost), not once a
sample: a sleep ends late by a wake-up (0.05 ms at the median here, several ms in its tail)
and a call into Python from a tf.data thread costs about as much, once a call; spent a sample
at a time, that lands on every stage, 0.05-0.2 ms a sample, as much as a small stage's
tolerance. Once a batch, it is divided by the batch's 128 samples.

torch: a map-style Dataset whose ``__getitems__`` (what a DataLoader calls for a batch's
indices) does the sample stages in order; the collate function spins the batch stage (whole
pipeline only) and stacks NumPy arrays, which cross from a worker pickled through its pipe
(torch tensors would cross by shared memory, a cost of its own: see
:func:`~feedbench.pipelines.truth.synthetic.collate_numpy`). Workers start from the fork server
of :mod:`feedbench.pipelines.core.dataloader`; each makes whole batches.

tf.data: ``range`` -> ``batch`` -> one ``map`` of a ``tf.numpy_function`` that does the sample
stages over the batch's indices, then (whole pipeline only) the batch stage, in the same call
(``num_parallel_calls`` = workers, deterministic; 0 workers: a sequential map) -> ``prefetch``.
The batch stage is spent in the map's call, not in a map of its own after it: that one would
run on a thread of its own while the first map made its next element, hiding part of the
batch stage in the one-worker pipeline (an overlap that depends on the GIL and tf.data's
buffers); in one call, the one-worker pipeline does the work of the no-worker one, as one
torch worker does. Python holds the GIL while it spins, so tf.data's
map threads spin one at a time: n of them make at most 1 / (spun seconds per sample)
samples/s (:meth:`StageCosts.workers_samples_per_s`).

Nothing here reads files: :meth:`StagedProbe.files` is empty, and explain skips the cold
ceiling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from feedbench.pipelines.core import checks
from feedbench.pipelines.core.checks import AUTOTUNE
from feedbench.pipelines.core.clock import sleep_exactly
from feedbench.pipelines.core.dataloader import DeviceAwareLoader, dataloader_options
from feedbench.pipelines.core.errors import ConfigError
from feedbench.pipelines.core.stats import LoaderStats, attach, batches_ahead
from feedbench.pipelines.truth.synthetic import spin

STAGES = ("read", "decode", "transform")  # the sample stages, in order (as the image pipelines')
BATCH = "batch"
FRAMEWORKS = ("torch", "tf")
SIDE = 4  # a whole-pipeline sample: uint8 [3, SIDE, SIDE] (torch) or [SIDE, SIDE, 3] (tf)
CLASSES = 10
# What a DataLoader worker needs, imported once by the fork server it starts from.
WORKER_MODULES = ("torch", "numpy", __name__)


@dataclass(frozen=True)
class StageCosts:
    """Known seconds per sample of each stage, and how each is spent.

    The defaults are the truth tests' (tests/pipelines/truth/test_explain_truth.py): stages far
    enough apart (0.7, 0.3, 0.6, 0.2 ms, then delivery at 0) that a stage taken for its
    neighbour misses its tolerance of 0.1 ms; read and transform sleep and only decode and
    batch spin (0.5 of the 1.8 ms), because a spin is CPU time: on a CPU that another process
    shares it stretches, and in tf.data's threads it holds the GIL. Batches of 128 make the
    loop's own per-batch costs (a fraction of a ms) small per sample.

    Attributes:
        read_s: Reading a sample.
        decode_s: Decoding it.
        transform_s: Transforming it.
        batch_s: Batching, per sample of the batch (whole pipeline only).
        batch_size: Samples per batch.
        sleeping: The stages that sleep (the CPU stays free); the others spin.
        samples: Samples per epoch (a multiple of `batch_size`: every batch is whole).
    """

    read_s: float = 0.0007
    decode_s: float = 0.0003
    transform_s: float = 0.0006
    batch_s: float = 0.0002
    batch_size: int = 128
    sleeping: tuple[str, ...] = ("read", "transform")
    samples: int = 128 * 64

    def __post_init__(self) -> None:
        for stage in (*STAGES, BATCH):
            value = self.cost_s(stage)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ConfigError(f"StageCosts.{stage}_s must be a number of seconds >= 0, got {value!r}")
        checks.positive_int("batch_size", self.batch_size)
        for stage in self.sleeping:
            checks.choice("sleeping stage", stage, (*STAGES, BATCH))
        checks.positive_int("samples", self.samples)
        if self.samples % self.batch_size:
            raise ConfigError(f"StageCosts.samples ({self.samples}) must be a multiple of batch_size "
                              f"({self.batch_size})")

    def cost_s(self, stage: str) -> float:
        """Known seconds per sample of `stage` (read, decode, transform, batch)."""
        return getattr(self, f"{stage}_s")

    def sleeps(self, stage: str) -> bool:
        return stage in self.sleeping

    def work(self, stage: str, samples: int = 1) -> None:
        """Spends `stage`'s cost for `samples` samples, sleeping or spinning."""
        seconds = self.cost_s(stage) * samples
        if seconds > 0:
            (sleep_exactly if self.sleeps(stage) else spin)(seconds)

    @property
    def one_worker_s(self) -> float:
        """Seconds per sample through one worker: the sum of the stages (delivery costs next to
        nothing)."""
        return sum(self.cost_s(stage) for stage in (*STAGES, BATCH))

    @property
    def spun_s(self) -> float:
        """Seconds per sample spent spinning (the CPU's and, in Python, the GIL's)."""
        return sum(self.cost_s(stage) for stage in (*STAGES, BATCH) if not self.sleeps(stage))

    def workload_samples_per_s(self, step_s: float) -> float:
        """The workload ceiling of ``emulated:<step_s>``: one batch a step."""
        return self.batch_size / step_s

    def replay_samples_per_s(self, step_s: float) -> float:
        """The replay ceiling: the workload's, batches this small crossing in far less than a step."""
        return self.workload_samples_per_s(step_s)

    def workers_samples_per_s(self, framework: str, workers: int) -> float:
        """What `workers` make at most, with a CPU each: linear for torch's worker processes;
        for tf.data's map threads no more than the GIL lets through, one spin at a time (less
        where their spins meet: exact only where the workload's ceiling is well below it)."""
        checks.choice("framework", framework, FRAMEWORKS)
        linear = workers / self.one_worker_s
        if framework == "tf" and self.spun_s > 0:
            return min(linear, 1.0 / self.spun_s)
        return linear

    def warm_samples_per_s(self, framework: str, workers: int, step_s: float) -> float:
        """The warm ceiling: the workload's, or what the workers make where that is less."""
        return min(self.workload_samples_per_s(step_s), self.workers_samples_per_s(framework, workers))

    def workers_needed(self, step_s: float, *, target_au: float) -> int:
        """ceil(target x workload ceiling x one-worker cost), at least 1."""
        need = target_au * self.workload_samples_per_s(step_s) * self.one_worker_s
        return max(1, math.ceil(need - 1e-9))


@dataclass(frozen=True)
class StagedPipeline:
    """A picklable factory: the staged pipeline of `framework`, whole or stopped after `through`.

    Attributes:
        framework: "torch" or "tf".
        costs: The stages' costs.
        workers: torch: DataLoader worker processes; tf: the map's ``num_parallel_calls``
            (0: in the calling thread; "autotune": all CPUs / tf.data's AUTOTUNE).
        prefetch: torch: batches per worker; tf: batches for the pipeline (0: none).
        through: The last sample stage of a prefix (each sample then one number, the batch
            stage not spent); None: the whole pipeline.
    """

    framework: str
    costs: StageCosts
    workers: int | str = 0
    prefetch: int | str = 0
    through: str | None = None

    def __post_init__(self) -> None:
        checks.choice("framework", self.framework, FRAMEWORKS)
        checks.count_or_autotune("workers", self.workers)
        checks.count_or_autotune("prefetch", self.prefetch)
        if self.through is not None:
            checks.choice("through", self.through, STAGES)

    @property
    def stages(self) -> tuple[str, ...]:
        """The stages it spends, in order."""
        if self.through is not None:
            return STAGES[: STAGES.index(self.through) + 1]
        return (*STAGES, BATCH)

    def __call__(self) -> Any:
        return torch_staged(self) if self.framework == "torch" else tf_staged(self)


class _Samples(torch.utils.data.Dataset):
    """Sample i: the sample stages in order; a prefix gives one number, the whole pipeline a small image."""

    def __init__(self, spec: StagedPipeline) -> None:
        self.costs, self.through = spec.costs, spec.through

    def __len__(self) -> int:
        return self.costs.samples

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[tuple[np.ndarray, int]]:
        """The samples of a batch, each stage spent once for all of them."""
        for stage in STAGES:
            self.costs.work(stage, len(indices))
            if stage == self.through:
                return [(np.float32(index), index % CLASSES) for index in indices]
        return [(np.full((3, SIDE, SIDE), index % 256, dtype=np.uint8), index % CLASSES) for index in indices]


@dataclass(frozen=True)
class _Collate:
    """Spends the batch stage (whole pipeline only), then stacks NumPy arrays."""

    costs: StageCosts
    whole: bool

    def __call__(self, samples: list[tuple[np.ndarray, int]]) -> tuple[np.ndarray, np.ndarray]:
        if self.whole:
            self.costs.work(BATCH, len(samples))
        values = np.stack([value for value, _ in samples])
        labels = np.array([label for _, label in samples], dtype=np.int64)
        return values, labels


class StagedLoader(DeviceAwareLoader, torch.utils.data.DataLoader):
    """The torch pipeline: a DataLoader over :class:`_Samples`, re-iterable (an epoch each)."""

    def __init__(self, spec: StagedPipeline) -> None:
        self.spec = spec
        super().__init__(_Samples(spec), batch_size=spec.costs.batch_size, shuffle=False, drop_last=True,
                         collate_fn=_Collate(spec.costs, spec.through is None),
                         **dataloader_options(spec.workers, spec.prefetch, preload=WORKER_MODULES))

    def loader_stats(self) -> LoaderStats:
        return LoaderStats(num_classes=CLASSES, batches_ahead=batches_ahead(self.spec.workers, self.spec.prefetch),
                           threads=self.thread_roles())


def torch_staged(spec: StagedPipeline) -> StagedLoader:
    """The torch DataLoader of `spec`."""
    return StagedLoader(spec)


def tf_staged(spec: StagedPipeline) -> Any:
    """The tf.data pipeline of `spec`, with tf.data's default options, as the image pipeline has
    them: at prefetch 0 tf.data still puts a prefetch of its own after the map (its
    ``inject_prefetch`` optimization), which hides the consumer's per-batch time behind the
    map's work, in the prefixes as in the whole pipeline."""
    from feedbench.pipelines.core.frameworks import import_tensorflow, private_threads

    tf = import_tensorflow()
    costs, stages, through = spec.costs, spec.stages, spec.through

    def made(indices: np.ndarray) -> np.ndarray:
        for stage in stages:
            costs.work(stage, len(indices))
        if through is not None:
            return indices.astype(np.float32)
        return np.broadcast_to((indices % 256).astype(np.uint8)[:, None, None, None],
                               (len(indices), SIDE, SIDE, 3)).copy()

    shape, dtype = ([costs.batch_size], tf.float32) if through is not None else (
        [costs.batch_size, SIDE, SIDE, 3], tf.uint8)

    def batch(indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        values = tf.ensure_shape(tf.numpy_function(made, [indices], dtype), shape)  # stateful: never parallelized
        return values, indices % CLASSES

    batches = tf.data.Dataset.range(costs.samples).batch(costs.batch_size, drop_remainder=True)
    if spec.workers == 0:
        batches = batches.map(batch)  # sequential: private_threads turns tf.data's rewrites off
    else:
        parallel = tf.data.AUTOTUNE if spec.workers == AUTOTUNE else spec.workers
        batches = batches.map(batch, num_parallel_calls=parallel, deterministic=True)
    if spec.prefetch != 0:
        batches = batches.prefetch(tf.data.AUTOTUNE if spec.prefetch == AUTOTUNE else spec.prefetch)
    dataset, threads = private_threads(batches, spec.workers, spec.prefetch)
    ahead = batches_ahead(spec.workers, spec.prefetch)
    return attach(dataset, lambda: LoaderStats(num_classes=CLASSES, batches_ahead=ahead, threads=threads))


@dataclass(frozen=True)
class StagedProbe:
    """The probe of a staged pipeline, for :func:`feedbench.pipelines.harness.explain.explain_framework`
    (it meets that module's ``Probe`` protocol by its shape: the ground truth does not import
    the harness).

    Attributes:
        framework: "torch" or "tf".
        costs: The stages' costs.
        prefetch: The whole pipeline's prefetch where the caller gives none.
    """

    framework: str
    costs: StageCosts
    prefetch: int | str = 2

    def __post_init__(self) -> None:
        checks.choice("framework", self.framework, FRAMEWORKS)
        checks.count_or_autotune("prefetch", self.prefetch)

    @property
    def label(self) -> str:
        return f"synthetic {self.framework}"

    @property
    def stages(self) -> tuple[str, ...]:
        return STAGES

    @property
    def tunes_itself(self) -> bool:
        return False  # explain reads no AUTOTUNE choices for it

    def prefix(self, through: str) -> StagedPipeline:
        """The pipeline stopped after `through`, with no worker and no prefetch."""
        return StagedPipeline(self.framework, self.costs, 0, 0, through)

    def pipeline(self, workers: int | str, prefetch: int | str | None = None) -> StagedPipeline:
        return StagedPipeline(self.framework, self.costs, workers, self.prefetch if prefetch is None else prefetch)

    def files(self) -> list[str]:
        return []


def staged_probe(framework: str, costs: StageCosts | None = None, *, prefetch: int | str = 2) -> StagedProbe:
    """The probe of the staged `framework` pipeline ("torch" or "tf") of `costs` (None: the defaults)."""
    return StagedProbe(framework, costs if costs is not None else StageCosts(), prefetch)
