"""The registry: one complete entry per (task, backend), and what the harness reads from it."""

import dataclasses
import functools
import inspect
import pickle

import pytest

from feedbench.pipelines import ConfigError, RunSpec, registry, run_isolated
from feedbench.pipelines.loop.config import MeasureConfig
from feedbench.pipelines.registry import BACKENDS, Backend


def problems(entry: Backend) -> list[str]:
    """What is missing or wrong in an entry: every field filled, every path importable and of
    the right kind, the factory's keywords those of the config, with the same defaults."""
    found = []
    for field in dataclasses.fields(entry):
        value = getattr(entry, field.name)
        if field.name in ("machine_check", "remote_workers"):  # optional: "" where it does not apply
            continue
        if field.type == "str" and (not isinstance(value, str) or not value.strip()):
            found.append(f"{field.name} is empty")
    if entry.task not in ("image", "text"):
        found.append(f"task {entry.task!r}")
    for name in ("config", "builder", "factory", "source_check", "prefix", "machine_check"):
        try:
            getattr(entry, name) and registry.load(getattr(entry, name))
        except (ImportError, AttributeError, ValueError) as exc:
            found.append(f"{name} {getattr(entry, name)!r} does not import: {exc}")
    if found:
        return found
    config = registry.load(entry.config)
    if not (dataclasses.is_dataclass(config) and config.__dataclass_params__.frozen):
        found.append(f"config {entry.config} is not a frozen dataclass")
        return found
    factory = inspect.signature(registry.load(entry.factory)).parameters
    keywords = {n: p.default for n, p in factory.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    fields = {f.name: f.default for f in dataclasses.fields(config)}
    if keywords != fields:
        found.append(f"factory {entry.factory} keywords differ from {entry.config}: "
                     f"{sorted(set(keywords.items()) ^ set(fields.items()), key=str)}")
    for name in ("builder", "source_check", "prefix", *(("machine_check",) if entry.machine_check else ())):
        if not callable(registry.load(getattr(entry, name))):
            found.append(f"{name} is not callable")
    # the prefix stages are the pipeline's own (its framework-free module's SAMPLE_STAGES)
    common = registry.load(entry.config).__module__.rsplit(".", 1)[0] + "._common"
    if entry.stages != registry.load(f"{common}:SAMPLE_STAGES"):
        found.append(f"stages {entry.stages} are not {common}.SAMPLE_STAGES")
    return found


@pytest.mark.parametrize("entry", BACKENDS, ids=[f"{e.task}-{e.name}" for e in BACKENDS])
def test_every_entry_is_complete(entry):
    assert problems(entry) == []


def test_an_incomplete_entry_is_caught():
    good = BACKENDS[0]
    assert problems(dataclasses.replace(good, label=" ")) == ["label is empty"]
    assert "not feedbench.vision._common.SAMPLE_STAGES" in problems(dataclasses.replace(good, stages=("read",)))[0]
    assert "does not import" in problems(dataclasses.replace(good,
                                                             builder="feedbench.vision.torch_pipeline:nothing"))[0]
    # text keywords, image config
    wrong = dataclasses.replace(good, factory="feedbench.text.torch_pipeline:torch_loader")
    assert "keywords differ" in problems(wrong)[0]


def test_the_defaults_are_torch_and_tf_and_contenders_run_when_named():
    for task in registry.tasks():
        assert registry.defaults(task) == ["tf", "torch"]
        assert "torch-threads" in registry.frameworks(task)
    assert "torch-gpu" in registry.frameworks("image")


def test_names_are_unique_and_every_task_has_its_pair():
    pairs = [(e.task, e.name) for e in BACKENDS]
    assert len(pairs) == len(set(pairs))
    assert registry.tasks() == ["image", "text"]
    for task in registry.tasks():
        assert {"torch", "tf"} <= set(registry.frameworks(task))


def test_unknown_task_framework_and_option_are_clear_errors():
    with pytest.raises(ConfigError, match="unknown task 'video'; choose image, text"):
        registry.loader_factory("video", "torch", "x", None)
    with pytest.raises(ConfigError, match="unknown framework 'jax' for task 'image'; choose dali, ray, tf, "
                                          "tf-service, torch, torch-gpu, torch-threads"):
        registry.make_config("image", "jax", {})
    with pytest.raises(ConfigError, match="unknown option.*colour"):
        registry.make_config("image", "torch", {"colour": "red"})


def test_an_option_of_another_backend_is_left_to_it():
    """One set of options serves a comparison: the service's address goes to tf-service alone."""
    options = {"batch_size": 8, "service": "grpc://localhost:5050", "ray_address": "ray://head:10001"}
    assert not hasattr(registry.make_config("image", "torch", options), "service")
    service = registry.make_config("image", "tf-service", options)
    assert (service.service, service.batch_size) == ("grpc://localhost:5050", 8) and not hasattr(service, "ray_address")
    assert registry.make_config("image", "ray", options).ray_address == "ray://head:10001"
    assert registry.takers("image", "service") == ["tf-service"]
    assert registry.takers("text", "ray_address") == ["ray"]
    assert set(registry.takers("image", "batch_size")) == set(registry.frameworks("image"))
    with pytest.raises(ConfigError, match="service 'localhost:5050:1': expected host:port"):
        registry.make_config("image", "tf-service", {"service": "localhost:5050:1"})


def test_a_registered_pipeline_runs_isolated(small_folder):
    config = registry.make_config("image", "torch", {"batch_size": 4, "workers": 1, "image_size": 32})
    factory = registry.loader_factory("image", "torch", small_folder.root, config)
    assert isinstance(pickle.loads(pickle.dumps(factory)), functools.partial)
    measure = MeasureConfig(workload="emulated:1ms", device="cpu", steps=4, warmup=1)
    result = run_isolated(RunSpec(factory, measure, config={"task": "image", "framework": "torch", **config.to_dict()}))
    assert result.ok, result.error
    assert result.samples == 16 and result.config["framework"] == "torch" and result.config["batch_size"] == 4
