"""The contract every text pipeline keeps, checked on each framework with the same test:
the common batch format, seeded runs that repeat, a factory that crosses a spawn boundary
into an isolated measured run, bucketing that saves padding, and the same answers to bad
input. What only one framework does is tested in its own file.
"""

import dataclasses
import inspect
import pickle

import numpy as np
import pytest

from feedbench.pipelines import ConfigError, DatasetError, RunSpec, measure, registry, run_isolated
from feedbench.pipelines.loop.adapter import to_torch
from feedbench.pipelines.loop.config import MeasureConfig
from feedbench.text import TextConfig, tf_dataset, torch_loader
from feedbench.text.torch_threads import threads_loader

FACTORIES = {"torch": torch_loader, "tf": tf_dataset, "torch-threads": threads_loader}
FRAMEWORKS = pytest.mark.parametrize("framework", sorted(FACTORIES))
FAST = {"tokenizer": "regex", "batch_size": 16, "max_len": 128}


@FRAMEWORKS
def test_the_factory_keywords_are_the_configs_fields_in_order_with_its_defaults(framework):
    fields = [(f.name, f.default) for f in dataclasses.fields(TextConfig)]
    params = list(inspect.signature(FACTORIES[framework]).parameters.values())
    assert params[0].name == "source" and params[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    keywords = params[1:]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in keywords)
    assert [(p.name, p.default) for p in keywords] == fields


def _epoch(loader):
    return [tuple(t.numpy() for t in to_torch(batch)) for batch in loader]


def _padding_fraction(batches):
    cells = sum(ids.size for ids, _, _ in batches)
    return 1 - sum(int(lengths.sum()) for _, lengths, _ in batches) / cells


@FRAMEWORKS
def test_batches_have_the_common_format(text_corpus, framework):
    ids, lengths, labels = (t.numpy() for t in to_torch(next(iter(FACTORIES[framework](text_corpus.root, **FAST)))))
    assert ids.dtype == lengths.dtype == labels.dtype == np.int64
    assert ids.shape == (16, lengths.max()) and lengths.shape == labels.shape == (16,)
    assert (lengths >= 1).all() and (lengths <= 128).all() and set(labels.tolist()) <= {0, 1, 2}
    for row, length in zip(ids, lengths):
        assert (row[:length] > 0).all() and not row[length:].any()  # real tokens are never <pad>


@FRAMEWORKS
def test_a_seed_repeats_its_epochs_and_each_epoch_holds_every_document_once(text_corpus, framework):
    loader = FACTORIES[framework](text_corpus.root, seed=3, workers=2, **FAST)
    first, second = _epoch(loader), _epoch(loader)
    fewest = 0 if framework.startswith("torch") else 1
    again = _epoch(FACTORIES[framework](text_corpus.root, seed=3, workers=fewest, **FAST))
    assert len(first) == len(again)
    for a, b in zip(first, again):
        assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
    labels = [np.concatenate([b[2] for b in epoch]) for epoch in (first, second)]
    assert len(labels[0]) == 300 and sorted(labels[0]) == sorted(labels[1])
    assert labels[0].tolist() != labels[1].tolist()  # reshuffled between epochs
    other = _epoch(FACTORIES[framework](text_corpus.root, seed=4, **FAST))
    assert np.concatenate([b[2] for b in other]).tolist() != labels[0].tolist()


@FRAMEWORKS
def test_bucketing_cuts_the_padding(text_corpus, framework):
    options = dict(FAST, max_len=512)
    plain = _padding_fraction(_epoch(FACTORIES[framework](text_corpus.root, bucket=False, **options)))
    bucketed = _padding_fraction(_epoch(FACTORIES[framework](text_corpus.root, bucket=True, **options)))
    assert bucketed < plain / 2, (bucketed, plain)


@FRAMEWORKS
def test_the_factory_runs_isolated_and_reports_skips(tmp_path, framework):
    corpus = tmp_path / "c.jsonl"
    good = [f'{{"text": "document number {i} is fine.", "label": {i % 2}}}' for i in range(40)]
    corpus.write_text("\n".join([*good, '{"text": "  ", "label": 0}', '{"text": "no label"}']) + "\n")
    config = registry.make_config("text", framework, dict(FAST, on_error="skip", batch_size=4, workers=1))
    factory = registry.loader_factory("text", framework, corpus, config)
    pickle.loads(pickle.dumps(factory))
    result = run_isolated(RunSpec(factory, MeasureConfig(workload="emulated:1ms", device="cpu", steps=12, warmup=2)))
    assert result.ok, result.error
    assert result.skipped == 2 and result.steps == 12 and result.samples_per_s > 0


@FRAMEWORKS
def test_measure_reads_the_skip_count(tmp_path, framework):
    corpus = tmp_path / "c.jsonl"
    corpus.write_bytes(b'{"text": "fine", "label": 1}\n{"text": "\xff", "label": 1}\n'
                       b'{"text": "also fine", "label": 0}\n')
    loader = FACTORIES[framework](corpus, on_error="skip", tokenizer="regex", batch_size=1, workers=0)
    assert measure(loader, workload="emulated:1ms", device="cpu", steps=4, warmup=1).skipped == 1


@FRAMEWORKS
def test_bad_input_is_one_line_naming_the_record(tmp_path, framework):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": "fine", "label": 1}\n{"text": "fine", "label": "1"}\n')
    with pytest.raises(DatasetError, match=r"c\.jsonl line 2: \"label\" must be an integer") as error:
        FACTORIES[framework](corpus, tokenizer="regex")
    assert "\n" not in str(error.value)
    with pytest.raises(DatasetError, match="no such file or folder"):
        FACTORIES[framework](tmp_path / "missing", tokenizer="regex")


@FRAMEWORKS
@pytest.mark.parametrize(("keyword", "value"), [("batch_size", 0), ("max_len", 0), ("tokenizer", "bert"),
                                                ("workers", -1), ("prefetch", "lots"), ("bucket", "yes")])
def test_bad_keywords_name_themselves(text_corpus, framework, keyword, value):
    with pytest.raises(ConfigError, match=keyword):
        FACTORIES[framework](text_corpus.root, **{keyword: value})
