"""dali: the image pipeline in NVIDIA DALI. Without a GPU the backend says so in one line, and
without DALI too; its pipeline runs here on the CPU (``build_dali_loader_on(..., "cpu")``, the
same graph with the CPU decoder): eval batches against the torch pipeline's within the framework
pair's tolerance (tests/vision/test_parity.py), folder and Parquet shards; train batches in the
common format, epochs that differ; bad images named or skipped and counted; its stats."""

import sys

import pytest
import torch

from feedbench.pipelines import ConfigError, DatasetError, MissingDependencyError, measure
from feedbench.pipelines.cli import main
from feedbench.vision import ImageConfig, torch_loader
from feedbench.vision.dali_pipeline import build_dali_loader_on, build_dali_prefix, dali_loader

PIXEL_TOLERANCE = 0.05  # tests/vision/test_parity.py: normalized units


def _epoch(loader):
    made = list(loader)
    return torch.cat([b[0] for b in made]), torch.cat([b[1] for b in made])


@pytest.mark.parametrize("kind", ["folder", "shards"])
@pytest.mark.parametrize("output", ["float", "uint8"])
def test_eval_batches_are_the_torch_pipelines_within_the_pairs_tolerance(small_folder, small_shards, kind, output):
    root = small_folder.root if kind == "folder" else small_shards.root
    keywords = dict(train=False, shuffle=False, batch_size=5, workers=0, image_size=48, output=output)
    mine, my_labels = _epoch(build_dali_loader_on(root, ImageConfig(**keywords), "cpu"))
    theirs, their_labels = _epoch(torch_loader(root, **keywords))
    assert torch.equal(my_labels, their_labels) and mine.shape == theirs.shape and mine.dtype == theirs.dtype
    scale = 255 * 0.226 if output == "uint8" else 1.0
    difference = (mine.double() - theirs.double()).abs().mean(dim=(1, 2, 3)) / scale
    assert difference.max() < PIXEL_TOLERANCE, difference.round(decimals=4).tolist()


def test_train_batches_have_the_common_format_and_each_epoch_its_own_draws(small_folder):
    loader = build_dali_loader_on(small_folder.root, ImageConfig(batch_size=8, workers=2, image_size=32, seed=3), "cpu")
    first, second = _epoch(loader), _epoch(loader)
    assert first[0].shape == (24, 3, 32, 32) and first[0].dtype == torch.float32 and first[1].dtype == torch.int64
    assert sorted(first[1].tolist()) == sorted(second[1].tolist()) and not torch.equal(first[0], second[0])
    assert first[1].tolist() != second[1].tolist()  # reshuffled
    theirs = _epoch(torch_loader(small_folder.root, batch_size=8, workers=0, image_size=32, seed=3))
    assert abs(float(first[0].min()) - float(theirs[0].min())) < 0.2
    assert abs(float(first[0].max()) - float(theirs[0].max())) < 0.2
    result = measure(loader, workload="emulated:1ms", device="cpu", steps=3, warmup=1)
    assert result.ok and result.samples == 24 and result.config["threads"]["DALI CPU threads"] == 2


def test_bad_images_are_named_or_skipped_and_counted(broken_folder):
    root, bad = broken_folder
    keywords = dict(train=False, shuffle=False, batch_size=4, workers=1, image_size=16)
    with pytest.raises(DatasetError) as info:
        build_dali_loader_on(root, ImageConfig(**keywords), "cpu")
    assert any(name in str(info.value) for name in bad) and "\n" not in str(info.value)
    loader = build_dali_loader_on(root, ImageConfig(**keywords, on_error="skip"), "cpu")
    assert len(_epoch(loader)[1]) == 24 and loader.skipped == len(bad) == loader.loader_stats().skipped


def test_without_a_gpu_or_without_dali_it_says_so_in_one_line(small_folder, monkeypatch, capsys):
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="dali decodes on a CUDA GPU .nvJPEG., and torch sees none"):
            dali_loader(small_folder.root, workers=0)
        assert main(["run", "--task", "image", "--framework", "dali", "--data", str(small_folder.root)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("feedbench: error: dali decodes on a CUDA GPU") and len(err.strip().splitlines()) == 1
    monkeypatch.setitem(sys.modules, "nvidia.dali", None)  # as if not installed
    with pytest.raises(MissingDependencyError, match=r"pip install 'feedbench\[dali\]'"):
        dali_loader(small_folder.root, workers=0)


def test_it_has_no_prefix_and_says_why(small_folder):
    with pytest.raises(ConfigError, match="its decoder crops as it decodes"):
        build_dali_prefix(small_folder.root, ImageConfig(), "decode")
