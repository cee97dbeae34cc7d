"""A bounded walk over what comes before an image's pixels (and, with `whole`, a PNG's chunks and
a GIF's frames), made before Pillow reads it: a bound, not a parser (docs/design.md,
"The structure walk")."""

from __future__ import annotations

import os
import re
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

from PIL import PngImagePlugin

from shared.errors import CorruptImage, TooLarge
from shared.settings import MIB

#: What a file may make Pillow do, by kind. Real images use a small part of each.
LIMITS = {
    # JPEG markers, PNG chunks, GIF extensions: 2-5 µs each in Pillow. Real images have tens
    # (a JPEG with an ICC profile split in 255 parts, a few hundred).
    "segments": 4096,
    # Padding and junk between them, which Pillow steps over a byte at a time (about 0.5 µs); a
    # JPEG segment whose stated length is short leaves up to 64 KiB.
    "stray bytes": 64 * 1024,
    # GIF data sub-blocks, 0.1 µs each; an XMP packet reads as one per 50-100 bytes.
    "sub-blocks": 256 * 1024,
    # What Pillow keeps in memory: JPEG APPn and comments, PNG chunks, GIF extension data (a
    # phone's depth map in extended XMP takes a few MB).
    "metadata bytes": 16 * MIB,
    # JPEG frame headers and quantisation tables, parsed entry by entry (real: under 1 KiB).
    "table bytes": 64 * 1024,
    # JPEG Exif, joined segment by segment, then its first IFD parsed (real: one segment).
    "exif bytes": 128 * 1024,
    # JPEG APP13 (Photoshop) resources, parsed one by one.
    "photoshop bytes": MIB,
    # What PNG iCCP, zTXt and compressed iTXt chunks inflate to (Pillow stops each at 1 MiB).
    "inflated bytes": 16 * MIB,
    # WebP chunks, each demuxed by libwebp (an animation has one per frame; IMGPRESS_MAX_FRAMES
    # is 1000 by default).
    "webp chunks": 64 * 1024,
}
#: Past the header (`whole`, for the worker, which decodes), the pieces of image data that Pillow
#: reads one by one in Python as it decodes and counts frames: how many are free, and the least
#: average size (bytes) beyond that. Pillow pays per piece, a decoder per byte: real files
#: have large pieces (libpng's IDAT chunks are 8 KiB, a GIF's sub-blocks 255 bytes), so any
#: number of those passes, while a flood of tiny ones (which cost Pillow seconds) does not.
SMALL_PIECES = {
    # PNG IDAT, fdAT and fcTL chunks; GIF graphic controls (one per frame).
    "frame parts": (8 * 1024, 512),
    # GIF image-data sub-blocks.
    "image sub-blocks": (64 * 1024, 64),
}
TOO_MUCH = "The image is made of more metadata or pieces than this service reads."

#: Bytes read at a time; one read covers the header of a typical photo.
_WINDOW = 64 * 1024
#: What one step may need to see: the stray bytes allowed, a marker, its length, a signature.
_STEP = LIMITS["stray bytes"] + 16

_FILL = re.compile(rb"\xff+")
_GIF_STRAY = re.compile(rb"[^!,;]*")
#: JPEG markers Pillow reads a length after, and those it reads alone (its MARKER table).
_JPEG_WITH_LENGTH = frozenset([*range(0xC0, 0xC8), *range(0xC9, 0xD0), *range(0xDA, 0xF0), 0xFE])
_JPEG_ALONE = frozenset([0xC8, *range(0xD0, 0xDA), *range(0xF0, 0xFE)])
#: Frame headers (SOFn, DHP) and quantisation tables (DQT).
_JPEG_TABLES = frozenset(
    [*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0), 0xDB, 0xDE]
)
_START_OF_SCAN, _APP1, _APP13 = 0xDA, 0xE1, 0xED
_PNG_PIXELS = (b"IDAT", b"fdAT")
_PNG_FRAME_PARTS = (b"IDAT", b"fdAT", b"fcTL")
_WEBP_PIXELS = (b"VP8 ", b"VP8L", b"ALPH", b"ANMF")


class _Walk:
    """The file seen through a window, and what its segments have spent so far."""

    def __init__(
        self, read: Callable[[int, int], bytes], size: int, whole: bool, max_frames: int | None
    ) -> None:
        #: `read(count, position)`: up to `count` bytes of the file from `position`.
        self.read = read
        self.size = size
        self.whole = whole
        self.max_frames = max_frames
        self.frames = 0
        self.start = 0
        self.data = b""
        self.spent = dict.fromkeys(LIMITS, 0)
        self.pieces = dict.fromkeys(SMALL_PIECES, 0)
        self.piece_bytes = dict.fromkeys(SMALL_PIECES, 0)

    def at(self, position: int, need: int) -> tuple[bytes, int]:
        """The window and where `position` is in it, with `need` bytes from there if the file has them."""
        offset = position - self.start
        if offset < 0 or (offset + need > len(self.data) and self.start + len(self.data) < self.size):
            self.start, self.data, offset = position, self.read(max(need, _WINDOW), position), 0
        return self.data, offset

    def spend(self, kind: str, amount: int = 1) -> None:
        """Count `amount` against the budget of `kind`; CorruptImage past it."""
        self.spent[kind] += amount
        if self.spent[kind] > LIMITS[kind]:
            raise CorruptImage(TOO_MUCH)

    def spend_pieces(self, kind: str, count: int, size: int) -> None:
        """Count `count` pieces of image data of `size` bytes in all; CorruptImage when there are
        more than are free and they are small on average."""
        self.pieces[kind] += count
        self.piece_bytes[kind] += size
        free, least = SMALL_PIECES[kind]
        if self.pieces[kind] > free and self.pieces[kind] * least > self.piece_bytes[kind]:
            raise CorruptImage(TOO_MUCH)

    def frame(self) -> None:
        """Count a frame; TooLarge past `max_frames`, before Pillow has counted them all."""
        self.frames += 1
        if self.max_frames is not None and self.frames > self.max_frames:
            raise TooLarge(f"The image has more than {self.max_frames:,} frames; that is the limit.")


def check(source: Path | bytes, *, whole: bool = False, max_frames: int | None = None) -> None:
    """Raise CorruptImage if a JPEG, PNG, GIF or WebP (a file, or its bytes) asks more of its
    reader before its pixels than LIMITS allow; other files pass untouched. `whole`: a PNG's or
    GIF's every chunk or block to its end too (SMALL_PIECES), which Pillow reads as it decodes,
    and a GIF with more than `max_frames` frames is TooLarge."""
    if isinstance(source, bytes):
        _walk(lambda count, position: source[position : position + count], len(source), whole, max_frames)
        return
    with open(source, "rb", buffering=0) as file:
        fd = file.fileno()
        _walk(lambda count, position: os.pread(fd, count, position), os.fstat(fd).st_size, whole, max_frames)


def _walk(read: Callable[[int, int], bytes], size: int, whole: bool, max_frames: int | None) -> None:
    """check() on a file that `read` reads."""
    if size < 16:
        return
    walk = _Walk(read, size, whole, max_frames)
    head, _ = walk.at(0, 16)
    step = _step_for(head)
    if step is not None:
        step(walk)


def _step_for(head: bytes) -> Callable[[_Walk], None] | None:
    if head.startswith(b"\xff\xd8\xff"):
        return _jpeg
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return _gif
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp
    return None


def _jpeg(walk: _Walk) -> None:
    """Markers from the first to the start of the scan (Pillow reads past an EOI, so do we)."""
    position = 2
    while position < walk.size:
        data, offset = walk.at(position, 16)
        end = _marker_end(data, offset)
        if end + 9 > len(data) and walk.start + len(data) < walk.size:
            # Junk or padding runs past the window: look again with room for all that is allowed.
            data, offset = walk.at(position, _STEP)
            end = _marker_end(data, offset)
        # What lies before the marker's code is junk and padding.
        walk.spend("stray bytes", end - 1 - offset)  # over the limit, or:
        if end + 3 > len(data):
            return  # the file ends within the marker
        code, position = data[end], position + end + 1 - offset
        if code == 0x00:  # an escaped 0xFF: stray data
            walk.spend("stray bytes", 2)
            continue
        walk.spend("segments")
        if code in _JPEG_WITH_LENGTH:
            if code == _START_OF_SCAN:
                return
            length = struct.unpack_from(">H", data, end + 1)[0]
            _spend_jpeg_segment(walk, code, length, data[end + 3 : end + 9])
            position += length
        elif code not in _JPEG_ALONE:
            return  # not a marker: Pillow stops with an error here


def _spend_jpeg_segment(walk: _Walk, code: int, length: int, opening: bytes) -> None:
    """Spend a JPEG segment (its length and its first bytes) against the budgets that it uses."""
    if code in _JPEG_TABLES:
        walk.spend("table bytes", length)
    elif 0xE0 <= code <= 0xEF or code == 0xFE:
        walk.spend("metadata bytes", length)
        if code == _APP1 and opening == b"Exif\0\0":
            walk.spend("exif bytes", length)
        elif code == _APP13:
            walk.spend("photoshop bytes", length)


def _marker_end(data: bytes, offset: int) -> int:
    """Where the code of the next JPEG marker is in `data`: after the first 0xFF from `offset` and
    the run of 0xFF padding it starts (the end of `data` plus one if there is none)."""
    marker = data.find(b"\xff", offset)
    if marker < 0:
        return len(data) + 1
    run = _FILL.match(data, marker)
    assert run is not None
    return run.end()


def _png(walk: _Walk) -> None:
    """Chunks from the signature to the first image data, or to the end."""
    position = 8
    while position + 8 <= walk.size:
        data, offset = walk.at(position, 8)
        length, kind = struct.unpack_from(">I4s", data, offset)
        if kind == b"IEND" or (kind in _PNG_PIXELS and not walk.whole):
            return
        if kind in _PNG_FRAME_PARTS:
            walk.spend_pieces("frame parts", 1, length)
        else:
            walk.spend("segments")
            present = min(length, walk.size - position - 8)  # what the file has of it
            walk.spend("metadata bytes", present)
            if kind in (b"iCCP", b"zTXt", b"iTXt"):
                walk.spend("inflated bytes", _inflated(kind, walk.read(present, position + 8)))
        position += 12 + length


def _inflated(kind: bytes, data: bytes) -> int:
    """How many bytes Pillow inflates from the data of an iCCP, zTXt or iTXt chunk (as it reads them)."""
    _, _, rest = data.partition(b"\0")
    if kind == b"iTXt":  # flag, method, language, translated keyword, text
        parts = rest[2:].split(b"\0", 2)
        if len(rest) < 2 or rest[0] == 0 or rest[1] != 0 or len(parts) < 3:
            return 0
        compressed = parts[2]
    else:  # method, data
        compressed = rest[1:]
    try:
        return len(zlib.decompressobj().decompress(compressed, PngImagePlugin.MAX_TEXT_CHUNK))
    except zlib.error:
        return 0


def _gif(walk: _Walk) -> None:
    """Blocks and sub-blocks from the screen descriptor to the first image descriptor, or to the end."""
    head, _ = walk.at(0, 13)
    position = 13 + _colour_table(head[10])
    while position < walk.size:
        data, offset = walk.at(position, 16)
        tag = data[offset]
        if tag == ord(";") or (tag == ord(",") and not walk.whole):  # the trailer, or an image
            return
        if tag == ord(","):  # an image: its descriptor, colour table, code size, then its data
            walk.frame()
            if offset + 10 > len(data):
                return
            position = _sub_blocks(walk, position + 11 + _colour_table(data[offset + 9]), image=True)
        elif tag == ord("!"):
            label = data[offset + 1] if offset + 1 < len(data) else 0
            if label == 0xF9:  # a frame's graphic control
                walk.spend_pieces("frame parts", 1, 0)
            else:
                walk.spend("segments")
            position = _sub_blocks(walk, position + 2, image=False)
        else:
            data, offset = walk.at(position, _STEP)  # room for all the stray bytes allowed
            stray = _GIF_STRAY.match(data, offset)
            assert stray is not None
            walk.spend("stray bytes", stray.end() - offset)
            position += stray.end() - offset


def _colour_table(flags: int) -> int:
    """The size of the colour table that GIF flags announce."""
    return 3 << ((flags & 7) + 1) if flags & 0x80 else 0


def _sub_blocks(walk: _Walk, position: int, image: bool) -> int:
    """Step over a chain of GIF data sub-blocks, of image data or of an extension (which Pillow
    keeps or skips); the position after it."""
    while position < walk.size:
        data, offset = walk.at(position, 1)
        start, last, blocks, ended = offset, len(data), 0, False
        # Through the window in one tight loop: a chain of tiny sub-blocks is the costly case.
        while offset < last:
            size = data[offset]
            offset += 1 + size
            blocks += 1
            if size == 0:
                ended = True
                break
        if image:  # the terminator carries no data and is not a piece
            walk.spend_pieces("image sub-blocks", blocks - ended, offset - start - blocks)
        else:
            walk.spend("sub-blocks", blocks)
            walk.spend("metadata bytes", offset - start - blocks)
        position += offset - start
        if ended:
            return position
    return position


def _webp(walk: _Walk) -> None:
    """The RIFF container's chunks, all of which libwebp's demuxer reads."""
    position = 12
    while position + 8 <= walk.size:
        data, offset = walk.at(position, 8)
        kind, length = struct.unpack_from("<4sI", data, offset)
        walk.spend("webp chunks")
        if kind not in _WEBP_PIXELS:  # Pillow holds the whole file; libwebp copies metadata again
            walk.spend("metadata bytes", min(length, walk.size - position - 8))
        position += 8 + length + (length & 1)
