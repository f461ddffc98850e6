import functools
import pickle

import pytest

from feedbench.pipelines.loop.config import MeasureConfig
from feedbench.pipelines import ConfigError, RunSpec, registry, run_isolated


def test_the_registry_names_both_pipelines_of_each_task():
    assert registry.tasks() == ["image", "text"]
    assert registry.frameworks("image") == registry.frameworks("text") == ["tf", "torch"]


def test_unknown_task_framework_and_option_are_clear_errors():
    with pytest.raises(ConfigError, match="unknown task 'video'; choose image, text"):
        registry.loader_factory("video", "torch", "x", None)
    with pytest.raises(ConfigError, match="unknown framework 'jax' for task 'image'; choose tf, torch"):
        registry.make_config("image", "jax", {})
    with pytest.raises(ConfigError, match="unknown option.*colour"):
        registry.make_config("image", "torch", {"colour": "red"})


def test_a_registered_pipeline_runs_isolated(small_folder):
    config = registry.make_config("image", "torch", {"batch_size": 4, "workers": 1, "image_size": 32})
    factory = registry.loader_factory("image", "torch", small_folder.root, config)
    assert isinstance(pickle.loads(pickle.dumps(factory)), functools.partial)
    result = run_isolated(RunSpec(factory, MeasureConfig(workload="emulated:1ms", device="cpu", steps=4, warmup=1), config={"task": "image", "framework": "torch", **config.to_dict()}))
    assert result.ok, result.error
    assert result.samples == 16 and result.config["framework"] == "torch" and result.config["batch_size"] == 4
