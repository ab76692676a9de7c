"""Dashboard sign-in against a real `speedflow serve --auth required` in headless Chromium: the page asks for a
token, refuses a wrong one, signs in with a reader token into an HttpOnly session cookie (invisible to page
scripts), shows the fleet, and asks again once the credential is revoked."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from conftest import ROOT, free_port, wait_healthy


def speedflow(*args: str) -> str:
    binary = os.environ.get("SPEEDFLOW_BIN", str(ROOT / ".build/debug/speedflow"))
    return subprocess.run([binary, *args], check=True, capture_output=True, text=True, timeout=60).stdout.strip()


@pytest.fixture()
def auth_server(output_dir: Path):
    binary = os.environ.get("SPEEDFLOW_BIN", str(ROOT / ".build/debug/speedflow"))
    data_dir = tempfile.mkdtemp(prefix="speedflow-signin-test-")
    reader = speedflow("token", "create", "--role", "reader", "--name", "browser-test", "--data-dir", data_dir)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = output_dir / "signin-server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([binary, "serve", "--data-dir", data_dir, "--port", str(port), "--host", "127.0.0.1", "--auth", "required"],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_healthy(url, proc, log)
        yield url, data_dir, reader
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(data_dir, ignore_errors=True)


def test_sign_in_with_a_reader_token_then_revocation_asks_again(driver, auth_server, output_dir):
    url, data_dir, reader = auth_server
    wait = WebDriverWait(driver, 15)
    driver.get(url + "/")
    token_input = wait.until(EC.visibility_of_element_located((By.ID, "signin-token")))
    token_input.send_keys("sft_0123456789abcdef_wrong")
    driver.find_element(By.ID, "signin-submit").click()
    wait.until(lambda d: "not valid" in d.find_element(By.ID, "signin-error").text)

    token_input.clear()
    token_input.send_keys(reader)
    driver.find_element(By.ID, "signin-submit").click()
    wait.until(EC.visibility_of_element_located((By.ID, "signout-btn")))
    assert not driver.find_elements(By.ID, "signin")
    # The session cookie is HttpOnly: page scripts cannot read it; the token is nowhere in the page or URL.
    assert "speedflow_session" not in driver.execute_script("return document.cookie")
    cookie = driver.get_cookie("speedflow_session")
    assert cookie and cookie["httpOnly"] and cookie.get("sameSite") == "Strict"
    assert reader not in driver.page_source and reader not in driver.current_url
    # Data loads with the cookie: the status line reaches "Live" (not an error).
    wait.until(lambda d: "Live" in d.find_element(By.ID, "status-text").text or "live" in d.find_element(By.ID, "status-text").text)
    driver.save_screenshot(str(output_dir / "signed-in.png"))

    # Revoke the reader: the next poll answers 401 and the page asks for a token again.
    reader_id = reader.split("_")[1]
    speedflow("token", "revoke", reader_id, "--data-dir", data_dir)
    WebDriverWait(driver, 20).until(EC.visibility_of_element_located((By.ID, "signin-token")))
    driver.save_screenshot(str(output_dir / "signin-after-revocation.png"))
    # The 401s above are expected: drain them so the console check sees only what follows.
    driver.get_log("browser")
    driver.delete_all_cookies()
    driver.get("about:blank")
