"""Regenerate docs/report.png: a synthetic history of two accounts over three months (see
benchmarks/make_history.py), its HTML report, rendered by Chromium.

python docs/make_screenshot.py      (needs the test extra and Debian's chromium)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        database = Path(folder) / "history.db"
        report = Path(folder) / "report.html"
        url = f"sqlite:///{database}"
        subprocess.run(
            [
                sys.executable,
                str(HERE.parent / "benchmarks" / "make_history.py"),
                *("--database", url, "--accounts", "2", "--days", "90", "--currencies", "8"),
                *("--interval", "3600", "--outages", "1", "--seed", "3"),
            ],
            check=True,
        )
        subprocess.run(
            [sys.executable, "-m", "recorder", "export", "--format", "html", "-o", str(report)],
            check=True,
            env={**os.environ, "RECORDER_DATABASE_URL": url},
        )
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page(viewport={"width": 1100, "height": 1000})
            page.goto(report.as_uri())
            page.screenshot(path=str(HERE / "report.png"), full_page=False)
            browser.close()
    print(f"wrote {HERE / 'report.png'}")


if __name__ == "__main__":
    main()
