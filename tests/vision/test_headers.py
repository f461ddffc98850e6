"""Image sizes read from headers, held to Pillow's reading of the same files; and the
decompression-bomb limit and animated GIFs, answered the same way by both frameworks."""

import io
import shutil
import time

import numpy as np
import pytest
from PIL import Image

from feedbench.pipelines import DatasetError, measure
from feedbench.vision import tf_dataset, torch_loader
from feedbench.vision._common import MAX_PIXELS, header_size, looks_like_image

FACTORIES = {"torch": torch_loader, "tf": tf_dataset}
FRAMEWORKS = pytest.mark.parametrize("framework", sorted(FACTORIES))


def _encode(size, fmt, **kwargs):
    rng = np.random.default_rng(size[0] * 1000 + size[1])
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    out = io.BytesIO()
    image.save(out, fmt, **kwargs)
    return out.getvalue()


@pytest.mark.parametrize("fmt, kwargs", [
    ("JPEG", {}), ("JPEG", {"progressive": True}), ("JPEG", {"exif": b"Exif\0\0" + bytes(60000)}),
    ("PNG", {}), ("GIF", {}), ("BMP", {}), ("WEBP", {"lossless": True}), ("WEBP", {"quality": 50}),
])
@pytest.mark.parametrize("size", [(1, 1), (37, 5), (300, 211)])
def test_header_size_agrees_with_pillow(fmt, kwargs, size):
    data = _encode(size, fmt, **kwargs)
    assert header_size(data) == Image.open(io.BytesIO(data)).size == size


def _bomb_jpeg(width, height):
    """A real 8x8 JPEG whose frame header claims width x height."""
    data = bytearray(_encode((8, 8), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def test_a_header_over_the_pixel_limit_is_a_bomb_as_pillow_says():
    bomb = _bomb_jpeg(65000, 65000)
    with pytest.raises(Image.DecompressionBombError):  # the independent reading
        Image.open(io.BytesIO(bomb))
    assert "65000x65000 pixels, more than the limit of 89,478,485" in looks_like_image(bomb)
    assert MAX_PIXELS == Image.MAX_IMAGE_PIXELS  # the same limit
    assert looks_like_image(_bomb_jpeg(9459, 9459)) is None  # 89,472,681 pixels: under it


@pytest.fixture()
def bomb_folder(small_folder, tmp_path):
    root = tmp_path / "bomb"
    shutil.copytree(small_folder.root, root)
    (root / "manifest.json").unlink()
    (root / "class_001" / "bomb.jpg").write_bytes(_bomb_jpeg(65000, 65000))
    return root


@FRAMEWORKS
@pytest.mark.parametrize("train", [True, False])
def test_a_decompression_bomb_is_refused_by_name_before_it_is_decoded(bomb_folder, framework, train):
    started = time.monotonic()
    with pytest.raises(DatasetError, match=r"bomb\.jpg: 65000x65000 pixels, more than the limit"):
        list(FACTORIES[framework](bomb_folder, train=train, shuffle=False, batch_size=5, workers=2, image_size=16))
    assert time.monotonic() - started < 60


@FRAMEWORKS
def test_a_skipped_bomb_is_counted(bomb_folder, framework):
    loader = FACTORIES[framework](bomb_folder, train=False, shuffle=False, batch_size=4, workers=2, image_size=16,
                                  on_error="skip", drop_last=False)
    assert sum(len(labels) for _, labels in loader) == 24  # the whole epoch but the bomb
    result = measure(loader, workload="emulated:1ms", device="cpu", steps=4, warmup=1)
    assert result.ok and result.skipped == 1


@FRAMEWORKS
def test_an_animated_gif_named_jpg_gives_its_first_frame(small_folder, tmp_path, framework):
    root = tmp_path / "gif"
    shutil.copytree(small_folder.root, root)
    (root / "manifest.json").unlink()
    frames = [Image.new("RGB", (32, 32), color) for color in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    frames[0].save(root / "class_000" / "0000000-animated.jpg", "GIF", save_all=True, append_images=frames[1:])
    loader = FACTORIES[framework](root, train=False, shuffle=False, batch_size=25, workers=2, image_size=16,
                                  output="uint8")
    images, labels = next(iter(loader))
    assert len(labels) == 25
    first = np.asarray(images[0])  # the GIF sorts first in class_000
    pixels = first.reshape(3, -1) if framework == "torch" else first.reshape(-1, 3).T
    assert np.abs(pixels.mean(axis=1) - [255, 0, 0]).max() < 3  # red: the first frame


def test_tf_file_check_reads_a_frame_header_behind_a_large_exif_block(tmp_path):
    """tf.data checks a folder's files from their ends: 4 KiB of the head, more only where the
    size is not in it. A bomb whose frame header sits behind 60 KB of EXIF is found there too."""
    from feedbench.vision.tf_pipeline import HEAD_BYTES, TAIL_BYTES, _file_problem

    data = bytearray(_encode((700, 500), "JPEG", exif=b"Exif\0\0" + bytes(60000), quality=100))
    sof = data.index(b"\xff\xc0")
    assert sof > TAIL_BYTES and len(data) > HEAD_BYTES + TAIL_BYTES  # the path that reads on
    data[sof + 5 : sof + 9] = (65000).to_bytes(2, "big") * 2
    path = tmp_path / "bomb.jpg"
    path.write_bytes(bytes(data))
    assert _file_problem(str(path)) == looks_like_image(bytes(data))
    assert "65000x65000 pixels" in _file_problem(str(path))
