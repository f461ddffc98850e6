"""The loader-stats contract: a method, or stats attached to a tf.data pipeline that survive
the usual wrapping of the dataset."""

from feedbench.pipelines.core.frameworks import import_tensorflow
from feedbench.pipelines.core.machine import usable_cpus
from feedbench.pipelines.core.stats import LoaderStats, attach, batches_ahead, stats_of


class Reports(list):
    def loader_stats(self):
        return LoaderStats(skipped=2, vocab_size=10)


def test_a_loader_that_reports_itself_is_asked():
    assert stats_of(Reports()) == LoaderStats(skipped=2, vocab_size=10)


def test_anything_else_reports_nothing():
    assert stats_of([1, 2]) == stats_of(iter([])) == stats_of(3) == LoaderStats()


def test_stats_attached_to_a_tf_dataset_survive_its_usual_wrapping():
    tf = import_tensorflow()
    counted = []
    dataset = attach(tf.data.Dataset.range(10).batch(2), lambda: LoaderStats(skipped=len(counted), num_classes=4))
    counted.append(1)  # read when asked, so a count that grows is current
    wrapped = dataset.take(3).map(lambda x: x * 2).prefetch(1).with_options(tf.data.Options()).repeat()
    assert stats_of(dataset) == stats_of(wrapped) == LoaderStats(skipped=1, num_classes=4)
    assert stats_of(tf.data.Dataset.range(3)) == LoaderStats()  # an unrelated dataset reports nothing
    zipped = tf.data.Dataset.zip(tf.data.Dataset.range(3), dataset)
    assert stats_of(zipped).num_classes == 4  # found through the second input too


def test_batches_ahead_is_workers_times_depth():
    assert batches_ahead(0, 2) == 0
    assert batches_ahead(3, 2) == 6 and batches_ahead(3, 0) == 3  # a DataLoader keeps one per worker
    assert batches_ahead("autotune", "autotune") == 2 * len(usable_cpus())
