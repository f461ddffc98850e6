"""The one definition of a shard: records dealt round-robin, the same deal for every index."""

import pytest

from feedbench.pipelines.core import sharding
from feedbench.pipelines.core.errors import ConfigError


def test_the_shards_deal_every_position_once():
    shards = [sharding.positions(10, 3, k, "src") for k in range(3)]
    assert [list(s) for s in shards] == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert all(sharding.holds(i, 3, k) for k, s in enumerate(shards) for i in s)
    assert list(sharding.positions(5, 1, 0, "src")) == [0, 1, 2, 3, 4]


def test_more_shards_than_samples_is_refused_for_every_index():
    for k in (0, 2):  # shard 0 would have a sample, but its siblings would not: all refuse together
        with pytest.raises(ConfigError, match=r"^num_shards=3 is more than the 2 sample\(s\) of src: shard 2 "):
            sharding.positions(2, 3, k, "src")


@pytest.mark.parametrize(("num_shards", "shard_index", "named"),
                         [(0, 0, "num_shards"), (1.0, 0, "num_shards"), (None, 0, "num_shards"), (2, 2, "shard_index"),
                          (2, -1, "shard_index"), (2, True, "shard_index")])
def test_bad_values_name_the_keyword(num_shards, shard_index, named):
    with pytest.raises(ConfigError, match=f"^{named} must be a whole number"):
        sharding.check(num_shards, shard_index)
    assert sharding.check(4, 3) is None and sharding.part(4, 3) == " in shard 3 of 4" and sharding.part(1, 0) == ""
