"""Driving the web page in Debian's Chromium with Playwright: launching it, opening the page,
dropping files as a user does, reading rows, jobs and archives, scanning with axe-core, screenshots."""

from __future__ import annotations

import base64
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.stack import Stack

ROOT = Path(__file__).resolve().parents[1]
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
SHOTS = ROOT / "test-output" / "page"
#: axe-core from npm, installed by scripts/test (scripts/_setup.sh, setup_axe).
AXE = ROOT / ".axe" / "node_modules" / "axe-core" / "axe.min.js"
TIMEOUT_MS = 20_000
#: Files a user drops on the page: one that is no image, and names the server changes (a
#: decomposed accent, as macOS stores names, and quotes).
NOT_AN_IMAGE = b"shopping list: eggs, milk\n"
ACCENTED = "cafe\u0301.png"
QUOTED = 'say "cheese".jpg'
DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
File = tuple[str, str, bytes]


def chromium() -> Iterator[Any]:
    """Debian's Chromium, launched headless for one module's tests (skipped when not installed)."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (scripts/test installs it as root)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def open_page(browser: Any, stack: Stack, **context: Any) -> Any:
    # bypass_csp: the page allows no inline script, and axe-core is added as one.
    options = {
        "base_url": stack.url,
        "accept_downloads": True,
        "viewport": DESKTOP,
        "bypass_csp": True,
        **context,
    }
    opened = browser.new_context(**options).new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    return opened


def shot(page: Any, name: str, full_page: bool = True) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


def drop_files(page: Any, files: list[File], target: str = "body") -> None:
    """Drop files as a user's drag and drop does (a DataTransfer of Files), on any element."""
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
    page.dispatch_event(target, "drop", {"dataTransfer": transfer})


def drop_copies(page: Any, count: int, data: bytes, media_type: str) -> None:
    """Drop `count` copies of one file under distinct names, built in the page (a big drop)."""
    transfer = page.evaluate_handle(
        """([count, data, type]) => {
            const raw = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            for (let i = 0; i < count; i++) transfer.items.add(new File([raw], `img-${i}.png`, { type }));
            return transfer;
        }""",
        [count, base64.b64encode(data).decode(), media_type],
    )
    page.dispatch_event("main", "drop", {"dataTransfer": transfer})


def pinch(page: Any, x: float, y: float) -> None:
    """Two fingers moving apart around (x, y), as Chromium receives them from a touch screen."""
    session = page.context.new_cdp_session(page)

    def touch(kind: str, spread: float) -> None:
        points = [{"x": x - spread, "y": y, "id": 1}, {"x": x + spread, "y": y, "id": 2}]
        session.send(
            "Input.dispatchTouchEvent", {"type": kind, "touchPoints": [] if kind == "touchEnd" else points}
        )

    touch("touchStart", 20)
    for spread in range(30, 110, 10):
        touch("touchMove", spread)
    touch("touchEnd", 0)
    session.detach()


def rows(page: Any) -> Any:
    """The rows of the latest drop, in drop order."""
    return page.locator(".batch").first.locator(".row")


def scan(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    if not AXE.exists():
        pytest.skip("axe-core is not installed in .axe/ (scripts/test installs it with npm)")
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("async () => (await axe.run(document)).violations")
    return [
        {"id": v["id"], "nodes": [n["target"] for n in v["nodes"]][:3]}
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


def zip_entries(page: Any, drop: Any, path: Path, button: str = "Download all (ZIP)") -> list[str]:
    """Download a drop's archive with its button, as the user does; the entries' names, in order."""
    with page.expect_download() as download:
        drop.get_by_role("button", name=button).click()
    download.value.save_as(path)
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        return archive.namelist()


def api_job(stack: Stack, job_id: str) -> dict[str, Any]:
    return httpx.get(f"{stack.url}/v1/jobs/{job_id}").json()


def record_figure(name: str, value: float) -> None:
    """Keep a figure for the notes in test-output/page/figures.json (timings on a busy machine are rough)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / "figures.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**known, name: round(value, 2)}, indent=1))
