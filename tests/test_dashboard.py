"""The dashboard, served by `emailrouter dashboard` in a real process, in a real headless Chromium: every page loads
without console errors, the attribution checker highlights a mail, a date filter changes the figures, and a login is
required when one is configured. Screenshots go to EMAILROUTER_SCREENSHOTS when it names a folder."""
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

from emailrouter.predlog import FeedbackRow, PredictionLog, log_engine, prediction_row
from emailrouter.testing import serve_process

from conftest import CHROMEDRIVER, CHROMIUM

pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                reason="needs Chromium and ChromeDriver (apt-get install chromium chromium-driver)")
EXE = str(Path(sys.executable).with_name("emailrouter"))
START = datetime(2026, 3, 2)


def write_log(url, queues, n=400, days=3, seed=0):
    "`n` predictions over `days` days, half with an agent's feedback (one in five of those moved to another queue)."
    rng = np.random.default_rng(seed)
    plog = PredictionLog(url, flush_seconds=0.05).start()
    rows, fb = [], []
    for i in range(n):
        q = queues[i % len(queues)]
        t = START + timedelta(seconds=int(i * days * 86400 / n))
        score = float(rng.uniform(0.4, 1.0))
        r = prediction_row(f"r{i}", f"Hej, min {q} nr. {rng.integers(1000, 9999)} virker ikke, [NAME]",
                           {"queue": q, "score": score, "route": q if score > 0.6 else "manuel_behandling", "top_k": []},
                           "emailrouter", "1" if i < n // 2 else "2", float(rng.gamma(4, 5)))
        rows.append({**r, "created_at": t})
        if i % 2 == 0:
            true = queues[(i // 2) % len(queues)] if i % 10 == 0 else q
            fb.append({"request_id": f"r{i}", "true_queue": true, "source": "agent", "created_at": t + timedelta(hours=1)})
    plog.put(rows)
    assert plog.flush(30)
    plog.stop()
    engine = log_engine(url)
    with engine.begin() as c: c.execute(FeedbackRow.__table__.insert(), fb)
    engine.dispose()


@pytest.fixture(scope="module")
def dashboard(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("dash")
    url = f"sqlite:///{root / 'log.db'}"
    write_log(url, tiny_model.data.unique_tags[:4])
    env = {"EMAILROUTER_LOG_URL": url, "EMAILROUTER_MODEL_URI": str(tiny_model.model_dir), "EMAILROUTER_OUTPUT_DIR": str(root / "runs"),
           "EMAILROUTER_LOG_LEVEL": "WARNING"}
    with serve_process([EXE, "dashboard", "--port", "{port}"], ready_path="/", env=env, cwd=root) as base:
        yield base


def _severe(driver):
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _wait(driver, css, timeout=30):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout).until(EC.presence_of_element_located((By.CSS_SELECTOR, css)))


def _text_changes(driver, element_id, old, timeout=30):
    from selenium.webdriver.common.by import By
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        now = driver.find_element(By.ID, element_id).text
        if now not in (old, "–", ""): return now
        time.sleep(0.2)
    raise AssertionError(f"#{element_id} stayed {old!r}")


def _shot(driver, name):
    folder = os.environ.get("EMAILROUTER_SCREENSHOTS")
    if folder: Path(folder).mkdir(parents=True, exist_ok=True); driver.save_screenshot(str(Path(folder) / name))


def test_production_page_and_date_filter(browser, dashboard):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    browser.get(dashboard)
    _wait(browser, "#fig-performance .main-svg")
    mails = _text_changes(browser, "card-mails", "")
    assert mails == "400" and browser.find_element(By.ID, "card-accuracy").text.endswith("%")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#fig-confusion .heatmaplayer")) == 1
    _shot(browser, "production.png")
    start = browser.find_element(By.ID, "dates")                      # the date range's start field
    start.send_keys(Keys.CONTROL, "a"); start.send_keys("2026-03-04", Keys.ENTER)
    narrowed = _text_changes(browser, "card-mails", "400")
    assert 0 < int(narrowed.replace(",", "")) < 400
    assert not _severe(browser)


def test_attribution_checker_highlights_a_pasted_mail(browser, dashboard):
    from selenium.webdriver.common.by import By
    browser.get(dashboard)
    _wait(browser, "#fig-performance .main-svg")
    browser.find_element(By.XPATH, "//*[contains(@class, 'tab') and normalize-space()='Attribution checker']").click()
    browser.find_element(By.ID, "paste").send_keys("Hej, jeg hedder Jens Hansen (tlf 20 30 40 50). Min regning er alt for høj.")
    browser.find_element(By.ID, "explain").click()
    _wait(browser, "#attr-view .attr-word", timeout=60)
    words = browser.find_elements(By.CSS_SELECTOR, "#attr-view .attr-word")
    shaded = [w.get_attribute("style") for w in words]
    assert len(words) >= 8 and any("rgba(" in s for s in shaded)
    cleaned = browser.find_element(By.ID, "cleaned").text
    assert "[PHONE]" in cleaned and "20 30 40 50" not in browser.page_source and "Jens" not in browser.page_source
    _shot(browser, "attributions.png")
    assert not _severe(browser)


def test_models_page_loads(browser, dashboard):
    from selenium.webdriver.common.by import By
    browser.get(dashboard)
    _wait(browser, "#fig-performance .main-svg")
    browser.find_element(By.XPATH, "//*[contains(@class, 'tab') and normalize-space()='Models']").click()
    _wait(browser, "#thresholds-table", timeout=60)
    _shot(browser, "models.png")
    assert not _severe(browser)


def test_login_required_when_configured(tiny_model, tmp_path):
    env = {"EMAILROUTER_LOG_URL": f"sqlite:///{tmp_path / 'log.db'}", "EMAILROUTER_MODEL_URI": str(tiny_model.model_dir),
           "EMAILROUTER_DASHBOARD_USERNAME": "anna", "EMAILROUTER_DASHBOARD_PASSWORD": "correct horse", "EMAILROUTER_OUTPUT_DIR": str(tmp_path)}
    with serve_process([EXE, "dashboard", "--port", "{port}"], ready_path="/_dash-layout", env=env, cwd=tmp_path,
                       ready_auth=("anna", "correct horse")) as base:
        assert httpx.get(base + "/").status_code == 401
        assert httpx.get(base + "/", auth=("anna", "wrong")).status_code == 401
        assert httpx.get(base + "/", auth=("anna", "correct horse")).status_code == 200


def test_no_public_dashboard_without_login(tmp_path):
    p = subprocess.run([EXE, "dashboard", "--host", "0.0.0.0"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env={**os.environ, "EMAILROUTER_LOG_URL": f"sqlite:///{tmp_path / 'log.db'}"})
    assert p.returncode == 2 and "refusing to serve the dashboard on 0.0.0.0 without a login" in p.stderr
