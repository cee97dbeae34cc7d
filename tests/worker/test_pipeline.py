"""The pure image pipeline: real images in, real files out, no Redis."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from screening.imaging import decoding_errors
from shared.errors import CorruptImage, StorageFull, TooLarge
from shared.options import Options
from tests import images
from worker import codecs, pipeline
from worker.metric import Reference

LIMITS = pipeline.Limits(max_pixels=4_000_000, max_frames=50)


def run(
    tmp_path: Path, data: bytes, quality: int = 80, limits: pipeline.Limits = LIMITS, effort: str = "balanced"
) -> tuple[bytes, object]:
    source = tmp_path / "input"
    source.write_bytes(data)
    destination = tmp_path / "out" / "output"
    output = pipeline.compress(
        source, destination, tmp_path / "scratch.part", Options(quality=quality, effort=effort), limits
    )
    assert not (tmp_path / "scratch.part").exists()
    return destination.read_bytes(), output


def test_jpeg_at_max_effort_gets_smaller_and_progressive(tmp_path: Path) -> None:
    original = images.jpeg(quality=95)
    data, output = run(tmp_path, original, quality=70, effort="max")
    assert len(data) < len(original)
    assert output.bytes == len(data)  # type: ignore[attr-defined]
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG"
        assert image.info.get("progressive") == 1


def test_jpeg_comment_and_exif_are_stripped_icc_kept(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"  # Make
    icc = Image.open(io.BytesIO(images.jpeg())).info.get("icc_profile") or _srgb_profile()
    original = images.jpeg(quality=95, comment=b"<?php system($_GET['c']); ?>", exif=exif, icc_profile=icc)
    data, _ = run(tmp_path, original)
    assert b"<?php" not in data and b"SpyCam" not in data
    with Image.open(io.BytesIO(data)) as image:
        assert image.info.get("icc_profile") == icc
        assert "comment" not in image.info and not image.getexif()


def _srgb_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def test_exif_orientation_is_applied_to_the_pixels(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    original = images.jpeg(quality=98, exif=exif)
    data, output = run(tmp_path, original, quality=60)
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (240, 320)
        assert image.getexif().get(0x0112, 1) == 1
    assert (output.width, output.height) == (240, 320)  # type: ignore[attr-defined]


def test_png_stays_lossless_with_alpha(tmp_path: Path) -> None:
    original = images.png_with_alpha()
    data, output = run(tmp_path, original)
    assert len(data) <= len(original)
    with Image.open(io.BytesIO(data)) as image, Image.open(io.BytesIO(original)) as source:
        assert image.mode == "RGBA"
        assert image.tobytes() == source.tobytes()


def test_output_never_larger_than_input(tmp_path: Path) -> None:
    """A q100 re-encode of a q20 JPEG is bigger: the upload's own pixels come back, losslessly packed."""
    original = images.jpeg(quality=20)
    data, output = run(tmp_path, original, quality=100)
    assert len(data) <= len(original)
    assert output.bytes == len(data) and output.quality is None  # type: ignore[attr-defined]
    with Image.open(io.BytesIO(original)) as before, Image.open(io.BytesIO(data)) as after:
        assert before.tobytes() == after.tobytes()


def test_animated_gif_keeps_its_frames_and_drops_comments(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (40, 30), color) for color in ("red", "green", "blue")]
    buffer = io.BytesIO()
    frames[0].save(
        buffer, "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0, comment=b"<?php x"
    )
    data, _ = run(tmp_path, buffer.getvalue())
    assert b"<?php" not in data
    with Image.open(io.BytesIO(data)) as image:
        assert image.n_frames == 3


def test_too_many_frames_is_too_large(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (4, 4), (i * 40, 0, 0)) for i in range(6)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(TooLarge):
        run(tmp_path, buffer.getvalue(), limits=pipeline.Limits(max_pixels=4_000_000, max_frames=5))


def test_too_many_pixels_is_too_large_before_decoding(tmp_path: Path) -> None:
    big = images.encode(Image.new("L", (3000, 2000)), "PNG")
    with pytest.raises(TooLarge):
        run(tmp_path, big)


def _mpo(second_picture_extra: bytes = b"") -> bytes:
    """A two-picture MPO; `second_picture_extra` goes right after the second picture's SOI."""
    buffer = io.BytesIO()
    images.photo().save(buffer, "MPO", save_all=True, append_images=[images.photo().rotate(180)])
    data = buffer.getvalue()
    with Image.open(io.BytesIO(data)) as opened:
        second = opened._MpoImageFile__mpoffsets[1]  # type: ignore[attr-defined]
    return data[: second + 2] + second_picture_extra + data[second + 2 :]


def test_an_mpo_is_its_first_picture_and_pillow_never_reads_the_others(tmp_path: Path) -> None:
    _, info = run(tmp_path, _mpo())
    assert (info.media_type, info.width, info.height) == ("image/jpeg", 320, 240)  # type: ignore[attr-defined]
    # Exif that Pillow would join segment by segment (and the walk would refuse), hidden in the
    # second picture: never read.
    exif = b"\xff\xe1" + (2 + 6 + 60_000).to_bytes(2, "big") + b"Exif\0\0" + b"\0" * 60_000
    _, info = run(tmp_path, _mpo(exif * 200))
    assert (info.media_type, info.width, info.height) == ("image/jpeg", 320, 240)  # type: ignore[attr-defined]


def _png_rechunked(data: bytes, size: int, after_pixels: bytes = b"") -> bytes:
    """A PNG's image data cut into IDAT chunks of `size` bytes, `after_pixels` before its end."""
    first = data.index(b"IDAT") - 4
    pixels, position = b"", first
    while data[position + 4 : position + 8] == b"IDAT":
        length = struct.unpack_from(">I", data, position)[0]
        pixels += data[position + 8 : position + 8 + length]
        position += 12 + length
    chunks = b"".join(images.png_chunk(b"IDAT", pixels[i : i + size]) for i in range(0, len(pixels), size))
    return data[:first] + chunks + after_pixels + data[position:]


def _gif_sub_blocks(data: bytes, size: int) -> bytes:
    """A one-frame GIF's image data re-cut into sub-blocks of `size` bytes."""
    flags = data[10]
    descriptor = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    while data[descriptor] == 0x21:  # extensions before the image
        descriptor += 2
        while data[descriptor]:
            descriptor += 1 + data[descriptor]
        descriptor += 1
    local = data[descriptor + 9]
    start = descriptor + 11 + (3 << ((local & 7) + 1) if local & 0x80 else 0)
    pixels, position = b"", start
    while data[position]:
        pixels += data[position + 1 : position + 1 + data[position]]
        position += 1 + data[position]
    blocks = b"".join(
        bytes([len(pixels[i : i + size])]) + pixels[i : i + size] for i in range(0, len(pixels), size)
    )
    return data[:start] + blocks + data[position:]


def test_chunks_and_blocks_past_the_header_are_walked_before_decoding(tmp_path: Path) -> None:
    png = images.encode(images.photo(), "PNG")
    gif = images.encode(images.photo(), "GIF")
    # Real files cut into small pieces decode as before.
    for data in (_png_rechunked(png, 100), _gif_sub_blocks(gif, 1)):
        _, info = run(tmp_path, data)
        assert (info.width, info.height) == (320, 240)  # type: ignore[attr-defined]
    noise = images.encode(Image.effect_noise((640, 400), 80).convert("RGB"), "PNG")  # 655 KB of data
    inflating = images.png_chunk(b"zTXt", b"k\0\0" + zlib.compress(b"\0" * 1024 * 1024))
    for hostile in (
        _png_rechunked(png, 100_000, images.png_chunk(b"prVt", b"") * 300_000),  # 3.6 MB: Pillow 0.5 s
        _png_rechunked(png, 100_000, inflating * 20),  # 20 KB inflating to 20 MiB of text
        _png_rechunked(noise, 2),  # 327,000 two-byte IDAT chunks
        gif[: gif.rindex(b"\x00\x3b")] + b"\x01\x00" * 1_100_000 + b"\x00\x3b",  # 1.1 M sub-blocks
    ):
        with pytest.raises(CorruptImage, match="more metadata or pieces"):
            run(tmp_path, hostile)


@pytest.mark.parametrize("cut", [200, 1500, 4000])
def test_truncated_jpeg_is_corrupt(tmp_path: Path, cut: int) -> None:
    with pytest.raises(CorruptImage):
        run(tmp_path, images.jpeg()[:cut])
    assert not (tmp_path / "out" / "output").exists()


def test_webp_is_reencoded_as_webp(tmp_path: Path) -> None:
    original = images.encode(images.photo(), "WEBP", quality=100)
    data, output = run(tmp_path, original, quality=60)
    assert len(data) < len(original)
    assert output.media_type == "image/webp"  # type: ignore[attr-defined]


@pytest.mark.parametrize("fmt", ["same", "png", "webp", "jpeg"])
def test_a_palette_apng_keeps_its_frames_and_colours(tmp_path: Path, fmt: str) -> None:
    expected = [frame.convert("RGB") for frame in images.palette_frames(200)]
    source = tmp_path / "input"
    source.write_bytes(images.palette_apng(200))
    destination = tmp_path / "output"
    options = Options(format=fmt, quality=100 if fmt != "jpeg" else 95)
    pipeline.compress(source, destination, tmp_path / "scratch.part", options, LIMITS)
    with Image.open(destination) as image:
        assert getattr(image, "n_frames", 1) == (1 if fmt == "jpeg" else 2)
        for index, want in enumerate(expected[: getattr(image, "n_frames", 1)]):
            image.seek(index)
            got = image.convert("RGB")
            assert len(got.getcolors(65536) or []) >= 200
            if fmt == "jpeg":  # lossy 4:2:0 of one-pixel-high colour runs: colours only
                continue
            differences = [abs(a - b) for a, b in zip(got.tobytes(), want.tobytes(), strict=True)]
            assert sum(differences) / len(differences) < 4, (fmt, index)


def test_a_full_disk_fails_as_storage_full(tmp_path: Path) -> None:
    source = tmp_path / "input"
    source.write_bytes(images.jpeg())
    # Writes through this link get the kernel's ENOSPC; unlinking it leaves /dev/full alone.
    scratch = tmp_path / "scratch.part"
    scratch.symlink_to("/dev/full")
    with pytest.raises(StorageFull) as raised:
        pipeline.compress(source, tmp_path / "output", scratch, Options(), LIMITS)
    assert raised.value.code == "insufficient_storage" and "disk space" in raised.value.message
    assert not (tmp_path / "output").exists() and Path("/dev/full").exists()


def test_a_full_disk_while_decoding_is_not_a_corrupt_image(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.symlink_to("/dev/full")
    with pytest.raises(StorageFull), decoding_errors():
        scratch.write_bytes(b"a codec's scratch file")


def _animation(fmt: str) -> bytes:
    frames = [images.photo(64, 48).rotate(angle) for angle in (0, 90, 180)]
    buffer = io.BytesIO()
    frames[0].save(buffer, fmt, save_all=True, append_images=frames[1:], duration=80, loop=0)
    return buffer.getvalue()


@pytest.mark.parametrize("effort", ["fast", "balanced", "max"])
@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "avif", "auto"])
@pytest.mark.parametrize("level", [None, 60])
def test_each_effort_gives_a_valid_output_in_each_format(
    tmp_path: Path, effort: str, fmt: str, level: int | None
) -> None:
    source = tmp_path / "input"
    source.write_bytes(images.jpeg(quality=95))
    options = Options(quality=level, format=fmt, effort=effort, width=200)
    output = pipeline.compress(source, tmp_path / "output", tmp_path / "scratch", options, LIMITS)
    with Image.open(tmp_path / "output") as image:
        image.load()
        assert image.format == codecs.OUTPUTS[output.format][0]
        assert image.size == (output.width, output.height) == (200, 150)
    assert fmt == "auto" or output.format == fmt
    assert fmt != "auto" or effort != "fast" or output.format != "avif"  # fast leaves AVIF out


@pytest.mark.parametrize("effort", ["fast", "balanced", "max"])
@pytest.mark.parametrize("fmt", ["webp", "png", "gif"])
def test_each_effort_keeps_an_animation_animated(tmp_path: Path, effort: str, fmt: str) -> None:
    source = tmp_path / "input"
    source.write_bytes(_animation("GIF"))
    options = Options(format="same" if fmt == "gif" else fmt, effort=effort)
    output = pipeline.compress(source, tmp_path / "output", tmp_path / "scratch", options, LIMITS)
    with Image.open(tmp_path / "output") as image:
        assert image.format == codecs.OUTPUTS[fmt][0] and output.format == fmt
        assert getattr(image, "n_frames", 1) == 3 and image.size == (64, 48)


@pytest.mark.parametrize("effort", ["fast", "balanced", "max"])
def test_each_effort_honours_max_bytes(tmp_path: Path, effort: str) -> None:
    source = tmp_path / "input"
    source.write_bytes(images.jpeg(quality=95))
    options = Options(format="jpeg", max_bytes=6000, effort=effort)
    output = pipeline.compress(source, tmp_path / "output", tmp_path / "scratch", options, LIMITS)
    assert output.bytes == (tmp_path / "output").stat().st_size <= 6000
    Image.open(tmp_path / "output").load()


@pytest.mark.parametrize("effort", ["fast", "balanced", "max"])
def test_each_effort_keeps_a_lossless_png_pixel_exact(tmp_path: Path, effort: str) -> None:
    original = images.png_with_alpha()
    source = tmp_path / "input"
    source.write_bytes(original)
    options = Options(quality=100, effort=effort)
    pipeline.compress(source, tmp_path / "output", tmp_path / "scratch", options, LIMITS)
    with Image.open(tmp_path / "output") as image, Image.open(io.BytesIO(original)) as before:
        assert image.format == "PNG" and image.tobytes() == before.convert(image.mode).tobytes()


@pytest.mark.parametrize("orientation", [1, 6])
def test_a_jpeg_scaled_down_is_decoded_smaller_and_keeps_its_detail(tmp_path: Path, orientation: int) -> None:
    picture = images.photo(1600, 1200)
    exif = Image.Exif()
    exif[0x0112] = orientation
    source = tmp_path / "input"
    source.write_bytes(images.encode(picture, "JPEG", quality=95, exif=exif))
    options = Options(width=150, format="png", quality=100)
    output = pipeline.compress(source, tmp_path / "output", tmp_path / "scratch", options, LIMITS)
    upright = picture if orientation == 1 else picture.transpose(Image.Transpose.ROTATE_270)
    assert (output.width, output.height) == (150, round(150 * upright.height / upright.width))
    expected = upright.resize((output.width, output.height), Image.Resampling.LANCZOS)
    with Image.open(tmp_path / "output") as image:
        assert Reference(expected).score(image) > 80  # the drafted decode keeps the detail
    with Image.open(source) as opened:
        pipeline._draft(opened, options, LIMITS)
        opened.load()
        assert opened.size == (400, 300)  # 1/4 size: at least twice the output per side


def test_auto_quality_under_a_size_limit_keeps_its_target(tmp_path: Path) -> None:
    """A limit the target's output already meets changes nothing; a tighter one lowers the quality."""
    source = tmp_path / "input"
    source.write_bytes(images.jpeg(quality=95))

    def compress(**given: object) -> tuple[int, int | None]:
        options = Options(quality=None, format="jpeg", **given)  # type: ignore[arg-type]
        output = pipeline.compress(source, tmp_path / "output", tmp_path / "scratch", options, LIMITS)
        return output.bytes, output.quality

    auto_bytes, auto_quality = compress()
    assert compress(max_bytes=auto_bytes * 4) == (auto_bytes, auto_quality)
    tight_bytes, tight_quality = compress(max_bytes=auto_bytes * 3 // 4)
    assert tight_bytes <= auto_bytes * 3 // 4
    assert tight_quality is not None and auto_quality is not None and tight_quality < auto_quality


def test_avif_at_quality_100_is_encoded(tmp_path: Path) -> None:
    """libaom refuses a tune in lossless mode: quality 100 must not pass it one."""
    source = tmp_path / "input"
    source.write_bytes(images.jpeg())
    output, data = pipeline.encode(source, Options(format="avif", quality=100), LIMITS)
    assert output.quality == 100
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "AVIF"
