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


# ---- a phone (390 px) and a desktop (1280 px): issue 25 -------------------------------------

PAGES = ("/", f"/studies/{DEMO_STUDY}", f"/studies/{STATUS_STUDY}", "/changes", "/findings")
# the drawn size of every label of every chart shown: font size times the chart's scale
LABEL_SIZES = """
return [...document.querySelectorAll("svg.chart")]
  .filter((svg) => svg.getBoundingClientRect().width > 0)
  .flatMap((svg) => {
    const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
    return [...svg.querySelectorAll("text")].map((text) =>
      [text.textContent, parseFloat(getComputedStyle(text).fontSize) * scale]);
  });
"""


@pytest.mark.parametrize("width", [390, 1280])
def test_every_page_fits_the_width_and_its_charts_stay_readable(
    served: str, browser: Any, width: int
) -> None:
    browser.set_window_size(width, 900)
    for path in PAGES:
        browser.get(served + path)
        viewport = browser.execute_script("return window.innerWidth")
        scrolled = browser.execute_script("return document.documentElement.scrollWidth")
        assert scrolled <= viewport, f"{path} at {width}: {scrolled}px in {viewport}px"
        for box in browser.execute_script("return [...document.querySelectorAll('.table-wrap')]"):
            inner, outer = box.get_property("scrollWidth"), box.get_property("clientWidth")
            if path == "/":  # the list's rows are cards on a phone: none is cut or scrolled
                assert inner <= outer, f"/ at {width}: the list is {inner}px in {outer}px"
        labels = browser.execute_script(LABEL_SIZES)
        assert all(size >= 11 for _, size in labels), (path, width, labels[:5])
        if path.startswith("/studies/"):
            assert len(labels) > 10  # the charts were drawn, with their labels
    assert console_problems(browser) == []


def test_at_1280_the_records_table_shows_every_column_and_gives_the_title_room(
    served: str, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    browser.set_window_size(1280, 900)
    browser.get(served + "/")
    box = browser.find_element(By.CSS_SELECTOR, ".table-wrap")
    inner, outer = box.get_property("scrollWidth"), box.get_property("clientWidth")
    assert inner <= outer, f"the table is {inner}px in a {outer}px box: a column is cut"
    headers = browser.find_elements(By.CSS_SELECTOR, "table.records th")
    widths = {h.text.replace("\n", " "): h.size["width"] for h in headers}
    assert widths["TITLE"] == max(widths.values())  # the widest column


def test_at_390_the_dates_table_scrolls_in_its_own_box_and_dates_stay_whole(
    served: str, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    browser.set_window_size(390, 844)
    browser.get(served + f"/studies/{DEMO_STUDY}")
    # one line of text is under two font sizes high; a date broken in two is over
    one_line = (
        "const r = document.createRange(); r.selectNodeContents(arguments[0]);"
        "return r.getBoundingClientRect().height < 2 * parseFloat("
        "getComputedStyle(arguments[0]).fontSize)"
    )
    cells = browser.find_elements(By.CSS_SELECTOR, "table.dates td, .facts dd .nowrap")
    assert len(cells) > 10
    for cell in cells:
        assert browser.execute_script(one_line, cell), f"a date broken in two: {cell.text!r}"
    dates = browser.find_element(By.CSS_SELECTOR, "table.dates")
    wrap = browser.execute_script("return arguments[0].closest('.table-wrap')", dates)
    assert wrap is not None
    assert browser.execute_script("return getComputedStyle(arguments[0]).overflowX", wrap) in (
        "auto",
        "scroll",
    )
    # a long title is clamped in the list, whole on its record's page
    browser.get(served + "/")
    clamped = browser.find_elements(By.CSS_SELECTOR, "td.title .clamp")
    heights = [c.size["height"] for c in clamped]
    line = browser.execute_script(
        "return parseFloat(getComputedStyle(arguments[0]).lineHeight)", clamped[0]
    )
    assert max(heights) <= 3 * line + 2


def test_a_failed_last_cycle_puts_a_banner_on_every_page(
    served: str, browser: Any, web_store: Any
) -> None:
    """Last in this file: it leaves the module's store with a failed cycle."""
    from selenium.webdriver.common.by import By

    from web.conftest import WebStore

    down = {**web_store.env, "TRIALWATCH_CTGOV_API_URL": "http://127.0.0.1:9/api/v2"}
    failing = WebStore(web_store.database_url, web_store.config, down, web_store.watched)
    assert failing.run("sync").exit_code != 0
    for width in (390, 1280):
        browser.set_window_size(width, 900)
        for path in PAGES:
            browser.get(served + path)
            banner = browser.find_element(By.CSS_SELECTOR, "p.banner")
            assert banner.is_displayed() and "the last sync failed as a whole" in banner.text
            assert banner.text.startswith("Failing (") and "UTC)" in banner.text
            width_now = browser.execute_script("return document.documentElement.scrollWidth")
            assert width_now <= browser.execute_script("return window.innerWidth")
    assert web_store.run("sync").exit_code == 0  # the registry answers again: no banner
    browser.get(served + "/")
    assert browser.find_elements(By.CSS_SELECTOR, "p.banner") == []
