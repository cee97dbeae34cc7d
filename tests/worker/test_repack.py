"""Never larger than the upload: lossless repacks per format, and the pipeline on real files."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from PIL import Image, ImageSequence

from shared.options import Options
from tests import images
from tests.images import CORPUS
from worker import pipeline, repack

LIMITS = pipeline.Limits(max_pixels=40_000_000, max_frames=1000)
NO_CORPUS = "the shared corpus (../shared/corpus) is not present"
#: Files a worker is given (the upload's checks accept them), of the tricky and photos sets.
MANIFEST = (CORPUS / "MANIFEST.tsv").read_text().splitlines() if CORPUS.exists() else []
ROWS = list(csv.DictReader(MANIFEST, delimiter="\t"))
ACCEPTED = sorted(
    [row["path"] for row in ROWS if row["path"].startswith("tricky/") and row["expected"] != "reject"]
    + [f"photos/{path.name}" for path in sorted((CORPUS / "photos").glob("*.png"))]
    if CORPUS.exists()
    else []
)


def corpus(path: str) -> Path:
    if not (CORPUS / path).exists():
        pytest.skip(NO_CORPUS)
    return CORPUS / path


def run(tmp_path: Path, source: Path, **options: object) -> tuple[bytes, object]:
    output, data = pipeline.encode(source, Options(**options), LIMITS)  # type: ignore[arg-type]
    assert output.bytes == len(data)
    return data, output


def frames_of(data: bytes) -> list[tuple[bytes, object]]:
    with Image.open(io.BytesIO(data)) as image:
        frames = ImageSequence.Iterator(image)
        return [(frame.convert("RGBA").tobytes(), frame.info.get("duration")) for frame in frames]


@pytest.mark.parametrize("level", [None, 70, 80])
def test_a_still_avif_not_made_smaller_is_served_as_it_came(tmp_path: Path, level: int | None) -> None:
    source = corpus("tricky/pillow--hopper.avif")
    data, output = run(tmp_path, source, quality=level)
    assert len(data) <= source.stat().st_size
    assert (output.format, output.media_type) == ("avif", "image/avif")  # type: ignore[attr-defined]
    if data == source.read_bytes():
        assert output.quality is None  # type: ignore[attr-defined]


def test_an_avif_with_metadata_or_extra_bytes_is_never_served_raw_when_stripping() -> None:
    hopper = corpus("tricky/pillow--hopper.avif").read_bytes()
    assert repack.floor(hopper, "avif", "strip", "balanced") == hopper
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"
    buffer = io.BytesIO()
    images.photo().save(buffer, "AVIF", quality=20, exif=exif.tobytes())
    assert repack.floor(buffer.getvalue(), "avif", "strip", "balanced") is None
    assert repack.floor(buffer.getvalue(), "avif", "keep", "balanced") == buffer.getvalue()
    # A box of its own after the pixels, or bytes in the pixels' box that no item uses.
    payload = b"<?php system($_GET['c']); ?>"
    free = (8 + len(payload)).to_bytes(4, "big") + b"free" + payload
    assert repack.floor(hopper + free, "avif", "strip", "balanced") is None
    mdat = hopper.index(b"mdat") - 4
    grown = (int.from_bytes(hopper[mdat : mdat + 4], "big") + len(payload)).to_bytes(4, "big")
    assert mdat + int.from_bytes(hopper[mdat : mdat + 4], "big") == len(hopper)  # the last box
    hidden = hopper[:mdat] + grown + hopper[mdat + 4 :] + payload
    assert repack.floor(hidden, "avif", "strip", "balanced") is None
    assert repack.floor(hopper[:-10], "avif", "strip", "balanced") is None


@pytest.mark.parametrize("level", [None, 70, 80])
def test_an_animated_png_is_repacked_with_every_frame(tmp_path: Path, level: int | None) -> None:
    source = corpus("tricky/pillow--iss634.apng")
    data, output = run(tmp_path, source, quality=level)
    assert len(data) <= source.stat().st_size
    assert output.quality is None and output.format == "png"  # type: ignore[attr-defined]
    assert frames_of(data) == frames_of(source.read_bytes())


def test_an_upload_stored_sideways_is_turned_and_fits_in_its_own_bytes(tmp_path: Path) -> None:
    source = corpus("tricky/pillow--rot1mir0.avif")
    data, output = run(tmp_path, source)
    assert len(data) <= source.stat().st_size
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (640, 427) and image.getexif().get(0x0112, 1) == 1
    assert output.quality is not None and output.quality < 80  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", ACCEPTED or [pytest.param("", marks=pytest.mark.skip(reason=NO_CORPUS))])
@pytest.mark.parametrize("level", [80, 100])
def test_format_same_is_never_larger_than_the_upload(tmp_path: Path, path: str, level: int) -> None:
    source = corpus(path)
    if source.suffix in (".heif", ".heic"):
        pytest.skip("format=same makes a JPEG of a HEIC: a change of format, which may be larger")
    try:
        data, output = run(tmp_path, source, quality=level)
    except Exception as exc:
        pytest.skip(f"not compressed: {exc}")  # an `either` row the worker refuses
    assert len(data) <= source.stat().st_size
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert image.getexif().get(0x0112, 1) == 1


def test_a_heic_becomes_a_jpeg_even_with_metadata_kept(tmp_path: Path) -> None:
    data, output = run(tmp_path, corpus("tricky/exifsamples--samplefilehub.heif"), metadata="keep")
    assert output.media_type == "image/jpeg" and data[:2] == b"\xff\xd8"  # type: ignore[attr-defined]


def test_gif_repack_drops_comments_foreign_extensions_and_trailing_bytes() -> None:
    frames = [Image.new("P", (20, 10), index) for index in (1, 2, 3)]
    buffer = io.BytesIO()
    frames[0].save(
        buffer, "GIF", save_all=True, append_images=frames[1:], duration=70, loop=0, comment=b"<?php a"
    )
    xmp = b"\x21\xff\x0bXMP DataXMP" + b"\x07<?php b" + b"\x00"
    original = buffer.getvalue()
    hostile = original[:-1] + xmp + b";" + b"<?php c"
    stripped = repack.gif_stripped(hostile)
    assert b"<?php" not in stripped and len(stripped) <= len(original)
    assert frames_of(stripped) == frames_of(original)
    with Image.open(io.BytesIO(stripped)) as image:
        assert image.info.get("loop") == 0


def test_webp_repack_drops_exif_and_xmp_and_keeps_the_pixels() -> None:
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"
    buffer = io.BytesIO()
    images.photo().save(buffer, "WEBP", quality=50, exif=exif.tobytes(), xmp=b"<x>secret</x>")
    original = buffer.getvalue()
    stripped = repack.webp_stripped(original)
    assert stripped is not None and b"SpyCam" not in stripped and b"secret" not in stripped
    assert frames_of(stripped) == frames_of(original)
    with Image.open(io.BytesIO(stripped)) as image:
        assert "exif" not in image.info and "xmp" not in image.info
    assert repack.webp_stripped(original, strip=False) is None


def test_an_animated_webp_not_made_smaller_keeps_its_frames(tmp_path: Path) -> None:
    source = corpus("tricky/pillow--iss634.webp")
    data, output = run(tmp_path, source)
    assert len(data) <= source.stat().st_size
    assert output.quality is None  # type: ignore[attr-defined]
    assert frames_of(data) == frames_of(source.read_bytes())
