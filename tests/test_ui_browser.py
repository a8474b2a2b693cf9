"""The web view in a real browser: Debian's headless Chromium, driven through Debian's chromedriver.

Loads the list, moves the time control, types a point, opens a container and one of its timeline's
marks, opens a diff and searches the audit, checking what a person would see at each step. It takes
the screenshots the how-to shows: into a temporary directory, or into ``docs/images`` when
``CTRLEDGER_SCREENSHOTS=docs/images`` is set (so a test run leaves the tracked pictures alone).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ctrledger

from .conftest import missing_component
from .ui_sample import Sample, build, digest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        missing_component("Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with pytest.MonkeyPatch.context() as env:
        env.setenv("SE_OFFLINE", "true")  # Selenium Manager must never fetch a driver or a browser
        yield from _chromium(webdriver, Service)


def _chromium(webdriver: Any, service: Any) -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1200,760", "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


def _forge(path: Path, position: int) -> None:
    """Edit one stored event behind ctrledger's back, as an attacker with the file would."""
    conn = sqlite3.connect(path)
    with conn:
        state = bytearray(conn.execute("SELECT state FROM stored_events WHERE rowid=?", (position,)).fetchone()[0])
        state[-3] ^= 0x01
        conn.execute("UPDATE stored_events SET state=? WHERE rowid=?", (bytes(state), position))
    conn.close()


@pytest.fixture(params=["intact"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Sample]]:
    from ctrledger.ui.app import create_app
    from ctrledger.ui.serve import make_server, stop

    sample = build(tmp_path / "ledger.db")
    if request.param == "forged":
        _forge(sample.path, 14)
    before = digest(sample.path)
    with ctrledger.open(sample.path) as store:
        server = make_server(create_app(store, source="ledger.db"), "127.0.0.1", 0)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.effective_port}", sample
        finally:
            stop(server)
            thread.join(timeout=5)
            assert not thread.is_alive()
        assert store.position == sample.head
    assert digest(sample.path) == before, "browsing wrote to the store"


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    chosen = os.environ.get("CTRLEDGER_SCREENSHOTS")
    target = (ROOT / chosen) if chosen else tmp_path / "shots"
    target.mkdir(parents=True, exist_ok=True)
    return target


def _ids(driver: Any) -> list[str]:
    return [a.text for a in driver.find_elements("css selector", "#containers a.cid")]


def _shot(driver: Any, shots: Path, name: str) -> None:
    path = shots / f"ui-{name}.png"
    assert driver.save_screenshot(str(path))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and 5_000 < len(data) < 400_000, (name, len(data))


def test_a_person_browses_the_ledger(browser: Any, served: tuple[str, Sample], shots: Path) -> None:
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base, sample = served
    wait = WebDriverWait(browser, 10)
    everyone = sorted(f"web-{i}" for i in range(12))

    # the list, now
    browser.get(base + "/")
    assert browser.find_element("css selector", "h1").text == "Containers in default"
    assert _ids(browser) == everyone
    _shot(browser, shots, "containers")

    # paged by keyset: "next" starts after the last ID shown
    browser.get(base + "/?size=5")
    assert _ids(browser) == everyone[:5]
    browser.find_element("css selector", 'a[rel="next"]').click()
    wait.until(ec.url_contains("after=web-2"))
    assert _ids(browser) == everyone[5:10]
    browser.get(base + "/")

    # the time control: one step back on the slider is the log before web-1 was created again
    browser.find_element("id", "pos").send_keys(Keys.ARROW_LEFT)
    wait.until(ec.url_contains("at=%40" + str(sample.head - 1)))
    assert "pos=" not in browser.current_url  # the point the slider chose is the typed one: one to bookmark
    assert "at @16" in browser.find_element("css selector", "h1").text
    assert _ids(browser) == [i for i in everyone if i != "web-1"]  # deleted at @16
    assert browser.find_element("id", "pos").get_attribute("value") == "16"

    # a typed point: before bob moved web-1 to the edge
    field = browser.find_element("id", "at")
    field.clear()
    field.send_keys(f"@{sample.before_edge}", Keys.ENTER)
    wait.until(ec.url_contains(f"at=%40{sample.before_edge}"))
    row = browser.find_element("xpath", "//tr[td/a[text()='web-1']]")
    assert "tier=web" in row.text and "nginx:1.27" in row.text

    # one container, at that point, with its timeline
    browser.find_element("link text", "web-1").click()
    wait.until(ec.presence_of_element_located(("css selector", "#timeline svg")))
    assert "The record at @12" in browser.find_element("id", "record").text
    marks = browser.find_elements("css selector", "#timeline svg a")
    assert len(marks) >= 4
    browser.get(base + "/containers/web-1")
    _shot(browser, shots, "timeline")
    kinds = [a.text for a in browser.find_elements("css selector", "#events a.kind")]
    assert kinds == ["Created", "Deleted", "SpecUpdated", "ImageChanged", "LabelsChanged", "Created"]  # newest first

    # the container's own slider, over its versions: one step back is v5, its delete; one more, v4
    browser.find_element("id", "ver").send_keys(Keys.ARROW_LEFT)
    wait.until(ec.url_contains("at=v5"))
    assert "did not exist" in browser.find_element("id", "absent").text
    assert browser.find_element("id", "ver-out").text == "v5"
    browser.find_element("id", "ver").send_keys(Keys.ARROW_LEFT)
    wait.until(ec.url_contains("at=v4"))
    record = browser.find_element("id", "record").text
    assert "The record at v4" in record and "nginx:1.28" in record
    browser.get(base + "/containers/web-1")

    # a mark of the timeline opens its event: who, when, why, which operation
    relabel = f'#timeline svg a[href*="/events/{sample.before_edge + 1}?"]'  # bob's, the event after @12
    browser.find_element("css selector", relabel).click()
    wait.until(ec.presence_of_element_located(("id", "event")))
    event = browser.find_element("id", "event").text
    assert "LabelsChanged" in event and "bob" in event and "move to edge" in event

    # a diff between two points, from the container page's form
    browser.get(base + "/containers/web-1")
    since, until = browser.find_element("id", "since"), browser.find_element("id", "until")
    since.clear()
    since.send_keys("v1")
    until.send_keys("v4", Keys.ENTER)
    wait.until(ec.presence_of_element_located(("id", "diff-status")))
    assert browser.find_element("id", "diff-status").text.startswith("web-1: CHANGED")
    changed = [r.text.split(" ")[0] for r in browser.find_elements("css selector", "#fields tr.changed")]
    assert changed == ["image", "labels.tier"]
    assert len(browser.find_elements("css selector", "#spec tr.changed")) == 1
    _shot(browser, shots, "diff")

    # the audit, searched by actor; a row opens the container at that moment
    browser.find_element("link text", "Audit").click()
    actor = browser.find_element("id", "actor")
    actor.send_keys("bob", Keys.ENTER)
    wait.until(ec.url_contains("actor=bob"))
    rows = browser.find_elements("css selector", "#audit tbody tr")
    assert [r.find_elements("tag name", "td")[5].text for r in rows] == ["LabelsChanged", "Deleted"]
    _shot(browser, shots, "audit")
    rows[0].find_element("css selector", "a.cid").click()
    wait.until(ec.presence_of_element_located(("id", "record")))
    assert "tier=edge" in browser.find_element("id", "record").text

    # the integrity page
    browser.find_element("link text", "Integrity").click()
    assert browser.find_element("id", "verdict").text.startswith("✔ Verified: positions 1–17")


@pytest.mark.parametrize("served", ["forged"], indirect=True)
def test_a_forged_log_is_shown_as_such(browser: Any, served: tuple[str, Sample], shots: Path) -> None:
    base, _ = served
    browser.get(base + "/integrity")
    verdict = browser.find_element("id", "verdict")
    assert verdict.text.startswith("✘ FAILED: this log has been altered or damaged — first at position 14")
    assert "bad" in (verdict.get_attribute("class") or "")
    problems = browser.find_elements("css selector", "#problems tbody tr")
    assert problems and problems[0].text.startswith("@14")
    _shot(browser, shots, "forged")
