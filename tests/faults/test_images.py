"""Fault cases: image files as users meet them, through both pipelines, raise and skip.

Every bad file is named in one line ("raise") or dropped and counted once ("skip"), by both
frameworks alike; every odd but valid file decodes in both, to the same pixels; the user's
folder is never changed. The files are made here, none is checked in.
"""

import io
import os

import numpy as np
import pytest
from PIL import Image

from feedbench.pipelines import stats_of
from feedbench.pipelines.core.errors import described
from feedbench.pipelines.loop.adapter import to_torch
from feedbench.vision import tf_dataset, torch_loader

PIXEL_TOLERANCE = 0.05  # normalized units, as tests/vision/test_parity.py holds the pair
OPTIONS = {"train": False, "shuffle": False, "batch_size": 2, "workers": 0, "image_size": 16, "drop_last": False}


def _photo(width=48, height=40, mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    pixels = np.linspace(0, 255, width)[None, :, None] * np.ones((height, 1, 3)) + rng.normal(0, 25, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).convert(mode)


def _encoded(image, fmt, **options):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _jpeg_with(marker_at_middle: bytes) -> bytes:
    data = bytearray(_encoded(_photo(160, 120), "JPEG", quality=90))
    middle = len(data) // 2
    data[middle : middle + len(marker_at_middle)] = marker_at_middle
    return bytes(data)


def _png_damaged(offset_in_idat: int, patch: bytes) -> bytes:
    data = bytearray(_encoded(_photo(), "PNG"))
    start = data.index(b"IDAT") + 4 + offset_in_idat
    data[start : start + len(patch)] = patch
    return bytes(data)


def _bomb() -> bytes:
    data = bytearray(_encoded(_photo(8, 8), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (65000).to_bytes(2, "big") * 2
    return bytes(data)


def _exif_rotated() -> bytes:
    image = _photo()
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to view": both pipelines, like torchvision and tf, ignore it
    return _encoded(image, "JPEG", exif=exif.tobytes())


def _animated() -> bytes:
    frames = [_photo(seed=k).convert("P") for k in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


# name -> (bytes, what a reason says); each is one bad file among good ones.
BAD = {
    "truncated.jpg": (lambda: _encoded(_photo(), "JPEG")[:300], "truncated JPEG"),
    "empty.jpg": (lambda: b"", "empty file"),
    "text.jpg": (lambda: b"not an image\n", "not a JPEG or PNG"),
    "tiff-named.jpg": (lambda: _encoded(_photo(), "TIFF"), "not a JPEG or PNG"),
    "bomb.jpg": (_bomb, "decompression bomb"),
    "two-sof.jpg": (lambda: _jpeg_with(b"\xff\xc0"), "cannot decode"),
    "bad-huffman-table.jpg": (lambda: _jpeg_with(b"\xff\xc4\x00\x05\xff"), "cannot decode"),
    "idat-zeros.png": (lambda: _png_damaged(16, b"\0" * 40), "damaged PNG"),
    "idat-bitflip.png": (lambda: _png_damaged(10, b"\x5a"), "damaged PNG"),
    "truncated.png": (lambda: _encoded(_photo(), "PNG")[:-40], "truncated PNG"),
}
# name -> bytes of files that are odd but valid: both frameworks decode them, to the same pixels.
ODD = {
    "gray16.png": lambda: _encoded(Image.fromarray((np.arange(48 * 40).reshape(40, 48) * 27).astype(np.uint16)), "PNG"),
    "palette.png": lambda: _encoded(_photo().convert("P"), "PNG"),
    "palette-transparent.png": lambda: _encoded(_photo().convert("P"), "PNG", transparency=3),
    "gray-alpha.png": lambda: _encoded(_photo(mode="LA"), "PNG"),
    "bilevel.png": lambda: _encoded(_photo(mode="1"), "PNG"),
    "gray.jpg": lambda: _encoded(_photo(mode="L"), "JPEG"),
    "cmyk.jpg": lambda: _encoded(_photo(mode="CMYK"), "JPEG"),
    "progressive.jpg": lambda: _encoded(_photo(), "JPEG", progressive=True),
    "exif-rotated.jpg": _exif_rotated,
    "bitmap.bmp": lambda: _encoded(_photo(), "BMP"),
    "lossless.webp": lambda: _encoded(_photo(), "WEBP", lossless=True),
    "animated-gif-named.jpg": _animated,
    "png-named.jpg": lambda: _encoded(_photo(), "PNG"),
    "trailing-bytes-after-end.jpg": lambda: _encoded(_photo(), "JPEG") + b"camera trailer" * 10,
}
# Odd file names for a good JPEG.
NAMES = ["with space.jpg", "ünïcödé-名前.jpg", "-leading-dash.jpg", "new\nline.jpg", "x" * 200 + ".jpg",
         "UPPER.JPG", "dots...jpg", "#hash%percent&amp.jpeg"]


def _folder(tmp_path, name, data):
    """A folder of two good JPEGs and `name` holding `data`, in one class."""
    root = tmp_path / "folder"
    (root / "a").mkdir(parents=True)
    for k in range(2):
        (root / "a" / f"good{k}.jpg").write_bytes(_encoded(_photo(seed=10 + k), "JPEG"))
    path = root / "a" / os.fsdecode(name)
    path.write_bytes(data)
    return root, path


def _run(framework, root, **options):
    """(images NCHW, labels, skipped) of one epoch."""
    loader = {"torch": torch_loader, "tf": tf_dataset}[framework](root, **{**OPTIONS, **options})
    batches = [to_torch(batch) for batch in loader]
    skipped = loader.skipped if framework == "torch" else stats_of(loader).skipped
    import torch

    return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches]), skipped


@pytest.mark.parametrize("framework", ["torch", "tf"])
@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_image_is_named_when_raising(fault, tmp_path, framework, name):
    make, reason = BAD[name]
    root, path = _folder(tmp_path, name, make())
    before = fault.digest(root)
    with fault.within(60):
        try:
            _run(framework, root)
        except Exception as exc:  # noqa: BLE001 - the message is what is checked
            line = fault.one_line(described(exc), path)
            assert reason in line and line.startswith("DatasetError: "), line
        else:
            fault.broke("silent drops", f"{name} went into batches without an error")
    fault.unchanged(before, fault.digest(root), "the image folder")


@pytest.mark.parametrize("framework", ["torch", "tf"])
@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_image_is_dropped_and_counted_when_skipping(fault, tmp_path, framework, name, caplog):
    make, reason = BAD[name]
    root, path = _folder(tmp_path, name, make())
    before = fault.digest(root)
    with fault.within(60):
        _, labels, skipped = _run(framework, root, on_error="skip")
    fault.all_there(len(labels), 2)
    fault.counted(skipped, 1)
    assert str(path) in caplog.text and reason in caplog.text
    fault.unchanged(before, fault.digest(root), "the image folder")


@pytest.mark.parametrize("name", sorted(ODD))
def test_an_odd_but_valid_image_decodes_alike_in_both(fault, tmp_path, name):
    root, _ = _folder(tmp_path, name, ODD[name]())
    before = fault.digest(root)
    with fault.within(60):
        t_images, t_labels, t_skipped = _run("torch", root)
        f_images, f_labels, f_skipped = _run("tf", root)
    fault.all_there(len(t_labels), 3)
    fault.all_there(len(f_labels), 3)
    assert t_skipped == f_skipped == 0
    difference = (t_images - f_images).abs().mean(dim=(1, 2, 3))
    assert difference.max() < PIXEL_TOLERANCE, f"{name}: torch and tf differ by {difference.tolist()}"
    fault.unchanged(before, fault.digest(root), "the image folder")


@pytest.mark.parametrize("name", NAMES)
def test_an_odd_file_name_is_read_by_both(fault, tmp_path, name):
    root, path = _folder(tmp_path, name, _encoded(_photo(seed=3), "JPEG"))
    with fault.within(60):
        for framework in ("torch", "tf"):
            _, labels, skipped = _run(framework, root)
            fault.all_there(len(labels), 3)


def test_a_file_name_that_is_not_utf8_is_read_or_named(fault, tmp_path):
    root, path = _folder(tmp_path, b"latin-\xe9.jpg", _encoded(_photo(seed=3), "JPEG"))
    with fault.within(60):
        for framework in ("torch", "tf"):
            try:
                _, labels, _ = _run(framework, root)
            except Exception as exc:  # noqa: BLE001
                fault.one_line(described(exc), "latin-")
            else:
                fault.all_there(len(labels), 3)


@pytest.mark.parametrize("framework", ["torch", "tf"])
def test_a_jpeg_damaged_below_any_crop_is_named_in_train_mode_with_every_seed(fault, tmp_path, framework):
    """tf.data's decode_and_crop_jpeg stopped at the crop's last row and let this JPEG through
    for most seeds, where torch named it."""
    root, path = _folder(tmp_path, "late-damage.jpg", _jpeg_with(b"\xff\xc0"))
    with fault.within(120):
        for seed in range(5):
            try:
                _run(framework, root, train=True, seed=seed)
            except Exception as exc:  # noqa: BLE001
                assert "cannot decode" in fault.one_line(described(exc), path)
            else:
                fault.broke("silent drops", f"seed {seed}: the damaged JPEG went into batches")
