"""The page after a reload, in a real browser against the real processes: every drop comes back as
it was (rows, reasons, thumbnails, sizes, archives) while the server keeps its jobs, and a job the
server deleted or let expire says it is gone."""

from __future__ import annotations

import os
import signal
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests import images
from tests.browser import ACCENTED, NOT_AN_IMAGE, QUOTED, drop_files, open_page, rows, scan, shot, zip_entries
from tests.redis_servers import DatabasePool
from tests.stack import Stack, eventually, running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.heavy]

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

GONE = "Gone: the server no longer keeps this file."


@pytest.fixture(scope="module")
def stack(redis_databases: DatabasePool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from running_stack(redis_databases, tmp_path_factory.mktemp("page-reload"))


def shown(page: Any) -> list[dict[str, Any]]:
    """Every drop as the page shows it, newest first: title, archive buttons, and each row's state,
    job, name, status, sizes, warnings and buttons."""
    return page.evaluate(
        """() => [...document.querySelectorAll(".batch")].map((drop) => ({
            title: drop.querySelector("h3").textContent,
            zips: [...drop.querySelectorAll(".zips button")].map((b) => b.textContent),
            rows: [...drop.querySelectorAll(".row")].map((row) => [
                row.dataset.state, row.dataset.job || null,
                ...[".name", ".status", ".sizes", ".warn"].map((part) => row.querySelector(part).textContent),
                [...row.querySelectorAll(".actions button")].map((b) => b.textContent),
            ]),
        }))"""
    )


def wait_for_thumbnails(page: Any) -> None:
    """Until every finished row's thumbnail is drawn (after a reload they load as the user scrolls)."""
    page.mouse.wheel(0, 5000)
    page.wait_for_function(
        """() => [...document.querySelectorAll('.row[data-state="finished"] .thumb')]
            .every((thumb) => thumb.complete && thumb.naturalWidth > 0)"""
    )


#: Whether each row shows a thumbnail, in page order.
THUMBNAILS = """[...document.querySelectorAll(".row .thumb")]
    .map((thumb) => thumb.hasAttribute("src") && thumb.complete && thumb.naturalWidth > 0)"""


def zip_names(page: Any, drop: Any, tmp_path: Path) -> list[str]:
    return sorted(zip_entries(page, drop, tmp_path / "all.zip"))


def passing_first(count: int) -> Callable[[Any], None]:
    """A route handler that lets the first `count` requests through and makes the others fail."""
    seen = 0

    def handle(route: Any) -> None:
        nonlocal seen
        seen += 1
        if seen <= count:
            route.continue_()
        else:
            route.abort()

    return handle


def test_a_reload_brings_back_every_drop_as_it_was(page: Any, stack: Stack, tmp_path: Path) -> None:
    page.goto("/")
    expect(page.locator("#limits")).to_contain_text("Up to")
    drop_files(
        page,
        [
            (ACCENTED, "image/png", images.png_with_alpha()),
            (QUOTED, "image/jpeg", images.jpeg()),
            ("notes.txt", "text/plain", NOT_AN_IMAGE),
            ("empty.png", "image/png", b""),
            ("broken.jpg", "image/jpeg", NOT_AN_IMAGE),
            ("rotated.jpg", "image/jpeg", images.rotated_jpeg()),
        ],
    )
    first = page.locator(".batch").first
    for position in (0, 1, 5):
        expect(first.locator(".row").nth(position)).to_have_attribute("data-state", "finished")
    expect(first.locator(".row").nth(4)).to_have_attribute("data-state", "failed")

    # A file that fails on its options (no JPEG of it fits in 1 kB): the server's reason.
    page.locator("#quality-auto").uncheck()
    page.locator("#quality").fill("90")
    page.locator("#max-kb").fill("1")
    noise = images.encode(Image.effect_noise((400, 300), 80).convert("RGB"), "JPEG", quality=95)
    drop_files(page, [("noisy photo.jpg", "image/jpeg", noise)])
    expect(rows(page).first).to_have_attribute("data-state", "failed")
    page.locator("#max-kb").fill("")

    # A job still waiting when the page reloads, and finishing after.
    worker = stack.processes["worker"]
    os.killpg(worker.pid, signal.SIGSTOP)
    try:
        drop_files(page, [("later.jpg", "image/jpeg", images.jpeg())])
        expect(rows(page).first).to_have_attribute("data-state", "queued")
        totals = "3 of 8 done · 4 failed · 1 in progress · 15.9 kB → 5.1 kB (saved 68%)"
        expect(page.locator("#totals")).to_have_text(totals)
        wait_for_thumbnails(page)
        before = shown(page)
        drawn = page.evaluate(THUMBNAILS)
        assert drawn == [True, True, True, True, False, False, False, True]

        # A failed job keeps no copy of its upload: after a reload its row has no thumbnail.
        drawn[1] = False
        page.reload()
        expect(page.locator(".row")).to_have_count(8)
        expect(page.locator("#totals")).to_have_text(totals)
        page.mouse.wheel(0, 5000)
        same = f"(drawn) => JSON.stringify({THUMBNAILS}) === JSON.stringify(drawn)"
        page.wait_for_function(same, arg=drawn)
        after = shown(page)
        # The page is as it was, but that a file that failed on its options can no longer be
        # sent again: the page had the file, not the server.
        assert before[1]["rows"][0][-1] == ["Try again"]
        before[1]["rows"][0][-1] = []
        assert after == before
        assert scan(page) == []
        shot(page, "09-reloaded")
    finally:
        os.killpg(worker.pid, signal.SIGCONT)
    later = rows(page).first
    expect(later).to_have_attribute("data-state", "finished")
    expect(later.locator(".sizes")).to_contain_text("JPEG q")
    wait_for_thumbnails(page)

    # The first drop's archive and files download as before the reload, under the names given.
    first = page.locator(".batch").last
    assert zip_names(page, first, tmp_path) == ["café.png", "rotated.jpg", 'say "cheese".jpg']
    with page.expect_download() as one:
        first.get_by_role("button", name="Download café.png").click()
    assert unicodedata.normalize("NFC", one.value.suggested_filename) == "café.png"
    first.get_by_role("button", name=f"Compare {QUOTED}").click()
    page.wait_for_function("document.getElementById('compare-after').naturalWidth > 0")
    page.locator("#compare-close").click()

    # A job deleted on the server says so after the next reload; the archive holds the others.
    accented = first.locator(".row").nth(0).get_attribute("data-job")
    assert httpx.delete(f"{stack.url}/v1/jobs/{accented}").status_code == 204
    # The last drop's batch, deleted whole: its one row is gone too.
    later_batch = httpx.get(f"{stack.url}/v1/jobs/{later.get_attribute('data-job')}").json()["batch_id"]
    assert httpx.delete(f"{stack.url}/v1/batches/{later_batch}").status_code == 204
    page.reload()
    first = page.locator(".batch").last
    gone = first.locator(".row").nth(0)
    expect(gone).to_have_attribute("data-state", "gone")
    expect(gone.locator(".status")).to_have_text(GONE)
    expect(gone.locator(".name")).to_have_text(ACCENTED)
    expect(gone.get_by_role("button")).to_have_count(0)
    expect(rows(page).first).to_have_attribute("data-state", "gone")
    expect(page.locator("#totals")).to_contain_text("2 of 8 done · 4 failed · 2 gone")
    wait_for_thumbnails(page)
    shot(page, "09-gone")
    assert zip_names(page, first, tmp_path) == ["rotated.jpg", 'say "cheese".jpg']

    # A drop the server keeps nothing of is shown gone once, then forgotten.
    page.reload()
    expect(page.locator(".batch")).to_have_count(2)
    expect(page.locator(".row")).to_have_count(7)


def test_expired_results_and_files_not_yet_sent_after_a_reload(
    browser: Any, redis_databases: DatabasePool, tmp_path: Path
) -> None:
    # One file per batch, kept 10 s: a drop of three images goes in three parts, soon expired.
    for short in running_stack(redis_databases, tmp_path, retention_seconds=10, max_batch_files=1):
        page = open_page(browser, short)
        try:
            page.goto("/")
            expect(page.locator("#limits")).to_contain_text("kept 10 seconds")
            page.route("**/v1/batches", passing_first(2))
            drop_files(
                page,
                [
                    ("one.jpg", "image/jpeg", images.jpeg()),
                    ("two.jpg", "image/jpeg", images.jpeg()),
                    ("notes.txt", "text/plain", NOT_AN_IMAGE),
                    ("three.jpg", "image/jpeg", images.jpeg()),
                ],
            )
            one, two, three = rows(page).nth(0), rows(page).nth(1), rows(page).nth(3)
            expect(one).to_have_attribute("data-state", "finished")
            expect(two).to_have_attribute("data-state", "finished")
            expect(three.locator(".status")).to_contain_text("Waiting for the server")

            # The third file was never sent: a reload cannot send it (the page no longer has it).
            page.reload()
            expect(one).to_have_attribute("data-state", "finished")
            expect(two).to_have_attribute("data-state", "finished")
            not_sent = "Not sent: the page was reloaded before this file was uploaded."
            expect(three.locator(".status")).to_have_text(not_sent)
            expect(three.get_by_role("button")).to_have_count(0)
            zips = page.locator(".zips button")
            expect(zips).to_have_text(["Download part 1 of 3 (ZIP)", "Download part 2 of 3 (ZIP)"])
            page.unroute("**/v1/batches")

            # Expired while the page is open: a download says the file is gone.
            for row in (one, two):
                job = f"{short.url}/v1/jobs/{row.get_attribute('data-job')}"
                assert eventually(lambda url=job: httpx.get(url).status_code == 410, seconds=30)
            two.get_by_role("button", name="Download two.jpg").click()
            expect(two).to_have_attribute("data-state", "gone")
            expect(two.locator(".status")).to_have_text(GONE)
            expect(page.locator("#alert")).to_be_hidden()

            # After a reload, every expired job says so; the drop keeps what else it said.
            page.reload()
            for row in (one, two):
                expect(row).to_have_attribute("data-state", "gone")
                expect(row.locator(".status")).to_have_text(GONE)
            expect(rows(page).nth(2).locator(".status")).to_have_text(
                "Not sent: this is not an image (text/plain)."
            )
            expect(three.locator(".status")).to_have_text(not_sent)
            expect(zips).to_have_count(0)
            expect(page.locator("#totals")).to_have_text("0 of 4 done · 1 failed · 1 lost · 2 gone")
            expect(page.get_by_role("button", name="Clear all (deletes them on the server)")).to_be_hidden()
            shot(page, "09-expired")
            # The server keeps nothing of the drop any more: it is not shown again.
            page.reload()
            expect(page.locator("#totals")).to_have_text("No files yet.")
        finally:
            page.context.close()


def test_a_drop_made_while_saved_ones_are_read_keeps_them(page: Any, stack: Stack) -> None:
    page.goto("/")
    drop_files(page, [("first.jpg", "image/jpeg", images.jpeg())])
    expect(rows(page).first).to_have_attribute("data-state", "finished")
    saved = '() => JSON.parse(localStorage.getItem("imgpress.results"))'
    batch = page.evaluate(saved)[0]["batches"][0]
    # The server does not answer for the saved drop yet; a new drop is made and saved meanwhile.
    held: list[Any] = []

    def hold(route: Any) -> None:
        held.append(route)

    page.route(f"**/v1/batches/{batch}", hold)
    page.reload()
    for _ in range(200):
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the page did not read the saved drop"
    drop_files(page, [("second.jpg", "image/jpeg", images.jpeg(80))])
    expect(rows(page).filter(has_text="second.jpg")).to_have_attribute("data-state", "finished")
    assert len(page.evaluate(saved)) == 2
    page.unroute(f"**/v1/batches/{batch}", hold)
    page.reload()
    for name in ("second.jpg", "first.jpg"):  # newest drop first
        row = page.locator(".row").filter(has_text=name)
        expect(row).to_have_attribute("data-state", "finished")
    assert [title.strip() for title in page.locator(".batch h3").all_text_contents()] == ["1 file", "1 file"]


def test_results_saved_by_the_previous_page_come_back_with_one_zip(
    page: Any, stack: Stack, tmp_path: Path
) -> None:
    page.goto("/")
    photo = images.encode(images.photo(), "PNG")
    drop_files(page, [(ACCENTED, "image/png", photo), (QUOTED, "image/jpeg", images.jpeg())])
    expect(page.locator('.row[data-state="finished"]')).to_have_count(2)
    # The previous page saved [{id, batch, name}] per row; here as if each was uploaded alone.
    page.evaluate(
        """() => {
            const rows = [...document.querySelectorAll(".row")].map((row) => row.dataset.job);
            localStorage.setItem("imgpress.results", JSON.stringify(
                rows.map((id, index) => ({ id, batch: null, name: `row ${index}` })),
            ));
        }"""
    )
    page.reload()
    expect(page.locator(".batch h3")).to_have_text(["Earlier results"])
    expect(page.locator('.row[data-state="finished"]')).to_have_count(2)
    expect(page.locator(".batch .zips button")).to_have_count(1)
    names = zip_entries(page, page.locator(".batch").first, tmp_path / "earlier.zip")
    assert sorted(names) == sorted(["café.png", QUOTED])
