"""Procedural photo-like images: the pixels, not the files.

Random noise is not a photo: it compresses to three times the size and decodes at another
speed. A photo has smooth regions (sky, walls), edges (object outlines), texture whose
strength varies across the frame (grass beside sky) and a 1/f spectrum. This module paints
such an image from a seed in a few milliseconds with NumPy and Pillow, no framework.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

# (aspect ratio width/height, probability): what a folder of camera photos holds.
_ASPECTS = ((4 / 3, 0.50), (3 / 4, 0.20), (3 / 2, 0.12), (1.0, 0.10), (16 / 9, 0.08))
# Texture amplitude (grey levels) tuned so that 500x375 JPEGs at quality 90 average
# 100-130 KB, as ImageNet's photos do (tests/datasets/test_photo.py holds it there).
_TEXTURE = 20.0
_BANK = 1024  # side of the shared noise tile, pixels


@dataclass(frozen=True)
class ImageSpec:
    """What one generated image will be.

    Attributes:
        width: Pixels across.
        height: Pixels down.
        mode: "RGB", "L" (grayscale) or "CMYK"; written as a JPEG of that colour space.
        fmt: "JPEG" or "PNG".
    """

    width: int
    height: int
    mode: str = "RGB"
    fmt: str = "JPEG"

    @property
    def suffix(self) -> str:
        return ".png" if self.fmt == "PNG" else ".jpg"


def draw_spec(
    rng: np.random.Generator,
    size: tuple[int, int],
    *,
    spread: bool,
    gray_fraction: float,
    png_fraction: float,
    cmyk_fraction: float,
) -> ImageSpec:
    """Draws the size, colour space and format of one image.

    Args:
        rng: The image's own generator.
        size: (width, height) of a typical image; its area is kept on average.
        spread: Vary aspect ratio and area around `size`, as a real folder does.
        gray_fraction: Probability of a grayscale JPEG.
        png_fraction: Probability of a PNG (RGB).
        cmyk_fraction: Probability of a CMYK JPEG.
    """
    width, height = size
    if spread:
        aspects, weights = zip(*_ASPECTS)
        aspect = aspects[rng.choice(len(aspects), p=weights)]
        area = width * height * float(np.exp(rng.normal(0.0, 0.2)))
        width = int(round(np.sqrt(area * aspect)))
        height = int(round(np.sqrt(area / aspect)))
    width, height = max(width, 32), max(height, 32)
    u = rng.random()
    if u < gray_fraction:
        return ImageSpec(width, height, mode="L")
    if u < gray_fraction + cmyk_fraction:
        return ImageSpec(width, height, mode="CMYK")
    if u < gray_fraction + cmyk_fraction + png_fraction:
        return ImageSpec(width, height, fmt="PNG")
    return ImageSpec(width, height)


def _palette(rng: np.random.Generator, tone: np.ndarray, count: int, spread: float) -> np.ndarray:
    """`count` colours scattered around the scene's tone: muted, as photos' colours are."""
    colours = tone + rng.normal(0.0, spread, (count, 3)) + rng.normal(0.0, spread, (count, 1))
    return np.clip(colours, 0, 255).astype(np.uint8)


def _smooth_field(
    rng: np.random.Generator, width: int, height: int, cells: int, mode: str, tone: np.ndarray | None = None
) -> Image.Image:
    """A smooth random field: a coarse random grid upsampled bicubically.

    Args:
        mode: "RGB" for colour around `tone` (uint8), "L" for one channel over 0..255.
        tone: Mean colour of an "RGB" field.
    """
    gw = max(2, cells)
    gh = max(2, int(round(cells * height / width)))
    channels = 3 if mode == "RGB" else 1
    if mode == "RGB":
        grid = _palette(rng, tone, gh * gw, 40.0).reshape(gh, gw, 3)
    else:
        grid = rng.integers(0, 256, (gh, gw, 1), dtype=np.uint8)
    field = Image.fromarray(grid if channels == 3 else grid[..., 0], mode=mode)
    # Bicubic to an eighth of the size, then bilinear: as smooth, at a quarter of the cost.
    field = field.resize((max(gw, width // 8), max(gh, height // 8)), Image.BICUBIC)
    return field.resize((width, height), Image.BILINEAR)


@functools.lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    """A fixed tile of zero-mean noise with a roughly 1/f spectrum (int16 grey levels).

    Built once per process from a constant seed, so it adds no hidden random state: each
    image takes its texture from a seeded offset and flip of this tile. Painting fresh
    octaves per image costs more than the JPEG encoding; reusing one tile keeps generation
    above 150 images/s per core.
    """
    rng = np.random.default_rng(0x5EED)
    total = np.zeros((_BANK, _BANK), np.float32)
    for factor, weight in ((1, 0.6), (2, 0.8), (4, 0.9), (8, 0.7), (16, 0.5)):
        side = _BANK // factor
        octave = rng.standard_normal((side, side), dtype=np.float32)
        if factor > 1:
            octave = np.asarray(Image.fromarray(octave, mode="F").resize((_BANK, _BANK), Image.BILINEAR))
        total += weight * octave
    total *= _TEXTURE / total.std()
    return np.clip(total, -127, 127).astype(np.int16)


def _texture(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A seeded window of the noise tile, its strength varying across the frame."""
    bank = _noise_bank()
    reps_y, reps_x = -(-height // _BANK), -(-width // _BANK)
    if reps_y > 1 or reps_x > 1:
        bank = np.tile(bank, (reps_y + 1, reps_x + 1))
    y = int(rng.integers(0, bank.shape[0] - height + 1))
    x = int(rng.integers(0, bank.shape[1] - width + 1))
    window = bank[y : y + height, x : x + width]
    if rng.random() < 0.5:
        window = window[:, ::-1]
    # Strength 0..~2.5 in steps of 1/64: smooth areas (sky) beside busy ones (foliage).
    strength = np.asarray(_smooth_field(rng, width, height, cells=4, mode="L"), dtype=np.int16)
    return (window * (strength >> 1)) >> 5


def _draw_objects(rng: np.random.Generator, canvas: Image.Image, tone: np.ndarray) -> None:
    """Paints a few solid shapes (outlines, occlusion) onto `canvas` in place."""
    width, height = canvas.size
    draw = ImageDraw.Draw(canvas)
    count = int(rng.integers(4, 12))
    for colour in _palette(rng, tone, count, 55.0):
        colour = tuple(int(v) for v in colour)
        cx, cy = rng.random() * width, rng.random() * height
        rx, ry = (0.05 + 0.3 * rng.random()) * width, (0.05 + 0.3 * rng.random()) * height
        kind = rng.random()
        if kind < 0.4:
            draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=colour)
        elif kind < 0.7:
            draw.rectangle((cx - rx, cy - ry, cx + rx, cy + ry), fill=colour)
        else:
            angles = np.sort(rng.random(int(rng.integers(3, 8))) * 2 * np.pi)
            radii = 0.5 + 0.5 * rng.random(angles.size)
            points = [(cx + rx * r * np.cos(a), cy + ry * r * np.sin(a)) for a, r in zip(angles, radii)]
            draw.polygon(points, fill=colour)


def paint(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Paints one photo-like RGB image.

    Args:
        rng: The image's own generator; the same state paints the same pixels.
        width: Pixels across.
        height: Pixels down.

    Returns:
        uint8 array [height, width, 3].
    """
    # A smooth colour background (at half resolution: in a gradient the 2x2 blocks of the
    # nearest-neighbour upsampling are invisible, and a smooth upsampling costs more than
    # the JPEG encoding), then solid shapes at full resolution for edges and occlusion.
    tone = rng.uniform(60.0, 190.0, 3)
    scene = _smooth_field(rng, max(2, width // 2), max(2, height // 2), cells=int(rng.integers(3, 7)), mode="RGB",
                          tone=tone)
    scene = scene.resize((width, height), Image.NEAREST)
    _draw_objects(rng, scene, tone)
    pixels = np.asarray(scene, dtype=np.int16)
    texture = _texture(rng, width, height)
    # Texture in luminance, where a photo's detail is (JPEG keeps chroma at half resolution).
    pixels += texture[..., None]
    np.clip(pixels, 0, 255, out=pixels)
    return pixels.astype(np.uint8)


def encode(pixels: np.ndarray, spec: ImageSpec, quality: int) -> bytes:
    """Encodes painted pixels as the file `spec` describes."""
    image = Image.fromarray(pixels, mode="RGB")
    if spec.mode != "RGB":
        image = image.convert(spec.mode)
    buffer = io.BytesIO()
    if spec.fmt == "PNG":
        image.save(buffer, format="PNG", compress_level=1)
    else:
        image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
