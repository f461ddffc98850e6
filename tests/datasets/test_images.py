import hashlib
import io
import json

import numpy as np
import pytest
from PIL import Image

from feedbench.datasets import make_image_folder, scan_image_folder
from feedbench.datasets._photo import ImageSpec, encode, paint
from feedbench.pipelines.core.errors import ConfigError


def test_layout_labels_and_manifest_describe_every_file(image_folder):
    root = image_folder.root
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["kind"] == "image-folder"
    assert len(manifest["files"]) == 40
    classes, samples = scan_image_folder(root)
    assert classes == ["class_000", "class_001", "class_002", "class_003"]
    assert len(samples) == 40
    by_path = {f["path"]: f for f in manifest["files"]}
    for path, label in samples:
        entry = by_path[path.relative_to(root).as_posix()]
        data = path.read_bytes()
        assert entry["label"] == label
        assert entry["size_bytes"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()


def test_files_decode_to_what_the_manifest_says(image_folder):
    kinds = set()
    for entry in image_folder.files:
        with Image.open(image_folder.root / entry["path"]) as image:
            assert image.format == entry["format"]
            assert image.mode == entry["mode"]
            assert image.size == (entry["width"], entry["height"])
            kinds.add((image.format, image.mode))
    # The fixture asks for 10% of each: all four kinds a real folder has must be there.
    assert kinds == {("JPEG", "RGB"), ("JPEG", "L"), ("JPEG", "CMYK"), ("PNG", "RGB")}


def test_sizes_and_aspect_ratios_spread(image_folder):
    aspects = {round(f["width"] / f["height"], 2) for f in image_folder.files}
    areas = [f["width"] * f["height"] for f in image_folder.files]
    assert len(aspects) >= 3
    assert max(areas) / min(areas) > 1.3
    assert 0.7 < np.mean(areas) / (500 * 375) < 1.3


def test_photo_like_jpeg_size_at_500x375_quality_90():
    sizes = []
    for i in range(24):
        rng = np.random.default_rng([7, i])
        sizes.append(len(encode(paint(rng, 500, 375), ImageSpec(500, 375), 90)))
    assert 100_000 <= np.mean(sizes) <= 130_000, np.mean(sizes)
    assert np.std(sizes) > 3_000  # busy and plain scenes, not one size


def test_photo_statistics_are_not_noise():
    rng = np.random.default_rng(3)
    pixels = paint(rng, 500, 375).astype(np.float64)
    gray = pixels.mean(axis=2)
    # Neighbouring pixels of a photo are strongly correlated; of white noise, not at all.
    a, b = gray[:, :-1].ravel(), gray[:, 1:].ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.7
    # 1/f spectrum: far more energy at low spatial frequencies than at high ones.
    spectrum = np.abs(np.fft.rfft2(gray - gray.mean()))
    low, high = spectrum[1:20, 1:20].mean(), spectrum[150:, 150:].mean()
    assert low > 10 * high
    # Colour: the channels differ.
    assert np.abs(pixels[..., 0] - pixels[..., 2]).mean() > 5
    # Uniform noise compresses worst (about 170 KB at this size); a photo far better.
    data = encode(pixels.astype(np.uint8), ImageSpec(500, 375), 90)
    noise = encode(np.random.default_rng(0).integers(0, 256, (375, 500, 3), dtype=np.uint8), ImageSpec(500, 375), 90)
    assert len(data) < 0.8 * len(noise)


def test_same_seed_same_bytes_whatever_the_workers(tmp_path):
    one = make_image_folder(tmp_path / "a", 20, classes=2, seed=5, workers=1)
    two = make_image_folder(tmp_path / "b", 20, classes=2, seed=5, workers=2)
    other = make_image_folder(tmp_path / "c", 20, classes=2, seed=6, workers=1)
    assert [f["sha256"] for f in one.files] == [f["sha256"] for f in two.files]
    assert [f["sha256"] for f in one.files] != [f["sha256"] for f in other.files]


def test_fixed_size_without_spread(tmp_path):
    data = make_image_folder(tmp_path / "d", 6, classes=1, size=(64, 48), spread=False, workers=1)
    assert {(f["width"], f["height"]) for f in data.files} == {(64, 48)}
    with Image.open(io.BytesIO((data.root / data.files[0]["path"]).read_bytes())) as image:
        assert image.size == (64, 48)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "n must be a positive"),
        ({"n": -3}, "n must be a positive"),
        ({"n": 3, "classes": 5}, r"classes \(5\) must not exceed n \(3\)"),
        ({"n": 3, "classes": 0}, "classes must be a positive"),
        ({"n": 3, "classes": 1, "size": (10, 10)}, "size must be"),
        ({"n": 3, "classes": 1, "gray_fraction": 1.5}, "gray_fraction must be within"),
    ],
)
def test_bad_arguments_name_the_argument(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        make_image_folder(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()
