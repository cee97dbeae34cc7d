"""JPEG's YCbCr for a 4:2:0 encode, its luma compensated for the chroma a decoder will see
(docs/compression.md, "Encoders")."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image

Array = npt.NDArray[np.float32]

#: RGB -> JPEG's full-range YCbCr (JFIF), rows Y, Cb, Cr; the offset 128 is added to Cb and Cr.
_TO_YCC = np.array(
    [[0.299, 0.587, 0.114], [-0.168735892, -0.331264108, 0.5], [0.5, -0.418687589, -0.081312411]],
    dtype=np.float32,
)
#: What Cb and Cr (less 128) add to R, G and B when decoded.
_FROM_CHROMA = np.array([[0.0, 1.402], [-0.344136, -0.714136], [1.772, 0.0]], dtype=np.float32)
#: Relative luminance of linear sRGB.
_LUMINANCE = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
#: Rows per stripe: memory stays bounded whatever the image size (even, for 2x2 chroma blocks).
_STRIPE = 256
#: Newton steps on each pixel's luma (the second is already within a tenth of a level).
_STEPS = 2


def compensated(rgb: Image.Image) -> npt.NDArray[np.uint8]:
    """The image in YCbCr (height x width x 3) for an encoder that averages chroma over 2x2 blocks:
    each luma value chosen so that the pixel, decoded with the chroma the decoder upsamples
    (libjpeg's triangle filter), has the source's linear luminance. Plain conversion loses
    luminance where colour changes within a block: averaging chroma in gamma space darkens or
    lightens saturated edges."""
    source = np.asarray(rgb.convert("RGB"))
    height = source.shape[0]
    out = np.empty(source.shape, dtype=np.uint8)
    for top in range(0, height, _STRIPE):
        bottom = min(height, top + _STRIPE)
        # Two rows either side: the neighbouring chroma rows the upsampling reads.
        first, last = max(0, top - 2), min(height, bottom + 2)
        ycc = _stripe(source[first:last].astype(np.float32))
        out[top:bottom] = ycc[top - first : top - first + bottom - top]
    return out


def _stripe(rgb: Array) -> npt.NDArray[np.uint8]:
    ycc = rgb @ _TO_YCC.T
    ycc[..., 1:] += 128.0
    chroma = np.stack([_down_up(ycc[..., 1] - 128.0), _down_up(ycc[..., 2] - 128.0)], axis=-1)
    offsets = chroma @ _FROM_CHROMA.T  # what the decoded chroma adds to each of R, G, B
    target = _linear(rgb) @ _LUMINANCE
    luma = ycc[..., 0]
    for _ in range(_STEPS):
        decoded = luma[..., None] + offsets
        error = _linear(decoded) @ _LUMINANCE - target
        slope = _linear_slope(decoded) @ _LUMINANCE
        luma = np.clip(luma - error / np.maximum(slope, 1e-5), 0.0, 255.0)
    ycc[..., 0] = luma
    out: npt.NDArray[np.uint8] = np.clip(np.rint(ycc), 0, 255).astype(np.uint8)
    return out


def _down_up(plane: Array) -> Array:
    """A chroma plane averaged over 2x2 blocks (edges replicated, as libjpeg pads), then brought
    back to full size as libjpeg's decoder does: 3/4 of the nearer sample, 1/4 of the next."""
    height, width = plane.shape
    padded = np.pad(plane, ((0, height % 2), (0, width % 2)), mode="edge")
    quarter = np.float32(0.25)
    blocks = (padded[0::2, 0::2] + padded[1::2, 0::2] + padded[0::2, 1::2] + padded[1::2, 1::2]) * quarter
    return _up(_up(blocks, 0), 1)[:height, :width]


def _up(plane: Array, axis: int) -> Array:
    samples = np.moveaxis(plane, axis, 0)
    before = np.concatenate([samples[:1], samples[:-1]])
    after = np.concatenate([samples[1:], samples[-1:]])
    out = np.empty((2 * samples.shape[0], *samples.shape[1:]), dtype=np.float32)
    out[0::2] = 0.75 * samples + 0.25 * before
    out[1::2] = 0.75 * samples + 0.25 * after
    return np.moveaxis(out, 0, axis)


def _linear(values: Array) -> Array:
    """sRGB byte values (any real, clipped to 0-255) -> linear light."""
    v = np.clip(values, 0.0, 255.0) / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


def _linear_slope(values: Array) -> Array:
    """The derivative of `_linear` per byte value (zero where clipped)."""
    v = np.clip(values, 0.0, 255.0) / 255.0
    slope = np.where(v <= 0.04045, 1 / 12.92, 2.4 / 1.055 * ((v + 0.055) / 1.055) ** 1.4) / 255.0
    return np.where((values > 0) & (values < 255), slope, 0.0).astype(np.float32)
