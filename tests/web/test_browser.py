"""The web app in a real browser: Debian's Chromium, driven by Selenium through Debian's
chromium-driver (no browser or driver is downloaded), against the app served by uvicorn on a
real socket. A reader opens the watch list, follows a record, reads its status change and
a finding, and a phone-sized window shows the list without sideways scrolling. The browser's
console must stay empty: a Content-Security-Policy violation (an inline script or style the
policy forbids, a resource from elsewhere) is logged there.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from service.web.server import WebServer
from web.conftest import DEMO_STUDY, MARKUP, STATUS_STUDY

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="chromium and chromium-driver not installed (apt-get install chromium chromium-driver)",
)
# As the machine notes say: without the background-networking flags Chromium keeps trying to
# reach Google on a closed network.
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@pytest.fixture
def served(web_app: Any) -> Iterator[str]:
    server = WebServer(web_app, "127.0.0.1", 0, environ={}).start()
    try:
        yield server.url.rstrip("/")
    finally:
        server.stop()


@pytest.fixture
def browser(tmp_path: Any) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or "chromium"
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    options.add_argument("--window-size=1280,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER or "chromedriver"))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def console_problems(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]


def test_a_reader_follows_a_record_from_the_list_to_its_change_and_findings(
    served: str, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    browser.get(served + "/")
    assert browser.find_element(By.CSS_SELECTOR, "header.site .brand").text == "trialwatch"
    listed = browser.find_element(By.CSS_SELECTOR, "main").text
    assert STATUS_STUDY in listed and DEMO_STUDY in listed
    # the title's markup is shown as text, never run (the normaliser folds the <img> away)
    assert '<script>alert("tw")</script>' in listed and "<script" in MARKUP
    assert browser.find_elements(By.CSS_SELECTOR, "img[src=x]") == []

    browser.find_element(By.LINK_TEXT, STATUS_STUDY).click()
    assert browser.current_url.endswith(f"/studies/{STATUS_STUDY}")
    page = browser.find_element(By.CSS_SELECTOR, "main").text
    assert "Recruiting" in page
    charts = browser.find_elements(By.CSS_SELECTOR, "main svg")
    assert charts and all(c.size["width"] > 100 for c in charts)  # drawn, at a real size

    browser.get(served + "/changes?kind=status_changed")
    changes = browser.find_element(By.CSS_SELECTOR, "main").text
    assert STATUS_STUDY in changes and "Recruiting" in changes

    browser.get(served + "/findings")
    assert "results overdue" in browser.find_element(By.CSS_SELECTOR, "main").text.replace("_", " ")
    assert console_problems(browser) == []


def test_the_list_fits_a_phone_without_sideways_scrolling(served: str, browser: Any) -> None:
    browser.set_window_size(390, 844)
    for path in ("/", f"/studies/{DEMO_STUDY}", "/changes"):
        browser.get(served + path)
        width = browser.execute_script("return document.documentElement.scrollWidth")
        viewport = browser.execute_script("return window.innerWidth")
        assert width <= viewport + 1, f"{path}: {width}px wide in a {viewport}px window"
    assert console_problems(browser) == []
