"""num_shards and shard_index in both image pipelines: shard k of n holds exactly the images
i % n == k of the source's listing order, the same images in torch and in tf.data, shuffled
within the shard; bad values and empty shards are one-line errors naming the keyword."""

import numpy as np
import pytest
import torch

from feedbench.pipelines import ConfigError, stats_of
from feedbench.pipelines.core.frameworks import import_tfds
from feedbench.vision import ImageConfig, tf_dataset, torch_loader
from feedbench.vision.tf_pipeline import build_tf_prefix
from feedbench.vision.torch_pipeline import build_torch_prefix

SHARDS = 3
EVAL = dict(train=False, batch_size=5, workers=0, image_size=16, output="uint8")


def _torch(source, **kw):
    """(images NCHW uint8, labels) of one epoch, in batch order."""
    batches = list(torch_loader(source, **{**EVAL, **kw}))
    return torch.cat([b[0] for b in batches]).numpy(), torch.cat([b[1] for b in batches]).numpy()


def _tf(source, **kw):
    batches = list(tf_dataset(source, **{**EVAL, **kw}).as_numpy_iterator())
    return np.concatenate([b[0] for b in batches]).transpose(0, 3, 1, 2), np.concatenate([b[1] for b in batches])


READ = {"torch": _torch, "tf": _tf}


def _samples(images, labels):
    """The (pixels, label) of each image: what identifies an eval-mode sample, as a sorted list."""
    return sorted((image.tobytes(), int(label)) for image, label in zip(images, labels))


@pytest.fixture(scope="module")
def whole(small_folder, small_shards):
    """(images, labels) of the whole source in listing order, per (framework, kind)."""
    sources = {"folder": small_folder.root, "shards": small_shards.root}
    return {(framework, kind): READ[framework](source, shuffle=False)
            for framework in READ for kind, source in sources.items()}


@pytest.mark.parametrize("kind", ["folder", "shards"])
@pytest.mark.parametrize("framework", ["torch", "tf"])
def test_shard_k_holds_the_images_i_mod_n_equal_k(small_folder, small_shards, whole, framework, kind):
    source = small_folder.root if kind == "folder" else small_shards.root
    images, labels = whole[(framework, kind)]
    assert len(labels) == 24
    seen = []
    for k in range(SHARDS):
        # in order without the shuffle: the listing order's images k, k + 3, ...
        got_images, got_labels = READ[framework](source, shuffle=False, num_shards=SHARDS, shard_index=k)
        assert got_labels.tolist() == labels[k::SHARDS].tolist()
        assert np.array_equal(got_images, images[k::SHARDS])
        # shuffled: the same images, in another order (within the shard, not across)
        shuffled = READ[framework](source, shuffle=True, seed=5, num_shards=SHARDS, shard_index=k)
        assert _samples(*shuffled) == _samples(images[k::SHARDS], labels[k::SHARDS])
        seen += _samples(got_images, got_labels)
    assert sorted(seen) == _samples(images, labels)  # disjoint, and together the whole source


@pytest.mark.parametrize("kind", ["folder", "shards"])
def test_torch_and_tf_shards_hold_the_same_images(small_folder, small_shards, kind):
    source = small_folder.root if kind == "folder" else small_shards.root
    for k in range(SHARDS):
        t_images, t_labels = _torch(source, shuffle=False, num_shards=SHARDS, shard_index=k)
        f_images, f_labels = _tf(source, shuffle=False, num_shards=SHARDS, shard_index=k)
        assert len(t_labels) == 8 and t_labels.tolist() == f_labels.tolist()
        # the same images: within the pixel tolerance of test_parity.py (uint8: 0.05 x 255 x 0.226)
        difference = np.abs(t_images.astype(np.float64) - f_images.astype(np.float64)).mean(axis=(1, 2, 3))
        assert difference.max() < 0.05 * 255 * 0.226, difference.round(2).tolist()


def test_a_tfds_builder_is_sharded_in_its_own_order(small_folder, tmp_path):
    tfds = import_tfds()
    (tmp_path / "train").symlink_to(small_folder.root, target_is_directory=True)
    builder = tfds.folder_dataset.ImageFolder(str(tmp_path), shape=(None, None, 3))
    images, labels = _tf(builder, shuffle=False)
    shards = [_tf(builder, shuffle=False, num_shards=SHARDS, shard_index=k) for k in range(SHARDS)]
    for k, (got_images, got_labels) in enumerate(shards):
        assert np.array_equal(got_images, images[k::SHARDS]) and got_labels.tolist() == labels[k::SHARDS].tolist()
    with pytest.raises(ConfigError, match="num_shards=25 is more than the 24 sample"):
        tf_dataset(builder, **EVAL, num_shards=25)


def test_a_bad_image_is_its_own_shards_and_counted_once(broken_folder):
    root, bad = broken_folder
    for framework in ("torch", "tf"):
        skipped, labels = 0, []
        for k in range(2):
            loader = (torch_loader if framework == "torch" else tf_dataset)(
                root, **EVAL, on_error="skip", num_shards=2, shard_index=k)
            batches = list(loader if framework == "torch" else loader.as_numpy_iterator())
            labels += [int(y) for batch in batches for y in batch[1]]
            skipped += stats_of(loader).skipped
        assert skipped == len(bad) and len(labels) == 24, framework  # 28 files, 4 of them bad


def test_the_prefix_pipelines_read_the_shard_too(small_folder):
    """feedbench explain's prefixes take the same config: its "read" prefix gives each file's size."""
    cfg = ImageConfig(**EVAL, shuffle=False, num_shards=SHARDS, shard_index=1)
    whole_torch = torch.cat([b[0] for b in build_torch_prefix(small_folder.root, ImageConfig(**EVAL, shuffle=False),
                                                              "read")])
    t_sizes = torch.cat([b[0] for b in build_torch_prefix(small_folder.root, cfg, "read")])
    f_sizes = np.concatenate([b[0] for b in build_tf_prefix(small_folder.root, cfg, "read").as_numpy_iterator()])
    assert t_sizes.tolist() == whole_torch[1::SHARDS].tolist() == f_sizes.tolist()


@pytest.mark.parametrize(
    ("keywords", "named"),
    [({"num_shards": 0}, "num_shards"), ({"num_shards": True}, "num_shards"), ({"num_shards": 2.0}, "num_shards"),
     ({"num_shards": "2"}, "num_shards"), ({"shard_index": -1}, "shard_index"),
     ({"num_shards": 3, "shard_index": 3}, "shard_index"), ({"shard_index": False}, "shard_index")],
)
@pytest.mark.parametrize("factory", [torch_loader, tf_dataset], ids=["torch", "tf"])
def test_bad_values_are_one_line_errors_naming_the_keyword(small_folder, factory, keywords, named):
    with pytest.raises(ConfigError) as info:
        factory(small_folder.root, **EVAL, **keywords)
    message = str(info.value)
    assert "\n" not in message and message.startswith(named) and repr(next(iter(keywords.values()))) in message


@pytest.mark.parametrize("kind", ["folder", "shards"])
@pytest.mark.parametrize("factory", [torch_loader, tf_dataset], ids=["torch", "tf"])
def test_more_shards_than_images_is_a_one_line_error(small_folder, small_shards, factory, kind):
    source = small_folder.root if kind == "folder" else small_shards.root
    with pytest.raises(ConfigError) as info:
        factory(source, **EVAL, num_shards=30, shard_index=2)
    message = str(info.value)
    assert "\n" not in message and message.startswith("num_shards=30 is more than the 24 sample(s) of ")
    assert "shards 24 to 29 would be empty" in message
    factory(source, **EVAL, num_shards=24, shard_index=23)  # one image a shard is fine
