"""The compression options through the real API and a real RQ worker (issue 3)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageOps, JpegImagePlugin
from ssimulacra2 import compute_ssimulacra2
from starlette.testclient import TestClient

from tests import images
from tests.images import CORPUS

RunJobs = Callable[[], None]


def compress(
    client: TestClient, run_jobs: RunJobs, data: bytes, name: str = "in.png", **fields: str
) -> tuple[dict, bytes]:
    """Upload, run the worker, and return the finished job and its result bytes."""
    response = client.post("/v1/jobs", files={"file": (name, data, "application/octet-stream")}, data=fields)
    assert response.status_code == 202, response.text
    run_jobs()
    job = client.get(f"/v1/jobs/{response.json()['id']}").json()
    result = client.get(f"/v1/jobs/{job['id']}/result")
    return job, result.content if result.status_code == 200 else b""


def corpus(path: str) -> bytes:
    if not (CORPUS / path).exists():
        pytest.skip("the shared corpus (../shared/corpus) is not present")
    return (CORPUS / path).read_bytes()


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "avif"])
def test_each_output_format_is_reported_and_served(client: TestClient, run_jobs: RunJobs, fmt: str) -> None:
    job, data = compress(client, run_jobs, images.jpeg(), "in.jpg", format=fmt, quality="70")
    assert job["status"] == "finished", job
    assert job["output"]["format"] == fmt and job["output"]["quality"] in (70, 100)
    assert job["output"]["media_type"] == f"image/{fmt}"
    assert opened(data).format == {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "avif": "AVIF"}[fmt]


def test_bad_options_are_400_naming_the_option(client: TestClient) -> None:
    for field, value in (("format", "bmp"), ("target", "ultra"), ("fit", "stretch"), ("max_bytes", "x")):
        response = client.post("/v1/jobs", files={"file": ("a.jpg", images.jpeg())}, data={field: value})
        assert response.status_code == 400 and field in response.json()["error"]["message"]


def test_a_bad_effort_is_400_with_a_short_message(client: TestClient) -> None:
    for value in ("slow", "MAXIMUM", "0"):
        response = client.post("/v1/jobs", files={"file": ("a.jpg", images.jpeg())}, data={"effort": value})
        assert response.status_code == 400
        message = response.json()["error"]["message"]
        assert "effort" in message and "fast, balanced, max" in message and len(message) < 120
    response = client.post(
        "/v1/jobs?effort=turbo", content=images.jpeg(), headers={"content-type": "image/jpeg"}
    )
    assert response.status_code == 400 and "effort" in response.json()["error"]["message"]


@pytest.mark.parametrize("effort", ["fast", "balanced", "max"])
def test_each_effort_runs_through_the_api(client: TestClient, run_jobs: RunJobs, effort: str) -> None:
    job, data = compress(client, run_jobs, images.jpeg(), "in.jpg", quality="70", effort=effort)
    assert job["status"] == "finished", job.get("error")
    assert job["output"]["format"] == "jpeg" and opened(data).format == "JPEG"
    assert opened(data).info.get("progressive", 0) == (1 if effort == "max" else 0)


def test_auto_format_never_drops_alpha(client: TestClient, run_jobs: RunJobs) -> None:
    job, data = compress(client, run_jobs, images.png_with_alpha(), format="auto")
    assert job["output"]["format"] in ("webp", "avif", "png")
    assert opened(data).mode in ("RGBA", "LA", "P", "PA")
    assert opened(data).convert("RGBA").getextrema()[3][0] < 255


def test_auto_format_with_quality_100_stays_lossless(client: TestClient, run_jobs: RunJobs) -> None:
    source = images.encode(images.photo(64, 48), "PNG")
    job, data = compress(client, run_jobs, source, format="auto", quality="100")
    assert job["output"]["format"] in ("png", "webp")
    assert opened(data).convert("RGB").tobytes() == opened(source).convert("RGB").tobytes()


def test_quality_auto_reports_the_quality_it_chose(client: TestClient, run_jobs: RunJobs) -> None:
    job, data = compress(client, run_jobs, images.jpeg(98), "in.jpg", quality="auto", target="low")
    assert job["options"]["quality"] == "auto" and job["options"]["target"] == "low"
    assert 1 <= job["output"]["quality"] < 100 and len(data) == job["output"]["bytes"]


def test_quality_auto_writes_saturated_detail_in_4_4_4(
    client: TestClient, run_jobs: RunJobs, tmp_path: Path
) -> None:
    source = images.saturated()
    data = images.encode(source, "PNG")
    job, output = compress(client, run_jobs, data, format="jpeg", quality="auto")
    assert job["status"] == "finished", job
    assert JpegImagePlugin.get_sampling(opened(output)) == 0  # 4:4:4: 4:2:0 cannot reach the target
    (tmp_path / "source.png").write_bytes(data)
    (tmp_path / "output.jpg").write_bytes(output)
    assert compute_ssimulacra2(str(tmp_path / "source.png"), str(tmp_path / "output.jpg")) >= 70.0


def test_max_bytes_is_honoured_or_422(client: TestClient, run_jobs: RunJobs) -> None:
    source = images.encode(Image.effect_noise((160, 120), 60).convert("RGB"), "PNG")
    job, data = compress(client, run_jobs, source, format="jpeg", max_bytes="6000")
    assert job["status"] == "finished" and len(data) <= 6000
    job, _ = compress(client, run_jobs, source, format="jpeg", max_bytes="100")
    assert job["status"] == "failed" and job["error"]["code"] == "cannot_fit"
    response = client.get(f"/v1/jobs/{job['id']}/result")
    assert response.status_code == 422 and "max_bytes" in response.json()["error"]["message"]


def test_resize_cover_crops_to_the_box(client: TestClient, run_jobs: RunJobs) -> None:
    job, data = compress(client, run_jobs, images.jpeg(), "in.jpg", width="100", height="100", fit="cover")
    assert (job["output"]["width"], job["output"]["height"]) == (100, 100) == opened(data).size
    job, data = compress(client, run_jobs, images.jpeg(), "in.jpg", width="160")
    assert opened(data).size == (160, 120)


def test_metadata_keep_drops_gps_and_strip_drops_exif(client: TestClient, run_jobs: RunJobs) -> None:
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    exif[0x8298] = "(c) Someone"  # Copyright
    gps = exif.get_ifd(0x8825)
    gps[2] = (51.0, 30.0, 0.0)
    source = images.jpeg(95, exif=exif)
    _, kept = compress(client, run_jobs, source, "in.jpg", metadata="keep", quality="60")
    kept_exif = opened(kept).getexif()
    assert kept_exif.get(0x8298) == "(c) Someone" and not kept_exif.get_ifd(0x8825)
    _, stripped = compress(client, run_jobs, source, "in.jpg", quality="60")
    assert not opened(stripped).getexif() and b"CameraMaker" not in stripped


@pytest.mark.parametrize(
    "path",
    ["hostile/patt--PHP_exif_system.jpg", "hostile/patt--imagemagick_CVE-2022-44268_convert_etc_passwd.png"],
)
def test_payloads_in_metadata_are_not_copied(client: TestClient, run_jobs: RunJobs, path: str) -> None:
    job, data = compress(client, run_jobs, corpus(path), Path(path).name)
    assert job["status"] == "finished"
    assert b"<?php" not in data and b"passwd" not in data and b"tEXt" not in data
    opened(data)


@pytest.mark.parametrize("number", [3, 6, 8])
def test_orientation_is_applied(client: TestClient, run_jobs: RunJobs, number: int) -> None:
    source = corpus(f"tricky/orient--Landscape_{number}.jpg")
    job, data = compress(client, run_jobs, source, "in.jpg", width="360")
    output = opened(data)
    assert output.size == (360, 240) and output.getexif().get(0x0112, 1) == 1
    expected = ImageOps.exif_transpose(opened(source)).convert("RGB").resize((360, 240))
    difference = sum(
        abs(a - b)
        for a, b in zip(output.convert("L").tobytes(), expected.convert("L").tobytes(), strict=True)
    )
    assert difference / (360 * 240) < 12


def test_cmyk_comes_out_rgb_with_right_colours(client: TestClient, run_jobs: RunJobs) -> None:
    source = corpus("tricky/pillow--pil_sample_cmyk.jpg")
    job, data = compress(client, run_jobs, source, "in.jpg", quality="90", format="jpeg")
    output = opened(data)
    assert output.mode == "RGB"
    expected = opened(source).convert("RGB")
    difference = sum(abs(a - b) for a, b in zip(output.tobytes(), expected.tobytes(), strict=True)) / len(
        output.tobytes()
    )
    assert difference < 40  # inverted colours would differ by ~128 on average


def test_16_bit_with_alpha_is_not_clipped(client: TestClient, run_jobs: RunJobs) -> None:
    job, data = compress(
        client, run_jobs, corpus("tricky/pngsuite--basn6a16.png"), format="webp", quality="90"
    )
    output = opened(data).convert("RGBA")
    alpha = output.getchannel("A").getextrema()
    assert alpha[0] < 255 and len(set(output.convert("L").tobytes())) > 8


def test_palette_alpha_keeps_transparency(client: TestClient, run_jobs: RunJobs) -> None:
    job, data = compress(client, run_jobs, corpus("tricky/pngsuite--tbbn3p08.png"))
    assert opened(data).convert("RGBA").getextrema()[3][0] == 0


@pytest.mark.parametrize("fmt", ["same", "webp", "png"])
def test_animations_stay_animated(client: TestClient, run_jobs: RunJobs, fmt: str) -> None:
    job, data = compress(client, run_jobs, corpus("tricky/wuffs--muybridge.gif"), "in.gif", format=fmt)
    assert job["status"] == "finished"
    assert getattr(opened(data), "n_frames", 1) == 15


def test_animation_to_jpeg_is_the_first_frame(client: TestClient, run_jobs: RunJobs) -> None:
    job, data = compress(client, run_jobs, corpus("tricky/wuffs--muybridge.gif"), "in.gif", format="jpeg")
    assert opened(data).format == "JPEG" and opened(data).size == (30, 20)


@pytest.mark.parametrize("path", ["tricky/exifsamples--samplefilehub.heif", "tricky/pillow--hopper.avif"])
def test_heic_and_avif_inputs_are_accepted(client: TestClient, run_jobs: RunJobs, path: str) -> None:
    job, data = compress(client, run_jobs, corpus(path), Path(path).name)
    assert job["input"]["media_type"] in ("image/heic", "image/avif")
    assert job["status"] == "finished", job
    assert opened(data).format in ("JPEG", "AVIF")


def test_a_tiny_image_asked_to_fill_a_huge_box_is_too_large(client: TestClient, run_jobs: RunJobs) -> None:
    noise = Image.frombytes("RGB", (64, 64), bytes((index * 7919) % 251 for index in range(64 * 64 * 3)))
    fields = {"width": "3000", "height": "3000", "fit": "contain"}
    job, _ = compress(client, run_jobs, images.encode(noise, "PNG"), **fields)
    assert job["status"] == "failed" and job["error"]["code"] == "too_large"
    assert "at most 4 times" in job["error"]["message"]
    result = client.get(f"/v1/jobs/{job['id']}/result")
    assert result.status_code == 422 and result.json()["error"]["code"] == "too_large"
    fields = {"width": "256", "height": "256", "fit": "contain"}
    job, data = compress(client, run_jobs, images.encode(noise, "PNG"), **fields)
    assert job["status"] == "finished" and opened(data).size == (256, 256)


def test_a_palette_apng_comes_back_with_its_frames_and_colours(client: TestClient, run_jobs: RunJobs) -> None:
    job, data = compress(client, run_jobs, images.palette_apng(200), name="anim.png")
    assert job["status"] == "finished" and job["output"]["format"] == "png"
    image = opened(data)
    assert getattr(image, "n_frames", 1) == 2
    for index, frame in enumerate(images.palette_frames(200)):
        image.seek(index)
        assert image.convert("RGB").tobytes() == frame.convert("RGB").tobytes()


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("tricky/pillow--hopper.avif", {}),
        ("tricky/pillow--hopper.avif", {"quality": "70"}),
        ("tricky/pillow--iss634.apng", {"quality": "auto"}),
    ],
)
def test_format_same_never_serves_more_bytes_than_the_upload(
    client: TestClient, run_jobs: RunJobs, path: str, fields: dict[str, str]
) -> None:
    source = corpus(path)
    job, data = compress(client, run_jobs, source, Path(path).name, **fields)
    assert job["status"] == "finished", job
    assert len(data) == job["output"]["bytes"] <= len(source) == job["input"]["bytes"]
    assert job["output"]["quality"] is None  # the upload's own pixels, kept
    assert opened(data).format == opened(source).format
