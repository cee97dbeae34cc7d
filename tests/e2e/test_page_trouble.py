"""The page in a real browser when something goes wrong: a lost or unreachable server, an API key
it needs, files that failed (on their options, tried again) and what a drop's archive holds then."""

from __future__ import annotations

import os
import signal
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests import images
from tests.browser import (
    ACCENTED,
    NOT_AN_IMAGE,
    QUOTED,
    api_job,
    drop_files,
    open_page,
    rows,
    shot,
    zip_entries,
)
from tests.redis_servers import DatabasePool
from tests.stack import Stack, running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.heavy]

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect


#: The saved drops as the page before parts saved them: each row's part left out.
FORGET_PARTS = """() => {
    const drops = JSON.parse(localStorage.getItem("imgpress.results"));
    for (const drop of drops) for (const row of drop.rows) delete row.part;
    localStorage.setItem("imgpress.results", JSON.stringify(drops));
}"""


def noisy_photo() -> bytes:
    """A photo of noise: no JPEG of it fits in 5 kB, while every other test image does."""
    return images.encode(Image.effect_noise((400, 300), 80).convert("RGB"), "JPEG", quality=95)


@pytest.fixture(scope="module")
def stack(redis_databases: DatabasePool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from running_stack(redis_databases, tmp_path_factory.mktemp("page-trouble"))


def test_a_lost_server_is_said_and_work_resumes(page: Any, stack: Stack) -> None:
    page.goto("/")
    worker = stack.processes["worker"]
    every_row = page.locator(".row")
    os.killpg(worker.pid, signal.SIGSTOP)
    try:
        # Five drops: three followed by streams, two read now and then (a browser's six connections).
        for n in range(5):
            drop_files(page, [(f"wait-{n}.jpg", "image/jpeg", images.jpeg())])
        for position in range(5):
            expect(every_row.nth(position)).to_have_attribute("data-state", "queued")
        restart_api_while(page, stack, lambda: None)

        # A drop while the server is away waits for it, and so does a reload.
        def away() -> None:
            drop_files(page, [("later.jpg", "image/jpeg", images.jpeg())])
            expect(rows(page).first.locator(".status")).to_contain_text("Waiting for the server")

        restart_api_while(page, stack, away)
    finally:
        os.killpg(worker.pid, signal.SIGCONT)
    expect(page.locator("#connection")).to_be_hidden(timeout=30_000)
    # A server that hangs without closing anything (stopped, not killed) is said within 5 s too.
    os.killpg(worker.pid, signal.SIGSTOP)
    api = stack.processes["api"]
    try:
        drop_files(page, [("hung.jpg", "image/jpeg", images.jpeg())])
        expect(rows(page).first).to_have_attribute("data-state", "queued")
        os.kill(api.pid, signal.SIGSTOP)
        hung_at = time.monotonic()
        expect(page.locator("#connection")).to_contain_text("Lost contact with the server", timeout=5000)
        assert time.monotonic() - hung_at < 5
    finally:
        os.kill(api.pid, signal.SIGCONT)
        os.killpg(worker.pid, signal.SIGCONT)
    expect(page.locator("#connection")).to_be_hidden(timeout=30_000)
    expect(every_row).to_have_count(7)
    for position in range(7):
        expect(every_row.nth(position)).to_have_attribute("data-state", "finished", timeout=30_000)
    ids = sorted(every_row.nth(n).get_attribute("data-job") for n in range(7))

    # A reload while the API does not answer (Redis away, say): results wait, never forgotten.
    page.route("**/v1/batches/*", lambda route: route.abort())
    page.reload()
    expect(page.locator("#connection")).to_contain_text("Lost contact with the server")
    page.unroute("**/v1/batches/*")
    expect(every_row).to_have_count(7)
    assert sorted(every_row.nth(n).get_attribute("data-job") for n in range(7)) == ids
    expect(page.locator("#connection")).to_be_hidden()


def restart_api_while(page: Any, stack: Stack, meanwhile: Callable[[], None]) -> None:
    """Kill the API, check the page says so within 5 s, run `meanwhile`, start the API again."""
    stack.processes["api"].kill()
    stack.processes["api"].wait()
    lost_at = time.monotonic()
    expect(page.locator("#connection")).to_contain_text("Lost contact with the server", timeout=5000)
    assert time.monotonic() - lost_at < 5
    shot(page, "05-lost")
    meanwhile()
    stack.start_api()
    stack.wait_ready_api()


def test_an_unreachable_api_is_retried(page: Any) -> None:
    page.goto("/")
    page.route("**/v1/batches", lambda route: route.abort())
    drop_files(page, [("photo.jpg", "image/jpeg", images.jpeg())])
    expect(page.locator("#connection")).to_contain_text("Lost contact with the server")
    expect(rows(page).first.locator(".status")).to_contain_text("Waiting for the server")
    page.unroute("**/v1/batches")
    expect(rows(page).first).to_have_attribute("data-state", "finished")
    expect(page.locator("#connection")).to_be_hidden()


def test_the_key_is_asked_for_and_used_as_typed(
    browser: Any, redis_databases: DatabasePool, tmp_path: Path
) -> None:
    key, other = "page-test-key-0123456789", "page-test-key-another-one"
    for keyed in running_stack(redis_databases, tmp_path, api_keys=(key, other)):
        page = open_page(browser, keyed)
        try:
            page.goto("/")
            expect(page.locator("#limits")).to_contain_text("Up to 52.4 MB")  # no key needed for them
            drop_files(page, [("one.jpg", "image/jpeg", images.jpeg())])
            expect(rows(page).first.locator(".status")).to_contain_text("needs an API key")
            expect(page.locator("#api-key")).to_be_focused()
            page.keyboard.type("wrong-key-wrong-key")
            drop_files(page, [("two.jpg", "image/jpeg", images.jpeg())])
            expect(rows(page).first.locator(".status")).to_contain_text("refused this API key")
            # The key counts from the keystroke: the field never lost focus.
            page.locator("#api-key").fill(key)
            expect(page.locator("#api-key")).to_be_focused()
            drop_files(page, [("three.jpg", "image/jpeg", images.jpeg())])
            expect(rows(page).first).to_have_attribute("data-state", "finished")
            # Reloaded with another key, the results it cannot read are kept, not shown as gone.
            page.locator("#api-key").fill(other)
            page.reload()
            expect(page.locator("#alert")).to_contain_text("need the API key they were sent with")
            expect(page.get_by_text("Gone:")).to_have_count(0)
            page.locator("#key-box summary").click()
            page.locator("#api-key").fill(key)
            page.reload()
            expect(rows(page).filter(has_text="three.jpg")).to_have_attribute("data-state", "finished")
        finally:
            page.context.close()


def test_a_file_that_failed_on_its_options_is_tried_again_with_new_ones(
    page: Any, stack: Stack, tmp_path: Path
) -> None:
    page.goto("/")
    page.locator("#quality-auto").uncheck()
    page.locator("#quality").fill("90")
    page.locator("#max-kb").fill("1")  # no JPEG of this photo fits in 1 kB
    drop_files(page, [("noisy photo.jpg", "image/jpeg", noisy_photo())])
    row = rows(page).first
    expect(row).to_have_attribute("data-state", "failed")
    zips = page.locator(".batch").first.locator(".zips button")
    expect(zips).to_have_count(0)  # nothing to download yet
    first = api_job(stack, row.get_attribute("data-job"))
    assert first["error"]["code"] == "cannot_fit"
    again = row.get_by_role("button", name="Try noisy photo.jpg again with the options above")
    expect(again).to_be_visible()

    page.locator("#max-kb").fill("")
    again.click()
    expect(row).to_have_attribute("data-state", "finished")
    second = api_job(stack, row.get_attribute("data-job"))
    assert second["id"] != first["id"] and second["options"]["max_bytes"] is None
    # The row stays where it was, and its drop now offers an archive holding the new result.
    assert rows(page).count() == 1
    expect(zips).to_have_text(["Download all (ZIP)"])
    assert zip_entries(page, page.locator(".batch").first, tmp_path / "all.zip") == ["noisy photo.jpg"]

    # A file that is itself at fault gets no such button: no option would change its answer.
    drop_files(page, [("notes.jpg", "image/jpeg", NOT_AN_IMAGE)])
    refused = rows(page).first
    expect(refused).to_have_attribute("data-state", "failed")
    expect(refused.get_by_role("button")).to_have_count(0)


def test_a_drop_offers_its_archive_once_one_of_its_files_has_finished(page: Any, stack: Stack) -> None:
    page.goto("/")
    expect(page.locator("#limits")).to_contain_text("Up to")
    page.locator("#max-kb").fill("5")
    # Refused here, refused by the server, failed by the worker: nothing to download.
    drop_files(
        page,
        [
            ("notes.txt", "text/plain", NOT_AN_IMAGE),
            ("broken.jpg", "image/jpeg", NOT_AN_IMAGE),
            ("noisy.jpg", "image/jpeg", noisy_photo()),
        ],
    )
    for position in range(3):
        expect(rows(page).nth(position)).to_have_attribute("data-state", "failed")
    expect(page.locator(".zips button")).to_have_count(0)
    shot(page, "07-all-failed")

    # Nothing finished yet: no archive to offer either, until the worker gets to it.
    worker = stack.processes["worker"]
    os.killpg(worker.pid, signal.SIGSTOP)
    try:
        drop_files(page, [(QUOTED, "image/jpeg", images.jpeg())])
        expect(rows(page).first).to_have_attribute("data-state", "queued")
        expect(page.locator(".zips button")).to_have_count(0)
    finally:
        os.killpg(worker.pid, signal.SIGCONT)
    expect(rows(page).first).to_have_attribute("data-state", "finished")
    expect(page.locator(".zips button")).to_have_text(["Download all (ZIP)"])


def test_a_drop_s_archive_holds_what_its_rows_show_files_tried_again_included(
    page: Any, stack: Stack, tmp_path: Path
) -> None:
    page.goto("/")
    expect(page.locator("#limits")).to_contain_text("Up to")
    page.locator("#max-kb").fill("5")
    drop_files(
        page,
        [
            (ACCENTED, "image/png", images.png_with_alpha()),
            ("noisy one.jpg", "image/jpeg", noisy_photo()),
            ("notes.txt", "text/plain", NOT_AN_IMAGE),
            ("noisy two.jpg", "image/jpeg", noisy_photo()),
            (QUOTED, "image/jpeg", images.jpeg()),
        ],
    )
    drop = page.locator(".batch").first
    each = drop.locator(".row")
    for position, state in enumerate(["finished", "failed", "failed", "failed", "finished"]):
        expect(each.nth(position)).to_have_attribute("data-state", state)
    batch = api_job(stack, each.nth(0).get_attribute("data-job"))["batch_id"]

    # Sent again as it was, a file fails again: the archive leaves it out.
    failed_once = each.nth(1).get_attribute("data-job")
    each.nth(1).get_by_role("button", name="Try noisy one.jpg again with the options above").click()
    expect(each.nth(1)).not_to_have_attribute("data-job", failed_once)
    expect(each.nth(1)).to_have_attribute("data-state", "failed")
    # Without the size limit the other one finishes, as a job of another batch.
    page.locator("#max-kb").fill("")
    each.nth(3).get_by_role("button", name="Try noisy two.jpg again with the options above").click()
    expect(each.nth(3)).to_have_attribute("data-state", "finished")
    retried = api_job(stack, each.nth(3).get_attribute("data-job"))
    assert retried["batch_id"] != batch
    shot(page, "07-tried-again")

    expected = ["café.png", "noisy two.jpg", 'say "cheese".jpg']
    # As shown, after a reload, and after a reload of what an earlier page saved (no parts).
    for attempt in ("shown", "reloaded", "saved-before"):
        if attempt == "saved-before":
            page.evaluate(FORGET_PARTS)
        if attempt != "shown":
            page.reload()
            expect(each.nth(3)).to_have_attribute("data-state", "finished")
        expect(drop.locator(".zips button")).to_have_text(["Download all (ZIP)"])
        path = tmp_path / f"{attempt}.zip"
        assert zip_entries(page, drop, path) == expected  # in the rows' order, the accent composed
        with zipfile.ZipFile(path) as archive:
            result = httpx.get(f"{stack.url}/v1/jobs/{retried['id']}/result").content
            assert archive.read("noisy two.jpg") == result
