"""Fixtures for the real-browser dashboard test: a real `speedflow serve`, a loaded fleet, headless Chromium.

Environment:
  SPEEDFLOW_BIN   server binary (default .build/debug/speedflow)
  SPEEDFLOW_URL   test an already running server instead of starting one (loads the fixture into it)
  TEST_OUTPUT     where screenshots and the server log go (default test-output)
  CHROMIUM_BIN / CHROMEDRIVER_BIN   default /usr/bin/chromium, /usr/bin/chromedriver
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import fixture as fleet_fixture

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = Path(os.environ.get("TEST_OUTPUT", ROOT / "test-output"))
WINDOW = (1440, 900)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen | None, log: Path | None, timeout: float = 60) -> None:
    """Polls GET /health until it answers 200 (no blind sleeps); fails early if the server exits."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            pytest.fail(f"server exited with {proc.returncode} before becoming healthy:\n{tail}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as res:
                if res.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError) as e:
            last = e
        time.sleep(0.1)
    pytest.fail(f"server not healthy at {url} within {timeout}s: {last}")


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    return OUTPUT


@pytest.fixture(scope="session")
def server(output_dir: Path):
    """Base URL of a running server; started here (and always stopped) unless SPEEDFLOW_URL is given."""
    external = os.environ.get("SPEEDFLOW_URL")
    if external:
        url = external.rstrip("/")
        wait_healthy(url, None, None)
        yield url
        return
    binary = os.environ.get("SPEEDFLOW_BIN", str(ROOT / ".build/debug/speedflow"))
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        pytest.fail(f"server binary not found: {binary} (build it, or set SPEEDFLOW_BIN)")
    data_dir = tempfile.mkdtemp(prefix="speedflow-dashboard-test-")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = output_dir / "dashboard-server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [binary, "serve", "--data-dir", data_dir, "--port", str(port), "--host", "127.0.0.1"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        wait_healthy(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def fleet(server: str) -> fleet_fixture.Fixture:
    return fleet_fixture.load(server)


@pytest.fixture(scope="session")
def driver(output_dir: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={WINDOW[0]},{WINDOW[1]}", "--force-device-scale-factor=1",
                "--lang=en-US", "--no-first-run", "--disable-extensions", "--hide-scrollbars"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver"),
                      log_output=str(output_dir / "chromedriver.log"))
    drv = webdriver.Chrome(options=opts, service=service)
    # Make the viewport (not the window) WINDOW, so screenshots are exactly that size.
    drv.set_window_size(*WINDOW)
    drv.get("about:blank")
    inner = drv.execute_script("return [window.innerWidth, window.innerHeight]")
    drv.set_window_size(2 * WINDOW[0] - inner[0], 2 * WINDOW[1] - inner[1])
    try:
        yield drv
    finally:
        drv.quit()


@pytest.fixture(autouse=True)
def no_console_errors(request):
    """After every test that used the browser: no SEVERE entry in the browser console."""
    yield
    if "driver" not in request.fixturenames:
        return
    drv = request.getfixturevalue("driver")
    entries = drv.get_log("browser")
    severe = [e for e in entries if e.get("level") == "SEVERE"]
    assert not severe, "browser console errors:\n" + "\n".join(e["message"] for e in severe)
