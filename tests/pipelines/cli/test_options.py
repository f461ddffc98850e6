"""The shared pipeline options: --option KEY=VALUE reaches each framework's config, checked
with the options its check reads."""

import argparse

import pytest

from feedbench.pipelines import ConfigError, registry
from feedbench.pipelines.cli.options import add_settings_options, settings_from_args


def _settings(data, *options):
    parser = argparse.ArgumentParser()
    add_settings_options(parser)
    args = parser.parse_args(["--task", "image", "--data", str(data), *[f"--option={o}" for o in options]])
    return settings_from_args(args, ["torch", "tf"])


@pytest.mark.parametrize("options", [("num_shards=2", "shard_index=1"), ("shard_index=1", "num_shards=2")])
def test_shard_options_reach_the_config_in_either_order(small_folder, options):
    settings = _settings(small_folder.root, *options)
    for framework in ("torch", "tf"):
        config = registry.make_config("image", framework, {**settings.options, "workers": 0})
        assert (config.num_shards, config.shard_index) == (2, 1)


@pytest.mark.parametrize(
    ("options", "message"),
    [(("shard_index=1",), "--option shard_index 1: shard_index must be a whole number from 0 to num_shards - 1 = 0"),
     (("shard_index=2", "num_shards=2"), "--option shard_index 2: shard_index must be a whole number from 0 to"),
     (("shard_index=1", "num_shards=0"), "--option num_shards 0: num_shards must be a whole number >= 1, got 0")],
)
def test_bad_shard_options_name_the_one_at_fault(small_folder, options, message):
    with pytest.raises(ConfigError) as info:
        _settings(small_folder.root, *options)
    assert str(info.value).startswith(message)
