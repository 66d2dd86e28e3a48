"""Refresh the README screenshots from the real app: ``python tools/screenshots.py [COHORT_CSV]``.

Starts ``streamlit run app.py`` on a free localhost port with the shipped
weights, drives Debian's Chromium with Playwright, and writes
``docs/screenshots/case.png`` (a demo case run through the cascade) and
``docs/screenshots/cohort.png`` (a cohort evaluated on the Cohort page).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
CHROMIUM = os.environ.get("SOFTMASS_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _idle(page) -> None:
    page.wait_for_timeout(500)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=900_000)


def main(cohort_csv: str) -> int:
    from playwright.sync_api import expect, sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="softmass-shots-"))
    port = _port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, SOFTMASS_CACHE=str(tmp / "cache"), SOFTMASS_READER_DB=str(tmp / "reads.sqlite"))
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not _healthy(url):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("streamlit did not start")
            time.sleep(0.5)
        expect.set_options(timeout=900_000)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 3400})
            page.goto(url)
            run = page.get_by_role("button", name="Run the DLM cascade")
            expect(run).to_be_visible()
            _idle(page)
            run.click()
            expect(page.get_by_text("Diagnosis:").first).to_be_visible()
            _idle(page)
            page.screenshot(path=str(OUT / "case.png"), full_page=True)
            page.get_by_role("link", name="Cohort metrics").click()
            _idle(page)
            page.get_by_text("Cohort folder or CSV on the server").click()
            box = page.get_by_role("textbox", name="Path of a cohort CSV, or of a folder holding cohort.csv")
            box.fill(cohort_csv)
            box.press("Enter")
            _idle(page)
            page.get_by_role("button", name="Evaluate", exact=True).click()
            expect(page.get_by_text("DLM-1: benign vs malignant (as the paper's Table 2)")).to_be_visible()
            _idle(page)
            page.wait_for_timeout(2000)
            page.screenshot(path=str(OUT / "cohort.png"), full_page=True)
            browser.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
    print(f"wrote {OUT / 'case.png'} and {OUT / 'cohort.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "data" / "phantom" / "cohort.csv")))
