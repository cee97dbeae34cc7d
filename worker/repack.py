"""An upload's own pixels in its own format, repacked losslessly: the fallback when a re-encode is
not smaller than the upload (docs/compression.md, "Never larger")."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from worker import codecs

log = logging.getLogger(__name__)

#: GIF application extensions a repack keeps: the loop count (two spellings) and the ICC profile.
GIF_APPLICATIONS = {b"NETSCAPE2.0", b"ANIMEXTS1.0", b"ICCRGBG1012"}
#: WebP chunks a stripping repack keeps: pixels, alpha, animation, and the ICC profile.
WEBP_CHUNKS = {b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF", b"ICCP"}
#: The VP8X flag bits that announce EXIF and XMP chunks.
WEBP_METADATA_FLAGS = 0x08 | 0x04
#: The boxes of an AVIF that carries nothing but its pixels and how to show them: what it may
#: hold at the top, in its `meta` box, and among its item properties.
AVIF_TOP = {b"ftyp", b"meta", b"mdat"}
AVIF_META = {b"hdlr", b"pitm", b"iloc", b"iinf", b"iprp", b"iref"}
AVIF_PROPERTIES = {
    b"ispe", b"pixi", b"av1C", b"colr", b"irot", b"imir", b"clap", b"pasp", b"auxC",
    b"a1op", b"a1lx", b"lsel", b"clli", b"mdcv", b"cclv",
}  # fmt: skip
#: AVIF item types that are pixels (an AV1 image, or a grid of them), not metadata.
AVIF_ITEMS = {b"av01", b"grid"}


def floor(original: bytes, fmt: str, metadata: str, effort: str) -> bytes | None:
    """The upload `original` (in output format `fmt`) repacked losslessly in the fewest bytes
    found, keeping only what the `metadata` option allows; None if no repack applies.

    The raw upload is a candidate with metadata=keep, or when it holds nothing to strip; when
    stripping, a payload in a comment, text chunk or metadata item must never come back.
    """
    strip = metadata == "strip"
    candidates = [] if strip else [original]
    try:
        repacked = REPACKERS[fmt](original, strip, effort) if fmt in REPACKERS else None
    except (ValueError, IndexError):
        log.info("lossless repacking failed; keeping the re-encode")
        repacked = None
    if repacked is not None:
        candidates.append(repacked)
    return min(candidates, key=len, default=None)


def _jpeg(original: bytes, strip: bool, effort: str) -> bytes:
    """mozjpeg's lossless pass; only the ICC profile stays."""
    return codecs.optimize_jpeg(original, keep_icc=True)


def _png(original: bytes, strip: bool, effort: str) -> bytes:
    """oxipng at the effort's level, animated PNGs included (their frames are kept as they are)."""
    return codecs.repack_png(original, strip, effort)


def gif_stripped(original: bytes, strip: bool = True, effort: str = "") -> bytes:
    """The GIF's blocks without comments, plain text, foreign application extensions and whatever
    follows the trailer; ValueError (or IndexError) if its structure is broken."""
    if original[:6] not in (b"GIF87a", b"GIF89a"):
        raise ValueError("not a GIF")
    position = 13 + _colour_table(original[10])
    kept = [original[:position]]
    while original[position] != 0x3B:
        kind = original[position]
        if kind == 0x2C:  # an image: its descriptor, colour table, LZW code size and data
            end = _sub_blocks(original, position + 10 + _colour_table(original[position + 9]) + 1)
            kept.append(original[position:end])
        elif kind == 0x21:
            label = original[position + 1]
            end = _sub_blocks(original, position + 2)
            application = label == 0xFF and original[position + 3 : position + 14] in GIF_APPLICATIONS
            if label == 0xF9 or application:  # frame timing and transparency, or a kept extension
                kept.append(original[position:end])
        else:
            raise ValueError("unknown GIF block")
        position = end
    return b"".join(kept) + b";"


def _colour_table(packed: int) -> int:
    """The bytes of the colour table a GIF's packed field announces."""
    return 3 << ((packed & 7) + 1) if packed & 0x80 else 0


def _sub_blocks(data: bytes, position: int) -> int:
    """Where a run of GIF data sub-blocks that starts at `position` ends."""
    while data[position]:
        position += 1 + data[position]
    if position >= len(data):
        raise ValueError("truncated GIF")
    return position + 1


def webp_stripped(original: bytes, strip: bool = True, effort: str = "") -> bytes | None:
    """The WebP's chunks without EXIF, XMP and unknown ones, and whatever follows the RIFF (None
    with metadata=keep: the upload itself is the candidate then)."""
    if not strip:
        return None
    if original[:4] != b"RIFF" or original[8:12] != b"WEBP":
        raise ValueError("not a WebP")
    end = min(len(original), 8 + int.from_bytes(original[4:8], "little"))
    position, chunks = 12, []
    while position < end:
        fourcc = original[position : position + 4]
        size = int.from_bytes(original[position + 4 : position + 8], "little")
        if position + 8 + size > end:
            raise ValueError("truncated WebP chunk")
        if fourcc in WEBP_CHUNKS:
            chunk = bytearray(original[position : position + 8 + size] + b"\0" * (size & 1))
            if fourcc == b"VP8X":
                chunk[8] &= ~WEBP_METADATA_FLAGS & 0xFF
            chunks.append(bytes(chunk))
        position += 8 + size + (size & 1)
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + len(body).to_bytes(4, "little") + body


def avif_bare(original: bytes, strip: bool = True, effort: str = "") -> bytes | None:
    """The AVIF itself if it holds only its pixels and how to show them, else None: no Exif or
    XMP items, no box outside the known ones, no mdat byte that no item uses.

    No AVIF muxer is at hand to take metadata items out, so such an upload gets no repack."""
    top = list(_boxes(original, 0, len(original)))
    if {kind for kind, _, _ in top} - AVIF_TOP or [kind for kind, _, _ in top].count(b"meta") != 1:
        return None
    meta_start, meta_end = next((start, end) for kind, start, end in top if kind == b"meta")
    meta = {kind: (start, end) for kind, start, end in _boxes(original, meta_start + 4, meta_end)}
    if set(meta) - AVIF_META or b"iloc" not in meta or b"iinf" not in meta:
        return None
    if _item_types(original, *meta[b"iinf"]) - AVIF_ITEMS:
        return None
    if b"iprp" in meta:
        for kind, start, end in _boxes(original, *meta[b"iprp"]):
            if kind == b"ipco" and {k for k, _, _ in _boxes(original, start, end)} - AVIF_PROPERTIES:
                return None
    data = sorted(_extents(original, *meta[b"iloc"]))
    payload = sorted((start, end) for kind, start, end in top if kind == b"mdat")
    return original if _tiled(data, payload) else None


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """Each ISOBMFF box between `start` and `end`: its type, where its payload starts and where it ends."""
    while start < end:
        size, kind, header = int.from_bytes(data[start : start + 4], "big"), data[start + 4 : start + 8], 8
        if size == 1:
            size, header = int.from_bytes(data[start + 8 : start + 16], "big"), 16
        elif size == 0:
            size = end - start
        if size < header or start + size > end:
            raise ValueError("broken box")
        yield kind, start + header, start + size
        start += size


def _item_types(data: bytes, start: int, end: int) -> set[bytes]:
    """The item types an `iinf` box lists (item info entries of version 2 and 3 only)."""
    first = start + 4 + (2 if data[start] == 0 else 4)
    types = set()
    for kind, entry, _ in _boxes(data, first, end):
        version = data[entry]
        if kind != b"infe" or version not in (2, 3):
            raise ValueError("unexpected item info")
        at = entry + 4 + (2 if version == 2 else 4) + 2
        types.add(data[at : at + 4])
    return types


def _extents(data: bytes, start: int, end: int) -> Iterator[tuple[int, int]]:
    """The file ranges an `iloc` box gives its items; ValueError for data not in the file."""
    version, position = data[start], start + 4

    def read(size: int) -> int:
        nonlocal position
        if position + size > end:
            raise ValueError("truncated iloc")
        value = int.from_bytes(data[position : position + size], "big")
        position += size
        return value

    sizes = read(1), read(1)
    offset_size, length_size, base_size = sizes[0] >> 4, sizes[0] & 15, sizes[1] >> 4
    index_size = sizes[1] & 15 if version in (1, 2) else 0
    for _ in range(read(2 if version < 2 else 4)):
        read(2 if version < 2 else 4)  # the item's id
        if version in (1, 2) and read(2) & 15:
            raise ValueError("item data not in the file")  # in an idat box or another item
        read(2)  # data reference index
        base = read(base_size)
        for _ in range(read(2)):
            read(index_size)
            offset, length = read(offset_size), read(length_size)
            if length == 0:
                raise ValueError("open-ended extent")
            yield base + offset, base + offset + length


def _tiled(extents: list[tuple[int, int]], payloads: list[tuple[int, int]]) -> bool:
    """Whether the extents, sorted, cover the mdat payloads exactly: no byte unused or shared."""
    remaining = iter(extents)
    for start, end in payloads:
        position = start
        while position < end:
            extent = next(remaining, None)
            if extent is None or extent[0] != position:
                return False
            position = extent[1]
        if position != end:
            return False
    return next(remaining, None) is None


#: Each output format's lossless repack of an upload in that format.
REPACKERS: dict[str, Callable[[bytes, bool, str], bytes | None]] = {
    "jpeg": _jpeg,
    "png": _png,
    "gif": gif_stripped,
    "webp": webp_stripped,
    "avif": avif_bare,
}
