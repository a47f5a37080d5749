"""Headless Chromium driven by Selenium (Debian's ``chromium`` and ``chromium-driver``), for the web UI's tests.

:func:`start_browser` starts one browser with a fresh profile; :class:`Browser` wraps the few calls the
tests make (open a page, wait for a condition in the page, run a script, take a screenshot into
:data:`SCREENSHOTS`). Every browser a test starts is quit by it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import Any

#: Flags that work on these machines (no sandbox as root, nothing fetched from outside).
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1400,1000")

#: Where the tests' screenshots go (kept as CI artifacts); printed by the tests.
SCREENSHOTS = os.environ.get("MESOSTW_UI_SCREENSHOTS") or os.path.join(tempfile.gettempdir(), "mesostw-ui-screenshots")


def unavailable() -> str | None:
    """Why no browser can run here (None when one can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (requirements-dev.txt)"
    for program in ("chromium", "chromedriver"):
        if shutil.which(program) is None:
            return f"{program} is not installed (tools/install-chromium.sh)"
    return None


class Browser:
    """One headless Chromium."""

    def __init__(self, driver: Any, profile: str):
        self.driver = driver
        self.profile = profile

    def open(self, url: str) -> None:
        self.driver.get(url)

    def run(self, script: str, *args: Any) -> Any:
        """The value of ``script`` (a function body: ``return ...``) in the page."""
        return self.driver.execute_script(script, *args)

    def run_async(self, script: str, *args: Any) -> Any:
        """The value an async script passes to its last argument, the callback."""
        return self.driver.execute_async_script(script, *args)

    def wait(self, script: str, *args: Any, timeout: float = 30.0, what: str = "") -> Any:
        """Polls ``script`` (returning a value) until it is truthy; its value, or AssertionError."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = self.driver.execute_script(script, *args)
            except Exception as exc:  # noqa: BLE001 - a page that is being replaced answers with errors
                last = exc
            else:
                if last:
                    return last
            time.sleep(0.1)
        shot = self.screenshot("timed-out-" + "".join(c if c.isalnum() else "-" for c in (what or "wait"))[:60])
        raise AssertionError(f"timed out waiting for {what or script!r} (last: {last!r}; screenshot {shot})")

    def text(self, selector: str = "main") -> str:
        script = "const el = document.querySelector(arguments[0]); return el ? el.innerText : '';"
        return str(self.run(script, selector))

    def screenshot(self, name: str) -> str:
        os.makedirs(SCREENSHOTS, exist_ok=True)
        path = os.path.join(SCREENSHOTS, f"{name}.png")
        self.driver.save_screenshot(path)
        return path

    def quit(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)


def start_browser() -> Browser:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="mesostw-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_script_timeout(30)
    return Browser(driver, profile)
