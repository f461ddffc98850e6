"""torch-gpu: reading and batching on the CPU, decode and transforms batched on the device.

Without a GPU the backend says so in one line; everything else runs here on the CPU through the
same code (``build_gpu_loader_on(..., "cpu")``): its batches against the torch pipeline's, train
(the same crop windows and flips) and eval, folder and Parquet shards, within the framework
pair's tolerance (tests/vision/test_parity.py); its resize weights against torchvision's own
resize; bad images named or skipped and counted; its prefixes; the run's device checked.
"""

import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as F

from feedbench.pipelines import ConfigError, DatasetError, measure
from feedbench.vision import ImageConfig, torch_loader
from feedbench.vision.torch_gpu import aa_weights, build_gpu_loader_on, gpu_loader

PIXEL_TOLERANCE = 0.05  # tests/vision/test_parity.py: normalized units


def _images(loader, batches=None):
    made = list(loader)[:batches]
    return torch.cat([b[0] for b in made]).double(), torch.cat([b[1] for b in made])


@pytest.mark.parametrize("kind", ["folder", "shards"])
@pytest.mark.parametrize(("train", "output"), [(False, "float"), (False, "uint8"), (True, "float"), (True, "uint8")])
def test_the_batches_are_the_torch_pipelines_within_the_pairs_tolerance(small_folder, small_shards, kind, train,
                                                                        output):
    root = small_folder.root if kind == "folder" else small_shards.root
    keywords = dict(train=train, shuffle=train, batch_size=5, workers=1, image_size=48, output=output, seed=4)
    mine, my_labels = _images(build_gpu_loader_on(root, ImageConfig(**keywords), "cpu"))
    theirs, their_labels = _images(torch_loader(root, **keywords))
    assert torch.equal(my_labels, their_labels) and mine.shape == theirs.shape
    scale = 255 * 0.226 if output == "uint8" else 1.0
    difference = (mine - theirs).abs().mean(dim=(1, 2, 3)) / scale
    assert difference.max() < PIXEL_TOLERANCE, difference.round(decimals=4).tolist()


@pytest.mark.parametrize(("length", "size"), [(256, 64), (97, 31), (40, 64), (64, 64)])
def test_the_resize_weights_are_torchvisions_resize(length, size):
    """A matrix of aa_weights resizes a ramp of noise as torchvision's antialiased resize does."""
    signal = torch.rand(1, 1, 8, length, dtype=torch.float64)
    theirs = F.resize(signal, [8, size], antialias=True)
    mine = signal @ torch.from_numpy(aa_weights(length, size)).T
    assert torch.allclose(mine, theirs, atol=1e-6)


def test_without_a_gpu_it_says_so_in_one_line(small_folder):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: torch-gpu runs")
    with pytest.raises(ConfigError) as info:
        gpu_loader(small_folder.root, workers=0)
    assert "torch-gpu" in str(info.value) and "torch sees none" in str(info.value) and "\n" not in str(info.value)


def test_a_run_on_another_device_is_refused_in_one_line(small_folder):
    loader = build_gpu_loader_on(small_folder.root, ImageConfig(batch_size=4, workers=0, image_size=16), "cpu")
    with pytest.raises(ConfigError, match="run it with --device cpu"):
        loader.use_device("cuda")
    result = measure(loader, workload="emulated:1ms", device="cpu", steps=3, warmup=1)
    assert result.ok and result.samples == 12
    assert dict(result.config["threads"])["decode and transforms on cpu"] == 1


def test_bad_images_are_named_or_skipped_and_counted(broken_folder):
    root, bad = broken_folder
    keywords = dict(train=False, shuffle=False, batch_size=4, workers=2, image_size=16)
    with pytest.raises(DatasetError) as info:
        list(build_gpu_loader_on(root, ImageConfig(**keywords), "cpu"))
    assert any(name in str(info.value) for name in bad) and "\n" not in str(info.value)
    loader = build_gpu_loader_on(root, ImageConfig(**keywords, on_error="skip"), "cpu")
    images, labels = _images(loader)
    assert len(labels) == 24 and loader.skipped == len(bad)


@pytest.mark.parametrize("through", ["read", "decode", "transform"])
def test_a_prefix_is_one_number_a_sample(small_folder, through):
    loader = build_gpu_loader_on(small_folder.root, ImageConfig(batch_size=4, workers=0, image_size=16), "cpu",
                                 through=through)
    numbers, labels = next(iter(loader))
    assert numbers.shape == (4,) and labels.shape == (4,) and numbers.dtype == torch.float32
    assert np.isfinite(numbers.numpy()).all()
