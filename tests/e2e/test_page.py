"""The web page in a real browser (Debian's Chromium driven by Playwright) against the real API and worker.

Screenshots of the main states are saved under test-output/page/ for a person to look at.
"""

from __future__ import annotations

import os
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests import images
from tests.browser import (
    DESKTOP,
    NOT_AN_IMAGE,
    PHONE,
    api_job,
    drop_copies,
    drop_files,
    open_page,
    pinch,
    record_figure,
    rows,
    scan,
    shot,
)
from tests.redis_servers import DatabasePool
from tests.stack import Stack, running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.heavy]

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

ROOT = Path(__file__).resolve().parents[2]
PHOTO = ROOT.parent / "shared" / "corpus" / "photos" / "kodim03.png"
#: Names the server changes: a decomposed accent (as macOS stores it), quotes, a backslash, 230 characters.
CHANGED_NAMES = ["cafe\u0301.png", 'say "cheese".jpg', "back\\slash.jpg", "long-" + "x" * 225 + ".jpg"]


@pytest.fixture(scope="module")
def stack(redis_databases: DatabasePool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from running_stack(redis_databases, tmp_path_factory.mktemp("page"))


def test_every_file_keeps_its_own_truth(page: Any, stack: Stack, tmp_path: Path) -> None:
    failed_requests: list[str] = []
    page.on("response", lambda r: r.status >= 400 and failed_requests.append(f"{r.status} {r.url}"))
    posted: list[int] = []
    page.on("request", lambda r: r.method == "POST" and posted.append(len(r.post_data_buffer or b"")))
    page.goto("/")
    expect(page.get_by_role("heading", name="imgpress")).to_be_visible()
    expect(page.locator("#limits")).to_contain_text("Up to 52.4 MB and 50 megapixels per image")
    expect(page.locator("#limits")).to_contain_text("kept 30 minutes")
    loaded = page.evaluate(
        """() => performance.getEntriesByType("navigation").concat(performance.getEntriesByType("resource"))
            .map((entry) => entry.encodedBodySize)"""
    )
    record_figure("page load: requests", len(loaded))
    record_figure("page load: bytes (uncompressed bodies)", sum(loaded))
    shot(page, "01-empty")
    assert scan(page) == []

    good = [(name, "image/jpeg", images.jpeg()) for name in CHANGED_NAMES]
    drop_files(
        page,
        [
            *good[:2],
            ("empty.png", "image/png", b""),
            *good[2:],
            ("notes.txt", "text/plain", NOT_AN_IMAGE),
            ("logo.png", "image/png", images.png_with_alpha()),
            ("rotated.jpg", "image/jpeg", images.rotated_jpeg()),
        ],
    )
    # A file over the limit, refused before any byte is sent.
    page.evaluate(
        """() => {
            const transfer = new DataTransfer();
            const bytes = new Uint8Array(51 * 1024 * 1024);
            transfer.items.add(new File([bytes], "huge.jpg", { type: "image/jpeg" }));
            document.body.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true }));
        }"""
    )
    huge = rows(page).first
    expect(huge).to_have_attribute("data-state", "failed")
    expect(huge.locator(".status")).to_have_text("Not sent: 53.5 MB is over this server's 52.4 MB limit.")
    assert max(posted, default=0) < 1024 * 1024

    drop = page.locator(".batch").nth(1).locator(".row")
    for position in (0, 1, 3, 4, 6, 7):
        expect(drop.nth(position)).to_have_attribute("data-state", "finished")
        expect(drop.nth(position).locator(".status")).to_have_text("Done")
    for position, name in zip((0, 1, 3, 4), CHANGED_NAMES, strict=True):
        expect(drop.nth(position).locator(".name")).to_have_text(name)
        expect(drop.nth(position).locator(".sizes")).to_contain_text("JPEG q")
    expect(drop.nth(2)).to_have_attribute("data-state", "failed")
    expect(drop.nth(2).locator(".status")).to_have_text("Not accepted: The file is empty (0 bytes).")
    expect(drop.nth(5)).to_have_attribute("data-state", "failed")
    expect(drop.nth(5).locator(".status")).to_contain_text("not an image (text/plain)")
    expect(drop.nth(6).locator(".sizes")).to_contain_text("PNG")
    expect(page.locator("#totals")).to_contain_text("6 of 9 done · 3 failed")
    # One polite summary for every row (the other is the closed compare view's status).
    assert page.locator('[aria-live="polite"], [role="status"]').count() == 2
    shot(page, "02-finished")
    assert scan(page) == []

    # Downloads: one file (the rotation applied to the pixels), then the ZIP of the batch.
    with page.expect_download() as one:
        drop.nth(7).get_by_role("button", name="Download rotated.jpg").click()
    assert one.value.suggested_filename == "rotated.jpg"
    # The others as the user named them (accents, quotes, a long name): not an ASCII stand-in.
    # (Chromium itself turns a quote in a file name into "_".)
    kept = ("café.jpg", "say _cheese_.jpg", "long-" + "x" * 191 + ".jpg")
    for position, name in zip((0, 1, 4), kept, strict=True):
        with page.expect_download() as named:
            drop.nth(position).locator(".actions button", has_text="Download").click()
        assert named.value.suggested_filename == name
    saved = tmp_path / "rotated.jpg"
    one.value.save_as(saved)
    with Image.open(saved) as image:
        assert (image.format, image.size) == ("JPEG", (240, 320))
    with page.expect_download() as everything:
        page.locator(".batch").nth(1).get_by_role("button", name="Download all (ZIP)").click()
    archive_path = tmp_path / "all.zip"
    everything.value.save_as(archive_path)
    with zipfile.ZipFile(archive_path) as archive:
        assert len(archive.namelist()) == 6 and "logo.png" in archive.namelist()
    assert failed_requests == []  # no favicon 404, no refused request


def test_a_long_drop_still_says_in_full_why_a_file_failed(page: Any, stack: Stack) -> None:
    page.goto("/")
    small = images.encode(images.photo(96, 64), "PNG")
    good = [(f"photo-{n:02}.png", "image/png", small) for n in range(11)]
    drop_files(page, [*good, ("notes.jpg", "image/jpeg", NOT_AN_IMAGE)])
    expect(page.locator(".rows.compact .row")).to_have_count(12)
    failed = page.locator('.row[data-state="failed"] .status')
    expect(failed).to_contain_text("This file type is not supported. Upload a JPEG, PNG, GIF, WebP")
    assert failed.get_attribute("title") == failed.text_content()
    assert failed.evaluate("e => e.scrollWidth <= e.clientWidth")  # nothing cut off


def test_options_as_the_server_has_them(page: Any, stack: Stack) -> None:
    page.goto("/")
    expect(page.locator("#request-preview")).to_have_text("quality=auto target=medium")
    page.locator("#format").select_option("webp")
    page.locator("#target").select_option("low")
    page.locator("#effort").select_option("fast")
    drop_files(page, [("photo.jpg", "image/jpeg", images.jpeg())])
    auto = rows(page).first
    expect(auto).to_have_attribute("data-state", "finished")
    job = api_job(stack, auto.get_attribute("data-job"))
    assert (job["options"]["quality"], job["options"]["target"], job["options"]["effort"]) == (
        "auto",
        "low",
        "fast",
    )
    assert job["output"]["format"] == "webp" and job["output"]["quality"] is not None
    expect(auto.locator(".sizes")).to_contain_text(f"WebP q{job['output']['quality']}, effort fast")

    page.locator("#quality-auto").uncheck()
    page.locator("#quality").fill("95")
    page.locator("#format").select_option("jpeg")
    page.locator("#max-kb").fill("4")
    page.locator("#max-width").fill("200")
    page.locator("#fit").select_option("contain")
    page.locator("#keep-metadata").check()
    expect(page.locator("#request-preview")).to_have_text(
        "format=jpeg quality=95 max_bytes=4000 width=200 fit=contain effort=fast metadata=keep"
    )
    drop_files(page, [("logo.png", "image/png", images.png_with_alpha())])
    capped = rows(page).first
    expect(capped).to_have_attribute("data-state", "finished")
    job = api_job(stack, capped.get_attribute("data-job"))
    assert job["output"]["bytes"] <= 4000 and job["output"]["width"] == 200
    # A transparent PNG made into a JPEG says so in words.
    expect(capped.locator(".warn")).to_contain_text("JPEG has no transparency")


def test_an_animation_made_still_says_so(page: Any) -> None:
    frames = images.palette_frames()
    gif = images.encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    page.goto("/")
    page.locator("#format").select_option("jpeg")
    drop_files(page, [("wave.gif", "image/gif", gif), ("photo.jpg", "image/jpeg", images.jpeg())])
    animated, photo = rows(page).nth(0), rows(page).nth(1)
    expect(animated).to_have_attribute("data-state", "finished")
    expect(animated.locator(".warn")).to_contain_text("only its first frame was kept")
    expect(photo).to_have_attribute("data-state", "finished")
    expect(photo.locator(".warn")).to_have_text("")


def test_each_file_shows_its_upload_progress(page: Any) -> None:
    page.goto("/")
    expect(page.locator("#limits")).to_contain_text("Up to")
    noise = Image.frombytes("RGB", (300, 300), os.urandom(300 * 300 * 3))
    heavy = images.encode(noise, "PNG")
    network = page.context.new_cdp_session(page)
    network.send("Network.enable")
    # About 250 kB/s up: each file takes a second or so to send.
    slow = {"offline": False, "latency": 20, "downloadThroughput": -1, "uploadThroughput": 250_000}
    network.send("Network.emulateNetworkConditions", slow)
    drop_files(page, [("first.png", "image/png", heavy), ("second.png", "image/png", heavy)])
    bars = rows(page).locator(".bar")
    expect(bars.first).to_be_visible()
    page.wait_for_function(
        "() => { const v = document.querySelector('.row .bar').value; return v > 0 && v < 100; }"
    )
    # The second file's bar starts once the first file's bytes are sent.
    assert int(bars.nth(1).evaluate("b => b.value")) < 100
    network.send("Network.emulateNetworkConditions", {**slow, "uploadThroughput": -1, "latency": 0})
    expect(rows(page).nth(1)).to_have_attribute("data-state", "finished")
    expect(bars.first).to_be_hidden()


def test_a_drop_of_120_stays_smooth_survives_a_reload_and_clears(page: Any, stack: Stack) -> None:
    page.add_init_script(
        """window.longTasks = [];
        new PerformanceObserver((list) => {
            for (const entry of list.getEntries()) window.longTasks.push(entry.duration);
        }).observe({ type: "longtask", buffered: true });"""
    )
    batches: list[str] = []
    page.on(
        "request", lambda r: r.method == "POST" and r.url.endswith("/v1/batches") and batches.append(r.url)
    )
    page.goto("/")
    expect(page.locator("#limits")).to_contain_text("Up to")
    page.evaluate("window.longTasks.length = 0")
    small = images.encode(images.photo(96, 64), "PNG")
    started = time.monotonic()
    drop_copies(page, 120, small, "image/png")
    expect(page.locator("#totals")).to_contain_text("120 of 120 done", timeout=90_000)
    record_figure("120 files, drop to done (s)", time.monotonic() - started)
    assert len(batches) == 3  # 50 + 50 + 20: the server's batch size
    assert page.locator(".rows.compact .row").count() == 120
    longest = page.evaluate("Math.max(0, ...window.longTasks)")
    assert longest <= 200, f"a long task of {longest} ms"
    page.locator("#totals").evaluate("e => e.scrollIntoView()")
    shot(page, "06-many", full_page=False)
    page.set_viewport_size(PHONE)
    page.locator("#totals").evaluate("e => e.scrollIntoView()")
    shot(page, "06-many-phone", full_page=False)
    page.set_viewport_size(DESKTOP)
    job_ids = [rows(page).nth(n).get_attribute("data-job") for n in (0, 119)]

    page.reload()
    expect(page.locator("#totals")).to_contain_text("120 of 120 done")
    assert [rows(page).nth(n).get_attribute("data-job") for n in (0, 119)] == job_ids
    page.get_by_role("button", name="Clear all (deletes them on the server)").click()
    expect(page.locator("#totals")).to_have_text("No files yet.")
    assert all(httpx.get(f"{stack.url}/v1/jobs/{job_id}").status_code == 410 for job_id in job_ids)
    page.reload()
    expect(page.locator("#totals")).to_have_text("No files yet.")


def test_phone_and_dark_mode(browser: Any, stack: Stack) -> None:
    for scheme, viewport, name in (
        ("light", PHONE, "phone"),
        ("dark", PHONE, "phone-dark"),
        ("dark", DESKTOP, "dark"),
    ):
        page = open_page(browser, stack, viewport=viewport, color_scheme=scheme, has_touch=viewport is PHONE)
        try:
            page.goto("/")
            background = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
            assert (background == "rgb(20, 23, 29)") == (scheme == "dark")
            drop_files(
                page,
                [
                    ("photo.jpg", "image/jpeg", images.jpeg()),
                    ("logo.png", "image/png", images.png_with_alpha()),
                ],
            )
            expect(rows(page).nth(1)).to_have_attribute("data-state", "finished")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= viewport["width"], "the page scrolls sideways"
            shot(page, f"07-{name}")
            assert scan(page) == []
            rows(page).first.get_by_role("button", name="Compare photo.jpg").click()
            page.wait_for_function("document.getElementById('compare-after').naturalWidth > 0")
            if viewport is PHONE:
                # A tap on the picture moves the divider there.
                view = page.locator("#compare-view").bounding_box()
                page.touchscreen.tap(view["x"] + view["width"] * 0.3, view["y"] + view["height"] / 2)
                assert abs(int(page.locator("#compare-divider").get_attribute("aria-valuenow")) - 30) <= 2
                fitted = page.locator("#zoom-value").text_content()
                pinch(page, view["x"] + view["width"] / 2, view["y"] + view["height"] / 2)
                expect(page.locator("#zoom-value")).not_to_have_text(fitted)
                # The pinch zoomed and left the divider where the tap put it.
                assert abs(int(page.locator("#compare-divider").get_attribute("aria-valuenow")) - 30) <= 2
                assert int(page.locator("#zoom-value").text_content().rstrip("%")) > int(fitted.rstrip("%"))
            shot(page, f"08-{name}-compare", full_page=False)
            assert scan(page) == []
        finally:
            page.context.close()
