"""The web demo (``kgsf demo``) in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``) driven by Selenium against the app served on 127.0.0.1 with a tiny model
folder saved by the stages' own ``make_save_model``."""
from __future__ import annotations

import json
import shutil
import socket
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip("chromium / chromedriver not installed (apt-get install chromium chromium-driver; .ci/run does)", allow_module_level=True)
pytest.importorskip("gradio", reason="pip install 'kgsf[demo]'")
pytest.importorskip("selenium")

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from demo_helpers import tiny_folder  # noqa: E402

WAIT = 90  # seconds: the machine is shared, the first reply warms the model up
XSS = '<script>alert(1)</script><img src=x onerror="window.__kgsf_xss=1">'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from modeling_kgsf.demo_kgsf import DemoCore, launch_demo

    folder = tiny_folder(tmp_path_factory.mktemp("demo_folder"))
    ratings = tmp_path_factory.mktemp("demo") / "ratings.jsonl"
    port = free_port()
    demo = launch_demo(DemoCore.from_pretrained(folder, ratings_file=ratings), port=port, block=False)
    yield {"url": f"http://127.0.0.1:{port}/", "ratings": ratings}
    demo.close()


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def wait_for(driver, condition, message: str, timeout: float = WAIT):
    # a message re-rendered between finding it and reading its text is stale: poll again
    return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: condition(d), message=message)


def bot_messages(driver) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#kgsf-chat [data-testid='bot']")]


def user_messages(driver) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#kgsf-chat [data-testid='user']")]


def send(driver, text: str) -> str:
    """Type ``text``, press Send, wait for the new reply; the reply's text."""
    before = len(bot_messages(driver))
    box = driver.find_element(By.CSS_SELECTOR, "#kgsf-message textarea")
    box.clear()
    box.send_keys(text)
    driver.find_element(By.ID, "kgsf-send").click()
    wait_for(driver, lambda d: len(bot_messages(d)) > before and bot_messages(d)[-1].strip(), f"no reply to {text!r}")
    return bot_messages(driver)[-1]


def click_text(driver, text: str, within: str = "body"):
    """Click the first visible button/tab/label of ``within`` whose text contains ``text``."""
    for element in driver.find_elements(By.CSS_SELECTOR, f"{within} button, {within} label"):
        if text in element.text and element.is_displayed():
            element.click()
            return element
    raise AssertionError(f"nothing to click with {text!r} in {within}")


def status(driver) -> str:
    return driver.find_element(By.ID, "kgsf-status").text


def test_chat_recommendations_decoding_export_rating_and_escaping(app, browser):
    driver = browser
    driver.get(app["url"])
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#kgsf-message textarea"), "the app did not load")

    # a message, its reply, the recommendations panel (top-k with scores, attention bars, KG paths)
    reply = send(driver, "I loved Paranormal Activity, anything scary with Tom Hanks?")
    assert reply.strip()
    recs = driver.find_element(By.ID, "kgsf-recs")
    rows = recs.find_elements(By.CSS_SELECTOR, "tr.kgsf-rec")
    assert rows, recs.text
    titles = [row.find_element(By.CSS_SELECTOR, ".kgsf-title").text for row in rows]
    assert "Paranormal Activity (2007)" not in titles  # mentioned: left out
    assert all(t in {"Toy Story (1995)", "Frozen (2013)", "Obscure Film (2001)", "Inception (2010)"} or t for t in titles)
    assert "Attention over the context words" in recs.text and "scary" in recs.text
    assert recs.find_elements(By.CSS_SELECTOR, "svg.kgsf-path") or "no path" in recs.text

    # inspect: the entity links of the seeker message
    click_text(driver, "Inspect")
    inspect = wait_for(driver, lambda d: d.find_element(By.ID, "kgsf-inspect").text, "inspect panel empty")
    assert "Tom Hanks" in inspect and "Paranormal Activity (2007)" in inspect and "decoding: name=default" in inspect

    # change the decoding to greedy, then sampling with a seed: the inspect panel reports them
    click_text(driver, "Controls")
    click_text(driver, "greedy", "#kgsf-decoding")
    send(driver, "Something else please")
    click_text(driver, "Inspect")
    wait_for(driver, lambda d: "decoding: name=greedy" in d.find_element(By.ID, "kgsf-inspect").text, "greedy not used")

    # typed HTML / script is shown as text and never run
    send(driver, XSS)
    assert XSS in user_messages(driver)[-1]
    assert driver.execute_script("return window.__kgsf_xss === undefined")
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018
    assert not driver.find_elements(By.CSS_SELECTOR, "#kgsf-chat script, #kgsf-chat img[src='x']")

    # rate the last reply with a comment: one JSONL row
    driver.find_element(By.CSS_SELECTOR, "#kgsf-comment textarea").send_keys("reads fine")
    driver.find_element(By.ID, "kgsf-up").click()
    wait_for(driver, lambda d: "rated reply 3: up" in status(d), "rating not confirmed")
    rows = [json.loads(line) for line in Path(app["ratings"]).read_text().splitlines()]
    assert rows[-1]["rating"] == "up" and rows[-1]["comment"] == "reads fine" and rows[-1]["reply_index"] == 2
    assert rows[-1]["context"][-1] == {"role": "seeker", "text": XSS}

    # export: a JSON file with the turns, the recommendations and the settings
    driver.find_element(By.ID, "kgsf-export").click()
    link = wait_for(driver, lambda d: [a for a in d.find_elements(By.CSS_SELECTOR, "#kgsf-export-file a[href]") if a.get_attribute("href")],
                    "no exported file")[0]
    with urllib.request.urlopen(link.get_attribute("href"), timeout=30) as response:
        exported = json.loads(response.read())
    assert exported["format"] == "kgsf-demo-conversation"
    assert [t["text"] for t in exported["turns"] if t["role"] == "seeker"][:2] == [
        "I loved Paranormal Activity, anything scary with Tom Hanks?", "Something else please"]
    assert len(exported["replies"]) == 3 and exported["replies"][1]["settings"]["decoding"] == "greedy"
    assert exported["replies"][0]["recommendations"][0]["title"] == titles[0]

    # import it into a new conversation and continue it
    driver.find_element(By.ID, "kgsf-reset").click()
    wait_for(driver, lambda d: not bot_messages(d), "not reset")
    path = Path(app["ratings"]).parent / "exported.json"
    path.write_text(json.dumps(exported))
    driver.find_element(By.CSS_SELECTOR, "#kgsf-import input[type='file']").send_keys(str(path))
    wait_for(driver, lambda d: len(bot_messages(d)) == 3, "import did not restore the conversation")
    send(driver, "one more")
    assert len(bot_messages(driver)) == 4
