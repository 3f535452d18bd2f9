"""The HTML report, rendered for real in headless Chromium: every chart drawn, the legend
outside the plot, dates on the time axis, values with thousands separators and no
"1e7" offset, and the figures shown equal to what the database holds."""

from __future__ import annotations

import os
import re
import shutil
import struct
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from recorder.cli import cli
from recorder.store.database import Database
from tests import year
from tests.conftest import fresh_database, open_db
from tests.helpers import query
from tests.history import T1, T2, T3, record

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
# What every chart shows, read from the page: its size, how much is drawn, the boxes of
# the plot and of the legend, and the texts of the ticks.
CHARTS = """() => [...document.querySelectorAll('figure svg')].map(svg => {
    const box = element => {
        if (!element) return null;
        const r = element.getBoundingClientRect();
        return {left: r.left, right: r.right, top: r.top, bottom: r.bottom};
    };
    const texts = selector => [...svg.querySelectorAll(selector)].map(t => t.textContent);
    return {
        id: svg.closest('figure').id,
        width: svg.getBoundingClientRect().width,
        height: svg.getBoundingClientRect().height,
        paths: svg.querySelectorAll('path').length,
        plot: box(svg.querySelector('g[id^="axes"] > g[id^="patch"]')),
        legend: box(svg.querySelector('g[id^="legend"]')),
        xticks: texts('g[id^="xtick"] text'),
        yticks: texts('g[id^="ytick"] text'),
        texts: texts('text'),
    };
})"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
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


def export_html(url: str, path: Path, *args: str) -> None:
    result = CliRunner().invoke(
        cli,
        ["export", "--format", "html", *args, "-o", str(path)],
        env={"RECORDER_DATABASE_URL": url},
    )
    assert result.exit_code == 0, result.output


def open_page(browser: Any, path: Path) -> tuple[Any, list[str]]:
    """The report in a new page, with the network blocked (a self-contained report needs
    none); also the addresses it tried to fetch."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    requests: list[str] = []
    page.route(
        "**/*",
        lambda route: (
            requests.append(route.request.url),
            route.continue_() if route.request.url.startswith("file:") else route.abort(),
        ),
    )
    page.goto(path.as_uri())
    return page, [u for u in requests if not u.startswith("file:")]


def money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,}"


def overlaps(a: dict[str, float], b: dict[str, float]) -> bool:
    return not (
        a["right"] <= b["left"]
        or b["right"] <= a["left"]
        or a["bottom"] <= b["top"]
        or b["bottom"] <= a["top"]
    )


def check_charts(charts: list[dict[str, Any]]) -> None:
    """What every chart must be: drawn, legend beside the data, dates, readable values."""
    for chart in charts:
        assert chart["width"] > 300 and chart["height"] > 100, chart["id"]
        assert chart["paths"] > 10, chart["id"]  # axes, ticks, and the plotted data
        offsets = [t for t in chart["texts"] if re.search(r"1e\d|\u00d710|\de[+-]?\d", t)]
        assert offsets == [], chart["id"]
        if chart["legend"] is not None:
            assert not overlaps(chart["legend"], chart["plot"]), chart["id"]
        if chart["id"] == "allocation":
            continue
        assert chart["xticks"] and all(re.fullmatch(r"\d{4}-\d\d-\d\d", t) for t in chart["xticks"])
        assert chart["yticks"] and all(re.fullmatch(r"[\d,]+(\.\d\d)?", t) for t in chart["yticks"])


def test_the_report_shows_what_the_database_holds(
    browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with fresh_database("sqlite", tmp_path) as url:
        record(url)
        path = tmp_path / "report.html"
        export_html(url, path)
        db = Database(url)
        totals = {
            (name, db.dialect.time_from_storage(taken_at)): Decimal(total)
            for name, taken_at, total in query(
                db,
                "SELECT a.name, s.taken_at, s.total_value_usdt FROM snapshots s "
                "JOIN accounts a ON a.id = s.account_id",
            )
        }
        db.close()
    page, requests = open_page(browser, path)
    assert requests == []
    cards = dict(
        page.evaluate(
            "() => [...document.querySelectorAll('.cards')][0].querySelectorAll('.card')"
            ".values().map(c => [c.firstChild.textContent, c.querySelector('b').textContent])"
            ".toArray()"
        )
    )
    # Both accounts, each at its last known state: main from its first snapshot, savings
    # (first recorded at T2) at its first snapshot too; at the end, savings is carried.
    opening = totals[("main", T1)] + totals[("savings", T2)]
    closing = totals[("main", T3)] + totals[("savings", T2)]
    assert cards["Value at the start"] == f"{money(opening)} USDT"
    assert cards["Value at the end"] == f"{money(closing)} USDT"
    assert opening > 1000  # what an account of only `main` would have missed

    statement = page.evaluate(
        "() => [...document.querySelectorAll('#statement tbody tr')]"
        ".map(r => [...r.querySelectorAll('td')].map(td => td.textContent))"
    )
    rows = {(r[0], r[1]): r for r in statement}
    assert rows[("all accounts", "total")][3] == money(opening)
    assert rows[("all accounts", "total")][8] == money(closing)
    assert rows[("main", "USDT")][2] == "257.51830114" and rows[("main", "USDT")][7] == "300"
    assert rows[("main", "XYZ")][3] == "unpriced"
    assert rows[("savings", "ETH")][8] == money(Decimal("2.5") * Decimal("3100.55"))

    sections = page.evaluate(
        "() => [...document.querySelectorAll('section.account h2')].map(h => h.textContent)"
    )
    assert sections == ["Account main", "Account savings"]
    charts = page.evaluate(CHARTS)
    assert [c["id"] for c in charts] == [
        "total-value",
        "holdings",
        "allocation",
        "account-1-holdings",
        "account-2-holdings",
    ]
    check_charts(charts)
    screenshot = page.screenshot(full_page=True)
    (tmp_path / "report.png").write_bytes(screenshot)
    assert non_blank(screenshot)
    page.close()


def test_large_values_are_written_out_without_an_offset(browser: Any, tmp_path: Path) -> None:
    with fresh_database("sqlite", tmp_path) as url:
        db = open_db(url)
        end = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
        options = {"days": 20, "currencies": 6, "interval": 3600, "value": 11_500_000}
        year.make_history().generate(db, accounts=2, end=end, echo=False, **options)
        db.close()
        path = tmp_path / "report.html"
        export_html(url, path, "--every", "day")
    page, _ = open_page(browser, path)
    charts = page.evaluate(CHARTS)
    check_charts(charts)
    top = charts[0]["yticks"][-1]
    assert re.fullmatch(r"\d{2},\d{3},\d{3}", top), top  # the total, about 23 million
    start = page.evaluate("() => document.querySelector('.card b').textContent")
    assert re.fullmatch(r"2\d,\d{3},\d{3}\.\d\d USDT", start), start
    page.close()
