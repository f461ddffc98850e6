"""measure(): batch types, stopping, epochs, and bad input."""

import json
import time

import numpy as np
import pytest
import torch

from feedbench.pipelines import BatchError, ConfigError, LoaderError, LoaderTimeout, Workload, measure
from feedbench.pipelines.core.stats import LoaderStats
from feedbench.pipelines.truth.synthetic import SleepProducer


def _batches(n, batch_size=4):
    return [(torch.zeros(batch_size, 3, 4, 4, dtype=torch.uint8), torch.arange(batch_size)) for _ in range(n)]


class Recorder(Workload):
    """Keeps what each step received."""

    name = "recorder"
    warmup_steps = 0

    def __init__(self):
        self.seen = []

    def step(self, batch):
        self.seen.append(batch)


def test_counts_steps_samples_and_excludes_warmup():
    work = Recorder()
    result = measure(_batches(30), workload=work, device="cpu", steps=10, warmup=3)
    assert result.steps == 10 and result.samples == 40 and result.warmup_steps == 3
    assert len(work.seen) == 13  # 3 warm-up + 10 measured
    assert result.stop_reason == "steps" and result.device == "cpu" and result.workload == "recorder"
    assert result.config["steps"] == 10 and result.config["warmup"] == 3


def test_seconds_bound_the_window():
    result = measure(SleepProducer(0.0), workload="emulated:10ms", device="cpu", seconds=0.3, warmup=1)
    assert result.stop_reason == "seconds"
    assert 0.3 <= result.window_s < 0.4
    assert result.steps == pytest.approx(30, abs=4)


def test_numpy_tensorflow_and_dict_batches_cross_without_copies():
    tf = pytest.importorskip("tensorflow")
    images = np.arange(2 * 5 * 6 * 3, dtype=np.uint8).reshape(2, 5, 6, 3)
    work = Recorder()
    batches = [
        (images, np.array([1, 2])),  # numpy
        (tf.constant(images), tf.constant([1, 2], dtype=tf.int64)),  # tf, NHWC
        {"images": torch.zeros(3, 3, 2, 2), "labels": torch.tensor([0, 1, 2])},
    ]
    result = measure(batches, workload=work, device="cpu", steps=2, warmup=1, cycle=False)
    numpy_images, tf_images = work.seen[0][0], work.seen[1][0]
    assert numpy_images.shape == (2, 5, 6, 3)
    assert tf_images.shape == (2, 3, 5, 6)  # NCHW view of the NHWC tensor
    assert tf_images.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(tf_images.permute(0, 2, 3, 1), torch.from_numpy(images))
    assert work.seen[1][1].dtype == torch.int64
    assert result.samples == 2 + 3  # measured: the tf batch and the dict batch


def test_a_reiterable_loader_is_cycled_and_the_epochs_counted():
    result = measure(_batches(4), workload="emulated:1ms", device="cpu", steps=10, warmup=2)
    assert result.steps == 10 and result.epochs == 3  # 4 + 4 + 4 batches for 12 steps


def test_a_one_shot_iterator_stops_and_says_so(caplog):
    result = measure(iter(_batches(8)), workload="emulated:1ms", device="cpu", steps=50, warmup=2)
    assert result.steps == 6 and result.stop_reason == "exhausted"
    assert "ended after 6 measured steps" in caplog.text


class Reporting(list):
    """Batches whose loader reports its stats (the contract of core.stats)."""

    def __init__(self, batches, **stats):
        super().__init__(batches)
        self.stats = stats
        self.asked = 0

    def loader_stats(self):
        self.asked += 1
        return LoaderStats(**self.stats)


def test_skipped_and_truncated_reported_by_the_loader_reach_the_result():
    loader = Reporting(_batches(5), skipped=7, truncated=4)
    result = measure(loader, workload="emulated:1ms", device="cpu", steps=3, warmup=1)
    assert result.skipped == 7 and result.truncated == 4
    plain = measure(_batches(5), workload="emulated:1ms", device="cpu", steps=3, warmup=1)
    assert plain.skipped == plain.truncated == 0


def test_counts_are_read_when_the_window_ends():
    class Growing(Reporting):
        def loader_stats(self):  # counts that grow as the loader reads, as a skip count does
            return LoaderStats(skipped=self.asked)

        def __iter__(self):
            for batch in super().__iter__():
                self.asked += 1
                yield batch

    assert measure(Growing(_batches(5)), workload="emulated:1ms", device="cpu", steps=3, warmup=1,
                   cycle=False).skipped == 4


def test_auto_warmup_follows_what_the_loader_makes_ahead():
    result = measure(Reporting(_batches(20), batches_ahead=3), workload="emulated:1ms", device="cpu", steps=2)
    assert result.warmup_steps == 2 * 3 + 4 and result.config["warmup"] == 10
    assert measure(_batches(20), workload="emulated:1ms", device="cpu", steps=2).warmup_steps == 5


def test_measure_over_a_text_loader_reports_its_exact_truncated_count(text_corpus):
    from feedbench.text import tokenize, torch_loader

    texts = [json.loads(line)["text"] for line in (text_corpus.root / "corpus.jsonl").read_text("utf-8").splitlines()]
    expected = sum(len(tokenize(text, "regex", lowercase=True)) > 40 for text in texts)
    assert 0 < expected < len(texts)
    loader = torch_loader(text_corpus.root, tokenizer="regex", max_len=40, batch_size=32, workers=0)
    result = measure(loader, workload="emulated:1ms", device="cpu", steps=12, warmup=1)
    assert result.epochs >= 2  # cycled: each document still counted once
    assert result.truncated == expected and result.skipped == 0


def test_a_stalled_loader_times_out_naming_step_and_seconds():
    def stalls():
        yield from _batches(3)
        time.sleep(30)
        yield from _batches(1)

    started = time.perf_counter()
    with pytest.raises(LoaderTimeout, match=r"no batch from the loader after 0.5 s at step 4"):
        measure(stalls(), workload="emulated:1ms", device="cpu", steps=5, warmup=2, timeout=0.5)
    assert time.perf_counter() - started < 5


def test_a_loader_exception_surfaces_with_the_step():
    def breaks():
        yield from _batches(4)
        raise ValueError("corrupt record 17")

    with pytest.raises(LoaderError, match=r"the loader raised at step 5: ValueError: corrupt record 17") as info:
        measure(breaks(), workload="emulated:1ms", device="cpu", steps=5, warmup=2)
    assert isinstance(info.value.__cause__, ValueError)


def test_an_exception_in_warmup_says_warmup():
    def breaks():
        yield from _batches(1)
        raise OSError("disk gone")

    with pytest.raises(LoaderError, match=r"step 2 \(warm-up step 2 of 5\): OSError: disk gone"):
        measure(breaks(), workload="emulated:1ms", device="cpu", steps=5, warmup=5)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"batches": []}, LoaderError, "the loader yielded no batch"),
        ({"batches": [object()]}, BatchError,
         r"step 1 \(warm-up step 1 of 1\): a batch element of type builtins.object"),
        ({"batches": [("text", "more")]}, BatchError, r"step 1 .*: a batch element of type builtins.str"),
        ({"workload": "emulated:abc"}, ConfigError, "workload 'emulated:abc': expected emulated:<time>"),
        ({"workload": "nosuch"}, ConfigError, "unknown workload 'nosuch'"),
        ({"steps": 0}, ConfigError, "steps must be a whole number >= 1, got 0"),
        ({"steps": -5}, ConfigError, "steps must be a whole number >= 1"),
        ({"seconds": 0}, ConfigError, "seconds must be a positive number"),
        ({"warmup": -1}, ConfigError, "warmup must be"),
        ({"warmup": 0}, ConfigError, r"warmup must be a number of steps >= 1"),
        ({"device": "tpu"}, ConfigError, "device 'tpu'"),
        ({"batches": _batches(3), "warmup": 5}, LoaderError, r"ended after 3 batches, within the 5 warm-up steps"),
    ],
)
def test_bad_input_is_one_clear_error(kwargs, error, message):
    args = {"batches": _batches(3), "workload": "emulated:1ms", "device": "cpu", "steps": 2, "warmup": 1,
            "cycle": False, **kwargs}
    with pytest.raises(error, match=message):
        measure(args.pop("batches"), **args)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_where_there_is_none_is_a_clear_error():
    with pytest.raises(ConfigError, match="torch sees no CUDA device"):
        measure(_batches(3), device="cuda", steps=1, warmup=1)


def test_auto_picks_the_cpu_without_cuda():
    result = measure(_batches(5), workload="emulated:1ms", device="auto", steps=2, warmup=1)
    assert result.device == ("cuda:0" if torch.cuda.is_available() else "cpu")


def test_memory_and_cpu_of_the_tree_are_sampled():
    result = measure(SleepProducer(0.0), workload="emulated:20ms", device="cpu", steps=20, warmup=1)
    assert result.peak_rss_bytes > 50e6  # torch alone is more than that
    assert 0 < result.peak_pss_bytes <= result.peak_rss_bytes * 1.01
    assert result.cpu_util < 0.5  # sleeping consumer and producer: the CPU stays mostly free
    assert result.peak_device_bytes is None
    assert result.ttfb_s >= 0 and result.wait_p50_s <= result.wait_p95_s <= result.wait_p99_s


def test_the_loader_learns_the_runs_device_and_its_threads_are_recorded():
    class Aware(Reporting):
        def use_device(self, device_type):
            self.device_type = device_type

    loader = Aware(_batches(5), threads=(("main process intra-op", 2),))
    result = measure(loader, workload="emulated:1ms", device="cpu", steps=3, warmup=1)
    assert loader.device_type == "cpu"  # before the first batch: a DataLoader pins for CUDA only
    assert result.config["threads"] == {"main process intra-op": 2}


def test_feedbench_dataloaders_pin_only_for_cuda(small_folder):
    from feedbench.vision import torch_loader

    loader = torch_loader(small_folder.root, workers=1, batch_size=4, image_size=16)
    loader.pin_memory = True  # as on a machine with CUDA
    loader.use_device("cpu")
    assert loader.pin_memory is False
    roles = dict(loader.loader_stats().threads)
    assert roles["intra-op per worker process"] == 1 and roles["main process intra-op"] >= 1
