"""The HTML report, rendered for real in headless Chromium: both charts must be drawn."""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from recorder.cli import cli
from tests.conftest import fresh_database
from tests.history import record

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if CHROMIUM is None:
        if os.environ.get("RECORDER_TEST_REQUIRE_CHROMIUM"):
            pytest.fail("Chromium is required here (RECORDER_TEST_REQUIRE_CHROMIUM is set).")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


def non_blank(png: bytes) -> bool:
    """True when the screenshot holds more than one colour (it shows something)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = [], 8
    while offset < len(png):
        length, kind = struct.unpack(">I4s", png[offset : offset + 8])
        if kind == b"IDAT":
            chunks.append(png[offset + 8 : offset + 8 + length])
        offset += 12 + length
    pixels = zlib.decompress(b"".join(chunks))
    return len(set(pixels[1000:200000:7])) > 8


def test_the_report_renders_both_charts_in_chromium(
    browser: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with fresh_database("sqlite", tmp_path) as url:
        record(url)
        path = tmp_path / "report.html"
        result = CliRunner().invoke(
            cli, ["export", "--format", "html", "-o", str(path)], env={"RECORDER_DATABASE_URL": url}
        )
        assert result.exit_code == 0, result.output
    page = browser.new_page(viewport={"width": 1200, "height": 900})  # type: ignore[attr-defined]
    # Block the network: a self-contained report needs none.
    requests: list[str] = []
    page.route(
        "**/*",
        lambda route: (
            requests.append(route.request.url),
            route.continue_() if route.request.url.startswith("file:") else route.abort(),
        ),
    )
    page.goto(path.as_uri())
    charts = page.evaluate(
        """() => [...document.querySelectorAll('figure svg')].map(svg => {
               const box = svg.getBoundingClientRect();
               return {width: box.width, height: box.height,
                       lines: svg.querySelectorAll('path').length,
                       title: svg.closest('figure').id};
           })"""
    )
    assert [c["title"] for c in charts] == ["total-value", "holdings"]
    for chart in charts:
        assert chart["width"] > 300 and chart["height"] > 100
        assert chart["lines"] > 10  # axes, ticks, and the plotted data
    assert [u for u in requests if not u.startswith("file:")] == []
    screenshot = page.screenshot(full_page=True)
    (tmp_path / "report.png").write_bytes(screenshot)
    assert non_blank(screenshot)
    page.close()
