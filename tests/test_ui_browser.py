"""The search page in a real browser: Debian's headless chromium driven by Selenium through the system chromedriver,
against a real service on loopback (one server and one browser for the module).

Skipped where chromium or chromedriver is missing, an error in CI (`.ci/run` installs them: `make browser-deps`). With
GERMAN_RAG_UI_SHOTS=DIR set, each view is saved as DIR/<view>.png (the README's screenshots, docs/ui/).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import in_ci
from tests.test_ui_support import HOSTILE_NAME, LONG_MARKER, LONG_NAME, READ_KEY, WRITE_KEY, ui_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
MISSING = "needs chromium and chromium-driver (Debian: apt-get install chromium chromium-driver; make browser-deps)"
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER) and not in_ci(), reason=MISSING)]
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

WAIT_S = 60
SHOTS = os.environ.get("GERMAN_RAG_UI_SHOTS")


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    with ui_server(tiny_model_dir, tmp_path_factory.mktemp("ui-browser")) as live:
        yield live


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):  # only in CI (skipped elsewhere): a green run must not hide a missing install
        pytest.fail(MISSING)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--lang=de-DE",
                "--window-size=1280,900", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console: CSP violations, script errors
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver, condition, what: str):
    return WebDriverWait(driver, WAIT_S, poll_frequency=0.05).until(lambda d: condition(d), message=what)


def shot(driver, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(SHOTS) / f"{name}.png"))


def open_page(driver, server, path: str, key: str) -> None:
    """Open a page and enter `key` in its key form (kept in sessionStorage); wait until the rights are known."""
    driver.get(server.url + path)
    field = wait(driver, lambda d: d.find_element(By.ID, "api-key"), "key form")
    field.send_keys(key)
    field.submit()
    wait(driver, lambda d: "Schlüssel gilt" in d.find_element(By.ID, "key-state").text, "key accepted")


def search(driver, query: str, mode: str = "bm25") -> list:
    Select(driver.find_element(By.ID, "mode")).select_by_value(mode)
    box = driver.find_element(By.ID, "query")
    box.clear()
    box.send_keys(query)
    driver.find_element(By.CSS_SELECTOR, "#search-form button[type=submit]").click()
    wait(driver, lambda d: query in (d.execute_script("return sessionStorage.getItem('german-rag-last-search')") or "")
         and d.find_elements(By.CSS_SELECTOR, "#results > li") and "Suche läuft" not in d.find_element(
             By.ID, "message").text, "results")
    return driver.find_elements(By.CSS_SELECTOR, "#results > li")


def test_search_shows_the_passage_with_analyzer_highlights_and_score_bars(server, browser):
    open_page(browser, server, "/ui/", READ_KEY)
    results = search(browser, "Wie viele Werktage beträgt der Urlaub jährlich mindestens?")
    first = results[0]
    assert "upload:burlg.md" in first.find_element(By.CSS_SELECTOR, ".where").text
    text = first.find_element(By.CSS_SELECTOR, ".passage-text").text
    assert "24 Werktage" in text
    marks = [m.text for m in first.find_elements(By.CSS_SELECTOR, "mark.term")]
    assert "Werktage" in marks and "Urlaub" in marks and "jährlich" in marks, marks
    # a compound part is marked inside its word: `tage` of the query's `Werktage` in `Kalendertage`, `Feiertage`
    inside = browser.execute_script("""
        return Array.from(arguments[0].querySelectorAll('mark.term')).filter(m => {
          const before = m.previousSibling ? m.previousSibling.textContent.slice(-1) : '';
          const after = m.nextSibling ? m.nextSibling.textContent.slice(0, 1) : '';
          return /\\p{L}/u.test(before) || /\\p{L}/u.test(after);
        }).map(m => m.parentNode.textContent.length && m.textContent);""", first)
    assert "Kalendertage" in text and "tage" in inside, inside
    stages = [m.get_attribute("data-stage") for m in first.find_elements(By.CSS_SELECTOR, ".score")]
    assert "bm25" in stages and first.find_elements(By.CSS_SELECTOR, ".score meter")
    if SHOTS:  # the screenshot in hybrid mode: dense, BM25 and fused scores side by side
        search(browser, "Wie viele Werktage beträgt der Urlaub jährlich mindestens?", mode="hybrid")
        browser.execute_script("document.getElementById('search-form').scrollIntoView()")
        shot(browser, "suche")


def test_filters_narrow_the_search(server, browser):
    open_page(browser, server, "/ui/", READ_KEY)
    browser.find_element(By.CSS_SELECTOR, "details.filters summary").click()
    browser.find_element(By.ID, "f-source").send_keys("upload:arbzg.md")
    results = search(browser, "Wie viele Werktage beträgt der Urlaub jährlich mindestens?")
    sources = {r.find_element(By.CSS_SELECTOR, ".where .source").text for r in results}
    assert sources == {"upload:arbzg.md"}, sources


def test_document_view_scrolls_to_the_exact_span(server, browser):
    open_page(browser, server, "/ui/", READ_KEY)
    first = search(browser, "Wann öffnet die Kantine?")[0]
    passage_text = first.find_element(By.CSS_SELECTOR, ".passage-text").get_attribute("textContent")
    assert LONG_MARKER in passage_text and LONG_NAME in first.find_element(By.CSS_SELECTOR, ".where").text
    first.find_element(By.CSS_SELECTOR, "a.doc-link").click()
    mark = wait(browser, lambda d: d.find_element(By.ID, "passage"), "passage mark")
    assert mark.get_attribute("textContent") == passage_text
    state = browser.execute_script("""
        const m = document.getElementById('passage'), r = m.getBoundingClientRect();
        const doc = document.getElementById('doc-text').textContent;
        return {top: r.top, bottom: r.bottom, height: window.innerHeight, scrolled: window.scrollY,
                before: doc.indexOf(m.textContent), focused: document.activeElement === m};""")
    assert state["scrolled"] > 0 and 0 <= state["top"] < state["height"], state  # scrolled down to it
    assert state["before"] > 0 and state["focused"], state
    assert "Kantine" in [m.text for m in mark.find_elements(By.CSS_SELECTOR, "mark.term")]
    shot(browser, "dokument")


def test_markup_in_a_document_is_shown_as_text_and_never_runs(server, browser):
    open_page(browser, server, "/ui/", READ_KEY)
    first = search(browser, "Auffälligkeiten sofort melden")[0]
    text = first.find_element(By.CSS_SELECTOR, ".passage-text").get_attribute("textContent")
    assert "<script>window.__pwned = 1;</script>" in text and "<img src=x" in text
    assert not first.find_elements(By.CSS_SELECTOR, "script, img")
    first.find_element(By.CSS_SELECTOR, "a.doc-link").click()
    mark = wait(browser, lambda d: d.find_element(By.ID, "passage"), "passage mark")
    assert "<script>" in mark.get_attribute("textContent")
    assert not browser.find_elements(By.CSS_SELECTOR, "#doc-text script, #doc-text img")
    assert browser.execute_script("return window.__pwned === undefined")
    assert HOSTILE_NAME in browser.find_element(By.ID, "doc-fields").text


def test_a_read_key_sees_no_upload_or_delete_and_the_server_refuses_them(server, browser):
    open_page(browser, server, "/ui/hochladen", READ_KEY)
    assert browser.find_element(By.ID, "read-only").is_displayed()
    assert not browser.find_element(By.ID, "upload-form").is_displayed()
    open_page(browser, server, "/ui/quellen", READ_KEY)
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#sources-body tr"), "source rows")
    assert not browser.find_elements(By.CSS_SELECTOR, "#sources-body button")
    statuses = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const form = new FormData(); form.append('files', new File(['Text'], 'x.txt'));
        Promise.all([
          fetch('/v1/documents?source=upload%3Aburlg.md', {method: 'DELETE', headers: GR.headers()}),
          fetch('/v1/documents', {method: 'POST', headers: GR.headers(), body: form}),
        ]).then(rs => done(rs.map(r => r.status)));""")
    assert statuses == [403, 403]


def test_upload_by_picking_and_dropping_files_reports_each_and_becomes_searchable(server, browser, tmp_path):
    good = tmp_path / "reisekosten.txt"
    good.write_text("Reisekosten werden binnen zwei Wochen nach der Dienstreise mit Belegen abgerechnet.\n",
                    encoding="utf-8")
    open_page(browser, server, "/ui/hochladen", WRITE_KEY)
    form = wait(browser, lambda d: d.find_element(By.ID, "upload-form").is_displayed() and d.find_element(
        By.ID, "upload-form"), "upload form")
    browser.find_element(By.ID, "files").send_keys(str(good))
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    # a second file dropped on the zone: a type the service does not take, reported with its reason
    browser.execute_script("""
        const dt = new DataTransfer(); dt.items.add(new File(['MZ'], 'programm.exe'));
        const drop = new DragEvent('drop', {dataTransfer: dt, bubbles: true});
        document.getElementById('drop-zone').dispatchEvent(drop);""")
    done = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#uploads li[data-name='reisekosten.txt']"
                                                                   "[data-state='succeeded']"), "upload done")
    assert "eingelesen" in done[0].text and "Abschnitte" in done[0].text
    failed = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#uploads li[data-name='programm.exe']"
                                                                     "[data-state='failed']"), "refusal shown")
    assert "nicht unterstützt" in failed[0].text and ".exe" in failed[0].text
    shot(browser, "hochladen")
    browser.get(server.url + "/ui/")
    first = search(browser, "Wann werden Reisekosten abgerechnet?")[0]
    assert "upload:reisekosten.txt" in first.find_element(By.CSS_SELECTOR, ".where").text


def test_sources_page_searches_and_deletes_after_confirmation(server, browser):
    open_page(browser, server, "/ui/quellen", WRITE_KEY)
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#sources-body tr"), "source rows")
    shot(browser, "quellen")
    box = browser.find_element(By.ID, "contains")
    box.send_keys("hinweise")
    box.submit()
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#sources-body tr")) == 1, "one match")
    row = browser.find_element(By.CSS_SELECTOR, "#sources-body tr")
    assert "upload:hinweise.txt" in row.text
    row.find_element(By.CSS_SELECTOR, "button.danger").click()
    assert browser.find_element(By.ID, "confirm").is_displayed()
    browser.find_element(By.ID, "confirm-no").click()  # cancel: nothing is deleted
    assert not browser.find_element(By.ID, "confirm").is_displayed()
    row.find_element(By.CSS_SELECTOR, "button.danger").click()
    browser.find_element(By.ID, "confirm-yes").click()
    wait(browser, lambda d: "Gelöscht" in d.find_element(By.ID, "message").text, "deleted")
    wait(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, "#sources-body tr"), "row gone")
    with server.client(READ_KEY) as c:
        assert c.get("/v1/sources", params={"contains": "hinweise"}).json()["total"] == 0


def test_context_view_shows_the_packed_text_and_its_citations(server, browser):
    open_page(browser, server, "/ui/kontext", READ_KEY)
    box = browser.find_element(By.ID, "query")
    box.send_keys("Wie lange darf die werktägliche Arbeitszeit sein?")
    browser.find_element(By.CSS_SELECTOR, "#context-form button[type=submit]").click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#citations li"), "citations")
    assert browser.find_element(By.ID, "ctx-text").text.strip()
    assert "Tokens" in browser.find_element(By.ID, "ctx-summary").text
    shot(browser, "kontext")


def test_keyboard_alone_reaches_search_and_results(server, browser):
    """Tab from the top of the page reaches the key form, the query box and the search button in order."""
    open_page(browser, server, "/ui/", READ_KEY)
    browser.get(server.url + "/ui/")  # a fresh load (the key stays in sessionStorage): focus starts at the top
    wait(browser, lambda d: "Schlüssel gilt" in d.find_element(By.ID, "key-state").text, "key known")
    seen: list[str] = []
    for _ in range(30):
        browser.switch_to.active_element.send_keys("\ue004")  # Tab
        focused = browser.switch_to.active_element
        seen.append(focused.get_attribute("id") or focused.get_attribute("class") or focused.text)
        if seen[-1] == "query":
            break
    assert seen[0] == "skip" and "Suche" in seen and "api-key" in seen and seen[-1] == "query", seen
    browser.switch_to.active_element.send_keys("Kantine\ue007")  # Enter submits the form
    wait(browser, lambda d: "Kantine" in (d.execute_script("return sessionStorage.getItem('german-rag-last-search')")
                                          or "") and d.find_elements(By.CSS_SELECTOR, "#results > li"), "results")


@pytest.mark.parametrize("path", ["/ui/", "/ui/quellen", "/ui/hochladen", "/ui/kontext"])
def test_pages_reflow_at_200_percent_zoom(server, browser, path):
    """At 200 % zoom a 1280 px window is 640 CSS px wide: every page must fit it without scrolling sideways."""
    open_page(browser, server, path, WRITE_KEY)
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 640, "height": 900, "deviceScaleFactor": 2, "mobile": False})
    try:
        if path == "/ui/":
            search(browser, "Wie viele Werktage beträgt der Urlaub jährlich mindestens?")
        widths = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[1] <= 640 and widths[0] <= widths[1], widths
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_no_page_breaks_its_own_csp_or_throws(server, browser):
    """The pages' own scripts and styles obey the CSP (no inline style, no eval) and raise no uncaught error;
    the console of every test so far in this module is read (the log is drained on each read)."""
    for path in ("/ui/", "/ui/quellen", "/ui/hochladen", "/ui/kontext", "/ui/dokument"):
        open_page(browser, server, path, WRITE_KEY)
    problems = [e["message"] for e in browser.get_log("browser")
                if "Content Security Policy" in e["message"] or "Uncaught" in e["message"]]
    assert not problems, problems
