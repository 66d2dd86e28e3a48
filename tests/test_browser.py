"""End-to-end test in a real browser: `streamlit run app.py` driven by Playwright and Debian's Chromium.

The server runs on a free localhost port with a tiny random weight set and a
fresh cache; the test loads a demo case on the Case page, runs the cascade and
sees the diagnosis and a Grad-CAM heatmap, then evaluates a small simulated
cohort on the Cohort page and sees Table 2 and the ROC chart.  No page may
show a Streamlit exception.

Skipped only when Chromium is missing and the CI variable is not set; in CI
a missing browser is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import make_tiny_weight_set

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("SOFTMASS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
START_TIMEOUT_S = 90
STEP_TIMEOUT_MS = 90_000


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
            return r.status == 200 and r.read().strip() == b"ok"
    except OSError:
        return False


@pytest.fixture(scope="module")
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium not found at {CHROMIUM}; CI must install it (apt-get install chromium).")
        pytest.skip(f"Chromium not found at {CHROMIUM} (install it with: apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="module")
def server(tmp_path_factory, chromium):
    """`streamlit run app.py` on a free port; yields (base URL, folder of a small cohort CSV)."""
    from softmass_core import phantom

    root = tmp_path_factory.mktemp("browser")
    make_tiny_weight_set(root / "weights" / "tiny")
    cohort_csv = phantom.generate_cohorts(root / "cohort", scale=0.05, cohorts=["test_b"])
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(
        os.environ,
        SOFTMASS_WEIGHTS=str(root / "weights"),
        SOFTMASS_CACHE=str(root / "cache"),
        SOFTMASS_READER_DB=str(root / "reads.sqlite"),
        PYTHONUNBUFFERED="1",
    )
    log_path = root / "streamlit.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed below
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)]
    cmd += ["--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not become healthy:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url, cohort_csv, log_path
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        log.close()


def _wait_idle(page) -> None:
    """Wait until the app's script has finished its run."""
    page.wait_for_timeout(300)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=STEP_TIMEOUT_MS)


def _assert_no_exception(page) -> None:
    shown = page.locator('[data-testid="stException"]')
    assert shown.count() == 0, shown.first.inner_text()


def test_case_then_cohort_in_a_real_browser(server):
    from playwright.sync_api import expect, sync_playwright

    url, cohort_csv, log_path = server
    expect.set_options(timeout=STEP_TIMEOUT_MS)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(STEP_TIMEOUT_MS)
            page.goto(url)

            # Case page (the default): a demo case is loaded; run the cascade.
            run = page.get_by_role("button", name="Run the DLM cascade")
            expect(run).to_be_visible()
            _wait_idle(page)
            _assert_no_exception(page)
            run.click()
            expect(page.get_by_text(re.compile(r"^Diagnosis: "))).to_be_visible()
            heatmap = page.locator('[data-testid="stImage"]').filter(has_text="Grad-CAM").first
            expect(heatmap).to_be_visible()
            _wait_idle(page)
            loaded = heatmap.locator("img").evaluate("img => img.complete && img.naturalWidth > 0")
            assert loaded, "the Grad-CAM image did not load"
            _assert_no_exception(page)

            # Cohort page: evaluate a 6-case simulated cohort given by its path on the server.
            page.get_by_role("link", name="Cohort metrics").click()
            expect(page.get_by_role("heading", name="Cohort metrics")).to_be_visible()
            page.get_by_text("Cohort folder or CSV on the server").click()
            path_box = page.get_by_role("textbox", name="Path of a cohort CSV, or of a folder holding cohort.csv")
            path_box.fill(str(cohort_csv))
            path_box.press("Enter")
            expect(page.get_by_text("Cohorts to evaluate")).to_be_visible()
            _wait_idle(page)
            page.get_by_role("button", name="Evaluate", exact=True).click()
            expect(page.get_by_text("DLM-1: benign vs malignant (as the paper's Table 2)")).to_be_visible()
            expect(page.get_by_role("tab", name="DLM-1", exact=True)).to_be_visible()
            roc = page.locator('[role="tabpanel"] .vega-embed').first
            expect(roc).to_be_visible()
            _wait_idle(page)
            box = roc.bounding_box()
            assert box is not None and box["width"] > 200 and box["height"] > 200, box
            _assert_no_exception(page)
        except Exception:
            print(log_path.read_text()[-3000:])
            raise
        finally:
            browser.close()
