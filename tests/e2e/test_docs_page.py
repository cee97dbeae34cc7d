"""/docs in a real browser: the contract reads as a page (code spans, links within it), loads
nothing from elsewhere and runs no script; its screenshot is test-output/docs/docs.png."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.redis_servers import DatabasePool
from tests.stack import Stack, running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.heavy]

sync_api = pytest.importorskip("playwright.sync_api")

SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "docs"


@pytest.fixture(scope="module")
def stack(redis_databases: DatabasePool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from running_stack(redis_databases, tmp_path_factory.mktemp("docs"))


def test_docs_page_reads_as_a_page(browser: sync_api.Browser, stack: Stack) -> None:
    context = browser.new_context(base_url=stack.url, viewport={"width": 1100, "height": 900})
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto("/docs")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "docs.png"), full_page=True)
    text = page.inner_text("body")
    assert "`" not in text
    assert page.locator("code", has_text="callback_url").count() >= 2
    assert page.locator("h2", has_text="Original app").count() == 1
    # A $ref is a link to the schema's section on this page, and it leads there.
    page.locator('a[href="#schema-Job"]').first.click()
    assert page.evaluate("location.hash") == "#schema-Job"
    assert page.locator("script").count() == 0
    # An error body's fields are spelt out, not left as "object".
    error_rows = page.locator("#schema-Error td code").all_inner_texts()
    assert error_rows == ["error", "error.code", "error.message"], error_rows
    assert page.locator("#schema-Job td code", has_text="links.result").count() == 1
    # Errors read as when they happen, in the order of their status, 401 included.
    assert "Raised when" not in text
    upload = page.locator("#create_job_post tr td:first-child b").all_inner_texts()
    assert upload == sorted(upload) and "401" in upload, upload
    meanings = page.locator("#create_job_post tr", has_text="bad_option").inner_text()
    assert "bad_option: an option or query parameter has an invalid value." in meanings, meanings
    assert requested == [f"{stack.url}/docs"]
    # The page's one link out of itself is the document it shows.
    assert httpx.get(f"{stack.url}/openapi.json").json()["openapi"] == "3.1.0"
    context.close()
