import pickle

import pytest
import torch

from feedbench.datasets import scan_image_folder
from feedbench.pipelines import ConfigError, DatasetError, measure
from feedbench.vision import torch_loader
from feedbench.vision._common import IMAGENET_MEAN, IMAGENET_STD


def _all(loader):
    batches = list(loader)
    return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("output", ["float", "uint8"])
def test_batches_have_the_common_format(small_folder, train, output):
    images, labels = next(iter(torch_loader(small_folder.root, train=train, batch_size=8, workers=0, image_size=64, output=output)))
    assert images.shape == (8, 3, 64, 64) and labels.shape == (8,) and labels.dtype == torch.int64
    if output == "uint8":
        assert images.dtype == torch.uint8
    else:
        assert images.dtype == torch.float32
        low = min((0 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD))
        high = max((1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD))
        assert low - 1e-5 <= images.min() and images.max() <= high + 1e-5


def chw(pil_eval, path, size):
    """The Pillow reference as a CHW tensor, the torch pipeline's layout."""
    return torch.from_numpy(pil_eval(path, size)).permute(2, 0, 1)


def test_eval_gives_files_in_order_and_pixels_like_pillow(small_folder, pil_eval):
    images, labels = _all(torch_loader(small_folder.root, train=False, shuffle=False, batch_size=5, workers=0, image_size=64))
    _, samples = scan_image_folder(small_folder.root)
    assert labels.tolist() == [label for _, label in samples]
    assert len(images) == 24  # eval keeps the last short batch
    differences = [float((image - chw(pil_eval, path, 64)).abs().mean()) for image, (path, _) in zip(images, samples)]
    assert max(differences) < 0.06, differences  # measured about 0.02: resize kernels differ slightly


def test_train_is_random_but_repeats_for_a_seed(small_folder):
    def first_epoch(seed, workers):
        return _all(torch_loader(small_folder.root, batch_size=4, workers=workers, seed=seed, image_size=48))

    a, b, c = first_epoch(1, 0), first_epoch(1, 2), first_epoch(2, 0)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])  # same seed, any number of workers
    assert not torch.equal(a[0], c[0])
    loader = torch_loader(small_folder.root, batch_size=4, workers=0, seed=1, image_size=48)
    epoch1, epoch2 = _all(loader), _all(loader)
    assert torch.equal(epoch1[0], a[0]) and not torch.equal(epoch1[0], epoch2[0])


def test_train_crops_and_flips(small_folder):
    images, _ = _all(torch_loader(small_folder.root, batch_size=8, workers=0, image_size=48, output="uint8"))
    eval_images, _ = _all(torch_loader(small_folder.root, train=False, batch_size=8, workers=0, image_size=48, output="uint8"))
    assert images.shape[1:] == (3, 48, 48)
    assert not torch.equal(images.float().mean(0), eval_images[: len(images)].float().mean(0))


def test_parquet_shards_give_the_same_batches_as_the_folder(small_folder, small_shards):
    folder = _all(torch_loader(small_folder.root, train=False, shuffle=False, batch_size=6, workers=0, image_size=32))
    shards = _all(torch_loader(small_shards.root, train=False, shuffle=False, batch_size=6, workers=0, image_size=32))
    assert torch.equal(folder[1], shards[1]) and torch.equal(folder[0], shards[0])
    train = _all(torch_loader(small_shards.root, batch_size=6, workers=2, image_size=32))
    assert sorted(train[1].tolist()) == sorted(folder[1].tolist())


def test_gray_cmyk_and_png_come_out_rgb(small_folder, pil_eval):
    odd = [f for f in small_folder.files if f["mode"] != "RGB" or f["format"] == "PNG"]
    assert {f["mode"] for f in odd} >= {"L", "CMYK"} and any(f["format"] == "PNG" for f in odd)
    images, _ = _all(torch_loader(small_folder.root, train=False, shuffle=False, batch_size=24, workers=0, image_size=32))
    assert images.shape == (24, 3, 32, 32)
    _, samples = scan_image_folder(small_folder.root)
    by_path = {str(p): i for i, (p, _) in enumerate(samples)}
    for entry in odd:
        path = str(small_folder.root / entry["path"])
        assert float((images[by_path[path]] - chw(pil_eval, path, 32)).abs().mean()) < 0.06, entry


def test_drop_last_and_its_default(small_folder):
    assert len(list(torch_loader(small_folder.root, batch_size=10, workers=0, image_size=16))) == 2  # train: drops
    assert len(list(torch_loader(small_folder.root, train=False, batch_size=10, workers=0, image_size=16))) == 3


def test_raise_names_the_bad_file_in_the_main_process(broken_folder):
    root, bad = broken_folder
    loader = torch_loader(root, train=False, shuffle=False, batch_size=4, workers=2, image_size=16)
    with pytest.raises(DatasetError) as info:
        list(loader)
    message = str(info.value)
    assert "\n" not in message and any(name in message for name in bad)
    assert "Traceback" not in message and "worker" not in message


def test_skip_drops_and_counts_every_bad_file(broken_folder, caplog):
    root, bad = broken_folder
    loader = torch_loader(root, train=False, shuffle=False, batch_size=4, workers=2, image_size=16, on_error="skip")
    images, labels = _all(loader)
    assert len(labels) == 24 and loader.skipped == len(bad)
    for name in bad:
        assert name in caplog.text
    reasons = caplog.text
    assert "truncated JPEG" in reasons and "empty file" in reasons and "not a JPEG or PNG" in reasons and "unreadable" in reasons
    result = measure(torch_loader(root, train=False, batch_size=4, workers=0, image_size=16, on_error="skip"),
                     workload="emulated:1ms", device="cpu", steps=6, warmup=1, cycle=False)
    assert result.skipped == len(bad)


def test_empty_folders_are_named(tmp_path):
    with pytest.raises(DatasetError, match="no class folders"):
        torch_loader(tmp_path, workers=0)
    (tmp_path / "cats").mkdir()
    with pytest.raises(DatasetError, match="cats: class folder with no image"):
        torch_loader(tmp_path, workers=0)
    with pytest.raises(DatasetError, match="no such image folder"):
        torch_loader(tmp_path / "nope", workers=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"batch_size": 0}, "batch_size must be a positive"), ({"workers": -1}, "workers must be"),
     ({"output": "half"}, "output must be one of"), ({"on_error": "ignore"}, "on_error must be one of"),
     ({"image_size": 0}, "image_size must be")],
)
def test_bad_keywords(small_folder, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        torch_loader(small_folder.root, **kwargs)


def test_the_loader_pickles_for_spawned_workers_and_shuts_down(small_folder):
    loader = torch_loader(small_folder.root, batch_size=4, workers=2, image_size=16)
    clone = pickle.loads(pickle.dumps(loader.dataset))
    assert len(clone) == 24
    batches = iter(loader)
    next(batches)
    workers = list(loader._iterator._workers)  # persistent workers live with the loader
    assert len(workers) == 2 and all(w.is_alive() for w in workers)
    batches.close()
    loader._iterator._shutdown_workers()
    assert not any(w.is_alive() for w in workers)
