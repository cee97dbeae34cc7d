"""quality=auto meets its target (judged by the reference package); max_bytes is honoured."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import numpy as np
import pyjpegli
import pytest
from PIL import Image, ImageCms, JpegImagePlugin
from ssimulacra2 import compute_ssimulacra2

from shared.errors import CannotFit
from tests import images
from tests.images import CORPUS
from worker import codecs, jpeg, quality
from worker.metric import Reference

PHOTOS = sorted((CORPUS / "photos").glob("*.png"))[:3] if CORPUS.exists() else []


def crop(path: Path) -> Image.Image:
    """A 192x128 detail crop: small enough to keep the test fast, busy enough to be a real photo."""
    with Image.open(path) as image:
        return image.convert("RGB").crop((288, 192, 480, 320))


@pytest.mark.skipif(not PHOTOS, reason="the shared corpus (../shared/corpus/photos) is not present")
@pytest.mark.parametrize("fmt", ["jpeg", "webp", "avif"])
@pytest.mark.parametrize("target", ["medium", "high"])
def test_auto_quality_meets_its_target(tmp_path: Path, fmt: str, target: str) -> None:
    for path in PHOTOS:
        source = crop(path)
        source.save(tmp_path / "source.png")
        choice = quality.for_target(source, fmt, quality.TARGETS[target], codecs.Metadata())
        (tmp_path / "out").write_bytes(choice.data)
        score = compute_ssimulacra2(str(tmp_path / "source.png"), str(tmp_path / "out"))
        assert score >= quality.TARGETS[target], (path.name, choice.quality, score)
        assert choice.quality is not None and choice.quality < 100


@pytest.mark.skipif(not PHOTOS, reason="the shared corpus (../shared/corpus/photos) is not present")
def test_auto_quality_is_lower_for_a_lower_target() -> None:
    source = crop(PHOTOS[0])
    low = quality.for_target(source, "jpeg", quality.TARGETS["low"], codecs.Metadata())
    high = quality.for_target(source, "jpeg", quality.TARGETS["high"], codecs.Metadata())
    assert (low.quality or 0) < (high.quality or 0) and len(low.data) < len(high.data)


def test_max_bytes_gives_the_largest_output_that_fits() -> None:
    source = Image.effect_mandelbrot((160, 120), (-2, -1.2, 1, 1.2), 60).convert("RGB")
    best = quality.for_size(source, "jpeg", 3000, 100, codecs.Metadata())
    assert len(best.data) <= 3000 and best.quality is not None
    above = codecs.encode(source, "jpeg", best.quality + 1, codecs.Metadata())
    assert best.quality == 100 or len(above) > 3000
    Image.open(io.BytesIO(best.data)).load()


def test_max_bytes_at_max_counts_the_metadata_and_matches_no_trial(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> bytes:
        raise AssertionError("a max_bytes trial ran the per-image match")

    monkeypatch.setattr(jpeg, "matched", refuse)
    source = Image.effect_mandelbrot((320, 240), (-2, -1.2, 1, 1.2), 60).convert("RGB")
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    best = quality.for_size(source, "jpeg", 9000, 100, codecs.Metadata(icc_profile=profile), effort="max")
    assert len(best.data) <= 9000 and best.quality is not None and best.quality < 100
    with Image.open(io.BytesIO(best.data)) as output:
        assert output.info.get("icc_profile") == profile and output.info.get("progressive")


def test_max_bytes_avif_searches_at_the_probe_speed_and_checks_at_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = images.photo().resize((640, 480))
    speed = codecs.avif_speed(source.size)
    assert speed != codecs.AVIF_PROBE_SPEED  # the photo is small enough for a slower final speed
    encode, speeds = codecs.encode, []

    def counted(*args: object, **kwargs: object) -> bytes:
        speeds.append(args[5] if len(args) > 5 else kwargs.get("speed"))
        return encode(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(codecs, "encode", counted)
    best = quality.for_size(source, "avif", 12_000, 100, codecs.Metadata())
    assert len(best.data) <= 12_000 and best.quality is not None
    assert 1 <= speeds.count(speed) <= quality.MAX_FINAL_TRIALS
    assert speeds.count(codecs.AVIF_PROBE_SPEED) == len(speeds) - speeds.count(speed)
    with Image.open(io.BytesIO(best.data)) as output:
        assert output.format == "AVIF" and output.size == (640, 480)


def test_max_bytes_too_small_raises_cannot_fit() -> None:
    source = Image.effect_noise((200, 200), 80).convert("RGB")
    with pytest.raises(CannotFit, match="max_bytes"):
        quality.for_size(source, "jpeg", 150, 100, codecs.Metadata())


def test_saturated_detail_gets_4_4_4_when_4_2_0_cannot_meet_the_target() -> None:
    source = images.saturated()
    subsampled = codecs.encode_jpeg(source, 100, codecs.Metadata())
    reference = Reference(source)
    assert reference.score(Image.open(io.BytesIO(subsampled))) < quality.TARGETS["medium"]
    choice = quality.for_target(source, "jpeg", quality.TARGETS["medium"], codecs.Metadata())
    with Image.open(io.BytesIO(choice.data)) as output:
        assert JpegImagePlugin.get_sampling(output) == 0
        assert reference.score(output) >= quality.TARGETS["medium"]
    assert choice.quality is not None and choice.quality < 100


@pytest.mark.skipif(not PHOTOS, reason="the shared corpus (../shared/corpus/photos) is not present")
def test_auto_quality_jpeg_at_max_is_mozjpeg_on_the_reshaped_jpegli_tables() -> None:
    source = crop(PHOTOS[0])
    choice = quality.for_target(source, "jpeg", quality.TARGETS["medium"], codecs.Metadata(), effort="max")
    assert choice.quality is not None
    tables = jpeg.jpeg_tables(jpeg.table_quality("trellis", choice.quality), "trellis")
    with Image.open(io.BytesIO(choice.data)) as output:
        assert output.info.get("progressive") and JpegImagePlugin.get_sampling(output) == 2  # 4:2:0
        # Pillow lists each table's 64 steps in natural order, like jpeg_tables.
        assert [list(output.quantization[k]) for k in (0, 1)] == [list(t.flatten()) for t in tables]
    # Trellis quantisation: fewer bytes than plain libjpeg-turbo on the same tables and sampling.
    plain = io.BytesIO()
    qtables = [[int(v) for v in t.flatten()] for t in tables]
    source.save(plain, format="JPEG", qtables=qtables, subsampling="4:2:0", optimize=True, progressive=True)
    assert len(choice.data) < len(plain.getvalue())


@pytest.mark.parametrize("effort", ["fast", "balanced"])
def test_fixed_quality_jpeg_is_libjpeg_turbo_on_the_reshaped_tables(effort: str) -> None:
    source = Image.effect_mandelbrot((160, 120), (-2, -1.2, 1, 1.2), 60).convert("RGB")
    data = codecs.encode(source, "jpeg", 80, codecs.Metadata(), effort)
    encoder = codecs.EFFORTS[effort].jpeg
    tables = jpeg.jpeg_tables(jpeg.table_quality(encoder, 80), encoder)
    with Image.open(io.BytesIO(data)) as output:
        assert [list(output.quantization[k]) for k in (0, 1)] == [list(t.flatten()) for t in tables]
        assert JpegImagePlugin.get_sampling(output) == 2
        assert not output.info.get("progressive")


def test_table_quality_rises_with_the_quality_number() -> None:
    for encoder in jpeg.TABLE_QUALITY:
        levels = [jpeg.table_quality(encoder, number) for number in range(1, 101)]
        assert levels == sorted(levels) and levels[-1] == 100 and levels[0] >= 1


def test_jpeg_tables_are_jpeglis_reshaped_and_baseline() -> None:
    for encoder, level in itertools.product(jpeg.SHAPES, (1, 50, 75, 100)):
        tables = jpeg.jpeg_tables(level, encoder)
        assert tables.shape == (2, 8, 8) and tables.min() >= 1 and tables.max() <= 255
    with Image.open(io.BytesIO(pyjpegli.encode(bytes(16 * 16 * 3), 16, 16, 75))) as probe:
        jpegli = [[probe.quantization[k][8 * row : 8 * row + 8] for row in range(8)] for k in (0, 1)]
    for encoder in jpeg.SHAPES:
        luma, chroma = jpeg.jpeg_tables(75, encoder).tolist()
        # Finer than jpegli's steps at DC (luma and chroma), coarser at the highest luma frequency.
        assert luma[0][0] < jpegli[0][0][0] and luma[7][7] > jpegli[0][7][7]
        assert chroma[0][0] < jpegli[1][0][0]
    assert (jpeg.jpeg_tables(75, "turbo") != jpeg.jpeg_tables(75, "trellis")).any()


def test_blended_tables_lie_between_their_neighbours() -> None:
    low, high = jpeg.jpeg_tables(60, "trellis"), jpeg.jpeg_tables(61, "trellis")
    middle = jpeg.blended_tables(60.5, "trellis")
    assert (np.minimum(low, high) <= middle).all() and (middle <= np.maximum(low, high)).all()
    assert (jpeg.blended_tables(60.0, "trellis") == low).all()
    assert (jpeg.blended_tables(100.0, "trellis") == jpeg.jpeg_tables(100, "trellis")).all()


def test_blended_tables_scale_only_the_chroma_steps_by_chroma() -> None:
    plain, scaled = jpeg.blended_tables(60.5, "trellis"), jpeg.blended_tables(60.5, "trellis", 1.18)
    assert (scaled[0] == plain[0]).all()
    assert (scaled[1] >= plain[1]).all() and scaled[1].sum() > 1.1 * plain[1].sum()


@pytest.mark.skipif(not PHOTOS, reason="the shared corpus (../shared/corpus/photos) is not present")
def test_max_keeps_the_fewest_bytes_over_its_chroma_scales(monkeypatch: pytest.MonkeyPatch) -> None:
    source = crop(PHOTOS[2])
    pillow = io.BytesIO()
    source.save(pillow, "JPEG", quality=75)
    with Image.open(pillow) as decoded:
        target = Reference(source).score(decoded) + jpeg.MATCH_MARGIN
    found = jpeg._search(source, 75)
    assert found.passed and found.score >= target
    monkeypatch.setattr(jpeg, "MATCH_CHROMA", ())
    alone = jpeg._search(source, 75)
    # On this photo a chroma scale other than the tables' own passes in fewer bytes.
    assert alone.chroma == 1.0 and found.chroma in (0.85, 1.18)
    assert len(found.data) < len(alone.data)


@pytest.mark.skipif(not PHOTOS, reason="the shared corpus (../shared/corpus/photos) is not present")
@pytest.mark.parametrize("number", [50, 75, 90])
def test_max_jpeg_scores_pillows_at_its_quality_number_in_fewer_bytes(tmp_path: Path, number: int) -> None:
    for path in PHOTOS[:2]:
        source = crop(path)
        source.save(tmp_path / "source.png")
        pillow = io.BytesIO()
        source.save(pillow, "JPEG", quality=number)
        (tmp_path / "pillow.jpg").write_bytes(pillow.getvalue())
        data = codecs.encode(source, "jpeg", number, codecs.Metadata(), "max")
        (tmp_path / "max.jpg").write_bytes(data)
        scores = [
            compute_ssimulacra2(str(tmp_path / "source.png"), str(tmp_path / n))
            for n in ("pillow.jpg", "max.jpg")
        ]
        assert scores[1] >= scores[0], (path.name, scores)
        assert len(data) < len(pillow.getvalue()), path.name
        with Image.open(io.BytesIO(data)) as output:
            assert output.info.get("progressive") and JpegImagePlugin.get_sampling(output) == 2  # 4:2:0


@pytest.mark.skipif(not PHOTOS, reason="the shared corpus (../shared/corpus/photos) is not present")
def test_more_effort_gives_fewer_bytes_at_the_same_target() -> None:
    for path in PHOTOS[:2]:
        # Whole photos: on a tiny crop one quality step outweighs what trellis saves.
        source = Image.open(path).convert("RGB")
        sizes = [
            len(
                quality.for_target(
                    source, "jpeg", quality.TARGETS["medium"], codecs.Metadata(), effort=e
                ).data
            )
            for e in ("max", "balanced", "fast")
        ]
        assert sizes == sorted(sizes), (path.name, sizes)


@pytest.mark.skipif(not PHOTOS, reason="the shared corpus (../shared/corpus/photos) is not present")
def test_max_matches_a_large_photo_on_a_sample_and_encodes_it_once(monkeypatch: pytest.MonkeyPatch) -> None:
    with Image.open(PHOTOS[0]) as photo:
        source = photo.convert("RGB").resize((photo.width * 2, photo.height * 2), Image.Resampling.LANCZOS)
    mosaic = jpeg.sample(source)
    assert jpeg.MATCH_SAMPLE_PIXELS * 0.6 <= mosaic.width * mosaic.height <= jpeg.MATCH_SAMPLE_PIXELS
    # The tiles are the photo's own pixels, taken from across it.
    assert mosaic.crop((0, 0, 16, 16)).tobytes() in {
        source.crop((x, y, x + 16, y + 16)).tobytes() for x in range(0, 512, 16) for y in range(0, 256, 16)
    }
    encodes: list[tuple[int, int]] = []
    real = jpeg.mozjpeg

    def counted(pixels: object, tables: object) -> bytes:
        encodes.append(np.asarray(pixels).shape[:2])
        return real(pixels, tables)  # type: ignore[arg-type]

    monkeypatch.setattr(jpeg, "mozjpeg", counted)
    data = jpeg.matched(source, 75)
    assert encodes.count((source.height, source.width)) == 1 and len(encodes) > 1
    pillow = io.BytesIO()
    source.save(pillow, "JPEG", quality=75)
    reference = Reference(source)
    with Image.open(io.BytesIO(data)) as ours, Image.open(pillow) as theirs:
        assert reference.score(ours) >= reference.score(theirs) - 0.5
    assert len(data) < 0.9 * len(pillow.getvalue())
