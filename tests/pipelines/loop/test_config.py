"""MeasureConfig: the one place measurement settings are declared and validated, and the
options that set them, shared by the CLI and the pytest plugin."""

import argparse
import inspect

import pytest

from feedbench.pipelines import ConfigError
from feedbench.pipelines.core.machine import usable_cpus
from feedbench.pipelines.loop.config import DEFAULT_STEPS, OPTIONS, MeasureConfig, add_options, from_options

pytest_plugins = ["pytester"]


def test_defaults_and_normalization():
    config = MeasureConfig()
    assert config.steps == DEFAULT_STEPS and config.seconds is None and config.warmup == "auto"
    assert MeasureConfig(seconds=3.0).steps is None  # a window of seconds alone
    assert MeasureConfig(workload=" Emulated:0.02s ", device="CPU").workload == "emulated:20ms"
    assert MeasureConfig(device="CPU").device == "cpu"
    assert MeasureConfig(workload="ResNet50").workload == "resnet50"  # a model is named, not built here
    assert MeasureConfig().with_cpus().cpus == len(usable_cpus()) and MeasureConfig(cpus=1).with_cpus().cpus == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"workload": "bert"}, "unknown workload 'bert'"),
        ({"workload": 3}, "workload must be a name or a Workload object"),
        ({"device": "tpu"}, "device 'tpu': choose auto, cpu, cuda"),
        ({"steps": 0}, "steps must be a whole number >= 1, got 0"),
        ({"steps": 4.0}, "steps must be a whole number >= 1, got 4.0"),  # measure() took 4.0 before
        ({"steps": True}, "steps must be a whole number >= 1, got True"),
        ({"seconds": 0}, "seconds must be a positive number"),
        ({"seconds": float("inf")}, "seconds must be a positive number"),
        ({"warmup": 0}, "warmup must be a number of steps >= 1"),
        ({"warmup": "soon"}, "warmup must be a number of steps >= 1 .* or 'auto', got 'soon'"),
        ({"timeout": -1}, "timeout must be a positive number"),
        ({"cycle": "yes"}, "cycle must be True or False"),
        ({"cpus": 0}, "cpus must be 1.."),
        ({"cpus": 10_000}, "cpus must be 1.."),
        ({"limit_s": 0}, "limit_s must be a positive number"),
    ],
)
def test_bad_settings_are_refused_in_one_place_naming_what(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        MeasureConfig(**kwargs)


def test_every_caller_refuses_what_the_config_refuses():
    from feedbench.pipelines import RunSpec
    from feedbench.pipelines.loop.measure import measure

    with pytest.raises(ConfigError, match="steps must be a whole number >= 1, got 4.0"):
        measure([], steps=4.0)
    with pytest.raises(ConfigError, match="RunSpec.measure must be a MeasureConfig"):
        RunSpec(list, {"steps": 4.0})


def test_auto_warmup_comes_from_what_the_loader_makes_ahead():
    assert MeasureConfig().warmup_steps(None) == 5  # a loader that does not say
    assert MeasureConfig().warmup_steps(6) == 2 * 6 + 4
    assert MeasureConfig(warmup=3).warmup_steps(6) == 3


def test_measure_keeps_its_keywords_with_the_configs_defaults():
    from feedbench.pipelines.loop.measure import measure

    parameters = inspect.signature(measure).parameters
    for name in ("workload", "device", "steps", "seconds", "warmup", "timeout", "cycle"):
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert parameters[name].default == MeasureConfig.__dataclass_fields__[name].default


def test_the_options_are_declared_once_for_argparse_and_pytest(pytester):
    parser = argparse.ArgumentParser()
    add_options(parser.add_argument)
    args = parser.parse_args(["--steps", "7", "--warmup", "auto", "--limit-s", "30", "--device", "cpu"])
    assert from_options(vars(args)) == MeasureConfig(steps=7, device="cpu", limit_s=30.0)
    assert from_options(vars(parser.parse_args([]))) == MeasureConfig()  # defaults from one place
    flags = {f"--{option.flag}" for option in OPTIONS}
    assert flags <= set(parser._option_string_actions)
    # pytest's parser takes the same declarations, prefixed (the plugin adds them).
    result = pytester.runpytest("--help")
    out = result.stdout.str()
    for option in OPTIONS:
        if option.field not in ("cpus", "limit_s"):
            assert f"--feedbench-{option.flag}" in out


def test_a_bad_option_value_is_one_argparse_error():
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_options(parser.add_argument)
    with pytest.raises(argparse.ArgumentError, match="must be a number of steps or auto"):
        parser.parse_args(["--warmup", "soon"])
