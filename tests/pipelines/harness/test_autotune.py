"""autotune_choices reads from a real profile what tf.data ran with; the XPlane reading on its own
from a hand-made profile, both ways TensorFlow records an op's settings."""

import os

import pytest

from feedbench.pipelines.core.errors import ConfigError, LoaderError
from feedbench.pipelines.core.frameworks import import_tensorflow
from feedbench.pipelines.harness import autotune
from feedbench.pipelines.harness.autotune import OpChoice, autotune_choices, describe

tf = import_tensorflow()


def _double(x):
    return x * 2


def _ints(n=10_000):
    return tf.data.Dataset.range(n)


def _maps(choices):
    """The parallelism of the map ops (ParallelMapV2, or MapAndBatch once fused with the batch)."""
    return [c for c in choices if c.parameter == "parallelism" and "Map" in c.kind]


def _prefetch(choices):
    (found,) = [c for c in choices if c.kind == "Prefetch" and c.parameter == "buffer_size"]
    return found


def test_fixed_settings_are_reported_as_set():
    choices, reason = autotune_choices(_ints().map(_double, num_parallel_calls=3).batch(8).prefetch(2),
                                       batches=20, warmup=3)
    assert reason is None
    (fused_map,) = _maps(choices)
    assert (fused_map.median, fused_map.low, fused_map.high, fused_map.autotuned) == (3, 3, 3, False)
    assert fused_map.events >= 10
    assert fused_map.op.startswith("Root::Prefetch::") and fused_map.op.endswith(fused_map.kind)
    prefetch = _prefetch(choices)
    assert (prefetch.median, prefetch.low, prefetch.high, prefetch.autotuned) == (2, 2, 2, False)
    assert prefetch.op == "Root::Prefetch"
    assert choices == sorted(choices, key=lambda c: (c.op, c.parameter))


def test_autotuned_map_is_reported_autotuned_within_the_cpus():
    choices, reason = autotune_choices(_ints().map(_double, num_parallel_calls=tf.data.AUTOTUNE).batch(8),
                                       batches=20, warmup=3)
    assert reason is None
    (tuned,) = _maps(choices)
    assert tuned.autotuned
    assert 1 <= tuned.low <= tuned.median <= tuned.high <= os.cpu_count()


def test_a_sequential_map_gives_no_map_entry():
    # tf.data's default rewrites would make this map parallel (map_parallelization) or fuse it
    # with the batch into a MapAndBatch of parallelism 1 (map_and_batch_fusion): both off here.
    options = tf.data.Options()
    options.experimental_optimization.map_parallelization = False
    options.experimental_optimization.map_and_batch_fusion = False
    dataset = _ints().map(_double).batch(8).prefetch(2).with_options(options)
    choices, reason = autotune_choices(dataset, batches=10, warmup=2)
    assert reason is None
    assert _maps(choices) == []
    assert _prefetch(choices).median == 2  # the profile was read: the prefetch is there


def test_a_logdir_given_is_kept_and_a_temporary_one_removed(tmp_path, monkeypatch):
    kept = tmp_path / "kept"
    autotune_choices(_ints().prefetch(2), batches=5, warmup=1, logdir=kept)
    assert list(kept.rglob("*.xplane.pb"))
    made = tmp_path / "made"
    monkeypatch.setattr(autotune.tempfile, "mkdtemp", lambda **_: str(made.mkdir() or made))
    choices, reason = autotune_choices(_ints().prefetch(3), batches=5, warmup=1)
    assert reason is None and _prefetch(choices).median == 3
    assert not made.exists()


def test_a_reused_logdir_reads_only_the_new_profile(tmp_path):
    autotune_choices(_ints().prefetch(2), batches=5, warmup=1, logdir=tmp_path)
    choices, _ = autotune_choices(_ints().prefetch(3), batches=5, warmup=1, logdir=tmp_path)
    assert (_prefetch(choices).low, _prefetch(choices).high) == (3, 3)


def test_another_profiler_running_gives_a_reason_not_an_error(tmp_path):
    tf.profiler.experimental.start(str(tmp_path))
    try:
        choices, reason = autotune_choices(_ints().prefetch(2), batches=2, warmup=0)
    finally:
        tf.profiler.experimental.stop()
    assert choices == []
    assert "another TensorFlow profiler" in reason


def test_a_dataset_too_short_names_the_batch():
    with pytest.raises(LoaderError, match="ended after 4 batches; autotune_choices needs 8"):
        autotune_choices(_ints(4 * 8).batch(8), batches=5, warmup=3)


def test_a_dataset_that_raises_names_the_batch():
    def checked(x):
        with tf.control_dependencies([tf.debugging.assert_less(x, tf.constant(5, tf.int64))]):
            return tf.identity(x)

    dataset = _ints(100).map(checked)
    with pytest.raises(LoaderError, match="raised at batch 6 of 7"):
        autotune_choices(dataset, batches=4, warmup=3)


@pytest.mark.parametrize(("dataset", "batches", "warmup"), [("not a dataset", 5, 1), (None, 0, 1), (None, 5, -1)])
def test_unusable_arguments(dataset, batches, warmup):
    with pytest.raises(ConfigError):
        autotune_choices(_ints() if dataset is None else dataset, batches=batches, warmup=warmup)


def _space():
    """A profile as the XPlane protos hold it: settings as event statistics (strings kept once in
    the plane and referred to), or in the event's name; interleave inputs; an unrelated event."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    plane = space.planes.add(name="/host:CPU")
    names = {1: "Iterator::Root::Prefetch#buffer_limit=3,autotune=false#",
             2: "Iterator::Root::ParallelInterleaveV4[0]::ParallelMapV2",
             3: "Iterator::Root::ParallelInterleaveV4[7]::ParallelMapV2",
             4: "Iterator::Root::Prefetch::Map",
             5: "EagerLocalExecute: IteratorGetNext"}
    for key, name in names.items():
        plane.event_metadata[key].id = key
        plane.event_metadata[key].name = name
    for key, name in {1: "parallelism", 2: "autotune", 3: "true", 4: "buffer_limit", 5: "unavailable"}.items():
        plane.stat_metadata[key].id = key
        plane.stat_metadata[key].name = name
    line = plane.lines.add(name="tf_data_iterator_resource/1")
    for metadata_id, parallelism in [(1, None), (2, 4), (3, 6), (3, 2), (4, None), (5, None)]:
        event = line.events.add(metadata_id=metadata_id)
        if parallelism is not None:
            event.stats.add(metadata_id=1, int64_value=parallelism)
            event.stats.add(metadata_id=2, ref_value=3)
        if metadata_id == 5:
            event.stats.add(metadata_id=4, int64_value=99)  # not a tf.data iterator: not read
    # a prefetch buffer whose limit AUTOTUNE has not set yet: TF records "unavailable", not counted
    line.events.add(metadata_id=4).stats.add(metadata_id=4, ref_value=5)
    return space, xplane_pb2


def test_settings_are_read_from_statistics_and_from_names(tmp_path):
    space, xplane_pb2 = _space()
    path = tmp_path / "host.xplane.pb"
    path.write_bytes(space.SerializeToString())
    choices, reason = autotune._choices(autotune._read([path], xplane_pb2), [path])
    assert reason is None
    assert choices == [
        OpChoice(op="Root::ParallelInterleaveV4[*]::ParallelMapV2", kind="ParallelMapV2", parameter="parallelism",
                 autotuned=True, median=4, low=2, high=6, events=3),
        OpChoice(op="Root::Prefetch", kind="Prefetch", parameter="buffer_size", autotuned=False, median=3, low=3,
                 high=3, events=1),
    ]


def test_a_profile_without_tf_data_events_gives_a_reason(tmp_path):
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    path = tmp_path / "host.xplane.pb"
    path.write_bytes(xplane_pb2.XSpace().SerializeToString())
    choices, reason = autotune._choices(autotune._read([path], xplane_pb2), [path])
    assert choices == []
    assert "no tf.data iterator events" in reason and str(path) in reason


def test_describe():
    choices = [OpChoice(op="Root::Prefetch::ParallelMapV2", kind="ParallelMapV2", parameter="parallelism",
                        autotuned=True, median=2, low=1, high=2, events=412),
               OpChoice(op="Root::Prefetch", kind="Prefetch", parameter="buffer_size", autotuned=False, median=2,
                        low=2, high=2, events=30)]
    assert describe(choices) == [
        "ParallelMapV2 (Root::Prefetch::ParallelMapV2): parallelism 2 (AUTOTUNE; 1-2 over 412 events)",
        "Prefetch (Root::Prefetch): buffer_size 2 (fixed; 2 over 30 events)",
    ]
    assert choices[1].to_dict() == {"op": "Root::Prefetch", "kind": "Prefetch", "parameter": "buffer_size",
                                    "autotuned": False, "median": 2, "low": 2, "high": 2, "events": 30}
