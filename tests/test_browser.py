"""The API docs in a real headless Chromium, served by a real `uvicorn emailrouter.serve:app` with no internet.

Needs Debian's `chromium` and `chromium-driver` (CI installs them); skipped with a reason where they are missing.
"""

import sys

import pytest
from conftest import CHROMEDRIVER, CHROMIUM

from emailrouter.testing import serve_process

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="needs Chromium and ChromeDriver (apt-get install chromium chromium-driver)"
)


@pytest.fixture(scope="module")
def api_url(tiny_model, tmp_path_factory):
    cmd = [sys.executable, "-m", "uvicorn", "emailrouter.serve:app", "--port", "{port}"]
    with serve_process(
        cmd, env={"EMAILROUTER_MODEL_URI": str(tiny_model.model_dir)}, cwd=tmp_path_factory.mktemp("srv")
    ) as url:
        yield url


# ReDoc's bundle always asks cdn.redoc.ly for its own "API docs by Redocly" logo and hides the image when that fails;
# everything the page needs is served locally, so that one request is the only one allowed to fail offline.
_KNOWN_OFFLINE = ("https://cdn.redoc.ly/redoc/logo-mini.svg",)


def _severe(driver):
    return [
        e
        for e in driver.get_log("browser")
        if e["level"] == "SEVERE" and not any(e["message"].startswith(k) for k in _KNOWN_OFFLINE)
    ]


def test_swagger_ui_renders_the_operations(browser, api_url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(api_url + "/docs")
    WebDriverWait(browser, 30).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".opblock")))
    paths = {e.text for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/predict", "/predict/batch", "/health", "/ready", "/admin/reload"} <= paths, paths
    assert not _severe(browser)


def test_redoc_renders_the_operations(browser, api_url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(api_url + "/redoc")
    WebDriverWait(browser, 30).until(lambda d: "Route one e-mail" in d.find_element(By.TAG_NAME, "body").text)
    assert not _severe(browser)
