"""Screenshots of the web demo on a trained folder, in headless Chromium (Debian ``chromium`` +
``chromium-driver``, Selenium): a short conversation, then the chat and the inspect panel.

    python examples/demo_screenshots.py runs/quick/conversation/best --output_dir docs/figures
    # -> docs/figures/demo_chat.png, docs/figures/demo_inspect.png; the replies are printed
"""
from __future__ import annotations

import argparse
import shutil
import socket
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MESSAGES = ("Hi! I loved Paranormal Activity, anything scary?", "I have seen Insidious, I did not like it. Something with Tom Hanks?",
            "Great, thanks!")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--output_dir", default="docs/figures")
    parser.add_argument("--messages", nargs="*", default=list(MESSAGES))
    args = parser.parse_args(argv)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from modeling_kgsf.demo_kgsf import DemoCore, launch_demo

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    demo = launch_demo(DemoCore.from_pretrained(args.folder, Path(tempfile.mkdtemp()) / "ratings.jsonl"), port=port, block=False)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1500,1100"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(driver, 300)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#kgsf-message textarea"))
        for count, message in enumerate(args.messages, start=1):
            box = driver.find_element(By.CSS_SELECTOR, "#kgsf-message textarea")
            box.clear()
            box.send_keys(message)
            driver.find_element(By.ID, "kgsf-send").click()
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#kgsf-chat [data-testid='bot']")) >= count)
            print(f"seeker: {message}\nkgsf:   {driver.find_elements(By.CSS_SELECTOR, '#kgsf-chat [data-testid=bot]')[-1].text}")
        driver.save_screenshot(str(out / "demo_chat.png"))
        next(b for b in driver.find_elements(By.CSS_SELECTOR, "button") if b.text.strip() == "Inspect").click()
        wait.until(lambda d: "Seeker message" in d.find_element(By.ID, "kgsf-inspect").text)
        driver.save_screenshot(str(out / "demo_inspect.png"))
    finally:
        driver.quit()
        demo.close()
    print(f"wrote {out / 'demo_chat.png'} and {out / 'demo_inspect.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
