"""The web page in a real browser (Debian's Chromium driven by Playwright) against the real API and worker.

Screenshots of the main states are saved under test-output/page/ for a person to look at.
"""

from __future__ import annotations

import base64
import io
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from PIL import Image

from shared.settings import Settings
from tests import images
from tests.ports import free_port
from tests.redis_servers import DatabasePool
from tests.stack import Stack

pytestmark = pytest.mark.e2e

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "page"
NOT_AN_IMAGE = b"shopping list: eggs, milk\n"
TIMEOUT_MS = 20_000


def rotated_jpeg() -> bytes:
    """A 320x240 JPEG whose EXIF says 'rotate 90 degrees clockwise' (orientation 6)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return images.jpeg(exif=exif.tobytes())


@pytest.fixture(scope="module")
def stack(redis_databases: DatabasePool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("page")
    with redis_databases.database() as url:
        settings = replace(Settings.from_env({}), redis_url=url, data_dir=root / "data", port=free_port())
        running = Stack(settings, root).start()
        try:
            yield running
        finally:
            running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (scripts/test installs it as root)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: sync_api.Browser, stack: Stack) -> Iterator[sync_api.Page]:
    context = browser.new_context(
        base_url=stack.url, accept_downloads=True, viewport={"width": 1100, "height": 900}
    )
    opened = context.new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    yield opened
    context.close()


def shot(page: sync_api.Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def drop_files(page: sync_api.Page, files: list[tuple[str, str, bytes]]) -> None:
    """Drop files on the drop zone as a user's drag and drop does (a DataTransfer of Files)."""
    payload = [{"name": n, "type": t, "data": base64.b64encode(b).decode()} for n, t, b in files]
    transfer = page.evaluate_handle(
        """(files) => {
            const transfer = new DataTransfer();
            for (const f of files) {
                const raw = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0));
                transfer.items.add(new File([raw], f.name, { type: f.type }));
            }
            return transfer;
        }""",
        payload,
    )
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})


def row(page: sync_api.Page, name: str) -> sync_api.Locator:
    return page.locator(".row", has=page.locator(".name", has_text=name)).first


def test_drop_watch_compare_download_and_options(page: sync_api.Page, stack: Stack, tmp_path: Path) -> None:
    page.goto("/")
    sync_api.expect(page.get_by_role("heading", name="imgpress")).to_be_visible()
    shot(page, "01-empty")

    drop_files(
        page,
        [
            ("logo.png", "image/png", images.png_with_alpha()),
            ("rotated.jpg", "image/jpeg", rotated_jpeg()),
            ("notes.txt", "text/plain", NOT_AN_IMAGE),
        ],
    )
    for name in ("logo.png", "rotated.jpg"):
        sync_api.expect(row(page, name)).to_have_attribute("data-state", "finished")
        sync_api.expect(row(page, name).locator(".status")).to_have_text("Done")
        sync_api.expect(row(page, name).locator(".sizes")).to_contain_text("% saved")
    sync_api.expect(row(page, "logo.png").locator(".sizes")).to_contain_text("PNG")
    refused = row(page, "notes.txt")
    sync_api.expect(refused).to_have_attribute("data-state", "failed")
    sync_api.expect(refused.locator(".status")).to_contain_text("This file type is not supported")
    sync_api.expect(page.locator("#totals")).to_contain_text("2 of 2 done")
    shot(page, "02-finished")

    # The compare view, driven from the keyboard.
    row(page, "rotated.jpg").get_by_role("button", name="Compare rotated.jpg").focus()
    page.keyboard.press("Enter")
    dialog = page.locator("#compare")
    sync_api.expect(dialog).to_be_visible()
    page.wait_for_function("document.getElementById('compare-after').naturalWidth > 0")
    page.wait_for_function("document.getElementById('compare-before').naturalWidth > 0")
    for _ in range(20):
        page.keyboard.press("ArrowLeft")
    assert page.locator("#compare-split").input_value() == "30"
    page.locator("#compare-zoom").fill("2")
    shot(page, "03-compare")
    page.keyboard.press("Escape")
    sync_api.expect(dialog).to_be_hidden()

    # Download one file: the rotation is applied to the pixels.
    with page.expect_download() as one:
        row(page, "rotated.jpg").get_by_role("button", name="Download rotated.jpg").click()
    assert one.value.suggested_filename == "rotated.jpg"
    saved = tmp_path / "rotated.jpg"
    one.value.save_as(saved)
    with Image.open(saved) as image:
        assert (image.format, image.size) == ("JPEG", (240, 320))

    # Download all as a ZIP.
    with page.expect_download() as everything:
        page.get_by_role("button", name="Download all (ZIP)").click()
    archive_path = tmp_path / "all.zip"
    everything.value.save_as(archive_path)
    with zipfile.ZipFile(archive_path) as archive:
        assert sorted(archive.namelist()) == ["logo.png", "rotated.jpg"]
        with Image.open(io.BytesIO(archive.read("logo.png"))) as logo:
            assert logo.mode == "RGBA"

    # New options apply to the next drop; options this server does not know are named as ignored.
    page.locator("#quality-auto").uncheck()
    page.locator("#quality").fill("30")
    page.locator("#format").select_option("webp")
    sync_api.expect(page.locator("#request-preview")).to_have_text("format=webp quality=30")
    drop_files(page, [("again.jpg", "image/jpeg", images.jpeg())])
    again = row(page, "again.jpg")
    sync_api.expect(again).to_have_attribute("data-state", "finished")
    job = httpx.get(f"{stack.url}/v1/jobs/{again.get_attribute('data-job')}").json()
    assert job["options"]["quality"] == 30
    if "format" not in job["options"]:
        sync_api.expect(page.locator(".notice").first).to_contain_text("does not support format")
    shot(page, "04-options")

    page.set_viewport_size({"width": 390, "height": 844})
    shot(page, "05-phone")


def test_unreachable_api_is_said_plainly(page: sync_api.Page) -> None:
    page.goto("/")
    page.route("**/v1/batches", lambda route: route.abort())
    drop_files(page, [("photo.jpg", "image/jpeg", images.jpeg())])
    sync_api.expect(page.get_by_role("alert")).to_have_text(
        "Cannot reach the imgpress API. Check that it is running, then try again."
    )
    sync_api.expect(row(page, "photo.jpg")).to_have_attribute("data-state", "failed")
    shot(page, "06-unreachable")
