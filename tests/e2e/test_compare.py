"""The page's compare view in a real browser: divider, zoom and pan, previous/next, live
re-encode, and originals the browser shows turned or cannot show."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import images
from tests.browser import api_job, drop_files, record_figure, rows, scan, shot
from tests.redis_servers import DatabasePool
from tests.stack import Stack, running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.heavy]

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

PHOTO = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "photos" / "kodim03.png"


@pytest.fixture(scope="module")
def stack(redis_databases: DatabasePool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from running_stack(redis_databases, tmp_path_factory.mktemp("compare"))


def test_compare_zoom_pan_divider_and_live_reencode(page: Any, stack: Stack) -> None:
    page.goto("/")
    photo = PHOTO.read_bytes() if PHOTO.exists() else images.encode(images.photo(768, 512), "PNG")
    started = time.monotonic()
    drop_files(page, [("photo.png", "image/png", photo), ("second.jpg", "image/jpeg", images.jpeg())])
    first = rows(page).first
    expect(first).to_have_attribute("data-state", "finished")
    record_figure("one photo, drop to done (s)", time.monotonic() - started)
    expect(rows(page).nth(1)).to_have_attribute("data-state", "finished")
    original_job = first.get_attribute("data-job")

    first.get_by_role("button", name="Compare photo.png").click()
    dialog = page.locator("#compare")
    expect(dialog).to_be_visible()
    page.wait_for_function("document.getElementById('compare-after').naturalWidth > 0")
    expect(page.locator("#side-before")).to_contain_text("Original:")
    expect(page.locator("#side-after")).to_contain_text("PNG")

    view = page.locator("#compare-view").bounding_box()
    divider = page.locator("#compare-divider")

    def both_sides_visible() -> None:
        line = divider.bounding_box()
        assert view["x"] <= line["x"] <= view["x"] + view["width"]
        for image in ("#compare-before", "#compare-after"):
            box = page.locator(image).bounding_box()
            # The picture covers the view on both sides of the divider.
            assert box["x"] <= line["x"] - 5 and box["x"] + box["width"] >= line["x"] + 5
        assert page.locator("#compare-before").bounding_box() == page.locator("#compare-after").bounding_box()

    # The divider follows a drag anywhere on its line, and the arrow keys.
    page.mouse.move(view["x"] + view["width"] / 2, view["y"] + 40)
    page.mouse.down()
    page.mouse.move(view["x"] + view["width"] / 4, view["y"] + 60, steps=4)
    page.mouse.up()
    assert abs(int(divider.get_attribute("aria-valuenow")) - 25) <= 1
    divider.focus()
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    assert abs(int(divider.get_attribute("aria-valuenow")) - 35) <= 1

    # Wheel zoom around the pointer, then 4x: both sides stay visible; no smoothing above 100 %.
    page.mouse.move(view["x"] + view["width"] * 0.7, view["y"] + view["height"] * 0.5)
    page.mouse.wheel(0, -600)
    page.wait_for_timeout(100)
    both_sides_visible()
    page.get_by_role("button", name="100%").click()
    expect(page.locator("#zoom-value")).to_have_text("100%")
    for _ in range(4):
        page.get_by_role("button", name="Zoom in").click()
    expect(page.locator("#zoom-value")).not_to_have_text("100%")
    both_sides_visible()
    assert page.locator("#compare-before").evaluate("e => getComputedStyle(e).imageRendering") == "pixelated"
    # Pan by dragging the picture (away from the divider).
    before = page.locator("#compare-before").bounding_box()
    page.mouse.move(view["x"] + view["width"] * 0.8, view["y"] + view["height"] * 0.5)
    page.mouse.down()
    page.mouse.move(view["x"] + view["width"] * 0.9, view["y"] + view["height"] * 0.6, steps=4)
    page.mouse.up()
    moved = page.locator("#compare-before").bounding_box()
    assert (moved["x"], moved["y"]) != (before["x"], before["y"])
    both_sides_visible()
    shot(page, "03-compare-zoomed", full_page=False)
    page.get_by_role("button", name="Fit").click()
    fitted = page.locator("#compare-before").bounding_box()
    assert fitted["width"] <= view["width"] + 1 and fitted["height"] <= view["height"] + 1

    # Side by side: both panes show the same part of the picture.
    page.get_by_role("button", name="Side by side").click()
    left = page.locator("#compare-before").bounding_box()
    right = page.locator("#compare-after").bounding_box()
    assert abs(right["x"] - left["x"] - view["width"] / 2) <= 2 and left["width"] == right["width"]
    page.get_by_role("button", name="Slider").click()

    # Live re-encode: another format and quality from the stored upload, no second upload.
    uploads: list[str] = []
    page.on("request", lambda r: r.method == "POST" and uploads.append(r.url))
    page.locator("#variant-format").select_option("webp")
    page.locator("#variant-quality").fill("40")
    page.locator("#variant-run").click()
    expect(page.locator("#variant-status")).to_contain_text("New version in", timeout=30_000)
    expect(page.locator("#side-after")).to_contain_text("WebP q40")
    assert len(uploads) == 1 and uploads[0].endswith(f"/v1/jobs/{original_job}/variants")
    expect(page.locator("#variant-list li")).to_have_count(2)
    shot(page, "04-compare-variant", full_page=False)
    assert scan(page) == []
    page.get_by_role("button", name="Keep this version").click()
    expect(first).not_to_have_attribute("data-job", original_job)
    kept = first.get_attribute("data-job")
    assert api_job(stack, kept)["output"]["format"] == "webp"
    expect(first.locator(".sizes")).to_contain_text("WebP q40")

    # Previous/next file inside the view.
    page.get_by_role("button", name="Next file").click()
    expect(page.locator("#compare-title")).to_have_text("Compare: second.jpg")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()


def test_compare_gives_a_turned_original_its_upright_size(page: Any) -> None:
    page.goto("/")
    drop_files(page, [("rotated.jpg", "image/jpeg", images.rotated_jpeg())])
    row = rows(page).first
    expect(row).to_have_attribute("data-state", "finished")
    row.get_by_role("button", name="Compare rotated.jpg").click()
    page.wait_for_function("document.getElementById('compare-after').naturalWidth > 0")
    # Stored as 320x240 with "rotate 90°": both sides are shown, and sized, 240 wide and 320 high.
    expect(page.locator("#side-before")).to_contain_text("· 240×320")
    expect(page.locator("#side-after")).to_contain_text("· 240×320")


def test_compare_lays_out_an_original_the_browser_cannot_show(page: Any) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    page.goto("/")
    drop_files(page, [("phone.heic", "image/heic", images.encode(images.photo(320, 240), "HEIF"))])
    row = rows(page).first
    expect(row).to_have_attribute("data-state", "finished")
    row.get_by_role("button", name="Compare phone.heic").click()
    page.wait_for_function("document.getElementById('compare-after').naturalWidth > 0")
    # Chromium decodes no HEIC: the view says so and shows the result at its own shape, fitted.
    expect(page.locator("#side-before")).to_contain_text("HEIC · 320×240 (this browser cannot show it)")
    page.get_by_role("button", name="Fit").click()
    shown = page.locator("#compare-after").bounding_box()
    assert abs(shown["width"] / shown["height"] - 320 / 240) < 0.02, shown
    assert int(page.locator("#zoom-value").inner_text().rstrip("%")) <= 400
