import gc
import shutil
from multiprocessing import forkserver

import psutil
import pytest
import torch

from feedbench.datasets import scan_image_folder
from feedbench.pipelines import DatasetError
from feedbench.vision import torch_loader


def _all(loader):
    batches = list(loader)
    return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])


def chw(pil_eval, path, size):
    """The Pillow reference as a CHW tensor, the torch pipeline's layout."""
    return torch.from_numpy(pil_eval(path, size)).permute(2, 0, 1)


def test_eval_gives_files_in_order_and_pixels_like_pillow(small_folder, pil_eval):
    images, labels = _all(torch_loader(small_folder.root, train=False, shuffle=False, batch_size=5, workers=0,
                                       image_size=64))
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
    eval_images, _ = _all(torch_loader(small_folder.root, train=False, batch_size=8, workers=0, image_size=48,
                                       output="uint8"))
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
    images, _ = _all(torch_loader(small_folder.root, train=False, shuffle=False, batch_size=24, workers=0,
                                  image_size=32))
    assert images.shape == (24, 3, 32, 32)
    _, samples = scan_image_folder(small_folder.root)
    by_path = {str(p): i for i, (p, _) in enumerate(samples)}
    for entry in odd:
        path = str(small_folder.root / entry["path"])
        assert float((images[by_path[path]] - chw(pil_eval, path, 32)).abs().mean()) < 0.06, entry


def _forkserver_children():
    """The live processes the fork server started (DataLoader workers start from it)."""
    pid = forkserver._forkserver._forkserver_pid
    if pid is None:
        return set()
    alive = set()
    for child in psutil.Process(pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                alive.add(child.pid)
        except psutil.NoSuchProcess:
            continue
    return alive


def test_a_pass_that_raised_has_ended_its_workers(small_folder, tmp_path):
    """Its workers are gone before the error reaches the caller, not when the garbage collector
    finds the pass: the DataLoader's own shutdown, run by the collector on an iterator that an
    exception's traceback holds, waited 5 s for each worker, in whatever thread collected it."""
    root = tmp_path / "folder"
    shutil.copytree(small_folder.root, root)
    (root / "manifest.json").unlink()
    good = sorted((root / "class_002").glob("*.jpg"))[0].read_bytes()
    (root / "class_002" / "zz-cut.jpg").write_bytes(good[: len(good) // 2])  # the last of 25: batch 7
    loader = torch_loader(root, train=False, shuffle=False, batch_size=4, workers=2, image_size=16)
    before = _forkserver_children()
    gc.disable()  # nothing but the pass itself may end its workers
    try:
        batches = iter(loader)
        next(batches)
        started = _forkserver_children() - before
        with pytest.raises(DatasetError, match="zz-cut.jpg"):
            list(batches)
        left = _forkserver_children() & started
    finally:
        gc.enable()
    assert len(started) == 2 and not left
    with pytest.raises(DatasetError, match="zz-cut.jpg"):  # the next pass starts workers again
        list(loader)


def test_raise_names_the_bad_file_in_the_main_process(broken_folder):
    root, bad = broken_folder
    loader = torch_loader(root, train=False, shuffle=False, batch_size=4, workers=2, image_size=16)
    with pytest.raises(DatasetError) as info:
        list(loader)
    message = str(info.value)
    assert "\n" not in message and any(name in message for name in bad)
    assert "Traceback" not in message and "worker" not in message


