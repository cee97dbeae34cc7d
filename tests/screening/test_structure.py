"""The bounded walk before Pillow reads a header: real images pass, segment floods are refused."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from screening import imaging, structure
from shared.errors import CorruptImage, TooLarge
from tests import images

MIB = 1024 * 1024


def jpeg_with(segments: bytes, count: int) -> bytes:
    """A real JPEG with `segments` repeated `count` times right after its start marker."""
    data = images.jpeg()
    return data[:2] + segments * count + data[2:]


def jpeg_after_first_segment(stray: bytes) -> bytes:
    """A real JPEG with `stray` bytes after its first segment."""
    data = images.jpeg()
    end = 4 + struct.unpack_from(">H", data, 4)[0]
    return data[:end] + stray + data[end:]


def png_with(chunk: bytes, count: int) -> bytes:
    """A real PNG with `chunk` repeated `count` times between its header and its pixels."""
    data = images.encode(images.photo(64, 48), "PNG")
    pixels = data.index(b"IDAT") - 4
    return data[:pixels] + chunk * count + data[pixels:]


def png_with_chunks(count: int) -> bytes:
    """A real PNG with `count` empty private chunks between its header and its pixels."""
    return png_with(images.png_chunk(b"prVt", b""), count)


def jpeg_segment(code: int, payload: bytes) -> bytes:
    """One JPEG segment with a length."""
    return bytes([0xFF, code]) + struct.pack(">H", len(payload) + 2) + payload


def webp_with(chunk: bytes, count: int) -> bytes:
    """A real WebP with `chunk` repeated `count` times after its first chunk."""
    data = images.encode(images.photo(64, 48), "WEBP")
    first_end = 12 + 8 + struct.unpack_from("<I", data, 16)[0]
    body = data[12:first_end] + chunk * count + data[first_end:]
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def webp_with_chunks(count: int) -> bytes:
    """A real WebP with `count` empty unknown chunks after its first chunk."""
    return webp_with(b"ZZZZ\0\0\0\0", count)


def gif_with(blocks: bytes, count: int) -> bytes:
    """A real GIF with `blocks` repeated `count` times before its first block."""
    data = images.encode(images.photo(64, 48), "GIF")
    flags = data[10]
    first = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    return data[:first] + blocks * count + data[first:]


def gif_with_comments(count: int) -> bytes:
    """A real GIF with `count` one-byte comment extensions before its image."""
    return gif_with(b"\x21\xfe\x01a\x00", count)


def gif_with_sub_blocks(count: int) -> bytes:
    """A real GIF with one application extension of `count` one-byte sub-blocks (as XMP reads)."""
    return gif_with(b"\x21\xff\x0bXMP DataXMP" + b"\x01a" * count + b"\x00", 1)


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "upload"
    path.write_bytes(data)
    return path


def test_real_images_with_metadata_pass(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x010E] = "a description " * 100
    text = PngImagePlugin.PngInfo()
    for index in range(50):
        text.add_text(f"key{index}", "value " * 20)
    photo = images.photo()
    for data in (
        images.jpeg(exif=exif.tobytes(), icc_profile=b"\0" * 200_000),  # ICC split in 4 segments
        images.jpeg(progressive=True, comment=b"made here"),
        images.encode(photo, "PNG", pnginfo=text),
        images.png_with_alpha(),
        images.encode(photo, "GIF", comment=b"x" * 2000),
        images.encode(photo, "WEBP"),
        images.encode(photo, "WEBP", save_all=True, append_images=[photo.rotate(180)] * 3, exif=b"Exif"),
        jpeg_with(jpeg_segment(0xE1, b"Exif\0\0" + b"\0" * 65_000), 1),
        jpeg_with(jpeg_segment(0xED, b"Photoshop 3.0\0" + b"\0" * 65_000), 2),
        png_with(images.png_chunk(b"zTXt", b"k\0\0" + zlib.compress(b"text " * 1000)), 300),
        png_with(images.png_chunk(b"iTXt", b"k\0\x01\0en\0k\0" + zlib.compress(b"text " * 1000)), 300),
    ):
        path = _write(tmp_path, data)
        structure.check(path)
        with imaging.decoding_errors(), imaging.open_image(path, 10**7) as image:
            image.load()  # what the walk let through, Pillow reads
        structure.check(data)  # the same bytes in memory (a worker's input from a bucket)
        with imaging.open_image(data, 10**7) as image, imaging.open_image(path, 10**7) as reference:
            assert image.tobytes() == reference.tobytes()


@pytest.mark.parametrize(
    "make",
    [
        lambda count: jpeg_with(b"\xff\xe5\x00\x02", count),  # empty APP5 segments
        lambda count: jpeg_with(b"\xff\xfe\x00\x02", count),  # empty comments
        lambda count: jpeg_with(b"\xff\xd0", count),  # restart markers (no length)
        png_with_chunks,
        gif_with_comments,
    ],
    ids=["jpeg-app", "jpeg-comment", "jpeg-restart", "png-chunks", "gif-comments"],
)
def test_segment_floods_are_refused_and_the_limit_is_not_lower(
    tmp_path: Path, make: Callable[[int], bytes]
) -> None:
    with pytest.raises(CorruptImage, match="more metadata or pieces"):
        structure.check(_write(tmp_path, make(structure.LIMITS["segments"] + 1)))
    with pytest.raises(CorruptImage, match="more metadata or pieces"):
        structure.check(make(structure.LIMITS["segments"] + 1))
    # Some way below the limit the same file is still an image Pillow reads.
    near = _write(tmp_path, make(structure.LIMITS["segments"] // 2 - 10))
    structure.check(near)
    with imaging.decoding_errors(), imaging.open_image(near, 10**7) as image:
        image.load()


@pytest.mark.parametrize(
    "data",
    [
        jpeg_after_first_segment(b"\x00" * (structure.LIMITS["stray bytes"] + 1)),  # junk between markers
        jpeg_with(b"\xff", structure.LIMITS["stray bytes"] + 2),  # padding before a marker
        jpeg_with(b"\xff\x00", structure.LIMITS["stray bytes"] // 2 + 1),  # escaped 0xFF outside a scan
        images.jpeg()[:2]
        + b"\xff\xe0\x00\x04ab"
        + b"\x01" * (structure.LIMITS["stray bytes"] + 1),  # no scan
        gif_with(b"\x00", structure.LIMITS["stray bytes"] + 1),  # bytes that start no block
    ],
    ids=["jpeg-junk", "jpeg-padding", "jpeg-escaped", "jpeg-junk-to-end", "gif-stray"],
)
def test_stray_bytes_past_the_limit_are_refused(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(CorruptImage, match="more metadata or pieces"):
        structure.check(_write(tmp_path, data))


def test_a_gif_may_carry_a_large_xmp_packet_but_not_endless_sub_blocks(tmp_path: Path) -> None:
    large = _write(tmp_path, gif_with_sub_blocks(structure.LIMITS["sub-blocks"] // 2))
    structure.check(large)
    with imaging.open_image(large, 10**7) as image:
        image.load()
    with pytest.raises(CorruptImage, match="more metadata or pieces"):
        structure.check(_write(tmp_path, gif_with_sub_blocks(structure.LIMITS["sub-blocks"] + 1)))


SOF_PAYLOAD = b"\x08\x00\x10\x00\x10" + struct.pack(">B", 85) + b"\x01\x11\x00" * 85  # 85 components
DQT_PAYLOAD = (b"\x00" + b"\x01" * 64) * 4  # four 8-bit tables
INFLATES_TO_1_MIB = zlib.compress(b"\0" * MIB)  # about 1 KB


@pytest.mark.parametrize(
    ("make", "within", "beyond"),
    [
        # Frame headers Pillow lists component by component, across all of them.
        (lambda count: jpeg_with(jpeg_segment(0xC0, SOF_PAYLOAD), count), 8, 260),
        # Quantisation tables Pillow parses table by table.
        (lambda count: jpeg_with(jpeg_segment(0xDB, DQT_PAYLOAD), count), 8, 260),
        # Exif segments Pillow joins one by one.
        (lambda count: jpeg_with(jpeg_segment(0xE1, b"Exif\0\0" + b"\0" * 60_000), count), 2, 3),
        (lambda count: jpeg_with(jpeg_segment(0xED, b"Photoshop 3.0\0" + b"\0" * 65_000), count), 16, 17),
        (lambda count: jpeg_with(jpeg_segment(0xE5, b"\0" * 65_000), count), 250, 260),  # kept in memory
        # Compressed text and ICC profiles, which Pillow inflates (each up to 1 MiB).
        (lambda count: png_with(images.png_chunk(b"zTXt", b"k\0\0" + INFLATES_TO_1_MIB), count), 16, 17),
        (
            lambda count: png_with(images.png_chunk(b"iTXt", b"k\0\x01\0\0\0" + INFLATES_TO_1_MIB), count),
            16,
            17,
        ),
        (lambda count: png_with(images.png_chunk(b"iCCP", b"p\0\0" + INFLATES_TO_1_MIB), count), 16, 17),
        (lambda count: png_with(images.png_chunk(b"prVt", b"\0" * MIB), count), 15, 17),
        (lambda count: gif_with(b"\x21\xfe" + (b"\xff" + b"a" * 255) * count + b"\x00", 1), 60_000, 66_000),
        (webp_with_chunks, 60_000, 66_000),
        (lambda count: webp_with(b"XMP " + struct.pack("<I", MIB) + b"\0" * MIB, count), 15, 17),
    ],
    ids=[
        "jpeg-frames",
        "jpeg-tables",
        "jpeg-exif",
        "jpeg-photoshop",
        "jpeg-metadata",
        "png-ztxt",
        "png-itxt",
        "png-iccp",
        "png-metadata",
        "gif-comment",
        "webp-chunks",
        "webp-metadata",
    ],
)
def test_costly_segments_are_refused_past_their_budget_only(
    tmp_path: Path, make: Callable[[int], bytes], within: int, beyond: int
) -> None:
    structure.check(_write(tmp_path, make(within)))
    with pytest.raises(CorruptImage, match="more metadata or pieces"):
        structure.check(_write(tmp_path, make(beyond)))


def test_other_and_tiny_files_pass_to_pillow_untouched(tmp_path: Path) -> None:
    structure.check(_write(tmp_path, b"\xff\xd8\xff"))
    structure.check(_write(tmp_path, b"RIFF" + b"\0" * 100))
    structure.check(_write(tmp_path, images.jpeg()[:3000]))  # truncated: Pillow's to judge


def test_the_header_read_refuses_a_flood_before_pillow_sees_it(tmp_path: Path) -> None:
    path = _write(tmp_path, jpeg_with(b"\xff\xe5\x00\x02", 1_000_000))  # 4 MB of empty segments
    with pytest.raises(CorruptImage):
        imaging.read_header(path, "image/jpeg", 10**7)


def test_the_walk_needs_little_address_space(tmp_path: Path) -> None:
    # A worker checks its input under its RLIMIT_AS cap (IMGPRESS_WORKER_MEMORY_MB), which a
    # large image decoded just before can leave nearly used up: a memory map of the file failed.
    big = jpeg_with(b"\xff\xe1\xff\xff" + b"\0" * 65533, 120)  # 7.5 MB of metadata, 120 segments
    path = _write(tmp_path, big)
    script = f"""
import resource
from pathlib import Path
from screening import structure
from worker.memory import address_space_mib
room = (address_space_mib() + 2) * 1024 * 1024
resource.setrlimit(resource.RLIMIT_AS, (room, resource.RLIM_INFINITY))
structure.check(Path({str(path)!r}))
print("checked")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "checked"


def test_a_length_past_the_end_of_the_file_spends_only_what_is_there(tmp_path: Path) -> None:
    # A truncated PNG whose last chunk claims 4 GiB: nothing that large is read or counted.
    data = images.encode(images.photo(64, 48), "PNG")
    pixels = data.index(b"IDAT") - 4
    truncated = data[:pixels] + struct.pack(">I", 0xFFFFFFF0) + b"zTXtk\0\0" + zlib.compress(b"x" * 100)
    structure.check(_write(tmp_path, truncated), whole=True)


def _png_of_idat(count: int, size: int) -> bytes:
    """A PNG's structure with `count` IDAT chunks of `size` bytes (for the walk, not a decoder)."""
    header = images.png_chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 48, 8, 2, 0, 0, 0))
    idat = images.png_chunk(b"IDAT", b"\0" * size)
    return b"\x89PNG\r\n\x1a\n" + header + idat * count + images.png_chunk(b"IEND", b"")


def _gif_of_sub_blocks(count: int, size: int) -> bytes:
    """A GIF's structure with one image of `count` data sub-blocks of `size` bytes."""
    screen = b"GIF89a" + struct.pack("<HH", 64, 48) + b"\x00\x00\x00"
    image = b"\x2c" + struct.pack("<HHHH", 0, 0, 64, 48) + b"\x00" + b"\x08"
    return screen + image + (bytes([size]) + b"\0" * size) * count + b"\x00\x3b"


@pytest.mark.parametrize(
    ("data", "refused"),
    [
        (_png_of_idat(10_000, 600), False),  # many chunks, each of a real size
        (_png_of_idat(10_000, 100), True),  # many tiny ones
        (_png_of_idat(8_000, 0), False),  # few enough to be free
        (_gif_of_sub_blocks(70_000, 64), False),
        (_gif_of_sub_blocks(70_000, 16), True),
    ],
    ids=["png-large-idat", "png-tiny-idat", "png-few-idat", "gif-large-sub-blocks", "gif-tiny-sub-blocks"],
)
def test_past_the_header_many_pieces_pass_only_if_they_are_not_tiny(
    tmp_path: Path, data: bytes, refused: bool
) -> None:
    path = _write(tmp_path, data)
    structure.check(path)  # the header alone is always fine here
    if refused:
        with pytest.raises(CorruptImage, match="more metadata or pieces"):
            structure.check(path, whole=True)
    else:
        structure.check(path, whole=True)


def test_a_gif_with_too_many_frames_is_too_large_before_pillow_counts_them(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (4, 4), (i * 40, 0, 0)) for i in range(6)]
    path = _write(tmp_path, images.encode(frames[0], "GIF", save_all=True, append_images=frames[1:]))
    structure.check(path, whole=True, max_frames=6)
    with pytest.raises(TooLarge, match="more than 5 frames"):
        structure.check(path, whole=True, max_frames=5)
