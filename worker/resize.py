"""Resizing: the output size for `width`/`height`/`fit`, and a Lanczos in linear light with
premultiplied alpha (resampling sRGB bytes darkens fine light detail)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from shared.errors import TooLarge

#: `contain` and `cover` enlarge at most this many times per side: enlarging adds no detail,
#: only pixels to encode, whose count would otherwise grow without bound from a tiny upload.
MAX_ENLARGEMENT = 4

#: sRGB byte -> linear light, and the inverse curve for the way back.
_TO_LINEAR = np.where(
    (_steps := np.arange(256) / 255.0) <= 0.04045, _steps / 12.92, ((_steps + 0.055) / 1.055) ** 2.4
).astype(np.float32)


def output_size(
    width: int,
    height: int,
    want_width: int | None,
    want_height: int | None,
    fit: str,
    max_pixels: int | None = None,
) -> tuple[tuple[int, int], tuple[int, int] | None]:
    """The size to scale to and, for `cover`, the centred crop box size taken after scaling.

    `scale-down` fits inside the box and never enlarges; `contain` fits inside, enlarging if
    needed; `cover` fills the box and crops the overflow. With one side given, the other follows
    the aspect ratio. TooLarge if that enlarges more than MAX_ENLARGEMENT times per side, or
    scales to more than `max_pixels` pixels (before the crop).
    """
    if want_width is None and want_height is None:
        return (width, height), None
    scale_w = want_width / width if want_width else None
    scale_h = want_height / height if want_height else None
    if scale_w is None or scale_h is None:
        scale = scale_w or scale_h or 1.0
        crop = None
    elif fit == "cover":
        scale = max(scale_w, scale_h)
        crop = (want_width or width, want_height or height)
    else:
        scale = min(scale_w, scale_h)
        crop = None
    if fit == "scale-down":
        scale = min(scale, 1.0)
    if scale > MAX_ENLARGEMENT:
        raise TooLarge(
            f"fit={fit} would enlarge this {width}x{height} image {scale:.1f} times; "
            f"at most {MAX_ENLARGEMENT} times per side is allowed."
        )
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if max_pixels is not None and size[0] * size[1] > max_pixels:
        raise TooLarge(f"The output would be {size[0]}x{size[1]} pixels; the limit is {max_pixels:,} in all.")
    if crop is not None:
        crop = (min(crop[0], size[0]), min(crop[1], size[1]))
    return size, crop


def resize(image: Image.Image, size: tuple[int, int], crop: tuple[int, int] | None = None) -> Image.Image:
    """The image scaled to `size` in linear light, then centre-cropped to `crop` if given."""
    if size != image.size:
        image = _linear_lanczos(image, size)
    if crop is not None and crop != image.size:
        left, top = (image.width - crop[0]) // 2, (image.height - crop[1]) // 2
        image = image.crop((left, top, left + crop[0], top + crop[1]))
    return image


def _linear_lanczos(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    # The pipeline hands over RGB, RGBA, L or LA only.
    alpha_mode = image.mode in ("RGBA", "LA")
    target = image.mode
    pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    channels = pixels.shape[2] - (1 if alpha_mode else 0)
    alpha = pixels[..., channels].astype(np.float32) / 255.0 if alpha_mode else None
    planes = []
    for index in range(channels):
        linear = _TO_LINEAR[pixels[..., index]]
        if alpha is not None:
            linear = linear * alpha
        planes.append(_resample(linear, size))
    if alpha is not None:
        scaled_alpha = np.clip(_resample(alpha, size), 0.0, 1.0)
        safe = np.where(scaled_alpha > 1e-6, scaled_alpha, 1.0)
        planes = [plane / safe for plane in planes]
        planes.append(scaled_alpha)
    out = [_to_srgb(plane) for plane in planes[:channels]]
    if alpha is not None:
        out.append(np.round(planes[-1] * 255.0).astype(np.uint8))
    stacked = np.stack(out, axis=2) if len(out) > 1 else out[0]
    return Image.fromarray(stacked, mode=target)


def _resample(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """One float plane through Pillow's Lanczos, whose support widens with the scale factor."""
    return np.asarray(
        Image.fromarray(plane.astype(np.float32), mode="F").resize(size, Image.Resampling.LANCZOS)
    )


def _to_srgb(linear: np.ndarray) -> np.ndarray:
    clipped = np.clip(linear, 0.0, 1.0)
    srgb = np.where(clipped <= 0.0031308, clipped * 12.92, 1.055 * clipped ** (1 / 2.4) - 0.055)
    encoded: np.ndarray = np.round(srgb * 255.0).astype(np.uint8)
    return encoded
