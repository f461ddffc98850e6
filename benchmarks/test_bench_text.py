"""Text pipelines: documents/s per core for each tokenizer x framework, the cost of Python
tokenizers inside tf.data against the native regex one, scaling with workers, and the
fraction of padding tokens per batch with and without length bucketing.

Each speed point is an isolated run (a fresh spawned process) pinned to as many cores as it
has workers, with a near-free consumer (emulated:0.1ms), on the default generated corpus
(16,384 documents: 256 batches of 64, so no window crosses an epoch; 150 measured steps,
so that even the fastest pipeline is measured over about a second). The tokenizing pass
that builds the vocabulary runs when the loader is built, outside the measured window, and
is cached after the first run of each tokenizer.

The default set (about two minutes on 2 cores): regex and spaCy on one core in both
frameworks, regex at all cores in both, spaCy in tf.data against the native regex, and the
padding. ``--feedbench-full`` adds NLTK everywhere and spaCy in torch at all cores. No target is
asserted here (the issue sets none for text speed); the figures and what they show are in
docs/text.md.
"""

import os

import numpy as np
import pytest

from feedbench.datasets.defaults import default_text
from feedbench.pipelines import RunSpec, registry, run_isolated
from feedbench.pipelines.loop.adapter import to_torch
from feedbench.pipelines.loop.config import MeasureConfig
from feedbench.pipelines.pytest_plugin import record_result

CORES = len(os.sched_getaffinity(0))
DOCUMENTS, BATCH, STEPS, WARMUP = 16384, 64, 150, 10
assert DOCUMENTS // BATCH > STEPS + WARMUP + 2
MAX_LEN = 512
_rates: dict[tuple[str, str, int], float] = {}


def _run(framework, tokenizer, workers):
    data = default_text(n=DOCUMENTS)
    options = {"tokenizer": tokenizer, "batch_size": BATCH, "workers": workers, "max_len": MAX_LEN, "seed": 0}
    config = registry.make_config("text", framework, options)
    spec = RunSpec(registry.loader_factory("text", framework, data.root, config),
                   MeasureConfig(workload="emulated:0.1ms", device="cpu", steps=STEPS, warmup=WARMUP, cpus=workers,
                                 limit_s=600),
                   config={"framework": framework, **options})
    result = run_isolated(spec)
    assert result.ok, result.error
    return result


def _measured(benchmark, framework, tokenizer, workers):
    results = []
    benchmark.pedantic(lambda: results.append(_run(framework, tokenizer, workers)), rounds=1, iterations=1)
    result = results[0]
    _rates[(framework, tokenizer, workers)] = result.samples_per_s
    return result


FULL = pytest.mark.full
CASES = [(f, t) if t != "nltk" else pytest.param(f, t, marks=FULL)
         for t in ("regex", "nltk", "spacy") for f in ("torch", "tf")]
# tf.data with a Python tokenizer at all cores is the next test's subject, not repeated here.
SCALING = [("torch", "regex"), ("tf", "regex"), pytest.param("torch", "spacy", marks=FULL),
           pytest.param("torch", "nltk", marks=FULL)]


@pytest.mark.benchmark(group="text")
@pytest.mark.parametrize(("framework", "tokenizer"), CASES)
def test_documents_per_second_on_one_core(benchmark, framework, tokenizer):
    result = _measured(benchmark, framework, tokenizer, 1)
    record_result(benchmark, result, documents_per_s_per_core=result.samples_per_s, tokenizer=tokenizer, cores=1)


@pytest.mark.benchmark(group="text")
@pytest.mark.parametrize(("framework", "tokenizer"), SCALING)
def test_scaling_to_all_cores(benchmark, framework, tokenizer):
    if CORES < 2:
        pytest.skip("one core: nothing to scale to")
    result = _measured(benchmark, framework, tokenizer, CORES)
    one = _rates.get((framework, tokenizer, 1))
    efficiency = result.samples_per_s / (CORES * one) if one else None
    record_result(benchmark, result, scaling_efficiency=efficiency, tokenizer=tokenizer, cores=CORES)


@pytest.mark.benchmark(group="text")
@pytest.mark.parametrize("tokenizer", [pytest.param("nltk", marks=FULL), "spacy"])
def test_python_tokenizers_in_tf_data_against_the_native_regex(benchmark, tokenizer):
    """tf.data runs spaCy and NLTK through tf.numpy_function (holding the GIL) and regex as
    native string ops: the ratio of their rates at all cores is the price of the Python."""
    native = _rates.get(("tf", "regex", CORES)) or _run("tf", "regex", CORES).samples_per_s
    result = _measured(benchmark, "tf", tokenizer, CORES)
    one = _rates.get(("tf", tokenizer, 1))
    record_result(benchmark, result, native_regex_documents_per_s=native,
                  python_over_native=result.samples_per_s / native,
                  scaling_efficiency=result.samples_per_s / (CORES * one) if one else None, tokenizer=tokenizer,
                  cores=CORES)


@pytest.mark.benchmark(group="text")
@pytest.mark.parametrize("framework", ["torch", "tf"])
def test_padding_with_and_without_bucketing(benchmark, framework):
    """The fraction of the token cells of a batch that are padding, over one epoch."""
    from feedbench.text import tf_dataset, torch_loader

    factory = {"torch": torch_loader, "tf": tf_dataset}[framework]
    root = default_text(n=DOCUMENTS).root

    def fractions():
        out = {}
        for bucket in (False, True):
            loader = factory(root, tokenizer="regex", batch_size=BATCH, max_len=MAX_LEN, workers=0, bucket=bucket)
            cells = real = 0
            for batch in loader:
                ids, lengths, _ = to_torch(batch)
                cells += ids.numel()
                real += int(lengths.sum())
            out[bucket] = 1 - real / cells
        return out

    result = benchmark.pedantic(fractions, rounds=1, iterations=1)
    benchmark.extra_info.update(padding_fraction_plain=result[False], padding_fraction_bucketed=result[True],
                                max_len=MAX_LEN, batch_size=BATCH)
    assert result[True] < result[False]
    assert np.isfinite(result[True])
