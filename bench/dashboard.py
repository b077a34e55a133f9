"""Dashboard responsiveness with a large prediction log, measured in a real headless Chromium.

Writes N predictions (default 100,000) over 30 days into a SQLite prediction log, with agents' feedback for half of them
and the demo inbox's cleaned mails as text, starts `emailrouter dashboard` on it in its own process, and times what a
user waits for: the production page from navigation until its panels are filled, a date-filter change until the
panels change, the attribution tab until its mail picker is filled and one explanation, and the models tab.
Results go to stdout and bench/results/dashboard.json.

    # 100,000 predictions, the model at EMAILROUTER_MODEL_URI (else a tiny one)
    python bench/dashboard.py
    python bench/dashboard.py --n 20000
    # an existing log
    python bench/dashboard.py --log-url sqlite:///emailrouter-runs/predictions.db --screenshots nbs/images
"""

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from emailrouter.core import cpu_features
from emailrouter.demo import make_demo_corpus
from emailrouter.predlog import FeedbackRow, PredictionLog, log_engine, prediction_row
from emailrouter.testing import serve_process, tiny_encoder
from emailrouter.text import clean_email

HERE = Path(__file__).resolve().parent


def build_log(url: str, n: int, seed: int = 0) -> float:
    "Write `n` predictions over 30 days (feedback for half, one in eight of those re-routed); returns seconds taken."
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    corpus = make_demo_corpus(3000, seed=seed).dropna(subset=["body"])
    texts = [clean_email(s, b) for s, b in zip(corpus["subject"], corpus["body"])]
    queues = corpus["queue"].tolist()
    names = sorted(set(queues))
    start = datetime(2026, 1, 1)
    plog = PredictionLog(url, queue_size=n + 1, batch_size=5000, flush_seconds=0.05).start()
    rows, feedback = [], []
    for i in range(n):
        k = i % len(texts)
        score = float(rng.uniform(0.35, 1.0))
        q = queues[k] if rng.random() < score else names[rng.integers(0, len(names))]
        t = start + timedelta(seconds=int(i * 30 * 86400 / n))
        r = prediction_row(
            f"b{i}",
            texts[k],
            {"queue": q, "score": score, "route": q if score > 0.6 else "manuel_behandling", "top_k": []},
            "emailrouter",
            "1" if i < n // 2 else "2",
            float(rng.gamma(4, 6)),
            language="da",
        )
        rows.append({**r, "created_at": t})
        if i % 2 == 0:
            feedback.append(
                {
                    "request_id": f"b{i}",
                    "true_queue": queues[k] if rng.random() > 0.125 else names[rng.integers(0, len(names))],
                    "source": "agent",
                    "created_at": t + timedelta(hours=2),
                }
            )
    plog.put(rows)
    assert plog.flush(600), "the log was not written in 10 minutes"
    plog.stop()
    engine = log_engine(url)
    with engine.begin() as c:
        c.execute(FeedbackRow.__table__.insert(), feedback)
    engine.dispose()
    return time.perf_counter() - t0


def peak_memory_mb(pid: int) -> dict:
    "Peak resident memory (VmHWM, MB) of the dashboard's process and of each process it started (gunicorn's worker)."

    def hwm(p):
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)

    children = [int(c) for t in Path(f"/proc/{pid}/task").iterdir() for c in (t / "children").read_text().split()]
    return {"main": hwm(pid), "workers": [hwm(c) for c in children]}


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1600"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


def until(pred, timeout=120.0):
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        try:
            if pred():
                return time.perf_counter() - t0
        except Exception:
            pass
        time.sleep(0.02)
    raise TimeoutError("condition not met")


def concurrent_sessions(base: str, last_day, n: int) -> dict:
    """`n` browsers at once (started together by a barrier), each opening the production page and narrowing it to the
    last day; the seconds each waited. The browsers run on the same CPU as the dashboard."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    drivers = [browser() for _ in range(n)]
    start = threading.Barrier(n)

    def one(d):
        card = lambda: d.find_element(By.ID, "card-mails").text
        start.wait()
        t = time.perf_counter()
        d.get(base)
        until(
            lambda: (
                card().replace(",", "").isdigit() and d.find_elements(By.CSS_SELECTOR, "#fig-confusion .heatmaplayer")
            )
        )
        page = time.perf_counter() - t
        before = card()
        box = d.find_element(By.ID, "dates")
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(last_day.isoformat(), Keys.ENTER)
        return page, until(lambda: card() not in (before, "", "–"))

    try:
        with ThreadPoolExecutor(n) as pool:
            got = list(pool.map(one, drivers))
    finally:
        for d in drivers:
            d.quit()
    pages, filters = [g[0] for g in got], [g[1] for g in got]
    return {
        "sessions": n,
        "seconds_median": {"production page": float(np.median(pages)), "date filter": float(np.median(filters))},
        "seconds_max": {"production page": max(pages), "date filter": max(filters)},
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=3, help="times each page is measured (the median is reported)")
    p.add_argument("--out", default=str(HERE / "results" / "dashboard.json"))
    p.add_argument("--log-url", help="measure on this existing prediction log instead of writing --n predictions")
    p.add_argument("--screenshots", help="save a screenshot of each page here (dashboard-*.png)")
    p.add_argument(
        "--workers", type=int, default=1, help="dashboard worker processes (emailrouter dashboard --workers)"
    )
    p.add_argument(
        "--sessions",
        type=int,
        default=0,
        help="then this many browser sessions at once, each opening the page and changing its dates (default: none)",
    )
    args = p.parse_args(argv)
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    root = Path(tempfile.mkdtemp())
    if args.log_url:
        url, write_s = args.log_url, None
    else:
        url = f"sqlite:///{root / 'log.db'}"
        write_s = build_log(url, args.n)
        print(f"wrote {args.n:,} predictions in {write_s:.0f} s", flush=True)
    from emailrouter.log_queries import log_span

    with log_engine(url).connect() as c:
        args.n, first, last = log_span(c)
    first_day, last_day = first.date(), last.date()
    shot = (
        (lambda d, name: d.save_screenshot(str(Path(args.screenshots) / f"dashboard-{name}.png")))
        if args.screenshots
        else (lambda d, name: None)
    )
    if args.screenshots:
        Path(args.screenshots).mkdir(parents=True, exist_ok=True)
    model = os.environ.get("EMAILROUTER_MODEL_URI")
    if not model:
        from emailrouter.model import ROUTER_FILE

        names = sorted(set(make_demo_corpus(500)["queue"]))
        model = str(tiny_encoder(root / "tiny", "convbert", labels=names))
        (Path(model) / ROUTER_FILE).write_text(json.dumps({"max_length": 128, "truncation": "head_tail"}))
    env = {
        "EMAILROUTER_LOG_URL": url,
        "EMAILROUTER_MODEL_URI": model,
        "EMAILROUTER_LOG_LEVEL": "WARNING",
        "EMAILROUTER_DASHBOARD_REFRESH_SECONDS": "0.001",  # every view asks the database: no answer is reused
    }
    cwd = os.getcwd() if args.log_url else root  # an existing log: the registry next to it (emailrouter-runs/) is used
    exe = str(Path(sys.executable).with_name("emailrouter"))
    t0 = time.perf_counter()
    command = [exe, "dashboard", "--port", "{port}", "--workers", str(args.workers)]
    with serve_process(command, ready_path="/", env=env, cwd=cwd, timeout=600) as base:
        start_s = time.perf_counter() - t0
        d = browser()
        card = lambda: d.find_element(By.ID, "card-mails").text
        times = {
            "production page": [],
            "drift panel (after the page)": [],
            "date filter": [],
            "attribution picker": [],
            "one explanation": [],
            "models page": [],
        }
        for rep in range(args.repeat):
            t = time.perf_counter()
            d.get(base)
            until(
                lambda: (
                    card().replace(",", "").isdigit()
                    and d.find_elements(By.CSS_SELECTOR, "#fig-confusion .heatmaplayer")
                )
            )
            times["production page"].append(time.perf_counter() - t)
            until(lambda: d.find_elements(By.CSS_SELECTOR, "#drift-table table, #drift-table .dash-table-container"))
            times["drift panel (after the page)"].append(time.perf_counter() - t - times["production page"][-1])
            shot(d, "production")
            if last_day > first_day:  # narrow to the last day: the panels must change
                before = card()
                box = d.find_element(By.ID, "dates")
                box.send_keys(Keys.CONTROL, "a")
                box.send_keys(last_day.isoformat(), Keys.ENTER)
                times["date filter"].append(until(lambda: card() not in (before, "", "–")))
            d.find_element(By.XPATH, "//*[contains(@class, 'tab') and normalize-space()='Attribution checker']").click()
            t = time.perf_counter()
            d.find_element(By.ID, "pick").click()
            until(lambda: d.find_elements(By.CSS_SELECTOR, "#pick [role=option], .dash-dropdown-option"))
            times["attribution picker"].append(time.perf_counter() - t)
            options = d.find_elements(By.CSS_SELECTOR, "#pick [role=option], .dash-dropdown-option")
            options[rep % len(options)].click()  # another mail each time: none is explained already
            t = time.perf_counter()
            d.find_element(By.ID, "explain").click()
            until(lambda: d.find_elements(By.CSS_SELECTOR, "#attr-view .attr-word"))
            times["one explanation"].append(time.perf_counter() - t)
            shot(d, "attributions")
            d.find_element(By.XPATH, "//*[contains(@class, 'tab') and normalize-space()='Models']").click()
            t = time.perf_counter()
            until(
                lambda: (
                    d.find_elements(By.CSS_SELECTOR, "#thresholds-table")
                    and d.find_elements(By.CSS_SELECTOR, "#shadow-table")
                )
            )
            times["models page"].append(time.perf_counter() - t)
            shot(d, "models")
        d.quit()
        together = concurrent_sessions(base, last_day, args.sessions) if args.sessions else None
        memory_mb = peak_memory_mb(base.proc.pid)
    result = {
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        "cpu": cpu_features(),
        "database": sa.engine.make_url(url).get_backend_name(),
        "predictions": args.n,
        "log_write_seconds": write_s,
        "dashboard_start_seconds": start_s,
        "model": "tiny random ConvBERT"
        if "tiny" in model
        else (model if "://" in model else f"model folder {Path(model).name}"),
        "peak_memory_mb": memory_mb,
        "seconds_median": {k: float(np.median(v)) for k, v in times.items() if v},
        "seconds_all": times,
        "workers": args.workers,
        "concurrent_sessions": together,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(
        f"dashboard on {args.n:,} logged predictions ({result['machine']}); start-up {start_s:.1f} s; median of "
        f"{args.repeat}:"
    )
    for k, v in result["seconds_median"].items():
        print(f"  {k:20s} {v:5.2f} s")
    print(f"  peak memory (MB): {memory_mb}")
    if together:
        print(f"  {args.sessions} sessions at once: {json.dumps(together['seconds_median'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
