"""The dashboard, served by `emailrouter dashboard` (gunicorn) in a real process: in a real headless Chromium every page
loads without console errors, the attribution checker highlights a mail and a date filter changes the figures (skipped
with a reason without Chromium); over plain HTTP a login is required when one is configured, its session is signed with
the configured key, which never shows in the output. Screenshots go to EMAILROUTER_SCREENSHOTS when it names a
folder."""

import os
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

from emailrouter.predlog import FeedbackRow, PredictionLog, log_engine, prediction_row
from emailrouter.testing import EMAILROUTER_CLI, serve_process

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
        r = prediction_row(
            f"r{i}",
            f"Hej, min {q} nr. {rng.integers(1000, 9999)} virker ikke, [NAME]",
            {"queue": q, "score": score, "route": q if score > 0.6 else "manuel_behandling", "top_k": []},
            "emailrouter",
            "1" if i < n // 2 else "2",
            float(rng.gamma(4, 5)),
        )
        rows.append({**r, "created_at": t})
        if i % 2 == 0:
            true = queues[(i // 2) % len(queues)] if i % 10 == 0 else q
            fb.append(
                {"request_id": f"r{i}", "true_queue": true, "source": "agent", "created_at": t + timedelta(hours=1)}
            )
    plog.put(rows)
    assert plog.flush(30)
    plog.stop()
    engine = log_engine(url)
    with engine.begin() as c:
        c.execute(FeedbackRow.__table__.insert(), fb)
    engine.dispose()


@pytest.fixture(scope="module")
def dashboard(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("dash")
    url = f"sqlite:///{root / 'log.db'}"
    write_log(url, tiny_model.data.unique_tags[:4])
    env = {
        "EMAILROUTER_LOG_URL": url,
        "EMAILROUTER_MODEL_URI": str(tiny_model.model_dir),
        "EMAILROUTER_OUTPUT_DIR": str(root / "runs"),
        "EMAILROUTER_LOG_LEVEL": "WARNING",
    }
    with serve_process([EMAILROUTER_CLI, "dashboard", "--port", "{port}"], ready_path="/", env=env, cwd=root) as base:
        base.log_url = url  # for tests that check what the pages stored
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
        if now not in (old, "–", ""):
            return now
        time.sleep(0.2)
    raise AssertionError(f"#{element_id} stayed {old!r}")


def _shot(driver, name):
    folder = os.environ.get("EMAILROUTER_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / name))


def test_production_page_and_date_filter(browser, dashboard):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(dashboard)
    _wait(browser, "#fig-performance .main-svg")
    mails = _text_changes(browser, "card-mails", "")
    assert mails == "400" and browser.find_element(By.ID, "card-accuracy").text.endswith("%")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#fig-confusion .heatmaplayer")) == 1
    _shot(browser, "production.png")
    start = browser.find_element(By.ID, "dates")  # the date range's start field
    start.send_keys(Keys.CONTROL, "a")
    start.send_keys("2026-03-04", Keys.ENTER)
    narrowed = _text_changes(browser, "card-mails", "400")
    assert 0 < int(narrowed.replace(",", "")) < 400
    assert not _severe(browser)


def test_attribution_checker_highlights_a_pasted_mail(browser, dashboard):
    from selenium.webdriver.common.by import By

    browser.get(dashboard)
    _wait(browser, "#fig-performance .main-svg")
    browser.find_element(By.XPATH, "//*[contains(@class, 'tab') and normalize-space()='Attribution checker']").click()
    assert not browser.find_element(By.ID, "fig-topk").is_displayed()  # no empty axes before anything is explained
    browser.find_element(By.ID, "paste").send_keys(
        "Hej, jeg hedder Jens Hansen (tlf 20 30 40 50). Min regning er alt for høj."
        + " Jeg har ringet flere gange om fakturaen for mit abonnement uden at få svar." * 8
    )
    browser.find_element(By.ID, "explain").click()
    _wait(browser, "#attr-view .attr-word", timeout=60)
    assert browser.find_element(By.ID, "fig-topk").is_displayed()
    overflow = "const v = document.getElementById('attr-view'); return v.scrollWidth - v.clientWidth;"
    assert browser.execute_script(overflow) <= 1, "the highlighted mail runs off the page instead of wrapping"
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


def _login_env(tiny_model, tmp_path) -> dict:
    return {
        "EMAILROUTER_LOG_URL": f"sqlite:///{tmp_path / 'log.db'}",
        "EMAILROUTER_MODEL_URI": str(tiny_model.model_dir),
        "EMAILROUTER_DASHBOARD_USERNAME": "anna",
        "EMAILROUTER_DASHBOARD_PASSWORD": "correct horse",
        "EMAILROUTER_OUTPUT_DIR": str(tmp_path),
        "EMAILROUTER_LOG_LEVEL": "INFO",
    }


def test_login_required_when_configured(tiny_model, tmp_path):
    """No page without the password, as before; without EMAILROUTER_DASHBOARD_SECRET_KEY a key is drawn at start and the
    log says what that means."""
    env = _login_env(tiny_model, tmp_path)
    with serve_process(
        [EMAILROUTER_CLI, "dashboard", "--port", "{port}"],
        ready_path="/_dash-layout",
        env=env,
        cwd=tmp_path,
        ready_auth=("anna", "correct horse"),
    ) as base:
        assert httpx.get(base + "/").status_code == 401
        assert httpx.get(base + "/", auth=("anna", "wrong")).status_code == 401
        assert httpx.get(base + "/", auth=("anna", "correct horse")).status_code == 200
        out = _stop(base)
    assert "EMAILROUTER_DASHBOARD_SECRET_KEY is not set" in out and "do not survive a restart" in out, out
    assert "Session is not available" not in out and "correct horse" not in out, out


def _stop(base) -> str:
    "SIGTERM the served process; it must end cleanly. Returns everything it wrote."
    base.proc.terminate()
    assert base.proc.wait(timeout=30) == 0
    return base.proc.stdout.read()


def test_served_by_gunicorn_with_the_configured_session_key(tiny_model, tmp_path):
    """Not Flask's development server: gunicorn, two threaded workers (--workers), its lines (the access log too) as
    emailrouter log records; the login signs its session with EMAILROUTER_DASHBOARD_SECRET_KEY in every worker, so no
    "Session is not available" warning, and neither the key nor the password shows in the output; SIGTERM stops it
    cleanly."""
    from flask import Flask
    from flask.sessions import SecureCookieSessionInterface

    key = "dashboard-session-key-6f1c2b9e0d"
    env = {**_login_env(tiny_model, tmp_path), "EMAILROUTER_DASHBOARD_SECRET_KEY": key}
    with serve_process(
        [EMAILROUTER_CLI, "dashboard", "--port", "{port}", "--threads", "2", "--workers", "2"],
        ready_path="/_dash-layout",
        env=env,
        cwd=tmp_path,
        ready_auth=("anna", "correct horse"),
    ) as base:
        refused = httpx.get(base + "/")
        assert refused.status_code == 401 and refused.headers["server"] == "gunicorn"
        page = httpx.get(base + "/", auth=("anna", "correct horse"))
        assert page.status_code == 200 and page.headers["server"] == "gunicorn"
        signer = Flask("check")
        signer.secret_key = key
        session = SecureCookieSessionInterface().get_signing_serializer(signer).loads(page.cookies["session"])
        assert session["user"]["email"] == "anna"
        with httpx.Client(auth=("anna", "correct horse")) as agents:  # whichever worker answers, the same login
            assert {agents.get(base + "/_dash-layout").status_code for _ in range(12)} == {200}
        out = _stop(base)
    assert "INFO emailrouter.dashboard.server: Using worker: gthread" in out, out
    assert out.count("emailrouter.dashboard.server: Booting worker with pid") == 2, out
    assert 'INFO emailrouter.dashboard.access: 127.0.0.1 "GET / HTTP/1.1" 401' in out, out
    assert "Handling signal: term" in out and "Shutting down: Master" in out, out
    assert "Session is not available" not in out and "is not set" not in out, out
    assert key not in out and "correct horse" not in out


def test_threads_and_port_are_checked(tmp_path):
    "A bad --threads or a port that is taken: one line and exit code 2, before anything is built."
    import socket

    env = {**os.environ, "EMAILROUTER_LOG_URL": f"sqlite:///{tmp_path / 'log.db'}"}

    def dashboard(*args):
        return subprocess.run(
            [EMAILROUTER_CLI, "dashboard", *args], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env
        )

    p = dashboard("--threads", "0")
    assert p.returncode == 2 and p.stderr.strip() == (
        "emailrouter: error: --threads and --workers must be at least 1, got 0 and 1"
    )
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        p = dashboard("--port", str(port))
    assert p.returncode == 2
    assert p.stderr.strip() == f"emailrouter: error: cannot listen on 127.0.0.1:{port}: Address already in use"


def test_no_public_dashboard_without_login(tmp_path):
    p = subprocess.run(
        [EMAILROUTER_CLI, "dashboard", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "EMAILROUTER_LOG_URL": f"sqlite:///{tmp_path / 'log.db'}"},
    )
    assert p.returncode == 2 and "refusing to serve the dashboard on 0.0.0.0 without a login" in p.stderr


def test_labelling_page_stores_an_agents_queue(browser, dashboard):
    """An agent takes a batch on the labelling page, is asked to choose before saving (nothing is preselected), saves a
    queue, skips a mail, saves another; the labels are in the log with source labelling, the buttons carry access
    keys."""
    from selenium.webdriver.common.by import By

    from emailrouter.predlog import read_log

    browser.get(dashboard)
    _wait(browser, "#fig-performance .main-svg")
    browser.find_element(By.XPATH, "//*[contains(@class, 'tab') and normalize-space()='Labelling']").click()
    assert not browser.find_element(By.ID, "lab-card").is_displayed()  # nothing shown before a batch
    size = browser.find_element(By.CSS_SELECTOR, "#lab-size")
    size.clear()
    size.send_keys("3")
    browser.find_element(By.ID, "lab-load").click()
    assert _text_changes(browser, "lab-status", "") == "3 mails chosen by uncertainty"
    meta = _text_changes(browser, "lab-meta", "")  # the card is drawn once the batch has arrived
    assert meta.startswith("1 of 3 · the model says") and browser.find_element(By.ID, "lab-card").is_displayed(), meta
    assert "[NAME]" in browser.find_element(By.ID, "lab-text").text  # the stored, masked text
    assert [browser.find_element(By.ID, b).get_attribute("accesskey") for b in ("lab-save", "lab-skip")] == ["s", "k"]
    options = browser.find_elements(By.CSS_SELECTOR, "#lab-queue input")
    assert options and not any(o.is_selected() for o in options)  # nothing preselected
    browser.find_element(By.ID, "lab-save").click()
    assert _text_changes(browser, "lab-status", "3 mails chosen by uncertainty") == "choose a queue first"
    options[0].click()
    browser.find_element(By.ID, "lab-save").click()
    first = _text_changes(browser, "lab-status", "choose a queue first")
    assert first.startswith("saved r"), first
    browser.find_element(By.ID, "lab-skip").click()
    skipped = _text_changes(browser, "lab-status", first)
    assert skipped.startswith("skipped r"), skipped
    for _ in range(100):  # the card follows the position
        if browser.find_element(By.ID, "lab-meta").text.startswith("3 of 3"):
            break
        time.sleep(0.1)
    assert browser.find_element(By.ID, "lab-meta").text.startswith("3 of 3")
    other = browser.find_elements(By.CSS_SELECTOR, "#lab-queue input")[1]
    other.click()
    chosen = other.get_attribute("value")
    browser.find_element(By.ID, "lab-save").click()
    last = _text_changes(browser, "lab-status", skipped)
    assert last.endswith(f": {chosen}"), last
    labelled = [first.split()[1].rstrip(":"), last.split()[1].rstrip(":")]
    log = read_log(log_engine(dashboard.log_url)).set_index("request_id")
    assert log.loc[labelled[1], "true_queue"] == chosen
    assert log.loc[labelled, "feedback_source"].tolist() == ["labelling", "labelling"]
    _shot(browser, "labelling.png")
    assert not _severe(browser)
