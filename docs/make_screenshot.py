"""Regenerate docs/report.png: a demo history, its HTML report, rendered by Chromium.

python docs/make_screenshot.py      (needs the test extra and Debian's chromium)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        database = Path(folder) / "demo.db"
        report = Path(folder) / "report.html"
        run = [sys.executable, "-m", "recorder"]
        subprocess.run(
            [*run, "--log-level", "WARNING", "demo", "--polls", "14", "--database", str(database)],
            check=True,
        )
        env_url = f"sqlite:///{database}"
        subprocess.run(
            [*run, "export", "--format", "html", "-o", str(report)],
            check=True,
            env={"RECORDER_DATABASE_URL": env_url, "PATH": ""},
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
